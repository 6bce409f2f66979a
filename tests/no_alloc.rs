//! The packet path allocates nothing: a counting global allocator sees
//! zero allocations while the engine answers 100,000 DISCOVER/REQUEST
//! exchanges (all frames are built before counting starts), while a flood
//! of distinct MACs runs far past the lease table's bound, while OFFERs
//! wait for conflict checks, and while DDNS names are made.
mod frames;

use dhcproto::v4::{DhcpOption, MessageType};
use frames::{SERVER_MAC, frame, mac, request};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;
use xdhcp::config::Config;
use xdhcp::engine::Engine;
use xdhcp::handler::{FrameHandler, TX_FRAME_CAPACITY};
use xdhcp::stats::WorkerStats;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);
thread_local!(static COUNTING: Cell<bool> = const { Cell::new(false) });

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Relaxed);
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Relaxed);
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const CLIENTS: u32 = 100_000;
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

const PLAIN: &str = r#"
interface = "lab0"
server_id = "198.18.0.1"
[[subnet]]
prefix = "198.18.0.0/15"
pools = ["198.18.0.10-198.19.255.254"]
routers = ["198.18.0.1"]
dns = ["198.18.0.1"]
"#;

#[test]
fn engine_allocates_nothing_per_packet() {
    dora_allocates_nothing(PLAIN, CLIENTS, false);
}

/// With every limit of `[subnet.limits]` on: the source check, the rate
/// buckets, the line counters taken and, for a second client identifier
/// of each MAC, refused.
#[test]
fn limits_allocate_nothing_per_packet() {
    let cfg = format!(
        "{PLAIN}[subnet.limits]\nleases_per_mac = 1\n\
         requests_per_mac = 1000000\nburst_per_mac = 1000000\ncheck_src_mac = true\n"
    );
    dora_allocates_nothing(&cfg, 20_000, true);
}

fn dora_allocates_nothing(config: &str, clients: u32, limited: bool) {
    let cfg = Config::parse(config).unwrap();
    let engine = Arc::new(Engine::new(&cfg));
    let stats = Arc::new(WorkerStats::default());
    let mut h = engine.handler(SERVER_MAC, stats.clone());
    let mut discovers = Vec::with_capacity(clients as usize);
    let mut requests = Vec::with_capacity(clients as usize);
    let mut second_ids = Vec::with_capacity(clients as usize);
    for i in 0..clients {
        let d = request(
            mac(i),
            MessageType::Discover,
            i,
            vec![DhcpOption::ClientIdentifier(vec![0xff, 1, 2, 3])],
        );
        second_ids.push(frame(
            &d,
            mac(i),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            None,
        ));
        let d = request(mac(i), MessageType::Discover, i, vec![]);
        discovers.push(frame(
            &d,
            mac(i),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            None,
        ));
        let r = request(
            mac(i),
            MessageType::Request,
            i,
            vec![
                DhcpOption::ServerIdentifier(SERVER),
                DhcpOption::RequestedIpAddress(Ipv4Addr::UNSPECIFIED),
            ],
        );
        requests.push(frame(
            &r,
            mac(i),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            None,
        ));
    }
    let at50 = frames::option50_value(&requests[0]);
    let mut tx = vec![0u8; TX_FRAME_CAPACITY];

    COUNTING.with(|c| c.set(true));
    h.begin_batch(Instant::now());
    for i in 0..clients as usize {
        let n = h.handle(&discovers[i], &mut tx).expect("an OFFER");
        // yiaddr of the OFFER: Ethernet 14 + IPv4 20 + UDP 8 + 16.
        let yiaddr = &tx[58..62];
        assert!(n > 300);
        requests[i][at50..at50 + 4].copy_from_slice(yiaddr);
        h.handle(&requests[i], &mut tx).expect("an ACK");
        if limited {
            assert!(h.handle(&second_ids[i], &mut tx).is_none());
        }
    }
    COUNTING.with(|c| c.set(false));

    let s = stats.snapshot();
    assert_eq!(
        (s.offer, s.ack, s.nak, s.malformed),
        (u64::from(clients), u64::from(clients), 0, 0)
    );
    assert_eq!(s.limited_mac, if limited { u64::from(clients) } else { 0 });
    assert_eq!(ALLOCS.load(Relaxed), 0, "allocations on the packet path");
}

/// Where chaddr starts in our frames: Ethernet 14 + IPv4 20 + UDP 8 + 28.
const CHADDR: usize = 14 + 20 + 8 + 28;
/// ciaddr: Ethernet 14 + IPv4 20 + UDP 8 + 12.
const CIADDR: usize = 14 + 20 + 8 + 12;
const YIADDR: usize = 14 + 20 + 8 + 16;

/// One frame for all clients: client `i`'s MAC is patched into chaddr.
fn as_client(f: &mut [u8], i: u32) {
    f[CHADDR + 2..CHADDR + 6].copy_from_slice(&i.to_be_bytes());
}

/// A flood of 44,000 distinct MACs through a table of `max_clients =
/// 1024`: first DORA and RELEASE (each leaves a released record, which
/// the next ones evict), then DISCOVERs only (held offers evict the
/// released records, then each other, their addresses going back to the
/// pool), then DORA until every record is bound and new clients are
/// refused. The table stays at its bound, its memory never changes, and
/// nothing allocates.
#[test]
fn a_flood_of_macs_past_max_clients_allocates_nothing() {
    let cfg = Config::parse(
        r#"
interface = "lab0"
server_id = "198.18.0.1"
max_clients = 1024
[[subnet]]
prefix = "198.18.0.0/20"
pools = ["198.18.0.10-198.18.15.254"]
routers = ["198.18.0.1"]
"#,
    )
    .unwrap();
    let engine = Arc::new(Engine::new(&cfg));
    let stats = Arc::new(WorkerStats::default());
    let mut h = engine.handler(SERVER_MAC, stats.clone());
    let table = engine.leases();
    let (capacity, bytes) = (table.capacity(), table.footprint());
    assert_eq!(capacity, 1024);
    let build = |kind, opts| {
        frame(
            &request(mac(0), kind, 1, opts),
            mac(0),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            None,
        )
    };
    let mut discover = build(MessageType::Discover, vec![]);
    let mut select = build(
        MessageType::Request,
        vec![
            DhcpOption::ServerIdentifier(SERVER),
            DhcpOption::RequestedIpAddress(Ipv4Addr::UNSPECIFIED),
        ],
    );
    let mut release = build(
        MessageType::Release,
        vec![DhcpOption::ServerIdentifier(SERVER)],
    );
    let at50 = frames::option50_value(&select);
    let mut tx = vec![0u8; TX_FRAME_CAPACITY];
    // Client `i` sends a DISCOVER; `steps` more: 1 the REQUEST for the
    // offer, 2 then a RELEASE. Whether it was offered an address.
    let mut client = |h: &mut xdhcp::engine::Handler, i: u32, steps: u8| -> bool {
        as_client(&mut discover, i);
        if h.handle(&discover, &mut tx).is_none() {
            return false;
        }
        if steps == 0 {
            return true;
        }
        let yiaddr: [u8; 4] = tx[YIADDR..YIADDR + 4].try_into().unwrap();
        as_client(&mut select, i);
        select[at50..at50 + 4].copy_from_slice(&yiaddr);
        assert!(h.handle(&select, &mut tx).is_some(), "an ACK");
        if steps == 2 {
            as_client(&mut release, i);
            release[CIADDR..CIADDR + 4].copy_from_slice(&yiaddr);
            assert!(h.handle(&release, &mut tx).is_none());
        }
        true
    };

    COUNTING.with(|c| c.set(true));
    h.begin_batch(Instant::now());
    for i in 0..20_000 {
        assert!(client(&mut h, i, 2), "client {i} bound and released");
    }
    let after_release = (table.len(), table.evicted());
    let mut offers = 0;
    for i in 20_000..40_000 {
        offers += u64::from(client(&mut h, i, 0));
    }
    let after_offers = (table.len(), table.evicted());
    let mut bound = 0;
    for i in 40_000..44_000 {
        bound += u64::from(client(&mut h, i, 1));
    }
    COUNTING.with(|c| c.set(false));

    assert_eq!(ALLOCS.load(Relaxed), 0, "allocations on the packet path");
    let s = stats.snapshot();
    assert_eq!(after_release, (capacity, 20_000 - capacity as u64));
    assert_eq!(
        offers, 20_000,
        "every flooding client is offered an address"
    );
    assert_eq!(
        after_offers,
        (capacity, 40_000 - capacity as u64),
        "each new offer evicted one record"
    );
    // Now every record of the table is bound: the rest are refused.
    assert!(bound > 0 && bound <= capacity as u64, "{bound} bound");
    assert_eq!(s.table_full, 4_000 - bound);
    assert_eq!(s.offer, 20_000 + 20_000 + bound);
    assert_eq!((table.capacity(), table.footprint()), (capacity, bytes));
    let mut states = std::collections::HashMap::new();
    table.retain(|_, l| {
        *states.entry(format!("{:?}", l.state)).or_insert(0u64) += 1;
        true
    });
    assert_eq!(states.get("Bound"), Some(&bound), "{states:?}");
    // No address was lost on the way: what the pool has taken is exactly
    // the bound ones (the router, server, network and broadcast addresses
    // are outside its range).
    assert_eq!(u64::from(engine.subnets()[0].pool.taken()), bound);
}

/// Answers the probes of every seventh address, at once.
struct EverySeventh(Vec<Ipv4Addr>);

impl xdhcp::probe::Prober for EverySeventh {
    fn send(&mut self, addr: Ipv4Addr) -> std::io::Result<()> {
        if addr.octets()[3].is_multiple_of(7) {
            self.0.push(addr);
        }
        Ok(())
    }
    fn answers(&mut self, seen: &mut dyn FnMut(Ipv4Addr)) {
        self.0.drain(..).for_each(seen);
    }
    fn wait(&mut self, timeout: std::time::Duration) {
        std::thread::sleep(timeout);
    }
}

/// With conflict checks, parking, releasing and the probation of answered
/// addresses allocate nothing on the worker either (the probe thread is a
/// side thread and may).
#[test]
fn conflict_checks_allocate_nothing_on_the_worker() {
    const N: u32 = 4096;
    const BATCH: u32 = 512;
    let cfg = Config::parse(
        r#"
interface = "lab0"
server_id = "198.18.0.1"
[[subnet]]
prefix = "198.18.0.0/15"
pools = ["198.18.0.10-198.19.255.254"]
conflict_check = "icmp"
"#,
    )
    .unwrap();
    let engine = Arc::new(Engine::new(&cfg));
    let stats = Arc::new(WorkerStats::default());
    let (_service, mut links) = xdhcp::probe::ProbeService::start(
        EverySeventh(Vec::with_capacity(1024)),
        std::time::Duration::ZERO,
        1,
        1024,
    )
    .unwrap();
    let mut h = engine
        .handler(SERVER_MAC, stats.clone())
        .with_probe(links.remove(0));
    let discovers: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let d = request(mac(i), MessageType::Discover, i, vec![]);
            frame(&d, mac(i), Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, None)
        })
        .collect();
    let mut tx = vec![0u8; TX_FRAME_CAPACITY];
    let mut tickets = Vec::with_capacity(BATCH as usize);
    let (mut sent, mut dropped) = (0u64, 0u64);

    COUNTING.with(|c| c.set(true));
    h.begin_batch(Instant::now());
    for chunk in discovers.chunks(BATCH as usize) {
        tickets.clear();
        for d in chunk {
            h.handle(d, &mut tx).expect("an OFFER");
            tickets.push(h.probe_for());
        }
        let last = *tickets.last().unwrap();
        assert_ne!(last, 0, "fresh addresses are probed");
        while h.probed() < last {
            std::hint::spin_loop();
        }
        for &t in &tickets {
            if h.released(t) {
                sent += 1;
            } else {
                dropped += 1;
            }
        }
    }
    COUNTING.with(|c| c.set(false));

    let s = stats.snapshot();
    assert_eq!(s.conflict_probed, u64::from(N));
    assert_eq!(s.conflict_found, dropped);
    assert!(
        dropped > 0 && sent > dropped,
        "{sent} sent, {dropped} dropped"
    );
    assert_eq!(ALLOCS.load(Relaxed), 0, "allocations on the worker");
}

/// The DDNS naming the engine does per packet (option 81 parsed, the
/// label chosen, the server's part decided, the reply's option 81, the
/// FQDN and its DHCID) allocates nothing either; the zone and the
/// pattern are parsed before counting starts, as at config time.
#[test]
fn ddns_naming_allocates_nothing_per_packet() {
    use xdhcp::config::ddns::ReplaceClientName;
    use xdhcp::ddns::dhcid::{self, Identifier};
    use xdhcp::ddns::name;
    use xdhcp::wire::fqdn::{self, ClientFqdn, Pattern};

    let zone = fqdn::zone_wire("lab.example.").unwrap();
    let pattern = Pattern::parse("cpe-{mac}-{ip}").unwrap();
    let opt81: [&[u8]; 4] = [
        b"\x05\x00\x00\x06Laptop\x03lab\x07example\x00",
        b"\x00\x00\x00Phone.example.com",
        b"\x04\x00\x00\xc0\x0c",
        b"\x08\x00\x00",
    ];
    let hostnames: [Option<&[u8]>; 3] = [Some(b"Anna's MacBook"), Some(b"..."), None];
    let policies = [
        ReplaceClientName::WhenAbsent,
        ReplaceClientName::Always,
        ReplaceClientName::Never,
    ];
    let mut label = [0u8; fqdn::MAX_LABEL];
    let mut fqdn = [0u8; fqdn::MAX_NAME];
    let mut reply = [0u8; 300];
    let mut named = 0u32;
    let before = ALLOCS.load(Relaxed);

    COUNTING.with(|c| c.set(true));
    for i in 0..30_000u32 {
        let addr = Ipv4Addr::from(0xc612_0000 + i);
        let chaddr = mac(i);
        let f = ClientFqdn::parse(opt81[i as usize % 4]);
        let n = name::choose_label(
            f.as_ref(),
            hostnames[i as usize % 3],
            policies[i as usize % 3],
            &pattern,
            addr,
            &chaddr,
            &mut label,
        );
        let d = name::decide(f.map_or(fqdn::FLAG_S, |f| f.flags), i % 2 == 0, i % 5 == 0);
        fqdn::encode_reply(d.reply_flags, &label[..n], &zone, &mut reply).expect("fits");
        if let Some(len) = fqdn::fqdn_wire(&label[..n], &zone, &mut fqdn) {
            let r = dhcid::rdata(
                Identifier::Chaddr {
                    htype: 1,
                    chaddr: &chaddr,
                },
                &fqdn[..len],
            );
            assert_eq!(r[..3], [0, 0, 1]);
            named += 1;
        }
    }
    COUNTING.with(|c| c.set(false));

    assert!(named > 20_000, "only {named} named");
    assert_eq!(
        ALLOCS.load(Relaxed) - before,
        0,
        "allocations in DDNS naming"
    );
}

/// A worker's latency recording and its hand-overs to the collector
/// allocate nothing: the sets circulate between the two.
#[test]
fn latency_recording_and_hand_over_allocate_nothing() {
    use std::time::Duration;
    use xdhcp::latency::{Collector, Flush, Kind};
    let (mut c, mut recs) = Collector::new(&[0], Duration::from_millis(1));
    let mut r = recs.remove(0);
    let t0 = Instant::now();
    let mut when = t0;
    let mut sent = 0;
    ALLOCS.store(0, Relaxed);
    COUNTING.with(|c| c.set(true));
    for i in 0..200_000u64 {
        let kind = [Kind::Offer, Kind::Ack, Kind::Nak, Kind::JournalWait][(i % 4) as usize];
        // Up to 60 s and beyond (saturated), never resized.
        r.record(kind, t0, t0 + Duration::from_nanos(i * i));
        if i % 1000 == 0 {
            when += Duration::from_millis(2);
            if r.tick(when) == Flush::Sent {
                sent += 1;
            }
        }
    }
    COUNTING.with(|c| c.set(false));
    let during = ALLOCS.load(Relaxed);
    // The collector allocates (side thread); the worker's side did not.
    c.collect();
    assert!(sent >= 2, "some sets went over");
    assert_eq!(during, 0, "recording allocated {during} times");
    r.finish();
    c.collect();
    let s = c.status();
    let all: u64 = Kind::ALL.iter().map(|&k| s.total.get(k).count).sum();
    assert_eq!(all, 200_000, "every latency recorded reached the collector");
}
