//! RFC 2131/2132 server rules beyond plain DORA, one test per rule:
//! requests built with dhcproto, replies decoded with dhcproto.
mod frames;

use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use frames::{Harness, frame, mac, msg_type, option_codes, request, with_raw_option};
use std::net::Ipv4Addr;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const BASE: &str = r#"
interface = "lab0"
server_id = "198.18.0.1"
decline_probation = 600
"#;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn bcast(m: &dhcproto::v4::Message, i: u32) -> Vec<u8> {
    frame(m, mac(i), Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, None)
}

fn discover(i: u32, opts: Vec<DhcpOption>) -> Vec<u8> {
    bcast(&request(mac(i), MessageType::Discover, 100 + i, opts), i)
}

fn select(i: u32, addr: Ipv4Addr, sid: Ipv4Addr, mut extra: Vec<DhcpOption>) -> Vec<u8> {
    extra.push(DhcpOption::ServerIdentifier(sid));
    extra.push(DhcpOption::RequestedIpAddress(addr));
    bcast(&request(mac(i), MessageType::Request, 200 + i, extra), i)
}

fn harness(subnet: &str) -> Harness {
    Harness::new(&format!("{BASE}\n{subnet}"))
}

const SMALL: &str = r#"
[[subnet]]
prefix = "198.18.0.0/24"
pools = ["198.18.0.10-198.18.0.12"]
routers = ["198.18.0.1"]
dns = ["198.18.0.1"]
lease_time = 7200
min_lease_time = 600
max_lease_time = 86400
"#;

#[test]
fn requested_lease_time_is_honoured_within_bounds_with_t1_t2_at_half_and_seven_eighths() {
    let mut h = harness(SMALL);
    for (asked, got) in [(100, 600), (3000, 3000), (1_000_000, 86400)] {
        let r = h
            .send(&discover(asked, vec![DhcpOption::AddressLeaseTime(asked)]))
            .unwrap();
        let o = r.msg.opts();
        assert_eq!(
            o.get(OptionCode::AddressLeaseTime),
            Some(&DhcpOption::AddressLeaseTime(got))
        );
        assert_eq!(
            o.get(OptionCode::Renewal),
            Some(&DhcpOption::Renewal(got / 2))
        );
        assert_eq!(
            o.get(OptionCode::Rebinding),
            Some(&DhcpOption::Rebinding(got / 8 * 7))
        );
    }
}

#[test]
fn reservations_by_mac_client_id_and_circuit_id_are_kept_for_their_owner() {
    let mut h = harness(
        r#"
[[subnet]]
prefix = "198.18.0.0/24"
pools = ["198.18.0.10-198.18.0.12"]
[[subnet.reservation]]
mac = "02:aa:00:00:00:07"
address = "198.18.0.10"
[[subnet.reservation]]
client_id = "01:de:ad:be:ef:00:01"
address = "198.18.0.50"
infinite = true
[[subnet.reservation]]
circuit_id = "eth0/1/7"
address = "198.18.0.60"
"#,
    );
    // The reserved .10 is at the bottom of the pool, yet nobody else gets it.
    let other = h.send(&discover(1, vec![])).unwrap();
    assert_eq!(other.msg.yiaddr(), ip("198.18.0.11"));
    let owner = h.send(&discover(7, vec![])).unwrap();
    assert_eq!(owner.msg.yiaddr(), ip("198.18.0.10"));
    let ack = h
        .send(&select(7, ip("198.18.0.10"), SERVER, vec![]))
        .unwrap();
    assert_eq!(msg_type(&ack.msg), Some(MessageType::Ack));

    // Infinite: 0xffffffff and no T1/T2.
    let id = DhcpOption::ClientIdentifier(vec![1, 0xde, 0xad, 0xbe, 0xef, 0, 1]);
    let r = h.send(&discover(30, vec![id])).unwrap();
    assert_eq!(r.msg.yiaddr(), ip("198.18.0.50"));
    let o = r.msg.opts();
    assert_eq!(
        o.get(OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(u32::MAX))
    );
    assert!(o.get(OptionCode::Renewal).is_none() && o.get(OptionCode::Rebinding).is_none());

    // By the relay's circuit-id (giaddr inside the subnet).
    let mut d = request(mac(40), MessageType::Discover, 1, vec![]);
    d.set_giaddr(ip("198.18.0.254"));
    let f = frame(&d, mac(99), ip("198.18.0.254"), SERVER, None);
    let mut ai = vec![1, 8];
    ai.extend_from_slice(b"eth0/1/7");
    let r = h.send(&with_raw_option(f, 82, &ai)).unwrap();
    assert_eq!(r.msg.yiaddr(), ip("198.18.0.60"));
    assert_eq!((r.dst_ip, r.dst_port), (ip("198.18.0.254"), 67));
}

#[test]
fn server_id_override_names_the_relay_and_counts_as_ours() {
    let mut h = harness(SMALL);
    let relay = ip("198.18.0.254");
    // Sub-option 11 (RFC 5107) = the relay's address.
    let ai = [11, 4, 198, 18, 0, 254];
    let mut d = request(mac(3), MessageType::Discover, 1, vec![]);
    d.set_giaddr(relay);
    let r = h
        .send(&with_raw_option(
            frame(&d, mac(99), relay, SERVER, None),
            82,
            &ai,
        ))
        .unwrap();
    assert_eq!(
        r.msg.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(relay))
    );
    assert_eq!(
        r.src_ip, SERVER,
        "the packet itself still comes from our address"
    );
    let mut q = request(
        mac(3),
        MessageType::Request,
        2,
        vec![
            DhcpOption::ServerIdentifier(relay),
            DhcpOption::RequestedIpAddress(r.msg.yiaddr()),
        ],
    );
    q.set_giaddr(relay);
    let a = h
        .send(&with_raw_option(
            frame(&q, mac(99), relay, SERVER, None),
            82,
            &ai,
        ))
        .unwrap();
    assert_eq!(msg_type(&a.msg), Some(MessageType::Ack));
}

#[test]
fn ignore_client_id_identifies_by_chaddr() {
    let cfg = SMALL.replace(
        "max_lease_time = 86400",
        "max_lease_time = 86400\nignore_client_id = true",
    );
    let mut h = harness(&cfg);
    let a = h
        .send(&discover(
            5,
            vec![DhcpOption::ClientIdentifier(vec![1, 1, 1])],
        ))
        .unwrap();
    let b = h
        .send(&discover(
            5,
            vec![DhcpOption::ClientIdentifier(vec![1, 2, 2])],
        ))
        .unwrap();
    assert_eq!(a.msg.yiaddr(), b.msg.yiaddr());
    let mut h = harness(SMALL);
    let a = h
        .send(&discover(
            5,
            vec![DhcpOption::ClientIdentifier(vec![1, 1, 1])],
        ))
        .unwrap();
    let b = h
        .send(&discover(
            5,
            vec![DhcpOption::ClientIdentifier(vec![1, 2, 2])],
        ))
        .unwrap();
    assert_ne!(
        a.msg.yiaddr(),
        b.msg.yiaddr(),
        "option 61 comes before chaddr"
    );
}

#[test]
fn options_follow_the_parameter_request_list_and_fit_option_57() {
    let mut h = harness(
        r#"
[[subnet]]
prefix = "198.18.0.0/24"
pools = ["198.18.0.10-198.18.0.12"]
routers = ["198.18.0.1"]
dns = ["198.18.0.1"]
domain_name = "isp.example"
options = { mtu = 1492, ntp = ["198.18.0.5"], domain_search = ["isp.example"], classless_routes = ["10.0.0.0/8 via 198.18.0.1"], tftp_server = "tftp.isp.example", bootfile = "cpe.cfg" }
[[subnet.option]]
code = 43
hex = "01:04:c0:a8:00:01"
[[subnet.option]]
code = 224
string = "a private option that is rather long so that it takes room in the packet: 0123456789 0123456789 0123456789 0123456789 0123456789 0123456789 0123456789 0123456789 0123456789 0123456789 0123456789 0123456789"
"#,
    );
    let mut m = request(mac(1), MessageType::Discover, 1, vec![]);
    m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::NtpServers,
        OptionCode::DomainNameServer,
        OptionCode::Router,
        OptionCode::SubnetMask,
        OptionCode::ClasslessStaticRoute,
    ]));
    m.opts_mut().insert(DhcpOption::MaxMessageSize(1500));
    h.send(&bcast(&m, 1)).unwrap();
    let codes = option_codes(h.raw_options());
    assert_eq!(&codes[..5], &[53, 54, 51, 58, 59]);
    assert_eq!(
        &codes[5..9],
        &[1, 42, 6, 3],
        "mask, then the client's order"
    );
    assert_eq!(codes[9], 121);
    for c in [15, 26, 28, 43, 66, 67, 119, 224] {
        assert!(codes.contains(&c), "option {c} configured and room for it");
    }
    // Without option 57 the reply stays within 576 bytes: the long private
    // option is dropped, what the client asked for is kept. Option 82
    // comes from a relay (it is believed from relays only) and is echoed on
    // top: the relay strips it before the client sees the reply (RFC 3046
    // §2.2).
    let mut m = request(mac(2), MessageType::Discover, 2, vec![]);
    m.set_giaddr(ip("198.18.0.254"));
    let mut agent = vec![1, 200];
    agent.extend(std::iter::repeat_n(b'x', 200));
    m.opts_mut()
        .insert(DhcpOption::ParameterRequestList(vec![OptionCode::Router]));
    let relayed = frame(&m, mac(99), ip("198.18.0.254"), SERVER, None);
    let f = with_raw_option(relayed, 82, &agent);
    let n = {
        use xdhcp::handler::FrameHandler;
        h.h.handle(&f, &mut h.tx).unwrap()
    };
    let echo = 2 + agent.len();
    assert!(
        n - 14 - echo <= 576,
        "IP datagram of {} bytes without the 82 echo",
        n - 14 - echo
    );
    let codes = option_codes(h.raw_options());
    assert_eq!(codes.last(), Some(&82), "82 is kept and last");
    assert!(codes.contains(&3));
    assert!(!codes.contains(&224));
}

#[test]
fn decline_quarantines_and_release_keeps_the_client_record() {
    let mut h = harness(SMALL);
    let o = h.send(&discover(1, vec![])).unwrap();
    let addr = o.msg.yiaddr();
    h.send(&select(1, addr, SERVER, vec![])).unwrap();
    // DECLINE from the owner naming us.
    let d = request(
        mac(1),
        MessageType::Decline,
        3,
        vec![
            DhcpOption::ServerIdentifier(SERVER),
            DhcpOption::RequestedIpAddress(addr),
        ],
    );
    assert!(h.send(&bcast(&d, 1)).is_none());
    assert_eq!(h.stats.snapshot().decline, 1);
    for i in 2..4 {
        let r = h.send(&discover(i, vec![])).unwrap();
        assert_ne!(
            r.msg.yiaddr(),
            addr,
            "a declined address is not offered during probation"
        );
    }
    assert!(
        h.send(&discover(9, vec![])).is_none(),
        "pool of 3: one declined, two offered"
    );
    // The sweeper ends the quarantine after the probation.
    h.engine.expire(601 + 30);
    assert_eq!(h.send(&discover(9, vec![])).unwrap().msg.yiaddr(), addr);

    // RELEASE: freed, record kept, same address for the same client.
    let mut h = harness(SMALL);
    let a = h.send(&discover(4, vec![])).unwrap().msg.yiaddr();
    h.send(&select(4, a, SERVER, vec![])).unwrap();
    let mut rel = request(
        mac(4),
        MessageType::Release,
        5,
        vec![DhcpOption::ServerIdentifier(SERVER)],
    );
    rel.set_ciaddr(a);
    assert!(h.send(&frame(&rel, mac(4), a, SERVER, None)).is_none());
    assert_eq!(h.stats.snapshot().release, 1);
    assert_eq!(h.send(&discover(4, vec![])).unwrap().msg.yiaddr(), a);
}

#[test]
fn release_or_decline_naming_another_server_changes_nothing() {
    let mut h = harness(SMALL);
    let a = h.send(&discover(4, vec![])).unwrap().msg.yiaddr();
    h.send(&select(4, a, SERVER, vec![])).unwrap();
    let mut rel = request(
        mac(4),
        MessageType::Release,
        5,
        vec![DhcpOption::ServerIdentifier(ip("198.18.0.99"))],
    );
    rel.set_ciaddr(a);
    h.send(&frame(&rel, mac(4), a, SERVER, None));
    // Still bound: a renewal is ACKed.
    let mut renew = request(mac(4), MessageType::Request, 6, vec![]);
    renew.set_ciaddr(a);
    let r = h.send(&frame(&renew, mac(4), a, SERVER, None)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack));
}

#[test]
fn rebinding_is_silent_for_strangers_unless_authoritative_and_naks_a_client_that_moved() {
    let rebind = |i: u32, ciaddr: Ipv4Addr| {
        let mut m = request(mac(i), MessageType::Request, 7, vec![]);
        m.set_ciaddr(ciaddr);
        frame(&m, mac(i), ciaddr, Ipv4Addr::BROADCAST, None)
    };
    let mut h = harness(SMALL);
    assert!(
        h.send(&rebind(1, ip("198.18.0.11"))).is_none(),
        "not our binding: silent"
    );
    // RFC 2131 §4.3.2: a server that is not authoritative stays silent
    // about a client it has no record of, also when ciaddr is on no link
    // of ours (it may be another server's client).
    assert!(
        h.send(&rebind(1, ip("192.0.2.7"))).is_none(),
        "ciaddr wrong for the link, stranger: silent"
    );
    // A client bound with us that rebinds from an address of another
    // network has moved: NAK.
    let a = h.send(&discover(2, vec![])).unwrap().msg.yiaddr();
    let ack = h.send(&select(2, a, SERVER, vec![])).unwrap();
    assert_eq!(msg_type(&ack.msg), Some(MessageType::Ack));
    let r = h.send(&rebind(2, ip("192.0.2.7"))).unwrap();
    assert_eq!(
        msg_type(&r.msg),
        Some(MessageType::Nak),
        "ciaddr wrong for the link, our client"
    );
    let mut h = Harness::new(&format!("{BASE}\nauthoritative = true\n{SMALL}"));
    let r = h.send(&rebind(1, ip("198.18.0.11"))).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Nak));
    let r = h.send(&rebind(1, ip("192.0.2.7"))).unwrap();
    assert_eq!(
        msg_type(&r.msg),
        Some(MessageType::Nak),
        "authoritative: ciaddr wrong for the link"
    );
}

#[test]
fn init_reboot_unknown_client_is_silent_known_wrong_address_is_nak() {
    let mut h = harness(SMALL);
    let reboot = |i: u32, want: Ipv4Addr| {
        bcast(
            &request(
                mac(i),
                MessageType::Request,
                8,
                vec![DhcpOption::RequestedIpAddress(want)],
            ),
            i,
        )
    };
    assert!(h.send(&reboot(1, ip("198.18.0.11"))).is_none());
    let a = h.send(&discover(1, vec![])).unwrap().msg.yiaddr();
    h.send(&select(1, a, SERVER, vec![])).unwrap();
    let r = h.send(&reboot(1, a)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack));
    let r = h.send(&reboot(1, ip("198.18.0.12"))).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Nak));
}

#[test]
fn inform_gets_options_at_ciaddr_without_a_lease() {
    let mut h = harness(SMALL);
    let mut m = request(mac(1), MessageType::Inform, 9, vec![]);
    m.set_ciaddr(ip("198.18.0.200"));
    let r = h
        .send(&frame(&m, mac(1), ip("198.18.0.200"), SERVER, None))
        .unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack));
    assert_eq!(
        (r.dst_ip, r.msg.yiaddr()),
        (ip("198.18.0.200"), Ipv4Addr::UNSPECIFIED)
    );
    assert!(r.msg.opts().get(OptionCode::AddressLeaseTime).is_none());
    assert!(r.msg.opts().get(OptionCode::Router).is_some());
}

#[test]
fn renew_jitter_pulls_t1_t2_in_by_a_stable_per_client_amount() {
    let mut h = Harness::new(&format!("{BASE}\nrenew_jitter = 20\n{SMALL}"));
    let t = |r: &frames::Seen| match (
        r.msg.opts().get(OptionCode::Renewal),
        r.msg.opts().get(OptionCode::Rebinding),
    ) {
        (Some(DhcpOption::Renewal(a)), Some(DhcpOption::Rebinding(b))) => (*a, *b),
        _ => panic!("no T1/T2"),
    };
    let mut seen = Vec::new();
    for i in 0..3 {
        let (t1, t2) = t(&h.send(&discover(i, vec![])).unwrap());
        assert!(
            (2880..=3600).contains(&t1) && (5040..=6300).contains(&t2),
            "{t1} {t2}"
        );
        assert!(t1 < t2);
        assert_eq!(
            (t1, t2),
            t(&h.send(&discover(i, vec![])).unwrap()),
            "stable per client"
        );
        seen.push(t1);
    }
    seen.dedup();
    assert!(seen.len() > 1, "clients get different T1");
}

#[test]
fn bad_configs_name_the_line_and_the_reason() {
    let check = |extra: &str, want: &str| {
        let text = format!("{BASE}\n{SMALL}{extra}");
        let e = xdhcp::config::Config::parse(&text).unwrap_err();
        assert!(e.to_string().contains(want), "{e} should say {want:?}");
        assert!(e.line.is_some(), "{e} should name a line");
    };
    check(
        "[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.1\"\n",
        "not inside subnet",
    );
    check(
        "[[subnet.reservation]]\nmac = \"02:00:00:00:00:01\"\naddress = \"198.18.0.20\"\n[[subnet.reservation]]\nmac = \"02:00:00:00:00:02\"\naddress = \"198.18.0.20\"\n",
        "already reserved",
    );
    check(
        "[[subnet.reservation]]\naddress = \"198.18.0.20\"\n",
        "needs one of",
    );
    check(
        "[[subnet.option]]\ncode = 54\nhex = \"01\"\n",
        "cannot be configured",
    );
    check(
        "[[subnet.option]]\ncode = 3\nhex = \"01020304\"\n",
        "configured twice",
    );
    let e = xdhcp::config::Config::parse(&format!(
        "{BASE}\n{}",
        SMALL.replace("min_lease_time = 600", "min_lease_time = 9000")
    ))
    .unwrap_err();
    assert!(e.to_string().contains("min_lease_time"), "{e}");
}

#[test]
fn the_readme_config_example_is_a_valid_config() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = readme
        .find("### Configuration")
        .expect("README has a Configuration section");
    let block = &readme[at..];
    let start = block.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let end = block[start..].find("```").unwrap();
    let c = xdhcp::config::Config::parse(&block[start..start + end])
        .unwrap_or_else(|e| panic!("README example: {e}"));
    assert_eq!(c.subnets.len(), 2);
    assert_eq!(c.subnets[0].reservations.len(), 1);
}

#[test]
fn shared_network_fills_the_next_subnet_with_its_own_options() {
    let mut h = harness(
        r#"
[[subnet]]
prefix = "198.18.0.0/24"
pools = ["198.18.0.10-198.18.0.11"]
routers = ["198.18.0.1"]
shared_network = "city"
[[subnet]]
prefix = "100.64.0.0/24"
pools = ["100.64.0.10-100.64.0.11"]
routers = ["100.64.0.1"]
shared_network = "city"
"#,
    );
    let mut offers = Vec::new();
    for i in 0..4 {
        offers.push(h.send(&discover(i, vec![])).expect("an offer").msg);
    }
    let addrs: Vec<_> = offers.iter().map(|m| m.yiaddr()).collect();
    assert_eq!(
        addrs,
        ["198.18.0.10", "198.18.0.11", "100.64.0.10", "100.64.0.11"].map(ip)
    );
    assert_eq!(
        offers[2].opts().get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![ip("100.64.0.1")])),
        "options of the subnet the address is from"
    );
    assert!(h.send(&discover(9, vec![])).is_none(), "both subnets full");
    // The client in the second subnet is the same client on the link: its
    // retransmission keeps the offer, and its REQUEST is ACKed from there.
    assert_eq!(
        h.send(&discover(2, vec![])).unwrap().msg.yiaddr(),
        ip("100.64.0.10")
    );
    let a = h
        .send(&select(2, ip("100.64.0.10"), SERVER, vec![]))
        .unwrap();
    assert_eq!(msg_type(&a.msg), Some(MessageType::Ack));
    assert_eq!(
        a.msg.opts().get(OptionCode::SubnetMask),
        Some(&DhcpOption::SubnetMask(ip("255.255.255.0")))
    );
    assert_eq!(
        a.msg.opts().get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![ip("100.64.0.1")]))
    );

    let e = xdhcp::config::Config::parse(&format!(
        "{BASE}\n[[subnet]]\nprefix = \"198.18.0.0/24\"\nshared_network = \"x\"\n[[subnet]]\nprefix = \"100.64.0.0/24\"\nshared_network = \"x\"\nvlan = 7\n"
    ))
    .unwrap_err();
    assert!(e.to_string().contains("spans two VLANs"), "{e}");
}

/// A binding that runs out goes back to the pool and its record turns
/// Expired; the record is kept `keep_released` seconds so the client can
/// have its address again, then forgotten, so the table is bounded by the
/// recent clients, not every client ever seen.
#[test]
fn expiry_frees_the_address_and_old_records_are_forgotten() {
    use xdhcp::lease::{ClientKey, LeaseState};
    let mut h = Harness::new(&format!("{BASE}\nkeep_released = 100\n{SMALL}"));
    let a = h.send(&discover(1, vec![])).unwrap().msg.yiaddr();
    h.send(&select(
        1,
        a,
        SERVER,
        vec![DhcpOption::AddressLeaseTime(600)],
    ))
    .unwrap();
    let s = &h.engine.subnets()[0];
    let key = ClientKey::new(s.link, 0, &mac(1));
    let bound = h.engine.leases().get(&key).unwrap();
    assert_eq!((bound.addr, bound.state), (a, LeaseState::Bound));
    let end = bound.expires;
    assert_eq!(h.engine.expire(end - 1), 0);
    assert!(s.pool.is_taken(a));
    assert_eq!(h.engine.expire(end), 1);
    assert!(
        !s.pool.is_taken(a),
        "an expired lease gives its address back"
    );
    assert_eq!(
        h.engine.leases().get(&key).unwrap().state,
        LeaseState::Expired
    );
    h.engine.expire(end + 99);
    assert!(
        h.engine.leases().get(&key).is_some(),
        "kept for keep_released"
    );
    h.engine.expire(end + 100);
    assert_eq!(h.engine.leases().get(&key), None, "then forgotten");
    assert!(h.engine.leases().is_empty());
}

// ---- Trust (RFC 3046 §2.1, §5), the subnet of a direct client, and the
// small protocol faults of issue 11.

use std::sync::atomic::Ordering::Relaxed;

/// Two subnets: the access link (holds the server's address, a circuit-id
/// reservation) and a pool reached through relays only.
const TRUST: &str = r#"
[[subnet]]
prefix = "198.18.0.0/24"
pools = ["198.18.0.10-198.18.0.12"]
routers = ["198.18.0.1"]
[[subnet.reservation]]
circuit_id = "port-7"
address = "198.18.0.70"

[[subnet]]
prefix = "203.0.113.0/24"
pools = ["203.0.113.10-203.0.113.20"]
routers = ["203.0.113.1"]
"#;

/// Option 82 with circuit-id `port-7`, link selection (82.5) naming the
/// relay-only subnet and a server-id override (82.11).
fn forged_agent_info() -> Vec<u8> {
    let mut ai = vec![1, 6];
    ai.extend_from_slice(b"port-7");
    ai.extend_from_slice(&[5, 4, 203, 0, 113, 1]);
    ai
}

/// The concatenated payload of every instance of `code` in a raw option
/// area (RFC 3396), or None.
fn option_payload(opts: &[u8], code: u8) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < opts.len() && opts[i] != 255 {
        if opts[i] == 0 {
            i += 1;
            continue;
        }
        let len = opts[i + 1] as usize;
        if opts[i] == code {
            out.get_or_insert_with(Vec::new)
                .extend_from_slice(&opts[i + 2..i + 2 + len]);
        }
        i += 2 + len;
    }
    out
}

#[test]
fn option_82_from_a_direct_client_is_ignored_unless_its_link_is_trusted() {
    let mut h = harness(TRUST);
    // Circuit-id of another subscriber's reservation, and 82.5 naming the
    // relay-only subnet: neither is believed from giaddr 0.
    let f = with_raw_option(discover(1, vec![]), 82, &forged_agent_info());
    let r = h.send(&f).unwrap();
    assert_eq!(r.msg.yiaddr(), ip("198.18.0.10"), "no reservation, no 82.5");
    assert_eq!(option_payload(h.raw_options(), 82), None, "not echoed");
    assert_eq!(h.stats.untrusted_agent_info.load(Relaxed), 1);
    assert_eq!(h.stats.untrusted_dropped.load(Relaxed), 0);
    // A server-id override (82.11) from a subscriber is not ours either.
    let f = with_raw_option(discover(2, vec![]), 82, &[11, 4, 198, 18, 0, 99]);
    let r = h.send(&f).unwrap();
    assert_eq!(
        r.msg.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    // Option 118 (RFC 3011) naming the relay-only subnet: ignored too.
    let r = h
        .send(&discover(
            3,
            vec![DhcpOption::SubnetSelection(ip("203.0.113.1"))],
        ))
        .unwrap();
    assert!(ip("198.18.0.0") <= r.msg.yiaddr() && r.msg.yiaddr() <= ip("198.18.0.255"));
    assert_eq!(h.stats.untrusted_agent_info.load(Relaxed), 3);

    // The same frames on a link whose switch inserts option 82 (DHCP
    // snooping): believed, and echoed.
    let mut h = harness(&TRUST.replacen(
        "routers = [\"198.18.0.1\"]",
        "routers = [\"198.18.0.1\"]\ntrust_agent_info = true",
        1,
    ));
    let mut ai = vec![1, 6];
    ai.extend_from_slice(b"port-7");
    let r = h
        .send(&with_raw_option(discover(1, vec![]), 82, &ai))
        .unwrap();
    assert_eq!(
        r.msg.yiaddr(),
        ip("198.18.0.70"),
        "the circuit's reservation"
    );
    assert_eq!(option_payload(h.raw_options(), 82), Some(ai));
    let f = with_raw_option(discover(4, vec![]), 82, &[5, 4, 203, 0, 113, 1]);
    let r = h.send(&f).unwrap();
    assert_eq!(r.msg.yiaddr(), ip("203.0.113.10"), "82.5 link selection");
    assert_eq!(h.stats.untrusted_agent_info.load(Relaxed), 0);
}

#[test]
fn untrusted_agent_info_drop_drops_and_counts() {
    let mut h = Harness::new(&format!("{BASE}\nuntrusted_agent_info = \"drop\"\n{TRUST}"));
    let f = with_raw_option(discover(1, vec![]), 82, &forged_agent_info());
    assert!(h.send(&f).is_none());
    assert_eq!(h.stats.untrusted_agent_info.load(Relaxed), 1);
    assert_eq!(h.stats.untrusted_dropped.load(Relaxed), 1);
    // Without option 82 the same client is served.
    assert!(h.send(&discover(1, vec![])).is_some());
    assert_eq!(h.stats.untrusted_dropped.load(Relaxed), 1);
}

#[test]
fn trusted_relays_limits_whose_option_82_is_believed() {
    let mut h = Harness::new(&format!(
        "{BASE}\ntrusted_relays = [\"198.18.0.252/30\"]\n{TRUST}"
    ));
    let mut ai = vec![1, 6];
    ai.extend_from_slice(b"port-7");
    let relayed = |i: u32, relay: Ipv4Addr| {
        let mut d = request(mac(i), MessageType::Discover, 1, vec![]);
        d.set_giaddr(relay);
        with_raw_option(frame(&d, mac(99), relay, SERVER, None), 82, &ai)
    };
    // A relay of the list: its circuit-id counts.
    let r = h.send(&relayed(1, ip("198.18.0.254"))).unwrap();
    assert_eq!(r.msg.yiaddr(), ip("198.18.0.70"));
    assert_eq!(
        option_payload(h.raw_options(), 82).as_deref(),
        Some(&ai[..])
    );
    // Another giaddr (a subscriber posing as a relay): served by giaddr,
    // option 82 ignored and not echoed.
    let r = h.send(&relayed(2, ip("198.18.0.9"))).unwrap();
    assert_eq!(r.msg.yiaddr(), ip("198.18.0.10"));
    assert_eq!(option_payload(h.raw_options(), 82), None);
    assert_eq!(h.stats.untrusted_agent_info.load(Relaxed), 1);
}

/// The relay-only subnet first in the file, the access link second: the
/// old rule (first subnet without a VLAN) handed direct clients the
/// relay's pool.
const RELAY_FIRST: &str = r#"
[[subnet]]
prefix = "203.0.113.0/24"
pools = ["203.0.113.10-203.0.113.20"]

[[subnet]]
prefix = "198.18.0.0/24"
pools = ["198.18.0.10-198.18.0.12"]
"#;

const IFACE: &[(Ipv4Addr, u8)] = &[(Ipv4Addr::new(198, 18, 0, 1), 15)];

#[test]
fn a_direct_client_gets_the_subnet_of_the_interface_address_never_a_relay_only_one() {
    let cfg = format!("{BASE}\n{RELAY_FIRST}");
    let mut h = Harness::on_interface(&cfg, IFACE);
    let r = h.send(&discover(1, vec![])).unwrap();
    assert_eq!(r.msg.yiaddr(), ip("198.18.0.10"));
    // ciaddr of the relay-only subnet in a DISCOVER opens nothing.
    let mut d = request(mac(2), MessageType::Discover, 5, vec![]);
    d.set_ciaddr(ip("203.0.113.15"));
    let r = h.send(&bcast(&d, 2)).unwrap();
    assert_eq!(r.msg.yiaddr(), ip("198.18.0.11"));
    // A relayed client of that subnet is served through its relay, and
    // renews straight to us (unicast, giaddr 0: RFC 2131 §4.3.2).
    let relay = ip("203.0.113.1");
    let mut d = request(mac(3), MessageType::Discover, 6, vec![]);
    d.set_giaddr(relay);
    let a = h
        .send(&frame(&d, mac(99), relay, SERVER, None))
        .unwrap()
        .msg
        .yiaddr();
    assert_eq!(a, ip("203.0.113.10"));
    let mut s = request(
        mac(3),
        MessageType::Request,
        7,
        vec![
            DhcpOption::ServerIdentifier(SERVER),
            DhcpOption::RequestedIpAddress(a),
        ],
    );
    s.set_giaddr(relay);
    let ack = h.send(&frame(&s, mac(99), relay, SERVER, None)).unwrap();
    assert_eq!(msg_type(&ack.msg), Some(MessageType::Ack));
    let mut renew = request(mac(3), MessageType::Request, 8, vec![]);
    renew.set_ciaddr(a);
    let r = h.send(&frame(&renew, mac(3), a, SERVER, None)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack), "renewal");

    // Without an interface address in it, no subnet serves direct
    // clients, unless `direct = true` says so.
    let mut h = Harness::on_interface(&cfg, &[(ip("192.0.2.1"), 24)]);
    assert!(h.send(&discover(1, vec![])).is_none());
    assert_eq!(h.stats.no_subnet.load(Relaxed), 1);
    let forced = cfg.replacen(
        "pools = [\"203.0.113.10-203.0.113.20\"]",
        "pools = [\"203.0.113.10-203.0.113.20\"]\ndirect = true",
        1,
    );
    let mut h = Harness::on_interface(&forced, &[(ip("192.0.2.1"), 24)]);
    assert_eq!(
        h.send(&discover(1, vec![])).unwrap().msg.yiaddr(),
        ip("203.0.113.10")
    );
    // `direct = false` keeps a subnet for relays even with an address.
    let relay_only = cfg.replacen(
        "pools = [\"198.18.0.10-198.18.0.12\"]",
        "pools = [\"198.18.0.10-198.18.0.12\"]\ndirect = false",
        1,
    );
    let mut h = Harness::on_interface(&relay_only, IFACE);
    assert!(h.send(&discover(1, vec![])).is_none());
}

#[test]
fn a_split_option_82_longer_than_255_bytes_is_echoed_whole() {
    let mut h = harness(SMALL);
    let relay = ip("198.18.0.254");
    let mut d = request(mac(1), MessageType::Discover, 1, vec![]);
    d.set_giaddr(relay);
    // Two instances (RFC 3396): a 250-byte circuit-id and a 48-byte
    // remote-id, 302 bytes joined.
    let mut ai = vec![1, 248];
    ai.extend(std::iter::repeat_n(b'c', 248));
    ai.extend_from_slice(&[2, 52]);
    ai.extend(std::iter::repeat_n(b'r', 52));
    let (a, b) = ai.split_at(200);
    let f = with_raw_option(frame(&d, mac(99), relay, SERVER, None), 82, a);
    let f = with_raw_option(f, 82, b);
    let r = h.send(&f).expect("an OFFER with the whole option 82");
    assert_eq!(msg_type(&r.msg), Some(MessageType::Offer));
    assert_eq!(option_payload(h.raw_options(), 82), Some(ai.clone()));
    // The lease is bound and the ACK leaves too.
    let mut s = request(
        mac(1),
        MessageType::Request,
        2,
        vec![
            DhcpOption::ServerIdentifier(SERVER),
            DhcpOption::RequestedIpAddress(r.msg.yiaddr()),
        ],
    );
    s.set_giaddr(relay);
    let f = with_raw_option(frame(&s, mac(99), relay, SERVER, None), 82, a);
    let r = h.send(&with_raw_option(f, 82, b)).expect("ACK");
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack));
    assert_eq!(option_payload(h.raw_options(), 82), Some(ai));
}

#[test]
fn inform_without_ciaddr_goes_to_its_source_address_or_broadcast_never_to_zero() {
    let mut h = harness(SMALL);
    let m = request(mac(1), MessageType::Inform, 9, vec![]);
    let r = h
        .send(&frame(&m, mac(1), ip("198.18.0.200"), SERVER, None))
        .unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack));
    assert_eq!((r.dst_mac, r.dst_ip), (mac(1), ip("198.18.0.200")));
    // No source address either (or one not of the subnet): broadcast.
    for src in [Ipv4Addr::UNSPECIFIED, ip("192.0.2.9")] {
        let r = h.send(&frame(&m, mac(1), src, SERVER, None)).unwrap();
        assert_eq!((r.dst_mac, r.dst_ip), ([0xff; 6], Ipv4Addr::BROADCAST));
    }
}

#[test]
fn a_selecting_request_without_option_50_is_ignored_not_naked() {
    let mut h = harness(SMALL);
    let a = h.send(&discover(1, vec![])).unwrap().msg.yiaddr();
    let m = request(
        mac(1),
        MessageType::Request,
        201,
        vec![DhcpOption::ServerIdentifier(SERVER)],
    );
    assert!(h.send(&bcast(&m, 1)).is_none(), "no NAK");
    assert_eq!(h.stats.nak.load(Relaxed), 0);
    // The offer still stands.
    let ack = h.send(&select(1, a, SERVER, vec![])).unwrap();
    assert_eq!(msg_type(&ack.msg), Some(MessageType::Ack));
}

#[test]
fn trust_and_ring_settings_are_checked_with_their_line() {
    let parse = |extra: &str| xdhcp::config::Config::parse(&format!("{BASE}{extra}\n{SMALL}"));
    let e = parse("frames = 4096\nring_size = 1024").unwrap_err();
    assert_eq!(e.line, Some(6), "{e}");
    assert!(e.message.contains("ring_size"), "{e}");
    assert!(parse("frames = 4096\nring_size = 2048").is_ok());
    let e = parse("trusted_relays = [\"10.0.0.1/8\"]").unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("host bits"), "{e}");
    let e = parse("untrusted_agent_info = \"maybe\"").unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    let shared = r#"
[[subnet]]
prefix = "203.0.113.0/24"
shared_network = "n"
trust_agent_info = true
[[subnet]]
prefix = "203.0.114.0/24"
shared_network = "n"
"#;
    let e = xdhcp::config::Config::parse(&format!("{BASE}{shared}")).unwrap_err();
    assert!(e.message.contains("must agree"), "{e}");
}

fn decline(i: u32, addr: Ipv4Addr) -> Vec<u8> {
    bcast(
        &request(
            mac(i),
            MessageType::Decline,
            300 + i,
            vec![
                DhcpOption::ServerIdentifier(SERVER),
                DhcpOption::RequestedIpAddress(addr),
            ],
        ),
        i,
    )
}

fn renew(i: u32, ciaddr: Ipv4Addr) -> Vec<u8> {
    let mut m = request(mac(i), MessageType::Request, 400 + i, vec![]);
    m.set_ciaddr(ciaddr);
    frame(&m, mac(i), ciaddr, SERVER, None)
}

/// DORA for client `i`: the address it is bound to.
fn dora(h: &mut Harness, i: u32) -> Ipv4Addr {
    let a = h.send(&discover(i, vec![])).expect("an offer").msg.yiaddr();
    let r = h.send(&select(i, a, SERVER, vec![])).expect("an answer");
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack), "client {i}");
    a
}

/// RFC 2131 §4.3.3: a DECLINE ends a binding. An address that was only
/// offered, or is bound to another client, is not the sender's to
/// decline: two packets must not take an address out of service.
#[test]
fn decline_counts_only_from_the_client_the_address_is_bound_to() {
    let mut h = harness(SMALL);
    let offered = h.send(&discover(1, vec![])).unwrap().msg.yiaddr();
    assert!(h.send(&decline(1, offered)).is_none());
    let r = h.send(&select(1, offered, SERVER, vec![])).unwrap();
    assert_eq!(
        msg_type(&r.msg),
        Some(MessageType::Ack),
        "the offer still stands, nothing was quarantined"
    );
    // Client 2 declines client 1's binding.
    assert!(h.send(&decline(2, offered)).is_none());
    let r = h.send(&renew(1, offered)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack));
    let st = h.stats.snapshot();
    assert_eq!((st.decline, st.decline_not_bound), (2, 2));
}

/// `decline_rate`: one client's DECLINEs beyond it within the hour are
/// ignored and counted; its binding stays.
#[test]
fn declines_beyond_the_rate_are_ignored_and_counted() {
    let mut h = Harness::new(&format!(
        "{BASE}\ndecline_rate = 1\n{}",
        SMALL.replace("10-198.18.0.12", "10-198.18.0.19").replace(
            "max_lease_time = 86400",
            "max_lease_time = 86400\nmax_probation_percent = 100"
        )
    ));
    let a = dora(&mut h, 1);
    h.send(&decline(1, a));
    let b = dora(&mut h, 1);
    assert_ne!(a, b, "the first decline was believed");
    h.send(&decline(1, b));
    let st = h.stats.snapshot();
    assert_eq!((st.decline, st.decline_rate_limited), (2, 1));
    let r = h.send(&renew(1, b)).unwrap();
    assert_eq!(
        msg_type(&r.msg),
        Some(MessageType::Ack),
        "the second was not: still bound"
    );
    // Another client has a rate of its own.
    let c = dora(&mut h, 2);
    h.send(&decline(2, c));
    assert_eq!(h.stats.snapshot().decline_rate_limited, 1);
    assert_ne!(dora(&mut h, 3), c, "client 2's decline quarantined {c}");
}

/// `max_probation_percent`: a DECLINE that finds the cap reached releases
/// the address instead of quarantining it; once the sweeper ends a
/// quarantine, there is room again.
#[test]
fn probation_is_capped_per_subnet_and_over_the_cap_the_address_is_released() {
    // Ten addresses, 10 %: one may be in probation.
    let cfg = SMALL.replace("10-198.18.0.12", "10-198.18.0.19").replace(
        "max_lease_time = 86400",
        "max_lease_time = 86400\nmax_probation_percent = 10",
    );
    let mut h = harness(&cfg);
    let a = dora(&mut h, 1);
    h.send(&decline(1, a));
    let b = dora(&mut h, 2);
    assert_ne!(a, b, "{a} is in probation");
    h.send(&decline(2, b));
    assert_eq!(h.stats.snapshot().probation_full, 1);
    assert_eq!(
        h.send(&discover(3, vec![])).unwrap().msg.yiaddr(),
        b,
        "over the cap {b} went back to the pool"
    );
    let r = h.send(&renew(2, b));
    assert_ne!(
        r.map(|r| msg_type(&r.msg)),
        Some(Some(MessageType::Ack)),
        "client 2's binding ended"
    );
    // The quarantine of `a` ends (probation 600 s): room for one again.
    h.engine.expire(601 + 30);
    let c = dora(&mut h, 4);
    h.send(&decline(4, c));
    assert_eq!(h.stats.snapshot().probation_full, 1, "{c} quarantined");
    assert_ne!(dora(&mut h, 5), c);
}

fn reload(h: &mut Harness, config: &str) {
    use xdhcp::handler::FrameHandler;
    let cfg = xdhcp::config::Config::parse(config).unwrap();
    let next = std::sync::Arc::new(h.engine.reload(&cfg));
    h.h = next.handler(frames::SERVER_MAC, h.stats.clone());
    h.h.begin_batch(std::time::Instant::now());
    h.engine = next;
}

const RESERVE_10: &str = r#"
[[subnet.reservation]]
mac = "02:aa:00:00:00:07"
address = "198.18.0.10"
"#;

/// A reservation added by a reload for an address another client holds:
/// the reserved client is served from the pool meanwhile, the holder is
/// NAKed at its next renewal, and the reserved client moves onto its
/// address at its own next renewal. Never two clients on one address.
#[test]
fn a_reservation_for_a_held_address_moves_the_holder_then_serves_the_owner() {
    let mut h = harness(SMALL);
    let held = dora(&mut h, 1);
    assert_eq!(held, ip("198.18.0.10"));
    reload(&mut h, &format!("{BASE}\n{SMALL}{RESERVE_10}"));

    let interim = dora(&mut h, 7);
    assert_ne!(interim, held, "client 1 still holds {held}");
    let r = h.send(&renew(1, held)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Nak), "holder moved off");
    let moved = dora(&mut h, 1);
    assert!(moved != held && moved != interim, "{moved}");
    // Client 7 renews its interim address: NAKed, so it comes for its own.
    let r = h.send(&renew(7, interim)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Nak));
    assert_eq!(dora(&mut h, 7), held);
    let r = h.send(&renew(7, held)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack));
    assert_eq!(h.stats.snapshot().reservation_conflict, 4);
    // The conflict is over: renewals are plain ACKs again.
    let r = h.send(&renew(1, moved)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack));
    assert_eq!(h.stats.snapshot().reservation_conflict, 4);
}

/// The operator pins a client's current address with a reservation: the
/// client sends a client identifier (so its lease key is not the MAC the
/// reservation names), yet its renewal is its owner's and is ACKed.
#[test]
fn a_reservation_of_the_holders_own_address_does_not_move_it() {
    let mut h = harness(SMALL);
    let id = || vec![DhcpOption::ClientIdentifier(vec![1, 2, 0xaa, 0, 0, 0, 7])];
    let a = h.send(&discover(7, id())).unwrap().msg.yiaddr();
    h.send(&select(7, a, SERVER, id())).unwrap();
    reload(&mut h, &format!("{BASE}\n{SMALL}{RESERVE_10}"));
    let mut m = request(mac(7), MessageType::Request, 9, id());
    m.set_ciaddr(a);
    let r = h.send(&frame(&m, mac(7), a, SERVER, None)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack));
    assert_eq!(h.stats.snapshot().reservation_conflict, 0);
}

/// The same at restore: the journal has the address bound to another
/// client than the reservation's (it was added while the daemon was
/// stopped).
#[test]
fn a_reservation_for_an_address_bound_in_the_journal_is_not_handed_out_twice() {
    use xdhcp::lease::ClientKey;
    use xdhcp::lease::journal::{FixedBytes, LeaseRecord, RecordState};
    let mut h = harness(&format!("{SMALL}{RESERVE_10}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let bound = |i: u32| LeaseRecord {
        subnet: 0,
        addr: ip("198.18.0.10"),
        client: ClientKey::new(0, 0, &mac(i)),
        hwaddr: mac(i),
        state: RecordState::Bound,
        expires_unix: now + 3600,
        cltt_unix: now,
        hostname: FixedBytes::new(&[]).0,
        agent_info: FixedBytes::new(&[]).0,
        fqdn_flags: 0,
    };
    let clock = xdhcp::engine::Clock::now(&h.engine, std::time::Instant::now());
    h.engine.restore(&[bound(1)], clock);
    assert_eq!(h.engine.reservation_conflicts(), 1);
    assert_ne!(
        h.send(&discover(7, vec![])).unwrap().msg.yiaddr(),
        ip("198.18.0.10")
    );
    let r = h.send(&renew(1, ip("198.18.0.10"))).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Nak));
    assert_eq!(
        h.send(&discover(7, vec![])).unwrap().msg.yiaddr(),
        ip("198.18.0.10")
    );
    // The owner's own record is its own.
    let h = harness(&format!("{SMALL}{RESERVE_10}"));
    h.engine.restore(&[bound(7)], clock);
    assert_eq!(h.engine.reservation_conflicts(), 0);
}

const RAPID: &str = r#"
[[subnet]]
prefix = "198.18.0.0/24"
pools = ["198.18.0.10-198.18.0.12"]
lease_time = 7200
rapid_commit = true
"#;

/// RFC 4039: with `rapid_commit`, a DISCOVER carrying option 80 gets an
/// ACK with option 80, and the lease is bound (a renewal is ACKed) and
/// journaled like any ACK. Without option 80, or without the setting, a
/// plain OFFER.
#[test]
fn rapid_commit_acks_a_discover_with_option_80() {
    let rapid = |i: u32| with_raw_option(discover(i, vec![]), 80, &[]);
    let mut h = harness(RAPID);
    let r = h.send(&rapid(1)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack));
    assert!(option_codes(h.raw_options()).contains(&80));
    assert_eq!(
        r.msg.opts().get(OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(7200))
    );
    let a = r.msg.yiaddr();
    let r = h.send(&renew(1, a)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Ack), "bound");
    let r = h.send(&discover(2, vec![])).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Offer));
    assert!(!option_codes(h.raw_options()).contains(&80));
    let st = h.stats.snapshot();
    assert_eq!((st.rapid_commit, st.ack, st.offer), (1, 2, 1));

    let mut h = harness(SMALL);
    let r = h.send(&rapid(3)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Offer));
    assert_eq!(h.stats.snapshot().rapid_commit, 0);

    // The binding goes to the journal like an ACK's.
    let cfg = xdhcp::config::Config::parse(&format!("{BASE}\n{RAPID}")).unwrap();
    let e = xdhcp::engine::Engine::new(&cfg);
    let local = xdhcp::engine::reply::Local {
        mac: frames::SERVER_MAC,
        dscp: 0,
        home: 0,
    };
    let (mut tx, mut record, mut note) = (vec![0; 2048], None, xdhcp::engine::Notes::default());
    let clock = xdhcp::engine::Clock::now(&e, std::time::Instant::now());
    e.process(&rapid(4), &mut tx, clock, &local, &mut record, &mut note);
    let rec = record.expect("a lease record");
    assert_eq!(rec.state, xdhcp::lease::journal::RecordState::Bound);
    assert_eq!(rec.expires_unix, clock.unix + 7200);
}

#[test]
fn decline_and_probation_settings_are_checked() {
    let e = xdhcp::config::Config::parse(&format!(
        "{BASE}\n{}",
        SMALL.replace(
            "lease_time = 7200",
            "lease_time = 7200\nmax_probation_percent = 101"
        )
    ))
    .unwrap_err();
    assert!(e.to_string().contains("max_probation_percent"), "{e}");
    assert!(e.line.is_some(), "{e}");
    let e = xdhcp::config::Config::parse(&format!("{BASE}\ndecline_rate = 70000\n{SMALL}"))
        .unwrap_err();
    assert!(e.line.is_some(), "{e}");
}

/// A reload that changes a subnet's pool gives it a new probation count:
/// the quarantines already in the table are counted into it, so the cap
/// still holds.
#[test]
fn a_reloaded_pool_counts_the_quarantines_it_already_has() {
    let cfg = |last: u8| {
        let s = SMALL
            .replace("10-198.18.0.12", &format!("10-198.18.0.{last}"))
            .replace(
                "max_lease_time = 86400",
                "max_lease_time = 86400\nmax_probation_percent = 10",
            );
        format!("{BASE}\n{s}")
    };
    let mut h = Harness::new(&cfg(19));
    let a = dora(&mut h, 1);
    h.send(&decline(1, a));
    reload(&mut h, &cfg(18));
    let b = dora(&mut h, 2);
    assert_ne!(a, b, "still in probation");
    h.send(&decline(2, b));
    assert_eq!(h.stats.snapshot().probation_full, 1);
}

/// `[subnet.limits]` beside the DECLINE rules and reservations: a lease's
/// count on its line goes back whenever it leaves its address, also when a
/// DECLINE over the probation cap releases it, and when a reservation
/// moves its holder off.
const LIMIT_1: &str = "[subnet.limits]\nleases_per_mac = 1\n";

fn mac_count(h: &Harness, i: u32) -> u32 {
    let lines = h.engine.lines();
    lines.count(lines.key(xdhcp::lease::limits::LineKind::Mac, 0, &mac(i)))
}

#[test]
fn a_declined_lease_gives_its_line_count_back_quarantined_or_released() {
    // Ten addresses, 10 %: one may be in probation.
    let cfg = SMALL.replace("10-198.18.0.12", "10-198.18.0.19").replace(
        "max_lease_time = 86400",
        "max_lease_time = 86400\nmax_probation_percent = 10",
    );
    let mut h = harness(&format!("{cfg}{LIMIT_1}"));
    let a = dora(&mut h, 1);
    assert_eq!(mac_count(&h, 1), 1);
    h.send(&decline(1, a));
    assert_eq!(mac_count(&h, 1), 0, "quarantined");
    let b = dora(&mut h, 2);
    h.send(&decline(2, b));
    assert_eq!(h.stats.snapshot().probation_full, 1);
    assert_eq!(mac_count(&h, 2), 0, "released over the cap");
    // Both may lease again under their limit of one.
    dora(&mut h, 1);
    dora(&mut h, 2);
    assert_eq!((mac_count(&h, 1), mac_count(&h, 2)), (1, 1));
    assert_eq!(h.stats.snapshot().limited_mac, 0);
}

#[test]
fn a_holder_moved_off_a_reservation_gives_its_line_count_back() {
    let mut h = harness(&format!("{SMALL}{LIMIT_1}"));
    let held = dora(&mut h, 1);
    assert_eq!(held, ip("198.18.0.10"));
    reload(&mut h, &format!("{BASE}\n{SMALL}{LIMIT_1}{RESERVE_10}"));
    let r = h.send(&renew(1, held)).unwrap();
    assert_eq!(msg_type(&r.msg), Some(MessageType::Nak), "holder moved off");
    assert_eq!(mac_count(&h, 1), 0);
    // Its limit of one would refuse the new lease had the old one kept
    // its count.
    let moved = dora(&mut h, 1);
    assert_ne!(moved, held);
    assert_eq!(mac_count(&h, 1), 1);
    assert_eq!(h.stats.snapshot().limited_mac, 0);
}
