//! `[subnet.limits]` through the engine: leases per circuit-id, remote-id,
//! VLAN and MAC (exact, also with workers racing), renewals never refused,
//! counts given back on release, decline and expiry and taken again at
//! restore; request rates per MAC and per circuit-id; `check_src_mac`.
mod frames;

use dhcproto::v4::{DhcpOption, MessageType};
use frames::{Harness, decode_reply, frame, mac, msg_type, request, with_raw_option};
use std::net::Ipv4Addr;
use std::sync::Arc;
use xdhcp::handler::FrameHandler;
use xdhcp::lease::limits::LineKind;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GIADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const RELAY_MAC: [u8; 6] = [0x02, 0xee, 0, 0, 0, 1];

/// A relayed subnet (203.0.113.0/24) and a direct one on VLAN 100, both
/// with `limits` under `[subnet.limits]`.
fn config(limits: &str) -> String {
    format!(
        r#"
interface = "lab0"
server_id = "198.18.0.1"

[[subnet]]
prefix = "203.0.113.0/24"
pools = ["203.0.113.10-203.0.113.250"]
[subnet.limits]
{limits}

[[subnet]]
prefix = "198.51.100.0/24"
pools = ["198.51.100.10-198.51.100.200"]
vlan = 100
[subnet.limits]
{limits}
"#
    )
}

/// Option 82 with a circuit-id and, if given, a remote-id.
fn agent(circuit: &[u8], remote: Option<&[u8]>) -> Vec<u8> {
    let mut a = vec![1, circuit.len() as u8];
    a.extend_from_slice(circuit);
    if let Some(r) = remote {
        a.extend_from_slice(&[2, r.len() as u8]);
        a.extend_from_slice(r);
    }
    a
}

/// A request of `kind` from client `i` through the relay, carrying `agent`.
fn relayed(i: u32, kind: MessageType, opts: Vec<DhcpOption>, agent: &[u8]) -> Vec<u8> {
    let mut m = request(mac(i), kind, 0x1000 + i, opts);
    m.set_giaddr(GIADDR);
    with_raw_option(frame(&m, RELAY_MAC, GIADDR, SERVER, None), 82, agent)
}

fn discover(i: u32, agent: &[u8]) -> Vec<u8> {
    relayed(i, MessageType::Discover, vec![], agent)
}

fn select(i: u32, addr: Ipv4Addr, agent: &[u8]) -> Vec<u8> {
    relayed(
        i,
        MessageType::Request,
        vec![
            DhcpOption::ServerIdentifier(SERVER),
            DhcpOption::RequestedIpAddress(addr),
        ],
        agent,
    )
}

fn kind(r: &Option<frames::Seen>) -> Option<MessageType> {
    r.as_ref().and_then(|r| msg_type(&r.msg))
}

/// DORA for client `i`: the bound address, or None when refused.
fn dora(lab: &mut Harness, i: u32, agent: &[u8]) -> Option<Ipv4Addr> {
    let o = lab.send(&discover(i, agent))?;
    let a = lab.send(&select(i, o.msg.yiaddr(), agent));
    assert_eq!(kind(&a), Some(MessageType::Ack));
    Some(o.msg.yiaddr())
}

#[test]
fn a_circuit_gets_no_offer_past_its_limit_and_others_are_served() {
    let mut lab = Harness::new(&config("leases_per_circuit_id = 4"));
    let port1 = agent(b"port-1", None);
    let offers = (0..10)
        .filter(|i| lab.send(&discover(*i, &port1)).is_some())
        .count();
    assert_eq!(offers, 4);
    // A client that holds an offer is offered it again.
    assert!(lab.send(&discover(0, &port1)).is_some());
    let port2 = agent(b"port-2", None);
    assert!((100..104).all(|i| dora(&mut lab, i, &port2).is_some()));
    let s = lab.stats.snapshot();
    assert_eq!((s.limited_circuit_id, s.offer, s.no_address), (6, 9, 0));
    let key = lab.engine.lines().key(LineKind::CircuitId, 0, b"port-1");
    assert_eq!(lab.engine.lines().count(key), 4);
}

#[test]
fn a_request_for_a_new_lease_past_the_limit_is_naked_and_a_renewal_never() {
    let mut lab = Harness::new(&config("leases_per_circuit_id = 2"));
    let port = agent(b"port-1", None);
    let a0 = dora(&mut lab, 0, &port).unwrap();
    let _a1 = dora(&mut lab, 1, &port).unwrap();
    // The circuit is full: a renewal (ciaddr set, unicast through the
    // relay) and a SELECTING REQUEST of the held address are still ACKed.
    let mut m = request(mac(0), MessageType::Request, 77, vec![]);
    m.set_ciaddr(a0);
    m.set_giaddr(GIADDR);
    let renew = with_raw_option(frame(&m, RELAY_MAC, GIADDR, SERVER, None), 82, &port);
    assert_eq!(kind(&lab.send(&renew)), Some(MessageType::Ack), "renewal");
    assert_eq!(
        kind(&lab.send(&select(0, a0, &port))),
        Some(MessageType::Ack)
    );
    // Client 0 releases; client 2 takes the slot; client 0 comes back for
    // its old address (it has a released record): a new lease, NAKed.
    let mut rel = request(
        mac(0),
        MessageType::Release,
        78,
        vec![DhcpOption::ServerIdentifier(SERVER)],
    );
    rel.set_ciaddr(a0);
    rel.set_giaddr(GIADDR);
    assert!(
        lab.send(&with_raw_option(
            frame(&rel, RELAY_MAC, GIADDR, SERVER, None),
            82,
            &port
        ))
        .is_none()
    );
    assert!(dora(&mut lab, 2, &port).is_some());
    let back = lab.send(&select(0, a0, &port));
    assert_eq!(kind(&back), Some(MessageType::Nak));
    let s = lab.stats.snapshot();
    assert_eq!((s.limited_circuit_id, s.nak), (1, 1));
}

#[test]
fn release_decline_and_expiry_give_the_count_back() {
    let mut lab = Harness::new(&config("leases_per_circuit_id = 1"));
    let port = agent(b"p", None);
    let key = lab.engine.lines().key(LineKind::CircuitId, 0, b"p");
    let count = |lab: &Harness| lab.engine.lines().count(key);
    // Bound, then released.
    let a = dora(&mut lab, 0, &port).unwrap();
    assert!(lab.send(&discover(1, &port)).is_none());
    let mut rel = request(
        mac(0),
        MessageType::Release,
        5,
        vec![DhcpOption::ServerIdentifier(SERVER)],
    );
    rel.set_ciaddr(a);
    rel.set_giaddr(GIADDR);
    lab.send(&with_raw_option(
        frame(&rel, RELAY_MAC, GIADDR, SERVER, None),
        82,
        &port,
    ));
    assert_eq!(count(&lab), 0, "release");
    // Offered, then declined: not believed (DECLINE only from the client
    // the address is bound to), so the offer keeps its count; bound, then
    // declined: the count goes back.
    let o = lab.send(&discover(1, &port)).unwrap().msg.yiaddr();
    assert_eq!(count(&lab), 1);
    let decline = relayed(
        1,
        MessageType::Decline,
        vec![
            DhcpOption::ServerIdentifier(SERVER),
            DhcpOption::RequestedIpAddress(o),
        ],
        &port,
    );
    lab.send(&decline);
    assert_eq!(count(&lab), 1, "a DECLINE of an offer is not believed");
    assert_eq!(lab.stats.snapshot().decline_not_bound, 1);
    let ack = lab.send(&select(1, o, &port));
    assert_eq!(kind(&ack), Some(MessageType::Ack));
    assert_eq!(count(&lab), 1);
    lab.send(&decline);
    assert_eq!(count(&lab), 0, "decline");
    // Offered, then the offer runs out.
    assert!(lab.send(&discover(2, &port)).is_some());
    assert_eq!(count(&lab), 1);
    assert!(lab.engine.expire(1_000_000) > 0);
    assert_eq!(count(&lab), 0, "expiry of the offer");
    assert!(lab.send(&discover(3, &port)).is_some());
    // Another server chosen: our offer withdrawn, its count with it.
    let other = relayed(
        3,
        MessageType::Request,
        vec![
            DhcpOption::ServerIdentifier(Ipv4Addr::new(198, 18, 0, 99)),
            DhcpOption::RequestedIpAddress(Ipv4Addr::new(203, 0, 113, 200)),
        ],
        &port,
    );
    assert!(lab.send(&other).is_none());
    assert_eq!(count(&lab), 0, "withdrawn offer");
}

#[test]
fn remote_id_and_mac_limits_hold_each_on_its_own() {
    let mut lab = Harness::new(&config("leases_per_remote_id = 2\nleases_per_mac = 1"));
    // One remote-id across circuits.
    let offered = (0..5)
        .filter(|i| {
            let a = agent(format!("port-{i}").as_bytes(), Some(b"cpe-1"));
            lab.send(&discover(*i, &a)).is_some()
        })
        .count();
    assert_eq!(offered, 2);
    assert_eq!(lab.stats.snapshot().limited_remote_id, 3);
    // One chaddr, many client identifiers: one lease.
    let port = agent(b"x", None);
    let ids = (0..4)
        .filter(|n| {
            let mut m = request(
                mac(50),
                MessageType::Discover,
                9,
                vec![DhcpOption::ClientIdentifier(vec![0xff, *n as u8])],
            );
            m.set_giaddr(GIADDR);
            let f = with_raw_option(frame(&m, RELAY_MAC, GIADDR, SERVER, None), 82, &port);
            lab.send(&f).is_some()
        })
        .count();
    assert_eq!(ids, 1);
    assert_eq!(lab.stats.snapshot().limited_mac, 3);
}

#[test]
fn a_vlan_holds_its_limit_on_a_direct_link() {
    let mut lab = Harness::new(&config("leases_per_vlan = 3"));
    let d = |i: u32, vlan| {
        let m = request(mac(i), MessageType::Discover, i, vec![]);
        frame(
            &m,
            mac(i),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Some(vlan),
        )
    };
    let offered = (0..6).filter(|i| lab.send(&d(*i, 100)).is_some()).count();
    assert_eq!(offered, 3);
    assert_eq!(lab.stats.snapshot().limited_vlan, 3);
}

/// Option 82 from a direct client (giaddr 0) is not believed: it does not
/// spend the budget of the circuit it names.
#[test]
fn untrusted_option_82_spends_no_circuit_budget() {
    let mut lab = Harness::new(&config("leases_per_circuit_id = 1"));
    let victim = agent(b"victim", None);
    for i in 0..5 {
        let m = request(mac(i), MessageType::Discover, i, vec![]);
        let f = with_raw_option(
            frame(
                &m,
                mac(i),
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::BROADCAST,
                Some(100),
            ),
            82,
            &victim,
        );
        assert!(lab.send(&f).is_some());
    }
    assert!(
        dora(&mut lab, 99, &victim).is_some(),
        "the real circuit is served"
    );
}

/// Eight workers race DISCOVERs for distinct MACs on one circuit: exactly
/// the limit is offered, whatever the interleaving.
#[test]
fn racing_workers_offer_exactly_the_limit() {
    const WORKERS: usize = 8;
    const PER: u32 = 500;
    for round in 0..5 {
        let cfg = xdhcp::config::Config::parse(&config("leases_per_circuit_id = 4")).unwrap();
        let engine = Arc::new(xdhcp::engine::Engine::for_workers(&cfg, WORKERS));
        let port = agent(b"flood", None);
        let frames: Vec<Vec<Vec<u8>>> = (0..WORKERS as u32)
            .map(|w| (0..PER).map(|i| discover(w * PER + i, &port)).collect())
            .collect();
        let barrier = std::sync::Barrier::new(WORKERS);
        let offers: usize = std::thread::scope(|s| {
            let hs: Vec<_> = frames
                .iter()
                .enumerate()
                .map(|(w, fs)| {
                    let engine = engine.clone();
                    let barrier = &barrier;
                    s.spawn(move || {
                        let stats = Arc::new(xdhcp::stats::WorkerStats::default());
                        let mut h = engine.handler(frames::SERVER_MAC, stats.clone()).worker(w);
                        h.begin_batch(std::time::Instant::now());
                        let mut tx = vec![0; xdhcp::handler::TX_FRAME_CAPACITY];
                        barrier.wait();
                        let mut n = 0;
                        for f in fs {
                            if let Some(len) = h.handle(f, &mut tx) {
                                assert_eq!(
                                    msg_type(&decode_reply(&tx[..len]).msg),
                                    Some(MessageType::Offer)
                                );
                                n += 1;
                            }
                        }
                        assert_eq!(
                            stats.snapshot().limited_circuit_id + n as u64,
                            u64::from(PER)
                        );
                        n
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(
            offers, 4,
            "round {round}: {offers} offers on a circuit limited to 4"
        );
    }
}

#[test]
fn rates_drop_past_the_burst_per_mac_and_per_circuit() {
    // The harness's clock stands still within its batch: no request is
    // let through by time passing, so the counts are exact.
    let mut lab = Harness::new(&config(
        "requests_per_mac = 1\nburst_per_mac = 3\nrequests_per_circuit_id = 1\nburst_per_circuit_id = 5",
    ));
    let direct = |i: u32, src: [u8; 6]| {
        let m = request(mac(i), MessageType::Discover, i, vec![]);
        frame(
            &m,
            src,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Some(100),
        )
    };
    let answered = (0..6)
        .filter(|_| lab.send(&direct(1, mac(1))).is_some())
        .count();
    assert_eq!(answered, 3);
    // Another MAC has its own bucket.
    assert!(lab.send(&direct(2, mac(2))).is_some());
    assert_eq!(lab.stats.snapshot().rate_limited_mac, 3);
    // One circuit, distinct MACs: 5 at once.
    let port = agent(b"port-9", None);
    let answered = (10..20)
        .filter(|i| lab.send(&discover(*i, &port)).is_some())
        .count();
    assert_eq!(answered, 5);
    let s = lab.stats.snapshot();
    assert_eq!((s.rate_limited_circuit_id, s.discover), (5, 17));
    // A new batch a second or more later refills the buckets.
    lab.h
        .begin_batch(std::time::Instant::now() + std::time::Duration::from_secs(2));
    assert!(lab.send(&discover(30, &port)).is_some());
}

#[test]
fn check_src_mac_drops_direct_requests_from_another_source() {
    let mut lab = Harness::new(&config("check_src_mac = true"));
    let m = request(mac(1), MessageType::Discover, 1, vec![]);
    let spoofed = frame(
        &m,
        mac(2),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Some(100),
    );
    assert!(lab.send(&spoofed).is_none());
    assert_eq!(lab.stats.snapshot().src_mac_mismatch, 1);
    let own = frame(
        &m,
        mac(1),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Some(100),
    );
    assert!(lab.send(&own).is_some());
    // Relayed: the source is the relay's MAC, as it should be.
    assert!(lab.send(&discover(3, &agent(b"p", None))).is_some());
    assert_eq!(lab.stats.snapshot().src_mac_mismatch, 1);
}

/// Leases restored at start count on their lines: a circuit that held its
/// limit before the restart holds it after.
#[test]
fn restored_leases_count_on_their_lines() {
    use xdhcp::lease::journal::{FixedBytes, LeaseRecord, RecordState};
    let cfg = xdhcp::config::Config::parse(&config("leases_per_circuit_id = 2")).unwrap();
    let engine = Arc::new(xdhcp::engine::Engine::new(&cfg));
    let clock = xdhcp::engine::Clock::now(&engine, std::time::Instant::now());
    let port = agent(b"port-1", None);
    let records: Vec<LeaseRecord> = (0..2u8)
        .map(|i| LeaseRecord {
            subnet: 0,
            addr: Ipv4Addr::new(203, 0, 113, 10 + i),
            client: xdhcp::lease::ClientKey::new(0, 0, &mac(u32::from(i))),
            hwaddr: mac(u32::from(i)),
            state: RecordState::Bound,
            expires_unix: clock.unix + 3600,
            cltt_unix: clock.unix,
            hostname: FixedBytes::new(&[]).0,
            agent_info: FixedBytes::new(&port).0,
            fqdn_flags: 0,
        })
        .collect();
    assert_eq!(engine.restore(&records, clock), (2, 0));
    let key = engine.lines().key(LineKind::CircuitId, 0, b"port-1");
    assert_eq!(engine.lines().count(key), 2);
    let stats = Arc::new(xdhcp::stats::WorkerStats::default());
    let mut h = engine.handler(frames::SERVER_MAC, stats.clone());
    h.begin_batch(std::time::Instant::now());
    let mut tx = vec![0; xdhcp::handler::TX_FRAME_CAPACITY];
    assert!(h.handle(&discover(7, &port), &mut tx).is_none());
    assert_eq!(stats.snapshot().limited_circuit_id, 1);
    // The restored clients themselves are served.
    assert!(h.handle(&discover(0, &port), &mut tx).is_some());
}
