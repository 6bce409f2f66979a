//! The exposition: every counter of a [`Status`] as OpenMetrics text.
//!
//! Names start with `xdhcpd_`; counters get `_total` from the encoder.
//! Per-worker counters carry `worker="<queue>"`. The latency histograms
//! are exported as classic cumulative buckets (`le` bounds 1 µs doubling
//! to about 8.4 s, then +Inf, taken from the workers' hdrhistograms) with
//! `_sum` and `_count`: the OpenMetrics text format has no native
//! (sparse) histograms. For reading by eye, p50/p99/p99.9 of the last
//! interval are gauges beside them.
use crate::latency::{BUCKET_BOUNDS_NS, Kind, KindSummary};
use crate::stats::WorkerSnapshot;
use crate::status::{Board, Status};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::fmt::Error;
use std::sync::Arc;

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes the board's newest status at each scrape.
#[derive(Debug)]
struct BoardCollector(Arc<Board>);

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Board")
    }
}

impl Collector for BoardCollector {
    fn encode(&self, enc: DescriptorEncoder<'_>) -> Result<(), Error> {
        encode_status(&self.0.latest(), enc)
    }
}

/// A registry holding only the board's collector.
pub(super) fn registry(board: Arc<Board>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(BoardCollector(board)));
    r
}

pub(super) fn encode(r: &Registry) -> Result<String, Error> {
    let mut out = String::with_capacity(64 << 10);
    prometheus_client::encoding::text::encode(&mut out, r)?;
    Ok(out)
}

/// The exposition of one status (tests, tools).
pub fn render(status: &Status) -> String {
    let board = Arc::new(Board::default());
    board.publish(status.clone());
    encode(&registry(board)).unwrap_or_default()
}

type Labels<'a> = Vec<(&'static str, String)>;

/// One metric family: its descriptor, then `rows` samples.
fn family(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    ty: MetricType,
    rows: impl FnOnce(&mut MetricEncoder<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut m = enc.encode_descriptor(name, help, unit, ty)?;
    rows(&mut m)
}

fn counter(m: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, v: u64) -> Result<(), Error> {
    m.encode_family(labels)?
        .encode_counter::<NoLabelSet, u64, f64>(&v, None)
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    m: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    v: V,
) -> Result<(), Error> {
    m.encode_family(labels)?.encode_gauge(&v)
}

/// A per-worker counter family over one field of the worker snapshots,
/// with `extra` labels beside `worker`.
fn per_worker(
    enc: &mut DescriptorEncoder<'_>,
    s: &Status,
    name: &str,
    help: &str,
    label: Option<&'static str>,
    fields: &[(&str, Field)],
) -> Result<(), Error> {
    family(enc, name, help, None, MetricType::Counter, |m| {
        for (q, w) in &s.workers {
            for (value, get) in fields {
                let mut l: Labels = vec![("worker", q.to_string())];
                if let Some(k) = label {
                    l.push((k, (*value).to_string()));
                }
                counter(m, &l, get(w))?;
            }
        }
        Ok(())
    })
}

/// One counter of a worker snapshot.
type Field = fn(&WorkerSnapshot) -> u64;

macro_rules! fields {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), (|w: &WorkerSnapshot| w.$name) as Field)),*]
    };
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

fn encode_status(s: &Status, mut enc: DescriptorEncoder<'_>) -> Result<(), Error> {
    let e = &mut enc;
    family(
        e,
        "xdhcpd_uptime",
        "Seconds since the daemon started, as of the last stats interval.",
        Some(&Unit::Seconds),
        MetricType::Gauge,
        |m| m.encode_gauge(&s.uptime_s),
    )?;
    family(
        e,
        "xdhcpd_build",
        "How the daemon runs: I/O backend, XDP attach mode, AF_XDP bind mode.",
        None,
        MetricType::Info,
        |m| {
            m.encode_info(&[
                ("io", s.io),
                ("xdp_mode", s.xdp_mode.unwrap_or("")),
                ("bind", s.bind.unwrap_or("")),
            ])
        },
    )?;
    per_worker(
        e,
        s,
        "xdhcpd_requests",
        "DHCP requests received, by message type and worker.",
        Some("type"),
        fields!(discover, request, decline, release, inform),
    )?;
    per_worker(
        e,
        s,
        "xdhcpd_replies",
        "DHCP replies written, by message type and worker (rapid-commit ACKs included in ack).",
        Some("type"),
        fields!(offer, ack, nak),
    )?;
    per_worker(
        e,
        s,
        "xdhcpd_rx_frames",
        "Frames taken from the RX ring (or socket), by worker.",
        None,
        fields!(rx),
    )?;
    per_worker(
        e,
        s,
        "xdhcpd_tx_frames",
        "Reply frames put on the TX ring (or socket), by worker.",
        None,
        fields!(tx),
    )?;
    per_worker(
        e,
        s,
        "xdhcpd_drops",
        "Requests and replies lost, by reason and worker. journal_full and tx_ring_full \
         only delay (the record waits in the backlog, the batch goes with the next); \
         the other reasons lose the reply. See the stats file's documentation of each.",
        Some("reason"),
        fields!(
            malformed,
            no_subnet,
            no_address,
            table_full,
            untrusted_dropped,
            limited_circuit_id,
            limited_remote_id,
            limited_vlan,
            limited_mac,
            limit_table_full,
            rate_limited_mac,
            rate_limited_circuit_id,
            src_mac_mismatch,
            journal_full,
            journal_lost,
            parked_expired,
            tx_dropped,
            tx_ring_full,
        ),
    )?;
    per_worker(
        e,
        s,
        "xdhcpd_ignored",
        "Well-formed requests that got no reply by the protocol's rules, by worker.",
        None,
        fields!(ignored),
    )?;
    per_worker(
        e,
        s,
        "xdhcpd_not_owned",
        "Requests of clients whose bucket another cluster member owns, left to it, by worker.",
        None,
        fields!(not_owned),
    )?;
    per_worker(
        e,
        s,
        "xdhcpd_events",
        "Other events, by kind and worker (see the stats file's documentation of each).",
        Some("event"),
        fields!(
            rapid_commit,
            untrusted_agent_info,
            decline_not_bound,
            decline_rate_limited,
            probation_full,
            reservation_conflict,
            latency_held,
        ),
    )?;
    per_worker(
        e,
        s,
        "xdhcpd_leasequery",
        "DHCPLEASEQUERYs (RFC 4388) received, of those refused (no giaddr, or not an allowed \
         requester) and dropped (the leasequery service's queue full), by worker.",
        Some("counter"),
        fields!(leasequery, leasequery_refused, leasequery_dropped),
    )?;
    per_worker(
        e,
        s,
        "xdhcpd_parked",
        "Replies that waited for their lease record to be synced (durable journal), by worker.",
        None,
        fields!(parked),
    )?;
    per_worker(
        e,
        s,
        "xdhcpd_conflict_checks",
        "Conflict checks (ICMP) of offered addresses, by result and worker.",
        Some("result"),
        &[
            ("probed", |w: &WorkerSnapshot| w.conflict_probed),
            ("skipped", |w: &WorkerSnapshot| w.conflict_skipped),
            ("found", |w: &WorkerSnapshot| w.conflict_found),
            ("queue_full", |w: &WorkerSnapshot| w.conflict_queue_full),
        ],
    )?;
    if s.io == "xdp" {
        per_worker(
            e,
            s,
            "xdhcpd_xsk_ring",
            "AF_XDP socket counters the kernel keeps (XDP_STATISTICS, read about once a \
             second), by counter and worker.",
            Some("counter"),
            &[
                ("rx_dropped", |w: &WorkerSnapshot| w.xsk_rx_dropped),
                ("rx_ring_full", |w: &WorkerSnapshot| w.xsk_rx_ring_full),
                ("fill_ring_empty", |w: &WorkerSnapshot| {
                    w.xsk_fill_ring_empty
                }),
                ("tx_invalid", |w: &WorkerSnapshot| w.xsk_tx_invalid),
            ],
        )?;
    }
    if let Some(x) = &s.xdp {
        family(
            e,
            "xdhcpd_xdp_frames",
            "Frames the XDP program looked at, by verdict (the verdicts add up to seen).",
            None,
            MetricType::Counter,
            |m| {
                for (v, n) in [
                    ("seen", x.seen),
                    ("redirected", x.redirected),
                    ("passed", x.passed),
                    ("malformed", x.malformed),
                    ("no_socket", x.no_socket),
                    ("rate_limited", x.rate_limited),
                ] {
                    counter(m, &[("verdict", v)], n)?;
                }
                Ok(())
            },
        )?;
    }
    pools(e, s)?;
    leases(e, s)?;
    journal(e, s)?;
    side_services(e, s)?;
    cluster(e, s)?;
    latency(e, s)
}

fn pools(e: &mut DescriptorEncoder<'_>, s: &Status) -> Result<(), Error> {
    type Get = fn(&crate::status::SubnetStatus) -> u32;
    let rows: [(&str, &str, Get); 3] = [
        (
            "xdhcpd_pool_size",
            "Addresses in the subnet's ranges.",
            |p| p.size,
        ),
        (
            "xdhcpd_pool_used",
            "Of those, out of the pool: offered, bound or in probation.",
            |p| p.used,
        ),
        (
            "xdhcpd_pool_in_probation",
            "Of those, in probation (declined, or answered a conflict check).",
            |p| p.in_probation,
        ),
    ];
    for (name, help, get) in rows {
        family(e, name, help, None, MetricType::Gauge, |m| {
            for p in &s.subnets {
                gauge(m, &[("subnet", p.subnet.as_str())], get(p))?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn leases(e: &mut DescriptorEncoder<'_>, s: &Status) -> Result<(), Error> {
    let l = &s.leases;
    family(
        e,
        "xdhcpd_leases",
        "Records of the lease table, by state.",
        None,
        MetricType::Gauge,
        |m| {
            for (st, n) in [
                ("offered", l.offered),
                ("bound", l.bound),
                ("released", l.released),
                ("expired", l.expired),
                ("declined", l.declined),
            ] {
                gauge(m, &[("state", st)], n)?;
            }
            Ok(())
        },
    )?;
    family(
        e,
        "xdhcpd_lease_table_used",
        "Records in the lease table.",
        None,
        MetricType::Gauge,
        |m| m.encode_gauge(&(s.table_used as u64)),
    )?;
    family(
        e,
        "xdhcpd_lease_table_capacity",
        "Records the lease table holds at most (max_clients).",
        None,
        MetricType::Gauge,
        |m| m.encode_gauge(&(s.table_capacity as u64)),
    )?;
    family(
        e,
        "xdhcpd_lease_table_evicted",
        "Records evicted to make room for new clients.",
        None,
        MetricType::Counter,
        |m| m.encode_counter::<NoLabelSet, u64, f64>(&s.table_evicted, None),
    )
}

fn journal(e: &mut DescriptorEncoder<'_>, s: &Status) -> Result<(), Error> {
    let Some(j) = &s.journal else {
        return Ok(());
    };
    for (name, help, v) in [
        (
            "xdhcpd_journal_records",
            "Lease records written to the journal.",
            j.records,
        ),
        (
            "xdhcpd_journal_groups",
            "Groups of records written (one write, one sync each).",
            j.groups,
        ),
        (
            "xdhcpd_journal_bytes",
            "Bytes written to the journal.",
            j.bytes,
        ),
        ("xdhcpd_journal_fsyncs", "Syncs of the journal.", j.fsyncs),
        (
            "xdhcpd_journal_full",
            "Records the journal's queue could not take at once.",
            j.full,
        ),
        (
            "xdhcpd_journal_io_errors",
            "Journal writes or syncs that failed.",
            j.io_errors,
        ),
        (
            "xdhcpd_journal_compactions",
            "Compactions of the journal into a snapshot.",
            j.compactions,
        ),
    ] {
        family(e, name, help, None, MetricType::Counter, |m| {
            m.encode_counter::<NoLabelSet, u64, f64>(&v, None)
        })?;
    }
    family(
        e,
        "xdhcpd_journal_fsync",
        "Journal sync latency as the journal reports it, by percentile (50, 99, max). Not `quantile`: that label belongs to summaries.",
        Some(&Unit::Seconds),
        MetricType::Gauge,
        |m| {
            for (p, us) in [
                ("50", j.fsync_p50_us),
                ("99", j.fsync_p99_us),
                ("max", j.fsync_max_us),
            ] {
                gauge(m, &[("percentile", p)], secs(us))?;
            }
            Ok(())
        },
    )
}

fn side_services(e: &mut DescriptorEncoder<'_>, s: &Status) -> Result<(), Error> {
    if let Some(d) = &s.ddns {
        family(
            e,
            "xdhcpd_ddns_updates",
            "DNS updates (RFC 2136), by what became of them.",
            None,
            MetricType::Counter,
            |m| {
                for (r, n) in [
                    ("queued", d.queued),
                    ("sent", d.sent),
                    ("confirmed", d.confirmed),
                    ("failed", d.failed),
                    ("retried", d.retried),
                    ("refused_tsig", d.refused_tsig),
                    ("conflicts", d.conflicts),
                    ("lost", d.lost),
                ] {
                    counter(m, &[("result", r)], n)?;
                }
                Ok(())
            },
        )?;
        family(
            e,
            "xdhcpd_ddns_pending",
            "DNS updates owed and not yet confirmed.",
            None,
            MetricType::Gauge,
            |m| m.encode_gauge(&d.pending),
        )?;
        family(
            e,
            "xdhcpd_ddns_oldest_pending",
            "Age of the oldest DNS update owed.",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            |m| m.encode_gauge(&(d.oldest_pending_ms as f64 / 1e3)),
        )?;
    }
    if let Some(p) = &s.probe {
        family(
            e,
            "xdhcpd_probes",
            "Conflict-check pings, by what became of them.",
            None,
            MetricType::Counter,
            |m| {
                for (r, n) in [
                    ("sent", p.sent),
                    ("send_failed", p.send_failed),
                    ("answered", p.answered),
                    ("stray", p.stray),
                ] {
                    counter(m, &[("result", r)], n)?;
                }
                Ok(())
            },
        )?;
    }
    Ok(())
}

/// The HA cluster thread (`[cluster]`): what it replicated and applied,
/// its role changes, its lags and its view of the peers.
fn cluster(e: &mut DescriptorEncoder<'_>, s: &Status) -> Result<(), Error> {
    let Some(c) = &s.cluster else {
        return Ok(());
    };
    family(
        e,
        "xdhcpd_cluster_records",
        "Lease records through the cluster thread, by what became of them (published to the \
         stream, publish_errors, dropped before it, local_only: of a share not owned; from the \
         stream: applied, skipped, own, learned, fenced, decode_errors; ack_fenced: replicated records of \
         this server fenced by another owner's claim, their ACKs never sent).",
        None,
        MetricType::Counter,
        |m| {
            for (r, n) in [
                ("published", c.published),
                ("publish_errors", c.publish_errors),
                ("dropped", c.dropped),
                ("local_only", c.local_only),
                ("applied", c.applied),
                ("skipped", c.skipped),
                ("own", c.own),
                ("learned", c.learned),
                ("fenced", c.fenced),
                ("decode_errors", c.decode_errors),
                ("ack_fenced", c.held_fenced),
            ] {
                counter(m, &[("result", r)], n)?;
            }
            Ok(())
        },
    )?;
    family(
        e,
        "xdhcpd_cluster_events",
        "Cluster events, by kind (takeovers, handbacks, cut_offs, heartbeats, heartbeat_errors, \
         claim_conflicts, markers; messages: stream messages this server's records went out in, \
         a batch each).",
        None,
        MetricType::Counter,
        |m| {
            for (k, n) in [
                ("takeovers", c.takeovers),
                ("handbacks", c.handbacks),
                ("cut_offs", c.cut_offs),
                ("heartbeats", c.heartbeats),
                ("heartbeat_errors", c.heartbeat_errors),
                ("claim_conflicts", c.claim_conflicts),
                ("markers", c.markers),
                ("messages", c.messages),
            ] {
                counter(m, &[("event", k)], n)?;
            }
            Ok(())
        },
    )?;
    for (name, help, v) in [
        (
            "xdhcpd_cluster_connected",
            "1 while the cluster thread's heartbeats get through and it has caught up the stream.",
            u64::from(c.state == "connected"),
        ),
        (
            "xdhcpd_cluster_owned_shares",
            "Shares this server owns now.",
            c.owned_shares.len() as u64,
        ),
        (
            "xdhcpd_cluster_owned_buckets",
            "Of the 256 client buckets, those this server answers now.",
            u64::from(c.owned_buckets),
        ),
        (
            "xdhcpd_cluster_stream_lag",
            "Messages of the lease stream not yet read by this server.",
            c.stream_lag,
        ),
        (
            "xdhcpd_cluster_replication_lag",
            "Records shipped to the cluster thread and not yet stored by the stream.",
            c.replication_lag,
        ),
        (
            "xdhcpd_cluster_in_flight",
            "Publishes waiting for their acknowledgement.",
            c.in_flight,
        ),
    ] {
        family(e, name, help, None, MetricType::Gauge, |m| {
            m.encode_gauge(&v)
        })?;
    }
    family(
        e,
        "xdhcpd_cluster_peer_alive",
        "1 while a peer's heartbeat revision changes within failover_after, by peer.",
        None,
        MetricType::Gauge,
        |m| {
            for p in &c.peers {
                gauge(m, &[("peer", p.name.clone())], u64::from(p.alive))?;
            }
            Ok(())
        },
    )
}

fn latency(e: &mut DescriptorEncoder<'_>, s: &Status) -> Result<(), Error> {
    let Some(l) = &s.latency else {
        return Ok(());
    };
    // Classic buckets: (upper bound, count in it); the encoder makes them
    // cumulative and writes +Inf for f64::MAX.
    let buckets = |k: &KindSummary| -> Vec<(f64, u64)> {
        BUCKET_BOUNDS_NS
            .iter()
            .map(|&b| b as f64 / 1e9)
            .chain(std::iter::once(f64::MAX))
            .zip(k.buckets.iter().copied())
            .collect()
    };
    family(
        e,
        "xdhcpd_reply_latency",
        "Time in the daemon since start, by kind and worker: offer, ack, nak from the \
         request batch's arrival off the RX ring to the reply's submission to TX; \
         journal_wait the part a durable reply waited for its record's sync. Classic \
         buckets from the workers' hdrhistograms (OpenMetrics text has no native \
         histograms); _sum is exact.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
        |m| {
            for w in &l.workers {
                for kind in Kind::ALL {
                    let k = w.total.get(kind);
                    let labels = [
                        ("worker", w.queue.to_string()),
                        ("kind", kind.name().into()),
                    ];
                    m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                        k.sum_ns as f64 / 1e9,
                        k.count,
                        &buckets(k),
                        None,
                    )?;
                }
            }
            Ok(())
        },
    )?;
    family(
        e,
        "xdhcpd_reply_latency_recent",
        "Percentiles of the last interval's latencies, all workers, by kind (for reading \
         by eye; 0 when the interval had none).",
        Some(&Unit::Seconds),
        MetricType::Gauge,
        |m| {
            for kind in Kind::ALL {
                let k = l.recent.get(kind);
                for (p, us) in [("50", k.p50_us), ("99", k.p99_us), ("99.9", k.p999_us)] {
                    gauge(m, &[("kind", kind.name()), ("percentile", p)], secs(us))?;
                }
            }
            Ok(())
        },
    )?;
    family(
        e,
        "xdhcpd_reply_latency_since_start",
        "Percentiles of every latency since start, all workers, by kind.",
        Some(&Unit::Seconds),
        MetricType::Gauge,
        |m| {
            for kind in Kind::ALL {
                let k = l.total.get(kind);
                for (p, us) in [("50", k.p50_us), ("99", k.p99_us), ("99.9", k.p999_us)] {
                    gauge(m, &[("kind", kind.name()), ("percentile", p)], secs(us))?;
                }
            }
            Ok(())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterStatus, PeerStatus};
    use crate::io::xdp::XdpCounters;
    use crate::latency::Collector;
    use crate::lease::journal::JournalStats;
    use crate::status::{DdnsStatus, ProbeStatus, SubnetStatus};
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    /// A status with every optional part present.
    fn full() -> Status {
        let (mut c, mut recs) = Collector::new(&[0, 1], Duration::from_millis(1));
        let t0 = Instant::now();
        for (i, r) in recs.iter_mut().enumerate() {
            for n in 0..100u64 {
                r.record(
                    Kind::Offer,
                    t0,
                    t0 + Duration::from_micros(10 + n + i as u64),
                );
                r.record(Kind::Ack, t0, t0 + Duration::from_micros(20 + n));
            }
            r.record(Kind::JournalWait, t0, t0 + Duration::from_millis(3));
        }
        for r in recs {
            r.finish();
        }
        c.collect();
        let mut s = Status {
            io: "xdp",
            xdp_mode: Some("driver"),
            bind: Some("copy"),
            xdp: Some(XdpCounters {
                seen: 10,
                redirected: 9,
                malformed: 1,
                ..XdpCounters::default()
            }),
            journal: Some(JournalStats {
                records: 200,
                fsyncs: 3,
                fsync_p50_us: 800,
                ..JournalStats::default()
            }),
            probe: Some(ProbeStatus::default()),
            ddns: Some(DdnsStatus::default()),
            cluster: Some(ClusterStatus {
                state: "connected",
                owned_shares: vec![0],
                owned_buckets: 128,
                published: 5,
                peers: vec![PeerStatus {
                    name: "b".into(),
                    alive: true,
                    ..PeerStatus::default()
                }],
                ..ClusterStatus::default()
            }),
            subnets: vec![SubnetStatus {
                subnet: "198.18.0.0/15".into(),
                network: "198.18.0.0".parse().unwrap(),
                prefix_len: 15,
                size: 1000,
                used: 200,
                in_probation: 1,
            }],
            latency: Some(Arc::new(c.status())),
            ..Status::default()
        };
        s.leases.bound = 200;
        s.total.discover = 200;
        s.total.offer = 200;
        s.workers = vec![(0, s.total), (1, WorkerSnapshot::default())];
        s
    }

    fn sample_names(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_exposition_has_every_family_in_openmetrics_form() {
        let text = render(&full());
        assert!(text.ends_with("# EOF\n"), "{text}");
        let names = sample_names(&text);
        for n in [
            "xdhcpd_requests_total",
            "xdhcpd_replies_total",
            "xdhcpd_drops_total",
            "xdhcpd_xsk_ring_total",
            "xdhcpd_xdp_frames_total",
            "xdhcpd_pool_used",
            "xdhcpd_leases",
            "xdhcpd_journal_groups_total",
            "xdhcpd_journal_fsync_seconds",
            "xdhcpd_ddns_updates_total",
            "xdhcpd_probes_total",
            "xdhcpd_cluster_records_total",
            "xdhcpd_cluster_events_total",
            "xdhcpd_cluster_connected",
            "xdhcpd_cluster_replication_lag",
            "xdhcpd_cluster_peer_alive",
            "xdhcpd_reply_latency_seconds_bucket",
            "xdhcpd_reply_latency_seconds_sum",
            "xdhcpd_reply_latency_seconds_count",
            "xdhcpd_reply_latency_recent_seconds",
            "xdhcpd_build_info",
        ] {
            assert!(names.contains(n), "{n} missing:\n{text}");
        }
        assert!(text.contains("# TYPE xdhcpd_reply_latency_seconds histogram"));
        assert!(text.contains("# UNIT xdhcpd_reply_latency_seconds seconds"));
        assert!(text.contains("xdhcpd_requests_total{worker=\"0\",type=\"discover\"} 200"));
        assert!(text.contains("xdhcpd_leases{state=\"bound\"} 200"));
        assert!(text.contains("xdhcpd_cluster_records_total{result=\"published\"} 5"));
        assert!(text.contains("xdhcpd_cluster_peer_alive{peer=\"b\"} 1"));
        // Cumulative buckets, ending in +Inf at the count, per worker.
        let w0: Vec<u64> = text
            .lines()
            .filter(|l| {
                l.starts_with("xdhcpd_reply_latency_seconds_bucket{")
                    && l.contains("worker=\"0\",kind=\"offer\"")
            })
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert_eq!(w0.len(), crate::latency::BUCKET_BOUNDS_NS.len() + 1);
        assert!(w0.windows(2).all(|p| p[0] <= p[1]), "{w0:?}");
        assert_eq!(*w0.last().unwrap(), 100);
        assert!(text.contains(
            "xdhcpd_reply_latency_seconds_bucket{le=\"+Inf\",worker=\"1\",kind=\"journal_wait\"} 1"
        ));
        assert!(text.contains("xdhcpd_reply_latency_seconds_count{worker=\"0\",kind=\"ack\"} 100"));
    }

    #[test]
    fn latency_off_and_no_journal_leave_their_families_out() {
        let mut s = full();
        s.latency = None;
        s.journal = None;
        let names = sample_names(&render(&s));
        assert!(!names.iter().any(|n| n.starts_with("xdhcpd_reply_latency")));
        assert!(!names.iter().any(|n| n.starts_with("xdhcpd_journal")));
    }

    /// The Grafana dashboard is JSON, and every metric it queries is one
    /// this exposition has.
    #[test]
    fn the_dashboard_queries_only_exported_metrics() {
        let dash = include_str!("../../packaging/grafana/xdhcpd.json");
        let v: serde_json::Value = serde_json::from_str(dash).expect("the dashboard is JSON");
        assert!(v["panels"].as_array().is_some_and(|p| p.len() >= 7));
        let names = sample_names(&render(&full()));
        let mut queried = BTreeSet::new();
        let mut rest = dash;
        while let Some(at) = rest.find("xdhcpd_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(tail.len());
            queried.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
        assert!(queried.len() > 10, "{queried:?}");
        for q in &queried {
            assert!(names.contains(q), "the dashboard queries {q}, not exported");
        }
    }
}
