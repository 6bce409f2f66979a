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
//! 4. `trust.rs`: whether options 82 and 118 are believed (a relay we
//!    trust, or a link marked `trust_agent_info`); if not, they are taken
//!    out of the request view, or the request is dropped;
//! 5. `select.rs`: the subnet it belongs to (option 118, 82.5, giaddr,
//!    VLAN; the member of a shared network), over the subnets that
//!    `subnet.rs` holds ready for the packet path; then `limit.rs`: the
//!    subnet's source check and request rates, which may drop it here;
//! 6. `client.rs`: the client's lease key and reservation; with a
//!    `[cluster]`, a client whose bucket is another member's share is left
//!    to it here, and addresses come only from the owned shares' pool
//!    words ([`Ownership`], in `lease/owner.rs`);
//! 7. `decide.rs`: the decision for its message type, a [`Reply`] and
//!    maybe a lease [`Change`] (DECLINE's limits in `decline.rs`), and
//!    [`Notes`] of what counters of their own report; a new lease is
//!    first counted on its subscriber lines (`limit.rs`), and refused when
//!    one is full;
//! 8. `reply.rs`: the reply frame, written into the TX buffer;
//! 9. `handler.rs` again: the verdict counted, the change handed to the
//!    journal through `journal_link.rs`, the reply held until the record
//!    is on disk (durable mode), or, for an OFFER that `conflict.rs` says
//!    needs a probe, until the probe service found nobody at its address.
//!
//! Leases also change without a request: `lifecycle.rs` expires them,
//! restores them from the journal at start and reclaims them in the pools
//! of a reloaded engine; it also holds the engine's [`Clock`]. And the
//! operator changes them: `operator.rs` force-frees an address and lists
//! the table for the control API.
//! The other members of a cluster change them too: `lifecycle.rs` applies
//! their records ([`Engine::apply_remote`]).
//!
//! [`Reply`]: reply::Reply
#[cfg(test)]
mod bound_tests;
mod client;
#[cfg(test)]
mod cluster_tests;
mod conflict;
mod cut_off;
mod decide;
mod decline;
mod handler;
mod journal_link;
mod lifecycle;
mod limit;
mod operator;
pub mod reply;
mod request;
mod select;
pub mod subnet;
mod trust;

pub use crate::lease::owner::{BUCKETS, Ownership, bucket_of, bucket_of_key};
pub use client::Note;
pub use conflict::{Probe, ProbeAsk};
pub use decide::{Notes, Silence, Verdict};
pub use handler::Handler;
pub use journal_link::{Appended, JournalLink};
pub use lifecycle::{Change, Clock};
pub use limit::Limited;
pub use operator::TableLease;
pub use request::{AgentTrust, Request, parse};

use crate::config::{Checked, ConflictCheck, UntrustedAgentInfo};
use crate::lease::limits::{LineTable, RateTable};
use crate::lease::table::default_max_clients;
use crate::lease::{ClientKey, Full, Lease, LeaseTable};
use client::Reservations;
use decline::DeclineRates;
use std::collections::HashMap;
use std::net::Ipv4Addr;
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
    /// DECLINEs a client may make per hour.
    decline_rate: u16,
    /// Who declined how often lately; shared with the engines a reload
    /// makes, like the lease table.
    declines: Arc<DeclineRates>,
    authoritative: bool,
    dscp: u8,
    renew_jitter: u8,
    /// Seconds released and expired records are kept (the client's
    /// address stays its own if nobody took it meanwhile).
    keep_released: u32,
    /// Seconds after a lease or a clean probe during which an address is
    /// offered again without a probe (`conflict_skip_recent`).
    conflict_skip_recent: u32,
    /// Workers allocating from the pools: each pool has one shard per
    /// worker (see [`Pool::new`](crate::lease::Pool::new)).
    workers: usize,
    /// Reservations of every subnet by identity, built at start and only
    /// read afterwards.
    reservations: Reservations,
    /// `trusted_relays` as (network, mask); empty: every relay.
    trusted_relays: Box<[(u32, u32)]>,
    /// `untrusted_agent_info = "drop"`.
    drop_untrusted: bool,
    /// The IPv4 addresses of the served interface, as the daemon listed
    /// them; `None` for an engine built without one (tests, tools).
    iface_addrs: Option<Box<[(Ipv4Addr, u8)]>>,
    /// `[leasequery]`: who may ask; `None`: DHCPLEASEQUERY is ignored.
    leasequery: Option<crate::config::LeaseQuery>,
    /// The clients and pool words this server decides for (`[cluster]`;
    /// all of them on a server of its own). Kept across reloads: only the
    /// cluster thread changes it.
    owner: Arc<Ownership>,
}

/// Which subnets serve direct clients (giaddr 0): those with `direct =
/// true`, and, unless `direct = false`, those with a `vlan` (the tag names
/// their link) and those holding one of `addrs`, with the other subnets of
/// their shared network. A subnet that holds no address of the interface
/// is reached through relays only.
fn direct_subnets(cfg: &Checked, addrs: &[Ipv4Addr]) -> Vec<bool> {
    let auto: Vec<bool> = cfg
        .subnets
        .iter()
        .map(|s| s.vlan.is_some() || addrs.iter().any(|a| s.contains(*a)))
        .collect();
    (0..cfg.subnets.len())
        .map(|i| {
            cfg.subnets[i].direct.unwrap_or_else(|| {
                let link = cfg.link_of(i);
                (0..cfg.subnets.len()).any(|j| auto[j] && cfg.link_of(j) == link)
            })
        })
        .collect()
}

impl Engine {
    /// The engine for one worker: its pools hand out addresses exactly
    /// lowest-free-first. Built without an interface (tests, tools): the
    /// host is taken to hold each subnet's server identifier on the served
    /// link, so the subnets holding one serve direct clients (see
    /// [`Engine::on_interface`]).
    pub fn new(cfg: &Checked) -> Engine {
        Engine::for_workers(cfg, 1)
    }

    /// The engine for `workers` workers, each with a home shard in every
    /// pool ([`Handler::worker`]), so that they do not allocate from the
    /// same words. Without an interface, as [`Engine::new`].
    pub fn for_workers(cfg: &Checked, workers: usize) -> Engine {
        Engine::build(cfg, None, workers.max(1), None)
    }

    /// The engine of a daemon serving an interface whose IPv4 addresses
    /// are `addrs` (address, prefix length): a subnet holding one of them
    /// serves direct clients (giaddr 0), the others only relayed ones
    /// (unless `direct` or `vlan` says otherwise).
    pub fn on_interface(cfg: &Checked, workers: usize, addrs: &[(Ipv4Addr, u8)]) -> Engine {
        Engine::build(cfg, None, workers.max(1), Some(addrs.into()))
    }

    /// The engine for a new configuration that carries on from this one:
    /// the same lease table and clock, the same pools for subnets whose
    /// prefix, VLAN and ranges did not change. Addresses held in the table
    /// are claimed in the pools that are new. Workers switch to it at
    /// their next batch; call [`Engine::reclaim`] once they have.
    /// The interface's addresses stay those of this engine.
    pub fn reload(&self, cfg: &Checked) -> Engine {
        let e = Engine::build(cfg, Some(self), self.workers, self.iface_addrs.clone());
        e.reclaim();
        e
    }

    /// [`Engine::reload`] with the interface's addresses as they are now
    /// (the daemon lists them again at every reload).
    pub fn reload_on(&self, cfg: &Checked, addrs: &[(Ipv4Addr, u8)]) -> Engine {
        let e = Engine::build(cfg, Some(self), self.workers, Some(addrs.into()));
        e.reclaim();
        e
    }

    fn build(
        cfg: &Checked,
        prev: Option<&Engine>,
        workers: usize,
        iface_addrs: Option<Box<[(Ipv4Addr, u8)]>>,
    ) -> Engine {
        let local: Vec<Ipv4Addr> = match &iface_addrs {
            Some(a) => a.iter().map(|(a, _)| *a).collect(),
            None => cfg.subnets.iter().map(|s| s.server_id).collect(),
        };
        let direct = direct_subnets(cfg, &local);
        // The shares are fixed at start: a reload keeps them (changing
        // `[cluster]` needs a restart, which the reload path says).
        let owner = prev.map_or_else(
            || {
                Arc::new(match &cfg.cluster {
                    Some(c) => Ownership::new(c.shares()),
                    None => Ownership::all(),
                })
            },
            |p| p.owner.clone(),
        );
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
                    let owners: Vec<_> = s
                        .reservations
                        .iter()
                        .map(|r| client::identity_key(link, &r.identity))
                        .collect();
                    let before = prev.map(|p| &*p.subnets);
                    let mut rt =
                        SubnetRt::new(i as u16, link, s, &owners, before, workers, owner.shares());
                    rt.direct = direct[i];
                    if s.conflict_check == ConflictCheck::Icmp {
                        // What was leased and probed carries over with the pool.
                        let shape = SubnetRt::shape_of(s);
                        let old = prev.and_then(|p| p.subnets.iter().find(|o| o.shape == shape));
                        rt.recent =
                            Some(old.and_then(|o| o.recent.clone()).unwrap_or_else(|| {
                                Arc::new(conflict::Recent::new(rt.pool.size()))
                            }));
                    }
                    rt
                })
                .collect()
        };
        let reservations = client::reservations(cfg, &subnets);
        // A line counts at least one lease, so a kind of line limited in a
        // subnet has at most as many lines as the subnet has addresses.
        let limited_lines: usize = subnets
            .iter()
            .map(|s| s.pool.size() as usize * s.limits.leases.iter().filter(|l| **l > 0).count())
            .sum();
        // Rate buckets: one slot per pool address (clamped), for the
        // subnets that limit a rate.
        let addresses = subnets
            .iter()
            .map(|s| s.pool.size() as usize)
            .sum::<usize>();
        let rate_slots = |on: &dyn Fn(&SubnetRt) -> bool| {
            if subnets.iter().any(on) {
                addresses.clamp(1 << 12, 1 << 20)
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
            // The table is allocated once, at start, to its bound; a
            // reload keeps it (and its bound) as it is.
            leases: prev.map_or_else(
                || Arc::new(LeaseTable::new(Engine::max_clients(cfg))),
                |p| p.leases.clone(),
            ),
            links,
            subnets,
            epoch: prev.map_or_else(Instant::now, |p| p.epoch),
            offer_hold: cfg.file.offer_hold,
            decline_hold: cfg.file.decline_probation,
            decline_rate: cfg.file.decline_rate,
            declines: prev.map_or_else(|| Arc::new(DeclineRates::new()), |p| p.declines.clone()),
            authoritative: cfg.file.authoritative,
            dscp: cfg.file.dscp,
            renew_jitter: cfg.file.renew_jitter,
            keep_released: cfg.file.keep_released,
            conflict_skip_recent: cfg.file.conflict_skip_recent(),
            workers,
            reservations,
            trusted_relays: cfg
                .trusted_relays
                .iter()
                .map(|(n, len)| {
                    let m = crate::config::prefix_mask(*len);
                    (u32::from(*n) & m, m)
                })
                .collect(),
            drop_untrusted: cfg.file.untrusted_agent_info == UntrustedAgentInfo::Drop,
            iface_addrs,
            leasequery: cfg.leasequery.clone(),
            owner,
        }
    }

    /// The lease table's bound for `cfg`: `max_clients`, else derived
    /// from the pools ([`default_max_clients`]).
    pub fn max_clients(cfg: &Checked) -> usize {
        cfg.file.max_clients.as_ref().map_or_else(
            || default_max_clients(cfg.addresses()),
            |m| *m.get_ref() as usize,
        )
    }

    /// Every change of the lease table on the packet path goes through
    /// here: `f` on the client's record, with [`Engine::on_evict`] for a
    /// record that leaves the table to make room (or a new one that found
    /// none, then [`Full`]).
    #[inline]
    pub(crate) fn lease_update<R>(
        &self,
        key: &ClientKey,
        f: impl FnOnce(&mut Option<Lease>) -> R,
    ) -> Result<R, Full> {
        self.leases.update(key, |k, l| self.on_evict(k, l), f)
    }

    /// A record leaves the table without its client asking: evicted at
    /// the table's bound, or refused a place. What it held goes back: the
    /// address of an offer (or of a binding or quarantine that found no
    /// room) returns to its pool. The one place for whatever else a
    /// record holds to be given back with it.
    fn on_evict(&self, key: &ClientKey, l: &Lease) {
        if l.state.holds()
            && let Some(s) = self.subnet_of(key.subnet, l.addr)
        {
            s.free(l.addr);
        }
        // Its counts on the subscriber lines it was charged to (none for
        // a released or expired record).
        self.put_lines(l.lines);
    }

    /// Engine time: whole seconds since start, on the monotonic clock.
    pub fn secs(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_secs() as u32
    }

    /// Which shares this server owns now (written by the cluster thread).
    pub fn ownership(&self) -> &Arc<Ownership> {
        &self.owner
    }

    pub fn subnets(&self) -> &[SubnetRt] {
        &self.subnets
    }

    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// Starts loading the lease table's index line for the client of a
    /// raw frame, before its batch is handled (a hint; see
    /// [`LeaseTable::prefetch`]).
    #[inline]
    pub fn prefetch(&self, frame: &[u8]) -> Option<crate::lease::table::Ahead> {
        client::prefetch(&self.leases, frame)
    }

    /// The lease counters per subscriber line.
    pub fn lines(&self) -> &LineTable {
        &self.lines
    }
}
