//! Arbitrary frames through the request parser and the whole engine, as a
//! worker would hand them over: no panic, no out-of-bounds access, every
//! frame the parser rejects counted as malformed and nothing else, every
//! reply a well-formed BOOTREPLY frame that fits its buffer.
//!
//! Input: one byte of settings (authoritative, and the trust settings:
//! `trust_agent_info` on the direct link, `untrusted_agent_info = "drop"`,
//! a `trusted_relays` list), then frames, each as a 2-byte big-endian
//! length, a clock step in seconds, a flag byte and the frame's bytes (the
//! last frame takes whatever is left). A fresh engine per input keeps a
//! crash reproducible from its input alone; several frames per input let
//! the fuzzer reach the states a sequence builds (held offers, bindings,
//! quarantine, a full pool).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use xdhcp::config::{Checked, Config};
use xdhcp::engine::{Engine, parse};
use xdhcp::handler::{FrameHandler, TX_FRAME_CAPACITY};
use xdhcp::stats::WorkerStats;
use xdhcp::wire::DhcpFrame;

/// Small pools, so that exhaustion is reachable; a relay link, a VLAN
/// link, and every kind of option the reply writer may have to fit.
const CONFIG: &str = r#"
interface = "fuzz0"
server_id = "192.0.2.1"
offer_hold = 5

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["192.0.2.10-192.0.2.13"]
routers = ["192.0.2.1"]
dns = ["192.0.2.53", "192.0.2.54"]
domain_name = "fuzz.example.net"
lease_time = 60

[[subnet]]
prefix = "198.51.100.0/24"
pools = ["198.51.100.10-198.51.100.11"]
routers = ["198.51.100.1"]
lease_time = 120
t1 = 30
t2 = 90

[[subnet]]
prefix = "203.0.113.0/24"
pools = ["203.0.113.10"]
vlan = 100
server_id = "203.0.113.1"
"#;

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
/// The largest frame a worker hands over (a jumbo frame's worth).
const MAX_FRAME: usize = 9018;
/// Flag bit: recompute the IPv4 header checksum of the frame, so the
/// fuzzer does not have to find it to get past the IP layer.
const FIX_IP_CHECKSUM: u8 = 1;

/// Settings bits of the first input byte: each combination is its own
/// engine, so the fuzzer covers every trust setting.
const AUTHORITATIVE: u8 = 1;
/// `trust_agent_info = true` on the first (direct) subnet.
const TRUST_LINK: u8 = 2;
/// `untrusted_agent_info = "drop"`.
const DROP_UNTRUSTED: u8 = 4;
/// `trusted_relays` limited to one prefix (else every relay).
const TRUSTED_RELAYS: u8 = 8;
const SETTINGS: usize = 16;

/// The configs, parsed once each: parsing per input would cost most of
/// the time of a run and fill the fuzzer's dictionary with TOML keys.
fn config(settings: u8) -> &'static Checked {
    static CONFIGS: [OnceLock<Checked>; SETTINGS] = [const { OnceLock::new() }; SETTINGS];
    let s = settings as usize % SETTINGS;
    CONFIGS[s].get_or_init(|| {
        let mut top = String::new();
        if s as u8 & AUTHORITATIVE != 0 {
            top.push_str("authoritative = true\n");
        }
        if s as u8 & DROP_UNTRUSTED != 0 {
            top.push_str("untrusted_agent_info = \"drop\"\n");
        }
        if s as u8 & TRUSTED_RELAYS != 0 {
            top.push_str("trusted_relays = [\"198.51.100.0/24\"]\n");
        }
        let mut text = format!("{top}{CONFIG}");
        if s as u8 & TRUST_LINK != 0 {
            text = text.replacen(
                "lease_time = 60",
                "lease_time = 60\ntrust_agent_info = true",
                1,
            );
        }
        Config::parse(&text).expect("the fuzz config is valid")
    })
}

/// Where the IPv4 header starts: after the Ethernet header and up to two
/// VLAN tags, as the wire parser reads them.
fn ip_offset(f: &[u8]) -> Option<usize> {
    let mut off = 12;
    for _ in 0..2 {
        let t = u16::from_be_bytes(f.get(off..off + 2)?.try_into().ok()?);
        if t != 0x8100 && t != 0x88a8 {
            break;
        }
        off += 4;
    }
    Some(off + 2)
}

fn fix_ip_checksum(f: &mut [u8]) {
    let Some(ip) = ip_offset(f) else { return };
    let Some(&ver_ihl) = f.get(ip) else { return };
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    let Some(hdr) = f.get_mut(ip..ip + ihl) else {
        return;
    };
    if ihl < 20 {
        return;
    }
    hdr[10] = 0;
    hdr[11] = 0;
    let mut sum: u32 = hdr
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let ck = !(sum as u16);
    hdr[10..12].copy_from_slice(&ck.to_be_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&settings, mut rest)) = data.split_first() else {
        return;
    };
    let engine = Arc::new(Engine::new(config(settings)));
    let stats = Arc::new(WorkerStats::default());
    let mut handler = engine.handler(MAC, stats.clone());
    let start = Instant::now();
    let mut clock = 0u64;
    let mut frame = [0u8; MAX_FRAME];
    let mut tx = [0u8; TX_FRAME_CAPACITY];

    while rest.len() >= 4 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let (step, flags) = (rest[2], rest[3]);
        rest = &rest[4..];
        let len = len.min(rest.len()).min(MAX_FRAME);
        let f = &mut frame[..len];
        f.copy_from_slice(&rest[..len]);
        rest = &rest[len..];
        if flags & FIX_IP_CHECKSUM != 0 {
            fix_ip_checksum(f);
        }
        clock += u64::from(step);
        let f = &frame[..len];

        let mut join = None;
        let parsed = parse(f, &mut join).map(|r| {
            (
                r.xid,
                r.opts.max_message_size,
                r.opts.agent_info.map_or(0, |a| a.len()),
            )
        });
        let before = stats.snapshot();
        handler.begin_batch(start + Duration::from_secs(clock));
        let reply = handler.handle(f, &mut tx);
        let after = stats.snapshot();

        let malformed = after.malformed - before.malformed;
        assert_eq!(
            malformed,
            u64::from(parsed.is_err()),
            "parse said {:?}, the handler counted {malformed} malformed",
            parsed.err()
        );
        let Some(len) = reply else { continue };
        let (xid, max_size, agent) = parsed.expect("a reply to a frame that does not parse");
        assert!(len <= TX_FRAME_CAPACITY, "reply of {len} bytes");
        let r = DhcpFrame::parse(&tx[..len]).expect("the reply frame parses");
        assert_eq!(r.dhcp.op(), 2, "a reply is a BOOTREPLY");
        assert_eq!(r.dhcp.xid(), xid, "the reply carries the request's xid");
        assert_eq!(r.udp.src_port(), 67);
        // RFC 2131 §2 / RFC 2132 §9.10: 576 bytes of IP datagram at least,
        // more only when the client says it takes more; an echoed option 82
        // (split in 255-byte instances) on top, as the relay strips it.
        let echo = if agent > 0 {
            agent + 2 * agent.div_ceil(255)
        } else {
            0
        };
        let limit = usize::from(max_size.unwrap_or(576).max(576)) + echo;
        let ip_len = r.ip.total_len();
        assert!(
            ip_len <= limit,
            "a reply of {ip_len} IP bytes to a client that takes {limit}"
        );
    }
});
