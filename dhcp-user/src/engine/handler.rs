//! The worker's side of the engine: a [`Handler`] per worker holds the
//! engine it currently uses, its clock, MAC, counters and way into the
//! lease journal, and implements the I/O's [`FrameHandler`] contract.
//!
//! Per frame it asks [`Engine::process`] for a verdict, counts it, hands
//! the lease change to the journal and, in durable mode, holds the reply
//! until its record is on disk. An OFFER whose address needs a conflict
//! check is handed to the probe service and held until the probe
//! completes: sent if nobody answered, dropped (and the address put into
//! probation) if someone did. A reload is taken up here, at the start of
//! a batch, never in the middle of one.
use super::conflict::{Probe, ProbeAsk};
use super::journal_link::{Appended, JournalLink};
use super::lifecycle::Clock;
use super::reply::Local;
use super::{Engine, Limited, Note, Notes, Silence, Verdict};
use crate::handler::{FrameHandler, ReplyKind};
use crate::lease::table::Ahead;
use crate::leasequery::link::LeaseQueryLink;
use crate::probe::ProbeLink;
use crate::stats::{WorkerStats, bump};
use crate::wire::dhcp::MessageType;
use arc_swap::ArcSwap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// A probe this worker asked for and has not taken up yet.
struct Pending {
    ticket: u64,
    ask: ProbeAsk,
}

/// The worker's side of the conflict checks.
struct Probing {
    link: ProbeLink,
    /// Probes submitted and not yet taken up, in ticket order (at most
    /// the link's capacity, allocated at start).
    pending: VecDeque<Pending>,
    /// Answered tickets the service reported, not yet taken up.
    answered: VecDeque<u64>,
    /// Taken-up tickets whose reply must be dropped, until the worker
    /// asks about them ([`FrameHandler::released`]).
    refused: VecDeque<u64>,
    /// The ticket the reply just written waits for (0: none).
    hold: u64,
}

/// A worker's handle: the shared engine plus this worker's clock, MAC,
/// counters and way into the lease journal.
pub struct Handler {
    engine: Arc<Engine>,
    cell: Arc<ArcSwap<Engine>>,
    local: Local,
    stats: Arc<WorkerStats>,
    clock: Clock,
    journal: Option<JournalLink>,
    /// The ticket the reply just written waits for (0: none).
    hold: u64,
    /// What the reply just written is.
    kind: ReplyKind,
    probing: Option<Probing>,
    /// Where allowed DHCPLEASEQUERYs go (`[leasequery]`).
    leasequery: Option<LeaseQueryLink>,
    /// The batch's clients as located by `prefetch`, whose records
    /// `prefetched` then starts loading.
    ahead: [Ahead; AHEAD],
    n_ahead: usize,
}

/// Frames of a batch whose lease records are fetched ahead: the default
/// batch. Beyond it, more lines in flight than the core tracks at once
/// would only push each other out.
const AHEAD: usize = 64;

impl Handler {
    /// A worker's handle on whatever engine `cell` holds: the daemon swaps
    /// in a reloaded engine there and the worker takes it up at its next
    /// batch.
    pub fn new(cell: Arc<ArcSwap<Engine>>, mac: [u8; 6], stats: Arc<WorkerStats>) -> Handler {
        let engine = cell.load_full();
        Handler {
            local: Local {
                mac,
                dscp: engine.dscp,
                home: 0,
            },
            engine,
            cell,
            stats,
            clock: Clock::default(),
            journal: None,
            hold: 0,
            kind: ReplyKind::Other,
            probing: None,
            leasequery: None,
            ahead: [Ahead::default(); AHEAD],
            n_ahead: 0,
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// This handler's worker index, which is its home shard in every pool:
    /// give each worker its own (0, 1, …) so they allocate apart.
    pub fn worker(mut self, index: usize) -> Handler {
        self.local.home = index;
        self
    }

    /// Journals this worker's lease changes through `link`.
    pub fn with_journal(mut self, link: JournalLink) -> Handler {
        self.journal = Some(link);
        self
    }

    /// Probes the addresses of checked OFFERs through `link` (without it
    /// they are offered unprobed).
    pub fn with_probe(mut self, link: ProbeLink) -> Handler {
        let cap = link.capacity();
        self.probing = Some(Probing {
            link,
            pending: VecDeque::with_capacity(cap),
            answered: VecDeque::with_capacity(cap),
            refused: VecDeque::with_capacity(cap),
            hold: 0,
        });
        self
    }

    /// Hands allowed DHCPLEASEQUERYs to the leasequery service through
    /// `link` (without it they are counted and dropped).
    pub fn with_leasequery(mut self, link: LeaseQueryLink) -> Handler {
        self.leasequery = Some(link);
        self
    }

    /// Hands `ask` to the probe service and holds the reply for it, or
    /// counts why not (the OFFER then leaves unprobed).
    fn ask_probe(&mut self, ask: ProbeAsk) {
        let s = &*self.stats;
        let Some(p) = self.probing.as_mut() else {
            return;
        };
        if p.pending.len() >= p.link.capacity() {
            bump(&s.conflict_queue_full);
            return;
        }
        match p.link.submit(ask.addr) {
            Some(ticket) => {
                p.pending.push_back(Pending { ticket, ask });
                p.hold = ticket;
                bump(&s.conflict_probed);
            }
            None => bump(&s.conflict_queue_full),
        }
    }
}

impl FrameHandler for Handler {
    #[inline]
    fn begin_batch(&mut self, now: Instant) {
        // A reload swaps the engine; this is the one place a worker sees it.
        if !Arc::ptr_eq(&self.cell.load(), &self.engine) {
            self.engine = self.cell.load_full();
            self.local.dscp = self.engine.dscp;
        }
        self.clock = Clock::now(&self.engine, now);
    }

    #[inline]
    fn prefetch(&mut self, rx: &[u8]) {
        if self.n_ahead < AHEAD
            && let Some(a) = self.engine.prefetch(rx)
        {
            self.ahead[self.n_ahead] = a;
            self.n_ahead += 1;
        }
    }

    #[inline]
    fn prefetched(&mut self) {
        for a in &self.ahead[..self.n_ahead] {
            self.engine.leases().prefetch_record(*a);
        }
        self.n_ahead = 0;
    }

    fn handle(&mut self, rx: &[u8], tx: &mut [u8]) -> Option<usize> {
        let mut record = None;
        let mut notes = Notes::default();
        let verdict = self
            .engine
            .process(rx, tx, self.clock, &self.local, &mut record, &mut notes);
        let s = &*self.stats;
        if let Some(n) = notes.event {
            bump(match n {
                Note::DeclineNotBound => &s.decline_not_bound,
                Note::DeclineRateLimited => &s.decline_rate_limited,
                Note::ProbationFull => &s.probation_full,
                Note::ReservationConflict => &s.reservation_conflict,
            });
        }
        self.hold = 0;
        if notes.untrusted_agent_info {
            bump(&s.untrusted_agent_info);
        }
        if let Some(p) = self.probing.as_mut() {
            p.hold = 0;
        }
        let (req, mut reply) = match verdict {
            Verdict::Malformed => {
                bump(&s.malformed);
                return None;
            }
            Verdict::Silent(req, why) => {
                bump(match why {
                    Silence::Ignored => &s.ignored,
                    Silence::NoSubnet => &s.no_subnet,
                    Silence::NoAddress => &s.no_address,
                    Silence::TableFull => &s.table_full,
                    Silence::Untrusted => &s.untrusted_dropped,
                    Silence::NotOwned => &s.not_owned,
                    Silence::Limited(why) => limited(s, why),
                });
                (req, None)
            }
            Verdict::Reply(req, kind, len) => (req, Some((kind, len))),
            Verdict::Refused(why, len) => {
                bump(limited(s, why));
                (MessageType::Request, Some((MessageType::Nak, len)))
            }
            // Answered off the packet path: a copy of the frame goes to
            // the leasequery service, nothing is written here.
            Verdict::LeaseQuery { allowed } => {
                bump(&s.leasequery);
                match (&self.leasequery, allowed) {
                    (_, false) => bump(&s.leasequery_refused),
                    (Some(link), true) if link.submit(rx) => {}
                    _ => bump(&s.leasequery_dropped),
                }
                return None;
            }
        };
        count_request(s, req);
        if let (Some(rec), Some(j)) = (&record, self.journal.as_mut()) {
            let ticket = match j.append(rec) {
                Appended::Sent(t) => t,
                Appended::Queued(t) => {
                    bump(&s.journal_full);
                    t
                }
                Appended::Refused => {
                    bump(&s.journal_full);
                    bump(&s.journal_lost);
                    if j.durable() {
                        // Never an ACK for a lease that is not on disk.
                        reply = None;
                    }
                    0
                }
            };
            if j.durable() {
                self.hold = ticket;
            }
        }
        let (kind, len) = reply?;
        if (req, kind) == (MessageType::Discover, MessageType::Ack) {
            bump(&s.rapid_commit);
        }
        self.kind = match kind {
            MessageType::Offer => {
                bump(&s.offer);
                ReplyKind::Offer
            }
            MessageType::Ack => {
                bump(&s.ack);
                ReplyKind::Ack
            }
            MessageType::Nak => {
                bump(&s.nak);
                ReplyKind::Nak
            }
            _ => ReplyKind::Other,
        };
        if kind == MessageType::Offer {
            match notes.probe {
                Probe::Needed(ask) => self.ask_probe(ask),
                Probe::Skipped => bump(&s.conflict_skipped),
                Probe::None => {}
            }
        }
        Some(len)
    }

    #[inline]
    fn probe_for(&self) -> u64 {
        self.probing.as_ref().map_or(0, |p| p.hold)
    }

    fn probed(&mut self) -> u64 {
        let Some(p) = self.probing.as_mut() else {
            return u64::MAX;
        };
        // The watermark first: an answer is reported before it passes.
        let done = p.link.done();
        while let Some(t) = p.link.next_conflict() {
            p.answered.push_back(t);
        }
        let mut clock = None;
        while p.pending.front().is_some_and(|q| q.ticket <= done) {
            let Some(q) = p.pending.pop_front() else {
                break;
            };
            while p.answered.front().is_some_and(|&t| t < q.ticket) {
                p.answered.pop_front();
            }
            let clock = *clock.get_or_insert_with(|| Clock::now(&self.engine, Instant::now()));
            if p.answered.front() == Some(&q.ticket) {
                p.answered.pop_front();
                bump(&self.stats.conflict_found);
                if p.refused.len() == p.refused.capacity() {
                    p.refused.pop_front();
                }
                p.refused.push_back(q.ticket);
                // Debug only: whoever answers probes chooses how often this runs.
                tracing::debug!(addr = %q.ask.addr, "conflict check answered: into probation");
                // The probation is journaled, so a restart keeps it.
                if let Some(rec) = self.engine.conflict(&q.ask, clock)
                    && let Some(j) = self.journal.as_mut()
                    && let Appended::Refused = j.append(&rec)
                {
                    bump(&self.stats.journal_full);
                    bump(&self.stats.journal_lost);
                }
            } else {
                self.engine.probed(&q.ask, clock.secs);
            }
        }
        done
    }

    fn released(&mut self, ticket: u64) -> bool {
        let Some(p) = self.probing.as_mut() else {
            return true;
        };
        while p.refused.front().is_some_and(|&t| t < ticket) {
            p.refused.pop_front();
        }
        if p.refused.front() == Some(&ticket) {
            p.refused.pop_front();
            return false;
        }
        true
    }

    fn probe_fd(&self) -> Option<std::os::fd::RawFd> {
        self.probing.as_ref().map(|p| p.link.wake_fd())
    }

    #[inline]
    fn hold_for(&self) -> u64 {
        self.hold
    }

    #[inline]
    fn reply_kind(&self) -> ReplyKind {
        self.kind
    }

    #[inline]
    fn durable(&mut self) -> u64 {
        self.journal.as_mut().map_or(u64::MAX, |j| {
            j.flush();
            j.durable_seq()
        })
    }

    fn durable_fd(&self) -> Option<std::os::fd::RawFd> {
        self.journal.as_ref().map(JournalLink::wake_fd)
    }

    fn backlog(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.backlog() > 0)
    }
}

/// The counter of a limit's refusals.
fn limited(s: &WorkerStats, why: Limited) -> &std::sync::atomic::AtomicU64 {
    match why {
        Limited::CircuitId => &s.limited_circuit_id,
        Limited::RemoteId => &s.limited_remote_id,
        Limited::Vlan => &s.limited_vlan,
        Limited::Mac => &s.limited_mac,
        Limited::TableFull => &s.limit_table_full,
        Limited::RateMac => &s.rate_limited_mac,
        Limited::RateCircuitId => &s.rate_limited_circuit_id,
        Limited::SrcMac => &s.src_mac_mismatch,
    }
}

fn count_request(s: &WorkerStats, req: MessageType) {
    match req {
        MessageType::Discover => bump(&s.discover),
        MessageType::Request => bump(&s.request),
        MessageType::Decline => bump(&s.decline),
        MessageType::Release => bump(&s.release),
        MessageType::Inform => bump(&s.inform),
        _ => {}
    }
}

impl Engine {
    /// A worker's handle on this engine alone (tests, tools).
    pub fn handler(self: &Arc<Self>, mac: [u8; 6], stats: Arc<WorkerStats>) -> Handler {
        Handler::new(Arc::new(ArcSwap::new(self.clone())), mac, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::super::conflict::tests::{CHECKED, discover};
    use super::*;
    use crate::config::Config;
    use crate::probe::{ProbeService, Prober};
    use crossbeam_channel::{Receiver, Sender, bounded};
    use std::collections::HashSet;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    /// Answers for the addresses in `in_use`; `send` waits for a go from
    /// the test, so no probe can complete before the test allows it.
    struct Gated {
        in_use: HashSet<Ipv4Addr>,
        go: Receiver<()>,
        heard: Vec<Ipv4Addr>,
    }

    impl Prober for Gated {
        fn send(&mut self, addr: Ipv4Addr) -> std::io::Result<()> {
            let _ = self.go.recv();
            if self.in_use.contains(&addr) {
                self.heard.push(addr);
            }
            Ok(())
        }
        fn answers(&mut self, seen: &mut dyn FnMut(Ipv4Addr)) {
            self.heard.drain(..).for_each(seen);
        }
        fn wait(&mut self, timeout: Duration) {
            std::thread::sleep(timeout);
        }
    }

    struct Rig {
        h: Handler,
        stats: Arc<WorkerStats>,
        go: Sender<()>,
        _service: ProbeService,
    }

    fn rig(in_use: &[Ipv4Addr]) -> Rig {
        let (go, gate) = bounded(64);
        let prober = Gated {
            in_use: in_use.iter().copied().collect(),
            go: gate,
            heard: Vec::new(),
        };
        let (service, mut links) =
            ProbeService::start(prober, Duration::from_millis(20), 1, 8).unwrap();
        let e = Arc::new(Engine::new(&Config::parse(CHECKED).unwrap()));
        let stats = Arc::new(WorkerStats::default());
        let mut h = e
            .handler([2, 0, 0, 0, 0, 1], stats.clone())
            .with_probe(links.remove(0));
        h.begin_batch(Instant::now());
        Rig {
            h,
            stats,
            go,
            _service: service,
        }
    }

    /// Waits (a liveness bound, not a timing check) until the handler's
    /// probes reach `ticket`.
    fn completed(h: &mut Handler, ticket: u64) {
        let until = Instant::now() + Duration::from_secs(20);
        while h.probed() < ticket {
            assert!(Instant::now() < until, "probe {ticket} never completed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn offer(h: &mut Handler, client: u8) -> (Ipv4Addr, u64) {
        let mut tx = vec![0u8; 2048];
        h.handle(&discover(client), &mut tx).expect("an OFFER");
        (Ipv4Addr::new(tx[58], tx[59], tx[60], tx[61]), h.probe_for())
    }

    const A10: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const A11: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

    #[test]
    fn an_offer_is_released_only_once_its_probe_completed() {
        let mut r = rig(&[]);
        let (addr, ticket) = offer(&mut r.h, 1);
        assert_eq!(addr, A10);
        assert_ne!(ticket, 0, "a fresh address parks its OFFER");
        assert_eq!(r.h.hold_for(), 0, "an OFFER waits for no journal");
        // The probe has not even left (the prober waits for the go).
        assert!(r.h.probed() < ticket);
        r.go.send(()).unwrap();
        completed(&mut r.h, ticket);
        assert!(r.h.released(ticket), "nobody answered: the OFFER leaves");
        let s = r.stats.snapshot();
        assert_eq!((s.conflict_probed, s.conflict_found), (1, 0));
        // Probed lately: the retransmission's OFFER leaves at once.
        let (addr, again) = offer(&mut r.h, 1);
        assert_eq!((addr, again), (A10, 0));
        assert_eq!(r.stats.snapshot().conflict_skipped, 1);
    }

    #[test]
    fn an_answered_probe_drops_the_offer_and_the_next_discover_gets_another_address() {
        let mut r = rig(&[A10]);
        let (addr, ticket) = offer(&mut r.h, 1);
        assert_eq!(addr, A10);
        // A second client's OFFER behind it, with a free address.
        let (addr2, ticket2) = offer(&mut r.h, 2);
        assert_eq!(addr2, A11);
        assert!(ticket2 > ticket);
        r.go.send(()).unwrap();
        r.go.send(()).unwrap();
        completed(&mut r.h, ticket2);
        assert!(!r.h.released(ticket), "the address answered: no OFFER");
        assert!(r.h.released(ticket2), "the other one was not answered");
        assert_eq!(r.stats.snapshot().conflict_found, 1);
        // Client 1 retransmits: offered the next free address, probed.
        r.go.send(()).unwrap();
        let (addr, ticket3) = offer(&mut r.h, 1);
        assert_eq!(addr, Ipv4Addr::new(192, 0, 2, 12));
        assert_ne!(ticket3, 0);
        completed(&mut r.h, ticket3);
        assert!(r.h.released(ticket3));
        // And nobody is offered the address in use.
        for c in 3..8 {
            r.go.send(()).unwrap();
            assert_ne!(offer(&mut r.h, c).0, A10);
        }
    }

    /// A DHCPLEASEQUERY by address relayed by `giaddr`.
    fn leasequery(giaddr: Ipv4Addr) -> Vec<u8> {
        let mut b = crate::wire::testutil::bootp(&[53, 1, 10, 255]);
        b[0] = 1;
        b[12..16].copy_from_slice(&A10.octets());
        b[24..28].copy_from_slice(&giaddr.octets());
        crate::wire::testutil::udp_frame(
            &[],
            [2, 0, 0, 0, 0, 0xee],
            giaddr,
            Ipv4Addr::new(192, 0, 2, 1),
            67,
            67,
            &b,
        )
    }

    const WITH_LEASEQUERY: &str = r#"
interface = "test0"
server_id = "192.0.2.1"

[journal]
dir = "/nonexistent"

[leasequery]
requesters = ["198.51.100.0/24"]

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["192.0.2.10-192.0.2.20"]
"#;

    #[test]
    fn a_leasequery_goes_to_the_service_as_a_copy_refused_or_counted_when_full() {
        let e = Arc::new(Engine::new(&Config::parse(WITH_LEASEQUERY).unwrap()));
        let stats = Arc::new(WorkerStats::default());
        let (link, rx) = crate::leasequery::queue(1);
        let mut h = e
            .handler([2, 0, 0, 0, 0, 1], stats.clone())
            .with_leasequery(link);
        h.begin_batch(Instant::now());
        let mut tx = vec![0u8; 2048];
        let allowed = leasequery(Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(
            h.handle(&allowed, &mut tx),
            None,
            "the worker writes nothing"
        );
        assert_eq!(rx.try_recv().unwrap().frame(), &allowed[..]);
        // Another relay, and no relay at all: refused.
        for g in [Ipv4Addr::new(203, 0, 113, 1), Ipv4Addr::UNSPECIFIED] {
            assert_eq!(h.handle(&leasequery(g), &mut tx), None);
        }
        assert!(
            rx.try_recv().is_err(),
            "nothing refused reaches the service"
        );
        // The queue holds one: the second is dropped, counted.
        assert_eq!(h.handle(&allowed, &mut tx), None);
        assert_eq!(h.handle(&allowed, &mut tx), None);
        let s = stats.snapshot();
        assert_eq!(
            (s.leasequery, s.leasequery_refused, s.leasequery_dropped),
            (5, 2, 1)
        );
        assert_eq!((s.ignored, s.malformed), (0, 0));
        // Without [leasequery] it is one more request we ignore.
        let e = Arc::new(Engine::new(&Config::parse(CHECKED).unwrap()));
        let stats = Arc::new(WorkerStats::default());
        let mut h = e.handler([2, 0, 0, 0, 0, 1], stats.clone());
        h.begin_batch(Instant::now());
        assert_eq!(h.handle(&allowed, &mut tx), None);
        let s = stats.snapshot();
        assert_eq!((s.leasequery, s.ignored), (0, 1));
    }

    /// The batch's prefetch points at the probe chain where the engine
    /// keeps the client, on any link and by option 61 or chaddr: the
    /// hint is computed before the subnet is known.
    #[test]
    fn prefetch_points_where_the_engine_keeps_the_client() {
        const TWO: &str = r#"
interface = "test0"
server_id = "192.0.2.1"

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["192.0.2.10-192.0.2.20"]

[[subnet]]
prefix = "198.51.100.0/24"
pools = ["198.51.100.10-198.51.100.20"]
"#;
        let e = Arc::new(Engine::new(&Config::parse(TWO).unwrap()));
        let mut h = e.handler([2, 0, 0, 0, 0, 1], Arc::new(WorkerStats::default()));
        let mut tx = vec![0u8; crate::handler::TX_FRAME_CAPACITY];
        for (last, relayed, with_id) in [(1, false, false), (2, true, false), (3, true, true)] {
            let mut opts = vec![53, 1, 1];
            let id = [1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, last];
            if with_id {
                opts.extend([61, id.len() as u8]);
                opts.extend(id);
            }
            let mut f = super::super::conflict::tests::request(last, &opts);
            if relayed {
                // giaddr: the second subnet, whose link is not 0.
                f[42 + 24..42 + 28].copy_from_slice(&[198, 51, 100, 1]);
            }
            h.begin_batch(Instant::now());
            h.prefetch(&f);
            h.prefetched();
            assert!(h.handle(&f, &mut tx).is_some(), "client {last}: an OFFER");
            let chain = e.leases().chain_at(e.prefetch(&f).unwrap());
            let mac = super::super::conflict::tests::mac(last);
            let want: &[u8] = if with_id { &id } else { &mac };
            let found = chain
                .iter()
                .find(|k| &k.bytes[..usize::from(k.len)] == want)
                .unwrap_or_else(|| panic!("client {last} not in the chain {chain:?}"));
            assert_eq!(found.subnet != 0, relayed, "client {last}'s link");
        }
    }

    #[test]
    fn a_worker_over_its_share_offers_without_probing_and_counts_it() {
        let mut r = rig(&[]);
        // Capacity 8; the gate holds every probe.
        for c in 1..=8 {
            assert_ne!(offer(&mut r.h, c).1, 0);
        }
        let (_, ticket) = offer(&mut r.h, 9);
        assert_eq!(ticket, 0, "over the share: the OFFER is not parked");
        assert_eq!(r.stats.snapshot().conflict_queue_full, 1);
        for _ in 0..8 {
            r.go.send(()).unwrap();
        }
        completed(&mut r.h, 8);
    }
}
