//! Lab tests of the lease journal (issue 4): ACKed leases survive a power
//! cut in durable mode (and are lost in fast mode without a sync, which
//! shows the test can fail), a dhclient lease survives a daemon restart,
//! and a full pool sheds DISCOVERs until addresses are released.
//!
//! Every test builds its own lab (named `xdtj…`), pins the XDP path
//! (`io = "xdp"`, `xdp_mode = "driver"`, `bind = "copy"`) and is torn
//! down by Drop also when it fails: labs, daemons, captures, clients, and
//! the loop-mounted XFS (unmounted, detached, image removed). Run them
//! with `cargo xtask test` (as root).
mod common;
#[path = "common/leases.rs"]
mod leases;

use common::*;
use dhcproto::v4::MessageType;
use leases::{Relay, Xfs, client_mac, msg_type};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xtask::capture::{
    self, Capture, DHCPACK, DHCPDISCOVER, DHCPNAK, DHCPRELEASE, DHCPREQUEST, DhcpSeen,
};
use xtask::daemon::Daemon;
use xtask::lab::{Lab, format_mac};

const DHCP_FILTER: &str = "udp port 67 or udp port 68";
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn start(lab: &Lab, cfg: &str) -> Daemon {
    Daemon::start(lab, &bin(), cfg).unwrap_or_else(|e| panic!("starting xdhcpd: {e:#}"))
}

/// perfdhcp running DORA in the background; dropping it kills it.
struct Perfdhcp {
    child: Option<Child>,
    dir: TempDir,
}

impl Perfdhcp {
    fn start(lab: &Lab, rate: u32, seconds: u32) -> Perfdhcp {
        let dir = TempDir::new("perfdhcp");
        let log = std::fs::File::create(dir.0.join("perfdhcp.log")).expect("perfdhcp log");
        // -R: a client population far larger than the run, so nearly every
        // exchange is a new client with a lease of its own.
        let child = lab
            .cli("perfdhcp")
            .args(["-4", "-l", &lab.cli_if])
            .args(["-r", &rate.to_string(), "-R", "1000000"])
            .args(["-p", &seconds.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting perfdhcp");
        Perfdhcp {
            child: Some(child),
            dir,
        }
    }

    /// SIGINT (perfdhcp prints its report then), and what it printed.
    fn stop(mut self) -> String {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) has no memory-safety preconditions; our child.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            wait_child(&mut c, Duration::from_secs(5));
        }
        std::fs::read_to_string(self.dir.0.join("perfdhcp.log")).unwrap_or_default()
    }
}

impl Drop for Perfdhcp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The BOOTP options field of a captured message.
fn options(s: &DhcpSeen) -> &[u8] {
    s.bootp.get(240..).unwrap_or(&[])
}

/// What a power cut did to the leases ACKed before it.
struct CutOutcome {
    /// Leases ACKed on the wire before the cut: chaddr → address.
    acked: HashMap<[u8; 6], Ipv4Addr>,
    /// ACKed leases the restarted server renewed with the same address.
    kept: usize,
    /// ACKed leases it did not: (client, address, what it answered).
    lost: Vec<([u8; 6], Ipv4Addr, String)>,
    /// ACKed addresses the restarted server offered to new clients.
    reoffered: Vec<Ipv4Addr>,
    /// New clients' DISCOVERs sent after recovery, and OFFERs received.
    new_clients: usize,
    new_offers: usize,
    /// Journal counters of the killed daemon's last stats.
    journal_before: serde_json::Value,
    /// Leases the restarted daemon recovered, by its log.
    restored: Option<u64>,
    perfdhcp: String,
}

impl CutOutcome {
    fn summary(&self) -> String {
        let lost: Vec<String> = self
            .lost
            .iter()
            .take(10)
            .map(|(m, a, why)| format!("{} {a}: {why}", format_mac(m)))
            .collect();
        let mut reoffered = self.reoffered.clone();
        reoffered.sort();
        reoffered.truncate(10);
        format!(
            "{} leases ACKed before the cut, {} renewed after it, {} lost (first: {lost:?}); \
             {} new clients got {} offers, {} of them ACKed addresses (first: {reoffered:?}); \
             restarted daemon restored {:?}; journal before the cut {}\nperfdhcp:\n{}",
            self.acked.len(),
            self.kept,
            self.lost.len(),
            self.new_clients,
            self.new_offers,
            self.reoffered.len(),
            self.restored,
            self.journal_before,
            self.perfdhcp
        )
    }
}

/// perfdhcp (a relay at 198.18.0.2) runs DORA against xdhcpd whose
/// journal lives on a loop-mounted XFS; mid-run the file system is shut
/// down without a log flush and the daemon is killed. After a remount the
/// daemon starts again on the same journal, and every lease ACKed in the
/// client-side capture is asked for: a RENEWING REQUEST from its client
/// (ACK of the same address: kept), then DISCOVERs from new clients, until
/// their offers pass the highest ACKed address (none of the ACKed
/// addresses may be among them).
fn power_cut(name: &str, fixture_name: &str) -> CutOutcome {
    // Declared first, dropped last: after the daemon that writes on it.
    let mut xfs = Xfs::create().unwrap_or_else(|e| panic!("XFS on a loop device: {e:#}"));
    let jdir = xfs.mount_point().join("journal");
    std::fs::create_dir(&jdir).expect("journal dir");
    let lab = lab(name, true);
    let cfg = journal_config(fixture_name, &lab, &jdir);
    let daemon = start(&lab, &cfg);
    let cap = Capture::start(&lab, true, &lab.cli_if, DHCP_FILTER).expect("capture");
    let perf = Perfdhcp::start(&lab, 1500, 30);
    std::thread::sleep(Duration::from_secs(3));

    // The power cut: the disk stops taking writes, the process dies.
    xfs.shutdown().expect("xfs shutdown");
    let pid = daemon.pid().expect("daemon pid");
    // SAFETY: kill(2) has no memory-safety preconditions; the daemon is our
    // child and not yet reaped.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc_state(pid).is_some_and(|s| s != 'Z') {
        assert!(Instant::now() < deadline, "xdhcpd survived SIGKILL");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the last replies that left before the kill reach the capture.
    std::thread::sleep(Duration::from_millis(300));
    let perfdhcp = perf.stop();
    let frames = cap.stop().expect("capture");
    let journal_before = daemon
        .stats()
        .map(|s| s["journal"].clone())
        .unwrap_or_default();
    let log_before = daemon.log();
    drop(daemon);

    let seen = capture::dhcp_frames(&frames);
    let mut acked: HashMap<[u8; 6], Ipv4Addr> = HashMap::new();
    let mut client_ids: HashMap<[u8; 6], Vec<u8>> = HashMap::new();
    let mut owner: HashMap<Ipv4Addr, [u8; 6]> = HashMap::new();
    for s in &seen {
        if s.op == 1
            && s.msg_type == Some(DHCPREQUEST)
            && let Some(id) = capture::find_option(options(s), 61)
        {
            client_ids.insert(s.chaddr, id.to_vec());
        }
        if s.op != 2 || s.msg_type != Some(DHCPACK) {
            continue;
        }
        assert!(in_pool(s.yiaddr), "ACK outside the pool: {s:?}");
        if let Some(prev) = owner.insert(s.yiaddr, s.chaddr) {
            assert_eq!(
                prev,
                s.chaddr,
                "{} ACKed to {} and to {} before the cut",
                s.yiaddr,
                format_mac(&prev),
                format_mac(&s.chaddr)
            );
        }
        if let Some(prev) = acked.insert(s.chaddr, s.yiaddr) {
            assert_eq!(
                prev,
                s.yiaddr,
                "{} ACKed two addresses",
                format_mac(&s.chaddr)
            );
        }
    }
    assert!(
        acked.len() >= 200,
        "only {} leases ACKed before the cut: too few to say anything\nperfdhcp:\n{perfdhcp}\nxdhcpd:\n{log_before}",
        acked.len()
    );

    xfs.remount().expect("remounting after the cut");
    let daemon = start(&lab, &cfg);
    let restored = restored_count(&daemon.log());
    let relay = Relay::open(&lab, RELAY, SERVER).expect("relay socket");

    let clients: Vec<([u8; 6], Ipv4Addr)> = acked.iter().map(|(m, a)| (*m, *a)).collect();
    let renewals: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, (mac, addr))| {
            let id = client_ids.get(mac).map(Vec::as_slice);
            relay.renew(0x5200_0000 + i as u32, *mac, *addr, id)
        })
        .collect();
    let answers = relay.exchange(&renewals).expect("renewals");
    let mut kept = 0;
    let mut lost = Vec::new();
    for (req, (mac, addr)) in renewals.iter().zip(&clients) {
        match answers.get(&req.xid()) {
            Some(r) if msg_type(r) == Some(MessageType::Ack) && r.yiaddr() == *addr => kept += 1,
            Some(r) => lost.push((*mac, *addr, format!("{:?} of {}", msg_type(r), r.yiaddr()))),
            None => lost.push((*mac, *addr, "no reply".into())),
        }
    }

    // Lowest free first: an ACKed address the server forgot is among the
    // first ones handed to new clients, before any address above the
    // highest ACKed one.
    let highest = acked.values().copied().max().expect("an ACK");
    let span = (u32::from(highest) - u32::from(POOL_FIRST) + 1) as usize;
    let new_clients = span.saturating_sub(kept) + 64;
    let discovers: Vec<_> = (0..new_clients)
        .map(|i| relay.discover(0x5300_0000 + i as u32, client_mac(0x99, i as u32)))
        .collect();
    let offers = relay
        .exchange(&discovers)
        .expect("DISCOVERs of new clients");
    let offered: Vec<Ipv4Addr> = offers
        .values()
        .filter(|r| msg_type(r) == Some(MessageType::Offer))
        .map(|r| r.yiaddr())
        .collect();
    let distinct: HashSet<Ipv4Addr> = offered.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        offered.len(),
        "one address offered to two new clients"
    );
    let acked_addrs: HashSet<Ipv4Addr> = acked.values().copied().collect();
    let reoffered: Vec<Ipv4Addr> = offered
        .iter()
        .copied()
        .filter(|a| acked_addrs.contains(a))
        .collect();
    let new_offers = offered.len();
    let stats = daemon.stop().expect("the restarted xdhcpd stops cleanly");
    assert!(
        offered.iter().any(|&a| a > highest),
        "no offer above the highest ACKed address {highest}: the new clients did not \
         cover the ACKed range ({new_offers} offers to {new_clients} clients); stats {stats}"
    );
    CutOutcome {
        acked,
        kept,
        lost,
        reoffered,
        new_clients,
        new_offers,
        journal_before,
        restored,
        perfdhcp,
    }
}

/// Durable mode: no ACKed lease is lost to a power cut, and none of their
/// addresses goes to anybody else afterwards.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn durable_leases_survive_power_cut() {
    let out = power_cut("xdtj1", "lab-journal-durable.toml");
    let ctx = out.summary();
    eprintln!("durable: {ctx}");
    assert!(out.lost.is_empty(), "leases lost: {ctx}");
    assert_eq!(out.kept, out.acked.len(), "{ctx}");
    assert!(
        out.reoffered.is_empty(),
        "ACKed addresses re-offered: {ctx}"
    );
    assert!(
        counter(&out.journal_before, "/fsyncs") > 0,
        "durable mode never synced: {ctx}"
    );
}

/// Fast mode with a sync delay longer than the run: the same cut loses
/// ACKed leases and hands their addresses to new clients. This is the
/// proof that the power-cut test sees a journal that does not sync.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn fast_mode_without_sync_loses_leases_in_power_cut() {
    let out = power_cut("xdtj2", "lab-journal-fast.toml");
    let ctx = out.summary();
    eprintln!("fast: {ctx}");
    assert!(!out.lost.is_empty(), "no lease lost without a sync: {ctx}");
    assert!(
        !out.reoffered.is_empty(),
        "lost leases' addresses were not offered again: {ctx}"
    );
}

/// dhclient gets a lease; xdhcpd stops (SIGTERM) and starts again on the
/// same journal; dhclient, started again with its lease file, asks for its
/// address straight away (INIT-REBOOT) and gets it ACKed without a
/// DISCOVER. A server that forgot the lease would stay silent (it is not
/// authoritative) and dhclient would fall back to DISCOVER.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn dhclient_lease_survives_restart() {
    let jdir = TempDir::new("journal");
    let lab = lab("xdtj3", false);
    let cfg = journal_config("lab-journal-durable.toml", &lab, &jdir.0);
    let daemon = start(&lab, &cfg);
    let cap = Capture::start(&lab, true, &lab.cli_if, DHCP_FILTER).expect("capture");
    let home = DhclientHome::new().expect("dhclient home");

    let log1 = home
        .lease(&lab, &lab.cli_if)
        .unwrap_or_else(|e| panic!("{e:#}\n--- xdhcpd log ---\n{}", daemon.log()));
    let addrs = lab.ipv4_addrs(true, &lab.cli_if).expect("addresses");
    let addr = *addrs
        .iter()
        .find(|a| in_pool(**a))
        .unwrap_or_else(|| panic!("no pool address on the client ({addrs:?}):\n{log1}"));
    // While the daemon runs, `xdhcpd leases` finds the lease by address in
    // the journal, with the client's hardware address.
    let cfg_file = jdir.0.with_extension("toml");
    std::fs::write(&cfg_file, &cfg).expect("config copy");
    let rows = xdhcpd_leases(&cfg_file, &["--addr", &addr.to_string()]);
    let _ = std::fs::remove_file(&cfg_file);
    let mac = output_within(
        lab.cli("cat")
            .arg(format!("/sys/class/net/{}/address", lab.cli_if)),
        Duration::from_secs(5),
    )
    .expect("client MAC");
    let mac = String::from_utf8_lossy(&mac.stdout).trim().to_string();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["address"], addr.to_string());
    assert_eq!(rows[0]["state"], "bound");
    assert_eq!(rows[0]["hwaddr"], mac, "{rows:?}");

    // SIGTERM: dhclient goes without a RELEASE (checked on the wire below).
    home.kill(libc::SIGTERM);
    let stats1 = daemon.stop().expect("xdhcpd stops cleanly");
    assert!(
        counter(&stats1, "/journal/records") >= 1,
        "nothing journaled: {stats1}"
    );

    let restart_ns = unix_ns();
    let daemon = start(&lab, &cfg);
    let restored = restored_count(&daemon.log());
    let log2 = home
        .lease(&lab, &lab.cli_if)
        .unwrap_or_else(|e| panic!("{e:#}\n--- xdhcpd log ---\n{}", daemon.log()));
    let addrs2 = lab.ipv4_addrs(true, &lab.cli_if).expect("addresses");
    home.kill(libc::SIGTERM);
    let stats2 = daemon.stop().expect("the restarted xdhcpd stops cleanly");
    let frames = cap.stop().expect("capture");
    let seen = capture::dhcp_frames(&frames);

    let ctx = format!(
        "lease {addr}; restored {restored:?}\nfirst dhclient:\n{log1}\nsecond dhclient:\n{log2}\n\
         stats after the restart {stats2}"
    );
    let from_client = |after: bool, t: u8| -> Vec<&DhcpSeen> {
        seen.iter()
            .filter(|s| s.op == 1 && s.msg_type == Some(t) && (s.ts_ns >= restart_ns) == after)
            .collect()
    };
    assert!(
        from_client(false, DHCPRELEASE).is_empty(),
        "dhclient released its lease before the restart: {ctx}"
    );
    assert!(
        from_client(true, DHCPDISCOVER).is_empty(),
        "dhclient needed a DISCOVER after the restart: {ctx}"
    );
    let reboots = from_client(true, DHCPREQUEST);
    assert!(!reboots.is_empty(), "no REQUEST after the restart: {ctx}");
    for r in &reboots {
        let asked = capture::find_option(options(r), 50)
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(Ipv4Addr::from);
        assert!(
            asked == Some(addr) || r.ciaddr == addr,
            "REQUEST for something else: {r:?}; {ctx}"
        );
    }
    let after: Vec<&DhcpSeen> = seen
        .iter()
        .filter(|s| s.op == 2 && s.ts_ns >= restart_ns)
        .collect();
    assert!(
        after.iter().all(|s| s.msg_type != Some(DHCPNAK)),
        "NAK after the restart: {ctx}"
    );
    assert!(
        after
            .iter()
            .any(|s| s.msg_type == Some(DHCPACK) && s.yiaddr == addr),
        "no ACK of {addr} after the restart: {ctx}"
    );
    assert!(addrs2.contains(&addr), "client has {addrs2:?}: {ctx}");
    assert_eq!(counter(&stats2, "/total/discover"), 0, "{ctx}");
    assert!(restored.is_some_and(|n| n >= 1), "{ctx}");
}

/// 100 clients, 50 addresses: the first 50 get leases, the rest get no
/// offer (counted as `no_address`) while the server keeps serving; once 10
/// clients release, waiting clients are offered exactly those addresses.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn exhausted_pool_sheds_then_reuses_released() {
    const POOL: u32 = 50;
    const CLIENTS: u32 = 100;
    let pool_last = Ipv4Addr::from(u32::from(POOL_FIRST) + POOL - 1);
    let jdir = TempDir::new("journal");
    let lab = lab("xdtj4", true);
    let cfg = journal_config("lab-journal-small-pool.toml", &lab, &jdir.0);
    let daemon = start(&lab, &cfg);
    let relay = Relay::open(&lab, RELAY, SERVER).expect("relay socket");
    let mac = |i: u32| client_mac(0x50, i);
    let mut xid = 0x5400_0000u32;
    let mut next_xid = || {
        xid += 1;
        xid
    };

    // Everybody at once: exactly POOL offers, of distinct pool addresses.
    let discovers: Vec<_> = (0..CLIENTS)
        .map(|i| relay.discover(next_xid(), mac(i)))
        .collect();
    let replies = relay.exchange(&discovers).expect("DISCOVERs");
    let mut offered: HashMap<u32, Ipv4Addr> = HashMap::new();
    for (i, d) in (0..CLIENTS).zip(&discovers) {
        if let Some(r) = replies.get(&d.xid()) {
            assert_eq!(msg_type(r), Some(MessageType::Offer), "{r:?}");
            offered.insert(i, r.yiaddr());
        }
    }
    let addrs: HashSet<Ipv4Addr> = offered.values().copied().collect();
    assert_eq!(offered.len() as u32, POOL, "offers to {CLIENTS} clients");
    assert_eq!(addrs.len() as u32, POOL, "distinct addresses offered");
    assert!(addrs.iter().all(|a| (POOL_FIRST..=pool_last).contains(a)));

    let requests: Vec<_> = offered
        .iter()
        .map(|(&i, &a)| (i, relay.select(next_xid(), mac(i), a)))
        .collect();
    let msgs: Vec<_> = requests.iter().map(|(_, m)| m.clone()).collect();
    let acks = relay.exchange(&msgs).expect("REQUESTs");
    let mut bound: HashMap<u32, Ipv4Addr> = HashMap::new();
    for (i, m) in &requests {
        let r = acks
            .get(&m.xid())
            .unwrap_or_else(|| panic!("no ACK for client {i}"));
        assert_eq!(msg_type(r), Some(MessageType::Ack), "{r:?}");
        assert_eq!(r.yiaddr(), offered[i]);
        bound.insert(*i, r.yiaddr());
    }
    let waiting: Vec<u32> = (0..CLIENTS).filter(|i| !bound.contains_key(i)).collect();
    let full = daemon.fresh_stats().expect("stats");
    assert!(
        counter(&full, "/total/no_address") >= u64::from(CLIENTS - POOL),
        "{full}"
    );

    // Full: the waiting clients ask again and get nothing, each try counted.
    let again: Vec<_> = waiting
        .iter()
        .map(|&i| relay.discover(next_xid(), mac(i)))
        .collect();
    let replies = relay.exchange(&again).expect("DISCOVERs to a full pool");
    assert!(replies.is_empty(), "offers from a full pool: {replies:?}");
    let shed = daemon.fresh_stats().expect("stats");
    assert!(
        counter(&shed, "/total/no_address")
            >= counter(&full, "/total/no_address") + waiting.len() as u64,
        "before {full}\nafter {shed}"
    );
    // Still serving: a bound client renews.
    let (&i0, &a0) = bound.iter().next().expect("a bound client");
    let renew = relay.renew(next_xid(), mac(i0), a0, None);
    let r = relay
        .exchange(std::slice::from_ref(&renew))
        .expect("renewal");
    let r = r
        .get(&renew.xid())
        .expect("no answer to a renewal of a full pool");
    assert_eq!((msg_type(r), r.yiaddr()), (Some(MessageType::Ack), a0));

    // Ten clients release; ten waiting clients get exactly those addresses.
    let leavers: Vec<(u32, Ipv4Addr)> = bound.iter().take(10).map(|(&i, &a)| (i, a)).collect();
    for &(i, a) in &leavers {
        relay
            .send(&relay.release(next_xid(), mac(i), a))
            .expect("RELEASE");
    }
    stats_when(&daemon, Duration::from_secs(5), |s| {
        counter(s, "/total/release") >= leavers.len() as u64
    })
    .expect("stats");
    let comers: Vec<u32> = waiting.iter().copied().take(leavers.len()).collect();
    let discovers: Vec<_> = comers
        .iter()
        .map(|&i| relay.discover(next_xid(), mac(i)))
        .collect();
    let replies = relay
        .exchange(&discovers)
        .expect("DISCOVERs after releases");
    let reoffered: HashSet<Ipv4Addr> = replies
        .values()
        .filter(|r| msg_type(r) == Some(MessageType::Offer))
        .map(|r| r.yiaddr())
        .collect();
    let released: HashSet<Ipv4Addr> = leavers.iter().map(|&(_, a)| a).collect();
    assert_eq!(reoffered, released, "offers after the releases");
    let requests: Vec<_> = discovers
        .iter()
        .zip(&comers)
        .map(|(d, &i)| relay.select(next_xid(), mac(i), replies[&d.xid()].yiaddr()))
        .collect();
    let acks = relay.exchange(&requests).expect("REQUESTs after releases");
    for m in &requests {
        let r = acks.get(&m.xid()).expect("ACK for a released address");
        assert_eq!(msg_type(r), Some(MessageType::Ack), "{r:?}");
    }
    // Full again.
    let last = waiting[leavers.len()];
    let d = relay.discover(next_xid(), mac(last));
    let r = relay.exchange(std::slice::from_ref(&d)).expect("DISCOVER");
    assert!(r.is_empty(), "offer from a full pool: {r:?}");

    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    assert_eq!(counter(&stats, "/total/malformed"), 0, "{stats}");
    assert_eq!(stats["xdp_mode"], "driver", "{stats}");
    assert_eq!(stats["bind"], "copy", "{stats}");
}
