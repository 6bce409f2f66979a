//! Protocol decisions, without I/O: which subnet a request belongs to,
//! which address a client gets, and what the reply says.
//!
//! [`Engine`] is shared by all workers; each worker drives it through its
//! own [`Handler`], which reads the received frame in place, decides, and
//! writes the reply frame straight into the TX buffer it was given.
//!
//! A request's way through the files of this folder:
//!
//! 1. `handler.rs`: the worker hands over a frame ([`Handler`]);
//! 2. `decide.rs`: [`Engine::process`] runs the steps below and returns a
//!    [`Verdict`];
//! 3. `request.rs`: [`parse`] reads the frame into a [`Request`], or
//!    rejects it as malformed;
//! 4. `select.rs`: the subnet it belongs to (option 118, 82.5, giaddr,
//!    VLAN; the member of a shared network), over the subnets that
//!    `subnet.rs` holds ready for the packet path; then `limit.rs`: the
//!    subnet's source check and request rates, which may drop it here;
//! 5. `client.rs`: the client's lease key and reservation;
//! 6. `decide.rs`: the decision for its message type, a [`Reply`] and
//!    maybe a lease [`Change`]; a new lease is first counted on its
//!    subscriber lines (`limit.rs`), and refused when one is full;
//! 7. `reply.rs`: the reply frame, written into the TX buffer;
//! 8. `handler.rs` again: the verdict counted, the change handed to the
//!    journal through `journal_link.rs`, the reply held until the record
//!    is on disk (durable mode).
//!
//! Leases also change without a request: `lifecycle.rs` expires them,
//! restores them from the journal at start and reclaims them in the pools
//! of a reloaded engine; it also holds the engine's [`Clock`].
//!
//! [`Reply`]: reply::Reply
mod client;
mod decide;
mod handler;
mod journal_link;
mod lifecycle;
mod limit;
pub mod reply;
mod request;
mod select;
pub mod subnet;

pub use decide::{Silence, Verdict};
pub use handler::Handler;
pub use journal_link::{Appended, JournalLink};
pub use lifecycle::{Change, Clock};
pub use limit::Limited;
pub use request::{Request, parse};

use crate::config::Checked;
use crate::lease::LeaseTable;
use crate::lease::limits::{LineTable, RateTable};
use client::Reservations;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;
use subnet::SubnetRt;

/// The server's state shared by all workers.
pub struct Engine {
    subnets: Box<[SubnetRt]>,
    /// Shared with the engines a reload makes, so no lease is copied or
    /// lost.
    leases: Arc<LeaseTable>,
    /// Lease counters per subscriber line, shared with reloaded engines
    /// like the lease table (its leases name slots in it). Sized at start.
    lines: Arc<LineTable>,
    /// Request rates per source MAC and per circuit-id; empty when no
    /// subnet limits them. A reload starts them afresh.
    mac_rates: RateTable,
    circuit_rates: RateTable,
    /// Link name → link id, kept across reloads so that client keys in the
    /// shared table keep their meaning.
    links: Arc<Mutex<HashMap<String, u16>>>,
    epoch: Instant,
    offer_hold: u32,
    decline_hold: u32,
    authoritative: bool,
    dscp: u8,
    renew_jitter: u8,
    /// Seconds released and expired records are kept (the client's
    /// address stays its own if nobody took it meanwhile).
    keep_released: u32,
    /// Workers allocating from the pools: each pool has one shard per
    /// worker (see [`Pool::new`](crate::lease::Pool::new)).
    workers: usize,
    /// Reservations of every subnet by identity, built at start and only
    /// read afterwards.
    reservations: Reservations,
}

impl Engine {
    /// The engine for one worker: its pools hand out addresses exactly
    /// lowest-free-first.
    pub fn new(cfg: &Checked) -> Engine {
        Engine::for_workers(cfg, 1)
    }

    /// The engine for `workers` workers, each with a home shard in every
    /// pool ([`Handler::worker`]), so that they do not allocate from the
    /// same words.
    pub fn for_workers(cfg: &Checked, workers: usize) -> Engine {
        Engine::build(cfg, None, workers.max(1))
    }

    /// The engine for a new configuration that carries on from this one:
    /// the same lease table and clock, the same pools for subnets whose
    /// prefix, VLAN and ranges did not change. Addresses held in the table
    /// are claimed in the pools that are new. Workers switch to it at
    /// their next batch; call [`Engine::reclaim`] once they have.
    pub fn reload(&self, cfg: &Checked) -> Engine {
        let e = Engine::build(cfg, Some(self), self.workers);
        e.reclaim();
        e
    }

    fn build(cfg: &Checked, prev: Option<&Engine>, workers: usize) -> Engine {
        let links = prev.map_or_else(|| Arc::new(Mutex::new(HashMap::new())), |p| p.links.clone());
        let subnets: Box<[SubnetRt]> = {
            let mut names = links.lock().unwrap_or_else(|p| p.into_inner());
            cfg.subnets
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let name = match &s.shared_network {
                        Some(n) => format!("shared:{n}"),
                        None => format!("{}/{}@{:?}", s.network, s.prefix_len, s.vlan),
                    };
                    let next = names.len() as u16;
                    let link = *names.entry(name).or_insert(next);
                    let shape = SubnetRt::shape_of(s);
                    let pool = prev
                        .and_then(|p| p.subnets.iter().find(|o| o.shape == shape))
                        .map(|o| o.pool.clone());
                    SubnetRt::new(i as u16, link, s, pool, workers)
                })
                .collect()
        };
        let capacity = subnets
            .iter()
            .map(|s| s.pool.size() as usize)
            .sum::<usize>();
        let reservations = client::reservations(cfg, &subnets);
        // A line counts at least one lease, so a kind of line limited in a
        // subnet has at most as many lines as the subnet has addresses.
        let limited_lines: usize = subnets
            .iter()
            .map(|s| s.pool.size() as usize * s.limits.leases.iter().filter(|l| **l > 0).count())
            .sum();
        let rate_slots = |on: &dyn Fn(&SubnetRt) -> bool| {
            if subnets.iter().any(on) {
                capacity.clamp(1 << 12, 1 << 20)
            } else {
                0
            }
        };
        let mac_rates = RateTable::new(rate_slots(&|s| s.limits.mac_rate.is_some()));
        let circuit_rates = RateTable::new(rate_slots(&|s| s.limits.circuit_rate.is_some()));
        Engine {
            lines: prev.map_or_else(
                || Arc::new(LineTable::with_lines(limited_lines)),
                |p| p.lines.clone(),
            ),
            mac_rates,
            circuit_rates,
            leases: prev.map_or_else(
                || Arc::new(LeaseTable::with_capacity(capacity.min(1 << 22))),
                |p| p.leases.clone(),
            ),
            links,
            subnets,
            epoch: prev.map_or_else(Instant::now, |p| p.epoch),
            offer_hold: cfg.file.offer_hold,
            decline_hold: cfg.file.decline_probation,
            authoritative: cfg.file.authoritative,
            dscp: cfg.file.dscp,
            renew_jitter: cfg.file.renew_jitter,
            keep_released: cfg.file.keep_released,
            workers,
            reservations,
        }
    }

    /// Engine time: whole seconds since start, on the monotonic clock.
    pub fn secs(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_secs() as u32
    }

    pub fn subnets(&self) -> &[SubnetRt] {
        &self.subnets
    }

    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// The lease counters per subscriber line.
    pub fn lines(&self) -> &LineTable {
        &self.lines
    }
}
