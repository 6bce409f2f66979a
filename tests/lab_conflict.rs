//! Privileged lab test of the conflict check before OFFER
//! (`conflict_check = "icmp"`): a host on the client side uses the
//! lowest pool address by hand and answers ping. With the check no client
//! is offered that address and the daemon counts the conflict; without
//! it the first client gets it, which is what the check is for. Both runs
//! are asserted, so the test fails if the check does nothing. Labs are
//! named `xdtcf…`; run them with `cargo xtask test` (as root).
mod common;

use common::*;
use std::net::Ipv4Addr;
use xtask::capture::{self, Capture, DHCPOFFER};
use xtask::daemon::Daemon;
use xtask::lab::Lab;

/// The lowest pool address, which the static host takes.
const SQUATTED: Ipv4Addr = POOL_FIRST;
const NEXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);

/// The lab with the static host: the lowest pool address on the client's
/// veth end, where the kernel answers ARP and ping for it.
fn squatted_lab(name: &str) -> Lab {
    let lab = lab(name, false);
    let out = lab
        .cli("ip")
        .args(["addr", "add", &format!("{SQUATTED}/15"), "dev", &lab.cli_if])
        .output()
        .expect("ip addr add");
    assert!(out.status.success(), "ip addr add: {}", text(&out));
    lab
}

/// lab-xdp.toml, with the check on or off.
fn daemon(lab: &Lab, check: bool) -> Daemon {
    daemon_with(lab, "lab-xdp.toml", check)
}

fn daemon_with(lab: &Lab, fixture: &str, check: bool) -> Daemon {
    let mut cfg = config(fixture, lab);
    if check {
        cfg = cfg.replace(
            "lease_time = 7200",
            "lease_time = 7200\nconflict_check = \"icmp\"",
        );
        assert!(cfg.contains("conflict_check"), "the fixture changed");
    }
    Daemon::start(lab, &bin(), &cfg).expect("xdhcpd starts")
}

/// Two scapy clients run DORA one after the other; returns the addresses
/// offered on the wire (every OFFER, retransmissions included), the
/// addresses ACKed and the final stats.
fn two_clients(lab: &Lab, d: Daemon) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>, serde_json::Value) {
    let cap =
        Capture::start(lab, true, &lab.cli_if, "udp port 67 or udp port 68").expect("capture");
    let mut acked = Vec::new();
    for mac in ["02:00:5e:10:00:01", "02:00:5e:10:00:02"] {
        // The scapy client retransmits its DISCOVER every second, as a
        // real one does: after a conflict, the retransmission is
        // offered the next address.
        let (_, offer, ack) = scapy_dora(lab, mac, None)
            .unwrap_or_else(|e| panic!("{e:#}\n--- xdhcpd log ---\n{}", d.log()));
        assert_eq!(offer.kind, "offer");
        assert_eq!(ack.kind, "ack", "{ack:?}");
        acked.push(ack.yiaddr);
    }
    d.fresh_stats().expect("stats");
    let stats = d.stop().expect("xdhcpd stops cleanly");
    let frames = cap.stop().expect("capture");
    let offered = capture::dhcp_frames(&frames)
        .iter()
        .filter(|s| s.op == 2 && s.msg_type == Some(DHCPOFFER))
        .map(|s| s.yiaddr)
        .collect();
    (offered, acked, stats)
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn a_pool_address_in_use_is_never_offered_with_conflict_check() {
    let lab = squatted_lab("xdtcf1");
    let (offered, acked, stats) = two_clients(&lab, daemon(&lab, true));
    assert_eq!(stats["io"], "xdp", "{stats}");
    checked_run(offered, acked, stats);
}

/// The same over AF_PACKET, whose worker parks OFFERs in a lot of its own.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn a_pool_address_in_use_is_never_offered_over_af_packet_either() {
    let lab = squatted_lab("xdtcf3");
    let (offered, acked, stats) = two_clients(&lab, daemon_with(&lab, "lab-packet.toml", true));
    assert_eq!(stats["io"], "packet", "{stats}");
    checked_run(offered, acked, stats);
}

/// What a run with the check must show.
fn checked_run(offered: Vec<Ipv4Addr>, acked: Vec<Ipv4Addr>, stats: serde_json::Value) {
    let ctx = format!("offered {offered:?}, ACKed {acked:?}; stats {stats}");
    assert!(
        !offered.contains(&SQUATTED),
        "OFFER of the address in use: {ctx}"
    );
    assert!(!acked.contains(&SQUATTED), "{ctx}");
    assert_eq!(acked, [NEXT, Ipv4Addr::new(198, 18, 0, 12)], "{ctx}");
    assert_eq!(counter(&stats, "/total/conflict_found"), 1, "{ctx}");
    // .10 (answered), then .11 and .12 (free); a retransmission that
    // comes while a probe is out is probed again.
    assert!(counter(&stats, "/total/conflict_probed") >= 3, "{ctx}");
    assert_eq!(counter(&stats, "/total/conflict_queue_full"), 0, "{ctx}");
    assert_eq!(counter(&stats, "/probe/answered"), 1, "{ctx}");
    assert_eq!(counter(&stats, "/probe/send_failed"), 0, "{ctx}");
    // Every OFFER written left but the one whose address answered.
    assert_eq!(counter(&stats, "/total/tx_dropped"), 0, "{ctx}");
    assert_eq!(
        counter(&stats, "/total/tx"),
        counter(&stats, "/total/offer") + counter(&stats, "/total/ack") - 1,
        "{ctx}"
    );
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn without_conflict_check_the_first_client_gets_the_address_in_use() {
    let lab = squatted_lab("xdtcf2");
    let (offered, acked, stats) = two_clients(&lab, daemon(&lab, false));
    let ctx = format!("offered {offered:?}, ACKed {acked:?}; stats {stats}");
    // What the check prevents: the address in use goes to a client.
    assert_eq!(acked, [SQUATTED, NEXT], "{ctx}");
    assert!(offered.contains(&SQUATTED), "{ctx}");
    for c in ["conflict_found", "conflict_probed", "conflict_skipped"] {
        assert_eq!(counter(&stats, &format!("/total/{c}")), 0, "{c}: {ctx}");
    }
    assert!(
        stats["probe"].is_null(),
        "no probe service without the check: {ctx}"
    );
}
