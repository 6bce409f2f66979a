//! UDP datagrams.
//!
//! The receive side does not verify the UDP checksum: a UDP socket on a
//! veth peer (dhclient renewing, dhcrelay) hands over frames whose checksum
//! is only partial (checksum offload), so verifying would drop valid
//! requests. `checksum_ok` is there for the generator and the tests.

use core::net::Ipv4Addr;

use super::checksum;
use super::{Error, Result, read_u16};

/// Byte offsets of the header's fields (RFC 768), for the view below and
/// for `emit`.
pub(crate) mod field {
    use crate::wire::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    /// Header and payload.
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

pub const HEADER_LEN: usize = field::CHECKSUM.end;
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// A view of a UDP datagram; bytes past the length field are ignored.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the 8-byte header and that the length field lies between 8
    /// and the buffer's length.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(read_u16(buf, field::LENGTH.start));
        if len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if len > buf.len() {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// The length field: header plus payload.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a datagram is never shorter than its header
    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH.start))
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Verifies the checksum against the pseudo-header; a zero field means
    /// the sender did not compute one, which IPv4 allows.
    pub fn checksum_ok(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let segment = &self.buffer.as_ref()[..self.len()];
        checksum::Sum::pseudo_header(src, dst, checksum::PROTO_UDP, self.len() as u16)
            .add_bytes(segment)
            .checksum()
            == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes the length field covers after the header. Always inline:
    /// with `#[inline]` alone it stayed a call on the request path.
    #[inline(always)]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(payload: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&68u16.to_be_bytes());
        d.extend_from_slice(&67u16.to_be_bytes());
        d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(payload);
        d
    }

    #[test]
    fn good_datagram() {
        let buf = datagram(b"abc");
        let u = Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(u.src_port(), CLIENT_PORT);
        assert_eq!(u.dst_port(), SERVER_PORT);
        assert_eq!(u.len(), 11);
        assert_eq!(u.payload(), b"abc");
    }

    #[test]
    fn payload_limited_by_length_field() {
        let mut buf = datagram(b"abcdef");
        buf[4..6].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&buf[..]).unwrap().payload(), b"ab");
    }

    #[test]
    fn bad_lengths() {
        let buf = datagram(b"abc");
        for len in 0..8 {
            assert_eq!(
                Packet::new_checked(&buf[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        let mut short = buf.clone();
        short[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&short[..]).unwrap_err(),
            Error::BadLength
        );
        let mut long = buf.clone();
        long[4..6].copy_from_slice(&12u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&long[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn checksum_verification() {
        let src = Ipv4Addr::new(10, 1, 1, 1);
        let dst = Ipv4Addr::new(10, 1, 1, 2);
        let mut buf = datagram(b"odd");
        assert!(Packet::new_checked(&buf[..]).unwrap().checksum_ok(src, dst));
        let c = checksum::udp_checksum(src, dst, &buf);
        buf[6..8].copy_from_slice(&c.to_be_bytes());
        assert!(Packet::new_checked(&buf[..]).unwrap().checksum_ok(src, dst));
        buf[9] ^= 0x40;
        assert!(!Packet::new_checked(&buf[..]).unwrap().checksum_ok(src, dst));
    }
}
