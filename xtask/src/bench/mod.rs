//! `cargo xtask bench`: xdhcpd beside kea-dhcp4 and beside the AF_XDP echo
//! ceiling, in one run, in a lab of its own (`xdbk`).
//!
//! Five servers, each started afresh for every load so that no run
//! inherits another's leases: kea-dhcp4 (memfile without and with
//! persistence, multi-threaded, `xtask/configs/kea-bench.json`), xdhcpd
//! with its journal in fast and in durable mode (the journal and Kea's
//! lease file on /var/tmp, a disk), and `xdhcpecho`, the daemon's own
//! XDP and AF_XDP path with the engine replaced by an address swap.
//!
//! - perfdhcp, ISC's method: the rate is raised step by step until more
//!   than 2.5 % of the DORA exchanges fail; the result is the highest
//!   completed rate of a step within 2.5 % (a step over it is run once
//!   more and ends the ladder only if it fails again). A step where perfdhcp cannot
//!   even send at its target (it completes less than 90 % of it, without
//!   drops) ends the ladder too: beyond it perfdhcp, not the server, is
//!   measured.
//! - xdhcpgen, open loop with 2,048 exchanges in flight (the window
//!   `cargo xtask bench journal` found best; Kea also with 64, its packet
//!   queue, which serves it better, and the better counts), then for
//!   xdhcpd at half the rate it reached, for the latency at a load it can
//!   carry. Each is run `--repeat` times (3) and the median run counts.
//!   xdhcpgen's worker is pinned to the last core, away from xdhcpd's
//!   worker (core 0 by default), which it would otherwise share.
//! - the echo ceiling: `xdhcpgen --scenario echo` counts round trips; a
//!   DORA is two, so the ceiling in leases/s is round trips/s ÷ 2.
//!
//! Writes `target/bench/bench.json` (every step of every run, perfdhcp's
//! output and xdhcpgen's summary as they came) and `target/bench/bench.md`
//! (the table).
//!
//! The modules: [`policy`] (the ladder's rules, the median), [`run`]
//! (one row: servers, loads), [`report`] (the table, the notes, the
//! JSON), [`journal`] (`cargo xtask bench journal`), [`rig`] (what both
//! benches set up), [`instructions`] (callgrind beside dhcproto),
//! [`engine_time`] (criterion beside dhcproto, the zero-copy projection),
//! [`inproc`] (the other benches without a lab: `fsync`, `scaling`,
//! `split`).
pub mod engine_time;
pub mod inproc;
pub mod instructions;
pub mod journal;
pub mod policy;
pub mod queues;
pub mod report;
pub mod rig;
pub mod run;

use crate::daemon::release_bins;
use crate::lab::{CLIENT_ADDR, Lab, LabOptions, run as run_cmd};
use crate::process::{catch_sigint, interrupted, is_root};
use anyhow::{Context, Result, bail, ensure};
use policy::Stop;
use rig::Scratch;
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Rounds of the in-process scaling bench in the main run (each runs 1
/// and 2 threads over 100,000 clients, three setups).
const SCALING_ROUNDS: u32 = 5;
/// The lab's name: not `xdt…`, which `cargo xtask test` sweeps away.
pub const LAB: &str = "xdbk";
/// Distinct MACs perfdhcp draws its clients from (the pool has 131,061
/// addresses).
const PERFDHCP_CLIENTS: u32 = 100_000;
/// Simulated clients of xdhcpgen (they come back for a new DORA when done).
const GEN_CLIENTS: u32 = 120_000;
/// Kea is also driven with this window, the size of its packet queue:
/// 2,048 exchanges in flight overload it into timeouts and retransmissions,
/// which would understate it.
const KEA_WINDOW: u32 = 64;

#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct BenchArgs {
    /// Seconds each perfdhcp step sends.
    #[arg(long, default_value_t = 5)]
    pub step_seconds: u64,
    /// perfdhcp's target rates in DORA/s, tried in this order until more
    /// than 2.5 % of the exchanges fail.
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = [1000, 2000, 4000, 8000, 12000, 16000, 24000, 32000]
    )]
    pub rates: Vec<u32>,
    /// Seconds each xdhcpgen run starts exchanges.
    #[arg(long, default_value_t = 10)]
    pub gen_seconds: u64,
    /// xdhcpgen's exchanges in flight (open loop).
    #[arg(long, default_value_t = 2048)]
    pub window: u32,
    /// Runs of each xdhcpgen measurement; the table shows the median run
    /// (the lab's figures vary from run to run by tens of percent).
    #[arg(long, default_value_t = 3)]
    pub repeat: u32,
    /// Do not build first (use the release binaries as they are).
    #[arg(long)]
    pub no_build: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Server {
    KeaMemfile,
    KeaPersist,
    XdhcpdFast,
    XdhcpdDurable,
    EchoCeiling,
}

impl Server {
    pub const ALL: [Server; 5] = [
        Server::KeaMemfile,
        Server::KeaPersist,
        Server::XdhcpdFast,
        Server::XdhcpdDurable,
        Server::EchoCeiling,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Server::KeaMemfile => "kea-dhcp4, memfile (no persist)",
            Server::KeaPersist => "kea-dhcp4, memfile (persist)",
            Server::XdhcpdFast => "xdhcpd, journal fast",
            Server::XdhcpdDurable => "xdhcpd, journal durable",
            Server::EchoCeiling => "AF_XDP echo (ceiling)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Server::KeaMemfile => "kea-nopersist",
            Server::KeaPersist => "kea-persist",
            Server::XdhcpdFast => "xdhcpd-fast",
            Server::XdhcpdDurable => "xdhcpd-durable",
            Server::EchoCeiling => "echo",
        }
    }

    fn is_xdhcpd(self) -> bool {
        matches!(self, Server::XdhcpdFast | Server::XdhcpdDurable)
    }

    /// The Kea row an xdhcpd row is held against: like for like, leases
    /// kept in memory only against leases written to disk.
    pub fn kea_peer(self) -> Option<Server> {
        match self {
            Server::XdhcpdFast => Some(Server::KeaMemfile),
            Server::XdhcpdDurable => Some(Server::KeaPersist),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Delay {
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub max: Option<f64>,
}

/// One perfdhcp step.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub target: u32,
    /// 2 for the confirming run of a step that failed.
    pub attempt: u32,
    /// perfdhcp's "Rate:", completed DORA exchanges per second.
    pub rate: Option<f64>,
    pub discovers_sent: u64,
    pub offers_received: u64,
    pub requests_sent: u64,
    pub acks_received: u64,
    pub drop_pct: f64,
    pub discover_offer_ms: Delay,
    pub request_ack_ms: Delay,
    /// xdhcpd's counters over the step (null for Kea).
    pub server: Value,
    pub perfdhcp_output: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Ladder {
    pub steps: Vec<Step>,
    /// Index into `steps` of the result.
    pub best: Option<usize>,
    pub stop: Stop,
}

impl Ladder {
    pub fn best(&self) -> Option<&Step> {
        self.best.and_then(|i| self.steps.get(i))
    }
}

/// One xdhcpgen run.
#[derive(Clone, Debug, Serialize)]
pub struct GenRun {
    pub scenario: &'static str,
    /// 1 for the first run of a repeated measurement.
    pub run: u32,
    /// Exchanges started per second; 0: open loop within the window.
    pub target_rate: f64,
    pub window: u32,
    pub seconds: u64,
    /// xdhcpgen's `leases_per_sec`: completed exchanges per second (for
    /// the echo, round trips per second).
    pub per_s: f64,
    pub completed: u64,
    pub timeouts: u64,
    /// p50/p99 of the whole DORA (for the echo: of one round trip), µs.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub summary: Value,
    pub server: Value,
}

#[cfg(test)]
impl GenRun {
    /// A DORA run at `per_s` leases/s with this p99, for the tests of
    /// what the report makes of runs.
    pub(crate) fn sample(per_s: f64, p99_us: u64) -> GenRun {
        GenRun {
            scenario: "dora",
            run: 1,
            target_rate: 0.0,
            window: 2048,
            seconds: 10,
            per_s,
            completed: 1000,
            timeouts: 0,
            p50_us: Some(100),
            p99_us: Some(p99_us),
            summary: Value::Null,
            server: Value::Null,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub server: Server,
    pub perfdhcp: Option<Ladder>,
    /// The open-loop run the table shows (for Kea the better window).
    pub xdhcpgen: Option<GenRun>,
    /// The other open-loop runs: repeats, and for Kea the other window.
    pub xdhcpgen_other: Vec<GenRun>,
    /// At half the open loop's rate: the run with the median p99.
    pub half_rate: Option<GenRun>,
    pub half_rate_other: Vec<GenRun>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Machine {
    pub nproc: usize,
    /// The core xdhcpgen's worker is pinned to: the last one, when there
    /// are two or more.
    pub gen_core: Option<usize>,
    pub cpu: String,
    pub kernel: String,
    pub kea: String,
    pub date: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let output = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "?".into())
        };
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        Machine {
            nproc,
            gen_core: (nproc >= 2).then(|| nproc - 1),
            cpu,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "?".into()),
            kea: output("kea-dhcp4", &["-v"]),
            date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{} cores (nproc), {}, Linux {}, kea-dhcp4 {}, {}",
            self.nproc, self.cpu, self.kernel, self.kea, self.date
        )
    }
}

/// Runs the whole benchmark; `target_dir` is the workspace's target dir,
/// the results go to `target_dir/bench/`.
pub fn run(args: &BenchArgs, target_dir: &Path) -> Result<()> {
    ensure!(is_root(), "the bench needs root (namespaces, XDP)");
    ensure!(!args.rates.is_empty(), "--rates needs at least one rate");
    ensure!(
        args.rates.windows(2).all(|w| w[0] < w[1]) && args.rates[0] > 0,
        "--rates must rise step by step"
    );
    ensure!(
        args.step_seconds > 0 && args.gen_seconds > 0 && args.window > 0,
        "--step-seconds, --gen-seconds and --window must be at least 1"
    );
    let (bin, gen_bin) = release_bins()?;
    // The echo ceiling: xdhcpecho, built beside xdhcpd, is started from the
    // same folder as the copied xdhcpd (bench/run.rs).
    let echo_bin = bin.with_file_name("xdhcpecho");
    ensure!(
        echo_bin.exists(),
        "{} does not exist: run `cargo build --release -p dhcp-user -p xdhcpgen` first",
        echo_bin.display()
    );
    for tool in ["perfdhcp", "kea-dhcp4"] {
        run_cmd(Command::new("sh").args(["-c", &format!("command -v {tool}")]))
            .with_context(|| format!("{tool} is not installed: run `cargo xtask setup`"))?;
    }
    let out_dir = target_dir.join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let json_path = out_dir.join("bench.json");
    let md_path = out_dir.join("bench.md");

    let (scratch, fs) = Scratch::on_disk("xdhcp-bench", "the journals and Kea's lease file need")?;
    // Copies, so that a rebuild during the run cannot change the binaries
    // half-way.
    let copy = |from: &Path| -> Result<PathBuf> {
        let to = scratch.0.join(from.file_name().context("binary name")?);
        std::fs::copy(from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        Ok(to)
    };
    let (bin, gen_bin) = (copy(&bin)?, copy(&gen_bin)?);
    copy(&echo_bin)?;
    catch_sigint();
    let machine = Machine::read();
    println!("bench: {}", machine.line());
    println!(
        "bench: binaries copied, journals and lease files under {} ({fs}); results to {}",
        scratch.0.display(),
        out_dir.display()
    );
    if let Some(c) = machine.gen_core {
        println!("bench: xdhcpgen's worker pinned to core {c}");
    }

    let mut opts = LabOptions::new(LAB);
    opts.client_addr = Some(CLIENT_ADDR.to_owned());
    let mut lab = Lab::up(&opts)?;
    // For the lab of two queues, after this one is down.
    let bins = (bin.clone(), gen_bin.clone());
    let ctx = run::Ctx {
        lab: &lab,
        bin,
        gen_bin,
        scratch: &scratch.0,
        args,
        gen_core: machine.gen_core,
        queues: 1,
        gen_poll: None,
    };
    let mut rows = Vec::new();
    for server in Server::ALL {
        if interrupted() {
            break;
        }
        println!("bench: {}", server.label());
        let mut row = Row {
            server,
            perfdhcp: None,
            xdhcpgen: None,
            xdhcpgen_other: Vec::new(),
            half_rate: None,
            half_rate_other: Vec::new(),
            error: None,
        };
        if let Err(e) = run::fill_row(&ctx, &mut row) {
            eprintln!("bench: {} failed: {e:#}", server.label());
            row.error = Some(format!("{e:#}"));
        }
        rows.push(row);
        report::write_json(&json_path, &machine, args, &rows, None, false)?;
    }
    let down = lab.down();
    // One queue against two, in a lab whose veth ends have two.
    let lanes = if interrupted() {
        queues::QueueFigures {
            error: Some("interrupted".to_owned()),
            ..Default::default()
        }
    } else {
        queues::in_own_lab(bins, &scratch.0, args, machine.gen_core)
    };
    if let Some(e) = &lanes.error {
        eprintln!("bench: one queue against two failed: {e}");
    }
    let complete = !interrupted() && rows.len() == Server::ALL.len() && lanes.error.is_none();
    report::write_json(&json_path, &machine, args, &rows, Some(&lanes), complete)?;
    // The engine alone, after the lab (no root, no network): timed by
    // criterion beside dhcproto, counted by callgrind, and driven from 1
    // and 2 threads.
    println!("bench: the engine alone (criterion, callgrind, scaling)");
    let engine = report::EngineFigures {
        ns: engine_time::measure(target_dir).map_err(|e| format!("{e:#}")),
        instructions: instructions::measure(target_dir).map_err(|e| format!("{e:#}")),
        scaling: inproc::scaling_ratio(SCALING_ROUNDS).map_err(|e| format!("{e:#}")),
    };
    let md = report::render_report(&machine, args, &rows, &engine, &lanes);
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    println!("\n{md}");
    println!(
        "bench: every step in {}, the table in {}",
        json_path.display(),
        md_path.display()
    );
    down?;
    if interrupted() {
        bail!("interrupted: the table holds what was measured until then");
    }
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.server.label())
        .collect();
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    if let Some(e) = lanes.error {
        bail!("one queue against two failed: {e}");
    }
    Ok(())
}
