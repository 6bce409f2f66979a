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
/// Longest option 82 the generator writes: one option, no RFC 3396 split.
pub const MAX_AGENT_INFO: usize = 255;

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
    /// REQUEST in INIT-REBOOT: broadcast, ciaddr 0, option 50 the address
    /// held (`Client::offered`), no server identifier.
    Reboot,
    Release,
    /// DECLINE of the address in `Client::offered` (options 50 and 54,
    /// ciaddr 0, broadcast as the client holds no address; relayed like a
    /// DISCOVER in relay mode).
    Decline,
}

/// What option 82 says, when the generator sends one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInfo {
    /// Per-client circuit ids are this and the client's index in hex
    /// (`gen-0000002a`); the normal fleet's is `gen-`, the attack's `atk-`.
    pub circuit_prefix: [u8; 4],
    /// One circuit id for every client instead (82.1), as from one line.
    pub circuit_id: Option<Box<[u8]>>,
    /// The remote id (82.2); default the generator's interface MAC.
    pub remote_id: Option<Box<[u8]>>,
    /// Link selection (82.5, RFC 3527): the subnet the relay asks for.
    pub link_selection: Option<Ipv4Addr>,
}

impl Default for AgentInfo {
    fn default() -> Self {
        AgentInfo {
            circuit_prefix: *b"gen-",
            circuit_id: None,
            remote_id: None,
            link_selection: None,
        }
    }
}

impl AgentInfo {
    /// The option's length for a generator whose interface MAC is the
    /// default remote id.
    pub fn wire_len(&self) -> usize {
        let circuit = self.circuit_id.as_deref().map_or(12, <[u8]>::len);
        let remote = self.remote_id.as_deref().map_or(6, <[u8]>::len);
        2 + circuit + 2 + remote + if self.link_selection.is_some() { 6 } else { 0 }
    }

    /// Whether the option fits one option 82 with sub-options of at most
    /// 255 bytes each and none empty.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("circuit id", &self.circuit_id),
            ("remote id", &self.remote_id),
        ] {
            if let Some(v) = v
                && !(1..=MAX_AGENT_INFO - 4).contains(&v.len())
            {
                return Err(format!("the {name} must be 1 to 251 bytes"));
            }
        }
        if self.wire_len() > MAX_AGENT_INFO {
            return Err(format!(
                "option 82 would be {} bytes; one option holds {MAX_AGENT_INFO}",
                self.wire_len()
            ));
        }
        Ok(())
    }

    /// Writes the sub-options into `b` (exactly `len()` bytes), circuit id
    /// first as relays do.
    fn write(&self, b: &mut [u8], index: u32, iface_mac: &[u8; 6]) {
        b[0] = agent::CIRCUIT_ID;
        let mut at = match &self.circuit_id {
            Some(id) => {
                b[1] = id.len() as u8;
                b[2..2 + id.len()].copy_from_slice(id);
                2 + id.len()
            }
            None => {
                b[1] = 12;
                b[2..6].copy_from_slice(&self.circuit_prefix);
                hex8(index, &mut b[6..14]);
                14
            }
        };
        let remote: &[u8] = self.remote_id.as_deref().unwrap_or(&iface_mac[..]);
        b[at] = agent::REMOTE_ID;
        b[at + 1] = remote.len() as u8;
        b[at + 2..at + 2 + remote.len()].copy_from_slice(remote);
        at += 2 + remote.len();
        if let Some(link) = self.link_selection {
            b[at] = agent::LINK_SELECTION;
            b[at + 1] = 4;
            b[at + 2..at + 6].copy_from_slice(&link.octets());
        }
    }
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
    /// Option 82's content.
    pub agent: AgentInfo,
    /// Ethernet source of every direct frame (one device behind many
    /// made-up chaddrs); None: each client's own MAC.
    pub src_mac: Option<[u8; 6]>,
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
    let relayed = relay.filter(|_| broadcast_kind(req));
    let ciaddr = match req {
        Request::Renew | Request::Rebind | Request::Release => c.held,
        Request::Discover | Request::Select | Request::Decline | Request::Reboot => {
            Ipv4Addr::UNSPECIFIED
        }
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
        flags: if id.broadcast && !matches!(req, Request::Release | Request::Decline) {
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

    let src_mac = if relay.is_some() {
        id.iface_mac
    } else {
        id.src_mac.unwrap_or(mac)
    };
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
        (
            Request::Discover
            | Request::Select
            | Request::Rebind
            | Request::Decline
            | Request::Reboot,
            None,
        ) => FrameHeaders {
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
        Request::Decline => MessageType::Decline,
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
    if matches!(req, Request::Select | Request::Decline | Request::Reboot) {
        w.option_ip(code::REQUESTED_IP, c.offered).ok()?;
    }
    if matches!(req, Request::Select | Request::Release | Request::Decline) {
        w.option_ip(code::SERVER_ID, c.server_id).ok()?;
    }
    if !matches!(req, Request::Release | Request::Decline) {
        w.option_u16(code::MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE)
            .ok()?;
        w.option(code::PARAM_LIST, &PARAM_LIST).ok()?;
    }
    if (relayed.is_some() || id.option82) && broadcast_kind(req) {
        // Last, as a relay agent appends it (RFC 3046 §2.1); the
        // circuit id "gen-XXXXXXXX" (12 bytes) unless one is given.
        w.option_with(code::AGENT_INFO, id.agent.wire_len(), |b| {
            id.agent.write(b, index, &id.iface_mac)
        })
        .ok()?;
    }
    w.header(&header);
    let len = w.finish().ok()?;
    emit_headers(frame, &headers, len).ok()
}

/// The messages a client broadcasts and a relay agent relays (with its
/// option 82); RENEWING and RELEASE go unicast straight to the server.
fn broadcast_kind(req: Request) -> bool {
    matches!(
        req,
        Request::Discover | Request::Select | Request::Rebind | Request::Decline | Request::Reboot
    )
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
            agent: AgentInfo::default(),
            src_mac: None,
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

    /// The option codes of a frame's DHCP options, in order (End excluded).
    fn option_codes(frame: &[u8]) -> Vec<u8> {
        let f = DhcpFrame::parse(frame).unwrap();
        xdhcp::wire::options::OptionIter::new(f.dhcp.options())
            .map(|o| o.unwrap().0)
            .collect()
    }

    fn spoofer() -> Identity {
        Identity {
            mac_prefix: [2, 0x61, 0x74],
            option82: true,
            agent: AgentInfo {
                circuit_prefix: *b"atk-",
                circuit_id: Some(Box::from(&b"olt1/1/3:100"[..])),
                remote_id: Some(Box::from(&b"cpe-42"[..])),
                link_selection: Some(Ipv4Addr::new(100, 64, 0, 0)),
            },
            src_mac: None,
            ..identity()
        }
    }

    #[test]
    fn spoofed_option_82_from_giaddr_0_as_the_server_reads_it() {
        let mut buf = [0u8; 2048];
        for req in [Request::Discover, Request::Select] {
            let n = build(&mut buf, &spoofer(), 5, &bound(), req, None, 0).unwrap();
            // The server's own gate reads it as a direct request.
            let mut j = None;
            let r = xdhcp::engine::parse(&buf[..n], &mut j).unwrap();
            assert_eq!(r.giaddr, Ipv4Addr::UNSPECIFIED);
            assert_eq!(r.src_mac, [2, 0x61, 0x74, 0, 0, 5]);
            assert_eq!(r.chaddr6, [2, 0x61, 0x74, 0, 0, 5]);
            assert_eq!(
                r.opts.agent_sub_option(agent::CIRCUIT_ID),
                Some(&b"olt1/1/3:100"[..])
            );
            assert_eq!(
                r.opts.agent_sub_option(agent::REMOTE_ID),
                Some(&b"cpe-42"[..])
            );
            assert_eq!(
                r.opts.agent_sub_option(agent::LINK_SELECTION),
                Some(&[100, 64, 0, 0][..])
            );
            assert_eq!(r.opts.agent_info.map(<[u8]>::len), Some(2 + 12 + 2 + 6 + 6));
            // Option 82 is the last option, where a relay appends it.
            assert_eq!(option_codes(&buf[..n]).last(), Some(&code::AGENT_INFO));
        }
    }

    #[test]
    fn one_circuit_id_through_a_relay_and_per_client_ones() {
        let mut buf = [0u8; 2048];
        let relay = Ipv4Addr::new(10, 0, 0, 2);
        let mut id = spoofer();
        id.agent.link_selection = None;
        id.agent.remote_id = None;
        for index in [1, 2] {
            let n = build(
                &mut buf,
                &id,
                index,
                &bound(),
                Request::Discover,
                Some(relay),
                0,
            )
            .unwrap();
            let mut j = None;
            let r = xdhcp::engine::parse(&buf[..n], &mut j).unwrap();
            assert_eq!(r.giaddr, relay);
            assert_eq!(
                r.opts.agent_sub_option(agent::CIRCUIT_ID),
                Some(&b"olt1/1/3:100"[..])
            );
            assert_eq!(
                r.opts.agent_sub_option(agent::REMOTE_ID),
                Some(&[2, 0, 0, 0, 0, 9][..])
            );
            assert_eq!(r.opts.agent_sub_option(agent::LINK_SELECTION), None);
            assert_eq!(r.chaddr6, [2, 0x61, 0x74, 0, 0, index as u8]);
        }
        // Without a chosen circuit id, each client has its own, with the
        // fleet's prefix.
        id.agent.circuit_id = None;
        let n = build(
            &mut buf,
            &id,
            0x2a,
            &bound(),
            Request::Discover,
            Some(relay),
            0,
        )
        .unwrap();
        let mut j = None;
        let r = xdhcp::engine::parse(&buf[..n], &mut j).unwrap();
        assert_eq!(
            r.opts.agent_sub_option(agent::CIRCUIT_ID),
            Some(&b"atk-0000002a"[..])
        );
    }

    #[test]
    fn decline_names_the_address_and_the_server() {
        let mut buf = [0u8; 2048];
        let mut id = identity();
        id.broadcast = true;
        id.src_mac = Some([2, 0xee, 0, 0, 0, 1]);
        let n = build(&mut buf, &id, 3, &bound(), Request::Decline, None, 0).unwrap();
        let mut j = None;
        let r = xdhcp::engine::parse(&buf[..n], &mut j).unwrap();
        assert_eq!(r.kind, MessageType::Decline);
        assert_eq!(r.ciaddr, Ipv4Addr::UNSPECIFIED, "RFC 2131 table 5");
        assert!(!r.broadcast, "no broadcast flag: no reply comes");
        assert_eq!(r.opts.requested_ip, Some(Ipv4Addr::new(10, 0, 0, 50)));
        assert_eq!(r.opts.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(r.opts.param_list.is_none() && r.opts.agent_info.is_none());
        // One device sending for many chaddrs.
        assert_eq!(r.src_mac, [2, 0xee, 0, 0, 0, 1]);
        assert_eq!(r.chaddr6, [2, 0x67, 0x65, 0, 0, 3]);
        let f = DhcpFrame::parse(&buf[..n]).unwrap();
        assert_eq!(
            (f.eth.dst(), f.ip.src(), f.ip.dst()),
            (BROADCAST, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
        );

        // Relayed, it goes to the server from the relay, with option 82 last.
        let relay = Ipv4Addr::new(10, 0, 0, 2);
        let n = build(&mut buf, &id, 3, &bound(), Request::Decline, Some(relay), 0).unwrap();
        let mut j = None;
        let r = xdhcp::engine::parse(&buf[..n], &mut j).unwrap();
        assert_eq!((r.kind, r.giaddr), (MessageType::Decline, relay));
        assert_eq!(r.src_mac, [2, 0, 0, 0, 0, 9], "the relay's MAC");
        assert_eq!(
            r.opts.agent_sub_option(agent::CIRCUIT_ID),
            Some(&b"gen-00000003"[..])
        );
        assert_eq!(option_codes(&buf[..n]).last(), Some(&code::AGENT_INFO));
    }

    #[test]
    fn init_reboot_asks_for_the_held_address_from_anyone() {
        let mut buf = [0u8; 2048];
        let n = build(&mut buf, &identity(), 4, &bound(), Request::Reboot, None, 0).unwrap();
        let mut j = None;
        let r = xdhcp::engine::parse(&buf[..n], &mut j).unwrap();
        assert_eq!(r.kind, MessageType::Request);
        // RFC 2131 4.3.2: INIT-REBOOT has option 50, no server identifier,
        // ciaddr 0; the client has no address yet, so it broadcasts.
        assert_eq!(r.ciaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(r.opts.requested_ip, Some(Ipv4Addr::new(10, 0, 0, 50)));
        assert_eq!(r.opts.server_id, None);
        let f = DhcpFrame::parse(&buf[..n]).unwrap();
        assert_eq!(
            (f.eth.dst(), f.ip.src(), f.ip.dst()),
            (BROADCAST, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
        );
        // A relay relays it, as a DISCOVER.
        let relay = Ipv4Addr::new(10, 0, 0, 2);
        let n = build(
            &mut buf,
            &identity(),
            4,
            &bound(),
            Request::Reboot,
            Some(relay),
            0,
        )
        .unwrap();
        let mut j = None;
        let r = xdhcp::engine::parse(&buf[..n], &mut j).unwrap();
        assert_eq!(r.giaddr, relay);
    }

    #[test]
    fn agent_info_longer_than_one_option_is_refused() {
        let mut a = AgentInfo {
            circuit_id: Some(vec![b'c'; 200].into()),
            remote_id: Some(vec![b'r'; 49].into()),
            ..AgentInfo::default()
        };
        assert_eq!(a.wire_len(), 253);
        assert!(a.check().is_ok());
        a.link_selection = Some(Ipv4Addr::new(10, 0, 0, 0));
        assert!(a.check().unwrap_err().contains("259 bytes"));
        a.link_selection = None;
        a.circuit_id = Some(Box::from(&b""[..]));
        assert!(a.check().is_err());
        // The longest that fits is written whole.
        let mut id = identity();
        id.option82 = true;
        id.agent = AgentInfo {
            circuit_id: Some(vec![b'c'; 200].into()),
            remote_id: Some(vec![b'r'; 51].into()),
            ..AgentInfo::default()
        };
        assert_eq!(id.agent.wire_len(), 255);
        let mut buf = [0u8; 2048];
        let n = build(&mut buf, &id, 1, &bound(), Request::Discover, None, 0).unwrap();
        let mut j = None;
        let r = xdhcp::engine::parse(&buf[..n], &mut j).unwrap();
        assert_eq!(
            r.opts.agent_sub_option(agent::REMOTE_ID).map(<[u8]>::len),
            Some(51)
        );
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
