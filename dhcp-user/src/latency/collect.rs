//! The side thread that merges the workers' histograms, and the summary
//! it publishes for the status snapshot.
use super::set::{Recorder, Set};
use super::{KINDS, Kind};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sets per worker: the one it records into, one on its way to the
/// collector or being merged, one spare on its way back, so a worker
/// never waits for a merge.
const SETS_PER_WORKER: usize = 3;

/// One kind's figures, in microseconds (integers, as the stats file has
/// them), with what the metrics endpoint needs beside them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindSummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// Exact sum of the latencies, nanoseconds.
    pub sum_ns: u64,
    /// Counts per classic bucket ([`super::BUCKET_BOUNDS_NS`], then
    /// +Inf), not cumulative; empty for the last interval's summaries.
    pub buckets: Vec<u64>,
}

fn us(ns: u64) -> u64 {
    ns.saturating_add(500) / 1000
}

impl KindSummary {
    fn of(set: &Set, kind: Kind, buckets: bool) -> KindSummary {
        let h = set.hist(kind);
        if h.is_empty() {
            return KindSummary {
                buckets: if buckets {
                    set.buckets(kind)
                } else {
                    Vec::new()
                },
                ..KindSummary::default()
            };
        }
        KindSummary {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            sum_ns: set.sum_ns(kind),
            buckets: if buckets {
                set.buckets(kind)
            } else {
                Vec::new()
            },
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "count": self.count,
            "p50_us": self.p50_us,
            "p90_us": self.p90_us,
            "p99_us": self.p99_us,
            "p999_us": self.p999_us,
            "max_us": self.max_us,
        })
    }
}

/// Every kind's figures, indexed by [`Kind`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub kinds: [KindSummary; KINDS],
}

impl Summary {
    fn of(set: &Set, buckets: bool) -> Summary {
        Summary {
            kinds: Kind::ALL.map(|k| KindSummary::of(set, k, buckets)),
        }
    }

    pub fn get(&self, kind: Kind) -> &KindSummary {
        &self.kinds[kind as usize]
    }

    fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for k in Kind::ALL {
            m.insert(k.name().into(), self.get(k).to_json());
        }
        Value::Object(m)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerLatency {
    pub queue: u32,
    pub total: Summary,
    pub recent: Summary,
}

/// What the collector last published: since start (`total`) and the sets
/// that arrived in its last interval (`recent`; workers hand theirs over
/// on their own clock, so an interval holds about one of each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyStatus {
    pub interval_ms: u64,
    pub total: Summary,
    pub recent: Summary,
    pub workers: Vec<WorkerLatency>,
}

impl LatencyStatus {
    /// The stats file's "latency" document.
    pub fn to_json(&self) -> Value {
        json!({
            "interval_ms": self.interval_ms,
            "kinds": Kind::ALL.map(Kind::name),
            "total": self.total.to_json(),
            "recent": self.recent.to_json(),
            "workers": self.workers.iter().map(|w| json!({
                "queue": w.queue,
                "total": w.total.to_json(),
                "recent": w.recent.to_json(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// One worker's channels and histograms, on the collector's side.
struct Source {
    queue: u32,
    full: Receiver<Box<Set>>,
    empty: Sender<Box<Set>>,
    total: Set,
    recent: Set,
}

/// The merging state; [`Collector::start`] runs it on its thread.
pub struct Collector {
    sources: Vec<Source>,
    interval: Duration,
    total: Set,
    recent: Set,
}

impl Collector {
    /// A collector for the workers of `queues`, and their recorders in the
    /// same order; each worker hands its set over at most every
    /// `interval`, and the collector publishes at that interval.
    pub fn new(queues: &[u32], interval: Duration) -> (Collector, Vec<Recorder>) {
        let mut sources = Vec::with_capacity(queues.len());
        let mut recorders = Vec::with_capacity(queues.len());
        for &queue in queues {
            let (full_tx, full_rx) = bounded(SETS_PER_WORKER);
            let (empty_tx, empty_rx) = bounded(SETS_PER_WORKER);
            for _ in 1..SETS_PER_WORKER {
                let _ = empty_tx.try_send(Box::new(Set::new()));
            }
            recorders.push(Recorder::new(Box::default(), full_tx, empty_rx, interval));
            sources.push(Source {
                queue,
                full: full_rx,
                empty: empty_tx,
                total: Set::new(),
                recent: Set::new(),
            });
        }
        let c = Collector {
            sources,
            interval,
            total: Set::new(),
            recent: Set::new(),
        };
        (c, recorders)
    }

    /// Starts a new interval: merges every set the workers handed over
    /// since the last, and hands them back emptied.
    pub fn collect(&mut self) {
        self.recent.reset();
        for s in &mut self.sources {
            s.recent.reset();
            while let Ok(mut set) = s.full.try_recv() {
                s.total.add(&set);
                s.recent.add(&set);
                self.total.add(&set);
                self.recent.add(&set);
                set.reset();
                // Room for every set of this worker: never full.
                let _ = s.empty.try_send(set);
            }
        }
    }

    /// The figures as of the last [`Collector::collect`].
    pub fn status(&self) -> LatencyStatus {
        LatencyStatus {
            interval_ms: self.interval.as_millis() as u64,
            total: Summary::of(&self.total, true),
            recent: Summary::of(&self.recent, false),
            workers: self
                .sources
                .iter()
                .map(|s| WorkerLatency {
                    queue: s.queue,
                    total: Summary::of(&s.total, true),
                    recent: Summary::of(&s.recent, false),
                })
                .collect(),
        }
    }

    /// Runs the collector on a thread of its own until the handle stops.
    pub fn start(mut self) -> std::io::Result<CollectorHandle> {
        let latest = Arc::new(Mutex::new(Arc::new(self.status())));
        let (stop, stopped) = bounded::<()>(0);
        let out = latest.clone();
        let thread = std::thread::Builder::new()
            .name("latency".into())
            .spawn(move || {
                let mut next = Instant::now() + self.interval;
                loop {
                    let wait = next.saturating_duration_since(Instant::now());
                    let last =
                        !matches!(stopped.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
                    next += self.interval;
                    self.collect();
                    let s = Arc::new(self.status());
                    *out.lock().unwrap_or_else(|p| p.into_inner()) = s;
                    if last {
                        break;
                    }
                }
            })?;
        Ok(CollectorHandle {
            latest,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// The running collector: its newest figures, and its end.
pub struct CollectorHandle {
    latest: Arc<Mutex<Arc<LatencyStatus>>>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl CollectorHandle {
    pub fn latest(&self) -> Arc<LatencyStatus> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Merges what the workers handed over (call it after they stopped:
    /// their last sets are then in) and ends the thread.
    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CollectorHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::super::Flush;
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_collector_merges_every_workers_sets_and_the_percentiles_follow() {
        let (mut c, mut recs) = Collector::new(&[0, 1], Duration::from_millis(10));
        let t0 = Instant::now();
        // Worker 0: 900 OFFERs at 10 µs, 100 at 1 ms; worker 1: 1000 ACKs
        // at 50 µs and 3 journal waits of 2 ms.
        for i in 0..1000u64 {
            let d = if i < 900 {
                Duration::from_micros(10)
            } else {
                MS
            };
            recs[0].record(Kind::Offer, t0, t0 + d);
            recs[1].record(Kind::Ack, t0, t0 + Duration::from_micros(50));
        }
        recs[1].record_n(Kind::JournalWait, t0, t0 + 2 * MS, 3);
        // Not due yet: nothing moves.
        assert_eq!(recs[0].tick(t0), Flush::Idle);
        c.collect();
        assert_eq!(c.status().total.get(Kind::Offer).count, 0);
        let due = Instant::now() + Duration::from_millis(20);
        assert_eq!(recs[0].tick(due), Flush::Sent);
        assert_eq!(recs[1].tick(due), Flush::Sent);
        c.collect();
        let s = c.status();
        let offer = s.total.get(Kind::Offer);
        assert_eq!(offer.count, 1000);
        assert_eq!(offer.p50_us, 10);
        assert_eq!(offer.p90_us, 10);
        assert!((995..=1005).contains(&offer.p99_us), "{offer:?}");
        assert!((995..=1005).contains(&offer.max_us), "{offer:?}");
        assert_eq!(offer.sum_ns, 900 * 10_000 + 100 * 1_000_000);
        let ack = s.total.get(Kind::Ack);
        assert_eq!((ack.count, ack.p50_us, ack.p999_us), (1000, 50, 50));
        assert_eq!(s.total.get(Kind::JournalWait).count, 3);
        assert_eq!(s.total.get(Kind::Nak).count, 0);
        // Per worker, and the last interval the same as the total so far.
        assert_eq!(s.workers[0].total.get(Kind::Offer).count, 1000);
        assert_eq!(s.workers[0].total.get(Kind::Ack).count, 0);
        assert_eq!(s.workers[1].recent.get(Kind::Ack).count, 1000);
        assert_eq!(s.recent.get(Kind::Offer).count, 1000);
        // Buckets: a partition of the count; 10 µs is in (8, 16] µs.
        let b = &offer.buckets;
        assert_eq!(b.iter().sum::<u64>(), 1000);
        assert_eq!(b[4], 900);
        assert_eq!(b[10], 100, "1 ms is in (512, 1024] µs: {b:?}");
        // Next interval: nothing new, so recent is empty, total stays.
        recs[0].record(Kind::Nak, t0, t0 + MS);
        c.collect();
        let s = c.status();
        assert_eq!(s.recent.get(Kind::Offer).count, 0);
        assert_eq!(s.total.get(Kind::Offer).count, 1000);
        // The NAK is still with worker 0 (not due); finish hands it over.
        assert_eq!(s.total.get(Kind::Nak).count, 0);
        let r0 = recs.remove(0);
        r0.finish();
        c.collect();
        assert_eq!(c.status().total.get(Kind::Nak).count, 1);
    }

    #[test]
    fn a_worker_without_an_empty_set_keeps_recording_and_loses_nothing() {
        let (mut c, mut recs) = Collector::new(&[7], MS);
        let r = &mut recs[0];
        let t0 = Instant::now();
        let mut when = t0;
        let mut sent = 0;
        // The collector does not run: after the spare sets are gone the
        // worker holds on to its set.
        for i in 0..10 {
            r.record(Kind::Offer, t0, t0 + MS);
            when += 2 * MS;
            match r.tick(when) {
                Flush::Sent => sent += 1,
                Flush::Held => assert!(i >= SETS_PER_WORKER - 1, "held at {i}"),
                Flush::Idle => panic!("due and not empty"),
            }
        }
        assert_eq!(sent, SETS_PER_WORKER - 1);
        c.collect();
        assert_eq!(c.status().total.get(Kind::Offer).count, sent as u64);
        when += 2 * MS;
        assert_eq!(r.tick(when), Flush::Sent);
        c.collect();
        let s = c.status();
        assert_eq!(s.total.get(Kind::Offer).count, 10);
        assert_eq!(s.workers[0].queue, 7);
    }

    #[test]
    fn the_json_has_the_contract_shape() {
        let (mut c, mut recs) = Collector::new(&[0], MS);
        let t0 = Instant::now();
        recs[0].record(Kind::Ack, t0, t0 + Duration::from_micros(40));
        recs[0].tick(t0 + 5 * MS);
        c.collect();
        let v = c.status().to_json();
        assert_eq!(v["interval_ms"], 1);
        assert_eq!(v["kinds"], json!(["offer", "ack", "nak", "journal_wait"]));
        for part in ["total", "recent"] {
            for k in ["offer", "ack", "nak", "journal_wait"] {
                let o = v[part][k].as_object().unwrap();
                let mut keys: Vec<_> = o.keys().cloned().collect();
                keys.sort();
                assert_eq!(
                    keys,
                    ["count", "max_us", "p50_us", "p90_us", "p999_us", "p99_us"]
                );
            }
        }
        assert_eq!(v["total"]["ack"]["count"], 1);
        assert_eq!(v["total"]["ack"]["p50_us"], 40);
        assert_eq!(v["workers"][0]["queue"], 0);
        assert_eq!(v["workers"][0]["recent"]["ack"]["count"], 1);
    }

    #[test]
    fn the_thread_publishes_and_takes_the_last_sets_at_stop() {
        let (c, mut recs) = Collector::new(&[0], Duration::from_millis(5));
        let mut h = c.start().unwrap();
        let t0 = Instant::now();
        recs[0].record(Kind::Offer, t0, t0 + MS);
        recs.remove(0).finish();
        h.stop();
        assert_eq!(h.latest().total.get(Kind::Offer).count, 1);
    }
}
