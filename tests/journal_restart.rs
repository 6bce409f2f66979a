//! Leases survive a restart through the journal: an ACKed lease is
//! restored into the table and the pool, the client renews the same
//! address, and nobody else is offered it. In durable mode the ACK waits
//! for its record to be synced.
mod frames;

use dhcproto::v4::{DhcpOption, MessageType};
use frames::{Harness, frame, mac, msg_type, request};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use xdhcp::engine::{Clock, JournalLink};
use xdhcp::handler::FrameHandler;
use xdhcp::lease::journal::{Durability, Journal, JournalHandle, JournalOptions};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const CONFIG: &str = r#"
interface = "lab0"
server_id = "198.18.0.1"
[[subnet]]
prefix = "198.18.0.0/24"
pools = ["198.18.0.10-198.18.0.20"]
lease_time = 3600
"#;

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("xdhcp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    Dir(d)
}

/// A fresh engine over the journal in `dir`, as the daemon starts one.
fn start(dir: &Dir, mode: Durability) -> (Harness, JournalHandle, usize) {
    let (j, rec) = Journal::open(&dir.0, mode, JournalOptions::default()).unwrap();
    let mut h = Harness::new(CONFIG);
    let (restored, _) = h
        .engine
        .restore(&rec.leases, Clock::now(&h.engine, Instant::now()));
    let link = JournalLink::new(j.producer().unwrap(), mode == Durability::Durable);
    let handler = h
        .engine
        .handler(frames::SERVER_MAC, h.stats.clone())
        .with_journal(link);
    h.h = handler;
    h.h.begin_batch(Instant::now());
    (h, j, restored)
}

fn dora(h: &mut Harness, i: u32) -> (Ipv4Addr, u64) {
    let d = request(mac(i), MessageType::Discover, i, vec![]);
    let o = h
        .send(&frame(
            &d,
            mac(i),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            None,
        ))
        .unwrap();
    let addr = o.msg.yiaddr();
    let r = request(
        mac(i),
        MessageType::Request,
        i,
        vec![
            DhcpOption::ServerIdentifier(SERVER),
            DhcpOption::RequestedIpAddress(addr),
        ],
    );
    let a = h
        .send(&frame(
            &r,
            mac(i),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            None,
        ))
        .unwrap();
    assert_eq!(msg_type(&a.msg), Some(MessageType::Ack));
    (addr, h.h.hold_for())
}

#[test]
fn durable_ack_waits_for_its_record_and_leases_survive_a_restart() {
    let dir = temp_dir("durable");
    let (mut h, j, restored) = start(&dir, Durability::Durable);
    assert_eq!(restored, 0);
    let mut bound = Vec::new();
    for i in 0..5 {
        let (addr, ticket) = dora(&mut h, i);
        assert!(ticket > 0, "a durable ACK waits for a journal ticket");
        bound.push(addr);
    }
    // The OFFER waits for nothing: only ACKs carry leases.
    let d = request(mac(50), MessageType::Discover, 50, vec![]);
    h.send(&frame(
        &d,
        mac(50),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        None,
    ))
    .unwrap();
    assert_eq!(h.h.hold_for(), 0);
    let last = 5;
    let t0 = Instant::now();
    while h.h.durable() < last {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the journal never synced"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(h);
    j.close().unwrap();

    let (mut h, j2, restored) = start(&dir, Durability::Durable);
    assert_eq!(restored, 5);
    // A renewal of a restored lease is ACKed with the same address.
    let mut renew = request(mac(2), MessageType::Request, 77, vec![]);
    renew.set_ciaddr(bound[2]);
    let r = h
        .send(&frame(&renew, mac(2), bound[2], SERVER, None))
        .unwrap();
    assert_eq!(
        (msg_type(&r.msg), r.msg.yiaddr()),
        (Some(MessageType::Ack), bound[2])
    );
    // A new client is not offered any restored address.
    let d = request(mac(9), MessageType::Discover, 9, vec![]);
    let o = h
        .send(&frame(
            &d,
            mac(9),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            None,
        ))
        .unwrap();
    assert!(
        !bound.contains(&o.msg.yiaddr()),
        "{} was restored as bound",
        o.msg.yiaddr()
    );
    drop(h);
    j2.close().unwrap();
}

#[test]
fn released_lease_is_not_restored_as_bound() {
    let dir = temp_dir("released");
    let (mut h, j, _) = start(
        &dir,
        Durability::Fast {
            max_delay: Duration::from_millis(5),
        },
    );
    let (addr, ticket) = dora(&mut h, 1);
    assert_eq!(ticket, 0, "fast mode: the ACK leaves at once");
    let mut rel = request(
        mac(1),
        MessageType::Release,
        3,
        vec![DhcpOption::ServerIdentifier(SERVER)],
    );
    rel.set_ciaddr(addr);
    assert!(h.send(&frame(&rel, mac(1), addr, SERVER, None)).is_none());
    drop(h);
    j.close().unwrap();
    let (mut h, j, _) = start(&dir, Durability::Durable);
    // The released address is free for the next client again.
    let d = request(mac(2), MessageType::Discover, 2, vec![]);
    let o = h
        .send(&frame(
            &d,
            mac(2),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            None,
        ))
        .unwrap();
    assert_eq!(o.msg.yiaddr(), addr);
    drop(h);
    j.close().unwrap();
}
