//! The control API in the lab: xdhcpd in the lab's server namespace with
//! `[control]`, its socket a file under the test's TempDir, and xdhcpctl
//! run beside it. Run as root: cargo xtask test (or cargo test --test
//! lab_control -- --include-ignored --test-threads=1 with XDHCPD_BIN set).
mod common;

use common::*;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use xtask::daemon::Daemon;
use xtask::lab::Lab;

/// The first address of the fixture's pool.
const FIRST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);

/// The journal directory and the socket of one test.
struct Setup {
    dir: TempDir,
    socket: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = TempDir::new("control");
        // Traversable by anyone: whether a user may connect is the
        // socket's own mode.
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.0.join("control.sock");
        Setup { dir, socket }
    }

    fn config(&self, lab: &Lab, group: Option<&str>) -> String {
        journal_config("lab-control.toml", lab, &self.dir.0.join("journal"))
            .replace("@SOCKET@", &self.socket.to_string_lossy())
            .replace(
                "@GROUP@",
                &group
                    .map(|g| format!("group = \"{g}\""))
                    .unwrap_or_default(),
            )
    }

    fn start(&self, lab: &Lab, group: Option<&str>) -> Daemon {
        Daemon::start(lab, &bin(), &self.config(lab, group))
            .unwrap_or_else(|e| panic!("starting xdhcpd: {e:#}"))
    }
}

fn ctl_bin() -> PathBuf {
    let b = bin().with_file_name("xdhcpctl");
    assert!(
        b.exists(),
        "{} does not exist: cargo build --release -p dhcp-user",
        b.display()
    );
    b
}

/// xdhcpctl with `args` against `socket`, as root.
fn ctl(socket: &Path, args: &[&str]) -> Output {
    output_within(
        Command::new(ctl_bin())
            .arg("--socket")
            .arg(socket)
            .args(args),
        Duration::from_secs(30),
    )
    .expect("xdhcpctl runs")
}

/// The output of a successful xdhcpctl run.
fn ok(socket: &Path, args: &[&str]) -> String {
    let out = ctl(socket, args);
    assert!(out.status.success(), "xdhcpctl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON answer of a successful `xdhcpctl --json ARGS`.
fn json(socket: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(socket, &a)).expect("JSON")
}

/// The stderr of a failing xdhcpctl run.
fn fails(socket: &Path, args: &[&str]) -> String {
    let out = ctl(socket, args);
    assert!(
        !out.status.success(),
        "xdhcpctl {args:?} should fail: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dora(lab: &Lab, mac: &str) -> (Ipv4Addr, Ipv4Addr) {
    let (_, offer, ack) = scapy_dora(lab, mac, None).expect("DORA");
    assert_eq!(ack.kind, "ack", "{ack:?}");
    (offer.yiaddr, ack.yiaddr)
}

/// A client's lease is shown by address and by MAC; released by the
/// operator, it is journaled as released and its address is offered to
/// the next client; `leases` pages through them; `top --once` shows the
/// rates; `reload` says whether the file was accepted.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn lease_release_leases_top_and_reload() {
    let lab = lab("xdt75", false);
    let s = Setup::new();
    let d = s.start(&lab, None);
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is the daemon user's only");

    let (_, a) = dora(&lab, "02:00:00:00:75:01");
    assert_eq!(a, FIRST);
    let table = ok(&s.socket, &["lease", &a.to_string()]);
    let row = table
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("no lease row: {table}"));
    assert!(
        row.starts_with("198.18.0.10 ")
            && row.contains("bound")
            && row.contains("02:00:00:00:75:01"),
        "{table}"
    );
    let by_mac = json(&s.socket, &["lease", "02:00:00:00:75:01"]);
    assert_eq!(by_mac["leases"][0]["address"], "198.18.0.10");
    assert_eq!(by_mac["source"], "journal");
    assert_eq!(
        fails(&s.socket, &["lease", "02:00:00:00:75:99"]).trim(),
        "xdhcpctl: no lease found"
    );

    // Released by the operator: journaled (durable), the address free.
    assert!(
        ok(&s.socket, &["release", "198.18.0.10"]).contains("released 198.18.0.10 (journaled)")
    );
    assert_eq!(
        json(&s.socket, &["lease", "198.18.0.10"])["leases"][0]["state"],
        "released"
    );
    assert!(fails(&s.socket, &["release", "198.18.0.10"]).contains("no client holds 198.18.0.10"));
    let (offered, b) = dora(&lab, "02:00:00:00:75:02");
    assert_eq!(
        (offered, b),
        (FIRST, FIRST),
        "the next client is offered the freed address"
    );
    let (_, c) = dora(&lab, "02:00:00:00:75:03");
    println!(
        "xdhcpctl lease {c}:\n{}",
        ok(&s.socket, &["lease", &c.to_string()])
    );

    // One per page: b's, then c's, the last.
    let p = json(&s.socket, &["leases", "--state", "bound", "--limit", "1"]);
    assert_eq!(p["leases"].as_array().unwrap().len(), 1);
    assert_eq!(p["next"], "198.18.0.10");
    let p2 = json(
        &s.socket,
        &["leases", "--state", "bound", "--after", "198.18.0.10"],
    );
    assert_eq!(p2["leases"][0]["address"], c.to_string());
    assert_eq!(p2["next"], serde_json::Value::Null);
    let all = ok(&s.socket, &["leases", "--all"]);
    assert_eq!(all.lines().count(), 3, "head and two leases:\n{all}");
    println!("xdhcpctl leases:\n{all}");

    let top = ok(&s.socket, &["top", "--once"]);
    println!("xdhcpctl top --once:\n{top}");
    let discover = top
        .lines()
        .find(|l| l.starts_with("discover "))
        .unwrap_or_else(|| panic!("no discover rate: {top}"));
    let total: u64 = discover.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(total, 3, "{discover}");
    assert!(top.contains("198.18.0.0/15"), "pool use shown: {top}");
    let lat = ok(&s.socket, &["latency"]);
    println!("xdhcpctl latency:\n{lat}");

    // Reload: accepted, then a broken file refused with its line.
    assert!(ok(&s.socket, &["reload"]).starts_with("reloaded: 1 subnet(s)"));
    let cfg = std::fs::read_to_string(d.config_file()).unwrap();
    std::fs::write(
        d.config_file(),
        cfg.replace("lease_time = 7200", "lease_time = 0"),
    )
    .unwrap();
    let e = fails(&s.socket, &["reload"]);
    assert!(
        e.contains("line ") && e.contains("lease_time must be at least 1"),
        "{e}"
    );
    // Still serving with the old one.
    let (_, c2) = dora(&lab, "02:00:00:00:75:03");
    assert_eq!(c2, c);
    d.stop().expect("clean stop");
    assert!(!s.socket.exists(), "the socket goes with the daemon");
}

/// A runtime reservation gives its client the address, survives a restart
/// and is listed as such; one that conflicts with the file is refused; a
/// file that gains it takes it over at the next reload; unreserve drops it.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn reserve_survives_a_restart_and_unreserve_drops_it() {
    let lab = lab("xdt76", false);
    let s = Setup::new();
    let d = s.start(&lab, None);
    assert!(
        ok(
            &s.socket,
            &["reserve", "198.18.0.40", "--mac", "02:00:00:00:76:40"]
        )
        .contains("reserved 198.18.0.40")
    );
    let (_, a) = dora(&lab, "02:00:00:00:76:40");
    assert_eq!(
        a,
        Ipv4Addr::new(198, 18, 0, 40),
        "the reserved client gets its address"
    );
    // For a client that has not asked yet: after the restart it gets it.
    ok(
        &s.socket,
        &["reserve", "198.18.0.41", "--mac", "02:00:00:00:76:41"],
    );
    let e = fails(
        &s.socket,
        &["reserve", "198.18.0.50", "--mac", "02:00:00:00:76:50"],
    );
    assert!(
        e.contains("198.18.0.50 is reserved in the config file for Mac"),
        "{e}"
    );
    let e = fails(
        &s.socket,
        &["reserve", "198.18.0.42", "--mac", "02:00:00:00:76:40"],
    );
    assert!(e.contains("reserved at runtime for 198.18.0.40"), "{e}");
    let list = ok(&s.socket, &["reservations"]);
    println!("xdhcpctl reservations:\n{list}");
    d.stop().expect("clean stop");

    let d = s.start(&lab, None);
    let (_, b) = dora(&lab, "02:00:00:00:76:41");
    assert_eq!(
        b,
        Ipv4Addr::new(198, 18, 0, 41),
        "reserved across the restart"
    );
    let list = json(&s.socket, &["reservations"]);
    let source = |addr: &str| {
        list["reservations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["addr"] == addr)
            .map(|r| r["source"].as_str().unwrap().to_string())
    };
    assert_eq!(source("198.18.0.50").as_deref(), Some("file"));
    assert_eq!(source("198.18.0.40").as_deref(), Some("runtime"));
    assert_eq!(source("198.18.0.41").as_deref(), Some("runtime"));

    // The file gains .41: listed as both until a reload, then the file's.
    let cfg = std::fs::read_to_string(d.config_file()).unwrap();
    std::fs::write(
        d.config_file(),
        format!("{cfg}\n[[subnet.reservation]]\naddress = \"198.18.0.41\"\nmac = \"02:00:00:00:76:41\"\n"),
    )
    .unwrap();
    let list = json(&s.socket, &["reservations"]);
    let src41: Vec<_> = list["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["addr"] == "198.18.0.41")
        .map(|r| r["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(src41, ["runtime, also in file"]);
    ok(&s.socket, &["reload"]);
    let list = json(&s.socket, &["reservations"]);
    let src41: Vec<_> = list["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["addr"] == "198.18.0.41")
        .map(|r| r["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(src41, ["file"]);
    assert!(d.log().contains("is in the config file now"), "{}", d.log());

    // Unreserve: gone from the list; the file's own is refused.
    assert!(ok(&s.socket, &["unreserve", "198.18.0.40"]).contains("unreserved 198.18.0.40"));
    let list = json(&s.socket, &["reservations"]);
    assert!(!list.to_string().contains("198.18.0.40"), "{list}");
    let e = fails(&s.socket, &["unreserve", "198.18.0.41"]);
    assert!(e.contains("reserved in the config file"), "{e}");
    d.stop().expect("clean stop");
    let d = s.start(&lab, None);
    let list = json(&s.socket, &["reservations"]);
    assert!(
        !list.to_string().contains("198.18.0.40"),
        "unreserve survives the restart: {list}"
    );
    d.stop().expect("clean stop");
}

/// The socket is mode 0600: `nobody` is refused with a permission error
/// while root is answered; with `group = "nogroup"` (0660) nobody, in
/// that group, is answered too.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn the_socket_refuses_a_user_without_permission() {
    let lab = lab("xdt77", false);
    let s = Setup::new();
    // A copy of xdhcpctl that nobody may run, wherever the build is.
    let ctl_copy = s.dir.0.join("xdhcpctl");
    std::fs::copy(ctl_bin(), &ctl_copy).unwrap();
    std::fs::set_permissions(&ctl_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = || {
        output_within(
            Command::new("setpriv")
                .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
                .arg(&ctl_copy)
                .arg("--socket")
                .arg(&s.socket)
                .arg("stats"),
            Duration::from_secs(30),
        )
        .expect("setpriv runs")
    };
    let d = s.start(&lab, None);
    let out = as_nobody();
    assert!(!out.status.success(), "nobody was answered: {}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Permission denied"), "{err}");
    assert!(
        ok(&s.socket, &["stats"]).contains("rates"),
        "root is answered"
    );
    d.stop().expect("clean stop");

    let d = s.start(&lab, Some("nogroup"));
    let mode = std::fs::metadata(&s.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    let out = as_nobody();
    assert!(
        out.status.success(),
        "nogroup's member is answered: {}",
        text(&out)
    );
    d.stop().expect("clean stop");
}

/// A second daemon on a live socket is refused; a stale socket file (its
/// daemon killed) is replaced at the next start.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn a_live_socket_is_refused_and_a_stale_one_replaced() {
    let lab = lab("xdt78", false);
    let s = Setup::new();
    let d = s.start(&lab, None);
    let mut other = Setup::new();
    other.socket = s.socket.clone();
    // Its own journal, the first daemon's socket.
    let cfg = other.config(&lab, None);
    let e = Daemon::start(&lab, &bin(), &cfg)
        .err()
        .expect("the second daemon is refused");
    assert!(
        format!("{e:#}").contains("another xdhcpd answers on it"),
        "{e:#}"
    );
    // Killed: its socket stays behind, stale.
    let pid = d.pid().unwrap();
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    drop(d);
    assert!(s.socket.exists());
    let d = s.start(&lab, None);
    assert!(
        d.log().contains("removing a stale control socket"),
        "{}",
        d.log()
    );
    ok(&s.socket, &["stats"]);
    d.stop().expect("clean stop");
}
