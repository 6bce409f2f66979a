//! A configured subnet as the engine uses it: its pool, its timers, and
//! its options already encoded, so a reply copies bytes instead of
//! formatting them.
use crate::config::Subnet;
use crate::lease::Pool;
use std::net::Ipv4Addr;

/// Option codes (RFC 2132) the engine writes itself.
pub mod code {
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const BROADCAST: u8 = 28;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAM_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const AGENT_INFO: u8 = 82;
}

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

/// A subnet with its pool, ready for the packet path.
pub struct SubnetRt {
    pub id: u16,
    pub network: u32,
    pub mask: u32,
    pub vlan: Option<u16>,
    pub server_id: Ipv4Addr,
    pub lease_time: u32,
    pub t1: u32,
    pub t2: u32,
    pub pool: Pool,
    pub options: EncodedOptions,
}

impl SubnetRt {
    pub fn new(id: u16, s: &Subnet) -> SubnetRt {
        let pool = Pool::new(&s.pools);
        // Addresses the network itself uses are never handed out, even
        // when a pool was written across them.
        for a in s.routers.iter().chain([&s.server_id]) {
            pool.claim(*a);
        }
        pool.claim(s.network);
        pool.claim(s.broadcast());
        let ips = |v: &[Ipv4Addr]| v.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
        let mut list: Vec<(u8, Vec<u8>)> =
            vec![(code::SUBNET_MASK, s.mask().to_be_bytes().to_vec())];
        if !s.routers.is_empty() {
            list.push((code::ROUTER, ips(&s.routers)));
        }
        if !s.dns.is_empty() {
            list.push((code::DNS, ips(&s.dns)));
        }
        if let Some(d) = &s.domain_name {
            list.push((code::DOMAIN_NAME, d.as_bytes().to_vec()));
        }
        list.push((code::BROADCAST, s.broadcast().octets().to_vec()));
        SubnetRt {
            id,
            network: u32::from(s.network),
            mask: s.mask(),
            vlan: s.vlan,
            server_id: s.server_id,
            lease_time: s.lease_time,
            t1: s.t1,
            t2: s.t2,
            pool,
            options: EncodedOptions::new(&list),
        }
    }

    #[inline]
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask == self.network
    }
}
