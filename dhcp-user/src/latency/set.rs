//! One worker's histograms and the recorder that swaps them with the
//! collector.
use super::{KINDS, Kind};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use hdrhistogram::Histogram;
use std::time::{Duration, Instant};

/// The longest latency told apart (60 s, in nanoseconds); longer ones are
/// counted at it. A journal on a disk that stalls is the only way there.
const HIGHEST_NS: u64 = 60_000_000_000;
/// Two significant digits: every value within 1 %, and a histogram of
/// about 30 KiB, so a worker's sets stay small and a merge is quick.
const SIGFIG: u8 = 2;

/// Upper bounds of the classic buckets the metrics endpoint exports, in
/// nanoseconds: 1 µs doubling to about 8.4 s (a +Inf bucket follows).
pub const BUCKET_BOUNDS_NS: [u64; 24] = {
    let mut b = [0u64; 24];
    let mut i = 0;
    while i < 24 {
        b[i] = 1000 << i;
        i += 1;
    }
    b
};

/// A histogram per [`Kind`], and the exact sum of what each recorded (the
/// histogram's own mean is only as good as its buckets).
#[derive(Clone, Debug)]
pub struct Set {
    hist: [Histogram<u64>; KINDS],
    sum_ns: [u64; KINDS],
}

impl Default for Set {
    fn default() -> Self {
        Set::new()
    }
}

impl Set {
    /// Allocates the histograms, at their full size: recording never
    /// resizes them (auto-resize is off, out-of-range values saturate).
    pub fn new() -> Set {
        let h = || {
            Histogram::new_with_bounds(1, HIGHEST_NS, SIGFIG)
                .expect("constant, valid histogram bounds")
        };
        Set {
            hist: [h(), h(), h(), h()],
            sum_ns: [0; KINDS],
        }
    }

    /// Records `n` latencies of `ns` nanoseconds.
    #[inline]
    pub fn record_n(&mut self, kind: Kind, ns: u64, n: u64) {
        let i = kind as usize;
        self.hist[i].saturating_record_n(ns.max(1), n);
        self.sum_ns[i] = self.sum_ns[i].wrapping_add(ns.wrapping_mul(n));
    }

    #[inline]
    pub fn record(&mut self, kind: Kind, ns: u64) {
        self.record_n(kind, ns, 1)
    }

    pub fn is_empty(&self) -> bool {
        self.hist.iter().all(Histogram::is_empty)
    }

    pub fn hist(&self, kind: Kind) -> &Histogram<u64> {
        &self.hist[kind as usize]
    }

    pub fn sum_ns(&self, kind: Kind) -> u64 {
        self.sum_ns[kind as usize]
    }

    /// Adds `other` in (same bounds, so nothing is lost or resized).
    pub fn add(&mut self, other: &Set) {
        for i in 0..KINDS {
            // Equal bounds: the addition cannot fail.
            let _ = self.hist[i].add(&other.hist[i]);
            self.sum_ns[i] = self.sum_ns[i].wrapping_add(other.sum_ns[i]);
        }
    }

    /// Empties every histogram, keeping its memory.
    pub fn reset(&mut self) {
        for h in &mut self.hist {
            h.reset();
        }
        self.sum_ns = [0; KINDS];
    }

    /// Counts per classic bucket of `kind`: one per [`BUCKET_BOUNDS_NS`]
    /// (values above the previous bound, up to this one) and a last one
    /// for the rest (+Inf). Not cumulative. A value is placed by the
    /// highest value its hdrhistogram bin stands for, so bounds are as
    /// exact as the histogram (1 %).
    pub fn buckets(&self, kind: Kind) -> Vec<u64> {
        let mut out = vec![0; BUCKET_BOUNDS_NS.len() + 1];
        for v in self.hist(kind).iter_recorded() {
            let ns = v.value_iterated_to();
            let at = BUCKET_BOUNDS_NS.partition_point(|&b| b < ns);
            out[at] += v.count_at_value();
        }
        out
    }
}

/// What a worker's [`Recorder::tick`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flush {
    /// Not due yet, or nothing recorded since the last hand-over.
    Idle,
    /// The filled set went to the collector, an empty one came back.
    Sent,
    /// No empty set was there (the collector is behind): recording goes
    /// on into the filled one, which leaves at a later interval.
    Held,
}

/// A worker's end: the set it records into, and its channels to the
/// collector. Every set it will ever use was allocated at start.
pub struct Recorder {
    cur: Box<Set>,
    full: Sender<Box<Set>>,
    empty: Receiver<Box<Set>>,
    interval: Duration,
    next: Instant,
}

impl Recorder {
    pub(super) fn new(
        cur: Box<Set>,
        full: Sender<Box<Set>>,
        empty: Receiver<Box<Set>>,
        interval: Duration,
    ) -> Recorder {
        Recorder {
            cur,
            full,
            empty,
            interval,
            next: Instant::now() + interval,
        }
    }

    /// Records the time from `since` to `now`.
    #[inline]
    pub fn record(&mut self, kind: Kind, since: Instant, now: Instant) {
        self.record_n(kind, since, now, 1)
    }

    /// Records `n` latencies of the time from `since` to `now`.
    #[inline]
    pub fn record_n(&mut self, kind: Kind, since: Instant, now: Instant, n: u64) {
        let ns = now.saturating_duration_since(since).as_nanos();
        self.cur
            .record_n(kind, u64::try_from(ns).unwrap_or(u64::MAX), n);
    }

    /// At most once per interval (checked against a clock the worker
    /// already read): hands the filled set to the collector and takes an
    /// empty one back, without waiting for either.
    #[inline]
    pub fn tick(&mut self, now: Instant) -> Flush {
        if now < self.next {
            return Flush::Idle;
        }
        self.next = now + self.interval;
        if self.cur.is_empty() {
            return Flush::Idle;
        }
        self.swap()
    }

    fn swap(&mut self) -> Flush {
        let Ok(fresh) = self.empty.try_recv() else {
            return Flush::Held;
        };
        let filled = std::mem::replace(&mut self.cur, fresh);
        match self.full.try_send(filled) {
            Ok(()) => Flush::Sent,
            // Only when the collector is gone (the channel holds every
            // set): keep the filled one.
            Err(TrySendError::Full(f) | TrySendError::Disconnected(f)) => {
                self.cur = f;
                Flush::Held
            }
        }
    }

    /// Hands over what was recorded since the last interval, when the
    /// worker stops, so the last report has every reply.
    pub fn finish(self) {
        let Recorder { cur, full, .. } = self;
        if !cur.is_empty() {
            // The channel has room for every set of this worker.
            let _ = full.try_send(cur);
        }
    }
}
