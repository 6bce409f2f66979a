//! DDNS figures, side by side in one run: xdhcpgen's lease rate against
//! xdhcpd with DDNS off and on (a real named in the lab), the updates per
//! second that reached named, and how long named took to hold every name
//! after the leases. A benchmark, not a pass/fail test: it is not in
//! `cargo xtask test`. Run it as root after
//! `cargo build --release -p dhcp-user -p xdhcpgen`:
//!
//! XDHCPD_BIN=$PWD/target/release/xdhcpd cargo test -p xdhcpd-suite \
//!   --test bench_ddns -- --include-ignored --nocapture
//!
//! Knobs: `BENCH_DDNS_CLIENTS` (default 100000), `BENCH_DDNS_RATE`
//! (`max_updates_per_second`, default 20000: the cap, not a target),
//! `BENCH_DDNS_BASELINE`: the path of an xdhcpd built from an earlier
//! commit (one without DDNS works: the "off" config has no `[ddns]`); its
//! rows and the "off" rows alternate, twice each, so the cost of the
//! change with DDNS off is read side by side.
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use xtask::daemon::Daemon;
use xtask::lab::Lab;
use xtask::named::{Named, NamedOptions};

/// The DDNS fixture with a fast journal (the bench measures DNS, not the
/// disk), a one-hour lease, and `[ddns]` kept or cut out.
fn config(lab: &Lab, dir: &TempDir, named: &Named, ddns: bool, rate: u64) -> String {
    let text = journal_config("lab-ddns.toml", lab, &dir.0)
        .replace("@TSIG_SECRET@", named.secret_b64())
        .replace("@LEASE_TIME@", "3600")
        .replace("mode = \"durable\"", "mode = \"fast\"")
        .replace(
            "key_algorithm = \"hmac-sha256\"",
            &format!("key_algorithm = \"hmac-sha256\"\nmax_updates_per_second = {rate}"),
        );
    if ddns {
        return text;
    }
    let start = text.find("[ddns]").unwrap();
    let end = text.find("[[subnet]]").unwrap();
    format!("{}{}", &text[..start], &text[end..])
}

fn names_in_zone(named: &Named) -> usize {
    named
        .zone_records("lab.example.")
        .map(|r| {
            r.iter()
                .filter(|l| l.starts_with("dhcp-") && l.contains(" A "))
                .count()
        })
        .unwrap_or(0)
}

struct Run {
    leases_per_s: f64,
    completed: u64,
    catch_up: Option<Duration>,
    updates_per_s: Option<f64>,
    stats: serde_json::Value,
}

fn run(name: &str, xdhcpd: &Path, ddns: bool, clients: u64, rate: u64) -> Run {
    let lab = lab(name, false);
    let named = Named::start(&lab, &NamedOptions::default()).expect("named");
    let dir = TempDir::new("bench-ddns");
    let d = Daemon::start(&lab, xdhcpd, &config(&lab, &dir, &named, ddns, rate)).expect("xdhcpd");
    let started = Instant::now();
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
        Duration::from_secs(600),
    );
    let gen_done = started.elapsed();
    let f = |p: &str| summary.pointer(p).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let (mut catch_up, mut updates_per_s) = (None, None);
    if ddns {
        // Until the daemon owes nothing and named holds every name.
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let s = d.fresh_stats().expect("stats");
            // Every lease was queued (once: they are all new) and nothing
            // waits. The gauge is published once a second.
            if counter(&s, "/ddns/pending") == 0
                && counter(&s, "/ddns/queued") == counter(&s, "/total/ack")
            {
                break;
            }
            assert!(Instant::now() < deadline, "DDNS did not catch up: {s}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let all = started.elapsed();
        catch_up = Some(all.saturating_sub(gen_done));
        let s = d.fresh_stats().expect("stats");
        updates_per_s = Some(counter(&s, "/ddns/confirmed") as f64 / all.as_secs_f64());
        let in_zone = names_in_zone(&named);
        assert_eq!(
            in_zone as u64,
            counter(&s, "/total/ack"),
            "every lease's name is in the zone: {s}"
        );
    }
    let stats = d.stop().expect("xdhcpd stops");
    Run {
        leases_per_s: f("/leases_per_sec"),
        completed: f("/completed") as u64,
        catch_up,
        updates_per_s,
        stats,
    }
}

#[test]
#[ignore = "a benchmark: needs root and the lab, prints figures"]
fn lease_rate_and_dns_catch_up() {
    let clients = knob("BENCH_DDNS_CLIENTS", 100_000);
    let rate = knob("BENCH_DDNS_RATE", 20_000);
    let this = bin();
    let baseline = std::env::var_os("BENCH_DDNS_BASELINE").map(PathBuf::from);
    let mut rows: Vec<(&str, Run)> = Vec::new();
    match &baseline {
        Some(before) => {
            for _ in 0..2 {
                rows.push(("before", run("xdtdb1", before, false, clients, rate)));
                rows.push(("off", run("xdtdb1", &this, false, clients, rate)));
            }
        }
        None => rows.push(("off", run("xdtdb1", &this, false, clients, rate))),
    }
    let on = run("xdtdb2", &this, true, clients, rate);
    println!(
        "\nDDNS bench: xdhcpgen --scenario dora --clients {clients}, fast journal, named in the lab, max_updates_per_second = {rate}"
    );
    if let Some(b) = &baseline {
        println!("before: {} (DDNS off)", b.display());
    }
    println!(
        "ddns    leases/s  completed  A+PTR procedures/s at named  named caught up after the last lease"
    );
    for (label, r) in rows.iter().map(|(l, r)| (*l, r)).chain([("on", &on)]) {
        println!(
            "{label:<6}  {:>8.0}  {:>9}  {:>28}  {}",
            r.leases_per_s,
            r.completed,
            r.updates_per_s.map_or("-".into(), |u| format!("{u:.0}")),
            r.catch_up
                .map_or("-".into(), |c| format!("{:.1} s", c.as_secs_f64())),
        );
    }
    println!("ddns counters (on): {}", on.stats["ddns"]);
    for (_, r) in &rows {
        assert_eq!(r.completed, clients);
    }
    assert_eq!(on.completed, clients);
}
