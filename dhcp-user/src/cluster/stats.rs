//! The cluster thread's counters and its view of the shares and peers, for
//! the stats file, the control API and the metrics endpoint.
//!
//! Counters are atomics the thread bumps; the views (shares, peers, state)
//! change at most once per heartbeat and sit behind a mutex the thread
//! takes that often, and the main thread once per stats interval.
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct ClusterStats {
    /// Records stored by the stream.
    pub published: AtomicU64,
    /// The messages that carried them (a batch each).
    pub messages: AtomicU64,
    pub publish_errors: AtomicU64,
    pub in_flight: AtomicU64,
    /// Records the journal could not hand to the cluster thread (its
    /// channel full, `durable` only); the journal's own count is added in.
    pub dropped: AtomicU64,
    /// Records of shares this server did not own when they were shipped:
    /// kept in its own journal, not published.
    pub local_only: AtomicU64,
    /// Remote records the engine applied / skipped (it had the same or a
    /// newer word on the address).
    pub applied: AtomicU64,
    pub skipped: AtomicU64,
    /// This server's own records read back from the stream.
    pub own: AtomicU64,
    /// Of those, taken back into an empty journal during the catch-up.
    pub learned: AtomicU64,
    pub fenced: AtomicU64,
    pub decode_errors: AtomicU64,
    pub markers: AtomicU64,
    pub stream_last_seq: AtomicU64,
    pub applied_seq: AtomicU64,
    /// Shipped and not yet acknowledged by the stream (`replicated`: their
    /// ACKs wait).
    pub replication_lag: AtomicU64,
    /// Replicated records fenced by another owner's marker (their share
    /// was taken while this server was cut off): their ACKs were never
    /// sent; the marks passed them once the parked replies expired.
    pub held_fenced: AtomicU64,
    pub takeovers: AtomicU64,
    pub handbacks: AtomicU64,
    pub cut_offs: AtomicU64,
    pub heartbeats: AtomicU64,
    pub heartbeat_errors: AtomicU64,
    pub claim_conflicts: AtomicU64,
    pub views: Mutex<Views>,
}

/// What changes per heartbeat rather than per record.
#[derive(Clone, Debug, Default)]
pub struct Views {
    pub state: &'static str,
    pub owned_shares: Vec<u8>,
    pub owned_buckets: u32,
    pub shares: Vec<ShareStatus>,
    pub peers: Vec<PeerStatus>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ShareStatus {
    pub share: u8,
    pub home: String,
    /// The claim's owner; empty when nobody claimed it yet.
    pub owner: String,
    /// The claim's KV revision: the fencing token.
    pub revision: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PeerStatus {
    pub name: String,
    pub alive: bool,
    pub ready: bool,
    /// Since its heartbeat revision last changed, on this server's clock.
    pub last_seen_ms: u64,
}

/// One snapshot, as the stats file's `cluster` object.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ClusterStatus {
    /// `starting`, `connected` or `cut-off`.
    pub state: &'static str,
    pub name: String,
    pub mode: &'static str,
    pub durability: &'static str,
    pub owned_shares: Vec<u8>,
    pub owned_buckets: u32,
    pub shares: Vec<ShareStatus>,
    pub peers: Vec<PeerStatus>,
    pub published: u64,
    pub messages: u64,
    pub publish_errors: u64,
    pub in_flight: u64,
    pub dropped: u64,
    pub local_only: u64,
    pub applied: u64,
    pub skipped: u64,
    pub own: u64,
    pub learned: u64,
    pub fenced: u64,
    pub decode_errors: u64,
    pub markers: u64,
    /// The stream's last sequence minus the last one this server applied
    /// (messages, not records).
    pub stream_lag: u64,
    pub replication_lag: u64,
    pub held_fenced: u64,
    pub takeovers: u64,
    pub handbacks: u64,
    pub cut_offs: u64,
    pub heartbeats: u64,
    pub heartbeat_errors: u64,
    pub claim_conflicts: u64,
}

impl ClusterStats {
    pub fn snapshot(
        &self,
        name: &str,
        mode: &'static str,
        durability: &'static str,
        journal_dropped: u64,
    ) -> ClusterStatus {
        let l = |c: &AtomicU64| c.load(Relaxed);
        let v = match self.views.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        ClusterStatus {
            state: if v.state.is_empty() {
                "starting"
            } else {
                v.state
            },
            name: name.to_string(),
            mode,
            durability,
            owned_shares: v.owned_shares,
            owned_buckets: v.owned_buckets,
            shares: v.shares,
            peers: v.peers,
            published: l(&self.published),
            messages: l(&self.messages),
            publish_errors: l(&self.publish_errors),
            in_flight: l(&self.in_flight),
            dropped: l(&self.dropped) + journal_dropped,
            local_only: l(&self.local_only),
            applied: l(&self.applied),
            skipped: l(&self.skipped),
            own: l(&self.own),
            learned: l(&self.learned),
            fenced: l(&self.fenced),
            decode_errors: l(&self.decode_errors),
            markers: l(&self.markers),
            stream_lag: l(&self.stream_last_seq).saturating_sub(l(&self.applied_seq)),
            replication_lag: l(&self.replication_lag),
            held_fenced: l(&self.held_fenced),
            takeovers: l(&self.takeovers),
            handbacks: l(&self.handbacks),
            cut_offs: l(&self.cut_offs),
            heartbeats: l(&self.heartbeats),
            heartbeat_errors: l(&self.heartbeat_errors),
            claim_conflicts: l(&self.claim_conflicts),
        }
    }
}
