//! Test helpers that build frames the slow, obvious way, independent of
//! the code under test.

use core::net::Ipv4Addr;

use super::dhcp::{MAGIC_COOKIE, OPTIONS_OFFSET};
use dhcproto::{Encodable, Encoder, v4};

/// xorshift64*: deterministic, so a failing case reproduces.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform enough in `0..n` for tests; `n` must be non-zero.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
}

/// RFC 1071 one 16-bit word at a time, folded, not complemented.
pub fn reference_sum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    for pair in data.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        let lo = pair.get(1).map_or(0, |&b| u64::from(b));
        sum += hi | lo;
    }
    while sum > 0xffff {
        sum = (sum >> 16) + (sum & 0xffff);
    }
    sum as u16
}

/// An IPv4 header with `options` and a correct checksum, TTL 64.
pub fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    options: &[u8],
    payload_len: usize,
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let header_len = 20 + options.len();
    let total = (header_len + payload_len) as u16;
    let mut h = vec![0x40 | (header_len / 4) as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34, 0, 0, 64, protocol, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(options);
    let sum = !reference_sum(&h, 0);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// A 240-byte BOOTP header (all zero but the cookie) followed by `options`.
pub fn bootp(options: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; OPTIONS_OFFSET];
    b[OPTIONS_OFFSET - 4..].copy_from_slice(&MAGIC_COOKIE);
    b.extend_from_slice(options);
    b
}

pub fn encode(msg: &v4::Message) -> Vec<u8> {
    let mut out = Vec::new();
    msg.encode(&mut Encoder::new(&mut out)).unwrap();
    out
}

/// Ethernet (with `tags`, outermost first, as `(tpid, tci)`), IPv4 and UDP
/// around `payload`, UDP checksum left at 0.
pub fn udp_frame(
    tags: &[(u16, u16)],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&src_mac);
    for &(tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&ipv4_header(src, dst, 17, &[], 8 + payload.len()));
    f.extend_from_slice(&src_port.to_be_bytes());
    f.extend_from_slice(&dst_port.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}
