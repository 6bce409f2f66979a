//! Writing a client's request frame straight into a TX buffer, with the
//! project's reply writer (`wire::emit`) run the other way round.
use super::client::{Client, client_mac};
use std::net::Ipv4Addr;
use xdhcp::wire::dhcp::{BOOTREQUEST, FLAG_BROADCAST, HTYPE_ETHERNET};
use xdhcp::wire::ethernet::BROADCAST;
use xdhcp::wire::options::{agent, code};
use xdhcp::wire::udp::{CLIENT_PORT, SERVER_PORT};
use xdhcp::wire::{
    BootpHeader, DhcpWriter, FrameHeaders, MessageType, VlanTags, emit_headers, headers_len,
};

/// What the server is asked for in option 55: what a CPE router asks.
const PARAM_LIST: [u8; 8] = [
    code::SUBNET_MASK,
    code::ROUTER,
    code::DOMAIN_NAME_SERVER,
    code::DOMAIN_NAME,
    code::LEASE_TIME,
    code::SERVER_ID,
    code::RENEWAL_TIME,
    code::REBINDING_TIME,
];
/// Option 57: an Ethernet client takes a full-MTU reply.
const MAX_MESSAGE_SIZE: u16 = 1500 - 28;
const CIRCUIT_PREFIX: &[u8; 4] = b"gen-";

/// Which message to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Discover,
    /// REQUEST in SELECTING: options 50 and 54 name the offer.
    Select,
    /// REQUEST in RENEWING: unicast to the server, ciaddr set.
    Renew,
    /// REQUEST in REBINDING: broadcast, ciaddr set.
    Rebind,
    Release,
}

/// What every frame of a run shares.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The first three bytes of every client's MAC.
    pub mac_prefix: [u8; 3],
    /// The generator's interface: the relays' MAC.
    pub iface_mac: [u8; 6],
    pub vlans: VlanTags,
    /// Set the BOOTP broadcast flag, so replies come broadcast.
    pub broadcast: bool,
    /// Send option 61 (type 1 and the MAC).
    pub client_id: bool,
    /// Send option 82 (circuit id `gen-<index in hex>`, remote id the
    /// generator's MAC) on every DISCOVER/REQUEST, also without a relay.
    pub option82: bool,
    /// Relay mode: where relayed messages go (IP and MAC of the server).
    pub server: Option<(Ipv4Addr, [u8; 6])>,
}

/// Writes `req` of client `index` into `frame`; the frame's length, or
/// None when the buffer is too small (never with a 2 KiB buffer) or a
/// relayed message has no server to go to.
pub fn build(
    frame: &mut [u8],
    id: &Identity,
    index: u32,
    c: &Client,
    req: Request,
    relay: Option<Ipv4Addr>,
    secs: u16,
) -> Option<usize> {
    let mac = client_mac(id.mac_prefix, index);
    let relayed =
        relay.filter(|_| matches!(req, Request::Discover | Request::Select | Request::Rebind));
    let ciaddr = match req {
        Request::Renew | Request::Rebind | Request::Release => c.held,
        Request::Discover | Request::Select => Ipv4Addr::UNSPECIFIED,
    };
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&mac);
    let header = BootpHeader {
        op: BOOTREQUEST,
        htype: HTYPE_ETHERNET,
        hlen: 6,
        hops: u8::from(relayed.is_some()),
        xid: c.xid(index),
        secs,
        flags: if id.broadcast && req != Request::Release {
            FLAG_BROADCAST
        } else {
            0
        },
        ciaddr,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: relayed.unwrap_or(Ipv4Addr::UNSPECIFIED),
        chaddr,
    };

    let src_mac = if relay.is_some() { id.iface_mac } else { mac };
    let headers = match (req, relayed) {
        (_, Some(giaddr)) => {
            let (server, server_mac) = id.server?;
            FrameHeaders {
                src_mac: id.iface_mac,
                dst_mac: server_mac,
                vlans: id.vlans,
                src_ip: giaddr,
                dst_ip: server,
                src_port: SERVER_PORT,
                dst_port: SERVER_PORT,
                ttl: 64,
                dscp: 0,
            }
        }
        (Request::Discover | Request::Select | Request::Rebind, None) => FrameHeaders {
            src_mac,
            dst_mac: BROADCAST,
            vlans: id.vlans,
            src_ip: ciaddr,
            dst_ip: Ipv4Addr::BROADCAST,
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
            ttl: 64,
            dscp: 0,
        },
        (Request::Renew | Request::Release, None) => FrameHeaders {
            src_mac,
            dst_mac: c.server_mac,
            vlans: id.vlans,
            src_ip: c.held,
            dst_ip: c.server_id,
            src_port: CLIENT_PORT,
            dst_port: SERVER_PORT,
            ttl: 64,
            dscp: 0,
        },
    };

    let at = headers_len(&id.vlans);
    let mut w = DhcpWriter::new(frame.get_mut(at..)?).ok()?;
    w.set_limit(MAX_MESSAGE_SIZE.into());
    let kind = match req {
        Request::Discover => MessageType::Discover,
        Request::Release => MessageType::Release,
        _ => MessageType::Request,
    };
    w.option_u8(code::MESSAGE_TYPE, kind.as_u8()).ok()?;
    if id.client_id {
        w.option_with(code::CLIENT_ID, 7, |b| {
            b[0] = HTYPE_ETHERNET;
            b[1..].copy_from_slice(&mac);
        })
        .ok()?;
    }
    if req == Request::Select {
        w.option_ip(code::REQUESTED_IP, c.offered).ok()?;
    }
    if matches!(req, Request::Select | Request::Release) {
        w.option_ip(code::SERVER_ID, c.server_id).ok()?;
    }
    if req != Request::Release {
        w.option_u16(code::MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE)
            .ok()?;
        w.option(code::PARAM_LIST, &PARAM_LIST).ok()?;
    }
    if (relayed.is_some() || id.option82)
        && matches!(req, Request::Discover | Request::Select | Request::Rebind)
    {
        // circuit id "gen-XXXXXXXX" (12 bytes), remote id the relay's MAC.
        w.option_with(code::AGENT_INFO, 2 + 12 + 2 + 6, |b| {
            b[0] = agent::CIRCUIT_ID;
            b[1] = 12;
            b[2..6].copy_from_slice(CIRCUIT_PREFIX);
            hex8(index, &mut b[6..14]);
            b[14] = agent::REMOTE_ID;
            b[15] = 6;
            b[16..22].copy_from_slice(&id.iface_mac);
        })
        .ok()?;
    }
    w.header(&header);
    let len = w.finish().ok()?;
    emit_headers(frame, &headers, len).ok()
}

fn hex8(v: u32, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, o) in out.iter_mut().enumerate().take(8) {
        *o = DIGITS[((v >> (28 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdhcp::wire::DhcpFrame;

    fn identity() -> Identity {
        Identity {
            mac_prefix: [2, 0x67, 0x65],
            iface_mac: [2, 0, 0, 0, 0, 9],
            vlans: VlanTags::NONE,
            broadcast: false,
            client_id: true,
            option82: false,
            server: Some((Ipv4Addr::new(10, 0, 0, 1), [2, 0, 0, 0, 0, 1])),
        }
    }

    fn bound() -> Client {
        Client {
            epoch: 3,
            offered: Ipv4Addr::new(10, 0, 0, 50),
            held: Ipv4Addr::new(10, 0, 0, 50),
            server_id: Ipv4Addr::new(10, 0, 0, 1),
            server_mac: [2, 0, 0, 0, 0, 1],
            ..Client::default()
        }
    }

    #[test]
    fn discover_is_broadcast_from_the_client() {
        let mut buf = [0u8; 2048];
        let n = build(
            &mut buf,
            &identity(),
            7,
            &bound(),
            Request::Discover,
            None,
            0,
        )
        .unwrap();
        let f = DhcpFrame::parse(&buf[..n]).unwrap();
        assert_eq!(f.eth.dst(), BROADCAST);
        assert_eq!(f.eth.src(), [2, 0x67, 0x65, 0, 0, 7]);
        assert_eq!(
            (f.ip.src(), f.ip.dst()),
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
        );
        assert_eq!((f.udp.src_port(), f.udp.dst_port()), (68, 67));
        assert_eq!(f.dhcp.xid(), 0x0300_0007);
        assert_eq!(f.dhcp.chaddr_mac(), [2, 0x67, 0x65, 0, 0, 7]);
        let mut j = None;
        let o = f.options(&mut j).unwrap();
        assert_eq!(o.msg_type(), Some(MessageType::Discover));
        assert_eq!(o.client_id, Some(&[1, 2, 0x67, 0x65, 0, 0, 7][..]));
        assert!(o.requests(code::LEASE_TIME));
        assert!(o.agent_info.is_none());
    }

    #[test]
    fn relayed_select_goes_to_the_server_with_option_82() {
        let mut buf = [0u8; 2048];
        let relay = Ipv4Addr::new(10, 0, 0, 2);
        let n = build(
            &mut buf,
            &identity(),
            0x1234,
            &bound(),
            Request::Select,
            Some(relay),
            1,
        )
        .unwrap();
        let f = DhcpFrame::parse(&buf[..n]).unwrap();
        assert_eq!(f.eth.dst(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(f.eth.src(), [2, 0, 0, 0, 0, 9]);
        assert_eq!(
            (f.ip.src(), f.ip.dst()),
            (relay, Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!((f.udp.src_port(), f.udp.dst_port()), (67, 67));
        assert_eq!(f.dhcp.giaddr(), relay);
        assert_eq!(f.dhcp.hops(), 1);
        let mut j = None;
        let o = f.options(&mut j).unwrap();
        assert_eq!(o.msg_type(), Some(MessageType::Request));
        assert_eq!(o.requested_ip, Some(Ipv4Addr::new(10, 0, 0, 50)));
        assert_eq!(o.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(
            o.agent_sub_option(agent::CIRCUIT_ID),
            Some(&b"gen-00001234"[..])
        );
        assert_eq!(
            o.agent_sub_option(agent::REMOTE_ID),
            Some(&[2, 0, 0, 0, 0, 9][..])
        );
    }

    #[test]
    fn renew_and_release_are_unicast_with_ciaddr() {
        let mut buf = [0u8; 2048];
        for req in [Request::Renew, Request::Release] {
            let n = build(&mut buf, &identity(), 1, &bound(), req, None, 0).unwrap();
            let f = DhcpFrame::parse(&buf[..n]).unwrap();
            assert_eq!(f.eth.dst(), [2, 0, 0, 0, 0, 1]);
            assert_eq!(f.ip.dst(), Ipv4Addr::new(10, 0, 0, 1));
            assert_eq!(f.ip.src(), Ipv4Addr::new(10, 0, 0, 50));
            assert_eq!(f.dhcp.ciaddr(), Ipv4Addr::new(10, 0, 0, 50));
            let mut j = None;
            let o = f.options(&mut j).unwrap();
            assert!(o.requested_ip.is_none());
            assert_eq!(o.server_id.is_some(), req == Request::Release);
        }
        let n = build(&mut buf, &identity(), 1, &bound(), Request::Rebind, None, 0).unwrap();
        let f = DhcpFrame::parse(&buf[..n]).unwrap();
        assert_eq!(f.ip.dst(), Ipv4Addr::BROADCAST);
        assert_eq!(f.dhcp.ciaddr(), Ipv4Addr::new(10, 0, 0, 50));
    }

    #[test]
    fn vlan_tags_are_written() {
        let mut buf = [0u8; 2048];
        let mut id = identity();
        id.vlans = VlanTags::double(100, 200);
        let n = build(&mut buf, &id, 1, &bound(), Request::Discover, None, 0).unwrap();
        let f = DhcpFrame::parse(&buf[..n]).unwrap();
        assert_eq!(f.eth.vlans(), VlanTags::double(100, 200));
    }
}
