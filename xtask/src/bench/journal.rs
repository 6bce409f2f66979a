//! Durable versus fast lease journal: full DORA leases per second against
//! xdhcpd in the lab, both modes in the same run, driven by perfdhcp and
//! (when it is built) by the bundled generator, with the journal on a
//! disk-backed file system. The durable mode syncs every group of lease
//! records before the ACKs leave, so the ratio durable/fast is the price
//! of not losing leases to a power cut (the goal: 80 % or more).
use super::rig::{Scratch, config, run_bounded};
use crate::daemon::{Daemon, release_bins};
use crate::lab::{CLIENT_ADDR, Lab, LabOptions};
use crate::process::is_root;
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The lab's name: not `xdt…`, so `cargo xtask test` never sweeps it away
/// from under a running bench.
const LAB: &str = "xdbj";
/// Seconds each load runs.
const SECONDS: u64 = 10;
/// What perfdhcp is asked to start per second: more than it can send on
/// this machine, so it runs flat out (whether it or the server is the
/// bottleneck shows in its drops).
const PERFDHCP_RATE: u32 = 30_000;
const MODES: [&str; 2] = ["fast", "durable"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Load {
    Perfdhcp,
    /// The generator keeps this many exchanges in flight. A closed loop
    /// completes at most window / round trip leases per second, and the
    /// durable mode lengthens the round trip by the sync, so it is run
    /// with its default window and with a wide one.
    Xdhcpgen {
        window: u32,
    },
}

impl Load {
    fn name(self) -> String {
        match self {
            Load::Perfdhcp => "perfdhcp".into(),
            Load::Xdhcpgen { window } => format!("xdhcpgen/w{window}"),
        }
    }
}

/// One load against one mode.
struct Sample {
    load: Load,
    mode: &'static str,
    leases_per_s: f64,
    /// ACKs the daemon sent during the run.
    acks: u64,
    /// What the load generator says it lost (perfdhcp drops, xdhcpgen
    /// timeouts).
    lost: u64,
    journal: Value,
}

pub fn run() -> Result<()> {
    ensure!(is_root(), "the journal bench needs root (namespaces, XDP)");
    let (bin, gen_bin) = release_bins()?;
    let (scratch, fs_type) = Scratch::on_disk("xdhcp-bench-journal", "the bench needs")?;
    println!(
        "journal bench: journals under {} (`stat -f -c %T`: {fs_type}), {SECONDS} s per run",
        scratch.0.display()
    );

    let mut opts = LabOptions::new(LAB);
    opts.client_addr = Some(CLIENT_ADDR.to_owned());
    let lab = Lab::up(&opts)?;
    let mut loads = vec![Load::Perfdhcp];
    if gen_bin.exists() {
        loads.push(Load::Xdhcpgen { window: 512 });
        loads.push(Load::Xdhcpgen { window: 2048 });
    } else {
        println!(
            "journal bench: {} is not built, perfdhcp only",
            gen_bin.display()
        );
    }

    let mut samples = Vec::new();
    // Two rounds, the second in the other order, so a machine that slows
    // down or warms up during the run does not favour one mode.
    for round in 0..2 {
        for &load in &loads {
            let mut modes = MODES;
            if round == 1 {
                modes.reverse();
            }
            for mode in modes {
                let s = one_run(&lab, &bin, &gen_bin, &scratch.0, load, mode, round)?;
                print_sample(&s);
                samples.push(s);
            }
        }
    }

    println!();
    println!("journal bench summary (journal on {fs_type}):");
    for &load in &loads {
        let mean = |mode: &str| {
            let v: Vec<f64> = samples
                .iter()
                .filter(|s| s.load == load && s.mode == mode)
                .map(|s| s.leases_per_s)
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let (fast, durable) = (mean("fast"), mean("durable"));
        let ratio = if fast > 0.0 {
            100.0 * durable / fast
        } else {
            0.0
        };
        println!(
            "  {:<15} fast {fast:>9.0} leases/s   durable {durable:>9.0} leases/s   durable/fast {ratio:.0} %",
            load.name()
        );
    }
    Ok(())
}

fn one_run(
    lab: &Lab,
    bin: &Path,
    gen_bin: &Path,
    base: &Path,
    load: Load,
    mode: &'static str,
    round: u32,
) -> Result<Sample> {
    let dir = base.join(format!("{}-{mode}-{round}", load.name()));
    std::fs::create_dir_all(&dir)?;
    let config = config(&lab.srv_if, &dir, mode, 1);
    let daemon = Daemon::start(lab, bin, &config)?;
    let before = daemon.fresh_stats()?;
    let (leases_per_s, lost, report) = match load {
        Load::Perfdhcp => {
            let out = run_bounded(
                lab.cli("perfdhcp")
                    .args(["-4", "-l", &lab.cli_if])
                    .args(["-r", &PERFDHCP_RATE.to_string(), "-R", "100000"])
                    .args(["-p", &SECONDS.to_string()]),
                Duration::from_secs(SECONDS + 60),
            )?;
            // perfdhcp exits 3 when it saw drops; its report is still whole.
            let after = daemon.fresh_stats()?;
            let acks = counter(&after, "/total/ack")? - counter(&before, "/total/ack")?;
            // perfdhcp's own rate counts the exchanges it completed; the
            // daemon's ACKs over the run time stand in if it printed none.
            let rate = perfdhcp_rate(&out).unwrap_or(acks as f64 / SECONDS as f64);
            (rate, perfdhcp_drops(&out), out)
        }
        Load::Xdhcpgen { window } => {
            let json = dir.join("xdhcpgen.json");
            let out = run_bounded(
                lab.cli(&gen_bin.to_string_lossy())
                    .args(["--interface", &lab.cli_if, "--no-progress"])
                    .args(["--scenario", "dora", "--clients", "120000"])
                    .args(["--window", &window.to_string()])
                    .args(["--duration", &SECONDS.to_string()])
                    .args(["--expect-subnet", "198.18.0.0/15"])
                    .arg("--json")
                    .arg(&json),
                Duration::from_secs(SECONDS + 60),
            )?;
            let summary: Value = serde_json::from_slice(
                &std::fs::read(&json).with_context(|| format!("xdhcpgen wrote no JSON:\n{out}"))?,
            )?;
            let rate = summary["leases_per_sec"]
                .as_f64()
                .with_context(|| format!("no leases_per_sec in {summary}"))?;
            let timeouts = summary["timeouts"].as_u64().unwrap_or(0);
            (rate, timeouts, out)
        }
    };
    let stats = daemon.stop()?;
    let acks = counter(&stats, "/total/ack")? - counter(&before, "/total/ack")?;
    if acks == 0 {
        bail!(
            "{} against {mode} mode got no ACK at all:\n{report}",
            load.name()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Sample {
        load,
        mode,
        leases_per_s,
        acks,
        lost,
        journal: stats["journal"].clone(),
    })
}

fn print_sample(s: &Sample) {
    let j = &s.journal;
    let n = |k: &str| j[k].as_u64().unwrap_or(0);
    println!(
        "  {:<15} {:<8} {:>9.0} leases/s  ({} ACKs, {} lost by the load)  journal: {} records in {} groups, \
         {} fsyncs, fsync p50 {} us p99 {} us max {} us, full {}, compactions {}, io_errors {}",
        s.load.name(),
        s.mode,
        s.leases_per_s,
        s.acks,
        s.lost,
        n("records"),
        n("groups"),
        n("fsyncs"),
        n("fsync_p50_us"),
        n("fsync_p99_us"),
        n("fsync_max_us"),
        n("full"),
        n("compactions"),
        n("io_errors"),
    );
}

pub(crate) fn counter(stats: &Value, pointer: &str) -> Result<u64> {
    stats
        .pointer(pointer)
        .and_then(Value::as_u64)
        .with_context(|| format!("the stats have no {pointer}: {stats}"))
}

/// perfdhcp's "Rate: N 4-way exchanges/second" line.
fn perfdhcp_rate(report: &str) -> Option<f64> {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Rate: "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// perfdhcp's drops over all its exchange kinds (`drops: N` lines).
fn perfdhcp_drops(report: &str) -> u64 {
    report
        .lines()
        .filter_map(|l| l.trim().strip_prefix("drops: "))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_add_up_over_exchanges() {
        let report = "***Statistics for: DISCOVER-OFFER***\nsent packets: 10\ndrops: 3\n\
                      ***Statistics for: REQUEST-ACK***\ndrops: 2 (5.0 %)\nother: drops: 9\n";
        assert_eq!(perfdhcp_drops(report), 5);
        assert_eq!(perfdhcp_drops(""), 0);
    }

    #[test]
    fn perfdhcp_rate_line() {
        let report =
            "***Rate statistics***\nRate: 9430.2 4-way exchanges/second, expected rate: 20000\n";
        assert_eq!(perfdhcp_rate(report), Some(9430.2));
        assert_eq!(perfdhcp_rate("Rate: none"), None);
    }
}
