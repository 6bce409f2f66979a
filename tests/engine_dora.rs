//! The engine's answers to DORA, checked by decoding them with dhcproto:
//! RFC 2131 §4.1 destinations, §4.3.1 fields, option order and timers.
mod frames;

use dhcproto::v4::{DhcpOption, Flags, MessageType, OptionCode};
use frames::{decode_reply, frame, mac, msg_type, request};
use std::net::Ipv4Addr;
use xdhcp::handler::FrameHandler;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CONFIG: &str = r#"
interface = "lab0"
server_id = "198.18.0.1"

[[subnet]]
prefix = "198.18.0.0/15"
pools = ["198.18.0.10-198.18.0.20"]
routers = ["198.18.0.1"]
dns = ["198.18.0.1", "198.18.0.2"]
lease_time = 7200

[[subnet]]
prefix = "198.51.100.0/24"
pools = ["198.51.100.10-198.51.100.200"]
routers = ["198.51.100.1"]
vlan = 100

[[subnet]]
prefix = "203.0.113.0/24"
pools = ["203.0.113.50-203.0.113.60"]
routers = ["203.0.113.1"]
"#;

fn lab() -> frames::Harness {
    frames::Harness::new(CONFIG)
}

fn discover(i: u32, opts: Vec<DhcpOption>) -> dhcproto::v4::Message {
    request(mac(i), MessageType::Discover, 0x1000 + i, opts)
}

fn bcast(m: &dhcproto::v4::Message, i: u32) -> Vec<u8> {
    frame(m, mac(i), Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, None)
}

#[test]
fn offer_goes_to_yiaddr_at_chaddr_with_lowest_address_and_ordered_options() {
    let mut lab = lab();
    let r = lab.send(&bcast(&discover(1, vec![]), 1)).expect("OFFER");
    assert_eq!(msg_type(&r.msg), Some(MessageType::Offer));
    assert_eq!(
        r.msg.yiaddr(),
        Ipv4Addr::new(198, 18, 0, 10),
        "lowest free address first"
    );
    assert_eq!(r.dst_mac, mac(1), "unicast to chaddr");
    assert_eq!(r.dst_ip, r.msg.yiaddr());
    assert_eq!((r.src_ip, r.dst_port, r.ttl), (SERVER, 68, 64));
    assert_eq!(r.msg.xid(), 0x1001);
    assert_eq!(r.msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
    let o = r.msg.opts();
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
        Some(&DhcpOption::SubnetMask(Ipv4Addr::new(255, 254, 0, 0)))
    );
    assert_eq!(
        o.get(OptionCode::DomainNameServer),
        Some(&DhcpOption::DomainNameServer(vec![
            SERVER,
            Ipv4Addr::new(198, 18, 0, 2)
        ]))
    );
    for absent in [
        OptionCode::RequestedIpAddress,
        OptionCode::ParameterRequestList,
        OptionCode::MaxMessageSize,
    ] {
        assert!(o.get(absent).is_none(), "{absent:?} must not be in a reply");
    }
    // Option 53 comes first on the wire.
    let n = lab
        .h
        .handle(&bcast(&discover(1, vec![]), 1), &mut lab.tx)
        .unwrap();
    assert_eq!(&lab.tx[14 + 28 + 240..14 + 28 + 243], &[53, 1, 2]);
    assert!(n - 42 >= 300, "BOOTP replies are at least 300 bytes");
}

#[test]
fn broadcast_flag_and_relay_pick_the_destination() {
    let mut lab = lab();
    let mut d = discover(2, vec![]);
    d.set_flags(Flags::default().set_broadcast());
    let r = lab.send(&bcast(&d, 2)).unwrap();
    assert_eq!((r.dst_mac, r.dst_ip), ([0xff; 6], Ipv4Addr::BROADCAST));

    // Through a relay: subnet by giaddr, reply to the relay on port 67
    // via the request's source MAC, option 82 echoed last.
    let relay_mac = [0x02, 0xee, 0, 0, 0, 1];
    let giaddr = Ipv4Addr::new(203, 0, 113, 1);
    let agent = vec![1, 4, b'p', b'o', b'r', b't', 2, 3, b'c', b'p', b'e'];
    let mut d = discover(3, vec![]);
    d.set_giaddr(giaddr);
    // Option 82 appended as raw bytes, so they are exactly ours.
    let raw = frames::with_raw_option(frame(&d, relay_mac, giaddr, SERVER, None), 82, &agent);
    let n = lab.h.handle(&raw, &mut lab.tx).expect("relayed OFFER");
    let r = decode_reply(&lab.tx[..n]);
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::new(203, 0, 113, 50));
    assert_eq!((r.dst_mac, r.dst_ip, r.dst_port), (relay_mac, giaddr, 67));
    assert_eq!(r.msg.giaddr(), giaddr);
    let tail = &lab.tx[..n];
    let bootp_opts = &tail[42 + 240..];
    let pos82 = find_option(bootp_opts, 82).expect("option 82 echoed");
    assert_eq!(&bootp_opts[pos82 + 2..pos82 + 2 + agent.len()], &agent[..]);
    assert_eq!(
        bootp_opts[pos82 + 2 + agent.len()],
        255,
        "82 is the last option"
    );
}

fn find_option(opts: &[u8], code: u8) -> Option<usize> {
    let mut i = 0;
    while i < opts.len() && opts[i] != 255 {
        if opts[i] == 0 {
            i += 1;
            continue;
        }
        if opts[i] == code {
            return Some(i);
        }
        i += 2 + opts[i + 1] as usize;
    }
    None
}

#[test]
fn dora_then_renew_and_retransmitted_discover_keeps_the_offer() {
    let mut lab = lab();
    let o1 = lab.send(&bcast(&discover(4, vec![]), 4)).unwrap();
    let o2 = lab.send(&bcast(&discover(4, vec![]), 4)).unwrap();
    assert_eq!(
        o1.msg.yiaddr(),
        o2.msg.yiaddr(),
        "a retransmitted DISCOVER gets the same offer"
    );
    let other = lab.send(&bcast(&discover(5, vec![]), 5)).unwrap();
    assert_ne!(
        other.msg.yiaddr(),
        o1.msg.yiaddr(),
        "a held offer is not offered to anyone else"
    );

    let addr = o1.msg.yiaddr();
    let req = request(
        mac(4),
        MessageType::Request,
        7,
        vec![
            DhcpOption::ServerIdentifier(SERVER),
            DhcpOption::RequestedIpAddress(addr),
        ],
    );
    let ack = lab.send(&bcast(&req, 4)).expect("ACK");
    assert_eq!(msg_type(&ack.msg), Some(MessageType::Ack));
    assert_eq!(ack.msg.yiaddr(), addr);

    // RENEWING: unicast from ciaddr, no 50/54; ACK unicast to ciaddr at
    // the request's source MAC.
    let router_mac = [0x02, 0xbb, 0, 0, 0, 9];
    let mut renew = request(mac(4), MessageType::Request, 8, vec![]);
    renew.set_ciaddr(addr);
    let r = lab
        .send(&frame(&renew, router_mac, addr, SERVER, None))
        .expect("renewal ACK");
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack));
    assert_eq!((r.dst_mac, r.dst_ip, r.dst_port), (router_mac, addr, 68));
    assert_eq!((r.msg.ciaddr(), r.msg.yiaddr()), (addr, addr));
    let s = lab.stats.snapshot();
    assert_eq!(
        (s.discover, s.offer, s.request, s.ack, s.nak),
        (3, 3, 2, 2, 0)
    );
}

#[test]
fn request_for_another_server_withdraws_our_offer() {
    let mut lab = lab();
    let o = lab.send(&bcast(&discover(6, vec![]), 6)).unwrap();
    let req = request(
        mac(6),
        MessageType::Request,
        9,
        vec![
            DhcpOption::ServerIdentifier(Ipv4Addr::new(198, 18, 0, 99)),
            DhcpOption::RequestedIpAddress(Ipv4Addr::new(198, 18, 0, 200)),
        ],
    );
    assert!(
        lab.send(&bcast(&req, 6)).is_none(),
        "silent when another server was chosen"
    );
    let next = lab.send(&bcast(&discover(7, vec![]), 7)).unwrap();
    assert_eq!(
        next.msg.yiaddr(),
        o.msg.yiaddr(),
        "the withdrawn offer is free again"
    );
    assert_eq!(lab.stats.snapshot().ignored, 1);
}

#[test]
fn init_reboot_on_the_wrong_network_gets_a_broadcast_nak() {
    let mut lab = lab();
    let req = request(
        mac(8),
        MessageType::Request,
        10,
        vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(192, 0, 2, 77))],
    );
    let r = lab.send(&bcast(&req, 8)).expect("NAK");
    assert_eq!(msg_type(&r.msg), Some(MessageType::Nak));
    assert_eq!((r.dst_mac, r.dst_ip), ([0xff; 6], Ipv4Addr::BROADCAST));
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(r.msg.opts().get(OptionCode::AddressLeaseTime).is_none());
}

#[test]
fn vlan_picks_its_subnet_and_the_reply_keeps_the_tag() {
    let mut lab = lab();
    let d = discover(9, vec![]);
    let f = frame(
        &d,
        mac(9),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Some(100),
    );
    let r = lab.send(&f).expect("OFFER on VLAN 100");
    assert_eq!(r.vlan, Some(100));
    assert_eq!(r.msg.yiaddr(), Ipv4Addr::new(198, 51, 100, 10));
    // An unknown VLAN has no subnet: counted, no reply.
    let f = frame(
        &d,
        mac(9),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Some(999),
    );
    assert!(lab.send(&f).is_none());
    assert_eq!(lab.stats.snapshot().no_subnet, 1);
}

#[test]
fn client_identifier_is_echoed_and_scopes_the_lease() {
    let mut lab = lab();
    let id = vec![1, 0xde, 0xad, 0xbe, 0xef, 0, 1];
    let d = discover(10, vec![DhcpOption::ClientIdentifier(id.clone())]);
    let r = lab.send(&bcast(&d, 10)).unwrap();
    assert_eq!(
        r.msg.opts().get(OptionCode::ClientIdentifier),
        Some(&DhcpOption::ClientIdentifier(id.clone()))
    );
    // Same client id from another MAC: the same client, the same offer.
    let d2 = request(
        mac(11),
        MessageType::Discover,
        1,
        vec![DhcpOption::ClientIdentifier(id)],
    );
    let r2 = lab.send(&bcast(&d2, 11)).unwrap();
    assert_eq!(r.msg.yiaddr(), r2.msg.yiaddr());
}

#[test]
fn pool_exhaustion_is_counted_and_malformed_frames_are_dropped() {
    let mut lab = lab();
    // 11 addresses in the pool, the router .1 is outside it.
    for i in 0..11 {
        assert!(
            lab.send(&bcast(&discover(100 + i, vec![]), 100 + i))
                .is_some()
        );
    }
    assert!(lab.send(&bcast(&discover(200, vec![]), 200)).is_none());
    assert_eq!(lab.stats.snapshot().no_address, 1);

    let good = bcast(&discover(300, vec![]), 300);
    for cut in [0, 13, 20, 40, 100, 270] {
        assert!(lab.h.handle(&good[..cut], &mut lab.tx).is_none());
    }
    let mut bad_cookie = good.clone();
    bad_cookie[42 + 236] = 0;
    assert!(lab.h.handle(&bad_cookie, &mut lab.tx).is_none());
    assert_eq!(lab.stats.snapshot().malformed, 7);
    // A BOOTREPLY and a datagram to port 68 are malformed too, not ignored.
    let ignored = lab.stats.snapshot().ignored;
    let mut bootreply = good.clone();
    bootreply[42] = 2;
    let mut to_68 = good.clone();
    to_68[36..38].copy_from_slice(&68u16.to_be_bytes());
    for f in [bootreply, to_68] {
        assert!(lab.h.handle(&f, &mut lab.tx).is_none());
    }
    let s = lab.stats.snapshot();
    assert_eq!((s.malformed, s.ignored), (9, ignored));
}

/// Two workers on one engine allocate from their own shards of a big
/// pool (word 0, 2, 4… and word 1, 3, 5…), each from its bottom, and
/// never hand out the same address; a worker whose shard is full takes
/// from the other.
#[test]
fn workers_allocate_from_their_home_shards_and_steal_when_dry() {
    use std::sync::Arc;
    // 128 words of 64 addresses: two shards of 64 words.
    let cfg = xdhcp::config::Config::parse(
        r#"
interface = "lab0"
server_id = "10.0.0.1"

[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.0.0-10.0.31.255"]
"#,
    )
    .unwrap();
    let engine = Arc::new(xdhcp::engine::Engine::for_workers(&cfg, 2));
    assert_eq!(engine.subnets()[0].pool.shards(), 2);
    let mut workers: Vec<_> = (0..2)
        .map(|w| {
            let stats = Arc::new(xdhcp::stats::WorkerStats::default());
            let mut h = engine.handler(frames::SERVER_MAC, stats).worker(w);
            h.begin_batch(std::time::Instant::now());
            h
        })
        .collect();
    let mut tx = vec![0; xdhcp::handler::TX_FRAME_CAPACITY];
    let mut offer = |w: usize, i: u32| -> Ipv4Addr {
        let n = workers[w]
            .handle(&bcast(&discover(i, vec![]), i), &mut tx)
            .expect("an offer");
        decode_reply(&tx[..n]).msg.yiaddr()
    };
    let index = |a: Ipv4Addr| u32::from(a) - u32::from(Ipv4Addr::new(10, 0, 0, 0));
    // Network (10.0.0.0) and server (10.0.0.1) are taken out of the pool.
    assert_eq!(offer(0, 1), Ipv4Addr::new(10, 0, 0, 2));
    assert_eq!(offer(1, 2), Ipv4Addr::new(10, 0, 0, 64));
    let mut seen = std::collections::HashSet::new();
    for i in 0..4000 {
        let w = (i % 2) as usize;
        let a = offer(w, 100 + i);
        assert!(seen.insert(a), "{a} offered twice");
        assert_eq!(
            (index(a) / 64) as usize % 2,
            w,
            "{a} is not in worker {w}'s shard"
        );
    }
    // Worker 1's shard holds 4,096 addresses and has given 2,001: it
    // takes 2,095 more, then steals from shard 0.
    let mut stolen = 0;
    for i in 0..3000 {
        let a = offer(1, 10_000 + i);
        assert!(seen.insert(a), "{a} offered twice");
        if (index(a) / 64) % 2 == 0 {
            stolen += 1;
        }
    }
    assert_eq!(stolen, 3000 - 2095);
}
