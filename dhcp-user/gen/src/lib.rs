//! xdhcpgen, the bundled DHCPv4 load generator: N simulated clients, each
//! a small state machine with retransmission and backoff, sending through
//! AF_XDP (with its own XDP program steering the replies to it) or an
//! AF_PACKET socket, checking every reply and measuring latencies.
//!
//! The data's way through, one module a stage:
//! - [`fleet`]: one worker's clients ([`client`]), their queues
//!   ([`ring`]), timers ([`timer`]) and pace ([`pace`]), the [`scenario`]
//!   they follow and the [`check`]s every reply gets; no I/O;
//! - [`request`] writes a request frame into a TX buffer, [`reply`] reads
//!   a reply where it lies;
//! - [`steer`] loads the XDP program, [`afxdp`] and [`afpacket`] are the
//!   worker loops;
//! - [`counters`], [`latency`] and [`report`] say what happened, and
//!   [`bindings`] which client ended with which lease (`--leases-out`), for
//!   a later run to ask for again (`--leases-in`, the reboot scenario);
//! - [`attack`]: a second fleet beside the first, playing an attacker
//!   (`--attack`), and the pair the worker loops drive.
//!
//! [`echo`] is the other end of the benchmark: the daemon's own XDP and
//! AF_XDP path with the engine replaced by an address swap (the
//! `xdhcpecho` binary), the ceiling `cargo xtask bench` holds xdhcpd
//! against.
//!
//! This is a package of its own beside the daemon's library (`xdhcp`),
//! which it uses for the wire views, the config and the I/O workers:
//! `xdhcpd` links none of it, nor its progress-bar and plotting crates.
pub mod afpacket;
pub mod afxdp;
pub mod attack;
pub mod bindings;
pub mod check;
pub mod client;
pub mod counters;
pub mod echo;
pub mod fleet;
pub mod latency;
pub mod pace;
pub mod reply;
pub mod report;
pub mod request;
pub mod ring;
pub mod scenario;
pub mod steer;
pub mod timer;

pub use attack::{Attack, AttackOptions, DeclineWhen};
pub use check::Prefix;
pub use scenario::Scenario;

use anyhow::{Context, Result, bail, ensure};
use attack::Fleets;
use bindings::Binding;
use check::AddressBook;
use client::MAX_CLIENTS;
use counters::{GenCounters, GenSnapshot};
use fleet::{Fleet, FleetResult, Mailboxes, Plan};
use latency::{Kind, Latencies};
use report::{AttackSide, LatencyReport, Side, Summary};
use request::{AgentInfo, Identity};
use std::io::IsTerminal;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use xdhcp::config::{AttachMode, BindMode, PollMode};
use xdhcp::io::iface::Interface;
use xdhcp::io::{WorkerOptions, pin_worker};

/// Which socket carries the frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum IoBackend {
    /// AF_XDP sockets, the generator's XDP program steering replies in.
    Xdp,
    /// One AF_PACKET socket, for hosts without XDP.
    Packet,
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct Options {
    pub iface: String,
    pub io: IoBackend,
    pub xdp_mode: AttachMode,
    pub bind: BindMode,
    /// AF_XDP queues (one worker each); None: every RX queue.
    pub queues: Option<u32>,
    pub frames: u32,
    pub ring_size: u32,
    pub batch: usize,
    pub poll: PollMode,
    pub cores: Vec<usize>,
    pub scenario: Scenario,
    pub clients: u32,
    /// Exchanges to run; None with no duration: one per client.
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Exchanges started per second; 0: open loop, limited by the window.
    pub rate: f64,
    /// Exchanges in flight at once (over all workers).
    pub window: u32,
    pub timeout: Duration,
    pub retries: u8,
    pub renew_share: f64,
    pub expect_subnet: Option<Prefix>,
    pub mac_prefix: [u8; 3],
    pub client_id: bool,
    pub option82: bool,
    pub vlans: xdhcp::wire::VlanTags,
    pub broadcast: bool,
    /// Relay addresses the generator plays; empty: clients on the link.
    pub relays: Vec<Ipv4Addr>,
    /// Where relayed messages go.
    pub server: Option<Ipv4Addr>,
    pub server_mac: Option<[u8; 6]>,
    pub progress: bool,
    pub seed: u64,
    /// An attack fleet beside the scenario's.
    pub attack: Option<AttackOptions>,
    /// The reboot scenario's leases (`--leases-in`).
    pub leases_in: Option<Arc<[Binding]>>,
    /// Renewals that go unanswered go on as rebindings (`--rebind-on-timeout`).
    pub rebind_fallback: bool,
    /// Hand back every client's lease at the end ([`Outcome::bindings`]).
    pub leases_out: bool,
}

/// A finished run.
pub struct Outcome {
    pub summary: Summary,
    pub latencies: Latencies,
    /// The latency the scenario is mostly about (for `--hgrm`).
    pub main_latency: Kind,
    /// With [`Options::leases_out`]: the normal fleet's clients holding an
    /// address at the end, in index order.
    pub bindings: Vec<Binding>,
}

struct Worker {
    queue: u32,
    counters: Arc<GenCounters>,
    fleets: Fleets,
}

/// What a worker hands back: its normal fleet's result and its attack
/// fleet's.
type WorkerResult = (FleetResult, Option<FleetResult>);

fn finish_worker(fleets: Fleets, ended_ns: u64) -> WorkerResult {
    let mut legit = fleets.legit.into_result();
    legit.ended_ns = ended_ns;
    let attack = fleets.attack.map(|a| {
        let mut r = a.into_result();
        r.ended_ns = ended_ns;
        r
    });
    (legit, attack)
}

/// `total` split over the workers in proportion to each one's share of
/// `clients` (client g belongs to worker g mod workers); the parts add up
/// to `total` exactly, and a worker without clients gets 0.
fn proportional(total: u64, clients: u32, workers: u32, worker: u32) -> u64 {
    let local = |w: u32| u64::from(clients.saturating_sub(w).div_ceil(workers));
    let before: u64 = (0..worker).map(local).sum();
    let at = |n: u64| (u128::from(total) * u128::from(n) / u128::from(clients)) as u64;
    at(before + local(worker)) - at(before)
}

/// Runs the scenario to its end (count reached, duration over, or `stop`
/// set) and reports.
pub fn run(o: &Options, stop: Arc<AtomicBool>) -> Result<Outcome> {
    let iface = Interface::lookup(&o.iface)?;
    // The reboot scenario runs the clients its leases name, whatever
    // --clients says.
    let preload = match (o.scenario, &o.leases_in) {
        (Scenario::Reboot, Some(l)) => {
            ensure!(!l.is_empty(), "--leases-in lists no lease");
            Some(l.clone())
        }
        (Scenario::Reboot, None) => bail!("the reboot scenario needs --leases-in FILE"),
        (_, Some(_)) => bail!("--leases-in is for --scenario reboot"),
        (_, None) => None,
    };
    let mut o = o.clone();
    if let Some(l) = &preload {
        ensure!(o.attack.is_none(), "the reboot scenario runs no attack");
        o.clients = l.iter().map(|b| b.index + 1).max().unwrap_or(1);
        o.count = None;
        o.duration = None;
    }
    let o = &o;
    ensure!(
        (1..=MAX_CLIENTS).contains(&o.clients),
        "--clients must be 1 to {MAX_CLIENTS}"
    );
    ensure!(o.window >= 1, "--window must be at least 1");
    ensure!(
        (0.0..=1.0).contains(&o.renew_share),
        "--renew-share is a fraction between 0 and 1"
    );
    let mut relays = o.relays.clone();
    if o.scenario == Scenario::Relay && relays.is_empty() {
        let Some((a, _)) = iface.ipv4.first() else {
            bail!(
                "the relay scenario needs --relay ADDRESS (or an IPv4 address on {})",
                iface.name
            );
        };
        relays.push(*a);
    }
    let attack_relays = match &o.attack {
        None => Vec::new(),
        Some(a) => check_attack(o, a, &relays)?,
    };
    // The steering program answers for every relay address either fleet
    // plays.
    let mut steer_relays = relays.clone();
    for r in &attack_relays {
        if !steer_relays.contains(r) {
            steer_relays.push(*r);
        }
    }
    let server = match (steer_relays.is_empty(), o.server, o.server_mac) {
        (true, _, _) => None,
        (false, Some(ip), Some(mac)) => Some((ip, mac)),
        (false, _, _) => bail!(
            "relay mode sends unicast to the server: give --server ADDRESS and --server-mac MAC"
        ),
    };

    let (count, duration) = match o.scenario {
        Scenario::Reconnect => (Some(u64::from(o.clients)), None),
        _ => match (o.count, o.duration) {
            (None, None) => (Some(u64::from(o.clients)), None),
            other => other,
        },
    };
    let (rate, window) = match o.scenario {
        Scenario::Reconnect => (0.0, o.clients),
        _ => (o.rate, o.window),
    };
    let lead_ns = o.attack.as_ref().map_or(0, |a| a.lead.as_nanos() as u64);
    // The attack runs for its count, or its duration; by default one
    // exchange per attack client, or as long as the normal fleet when
    // that runs by duration.
    let attack_run = o.attack.as_ref().map(|a| match (a.count, a.duration) {
        (None, None) => match (count, duration) {
            (None, Some(d)) => (None, Some(lead_ns + d.as_nanos() as u64)),
            _ => (Some(u64::from(a.clients)), None),
        },
        (c, d) => (c, d.map(|d| d.as_nanos() as u64)),
    });
    let queues = match o.io {
        IoBackend::Packet => 1,
        IoBackend::Xdp => o.queues.unwrap_or(iface.rx_queues).max(1),
    };
    let workers = queues.min(o.clients);
    let attack_clients = o.attack.as_ref().map_or(0, |a| a.clients);
    let book = Arc::new(AddressBook::new((o.clients + attack_clients) as usize));
    // Distinct addresses each fleet was ACKed and declined, for the split
    // report (not kept without an attack).
    let tally = |clients: u32, declines: bool| {
        (
            Arc::new(AddressBook::new(clients as usize)),
            declines.then(|| Arc::new(AddressBook::new(clients as usize))),
        )
    };
    let legit_tally = o.attack.as_ref().map(|_| tally(o.clients, false));
    let attack_tally = o
        .attack
        .as_ref()
        .map(|a| tally(a.clients, a.attack == Attack::Decline));
    let id = Identity {
        mac_prefix: o.mac_prefix,
        iface_mac: iface.mac,
        vlans: o.vlans,
        broadcast: o.broadcast,
        client_id: o.client_id,
        option82: o.option82,
        server,
        agent: AgentInfo::default(),
        src_mac: None,
    };
    let attack_id = o.attack.as_ref().map(|a| Identity {
        mac_prefix: a.mac_prefix,
        iface_mac: iface.mac,
        vlans: a.vlans.unwrap_or(o.vlans),
        broadcast: o.broadcast,
        client_id: o.client_id,
        option82: a.option82(),
        server,
        agent: AgentInfo {
            circuit_prefix: *b"atk-",
            circuit_id: a.circuit_id.as_deref().map(Box::from),
            remote_id: a.remote_id.as_deref().map(Box::from),
            link_selection: a.link_selection,
        },
        src_mac: a.src_mac,
    });
    let wopts = WorkerOptions {
        poll: o.poll,
        batch: o.batch.max(1),
        cores: if o.cores.is_empty() {
            from_the_top(workers as usize)
        } else {
            o.cores.clone()
        },
        ..WorkerOptions::default()
    };
    let channels: Vec<_> = (0..workers)
        .map(|_| crossbeam_channel::bounded(4096))
        .collect();
    let attack_channels: Vec<_> = (0..workers)
        .filter(|_| o.attack.is_some())
        .map(|_| crossbeam_channel::bounded(4096))
        .collect();
    let mut attack_counters = Vec::new();
    let mut pool = Vec::new();
    for w in 0..workers {
        let share = |total: u64| {
            total / u64::from(workers) + u64::from(u64::from(w) < total % u64::from(workers))
        };
        // The reboot scenario: each worker runs exactly its listed clients.
        let quota = match &preload {
            Some(l) => {
                let mut mine: Vec<u32> = l
                    .iter()
                    .map(|b| b.index)
                    .filter(|i| i % workers == w)
                    .collect();
                mine.sort_unstable();
                mine.dedup();
                Some(mine.len() as u64)
            }
            None => count.map(share),
        };
        let plan = Plan {
            scenario: o.scenario,
            clients: o.clients,
            workers,
            worker: w,
            quota,
            start_ns: lead_ns,
            deadline_ns: duration.map(|d| lead_ns + d.as_nanos() as u64),
            rate: rate / f64::from(workers),
            window: (window / workers).max(1),
            timeout_ns: o.timeout.as_nanos() as u64,
            retries: o.retries,
            renew_share: o.renew_share,
            expect: o.expect_subnet,
            relays: relays.clone(),
            batch: wopts.batch,
            seed: o.seed ^ (u64::from(w) << 32),
            decline: None,
            owner_base: 0,
            preload: preload.clone(),
            rebind_fallback: o.rebind_fallback,
            report_bindings: o.leases_out,
        };
        let counters = Arc::new(GenCounters::default());
        let mail = Mailboxes {
            inbox: channels[w as usize].1.clone(),
            peers: channels.iter().map(|(tx, _)| tx.clone()).collect(),
        };
        let mut fleet = Fleet::new(plan, id.clone(), counters.clone(), book.clone(), mail);
        if let Some((leased, declined)) = &legit_tally {
            fleet = fleet.with_tally(leased.clone(), declined.clone());
        }
        let attack = match (&o.attack, &attack_id, &attack_tally, attack_run) {
            (Some(a), Some(aid), Some((leased, declined)), Some((acount, adeadline))) => {
                let part = |total: u64| proportional(total, a.clients, workers, w);
                let plan = Plan {
                    scenario: Scenario::Dora,
                    clients: a.clients,
                    workers,
                    worker: w,
                    quota: acount.map(part),
                    start_ns: 0,
                    deadline_ns: adeadline,
                    rate: a.rate * f64::from(a.clients.saturating_sub(w).div_ceil(workers))
                        / f64::from(a.clients),
                    window: part(u64::from(a.window)).max(1) as u32,
                    timeout_ns: a.timeout.as_nanos() as u64,
                    retries: a.retries,
                    renew_share: 0.0,
                    expect: o.expect_subnet,
                    relays: attack_relays.clone(),
                    batch: wopts.batch,
                    seed: !o.seed ^ (u64::from(w) << 32),
                    decline: (a.attack == Attack::Decline).then_some(a.decline),
                    owner_base: o.clients,
                    preload: None,
                    rebind_fallback: false,
                    report_bindings: false,
                };
                let c = Arc::new(GenCounters::default());
                attack_counters.push(c.clone());
                let mail = Mailboxes {
                    inbox: attack_channels[w as usize].1.clone(),
                    peers: attack_channels.iter().map(|(tx, _)| tx.clone()).collect(),
                };
                let f = Fleet::new(plan, aid.clone(), c, book.clone(), mail)
                    .with_tally(leased.clone(), declined.clone());
                Some(f)
            }
            _ => None,
        };
        pool.push(Worker {
            queue: w,
            counters,
            fleets: Fleets::new(fleet, attack),
        });
    }
    let all_counters: Vec<Arc<GenCounters>> = pool.iter().map(|w| w.counters.clone()).collect();

    let mut steering = None;
    let mut bind_used = None;
    let t0;
    let handles: Vec<std::thread::JoinHandle<WorkerResult>> = match o.io {
        IoBackend::Xdp => {
            let mut st =
                steer::GenSteering::attach(&iface.name, iface.index, o.xdp_mode, &steer_relays)?;
            let settings = xdhcp::io::xsk::XskOptions {
                bind: o.bind,
                frames: o.frames,
                ring_size: o.ring_size,
            };
            let mut socks = Vec::new();
            for w in &pool {
                let (s, used) = afxdp::open(&iface.name, w.queue, &settings)?;
                st.register_socket(w.queue, s.raw_fd())?;
                bind_used = Some(used);
                socks.push(s);
            }
            steering = Some(st);
            t0 = Instant::now();
            pool.into_iter()
                .zip(socks)
                .enumerate()
                .map(|(i, (mut w, s))| {
                    let (wopts, stop) = (wopts.clone(), stop.clone());
                    std::thread::Builder::new()
                        .name(format!("xdhcpgen-q{}", w.queue))
                        .spawn(move || {
                            pin_worker(&wopts, i);
                            afxdp::run(s, &mut w.fleets, &w.counters, &wopts, &stop, t0);
                            finish_worker(w.fleets, t0.elapsed().as_nanos() as u64)
                        })
                        .context("spawning a worker")
                })
                .collect::<Result<_>>()?
        }
        IoBackend::Packet => {
            let sock = afpacket::open(iface.index)?;
            t0 = Instant::now();
            let mut w = pool.into_iter().next().context("no worker")?;
            let (wopts, stop) = (wopts.clone(), stop.clone());
            let h = std::thread::Builder::new()
                .name("xdhcpgen-pkt".into())
                .spawn(move || {
                    pin_worker(&wopts, 0);
                    afpacket::run(&sock, &mut w.fleets, &w.counters, &wopts, &stop, t0);
                    finish_worker(w.fleets, t0.elapsed().as_nanos() as u64)
                })
                .context("spawning the worker")?;
            vec![h]
        }
    };

    let total = |cs: &[Arc<GenCounters>]| {
        let mut t = GenSnapshot::default();
        for c in cs {
            t += c.snapshot();
        }
        t
    };
    let bar = progress_bar(o.progress, count);
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        let t = total(&all_counters);
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(match count {
            Some(_) => t.finished,
            None => t0.elapsed().as_secs(),
        });
        let mut msg = format!(
            "{:.0}/s completed {} timeouts {} naks {} dup {}",
            t.completed as f64 / secs,
            t.completed,
            t.timeouts,
            t.naks,
            t.duplicate_addresses
        );
        if !attack_counters.is_empty() {
            let a = total(&attack_counters);
            msg += &format!(
                " | attack completed {} timeouts {}",
                a.completed, a.timeouts
            );
        }
        bar.set_message(msg);
    }
    bar.finish_and_clear();
    let mut latencies = Latencies::new();
    let mut last_ns = 0;
    let mut unfinished = 0u64;
    let mut ended_ns = 0;
    let mut attack_latencies = Latencies::new();
    let mut attack_unfinished = 0u64;
    let mut bindings = Vec::new();
    for h in handles {
        let (mut r, a) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a generator worker panicked"))?;
        bindings.append(&mut r.bindings);
        latencies.merge(&r.latencies);
        last_ns = last_ns.max(r.last_completion_ns);
        unfinished += u64::from(r.unfinished);
        ended_ns = ended_ns.max(r.ended_ns);
        if let Some(a) = a {
            attack_latencies.merge(&a.latencies);
            attack_unfinished += u64::from(a.unfinished);
        }
    }
    let ended = Duration::from_nanos(ended_ns);
    let xdp = match &steering {
        Some(s) => Some(s.counters()?),
        None => None,
    };
    let c = total(&all_counters);
    // From the normal fleet's start (after an attack's lead) to its last
    // completion.
    let active_s = if last_ns > 0 {
        last_ns.saturating_sub(lead_ns) as f64 / 1e9
    } else {
        ended.as_secs_f64()
    };
    let summary = Summary {
        scenario: o.scenario.name(),
        clients: o.clients,
        duration_s: ended.as_secs_f64(),
        completed: c.completed,
        leases_per_sec: if active_s > 0.0 {
            c.completed as f64 / active_s
        } else {
            0.0
        },
        timeouts: c.timeouts,
        naks: c.naks,
        duplicate_addresses: c.duplicate_addresses,
        latency_us: LatencyReport::of(&latencies),
        wrong_xid: c.wrong_xid,
        sent: c.sent,
        received: c.received,
        all_bound_s: (o.scenario == Scenario::Reconnect).then_some(last_ns as f64 / 1e9),
        unfinished,
        io: match o.io {
            IoBackend::Xdp => "xdp",
            IoBackend::Packet => "packet",
        },
        xdp_mode: steering.as_ref().map(|s| match s.mode() {
            AttachMode::Generic => "generic",
            _ => "driver",
        }),
        bind: bind_used.map(|b| match b {
            BindMode::Zerocopy => "zerocopy",
            _ => "copy",
        }),
        queues: workers,
        rate,
        window,
        counters: c,
        xdp,
        legit: legit_tally.as_ref().map(|(leased, declined)| {
            Side::of(
                o.clients,
                o.mac_prefix,
                &c,
                unfinished,
                &latencies,
                leased,
                declined.as_deref(),
            )
        }),
        attack: match (&o.attack, &attack_tally) {
            (Some(a), Some((leased, declined))) => Some(AttackSide::of(
                a,
                &attack_relays,
                Side::of(
                    a.clients,
                    a.mac_prefix,
                    &total(&attack_counters),
                    attack_unfinished,
                    &attack_latencies,
                    leased,
                    declined.as_deref(),
                ),
            )),
            _ => None,
        },
    };
    drop(steering);
    let main_latency = match o.scenario {
        Scenario::Flood | Scenario::Echo => Kind::Offer,
        Scenario::Renew | Scenario::Rebind | Scenario::Reboot => Kind::Renew,
        _ => Kind::Dora,
    };
    bindings.sort_unstable_by_key(|b| b.index);
    Ok(Outcome {
        summary,
        latencies,
        main_latency,
        bindings,
    })
}

/// Checks the attack's options against the run's; returns the relays the
/// attack comes through.
fn check_attack(o: &Options, a: &AttackOptions, relays: &[Ipv4Addr]) -> Result<Vec<Ipv4Addr>> {
    ensure!(
        (1..=MAX_CLIENTS).contains(&a.clients),
        "--attack-clients must be 1 to {MAX_CLIENTS}"
    );
    ensure!(
        u64::from(o.clients) + u64::from(a.clients) < u64::from(u32::MAX),
        "--clients and --attack-clients together are too many"
    );
    ensure!(a.window >= 1, "--attack-window must be at least 1");
    ensure!(
        a.rate >= 0.0 && a.rate.is_finite(),
        "--attack-rate must be 0 (open loop) or a rate"
    );
    ensure!(
        a.mac_prefix != o.mac_prefix,
        "--attack-mac-prefix must differ from --mac-prefix: replies find their fleet by it"
    );
    ensure!(
        a.attack != Attack::Spoof82 || a.circuit_id.is_some(),
        "--attack spoof82 forges a circuit id: give --attack-circuit-id"
    );
    let agent = AgentInfo {
        circuit_prefix: *b"atk-",
        circuit_id: a.circuit_id.as_deref().map(Box::from),
        remote_id: a.remote_id.as_deref().map(Box::from),
        link_selection: a.link_selection,
    };
    agent
        .check()
        .map_err(|e| anyhow::anyhow!("the attack's option 82: {e}"))?;
    Ok(match (a.attack, &a.relays) {
        (Attack::Spoof82, Some(r)) if !r.is_empty() => bail!(
            "--attack spoof82 sends giaddr 0, as a subscriber does: it takes no --attack-relay"
        ),
        (Attack::Spoof82, _) => Vec::new(),
        (_, Some(r)) => r.clone(),
        (_, None) => relays.to_vec(),
    })
}

fn progress_bar(enabled: bool, count: Option<u64>) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match count {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = match count {
        Some(_) => "{elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
        None => "{elapsed_precise} {msg}",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Default cores for the generator's workers: the last ones first. A
/// server on the same host pins queue q's worker to core q, so a
/// generator taking the same cores would halve what both can do (the
/// benchmark saw about that).
fn from_the_top(workers: usize) -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort_unstable();
    ids.into_iter().rev().take(workers).collect()
}
