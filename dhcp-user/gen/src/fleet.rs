//! One worker's clients and everything they do, without any I/O: the I/O
//! loop hands in received frames and the clock, and asks for frames to
//! send. Everything is allocated when the fleet is made; nothing on the
//! per-packet path allocates or takes a lock.
use super::attack::DeclineWhen;
use super::bindings::Binding;
use super::check::{AddressBook, Claim, Prefix};
use super::client::{Client, MAX_CLIENTS, Phase, client_mac, xid_epoch, xid_index};
use super::counters::{GenCounters, add, bump};
use super::latency::{Kind, Latencies};
use super::pace::Pacer;
use super::reply::{self, Parsed, Reply};
use super::request::{self, Identity, Request};
use super::ring::Ring;
use super::scenario::{AfterDora, Scenario};
use super::timer::TimerWheel;
use crossbeam_channel::{Receiver, Sender};
use std::net::Ipv4Addr;
use std::sync::Arc;
use xdhcp::wire::MessageType;

/// One worker's share of the run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub scenario: Scenario,
    /// All clients of the run (every worker's).
    pub clients: u32,
    pub workers: u32,
    pub worker: u32,
    /// Exchanges this worker starts in all; None: until the deadline.
    pub quota: Option<u64>,
    /// No exchange starts before this time (ns since run start): the
    /// normal fleet waits while an attack gets going.
    pub start_ns: u64,
    /// No exchange starts at or after this time (ns since run start).
    pub deadline_ns: Option<u64>,
    /// This worker's exchanges started per second; 0: open loop.
    pub rate: f64,
    /// Most exchanges of this worker in flight at once.
    pub window: u32,
    /// Wait for the first reply; doubled for every retransmission.
    pub timeout_ns: u64,
    /// Retransmissions before an exchange is given up.
    pub retries: u8,
    /// Mixed scenario: share of started exchanges that are renewals.
    pub renew_share: f64,
    pub expect: Option<Prefix>,
    pub relays: Vec<Ipv4Addr>,
    /// Frames handed out per batch, the pacer's burst.
    pub batch: usize,
    pub seed: u64,
    /// The decline attack: DECLINE what was ACKed, or what was offered
    /// (no REQUEST at all).
    pub decline: Option<DeclineWhen>,
    /// Added to client indices in the shared address book, so that two
    /// fleets of one run have distinct owners there.
    pub owner_base: u32,
    /// Reboot scenario: the leases the clients start with (every worker's;
    /// each takes its own). Only these clients run.
    pub preload: Option<Arc<[Binding]>>,
    /// A renewal that ran out of retransmissions goes on as a rebinding
    /// (broadcast, fresh retries), as a client does at T2 when its server
    /// has gone, instead of timing out.
    pub rebind_fallback: bool,
    /// Hand back, at the end, every client's lease ([`FleetResult::bindings`]).
    pub report_bindings: bool,
}

/// Replies for another worker's clients go to its inbox.
pub struct Mailboxes {
    pub inbox: Receiver<Reply>,
    /// Indexed by worker; this worker's own entry is never used.
    pub peers: Vec<Sender<Reply>>,
}

pub struct Fleet {
    plan: Plan,
    id: Identity,
    clients: Vec<Client>,
    timers: TimerWheel,
    fired: Vec<u32>,
    ready: Ring,
    idle: Ring,
    bound: Ring,
    pacer: Pacer,
    quota: Option<u64>,
    in_flight: u32,
    counters: Arc<GenCounters>,
    lat: Latencies,
    book: Arc<AddressBook>,
    /// Every address this fleet was ACKed, and every one it declined
    /// (owner 0: distinct addresses only), when a report needs them.
    leased: Option<Arc<AddressBook>>,
    declined: Option<Arc<AddressBook>>,
    mail: Mailboxes,
    rng: u64,
    last_completion_ns: u64,
}

/// What a worker hands back at the end.
pub struct FleetResult {
    pub latencies: Latencies,
    /// When the last exchange completed (ns since run start).
    pub last_completion_ns: u64,
    /// Exchanges still running when the worker stopped (interrupted).
    pub unfinished: u32,
    /// When the worker stopped (ns since run start); set by the I/O loop's
    /// thread.
    pub ended_ns: u64,
    /// With [`Plan::report_bindings`]: the clients holding an address at
    /// the end, their address and the server of the last ACK.
    pub bindings: Vec<Binding>,
}

impl Fleet {
    pub fn new(
        plan: Plan,
        id: Identity,
        counters: Arc<GenCounters>,
        book: Arc<AddressBook>,
        mail: Mailboxes,
    ) -> Fleet {
        assert!(plan.clients <= MAX_CLIENTS && plan.workers > 0 && plan.worker < plan.workers);
        let local = plan
            .clients
            .saturating_sub(plan.worker)
            .div_ceil(plan.workers) as usize;
        let mut idle = Ring::with_capacity(local);
        let mut clients = vec![Client::default(); local];
        match &plan.preload {
            None => {
                for l in 0..local as u32 {
                    idle.push(l);
                }
            }
            Some(leases) => {
                for b in leases.iter() {
                    if b.index >= plan.clients || b.index % plan.workers != plan.worker {
                        continue;
                    }
                    let l = b.index / plan.workers;
                    let c = &mut clients[l as usize];
                    if !c.held.is_unspecified() {
                        // Listed twice: asked for once.
                        continue;
                    }
                    c.held = b.address;
                    c.offered = b.address;
                    c.server_id = b.server_id;
                    idle.push(l);
                }
            }
        }
        Fleet {
            pacer: Pacer::new(plan.rate, plan.batch),
            quota: plan.quota,
            rng: plan.seed | 1,
            clients,
            timers: TimerWheel::new(local),
            fired: Vec::with_capacity(local),
            ready: Ring::with_capacity(local),
            bound: Ring::with_capacity(local),
            idle,
            in_flight: 0,
            counters,
            lat: Latencies::new(),
            book,
            leased: None,
            declined: None,
            mail,
            last_completion_ns: 0,
            plan,
            id,
        }
    }

    /// Records the distinct addresses this fleet is ACKed and declines in
    /// these books (shared by the fleet's workers).
    pub fn with_tally(
        mut self,
        leased: Arc<AddressBook>,
        declined: Option<Arc<AddressBook>>,
    ) -> Fleet {
        self.leased = Some(leased);
        self.declined = declined;
        self
    }

    /// The first three bytes of this fleet's MACs.
    pub fn mac_prefix(&self) -> [u8; 3] {
        self.id.mac_prefix
    }

    #[inline]
    fn global(&self, local: u32) -> u32 {
        local * self.plan.workers + self.plan.worker
    }

    /// One received frame.
    pub fn receive(&mut self, now_ns: u64, frame: &[u8]) {
        self.take(reply::parse(frame, now_ns));
    }

    /// One received frame, parsed.
    pub fn take(&mut self, parsed: Parsed) {
        bump(&self.counters.received);
        match parsed {
            Parsed::Malformed => bump(&self.counters.malformed),
            Parsed::NotOurs => bump(&self.counters.not_ours),
            Parsed::Reply(r) => self.dispatch(r),
        }
    }

    fn dispatch(&mut self, r: Reply) {
        let g = xid_index(r.xid);
        if g >= self.plan.clients {
            bump(&self.counters.wrong_xid);
            return;
        }
        let owner = g % self.plan.workers;
        if owner != self.plan.worker {
            if self.mail.peers[owner as usize].try_send(r).is_err() {
                bump(&self.counters.handoff_dropped);
            }
            return;
        }
        self.handle(g, r);
    }

    /// Replies other workers received for this worker's clients.
    pub fn drain_inbox(&mut self) {
        for _ in 0..self.plan.batch {
            match self.mail.inbox.try_recv() {
                Ok(r) => self.handle(xid_index(r.xid), r),
                Err(_) => break,
            }
        }
    }

    fn handle(&mut self, g: u32, r: Reply) {
        let l = g / self.plan.workers;
        let c = self.clients[l as usize];
        if xid_epoch(r.xid) != c.epoch {
            bump(&self.counters.wrong_xid);
            return;
        }
        if r.chaddr != client_mac(self.id.mac_prefix, g) {
            bump(&self.counters.wrong_chaddr);
            return;
        }
        if self.plan.scenario == Scenario::Echo {
            match c.phase {
                Phase::Selecting => self.on_echo(l, &r),
                _ => bump(&self.counters.unexpected),
            }
            return;
        }
        match (c.phase, r.msg) {
            (Phase::Selecting, Some(MessageType::Offer)) => self.on_offer(l, g, &r),
            (Phase::Requesting, Some(MessageType::Ack)) => self.on_dora_ack(l, g, &r),
            (Phase::Renewing | Phase::Rebinding, Some(MessageType::Ack)) => {
                self.on_renew_ack(l, g, &r)
            }
            (Phase::Rebooting, Some(MessageType::Ack)) => self.on_reboot_ack(l, g, &r),
            (
                Phase::Requesting | Phase::Renewing | Phase::Rebinding | Phase::Rebooting,
                Some(MessageType::Nak),
            ) => self.on_nak(l, g, &r),
            _ => bump(&self.counters.unexpected),
        }
    }

    /// Subnet and lease-time checks every OFFER and ACK gets.
    fn check_lease(&self, r: &Reply) {
        if let Some(p) = &self.plan.expect
            && !p.contains(r.yiaddr)
        {
            bump(&self.counters.bad_subnet);
        }
        if r.lease_time.is_none() {
            bump(&self.counters.missing_lease_time);
        }
    }

    fn on_offer(&mut self, l: u32, _g: u32, r: &Reply) {
        bump(&self.counters.offers);
        self.check_lease(r);
        let Some(server_id) = r.server_id else {
            // Nothing to REQUEST from: keep waiting (or retransmit).
            bump(&self.counters.missing_server_id);
            return;
        };
        self.timers.cancel(l);
        let c = &mut self.clients[l as usize];
        self.lat
            .record(Kind::Offer, r.at_ns.saturating_sub(c.started_ns));
        if self.plan.scenario.discover_only() {
            self.finish(l, true, r.at_ns);
            return;
        }
        c.offered = r.yiaddr;
        c.server_id = server_id;
        c.server_mac = r.src_mac;
        c.phase = if self.plan.decline == Some(DeclineWhen::Offered) {
            Phase::Declining
        } else {
            Phase::Requesting
        };
        c.tries = 0;
        self.enqueue(l);
    }

    /// Echo scenario: the DISCOVER came back; one round trip.
    fn on_echo(&mut self, l: u32, r: &Reply) {
        bump(&self.counters.echoes);
        self.timers.cancel(l);
        let c = &self.clients[l as usize];
        self.lat
            .record(Kind::Offer, r.at_ns.saturating_sub(c.started_ns));
        self.finish(l, true, r.at_ns);
    }

    fn on_dora_ack(&mut self, l: u32, g: u32, r: &Reply) {
        bump(&self.counters.acks);
        bump(&self.counters.dora);
        self.check_lease(r);
        self.timers.cancel(l);
        {
            let c = &mut self.clients[l as usize];
            self.lat.record(Kind::Ack, r.at_ns.saturating_sub(c.msg_ns));
            self.lat
                .record(Kind::Dora, r.at_ns.saturating_sub(c.started_ns));
            if let Some(id) = r.server_id {
                c.server_id = id;
            }
            c.server_mac = r.src_mac;
        }
        self.bind(l, g, r.yiaddr);
        let next = match self.plan.scenario.after_dora() {
            _ if self.plan.decline == Some(DeclineWhen::Acked) => {
                self.clients[l as usize].offered = r.yiaddr;
                Phase::Declining
            }
            AfterDora::Done | AfterDora::StayBound => {
                self.finish(l, true, r.at_ns);
                return;
            }
            AfterDora::Renew => Phase::Renewing,
            AfterDora::Rebind => Phase::Rebinding,
            AfterDora::Release => Phase::Releasing,
        };
        let c = &mut self.clients[l as usize];
        c.phase = next;
        c.tries = 0;
        if !matches!(next, Phase::Releasing | Phase::Declining) {
            new_transaction(c);
        }
        self.enqueue(l);
    }

    /// INIT-REBOOT answered: the address must be the one held; then the
    /// client renews at the server that answered.
    fn on_reboot_ack(&mut self, l: u32, g: u32, r: &Reply) {
        bump(&self.counters.acks);
        bump(&self.counters.reboots);
        self.check_lease(r);
        self.timers.cancel(l);
        let c = &mut self.clients[l as usize];
        if r.yiaddr != c.held {
            bump(&self.counters.moved);
        }
        self.lat.record(Kind::Ack, r.at_ns.saturating_sub(c.msg_ns));
        if let Some(id) = r.server_id {
            c.server_id = id;
        }
        c.server_mac = r.src_mac;
        self.bind(l, g, r.yiaddr);
        let c = &mut self.clients[l as usize];
        c.phase = Phase::Renewing;
        c.tries = 0;
        new_transaction(c);
        self.enqueue(l);
    }

    fn on_renew_ack(&mut self, l: u32, g: u32, r: &Reply) {
        bump(&self.counters.acks);
        self.check_lease(r);
        self.timers.cancel(l);
        let c = self.clients[l as usize];
        if r.yiaddr != c.held {
            bump(&self.counters.moved);
        }
        self.lat
            .record(Kind::Renew, r.at_ns.saturating_sub(c.msg_ns));
        if c.phase == Phase::Renewing {
            bump(&self.counters.renewals);
        } else {
            bump(&self.counters.rebinds);
        }
        self.bind(l, g, r.yiaddr);
        self.finish(l, true, r.at_ns);
    }

    fn on_nak(&mut self, l: u32, g: u32, r: &Reply) {
        bump(&self.counters.naks);
        if r.server_id.is_none() {
            bump(&self.counters.missing_server_id);
        }
        self.timers.cancel(l);
        self.unbind(l, g);
        self.finish(l, false, r.at_ns);
    }

    /// Records the client's (new) address, catching an address that
    /// another client holds.
    fn bind(&mut self, l: u32, g: u32, addr: Ipv4Addr) {
        let held = self.clients[l as usize].held;
        let owner = self.plan.owner_base + g;
        if !held.is_unspecified() && held != addr {
            self.book.release(held, owner);
        }
        if let Some(b) = &self.leased {
            b.claim(addr, 0);
        }
        match self.book.claim(addr, owner) {
            Claim::Ok => {}
            Claim::Duplicate { .. } => bump(&self.counters.duplicate_addresses),
            Claim::Full => bump(&self.counters.dup_check_skipped),
        }
        self.clients[l as usize].held = addr;
    }

    fn unbind(&mut self, l: u32, g: u32) {
        let c = &mut self.clients[l as usize];
        if !c.held.is_unspecified() {
            self.book.release(c.held, self.plan.owner_base + g);
            c.held = Ipv4Addr::UNSPECIFIED;
        }
    }

    fn finish(&mut self, l: u32, completed: bool, at_ns: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        bump(&self.counters.finished);
        if completed {
            bump(&self.counters.completed);
            self.last_completion_ns = self.last_completion_ns.max(at_ns);
        }
        let c = &mut self.clients[l as usize];
        c.tries = 0;
        if completed
            && self.plan.scenario.after_dora() == AfterDora::StayBound
            && !c.held.is_unspecified()
        {
            c.phase = Phase::Bound;
            self.bound.push(l);
        } else {
            c.phase = Phase::Idle;
            self.idle.push(l);
        }
    }

    fn enqueue(&mut self, l: u32) {
        let c = &mut self.clients[l as usize];
        if !c.queued {
            c.queued = true;
            self.ready.push(l);
        }
    }

    /// Fires due retransmission timers.
    pub fn tick(&mut self, now_ns: u64) {
        self.fired.clear();
        self.timers.expire(now_ns, &mut self.fired);
        for k in 0..self.fired.len() {
            let l = self.fired[k];
            let c = self.clients[l as usize];
            if !c.phase.awaits_reply() {
                continue;
            }
            if c.tries > self.plan.retries
                && c.phase == Phase::Renewing
                && self.plan.rebind_fallback
            {
                bump(&self.counters.fell_back);
                let c = &mut self.clients[l as usize];
                c.phase = Phase::Rebinding;
                c.tries = 0;
                self.enqueue(l);
            } else if c.tries > self.plan.retries {
                bump(&self.counters.timeouts);
                self.finish(l, false, now_ns);
            } else {
                self.enqueue(l);
            }
        }
    }

    /// Whether a frame is waiting to go out (retransmission or next step).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Writes the next frame to send into `buf` (a 2 KiB TX buffer) and
    /// returns its length; None when nothing is due now.
    pub fn next_frame(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        while let Some(l) = self.ready.pop() {
            let c = &mut self.clients[l as usize];
            c.queued = false;
            let req = match c.phase {
                Phase::Selecting => Request::Discover,
                Phase::Requesting => Request::Select,
                Phase::Renewing => Request::Renew,
                Phase::Rebinding => Request::Rebind,
                Phase::Rebooting => Request::Reboot,
                Phase::Releasing => Request::Release,
                Phase::Declining => Request::Decline,
                // The exchange ended while the client waited in the queue.
                Phase::Idle | Phase::Bound => continue,
            };
            if let Some(n) = self.send(l, req, now_ns, buf) {
                return Some(n);
            }
        }
        while self.may_start(now_ns) {
            let renew = self.plan.scenario == Scenario::Mixed
                && !self.bound.is_empty()
                && (self.idle.is_empty() || self.chance() < self.plan.renew_share);
            let from = if renew {
                &mut self.bound
            } else {
                &mut self.idle
            };
            let l = from.pop()?;
            self.pacer.spend();
            if let Some(q) = &mut self.quota {
                *q -= 1;
            }
            self.in_flight += 1;
            bump(&self.counters.started);
            let c = &mut self.clients[l as usize];
            new_transaction(c);
            c.started_ns = now_ns;
            c.tries = 0;
            let (phase, req) = if renew {
                (Phase::Renewing, Request::Renew)
            } else if self.plan.scenario == Scenario::Reboot {
                (Phase::Rebooting, Request::Reboot)
            } else {
                (Phase::Selecting, Request::Discover)
            };
            c.phase = phase;
            if let Some(n) = self.send(l, req, now_ns, buf) {
                return Some(n);
            }
        }
        None
    }

    fn may_start(&mut self, now_ns: u64) -> bool {
        self.quota != Some(0)
            && now_ns >= self.plan.start_ns
            && self.plan.deadline_ns.is_none_or(|d| now_ns < d)
            && self.in_flight < self.plan.window
            && self.pacer.ready(now_ns)
    }

    fn send(&mut self, l: u32, req: Request, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        let g = self.global(l);
        let relay = match self.plan.relays.len() {
            0 => None,
            n => Some(self.plan.relays[g as usize % n]),
        };
        let c = &mut self.clients[l as usize];
        if c.tries == 0 {
            c.msg_ns = now_ns;
        } else {
            bump(&self.counters.retransmits);
        }
        c.tries = c.tries.saturating_add(1);
        let secs = (now_ns.saturating_sub(c.started_ns) / 1_000_000_000).min(u16::MAX.into());
        let Some(n) = request::build(buf, &self.id, g, c, req, relay, secs as u16) else {
            // Options are checked before the run, so this cannot happen
            // with a 2 KiB buffer; give the exchange up rather than loop.
            self.finish(l, false, now_ns);
            return None;
        };
        let tries = c.tries;
        add(&self.counters.sent, 1);
        match req {
            Request::Discover => bump(&self.counters.sent_discover),
            Request::Select | Request::Renew | Request::Rebind | Request::Reboot => {
                bump(&self.counters.sent_request)
            }
            Request::Release => bump(&self.counters.sent_release),
            Request::Decline => bump(&self.counters.sent_decline),
        }
        if req == Request::Decline {
            let addr = self.clients[l as usize].offered;
            if let Some(b) = &self.declined {
                b.claim(addr, 0);
            }
        }
        if matches!(req, Request::Release | Request::Decline) {
            self.unbind(l, g);
            self.finish(l, true, now_ns);
        } else {
            let wait = self.plan.timeout_ns << u32::from(tries - 1).min(16);
            self.timers.arm(l, now_ns + wait);
        }
        Some(n)
    }

    /// Over: nothing more will start, nothing is in flight or queued.
    pub fn is_done(&self, now_ns: u64) -> bool {
        self.in_flight == 0
            && self.ready.is_empty()
            && (self.quota == Some(0) || self.plan.deadline_ns.is_some_and(|d| now_ns >= d))
    }

    pub fn into_result(self) -> FleetResult {
        let bindings = if self.plan.report_bindings {
            self.clients
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.held.is_unspecified())
                .map(|(l, c)| Binding {
                    index: self.global(l as u32),
                    address: c.held,
                    server_id: c.server_id,
                })
                .collect()
        } else {
            Vec::new()
        };
        FleetResult {
            latencies: self.lat,
            last_completion_ns: self.last_completion_ns,
            unfinished: self.in_flight,
            ended_ns: 0,
            bindings,
        }
    }

    /// A uniform number in [0, 1) (xorshift64*; quality is beside the
    /// point, it only splits renewals from new clients).
    fn chance(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A new xid for the client's next transaction; epoch 0 is never used, so
/// a reply naming a client that never sent anything is a wrong xid.
fn new_transaction(c: &mut Client) {
    c.epoch = c.epoch.wrapping_add(1);
    if c.epoch == 0 {
        c.epoch = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdhcp::wire::VlanTags;
    use xdhcp::wire::dhcp::{BOOTREPLY, HTYPE_ETHERNET};
    use xdhcp::wire::options::code;
    use xdhcp::wire::{
        BootpHeader, DhcpFrame, DhcpWriter, FrameHeaders, emit_headers, headers_len,
    };

    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    fn plan(scenario: Scenario, clients: u32, quota: u64) -> Plan {
        Plan {
            scenario,
            clients,
            workers: 1,
            worker: 0,
            quota: Some(quota),
            deadline_ns: None,
            rate: 0.0,
            window: 64,
            timeout_ns: 10_000_000,
            retries: 1,
            renew_share: 0.5,
            expect: Some("10.0.0.0/24".parse().unwrap()),
            relays: Vec::new(),
            batch: 64,
            seed: 1,
            start_ns: 0,
            decline: None,
            owner_base: 0,
            preload: None,
            rebind_fallback: false,
            report_bindings: false,
        }
    }

    fn fleet(p: Plan) -> (Fleet, Arc<GenCounters>) {
        let counters = Arc::new(GenCounters::default());
        let (tx, rx) = crossbeam_channel::bounded(16);
        let id = Identity {
            mac_prefix: [2, 0x67, 0x65],
            iface_mac: [2, 0, 0, 0, 0, 9],
            vlans: VlanTags::NONE,
            broadcast: false,
            client_id: false,
            option82: false,
            server: None,
            agent: Default::default(),
            src_mac: None,
        };
        let book = Arc::new(AddressBook::new(p.clients as usize));
        let f = Fleet::new(
            p,
            id,
            counters.clone(),
            book,
            Mailboxes {
                inbox: rx,
                peers: vec![tx],
            },
        );
        (f, counters)
    }

    /// A toy server: answers DISCOVER with OFFER and REQUEST with ACK,
    /// address 10.0.0.(10 + client index), or `addr` when given.
    fn answer(req: &[u8], out: &mut [u8], addr: Option<Ipv4Addr>, xid_xor: u32) -> Option<usize> {
        let f = DhcpFrame::parse(req).unwrap();
        let mut j = None;
        let o = f.options(&mut j).unwrap();
        let kind = match o.msg_type()? {
            MessageType::Discover => MessageType::Offer,
            MessageType::Request => MessageType::Ack,
            _ => return None,
        };
        let mac = f.dhcp.chaddr_mac();
        let yiaddr = addr.unwrap_or(Ipv4Addr::new(10, 0, 0, 10 + mac[5]));
        let at = headers_len(&VlanTags::NONE);
        let mut w = DhcpWriter::new(&mut out[at..]).unwrap();
        w.option_u8(code::MESSAGE_TYPE, kind.as_u8()).unwrap();
        w.option_ip(code::SERVER_ID, SERVER).unwrap();
        w.option_u32(code::LEASE_TIME, 3600).unwrap();
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&mac);
        w.header(&BootpHeader {
            op: BOOTREPLY,
            htype: HTYPE_ETHERNET,
            hlen: 6,
            hops: 0,
            xid: f.dhcp.xid() ^ xid_xor,
            secs: 0,
            flags: 0,
            ciaddr: f.dhcp.ciaddr(),
            yiaddr,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
        });
        let len = w.finish().unwrap();
        let h = FrameHeaders {
            src_mac: SERVER_MAC,
            dst_mac: mac,
            vlans: VlanTags::NONE,
            src_ip: SERVER,
            dst_ip: yiaddr,
            src_port: 67,
            dst_port: 68,
            ttl: 64,
            dscp: 0,
        };
        emit_headers(out, &h, len).ok()
    }

    /// Runs the fleet against `answer` until done (or 1000 rounds), 1 ms
    /// per round.
    fn drive(f: &mut Fleet, mut serve: impl FnMut(&[u8], &mut [u8]) -> Option<usize>) -> u64 {
        let mut tx = [0u8; 2048];
        let mut rx = [0u8; 2048];
        let mut now = 1_000_000;
        for _ in 0..1000 {
            f.tick(now);
            while let Some(n) = f.next_frame(now, &mut tx) {
                if let Some(m) = serve(&tx[..n], &mut rx) {
                    f.receive(now + 50_000, &rx[..m]);
                }
            }
            if f.is_done(now) {
                return now;
            }
            now += 1_000_000;
        }
        panic!("fleet did not finish");
    }

    #[test]
    fn dora_completes_every_client() {
        let (mut f, c) = fleet(plan(Scenario::Dora, 20, 40));
        drive(&mut f, |req, out| answer(req, out, None, 0));
        let s = c.snapshot();
        assert_eq!((s.started, s.completed, s.dora), (40, 40, 40), "{s:?}");
        assert_eq!((s.sent_discover, s.sent_request, s.acks), (40, 40, 40));
        assert_eq!(
            s.duplicate_addresses + s.timeouts + s.wrong_xid + s.bad_subnet,
            0
        );
        let r = f.into_result();
        assert_eq!(r.latencies.get(Kind::Dora).len(), 40);
        assert_eq!(r.unfinished, 0);
    }

    #[test]
    fn renew_rebind_release_flood_mixed() {
        for (sc, check) in [
            (Scenario::Renew, 0usize),
            (Scenario::Rebind, 1),
            (Scenario::Release, 2),
            (Scenario::Flood, 3),
            (Scenario::Mixed, 4),
        ] {
            let (mut f, c) = fleet(plan(sc, 10, 30));
            drive(&mut f, |req, out| answer(req, out, None, 0));
            let s = c.snapshot();
            assert_eq!(s.completed, 30, "{sc:?} {s:?}");
            assert_eq!(
                s.timeouts + s.duplicate_addresses + s.unexpected,
                0,
                "{sc:?} {s:?}"
            );
            match check {
                0 => assert_eq!((s.renewals, s.dora), (30, 30)),
                1 => assert_eq!((s.rebinds, s.dora), (30, 30)),
                2 => assert_eq!((s.sent_release, s.dora), (30, 30)),
                3 => assert_eq!((s.offers, s.sent_request), (30, 0)),
                _ => {
                    assert_eq!(s.dora + s.renewals, 30);
                    assert!(s.renewals > 0 && s.dora >= 10, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn an_unanswered_renewal_falls_back_to_rebinding() {
        // The server ignores unicast: the renewals go unanswered, as when
        // the server a client renews at has died.
        let serve = |req: &[u8], out: &mut [u8]| {
            let f = DhcpFrame::parse(req).unwrap();
            (f.ip.dst() == Ipv4Addr::BROADCAST)
                .then(|| answer(req, out, None, 0))
                .flatten()
        };
        let mut p = plan(Scenario::Renew, 8, 8);
        p.rebind_fallback = true;
        let (mut f, c) = fleet(p);
        drive(&mut f, serve);
        let s = c.snapshot();
        assert_eq!(
            (s.completed, s.fell_back, s.rebinds, s.timeouts),
            (8, 8, 8, 0),
            "{s:?}"
        );
        assert_eq!(s.renewals + s.moved, 0, "{s:?}");
        // Without the fallback they time out.
        let (mut f, c) = fleet(plan(Scenario::Renew, 8, 8));
        drive(&mut f, serve);
        let s = c.snapshot();
        assert_eq!((s.completed, s.timeouts, s.fell_back), (0, 8, 0), "{s:?}");
    }

    #[test]
    fn echo_counts_round_trips() {
        let (mut f, c) = fleet(plan(Scenario::Echo, 10, 30));
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        drive(&mut f, |req, out| {
            crate::echo::echo_frame(req, out, SERVER_MAC, ip).ok()
        });
        let s = c.snapshot();
        assert_eq!(
            (s.completed, s.echoes, s.sent_discover),
            (30, 30, 30),
            "{s:?}"
        );
        assert_eq!(s.sent_request + s.offers + s.timeouts + s.unexpected, 0);
        assert_eq!(s.bad_subnet + s.missing_lease_time + s.wrong_xid, 0);
        let r = f.into_result();
        assert_eq!(r.latencies.get(Kind::Offer).len(), 30);
        assert_eq!(r.latencies.get(Kind::Dora).len(), 0);
    }

    #[test]
    fn faults_are_counted() {
        // Every reply for an even client gets a wrong xid; the others all
        // get the same address.
        let (mut f, c) = fleet(plan(Scenario::Dora, 6, 6));
        let same = Ipv4Addr::new(10, 0, 0, 99);
        drive(&mut f, |req, out| {
            let mac = DhcpFrame::parse(req).unwrap().dhcp.chaddr_mac();
            if mac[5].is_multiple_of(2) {
                answer(req, out, None, 0xffff_ffff)
            } else {
                answer(req, out, Some(same), 0)
            }
        });
        let s = c.snapshot();
        // 3 clients x 2 DISCOVERs with wrong-xid OFFERs, then a timeout each.
        assert_eq!((s.wrong_xid, s.timeouts, s.retransmits), (6, 3, 3), "{s:?}");
        assert_eq!((s.completed, s.duplicate_addresses), (3, 2), "{s:?}");
    }

    #[test]
    fn decline_what_was_acked_or_only_offered() {
        for when in [DeclineWhen::Acked, DeclineWhen::Offered] {
            let mut p = plan(Scenario::Dora, 10, 10);
            p.decline = Some(when);
            let (f, c) = fleet(p);
            let leased = Arc::new(AddressBook::new(10));
            let declined = Arc::new(AddressBook::new(10));
            let mut f = f.with_tally(leased.clone(), Some(declined.clone()));
            let mut declines = Vec::new();
            drive(&mut f, |req, out| {
                let mut j = None;
                let r = xdhcp::engine::parse(req, &mut j).unwrap();
                if r.kind == MessageType::Decline {
                    declines.push(r.opts.requested_ip.unwrap());
                }
                answer(req, out, None, 0)
            });
            let s = c.snapshot();
            assert_eq!(
                (s.completed, s.sent_decline, s.offers),
                (10, 10, 10),
                "{s:?}"
            );
            let acked = if when == DeclineWhen::Acked { 10 } else { 0 };
            assert_eq!((s.sent_request, s.acks), (acked, acked), "{when:?} {s:?}");
            assert_eq!(s.timeouts + s.unexpected + s.duplicate_addresses, 0);
            declines.sort_unstable();
            let expect: Vec<Ipv4Addr> = (0..10).map(|i| Ipv4Addr::new(10, 0, 0, 10 + i)).collect();
            assert_eq!(declines, expect, "each client declines its own address");
            assert_eq!(declined.addresses(), expect);
            assert_eq!(leased.addresses().len() as u64, acked);
        }
    }

    #[test]
    fn two_fleets_side_by_side_get_their_own_replies() {
        use crate::attack::Fleets;
        let book = Arc::new(AddressBook::new(64));
        let make = |prefix: [u8; 3], owner_base: u32, quota: u64| {
            let counters = Arc::new(GenCounters::default());
            let (tx, rx) = crossbeam_channel::bounded(16);
            let mut p = plan(Scenario::Dora, 20, quota);
            p.expect = None;
            p.owner_base = owner_base;
            let id = Identity {
                mac_prefix: prefix,
                iface_mac: [2, 0, 0, 0, 0, 9],
                vlans: VlanTags::NONE,
                broadcast: false,
                client_id: false,
                option82: false,
                server: None,
                agent: Default::default(),
                src_mac: None,
            };
            let leased = Arc::new(AddressBook::new(20));
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
            .with_tally(leased.clone(), None);
            (f, counters, leased)
        };
        let (legit, lc, ll) = make([2, 0x67, 0x65], 0, 20);
        let (attack, ac, al) = make([2, 0x61, 0x74], 20, 40);
        let mut f = Fleets::new(legit, Some(attack));
        // Legit client i gets 10.0.1.i; attack client i 10.0.2.i, except
        // attack client 0, which is given legit client 0's address.
        let mut order = Vec::new();
        let mut tx = [0u8; 2048];
        let mut rx = [0u8; 2048];
        let mut now = 1_000_000;
        while !f.is_done(now) {
            f.tick(now);
            while let Some(n) = f.next_frame(now, &mut tx) {
                let mac = DhcpFrame::parse(&tx[..n]).unwrap().dhcp.chaddr_mac();
                order.push(mac[2]);
                let third = if mac[2] == 0x65 || mac[5] == 0 { 1 } else { 2 };
                let addr = Ipv4Addr::new(10, 0, third, mac[5]);
                if let Some(m) = answer(&tx[..n], &mut rx, Some(addr), 0) {
                    f.receive(now + 50_000, &rx[..m]);
                }
            }
            now += 1_000_000;
            assert!(now < 1_000_000_000, "the fleets did not finish");
        }
        let (l, a) = (lc.snapshot(), ac.snapshot());
        assert_eq!(
            (l.completed, l.received, l.wrong_chaddr),
            (20, 40, 0),
            "{l:?}"
        );
        assert_eq!(
            (a.completed, a.received, a.wrong_chaddr),
            (40, 80, 0),
            "{a:?}"
        );
        // Attack client 0 is ACKed legit client 0's address: whichever
        // fleet's client was ACKed it first holds it, and the other's ACK
        // is a duplicate (the holder's second exchange is not).
        assert_eq!(
            l.duplicate_addresses + a.duplicate_addresses,
            1,
            "{l:?} {a:?}"
        );
        assert_eq!(ll.addresses().len(), 20);
        assert_eq!(al.addresses().len(), 20);
        // They took turns while both had frames to send.
        assert_eq!(&order[..4], &[0x74, 0x65, 0x74, 0x65], "{order:x?}");
    }

    #[test]
    fn unanswered_and_out_of_subnet() {
        let (mut f, c) = fleet(plan(Scenario::Dora, 4, 4));
        drive(&mut f, |req, out| {
            answer(req, out, Some(Ipv4Addr::new(192, 168, 1, 1)), 0)
        });
        let s = c.snapshot();
        assert_eq!((s.completed, s.bad_subnet), (4, 8), "{s:?}");
        let (mut f, c) = fleet(plan(Scenario::Dora, 4, 4));
        drive(&mut f, |_, _| None);
        let s = c.snapshot();
        assert_eq!(
            (s.timeouts, s.sent_discover, s.completed),
            (4, 8, 0),
            "{s:?}"
        );
    }
}
