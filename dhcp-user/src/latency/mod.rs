//! Reply latency measured inside the daemon: per reply kind, the time
//! from a batch's arrival off the RX ring to the reply's submission to
//! TX, and in durable mode the time a reply waited for its lease record's
//! sync (`journal_wait`), apart.
//!
//! Each worker records into a [`Set`] of histograms of its own through a
//! [`Recorder`]: no shared state, no allocation and no system call per
//! reply (the worker reads the clock once per batch at RX and once at TX
//! submission). At most once per interval the worker swaps its filled set
//! for an empty one over two bounded channels; the [`collect`] side thread
//! merges what it receives into cumulative and last-interval histograms,
//! per worker and for all, resets the set and hands it back. The sets
//! circulate, so nothing is allocated after start; a worker that finds no
//! empty set keeps recording into the one it has and counts it.
//!
//! hdrhistogram's own interval recorder (`sync::Recorder`) was not used:
//! it allocates a histogram when a phase ends and takes a lock the
//! workers would share.
//!
//! This module imports nothing of the crate: the workers (`io`) record
//! into it, the status snapshot reads its summaries.
pub mod collect;
mod set;

pub use collect::{Collector, CollectorHandle, KindSummary, LatencyStatus, Summary, WorkerLatency};
pub use set::{BUCKET_BOUNDS_NS, Flush, Recorder, Set};

/// What a latency was measured of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Offer = 0,
    Ack = 1,
    Nak = 2,
    /// A durable-mode reply's wait for its lease record's sync.
    JournalWait = 3,
}

/// How many kinds there are (the length of every per-kind array).
pub const KINDS: usize = 4;

impl Kind {
    pub const ALL: [Kind; KINDS] = [Kind::Offer, Kind::Ack, Kind::Nak, Kind::JournalWait];

    /// The kind's name in the stats file and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Offer => "offer",
            Kind::Ack => "ack",
            Kind::Nak => "nak",
            Kind::JournalWait => "journal_wait",
        }
    }
}
