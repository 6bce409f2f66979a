//! The reboot scenario against the daemon's own engine in-process: the
//! leases a DORA run ended with (`--leases-out`) are asked for again in
//! INIT-REBOOT and RENEWING (`--scenario reboot --leases-in`), and the
//! generator tells an ACK of the same address from one of another
//! (`moved`) and from a NAK.
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;
use xdhcp::config::Config;
use xdhcp::engine::Engine;
use xdhcp::handler::{FrameHandler, TX_FRAME_CAPACITY};
use xdhcp::stats::WorkerStats;
use xdhcp::wire::VlanTags;
use xdhcpgen::Scenario;
use xdhcpgen::bindings::Binding;
use xdhcpgen::check::AddressBook;
use xdhcpgen::counters::{GenCounters, GenSnapshot};
use xdhcpgen::fleet::{Fleet, Mailboxes, Plan};
use xdhcpgen::request::{AgentInfo, Identity};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENTS: u32 = 300;

fn engine() -> Arc<Engine> {
    let cfg = Config::parse(
        r#"
interface = "lab0"
server_id = "198.18.0.1"
[[subnet]]
prefix = "198.18.0.0/15"
pools = ["198.18.0.10-198.19.255.254"]
routers = ["198.18.0.1"]
"#,
    )
    .unwrap();
    Arc::new(Engine::new(&cfg))
}

fn plan(scenario: Scenario, preload: Option<Arc<[Binding]>>) -> Plan {
    Plan {
        scenario,
        clients: CLIENTS,
        workers: 1,
        worker: 0,
        quota: Some(
            preload
                .as_ref()
                .map_or(u64::from(CLIENTS), |p| p.len() as u64),
        ),
        start_ns: 0,
        deadline_ns: None,
        rate: 0.0,
        window: 64,
        timeout_ns: 50_000_000,
        retries: 1,
        renew_share: 0.0,
        expect: Some("198.18.0.0/15".parse().unwrap()),
        relays: Vec::new(),
        batch: 64,
        seed: 7,
        decline: None,
        owner_base: 0,
        preload,
        rebind_fallback: false,
        report_bindings: true,
    }
}

/// Runs one fleet against `engine` until it is done; its counters and the
/// leases it ended with.
fn run(engine: &Arc<Engine>, p: Plan) -> (GenSnapshot, Vec<Binding>) {
    let counters = Arc::new(GenCounters::default());
    let (tx, rx) = crossbeam_channel::bounded(16);
    let id = Identity {
        mac_prefix: [2, 0x67, 0x65],
        iface_mac: [2, 0, 0, 0, 0, 2],
        vlans: VlanTags::NONE,
        broadcast: false,
        client_id: false,
        option82: false,
        server: None,
        agent: AgentInfo::default(),
        src_mac: None,
    };
    let book = Arc::new(AddressBook::new(CLIENTS as usize));
    let mut f = Fleet::new(
        p,
        id,
        counters.clone(),
        book,
        Mailboxes {
            inbox: rx,
            peers: vec![tx],
        },
    );
    let stats = Arc::new(WorkerStats::default());
    let mut h = engine.handler(SERVER_MAC, stats);
    let mut txb = vec![0u8; TX_FRAME_CAPACITY];
    let mut rxb = vec![0u8; TX_FRAME_CAPACITY];
    let t0 = Instant::now();
    let mut now = 1_000_000u64;
    while !f.is_done(now) {
        h.begin_batch(t0 + std::time::Duration::from_nanos(now));
        f.tick(now);
        while let Some(n) = f.next_frame(now, &mut txb) {
            if let Some(m) = h.handle(&txb[..n], &mut rxb) {
                f.receive(now + 10_000, &rxb[..m]);
            }
        }
        now += 1_000_000;
        assert!(now < 60_000_000_000, "the fleet did not finish");
    }
    (counters.snapshot(), f.into_result().bindings)
}

#[test]
fn leases_of_a_run_are_asked_for_again_and_kept() {
    let e = engine();
    let (dora, leases) = run(&e, plan(Scenario::Dora, None));
    assert_eq!(dora.completed, u64::from(CLIENTS), "{dora:?}");
    assert_eq!(leases.len(), CLIENTS as usize);
    assert!(leases.iter().all(|b| b.server_id == SERVER));
    // Only the odd clients come back.
    let back: Arc<[Binding]> = leases
        .iter()
        .filter(|b| b.index % 2 == 1)
        .copied()
        .collect();
    let (s, after) = run(&e, plan(Scenario::Reboot, Some(back.clone())));
    let n = back.len() as u64;
    assert_eq!(
        (s.completed, s.reboots, s.renewals, s.sent_discover),
        (n, n, n, 0),
        "{s:?}"
    );
    assert_eq!(
        s.moved + s.naks + s.timeouts + s.duplicate_addresses,
        0,
        "{s:?}"
    );
    assert_eq!(&after[..], &back[..], "each kept its address");
}

#[test]
fn an_address_held_by_another_is_not_kept() {
    let e = engine();
    let (_, leases) = run(&e, plan(Scenario::Dora, None));
    // Every client asks for its neighbour's address.
    let n = leases.len();
    let swapped: Arc<[Binding]> = (0..n)
        .map(|i| Binding {
            address: leases[(i + 1) % n].address,
            ..leases[i]
        })
        .collect();
    let (s, _) = run(&e, plan(Scenario::Reboot, Some(swapped)));
    assert_eq!(s.completed, 0, "{s:?}");
    assert_eq!(
        s.naks + s.moved,
        n as u64,
        "NAKed or moved, never kept: {s:?}"
    );
    assert_eq!(s.duplicate_addresses, 0, "{s:?}");
}
