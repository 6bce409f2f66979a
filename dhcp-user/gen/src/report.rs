//! The end of a run: the summary (JSON in the shape the README documents),
//! the table on stdout, the HdrHistogram percentile text (`--hgrm`) and
//! the latency-percentile plot (`--plot`).
use super::attack::AttackOptions;
use super::check::AddressBook;
use super::counters::GenSnapshot;
use super::latency::{Kind, Latencies, Percentiles};
use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use xdhcp::io::xdp::XdpCounters;

#[derive(Debug, Clone, Serialize)]
pub struct LatencyReport {
    pub offer: Percentiles,
    pub ack: Percentiles,
    pub dora: Percentiles,
    pub renew: Percentiles,
}

impl LatencyReport {
    pub fn of(l: &Latencies) -> LatencyReport {
        LatencyReport {
            offer: Percentiles::of(l.get(Kind::Offer)),
            ack: Percentiles::of(l.get(Kind::Ack)),
            dora: Percentiles::of(l.get(Kind::Dora)),
            renew: Percentiles::of(l.get(Kind::Renew)),
        }
    }
}

/// The run's summary; the first fields are the documented shape, the rest
/// are extras.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: &'static str,
    pub clients: u32,
    /// From the first frame sent to the end of the run.
    pub duration_s: f64,
    pub completed: u64,
    /// Completed exchanges per second, over the time until the last one
    /// completed.
    pub leases_per_sec: f64,
    pub timeouts: u64,
    pub naks: u64,
    pub duplicate_addresses: u64,
    pub latency_us: LatencyReport,
    pub wrong_xid: u64,
    pub sent: u64,
    pub received: u64,
    /// Reconnect: seconds from the start until the last client was bound.
    pub all_bound_s: Option<f64>,
    /// Exchanges still running when the run was interrupted.
    pub unfinished: u64,
    pub io: &'static str,
    pub xdp_mode: Option<&'static str>,
    pub bind: Option<&'static str>,
    pub queues: u32,
    /// Target rate in exchanges per second; 0 for open loop.
    pub rate: f64,
    pub window: u32,
    pub counters: GenSnapshot,
    /// The generator's XDP program's counters (AF_XDP only).
    pub xdp: Option<XdpCounters>,
    /// With `--attack`: the normal fleet (whose figures the fields above
    /// are, as without an attack) and the attack fleet, side by side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legit: Option<Side>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack: Option<AttackSide>,
}

/// Addresses listed by value in a [`Side`] (the lowest ones); the count
/// covers them all.
pub const LISTED_ADDRESSES: usize = 64;

/// What one fleet of a run got.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub clients: u32,
    pub mac_prefix: String,
    pub started: u64,
    pub completed: u64,
    /// Frames the fleet sent, and replies it was given.
    pub sent: u64,
    pub received: u64,
    /// Distinct addresses the fleet was ACKed.
    pub leases: u64,
    /// The lowest of them, at most [`LISTED_ADDRESSES`].
    pub addresses: Vec<Ipv4Addr>,
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub timeouts: u64,
    pub retransmits: u64,
    pub sent_discover: u64,
    pub sent_request: u64,
    pub sent_decline: u64,
    /// Distinct addresses the fleet declined.
    pub declined_addresses: u64,
    pub duplicate_addresses: u64,
    pub bad_subnet: u64,
    pub unfinished: u64,
    pub latency_us: LatencyReport,
}

impl Side {
    pub fn of(
        clients: u32,
        mac_prefix: [u8; 3],
        c: &GenSnapshot,
        unfinished: u64,
        lat: &Latencies,
        leased: &AddressBook,
        declined: Option<&AddressBook>,
    ) -> Side {
        let mut addresses = leased.addresses();
        let leases = addresses.len() as u64;
        addresses.truncate(LISTED_ADDRESSES);
        Side {
            clients,
            mac_prefix: format!(
                "{:02x}:{:02x}:{:02x}",
                mac_prefix[0], mac_prefix[1], mac_prefix[2]
            ),
            started: c.started,
            completed: c.completed,
            sent: c.sent,
            received: c.received,
            leases,
            addresses,
            offers: c.offers,
            acks: c.acks,
            naks: c.naks,
            timeouts: c.timeouts,
            retransmits: c.retransmits,
            sent_discover: c.sent_discover,
            sent_request: c.sent_request,
            sent_decline: c.sent_decline,
            declined_addresses: declined.map_or(0, |d| d.addresses().len() as u64),
            duplicate_addresses: c.duplicate_addresses,
            bad_subnet: c.bad_subnet,
            unfinished,
            latency_us: LatencyReport::of(lat),
        }
    }
}

/// The attack fleet: which attack, from where, and what it got.
#[derive(Debug, Clone, Serialize)]
pub struct AttackSide {
    pub kind: &'static str,
    /// The one circuit id of every attack client, if one was given.
    pub circuit_id: Option<String>,
    pub link_selection: Option<Ipv4Addr>,
    /// Relay addresses (giaddr) the attack came through; empty: direct.
    pub relays: Vec<Ipv4Addr>,
    /// The decline attack: "acked" or "offered".
    pub decline: Option<&'static str>,
    #[serde(flatten)]
    pub side: Side,
}

impl AttackSide {
    pub fn of(a: &AttackOptions, relays: &[Ipv4Addr], side: Side) -> AttackSide {
        use super::attack::{Attack, DeclineWhen};
        AttackSide {
            kind: a.attack.name(),
            circuit_id: a
                .circuit_id
                .as_deref()
                .map(|c| String::from_utf8_lossy(c).into_owned()),
            link_selection: a.link_selection,
            relays: relays.to_vec(),
            decline: (a.attack == Attack::Decline).then_some(match a.decline {
                DeclineWhen::Acked => "acked",
                DeclineWhen::Offered => "offered",
            }),
            side,
        }
    }
}

impl Summary {
    /// Whether every check passed: everything finished and nothing was
    /// wrong with any reply.
    pub fn clean(&self) -> bool {
        let c = &self.counters;
        self.unfinished == 0
            && c.timeouts
                + c.naks
                + c.duplicate_addresses
                + c.wrong_xid
                + c.wrong_chaddr
                + c.bad_subnet
                + c.missing_lease_time
                + c.missing_server_id
                + c.malformed
                == 0
            // What the attack gets is its business, but an address the
            // server gave two clients is the server's fault.
            && self
                .attack
                .as_ref()
                .is_none_or(|a| a.side.duplicate_addresses == 0)
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let c = &self.counters;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "xdhcpgen {}: {} clients, {} completed in {:.3} s: {:.0} per second ({} via {}{})",
            self.scenario,
            self.clients,
            self.completed,
            self.duration_s,
            self.leases_per_sec,
            self.queues,
            self.io,
            self.bind.map(|b| format!(", {b}")).unwrap_or_default()
        );
        if let Some(t) = self.all_bound_s {
            let _ = writeln!(s, "all clients bound after {t:.3} s");
        }
        let _ = writeln!(
            s,
            "sent {} (discover {}, request {}, release {}, retransmits {}), received {}",
            c.sent, c.sent_discover, c.sent_request, c.sent_release, c.retransmits, c.received
        );
        let _ = writeln!(
            s,
            "timeouts {}  naks {}  duplicate addresses {}  wrong xid {}  wrong chaddr {}  \
             outside subnet {}  no lease time {}  no server id {}  unexpected {}  malformed {}",
            c.timeouts,
            c.naks,
            c.duplicate_addresses,
            c.wrong_xid,
            c.wrong_chaddr,
            c.bad_subnet,
            c.missing_lease_time,
            c.missing_server_id,
            c.unexpected,
            c.malformed
        );
        let _ = writeln!(
            s,
            "{:<12}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "latency µs", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        let l = &self.latency_us;
        for (name, p) in [
            ("offer", l.offer),
            ("ack", l.ack),
            ("dora", l.dora),
            ("renew", l.renew),
        ] {
            if p.count == 0 {
                continue;
            }
            // The echo scenario's one round trip is kept as the OFFER's.
            let name = if self.scenario == "echo" && name == "offer" {
                "round trip"
            } else {
                name
            };
            let _ = writeln!(
                s,
                "{name:<12}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
                p.count, p.p50, p.p90, p.p99, p.p999, p.max
            );
        }
        if let (Some(l), Some(a)) = (&self.legit, &self.attack) {
            s += &split_table(l, a);
        }
        s
    }
}

/// The normal and the attack fleet side by side, after the usual table.
fn split_table(l: &Side, a: &AttackSide) -> String {
    let mut s = String::new();
    let mut from = match &a.circuit_id {
        Some(c) => format!("circuit id {c:?}"),
        None => String::from("own circuit ids"),
    };
    if a.relays.is_empty() {
        from = if a.kind == "spoof82" {
            format!("giaddr 0, {from}")
        } else {
            String::from("direct")
        };
    } else {
        from += &format!(" via {} relay(s)", a.relays.len());
    }
    if let Some(ls) = a.link_selection {
        from += &format!(", link selection {ls}");
    }
    if let Some(d) = a.decline {
        from += &format!(", declining what is {d}");
    }
    let _ = writeln!(
        s,
        "attack {}: {} clients {}:xx:xx:xx, {from}",
        a.kind, a.side.clients, a.side.mac_prefix
    );
    let _ = writeln!(
        s,
        "{:<8}{:>10}{:>10}{:>9}{:>9}{:>9}{:>7}{:>9}{:>9}{:>9}{:>6}{:>10}",
        "",
        "started",
        "completed",
        "leases",
        "offers",
        "acks",
        "naks",
        "timeouts",
        "retrans",
        "declines",
        "dup",
        "dora p99"
    );
    for (name, x) in [("legit", l), ("attack", &a.side)] {
        let _ = writeln!(
            s,
            "{name:<8}{:>10}{:>10}{:>9}{:>9}{:>9}{:>7}{:>9}{:>9}{:>9}{:>6}{:>10}",
            x.started,
            x.completed,
            x.leases,
            x.offers,
            x.acks,
            x.naks,
            x.timeouts,
            x.retransmits,
            x.sent_decline,
            x.duplicate_addresses,
            x.latency_us.dora.p99
        );
    }
    s
}

pub fn write_json(path: &Path, s: &Summary) -> Result<()> {
    let text = serde_json::to_string_pretty(s)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// HdrHistogram's percentile distribution text (what
/// `outputPercentileDistribution` prints, and the online plotter reads),
/// values in µs.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64;
            total += v.count_since_last_iteration();
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let mean = if h.is_empty() { 0.0 } else { h.mean() };
    let stdev = if h.is_empty() { 0.0 } else { h.stdev() };
    let _ = writeln!(s, "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]");
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        h.distinct_values()
    );
    s
}

/// Writes the main latency's distribution to `path`, and every other
/// latency that has samples next to it as `<stem>.<kind>.hgrm`.
pub fn write_hgrm(path: &Path, lat: &Latencies, main: Kind) -> Result<Vec<std::path::PathBuf>> {
    let mut written = Vec::new();
    std::fs::write(path, hgrm(lat.get(main)))
        .with_context(|| format!("writing {}", path.display()))?;
    written.push(path.to_path_buf());
    let stem = path.with_extension("");
    for kind in Kind::ALL {
        if kind == main || lat.get(kind).is_empty() {
            continue;
        }
        let p = stem.with_extension(format!("{}.hgrm", kind.name()));
        std::fs::write(&p, hgrm(lat.get(kind)))
            .with_context(|| format!("writing {}", p.display()))?;
        written.push(p);
    }
    Ok(written)
}

/// Latency by percentile, one line per measured interval, on the usual
/// HdrHistogram axis (x = log10(1/(1-p)): 90 %, 99 %, 99.9 % ... evenly
/// spaced), as SVG.
pub fn write_plot(path: &Path, title: &str, lat: &Latencies) -> Result<()> {
    use plotters::prelude::*;
    let series: Vec<(Kind, Vec<(f64, f64)>)> = Kind::ALL
        .iter()
        .filter(|k| !lat.get(**k).is_empty())
        .map(|&k| {
            let pts = lat
                .get(k)
                .iter_quantiles(5)
                .map(|v| {
                    let q = v.quantile_iterated_to().min(0.99999);
                    ((1.0 / (1.0 - q)).log10(), v.value_iterated_to() as f64)
                })
                .collect();
            (k, pts)
        })
        .collect();
    let max_y = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.1;
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..5f64, 0f64..max_y)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs)")
        .x_labels(6)
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            format!("{p:.3}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_owned()
                + "%"
        })
        .draw()
        .map_err(|e| err(&e))?;
    let colours = [RED, BLUE, GREEN, MAGENTA];
    for (i, (kind, pts)) in series.into_iter().enumerate() {
        let colour = colours[i % colours.len()];
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(kind.name())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_has_the_format() {
        let mut l = Latencies::new();
        for i in 1..=100u64 {
            l.record(Kind::Dora, i * 1000);
        }
        let text = hgrm(l.get(Kind::Dora));
        let mut lines = text.lines();
        assert!(lines.next().unwrap().contains("1/(1-Percentile)"));
        assert_eq!(lines.next(), Some(""));
        let first: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(first.len(), 4);
        assert_eq!(first[0], "1.000");
        assert!(
            text.contains("#[Max     =      100.000, Total count    =          100]"),
            "{text}"
        );
        let last_value_line = text.lines().rfind(|l| !l.starts_with('#')).unwrap();
        assert!(
            last_value_line.contains("1.000000000000"),
            "{last_value_line}"
        );
    }

    #[test]
    fn plot_is_an_svg() {
        let mut l = Latencies::new();
        for i in 1..=1000u64 {
            l.record(Kind::Offer, i * 100);
            l.record(Kind::Dora, i * 250);
        }
        let p = std::env::temp_dir().join(format!("xdhcpgen-plot-{}.svg", std::process::id()));
        write_plot(&p, "test", &l).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("polyline"),
            "{}",
            &svg[..200.min(svg.len())]
        );
        assert!(svg.contains("dora") && svg.contains("offer"));
    }
}
