//! The request view: a received frame read once, down to the options the
//! engine decides on, borrowing the frame's bytes (nothing is copied but
//! the fixed BOOTP fields).
//!
//! `parse` is the gate of the packet path: what it rejects is counted as
//! malformed and never reaches a decision.
use crate::wire::dhcp::{self, MessageType};
use crate::wire::ethernet::VlanTags;
use crate::wire::options::{JoinBuffer, RequestOptions};
use crate::wire::{DhcpFrame, Error};
use std::net::Ipv4Addr;

const SERVER_PORT: u16 = 67;

/// A request, read once from the frame; borrows the frame's bytes.
pub struct Request<'a> {
    pub src_mac: [u8; 6],
    pub vlans: VlanTags,
    pub htype: u8,
    pub hlen: u8,
    pub xid: u32,
    pub flags: u16,
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// chaddr as an Ethernet address (the L2 destination of unicast
    /// replies on the local link).
    pub chaddr6: [u8; 6],
    /// Option 53, known to be one of the DHCP message types.
    pub kind: MessageType,
    /// Every other option the engine reads (50, 51, 54, 55, 57, 61, 82,
    /// 118, ...), as `wire` gathered them.
    pub opts: RequestOptions<'a>,
}

impl Request<'_> {
    /// chaddr as long as hlen says (at most its 16 bytes): the client's
    /// hardware address as a lease key.
    #[inline]
    pub fn hwaddr(&self) -> &[u8] {
        &self.chaddr[..usize::from(self.hlen).min(16)]
    }
}

/// Reads a received frame down to the DHCP options. Anything that is not
/// a well-formed IPv4/UDP BOOTREQUEST to port 67 with a DHCP message type
/// is an error: the XDP program only steers UDP/67 here. `join` holds
/// options a client split in several pieces (RFC 3396).
pub fn parse<'a>(
    frame: &'a [u8],
    join: &'a mut Option<JoinBuffer>,
) -> crate::wire::Result<Request<'a>> {
    let f = DhcpFrame::parse(frame)?;
    if f.udp.dst_port() != SERVER_PORT {
        return Err(Error::NotUdp);
    }
    let msg = &f.dhcp;
    if msg.op() != dhcp::BOOTREQUEST {
        return Err(Error::BadOption);
    }
    let opts = f.options(join)?;
    let kind = opts.msg_type().ok_or(Error::BadOption)?;
    Ok(Request {
        src_mac: f.eth.src(),
        vlans: f.eth.vlans(),
        htype: msg.htype(),
        hlen: msg.hlen(),
        xid: msg.xid(),
        flags: msg.flags(),
        broadcast: msg.broadcast(),
        ciaddr: msg.ciaddr(),
        giaddr: msg.giaddr(),
        chaddr: *msg.chaddr_raw(),
        chaddr6: msg.chaddr_mac(),
        kind,
        opts,
    })
}
