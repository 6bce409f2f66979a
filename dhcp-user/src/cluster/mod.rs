//! High availability (issue 14): two or three xdhcpd share one network
//! through a NATS JetStream cluster, on a side thread with a tokio runtime
//! of its own, never on a worker.
//!
//! - `roles`: who owns which share and what to do about it (liveness by
//!   heartbeat revisions on this server's own clock, the taker's choice,
//!   hand back): pure, tested without NATS;
//! - `kv`: heartbeats and claims in the KV bucket (create, compare-and-set
//!   on revisions), the control task;
//! - `stream`: the lease stream: setup, pipelined publishes, the consumer,
//!   acquires (marker, read up to it, then the bit);
//! - `fence`: the fencing walk every reader applies identically;
//! - `pipeline`: publishes in flight, so that `replicated` marks move in
//!   each producer's order;
//! - `payload`: the bytes and subjects on the stream;
//! - `stats`: the counters and views for the stats file and metrics;
//! - `service`: the threads, the shared state, the watchdog that clears
//!   every bit when the heartbeats stop getting through.
//!
//! The engine sees only [`crate::engine::Ownership`] (one Relaxed load per
//! packet); records reach this thread from the journal's replication hook
//! and remote records go back through a closure the daemon gives
//! (`Engine::apply_remote`), so this folder imports neither the workers
//! nor the engine's internals.
pub mod fence;
mod kv;
pub mod payload;
pub mod pipeline;
pub mod roles;
pub mod service;
pub mod stats;
mod stream;

pub use service::{Apply, ClusterService, ClusterStatsHandle, LearnOwn, Links};
pub use stats::{ClusterStats, ClusterStatus, PeerStatus, ShareStatus};
