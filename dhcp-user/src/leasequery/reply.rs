//! A leasequery and its answer on the wire: the fields of the query
//! frame the answer needs, and the answer's frame, which goes back to the
//! relay that asked (RFC 4388 §6.4: giaddr, port 67; the Ethernet
//! destination is the query's source, as every relayed reply of
//! `engine/reply.rs`).
use super::answer::Answer;
use crate::control::index::record_client_id;
use crate::lease::journal::INFINITE;
use crate::wire::DhcpFrame;
use crate::wire::dhcp::{BOOTREPLY, CHADDR_LEN, HTYPE_ETHERNET, MessageType};
use crate::wire::emit::{BootpHeader, DhcpWriter, FrameHeaders, emit_headers, headers_len};
use crate::wire::ethernet::VlanTags;
use crate::wire::options::code;
use std::net::Ipv4Addr;

const SERVER_PORT: u16 = 67;
/// IPv4 + UDP headers, against an Ethernet MTU.
const IP_UDP: usize = 28;
const MTU: usize = 1500;

/// What the answer needs of a query frame, copied out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub src_mac: [u8; 6],
    pub vlans: VlanTags,
    pub xid: u32,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub htype: u8,
    pub hlen: u8,
    pub chaddr: [u8; CHADDR_LEN],
    /// Option 61.
    pub client_id: Option<Vec<u8>>,
    /// Whether option 55 asks for option 82.
    pub wants_agent_info: bool,
}

impl Query {
    /// The query in `frame`; `None` if it is not a well-formed
    /// DHCPLEASEQUERY (the engine checked that already; the service does
    /// not trust a frame it did not parse itself).
    pub fn parse(frame: &[u8]) -> Option<Query> {
        let f = DhcpFrame::parse(frame).ok()?;
        let mut join = None;
        let opts = f.options(&mut join).ok()?;
        if opts.msg_type() != Some(MessageType::LeaseQuery) {
            return None;
        }
        let m = &f.dhcp;
        Some(Query {
            src_mac: f.eth.src(),
            vlans: f.eth.vlans(),
            xid: m.xid(),
            flags: m.flags(),
            ciaddr: m.ciaddr(),
            giaddr: m.giaddr(),
            htype: m.htype(),
            hlen: m.hlen(),
            chaddr: *m.chaddr_raw(),
            client_id: opts.client_id.map(<[u8]>::to_vec),
            wants_agent_info: opts.requests(code::AGENT_INFO),
        })
    }

    /// chaddr as long as hlen says.
    pub fn hwaddr(&self) -> &[u8] {
        &self.chaddr[..usize::from(self.hlen).min(CHADDR_LEN)]
    }
}

/// Who sends the answer.
#[derive(Debug, Clone, Copy)]
pub struct Sender {
    pub mac: [u8; 6],
    pub server_id: Ipv4Addr,
    pub dscp: u8,
}

/// Writes the answer `a` to `q` into `buf` at wall-clock `now`; returns
/// the frame's length, `None` if it does not fit.
///
/// Fields (RFC 4388 §6.4): op BOOTREPLY; xid, flags and giaddr of the
/// query; ciaddr as [`Answer::ciaddr`]; htype, hlen and chaddr the
/// lease's client (ACTIVE) or the query's. Options: 53, 54 always; with
/// ACTIVE also 51 (the lease time left), 91 (seconds since the client's
/// last transaction), 61 when the client is known by one, 92 when it
/// holds more than one address, and 82 as the lease's relay sent it (cut
/// at 64 bytes by the journal) when option 55 asks for it.
pub fn write(buf: &mut [u8], q: &Query, a: &Answer, from: &Sender, now: u64) -> Option<usize> {
    let at = headers_len(&q.vlans);
    let mut w = DhcpWriter::new(buf.get_mut(at..)?).ok()?;
    w.set_limit(MTU - IP_UDP);
    let (htype, hlen, chaddr) = match &a.lease {
        Some(l) => {
            let mut c = [0u8; CHADDR_LEN];
            c[..6].copy_from_slice(&l.hwaddr);
            (HTYPE_ETHERNET, 6, c)
        }
        None => (q.htype, q.hlen, q.chaddr),
    };
    w.header(&BootpHeader {
        op: BOOTREPLY,
        htype,
        hlen,
        hops: 0,
        xid: q.xid,
        secs: 0,
        flags: q.flags,
        ciaddr: a.ciaddr,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: q.giaddr,
        chaddr,
    });
    w.option_u8(code::MESSAGE_TYPE, a.kind.as_u8()).ok()?;
    w.option_ip(code::SERVER_ID, from.server_id).ok()?;
    if let Some(l) = &a.lease {
        let left = if l.expires_unix == INFINITE {
            u32::MAX
        } else {
            u32::try_from(l.expires_unix.saturating_sub(now)).unwrap_or(u32::MAX - 1)
        };
        w.option_u32(code::LEASE_TIME, left).ok()?;
        let since = u32::try_from(now.saturating_sub(l.cltt_unix)).unwrap_or(u32::MAX);
        w.option_u32(code::CLIENT_LAST_TRANSACTION_TIME, since)
            .ok()?;
        if let Some(id) = record_client_id(l) {
            w.option(code::CLIENT_ID, id).ok()?;
        }
        if !a.associated.is_empty() {
            // One option holds 63 addresses; a client with more is told
            // its first 63.
            let n = a.associated.len().min(255 / 4);
            w.option_ips(code::ASSOCIATED_IP, &a.associated[..n]).ok()?;
        }
        if q.wants_agent_info && !l.agent_info.is_empty() {
            w.option(code::AGENT_INFO, l.agent_info.as_slice()).ok()?;
        }
    }
    let len = w.finish().ok()?;
    emit_headers(
        buf,
        &FrameHeaders {
            src_mac: from.mac,
            dst_mac: q.src_mac,
            vlans: q.vlans,
            src_ip: from.server_id,
            dst_ip: q.giaddr,
            src_port: SERVER_PORT,
            dst_port: SERVER_PORT,
            ttl: 64,
            dscp: from.dscp,
        },
        len,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::ClientKey;
    use crate::lease::journal::{FixedBytes, LeaseRecord, RecordState};
    use crate::wire::dhcp::OPTIONS_OFFSET;
    use crate::wire::options::OptionIter;
    use crate::wire::testutil::{bootp, udp_frame};

    const RELAY: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const RELAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xee];

    /// A DHCPLEASEQUERY from the relay with ciaddr, chaddr and options.
    pub(crate) fn query(ciaddr: Ipv4Addr, chaddr: &[u8], options: &[u8]) -> Vec<u8> {
        let mut o = vec![53, 1, 10];
        o.extend_from_slice(options);
        o.push(255);
        let mut b = bootp(&o);
        b[0] = 1;
        b[1] = 1;
        b[2] = chaddr.len() as u8;
        b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        b[12..16].copy_from_slice(&ciaddr.octets());
        b[24..28].copy_from_slice(&RELAY.octets());
        b[28..28 + chaddr.len()].copy_from_slice(chaddr);
        udp_frame(
            &[],
            RELAY_MAC,
            RELAY,
            Ipv4Addr::new(192, 0, 2, 1),
            67,
            67,
            &b,
        )
    }

    fn options(frame: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let f = DhcpFrame::parse(frame).unwrap();
        let body = &f.dhcp.into_inner()[OPTIONS_OFFSET..];
        OptionIter::new(body)
            .map(|o| {
                let (c, d) = o.unwrap();
                (c, d.to_vec())
            })
            .collect()
    }

    #[test]
    fn an_active_answer_carries_every_field_of_the_lease() {
        let frame = query(
            Ipv4Addr::UNSPECIFIED,
            &[],
            &[61, 3, 1, 0xaa, 0xbb, 55, 2, 82, 51],
        );
        let q = Query::parse(&frame).unwrap();
        assert_eq!(q.client_id.as_deref(), Some(&[1, 0xaa, 0xbb][..]));
        assert!(q.wants_agent_info);
        assert_eq!(
            (q.giaddr, q.src_mac, q.xid),
            (RELAY, RELAY_MAC, 0x1234_5678)
        );
        let now = 1_800_000_000;
        let hw = [2, 0, 0, 0, 0, 7];
        let lease = LeaseRecord {
            subnet: 0,
            addr: Ipv4Addr::new(192, 0, 2, 15),
            client: ClientKey::new(0, 1, &[1, 0xaa, 0xbb]),
            hwaddr: hw,
            state: RecordState::Bound,
            expires_unix: now + 500,
            cltt_unix: now - 100,
            hostname: Default::default(),
            agent_info: FixedBytes::new(&[1, 2, b'p', b'1']).0,
            fqdn_flags: 0,
        };
        let a = Answer {
            kind: MessageType::LeaseActive,
            ciaddr: lease.addr,
            lease: Some(lease),
            associated: vec![Ipv4Addr::new(192, 0, 2, 14), lease.addr],
            subnet: Some(0),
        };
        let from = Sender {
            mac: [2, 0, 0, 0, 0, 1],
            server_id: Ipv4Addr::new(192, 0, 2, 1),
            dscp: 0,
        };
        let mut buf = [0u8; 2048];
        let len = write(&mut buf, &q, &a, &from, now).unwrap();
        let out = &buf[..len];
        let f = DhcpFrame::parse(out).unwrap();
        assert_eq!(f.eth.dst(), RELAY_MAC);
        assert_eq!(f.eth.src(), from.mac);
        assert_eq!((f.ip.src(), f.ip.dst()), (from.server_id, RELAY));
        assert_eq!((f.udp.src_port(), f.udp.dst_port()), (67, 67));
        let m = &f.dhcp;
        assert_eq!(
            (m.op(), m.xid(), m.giaddr()),
            (BOOTREPLY, 0x1234_5678, RELAY)
        );
        assert_eq!((m.ciaddr(), m.htype(), m.hlen()), (lease.addr, 1, 6));
        assert_eq!(m.chaddr_mac(), hw);
        assert_eq!(
            options(out),
            [
                (53, vec![13]),
                (54, vec![192, 0, 2, 1]),
                (51, 500u32.to_be_bytes().to_vec()),
                (91, 100u32.to_be_bytes().to_vec()),
                (61, vec![1, 0xaa, 0xbb]),
                (92, vec![192, 0, 2, 14, 192, 0, 2, 15]),
                (82, vec![1, 2, b'p', b'1']),
            ]
        );
    }

    #[test]
    fn an_unknown_answer_echoes_the_query_and_says_only_who_answers() {
        let mac = [2, 0, 0, 0, 0, 0x77];
        let frame = query(Ipv4Addr::UNSPECIFIED, &mac, &[55, 1, 82]);
        let q = Query::parse(&frame).unwrap();
        assert_eq!(q.hwaddr(), mac);
        let a = Answer {
            kind: MessageType::LeaseUnknown,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            lease: None,
            associated: Vec::new(),
            subnet: None,
        };
        let from = Sender {
            mac: [2, 0, 0, 0, 0, 1],
            server_id: Ipv4Addr::new(192, 0, 2, 1),
            dscp: 0,
        };
        let mut buf = [0u8; 2048];
        let len = write(&mut buf, &q, &a, &from, 0).unwrap();
        let f = DhcpFrame::parse(&buf[..len]).unwrap();
        assert_eq!(f.dhcp.chaddr_mac(), mac);
        assert_eq!(f.dhcp.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            options(&buf[..len]),
            [(53, vec![12]), (54, vec![192, 0, 2, 1])]
        );
        // Not a leasequery: not parsed as one.
        let other = udp_frame(
            &[],
            RELAY_MAC,
            RELAY,
            from.server_id,
            67,
            67,
            &bootp(&[53, 1, 1, 255]),
        );
        assert!(Query::parse(&other).is_none());
    }
}
