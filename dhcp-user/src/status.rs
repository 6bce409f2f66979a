//! What the running daemon is doing, as one snapshot.
//!
//! The main thread takes a [`Status`] at every stats interval from the
//! counters the workers and side services keep, and publishes it on a
//! [`Board`]; the stats file, the control API and the metrics endpoint
//! all read that one snapshot, so they never disagree and none of them
//! reads a worker's counters or a BPF map on its own schedule.
use crate::cluster::ClusterStatus;
use crate::io::xdp::XdpCounters;
use crate::latency::LatencyStatus;
use crate::lease::StateCounts;
use crate::lease::journal::JournalStats;
use crate::stats::WorkerSnapshot;
use serde::Serialize;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

/// One snapshot of everything counted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    pub uptime_s: f64,
    /// `xdp` or `packet`.
    pub io: &'static str,
    /// `driver` or `generic` (XDP only).
    pub xdp_mode: Option<&'static str>,
    /// `copy` or `zerocopy` (XDP only).
    pub bind: Option<&'static str>,
    pub xdp: Option<XdpCounters>,
    pub journal: Option<JournalStats>,
    pub table_used: usize,
    pub table_capacity: usize,
    pub table_evicted: u64,
    /// The lease table's records by state.
    pub leases: StateCounts,
    pub probe: Option<ProbeStatus>,
    pub ddns: Option<DdnsStatus>,
    pub leasequery: Option<LeaseQueryStatus>,
    /// The HA cluster thread (`[cluster]`): its state, shares, peers and
    /// counters.
    pub cluster: Option<ClusterStatus>,
    pub subnets: Vec<SubnetStatus>,
    /// Per worker, by queue.
    pub workers: Vec<(u32, WorkerSnapshot)>,
    pub total: WorkerSnapshot,
    /// The latency histograms' figures; `None` with `latency = false`.
    #[serde(skip)]
    pub latency: Option<Arc<LatencyStatus>>,
}

/// The conflict-check service's counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ProbeStatus {
    pub sent: u64,
    pub send_failed: u64,
    pub answered: u64,
    pub stray: u64,
}

/// The leasequery service's answers (the workers count the queries).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct LeaseQueryStatus {
    pub active: u64,
    pub unassigned: u64,
    pub unknown: u64,
    /// Queries naming no address, client-id or MAC: not answered.
    pub unanswerable: u64,
    pub send_failed: u64,
}

/// The DDNS thread's counters.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct DdnsStatus {
    pub queued: u64,
    pub sent: u64,
    pub confirmed: u64,
    pub failed: u64,
    pub retried: u64,
    pub refused_tsig: u64,
    pub conflicts: u64,
    pub lost: u64,
    pub pending: u64,
    pub oldest_pending_ms: u64,
}

/// One subnet's pool.
#[derive(Clone, Debug, Serialize)]
pub struct SubnetStatus {
    /// `a.b.c.d/len`.
    pub subnet: String,
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    /// Addresses in its ranges.
    pub size: u32,
    /// Of those, out of the pool: offered, bound or in probation.
    pub used: u32,
    pub in_probation: u32,
}

impl Status {
    /// The stats file's document (its keys are what tools and tests read).
    pub fn to_json(&self) -> Value {
        let workers: Vec<_> = self
            .workers
            .iter()
            .map(|(q, w)| {
                let mut v = serde_json::to_value(w).unwrap_or_default();
                v["queue"] = json!(q);
                v
            })
            .collect();
        json!({
            "uptime_s": self.uptime_s,
            "io": self.io,
            "xdp_mode": self.xdp_mode,
            "bind": self.bind,
            "xdp": self.xdp,
            "journal": self.journal,
            "table_used": self.table_used,
            "table_capacity": self.table_capacity,
            "table_evicted": self.table_evicted,
            "leases": self.leases,
            "probe": self.probe,
            "ddns": self.ddns,
            "leasequery": self.leasequery,
            "cluster": self.cluster,
            "subnets": self.subnets,
            "workers": workers,
            "total": self.total,
            "latency": self.latency.as_ref().map(|l| l.to_json()),
        })
    }
}

/// The newest [`Status`], shared: one writer (the main thread), any number
/// of readers, each of which gets the whole snapshot (an `Arc` clone under
/// a lock held for that clone only).
#[derive(Default)]
pub struct Board {
    latest: Mutex<Arc<Status>>,
}

impl Board {
    pub fn publish(&self, s: Status) {
        let s = Arc::new(s);
        match self.latest.lock() {
            Ok(mut g) => *g = s,
            Err(p) => *p.into_inner() = s,
        }
    }

    pub fn latest(&self) -> Arc<Status> {
        match self.latest.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_keeps_the_stats_file_keys() {
        let mut s = Status {
            io: "xdp",
            ..Status::default()
        };
        s.total.ack = 3;
        s.workers.push((0, s.total));
        let v = s.to_json();
        assert_eq!(v["total"]["ack"], 3);
        assert_eq!(v["workers"][0]["queue"], 0);
        assert_eq!(v["workers"][0]["ack"], 3);
        assert!(v["journal"].is_null());
        assert!(v["cluster"].is_null(), "no [cluster]: null");
        assert!(v["latency"].is_null(), "latency off: null");
        assert_eq!(v["leases"]["bound"], 0);
        for k in ["offered", "bound", "released", "expired", "declined"] {
            assert!(v["leases"][k].is_u64(), "{k}");
        }
        let b = Board::default();
        b.publish(s);
        assert_eq!(b.latest().total.ack, 3);
    }
}
