//! What high availability costs, side by side in one run (issue 14):
//! xdhcpgen's full-DORA lease rate against one plain xdhcpd (no
//! `[cluster]`) and against a pair sharing its leases through the lab's
//! three-node NATS JetStream cluster, in load-balancing and hot-standby
//! mode, each with `durable` (local fsync before the ACK) and
//! `replicated` (the stream's quorum acknowledgement before the ACK)
//! durability. The rows alternate round by round, so a noisy stretch of
//! the machine falls on all of them; the table gives each row's median
//! and its ratio to the one server. Kea's HA hook, for comparison, halves
//! it (ISC: 11,686 leases/s alone, 5,621 as a hot-standby pair).
//!
//! A benchmark, not a pass/fail test: it is not in `cargo xtask test`.
//! Run it as root after `cargo build --release -p dhcp-user -p xdhcpgen`:
//!
//! XDHCPD_BIN=$PWD/target/release/xdhcpd cargo test -p xdhcpd-suite \
//!   --test bench_ha -- --include-ignored --nocapture
//!
//! Knobs: `BENCH_HA_ROUNDS` (default 3), `BENCH_HA_SECONDS` (each load,
//! default 10), `BENCH_HA_WINDOW` (exchanges xdhcpgen keeps in flight,
//! default 2048: a closed loop completes at most window / round trip
//! leases per second, and replication lengthens the round trip).
//!
//! Every process shares this machine's cores: the generator, both
//! servers and the three NATS nodes. On a real deployment each server
//! and each NATS node has its own.
mod common;
#[path = "common/ha.rs"]
mod ha;

use common::{TempDir, bin, counter};
use ha::*;
use std::time::Duration;
use xtask::lab::ha::HaLab;

const WITHIN: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
struct Row {
    what: &'static str,
    /// None: one server without `[cluster]`.
    cluster: Option<(&'static str, &'static str)>,
}

const ROWS: [Row; 5] = [
    Row {
        what: "one server, no [cluster]",
        cluster: None,
    },
    Row {
        what: "pair, load-balancing, durable",
        cluster: Some(("load-balancing", "durable")),
    },
    Row {
        what: "pair, load-balancing, replicated",
        cluster: Some(("load-balancing", "replicated")),
    },
    Row {
        what: "pair, hot-standby, durable",
        cluster: Some(("hot-standby", "durable")),
    },
    Row {
        what: "pair, hot-standby, replicated",
        cluster: Some(("hot-standby", "replicated")),
    },
];

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}")))
        .unwrap_or(default)
}

struct Sample {
    leases_per_s: f64,
    timeouts: u64,
    duplicates: u64,
    /// ACKs each server sent.
    acks: Vec<u64>,
}

/// One load against one row; every run has streams and a bucket of its
/// own (`tag`), so no run starts with another's leases.
fn one_run(lab: &HaLab, row: Row, tag: usize, seconds: u64, window: u64) -> Sample {
    let mut members = Vec::new();
    let mut plain = None;
    let _dir = TempDir::new("bench-ha");
    match row.cluster {
        None => {
            let cfg = lab.server_config(0, None, &_dir.0);
            plain = Some(ctx(lab.start_daemon(0, &bin(), &cfg), "starting xdhcpd"));
        }
        Some((mode, durability)) => {
            let stream: &'static str = Box::leak(format!("BENCH{tag}").into_boxed_str());
            let bucket: &'static str = Box::leak(format!("bench{tag}").into_boxed_str());
            let spec = ClusterSpec {
                mode,
                names: Some((stream, bucket)),
                ..ClusterSpec::pair(durability)
            };
            members.push(Member::start(lab, 0, spec));
            members.push(Member::start(lab, 1, spec));
            let refs: Vec<&Member> = members.iter().collect();
            if mode == "load-balancing" {
                wait_home_shares(&refs, WITHIN);
            } else {
                let (ok, _) = wait_members(&refs, WITHIN, |s| {
                    owned_shares(&s[0]) == [0] && owned_shares(&s[1]).is_empty()
                });
                assert!(ok, "hot-standby did not settle:\n{}", describe(&refs));
            }
        }
    }
    let (s, w) = (seconds.to_string(), window.to_string());
    let run = run_gen(
        lab,
        &lab.cli_ns,
        &lab.cli_if,
        &[
            "--scenario",
            "dora",
            "--clients",
            "250000",
            "--duration",
            &s,
            "--window",
            &w,
            "--expect-subnet",
            "198.18.0.0/15",
        ],
        Duration::from_secs(seconds + 60),
    );
    let mut acks = Vec::new();
    if let Some(d) = plain {
        acks.push(counter(&d.stop().expect("xdhcpd stops"), "/total/ack"));
    }
    for m in &mut members {
        let s = ctx(m.d().fresh_stats(), "stats");
        acks.push(counter(&s, "/total/ack"));
        m.stop();
    }
    Sample {
        leases_per_s: run.summary["leases_per_sec"].as_f64().unwrap_or(0.0),
        timeouts: run.counter("timeouts"),
        duplicates: run.counter("duplicate_addresses"),
        acks,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "a benchmark: needs root and the lab, run by hand (see the top)"]
fn ha_costs_side_by_side() {
    let rounds = knob("BENCH_HA_ROUNDS", 3) as usize;
    let seconds = knob("BENCH_HA_SECONDS", 10);
    let window = knob("BENCH_HA_WINDOW", 2048);
    let lab = ha_lab("xdt88", 2, false);
    let mut rates = vec![Vec::new(); ROWS.len()];
    for round in 0..rounds {
        for (i, row) in ROWS.iter().enumerate() {
            let s = one_run(&lab, *row, round * ROWS.len() + i, seconds, window);
            eprintln!(
                "round {round}: {:<34} {:>8.0} leases/s  timeouts {}  duplicates {}  ACKs per server {:?}",
                row.what, s.leases_per_s, s.timeouts, s.duplicates, s.acks
            );
            assert_eq!(s.duplicates, 0, "{}: an address given twice", row.what);
            rates[i].push(s.leases_per_s);
        }
    }
    let base = median(&mut rates[0].clone());
    println!(
        "\nHA bench: full DORA, xdhcpgen window {window}, {seconds} s per load, median of {rounds} alternating rounds"
    );
    println!("  {:<34} {:>10} {:>8}", "", "leases/s", "vs one");
    for (row, r) in ROWS.iter().zip(&rates) {
        let m = median(&mut r.clone());
        println!(
            "  {:<34} {:>10.0} {:>7.0} %   (rounds: {})",
            row.what,
            m,
            100.0 * m / base,
            r.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "  Kea HA hook (ISC's figures, memfile): one 11,686, hot-standby pair 5,621 (48 %)\n  \
         the generator, both servers and the three NATS nodes share this machine's cores"
    );
}
