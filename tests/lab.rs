//! Privileged end-to-end tests: xdhcpd in a network-namespace lab against
//! real clients (dhclient, perfdhcp, scapy), watched on the wire with
//! tcpdump and through the daemon's stats file.
//!
//! Every test builds its own lab (named `xdt…`) and pins the I/O path it
//! tests (`io = "xdp"`, `xdp_mode = "driver"`, `bind = "copy"`), so a
//! silent fallback fails it. Labs, daemons, captures and dhclients are
//! torn down by Drop, also when a test fails. Run them with
//! `cargo xtask test` (as root).
mod common;

use common::*;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;
use xtask::capture::{self, Capture, DHCPACK, DHCPOFFER, DhcpSeen};
use xtask::lab::Lab;

const DHCP_FILTER: &str = "udp port 67 or udp port 68";

/// Frames the client end put on the wire towards the server's port 67.
fn sent_to_server<'a>(lab: &Lab, seen: &'a [DhcpSeen]) -> Vec<&'a DhcpSeen> {
    seen.iter()
        .filter(|s| s.src_mac == lab.cli_mac && s.dst_port == 67)
        .collect()
}

fn replies(seen: &[DhcpSeen], msg_type: u8) -> Vec<&DhcpSeen> {
    seen.iter()
        .filter(|s| s.op == 2 && s.msg_type == Some(msg_type))
        .collect()
}

/// dhclient gets a lease through `config`; checks the address, the wire
/// and the counters. Returns the final stats for path-specific checks.
fn dhclient_lease(name: &str, config: &str) -> serde_json::Value {
    let lab = lab(name, false);
    let daemon = start_daemon(&lab, config);
    let cap = Capture::start(&lab, true, &lab.cli_if, DHCP_FILTER).expect("capture");

    let mut dh = Dhclient::lease(&lab, &lab.cli_if).unwrap_or_else(|e| {
        panic!("{e:#}\n--- xdhcpd log ---\n{}", daemon.log());
    });
    let addrs = lab.ipv4_addrs(true, &lab.cli_if).expect("client addresses");
    dh.stop();
    // The client is gone; let the daemon count what it last received.
    daemon.fresh_stats().expect("stats");
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let frames = cap.stop().expect("capture");
    let seen = capture::dhcp_frames(&frames);

    assert!(
        addrs.iter().any(|&a| in_pool(a)),
        "no pool address on {} (has {addrs:?}); dhclient said:\n{}",
        lab.cli_if,
        dh.log
    );
    let offers = replies(&seen, DHCPOFFER);
    let acks = replies(&seen, DHCPACK);
    assert!(
        !offers.is_empty() && !acks.is_empty(),
        "no OFFER/ACK on the wire"
    );
    for a in &acks {
        assert!(in_pool(a.yiaddr), "ACK of {} outside the pool", a.yiaddr);
        assert!(
            addrs.contains(&a.yiaddr),
            "ACKed {} is not configured",
            a.yiaddr
        );
    }
    let to_server = sent_to_server(&lab, &seen).len() as u64;
    assert!(
        to_server >= 2,
        "the client sent {to_server} frames to port 67"
    );
    assert_eq!(counter(&stats, "/total/rx"), to_server, "total.rx: {stats}");
    assert!(counter(&stats, "/total/offer") >= 1, "{stats}");
    assert!(counter(&stats, "/total/ack") >= 1, "{stats}");
    assert_eq!(counter(&stats, "/total/malformed"), 0, "{stats}");
    stats
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn dhclient_gets_lease_over_xdp() {
    let stats = dhclient_lease("xdt1", "lab-xdp.toml");
    assert_eq!(stats["io"], "xdp", "{stats}");
    assert_eq!(stats["xdp_mode"], "driver", "{stats}");
    assert_eq!(stats["bind"], "copy", "{stats}");
    // Every DHCP frame the client sent went through the XDP program into
    // the socket, and nothing else did.
    assert_eq!(
        counter(&stats, "/xdp/redirected"),
        counter(&stats, "/total/rx"),
        "{stats}"
    );
    assert_eq!(counter(&stats, "/xdp/no_socket"), 0, "{stats}");
    assert_eq!(counter(&stats, "/xdp/malformed"), 0, "{stats}");
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn dhclient_gets_lease_over_af_packet() {
    let stats = dhclient_lease("xdt6", "lab-packet.toml");
    assert_eq!(stats["io"], "packet", "{stats}");
    assert!(stats["xdp"].is_null(), "{stats}");
    assert!(stats["xdp_mode"].is_null(), "{stats}");
}

/// perfdhcp runs 20,000 DORAs as a relay (giaddr = its address, replies to
/// its port 67) at a rate well inside the lab's capacity; every one must
/// complete with a distinct lease.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn perfdhcp_20k_dora() {
    const CLIENTS: usize = 20_000;
    let lab = lab("xdt2", true);
    let daemon = start_daemon(&lab, "lab-xdp.toml");
    let cap = Capture::start(&lab, true, &lab.cli_if, DHCP_FILTER).expect("capture");
    // -n stops after 20,000 DISCOVERs; -W keeps perfdhcp answering the
    // last OFFERs for 2 s instead of leaving those exchanges half done.
    // While it waits it may start one or two exchanges more; -R makes
    // those reuse the first clients' MACs (same lease), so there are still
    // exactly 20,000 clients.
    let out = output_within(
        lab.cli("perfdhcp")
            .args(["-4", "-l", &lab.cli_if])
            .args(["-r", "2000", "-R", &CLIENTS.to_string()])
            .args(["-n", &CLIENTS.to_string(), "-p", "30", "-W", "2000000"]),
        Duration::from_secs(60),
    )
    .expect("perfdhcp");
    let report = text(&out);
    std::thread::sleep(Duration::from_millis(300));
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let frames = cap.stop().expect("capture");
    let seen = capture::dhcp_frames(&frames);

    let discovers: Vec<&DhcpSeen> = seen
        .iter()
        .filter(|s| s.op == 1 && s.msg_type == Some(capture::DHCPDISCOVER))
        .collect();
    let requests = seen
        .iter()
        .filter(|s| s.op == 1 && s.msg_type == Some(capture::DHCPREQUEST))
        .count();
    let offers = replies(&seen, DHCPOFFER).len();
    let acks = replies(&seen, DHCPACK);
    let chaddrs: HashSet<[u8; 6]> = acks.iter().map(|a| a.chaddr).collect();
    let yiaddrs: HashSet<Ipv4Addr> = acks.iter().map(|a| a.yiaddr).collect();
    let ctx = format!(
        "{} DISCOVERs, {offers} OFFERs, {requests} REQUESTs, {} ACKs on the wire; stats {stats}\nperfdhcp ({}):\n{report}",
        discovers.len(),
        acks.len(),
        out.status
    );
    assert!(discovers.len() >= CLIENTS, "{ctx}");
    // The server's side, as the client's wire shows it: every DISCOVER
    // got one OFFER and every REQUEST one ACK, each client its own address.
    assert_eq!(
        offers,
        discovers.len(),
        "every DISCOVER gets one OFFER: {ctx}"
    );
    assert_eq!(acks.len(), requests, "every REQUEST gets one ACK: {ctx}");
    assert_eq!(chaddrs.len(), acks.len(), "distinct clients ACKed: {ctx}");
    assert_eq!(yiaddrs.len(), acks.len(), "distinct addresses ACKed: {ctx}");
    // perfdhcp's side: on a loaded CI machine its receiving thread has
    // missed a few OFFERs that were on its wire (14 of 20,000 once, with
    // the server's OFFER count and the capture complete); such an exchange
    // never gets its REQUEST. A loss above 0.1 % is not that any more.
    let lost = discovers.len() - requests;
    assert!(
        lost * 1000 <= discovers.len(),
        "perfdhcp completed too few exchanges ({lost} OFFERs not answered): {ctx}"
    );
    if let Some(a) = acks.iter().find(|a| !in_pool(a.yiaddr)) {
        panic!("ACK of {} outside the pool: {ctx}", a.yiaddr);
    }
    for a in &acks {
        assert_eq!(
            (a.dst_ip, a.dst_port),
            (CLIENT_IP.parse().unwrap(), 67),
            "ACK not sent to the relay: {ctx}"
        );
    }
    // perfdhcp exits 3 when it counted drops, which the bound above has
    // judged; anything else is perfdhcp failing.
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "perfdhcp failed: {ctx}"
    );
    assert_eq!(counter(&stats, "/total/ack"), acks.len() as u64, "{ctx}");
    assert_eq!(counter(&stats, "/total/tx_dropped"), 0, "{ctx}");
    assert_eq!(stats["xdp_mode"], "driver", "{ctx}");
}

/// A client on VLAN 100 is served from the VLAN's subnet, as its server
/// identifier, with tagged replies; an untagged client on the same wire
/// from the main subnet.
///
/// The clients are crafted with scapy on the untagged veth end: this
/// kernel has no 802.1Q devices (CONFIG_VLAN_8021Q is off), so neither a
/// dhclient on `IF.100` nor a server-side `IF.100` can exist. The VLAN's
/// server identifier lives on the server's veth end instead.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn vlan_client_gets_tagged_reply() {
    let lab = lab("xdt3", false);
    lab.srv("ip")
        .args(["addr", "add", "198.51.100.1/24", "dev", &lab.srv_if])
        .status()
        .map(|s| assert!(s.success(), "ip addr add: {s}"))
        .expect("ip addr add");
    let daemon = start_daemon(&lab, "lab-vlan.toml");
    let cap = Capture::start(
        &lab,
        true,
        &lab.cli_if,
        "(udp port 67 or udp port 68) or (vlan and (udp port 67 or udp port 68))",
    )
    .expect("capture");

    let vlan_net = Ipv4Addr::new(198, 51, 100, 0);
    let vlan_srv = Ipv4Addr::new(198, 51, 100, 1);
    let tagged = scapy_dora(&lab, "02:00:00:00:01:00", Some(100));
    let untagged = scapy_dora(&lab, "02:00:00:00:02:00", None);
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let frames = cap.stop().expect("capture");
    let seen = capture::dhcp_frames(&frames);
    let (xid, offer, ack) = tagged.expect("tagged DORA");
    let (uxid, _, uack) = untagged.expect("untagged DORA");

    for r in [&offer, &ack] {
        assert_eq!(r.vlan, Some(100), "{r:?}");
        assert!(in_net(r.yiaddr, vlan_net, 24), "{r:?}");
        assert!(
            (10..=200).contains(&r.yiaddr.octets()[3]),
            "outside the pool: {r:?}"
        );
        assert_eq!(r.server_id, Some(vlan_srv), "{r:?}");
    }
    assert_eq!(offer.yiaddr, ack.yiaddr);
    assert_eq!(uack.vlan, None, "{uack:?}");
    assert!(in_pool(uack.yiaddr), "{uack:?}");

    // On the wire (the capture reads the tag as libpcap sees it).
    for t in [DHCPOFFER, DHCPACK] {
        let on_wire: Vec<&DhcpSeen> = replies(&seen, t)
            .into_iter()
            .filter(|s| s.xid == xid)
            .collect();
        assert!(!on_wire.is_empty(), "no type {t} reply for xid {xid:#x}");
        for s in on_wire {
            assert_eq!(s.vlan, Some(100), "{s:?}");
            assert_eq!(s.inner_vlan, None, "{s:?}");
            assert_eq!(s.src_ip, vlan_srv, "{s:?}");
            assert!(in_net(s.yiaddr, vlan_net, 24), "{s:?}");
        }
        for s in replies(&seen, t).into_iter().filter(|s| s.xid == uxid) {
            assert_eq!(s.vlan, None, "{s:?}");
        }
    }
    assert_eq!(counter(&stats, "/total/no_subnet"), 0, "{stats}");
    assert_eq!(counter(&stats, "/total/ack"), 2, "{stats}");
}

/// With the XDP program attached, everything that is not DHCP for the
/// server still reaches the kernel: ARP, ICMP both ways, a TCP connection.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn non_dhcp_traffic_still_flows() {
    let lab = lab("xdt4", true);
    let daemon = start_daemon(&lab, "lab-xdp.toml");
    let before = daemon.fresh_stats().expect("stats");

    for (cmd, to) in [(lab.cli("ping"), SERVER_IP), (lab.srv("ping"), CLIENT_IP)] {
        let mut cmd = cmd;
        let out = output_within(
            cmd.args(["-c", "3", "-i", "0.2", "-W", "2", to]),
            Duration::from_secs(15),
        )
        .expect("ping");
        assert!(out.status.success(), "ping {to}:\n{}", text(&out));
    }

    let mut server = lab
        .srv(PYTHON)
        .arg(fixture("tcp_echo.py"))
        .args(["serve", SERVER_IP, "5001"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("TCP echo server");
    let mut line = String::new();
    {
        use std::io::BufRead;
        let stdout = server.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("server output");
    }
    assert_eq!(line.trim(), "listening");
    let client = output_within(
        lab.cli(PYTHON)
            .arg(fixture("tcp_echo.py"))
            .args(["connect", SERVER_IP, "5001"]),
        Duration::from_secs(20),
    );
    let served = wait_child(&mut server, Duration::from_secs(5));
    let client = client.expect("TCP client");
    assert!(client.status.success(), "TCP echo:\n{}", text(&client));
    assert!(
        served.is_some_and(|s| s.success()),
        "TCP server: {served:?}"
    );

    let after = daemon.fresh_stats().expect("stats");
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let grew = |p: &str| counter(&after, p) - counter(&before, p);
    // 6 pings, 3-way handshake, data, echo, FIN: well over 12 frames in.
    assert!(grew("/xdp/passed") >= 12, "{before}\n{after}");
    assert_eq!(counter(&stats, "/xdp/redirected"), 0, "{stats}");
    assert_eq!(counter(&stats, "/total/rx"), 0, "{stats}");
}

/// Which counter a kind of broken frame must raise.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rejects {
    /// The XDP program steers it (it checks no more than it needs to
    /// steer) and the worker's wire checks count it: `total.malformed`.
    Worker,
    /// The XDP program cannot even find its UDP header: `xdp.malformed`,
    /// and the frame goes to the kernel, never to a worker.
    Xdp,
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn malformed_frames_are_counted() {
    const N: u64 = 7;
    // dhcp-ebpf steers any UDP/67 datagram to the broadcast address whose
    // IPv4 and UDP headers are in the frame; lengths inside them are the
    // worker's to check.
    let kinds = [
        ("short-bootp", Rejects::Worker),
        ("bad-cookie", Rejects::Worker),
        ("option-overrun", Rejects::Worker),
        ("udp-length", Rejects::Worker),
        ("ip-length", Rejects::Worker),
        ("hlen", Rejects::Worker),
        ("ip-ihl", Rejects::Xdp),
    ];
    let lab = lab("xdt5", false);
    let daemon = start_daemon(&lab, "lab-xdp.toml");
    let mac = xtask::lab::format_mac(&lab.cli_mac);
    let mut last = daemon.fresh_stats().expect("stats");
    for (kind, rejects) in kinds {
        scapy_malformed(&lab, kind, N as u32).expect("sending");
        let (pointer, other) = match rejects {
            Rejects::Worker => ("/total/malformed", "/xdp/malformed"),
            Rejects::Xdp => ("/xdp/malformed", "/total/malformed"),
        };
        let base = counter(&last, pointer);
        let now = stats_when(&daemon, Duration::from_secs(5), |s| {
            counter(s, pointer) >= base + N
        })
        .expect("stats");
        let grew = |p: &str| counter(&now, p) - counter(&last, p);
        let ctx = format!(
            "{kind}: before {last}\nafter {now}\n--- log ---\n{}",
            daemon.log()
        );
        assert_eq!(grew(pointer), N, "{pointer} {ctx}");
        assert_eq!(grew(other), 0, "{other} {ctx}");
        let steered = if rejects == Rejects::Worker { N } else { 0 };
        assert_eq!(grew("/xdp/redirected"), steered, "{ctx}");
        assert_eq!(grew("/total/rx"), steered, "{ctx}");
        assert_eq!(grew("/total/discover"), 0, "{ctx}");
        assert_eq!(grew("/total/offer"), 0, "{ctx}");

        // The server still serves.
        let (_, offer, ack) = scapy_dora(&lab, &mac, None)
            .unwrap_or_else(|e| panic!("DORA after {kind}: {e:#}\n{}", daemon.log()));
        assert_eq!(offer.kind, "offer");
        assert_eq!(ack.kind, "ack");
        assert!(in_pool(ack.yiaddr), "{ack:?}");
        last = stats_when(&daemon, Duration::from_secs(5), |s| {
            counter(s, "/total/ack") > counter(&now, "/total/ack")
        })
        .expect("stats");
        assert_eq!(
            counter(&last, "/total/malformed"),
            counter(&now, "/total/malformed"),
            "a valid DORA counted as malformed after {kind}"
        );
    }
    daemon.stop().expect("xdhcpd stops cleanly");
}

/// The CPUs in a `Cpus_allowed_list` line of /proc (`0-2,5`).
fn cpu_list(s: &str) -> Vec<usize> {
    s.trim()
        .split(',')
        .filter(|p| !p.is_empty())
        .flat_map(|p| match p.split_once('-') {
            Some((a, b)) => a.parse::<usize>().unwrap()..=b.parse().unwrap(),
            None => {
                let c: usize = p.parse().unwrap();
                c..=c
            }
        })
        .collect()
}

/// Each thread of process `pid`: its name and the CPUs it may run on.
fn threads_and_cpus(pid: u32) -> Vec<(String, Vec<usize>)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc/PID/task");
    tasks
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            let cpus = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(cpu_list)?;
            Some((comm.trim().to_string(), cpus))
        })
        .collect()
}

/// The worker pinned to its core (`cores`), and every other thread of the
/// daemon (here the journal writer, the expiry sweeper, the latency and
/// main threads) on the cores the worker leaves free; on a one-core
/// machine they share it.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn side_threads_stay_off_the_workers_core() {
    // The daemon inherits this process's CPUs through `ip netns exec`.
    let process = threads_and_cpus(std::process::id())
        .into_iter()
        .map(|(_, c)| c)
        .max_by_key(Vec::len)
        .expect("this process's CPUs");
    let worker = *process.last().unwrap();
    let free: Vec<usize> = process.iter().copied().filter(|&c| c != worker).collect();
    let expected = if free.is_empty() {
        process.clone()
    } else {
        free
    };
    let lab = lab("xdtaf1", false);
    let journal = TempDir::new("side-cores");
    let cfg = config("lab-xdp.toml", &lab).replacen(
        "poll = ",
        &format!("cores = [{worker}]\npoll = "),
        1,
    ) + &format!(
        "\n[journal]\ndir = \"{}\"\nmode = \"fast\"\n",
        journal.0.display()
    );
    let daemon = xtask::daemon::Daemon::start(&lab, &bin(), &cfg).expect("xdhcpd");
    let pid = daemon.pid().expect("daemon pid");
    let threads = threads_and_cpus(pid);
    let named = |name: &str| -> Vec<&(String, Vec<usize>)> {
        threads
            .iter()
            .filter(|(n, _)| n.starts_with(name))
            .collect()
    };
    let workers = named("xsk-q");
    assert_eq!(workers.len(), 1, "{threads:?}");
    assert_eq!(workers[0].1, [worker], "the worker's core: {threads:?}");
    assert_eq!(named("xdhcp-journal").len(), 1, "{threads:?}");
    for (name, cpus) in threads.iter().filter(|(n, _)| !n.starts_with("xsk-q")) {
        assert_eq!(
            cpus, &expected,
            "{name} (process: {process:?}): {threads:?}"
        );
    }
    drop(daemon);
}
