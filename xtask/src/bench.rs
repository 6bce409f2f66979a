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
use crate::bench_journal::{CONFIG as XDHCPD_CONFIG, JOURNAL_BASE, Scratch, fs_type, run_bounded};
use crate::daemon::{Daemon, release_bins};
use crate::kea::Kea;
use crate::lab::{Lab, LabOptions, run as run_cmd};
use crate::perfdhcp;
use anyhow::{Context, Result, bail, ensure};
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The lab's name: not `xdt…`, which `cargo xtask test` sweeps away.
pub const LAB: &str = "xdbk";
/// kea-dhcp4's configuration: the same /15 pool as xdhcpd's.
const KEA_CONFIG: &str = include_str!("../configs/kea-bench.json");
/// ISC's threshold: a step with more failed exchanges than this ends the
/// ladder.
pub const MAX_DROP_PCT: f64 = 2.5;
/// A step that completes less than this share of its target rate within
/// the drop threshold shows perfdhcp's own limit: the ladder ends there.
pub const LOAD_LIMIT_SHARE: f64 = 0.9;
const EXPECT_SUBNET: &str = "198.18.0.0/15";
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

/// Share of started DORA exchanges (DISCOVERs sent) that got no ACK.
pub fn drop_pct(discovers_sent: u64, acks_received: u64) -> f64 {
    if discovers_sent == 0 {
        return 100.0;
    }
    100.0 * discovers_sent.saturating_sub(acks_received) as f64 / discovers_sent as f64
}

/// Why a perfdhcp ladder ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Stop {
    /// More than [`MAX_DROP_PCT`] of the exchanges failed at this target.
    Drops {
        target: u32,
        drop_pct: f64,
    },
    /// perfdhcp completed less than [`LOAD_LIMIT_SHARE`] of this target
    /// without dropping: it could not load the server harder.
    LoadLimit {
        target: u32,
        rate: f64,
    },
    /// Every rate asked for was within the threshold.
    LastStep,
    Interrupted,
}

/// The step/stop rule: whether the ladder ends after a step that asked
/// for `target` DORA/s, completed `rate` and lost `drop_pct` %.
pub fn stop_after(target: u32, rate: f64, drop_pct: f64) -> Option<Stop> {
    if drop_pct > MAX_DROP_PCT {
        Some(Stop::Drops { target, drop_pct })
    } else if rate < LOAD_LIMIT_SHARE * f64::from(target) {
        Some(Stop::LoadLimit { target, rate })
    } else {
        None
    }
}

/// The index of the median of `values` (the lower one of an even count).
pub fn median_index(values: &[f64]) -> Option<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    order.get(values.len().checked_sub(1)? / 2).copied()
}

/// Whether a step is run once more before its verdict stands: a step
/// over the drop threshold is confirmed by a second run (one noisy run of
/// the lab must not end a ladder); perfdhcp's own limit is not.
pub fn try_again(verdict: Option<Stop>, attempt: u32) -> bool {
    attempt < 2 && matches!(verdict, Some(Stop::Drops { .. }))
}

/// The ladder's result: the index of the step with the highest completed
/// rate among those with at most [`MAX_DROP_PCT`] drops; `steps` holds
/// (completed rate, drop %) per step.
pub fn best_step(steps: &[(f64, f64)]) -> Option<usize> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, (_, d))| *d <= MAX_DROP_PCT)
        .max_by(|(_, (a, _)), (_, (b, _))| a.total_cmp(b))
        .map(|(i, _)| i)
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

// ---------------------------------------------------------------------
// The table.

/// perfdhcp's result for one row, as the table shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct PerfCell {
    pub rate: f64,
    /// The ladder ended because perfdhcp could not send faster.
    pub load_limited: bool,
    pub discover_offer_avg_ms: Option<f64>,
    pub request_ack_avg_ms: Option<f64>,
}

/// What one row of the table shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Cells {
    pub server: Server,
    pub perfdhcp: Option<PerfCell>,
    /// Leases per second under xdhcpgen (the echo: round trips ÷ 2).
    pub leases_per_s: Option<f64>,
    /// The echo only: round trips per second.
    pub round_trips_per_s: Option<f64>,
    /// xdhcpgen's window, shown where it is not the common one.
    pub window: Option<u32>,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub failed: bool,
}

impl Cells {
    pub fn of(row: &Row) -> Cells {
        let echo = row.server == Server::EchoCeiling;
        let perfdhcp = row.perfdhcp.as_ref().and_then(|l| {
            let s = l.best()?;
            Some(PerfCell {
                rate: s.rate?,
                load_limited: matches!(l.stop, Stop::LoadLimit { .. }),
                discover_offer_avg_ms: s.discover_offer_ms.avg,
                request_ack_avg_ms: s.request_ack_ms.avg,
            })
        });
        let g = row.xdhcpgen.as_ref();
        Cells {
            server: row.server,
            perfdhcp,
            leases_per_s: g.map(|g| if echo { g.per_s / 2.0 } else { g.per_s }),
            round_trips_per_s: g.filter(|_| echo).map(|g| g.per_s),
            window: g.map(|g| g.window),
            p50_us: g.and_then(|g| g.p50_us),
            p99_us: g.and_then(|g| g.p99_us),
            failed: row.error.is_some(),
        }
    }
}

/// 12345.6 → "12,346".
pub fn thousands(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// The markdown table: one row per server, the ratios on the xdhcpd rows;
/// a row driven with another window than `window` says so.
pub fn render_table(rows: &[Cells], window: u32) -> String {
    let find = |s: Server| rows.iter().find(|c| c.server == s);
    let ceiling = find(Server::EchoCeiling).and_then(|c| c.leases_per_s);
    let dash = || "—".to_owned();
    let mut t = String::new();
    t.push_str(
        "| server | perfdhcp: DORA/s at ≤ 2.5 % drops ¹ | perfdhcp avg delay D→O / R→A ¹ \
         | xdhcpgen leases/s ² | xdhcpgen DORA p50 / p99 ² | xdhcpd / Kea ³ | xdhcpd / ceiling ³ |\n",
    );
    t.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for c in rows {
        let failed = |s: String| {
            if c.failed && s == "—" {
                "failed".into()
            } else {
                s
            }
        };
        let perf = c.perfdhcp.as_ref().map_or_else(dash, |p| {
            format!(
                "{}{}",
                if p.load_limited { "≥ " } else { "" },
                thousands(p.rate)
            )
        });
        let delay = c.perfdhcp.as_ref().map_or_else(dash, |p| {
            let ms = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.2}"));
            format!(
                "{} / {} ms",
                ms(p.discover_offer_avg_ms),
                ms(p.request_ack_avg_ms)
            )
        });
        let gen_cell = match (c.leases_per_s, c.round_trips_per_s) {
            (Some(l), Some(rt)) => {
                format!("{} ({} round trips/s ÷ 2) ⁴", thousands(l), thousands(rt))
            }
            (Some(l), None) => match c.window {
                Some(w) if w != window => format!("{} (window {w})", thousands(l)),
                _ => thousands(l),
            },
            _ => dash(),
        };
        let lat = match (c.p50_us, c.p99_us) {
            (Some(a), Some(b)) if c.server == Server::EchoCeiling => {
                format!(
                    "{} / {} µs (one round trip) ⁴",
                    thousands(a as f64),
                    thousands(b as f64)
                )
            }
            (Some(a), Some(b)) => format!("{} / {} µs", thousands(a as f64), thousands(b as f64)),
            _ => dash(),
        };
        let vs_kea = c
            .server
            .kea_peer()
            .and_then(find)
            .and_then(|k| {
                let gen_ratio = ratio(c.leases_per_s, k.leases_per_s)?;
                // perfdhcp's ratio means something only where it loaded
                // Kea to its limit; where it could not load xdhcpd to
                // xdhcpd's, the ratio is a lower bound.
                let perf_ratio = match (&c.perfdhcp, &k.perfdhcp) {
                    (Some(x), Some(k)) if !k.load_limited => ratio(Some(x.rate), Some(k.rate))
                        .map(|r| (r, if x.load_limited { "≥ " } else { "" })),
                    _ => None,
                };
                Some(match perf_ratio {
                    Some((p, bound)) => format!("{gen_ratio:.1}× (perfdhcp {bound}{p:.1}×)"),
                    None => format!("{gen_ratio:.1}×"),
                })
            })
            .unwrap_or_else(dash);
        let vs_ceiling = if c.server.is_xdhcpd() {
            ratio(c.leases_per_s, ceiling).map_or_else(dash, |r| format!("{:.0} %", 100.0 * r))
        } else {
            dash()
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} |",
            c.server.label(),
            failed(perf),
            failed(delay),
            failed(gen_cell),
            failed(lat),
            vs_kea,
            vs_ceiling
        );
    }
    t
}

/// Why each ladder ended, in words, with what xdhcpd itself counted at
/// that step (so a loss on perfdhcp's side shows as such).
fn ladder_notes(rows: &[Row]) -> Vec<String> {
    let mut notes = Vec::new();
    for row in rows {
        let Some(l) = &row.perfdhcp else { continue };
        let name = row.server.label();
        let best = l.best().map_or("no step within 2.5 %".to_owned(), |s| {
            format!(
                "best step {}/s asked, {}/s completed",
                thousands(f64::from(s.target)),
                thousands(s.rate.unwrap_or(0.0))
            )
        });
        let why = match l.stop {
            Stop::Drops { target, drop_pct } => {
                let mut s = format!(
                    "stopped at {}/s asked: {drop_pct:.1} % of the exchanges failed",
                    thousands(f64::from(target))
                );
                if let Some(step) = l.steps.last()
                    && let Some(answered) = answered_share(&step.server)
                {
                    let _ = write!(
                        s,
                        "; xdhcpd answered {:.2} % of the DISCOVERs and REQUESTs that reached it{}",
                        100.0 * answered,
                        if answered > 0.999 {
                            " (the replies were lost on perfdhcp's side)"
                        } else {
                            ""
                        }
                    );
                }
                s
            }
            Stop::LoadLimit { target, rate } => format!(
                "stopped at {}/s asked: perfdhcp completed only {}/s, within 2.5 % drops — \
                 perfdhcp could not send faster, so the server's limit lies higher",
                thousands(f64::from(target)),
                thousands(rate)
            ),
            Stop::LastStep => "every rate asked was within 2.5 %".to_owned(),
            Stop::Interrupted => "interrupted".to_owned(),
        };
        notes.push(format!("{name}: {best}; {why}."));
    }
    notes
}

/// Every xdhcpgen run of each row, by window, in run order, so the
/// spread behind each median shows.
fn runs_notes(rows: &[Row]) -> Vec<String> {
    let mut notes = Vec::new();
    for row in rows {
        let echo = row.server == Server::EchoCeiling;
        let mut open: Vec<&GenRun> = row.xdhcpgen.iter().chain(&row.xdhcpgen_other).collect();
        open.sort_by_key(|g| (std::cmp::Reverse(g.window), g.run));
        let mut parts = Vec::new();
        let mut windows: Vec<u32> = open.iter().map(|g| g.window).collect();
        windows.dedup();
        for w in windows {
            let v: Vec<String> = open
                .iter()
                .filter(|g| g.window == w)
                .map(|g| thousands(g.per_s))
                .collect();
            parts.push(format!(
                "window {w}: {} {}",
                v.join(", "),
                if echo { "round trips/s" } else { "leases/s" }
            ));
        }
        let mut half: Vec<&GenRun> = row.half_rate.iter().chain(&row.half_rate_other).collect();
        half.sort_by_key(|g| g.run);
        if !half.is_empty() {
            let v: Vec<String> = half
                .iter()
                .map(|g| g.p99_us.map_or("?".into(), |p| thousands(p as f64)))
                .collect();
            parts.push(format!("at half rate, p99 {} µs", v.join(", ")));
        }
        if !parts.is_empty() {
            notes.push(format!("{}: {}", row.server.label(), parts.join("; ")));
        }
    }
    notes
}

/// (offers + acks) / (discovers + requests) from xdhcpd's counters.
fn answered_share(stats: &Value) -> Option<f64> {
    let n = |p: &str| stats.pointer(p).and_then(Value::as_u64);
    let asked = n("/total/discover")? + n("/total/request")?;
    let answered = n("/total/offer")? + n("/total/ack")?;
    (asked > 0).then(|| answered as f64 / asked as f64)
}

/// The whole report: machine, table, footnotes, latency at half the
/// maximum rate, and the issue's goals against what was measured.
pub fn render_report(machine: &Machine, args: &BenchArgs, rows: &[Row]) -> String {
    let cells: Vec<Cells> = rows.iter().map(Cells::of).collect();
    let mut md = String::new();
    let _ = writeln!(md, "Machine: {}.", machine.line());
    let _ = writeln!(
        md,
        "Lab: one veth pair between two network namespaces, XDP in driver mode, AF_XDP in copy \
         mode, one queue; servers, perfdhcp and xdhcpgen share the machine's cores.\n"
    );
    md.push_str(&render_table(&cells, args.window));
    let rates: Vec<String> = args
        .rates
        .iter()
        .map(|r| thousands(f64::from(*r)))
        .collect();
    let _ = writeln!(
        md,
        "\n1. perfdhcp (Kea {}), ISC's method: target rates {} DORA/s, {} s each, a fresh server \
         per step, clients drawn from {} MACs; a step's drops are the DISCOVERs that did not end \
         in an ACK, and a step over 2.5 % is run a second time and ends the ladder only if that \
         run fails too. The column is perfdhcp's own completed rate (its \"Rate:\" line) at the best \
         step with ≤ 2.5 % drops; \"≥\" marks a ladder that ended because perfdhcp could not send \
         any faster (below {:.0} % of the target, without drops), so the server's limit lies higher. \
         perfdhcp reports min/avg/max delays only, no percentiles: the delay column is its \
         average DISCOVER→OFFER and REQUEST→ACK at that step.",
        machine.kea,
        rates.join(", "),
        args.step_seconds,
        thousands(f64::from(PERFDHCP_CLIENTS)),
        100.0 * LOAD_LIMIT_SHARE
    );
    let _ = writeln!(
        md,
        "2. xdhcpgen (the bundled generator, AF_XDP) open loop with {} exchanges in flight (the \
         window `cargo xtask bench journal` found best), starting exchanges for {} s, {} simulated \
         clients, a fresh server per run; Kea is driven with a window of {KEA_WINDOW} too (its \
         packet queue) and the better of its two runs is shown. Leases/s are the completed DORA \
         exchanges over the time to the last one, p50/p99 of the whole DORA (first DISCOVER to \
         ACK) from its histogram: at the maximum rate they are mostly the wait inside the window. \
         {}",
        args.window,
        args.gen_seconds,
        thousands(f64::from(GEN_CLIENTS)),
        match machine.gen_core {
            Some(c) => format!(
                "xdhcpgen's worker is pinned to core {c} (`--cores {c}`), away from xdhcpd's \
                 worker, which pins itself to core 0 (xdhcpgen would pin itself there too)."
            ),
            None => "xdhcpgen and the server share the one core.".to_owned(),
        }
    );
    let _ = writeln!(
        md,
        "3. xdhcpd fast is held against Kea without persistence, durable against Kea with its \
         lease file (like for like), on xdhcpgen's leases/s (perfdhcp's in parentheses); the \
         ceiling ratio is xdhcpd's leases/s over the echo's."
    );
    let _ = writeln!(
        md,
        "4. The ceiling: `xdhcpecho`, the daemon's own XDP program, AF_XDP workers, batch, \
         ring and UMEM sizes with the engine replaced by an address swap, driven by \
         `xdhcpgen --scenario echo`, which counts each DISCOVER that comes back as one round \
         trip. A DORA is two round trips, so the ceiling in leases/s is round trips/s ÷ 2; its \
         latency is that of one round trip."
    );
    let notes = ladder_notes(rows);
    if !notes.is_empty() {
        md.push_str("\nperfdhcp ladders:\n");
        for n in notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    let runs = runs_notes(rows);
    if !runs.is_empty() {
        let _ = writeln!(
            md,
            "\nxdhcpgen runs, in order (the table shows the median of each; for Kea the better \
             window):"
        );
        for n in runs {
            let _ = writeln!(md, "- {n}");
        }
    }
    let half: Vec<&Row> = rows.iter().filter(|r| r.half_rate.is_some()).collect();
    if !half.is_empty() {
        md.push_str(
            "\nDORA latency at half the maximum rate (xdhcpgen `--rate`, same window; the run \
             with the median p99):\n",
        );
        for r in half {
            let Some(h) = &r.half_rate else { continue };
            let _ = writeln!(
                md,
                "- {}: {}/s asked, {}/s completed, p50 {} µs, p99 {} µs, {} timeouts",
                r.server.label(),
                thousands(h.target_rate),
                thousands(h.per_s),
                h.p50_us.map_or("?".into(), |v| thousands(v as f64)),
                h.p99_us.map_or("?".into(), |v| thousands(v as f64)),
                h.timeouts
            );
        }
    }
    md.push_str("\nGoals of issue 5, as measured in this run:\n");
    let find = |s: Server| cells.iter().find(|c| c.server == s);
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    for s in [Server::XdhcpdFast, Server::XdhcpdDurable] {
        let Some(c) = find(s) else { continue };
        if let Some(r) = s
            .kea_peer()
            .and_then(find)
            .and_then(|k| ratio(c.leases_per_s, k.leases_per_s))
        {
            let _ = writeln!(
                md,
                "- {} ≥ 25× {}: {r:.1}× ({})",
                s.label(),
                s.kea_peer().map_or("", Server::label),
                verdict(r >= 25.0)
            );
        }
        if let Some(r) = ratio(
            c.leases_per_s,
            find(Server::EchoCeiling).and_then(|e| e.leases_per_s),
        ) {
            let _ = writeln!(
                md,
                "- {} ≥ 70 % of the echo ceiling: {:.0} % ({})",
                s.label(),
                100.0 * r,
                verdict(r >= 0.7)
            );
        }
        if let Some(p99) = rows
            .iter()
            .find(|r| r.server == s)
            .and_then(|r| r.half_rate.as_ref())
            .and_then(|h| h.p99_us)
        {
            let _ = writeln!(
                md,
                "- {} p99 DORA < 1 ms at half the maximum rate: {} µs ({})",
                s.label(),
                thousands(p99 as f64),
                verdict(p99 < 1000)
            );
        }
    }
    for r in rows {
        if let Some(e) = &r.error {
            let _ = writeln!(md, "\n{} failed: {e}", r.server.label());
        }
    }
    md
}

// ---------------------------------------------------------------------
// Running it.

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Ctrl-C reaches perfdhcp, xdhcpgen and the servers (they stop); the
/// bench stays alive to write what it measured and take the lab down. A
/// handler, unlike SIG_IGN, is not inherited across exec.
fn catch_sigint() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
}

struct Ctx<'a> {
    lab: &'a Lab,
    bin: PathBuf,
    gen_bin: PathBuf,
    scratch: &'a Path,
    args: &'a BenchArgs,
    gen_core: Option<usize>,
}

/// A server under test, with the directory of its journal or lease file.
struct Running {
    kind: RunningKind,
    dir: PathBuf,
}

enum RunningKind {
    Xdhcpd(Daemon),
    Kea(Kea),
}

impl Running {
    /// Stops it; xdhcpd's last stats (null for Kea).
    fn stop(self) -> Result<Value> {
        let res = match self.kind {
            RunningKind::Xdhcpd(d) => d.stop(),
            RunningKind::Kea(k) => k.stop().map(|_| Value::Null),
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        res
    }
}

fn start_server(ctx: &Ctx, server: Server, tag: &str) -> Result<Running> {
    let dir = ctx.scratch.join(tag);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lab = ctx.lab;
    let kind = match server {
        Server::KeaMemfile | Server::KeaPersist => {
            let config = KEA_CONFIG
                .replace("@INTERFACE@", &lab.srv_if)
                .replace(
                    "@PERSIST@",
                    if server == Server::KeaPersist {
                        "true"
                    } else {
                        "false"
                    },
                )
                .replace(
                    "@LEASE_FILE@",
                    &dir.join("kea-leases4.csv").to_string_lossy(),
                );
            RunningKind::Kea(Kea::start(lab, &config)?)
        }
        Server::XdhcpdFast | Server::XdhcpdDurable | Server::EchoCeiling => {
            let mode = if server == Server::XdhcpdDurable {
                "durable"
            } else {
                "fast"
            };
            let config = XDHCPD_CONFIG
                .replace("@INTERFACE@", &lab.srv_if)
                .replace("@JOURNAL_DIR@", &dir.to_string_lossy())
                .replace("@MODE@", mode);
            // The echo (xdhcpecho, built beside xdhcpd) takes the same
            // config and flags.
            let bin = if server == Server::EchoCeiling {
                ctx.bin.with_file_name("xdhcpecho")
            } else {
                ctx.bin.clone()
            };
            RunningKind::Xdhcpd(Daemon::start(lab, &bin, &config)?)
        }
    };
    Ok(Running { kind, dir })
}

fn perfdhcp_step(ctx: &Ctx, server: Server, target: u32) -> Result<Step> {
    let srv = start_server(ctx, server, &format!("{}-perfdhcp-{target}", server.key()))?;
    let secs = ctx.args.step_seconds;
    let out = run_bounded(
        ctx.lab
            .cli("perfdhcp")
            .args(["-4", "-l", &ctx.lab.cli_if])
            .args(["-r", &target.to_string()])
            .args(["-R", &PERFDHCP_CLIENTS.to_string()])
            .args(["-p", &secs.to_string()]),
        Duration::from_secs(secs + 60),
    );
    let stats = srv.stop();
    let out = out?;
    let stats = stats?;
    let r = perfdhcp::parse(&out);
    let (Some(d), Some(a)) = (r.exchange("DISCOVER-OFFER"), r.exchange("REQUEST-ACK")) else {
        bail!("perfdhcp printed no DISCOVER-OFFER and REQUEST-ACK statistics:\n{out}");
    };
    let delay = |e: &perfdhcp::Exchange| Delay {
        min: e.min_ms,
        avg: e.avg_ms,
        max: e.max_ms,
    };
    Ok(Step {
        target,
        attempt: 1,
        rate: r.rate,
        discovers_sent: d.sent,
        offers_received: d.received,
        requests_sent: a.sent,
        acks_received: a.received,
        drop_pct: drop_pct(d.sent, a.received),
        discover_offer_ms: delay(d),
        request_ack_ms: delay(a),
        server: stats,
        perfdhcp_output: out,
    })
}

fn ladder(ctx: &Ctx, server: Server) -> Result<Ladder> {
    let mut steps = Vec::new();
    let mut stop = Stop::LastStep;
    for &target in &ctx.args.rates {
        if interrupted() {
            stop = Stop::Interrupted;
            break;
        }
        let mut verdict = None;
        for attempt in 1.. {
            let mut s = perfdhcp_step(ctx, server, target)?;
            s.attempt = attempt;
            let rate = s.rate.unwrap_or(0.0);
            let ms = |v: Option<f64>| v.map_or("?".into(), |v| format!("{v:.3}"));
            println!(
                "  {:<32} perfdhcp {:>6}/s asked: {:>8.0}/s completed, drops {:>6.2} %, avg delay D→O {} ms, R→A {} ms{}",
                server.label(),
                target,
                rate,
                s.drop_pct,
                ms(s.discover_offer_ms.avg),
                ms(s.request_ack_ms.avg),
                if attempt > 1 { " (again)" } else { "" }
            );
            verdict = stop_after(target, rate, s.drop_pct);
            steps.push(s);
            if !try_again(verdict, attempt) || interrupted() {
                break;
            }
        }
        if let Some(v) = verdict {
            stop = v;
            break;
        }
    }
    let pairs: Vec<(f64, f64)> = steps
        .iter()
        .map(|s| (s.rate.unwrap_or(0.0), s.drop_pct))
        .collect();
    Ok(Ladder {
        best: best_step(&pairs),
        steps,
        stop,
    })
}

/// xdhcpgen against a fresh `server`: open loop (`rate` 0) or at `rate`
/// exchanges per second, `window` exchanges in flight at most.
fn gen_run(ctx: &Ctx, server: Server, rate: f64, window: u32, run: u32) -> Result<GenRun> {
    let echo = server == Server::EchoCeiling;
    let what = if rate > 0.0 { "half" } else { "max" };
    let tag = format!("{}-xdhcpgen-{what}-w{window}-{run}", server.key());
    let json_path = ctx.scratch.join(format!("{tag}.json"));
    let srv = start_server(ctx, server, &tag)?;
    let scenario = if echo { "echo" } else { "dora" };
    let a = ctx.args;
    let mut cmd = ctx.lab.cli(&ctx.gen_bin.to_string_lossy());
    cmd.args(["--interface", &ctx.lab.cli_if, "--no-progress"])
        .args(["--xdp-mode", "driver", "--bind", "copy"])
        .args(["--scenario", scenario])
        .args(["--clients", &GEN_CLIENTS.to_string()])
        .args(["--window", &window.to_string()])
        .args(["--duration", &a.gen_seconds.to_string()])
        .args(["--rate", &format!("{rate:.0}")])
        .arg("--json")
        .arg(&json_path);
    if !echo {
        cmd.args(["--expect-subnet", EXPECT_SUBNET]);
    }
    if let Some(core) = ctx.gen_core {
        cmd.args(["--cores", &core.to_string()]);
    }
    let out = run_bounded(&mut cmd, Duration::from_secs(a.gen_seconds + 90));
    let stats = srv.stop();
    let out = out?;
    let stats = stats?;
    let summary: Value = serde_json::from_slice(
        &std::fs::read(&json_path).with_context(|| format!("xdhcpgen wrote no JSON:\n{out}"))?,
    )
    .context("parsing xdhcpgen's JSON")?;
    let _ = std::fs::remove_file(&json_path);
    let n = |p: &str| summary.pointer(p).and_then(Value::as_u64);
    let completed = n("/completed").unwrap_or(0);
    ensure!(
        completed > 0,
        "xdhcpgen completed no exchange against {}:\n{out}",
        server.label()
    );
    let kind = if echo { "offer" } else { "dora" };
    let run = GenRun {
        scenario,
        run,
        target_rate: rate,
        window,
        seconds: a.gen_seconds,
        per_s: summary["leases_per_sec"].as_f64().unwrap_or(0.0),
        completed,
        timeouts: n("/timeouts").unwrap_or(0),
        p50_us: n(&format!("/latency_us/{kind}/p50")),
        p99_us: n(&format!("/latency_us/{kind}/p99")),
        summary,
        server: stats,
    };
    println!(
        "  {:<32} xdhcpgen {scenario} {}: {:.0}/s completed ({} in all, {} timeouts), p50 {} µs, p99 {} µs",
        server.label(),
        if rate > 0.0 {
            format!("at {rate:.0}/s")
        } else {
            format!("open loop, window {window}")
        },
        run.per_s,
        run.completed,
        run.timeouts,
        run.p50_us.unwrap_or(0),
        run.p99_us.unwrap_or(0)
    );
    Ok(run)
}

/// `--repeat` runs of one xdhcpgen measurement: the run with the median
/// `key`, and the others.
fn repeated(
    ctx: &Ctx,
    server: Server,
    rate: f64,
    window: u32,
    key: fn(&GenRun) -> f64,
) -> Result<(GenRun, Vec<GenRun>)> {
    let mut runs = Vec::new();
    for run in 1..=ctx.args.repeat.max(1) {
        if interrupted() && !runs.is_empty() {
            break;
        }
        runs.push(gen_run(ctx, server, rate, window, run)?);
    }
    let keys: Vec<f64> = runs.iter().map(key).collect();
    let i = median_index(&keys).context("no xdhcpgen run")?;
    let median = runs.remove(i);
    Ok((median, runs))
}

fn fill_row(ctx: &Ctx, row: &mut Row) -> Result<()> {
    let server = row.server;
    if server != Server::EchoCeiling {
        row.perfdhcp = Some(ladder(ctx, server)?);
    }
    if interrupted() {
        return Ok(());
    }
    let per_s = |g: &GenRun| g.per_s;
    let (mut g, others) = repeated(ctx, server, 0.0, ctx.args.window, per_s)?;
    row.xdhcpgen_other = others;
    if matches!(server, Server::KeaMemfile | Server::KeaPersist)
        && ctx.args.window != KEA_WINDOW
        && !interrupted()
    {
        let (other, mut rest) = repeated(ctx, server, 0.0, KEA_WINDOW, per_s)?;
        if other.per_s > g.per_s {
            rest.push(std::mem::replace(&mut g, other));
        } else {
            rest.push(other);
        }
        row.xdhcpgen_other.append(&mut rest);
    }
    let max = g.per_s;
    row.xdhcpgen = Some(g);
    if server.is_xdhcpd() && !interrupted() && max > 0.0 {
        let p99 = |g: &GenRun| g.p99_us.map_or(f64::MAX, |v| v as f64);
        let (h, others) = repeated(ctx, server, (max / 2.0).round(), ctx.args.window, p99)?;
        row.half_rate = Some(h);
        row.half_rate_other = others;
    }
    Ok(())
}

fn write_json(
    path: &Path,
    machine: &Machine,
    args: &BenchArgs,
    rows: &[Row],
    complete: bool,
) -> Result<()> {
    let doc = json!({
        "machine": machine,
        "settings": {
            "args": args,
            "max_drop_pct": MAX_DROP_PCT,
            "load_limit_share": LOAD_LIMIT_SHARE,
            "perfdhcp_clients": PERFDHCP_CLIENTS,
            "xdhcpgen_clients": GEN_CLIENTS,
        },
        "complete": complete,
        "rows": rows,
    });
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// Runs the whole benchmark; `target_dir` is the workspace's target dir,
/// the results go to `target_dir/bench/`.
pub fn run(args: &BenchArgs, target_dir: &Path) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "the bench needs root (namespaces, XDP)"
    );
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
    for tool in ["perfdhcp", "kea-dhcp4"] {
        run_cmd(Command::new("sh").args(["-c", &format!("command -v {tool}")]))
            .with_context(|| format!("{tool} is not installed: run `cargo xtask setup`"))?;
    }
    let out_dir = target_dir.join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let json_path = out_dir.join("bench.json");
    let md_path = out_dir.join("bench.md");

    let scratch =
        Scratch(PathBuf::from(JOURNAL_BASE).join(format!("xdhcp-bench-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)
        .with_context(|| format!("creating {}", scratch.0.display()))?;
    let fs = fs_type(&scratch.0)?;
    ensure!(
        fs != "tmpfs" && fs != "ramfs",
        "{} is on {fs}: the journals and Kea's lease file need a disk-backed file system",
        scratch.0.display()
    );
    // Copies, so that a rebuild during the run cannot change the binaries
    // half-way.
    let copy = |from: &Path| -> Result<PathBuf> {
        let to = scratch.0.join(from.file_name().context("binary name")?);
        std::fs::copy(from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        Ok(to)
    };
    let (bin, gen_bin) = (copy(&bin)?, copy(&gen_bin)?);
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
    opts.client_addr = Some("198.18.0.2/15".to_owned());
    let mut lab = Lab::up(&opts)?;
    let ctx = Ctx {
        lab: &lab,
        bin,
        gen_bin,
        scratch: &scratch.0,
        args,
        gen_core: machine.gen_core,
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
        if let Err(e) = fill_row(&ctx, &mut row) {
            eprintln!("bench: {} failed: {e:#}", server.label());
            row.error = Some(format!("{e:#}"));
        }
        rows.push(row);
        write_json(&json_path, &machine, args, &rows, false)?;
    }
    let down = lab.down();
    let complete = !interrupted() && rows.len() == Server::ALL.len();
    write_json(&json_path, &machine, args, &rows, complete)?;
    let md = render_report(&machine, args, &rows);
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_count_exchanges_without_an_ack() {
        assert_eq!(drop_pct(1000, 1000), 0.0);
        assert_eq!(drop_pct(1000, 975), 2.5);
        assert_eq!(drop_pct(1000, 1200), 0.0);
        assert_eq!(drop_pct(0, 0), 100.0);
    }

    #[test]
    fn the_ladder_stops_past_two_and_a_half_percent() {
        assert_eq!(stop_after(1000, 999.0, 0.0), None);
        assert_eq!(stop_after(1000, 980.0, 2.5), None);
        assert_eq!(
            stop_after(8000, 7600.0, 2.6),
            Some(Stop::Drops {
                target: 8000,
                drop_pct: 2.6
            })
        );
        // Drops win over a low rate: the server lost them.
        assert!(matches!(
            stop_after(8000, 100.0, 50.0),
            Some(Stop::Drops { .. })
        ));
        // Within the threshold but far below the target: perfdhcp's limit.
        assert_eq!(
            stop_after(32000, 13000.0, 0.1),
            Some(Stop::LoadLimit {
                target: 32000,
                rate: 13000.0
            })
        );
        assert_eq!(stop_after(16000, 14500.0, 0.0), None);
    }

    #[test]
    fn a_failed_step_is_confirmed_once() {
        let drops = stop_after(8000, 7000.0, 5.0);
        assert!(try_again(drops, 1));
        assert!(!try_again(drops, 2));
        assert!(!try_again(None, 1));
        assert!(!try_again(stop_after(32000, 13000.0, 0.0), 1));
    }

    #[test]
    fn the_result_is_the_fastest_step_within_the_threshold() {
        // (completed rate, drop %)
        let steps = [(1000.0, 0.0), (2000.0, 0.1), (3900.0, 2.4), (4100.0, 9.0)];
        assert_eq!(best_step(&steps), Some(2));
        // A step over the threshold never counts, however fast.
        assert_eq!(best_step(&[(5000.0, 3.0)]), None);
        assert_eq!(best_step(&[]), None);
        // The rate decides, not the order.
        assert_eq!(
            best_step(&[(900.0, 0.0), (1900.0, 0.0), (1500.0, 1.0)]),
            Some(1)
        );
        assert_eq!(best_step(&[(1000.0, 2.5)]), Some(0));
    }

    #[test]
    fn the_median_run_is_picked() {
        assert_eq!(median_index(&[]), None);
        assert_eq!(median_index(&[5.0]), Some(0));
        assert_eq!(median_index(&[90.0, 70.0, 80.0]), Some(2));
        // An even count takes the lower of the two middle ones.
        assert_eq!(median_index(&[4.0, 1.0, 3.0, 2.0]), Some(3));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(86055.2), "86,055");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    fn cells() -> Vec<Cells> {
        let perf = |rate, limited| {
            Some(PerfCell {
                rate,
                load_limited: limited,
                discover_offer_avg_ms: Some(0.4),
                request_ack_avg_ms: Some(0.35),
            })
        };
        let row = |server, perfdhcp, l: Option<f64>| Cells {
            server,
            perfdhcp,
            leases_per_s: l,
            round_trips_per_s: None,
            window: Some(2048),
            p50_us: Some(900),
            p99_us: Some(4100),
            failed: false,
        };
        vec![
            row(Server::KeaMemfile, perf(8000.0, false), Some(4000.0)),
            row(Server::KeaPersist, perf(6000.0, false), Some(3000.0)),
            row(Server::XdhcpdFast, perf(13000.0, true), Some(80000.0)),
            row(Server::XdhcpdDurable, perf(12000.0, true), Some(72000.0)),
            Cells {
                round_trips_per_s: Some(200_000.0),
                ..row(Server::EchoCeiling, None, Some(100_000.0))
            },
        ]
    }

    #[test]
    fn the_table_has_a_row_per_server_and_the_ratios() {
        let t = render_table(&cells(), 2048);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 7, "{t}");
        assert!(lines[0].starts_with("| server |"));
        // Every row has the header's number of columns.
        let cols = |l: &str| l.matches('|').count();
        assert!(lines.iter().all(|l| cols(l) == cols(lines[0])), "{t}");
        let fast = lines
            .iter()
            .find(|l| l.contains("xdhcpd, journal fast"))
            .unwrap();
        // 80,000 / 4,000 (xdhcpgen) and 13,000 / 8,000 (perfdhcp); 80 % of
        // the echo's 100,000 leases/s.
        assert!(fast.contains("| ≥ 13,000 |"), "{fast}");
        assert!(fast.contains("20.0× (perfdhcp ≥ 1.6×)"), "{fast}");
        assert!(fast.contains("| 80 % |"), "{fast}");
        let durable = lines.iter().find(|l| l.contains("durable")).unwrap();
        assert!(durable.contains("24.0× (perfdhcp ≥ 2.0×)"), "{durable}");
        assert!(durable.contains("| 72 % |"), "{durable}");
        let kea = lines.iter().find(|l| l.contains("no persist")).unwrap();
        assert!(
            kea.contains("| 8,000 |") && kea.contains("0.40 / 0.35 ms"),
            "{kea}"
        );
        assert!(kea.ends_with("| — | — |"), "{kea}");
        let echo = lines.iter().find(|l| l.contains("echo")).unwrap();
        assert!(
            echo.contains("100,000 (200,000 round trips/s ÷ 2)"),
            "{echo}"
        );
        assert!(echo.contains("(one round trip)"), "{echo}");
        assert!(!t.contains("NaN") && !t.contains("inf"), "{t}");
    }

    #[test]
    fn missing_results_are_dashes_not_numbers() {
        let mut c = cells();
        c[0].leases_per_s = None;
        c[0].failed = true;
        c[4].leases_per_s = None;
        c[4].round_trips_per_s = None;
        let t = render_table(&c, 2048);
        let fast = t.lines().find(|l| l.contains("journal fast")).unwrap();
        // No Kea or ceiling figure: no ratio either.
        assert!(fast.contains("| — | — |"), "{fast}");
        let kea = t.lines().find(|l| l.contains("no persist")).unwrap();
        assert!(kea.contains("failed"), "{kea}");
    }

    #[test]
    fn the_report_names_the_machine_and_the_ceiling_rule() {
        let machine = Machine {
            nproc: 2,
            gen_core: Some(1),
            cpu: "Some CPU".into(),
            kernel: "6.1.0".into(),
            kea: "2.2.0".into(),
            date: "2026-01-01 00:00 UTC".into(),
        };
        let args = BenchArgs {
            step_seconds: 5,
            rates: vec![1000, 2000],
            gen_seconds: 10,
            window: 2048,
            repeat: 3,
            no_build: false,
        };
        let gen_run = |per_s: f64, p99| GenRun {
            scenario: "dora",
            run: 1,
            target_rate: 0.0,
            window: 2048,
            seconds: 10,
            per_s,
            completed: 1000,
            timeouts: 0,
            p50_us: Some(100),
            p99_us: Some(p99),
            summary: Value::Null,
            server: Value::Null,
        };
        let rows = vec![
            Row {
                server: Server::KeaMemfile,
                perfdhcp: None,
                xdhcpgen: Some(GenRun {
                    window: 64,
                    ..gen_run(4000.0, 9000)
                }),
                xdhcpgen_other: Vec::new(),
                half_rate: None,
                half_rate_other: Vec::new(),
                error: None,
            },
            Row {
                server: Server::XdhcpdFast,
                perfdhcp: None,
                xdhcpgen: Some(gen_run(80000.0, 3000)),
                xdhcpgen_other: Vec::new(),
                half_rate: Some(GenRun {
                    target_rate: 40000.0,
                    ..gen_run(40000.0, 700)
                }),
                half_rate_other: vec![
                    GenRun {
                        run: 2,
                        ..gen_run(40000.0, 650)
                    },
                    GenRun {
                        run: 3,
                        ..gen_run(40000.0, 1200)
                    },
                ],
                error: None,
            },
        ];
        let md = render_report(&machine, &args, &rows);
        assert!(
            md.contains("2 cores (nproc), Some CPU, Linux 6.1.0"),
            "{md}"
        );
        assert!(md.contains("round trips/s ÷ 2"), "{md}");
        assert!(
            md.contains("≥ 25× kea-dhcp4, memfile (no persist): 20.0× (missed)"),
            "{md}"
        );
        assert!(
            md.contains("at half the maximum rate: 700 µs (met)"),
            "{md}"
        );
        assert!(md.contains("40,000/s asked"), "{md}");
        assert!(md.contains("pinned to core 1"), "{md}");
        assert!(md.contains("| 4,000 (window 64) |"), "{md}");
        assert!(md.contains("at half rate, p99 700, 650, 1,200 µs"), "{md}");
    }

    #[test]
    fn kea_config_names_every_placeholder_and_parses() {
        let c = KEA_CONFIG
            .replace("@INTERFACE@", "xdbk-s")
            .replace("@PERSIST@", "true")
            .replace("@LEASE_FILE@", "/var/tmp/x/leases.csv");
        assert!(!c.contains('@'));
        let v: Value = serde_json::from_str(&c).unwrap();
        let mt = &v["Dhcp4"]["multi-threading"];
        assert_eq!(mt["enable-multi-threading"], true);
        assert_eq!(mt["thread-pool-size"], 2);
        assert_eq!(mt["packet-queue-size"], 64);
        assert_eq!(v["Dhcp4"]["lease-database"]["persist"], true);
        assert_eq!(
            v["Dhcp4"]["subnet4"][0]["pools"][0]["pool"],
            "198.18.0.10 - 198.19.255.254"
        );
        // The same pool as xdhcpd's.
        assert!(XDHCPD_CONFIG.contains("198.18.0.10-198.19.255.254"));
    }
}
