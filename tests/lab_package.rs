//! Privileged lab test of the systemd unit's privileges
//! (dhcp-user/packaging/xdhcpd.service). No systemd runs as PID 1 here (nor
//! in CI), so `systemd-run` cannot apply the unit; this test applies what
//! the unit says itself: it reads User=, AmbientCapabilities=,
//! CapabilityBoundingSet= and LimitMEMLOCK= from the file and starts
//! xdhcpd through `prlimit` and `setpriv` as an unprivileged user (the
//! unit's user does not exist on a build host: `nobody` stands in) with
//! exactly those capabilities, the journal in a directory that user owns.
//! With them a client gets a lease; without any one of them, or with none,
//! the daemon does not start. That is the measurement behind the unit's
//! capability list. Beside it, the package's maintainer scripts run
//! against overlays of /etc and /var/lib. Labs are named `xdt7…`; run
//! them with `cargo xtask test` (as root).
mod common;

use common::*;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use xtask::daemon::{Daemon, Launch};
use xtask::lab::Lab;

/// systemd's RLIMIT_MEMLOCK for a unit that sets no LimitMEMLOCK=
/// (DefaultLimitMEMLOCK=8M since systemd 253; the kernel's default since
/// 5.16).
const SYSTEMD_DEFAULT_MEMLOCK: u64 = 8 << 20;

/// What the unit grants the daemon.
#[derive(Debug, PartialEq)]
struct Privileges {
    user: String,
    /// AmbientCapabilities=, which must equal CapabilityBoundingSet=.
    caps: BTreeSet<String>,
    /// LimitMEMLOCK= in bytes; `None`: unlimited.
    memlock: Option<u64>,
}

/// The `key=` values of a unit file, in order (comments left out).
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim())
        .collect()
}

/// A set of capabilities as the unit writes them: space-separated names,
/// several lines adding up (an empty value would reset, which the unit
/// does not use).
fn cap_set(unit: &str, key: &str) -> BTreeSet<String> {
    values(unit, key)
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// systemd's size syntax for LimitMEMLOCK= (base 1024; "infinity").
fn parse_size(v: &str) -> Option<Option<u64>> {
    if v == "infinity" {
        return Some(None);
    }
    let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        "" | "B" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    Some(Some(n << shift))
}

fn parse_unit(unit: &str) -> Privileges {
    let user = values(unit, "User");
    assert_eq!(user.len(), 1, "the unit sets User= once: {user:?}");
    let ambient = cap_set(unit, "AmbientCapabilities");
    let bounding = cap_set(unit, "CapabilityBoundingSet");
    assert_eq!(
        ambient, bounding,
        "AmbientCapabilities= and CapabilityBoundingSet= differ"
    );
    for c in &ambient {
        assert!(c.starts_with("CAP_"), "{c} is not a capability name");
    }
    let memlock = match values(unit, "LimitMEMLOCK").as_slice() {
        [] => Some(SYSTEMD_DEFAULT_MEMLOCK),
        [v] => parse_size(v).unwrap_or_else(|| panic!("LimitMEMLOCK={v}")),
        more => panic!("LimitMEMLOCK= set {} times", more.len()),
    };
    Privileges {
        user: user[0].to_owned(),
        caps: ambient,
        memlock,
    }
}

fn the_unit() -> Privileges {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dhcp-user/packaging/xdhcpd.service");
    let p = parse_unit(&std::fs::read_to_string(&path).unwrap());
    assert_ne!(p.user, "root", "the unit runs xdhcpd as root");
    assert!(!p.caps.is_empty(), "the unit grants no capability");
    p
}

/// The uid and gid of `nobody`, the unprivileged user the test runs the
/// daemon as.
fn nobody() -> (u32, u32) {
    // SAFETY: getpwnam with a NUL-terminated name; the record is copied
    // out at once, before any other call could overwrite it.
    unsafe {
        let pw = libc::getpwnam(c"nobody".as_ptr());
        assert!(!pw.is_null(), "this host has no user nobody");
        ((*pw).pw_uid, (*pw).pw_gid)
    }
}

/// `prlimit --memlock=… setpriv …`: the daemon as `owner` with exactly
/// `caps` (ambient, inheritable and bounding) and the unit's memlock
/// limit, the way systemd would start it from the unit.
fn launch(owner: (u32, u32), caps: &BTreeSet<String>, memlock: Option<u64>) -> Launch {
    let list: String = caps
        .iter()
        .map(|c| format!(",+{}", c.trim_start_matches("CAP_").to_ascii_lowercase()))
        .collect();
    let memlock = memlock.map_or("unlimited".to_owned(), |b| b.to_string());
    Launch {
        prefix: vec![
            "prlimit".into(),
            format!("--memlock={memlock}:{memlock}"),
            "setpriv".into(),
            format!("--reuid={}", owner.0),
            format!("--regid={}", owner.1),
            "--clear-groups".into(),
            format!("--inh-caps=-all{list}"),
            format!("--ambient-caps=-all{list}"),
            format!("--bounding-set=-all{list}"),
        ],
        owner: Some(owner),
    }
}

/// The kernel's capability bits of a set of names, as /proc shows them.
fn cap_mask(caps: &BTreeSet<String>) -> u64 {
    caps.iter()
        .map(|c| {
            let bit = match c.as_str() {
                "CAP_NET_BIND_SERVICE" => 10,
                "CAP_NET_ADMIN" => 12,
                "CAP_NET_RAW" => 13,
                "CAP_IPC_LOCK" => 14,
                "CAP_SYS_ADMIN" => 21,
                "CAP_SYS_RESOURCE" => 24,
                "CAP_PERFMON" => 38,
                "CAP_BPF" => 39,
                other => panic!("add {other}'s bit to cap_mask"),
            };
            1u64 << bit
        })
        .fold(0, |a, b| a | b)
}

/// A `Name:\tvalue` line of /proc/PID/status.
fn status_field(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

/// How one start went.
enum Outcome {
    /// Ready, and a client was ACKed this address.
    Served(Ipv4Addr),
    /// Did not become ready: the daemon's error and log.
    Refused(String),
}

/// Starts xdhcpd with `caps` and the unit's memlock as `nobody`, journal
/// durable in a directory nobody owns, and runs one DORA.
fn start_and_lease(lab: &Lab, caps: &BTreeSet<String>, memlock: Option<u64>) -> Outcome {
    let owner = nobody();
    let journal = TempDir::new("journal");
    std::os::unix::fs::chown(&journal.0, Some(owner.0), Some(owner.1)).unwrap();
    let cfg = journal_config("lab-journal-durable.toml", lab, &journal.0);
    let d = match Daemon::start_with(lab, &bin(), &cfg, &launch(owner, caps, memlock)) {
        Ok(d) => d,
        Err(e) => return Outcome::Refused(format!("{e:#}")),
    };
    // It runs as the user and with the capabilities asked for, no more.
    let pid = d.pid().expect("running");
    let uid = status_field(pid, "Uid");
    assert!(
        uid.split_whitespace().all(|u| u == owner.0.to_string()),
        "Uid: {uid}"
    );
    let eff = u64::from_str_radix(&status_field(pid, "CapEff"), 16).unwrap();
    assert_eq!(eff, cap_mask(caps), "CapEff of the daemon");
    let bnd = u64::from_str_radix(&status_field(pid, "CapBnd"), 16).unwrap();
    assert_eq!(bnd, cap_mask(caps), "CapBnd of the daemon");

    let outcome = match scapy_dora(lab, "02:00:5e:00:70:01", None) {
        Ok((_, offer, ack)) if ack.kind == "ack" => {
            assert_eq!(offer.yiaddr, ack.yiaddr);
            assert!(in_pool(ack.yiaddr), "{ack:?}");
            Outcome::Served(ack.yiaddr)
        }
        Ok((_, _, other)) => Outcome::Refused(format!("no ACK: {other:?}\n{}", d.log())),
        Err(e) => Outcome::Refused(format!("{e:#}\n{}", d.log())),
    };
    if let Outcome::Served(_) = outcome {
        // The lease went to the journal as nobody, and the daemon (which
        // detaches XDP on the way out) stops cleanly.
        let files: Vec<_> = std::fs::read_dir(&journal.0)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("journal-"))
            .collect();
        assert!(
            !files.is_empty(),
            "no journal file in {}",
            journal.0.display()
        );
        for f in &files {
            use std::os::unix::fs::MetadataExt;
            assert_eq!(f.metadata().unwrap().uid(), owner.0, "{:?}", f.path());
        }
        d.stop().expect("xdhcpd stops cleanly as nobody");
    }
    outcome
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn the_units_privileges_serve_a_lease_as_an_unprivileged_user() {
    let unit = the_unit();
    eprintln!(
        "unit: User={} capabilities {:?} memlock {:?}",
        unit.user, unit.caps, unit.memlock
    );
    let lab = lab("xdt70", false);
    match start_and_lease(&lab, &unit.caps, unit.memlock) {
        Outcome::Served(a) => eprintln!("served {a} with {:?}", unit.caps),
        Outcome::Refused(why) => panic!("the unit's capabilities do not serve:\n{why}"),
    }
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn without_any_one_of_the_units_capabilities_xdhcpd_does_not_start() {
    let unit = the_unit();
    let lab = lab("xdt71", false);
    let mut trials: Vec<(String, BTreeSet<String>)> = unit
        .caps
        .iter()
        .map(|drop| {
            let rest = unit.caps.iter().filter(|c| *c != drop).cloned().collect();
            (format!("without {drop}"), rest)
        })
        .collect();
    trials.push(("with no capability".into(), BTreeSet::new()));
    for (what, caps) in trials {
        match start_and_lease(&lab, &caps, unit.memlock) {
            Outcome::Served(a) => {
                panic!("{what} xdhcpd still served {a}: the unit grants more than it needs")
            }
            Outcome::Refused(why) => {
                // Refused for a missing privilege, not for anything else
                // (the daemon's messages name the capability it lacks).
                let first = why
                    .lines()
                    .find(|l| l.starts_with("xdhcpd: "))
                    .unwrap_or_else(|| panic!("{what}: no error line from xdhcpd:\n{why}"));
                assert!(
                    first.contains("CAP_"),
                    "{what}: xdhcpd failed, but not for a privilege:\n{why}"
                );
                eprintln!("{what}: {}", &first[..first.len().min(400)]);
            }
        }
    }
}

#[test]
fn unit_files_parse_as_systemd_reads_them() {
    let p = parse_unit(
        "[Service]\n# AmbientCapabilities=CAP_SYS_ADMIN\nUser=xdhcpd\n\
         AmbientCapabilities=CAP_NET_ADMIN cap_bpf\nAmbientCapabilities=CAP_NET_RAW\n\
         CapabilityBoundingSet=CAP_BPF CAP_NET_RAW CAP_NET_ADMIN\nLimitMEMLOCK=64M\n",
    );
    assert_eq!(p.user, "xdhcpd");
    assert_eq!(
        p.caps.iter().map(String::as_str).collect::<Vec<_>>(),
        ["CAP_BPF", "CAP_NET_ADMIN", "CAP_NET_RAW"]
    );
    assert_eq!(p.memlock, Some(64 << 20));
    let p = parse_unit(
        "User=x\nAmbientCapabilities=CAP_BPF\nCapabilityBoundingSet=CAP_BPF\nLimitMEMLOCK=infinity\n",
    );
    assert_eq!(p.memlock, None);
    let p = parse_unit("User=x\nAmbientCapabilities=CAP_BPF\nCapabilityBoundingSet=CAP_BPF\n");
    assert_eq!(p.memlock, Some(SYSTEMD_DEFAULT_MEMLOCK));
    assert_eq!(parse_size("8K"), Some(Some(8192)));
    assert_eq!(parse_size("lots"), None);
    // The real unit parses, and its two sets agree.
    the_unit();
}

#[test]
#[should_panic(expected = "differ")]
fn a_bounding_set_wider_than_the_ambient_one_is_refused() {
    parse_unit(
        "User=x\nAmbientCapabilities=CAP_BPF\nCapabilityBoundingSet=CAP_BPF CAP_SYS_ADMIN\n",
    );
}

/// The maintainer scripts as dpkg runs them, in a mount namespace whose
/// /etc and /var/lib are overlays of the host's (so the user they make
/// and the files they write vanish with it): postinst makes the user and
/// the key and gives it the directory, a second run changes nothing, the
/// installed sample passes `xdhcpd check-config` as that user (the unit's
/// ExecStartPre), remove keeps everything and purge takes it all away.
/// The scripts from the source tree: `#DEBHELPER#`, which cargo-deb fills
/// in, is a comment to sh.
#[test]
#[ignore = "needs root (a mount namespace): run with cargo xtask test"]
fn maintainer_scripts_are_idempotent_and_purge_cleans_up() {
    let scratch = TempDir::new("maintscripts");
    let pkg = Path::new(env!("CARGO_MANIFEST_DIR")).join("dhcp-user/packaging");
    for d in ["etc-up", "etc-work", "var-up", "var-work"] {
        std::fs::create_dir(scratch.0.join(d)).unwrap();
    }
    let script = format!(
        r#"set -e
s={scratch}
mount -t overlay overlay -o lowerdir=/etc,upperdir=$s/etc-up,workdir=$s/etc-work /etc
mount -t overlay overlay -o lowerdir=/var/lib,upperdir=$s/var-up,workdir=$s/var-work /var/lib
if getent passwd xdhcpd >/dev/null; then echo "host-has-user"; exit 1; fi
# What dpkg unpacked before postinst runs.
mkdir -p /etc/xdhcpd /var/lib/xdhcpd
cp {pkg}/city.toml /etc/xdhcpd/xdhcpd.toml
sh {pkg}/debian/postinst configure
echo "user=$(getent passwd xdhcpd | cut -d: -f1,6,7)"
echo "dir=$(stat -c '%U:%G %a' /var/lib/xdhcpd)"
echo "key=$(stat -c '%U:%G %a' /etc/xdhcpd/ddns.key) $(base64 -d /etc/xdhcpd/ddns.key | wc -c)"
k1=$(md5sum < /etc/xdhcpd/ddns.key)
echo "check=$(setpriv --reuid=xdhcpd --regid=xdhcpd --clear-groups {bin} check-config /etc/xdhcpd/xdhcpd.toml 2>&1)"
sh {pkg}/debian/postinst configure 0.1.0-1
echo "again=$(getent passwd xdhcpd | wc -l) $(stat -c '%U:%G %a' /var/lib/xdhcpd) $([ "$k1" = "$(md5sum < /etc/xdhcpd/ddns.key)" ] && echo same-key || echo new-key)"
sh {pkg}/debian/postrm remove
echo "removed=$(getent passwd xdhcpd >/dev/null && echo user || echo no-user) $([ -e /etc/xdhcpd/ddns.key ] && echo key || echo no-key)"
# dpkg deletes the conffiles before postrm purge.
rm /etc/xdhcpd/xdhcpd.toml
sh {pkg}/debian/postrm purge >/dev/null 2>&1
echo "purged=$(getent passwd xdhcpd >/dev/null && echo user || echo no-user) $(getent group xdhcpd >/dev/null && echo group || echo no-group) $([ -e /var/lib/xdhcpd ] && echo dir || echo no-dir) $([ -e /etc/xdhcpd ] && echo etc || echo no-etc)"
"#,
        scratch = scratch.0.display(),
        pkg = pkg.display(),
        bin = bin().display(),
    );
    let out = output_within(
        std::process::Command::new("unshare").args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
        ]),
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let fact = |key: &str| -> String {
        said.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key}= in:\n{said}"))
            .to_owned()
    };
    assert_eq!(fact("user"), "xdhcpd:/var/lib/xdhcpd:/usr/sbin/nologin");
    assert_eq!(fact("dir"), "xdhcpd:xdhcpd 750");
    assert_eq!(fact("key"), "root:xdhcpd 640 32");
    assert!(fact("check").ends_with("ok, 2 subnet(s)"), "{said}");
    assert_eq!(fact("again"), "1 xdhcpd:xdhcpd 750 same-key");
    assert_eq!(fact("removed"), "user key");
    assert_eq!(fact("purged"), "no-user no-group no-dir no-etc");
    // The host was never touched.
    assert!(
        !std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .any(|l| l.starts_with("xdhcpd:")),
        "the host's /etc/passwd has an xdhcpd user"
    );
}
