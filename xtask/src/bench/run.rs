//! Running one row of the table: a fresh server per measurement (Kea or
//! xdhcpd, in the lab's server namespace), perfdhcp's ladder against it,
//! xdhcpgen's repeated runs, each stopped and its counters kept.
use super::policy::{Stop, best_step, drop_pct, median_index, stop_after, try_again};
use super::rig::{config as xdhcpd_config, run_bounded};
use super::{
    BenchArgs, Delay, GEN_CLIENTS, GenRun, KEA_WINDOW, Ladder, PERFDHCP_CLIENTS, Row, Server, Step,
};
use crate::daemon::Daemon;
use crate::kea::Kea;
use crate::lab::Lab;
use crate::perfdhcp;
use crate::process::interrupted;
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// kea-dhcp4's configuration: the same /15 pool as xdhcpd's.
const KEA_CONFIG: &str = include_str!("../../configs/kea-bench.json");
const EXPECT_SUBNET: &str = "198.18.0.0/15";

pub(super) struct Ctx<'a> {
    pub(super) lab: &'a Lab,
    pub(super) bin: PathBuf,
    pub(super) gen_bin: PathBuf,
    pub(super) scratch: &'a Path,
    pub(super) args: &'a BenchArgs,
    /// The core of xdhcpgen's worker when it runs one (see `queues`).
    pub(super) gen_core: Option<usize>,
    /// RX queues served: xdhcpd and the echo get one worker per queue,
    /// xdhcpgen one per queue too, on the last cores downwards (so with
    /// two queues on two cores each core has a worker of both).
    pub(super) queues: u32,
    /// xdhcpgen's `--poll`, when not its default (spin).
    pub(super) gen_poll: Option<&'static str>,
}

impl<'a> Ctx<'a> {
    /// The same lab, binaries and xdhcpgen settings with `queues` queues.
    pub(super) fn with_queues(&self, queues: u32) -> Ctx<'a> {
        Ctx {
            lab: self.lab,
            bin: self.bin.clone(),
            gen_bin: self.gen_bin.clone(),
            scratch: self.scratch,
            args: self.args,
            gen_core: self.gen_core,
            queues,
            gen_poll: self.gen_poll,
        }
    }

    /// xdhcpgen's `--cores`: `gen_core` for one worker, else the last
    /// `queues` cores downwards (xdhcpgen's own default, said aloud);
    /// empty when there is no core to pin to.
    fn gen_cores(&self) -> Vec<usize> {
        let Some(last) = self.gen_core else {
            return Vec::new();
        };
        (0..self.queues.max(1) as usize)
            .map(|k| last.saturating_sub(k))
            .collect()
    }

    /// Whether a worker of xdhcpgen runs on the core of one of xdhcpd's
    /// (xdhcpd pins its worker q to core q).
    pub(super) fn gen_shares_cores(&self) -> bool {
        let cores = self.gen_cores();
        cores.is_empty() || cores.iter().any(|&c| c < self.queues as usize)
    }
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
            let config = xdhcpd_config(&lab.srv_if, &dir, mode, ctx.queues);
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
pub(super) fn gen_run(
    ctx: &Ctx,
    server: Server,
    rate: f64,
    window: u32,
    run: u32,
) -> Result<GenRun> {
    let echo = server == Server::EchoCeiling;
    let what = if rate > 0.0 { "half" } else { "max" };
    let tag = format!(
        "{}-xdhcpgen-{what}-w{window}-q{}-{run}",
        server.key(),
        ctx.queues
    );
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
        .args(["--queues", &ctx.queues.to_string()])
        .arg("--json")
        .arg(&json_path);
    if !echo {
        cmd.args(["--expect-subnet", EXPECT_SUBNET]);
    }
    let cores = ctx.gen_cores();
    if !cores.is_empty() {
        let list: Vec<String> = cores.iter().map(usize::to_string).collect();
        cmd.args(["--cores", &list.join(",")]);
    }
    if let Some(poll) = ctx.gen_poll {
        cmd.args(["--poll", poll]);
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
        } + &if ctx.queues > 1 {
            format!(", {} queues", ctx.queues)
        } else {
            String::new()
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

pub(super) fn fill_row(ctx: &Ctx, row: &mut Row) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(super::super::rig::CONFIG.contains("198.18.0.10-198.19.255.254"));
    }
}
