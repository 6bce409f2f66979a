//! What a run comes to on paper: the markdown table (the one the README
//! shows), its footnotes and notes, the issue's goals against the figures,
//! and `bench.json` with every step as it came.
use super::engine_time::EngineNs;
use super::instructions::PerPacket;
use super::policy::{LOAD_LIMIT_SHARE, MAX_DROP_PCT, Stop};
use super::queues::QueueFigures;
use super::{BenchArgs, GEN_CLIENTS, GenRun, KEA_WINDOW, Machine, PERFDHCP_CLIENTS, Row, Server};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::path::Path;

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
/// What the run measured of the engine without the lab: each figure, or
/// why it is missing.
pub struct EngineFigures {
    pub instructions: std::result::Result<PerPacket, String>,
    pub ns: std::result::Result<EngineNs, String>,
    /// 2 threads over 1 (shared engine, journal), and the bench's output.
    pub scaling: std::result::Result<(f64, String), String>,
}

/// The engine's section: criterion and callgrind beside dhcproto, the
/// projection, the scaling bench's output.
fn render_engine(e: &EngineFigures, cells: &[Cells]) -> String {
    let find = |s: Server| cells.iter().find(|c| c.server == s);
    let mut md = String::from("\n### The engine alone, per packet\n\n");
    match &e.ns {
        Ok(ns) => {
            md.push_str(&ns.render());
            let _ = writeln!(
                md,
                "\n{}\n",
                ns.projection(
                    find(Server::EchoCeiling).and_then(|c| c.round_trips_per_s),
                    find(Server::XdhcpdFast).and_then(|c| c.leases_per_s),
                )
            );
        }
        Err(why) => {
            let _ = writeln!(md, "(criterion not run: {why})\n");
        }
    }
    match &e.instructions {
        Ok(p) => {
            md.push_str(&p.render());
            md.push_str("\n`cargo xtask bench instructions` repeats the count alone, `cargo xtask bench split` splits it by phase.\n");
        }
        Err(why) => {
            let _ = writeln!(md, "(instructions per packet not counted: {why})");
        }
    }
    match &e.scaling {
        Ok((_, text)) => {
            let _ = writeln!(
                md,
                "\nIn-process scaling (`cargo xtask bench scaling`: pre-built frames, no kernel):\n\n```\n{}```",
                text
            );
        }
        Err(why) => {
            let _ = writeln!(md, "\n(scaling not measured: {why})");
        }
    }
    md
}

pub fn render_report(
    machine: &Machine,
    args: &BenchArgs,
    rows: &[Row],
    engine: &EngineFigures,
    lanes: &QueueFigures,
) -> String {
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
    md.push_str(&render_engine(engine, &cells));
    md.push_str(&lanes.render());
    md.push_str("\nGoals of issue 15, as measured in this run:\n");
    let find = |s: Server| cells.iter().find(|c| c.server == s);
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    let ceiling = find(Server::EchoCeiling).and_then(|e| e.leases_per_s);
    for (s, share, p99_goal_us) in [
        (Server::XdhcpdFast, 0.90, 1_000),
        (Server::XdhcpdDurable, 0.85, 5_000),
    ] {
        let Some(c) = find(s) else { continue };
        if let Some(r) = ratio(c.leases_per_s, ceiling) {
            let _ = writeln!(
                md,
                "- {} ≥ {:.0} % of the echo ceiling: {:.0} % ({})",
                s.label(),
                100.0 * share,
                100.0 * r,
                verdict(r >= share)
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
                "- {} p99 DORA < {} ms at half the maximum rate: {} µs ({})",
                s.label(),
                p99_goal_us / 1000,
                thousands(p99 as f64),
                verdict(p99 < p99_goal_us)
            );
        }
    }
    if let Ok(ns) = &engine.ns {
        let (d, r) = ns.ratios();
        let _ = writeln!(
            md,
            "- engine ≥ 10× dhcproto (criterion): DISCOVER→OFFER {d:.1}×, REQUEST→ACK {r:.1}× ({})",
            verdict(d >= 10.0 && r >= 10.0)
        );
    }
    if let Ok(p) = &engine.instructions {
        let _ = writeln!(
            md,
            "- ≤ 1,000 instructions per packet (callgrind): DISCOVER→OFFER {}, REQUEST→ACK {} ({})",
            thousands(p.engine_discover as f64),
            thousands(p.engine_request as f64),
            verdict(p.engine_discover <= 1000 && p.engine_request <= 1000)
        );
    }
    if let Ok((r, _)) = &engine.scaling {
        let _ = writeln!(
            md,
            "- 2 threads ≥ 1.8× one (in-process, shared engine and journal): {r:.2}× ({})",
            verdict(*r >= 1.8)
        );
    }
    if let Some(r) = lanes.ratio() {
        let _ = writeln!(
            md,
            "- (the issue's figure, no goal) the XDP path in the lab, 2 queues over 1{}: {r:.2}×",
            if lanes.shared_cores {
                " (the generator shares the cores)"
            } else {
                ""
            }
        );
    }
    // No goal any more, but the comparison the operators make.
    for s in [Server::XdhcpdFast, Server::XdhcpdDurable] {
        let Some(c) = find(s) else { continue };
        if let Some(r) = s
            .kea_peer()
            .and_then(find)
            .and_then(|k| ratio(c.leases_per_s, k.leases_per_s))
        {
            let _ = writeln!(
                md,
                "- (no goal) {} against {}: {r:.1}×",
                s.label(),
                s.kea_peer().map_or("", Server::label),
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

pub(super) fn write_json(
    path: &Path,
    machine: &Machine,
    args: &BenchArgs,
    rows: &[Row],
    queues: Option<&QueueFigures>,
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
        "queues": queues,
    });
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let gen_run = GenRun::sample;
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
        let engine = EngineFigures {
            instructions: Ok(PerPacket {
                engine_discover: 900,
                engine_request: 1_100,
                dhcproto_discover: 9_000,
                dhcproto_request: 12_000,
            }),
            ns: Ok(EngineNs {
                engine_discover: 300.0,
                engine_request: 400.0,
                dhcproto_discover: 3_300.0,
                dhcproto_request: 3_600.0,
            }),
            scaling: Err("not built".into()),
        };
        let md = render_report(&machine, &args, &rows, &engine, &Default::default());
        assert!(
            md.contains("2 cores (nproc), Some CPU, Linux 6.1.0"),
            "{md}"
        );
        assert!(md.contains("round trips/s ÷ 2"), "{md}");
        assert!(
            md.contains("against kea-dhcp4, memfile (no persist): 20.0×"),
            "{md}"
        );
        assert!(
            md.contains("DISCOVER→OFFER 11.0×, REQUEST→ACK 9.0× (missed)"),
            "{md}"
        );
        assert!(
            md.contains("DISCOVER→OFFER 900, REQUEST→ACK 1,100 (missed)"),
            "{md}"
        );
        assert!(md.contains("(scaling not measured: not built)"), "{md}");
        assert!(md.contains("Projection, not a measurement"), "{md}");
        assert!(
            md.contains("p99 DORA < 1 ms at half the maximum rate: 700 µs (met)"),
            "{md}"
        );
        assert!(md.contains("40,000/s asked"), "{md}");
        assert!(md.contains("pinned to core 1"), "{md}");
        assert!(md.contains("| 4,000 (window 64) |"), "{md}");
        assert!(md.contains("at half rate, p99 700, 650, 1,200 µs"), "{md}");
    }
}
