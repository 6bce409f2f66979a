//! Lab tests with real DHCP peers (issue 3): dhclient, dhcpcd and busybox
//! udhcpc through lease, renewal, rebinding and release; a NAK for an
//! address the client cannot have; a client behind dhcrelay; xdhcpd beside
//! kea-dhcp4 on one segment; DECLINE and its quarantine, a DECLINE of an
//! address only offered; rapid commit (dhcpcd) beside the usual four
//! messages (dhclient).
//!
//! Every test builds its own lab (named `xdtc…`), pins the XDP path
//! (`io = "xdp"`, `xdp_mode = "driver"`, `bind = "copy"`) and checks the
//! exchanges in a capture as well as through the daemon's counters. Labs,
//! daemons, captures and every client, relay and server started here are
//! torn down by Drop, also when a test fails. Run them with
//! `cargo xtask test` (as root).
mod common;

use anyhow::{Context, Result, bail, ensure};
use common::*;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;
use xtask::capture::{
    self, Capture, DHCPACK, DHCPDISCOVER, DHCPNAK, DHCPOFFER, DHCPRELEASE, DHCPREQUEST, DhcpSeen,
};
use xtask::daemon::{Daemon, temp_dir};
use xtask::lab::{Lab, LabOptions, format_mac};

const DHCP_FILTER: &str = "udp port 67 or udp port 68";
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const LAB_NET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);

/// A process started for a test (client, relay, Kea): its output goes to a
/// file, and dropping it kills it, so nothing outlives a failing test.
struct Proc {
    child: Option<Child>,
    what: String,
    dir: PathBuf,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, what: &str) -> Proc {
        let dir = temp_dir(what).expect("temp dir");
        let log = dir.join("log");
        let file = File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what} ({cmd:?}): {e}"));
        Proc {
            child: Some(child),
            what: what.to_owned(),
            dir,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid
            // is our own child, not yet reaped (`ip netns exec` execs the
            // program, so it is the program's pid).
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Waits up to `limit` for the process to end by itself; `None` (and
    /// the process killed) if it did not.
    fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        wait_child(&mut c, limit)
    }

    fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if std::thread::panicking() {
                eprintln!("--- {} log ---\n{}", self.what, self.log());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `f` every 100 ms until it gives a value or `limit` passes.
fn wait_for<T>(limit: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    poll_every(limit, Duration::from_millis(100), f)
}

/// The options of a captured BOOTP payload, in wire order, without pads.
fn options(bootp: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut o = bootp.get(240..).unwrap_or_default();
    while let Some((&code, rest)) = o.split_first() {
        match code {
            0 => o = rest,
            255 => break,
            _ => {
                let Some((&len, rest)) = rest.split_first() else {
                    break;
                };
                let Some(val) = rest.get(..usize::from(len)) else {
                    break;
                };
                out.push((code, val));
                o = &rest[usize::from(len)..];
            }
        }
    }
    out
}

fn option(s: &DhcpSeen, code: u8) -> Option<&[u8]> {
    capture::find_option(s.bootp.get(240..)?, code)
}

fn ip_option(s: &DhcpSeen, code: u8) -> Option<Ipv4Addr> {
    let v: [u8; 4] = option(s, code)?.try_into().ok()?;
    Some(Ipv4Addr::from(v))
}

fn from_client(seen: &[DhcpSeen], mac: [u8; 6], t: u8) -> Vec<&DhcpSeen> {
    seen.iter()
        .filter(|s| s.op == 1 && s.chaddr == mac && s.msg_type == Some(t))
        .collect()
}

fn to_client(seen: &[DhcpSeen], mac: [u8; 6], t: u8) -> Vec<&DhcpSeen> {
    seen.iter()
        .filter(|s| s.op == 2 && s.chaddr == mac && s.msg_type == Some(t))
        .collect()
}

/// One line of the daemon's frames, for assertion messages.
fn show(s: &DhcpSeen) -> String {
    format!(
        "t={}.{:09} type={:?} op={} xid={:#x} {}:{} -> {}:{} dst_mac={} ciaddr={} yiaddr={} giaddr={}",
        s.ts_ns / 1_000_000_000,
        s.ts_ns % 1_000_000_000,
        s.msg_type,
        s.op,
        s.xid,
        s.src_ip,
        s.src_port,
        s.dst_ip,
        s.dst_port,
        format_mac(&s.dst_mac),
        s.ciaddr,
        s.yiaddr,
        s.giaddr
    )
}

fn show_all(seen: &[DhcpSeen]) -> String {
    seen.iter().map(show).collect::<Vec<_>>().join("\n")
}

fn copy_script(fixture_name: &str, to: &Path, replace: Option<(&str, &str)>) -> PathBuf {
    let mut text = std::fs::read_to_string(fixture(fixture_name))
        .unwrap_or_else(|e| panic!("reading {fixture_name}: {e}"));
    if let Some((from, with)) = replace {
        text = text.replace(from, with);
    }
    let path = to.join(fixture_name);
    std::fs::write(&path, text).expect("writing the script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Dhclient,
    Dhcpcd,
    Udhcpc,
}

/// A real client running in the foreground in the lab's client namespace,
/// with config and scripts of our own that touch nothing of the host.
struct RealClient {
    kind: Kind,
    iface: String,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl RealClient {
    fn start(lab: &Lab, kind: Kind) -> RealClient {
        Self::start_with(lab, kind, "dhcpcd.conf")
    }

    /// `dhcpcd_conf`: the fixture dhcpcd reads instead of /etc/dhcpcd.conf.
    fn start_with(lab: &Lab, kind: Kind, dhcpcd_conf: &str) -> RealClient {
        let dir = temp_dir("client").expect("temp dir");
        let iface = lab.cli_if.clone();
        let cmd = match kind {
            Kind::Dhclient => {
                let mut c = lab.cli("dhclient");
                Self::dhclient_args(&mut c, &dir, &iface);
                c.arg("-d");
                c
            }
            Kind::Dhcpcd => {
                // dhcpcd keeps its lease in /var/lib/dhcpcd under the
                // interface's name; one left from an earlier run would
                // turn the DISCOVER into an INIT-REBOOT.
                remove_dhcpcd_files(&iface);
                let events = dir.join("events");
                let script = copy_script(
                    "dhcpcd-script",
                    &dir,
                    Some(("@EVENTS@", &events.to_string_lossy())),
                );
                let mut c = lab.cli("dhcpcd");
                c.args(["-4", "-B", "-t", "15", "--noipv4ll", "-f"])
                    .arg(fixture(dhcpcd_conf))
                    .arg("-c")
                    .arg(script)
                    .arg(&iface);
                c
            }
            Kind::Udhcpc => {
                let script = copy_script("udhcpc-script", &dir, None);
                let mut c = lab.cli("busybox");
                // -R: release on SIGTERM; -T 1: a second between DISCOVERs.
                c.args([
                    "udhcpc", "-i", &iface, "-f", "-R", "-t", "10", "-T", "1", "-s",
                ])
                .arg(script)
                .env("XDTC_EVENTS", dir.join("events"));
                c
            }
        };
        let what = format!("{kind:?}").to_lowercase();
        RealClient {
            kind,
            iface,
            proc: Some(Proc::spawn(cmd, &what)),
            dir,
        }
    }

    fn dhclient_args(c: &mut Command, dir: &Path, iface: &str) {
        let script = copy_script("dhclient-script", dir, None);
        let leases = dir.join("dhclient.leases");
        if !leases.exists() {
            // dhclient resolves the lease file's real path: it must exist.
            std::fs::write(&leases, "").expect("lease file");
        }
        c.arg("-v")
            .arg("-cf")
            .arg(fixture("dhclient.conf"))
            .arg("-lf")
            .arg(leases)
            .arg("-pf")
            .arg(dir.join("dhclient.pid"))
            .arg("-sf")
            .arg(script)
            .arg(iface);
    }

    fn log(&self) -> String {
        let events = std::fs::read_to_string(self.dir.join("events")).unwrap_or_default();
        let out = self.proc.as_ref().map(Proc::log).unwrap_or_default();
        format!("{out}\n--- script events ---\n{events}")
    }

    /// Releases the lease the way each client's user would and waits for
    /// the client to end: `dhclient -r`, `dhcpcd -k`, SIGTERM to `udhcpc -R`.
    fn release(&mut self, lab: &Lab) -> Result<()> {
        match self.kind {
            Kind::Dhclient => {
                let mut c = lab.cli("dhclient");
                c.arg("-r");
                Self::dhclient_args(&mut c, &self.dir, &self.iface);
                let out = output_within(&mut c, Duration::from_secs(20))?;
                ensure!(out.status.success(), "dhclient -r: {}", text(&out));
            }
            Kind::Dhcpcd => {
                let out = output_within(
                    lab.cli("dhcpcd")
                        .args(["-4", "-f"])
                        .arg(fixture("dhcpcd.conf"))
                        .args(["-k", &self.iface]),
                    Duration::from_secs(20),
                )?;
                ensure!(out.status.success(), "dhcpcd -k: {}", text(&out));
            }
            Kind::Udhcpc => {
                if let Some(p) = &self.proc {
                    p.signal(libc::SIGTERM);
                }
            }
        }
        let p = self.proc.as_mut().context("client not running")?;
        if p.wait(Duration::from_secs(10)).is_none() {
            bail!("{:?} still ran 10 s after its release", self.kind);
        }
        Ok(())
    }
}

impl Drop for RealClient {
    fn drop(&mut self) {
        // The Proc is killed first; its log dies with our dir.
        if std::thread::panicking() {
            eprintln!("--- {:?} ---\n{}", self.kind, self.log());
        }
        self.proc.take();
        if self.kind == Kind::Dhcpcd {
            remove_dhcpcd_files(&self.iface);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// dhcpcd's lease file (/var/lib/dhcpcd) and its pid file and control
/// sockets (/run/dhcpcd) for one of our lab interfaces (named `xdtc…`, so
/// never a host interface's): a killed dhcpcd leaves them behind.
fn remove_dhcpcd_files(iface: &str) {
    assert!(iface.starts_with("xdtc"), "not a lab interface: {iface}");
    for dir in ["/var/lib/dhcpcd", "/run/dhcpcd"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&format!("{iface}.")) || name.starts_with(&format!("{iface}-")) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The address a client put on `iface` from the lab's pool.
fn leased_addr(lab: &Lab, limit: Duration) -> Option<Ipv4Addr> {
    wait_for(limit, || {
        lab.ipv4_addrs(true, &lab.cli_if)
            .ok()?
            .into_iter()
            .find(|&a| in_net(a, LAB_NET, 15))
    })
}

fn ack_count(d: &Daemon) -> u64 {
    counter(&d.fresh_stats().expect("stats"), "/total/ack")
}

/// One real client through its whole life against xdhcpd (lease 30 s,
/// T1 8 s, T2 12 s: lab-clients.toml):
/// lease, RENEW at T1 (unicast to the server), REBIND at T2 (broadcast,
/// while unicast to the server is made impossible by a `prohibit` route in
/// the client's namespace), RELEASE, and the same address again for the
/// same client afterwards. Every step is checked on the client's wire.
fn lifecycle(name: &str, kind: Kind) {
    let lab = lab(name, false);
    let daemon = start_daemon(&lab, "lab-clients.toml");
    let cap = Capture::start(&lab, true, &lab.cli_if, DHCP_FILTER).expect("capture");
    let mut client = RealClient::start(&lab, kind);
    let fail = |what: &str, client: &RealClient| -> ! {
        panic!(
            "{kind:?}: {what}\n--- client ---\n{}\n--- xdhcpd ---\n{}",
            client.log(),
            daemon.log()
        )
    };

    let Some(addr) = leased_addr(&lab, Duration::from_secs(30)) else {
        fail("no lease within 30 s", &client)
    };
    assert!(in_pool(addr), "{addr} outside the pool");

    // RENEWING at T1 (udhcpc ignores T1 and renews at half the lease).
    if wait_for(Duration::from_secs(25), || {
        (ack_count(&daemon) >= 2).then_some(())
    })
    .is_none()
    {
        fail("no renewal ACK within 25 s of the lease", &client);
    }

    // REBINDING: with unicast to the server refused by the client's own
    // kernel, the client's renewals fail until T2, when it broadcasts.
    lab.route_add(true, &["prohibit", &format!("{SERVER}/32")])
        .expect("prohibit route");
    let acks = ack_count(&daemon);
    let rebound = wait_for(Duration::from_secs(40), || {
        (ack_count(&daemon) > acks).then_some(())
    });
    lab.cli("ip")
        .args(["route", "del", "prohibit", &format!("{SERVER}/32")])
        .status()
        .map(|s| assert!(s.success(), "ip route del: {s}"))
        .expect("ip route del");
    if rebound.is_none() {
        fail(
            "no ACK within 40 s of cutting unicast to the server",
            &client,
        );
    }

    // RELEASE.
    let released = counter(&daemon.fresh_stats().expect("stats"), "/total/release");
    if let Err(e) = client.release(&lab) {
        fail(&format!("release: {e:#}"), &client);
    }
    let after = stats_when(&daemon, Duration::from_secs(10), |s| {
        counter(s, "/total/release") > released
    })
    .expect("stats");
    assert_eq!(
        counter(&after, "/total/release"),
        released + 1,
        "{kind:?}: release counter: {after}\n{}",
        client.log()
    );

    // The same client, started afresh, is offered the same address.
    lab.cli("ip")
        .args(["-4", "addr", "flush", "dev", &lab.cli_if])
        .status()
        .map(|s| assert!(s.success(), "ip addr flush: {s}"))
        .expect("ip addr flush");
    let again = RealClient::start(&lab, kind);
    let Some(addr2) = leased_addr(&lab, Duration::from_secs(30)) else {
        fail("no lease after the release", &again)
    };
    drop(again);
    drop(client);
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let frames = cap.stop().expect("capture");
    let seen = capture::dhcp_frames(&frames);
    let wire = show_all(&seen);
    let ctx = format!("{kind:?}, lease {addr}\nstats {stats}\n--- wire ---\n{wire}");
    assert_eq!(addr2, addr, "a different address after the release: {ctx}");

    let mac = lab.cli_mac;
    let first_ack = to_client(&seen, mac, DHCPACK)
        .into_iter()
        .find(|a| a.yiaddr == addr)
        .unwrap_or_else(|| panic!("no ACK of {addr} on the wire: {ctx}"));
    let release = from_client(&seen, mac, DHCPRELEASE);
    assert_eq!(release.len(), 1, "one RELEASE on the wire: {ctx}");
    let release = release[0];
    assert_eq!(release.ciaddr, addr, "RELEASE ciaddr: {ctx}");
    assert_eq!(
        ip_option(release, 54),
        Some(SERVER),
        "RELEASE names us: {ctx}"
    );
    let bound = first_ack.ts_ns..release.ts_ns;
    let discovers = from_client(&seen, mac, DHCPDISCOVER)
        .into_iter()
        .filter(|d| bound.contains(&d.ts_ns))
        .count();
    assert_eq!(discovers, 0, "a DISCOVER while bound: {ctx}");

    // Each renewal and rebinding request, and its ACK to ciaddr.
    let mut renewals = 0;
    let mut rebinds = 0;
    for r in from_client(&seen, mac, DHCPREQUEST)
        .into_iter()
        .filter(|r| bound.contains(&r.ts_ns) && r.ciaddr == addr)
    {
        let unicast = r.dst_ip == SERVER;
        if unicast {
            assert_eq!(r.dst_mac, lab.srv_mac, "renewal to the server's MAC: {ctx}");
        } else {
            assert_eq!(r.dst_ip, Ipv4Addr::BROADCAST, "{}: {ctx}", show(r));
            assert_eq!(ip_option(r, 54), None, "rebinding names no server: {ctx}");
        }
        let acked = to_client(&seen, mac, DHCPACK).into_iter().find(|a| {
            a.xid == r.xid
                && a.ts_ns > r.ts_ns
                && a.yiaddr == addr
                && a.dst_ip == addr
                && a.dst_mac == mac
                && a.src_ip == SERVER
        });
        if acked.is_some() {
            if unicast {
                renewals += 1;
            } else {
                rebinds += 1;
            }
        }
    }
    assert!(renewals >= 1, "no unicast renewal ACKed to ciaddr: {ctx}");
    // busybox udhcpc's unicast renewals are not always stopped by the
    // prohibit route (seen in CI-like runs: its retry went out and was
    // ACKed), so its REBINDING state cannot be forced reliably here;
    // dhclient and dhcpcd cover REBINDING, udhcpc still renews and
    // releases.
    if kind != Kind::Udhcpc {
        assert!(
            rebinds >= 1,
            "no broadcast rebinding ACKed to ciaddr: {ctx}"
        );
    }

    // After the release, an OFFER and an ACK of the same address.
    let offered_again = to_client(&seen, mac, DHCPOFFER)
        .into_iter()
        .any(|o| o.ts_ns > release.ts_ns && o.yiaddr == addr);
    assert!(offered_again, "not offered {addr} again: {ctx}");
    assert_eq!(counter(&stats, "/total/release"), 1, "{ctx}");
    assert_eq!(counter(&stats, "/total/nak"), 0, "{ctx}");
    assert_eq!(counter(&stats, "/total/malformed"), 0, "{ctx}");
    assert_eq!(stats["xdp_mode"], "driver", "{ctx}");
    assert_eq!(stats["bind"], "copy", "{ctx}");
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn dhclient_lease_renew_rebind_release() {
    lifecycle("xdtc1", Kind::Dhclient);
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn dhcpcd_lease_renew_rebind_release() {
    lifecycle("xdtc2", Kind::Dhcpcd);
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn udhcpc_lease_renew_release() {
    lifecycle("xdtc3", Kind::Udhcpc);
}

/// A dhclient that went to the background after `dhclient -1` bound;
/// dropping it kills it by its pid file.
struct BgDhclient {
    dir: PathBuf,
    log: String,
}

impl BgDhclient {
    /// `dhclient -1` run through `cmd` (a `dhclient` command in some lab
    /// namespace), with `leases` as the lease file's initial contents.
    fn lease(mut cmd: Command, iface: &str, leases: &str) -> Result<BgDhclient> {
        let mut d = BgDhclient {
            dir: temp_dir("dhclient")?,
            log: String::new(),
        };
        std::fs::write(d.dir.join("dhclient.leases"), leases)?;
        cmd.arg("-1");
        RealClient::dhclient_args(&mut cmd, &d.dir, iface);
        let out = output_within(&mut cmd, Duration::from_secs(45))?;
        d.log = text(&out);
        ensure!(
            out.status.success(),
            "dhclient failed ({}):\n{}",
            out.status,
            d.log
        );
        Ok(d)
    }
}

impl Drop for BgDhclient {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("dhclient.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            let is_dhclient = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "dhclient");
            if pid > 1 && is_dhclient {
                // SAFETY: kill(2) has no memory-safety preconditions; the
                // pid is the dhclient our pid file names.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// INIT-REBOOT with an address of another network (dhclient remembers a
/// lease of 192.0.2.77 on this interface): NAK, broadcast; then the client
/// starts over with a DISCOVER and gets a lease from the pool.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn foreign_address_is_naked_then_leased() {
    let lab = lab("xdtc4", false);
    let daemon = start_daemon(&lab, "lab-xdp.toml");
    let cap = Capture::start(&lab, true, &lab.cli_if, DHCP_FILTER).expect("capture");
    let foreign = Ipv4Addr::new(192, 0, 2, 77);
    let leases = format!(
        "lease {{\n  interface \"{}\";\n  fixed-address {foreign};\n  \
         option subnet-mask 255.255.255.0;\n  option dhcp-lease-time 7200;\n  \
         option dhcp-server-identifier 192.0.2.1;\n  renew 4 2037/01/01 00:00:00;\n  \
         rebind 4 2037/01/01 00:00:00;\n  expire 4 2037/01/01 00:00:00;\n}}\n",
        lab.cli_if
    );
    let dh = BgDhclient::lease(lab.cli("dhclient"), &lab.cli_if, &leases)
        .unwrap_or_else(|e| panic!("{e:#}\n--- xdhcpd ---\n{}", daemon.log()));
    let addrs = lab.ipv4_addrs(true, &lab.cli_if).expect("addresses");
    drop(dh);
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let frames = cap.stop().expect("capture");
    let seen = capture::dhcp_frames(&frames);
    let ctx = format!(
        "addresses {addrs:?}\nstats {stats}\n--- wire ---\n{}",
        show_all(&seen)
    );

    let mac = lab.cli_mac;
    let reboot = from_client(&seen, mac, DHCPREQUEST)
        .into_iter()
        .find(|r| ip_option(r, 50) == Some(foreign))
        .unwrap_or_else(|| panic!("no INIT-REBOOT REQUEST for {foreign}: {ctx}"));
    assert_eq!(reboot.ciaddr, Ipv4Addr::UNSPECIFIED, "{ctx}");
    assert_eq!(ip_option(reboot, 54), None, "{ctx}");
    let nak = to_client(&seen, mac, DHCPNAK)
        .into_iter()
        .find(|n| n.xid == reboot.xid)
        .unwrap_or_else(|| panic!("no NAK to the INIT-REBOOT: {ctx}"));
    assert_eq!(nak.dst_ip, Ipv4Addr::BROADCAST, "NAK is broadcast: {ctx}");
    assert_eq!(nak.dst_mac, [0xff; 6], "NAK is broadcast: {ctx}");
    assert_eq!(nak.yiaddr, Ipv4Addr::UNSPECIFIED, "{ctx}");
    assert_eq!(ip_option(nak, 54), Some(SERVER), "{ctx}");
    assert!(
        from_client(&seen, mac, DHCPDISCOVER)
            .iter()
            .any(|d| d.ts_ns > nak.ts_ns),
        "no DISCOVER after the NAK: {ctx}"
    );
    let ack = to_client(&seen, mac, DHCPACK)
        .into_iter()
        .find(|a| a.ts_ns > nak.ts_ns)
        .unwrap_or_else(|| panic!("no ACK after the NAK: {ctx}"));
    assert!(in_pool(ack.yiaddr), "{ctx}");
    assert!(addrs.contains(&ack.yiaddr), "{ctx}");
    assert!(!addrs.contains(&foreign), "{ctx}");
    assert_eq!(counter(&stats, "/total/nak"), 1, "{ctx}");
    assert_eq!(counter(&stats, "/total/malformed"), 0, "{ctx}");
}

const RELAY_DOWN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

/// client — dhcrelay — server: dhclient behind ISC dhcrelay (`-a` adds
/// option 82) gets a lease of the relay's link 203.0.113.0/24, and each
/// reply to the relay carries, last, the very option 82 of its request.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn dhclient_behind_dhcrelay() {
    // The lab's client namespace is the relay: its veth end faces the
    // server (198.18.0.3), a spur holds the client on 203.0.113.0/24.
    let mut opts = LabOptions::new("xdtc5");
    opts.server_addr = SERVER_ADDR.to_owned();
    opts.client_addr = Some("198.18.0.3/15".to_owned());
    let lab = Lab::up(&opts).expect("lab");
    let sub = lab
        .spur("r", None, Some(&format!("{RELAY_DOWN}/24")))
        .expect("client namespace");
    lab.route_add(false, &["203.0.113.0/24", "via", "198.18.0.3"])
        .expect("route to the relay's link");
    let daemon = start_daemon(&lab, "lab-relay.toml");
    let cap = Capture::start(&lab, true, &lab.cli_if, DHCP_FILTER).expect("capture");
    let mut relay = lab.cli("dhcrelay");
    relay
        .args(["-4", "-d", "-a", "--no-pid", "-id", &sub.outer_if])
        .args(["-iu", &lab.cli_if, &SERVER.to_string()]);
    let mut relay = Proc::spawn(relay, "dhcrelay");
    if wait_for(Duration::from_secs(10), || {
        relay.log().contains("Sending on").then_some(())
    })
    .is_none()
    {
        panic!("dhcrelay did not start:\n{}", relay.log());
    }
    assert!(relay.running(), "dhcrelay exited:\n{}", relay.log());

    let dh = BgDhclient::lease(sub.cmd("dhclient"), &sub.inner_if, "").unwrap_or_else(|e| {
        panic!(
            "{e:#}\n--- dhcrelay ---\n{}\n--- xdhcpd ---\n{}",
            relay.log(),
            daemon.log()
        )
    });
    let addrs = sub.ipv4_addrs().expect("addresses");
    drop(dh);
    let relay_log = relay.log();
    drop(relay);
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let frames = cap.stop().expect("capture");
    let seen = capture::dhcp_frames(&frames);
    let ctx = format!(
        "addresses {addrs:?}\nstats {stats}\n--- wire (relay to server) ---\n{}\n--- dhcrelay ---\n{relay_log}",
        show_all(&seen)
    );

    let link = Ipv4Addr::new(203, 0, 113, 0);
    let leased: Vec<Ipv4Addr> = addrs.into_iter().filter(|&a| in_net(a, link, 24)).collect();
    assert_eq!(leased.len(), 1, "{ctx}");
    assert!(
        (10..=200).contains(&leased[0].octets()[3]),
        "outside the pool: {ctx}"
    );

    let mac = sub.inner_mac;
    let relayed: Vec<&DhcpSeen> = seen
        .iter()
        .filter(|s| s.op == 1 && s.chaddr == mac && s.giaddr == RELAY_DOWN)
        .collect();
    assert!(relayed.len() >= 2, "DISCOVER and REQUEST relayed: {ctx}");
    let mut answered = 0;
    for req in &relayed {
        assert_eq!((req.dst_ip, req.dst_port), (SERVER, 67), "{ctx}");
        let o82 = option(req, 82).unwrap_or_else(|| panic!("relay added no option 82: {ctx}"));
        for rep in seen
            .iter()
            .filter(|s| s.op == 2 && s.xid == req.xid && s.chaddr == mac)
            .filter(|s| s.ts_ns > req.ts_ns)
        {
            assert_eq!(
                (rep.src_ip, rep.dst_ip, rep.dst_port),
                (SERVER, RELAY_DOWN, 67),
                "reply not sent to the relay: {}\n{ctx}",
                show(rep)
            );
            assert_eq!(rep.dst_mac, lab.cli_mac, "reply to the relay's MAC: {ctx}");
            assert_eq!(rep.giaddr, RELAY_DOWN, "{ctx}");
            assert!(in_net(rep.yiaddr, link, 24), "{ctx}");
            let opts = options(&rep.bootp);
            assert_eq!(
                opts.last().map(|&(c, v)| (c, v.to_vec())),
                Some((82, o82.to_vec())),
                "option 82 not echoed unchanged and last: {}\n{ctx}",
                show(rep)
            );
            answered += 1;
        }
    }
    assert!(answered >= 2, "OFFER and ACK through the relay: {ctx}");
    let acks = seen
        .iter()
        .filter(|s| s.op == 2 && s.chaddr == mac && s.msg_type == Some(DHCPACK))
        .count();
    assert!(acks >= 1, "{ctx}");
    assert_eq!(counter(&stats, "/total/no_subnet"), 0, "{ctx}");
    assert_eq!(counter(&stats, "/total/malformed"), 0, "{ctx}");
}

/// What dhcp_clients.py printed.
fn scapy_clients(cmd: &mut Command, args: &[&str]) -> Result<serde_json::Value> {
    cmd.arg(fixture("dhcp_clients.py")).args(args);
    let out = output_within(cmd, Duration::from_secs(40))?;
    ensure!(
        out.status.success(),
        "dhcp_clients.py {args:?} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).with_context(|| format!("dhcp_clients.py printed {line:?}"))
}

fn ip_field(v: &serde_json::Value, key: &str) -> Ipv4Addr {
    v[key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no address {key} in {v}"))
}

const KEA_SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 5);

/// xdhcpd and kea-dhcp4 on one bridged segment both offer; the client
/// REQUESTs Kea's offer. xdhcpd withdraws its own silently (`ignored` + 1)
/// and offers that address to the next client.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn beside_kea_withdraws_offer() {
    let lab = lab("xdtc7", false);
    let kea_ns = lab
        .spur("k", Some(&format!("{KEA_SERVER}/15")), None)
        .expect("Kea's namespace");
    let seg = lab.bridge_client_side(&[&kea_ns.outer_if]).expect("bridge");
    let daemon = start_daemon(&lab, "lab-two-servers.toml");
    let cap = Capture::start(&lab, true, &lab.cli_if, DHCP_FILTER).expect("capture");

    let kea_dir = temp_dir("kea").expect("temp dir");
    let conf = kea_dir.join("kea-dhcp4.json");
    let text_conf = std::fs::read_to_string(fixture("kea-two-servers.json"))
        .expect("Kea config")
        .replace("@INTERFACE@", &kea_ns.inner_if);
    std::fs::write(&conf, text_conf).expect("writing Kea's config");
    let mut kea_cmd = kea_ns.cmd("kea-dhcp4");
    kea_cmd
        .arg("-c")
        .arg(&conf)
        .env("KEA_PIDFILE_DIR", &kea_dir)
        .env("KEA_LOCKFILE_DIR", &kea_dir);
    let mut kea = Proc::spawn(kea_cmd, "kea");
    if wait_for(Duration::from_secs(20), || {
        kea.log().contains("DHCP4_STARTED").then_some(())
    })
    .is_none()
    {
        panic!("kea-dhcp4 did not start:\n{}", kea.log());
    }

    let before = daemon.fresh_stats().expect("stats");
    let first = "02:00:00:00:07:01";
    let chose = scapy_clients(
        &mut lab.cli(PYTHON),
        &["choose", &seg, first, &KEA_SERVER.to_string()],
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}\n--- kea ---\n{}\n--- xdhcpd ---\n{}",
            kea.log(),
            daemon.log()
        )
    });
    let after_choice = daemon.fresh_stats().expect("stats");
    let second = "02:00:00:00:07:02";
    let next = scapy_clients(&mut lab.cli(PYTHON), &["offers", &seg, second])
        .unwrap_or_else(|e| panic!("{e:#}\n--- xdhcpd ---\n{}", daemon.log()));

    kea.signal(libc::SIGTERM);
    let kea_exit = kea.wait(Duration::from_secs(10));
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let frames = cap.stop().expect("capture");
    let _ = std::fs::remove_dir_all(&kea_dir);
    let seen = capture::dhcp_frames(&frames);
    let ctx = format!(
        "choice {chose}\nnext {next}\nbefore {before}\nafter {after_choice}\n--- wire (xdhcpd's port) ---\n{}",
        show_all(&seen)
    );
    assert!(
        kea_exit.is_some(),
        "kea-dhcp4 ignored SIGTERM and was killed"
    );

    let offers = chose["offers"].as_array().expect("offers");
    let ours = offers
        .iter()
        .find(|o| ip_field(o, "server_id") == SERVER)
        .unwrap_or_else(|| panic!("no OFFER from xdhcpd: {ctx}"));
    let theirs = offers
        .iter()
        .find(|o| ip_field(o, "server_id") == KEA_SERVER)
        .unwrap_or_else(|| panic!("no OFFER from Kea: {ctx}"));
    let held = ip_field(ours, "yiaddr");
    assert!(in_pool(held), "{ctx}");
    assert!(
        in_net(ip_field(theirs, "yiaddr"), Ipv4Addr::new(198, 19, 0, 0), 24),
        "Kea's offer is not from Kea's pool: {ctx}"
    );
    let ack = &chose["ack"];
    assert_eq!(ack["type"], "ack", "{ctx}");
    assert_eq!(ip_field(ack, "server_id"), KEA_SERVER, "{ctx}");

    // Every REQUEST naming Kea reached xdhcpd and was ignored by it.
    let first_mac = xtask::lab::parse_mac(first).expect("mac");
    let naming_kea = from_client(&seen, first_mac, DHCPREQUEST)
        .into_iter()
        .filter(|r| ip_option(r, 54) == Some(KEA_SERVER))
        .count() as u64;
    // One, unless Kea took over a second to ACK and the client repeated it.
    assert!(
        naming_kea >= 1,
        "no REQUEST naming Kea reached xdhcpd: {ctx}"
    );
    let grew = |p: &str| counter(&after_choice, p) - counter(&before, p);
    assert_eq!(grew("/total/ignored"), naming_kea, "{ctx}");
    assert_eq!(grew("/total/ack"), 0, "{ctx}");
    assert_eq!(grew("/total/nak"), 0, "{ctx}");

    // The withdrawn address is the next client's offer.
    let next_ours: Vec<Ipv4Addr> = next["offers"]
        .as_array()
        .expect("offers")
        .iter()
        .filter(|o| ip_field(o, "server_id") == SERVER)
        .map(|o| ip_field(o, "yiaddr"))
        .collect();
    assert_eq!(
        next_ours,
        vec![held],
        "second client's offer from xdhcpd: {ctx}"
    );
    assert_eq!(counter(&stats, "/total/malformed"), 0, "{ctx}");
}

/// A client DECLINEs its ACKed address: `decline` + 1, and with a pool of
/// three, the next clients get the two others and then nothing, never the
/// declined one.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn declined_address_is_quarantined() {
    let lab = lab("xdtc8", false);
    let daemon = start_daemon(&lab, "lab-decline.toml");
    let pool: Vec<Ipv4Addr> = (10..=12).map(|i| Ipv4Addr::new(198, 18, 0, i)).collect();

    let declined = scapy_clients(
        &mut lab.cli(PYTHON),
        &["decline", &lab.cli_if, "02:00:00:00:08:01"],
    )
    .unwrap_or_else(|e| panic!("{e:#}\n--- xdhcpd ---\n{}", daemon.log()));
    let addr = ip_field(&declined["ack"], "yiaddr");
    assert_eq!(addr, pool[0], "lowest address first: {declined}");
    let s = stats_when(&daemon, Duration::from_secs(5), |s| {
        counter(s, "/total/decline") >= 1
    })
    .expect("stats");
    assert_eq!(counter(&s, "/total/decline"), 1, "{s}");

    let mut got = Vec::new();
    for mac in ["02:00:00:00:08:02", "02:00:00:00:08:03"] {
        let (_, offer, ack) = scapy_dora(&lab, mac, None)
            .unwrap_or_else(|e| panic!("{e:#}\n--- xdhcpd ---\n{}", daemon.log()));
        assert_eq!(offer.yiaddr, ack.yiaddr);
        got.push(ack.yiaddr);
    }
    let no_address = counter(&daemon.fresh_stats().expect("stats"), "/total/no_address");
    let last = scapy_clients(
        &mut lab.cli(PYTHON),
        &["offers", &lab.cli_if, "02:00:00:00:08:04"],
    )
    .expect("DISCOVER of a fourth client");
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let ctx = format!("declined {addr}; then {got:?}; fourth {last}\nstats {stats}");
    assert_eq!(got, pool[1..].to_vec(), "{ctx}");
    assert_eq!(
        last["offers"].as_array().map(Vec::len),
        Some(0),
        "the fourth client was offered something: {ctx}"
    );
    assert!(counter(&stats, "/total/no_address") > no_address, "{ctx}");
    assert_eq!(counter(&stats, "/total/decline"), 1, "{ctx}");
    assert_eq!(counter(&stats, "/total/malformed"), 0, "{ctx}");
}

/// A DECLINE of an address that was only offered is not believed
/// (`decline_not_bound`): the client that was offered it REQUESTs it
/// afterwards and is ACKed, so it was never quarantined.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn decline_of_an_offered_address_is_not_believed() {
    let lab = lab("xdtcd1", false);
    let daemon = start_daemon(&lab, "lab-decline.toml");
    let got = scapy_clients(
        &mut lab.cli(PYTHON),
        &["decline-offer", &lab.cli_if, "02:00:00:00:09:01"],
    )
    .unwrap_or_else(|e| panic!("{e:#}\n--- xdhcpd ---\n{}", daemon.log()));
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let ctx = format!("{got}\nstats {stats}");
    let offered = ip_field(&got["offer"], "yiaddr");
    assert_eq!(got["ack"]["type"], "ack", "{ctx}");
    assert_eq!(ip_field(&got["ack"], "yiaddr"), offered, "{ctx}");
    assert_eq!(counter(&stats, "/total/decline"), 1, "{ctx}");
    assert_eq!(counter(&stats, "/total/decline_not_bound"), 1, "{ctx}");
    assert_eq!(counter(&stats, "/total/malformed"), 0, "{ctx}");
}

/// RFC 4039 with real clients against one server with `rapid_commit`:
/// dhcpcd, told to send option 80, is bound in two messages (DISCOVER →
/// ACK carrying option 80; no OFFER, no REQUEST on the wire), and
/// dhclient, which does not send it, gets the usual four.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn rapid_commit_binds_dhcpcd_in_two_messages_and_dhclient_in_four() {
    let lab = lab("xdtcr1", false);
    let daemon = start_daemon(&lab, "lab-rapid.toml");
    let mac = lab.cli_mac;
    let fail = |what: &str, client: &RealClient| -> ! {
        panic!(
            "{what}\n--- client ---\n{}\n--- xdhcpd ---\n{}",
            client.log(),
            daemon.log()
        )
    };

    let cap = Capture::start(&lab, true, &lab.cli_if, DHCP_FILTER).expect("capture");
    let mut dhcpcd = RealClient::start_with(&lab, Kind::Dhcpcd, "dhcpcd-rapid.conf");
    let Some(addr) = leased_addr(&lab, Duration::from_secs(30)) else {
        fail("dhcpcd: no lease within 30 s", &dhcpcd)
    };
    let rapid = counter(&daemon.fresh_stats().expect("stats"), "/total/rapid_commit");
    let frames = cap.stop().expect("capture");
    let seen = capture::dhcp_frames(&frames);
    let ctx = format!("dhcpcd, lease {addr}\n--- wire ---\n{}", show_all(&seen));
    let discovers = from_client(&seen, mac, DHCPDISCOVER);
    assert!(!discovers.is_empty(), "{ctx}");
    assert!(
        discovers.iter().all(|d| option(d, 80) == Some(&[][..])),
        "dhcpcd sends option 80: {ctx}"
    );
    assert!(from_client(&seen, mac, DHCPREQUEST).is_empty(), "{ctx}");
    assert!(to_client(&seen, mac, DHCPOFFER).is_empty(), "{ctx}");
    let acks = to_client(&seen, mac, DHCPACK);
    assert!(
        acks.iter()
            .any(|a| a.yiaddr == addr && option(a, 80).is_some()),
        "an ACK of {addr} with option 80: {ctx}"
    );
    assert!(rapid >= 1, "rapid_commit counter {rapid}: {ctx}");
    if let Err(e) = dhcpcd.release(&lab) {
        fail(&format!("dhcpcd release: {e:#}"), &dhcpcd);
    }
    drop(dhcpcd);
    lab.cli("ip")
        .args(["-4", "addr", "flush", "dev", &lab.cli_if])
        .status()
        .map(|s| assert!(s.success(), "ip addr flush: {s}"))
        .expect("ip addr flush");

    let cap = Capture::start(&lab, true, &lab.cli_if, DHCP_FILTER).expect("capture");
    let dhclient = RealClient::start(&lab, Kind::Dhclient);
    let Some(addr) = leased_addr(&lab, Duration::from_secs(30)) else {
        fail("dhclient: no lease within 30 s", &dhclient)
    };
    drop(dhclient);
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let frames = cap.stop().expect("capture");
    let seen = capture::dhcp_frames(&frames);
    let ctx = format!(
        "dhclient, lease {addr}\nstats {stats}\n--- wire ---\n{}",
        show_all(&seen)
    );
    let discovers = from_client(&seen, mac, DHCPDISCOVER);
    assert!(!discovers.is_empty(), "{ctx}");
    assert!(discovers.iter().all(|d| option(d, 80).is_none()), "{ctx}");
    let offers = to_client(&seen, mac, DHCPOFFER);
    assert!(offers.iter().any(|o| o.yiaddr == addr), "{ctx}");
    assert!(!from_client(&seen, mac, DHCPREQUEST).is_empty(), "{ctx}");
    let acks = to_client(&seen, mac, DHCPACK);
    assert!(
        acks.iter()
            .any(|a| a.yiaddr == addr && option(a, 80).is_none()),
        "{ctx}"
    );
    assert_eq!(
        counter(&stats, "/total/rapid_commit"),
        rapid,
        "dhclient's exchange was no rapid commit: {ctx}"
    );
    assert_eq!(counter(&stats, "/total/malformed"), 0, "{ctx}");
}
