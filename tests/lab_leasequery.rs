//! Leasequery (RFC 4388) in the lab: xdhcpd with a durable journal and
//! `[leasequery]` answering the relay address of the client side
//! (198.18.0.2); scapy leases addresses by DORA, then asks as that relay
//! (dhcp_lab.py leasequery) and every field of each answer is checked.
//! Run as root: cargo xtask test (or cargo test --test lab_leasequery --
//! --include-ignored --test-threads=1 with XDHCPD_BIN set).
mod common;

use common::*;
use serde_json::Value;
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use xtask::lab::{Lab, format_mac};

/// The relay address allowed by the fixture's `requesters`.
const RELAY: &str = CLIENT_IP;
/// 198.18.0.1, option 54, in hex.
const SERVER_ID_HEX: &str = "c6120001";
const LEASE_TIME: u64 = 7200;

/// Asks the server as a relay at `giaddr`; counts every query sent.
struct Asker<'a> {
    lab: &'a Lab,
    sent: Cell<u64>,
}

impl Asker<'_> {
    fn ask_from(&self, giaddr: &str, args: &[&str]) -> Value {
        let mut cmd = self.lab.cli(PYTHON);
        cmd.arg(fixture("dhcp_lab.py"))
            .args([
                "leasequery",
                &self.lab.cli_if,
                &format_mac(&self.lab.cli_mac),
                giaddr,
                SERVER_IP,
            ])
            .args(args);
        let out = output_within(&mut cmd, Duration::from_secs(30)).expect("dhcp_lab.py runs");
        assert!(out.status.success(), "leasequery {args:?}: {}", text(&out));
        self.sent.set(self.sent.get() + 1);
        let line = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn ask(&self, args: &[&str]) -> Value {
        self.ask_from(RELAY, args)
    }

    /// Asks until the answer is `kind` (the index follows the journal a
    /// moment after the ACK; a liveness bound, not a timing check).
    fn ask_until(&self, kind: &str, args: &[&str]) -> Value {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let a = self.ask(args);
            if a["answer"] == kind || Instant::now() > until {
                assert_eq!(a["answer"], kind, "{args:?}: {a}");
                return a;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn opt(a: &Value, code: u8) -> Option<&str> {
    a["options"][code.to_string()].as_str()
}

fn u32_opt(a: &Value, code: u8) -> u64 {
    let h = opt(a, code).unwrap_or_else(|| panic!("no option {code}: {a}"));
    u64::from_str_radix(h, 16).unwrap()
}

/// What every answer says, whatever its type: a BOOTREPLY to the relay
/// (its MAC, giaddr, port 67) from the server identifier.
fn to_the_relay(lab: &Lab, a: &Value) {
    assert_eq!(a["op"], 2, "{a}");
    assert_eq!(a["giaddr"], RELAY, "{a}");
    assert_eq!(a["dst_ip"], RELAY, "{a}");
    assert_eq!(a["src_ip"], SERVER_IP, "{a}");
    assert_eq!(a["src_port"], 67, "{a}");
    assert_eq!(a["dst_mac"], format_mac(&lab.cli_mac), "{a}");
    assert_eq!(a["yiaddr"], "0.0.0.0", "{a}");
    assert_eq!(opt(a, 54), Some(SERVER_ID_HEX), "{a}");
}

/// An ACTIVE answer about `addr` held by `mac`: option 51 is what is left
/// of the lease and 91 the time since its last transaction, together the
/// lease's length.
fn active(lab: &Lab, a: &Value, addr: Ipv4Addr, mac: &str) {
    to_the_relay(lab, a);
    assert_eq!(a["answer"], "active", "{a}");
    assert_eq!(a["ciaddr"], addr.to_string(), "{a}");
    assert_eq!((&a["htype"], &a["hlen"]), (&1.into(), &6.into()), "{a}");
    assert_eq!(a["chaddr"], mac, "{a}");
    let (left, since) = (u32_opt(a, 51), u32_opt(a, 91));
    assert!(
        (left + since).abs_diff(LEASE_TIME) <= 2,
        "lease left {left} + since {since} is not the lease time: {a}"
    );
    assert_eq!(opt(a, 92), None, "one address: no associated-ip: {a}");
}

/// Every answer type, by address, MAC and client-id, and a requester
/// that is not allowed.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn leasequery_by_address_mac_and_client_id() {
    let lab = lab("xdt85", true);
    let dir = TempDir::new("leasequery");
    let cfg = journal_config("lab-leasequery.toml", &lab, &dir.0.join("journal"));
    let d = xtask::daemon::Daemon::start(&lab, &bin(), &cfg)
        .unwrap_or_else(|e| panic!("starting xdhcpd: {e:#}"));
    let q = Asker {
        lab: &lab,
        sent: Cell::new(0),
    };

    // A: keyed by its MAC, with option 82 (circuit-id "port-7").
    let (mac_a, agent) = ("02:00:00:00:85:01", "0106706f72742d37");
    let (_, ack) = scapy_dora_with(&lab, mac_a, &["--agent-hex", agent]).expect("DORA A");
    let a: Ipv4Addr = ack["yiaddr"].as_str().unwrap().parse().unwrap();
    assert_eq!(a, POOL_FIRST);
    // B: keyed by its client identifier.
    let (mac_b, cid) = ("02:00:00:00:85:02", "ff78647438355f62");
    let (_, ack) = scapy_dora_with(&lab, mac_b, &["--client-id-hex", cid]).expect("DORA B");
    let b: Ipv4Addr = ack["yiaddr"].as_str().unwrap().parse().unwrap();
    // C: leased, then released.
    let mac_c = "02:00:00:00:85:03";
    let (_, ack) = scapy_dora_with(&lab, mac_c, &[]).expect("DORA C");
    let c: Ipv4Addr = ack["yiaddr"].as_str().unwrap().parse().unwrap();

    // By address: the lease's fields; option 82 only when asked for.
    let by_addr = q.ask_until("active", &["--addr", &a.to_string(), "--want-agent-info"]);
    println!("DHCPLEASEACTIVE by address: {by_addr}");
    active(&lab, &by_addr, a, mac_a);
    assert_eq!(opt(&by_addr, 82), Some(agent), "{by_addr}");
    assert_eq!(opt(&by_addr, 61), None, "keyed by MAC: {by_addr}");
    let plain = q.ask(&["--addr", &a.to_string()]);
    active(&lab, &plain, a, mac_a);
    assert_eq!(opt(&plain, 82), None, "option 82 not asked for: {plain}");
    // By MAC.
    let by_mac = q.ask(&["--chaddr", mac_a]);
    active(&lab, &by_mac, a, mac_a);
    // By client-id: the client's identifier comes back in option 61.
    let by_cid = q.ask_until("active", &["--client-id-hex", cid]);
    active(&lab, &by_cid, b, mac_b);
    assert_eq!(opt(&by_cid, 61), Some(cid), "{by_cid}");
    let b_by_addr = q.ask(&["--addr", &b.to_string()]);
    active(&lab, &b_by_addr, b, mac_b);
    assert_eq!(opt(&b_by_addr, 61), Some(cid), "{b_by_addr}");

    // Released: unassigned, by address and by MAC.
    q.ask_until("active", &["--addr", &c.to_string()]);
    scapy_release(&lab, mac_c, c).expect("RELEASE C");
    let rel = q.ask_until("unassigned", &["--addr", &c.to_string()]);
    println!("DHCPLEASEUNASSIGNED (released): {rel}");
    to_the_relay(&lab, &rel);
    assert_eq!(rel["ciaddr"], c.to_string(), "{rel}");
    for code in [51, 61, 82, 91, 92] {
        assert_eq!(opt(&rel, code), None, "option {code} in {rel}");
    }
    let rel_mac = q.ask(&["--chaddr", mac_c]);
    to_the_relay(&lab, &rel_mac);
    assert_eq!(rel_mac["answer"], "unassigned", "{rel_mac}");
    assert_eq!(rel_mac["ciaddr"], "0.0.0.0", "{rel_mac}");

    // A pool address nobody was given: unassigned.
    let never = q.ask(&["--addr", "198.18.0.60"]);
    to_the_relay(&lab, &never);
    assert_eq!(
        (&never["answer"], &never["ciaddr"]),
        (&"unassigned".into(), &"198.18.0.60".into()),
        "{never}"
    );
    // Outside every pool (in the subnet, and outside it), an unknown MAC,
    // an unknown client-id: unknown, with nothing but who answers.
    for args in [
        &["--addr", "198.18.0.200"][..],
        &["--addr", "10.99.0.1"],
        &["--chaddr", "02:00:00:00:85:99"],
        &["--client-id-hex", "ff00"],
    ] {
        let u = q.ask(args);
        to_the_relay(&lab, &u);
        assert_eq!(u["answer"], "unknown", "{args:?}: {u}");
        assert_eq!(u["ciaddr"], "0.0.0.0", "{args:?}: {u}");
        let codes: Vec<&String> = u["options"].as_object().unwrap().keys().collect();
        assert_eq!(codes.len(), 2, "53 and 54 only: {u}");
    }

    // Not an allowed requester, and no giaddr: no answer, counted.
    let other = q.ask_from("198.18.0.3", &["--addr", &a.to_string()]);
    assert_eq!(other["answer"], Value::Null, "{other}");
    let none = q.ask_from("0.0.0.0", &["--addr", &a.to_string()]);
    assert_eq!(none["answer"], Value::Null, "{none}");

    let stats = d.stop().expect("xdhcpd stops cleanly");
    assert_eq!(
        counter(&stats, "/total/leasequery"),
        q.sent.get(),
        "{stats}"
    );
    assert_eq!(counter(&stats, "/total/leasequery_refused"), 2, "{stats}");
    assert_eq!(counter(&stats, "/total/leasequery_dropped"), 0, "{stats}");
    // Every allowed query answered (some by the index not yet caught up,
    // while ask_until waited), none unanswerable or unsent.
    let answered: u64 = ["active", "unassigned", "unknown"]
        .iter()
        .map(|k| counter(&stats, &format!("/leasequery/{k}")))
        .sum();
    assert_eq!(answered, q.sent.get() - 2, "{stats}");
    assert_eq!(counter(&stats, "/leasequery/unanswerable"), 0, "{stats}");
    assert_eq!(counter(&stats, "/leasequery/send_failed"), 0, "{stats}");
}

/// Bulk leasequery (RFC 6926) by remote-id returns exactly the bound
/// leases of that remote-id: not another one's, not a released one.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn bulk_leasequery_by_remote_id_returns_exactly_its_active_leases() {
    let lab = lab("xdt86", true);
    let dir = TempDir::new("bulk-leasequery");
    let cfg = journal_config("lab-leasequery.toml", &lab, &dir.0.join("journal")).replace(
        "[leasequery]\n",
        "[leasequery]\nbulk_listen = \"198.18.0.1:67\"\n",
    );
    let d = xtask::daemon::Daemon::start(&lab, &bin(), &cfg)
        .unwrap_or_else(|e| panic!("starting xdhcpd: {e:#}"));
    let q = Asker {
        lab: &lab,
        sent: Cell::new(0),
    };
    // Option 82 of a snooping switch: circuit-id, remote-id "olt-a" or
    // "olt-b" (hex 6f6c742d61 / 6f6c742d62).
    let agent = |port: u8, olt: &str| format!("010270{port:02x}02056f6c742d{olt}");
    let mut a_leases = Vec::new();
    for (i, olt) in ["61", "61", "62", "61"].iter().enumerate() {
        let mac = format!("02:00:00:00:86:0{i}");
        let (_, ack) =
            scapy_dora_with(&lab, &mac, &["--agent-hex", &agent(i as u8, olt)]).expect("DORA");
        let addr: Ipv4Addr = ack["yiaddr"].as_str().unwrap().parse().unwrap();
        if *olt == "61" {
            a_leases.push((addr, mac));
        }
    }
    // The last of olt-a's clients leaves.
    let (gone, gone_mac) = a_leases.pop().unwrap();
    q.ask_until("active", &["--addr", &gone.to_string()]);
    scapy_release(&lab, &gone_mac, gone).expect("RELEASE");
    q.ask_until("unassigned", &["--addr", &gone.to_string()]);

    let out = output_within(
        lab.cli(PYTHON).arg(fixture("dhcp_lab.py")).args([
            "bulk",
            SERVER_IP,
            "--remote-id-hex",
            "6f6c742d61",
            "--want-agent-info",
        ]),
        Duration::from_secs(30),
    )
    .expect("dhcp_lab.py bulk");
    assert!(out.status.success(), "bulk: {}", text(&out));
    let v: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    println!("bulk leasequery by remote-id olt-a: {v}");
    let answers = v["answers"].as_array().unwrap();
    let got: Vec<(String, String)> = answers
        .iter()
        .map(|a| {
            assert_eq!(a["type"], 13, "DHCPLEASEACTIVE: {a}");
            assert_eq!(a["xid_ok"], true, "{a}");
            assert_eq!(opt(a, 54), Some(SERVER_ID_HEX), "{a}");
            assert_eq!(opt(a, 156), Some("02"), "dhcp-state ACTIVE: {a}");
            assert!(opt(a, 82).unwrap().contains("6f6c742d61"), "{a}");
            assert!(opt(a, 152).is_some() && opt(a, 51).is_some(), "{a}");
            (
                a["ciaddr"].as_str().unwrap().to_string(),
                a["chaddr"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = a_leases
        .iter()
        .map(|(a, m)| (a.to_string(), m.clone()))
        .collect();
    assert_eq!(got, want, "exactly olt-a's bound leases: {v}");
    assert_eq!(v["done"]["xid_ok"], true, "{v}");
    assert_eq!(opt(&v["done"], 151), Some("00"), "status Success: {v}");
    d.stop().expect("xdhcpd stops cleanly");
}
