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
//! Run it as root with `cargo xtask bench ha [--rounds N] [--clients N]`,
//! or after `cargo build --release -p dhcp-user -p xdhcpgen`:
//!
//! XDHCPD_BIN=$PWD/target/release/xdhcpd cargo test -p xdhcpd-suite \
//!   --test bench_ha -- --include-ignored --nocapture
//!
//! Knobs: `BENCH_HA_ONLY` (row numbers from 0, e.g. `1` for a profiler),
//! `BENCH_HA_ROUNDS` (default 3), `BENCH_HA_CLIENTS` (new clients
//! per load, each a full DORA, default 100000: fewer than the pool's
//! 131,061 addresses), `BENCH_HA_WINDOW` (exchanges xdhcpgen keeps in flight,
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
    /// Servers started (the pair's peer list names two either way).
    started: usize,
}

const ROWS: [Row; 6] = [
    Row {
        what: "one server, no [cluster]",
        cluster: None,
        started: 1,
    },
    Row {
        what: "hot-standby primary, no standby up",
        cluster: Some(("hot-standby", "durable")),
        started: 1,
    },
    Row {
        what: "pair, load-balancing, durable",
        cluster: Some(("load-balancing", "durable")),
        started: 2,
    },
    Row {
        what: "pair, load-balancing, replicated",
        cluster: Some(("load-balancing", "replicated")),
        started: 2,
    },
    Row {
        what: "pair, hot-standby, durable",
        cluster: Some(("hot-standby", "durable")),
        started: 2,
    },
    Row {
        what: "pair, hot-standby, replicated",
        cluster: Some(("hot-standby", "replicated")),
        started: 2,
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
    /// CPU seconds over the load: the servers, the NATS nodes, and the
    /// whole machine (the generator and the kernel's veth work are most of
    /// the rest).
    cpu_servers: f64,
    cpu_nats: f64,
    cpu_all: f64,
    completed: u64,
    timeouts: u64,
    duplicates: u64,
    /// ACKs each server sent.
    acks: Vec<u64>,
}

/// One load against one row; every run has streams and a bucket of its
/// own (`tag`), so no run starts with another's leases.
fn one_run(lab: &HaLab, row: Row, tag: usize, clients: u64, window: u64) -> Sample {
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
            for k in 0..row.started {
                members.push(Member::start(lab, k, spec));
            }
            let refs: Vec<&Member> = members.iter().collect();
            if mode == "load-balancing" {
                wait_home_shares(&refs, WITHIN);
            } else {
                let (ok, _) = wait_members(&refs, WITHIN, |s| {
                    owned_shares(&s[0]) == [0] && s[1..].iter().all(|s| owned_shares(s).is_empty())
                });
                assert!(ok, "hot-standby did not settle:\n{}", describe(&refs));
            }
        }
    }
    let w = window.to_string();
    let clients = clients.to_string();
    let mut pids: Vec<u32> = plain.iter().filter_map(|d| d.pid()).collect();
    pids.extend(members.iter().filter_map(|m| m.d().pid()));
    let nats: Vec<u32> = lab.nats.iter().filter_map(|n| n.pid()).collect();
    let before = (cpu_of(&pids), cpu_of(&nats), cpu_machine());
    let run = run_gen(
        lab,
        &lab.cli_ns,
        &lab.cli_if,
        &[
            "--scenario",
            "dora",
            "--clients",
            &clients,
            "--window",
            &w,
            "--expect-subnet",
            "198.18.0.0/15",
        ],
        Duration::from_secs(300),
    );
    let after = (cpu_of(&pids), cpu_of(&nats), cpu_machine());
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
        cpu_servers: after.0 - before.0,
        cpu_nats: after.1 - before.1,
        cpu_all: after.2 - before.2,
        completed: run.counter("completed"),
        timeouts: run.counter("timeouts"),
        duplicates: run.counter("duplicate_addresses"),
        acks,
    }
}

/// CPU seconds (user and system, every thread) the processes used so far.
fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            // Fields after the command name's closing parenthesis: utime
            // and stime are the 12th and 13th.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .sum::<f64>()
        / ticks()
}

/// Busy CPU seconds of the whole machine so far (every core).
fn cpu_machine() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let f: Vec<f64> = s
        .lines()
        .next()
        .expect("the cpu line")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle, iowait.
    (f[0] + f[1] + f[2] + f[5] + f[6] + f.get(7).copied().unwrap_or(0.0)) / ticks()
}

fn ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "a benchmark: needs root and the lab, run by hand (see the top)"]
fn ha_costs_side_by_side() {
    let rounds = knob("BENCH_HA_ROUNDS", 3) as usize;
    let clients = knob("BENCH_HA_CLIENTS", 100_000);
    let window = knob("BENCH_HA_WINDOW", 2048);
    let lab = ha_lab("xdt88", 2, false);
    let mut rates = vec![Vec::new(); ROWS.len()];
    let mut cpu: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); ROWS.len()];
    // BENCH_HA_ONLY=1,2: only those rows (a profiler's run); the table
    // then has no baseline unless row 0 is among them.
    let only: Option<Vec<usize>> = std::env::var("BENCH_HA_ONLY").ok().map(|v| {
        v.split(',')
            .map(|x| x.trim().parse().expect("BENCH_HA_ONLY"))
            .collect()
    });
    for round in 0..rounds {
        for (i, row) in ROWS.iter().enumerate() {
            if only.as_ref().is_some_and(|o| !o.contains(&i)) {
                continue;
            }
            let s = one_run(&lab, *row, round * ROWS.len() + i, clients, window);
            let per_k = |cpu: f64| 1e6 * cpu / s.completed.max(1) as f64;
            eprintln!(
                "round {round}: {:<34} {:>8.0} leases/s  timeouts {}  duplicates {}  ACKs per server {:?}  \
                 CPU µs per lease: servers {:.0}, NATS {:.0}, machine {:.0}",
                row.what,
                s.leases_per_s,
                s.timeouts,
                s.duplicates,
                s.acks,
                per_k(s.cpu_servers),
                per_k(s.cpu_nats),
                per_k(s.cpu_all)
            );
            cpu[i].push((per_k(s.cpu_servers), per_k(s.cpu_nats), per_k(s.cpu_all)));
            assert_eq!(s.duplicates, 0, "{}: an address given twice", row.what);
            rates[i].push(s.leases_per_s);
        }
    }
    let base = if rates[0].is_empty() {
        f64::NAN
    } else {
        median(&mut rates[0].clone())
    };
    println!(
        "\nHA bench: full DORA of {clients} new clients, xdhcpgen window {window}, median of {rounds} alternating rounds"
    );
    println!(
        "  {:<34} {:>10} {:>8}   CPU µs per lease: servers, NATS, machine (medians)",
        "", "leases/s", "vs one"
    );
    for ((row, r), c) in ROWS.iter().zip(&rates).zip(&cpu) {
        if r.is_empty() {
            continue;
        }
        let m = median(&mut r.clone());
        let cm = |f: fn(&(f64, f64, f64)) -> f64| median(&mut c.iter().map(f).collect::<Vec<_>>());
        println!(
            "  {:<34} {:>10.0} {:>7.0} %   {:>5.0} {:>5.0} {:>5.0}   (rounds: {})",
            row.what,
            m,
            100.0 * m / base,
            cm(|x| x.0),
            cm(|x| x.1),
            cm(|x| x.2),
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
