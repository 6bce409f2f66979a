//! What the generator needs of a server's reply, read in place and kept
//! as a small `Copy` summary (it may travel to another worker's inbox).
use std::net::Ipv4Addr;
use xdhcp::wire::dhcp::BOOTREPLY;
use xdhcp::wire::udp::{CLIENT_PORT, SERVER_PORT};
use xdhcp::wire::{DhcpFrame, MessageType};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub xid: u32,
    pub chaddr: [u8; 6],
    pub yiaddr: Ipv4Addr,
    pub msg: Option<MessageType>,
    pub server_id: Option<Ipv4Addr>,
    pub lease_time: Option<u32>,
    /// The frame's Ethernet source: the server, or the router in front.
    pub src_mac: [u8; 6],
    /// When the batch holding it was received (ns since run start).
    pub at_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    Reply(Reply),
    /// Well-formed, but no BOOTREPLY to a client or relay port.
    NotOurs,
    Malformed,
}

pub fn parse(frame: &[u8], at_ns: u64) -> Parsed {
    let Ok(f) = DhcpFrame::parse(frame) else {
        return Parsed::Malformed;
    };
    let port = f.udp.dst_port();
    if (port != CLIENT_PORT && port != SERVER_PORT) || f.dhcp.op() != BOOTREPLY {
        return Parsed::NotOurs;
    }
    let mut join = None;
    let Ok(o) = f.options(&mut join) else {
        return Parsed::Malformed;
    };
    Parsed::Reply(Reply {
        xid: f.dhcp.xid(),
        chaddr: f.dhcp.chaddr_mac(),
        yiaddr: f.dhcp.yiaddr(),
        msg: o.msg_type(),
        server_id: o.server_id,
        lease_time: o.lease_time,
        src_mac: f.eth.src(),
        at_ns,
    })
}
