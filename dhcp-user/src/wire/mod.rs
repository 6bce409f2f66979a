//! Zero-copy views of received frames and the writer of reply frames.
//!
//! The views follow smoltcp's `wire` style: `new_checked` validates every
//! length once, so the getters that follow index only inside checked
//! bounds and cannot panic. Nothing on the packet path here allocates: it
//! runs per packet, on frames that lie in the UMEM (`fqdn`'s zone and
//! pattern parsers, which do, run at config time).
//!
//! The slice getters (`payload()`, `options()`, ...) live on the views over
//! `&'a T` and return `&'a [u8]`, so the view of the next layer and the
//! parsed options can outlive the view they came from.

pub mod checksum;
pub mod dhcp;
pub mod emit;
pub mod ethernet;
pub mod fqdn;
pub mod frame;
pub mod ipv4;
pub mod options;
pub mod udp;

#[cfg(test)]
pub(crate) mod testutil;

use core::fmt;
use core::net::Ipv4Addr;

pub use dhcp::{Message, MessageType};
pub use emit::{BootpHeader, DhcpWriter, FrameHeaders, emit_headers, headers_len};
pub use ethernet::{VlanTag, VlanTags};
pub use frame::DhcpFrame;
pub use options::{JoinBuffer, OptionIter, RequestOptions, agent_sub_option};

/// Why a frame was not accepted (or a reply could not be written).
///
/// `index()` and `as_str()` let the workers count drops per reason in a
/// fixed array without formatting anything on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer ends before a header or a length field says it should.
    Truncated,
    /// IPv4 IHL below 5.
    BadHeaderLength,
    /// IP version is not 4.
    BadVersion,
    /// The innermost ethertype is not IPv4.
    NotIpv4,
    /// The IPv4 protocol is not UDP.
    NotUdp,
    /// An IPv4 fragment: DHCP messages are never fragmented in practice and
    /// reassembly would need state on the hot path.
    Fragmented,
    /// The IPv4 header checksum does not verify.
    BadChecksum,
    /// The BOOTP message lacks the DHCP magic cookie.
    BadMagic,
    /// A DHCP option runs past its area or has a length its code forbids.
    BadOption,
    /// A length field is inconsistent (IPv4 total length, UDP length,
    /// BOOTP hlen) or a value is too long to encode.
    BadLength,
    /// More than two VLAN tags.
    TooManyVlans,
    /// The reply does not fit the buffer or the client's maximum size.
    BufferTooSmall,
    /// `DhcpWriter::finish` before `DhcpWriter::header`.
    MissingHeader,
    /// A UDP datagram to a port other than the server's (67).
    NotServerPort,
    /// A BOOTP message that is not a BOOTREQUEST (a BOOTREPLY, or an
    /// unknown op): another server's answer, never ours to decide on.
    NotRequest,
    /// No DHCP message type (option 53), or one this server does not know.
    NoMessageType,
}

impl Error {
    /// Number of variants, for arrays of per-reason counters.
    pub const COUNT: usize = 16;

    /// Every variant, in `index()` order.
    pub const ALL: [Error; Error::COUNT] = [
        Error::Truncated,
        Error::BadHeaderLength,
        Error::BadVersion,
        Error::NotIpv4,
        Error::NotUdp,
        Error::Fragmented,
        Error::BadChecksum,
        Error::BadMagic,
        Error::BadOption,
        Error::BadLength,
        Error::TooManyVlans,
        Error::BufferTooSmall,
        Error::MissingHeader,
        Error::NotServerPort,
        Error::NotRequest,
        Error::NoMessageType,
    ];

    /// Position in `ALL`, dense from 0.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A stable snake_case name for metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Error::Truncated => "truncated",
            Error::BadHeaderLength => "bad_header_length",
            Error::BadVersion => "bad_version",
            Error::NotIpv4 => "not_ipv4",
            Error::NotUdp => "not_udp",
            Error::Fragmented => "fragmented",
            Error::BadChecksum => "bad_checksum",
            Error::BadMagic => "bad_magic",
            Error::BadOption => "bad_option",
            Error::BadLength => "bad_length",
            Error::TooManyVlans => "too_many_vlans",
            Error::BufferTooSmall => "buffer_too_small",
            Error::MissingHeader => "missing_header",
            Error::NotServerPort => "not_server_port",
            Error::NotRequest => "not_request",
            Error::NoMessageType => "no_message_type",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Error::Truncated => "frame truncated",
            Error::BadHeaderLength => "IPv4 header length below 20 bytes",
            Error::BadVersion => "IP version is not 4",
            Error::NotIpv4 => "ethertype is not IPv4",
            Error::NotUdp => "IP protocol is not UDP",
            Error::Fragmented => "IPv4 fragment",
            Error::BadChecksum => "IPv4 header checksum mismatch",
            Error::BadMagic => "DHCP magic cookie missing",
            Error::BadOption => "malformed DHCP option",
            Error::BadLength => "inconsistent length field",
            Error::TooManyVlans => "more than two VLAN tags",
            Error::BufferTooSmall => "buffer too small for the reply",
            Error::MissingHeader => "BOOTP header not written",
            Error::NotServerPort => "UDP destination port is not 67",
            Error::NotRequest => "BOOTP op is not BOOTREQUEST",
            Error::NoMessageType => "no known DHCP message type (option 53)",
        };
        f.write_str(text)
    }
}

impl core::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// Where a multi-byte field lies in its header, as a range of byte
/// offsets (smoltcp's convention): the views read it, `emit` writes it,
/// both from the same constant, so the two cannot drift apart.
pub(crate) type Field = core::ops::Range<usize>;

// Readers for fields at offsets that `new_checked` has proven in bounds.

/// The `N` bytes at `at`, with one bounds check for the whole field (one
/// index per byte was a check per byte: the compiler cannot merge them,
/// since each could panic on its own).
#[inline(always)]
pub(crate) fn read_array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    buf[at..at + N].try_into().unwrap()
}

#[inline(always)]
pub(crate) fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(read_array(buf, at))
}

#[inline(always)]
pub(crate) fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(read_array(buf, at))
}

#[inline(always)]
pub(crate) fn read_ip(buf: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::from(read_array::<4>(buf, at))
}

#[inline(always)]
pub(crate) fn write_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[inline(always)]
pub(crate) fn write_u32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_index_matches_all() {
        for (i, e) in Error::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert!(!e.as_str().is_empty());
        }
        let mut names: [&str; Error::COUNT] = Error::ALL.map(Error::as_str);
        names.sort_unstable();
        assert!(
            names.windows(2).all(|w| w[0] != w[1]),
            "metric names unique"
        );
    }
}
