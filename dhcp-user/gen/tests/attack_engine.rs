//! The generator's fleets, a normal one and an attack beside it, against
//! the daemon's own engine in-process (no network): every frame the
//! generator writes is read by the server's parser as what it means to
//! be, the two fleets' counts add up to the engine's, and a counting
//! allocator sees no allocation in the generator's send/receive path while
//! they run (the engine's calls are left out of the count: its own test,
//! `tests/no_alloc.rs`, holds it to that).
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
use xdhcp::wire::VlanTags;
use xdhcpgen::attack::Fleets;
use xdhcpgen::check::AddressBook;
use xdhcpgen::counters::{GenCounters, GenSnapshot};
use xdhcpgen::fleet::{Fleet, Mailboxes, Plan};
use xdhcpgen::request::{AgentInfo, Identity};
use xdhcpgen::{DeclineWhen, Scenario};

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
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const IFACE_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const RELAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const LEGIT: u32 = 2000;
const ATTACK: u32 = 3000;

fn engine() -> Arc<Engine> {
    let cfg = Config::parse(
        r#"
interface = "lab0"
server_id = "198.18.0.1"
[[subnet]]
prefix = "198.18.0.0/15"
pools = ["198.18.0.10-198.19.255.254"]
routers = ["198.18.0.1"]
dns = ["198.18.0.1"]
"#,
    )
    .unwrap();
    Arc::new(Engine::new(&cfg))
}

fn plan(clients: u32, relays: Vec<Ipv4Addr>) -> Plan {
    Plan {
        scenario: Scenario::Dora,
        clients,
        workers: 1,
        worker: 0,
        quota: Some(u64::from(clients)),
        start_ns: 0,
        deadline_ns: None,
        rate: 0.0,
        window: 256,
        timeout_ns: 1_000_000_000,
        retries: 0,
        renew_share: 0.0,
        expect: Some("198.18.0.0/15".parse().unwrap()),
        relays,
        batch: 64,
        seed: 1,
        decline: None,
        owner_base: 0,
        preload: None,
        rebind_fallback: false,
        report_bindings: false,
    }
}

fn identity(prefix: [u8; 3]) -> Identity {
    Identity {
        mac_prefix: prefix,
        iface_mac: IFACE_MAC,
        vlans: VlanTags::NONE,
        broadcast: false,
        client_id: true,
        option82: false,
        server: Some((Ipv4Addr::new(198, 18, 0, 1), SERVER_MAC)),
        agent: AgentInfo::default(),
        src_mac: None,
    }
}

struct Side {
    counters: Arc<GenCounters>,
    leased: Arc<AddressBook>,
}

fn fleet(p: Plan, id: Identity, book: &Arc<AddressBook>) -> (Fleet, Side) {
    let counters = Arc::new(GenCounters::default());
    let (tx, rx) = crossbeam_channel::bounded(16);
    let leased = Arc::new(AddressBook::new(p.clients as usize));
    let declined = Arc::new(AddressBook::new(p.clients as usize));
    let f = Fleet::new(
        p,
        id,
        counters.clone(),
        book.clone(),
        Mailboxes {
            inbox: rx,
            peers: vec![tx],
        },
    )
    .with_tally(leased.clone(), Some(declined));
    (f, Side { counters, leased })
}

/// Runs the normal DORA fleet and `attack` against a fresh engine until
/// both are done, counting allocations; returns both fleets' counters and
/// leases, and the engine's counters.
fn run(
    attack_plan: Plan,
    attack_id: Identity,
) -> (
    GenSnapshot,
    u64,
    GenSnapshot,
    u64,
    xdhcp::stats::WorkerSnapshot,
) {
    let engine = engine();
    let stats = Arc::new(WorkerStats::default());
    let mut h = engine.handler(SERVER_MAC, stats.clone());
    let book = Arc::new(AddressBook::new((LEGIT + ATTACK) as usize));
    let (legit, ls) = fleet(plan(LEGIT, Vec::new()), identity([2, 0x67, 0x65]), &book);
    let mut attack_plan = attack_plan;
    attack_plan.owner_base = LEGIT;
    let (attack, a_side) = fleet(attack_plan, attack_id, &book);
    let mut f = Fleets::new(legit, Some(attack));
    let mut tx = vec![0u8; TX_FRAME_CAPACITY];
    let mut rx = vec![0u8; TX_FRAME_CAPACITY];
    let t0 = Instant::now();
    // Tests of this file run on threads of their own; the count is this
    // thread's (the flag is thread-local), the total shared, so one test
    // at a time.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    ALLOCS.store(0, Relaxed);
    let mut now = 1_000_000u64;
    COUNTING.with(|c| c.set(true));
    while !f.is_done(now) {
        h.begin_batch(t0 + std::time::Duration::from_nanos(now));
        f.tick(now);
        for _ in 0..64 {
            let Some(n) = f.next_frame(now, &mut tx) else {
                break;
            };
            COUNTING.with(|c| c.set(false));
            let reply = h.handle(&tx[..n], &mut rx);
            COUNTING.with(|c| c.set(true));
            if let Some(m) = reply {
                f.receive(now + 10_000, &rx[..m]);
            }
        }
        f.drain_inbox();
        now += 100_000;
        assert!(now < 60_000_000_000, "the fleets did not finish");
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(
        ALLOCS.swap(0, Relaxed),
        0,
        "allocations in the generator while the fleets ran"
    );
    (
        ls.counters.snapshot(),
        ls.leased.addresses().len() as u64,
        a_side.counters.snapshot(),
        a_side.leased.addresses().len() as u64,
        stats.snapshot(),
    )
}

/// Checks what holds for the normal fleet whatever the attack: all bound,
/// nothing wrong.
fn legit_all_bound(l: &GenSnapshot, leases: u64) {
    assert_eq!((l.completed, l.acks, leases), (2000, 2000, 2000), "{l:?}");
    assert_eq!(
        l.timeouts + l.naks + l.duplicate_addresses + l.bad_subnet + l.wrong_chaddr + l.malformed,
        0,
        "{l:?}"
    );
}

#[test]
fn starve_through_one_circuit_beside_dora() {
    let mut id = identity([2, 0x61, 0x74]);
    id.agent.circuit_id = Some(Box::from(&b"olt1/1/3:7"[..]));
    let (l, ll, a, al, e) = run(plan(ATTACK, vec![RELAY]), id);
    legit_all_bound(&l, ll);
    assert_eq!((a.completed, a.acks, al), (3000, 3000, 3000), "{a:?}");
    assert_eq!(
        a.duplicate_addresses + a.wrong_chaddr + a.timeouts,
        0,
        "{a:?}"
    );
    assert_eq!(e.discover, l.sent_discover + a.sent_discover);
    assert_eq!(e.request, l.sent_request + a.sent_request);
    assert_eq!((e.offer, e.ack, e.malformed), (5000, 5000, 0));
}

#[test]
fn spoofed_option_82_from_giaddr_0_beside_dora() {
    let mut id = identity([2, 0x61, 0x74]);
    id.option82 = true;
    id.agent.circuit_id = Some(Box::from(&b"someone-else"[..]));
    id.agent.link_selection = Some(Ipv4Addr::new(198, 18, 0, 0));
    let mut p = plan(10, Vec::new());
    p.quota = Some(10);
    let (l, ll, a, al, e) = run(p, id);
    legit_all_bound(&l, ll);
    assert_eq!((a.completed, al, a.wrong_chaddr), (10, 10, 0), "{a:?}");
    assert_eq!((e.discover, e.request, e.malformed), (2010, 2010, 0));
}

#[test]
fn decline_storms_beside_dora() {
    for when in [DeclineWhen::Acked, DeclineWhen::Offered] {
        let mut p = plan(ATTACK, Vec::new());
        p.decline = Some(when);
        let (l, ll, a, al, e) = run(p, identity([2, 0x61, 0x74]));
        legit_all_bound(&l, ll);
        assert_eq!(
            (a.completed, a.sent_decline),
            (3000, 3000),
            "{when:?} {a:?}"
        );
        // The engine read every DECLINE as one.
        assert_eq!(e.decline, 3000, "{when:?}");
        assert_eq!(e.discover, 5000, "{when:?}");
        match when {
            DeclineWhen::Acked => assert_eq!((a.sent_request, al), (3000, 3000), "{a:?}"),
            DeclineWhen::Offered => assert_eq!((a.sent_request, al), (0, 0), "{a:?}"),
        }
        assert_eq!(e.malformed, 0);
    }
}
