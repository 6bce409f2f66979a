//! IPv4 packets.

use core::net::Ipv4Addr;

use super::checksum;
use super::{Error, Result, read_ip, read_u16};

/// Byte offsets of the header's fields (RFC 791, figure 4), for the view
/// below and for `emit`.
pub(crate) mod field {
    use crate::wire::Field;

    /// Version (upper four bits) and IHL, the header length in 32-bit
    /// words (lower four).
    pub const VER_IHL: usize = 0;
    /// DSCP (upper six bits) and ECN.
    pub const DSCP_ECN: usize = 1;
    /// Total length: header and payload.
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    /// Flags (upper three bits) and fragment offset.
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

pub const PROTO_UDP: u8 = checksum::PROTO_UDP;
/// Header without options.
pub const MIN_HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_MF: u16 = 0x2000;
const FLAG_DF: u16 = 0x4000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet. Bytes past `total_len()` (Ethernet padding of
/// short frames) are ignored.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks version 4, IHL ≥ 5, and that header and total length lie
    /// within `buffer`.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        let Some(&vihl) = buf.get(field::VER_IHL) else {
            return Err(Error::Truncated);
        };
        if vihl >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = usize::from(vihl & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(Error::BadHeaderLength);
        }
        if buf.len() < header_len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(read_u16(buf, field::LENGTH.start));
        if total_len < header_len {
            return Err(Error::BadLength);
        }
        if total_len > buf.len() {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH.start))
    }

    /// The whole second byte: DSCP in the upper six bits, ECN below.
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    #[inline]
    pub fn dont_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    /// More-fragments set or a non-zero offset: any piece of a fragmented
    /// datagram.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), field::SRC_ADDR.start)
    }

    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), field::DST_ADDR.start)
    }

    /// Whether the header (options included) sums to all ones.
    #[inline]
    pub fn checksum_ok(&self) -> bool {
        let header = &self.buffer.as_ref()[..self.header_len()];
        checksum::Sum::ZERO.add_bytes(header).checksum() == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// IP options, between the fixed header and the payload.
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// From the end of the header to `total_len()`. Always inline: with
    /// `#[inline]` alone it stayed a call on the request path.
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::ipv4_header;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 255);

    fn packet(options: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut p = ipv4_header(SRC, DST, PROTO_UDP, options, payload.len());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn good_packet() {
        let buf = packet(&[], &[1, 2, 3, 4]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), PROTO_UDP);
        assert_eq!(p.src(), SRC);
        assert_eq!(p.dst(), DST);
        assert_eq!(p.dscp_ecn(), 0);
        assert!(!p.is_fragment());
        assert!(p.checksum_ok());
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
    }

    #[test]
    fn ip_options_are_skipped() {
        for opts in [&[1u8, 1, 1, 0][..], &[1, 1, 1, 1, 1, 1, 1, 0][..]] {
            let buf = packet(opts, &[0xaa, 0xbb]);
            let p = Packet::new_checked(&buf[..]).unwrap();
            assert_eq!(p.header_len(), 20 + opts.len());
            assert_eq!(p.options(), opts);
            assert!(p.checksum_ok());
            assert_eq!(p.payload(), &[0xaa, 0xbb]);
        }
    }

    #[test]
    fn bad_checksum_detected() {
        let mut buf = packet(&[], &[0; 8]);
        buf[8] ^= 1;
        assert!(!Packet::new_checked(&buf[..]).unwrap().checksum_ok());
    }

    #[test]
    fn ethernet_padding_ignored() {
        let mut buf = packet(&[], &[5; 6]);
        buf.extend_from_slice(&[0xee; 20]);
        let p = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload(), &[5; 6]);
    }

    #[test]
    fn rejects_bad_headers() {
        let good = packet(&[], &[0; 8]);

        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert_eq!(Packet::new_checked(&v6[..]).unwrap_err(), Error::BadVersion);

        for ihl in 0..5 {
            let mut b = good.clone();
            b[0] = 0x40 | ihl;
            assert_eq!(
                Packet::new_checked(&b[..]).unwrap_err(),
                Error::BadHeaderLength
            );
        }

        // IHL 15 = 60 bytes of header in a 28-byte packet.
        let mut long_ihl = good.clone();
        long_ihl[0] = 0x4f;
        assert_eq!(
            Packet::new_checked(&long_ihl[..]).unwrap_err(),
            Error::Truncated
        );

        let mut too_long = good.clone();
        too_long[2..4].copy_from_slice(&29u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&too_long[..]).unwrap_err(),
            Error::Truncated
        );

        let mut too_short = good.clone();
        too_short[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&too_short[..]).unwrap_err(),
            Error::BadLength
        );

        for len in 0..good.len() {
            assert!(Packet::new_checked(&good[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn fragments() {
        for (flags, frag) in [
            (0x2000u16, true),
            (0x0001, true),
            (0x2010, true),
            (0x4000, false),
        ] {
            let mut b = packet(&[], &[0; 8]);
            b[6..8].copy_from_slice(&flags.to_be_bytes());
            let p = Packet::new_checked(&b[..]).unwrap();
            assert_eq!(p.is_fragment(), frag, "flags {flags:#x}");
            assert_eq!(p.dont_fragment(), flags == 0x4000);
        }
    }
}
