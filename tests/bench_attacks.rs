//! What each of xdhcpgen's attacks gets, and what the legitimate clients
//! beside it get, against xdhcpd with limits on every line
//! (tests/fixtures/lab-attacks.toml: `leases_per_circuit_id = 4`,
//! `leases_per_mac = 1`, `requests_per_mac = 20` with a burst of 40, the
//! DECLINE settings at their defaults, a circuit-id reservation and a
//! relay-only second subnet). One run per row, each a fresh lab and
//! daemon: the fleet alone, then beside `starve` through one circuit-id,
//! `spoof82` (giaddr 0, the reservation's circuit-id and link selection
//! naming the other subnet), `decline` of ACKed and of offered addresses.
//! A benchmark that prints a table, not a pass/fail test: it fails only
//! when a tool does not run. Not in `cargo xtask test`; run it on its own,
//! as root, after `cargo build --release -p dhcp-user -p xdhcpgen`:
//!
//! ```text
//! XDHCPD_BIN=$PWD/target/release/xdhcpd cargo test -p xdhcpd-suite \
//!     --test bench_attacks -- --include-ignored --nocapture
//! ```
//!
//! Knobs (environment): `BENCH_CLIENTS` (the legitimate fleet, default
//! 1000), `BENCH_STARVE_SECONDS` (how long the flood runs, default 10).
mod common;

use common::*;
use serde_json::Value;
use std::net::Ipv4Addr;
use std::time::Duration;
use xtask::daemon::Daemon;
use xtask::lab::format_mac;

/// The reservation's circuit-id and address, and the relay-only subnet
/// (lab-attacks.toml).
const RESERVED_CIRCUIT: &str = "olt1/1/1:1";
const RESERVED: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 5);
const FOREIGN: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 0);
/// The legitimate fleet's relay; the attacks that are relayed come
/// through the client end's own address.
const LEGIT_RELAY: &str = "198.18.0.3";

/// The daemon's counters the table shows when they moved.
const COUNTERS: [&str; 14] = [
    "limited_circuit_id",
    "limited_mac",
    "limited_remote_id",
    "rate_limited_mac",
    "rate_limited_circuit_id",
    "untrusted_agent_info",
    "untrusted_dropped",
    "decline",
    "decline_not_bound",
    "decline_rate_limited",
    "probation_full",
    "no_address",
    "nak",
    "xsk_rx_dropped",
];

struct Row {
    name: &'static str,
    summary: Value,
    stats: Value,
    /// Journal records of the attack's MACs: bound, declined (in
    /// probation); and how many of them are the reservation's address or
    /// the relay-only subnet's.
    attack_bound: usize,
    attack_declined: usize,
    stolen: usize,
}

fn run(name: &'static str, lab_name: &str, attack: &[&str]) -> Row {
    let clients = knob("BENCH_CLIENTS", 1000);
    let jdir = TempDir::new("bench-attacks");
    let lab = lab(lab_name, true);
    let cfg = journal_config("lab-attacks.toml", &lab, &jdir.0);
    let d = Daemon::start(&lab, &bin(), &cfg).expect("xdhcpd starts");
    let clients = clients.to_string();
    let server_mac = format_mac(&lab.srv_mac);
    let mut args = vec![
        "--xdp-mode",
        "driver",
        "--bind",
        "copy",
        "--scenario",
        "relay",
        "--clients",
        &clients,
        "--relay",
        LEGIT_RELAY,
        "--server",
        SERVER_IP,
        "--server-mac",
        &server_mac,
        "--expect-subnet",
        "198.18.0.0/15",
    ];
    args.extend_from_slice(attack);
    let (summary, table): (Value, String) = xdhcpgen_run(&lab, &args, Duration::from_secs(300));
    eprintln!("{name}:\n{table}");
    std::thread::sleep(Duration::from_millis(300));
    let stats = d.stop().expect("xdhcpd stops");
    let cfg_file = jdir.0.with_extension("toml");
    std::fs::write(&cfg_file, &cfg).expect("config copy");
    let leases = xdhcpd_leases(&cfg_file, &[]);
    let _ = std::fs::remove_file(&cfg_file);
    let attack: Vec<&Value> = leases
        .iter()
        .filter(|l| {
            l["hwaddr"]
                .as_str()
                .is_some_and(|h| h.starts_with("02:61:74:"))
        })
        .collect();
    let state = |s: &str| attack.iter().filter(|l| l["state"] == s).count();
    let stolen = attack
        .iter()
        .filter(|l| {
            l["address"]
                .as_str()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
                .is_some_and(|a| a == RESERVED || in_net(a, FOREIGN, 24))
        })
        .count();
    Row {
        name,
        attack_bound: state("bound"),
        attack_declined: state("declined"),
        stolen,
        summary,
        stats,
    }
}

fn n(v: &Value, p: &str) -> u64 {
    v.pointer(p).and_then(Value::as_u64).unwrap_or(0)
}

fn ms(v: &Value, p: &str) -> String {
    format!("{:.1}", n(v, p) as f64 / 1000.0)
}

#[test]
#[ignore = "a benchmark: needs root and the lab, prints figures"]
fn attacks_beside_a_fleet() {
    let secs = knob("BENCH_STARVE_SECONDS", 10).to_string();
    let lead = ["--attack-lead-ms", "200"];
    let rows = [
        run("none", "xdtab0", &[]),
        run(
            "starve",
            "xdtab1",
            &[
                &[
                    "--attack",
                    "starve",
                    "--attack-clients",
                    "200000",
                    "--attack-window",
                    "200000",
                    "--attack-timeout-ms",
                    "100",
                    "--attack-relay",
                    CLIENT_IP,
                    "--attack-circuit-id",
                    "attacker",
                    "--attack-duration",
                    &secs,
                ][..],
                &lead,
            ]
            .concat(),
        ),
        run(
            "spoof82",
            "xdtab2",
            &[
                &[
                    "--attack",
                    "spoof82",
                    "--attack-clients",
                    "1000",
                    "--attack-circuit-id",
                    RESERVED_CIRCUIT,
                    "--attack-link-selection",
                    "10.77.0.0",
                    "--attack-timeout-ms",
                    "1000",
                ][..],
                &lead,
            ]
            .concat(),
        ),
        run(
            "decline acked",
            "xdtab3",
            &[
                &[
                    "--attack",
                    "decline",
                    "--attack-clients",
                    "250",
                    "--attack-count",
                    "2500",
                    "--attack-relay",
                    CLIENT_IP,
                ][..],
                &lead,
            ]
            .concat(),
        ),
        run(
            "decline offered",
            "xdtab4",
            &[
                &[
                    "--attack",
                    "decline",
                    "--attack-decline",
                    "offered",
                    "--attack-clients",
                    "250",
                    "--attack-count",
                    "2500",
                    "--attack-relay",
                    CLIENT_IP,
                ][..],
                &lead,
            ]
            .concat(),
        ),
    ];
    println!(
        "\nattacker (xdhcpgen's attack fleet; bound, declined and stolen from the daemon's journal; \
         believed: declined plus released over max_probation_percent)"
    );
    println!(
        "{:<16} {:>9} {:>9} {:>7} {:>6} {:>7} {:>9} {:>9} {:>8} {:>8} {:>6}",
        "attack",
        "started",
        "completed",
        "leases",
        "bound",
        "naks",
        "timeouts",
        "decl.sent",
        "declined",
        "believed",
        "stolen"
    );
    for r in &rows {
        let a = &r.summary["attack"];
        if a.is_null() {
            continue;
        }
        println!(
            "{:<16} {:>9} {:>9} {:>7} {:>6} {:>7} {:>9} {:>9} {:>8} {:>8} {:>6}",
            r.name,
            n(a, "/started"),
            n(a, "/completed"),
            n(a, "/leases"),
            r.attack_bound,
            n(a, "/naks"),
            n(a, "/timeouts"),
            n(a, "/sent_decline"),
            r.attack_declined,
            r.attack_declined as u64 + n(&r.stats, "/total/probation_full"),
            r.stolen
        );
    }
    println!("\nlegitimate fleet (relayed, a circuit-id each)");
    println!(
        "{:<16} {:>9} {:>7} {:>8} {:>8} {:>9} {:>9} {:>7}",
        "attack", "completed", "leases", "timeouts", "retrans", "DORA p50", "DORA p99", "run s"
    );
    for r in &rows {
        let s = &r.summary;
        let l = if s["legit"].is_null() { s } else { &s["legit"] };
        let retrans = if s["legit"].is_null() {
            n(s, "/counters/retransmits")
        } else {
            n(l, "/retransmits")
        };
        let leases = if s["legit"].is_null() {
            n(s, "/completed")
        } else {
            n(l, "/leases")
        };
        println!(
            "{:<16} {:>9} {:>7} {:>8} {:>8} {:>9} {:>9} {:>7.2}",
            r.name,
            n(l, "/completed"),
            leases,
            n(l, "/timeouts"),
            retrans,
            ms(l, "/latency_us/dora/p50"),
            ms(l, "/latency_us/dora/p99"),
            s["duration_s"].as_f64().unwrap_or_default()
        );
    }
    println!("\ndaemon counters that moved");
    for r in &rows {
        let moved: Vec<String> = COUNTERS
            .iter()
            .filter_map(|c| {
                let v = n(&r.stats, &format!("/total/{c}"));
                (v > 0).then(|| format!("{c} {v}"))
            })
            .collect();
        println!(
            "{:<16} discover {}, offer {}, ack {}; {}",
            r.name,
            n(&r.stats, "/total/discover"),
            n(&r.stats, "/total/offer"),
            n(&r.stats, "/total/ack"),
            if moved.is_empty() {
                "-".to_owned()
            } else {
                moved.join(", ")
            }
        );
    }
    for r in &rows {
        assert!(
            n(&r.summary, "/completed") > 0,
            "{}: the fleet completed nothing",
            r.name
        );
    }
}
