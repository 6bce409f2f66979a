//! The request view: a received frame read once, down to the options the
//! engine decides on, borrowing the frame's bytes (nothing is copied but
//! the fixed BOOTP fields).
//!
//! `parse` is the gate of the packet path: what it rejects is counted as
//! malformed and never reaches a decision. Each reason has its own
//! [`Error`] kind, so a fuzzer or a test can tell them apart.
use crate::wire::dhcp::{self, MessageType};
use crate::wire::ethernet::VlanTags;
use crate::wire::options::{JoinBuffer, RequestOptions};
use crate::wire::{DhcpFrame, Error};
use std::net::Ipv4Addr;

const SERVER_PORT: u16 = 67;

/// Whether the relay agent information (option 82) and subnet selection
/// (option 118) of a request are believed: the engine's trust decision,
/// taken once per request before anything reads them (RFC 3046 §2.1, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentTrust {
    /// Not decided yet: as [`parse`] returns a request.
    Unjudged,
    /// Neither option was sent.
    Absent,
    /// Sent by a relay we trust, or on a link marked `trust_agent_info`.
    Trusted,
    /// Sent by someone else: the options were removed from the view (as if
    /// absent, so nothing uses or echoes them).
    Ignored,
}

/// A request, read once from the frame; borrows the frame's bytes.
pub struct Request<'a> {
    pub src_mac: [u8; 6],
    /// The IPv4 source address (where a DHCPINFORM without ciaddr is
    /// answered).
    pub src_ip: Ipv4Addr,
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
    /// 118, ...), as `wire` gathered them. After the engine's trust
    /// decision (`agent`), `agent_info` and `subnet_selection` hold only
    /// what is believed.
    pub opts: RequestOptions<'a>,
    /// The trust decision on `opts.agent_info` / `opts.subnet_selection`.
    pub agent: AgentTrust,
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
#[inline]
pub fn parse<'a>(
    frame: &'a [u8],
    join: &'a mut Option<JoinBuffer>,
) -> crate::wire::Result<Request<'a>> {
    let f = DhcpFrame::parse(frame)?;
    if f.udp.dst_port() != SERVER_PORT {
        return Err(Error::NotServerPort);
    }
    let msg = &f.dhcp;
    if msg.op() != dhcp::BOOTREQUEST {
        return Err(Error::NotRequest);
    }
    let opts = f.options(join)?;
    let kind = opts.msg_type().ok_or(Error::NoMessageType)?;
    Ok(Request {
        src_mac: f.eth.src(),
        src_ip: f.ip.src(),
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
        agent: AgentTrust::Unjudged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{bootp, udp_frame};

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];

    /// A BOOTP message with `op` and `options`, hlen 6 and chaddr `MAC`,
    /// sent from port 68 to `dst_port`.
    fn frame(op: u8, dst_port: u16, options: &[u8]) -> Vec<u8> {
        let mut b = bootp(options);
        b[0] = op;
        b[1] = 1;
        b[2] = 6;
        b[28..34].copy_from_slice(&MAC);
        udp_frame(
            &[],
            MAC,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            68,
            dst_port,
            &b,
        )
    }

    const DISCOVER: &[u8] = &[53, 1, 1, 255];

    fn parse_err(f: &[u8]) -> Option<Error> {
        parse(f, &mut None).err()
    }

    #[test]
    fn a_bootrequest_to_port_67_parses() {
        let f = frame(dhcp::BOOTREQUEST, 67, &[53, 1, 1, 50, 4, 192, 0, 2, 9, 255]);
        let mut join = None;
        let r = parse(&f, &mut join).unwrap();
        assert_eq!(r.kind, MessageType::Discover);
        assert_eq!(r.hwaddr(), MAC);
        assert_eq!(r.chaddr6, MAC);
        assert_eq!(r.opts.requested_ip, Some(Ipv4Addr::new(192, 0, 2, 9)));
    }

    #[test]
    fn a_datagram_to_another_port_is_not_server_port() {
        for port in [68, 547, 0] {
            let f = frame(dhcp::BOOTREQUEST, port, DISCOVER);
            assert_eq!(parse_err(&f), Some(Error::NotServerPort), "port {port}");
        }
    }

    #[test]
    fn a_bootreply_is_not_request() {
        for op in [2, 0, 3] {
            let f = frame(op, 67, DISCOVER);
            assert_eq!(parse_err(&f), Some(Error::NotRequest), "op {op}");
        }
    }

    #[test]
    fn a_missing_or_unknown_message_type_is_no_message_type() {
        for options in [&[255][..], &[53, 1, 0, 255], &[53, 1, 42, 255]] {
            let f = frame(dhcp::BOOTREQUEST, 67, options);
            assert_eq!(
                parse_err(&f),
                Some(Error::NoMessageType),
                "options {options:?}"
            );
        }
    }

    #[test]
    fn a_broken_option_is_still_bad_option() {
        // Option 53 whose length runs past the options area.
        let f = frame(dhcp::BOOTREQUEST, 67, &[53, 9, 1]);
        assert_eq!(parse_err(&f), Some(Error::BadOption));
    }
}
