//! Writing a reply frame: where it goes (RFC 2131 §4.1), which fields it
//! carries (§4.3.1, table 3) and in which order its options stand.
use super::Request;
use super::subnet::SubnetRt;
use crate::ddns::name;
use crate::wire::dhcp::MessageType;
use crate::wire::emit::{BootpHeader, DhcpWriter, FrameHeaders, emit_headers_zeroed, headers_len};
use crate::wire::fqdn::{self, ClientFqdn};
use crate::wire::options::code;
use std::net::Ipv4Addr;

const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// RFC 2131: a client must accept 576-byte messages; without option 57
/// that is all we may assume.
const MIN_MESSAGE: usize = 576;
/// IPv4 + UDP headers, which count against option 57.
const IP_UDP: usize = 28;
const SERVER_PORT: u16 = 67;
const CLIENT_PORT: u16 = 68;

/// What the engine decided to send.
#[derive(Clone, Copy)]
pub struct Reply {
    pub kind: MessageType,
    pub yiaddr: Ipv4Addr,
    /// (lease, T1, T2) for OFFER/ACK of a lease; None for INFORM and NAK.
    pub times: Option<(u32, u32, u32)>,
    /// Option 54: ours, or the relay's under RFC 5107 server-id override.
    pub server_id: Ipv4Addr,
    /// A NAK because a line is at its lease limit (counted apart).
    pub limited: Option<super::limit::Limited>,
}

/// Fixed details of the sending side.
pub struct Local {
    pub mac: [u8; 6],
    pub dscp: u8,
    /// The worker's index: its home shard in every pool.
    pub home: usize,
}

/// Builds the whole reply frame into `tx`; None if it cannot fit.
pub fn write(
    tx: &mut [u8],
    req: &Request<'_>,
    subnet: &SubnetRt,
    reply: &Reply,
    local: &Local,
) -> Option<usize> {
    let nak = reply.kind == MessageType::Nak;
    // RFC 2131 §4.1 / §4.3.2: where the reply goes.
    let (dst_mac, dst_ip, dst_port) = if !req.giaddr.is_unspecified() {
        (req.src_mac, req.giaddr, SERVER_PORT)
    } else if nak {
        (BROADCAST_MAC, Ipv4Addr::BROADCAST, CLIENT_PORT)
    } else if !req.ciaddr.is_unspecified() {
        (req.src_mac, req.ciaddr, CLIENT_PORT)
    } else if reply.kind == MessageType::Ack && reply.yiaddr.is_unspecified() {
        // An INFORM without ciaddr (§4.3.5 wants it there; §4.1 has no
        // rule for a reply with neither ciaddr nor yiaddr): to the source
        // address when that is an address of the client's subnet, else
        // broadcast on its link — never to 0.0.0.0.
        let b = subnet.network | !subnet.mask;
        let src = u32::from(req.src_ip);
        if subnet.contains(req.src_ip) && src != subnet.network && src != b {
            (req.src_mac, req.src_ip, CLIENT_PORT)
        } else {
            (BROADCAST_MAC, Ipv4Addr::BROADCAST, CLIENT_PORT)
        }
    } else if req.broadcast {
        (BROADCAST_MAC, Ipv4Addr::BROADCAST, CLIENT_PORT)
    } else {
        (req.chaddr6, reply.yiaddr, CLIENT_PORT)
    };
    // A NAK through a relay asks it to broadcast on the client's link.
    let flags = if nak && !req.giaddr.is_unspecified() {
        req.flags | crate::wire::dhcp::FLAG_BROADCAST
    } else {
        req.flags
    };

    let off = headers_len(&req.vlans);
    let room = tx.len().min(crate::handler::TX_FRAME_CAPACITY);
    let mut w = DhcpWriter::new(tx.get_mut(off..room)?).ok()?;
    let max = match req.opts.max_message_size {
        Some(m) if usize::from(m) >= MIN_MESSAGE => usize::from(m),
        _ => MIN_MESSAGE,
    };
    // Room kept for what must come last (61) so that a long list of
    // subnet options can never push it out. Option 82 is echoed on top of
    // the client's limit: the relay agent (or snooping switch) that put it
    // there removes it before the reply reaches the client (RFC 3046
    // §2.2), and it may be longer than 255 bytes, split (RFC 3396).
    let tail = req.opts.client_id.map_or(0, |v| 2 + v.len());
    let agent = req
        .opts
        .agent_info
        .map_or(0, |v| v.len() + 2 * v.len().div_ceil(255).max(1));
    w.set_limit((max - IP_UDP).saturating_sub(tail));
    w.header(&BootpHeader {
        op: 2,
        htype: req.htype,
        hlen: req.hlen,
        hops: 0,
        xid: req.xid,
        secs: 0,
        flags,
        // Table 3: ciaddr only in an ACK, copied from the request.
        ciaddr: if reply.kind == MessageType::Ack {
            req.ciaddr
        } else {
            Ipv4Addr::UNSPECIFIED
        },
        yiaddr: reply.yiaddr,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: req.giaddr,
        chaddr: req.chaddr,
    });
    w.option_u8(code::MESSAGE_TYPE, reply.kind as u8).ok()?;
    w.option_ip(code::SERVER_ID, reply.server_id).ok()?;
    // RFC 4039 §4: an ACK to a DISCOVER is a rapid commit and says so.
    if reply.kind == MessageType::Ack && req.kind == MessageType::Discover {
        w.option(code::RAPID_COMMIT, &[]).ok()?;
    }
    if !nak {
        if let Some((lease, t1, t2)) = reply.times {
            w.option_u32(code::LEASE_TIME, lease).ok()?;
            if lease != u32::MAX {
                w.option_u32(code::RENEWAL_TIME, t1).ok()?;
                w.option_u32(code::REBINDING_TIME, t2).ok()?;
            }
        }
        write_subnet_options(&mut w, subnet, req.opts.param_list)?;
        if reply.times.is_some() {
            write_client_fqdn(&mut w, req, subnet, reply.yiaddr);
        }
    }
    w.set_limit(max - IP_UDP + agent);
    // RFC 6842: the client identifier comes back as sent.
    if let Some(id) = req.opts.client_id {
        w.option(code::CLIENT_ID, id).ok()?;
    }
    // RFC 3046: relay agent information last, unchanged.
    if let Some(ai) = req.opts.agent_info {
        w.option_long(code::AGENT_INFO, ai).ok()?;
    }
    let len = w.finish().ok()?;
    let h = FrameHeaders {
        src_mac: local.mac,
        dst_mac,
        vlans: req.vlans,
        src_ip: subnet.server_id,
        dst_ip,
        src_port: SERVER_PORT,
        dst_port,
        ttl: 64,
        dscp: local.dscp,
    };
    emit_reply_headers(tx, &h, len)
}

/// The headers of a reply of `len` payload bytes, whose sname and file
/// are zero. Out of line, so that callgrind's split (`cargo xtask bench
/// split`) can count it; the header writer is inlined into it, where the
/// checks of the constant zeroed run fold away.
#[inline(never)]
fn emit_reply_headers(tx: &mut [u8], h: &FrameHeaders, len: usize) -> Option<usize> {
    emit_headers_zeroed(tx, h, len, DhcpWriter::ZEROED).ok()
}

/// RFC 4702 §4: a client that sent option 81 learns in the OFFER and ACK
/// what the server will do with its name (the flags) and under which
/// name. Left out when DDNS is off for the subnet, or when there is no
/// name (`replace_client_name = "never"` and none usable sent), or when
/// it no longer fits.
///
/// Only the first check is inline: most replies go to a client that sent
/// no option 81, or on a subnet without DDNS, and the call to the writer
/// ([`write_client_fqdn_sent`], with its buffers on the stack) cost more
/// than the check.
#[inline]
fn write_client_fqdn(w: &mut DhcpWriter<'_>, req: &Request<'_>, s: &SubnetRt, yiaddr: Ipv4Addr) {
    if s.ddns.is_some() && req.opts.client_fqdn.is_some() {
        write_client_fqdn_sent(w, req, s, yiaddr);
    }
}

fn write_client_fqdn_sent(
    w: &mut DhcpWriter<'_>,
    req: &Request<'_>,
    s: &SubnetRt,
    yiaddr: Ipv4Addr,
) {
    let (Some(d), Some(f)) = (&s.ddns, req.opts.client_fqdn.and_then(ClientFqdn::parse)) else {
        return;
    };
    let decision = name::decide(f.flags, d.override_client_update, d.override_no_update);
    let mut label = [0u8; fqdn::MAX_LABEL];
    let n = name::choose_label(
        Some(&f),
        req.opts.hostname,
        d.replace_client_name,
        &d.generated_name,
        yiaddr,
        &req.chaddr6,
        &mut label,
    );
    if n == 0 {
        return;
    }
    let mut data = [0u8; 3 + fqdn::MAX_NAME];
    if let Some(len) = fqdn::encode_reply(
        decision.reply_flags,
        &label[..n],
        &d.forward_zone_wire,
        &mut data,
    ) {
        let _ = w.option(code::CLIENT_FQDN, &data[..len]);
    }
}

/// The subnet's options: the mask first (every client needs it), then
/// what the client asked for in its order (option 55), then the rest of
/// what is configured. An option that no longer fits is left out rather
/// than failing the reply; the ones a client needs come first.
fn write_subnet_options(w: &mut DhcpWriter<'_>, s: &SubnetRt, prl: Option<&[u8]>) -> Option<()> {
    // The usual case: the whole block for this request list, at once.
    if let Some(block) = s.options.block(prl.unwrap_or(&[]))
        && w.tlvs(block).is_ok()
    {
        return Some(());
    }
    let mut done = [0u64; 4];
    w.tlv(s.options.tlv(code::SUBNET_MASK)?).ok()?;
    done[0] = 1 << code::SUBNET_MASK;
    for &c in prl.unwrap_or(&[]).iter().chain(s.options.codes()) {
        let (word, bit) = (usize::from(c >> 6), 1u64 << (c & 63));
        if done[word] & bit != 0 {
            continue;
        }
        done[word] |= bit;
        if let Some(t) = s.options.tlv(c) {
            let _ = w.tlv(t);
        }
    }
    Some(())
}
