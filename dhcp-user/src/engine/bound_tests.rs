//! The bounded lease table under the decisions that make records besides
//! DISCOVER and REQUEST: a DECLINE's quarantine, the probation of an
//! answered conflict check, a rapid-commit binding. Whatever finds no room
//! gives its address back to the pool; nothing is lost or leaked.
use super::conflict::tests::{discover, request};
use super::{Clock, Engine, Notes, Probe, Silence, Verdict};
use crate::config::Config;
use crate::engine::reply::Local;
use crate::lease::LeaseTable;
use crate::lease::journal::{LeaseRecord, RecordState};
use crate::wire::dhcp::MessageType;
use crate::wire::testutil::{bootp, udp_frame};
use std::net::Ipv4Addr;
use std::sync::Arc;

const A10: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const A12: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);

/// The engine's verdict on `frame` at `secs`, its journal record, notes,
/// and the reply's yiaddr (also the conflict check's tests' way in).
pub(super) fn run(
    e: &Engine,
    frame: &[u8],
    secs: u32,
) -> (Verdict, Option<LeaseRecord>, Notes, Ipv4Addr) {
    let mut tx = vec![0u8; 2048];
    let local = Local {
        mac: [2, 0, 0, 0, 0, 1],
        dscp: 0,
        home: 0,
    };
    let clock = Clock {
        secs,
        unix: 0,
        micros: u64::from(secs) * 1_000_000,
    };
    let (mut record, mut notes) = (None, Notes::default());
    let v = e.process(frame, &mut tx, clock, &local, &mut record, &mut notes);
    let yiaddr = Ipv4Addr::new(tx[58], tx[59], tx[60], tx[61]);
    (v, record, notes, yiaddr)
}

fn is(v: Verdict, kind: MessageType) -> bool {
    matches!(v, Verdict::Reply(_, k, _) if k == kind)
}

/// `e` with its lease table replaced by one shard of `records` (so that
/// which record a new one meets does not depend on the random hash).
fn one_shard(text: &str, records: usize) -> Engine {
    let mut e = Engine::new(&Config::parse(text).unwrap());
    e.leases = Arc::new(LeaseTable::with_shards(records, 1));
    e
}

/// The SELECTING REQUEST of client `last` for `addr` from 192.0.2.1.
fn select(last: u8, addr: Ipv4Addr) -> Vec<u8> {
    let a = addr.octets();
    request(
        last,
        &[53, 1, 3, 54, 4, 192, 0, 2, 1, 50, 4, a[0], a[1], a[2], a[3]],
    )
}

/// A broadcast request of client `id` (two bytes of MAC) with these
/// options (53 first) to server 10.0.0.1.
fn request16(id: u16, options: &[u8]) -> Vec<u8> {
    let mut o = options.to_vec();
    o.push(255);
    let mut b = bootp(&o);
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&(0x9000 + u32::from(id)).to_be_bytes());
    let mac = [0x02, 0, 0, 0x88, (id >> 8) as u8, id as u8];
    b[28..34].copy_from_slice(&mac);
    udp_frame(
        &[],
        mac,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        68,
        67,
        &b,
    )
}

fn with_addr(id: u16, kind: u8, a: Ipv4Addr) -> Vec<u8> {
    let a = a.octets();
    request16(
        id,
        &[
            53, 1, kind, 54, 4, 10, 0, 0, 1, 50, 4, a[0], a[1], a[2], a[3],
        ],
    )
}

/// 64 shards of one record each, filled with bound clients; then each of
/// them declines its address. A quarantine that lands in another full
/// shard finds no room: the DECLINE is counted `table_full`, journaled as
/// a release, its address is free again and out of probation. One that
/// finds room (the decliner's own, just emptied shard) is a quarantine as
/// usual. Probation and pool agree with the quarantines kept.
#[test]
fn a_decline_without_room_for_its_quarantine_gives_the_address_back() {
    let e = Engine::new(
        &Config::parse(
            r#"
interface = "test0"
server_id = "10.0.0.1"
max_clients = 64

[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.1.0-10.0.20.255"]
"#,
        )
        .unwrap(),
    );
    assert_eq!(e.leases().capacity(), 64);
    let s = &e.subnets()[0];
    let mut bound = Vec::new();
    let mut refused = 0;
    for id in 0..2000u16 {
        let (v, _, _, yiaddr) = run(&e, &request16(id, &[53, 1, 1]), 10);
        if v == Verdict::Silent(MessageType::Discover, Silence::TableFull) {
            refused += 1;
            continue;
        }
        assert!(is(v, MessageType::Offer), "{v:?}");
        let (v, _, _, _) = run(&e, &with_addr(id, 3, yiaddr), 10);
        assert!(is(v, MessageType::Ack), "{v:?}");
        bound.push((id, yiaddr));
    }
    assert!(bound.len() <= 64 && refused > 0, "{} bound", bound.len());
    assert_eq!(
        s.pool.taken() as usize,
        bound.len(),
        "refusals took nothing"
    );
    let (mut kept, mut no_room) = (0u32, 0u32);
    for &(id, addr) in &bound {
        let (v, rec, _, _) = run(&e, &with_addr(id, 4, addr), 20);
        let rec = rec.expect("a journal record");
        assert_eq!(rec.addr, addr);
        match v {
            Verdict::Silent(MessageType::Decline, Silence::TableFull) => {
                no_room += 1;
                assert_eq!(rec.state, RecordState::Released);
                assert!(!s.pool.is_taken(addr), "{addr} back in the pool");
            }
            Verdict::Silent(MessageType::Decline, Silence::Ignored) => {
                kept += 1;
                assert_eq!(rec.state, RecordState::Declined);
                assert!(s.pool.is_taken(addr), "{addr} quarantined");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(no_room > 0, "{kept} quarantines all found room");
    assert_eq!(
        s.in_probation(),
        kept,
        "probation counts the kept ones only"
    );
    assert_eq!(s.pool.taken(), kept, "nothing else is taken");
}

/// A conflict answered for an offer that was evicted meanwhile, with the
/// table full of bindings: no room for the probation, so the address is
/// left in the pool and nothing is journaled.
#[test]
fn a_conflict_without_room_for_its_probation_leaves_the_address_free() {
    let e = one_shard(super::conflict::tests::CHECKED, 1);
    let (_, _, notes, yiaddr) = run(&e, &discover(1), 10);
    let Probe::Needed(ask) = notes.probe else {
        panic!("{:?}", notes.probe);
    };
    assert_eq!(yiaddr, A10);
    // Client 2 asks for .12: its offer evicts client 1's (.10 goes back),
    // then it binds, and the one record of the table is bound.
    let a = A12.octets();
    let (v, _, _, yiaddr) = run(
        &e,
        &request(2, &[53, 1, 1, 50, 4, a[0], a[1], a[2], a[3]]),
        10,
    );
    assert!(is(v, MessageType::Offer) && yiaddr == A12, "{v:?} {yiaddr}");
    assert_eq!(e.leases().evicted(), 1);
    assert!(is(run(&e, &select(2, A12), 10).0, MessageType::Ack));
    let s = &e.subnets()[0];
    assert!(!s.pool.is_taken(A10), "the evicted offer's address is free");
    assert_eq!(
        e.conflict(
            &ask,
            Clock {
                secs: 11,
                unix: 0,
                micros: 11_000_000
            }
        ),
        None
    );
    assert!(!s.pool.is_taken(A10), "still free: no probation record");
    assert_eq!(e.leases().len(), 1);
    assert_eq!(s.pool.taken(), 1);
    // A new client is refused, and takes nothing.
    let (v, rec, _, _) = run(&e, &discover(3), 12);
    assert_eq!(
        v,
        Verdict::Silent(MessageType::Discover, Silence::TableFull)
    );
    assert_eq!((rec, s.pool.taken()), (None, 1));
}

/// A rapid-commit DISCOVER of a new client in a full table: no ACK, no
/// journal record, its address back in the pool.
#[test]
fn a_rapid_commit_without_room_is_refused_and_takes_nothing() {
    let e = one_shard(
        &super::conflict::tests::CHECKED
            .replace("conflict_check = \"icmp\"", "rapid_commit = true"),
        1,
    );
    let rapid = |last| request(last, &[53, 1, 1, 80, 0]);
    let (v, rec, _, yiaddr) = run(&e, &rapid(1), 10);
    assert!(is(v, MessageType::Ack) && yiaddr == A10, "{v:?}");
    assert_eq!(rec.map(|r| r.state), Some(RecordState::Bound));
    let (v, rec, _, _) = run(&e, &rapid(2), 10);
    assert_eq!(
        v,
        Verdict::Silent(MessageType::Discover, Silence::TableFull)
    );
    assert_eq!(rec, None);
    assert_eq!(e.subnets()[0].pool.taken(), 1);
}
