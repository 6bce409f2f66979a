//! Conflict checks before OFFER, the engine's half: which OFFER needs its
//! address probed first, and what a probe's answer does to the lease
//! state. The probe itself (an ICMP echo) is sent and timed by the side
//! service in `crate::probe`; the worker's [`Handler`](super::Handler)
//! parks the OFFER meanwhile. Nothing here does I/O.
//!
//! Each checked subnet keeps, per pool address, when it was last leased
//! (ACKed) or probed without an answer ([`Recent`]). An address touched
//! within `conflict_skip_recent` seconds is offered without a probe: on a
//! busy server most offers are of addresses that came back a moment ago,
//! so the check costs only the fresh ones.
use super::Engine;
use super::lifecycle::Clock;
use super::subnet::SubnetRt;
use crate::lease::journal::{FixedBytes, LeaseRecord, RecordState};
use crate::lease::{ClientKey, LeaseState};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Per pool address of a checked subnet: engine seconds + 1 of its last
/// lease or clean probe, 0 for never. Shared by the workers (a relaxed
/// store per ACK: a stale read only costs one probe more) and carried
/// over a reload with the pool.
pub struct Recent {
    stamps: Box<[AtomicU32]>,
}

impl Recent {
    pub fn new(size: u32) -> Recent {
        Recent {
            stamps: (0..size).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Whether the address of pool index `i` was touched within `skip`
    /// seconds before `now`.
    fn fresh(&self, i: u32, now: u32, skip: u32) -> bool {
        self.stamps.get(i as usize).is_some_and(|s| {
            let t = s.load(Relaxed);
            t != 0 && now.saturating_add(1).saturating_sub(t) <= skip
        })
    }

    fn touch(&self, i: u32, now: u32) {
        if let Some(s) = self.stamps.get(i as usize) {
            s.store(now.saturating_add(1), Relaxed);
        }
    }
}

/// What the engine says about probing the OFFER it just wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Not a checked OFFER (no OFFER, a subnet without `conflict_check`,
    /// a reservation, the client's own binding).
    None,
    /// A checked subnet, but the address was leased or probed lately.
    Skipped,
    /// Probe this address before the OFFER may leave.
    Needed(ProbeAsk),
}

/// An OFFER's address to probe, and whose offer it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeAsk {
    pub subnet: u16,
    pub key: ClientKey,
    pub addr: Ipv4Addr,
}

impl Engine {
    /// The decision for an OFFER of `addr` from `s` to client `key`:
    /// `bound` when the address is the client's own binding (never
    /// probed: the client itself would answer).
    pub(super) fn probe_for(
        &self,
        s: &SubnetRt,
        key: &ClientKey,
        addr: Ipv4Addr,
        bound: bool,
        now: u32,
    ) -> Probe {
        let Some(recent) = &s.recent else {
            return Probe::None;
        };
        let Some(i) = s.pool.index_of(addr) else {
            return Probe::None;
        };
        if bound || s.is_reserved(addr) {
            return Probe::None;
        }
        if recent.fresh(i, now, self.conflict_skip_recent) {
            return Probe::Skipped;
        }
        Probe::Needed(ProbeAsk {
            subnet: s.id,
            key: *key,
            addr,
        })
    }

    /// `addr` of `s` was just leased: no probe for it within
    /// `conflict_skip_recent`.
    pub(super) fn leased(&self, s: &SubnetRt, addr: Ipv4Addr, now: u32) {
        if let (Some(recent), Some(i)) = (&s.recent, s.pool.index_of(addr)) {
            recent.touch(i, now);
        }
    }

    /// A probe of `ask` went unanswered: its address counts as recently
    /// checked.
    pub fn probed(&self, ask: &ProbeAsk, now: u32) {
        if let Some(s) = self.subnets.get(usize::from(ask.subnet)) {
            self.leased(s, ask.addr, now);
        }
    }

    /// A probe of `ask` was answered: someone uses the address. The
    /// client's offer of it is withdrawn and the address goes into
    /// probation for `decline_probation`, as if the client had declined
    /// it. Returns the journal record of the probation, if there is one
    /// (none when the client bound the address meanwhile, or another
    /// client holds it now).
    pub fn conflict(&self, ask: &ProbeAsk, clock: Clock) -> Option<LeaseRecord> {
        // By index, unless a reload moved the subnets meanwhile.
        let s = self
            .subnets
            .get(usize::from(ask.subnet))
            .filter(|s| s.contains(ask.addr))
            .or_else(|| self.subnets.iter().find(|s| s.contains(ask.addr)))?;
        let now = clock.secs;
        let offered = self.leases.update(&ask.key, |e| match e {
            Some(l) if l.addr == ask.addr && l.state == LeaseState::Offered => {
                *e = None;
                Some(true)
            }
            Some(l) if l.addr == ask.addr && l.state == LeaseState::Bound => Some(false),
            _ => None,
        });
        let take = match offered {
            // Still taken in the pool, for the offer now withdrawn.
            Some(true) => true,
            // The client made it its own meanwhile: its business.
            Some(false) => false,
            // The offer ended (the client chose another server): the
            // address is taken for the probation only if still free.
            None => s.pool.claim(ask.addr),
        };
        if !take || s.is_reserved(ask.addr) {
            return None;
        }
        let until = now.saturating_add(self.decline_hold);
        self.quarantine(s, ask.addr, until);
        Some(LeaseRecord {
            subnet: s.id,
            addr: ask.addr,
            client: ask.key,
            hwaddr: [0; 6],
            state: RecordState::Declined,
            expires_unix: clock.unix + u64::from(until.saturating_sub(now)),
            cltt_unix: clock.unix,
            hostname: FixedBytes::new(&[]).0,
            agent_info: FixedBytes::new(&[]).0,
        })
    }
}
