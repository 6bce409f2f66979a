//! What the conflict check costs: the lease rate with `conflict_check`
//! off and on, side by side in one run, under perfdhcp and under
//! xdhcpgen, each against a fresh daemon in a fresh lab. A benchmark that
//! prints figures, not a pass/fail timing: it fails only when a tool does
//! not run. Not in `cargo xtask test` (it takes a minute and measures);
//! run it on its own, as root, after `cargo build --release -p dhcp-user
//! -p xdhcpgen`:
//!
//! ```text
//! XDHCPD_BIN=$PWD/target/release/xdhcpd cargo test -p xdhcpd-suite \
//!     --test bench_conflict -- --include-ignored --nocapture
//! ```
//!
//! Knobs (environment): `BENCH_RATE` (perfdhcp -r, default 2000),
//! `BENCH_CLIENTS` (perfdhcp -R, default 20000), `BENCH_SECONDS` (perfdhcp
//! -p, default 10), `BENCH_GEN_CLIENTS` (xdhcpgen --clients, default
//! 20000).
mod common;

use common::*;
use std::time::Duration;
use xtask::daemon::Daemon;
use xtask::lab::Lab;

fn start(lab: &Lab, check: bool) -> Daemon {
    let mut cfg = config("lab-xdp.toml", lab);
    if check {
        cfg = cfg.replace(
            "lease_time = 7200",
            "lease_time = 7200\nconflict_check = \"icmp\"",
        );
    }
    Daemon::start(lab, &bin(), &cfg).expect("xdhcpd starts")
}

/// One row of the table.
struct Row {
    tool: &'static str,
    check: bool,
    leases_per_s: f64,
    completed: u64,
    /// perfdhcp: DISCOVER-OFFER + REQUEST-ACK drops; xdhcpgen: timeouts.
    drops: String,
    probed: u64,
    skipped: u64,
    queue_full: u64,
    offer_ms: String,
}

fn counters(stats: &serde_json::Value) -> (u64, u64, u64) {
    (
        counter(stats, "/total/conflict_probed"),
        counter(stats, "/total/conflict_skipped"),
        counter(stats, "/total/conflict_queue_full"),
    )
}

fn perfdhcp(check: bool, name: &str) -> Row {
    let (rate, clients, secs) = (
        knob("BENCH_RATE", 2000),
        knob("BENCH_CLIENTS", 20000),
        knob("BENCH_SECONDS", 10),
    );
    let lab = lab(name, true);
    let d = start(&lab, check);
    let out = output_within(
        lab.cli("perfdhcp")
            .args(["-4", "-l", &lab.cli_if])
            .args(["-r", &rate.to_string(), "-R", &clients.to_string()])
            .args(["-p", &secs.to_string()]),
        Duration::from_secs(secs + 60),
    )
    .expect("perfdhcp");
    let report_text = text(&out);
    let stats = d.stop().expect("xdhcpd stops");
    let r = xtask::perfdhcp::parse(&report_text);
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)) && !r.exchanges.is_empty(),
        "perfdhcp failed ({}):\n{report_text}",
        out.status
    );
    let (probed, skipped, queue_full) = counters(&stats);
    let doo = r.exchange("DISCOVER-OFFER");
    let ra = r.exchange("REQUEST-ACK");
    Row {
        tool: "perfdhcp",
        check,
        leases_per_s: r.rate.unwrap_or(0.0),
        completed: ra.map_or(0, |e| e.received),
        drops: format!(
            "{}+{}",
            doo.map_or(0, |e| e.drops),
            ra.map_or(0, |e| e.drops)
        ),
        probed,
        skipped,
        queue_full,
        offer_ms: doo
            .and_then(|e| e.avg_ms)
            .map_or("-".into(), |v| format!("{v:.1} avg")),
    }
}

fn xdhcpgen(check: bool, name: &str) -> Row {
    let clients = knob("BENCH_GEN_CLIENTS", 20000);
    let lab = lab(name, false);
    let d = start(&lab, check);
    let clients = clients.to_string();
    let (summary, _) = xdhcpgen_run(
        &lab,
        &[
            "--scenario",
            "dora",
            "--clients",
            &clients,
            "--expect-subnet",
            "198.18.0.0/15",
        ],
        Duration::from_secs(300),
    );
    let stats = d.stop().expect("xdhcpd stops");
    let (probed, skipped, queue_full) = counters(&stats);
    let f = |p: &str| summary.pointer(p).and_then(|v| v.as_f64()).unwrap_or(0.0);
    Row {
        tool: "xdhcpgen",
        check,
        leases_per_s: f("/leases_per_sec"),
        completed: f("/completed") as u64,
        drops: (f("/timeouts") as u64).to_string(),
        probed,
        skipped,
        queue_full,
        offer_ms: format!(
            "{:.1} p50, {:.1} p99",
            f("/latency_us/offer/p50") / 1000.0,
            f("/latency_us/offer/p99") / 1000.0
        ),
    }
}

#[test]
#[ignore = "a benchmark: needs root and the lab, prints figures"]
fn lease_rate_with_and_without_conflict_check() {
    let rows = [
        perfdhcp(false, "xdtcb1"),
        perfdhcp(true, "xdtcb2"),
        xdhcpgen(false, "xdtcb3"),
        xdhcpgen(true, "xdtcb4"),
    ];
    println!(
        "\n{:<9} {:<6} {:>10} {:>10} {:>11} {:>8} {:>8} {:>10}  OFFER latency (ms)",
        "tool", "check", "leases/s", "completed", "drops", "probed", "skipped", "queue_full"
    );
    for r in &rows {
        println!(
            "{:<9} {:<6} {:>10.0} {:>10} {:>11} {:>8} {:>8} {:>10}  {}",
            r.tool,
            if r.check { "icmp" } else { "none" },
            r.leases_per_s,
            r.completed,
            r.drops,
            r.probed,
            r.skipped,
            r.queue_full,
            r.offer_ms
        );
    }
    for r in &rows {
        assert!(
            r.completed > 0,
            "{} ({}) completed nothing",
            r.tool,
            r.check
        );
    }
}
