//! The XDP path with one queue and with two: what a second worker gives
//! xdhcpd in the lab, beside the in-process scaling bench (which has no
//! kernel in the way).
//!
//! A lab of its own (`xdbq`) whose veth ends have two RX/TX queues. In it,
//! xdhcpd with its journal in fast mode serves `queues = 1` and
//! `queues = 2` in turn, a fresh server per run, the two alternated
//! (1, 2, then 2, 1, …) so that a drift of the machine falls on both
//! alike. xdhcpgen runs as many workers as the server has queues, worker
//! k sending on queue k, which veth delivers to the server's queue k: each
//! of xdhcpd's workers serves its own share of the clients, and all of
//! them share the engine, the pools, the lease table and the journal.
//!
//! On a 2-core machine the generator's workers run on the same cores as
//! the server's (xdhcpd's worker q on core q, xdhcpgen's on the last cores
//! downwards): with two queues each core carries one worker of each, so
//! the figure is what two queues give when the load is generated on the
//! same machine, not what a second core gives a server. xdhcpgen polls
//! adaptively here (it sleeps when its rings stay empty) in both setups,
//! so that it does not spin a core away from the server's second worker.
use super::policy::median_index;
use super::rig::Scratch;
use super::run::{Ctx, gen_run};
use super::{BenchArgs, GenRun, Machine, Server};
use crate::daemon::release_bins;
use crate::lab::{CLIENT_ADDR, Lab, LabOptions};
use crate::process::{catch_sigint, interrupted, is_root};
use anyhow::{Result, bail, ensure};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The lab's name: not `xdt…`, which `cargo xtask test` sweeps away.
pub const LAB: &str = "xdbq";

/// One run of the comparison.
#[derive(Clone, Debug, Serialize)]
pub struct QueueRun {
    pub queues: u32,
    pub load: GenRun,
}

/// Every run, in the order they ran.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QueueFigures {
    pub runs: Vec<QueueRun>,
    /// Whether xdhcpgen's two workers run on the cores of xdhcpd's two
    /// (fewer than four cores).
    pub shared_cores: bool,
    /// Why the comparison stopped short, if it did (the runs hold what
    /// was measured until then).
    pub error: Option<String>,
}

impl QueueFigures {
    fn rates(&self, queues: u32) -> Vec<f64> {
        self.runs
            .iter()
            .filter(|r| r.queues == queues)
            .map(|r| r.load.per_s)
            .collect()
    }

    /// The median leases/s of the runs with `queues` queues (the lower
    /// one of an even count, as everywhere in the bench).
    pub fn median(&self, queues: u32) -> Option<f64> {
        let v = self.rates(queues);
        median_index(&v).map(|i| v[i])
    }

    /// Two queues over one, medians.
    pub fn ratio(&self) -> Option<f64> {
        Some(self.median(2)? / self.median(1)?)
    }

    /// The section of the report.
    pub fn render(&self) -> String {
        let mut md = String::from("\n### The XDP path with one queue and with two\n\n");
        md.push_str(
            "xdhcpd, journal fast, `queues = 1` against `queues = 2` in a lab whose veth ends \
             have two queues, alternated, a fresh server per run; xdhcpgen open loop with one \
             worker per queue (`--poll adaptive` in both). ",
        );
        md.push_str(if self.shared_cores {
            "**The generator shares the cores**: with two queues, each of xdhcpd's two \
             workers shares its core with one of xdhcpgen's, so this is what two queues give \
             with the load made on the same machine, not what a second core gives a server.\n\n"
        } else {
            "xdhcpgen's workers run on cores of their own (the last ones), away from \
             xdhcpd's (the first ones).\n\n"
        });
        for q in [1, 2] {
            let rates: Vec<String> = self
                .rates(q)
                .iter()
                .map(|v| super::report::thousands(*v))
                .collect();
            if rates.is_empty() {
                continue;
            }
            let _ = writeln!(
                md,
                "- {q} queue{}: {} leases/s (median {})",
                if q == 1 { "" } else { "s" },
                rates.join(", "),
                self.median(q).map_or("?".into(), super::report::thousands)
            );
        }
        if let Some(r) = self.ratio() {
            let _ = writeln!(md, "- two queues over one: {r:.2}×");
        }
        if let Some(why) = &self.error {
            let _ = writeln!(md, "\n(one queue against two not measured in full: {why})");
        }
        md
    }
}

/// `cargo xtask bench queues`: this comparison alone, with the release
/// binaries as they are; prints its section of the report.
pub fn run(args: &BenchArgs) -> Result<()> {
    ensure!(is_root(), "the bench needs root (namespaces, XDP)");
    ensure!(
        args.gen_seconds > 0 && args.window > 0,
        "--gen-seconds and --window must be at least 1"
    );
    let bins = release_bins()?;
    let (scratch, _) = Scratch::on_disk("xdhcp-bench-queues", "the journals need")?;
    catch_sigint();
    let machine = Machine::read();
    println!("bench: {}", machine.line());
    let figures = in_own_lab(bins, &scratch.0, args, machine.gen_core);
    println!("{}", figures.render());
    if let Some(e) = figures.error {
        bail!("one queue against two failed: {e}");
    }
    Ok(())
}

/// Brings up the lab of two queues, runs [`measure`] in it and takes it
/// down: the figures, with what went wrong if anything did.
pub(super) fn in_own_lab(
    (bin, gen_bin): (PathBuf, PathBuf),
    scratch: &Path,
    args: &BenchArgs,
    gen_core: Option<usize>,
) -> QueueFigures {
    let failed = |e: String| QueueFigures {
        error: Some(e),
        ..QueueFigures::default()
    };
    println!("bench: the XDP path with one queue and with two (xdhcpd, journal fast)");
    let mut opts = LabOptions::new(LAB);
    opts.client_addr = Some(CLIENT_ADDR.to_owned());
    opts.queues = 2;
    let mut lab = match Lab::up(&opts) {
        Ok(lab) => lab,
        Err(e) => return failed(format!("{e:#}")),
    };
    // A folder of its own, so that no run here can meet what a run of the
    // main rows (whose tags are alike) left behind.
    let scratch = scratch.join("queues");
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        return failed(format!("creating {}: {e}", scratch.display()));
    }
    let ctx = Ctx {
        lab: &lab,
        bin,
        gen_bin,
        scratch: &scratch,
        args,
        gen_core,
        queues: 1,
        gen_poll: Some("adaptive"),
    };
    let mut figures = measure(&ctx, args.repeat);
    if let (None, Err(e)) = (&figures.error, lab.down()) {
        figures.error = Some(format!("taking the lab down: {e:#}"));
    }
    figures
}

/// `repeat` runs of each setup, alternated, in `ctx`'s lab (which must
/// have two queues per veth end). A failed run ends the comparison with
/// what was measured so far and the error.
pub(super) fn measure(ctx: &Ctx, repeat: u32) -> QueueFigures {
    let mut figures = QueueFigures {
        shared_cores: ctx.with_queues(2).gen_shares_cores(),
        ..QueueFigures::default()
    };
    for run in 1..=repeat.max(1) {
        let order = if run % 2 == 1 { [1, 2] } else { [2, 1] };
        for queues in order {
            if interrupted() {
                figures.error = Some("interrupted".to_owned());
                return figures;
            }
            match one(ctx, queues, run) {
                Ok(load) => figures.runs.push(QueueRun { queues, load }),
                Err(e) => {
                    figures.error = Some(format!("{e:#}"));
                    return figures;
                }
            }
        }
    }
    figures
}

fn one(ctx: &Ctx, queues: u32, run: u32) -> Result<GenRun> {
    let ctx = ctx.with_queues(queues);
    let load = gen_run(&ctx, Server::XdhcpdFast, 0.0, ctx.args.window, run)?;
    let acks = acks_per_worker(&load.server);
    // Two queues where one worker did all the work would be one queue
    // measured twice.
    ensure!(
        acks.len() == queues as usize && acks.iter().all(|&a| a > 0),
        "with {queues} queue(s), xdhcpd's workers sent {acks:?} ACKs: every worker must serve"
    );
    Ok(load)
}

/// The ACKs each of xdhcpd's workers sent, in queue order, from its last
/// stats.
fn acks_per_worker(stats: &Value) -> Vec<u64> {
    stats["workers"]
        .as_array()
        .map(|ws| ws.iter().map(|w| w["ack"].as_u64().unwrap_or(0)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(queues: u32, per_s: f64) -> QueueRun {
        QueueRun {
            queues,
            load: GenRun::sample(per_s, 1_000),
        }
    }

    #[test]
    fn medians_and_the_ratio_are_per_setup() {
        let f = QueueFigures {
            runs: vec![
                run(1, 100_000.0),
                run(2, 150_000.0),
                run(2, 130_000.0),
                run(1, 90_000.0),
                run(1, 120_000.0),
                run(2, 170_000.0),
            ],
            shared_cores: true,
            error: None,
        };
        assert_eq!(f.median(1), Some(100_000.0));
        assert_eq!(f.median(2), Some(150_000.0));
        assert_eq!(f.ratio(), Some(1.5));
        let md = f.render();
        assert!(
            md.contains("- 1 queue: 100,000, 90,000, 120,000 leases/s (median 100,000)"),
            "{md}"
        );
        assert!(md.contains("- two queues over one: 1.50×"), "{md}");
        assert!(md.contains("The generator shares the cores"), "{md}");
    }

    #[test]
    fn acks_are_read_per_worker_in_queue_order() {
        let stats = json!({"workers": [{"queue": 0, "ack": 7}, {"queue": 1, "ack": 0}]});
        assert_eq!(acks_per_worker(&stats), [7, 0]);
        assert_eq!(acks_per_worker(&Value::Null), Vec::<u64>::new());
    }

    #[test]
    fn no_ratio_without_both_setups() {
        let f = QueueFigures {
            runs: vec![run(1, 100_000.0), run(1, 80_000.0)],
            shared_cores: false,
            error: Some("interrupted".into()),
        };
        assert_eq!(
            f.median(1),
            Some(80_000.0),
            "the lower of two, as median_index"
        );
        assert_eq!(f.ratio(), None);
        let md = f.render();
        assert!(!md.contains("over one"), "{md}");
        assert!(md.contains("cores of their own"), "{md}");
        assert!(md.contains("not measured in full: interrupted"), "{md}");
    }
}
