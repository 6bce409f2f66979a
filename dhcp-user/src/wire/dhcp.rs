//! The BOOTP message that carries DHCP (RFC 951, RFC 2131 §2).

use core::net::Ipv4Addr;

use super::{Error, Result, read_array, read_ip, read_u16, read_u32};

pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
/// `htype` of Ethernet.
pub const HTYPE_ETHERNET: u8 = 1;
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
pub const FLAG_BROADCAST: u16 = 0x8000;

/// The fixed BOOTP header, up to the cookie.
pub const HEADER_LEN: usize = 236;
/// Where the options start: header plus cookie.
pub const OPTIONS_OFFSET: usize = HEADER_LEN + MAGIC_COOKIE.len();
/// Classic BOOTP message length; many clients drop shorter replies.
pub const BOOTP_MIN_LEN: usize = 300;
/// Largest BOOTP message a client must accept without option 57:
/// 576-byte IP datagram minus 20 bytes IP and 8 bytes UDP (RFC 2131 §2).
pub const DEFAULT_MAX_LEN: usize = 576 - 28;

pub mod field {
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: usize = 4;
    pub const SECS: usize = 8;
    pub const FLAGS: usize = 10;
    pub const CIADDR: usize = 12;
    pub const YIADDR: usize = 16;
    pub const SIADDR: usize = 20;
    pub const GIADDR: usize = 24;
    pub const CHADDR: usize = 28;
    pub const SNAME: usize = 44;
    pub const FILE: usize = 108;
    pub const COOKIE: usize = 236;
}

pub const CHADDR_LEN: usize = 16;
pub const SNAME_LEN: usize = 64;
pub const FILE_LEN: usize = 128;

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
    /// RFC 4388: a relay or access concentrator asks about a lease.
    LeaseQuery = 10,
    /// RFC 4388 answers: the address is ours and not leased, ...
    LeaseUnassigned = 11,
    /// ... we know nothing of it (or of the client asked about), ...
    LeaseUnknown = 12,
    /// ... or it is bound.
    LeaseActive = 13,
}

impl MessageType {
    #[inline]
    pub const fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            10 => MessageType::LeaseQuery,
            11 => MessageType::LeaseUnassigned,
            12 => MessageType::LeaseUnknown,
            13 => MessageType::LeaseActive,
            _ => return None,
        })
    }

    #[inline]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A view of a BOOTP message with the DHCP cookie.
#[derive(Debug, Clone, Copy)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// Checks the 236-byte header, the magic cookie and `hlen ≤ 16`.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        if buf.len() < OPTIONS_OFFSET {
            return Err(Error::Truncated);
        }
        if buf[field::COOKIE..OPTIONS_OFFSET] != MAGIC_COOKIE {
            return Err(Error::BadMagic);
        }
        if usize::from(buf[field::HLEN]) > CHADDR_LEN {
            return Err(Error::BadLength);
        }
        Ok(Message { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the whole message, options included.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // never shorter than 240 bytes
    pub fn len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    #[inline]
    pub fn op(&self) -> u8 {
        self.buffer.as_ref()[field::OP]
    }

    #[inline]
    pub fn htype(&self) -> u8 {
        self.buffer.as_ref()[field::HTYPE]
    }

    #[inline]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    #[inline]
    pub fn hops(&self) -> u8 {
        self.buffer.as_ref()[field::HOPS]
    }

    #[inline]
    pub fn xid(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::XID)
    }

    #[inline]
    pub fn secs(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SECS)
    }

    #[inline]
    pub fn flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS)
    }

    #[inline]
    pub fn broadcast(&self) -> bool {
        self.flags() & FLAG_BROADCAST != 0
    }

    #[inline]
    pub fn ciaddr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), field::CIADDR)
    }

    #[inline]
    pub fn yiaddr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), field::YIADDR)
    }

    #[inline]
    pub fn siaddr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), field::SIADDR)
    }

    #[inline]
    pub fn giaddr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), field::GIADDR)
    }

    /// The first six bytes of chaddr: the MAC when `htype` is Ethernet.
    #[inline]
    pub fn chaddr_mac(&self) -> [u8; 6] {
        read_array(self.buffer.as_ref(), field::CHADDR)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Message<&'a T> {
    #[inline]
    fn fixed<const N: usize>(&self, at: usize) -> &'a [u8; N] {
        // `new_checked` proved the field in bounds; the zero array only
        // keeps the getter free of a panic path.
        struct Zero<const N: usize>;
        impl<const N: usize> Zero<N> {
            const ARRAY: &'static [u8; N] = &[0; N];
        }
        let buf: &'a [u8] = self.buffer.as_ref();
        match buf.get(at..).and_then(<[u8]>::first_chunk::<N>) {
            Some(array) => array,
            None => Zero::<N>::ARRAY,
        }
    }

    /// The client hardware address, `hlen` bytes of it.
    #[inline]
    pub fn chaddr(&self) -> &'a [u8] {
        let start = field::CHADDR;
        &self.buffer.as_ref()[start..start + usize::from(self.hlen())]
    }

    /// All 16 bytes of chaddr, for copying into a reply.
    #[inline]
    pub fn chaddr_raw(&self) -> &'a [u8; CHADDR_LEN] {
        self.fixed(field::CHADDR)
    }

    #[inline]
    pub fn sname(&self) -> &'a [u8; SNAME_LEN] {
        self.fixed(field::SNAME)
    }

    #[inline]
    pub fn file(&self) -> &'a [u8; FILE_LEN] {
        self.fixed(field::FILE)
    }

    /// The option area: everything after the magic cookie.
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[OPTIONS_OFFSET..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::bootp;

    #[test]
    fn fields() {
        let mut buf = bootp(&[53, 1, 1, 255]);
        buf[field::OP] = BOOTREQUEST;
        buf[field::HTYPE] = HTYPE_ETHERNET;
        buf[field::HLEN] = 6;
        buf[field::HOPS] = 2;
        buf[field::XID..field::XID + 4].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        buf[field::SECS..field::SECS + 2].copy_from_slice(&7u16.to_be_bytes());
        buf[field::FLAGS..field::FLAGS + 2].copy_from_slice(&FLAG_BROADCAST.to_be_bytes());
        buf[field::CIADDR..field::CIADDR + 4].copy_from_slice(&[1, 1, 1, 1]);
        buf[field::YIADDR..field::YIADDR + 4].copy_from_slice(&[2, 2, 2, 2]);
        buf[field::SIADDR..field::SIADDR + 4].copy_from_slice(&[3, 3, 3, 3]);
        buf[field::GIADDR..field::GIADDR + 4].copy_from_slice(&[4, 4, 4, 4]);
        buf[field::CHADDR..field::CHADDR + 6].copy_from_slice(&[0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
        buf[field::SNAME] = b's';
        buf[field::FILE] = b'f';

        let m = Message::new_checked(&buf[..]).unwrap();
        assert_eq!(m.op(), BOOTREQUEST);
        assert_eq!(m.htype(), HTYPE_ETHERNET);
        assert_eq!(m.hlen(), 6);
        assert_eq!(m.hops(), 2);
        assert_eq!(m.xid(), 0xdead_beef);
        assert_eq!(m.secs(), 7);
        assert!(m.broadcast());
        assert_eq!(m.ciaddr(), Ipv4Addr::new(1, 1, 1, 1));
        assert_eq!(m.yiaddr(), Ipv4Addr::new(2, 2, 2, 2));
        assert_eq!(m.siaddr(), Ipv4Addr::new(3, 3, 3, 3));
        assert_eq!(m.giaddr(), Ipv4Addr::new(4, 4, 4, 4));
        assert_eq!(m.chaddr(), &[0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
        assert_eq!(m.chaddr_mac(), [0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
        assert_eq!(&m.chaddr_raw()[..6], m.chaddr());
        assert_eq!(m.sname()[0], b's');
        assert_eq!(m.file()[0], b'f');
        assert_eq!(m.options(), &[53, 1, 1, 255]);
        assert_eq!(m.len(), 244);
    }

    #[test]
    fn rejects() {
        let good = bootp(&[255]);
        for len in 0..OPTIONS_OFFSET {
            assert_eq!(
                Message::new_checked(&good[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        // The cookie alone with no option area is still a message.
        assert!(Message::new_checked(&good[..OPTIONS_OFFSET]).is_ok());

        let mut bad_magic = good.clone();
        bad_magic[field::COOKIE + 3] = 0;
        assert_eq!(
            Message::new_checked(&bad_magic[..]).unwrap_err(),
            Error::BadMagic
        );

        let mut hlen = good.clone();
        hlen[field::HLEN] = 16;
        assert_eq!(Message::new_checked(&hlen[..]).unwrap().chaddr().len(), 16);
        hlen[field::HLEN] = 17;
        assert_eq!(
            Message::new_checked(&hlen[..]).unwrap_err(),
            Error::BadLength
        );
    }

    #[test]
    fn message_types() {
        for v in (1..=8u8).chain(10..=13) {
            assert_eq!(MessageType::from_u8(v).unwrap().as_u8(), v);
        }
        for v in [0, 9, 14] {
            assert_eq!(MessageType::from_u8(v), None);
        }
    }
}
