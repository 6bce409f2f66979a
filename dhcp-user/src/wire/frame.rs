//! A whole DHCP frame, Ethernet to BOOTP, checked layer by layer.
//!
//! The server parses requests with it and the generator parses replies;
//! which ports and message types are acceptable is theirs to decide.

use super::dhcp::Message;
use super::ethernet::{ETHERTYPE_IPV4, Frame};
use super::ipv4::{self, PROTO_UDP};
use super::options::{JoinBuffer, RequestOptions, code};
use super::udp;
use super::{Error, Result};

/// The four views of one frame, all borrowing the frame's bytes.
#[derive(Debug, Clone, Copy)]
pub struct DhcpFrame<'a> {
    pub eth: Frame<&'a [u8]>,
    pub ip: ipv4::Packet<&'a [u8]>,
    pub udp: udp::Packet<&'a [u8]>,
    pub dhcp: Message<&'a [u8]>,
}

impl<'a> DhcpFrame<'a> {
    /// Checks every layer. The IPv4 header checksum is verified (20 bytes,
    /// and every sender computes it in software); the UDP checksum is not
    /// (see `udp`). Fragments are refused: reassembly would need state.
    ///
    /// Inline: out of line, the four views were returned through a
    /// `Result` and copied, which cost the server 50 to 80 instructions a
    /// request (callgrind).
    #[inline]
    pub fn parse(frame: &'a [u8]) -> Result<Self> {
        let eth = Frame::new_checked(frame)?;
        if eth.ethertype() != ETHERTYPE_IPV4 {
            return Err(Error::NotIpv4);
        }
        let ip = ipv4::Packet::new_checked(eth.payload())?;
        if !ip.checksum_ok() {
            return Err(Error::BadChecksum);
        }
        if ip.is_fragment() {
            return Err(Error::Fragmented);
        }
        if ip.protocol() != PROTO_UDP {
            return Err(Error::NotUdp);
        }
        let udp = udp::Packet::new_checked(ip.payload())?;
        let dhcp = Message::new_checked(udp.payload())?;
        Ok(DhcpFrame { eth, ip, udp, dhcp })
    }

    /// The options the engine decides on (see `RequestOptions::parse`).
    #[inline]
    pub fn options<'j>(&self, join: &'j mut Option<JoinBuffer>) -> Result<RequestOptions<'j>>
    where
        'a: 'j,
    {
        RequestOptions::parse(&self.dhcp, join)
    }
}

/// Who a request says it is, read from a raw frame without the checks
/// of [`DhcpFrame::parse`]: for a hint only (the lease table's prefetch),
/// never for a decision. None when the layers are not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHint<'a> {
    /// Option 61's data when the options field holds one.
    pub client_id: Option<&'a [u8]>,
    pub chaddr: &'a [u8; super::dhcp::CHADDR_LEN],
    pub hlen: u8,
}

impl<'a> ClientHint<'a> {
    /// By fixed offsets: the Ethernet header and up to two VLAN tags, the
    /// IPv4 header by its IHL, UDP, BOOTP, then the options field scanned
    /// for option 61 alone. Every read is bounds-checked (the frame is
    /// the subscriber's) and nothing is verified that does not bound a
    /// read: a hint costs a tenth of a parse.
    #[inline]
    pub fn peek(frame: &'a [u8]) -> Option<ClientHint<'a>> {
        use super::dhcp::{CHADDR_LEN, OPTIONS_OFFSET};
        use super::ethernet::is_vlan_tpid;
        let be16 = |at: usize| -> Option<u16> {
            Some(u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?))
        };
        let mut at = 12;
        for _ in 0..2 {
            if !is_vlan_tpid(be16(at)?) {
                break;
            }
            at += 4;
        }
        if be16(at)? != ETHERTYPE_IPV4 {
            return None;
        }
        let ip = at + 2;
        let bootp = ip + usize::from(*frame.get(ip)? & 0x0f) * 4 + udp::HEADER_LEN;
        let hlen = *frame.get(bootp + 2)?;
        let chaddr: &[u8; CHADDR_LEN] = frame
            .get(bootp + 28..bootp + 28 + CHADDR_LEN)?
            .try_into()
            .ok()?;
        // The options field only (not sname or file under option 52),
        // and only up to the first malformed option. Walked by hand, not
        // with `OptionIter`: its `Result` items cost the hint 50 (OFFER)
        // to 75 (ACK) instructions a packet more (callgrind).
        let opts = frame.get(bootp + OPTIONS_OFFSET..)?;
        let mut i = 0;
        let mut client_id = None;
        while let Some(&c) = opts.get(i) {
            match c {
                code::PAD => i += 1,
                code::END => break,
                _ => {
                    let len = usize::from(*opts.get(i + 1)?);
                    if c == code::CLIENT_ID {
                        client_id = opts.get(i + 2..i + 2 + len);
                        break;
                    }
                    i += 2 + len;
                }
            }
        }
        Some(ClientHint {
            client_id,
            chaddr,
            hlen,
        })
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use super::*;
    use crate::wire::dhcp::{BOOTREQUEST, OPTIONS_OFFSET};
    use crate::wire::ethernet::{ETHERTYPE_ARP, ETHERTYPE_QINQ, ETHERTYPE_VLAN, VlanTags};
    use crate::wire::options::{OptionIter, agent};
    use crate::wire::testutil::{XorShift, encode, udp_frame};
    use crate::wire::{MessageType, agent_sub_option, checksum, dhcp};
    use dhcproto::v4::{self, DhcpOption, OptionCode, relay};

    const CLIENT_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    fn discover() -> v4::Message {
        let mut m = v4::Message::new_with_id(
            0xcafe_f00d,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &CLIENT_MAC,
        );
        m.set_flags(v4::Flags::default().set_broadcast());
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(v4::MessageType::Discover));
        o.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::DomainName,
        ]));
        o.insert(DhcpOption::ClientIdentifier(vec![
            1, 2, 0x11, 0x22, 0x33, 0x44, 0x55,
        ]));
        m
    }

    fn discover_frame() -> Vec<u8> {
        udp_frame(
            &[],
            CLIENT_MAC,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            68,
            67,
            &encode(&discover()),
        )
    }

    /// A relayed RENEW-like REQUEST with every option the engine reads.
    fn relayed_request() -> v4::Message {
        let mut m = v4::Message::new_with_id(
            0x0102_0304,
            Ipv4Addr::new(10, 20, 0, 7),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(10, 20, 0, 1),
            &CLIENT_MAC,
        );
        m.set_hops(1).set_secs(3);
        let mut info = relay::RelayAgentInformation::default();
        info.insert(relay::RelayInfo::AgentCircuitId(b"eth0/1/7:100".to_vec()));
        info.insert(relay::RelayInfo::AgentRemoteId(b"olt-3".to_vec()));
        info.insert(relay::RelayInfo::LinkSelection(Ipv4Addr::new(10, 30, 0, 0)));
        info.insert(relay::RelayInfo::ServerIdentifierOverride(Ipv4Addr::new(
            10, 20, 0, 1,
        )));
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(v4::MessageType::Request));
        o.insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 20, 0, 7)));
        o.insert(DhcpOption::AddressLeaseTime(10_800));
        o.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 0, 1)));
        o.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
        ]));
        o.insert(DhcpOption::MaxMessageSize(1400));
        o.insert(DhcpOption::ClientIdentifier(vec![0xff, 0, 0, 0, 1, 0, 1]));
        o.insert(DhcpOption::Hostname("cpe-7".into()));
        o.insert(DhcpOption::ClassIdentifier(b"MSFT 5.0".to_vec()));
        o.insert(DhcpOption::SubnetSelection(Ipv4Addr::new(10, 40, 0, 0)));
        o.insert(DhcpOption::RelayAgentInformation(info));
        m
    }

    /// Untagged, one VLAN tag, QinQ.
    const TAGGINGS: [&[(u16, u16)]; 3] = [
        &[],
        &[(ETHERTYPE_VLAN, 10)],
        &[(ETHERTYPE_QINQ, 20), (ETHERTYPE_VLAN, 30)],
    ];

    /// `bootp` as the relay 10.20.0.1 sends it to the server 10.0.0.1.
    fn relayed_frame(vlans: &[(u16, u16)], bootp: &[u8]) -> Vec<u8> {
        udp_frame(
            vlans,
            [0x02, 0, 0, 0, 0, 0x99],
            Ipv4Addr::new(10, 20, 0, 1),
            Ipv4Addr::new(10, 0, 0, 1),
            67,
            67,
            bootp,
        )
    }

    #[test]
    fn request_encoded_by_dhcproto_matches_field_by_field() {
        let m = relayed_request();
        let bootp = encode(&m);
        for vlans in TAGGINGS {
            let frame = relayed_frame(vlans, &bootp);
            let f = DhcpFrame::parse(&frame).unwrap();
            assert_eq!(f.eth.vlans().as_slice().len(), vlans.len());
            assert_eq!(f.eth.vlans().inner_vid(), vlans.get(1).map(|v| v.1));
            assert_eq!(f.eth.src(), [0x02, 0, 0, 0, 0, 0x99]);
            assert_eq!(f.ip.src(), Ipv4Addr::new(10, 20, 0, 1));
            assert_eq!((f.udp.src_port(), f.udp.dst_port()), (67, 67));

            let d = &f.dhcp;
            assert_eq!(d.op(), BOOTREQUEST);
            assert_eq!(d.htype(), u8::from(m.htype()));
            assert_eq!(d.hlen(), m.hlen());
            assert_eq!(d.hops(), m.hops());
            assert_eq!(d.xid(), m.xid());
            assert_eq!(d.secs(), m.secs());
            assert_eq!(d.flags(), u16::from(m.flags()));
            assert!(!d.broadcast());
            assert_eq!(d.ciaddr(), m.ciaddr());
            assert_eq!(d.yiaddr(), m.yiaddr());
            assert_eq!(d.siaddr(), m.siaddr());
            assert_eq!(d.giaddr(), m.giaddr());
            assert_eq!(d.chaddr(), m.chaddr());
            assert!(d.sname().iter().all(|&b| b == 0));
            assert!(d.file().iter().all(|&b| b == 0));

            let mut join = None;

            let o = f.options(&mut join).unwrap();
            assert_eq!(o.msg_type(), Some(MessageType::Request));
            assert_eq!(o.requested_ip, Some(Ipv4Addr::new(10, 20, 0, 7)));
            assert_eq!(o.lease_time, Some(10_800));
            assert_eq!(o.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
            assert_eq!(o.param_list, Some(&[1, 3, 6][..]));
            assert_eq!(o.max_message_size, Some(1400));
            assert_eq!(o.client_id, Some(&[0xff, 0, 0, 0, 1, 0, 1][..]));
            assert_eq!(o.hostname, Some(&b"cpe-7"[..]));
            assert_eq!(o.vendor_class, Some(&b"MSFT 5.0"[..]));
            assert_eq!(o.subnet_selection, Some(Ipv4Addr::new(10, 40, 0, 0)));
            assert_eq!(o.overload, 0);
            let info = o.agent_info.unwrap();
            assert_eq!(
                agent_sub_option(info, agent::CIRCUIT_ID),
                Some(&b"eth0/1/7:100"[..])
            );
            assert_eq!(
                agent_sub_option(info, agent::REMOTE_ID),
                Some(&b"olt-3"[..])
            );
            assert_eq!(
                agent_sub_option(info, agent::LINK_SELECTION),
                Some(&[10, 30, 0, 0][..])
            );
            assert_eq!(
                agent_sub_option(info, agent::SERVER_ID_OVERRIDE),
                Some(&[10, 20, 0, 1][..])
            );

            // Every option dhcproto wrote is seen by the iterator, in order,
            // with 82 last as dhcproto puts it.
            let codes: Vec<u8> = OptionIter::new(d.options()).map(|r| r.unwrap().0).collect();
            assert_eq!(codes.len(), m.opts().iter().count());
            assert_eq!(codes.last(), Some(&82));
        }
    }

    #[test]
    fn discover_frame_parses() {
        let frame = discover_frame();
        let f = DhcpFrame::parse(&frame).unwrap();
        assert_eq!(f.eth.dst(), [0xff; 6]);
        assert_eq!(f.eth.vlans(), VlanTags::NONE);
        assert_eq!(f.ip.dst(), Ipv4Addr::BROADCAST);
        assert!(f.dhcp.broadcast());
        assert_eq!(f.dhcp.chaddr(), &CLIENT_MAC);
        assert_eq!(f.dhcp.xid(), 0xcafe_f00d);
        let mut join = None;
        let o = f.options(&mut join).unwrap();
        assert_eq!(o.msg_type(), Some(MessageType::Discover));
        assert_eq!(o.param_list, Some(&[1, 3, 6, 15][..]));
        assert_eq!(o.agent_info, None);
    }

    #[test]
    fn every_truncation_of_a_discover_is_an_error() {
        let frame = discover_frame();
        for len in 0..frame.len() {
            assert!(DhcpFrame::parse(&frame[..len]).is_err(), "prefix {len}");
        }
    }

    #[test]
    fn ethernet_padding_after_the_datagram_is_ignored() {
        let mut frame = discover_frame();
        let len = frame.len();
        frame.extend_from_slice(&[0; 60]);
        let f = DhcpFrame::parse(&frame).unwrap();
        assert_eq!(f.dhcp.len() + 14 + 28, len);
    }

    #[test]
    fn layer_errors() {
        let good = discover_frame();

        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        assert_eq!(DhcpFrame::parse(&arp).unwrap_err(), Error::NotIpv4);

        let mut bad_sum = good.clone();
        bad_sum[14 + 8] -= 1; // TTL
        assert_eq!(DhcpFrame::parse(&bad_sum).unwrap_err(), Error::BadChecksum);

        let with_ip_field = |at: usize, bytes: &[u8]| {
            let mut f = good.clone();
            f[14 + at..14 + at + bytes.len()].copy_from_slice(bytes);
            f[24..26].fill(0);
            let sum = checksum::Sum::ZERO.add_bytes(&f[14..34]).checksum();
            f[24..26].copy_from_slice(&sum.to_be_bytes());
            f
        };
        assert_eq!(
            DhcpFrame::parse(&with_ip_field(9, &[6])).unwrap_err(),
            Error::NotUdp
        );
        assert_eq!(
            DhcpFrame::parse(&with_ip_field(6, &[0x20, 0])).unwrap_err(),
            Error::Fragmented
        );
        assert_eq!(
            DhcpFrame::parse(&with_ip_field(6, &[0, 0x10])).unwrap_err(),
            Error::Fragmented
        );

        let mut magic = good.clone();
        magic[14 + 28 + dhcp::field::COOKIE] = 0;
        assert_eq!(DhcpFrame::parse(&magic).unwrap_err(), Error::BadMagic);

        // A UDP length that leaves too little for BOOTP.
        let mut short_udp = good.clone();
        short_udp[38..40].copy_from_slice(&(8u16 + OPTIONS_OFFSET as u16 - 1).to_be_bytes());
        assert_eq!(DhcpFrame::parse(&short_udp).unwrap_err(), Error::Truncated);
    }

    /// Options 55 and 82 split across the option area, file and sname, so
    /// that the mutations reach the joining code too.
    fn split_and_overloaded() -> Vec<u8> {
        let mut b = encode(&discover());
        b.truncate(OPTIONS_OFFSET);
        b.extend_from_slice(&[53, 1, 3, 52, 1, 3, 55, 2, 1, 3, 82, 3, 1, 4, b'a', 255]);
        b[dhcp::field::FILE..dhcp::field::FILE + 9]
            .copy_from_slice(&[55, 1, 6, 82, 3, b'b', b'c', b'd', 255]);
        b[dhcp::field::SNAME..dhcp::field::SNAME + 5].copy_from_slice(&[55, 2, 15, 42, 255]);
        b
    }

    #[test]
    fn split_and_overloaded_frame_parses() {
        let frame = udp_frame(
            &[],
            CLIENT_MAC,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            68,
            67,
            &split_and_overloaded(),
        );
        let f = DhcpFrame::parse(&frame).unwrap();
        let mut join = None;
        let o = f.options(&mut join).unwrap();
        assert_eq!(o.param_list, Some(&[1, 3, 6, 15, 42][..]));
        assert_eq!(o.agent_sub_option(agent::CIRCUIT_ID), Some(&b"abcd"[..]));
    }

    /// Runs every entry point over `buf`; returns whether the whole chain
    /// including the option gathering accepted it.
    fn exercise(buf: &[u8]) -> bool {
        let _ =
            crate::wire::ethernet::Frame::new_checked(buf).map(|f| (f.payload(), f.ethertype()));
        let _ = ipv4::Packet::new_checked(buf).map(|p| (p.payload(), p.options(), p.checksum_ok()));
        let _ = udp::Packet::new_checked(buf).map(|p| p.payload());
        if let Ok(m) = Message::new_checked(buf) {
            let _ = (
                m.chaddr(),
                m.sname(),
                m.file(),
                RequestOptions::parse(&m, &mut None),
            );
        }
        for item in OptionIter::new(buf) {
            if item.is_err() {
                break;
            }
        }
        let _ = agent_sub_option(buf, agent::CIRCUIT_ID);
        let _ = ClientHint::peek(buf);
        match DhcpFrame::parse(buf) {
            Ok(f) => f.options(&mut None).is_ok(),
            Err(_) => false,
        }
    }

    /// The hint names the client the parse does, behind any VLAN tags,
    /// and without option 61 falls back to chaddr; cut short anywhere it
    /// gives up or reads only what is there.
    #[test]
    fn client_hint_matches_the_parse() {
        let bootp = encode(&relayed_request());
        for vlans in TAGGINGS {
            let frame = relayed_frame(vlans, &bootp);
            let f = DhcpFrame::parse(&frame).unwrap();
            let mut join = None;
            let opts = f.options(&mut join).unwrap();
            let h = ClientHint::peek(&frame).unwrap();
            assert_eq!(h.client_id, opts.client_id);
            assert_eq!(h.client_id, Some(&[0xff, 0, 0, 0, 1, 0, 1][..]));
            assert_eq!(h.chaddr, f.dhcp.chaddr_raw());
            assert_eq!(h.hlen, f.dhcp.hlen());
            for cut in 0..frame.len() {
                if let Some(h) = ClientHint::peek(&frame[..cut]) {
                    assert!(h.client_id.is_none_or(|id| id == opts.client_id.unwrap()));
                }
            }
        }
        let mut m = relayed_request();
        m.opts_mut().remove(v4::OptionCode::ClientIdentifier);
        let frame = relayed_frame(&[], &encode(&m));
        let h = ClientHint::peek(&frame).unwrap();
        assert_eq!(h.client_id, None);
        assert_eq!(&h.chaddr[..6], &m.chaddr()[..6]);
        // Not IPv4 behind its tags: no hint.
        let mut arp = frame.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(ClientHint::peek(&arp), None);
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = XorShift::new(0x5eed);
        let mut buf = [0u8; 700];
        for _ in 0..5000 {
            let len = rng.below(buf.len() + 1);
            rng.fill(&mut buf[..len]);
            exercise(&buf[..len]);
        }
    }

    #[test]
    fn mutated_frames_never_panic() {
        let mut rng = XorShift::new(42);
        let bases = [
            discover_frame(),
            udp_frame(
                &[(ETHERTYPE_QINQ, 5), (ETHERTYPE_VLAN, 6)],
                CLIENT_MAC,
                Ipv4Addr::new(10, 20, 0, 1),
                Ipv4Addr::new(10, 0, 0, 1),
                67,
                67,
                &encode(&relayed_request()),
            ),
            udp_frame(
                &[(ETHERTYPE_VLAN, 9)],
                CLIENT_MAC,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::BROADCAST,
                68,
                67,
                &split_and_overloaded(),
            ),
        ];
        let mut accepted = 0;
        let mut rejected = 0;
        for round in 0..20_000 {
            let mut f = bases[round % bases.len()].clone();
            // Mutations in the option area mostly keep the frame valid up to
            // the options; the headers are hit too but less often.
            for _ in 0..1 + rng.below(4) {
                let at = if rng.below(4) == 0 {
                    rng.below(f.len())
                } else {
                    42 + 240 + rng.below(f.len() - 282)
                };
                f[at] = match rng.below(3) {
                    0 => rng.next_u32() as u8,
                    1 => 0xff,
                    _ => f[at].wrapping_add(1),
                };
            }
            let keep = if rng.below(8) == 0 {
                rng.below(f.len() + 1)
            } else {
                f.len()
            };
            if exercise(&f[..keep]) {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
        // Both outcomes must be common, or the mutations test nothing.
        assert!(accepted > 1000, "accepted {accepted}");
        assert!(rejected > 1000, "rejected {rejected}");
    }
}
