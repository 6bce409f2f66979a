//! Counters that the workers keep and the main thread reports.
//!
//! Each worker owns one [`WorkerStats`] and is its only writer, so a bump
//! is a plain load + store (no locked instruction on the hot path); readers
//! on other threads may see a count a moment late, never a torn one.
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! worker_counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        /// Per-worker counters, one cache line apart from other workers'.
        #[derive(Default, Debug)]
        #[repr(align(128))]
        pub struct WorkerStats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        /// A plain copy of [`WorkerStats`], for reports and the stats file.
        #[derive(Default, Debug, Clone, Copy, Serialize, PartialEq, Eq)]
        pub struct WorkerSnapshot {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl WorkerStats {
            pub fn snapshot(&self) -> WorkerSnapshot {
                WorkerSnapshot { $($name: self.$name.load(Relaxed),)* }
            }
        }

        impl std::ops::AddAssign for WorkerSnapshot {
            fn add_assign(&mut self, o: Self) {
                $(self.$name += o.$name;)*
            }
        }
    };
}

worker_counters! {
    rx: "Frames taken from the RX ring.",
    tx: "Reply frames put on the TX ring.",
    tx_dropped: "Replies lost because no TX frame was free (all waiting on the TX ring or parked).",
    malformed: "Frames that failed the wire checks (counted and dropped).",
    discover: "DHCPDISCOVER received.",
    request: "DHCPREQUEST received.",
    decline: "DHCPDECLINE received.",
    release: "DHCPRELEASE received.",
    inform: "DHCPINFORM received.",
    offer: "DHCPOFFER sent.",
    ack: "DHCPACK sent.",
    nak: "DHCPNAK sent.",
    ignored: "Well-formed requests that got no reply by the protocol's rules (not for us, other server chosen, RELEASE, ...).",
    not_owned: "Requests of clients whose bucket another cluster member owns now ([cluster]): left to it, no reply.",
    no_address: "DISCOVERs that found no free address.",
    no_subnet: "Requests for which no configured subnet matched.",
    table_full: "Requests of new clients refused (no reply) because their shard of the lease table was at its bound (`max_clients`) with nothing to evict: every record in it bound or declined.",
    untrusted_agent_info: "Requests whose option 82 or 118 came from neither a trusted relay nor a link marked trust_agent_info: served as if they had none, or dropped (untrusted_dropped).",
    untrusted_dropped: "Of those, the requests dropped for it (untrusted_agent_info = \"drop\").",
    tx_ring_full: "Times the TX ring could not take a batch of replies at once; they stay queued and go with the next batch.",
    decline_not_bound: "DECLINEs ignored because the address is not bound to the sender (only offered, another client's, or none).",
    decline_rate_limited: "DECLINEs ignored because the client already made `decline_rate` of them within the hour.",
    probation_full: "DECLINEs that found `max_probation_percent` of the pool in probation: the address was released instead of quarantined.",
    reservation_conflict: "Requests met around a reserved address another client holds: the holder NAKed or moved off it, or the reserved client given a pool address meanwhile.",
    rapid_commit: "DISCOVERs with option 80 answered by an ACK at once (RFC 4039), also counted in `ack`.",
    limited_circuit_id: "DISCOVERs not offered and REQUESTs NAKed because their circuit-id holds `leases_per_circuit_id` leases.",
    limited_remote_id: "DISCOVERs not offered and REQUESTs NAKed because their remote-id holds `leases_per_remote_id` leases.",
    limited_vlan: "DISCOVERs not offered and REQUESTs NAKed because their VLAN holds `leases_per_vlan` leases.",
    limited_mac: "DISCOVERs not offered and REQUESTs NAKed because their chaddr holds `leases_per_mac` leases.",
    limit_table_full: "New leases refused because the line counter table (sized at start) had no room for their new line.",
    rate_limited_mac: "Requests dropped over `requests_per_mac`.",
    rate_limited_circuit_id: "Requests dropped over `requests_per_circuit_id`.",
    src_mac_mismatch: "Direct requests dropped by `check_src_mac`: Ethernet source not chaddr.",
    journal_full: "Lease records the journal's queue could not take at once; they wait in the worker's backlog (durable mode: their ACKs wait with them).",
    journal_lost: "Lease records that found the worker's backlog full too: lost to the journal (fast mode) or their ACKs dropped (durable mode, the client retransmits).",
    parked: "Replies that waited for their lease record to be synced (durable mode).",
    parked_expired: "Of those, the replies dropped after waiting longer than 2 s (the journal's disk stalled, or in replicated mode the cluster could not store the record): the client retransmits.",
    conflict_probed: "OFFERs parked while their address was probed (conflict_check = \"icmp\").",
    conflict_skipped: "OFFERs of a checked subnet sent without a probe: the address was leased or probed within conflict_skip_recent.",
    conflict_found: "Probes answered: the address is in use by someone else, went into probation (decline_probation) and its OFFER was dropped.",
    conflict_queue_full: "Probes the probe service could not take (its queue or this worker's share of it full): the OFFER left unprobed.",
    leasequery: "DHCPLEASEQUERYs received (RFC 4388), with [leasequery] on.",
    leasequery_refused: "Of those, the ones refused: no giaddr, or a giaddr outside [leasequery] requesters.",
    leasequery_dropped: "Of those, the ones allowed but lost: the leasequery service's queue was full (or the frame longer than it takes).",
    latency_held: "Latency: times the worker found no empty histogram set to swap in at its interval (the collector behind) and kept recording into the one it had.",
    xsk_rx_dropped: "AF_XDP: frames the kernel dropped for this socket (as the kernel last reported; read about once a second).",
    xsk_rx_ring_full: "AF_XDP: frames dropped because the RX ring was full.",
    xsk_fill_ring_empty: "AF_XDP: times the fill ring was empty when a frame arrived.",
    xsk_tx_invalid: "AF_XDP: TX descriptors the kernel rejected.",
}

/// Adds one to a counter that only the calling thread writes.
#[inline(always)]
pub fn bump(c: &AtomicU64) {
    add(c, 1)
}

/// Adds `n` to a counter that only the calling thread writes.
#[inline(always)]
pub fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed)
}
