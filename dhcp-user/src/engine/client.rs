//! Who is asking: the client's key in the lease table and its
//! reservation, both scoped to the link the request was selected for.
//!
//! Keys carry a kind byte, so that a MAC, a client identifier, a relay's
//! circuit-id or a quarantined address never collide in one table.
use super::subnet::SubnetRt;
use super::{Engine, Request};
use crate::config::{Checked, Identity};
use crate::lease::ClientKey;
use crate::lease::table::random_hasher;
use crate::wire::options::{agent, agent_sub_option};
use foldhash::quality::SeedableRandomState;
use std::collections::HashMap;
use std::net::Ipv4Addr;

pub(super) const KEY_CHADDR: u8 = 0;
pub(super) const KEY_CLIENT_ID: u8 = 1;
/// Declined addresses are held under a key of their own, so the sweeper
/// that ends leases also ends their quarantine.
pub(super) const KEY_DECLINED: u8 = 2;
/// Reservations by relay agent circuit-id / remote-id.
const KEY_CIRCUIT_ID: u8 = 3;
const KEY_REMOTE_ID: u8 = 4;

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
    /// Option 54 of our replies, and what the client may name as us.
    pub server_id: Ipv4Addr,
}

/// Option 61 before chaddr (RFC 2131 §4.2), scoped to the subnet's link,
/// unless the subnet is told to ignore option 61.
pub(super) fn client_key(s: &SubnetRt, req: &Request<'_>) -> ClientKey {
    match req.opts.client_id {
        Some(id) if !id.is_empty() && !s.ignore_client_id => {
            ClientKey::new(s.link, KEY_CLIENT_ID, id)
        }
        _ => ClientKey::new(s.link, KEY_CHADDR, req.hwaddr()),
    }
}

/// The reservations of `cfg`, each keyed on the link of its subnet in
/// `subnets` (built from `cfg`, in the same order).
pub(super) fn reservations(cfg: &Checked, subnets: &[SubnetRt]) -> Reservations {
    let mut map = HashMap::with_hasher(random_hasher());
    for (sub, rt) in cfg.subnets.iter().zip(subnets) {
        for r in &sub.reservations {
            let (kind, id): (u8, &[u8]) = match &r.identity {
                Identity::Mac(m) => (KEY_CHADDR, m),
                Identity::ClientId(c) => (KEY_CLIENT_ID, c),
                Identity::CircuitId(c) => (KEY_CIRCUIT_ID, c),
                Identity::RemoteId(c) => (KEY_REMOTE_ID, c),
            };
            map.insert(ClientKey::new(rt.link, kind, id), (r.address, r.infinite));
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
