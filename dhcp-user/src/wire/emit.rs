//! Writing a reply frame into a caller's buffer (a UMEM frame).
//!
//! The engine builds the BOOTP message first, at `headers_len(&vlans)`,
//! and then `emit_headers` puts Ethernet, IPv4 and UDP in front of it:
//! the UDP checksum needs the finished payload, and the payload's length
//! is known only at the end.

use core::net::Ipv4Addr;

use super::checksum;
use super::dhcp::{BOOTP_MIN_LEN, DEFAULT_MAX_LEN, MAGIC_COOKIE, OPTIONS_OFFSET, field};
use super::ethernet::{
    self, ETHERTYPE_IPV4, HEADER_LEN as ETH_HEADER_LEN, MAX_VLANS, TAG_LEN, VlanTags,
};
use super::ipv4::{self, MIN_HEADER_LEN as IPV4_HEADER_LEN, PROTO_UDP};
use super::options::code;
use super::udp::{self, HEADER_LEN as UDP_HEADER_LEN};
use super::{Error, Result, write_u16, write_u32};

/// The fixed BOOTP fields of a reply; sname and file are written as zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootpHeader {
    pub op: u8,
    pub htype: u8,
    pub hlen: u8,
    pub hops: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
}

/// Writes a BOOTP message with DHCP options into `buf`, never past the
/// limit the client can take. One byte is always kept for End, so that
/// `finish` cannot fail for lack of room after a successful `option`.
#[derive(Debug)]
pub struct DhcpWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    limit: usize,
    has_header: bool,
}

impl<'a> DhcpWriter<'a> {
    /// `buf` must hold at least the 300-byte BOOTP minimum. The limit
    /// starts at 548 bytes (576-byte datagram), or the buffer if smaller.
    pub fn new(buf: &'a mut [u8]) -> Result<Self> {
        if buf.len() < BOOTP_MIN_LEN {
            return Err(Error::BufferTooSmall);
        }
        let limit = DEFAULT_MAX_LEN.min(buf.len());
        Ok(DhcpWriter {
            buf,
            len: OPTIONS_OFFSET,
            limit,
            has_header: false,
        })
    }

    /// What [`DhcpWriter::header`] zeroes: sname and file, offsets into the
    /// BOOTP message (for [`emit_headers_zeroed`]).
    pub const ZEROED: std::ops::Range<usize> = field::SNAME..field::COOKIE;

    /// Writes the fixed header, zeroed sname and file, and the cookie.
    /// Independent of the options: may come before or after them.
    pub fn header(&mut self, h: &BootpHeader) {
        let b = &mut self.buf[..OPTIONS_OFFSET];
        b[field::OP] = h.op;
        b[field::HTYPE] = h.htype;
        b[field::HLEN] = h.hlen;
        b[field::HOPS] = h.hops;
        write_u32(b, field::XID, h.xid);
        write_u16(b, field::SECS, h.secs);
        write_u16(b, field::FLAGS, h.flags);
        b[field::CIADDR..field::CIADDR + 4].copy_from_slice(&h.ciaddr.octets());
        b[field::YIADDR..field::YIADDR + 4].copy_from_slice(&h.yiaddr.octets());
        b[field::SIADDR..field::SIADDR + 4].copy_from_slice(&h.siaddr.octets());
        b[field::GIADDR..field::GIADDR + 4].copy_from_slice(&h.giaddr.octets());
        b[field::CHADDR..field::SNAME].copy_from_slice(&h.chaddr);
        // A fixed-size store the compiler writes inline (a `fill` of a
        // range is a call to memset).
        if let Ok(zeroed) = <&mut [u8; 192]>::try_from(&mut b[field::SNAME..field::COOKIE]) {
            *zeroed = [0; 192];
        }
        b[field::COOKIE..OPTIONS_OFFSET].copy_from_slice(&MAGIC_COOKIE);
        self.has_header = true;
    }

    /// The largest BOOTP message (without IP and UDP headers) the reply may
    /// reach. Clamped to the buffer, and never below the 300-byte BOOTP
    /// minimum that `finish` pads to.
    #[inline]
    pub fn set_limit(&mut self, max_len: usize) {
        self.limit = max_len.clamp(BOOTP_MIN_LEN, self.buf.len());
    }

    #[inline]
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes written so far, without the End option still to come.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // never empty: starts at 240
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes left for options (their code and length bytes included).
    #[inline]
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.len + 1)
    }

    /// Appends option `code` with `data` (at most 255 bytes).
    #[inline]
    pub fn option(&mut self, code: u8, data: &[u8]) -> Result<()> {
        let body = self.reserve(code, data.len())?;
        body.copy_from_slice(data);
        Ok(())
    }

    /// Appends option `code` with `len` bytes that `fill` writes in place,
    /// for values that would otherwise be assembled in a temporary.
    #[inline]
    pub fn option_with(
        &mut self,
        code: u8,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<()> {
        fill(self.reserve(code, len)?);
        Ok(())
    }

    /// Appends `data` of any length, split into 255-byte instances
    /// (RFC 3396), all or nothing: for echoing a concatenated option 82.
    pub fn option_long(&mut self, code: u8, data: &[u8]) -> Result<()> {
        if data.len() <= 255 {
            return self.option(code, data);
        }
        let instances = data.len().div_ceil(255);
        if 2 * instances + data.len() > self.remaining() {
            return Err(Error::BufferTooSmall);
        }
        for part in data.chunks(255) {
            self.option(code, part)?;
        }
        Ok(())
    }

    /// An option of a fixed size known here: written with stores of that
    /// size, not a copy of a length known only at run time (a call into
    /// `memcpy` for four bytes cost more than the rest of the option).
    #[inline(always)]
    fn option_fixed<const N: usize>(&mut self, code: u8, data: [u8; N]) -> Result<()> {
        const { assert!(N <= 255) };
        if code == code::PAD || code == code::END {
            return Err(Error::BadOption);
        }
        let start = self.len;
        let end = start + 2 + N;
        if end + 1 > self.limit {
            return Err(Error::BufferTooSmall);
        }
        let Some(dst) = self.buf.get_mut(start..end) else {
            return Err(Error::BufferTooSmall);
        };
        dst[0] = code;
        dst[1] = N as u8;
        let body: &mut [u8; N] = (&mut dst[2..]).try_into().map_err(|_| Error::BadLength)?;
        *body = data;
        self.len = end;
        Ok(())
    }

    #[inline]
    pub fn option_u8(&mut self, code: u8, value: u8) -> Result<()> {
        self.option_fixed(code, [value])
    }

    #[inline]
    pub fn option_u16(&mut self, code: u8, value: u16) -> Result<()> {
        self.option_fixed(code, value.to_be_bytes())
    }

    #[inline]
    pub fn option_u32(&mut self, code: u8, value: u32) -> Result<()> {
        self.option_fixed(code, value.to_be_bytes())
    }

    #[inline]
    pub fn option_ip(&mut self, code: u8, value: Ipv4Addr) -> Result<()> {
        self.option_fixed(code, value.octets())
    }

    /// An address list (routers, DNS servers, ...): 1 to 63 addresses.
    pub fn option_ips(&mut self, code: u8, ips: &[Ipv4Addr]) -> Result<()> {
        if ips.is_empty() {
            return Err(Error::BadLength);
        }
        let body = self.reserve(code, ips.len() * 4)?;
        for (dst, ip) in body.chunks_exact_mut(4).zip(ips) {
            dst.copy_from_slice(&ip.octets());
        }
        Ok(())
    }

    /// Appends an option already encoded (code, length, data), as the
    /// engine keeps each subnet's options: one copy, one bounds check.
    /// Like [`DhcpWriter::option`], nothing is written if it does not fit.
    #[inline]
    pub fn tlv(&mut self, tlv: &[u8]) -> Result<()> {
        debug_assert!(tlv.len() >= 2 && tlv.len() == 2 + usize::from(tlv[1]));
        debug_assert!(tlv[0] != code::PAD && tlv[0] != code::END);
        let end = self.len + tlv.len();
        if end + 1 > self.limit {
            return Err(Error::BufferTooSmall);
        }
        self.buf[self.len..end].copy_from_slice(tlv);
        self.len = end;
        Ok(())
    }

    /// Appends options already encoded one after the other, all or
    /// nothing.
    #[inline]
    pub fn tlvs(&mut self, tlvs: &[u8]) -> Result<()> {
        let end = self.len + tlvs.len();
        if end + 1 > self.limit {
            return Err(Error::BufferTooSmall);
        }
        self.buf[self.len..end].copy_from_slice(tlvs);
        self.len = end;
        Ok(())
    }

    /// Writes End, pads with zeros to 300 bytes, and returns the BOOTP
    /// message's length.
    pub fn finish(self) -> Result<usize> {
        if !self.has_header {
            return Err(Error::MissingHeader);
        }
        // Only a limit lowered after the options were written can fail here.
        if self.len + 1 > self.limit {
            return Err(Error::BufferTooSmall);
        }
        self.buf[self.len] = code::END;
        let mut len = self.len + 1;
        if len < BOOTP_MIN_LEN {
            self.buf[len..BOOTP_MIN_LEN].fill(0);
            len = BOOTP_MIN_LEN;
        }
        Ok(len)
    }

    /// Writes code and length and returns the `len` bytes of the body.
    #[inline]
    fn reserve(&mut self, code: u8, len: usize) -> Result<&mut [u8]> {
        if code == code::PAD || code == code::END {
            return Err(Error::BadOption);
        }
        let Ok(len8) = u8::try_from(len) else {
            return Err(Error::BadLength);
        };
        let start = self.len;
        let end = start + 2 + len;
        if end + 1 > self.limit {
            return Err(Error::BufferTooSmall);
        }
        self.buf[start] = code;
        self.buf[start + 1] = len8;
        self.len = end;
        Ok(&mut self.buf[start + 2..end])
    }
}

/// Addresses and ports of a reply frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeaders {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    /// Written as given, TPIDs included: the reply leaves on the request's
    /// VLANs.
    pub vlans: VlanTags,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ttl: u8,
    /// 6-bit DSCP.
    pub dscp: u8,
}

/// Where the BOOTP message starts in a frame with these VLAN tags.
#[inline]
pub fn headers_len(vlans: &VlanTags) -> usize {
    ETH_HEADER_LEN + TAG_LEN * vlans.as_slice().len() + IPV4_HEADER_LEN + UDP_HEADER_LEN
}

/// Writes Ethernet, IPv4 and UDP headers in front of the `payload_len`
/// bytes already at `headers_len(&h.vlans)` in `frame`; returns the frame's
/// total length.
pub fn emit_headers(frame: &mut [u8], h: &FrameHeaders, payload_len: usize) -> Result<usize> {
    emit_headers_zeroed(frame, h, payload_len, 0..0)
}

/// [`emit_headers`] for a payload whose bytes `zeroed` (offsets into the
/// payload, both even) are known to be zero: the UDP checksum skips them
/// (zeros add nothing to a one's-complement sum). A BOOTP reply's sname
/// and file, 192 of its 300-odd bytes, are such a run
/// ([`DhcpWriter::ZEROED`]); summing them was most of the checksum's work.
///
/// Inline, so that the checks of a constant `zeroed` (the reply path's)
/// are done by the compiler.
#[inline]
pub fn emit_headers_zeroed(
    frame: &mut [u8],
    h: &FrameHeaders,
    payload_len: usize,
    zeroed: std::ops::Range<usize>,
) -> Result<usize> {
    if usize::from(h.vlans.count) > MAX_VLANS {
        return Err(Error::TooManyVlans);
    }
    let udp_len = UDP_HEADER_LEN + payload_len;
    let ip_len = IPV4_HEADER_LEN + udp_len;
    let Ok(ip_len16) = u16::try_from(ip_len) else {
        return Err(Error::BadLength);
    };
    let ip_at = ETH_HEADER_LEN + TAG_LEN * h.vlans.as_slice().len();
    let udp_at = ip_at + IPV4_HEADER_LEN;
    let total = ip_at + ip_len;
    let Some(frame) = frame.get_mut(..total) else {
        return Err(Error::BufferTooSmall);
    };

    // Each header in a block of its own, where `field` names that
    // header's offsets (outside them it is BOOTP's).
    {
        use ethernet::field;
        frame[field::DESTINATION].copy_from_slice(&h.dst_mac);
        frame[field::SOURCE].copy_from_slice(&h.src_mac);
        let mut at = field::ETHERTYPE.start;
        for tag in h.vlans.as_slice() {
            write_u16(frame, at + field::TAG_TPID.start, tag.tpid);
            write_u16(frame, at + field::TAG_TCI.start, tag.tci);
            at += TAG_LEN;
        }
        write_u16(frame, at, ETHERTYPE_IPV4);
    }

    {
        use ipv4::field;
        let ip = &mut frame[ip_at..udp_at];
        // Version 4, IHL 5: no options.
        ip[field::VER_IHL] = 0x45;
        ip[field::DSCP_ECN] = (h.dscp & 0x3f) << 2;
        write_u16(ip, field::LENGTH.start, ip_len16);
        // Identification 0 and no DF: a datagram that is never fragmented
        // needs neither (RFC 6864); DF would only get in the way on odd paths.
        ip[field::IDENT].fill(0);
        ip[field::FLG_OFF].fill(0);
        ip[field::TTL] = h.ttl;
        ip[field::PROTOCOL] = PROTO_UDP;
        ip[field::CHECKSUM].fill(0);
        ip[field::SRC_ADDR].copy_from_slice(&h.src_ip.octets());
        ip[field::DST_ADDR].copy_from_slice(&h.dst_ip.octets());
        let ip_sum = checksum::Sum::ZERO.add_bytes(ip).checksum();
        write_u16(ip, field::CHECKSUM.start, ip_sum);
    }

    {
        use udp::field;
        let udp = &mut frame[udp_at..total];
        write_u16(udp, field::SRC_PORT.start, h.src_port);
        write_u16(udp, field::DST_PORT.start, h.dst_port);
        write_u16(udp, field::LENGTH.start, udp_len as u16);
        write_u16(udp, field::CHECKSUM.start, 0);
        // The skipped run, moved past the UDP header, and only when it
        // lies inside the payload at even offsets (else nothing skipped).
        let skip = zeroed.start + UDP_HEADER_LEN..zeroed.end + UDP_HEADER_LEN;
        let skip = if zeroed.start.is_multiple_of(2)
            && zeroed.end.is_multiple_of(2)
            && zeroed.start <= zeroed.end
            && zeroed.end <= payload_len
        {
            skip
        } else {
            0..0
        };
        debug_assert!(
            udp[skip.clone()].iter().all(|b| *b == 0),
            "zeroed run not zero"
        );
        let udp_sum = checksum::udp_checksum_parts(h.src_ip, h.dst_ip, udp, skip);
        write_u16(udp, field::CHECKSUM.start, udp_sum);
    }

    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::dhcp::{BOOTREPLY, FLAG_BROADCAST, HTYPE_ETHERNET, MessageType};
    use crate::wire::ethernet::{ETHERTYPE_QINQ, ETHERTYPE_VLAN, Frame, VlanTag};
    use crate::wire::testutil::reference_sum;
    use crate::wire::{ipv4, udp};
    use dhcproto::v4::{self, DhcpOption, OptionCode};
    use dhcproto::{Decodable, Decoder};

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);
    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x42];

    fn header() -> BootpHeader {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&MAC);
        BootpHeader {
            op: BOOTREPLY,
            htype: HTYPE_ETHERNET,
            hlen: 6,
            hops: 0,
            xid: 0x1234_5678,
            secs: 0,
            flags: FLAG_BROADCAST,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: CLIENT,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::new(10, 9, 0, 1),
            chaddr,
        }
    }

    fn frame_headers(vlans: VlanTags) -> FrameHeaders {
        FrameHeaders {
            src_mac: [0x02, 0, 0, 0, 0, 1],
            dst_mac: MAC,
            vlans,
            src_ip: SERVER,
            dst_ip: CLIENT,
            src_port: 67,
            dst_port: 68,
            ttl: 64,
            dscp: 46,
        }
    }

    /// An OFFER as the engine would build it: 53 first, 82 last.
    fn build_offer(frame: &mut [u8], vlans: VlanTags, agent: &[u8]) -> usize {
        let off = headers_len(&vlans);
        // Stale bytes of an earlier frame must not leak into the reply.
        frame.fill(0xa5);
        let mut w = DhcpWriter::new(&mut frame[off..]).unwrap();
        w.set_limit(1500 - 28);
        w.option_u8(code::MESSAGE_TYPE, MessageType::Offer.as_u8())
            .unwrap();
        w.option_ip(code::SERVER_ID, SERVER).unwrap();
        w.option_u32(code::LEASE_TIME, 7200).unwrap();
        w.option_u32(code::RENEWAL_TIME, 3600).unwrap();
        w.option_u32(code::REBINDING_TIME, 6300).unwrap();
        w.option_ip(code::SUBNET_MASK, Ipv4Addr::new(255, 255, 255, 0))
            .unwrap();
        w.option_ips(code::ROUTER, &[Ipv4Addr::new(10, 0, 0, 254)])
            .unwrap();
        w.option_ips(
            code::DOMAIN_NAME_SERVER,
            &[Ipv4Addr::new(9, 9, 9, 9), Ipv4Addr::new(1, 1, 1, 1)],
        )
        .unwrap();
        w.option_u16(code::INTERFACE_MTU, 1500).unwrap();
        w.option(code::DOMAIN_NAME, b"example.net").unwrap();
        w.option_long(code::AGENT_INFO, agent).unwrap();
        w.header(&header());
        let len = w.finish().unwrap();
        emit_headers(frame, &frame_headers(vlans), len).unwrap()
    }

    fn verify_reply(frame: &[u8], vlans: VlanTags) -> v4::Message {
        let eth = Frame::new_checked(frame).unwrap();
        assert_eq!(eth.dst(), MAC);
        assert_eq!(eth.src(), [0x02, 0, 0, 0, 0, 1]);
        assert_eq!(eth.vlans(), vlans);
        assert_eq!(eth.ethertype(), ETHERTYPE_IPV4);

        let ip_bytes = eth.payload();
        let ip = ipv4::Packet::new_checked(ip_bytes).unwrap();
        assert_eq!(ip_bytes[0], 0x45);
        assert_eq!(ip.dscp_ecn(), 46 << 2);
        assert_eq!(ip.ident(), 0);
        assert!(!ip.dont_fragment() && !ip.is_fragment());
        assert_eq!(ip.ttl(), 64);
        assert_eq!(ip.protocol(), PROTO_UDP);
        assert_eq!((ip.src(), ip.dst()), (SERVER, CLIENT));
        assert_eq!(ip.total_len(), ip_bytes.len());
        // Independent check: the 16-bit reference sum over the header.
        assert_eq!(reference_sum(&ip_bytes[..20], 0), 0xffff);

        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (67, 68));
        assert_eq!(u.len(), ip.payload().len());
        assert_ne!(u.checksum(), 0);
        let mut pseudo = [0u8; 12];
        pseudo[..4].copy_from_slice(&SERVER.octets());
        pseudo[4..8].copy_from_slice(&CLIENT.octets());
        pseudo[9] = 17;
        pseudo[10..].copy_from_slice(&(u.len() as u16).to_be_bytes());
        let sum = reference_sum(ip.payload(), u32::from(reference_sum(&pseudo, 0)));
        assert_eq!(sum, 0xffff, "UDP checksum verifies");

        let bootp = u.payload();
        assert!(bootp.len() >= BOOTP_MIN_LEN);
        v4::Message::decode(&mut Decoder::new(bootp)).unwrap()
    }

    #[test]
    fn reply_decodes_with_dhcproto() {
        for vlans in [
            VlanTags::NONE,
            VlanTags::single(100),
            VlanTags {
                count: 2,
                tags: [
                    VlanTag {
                        tpid: ETHERTYPE_QINQ,
                        tci: 0x2000 | 300,
                    },
                    VlanTag {
                        tpid: ETHERTYPE_VLAN,
                        tci: 42,
                    },
                ],
            },
        ] {
            let mut frame = [0u8; 2048];
            let agent = [1, 2, b'c', b'1', 2, 1, b'r'];
            let n = build_offer(&mut frame, vlans, &agent);
            let m = verify_reply(&frame[..n], vlans);

            let h = header();
            assert_eq!(m.opcode(), v4::Opcode::BootReply);
            assert_eq!(m.xid(), h.xid);
            assert!(m.flags().broadcast());
            assert_eq!(m.yiaddr(), CLIENT);
            assert_eq!(m.giaddr(), h.giaddr);
            assert_eq!(m.ciaddr(), Ipv4Addr::UNSPECIFIED);
            assert_eq!(m.chaddr(), &MAC);
            assert_eq!(m.sname(), None);
            assert_eq!(m.fname(), None);
            let o = m.opts();
            assert_eq!(o.msg_type(), Some(v4::MessageType::Offer));
            assert_eq!(
                o.get(OptionCode::ServerIdentifier),
                Some(&DhcpOption::ServerIdentifier(SERVER))
            );
            assert_eq!(
                o.get(OptionCode::AddressLeaseTime),
                Some(&DhcpOption::AddressLeaseTime(7200))
            );
            assert_eq!(o.get(OptionCode::Renewal), Some(&DhcpOption::Renewal(3600)));
            assert_eq!(
                o.get(OptionCode::Rebinding),
                Some(&DhcpOption::Rebinding(6300))
            );
            assert_eq!(
                o.get(OptionCode::SubnetMask),
                Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)))
            );
            assert_eq!(
                o.get(OptionCode::Router),
                Some(&DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 0, 254)]))
            );
            assert_eq!(
                o.get(OptionCode::DomainNameServer),
                Some(&DhcpOption::DomainNameServer(vec![
                    Ipv4Addr::new(9, 9, 9, 9),
                    Ipv4Addr::new(1, 1, 1, 1)
                ]))
            );
            assert_eq!(
                o.get(OptionCode::InterfaceMtu),
                Some(&DhcpOption::InterfaceMtu(1500))
            );
            assert_eq!(
                o.get(OptionCode::DomainName),
                Some(&DhcpOption::DomainName("example.net".into()))
            );
            let Some(DhcpOption::RelayAgentInformation(info)) =
                o.get(OptionCode::RelayAgentInformation)
            else {
                panic!("option 82 missing");
            };
            assert_eq!(
                info.get(v4::relay::RelayCode::AgentCircuitId),
                Some(&v4::relay::RelayInfo::AgentCircuitId(b"c1".to_vec()))
            );
        }
    }

    #[test]
    fn reply_is_parsed_by_own_views_too() {
        let mut frame = [0u8; 1024];
        let n = build_offer(&mut frame, VlanTags::single(7), &[1, 1, 9]);
        let parsed = crate::wire::DhcpFrame::parse(&frame[..n]).unwrap();
        assert!(parsed.udp.checksum_ok(parsed.ip.src(), parsed.ip.dst()));
        let mut join = None;
        let o = crate::wire::RequestOptions::parse(&parsed.dhcp, &mut join).unwrap();
        assert_eq!(o.msg_type(), Some(MessageType::Offer));
        assert_eq!(o.server_id, Some(SERVER));
        assert_eq!(o.agent_info, Some(&[1, 1, 9][..]));
    }

    #[test]
    fn finish_pads_to_bootp_minimum_and_writes_end() {
        let mut buf = [0xffu8; 600];
        let mut w = DhcpWriter::new(&mut buf).unwrap();
        w.header(&header());
        w.option_u8(code::MESSAGE_TYPE, 5).unwrap();
        assert_eq!(w.len(), 243);
        assert_eq!(w.finish().unwrap(), 300);
        assert_eq!(&buf[240..244], &[53, 1, 5, 255]);
        assert!(buf[244..300].iter().all(|&b| b == 0));
        assert_eq!(buf[300], 0xff, "nothing written past the message");
    }

    #[test]
    fn long_message_is_not_padded() {
        let mut buf = [0u8; 600];
        let mut w = DhcpWriter::new(&mut buf).unwrap();
        w.header(&header());
        w.option(code::DOMAIN_NAME, &[b'a'; 100]).unwrap();
        assert_eq!(w.finish().unwrap(), 240 + 102 + 1);
    }

    #[test]
    fn writer_limits() {
        let mut small = [0u8; 299];
        assert_eq!(
            DhcpWriter::new(&mut small).unwrap_err(),
            Error::BufferTooSmall
        );

        let mut buf = [0u8; 2000];
        let mut w = DhcpWriter::new(&mut buf).unwrap();
        assert_eq!(w.limit(), DEFAULT_MAX_LEN);
        w.set_limit(100);
        assert_eq!(w.limit(), BOOTP_MIN_LEN);
        w.set_limit(5000);
        assert_eq!(w.limit(), 2000);
        w.set_limit(DEFAULT_MAX_LEN);
        assert_eq!(w.remaining(), DEFAULT_MAX_LEN - 240 - 1);
        assert_eq!(w.option(12, &[0; 256]).unwrap_err(), Error::BadLength);
        assert_eq!(w.option(code::PAD, &[]).unwrap_err(), Error::BadOption);
        assert_eq!(w.option(code::END, &[]).unwrap_err(), Error::BadOption);
        assert_eq!(w.option_ips(3, &[]).unwrap_err(), Error::BadLength);
        assert_eq!(
            w.option_ips(3, &[SERVER; 64]).unwrap_err(),
            Error::BadLength
        );
        // Fill to exactly the limit: 240 + 255+2 = 497, then 548-497-1 = 50 left.
        w.option(43, &[1; 255]).unwrap();
        assert_eq!(w.remaining(), 50);
        assert_eq!(w.option(43, &[1; 49]).unwrap_err(), Error::BufferTooSmall);
        assert_eq!(w.remaining(), 50, "a failed option writes nothing");
        w.option(43, &[1; 48]).unwrap();
        assert_eq!(w.remaining(), 0);
        assert_eq!(w.option(80, &[]).unwrap_err(), Error::BufferTooSmall);
        w.header(&header());
        assert_eq!(w.finish().unwrap(), DEFAULT_MAX_LEN);
    }

    #[test]
    fn limit_lowered_after_writing_fails_finish() {
        let mut buf = [0u8; 1000];
        let mut w = DhcpWriter::new(&mut buf).unwrap();
        w.header(&header());
        w.set_limit(900);
        w.option(43, &[0; 255]).unwrap();
        w.option(43, &[0; 255]).unwrap();
        w.set_limit(548);
        assert_eq!(w.finish().unwrap_err(), Error::BufferTooSmall);
    }

    #[test]
    fn finish_without_header() {
        let mut buf = [0u8; 400];
        let w = DhcpWriter::new(&mut buf).unwrap();
        assert_eq!(w.finish().unwrap_err(), Error::MissingHeader);
    }

    #[test]
    fn option_long_splits_and_is_all_or_nothing() {
        let mut buf = [0u8; 1500];
        let mut w = DhcpWriter::new(&mut buf).unwrap();
        w.set_limit(1472);
        let data: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        w.option_long(82, &data).unwrap();
        assert_eq!(w.len(), 240 + 2 + 255 + 2 + 45);
        w.set_limit(BOOTP_MIN_LEN);
        assert_eq!(w.option_long(82, &data).unwrap_err(), Error::BufferTooSmall);
        w.header(&header());
        // The limit is now below what was written already.
        assert_eq!(w.finish().unwrap_err(), Error::BufferTooSmall);
        assert_eq!(&buf[240..242], &[82, 255]);
        assert_eq!(&buf[497..499], &[82, 45]);
        assert_eq!(&buf[242..497], &data[..255]);
        assert_eq!(&buf[499..544], &data[255..]);
    }

    #[test]
    fn option_with_writes_in_place() {
        let mut buf = [0u8; 400];
        let mut w = DhcpWriter::new(&mut buf).unwrap();
        w.option_with(121, 5, |b| b.copy_from_slice(&[8, 10, 10, 0, 1]))
            .unwrap();
        assert_eq!(w.len(), 247);
        assert_eq!(&buf[240..247], &[121, 5, 8, 10, 10, 0, 1]);
    }

    #[test]
    fn emit_headers_errors() {
        let mut frame = [0u8; 400];
        let h = frame_headers(VlanTags::NONE);
        assert_eq!(headers_len(&VlanTags::NONE), 42);
        assert_eq!(headers_len(&VlanTags::single(1)), 46);
        assert_eq!(headers_len(&VlanTags::double(1, 2)), 50);
        assert_eq!(emit_headers(&mut frame, &h, 358).unwrap(), 400);
        assert_eq!(
            emit_headers(&mut frame, &h, 359).unwrap_err(),
            Error::BufferTooSmall
        );
        assert_eq!(
            emit_headers(&mut frame, &h, 70000).unwrap_err(),
            Error::BadLength
        );
        let three = FrameHeaders {
            vlans: VlanTags {
                count: 3,
                ..VlanTags::double(1, 2)
            },
            ..h
        };
        assert_eq!(
            emit_headers(&mut frame, &three, 300).unwrap_err(),
            Error::TooManyVlans
        );
    }

    #[test]
    fn skipping_the_zeroed_run_gives_the_same_checksum() {
        for vlans in [VlanTags::NONE, VlanTags::single(7)] {
            let mut whole = [0u8; 1600];
            let len = build_offer(&mut whole, vlans, &[1, 4, b'p', b'o', b'r', b't']);
            let mut skipped = whole;
            let off = headers_len(&vlans);
            let payload = len - off;
            emit_headers_zeroed(
                &mut skipped,
                &frame_headers(vlans),
                payload,
                DhcpWriter::ZEROED,
            )
            .unwrap();
            assert_eq!(whole[..len], skipped[..len]);
            // A run that is not at even offsets, or past the payload, is
            // not skipped (and still gives the right sum).
            for bad in [45..236, 44..235, 0..payload + 2] {
                let mut again = whole;
                emit_headers_zeroed(&mut again, &frame_headers(vlans), payload, bad).unwrap();
                assert_eq!(whole[..len], again[..len]);
            }
        }
    }

    #[test]
    fn computed_zero_udp_checksum_is_sent_as_ffff() {
        // Two bytes of payload reach every sum, so one of them makes the
        // computed checksum 0, which must go out as 0xffff (RFC 768).
        let h = frame_headers(VlanTags::NONE);
        let mut pseudo = [0u8; 12];
        pseudo[..4].copy_from_slice(&SERVER.octets());
        pseudo[4..8].copy_from_slice(&CLIENT.octets());
        pseudo[9] = 17;
        pseudo[10..].copy_from_slice(&10u16.to_be_bytes());
        let pseudo_sum = u32::from(reference_sum(&pseudo, 0));
        let mut frame = [0u8; 44];
        let mut saw_zero = false;
        for v in 0..=u16::MAX {
            frame[42..44].copy_from_slice(&v.to_be_bytes());
            emit_headers(&mut frame, &h, 2).unwrap();
            let sent = u16::from_be_bytes([frame[40], frame[41]]);
            let mut seg = [0u8; 10];
            seg.copy_from_slice(&frame[34..44]);
            seg[6..8].fill(0);
            let computed = !reference_sum(&seg, pseudo_sum);
            if computed == 0 {
                saw_zero = true;
                assert_eq!(sent, 0xffff);
            } else {
                assert_eq!(sent, computed);
            }
        }
        assert!(saw_zero);
    }
}
