//! The few header layouts the steering decision reads, and the bounds
//! check the verifier insists on before every read of the frame.
//!
//! Fields are byte arrays so every struct has alignment 1: after an odd
//! number of VLAN tags, or behind IP options, nothing in the frame is
//! naturally aligned, and the BPF backend must not assume it is.
use aya_ebpf::programs::XdpContext;
use core::mem;

pub const ETH_P_IPV4: u16 = 0x0800;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
/// Pre-standard QinQ outer tag some switches still emit.
pub const ETH_P_QINQ_9100: u16 = 0x9100;

pub const IPPROTO_UDP: u8 = 17;
pub const DHCP_SERVER_PORT: u16 = 67;

/// Both "more fragments" and the fragment offset: any bit set means this
/// frame is a piece of a datagram, and only the first piece has a UDP
/// header at all.
pub const IPV4_FRAGMENT_MASK: u16 = 0x3fff;
pub const IPV4_MIN_HEADER_LEN: usize = 20;

#[repr(C)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ether_type: [u8; 2],
}

/// An 802.1Q / 802.1ad tag as it sits after the MAC addresses: the tag
/// control word, then the type of what follows.
#[repr(C)]
pub struct VlanTag {
    pub tci: [u8; 2],
    pub ether_type: [u8; 2],
}

/// The fixed part of an IPv4 header; options, if any, follow it.
#[repr(C)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub total_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub protocol: u8,
    pub check: [u8; 2],
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

#[repr(C)]
pub struct UdpHdr {
    pub src_port: [u8; 2],
    pub dst_port: [u8; 2],
    pub len: [u8; 2],
    pub check: [u8; 2],
}

/// A pointer to a `T` at `offset` into the frame, or `None` when the frame
/// ends before the `T` does. The comparison is written against
/// `data_end` on the packet pointer itself, the form the verifier
/// recognises to widen the readable range.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    if start + offset + mem::size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *const T)
}

/// Whether the frame holds at least `offset + len` bytes.
#[inline(always)]
pub fn has_bytes(ctx: &XdpContext, offset: usize, len: usize) -> bool {
    ctx.data() + offset + len <= ctx.data_end()
}
