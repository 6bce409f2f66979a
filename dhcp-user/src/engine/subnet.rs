//! A configured subnet as the engine uses it: its pool, its timers, and
//! its options already encoded, so a reply copies bytes instead of
//! formatting them.
use crate::config::ddns::SubnetDdns;
use crate::config::{Limits, Subnet};
use crate::lease::{ClientKey, Pool};
use crate::wire::options::code;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

const NONE: u16 = u16::MAX;

/// Options of a subnet, encoded once at start as the bytes a reply
/// carries (code, length, data), so that writing one is one copy.
pub struct EncodedOptions {
    /// code → offset into `blob` of its code byte, or NONE.
    index: Box<[u16; 256]>,
    blob: Box<[u8]>,
    /// Codes in configuration order, for options nobody asked for.
    order: Box<[u8]>,
    /// The options of a whole reply, encoded once per parameter request
    /// list (option 55) seen: a network has a handful of client kinds, each
    /// asking in its own order, so most replies copy one block.
    blocks: Box<[OnceLock<Block>; BLOCKS]>,
}

/// Parameter request lists remembered per subnet (per configuration: a
/// reload starts afresh). When all are taken, by real clients or by
/// someone sending made-up lists, the rest are encoded option by option
/// as before: slower, never wrong.
const BLOCKS: usize = 8;
/// Longer request lists are not remembered.
const MAX_PRL: usize = 64;
/// Longer blocks are not remembered (the 576-byte minimum leaves about
/// 300 bytes for options anyway).
const MAX_BLOCK: usize = 320;

/// One request list and the options it gets, in the order
/// `reply::write_subnet_options` writes them.
struct Block {
    prl_len: u8,
    prl: [u8; MAX_PRL],
    len: u16,
    bytes: [u8; MAX_BLOCK],
}

impl EncodedOptions {
    fn new(list: &[(u8, Vec<u8>)]) -> EncodedOptions {
        let mut index = Box::new([NONE; 256]);
        let mut blob = Vec::new();
        let mut order = Vec::new();
        for (c, data) in list {
            // The config check keeps every option within one TLV.
            let Ok(len) = u8::try_from(data.len()) else {
                continue;
            };
            index[*c as usize] = blob.len() as u16;
            blob.push(*c);
            blob.push(len);
            blob.extend_from_slice(data);
            order.push(*c);
        }
        EncodedOptions {
            index,
            blob: blob.into_boxed_slice(),
            order: order.into_boxed_slice(),
            blocks: Box::new(std::array::from_fn(|_| OnceLock::new())),
        }
    }

    /// Every option of the subnet for a client asking with `prl`, encoded
    /// as a reply carries them: the subnet mask, then what `prl` asks for
    /// in its order, then the rest in configuration order. `None` when the
    /// list or the block is too long to remember, or all places are taken
    /// by other lists: the caller then writes them one by one.
    #[inline]
    pub fn block(&self, prl: &[u8]) -> Option<&[u8]> {
        if prl.len() > MAX_PRL {
            return None;
        }
        for slot in self.blocks.iter() {
            let b = match slot.get() {
                Some(b) => b,
                None => {
                    // First time for this list here: encode it once. Two
                    // workers may race; one block wins, both are equal.
                    let _ = slot.set(self.encode(prl)?);
                    slot.get()?
                }
            };
            if &b.prl[..usize::from(b.prl_len)] == prl {
                return Some(&b.bytes[..usize::from(b.len)]);
            }
        }
        None
    }

    fn encode(&self, prl: &[u8]) -> Option<Block> {
        let mut b = Block {
            prl_len: prl.len() as u8,
            prl: [0; MAX_PRL],
            len: 0,
            bytes: [0; MAX_BLOCK],
        };
        b.prl[..prl.len()].copy_from_slice(prl);
        let mut done = [0u64; 4];
        let mut len = 0;
        for &c in [code::SUBNET_MASK]
            .iter()
            .chain(prl)
            .chain(self.order.iter())
        {
            let (word, bit) = (usize::from(c >> 6), 1u64 << (c & 63));
            if done[word] & bit != 0 {
                continue;
            }
            done[word] |= bit;
            if let Some(t) = self.tlv(c) {
                b.bytes.get_mut(len..len + t.len())?.copy_from_slice(t);
                len += t.len();
            }
        }
        b.len = len as u16;
        Some(b)
    }

    /// Option `code` as it goes on the wire (code, length, data), if the
    /// subnet has it.
    #[inline]
    pub fn tlv(&self, code: u8) -> Option<&[u8]> {
        let at = self.index[code as usize];
        if at == NONE {
            return None;
        }
        let at = at as usize;
        let len = *self.blob.get(at + 1)? as usize;
        self.blob.get(at..at + 2 + len)
    }

    /// The payload of option `code`, if the subnet has it.
    #[inline]
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.tlv(code).map(|t| &t[2..])
    }

    /// Configured codes in configuration order.
    pub fn codes(&self) -> &[u8] {
        &self.order
    }
}

/// Network, prefix length, VLAN and pool ranges: a subnet whose shape a
/// reload leaves alone keeps its pool.
pub type Shape = (u32, u8, Option<u16>, Box<[(Ipv4Addr, Ipv4Addr)]>);

/// A reserved address and what the engine knows of who holds it.
pub struct Reserved {
    addr: u32,
    /// The reservation's identity as a key (kind mac, client-id,
    /// circuit-id or remote-id), scoped to the subnet's link.
    owner: ClientKey,
    /// A client that held the address when the reservation appeared (a
    /// reload added it, or the journal had it bound to someone else): it
    /// keeps the address until its next request for it, which is NAKed;
    /// the reserved client is given a pool address until then. Cleared
    /// when the reserved client takes its address.
    holder: Mutex<Option<ClientKey>>,
    /// New in this engine (not reserved for the same identity before the
    /// reload): a reclaim looks for clients that hold it.
    fresh: bool,
}

impl Reserved {
    /// The client suspected of holding the address, if any.
    pub fn holder(&self) -> Option<ClientKey> {
        *self.holder.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_holder(&self, k: Option<ClientKey>) {
        *self.holder.lock().unwrap_or_else(|p| p.into_inner()) = k;
    }

    pub fn owner(&self) -> &ClientKey {
        &self.owner
    }

    pub fn fresh(&self) -> bool {
        self.fresh
    }
}

/// A subnet with its pool, ready for the packet path.
pub struct SubnetRt {
    pub id: u16,
    /// The link the subnet is on: its own, or its shared network's. Client
    /// identity is scoped by link.
    pub link: u16,
    pub network: u32,
    pub mask: u32,
    pub vlan: Option<u16>,
    pub server_id: Ipv4Addr,
    pub lease_time: u32,
    pub t1: u32,
    pub t2: u32,
    pub min_lease_time: u32,
    pub max_lease_time: u32,
    pub ignore_client_id: bool,
    /// `[subnet.limits]`.
    pub limits: Limits,
    /// Serves direct clients (giaddr 0) on its link; set by the engine from
    /// `direct`, `vlan` and the interface's addresses.
    pub direct: bool,
    /// Believes option 82/118 of direct requests on its link.
    pub trust_agent_info: bool,
    /// RFC 4039 rapid commit for DISCOVERs with option 80.
    pub rapid_commit: bool,
    /// The subnet's DDNS settings, for option 81 in replies; `None`: DDNS
    /// is off and option 81 is not answered.
    pub ddns: Option<Arc<SubnetDdns>>,
    /// How many addresses of the pool may be in probation at once.
    pub probation_cap: u32,
    /// How many are, shared with the pool across a reload (a quarantine
    /// record is counted from the moment it is written until the sweeper
    /// ends it).
    probation: Arc<AtomicU32>,
    /// The count is new with this engine (its pool is): a reclaim counts
    /// the table's quarantines into it.
    probation_new: bool,
    /// Shared with the engine before a reload when the subnet and its
    /// ranges did not change, so its bits carry over.
    pub pool: Arc<Pool>,
    /// What a reload compares to decide whether the pool carries over.
    pub shape: Shape,
    pub options: EncodedOptions,
    /// Reserved addresses, sorted: never given back to the pool.
    reserved: Box<[Reserved]>,
    /// `conflict_check = "icmp"`: when each pool address was last leased
    /// or probed (set by the engine once the pool is known).
    pub recent: Option<Arc<super::conflict::Recent>>,
}

impl SubnetRt {
    /// The subnet `s`, whose reservations have the identity keys `owners`
    /// (in the order of `s.reservations`). After a reload, `prev` are the
    /// previous engine's subnets: the pool (and its probation count) of
    /// the one with the same shape carries over, and so does what is known
    /// of the holders of reservations that did not change; else a new pool
    /// sharded for `workers`.
    pub fn new(
        id: u16,
        link: u16,
        s: &Subnet,
        owners: &[ClientKey],
        prev: Option<&[SubnetRt]>,
        workers: usize,
        shares: u8,
    ) -> SubnetRt {
        let shape = Self::shape_of(s);
        let same = prev.and_then(|p| p.iter().find(|o| o.shape == shape));
        let pool = same.map_or_else(
            || Arc::new(Pool::split(&s.pools, workers, shares)),
            |o| o.pool.clone(),
        );
        let probation = same.map_or_else(|| Arc::new(AtomicU32::new(0)), |o| o.probation.clone());
        // Addresses the network itself uses are never handed out, even
        // when a pool was written across them.
        for a in s.routers.iter().chain([&s.server_id]) {
            pool.claim(*a);
        }
        pool.claim(s.network);
        pool.claim(s.broadcast());
        let mut list: Vec<(u8, Vec<u8>)> =
            vec![(code::SUBNET_MASK, s.mask().to_be_bytes().to_vec())];
        list.extend(s.options.iter().cloned());
        // Reserved addresses are never handed to anyone else: those
        // inside a pool leave it for good.
        let mut reserved: Vec<Reserved> = s
            .reservations
            .iter()
            .zip(owners)
            .map(|(r, owner)| {
                // The same reservation before the reload: what was known
                // of its holder still holds.
                let before = prev.and_then(|p| {
                    p.iter()
                        .filter(|o| o.link == link)
                        .find_map(|o| o.reservation(r.address))
                        .filter(|o| o.owner == *owner)
                });
                Reserved {
                    addr: u32::from(r.address),
                    owner: *owner,
                    holder: Mutex::new(before.and_then(Reserved::holder)),
                    fresh: prev.is_some() && before.is_none(),
                }
            })
            .collect();
        reserved.sort_unstable_by_key(|r| r.addr);
        for r in &s.reservations {
            pool.claim(r.address);
        }
        let size = u64::from(pool.size());
        let probation_cap = match s.max_probation_percent {
            100.. => u32::MAX,
            p => (size * u64::from(p)).div_ceil(100) as u32,
        };
        SubnetRt {
            shape,
            rapid_commit: s.rapid_commit,
            ddns: s.ddns.clone(),
            probation_cap,
            probation,
            probation_new: prev.is_some() && same.is_none(),
            id,
            link,
            network: u32::from(s.network),
            mask: s.mask(),
            vlan: s.vlan,
            server_id: s.server_id,
            lease_time: s.lease_time,
            t1: s.t1,
            t2: s.t2,
            min_lease_time: s.min_lease_time,
            max_lease_time: s.max_lease_time,
            ignore_client_id: s.ignore_client_id,
            limits: s.limits,
            direct: s.direct.unwrap_or(s.vlan.is_some()),
            trust_agent_info: s.trust_agent_info,
            pool,
            options: EncodedOptions::new(&list),
            reserved: reserved.into_boxed_slice(),
            recent: None,
        }
    }

    #[inline]
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask == self.network
    }

    pub fn shape_of(s: &Subnet) -> Shape {
        (
            u32::from(s.network),
            s.prefix_len,
            s.vlan,
            s.pools.clone().into_boxed_slice(),
        )
    }

    pub fn is_reserved(&self, a: Ipv4Addr) -> bool {
        self.reservation(a).is_some()
    }

    pub fn reservations(&self) -> impl Iterator<Item = &Reserved> {
        self.reserved.iter()
    }

    /// The reservation of `a`, if it is reserved.
    pub fn reservation(&self, a: Ipv4Addr) -> Option<&Reserved> {
        let a = u32::from(a);
        self.reserved
            .binary_search_by_key(&a, |r| r.addr)
            .ok()
            .map(|i| &self.reserved[i])
    }

    /// Counts one more address into probation, unless the cap is reached.
    pub fn enter_probation(&self) -> bool {
        self.probation
            .fetch_update(Relaxed, Relaxed, |n| {
                (n < self.probation_cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// Counts one address into probation whatever the cap (restore: the
    /// journal had it there already).
    pub fn force_probation(&self) {
        self.probation.fetch_add(1, Relaxed);
    }

    /// One address out of probation.
    pub fn leave_probation(&self) {
        let _ = self
            .probation
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }

    /// After a reload that gave this subnet a new pool: `n` addresses of
    /// it are under quarantine in the lease table.
    pub fn recount_probation(&self, n: u32) {
        if self.probation_new {
            self.probation.store(n, Relaxed);
        }
    }

    /// Addresses in probation now.
    pub fn in_probation(&self) -> u32 {
        self.probation.load(Relaxed)
    }

    /// Gives an address back to the pool unless it is reserved.
    pub fn free(&self, a: Ipv4Addr) {
        if !self.is_reserved(a) {
            self.pool.release(a);
        }
    }

    /// Lease, T1, T2 for a client asking for `requested` seconds (option
    /// 51), honoured within the subnet's bounds; `infinite` for
    /// reservations that say so.
    pub fn lease_times(&self, requested: Option<u32>, infinite: bool) -> (u32, u32, u32) {
        if infinite {
            return (u32::MAX, u32::MAX, u32::MAX);
        }
        let lease = requested
            .map(|r| r.clamp(self.min_lease_time, self.max_lease_time))
            .unwrap_or(self.lease_time);
        if lease == self.lease_time {
            return (lease, self.t1, self.t2);
        }
        renewal_times(lease)
    }
}

/// A lease of `lease` seconds with RFC 2131's T1 (half) and T2 (7/8);
/// infinite stays infinite.
pub(super) fn renewal_times(lease: u32) -> (u32, u32, u32) {
    if lease == u32::MAX {
        return (u32::MAX, u32::MAX, u32::MAX);
    }
    let l = u64::from(lease);
    (lease, (l / 2) as u32, (l * 7 / 8) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> EncodedOptions {
        EncodedOptions::new(&[
            (code::SUBNET_MASK, vec![255, 255, 255, 0]),
            (3, vec![10, 0, 0, 1]),
            (6, vec![10, 0, 0, 2, 10, 0, 0, 3]),
            (15, b"isp.example".to_vec()),
            (42, vec![10, 0, 0, 4]),
        ])
    }

    /// The order the block must have, written out plainly.
    fn expected(o: &EncodedOptions, prl: &[u8]) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for c in [code::SUBNET_MASK]
            .into_iter()
            .chain(prl.iter().copied())
            .chain(o.codes().iter().copied())
        {
            if seen.contains(&c) {
                continue;
            }
            seen.push(c);
            if let Some(t) = o.tlv(c) {
                out.extend_from_slice(t);
            }
        }
        out
    }

    #[test]
    fn a_block_is_the_options_in_the_order_one_by_one_would_give() {
        let o = options();
        for prl in [
            &[][..],
            &[1, 3, 6],
            &[6, 15, 3],
            &[1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42],
            &[42, 42, 1, 1],
        ] {
            assert_eq!(o.block(prl).unwrap(), expected(&o, prl), "prl {prl:?}");
            // Asked again: the same block, from its place.
            assert_eq!(o.block(prl).unwrap(), expected(&o, prl));
        }
    }

    #[test]
    fn lists_past_the_places_or_too_long_are_left_to_the_caller() {
        let o = options();
        for i in 0..BLOCKS as u8 {
            assert!(o.block(&[i + 100]).is_some());
        }
        assert_eq!(o.block(&[250]), None, "every place taken");
        assert!(o.block(&[100]).is_some(), "a remembered one still found");
        assert_eq!(options().block(&[3; MAX_PRL + 1]), None);
    }
}
