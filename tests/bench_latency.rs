//! The cost of the latency histograms, side by side in one run: xdhcpgen
//! at its maximum rate against xdhcpd with `latency = true` and `latency =
//! false`, alternating, twice each, and the percentiles the daemon
//! measured beside the generator's. A benchmark, not a pass/fail test: it
//! is not in `cargo xtask test`. Run it as root after
//! `cargo build --release -p dhcp-user -p xdhcpgen`:
//!
//! XDHCPD_BIN=$PWD/target/release/xdhcpd cargo test -p xdhcpd-suite \
//!   --test bench_latency -- --include-ignored --nocapture
//!
//! Knobs: `BENCH_LATENCY_CLIENTS` (default 100000), `BENCH_LATENCY_ROUNDS`
//! (default 2: on/off pairs).
mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;
use xtask::daemon::Daemon;
use xtask::lab::Lab;

/// One DORA run of xdhcpgen at its maximum rate against xdhcpd with the
/// config `text(lab)`: leases/s, the generator's result, the last stats.
fn run(text: impl Fn(&Lab) -> String, clients: u64) -> (f64, Value, Value) {
    let lab = lab("xdt82", false);
    let d = Daemon::start(&lab, &bin(), &text(&lab)).expect("xdhcpd starts");
    let clients = clients.to_string();
    let (g, _) = xdhcpgen_run(
        &lab,
        &[
            "--scenario",
            "dora",
            "--clients",
            &clients,
            "--expect-subnet",
            "198.18.0.0/15",
        ],
        Duration::from_secs(600),
    );
    let stats = d.stop().expect("xdhcpd stops");
    let rate = g["leases_per_sec"].as_f64().unwrap_or(0.0);
    (rate, g, stats)
}

fn us(v: &Value, p: &str) -> String {
    v.pointer(p)
        .and_then(Value::as_u64)
        .map_or("-".into(), |n| n.to_string())
}

#[test]
#[ignore = "a benchmark: needs root and the lab, prints figures"]
fn lease_rate_with_and_without_latency_histograms() {
    let clients = knob("BENCH_LATENCY_CLIENTS", 100_000);
    let rounds = knob("BENCH_LATENCY_ROUNDS", 2);
    let mut rows = Vec::new();
    for _ in 0..rounds {
        for on in [true, false] {
            let text = |lab: &Lab| {
                config("lab-xdp.toml", lab).replacen(
                    "server_id",
                    &format!("latency = {on}\nserver_id"),
                    1,
                )
            };
            rows.push((on, run(text, clients)));
        }
    }
    println!("\nlatency histograms, {clients} clients, xdhcpgen dora at max rate:");
    println!(
        "{:<8} {:>10}   {:>34}   {:>34}",
        "latency", "leases/s", "daemon offer/ack p50 p99 (µs)", "xdhcpgen offer/ack p50 p99 (µs)"
    );
    for (on, (rate, g, s)) in &rows {
        let daemon = if *on {
            format!(
                "{}/{} {}/{}",
                us(s, "/latency/total/offer/p50_us"),
                us(s, "/latency/total/ack/p50_us"),
                us(s, "/latency/total/offer/p99_us"),
                us(s, "/latency/total/ack/p99_us"),
            )
        } else {
            "-".into()
        };
        let generator = format!(
            "{}/{} {}/{}",
            us(g, "/latency_us/offer/p50"),
            us(g, "/latency_us/ack/p50"),
            us(g, "/latency_us/offer/p99"),
            us(g, "/latency_us/ack/p99"),
        );
        println!(
            "{:<8} {:>10.0}   {:>34}   {:>34}",
            if *on { "on" } else { "off" },
            rate,
            daemon,
            generator
        );
        if *on {
            assert_eq!(
                s["latency"]["total"]["ack"]["count"], s["total"]["ack"],
                "one latency per ACK"
            );
        } else {
            assert!(s["latency"].is_null());
        }
    }
}

/// The cost of the control API's address index, side by side: a
/// fast-mode journal with and without `[control]` (whose index is a
/// second tap on the journal's writer: one more `try_send` a record),
/// alternating, at xdhcpgen's maximum rate.
#[test]
#[ignore = "a benchmark: needs root and the lab, prints figures"]
fn lease_rate_with_and_without_the_address_index() {
    let clients = knob("BENCH_LATENCY_CLIENTS", 100_000);
    let rounds = knob("BENCH_LATENCY_ROUNDS", 2);
    let mut rows = Vec::new();
    for _ in 0..rounds {
        for on in [true, false] {
            let dir = TempDir::new("bench-index");
            let socket = dir.0.join("control.sock");
            let text = |lab: &Lab| {
                let t = journal_config("lab-journal-fast.toml", lab, &dir.0);
                if on {
                    format!("{t}\n[control]\nsocket = \"{}\"\n", socket.display())
                } else {
                    t
                }
            };
            let (rate, _, stats) = run(text, clients);
            rows.push((on, rate, stats["journal"]["records"].clone()));
        }
    }
    println!("\naddress index, {clients} clients, fast journal, xdhcpgen dora at max rate:");
    println!(
        "{:<8} {:>10} {:>16}",
        "index", "leases/s", "journal records"
    );
    for (on, rate, records) in &rows {
        println!(
            "{:<8} {:>10.0} {:>16}",
            if *on { "on" } else { "off" },
            rate,
            records
        );
    }
}
