//! Two engines as two cluster members on one segment: each answers only
//! the clients of its shares and allocates only from its pool words, so
//! together they answer every client once and never hand out one address
//! twice; a record applied from the other makes its leases renewable here
//! once the share is taken over.
use super::bound_tests::run;
use super::conflict::tests::request;
use super::{Clock, Engine, Silence, Verdict, bucket_of};
use crate::config::Config;
use crate::lease::journal::RecordState;
use crate::wire::dhcp::MessageType;
use crate::wire::testutil::{bootp, udp_frame};
use std::collections::HashMap;
use std::net::Ipv4Addr;

fn text(name: &str) -> String {
    format!(
        r#"
interface = "test0"
server_id = "192.0.2.1"

[journal]
dir = "/nonexistent/not-opened-by-these-tests"

[cluster]
name = "{name}"
peers = ["a", "b"]
nats = ["nats://10.99.0.11:4222"]

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["192.0.2.10-192.0.2.250"]
lease_time = 3600
"#
    )
}

fn member(name: &str, shares: u32) -> Engine {
    let e = Engine::new(&Config::parse(&text(name)).unwrap());
    e.ownership().set_owned(shares);
    e
}

fn mac(last: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x77, last]
}

fn offered(v: Verdict) -> bool {
    matches!(v, Verdict::Reply(_, MessageType::Offer, _))
}

fn acked(v: Verdict) -> bool {
    matches!(v, Verdict::Reply(_, MessageType::Ack, _))
}

/// A REBINDING REQUEST (broadcast, ciaddr set, no server identifier).
fn rebind(last: u8, addr: Ipv4Addr) -> Vec<u8> {
    let mut b = bootp(&[53, 1, 3, 255]);
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&(0x6000 + u32::from(last)).to_be_bytes());
    b[12..16].copy_from_slice(&addr.octets());
    b[28..34].copy_from_slice(&mac(last));
    udp_frame(&[], mac(last), addr, Ipv4Addr::BROADCAST, 68, 67, &b)
}

#[test]
fn each_client_is_answered_by_the_owner_of_its_bucket_alone() {
    let a = member("a", 0b01);
    let b = member("b", 0b10);
    let mut given: HashMap<Ipv4Addr, u8> = HashMap::new();
    for last in 0..200u8 {
        let frame = request(last, &[53, 1, 1]);
        let (va, _, _, ya) = run(&a, &frame, 1);
        let (vb, _, _, yb) = run(&b, &frame, 1);
        let owner = bucket_of(&mac(last)) % 2;
        assert_eq!(offered(va), owner == 0, "client {last}: a");
        assert_eq!(offered(vb), owner == 1, "client {last}: b");
        let (silent, y, pool) = if owner == 0 {
            (vb, ya, &a.subnets()[0].pool)
        } else {
            (va, yb, &b.subnets()[0].pool)
        };
        assert_eq!(
            silent,
            Verdict::Silent(MessageType::Discover, Silence::NotOwned)
        );
        assert_eq!(pool.share_of(y), Some(owner), "client {last} offered {y}");
        assert!(given.insert(y, last).is_none(), "{y} offered twice");
    }
    // Some of each (the hash spreads 200 MACs over both halves).
    let by_a = given
        .keys()
        .filter(|y| a.subnets()[0].pool.share_of(**y) == Some(0));
    assert!((60..140).contains(&by_a.count()));
}

#[test]
fn nobody_answers_while_no_share_is_owned() {
    let e = member("a", 0);
    for last in 0..20 {
        let (v, rec, _, _) = run(&e, &request(last, &[53, 1, 1]), 1);
        assert_eq!(v, Verdict::Silent(MessageType::Discover, Silence::NotOwned));
        assert!(rec.is_none());
    }
    assert_eq!(e.subnets()[0].pool.taken(), 0, "nothing taken");
}

#[test]
fn a_takeover_renews_the_others_leases_and_never_reuses_their_addresses() {
    let a = member("a", 0b01);
    let b = member("b", 0b10);
    let clock = Clock {
        secs: 2,
        unix: 1_000_000,
        micros: 2_000_000,
    };
    // a binds its clients (DISCOVER, SELECTING REQUEST); b learns each
    // record as the stream would bring it.
    let mut bound = Vec::new();
    for last in (0..100u8).filter(|l| bucket_of(&mac(*l)).is_multiple_of(2)) {
        let (v, _, _, y) = run(&a, &request(last, &[53, 1, 1]), 1);
        assert!(offered(v));
        let o = y.octets();
        let sel = [53, 1, 3, 54, 4, 192, 0, 2, 1, 50, 4, o[0], o[1], o[2], o[3]];
        let (v, rec, _, y2) = run(&a, &request(last, &sel), 2);
        assert!(acked(v) && y2 == y);
        let rec = rec.expect("a binding is journaled");
        assert_eq!(rec.state, RecordState::Bound);
        assert!(b.apply_remote(&rec, clock));
        bound.push((last, y));
    }
    assert!(bound.len() > 20);
    // Before the takeover b leaves them alone.
    let (last, y) = bound[0];
    let (v, _, _, _) = run(&b, &rebind(last, y), 3);
    assert_eq!(v, Verdict::Silent(MessageType::Request, Silence::NotOwned));
    // a dies; b takes share 0.
    b.ownership().grant(0);
    for &(last, y) in &bound {
        let (v, _, _, got) = run(&b, &rebind(last, y), 4);
        assert!(acked(v), "rebinding of {y} by client {last}: {v:?}");
        assert_eq!(got, y);
        let o = y.octets();
        let reboot = [53, 1, 3, 50, 4, o[0], o[1], o[2], o[3]];
        let (v, _, _, got) = run(&b, &request(last, &reboot), 5);
        assert!(acked(v) && got == y, "INIT-REBOOT of {y}: {v:?}");
    }
    // New clients of either share get none of a's addresses.
    let taken: Vec<_> = bound.iter().map(|(_, y)| *y).collect();
    for last in 100..250u8 {
        let (v, _, _, y) = run(&b, &request(last, &[53, 1, 1]), 6);
        assert!(offered(v), "client {last}");
        assert!(!taken.contains(&y), "{y} is still leased to a's client");
    }
}

#[test]
fn a_requested_address_of_the_other_share_is_not_taken() {
    let a = member("a", 0b01);
    // An address of share 1 (word 1 of the pool: its 64 addresses from
    // 192.0.2.74), asked for by a client of a's share.
    let theirs = Ipv4Addr::new(192, 0, 2, 80);
    assert_eq!(a.subnets()[0].pool.share_of(theirs), Some(1));
    let last = (0..=255u8)
        .find(|l| bucket_of(&mac(*l)).is_multiple_of(2))
        .unwrap();
    let (v, _, _, y) = run(&a, &request(last, &[53, 1, 1, 50, 4, 192, 0, 2, 80]), 1);
    assert!(offered(v));
    assert_ne!(y, theirs);
    assert!(!a.subnets()[0].pool.is_taken(theirs));
}

/// Option 51 (lease time) of the reply `e` gives to `frame` at `secs`.
fn lease_time_of_reply(e: &Engine, frame: &[u8], secs: u32) -> Option<u32> {
    let mut tx = vec![0u8; 2048];
    let local = super::reply::Local {
        mac: [2, 0, 0, 0, 0, 1],
        dscp: 0,
        home: 0,
    };
    let clock = Clock {
        secs,
        unix: 0,
        micros: u64::from(secs) * 1_000_000,
    };
    let (mut record, mut notes) = (None, super::Notes::default());
    let v = e.process(frame, &mut tx, clock, &local, &mut record, &mut notes);
    assert!(record.is_none(), "a renewal while cut off changes nothing");
    let Verdict::Reply(_, MessageType::Ack, len) = v else {
        return None;
    };
    let mut i = 14 + 20 + 8 + 240;
    while i + 1 < len && tx[i] != 255 {
        if tx[i] == 51 {
            return Some(u32::from_be_bytes(tx[i + 2..i + 6].try_into().unwrap()));
        }
        i += 2 + usize::from(tx[i + 1]);
    }
    None
}

#[test]
fn cut_off_it_renews_what_it_holds_for_the_time_left_and_nothing_else() {
    let a = member("a", 0b01);
    let last = (0..=255u8)
        .find(|l| bucket_of(&mac(*l)).is_multiple_of(2))
        .unwrap();
    let (_, _, _, y) = run(&a, &request(last, &[53, 1, 1]), 1);
    let o = y.octets();
    let sel = [53, 1, 3, 54, 4, 192, 0, 2, 1, 50, 4, o[0], o[1], o[2], o[3]];
    let (v, _, _, _) = run(&a, &request(last, &sel), 100);
    assert!(acked(v));
    // Lost the cluster: share 0 is no longer owned, only renewed.
    a.ownership().set_owned(0);
    a.ownership().set_renewing(0b01);
    assert_eq!(
        lease_time_of_reply(&a, &rebind(last, y), 1100),
        Some(3600 - 1000)
    );
    let reboot = [53, 1, 3, 50, 4, o[0], o[1], o[2], o[3]];
    assert_eq!(
        lease_time_of_reply(&a, &request(last, &reboot), 1200),
        Some(3600 - 1100)
    );
    // Nothing new: no offer, no other address, no SELECTING.
    let (v, rec, _, _) = run(&a, &request(last, &[53, 1, 1]), 1200);
    assert_eq!(v, Verdict::Silent(MessageType::Discover, Silence::NotOwned));
    assert!(rec.is_none());
    let other = [53, 1, 3, 50, 4, o[0], o[1], o[2], o[3].wrapping_add(1)];
    assert_eq!(lease_time_of_reply(&a, &request(last, &other), 1200), None);
    assert_eq!(lease_time_of_reply(&a, &request(last, &sel), 1200), None);
    // Near its end it is left to a server that owns it.
    assert_eq!(lease_time_of_reply(&a, &rebind(last, y), 3690), None);
    // Back in the cluster: a renewal extends it again, with a record.
    a.ownership().set_renewing(0);
    a.ownership().set_owned(0b01);
    let (v, rec, _, _) = run(&a, &rebind(last, y), 3000);
    assert!(acked(v) && rec.is_some());
}
