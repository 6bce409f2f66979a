//! Latency histograms (HdrHistogram, microseconds) of one worker, merged
//! across workers at the end of a run.
use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency recorded exactly: an hour; longer ones saturate.
const MAX_US: u64 = 3_600_000_000;

/// The measured intervals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// First DISCOVER → OFFER.
    Offer,
    /// First REQUEST (selecting) → ACK.
    Ack,
    /// First DISCOVER → ACK.
    Dora,
    /// First renewing or rebinding REQUEST → ACK.
    Renew,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Offer, Kind::Ack, Kind::Dora, Kind::Renew];

    pub const fn name(self) -> &'static str {
        match self {
            Kind::Offer => "offer",
            Kind::Ack => "ack",
            Kind::Dora => "dora",
            Kind::Renew => "renew",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Latencies {
    hists: [Histogram<u64>; 4],
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Latencies {
        let h = || {
            Histogram::new_with_bounds(1, MAX_US, 3).expect("constant histogram bounds are valid")
        };
        Latencies {
            hists: [h(), h(), h(), h()],
        }
    }

    /// Records `ns` nanoseconds; the buckets exist already, so this never
    /// allocates.
    #[inline]
    pub fn record(&mut self, kind: Kind, ns: u64) {
        self.hists[kind as usize].saturating_record((ns / 1000).max(1));
    }

    pub fn get(&self, kind: Kind) -> &Histogram<u64> {
        &self.hists[kind as usize]
    }

    pub fn merge(&mut self, other: &Latencies) {
        for (a, b) in self.hists.iter_mut().zip(&other.hists) {
            // Same bounds on both sides, so adding cannot fail.
            let _ = a.add(b);
        }
    }
}

/// The percentiles the report and the JSON summary show, in µs.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_merge_percentiles() {
        let mut a = Latencies::new();
        let mut b = Latencies::new();
        for us in 1..=1000u64 {
            a.record(Kind::Dora, us * 1000);
        }
        b.record(Kind::Dora, 5_000_000);
        b.record(Kind::Offer, 10); // below 1 µs: counted as 1
        a.merge(&b);
        let p = Percentiles::of(a.get(Kind::Dora));
        assert_eq!(p.count, 1001);
        assert!((499..=501).contains(&p.p50), "{p:?}");
        assert!((989..=991).contains(&p.p99), "{p:?}");
        assert!((4995..=5005).contains(&p.max), "5 ms recorded as {p:?}");
        assert_eq!(Percentiles::of(a.get(Kind::Offer)).max, 1);
        assert_eq!(Percentiles::of(a.get(Kind::Renew)), Percentiles::default());
    }
}
