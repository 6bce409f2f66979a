//! Privileged end-to-end tests of what a hostile subscriber can forge on
//! the access link: option 82 with giaddr 0, crafted with scapy in the
//! client namespace (tests/fixtures/dhcp_lab.py), against xdhcpd on the
//! XDP path. Untrusted, it gets neither another subscriber's circuit-id
//! reservation nor the relay-only subnet its link selection (82.5) names;
//! on a link marked `trust_agent_info` (a snooping switch inserts option
//! 82) both are honoured.
//!
//! Each test builds its own lab (`xdt…`), torn down by Drop also when it
//! fails. Run with `cargo xtask test` (as root).
mod common;

use anyhow::{Context, ensure};
use common::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use xtask::daemon::Daemon;
use xtask::lab::Lab;

const RESERVED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 200);
const RELAY_NET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 0);

/// The lab's access link (the server's 198.18.0.1/15 is in it) with a
/// circuit-id reservation of another subscriber, and a subnet reached
/// through relays only.
fn config(lab: &Lab, trust: bool) -> String {
    format!(
        r#"
interface = "{iface}"
io = "xdp"
xdp_mode = "driver"
bind = "copy"
server_id = "198.18.0.1"

[[subnet]]
prefix = "198.18.0.0/15"
pools = ["198.18.0.10-198.18.0.100"]
routers = ["198.18.0.1"]
trust_agent_info = {trust}
[[subnet.reservation]]
circuit_id = "other-subscriber"
address = "{RESERVED}"

[[subnet]]
prefix = "203.0.113.0/24"
pools = ["203.0.113.10-203.0.113.20"]
routers = ["203.0.113.1"]
"#,
        iface = lab.srv_if
    )
}

/// Option 82 payloads: circuit-id "other-subscriber"; link selection
/// (82.5) naming 203.0.113.1.
fn circuit_id_hex() -> String {
    let id = b"other-subscriber";
    let mut v = vec![1, id.len() as u8];
    v.extend_from_slice(id);
    v.iter().map(|b| format!("{b:02x}")).collect()
}
const LINK_SELECTION_HEX: &str = "0504cb007101";

/// A scapy DORA from `mac` with option 82 `agent_hex` in both DISCOVER and
/// REQUEST; the address offered and acknowledged.
fn dora_with_82(lab: &Lab, mac: &str, agent_hex: &str) -> anyhow::Result<(Ipv4Addr, Ipv4Addr)> {
    let out = output_within(
        lab.cli(PYTHON).arg(fixture("dhcp_lab.py")).args([
            "dora",
            &lab.cli_if,
            mac,
            "--agent-hex",
            agent_hex,
        ]),
        Duration::from_secs(30),
    )?;
    ensure!(
        out.status.success(),
        "scapy DORA failed ({}):\n{}",
        out.status,
        text(&out)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("dhcp_lab.py printed {line:?}"))?;
    let addr = |k: &str| -> anyhow::Result<Ipv4Addr> {
        Ok(v[k]["yiaddr"].as_str().context("yiaddr")?.parse()?)
    };
    Ok((addr("offer")?, addr("ack")?))
}

fn start(lab: &Lab, trust: bool) -> Daemon {
    Daemon::start(lab, &bin(), &config(lab, trust))
        .unwrap_or_else(|e| panic!("starting xdhcpd (trust_agent_info = {trust}): {e:#}"))
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn forged_option_82_on_an_untrusted_link_gets_no_reservation_nor_foreign_subnet() {
    let lab = lab("xdth1", false);
    let daemon = start(&lab, false);
    let by_circuit = dora_with_82(&lab, "02:00:00:00:0b:01", &circuit_id_hex());
    let by_link = dora_with_82(&lab, "02:00:00:00:0b:02", LINK_SELECTION_HEX);
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let (offer, ack) = by_circuit.expect("DORA with a forged circuit-id");
    for a in [offer, ack] {
        assert_ne!(a, RESERVED, "another subscriber's reservation");
        assert!(in_pool(a), "{a} outside the access pool");
    }
    let (offer, ack) = by_link.expect("DORA with a forged link selection");
    for a in [offer, ack] {
        assert!(!in_net(a, RELAY_NET, 24), "{a}: the relay-only subnet");
        assert!(in_pool(a), "{a} outside the access pool");
    }
    // DISCOVER and REQUEST of both clients, retransmissions aside.
    assert!(
        counter(&stats, "/total/untrusted_agent_info") >= 4,
        "{stats}"
    );
    assert_eq!(counter(&stats, "/total/untrusted_dropped"), 0, "{stats}");
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn option_82_on_a_trusted_link_is_honoured() {
    let lab = lab("xdth2", false);
    let daemon = start(&lab, true);
    let by_circuit = dora_with_82(&lab, "02:00:00:00:0b:03", &circuit_id_hex());
    let by_link = dora_with_82(&lab, "02:00:00:00:0b:04", LINK_SELECTION_HEX);
    let stats = daemon.stop().expect("xdhcpd stops cleanly");
    let (offer, ack) = by_circuit.expect("DORA with the switch's circuit-id");
    assert_eq!((offer, ack), (RESERVED, RESERVED));
    let (offer, ack) = by_link.expect("DORA with the switch's link selection");
    for a in [offer, ack] {
        assert!(in_net(a, RELAY_NET, 24), "{a}: not the selected subnet");
    }
    assert_eq!(counter(&stats, "/total/untrusted_agent_info"), 0, "{stats}");
}
