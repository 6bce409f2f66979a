//! Who holds which address: client key → lease, split into shards by the
//! key's hash. A shard's lock is held only for an in-memory lookup or
//! update, and workers meet on the same shard only when their clients
//! hash there, so no lock is shared by all workers.
//!
//! Shards are sized at start for the pools they serve, so a steady
//! stream of new clients does not allocate on the packet path.
use super::limits::Lines;
use foldhash::fast::FixedState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::Ipv4Addr;
use std::sync::Mutex;

/// Client identity within one subnet: option 61 when the client sent one,
/// else the hardware address (RFC 2131 §4.2). Scoped by subnet, so one CPE
/// on two VLANs holds two leases.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ClientKey {
    pub subnet: u16,
    /// 0: chaddr, 1: client identifier.
    pub kind: u8,
    pub len: u8,
    pub bytes: [u8; 32],
}

impl ClientKey {
    /// Identifiers up to 32 bytes are kept whole; longer ones (rare) keep
    /// their first 24 bytes and a 64-bit hash of the rest.
    pub fn new(subnet: u16, kind: u8, id: &[u8]) -> ClientKey {
        let mut bytes = [0u8; 32];
        if id.len() <= 32 {
            bytes[..id.len()].copy_from_slice(id);
        } else {
            bytes[..24].copy_from_slice(&id[..24]);
            let h = FixedState::with_seed(0x5eed).hash_one(&id[24..]);
            bytes[24..].copy_from_slice(&h.to_le_bytes());
        }
        ClientKey {
            subnet,
            kind,
            len: id.len().min(255) as u8,
            bytes,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Offered and held for the client until `expires`.
    Offered,
    /// Acknowledged; valid until `expires`.
    Bound,
    /// Given back by the client at `expires`. The record stays a while
    /// (`keep_released`) so the client gets the same address again while
    /// nobody else took it.
    Released,
    /// Ran out at `expires` (a binding not renewed, or an offer not taken
    /// up); kept like a released one.
    Expired,
    /// Declined by a client that found it in use: out of the pool until
    /// `expires` (the probation), under a key of the address itself.
    Declined,
}

impl LeaseState {
    /// Whether the record keeps its address out of the pool.
    #[inline]
    pub fn holds(self) -> bool {
        matches!(
            self,
            LeaseState::Offered | LeaseState::Bound | LeaseState::Declined
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub state: LeaseState,
    /// Engine seconds (monotonic) when the lease or hold ends, or, once it
    /// no longer holds its address, when it stopped; `u32::MAX` for
    /// infinite leases.
    pub expires: u32,
    /// The line counters an offered or bound lease is counted in
    /// ([`limits`](super::limits)); given back when it stops holding its
    /// address. Whatever removes or ends a holding record must give them
    /// back ([`LineTable::put_all`](super::limits::LineTable::put_all)).
    pub lines: Lines,
}

type Shard = Mutex<HashMap<ClientKey, Lease, FixedState>>;

pub struct LeaseTable {
    shards: Box<[CachePadded<Shard>]>,
    hasher: FixedState,
}

#[repr(align(128))]
struct CachePadded<T>(T);

const SHARDS: usize = 64;

/// Touches every bucket of a new map once, by filling it with keys no
/// client has and clearing it (which keeps the memory). Otherwise the
/// first client to land in each page pays a page fault on the packet path,
/// and the moment most clients are new — a city reconnecting after an
/// outage — is the moment that hurts; this moves the cost to start-up.
fn prefault(m: &mut HashMap<ClientKey, Lease, FixedState>) {
    let fill = m.capacity();
    for i in 0..fill {
        let key = ClientKey::new(u16::MAX, u8::MAX, &(i as u64).to_le_bytes());
        m.insert(
            key,
            Lease {
                addr: Ipv4Addr::UNSPECIFIED,
                state: LeaseState::Expired,
                expires: 0,
                lines: Lines::NONE,
            },
        );
    }
    debug_assert_eq!(m.capacity(), fill, "filling to capacity must not grow");
    m.clear();
}

impl LeaseTable {
    /// A table expecting about `capacity` clients in all.
    pub fn with_capacity(capacity: usize) -> LeaseTable {
        let per = capacity.div_ceil(SHARDS) + capacity.div_ceil(SHARDS) / 4 + 16;
        let hasher = FixedState::with_seed(0x7864_6863_7064);
        LeaseTable {
            shards: (0..SHARDS)
                .map(|_| {
                    let mut m = HashMap::with_capacity_and_hasher(per, hasher.clone());
                    prefault(&mut m);
                    CachePadded(Mutex::new(m))
                })
                .collect(),
            hasher,
        }
    }

    fn shard(&self, key: &ClientKey) -> &Shard {
        let h = self.hasher.hash_one(key);
        // The top bits pick the shard; the map inside uses the low ones.
        &self.shards[(h >> 58) as usize % SHARDS].0
    }

    /// Runs `f` on the client's entry (None when absent) under its shard
    /// lock; what `f` leaves in the option is stored.
    pub fn update<R>(&self, key: &ClientKey, f: impl FnOnce(&mut Option<Lease>) -> R) -> R {
        use std::collections::hash_map::Entry;
        let mut shard = self.shard(key).lock().unwrap_or_else(|p| p.into_inner());
        // One hash and one probe whether the client is known or new.
        match shard.entry(*key) {
            Entry::Occupied(mut o) => {
                let mut entry = Some(*o.get());
                let r = f(&mut entry);
                match entry {
                    Some(l) => *o.get_mut() = l,
                    None => {
                        o.remove();
                    }
                }
                r
            }
            Entry::Vacant(v) => {
                let mut entry = None;
                let r = f(&mut entry);
                if let Some(l) = entry {
                    v.insert(l);
                }
                r
            }
        }
    }

    pub fn get(&self, key: &ClientKey) -> Option<Lease> {
        self.shard(key)
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    /// Visits every lease, shard by shard, letting `f` keep (true) or drop
    /// (false) it. For side threads (expiry), never the packet path.
    pub fn retain(&self, mut f: impl FnMut(&ClientKey, &mut Lease) -> bool) {
        for s in self.shards.iter() {
            s.0.lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|k, l| f(k, l));
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_scope_by_subnet_and_kind() {
        let mac = [1, 2, 3, 4, 5, 6];
        assert_ne!(ClientKey::new(0, 0, &mac), ClientKey::new(1, 0, &mac));
        assert_ne!(ClientKey::new(0, 0, &mac), ClientKey::new(0, 1, &mac));
        let long_a = [7u8; 40];
        let mut long_b = long_a;
        long_b[39] = 8;
        assert_ne!(ClientKey::new(0, 1, &long_a), ClientKey::new(0, 1, &long_b));
    }

    #[test]
    fn update_inserts_changes_and_removes() {
        let t = LeaseTable::with_capacity(10);
        let k = ClientKey::new(0, 0, &[1, 2, 3, 4, 5, 6]);
        let l = Lease {
            addr: Ipv4Addr::new(10, 0, 0, 1),
            state: LeaseState::Offered,
            expires: 30,
            lines: Lines::NONE,
        };
        t.update(&k, |e| *e = Some(l));
        assert_eq!(t.get(&k), Some(l));
        t.update(&k, |e| e.as_mut().unwrap().state = LeaseState::Bound);
        assert_eq!(t.get(&k).unwrap().state, LeaseState::Bound);
        t.retain(|_, l| l.expires > 100);
        assert!(t.is_empty());
    }
}
