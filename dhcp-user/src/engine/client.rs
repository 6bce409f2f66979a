//! Who is asking: the client's key in the lease table and its
//! reservation, both scoped to the link the request was selected for.
//!
//! Keys carry a kind byte, so that a MAC, a client identifier, a relay's
//! circuit-id or a quarantined address never collide in one table.
use super::subnet::SubnetRt;
use super::{Engine, Request};
use crate::config::{Checked, Identity};
use crate::lease::ClientKey;
use crate::lease::LeaseTable;
use crate::lease::limits::LineKeys;
use crate::lease::table::{Ahead, random_hasher};
use crate::wire::frame::ClientHint;
use crate::wire::options::{agent, agent_sub_option};
use foldhash::quality::SeedableRandomState;
use std::cell::Cell;
use std::collections::HashMap;
use std::net::Ipv4Addr;

pub(super) const KEY_CHADDR: u8 = 0;
pub(super) const KEY_CLIENT_ID: u8 = 1;
/// Declined addresses are held under a key of their own, so the sweeper
/// that ends leases also ends their quarantine.
pub(super) const KEY_DECLINED: u8 = 2;
/// Reservations by relay agent circuit-id / remote-id.
pub(super) const KEY_CIRCUIT_ID: u8 = 3;
pub(super) const KEY_REMOTE_ID: u8 = 4;

/// Reservations of every subnet by identity → (address, infinite lease).
/// Keyed at random per start like the lease table: clients choose the
/// identities looked up in it.
pub(super) type Reservations = HashMap<ClientKey, (Ipv4Addr, bool), SeedableRandomState>;

/// Who is asking, as the engine needs it for every decision.
pub(super) struct Client {
    pub key: ClientKey,
    pub reserved: Option<(Ipv4Addr, bool)>,
    /// The worker's home shard in the pools.
    pub home: usize,
    /// The cluster shares owned when the decision began: only their pool
    /// words are allocated from or claimed.
    pub owned: u32,
    /// The lines a new lease of this client is counted on.
    pub lines: LineKeys,
    /// Option 54 of our replies, and what the client may name as us.
    pub server_id: Ipv4Addr,
    /// Its reserved address, free again after another client held it:
    /// the client is to move onto it (a request for anything else is
    /// NAKed).
    pub moving: Option<Ipv4Addr>,
    /// What the decision met that the verdict does not say, for the
    /// worker's counters.
    pub note: Cell<Option<Note>>,
    /// An address the decision took from the client without a request of
    /// its own (NAKed off it): journaled as released.
    pub left: Cell<Option<Ipv4Addr>>,
}

/// Where a reserved address stands when its client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// Nobody else holds it: the client gets it.
    Free,
    /// Another client still holds it (it had it before the reservation):
    /// the client is served from the pool meanwhile.
    Busy,
    /// That other client has left it: the client moves onto it.
    Left,
}

/// An event of one decision that a counter of its own reports (see
/// `stats.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    DeclineNotBound,
    DeclineRateLimited,
    ProbationFull,
    ReservationConflict,
}

/// Option 61 before chaddr (RFC 2131 §4.2), scoped to the subnet's link,
/// unless the subnet is told to ignore option 61.
pub(super) fn client_key(s: &SubnetRt, req: &Request<'_>) -> ClientKey {
    let id = req.opts.client_id.filter(|_| !s.ignore_client_id);
    key_on(s.link, id, &req.chaddr, req.hlen)
}

/// The rule of [`client_key`], from the fields themselves: a request and
/// the prefetch hint of its raw frame get their keys here alike.
#[inline]
fn key_on(link: u16, client_id: Option<&[u8]>, chaddr: &[u8; 16], hlen: u8) -> ClientKey {
    match client_id {
        Some(id) if !id.is_empty() => ClientKey::new(link, KEY_CLIENT_ID, id),
        _ => ClientKey::from_chaddr(link, KEY_CHADDR, chaddr, hlen),
    }
}

/// Where the client of a raw frame would be in the lease table, with its
/// index line on its way into the cache ([`LeaseTable::prefetch`]). The
/// key is built as [`client_key`] builds it, on link 0: the table's hash
/// leaves the link out. A subnet that ignores option 61 makes the hint
/// miss, nothing worse.
///
/// [`LeaseTable::prefetch`]: crate::lease::table::LeaseTable::prefetch
pub(super) fn prefetch(table: &LeaseTable, frame: &[u8]) -> Option<Ahead> {
    let h = ClientHint::peek(frame)?;
    Some(table.prefetch(&key_on(0, h.client_id, h.chaddr, h.hlen)))
}

/// A reservation's identity as a key on `link`: of the same kinds as
/// lease keys for a MAC or client identifier, so that the lease key of a
/// client found by either is its reservation's key.
pub(super) fn identity_key(link: u16, identity: &Identity) -> ClientKey {
    let (kind, id): (u8, &[u8]) = match identity {
        Identity::Mac(m) => (KEY_CHADDR, m),
        Identity::ClientId(c) => (KEY_CLIENT_ID, c),
        Identity::CircuitId(c) => (KEY_CIRCUIT_ID, c),
        Identity::RemoteId(c) => (KEY_REMOTE_ID, c),
    };
    ClientKey::new(link, kind, id)
}

/// The reservations of `cfg`, each keyed on the link of its subnet in
/// `subnets` (built from `cfg`, in the same order).
pub(super) fn reservations(cfg: &Checked, subnets: &[SubnetRt]) -> Reservations {
    let mut map = HashMap::with_hasher(random_hasher());
    for (sub, rt) in cfg.subnets.iter().zip(subnets) {
        for r in &sub.reservations {
            map.insert(identity_key(rt.link, &r.identity), (r.address, r.infinite));
        }
    }
    map
}

impl Engine {
    /// The client's reservation on this subnet's link: by client identifier,
    /// hardware address, then the relay's circuit-id and remote-id.
    pub(super) fn reservation(&self, s: &SubnetRt, req: &Request<'_>) -> Option<(Ipv4Addr, bool)> {
        if self.reservations.is_empty() {
            return None;
        }
        let look = |kind, id: &[u8]| {
            self.reservations
                .get(&ClientKey::new(s.link, kind, id))
                .copied()
        };
        req.opts
            .client_id
            .and_then(|id| look(KEY_CLIENT_ID, id))
            .or_else(|| look(KEY_CHADDR, req.hwaddr()))
            .or_else(|| {
                let ai = req.opts.agent_info?;
                agent_sub_option(ai, agent::CIRCUIT_ID)
                    .and_then(|id| look(KEY_CIRCUIT_ID, id))
                    .or_else(|| {
                        agent_sub_option(ai, agent::REMOTE_ID)
                            .and_then(|id| look(KEY_REMOTE_ID, id))
                    })
            })
    }
}

impl Engine {
    /// Where reserved address `r` (of subnet `s`) stands for its client
    /// `key`. Looks up the lease of a former holder, so it is called
    /// before the client's own lease is locked.
    pub(super) fn claim(&self, s: &SubnetRt, key: &ClientKey, r: Ipv4Addr) -> Claim {
        let Some(res) = s.reservation(r) else {
            return Claim::Free;
        };
        match res.holder() {
            None => Claim::Free,
            // The client suspected of holding it is its owner after all
            // (its key is not the reservation's: a client identifier, or
            // a reservation by circuit-id).
            Some(k) if k == *key => {
                res.set_holder(None);
                Claim::Free
            }
            Some(k) => {
                if self
                    .leases
                    .get(&k)
                    .is_some_and(|l| l.state.holds() && l.addr == r)
                {
                    Claim::Busy
                } else {
                    Claim::Left
                }
            }
        }
    }

    /// Whether `c` holds or asks for `a` although `a` is reserved for
    /// another client: it had it before the reservation and must leave it.
    pub(super) fn must_leave(&self, s: &SubnetRt, c: &Client, a: Ipv4Addr) -> bool {
        c.reserved.is_none_or(|(r, _)| r != a)
            && s.reservation(a)
                .is_some_and(|res| res.holder() == Some(c.key))
    }
}
