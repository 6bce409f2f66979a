//! A configured subnet as the engine uses it: its pool, its timers, and
//! its options already encoded, so a reply copies bytes instead of
//! formatting them.
use crate::config::{Limits, Subnet};
use crate::lease::Pool;
use crate::wire::options::code;
use std::net::Ipv4Addr;
use std::sync::Arc;

const NONE: u16 = u16::MAX;

/// Options of a subnet, encoded once at start.
pub struct EncodedOptions {
    /// code → offset into `blob` of (len, data...), or NONE.
    index: Box<[u16; 256]>,
    blob: Box<[u8]>,
    /// Codes in configuration order, for options nobody asked for.
    order: Box<[u8]>,
}

impl EncodedOptions {
    fn new(list: &[(u8, Vec<u8>)]) -> EncodedOptions {
        let mut index = Box::new([NONE; 256]);
        let mut blob = Vec::new();
        let mut order = Vec::new();
        for (c, data) in list {
            index[*c as usize] = blob.len() as u16;
            blob.push(data.len() as u8);
            blob.extend_from_slice(data);
            order.push(*c);
        }
        EncodedOptions {
            index,
            blob: blob.into_boxed_slice(),
            order: order.into_boxed_slice(),
        }
    }

    /// The payload of option `code`, if the subnet has it.
    #[inline]
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        let at = self.index[code as usize];
        if at == NONE {
            return None;
        }
        let at = at as usize;
        let len = *self.blob.get(at)? as usize;
        self.blob.get(at + 1..at + 1 + len)
    }

    /// Configured codes in configuration order.
    pub fn codes(&self) -> &[u8] {
        &self.order
    }
}

/// Network, prefix length, VLAN and pool ranges: a subnet whose shape a
/// reload leaves alone keeps its pool.
pub type Shape = (u32, u8, Option<u16>, Box<[(Ipv4Addr, Ipv4Addr)]>);

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
    /// Shared with the engine before a reload when the subnet and its
    /// ranges did not change, so its bits carry over.
    pub pool: Arc<Pool>,
    /// What a reload compares to decide whether the pool carries over.
    pub shape: Shape,
    pub options: EncodedOptions,
    /// Reserved addresses, sorted: never given back to the pool.
    reserved: Box<[u32]>,
}

impl SubnetRt {
    /// The subnet `s`; `pool` is the previous engine's pool when this
    /// subnet's shape is unchanged by a reload, else a new one sharded for
    /// `workers`.
    pub fn new(
        id: u16,
        link: u16,
        s: &Subnet,
        pool: Option<Arc<Pool>>,
        workers: usize,
    ) -> SubnetRt {
        let pool = pool.unwrap_or_else(|| Arc::new(Pool::new(&s.pools, workers)));
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
        let mut reserved: Vec<u32> = s
            .reservations
            .iter()
            .map(|r| u32::from(r.address))
            .collect();
        reserved.sort_unstable();
        for r in &s.reservations {
            pool.claim(r.address);
        }
        SubnetRt {
            shape: Self::shape_of(s),
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
            pool,
            options: EncodedOptions::new(&list),
            reserved: reserved.into_boxed_slice(),
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
        self.reserved.binary_search(&u32::from(a)).is_ok()
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
        if lease == u32::MAX {
            return (u32::MAX, u32::MAX, u32::MAX);
        }
        let l = u64::from(lease);
        (lease, (l / 2) as u32, (l * 7 / 8) as u32)
    }
}
