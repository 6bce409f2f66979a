//! The DDNS side thread: follows the lease journal's records, keeps the
//! picture of what DNS should hold (`state`), sends the difference to the
//! DNS servers at a capped rate, and writes what they confirmed (`store`).
//!
//! It never touches the packet path: the workers hand their records to
//! the journal, whose writer offers each written record to this thread's
//! bounded channel without waiting (`lease::journal::Tap`); a full channel
//! is counted as `lost`, and what was lost is sent after the next start,
//! which works out what DNS owes from the journal and the store. The
//! thread may block on a DNS server (one update at a time, up to the
//! server's timeout); nothing else waits for it.
use super::dhcid::{self, Identifier};
use super::name;
use super::state::{Binding, Done, Job, State, Want};
use super::store::{Key, Store};
use super::update::{Forward, Outcome, Reverse, Server};
use crate::config::ddns::{ConflictMode, SubnetDdns};
use crate::lease::journal::{FQDN_SENT, LeaseRecord, RecordState, Tap};
use crate::wire::fqdn;
use crossbeam_channel::{Receiver, Sender, bounded, select};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Records the journal may hand over before the thread takes them; at
/// ~200 bytes each, 128 Ki records is 25 MiB, a few seconds of leases at
/// full rate while an update waits for its answer.
pub const TAP_CAPACITY: usize = 128 * 1024;

/// How long one DNS message may wait for its answer.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Server backoff while it does not answer: doubling from the first to
/// the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Retry delay of an update the server refused, doubling per refusal.
const REFUSED_FIRST: Duration = Duration::from_secs(5);
const REFUSED_MAX: Duration = Duration::from_secs(300);
/// One log line per kind of trouble and server in this interval.
const LOG_EVERY: Duration = Duration::from_secs(10);
const TICK: Duration = Duration::from_millis(100);

/// The thread's counters, read by the stats file.
#[derive(Debug, Default)]
pub struct DdnsStats {
    /// Addresses that became pending (a new, changed or ended binding).
    pub queued: AtomicU64,
    /// Update procedures sent (add or remove, forward or reverse).
    pub sent: AtomicU64,
    /// Procedures the server carried out.
    pub confirmed: AtomicU64,
    /// Procedures not carried out: no answer, refused, bad TSIG.
    pub failed: AtomicU64,
    /// Jobs that went back into the queue after a failure.
    pub retried: AtomicU64,
    /// Answers saying our TSIG signature or key is wrong, or unsigned or
    /// badly signed answers.
    pub refused_tsig: AtomicU64,
    /// Names someone else holds (RFC 4703): not written.
    pub conflicts: AtomicU64,
    /// Records the full channel refused (caught up at the next start).
    pub lost: Arc<AtomicU64>,
    /// Addresses pending now, and the age of the oldest, in ms.
    pub pending: AtomicU64,
    pub oldest_pending_ms: AtomicU64,
}

enum Ctl {
    Reload(Vec<Option<Arc<SubnetDdns>>>, u32),
    Stop,
}

/// The running thread.
pub struct DdnsHandle {
    stats: Arc<DdnsStats>,
    ctl: Sender<Ctl>,
    thread: Option<JoinHandle<()>>,
}

/// The journal's end of the channel, and the thread's.
pub fn tap() -> (Tap, Receiver<LeaseRecord>) {
    let (tx, rx) = bounded(TAP_CAPACITY);
    (
        Tap {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

impl DdnsHandle {
    /// Opens the store in `dir`, works out from it and `recovered` (the
    /// journal's live records at start) what DNS owes, and starts the
    /// thread on `rx` (the tap's receiver). `subnets`: each subnet's DDNS
    /// settings, by index.
    pub fn start(
        dir: &Path,
        subnets: Vec<Option<Arc<SubnetDdns>>>,
        updates_per_second: u32,
        recovered: &[LeaseRecord],
        tap: &Tap,
        rx: Receiver<LeaseRecord>,
    ) -> io::Result<DdnsHandle> {
        let (store, held) = Store::open(dir)?;
        let stats = Arc::new(DdnsStats {
            lost: tap.dropped.clone(),
            ..DdnsStats::default()
        });
        let mut t = Thread {
            state: State::new(0, held),
            store,
            servers: Vec::new(),
            subnets: Vec::new(),
            rate: updates_per_second,
            stats: stats.clone(),
            rx,
            ctl: None,
            logs: HashMap::new(),
            stopping: false,
        };
        t.configure(subnets, updates_per_second);
        let now = Instant::now();
        for r in recovered {
            t.on_record(r, now);
        }
        let orphans = {
            let subnets = &t.subnets;
            t.state.settle(
                |s| subnets.get(usize::from(s))?.as_ref().map(|r| r.server),
                now,
            )
        };
        let (pending, _) = t.state.pending();
        tracing::info!(
            pending,
            removals = orphans,
            "DDNS: worked out what DNS owes from the lease journal and ddns.state"
        );
        let (ctl_tx, ctl_rx) = bounded(4);
        t.ctl = Some(ctl_rx);
        let thread = std::thread::Builder::new()
            .name("xdhcp-ddns".into())
            .spawn(move || t.run())?;
        Ok(DdnsHandle {
            stats,
            ctl: ctl_tx,
            thread: Some(thread),
        })
    }

    pub fn stats_handle(&self) -> Arc<DdnsStats> {
        self.stats.clone()
    }

    /// New settings after a config reload (the thread picks them up
    /// between two updates).
    pub fn reload(&self, subnets: Vec<Option<Arc<SubnetDdns>>>, updates_per_second: u32) {
        let _ = self.ctl.send(Ctl::Reload(subnets, updates_per_second));
    }

    /// Stops the thread after the update in flight; what is pending stays
    /// owed and is sent after the next start.
    pub fn stop(mut self) {
        let _ = self.ctl.send(Ctl::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A subnet's settings and the DNS server they send to.
struct SubnetRt {
    cfg: Arc<SubnetDdns>,
    server: usize,
}

/// One DNS server: its socket, its rate and its backoff.
struct ServerRt {
    conn: Server,
    tokens: f64,
    refilled: Instant,
    down_until: Option<Instant>,
    backoff: Duration,
}

struct Thread {
    state: State,
    store: Store,
    servers: Vec<ServerRt>,
    subnets: Vec<Option<SubnetRt>>,
    rate: u32,
    stats: Arc<DdnsStats>,
    rx: Receiver<LeaseRecord>,
    ctl: Option<Receiver<Ctl>>,
    /// Last log line per (server, kind), and how many were held back.
    logs: HashMap<(usize, &'static str), (Instant, u64)>,
    stopping: bool,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Thread {
    fn configure(&mut self, subnets: Vec<Option<Arc<SubnetDdns>>>, rate: u32) {
        self.rate = rate;
        let mut rts = Vec::with_capacity(subnets.len());
        for cfg in subnets {
            rts.push(cfg.map(|cfg| SubnetRt {
                server: self.server_for(cfg.server),
                cfg,
            }));
        }
        self.subnets = rts;
        self.state.grow(self.servers.len());
    }

    fn server_for(&mut self, addr: SocketAddr) -> usize {
        if let Some(i) = self.servers.iter().position(|s| s.conn.addr == addr) {
            return i;
        }
        self.servers.push(ServerRt {
            conn: Server::new(addr, TIMEOUT),
            tokens: 1.0,
            refilled: Instant::now(),
            down_until: None,
            backoff: BACKOFF_FIRST,
        });
        self.servers.len() - 1
    }

    /// What DNS should hold for `r`'s address, by its subnet's settings.
    fn want_of(rt: &SubnetRt, r: &LeaseRecord) -> Option<Want> {
        if r.state != RecordState::Bound {
            return None;
        }
        let cfg = &rt.cfg;
        let (forward, reverse) = if r.fqdn_flags & FQDN_SENT != 0 {
            let d = name::decide(
                r.fqdn_flags & 0x0f,
                cfg.override_client_update,
                cfg.override_no_update,
            );
            (d.forward, d.reverse)
        } else {
            (true, true)
        };
        let reverse = reverse && cfg.reverse_zone.is_some();
        if !forward && !reverse {
            return None;
        }
        let mut label = [0u8; 63];
        // The record's host name is the client's label already
        // (`name::client_label`).
        let n = name::choose_label(
            None,
            Some(r.hostname.as_slice()),
            cfg.replace_client_name,
            &cfg.generated_name,
            r.addr,
            &r.hwaddr,
            &mut label,
        );
        if n == 0 {
            return None;
        }
        let mut wire = [0u8; 255];
        let w = fqdn::fqdn_wire(&label[..n], &cfg.forward_zone_wire, &mut wire)?;
        let id = &r.client.bytes[..usize::from(r.client.len).min(32)];
        let ident = if r.client.kind == 1 {
            Identifier::ClientId(id)
        } else {
            Identifier::Chaddr {
                htype: 1,
                chaddr: id,
            }
        };
        Some(Want {
            binding: Binding {
                fqdn: format!(
                    "{}.{}",
                    String::from_utf8_lossy(&label[..n]),
                    cfg.forward_zone
                ),
                forward,
                reverse,
                dhcid: dhcid::rdata(ident, &wire[..w]),
                ttl: cfg.ttl,
            },
            expires_unix: r.expires_unix,
            client: r.client,
        })
    }

    fn on_record(&mut self, r: &LeaseRecord, now: Instant) {
        let Some(Some(rt)) = self.subnets.get(usize::from(r.subnet)) else {
            return;
        };
        let want = Self::want_of(rt, r);
        if self.state.want((r.subnet, r.addr), want, rt.server, now) {
            self.stats.queued.fetch_add(1, Relaxed);
        }
        // Stored with `queued`, so that no reader sees a lease queued and
        // not (yet) pending.
        self.stats
            .pending
            .store(self.state.waiting() as u64, Relaxed);
    }

    fn run(mut self) {
        let mut last_tick = Instant::now() - Duration::from_secs(1);
        let mut last_sync = Instant::now();
        loop {
            let now = Instant::now();
            if let Some(ctl) = self.ctl.as_ref().and_then(|c| c.try_recv().ok()) {
                match ctl {
                    Ctl::Stop => self.stopping = true,
                    Ctl::Reload(s, rate) => self.configure(s, rate),
                }
            }
            if self.stopping {
                break;
            }
            let mut took = 0;
            while took < 65_536
                && let Ok(r) = self.rx.try_recv()
            {
                self.on_record(&r, now);
                took += 1;
            }
            if now.duration_since(last_tick) >= Duration::from_secs(1) {
                last_tick = now;
                let subnets = &self.subnets;
                let n = self.state.expire(
                    unix_now(),
                    |s| {
                        subnets
                            .get(usize::from(s))
                            .and_then(|r| r.as_ref())
                            .map_or(0, |r| r.server)
                    },
                    now,
                );
                if n > 0 {
                    self.stats.queued.fetch_add(n as u64, Relaxed);
                }
                self.publish(now);
            }
            let worked = self.work(now);
            self.stats
                .pending
                .store(self.state.waiting() as u64, Relaxed);
            if now.duration_since(last_sync) >= Duration::from_secs(1) {
                last_sync = now;
                self.persist(|s| s.sync());
                if self.store.wants_rewrite() {
                    let held = self.state.held_map();
                    self.persist(|s| s.rewrite(&held));
                }
            }
            if !worked && took == 0 {
                self.wait();
            }
        }
        self.persist(|s| s.sync());
        self.publish(Instant::now());
    }

    /// Blocks until a record or a control message comes, or a tick.
    fn wait(&mut self) {
        let Some(ctl) = self.ctl.clone() else {
            return;
        };
        select! {
            recv(self.rx) -> r => {
                if let Ok(r) = r {
                    self.on_record(&r, Instant::now());
                }
            }
            recv(ctl) -> c => match c {
                Ok(Ctl::Reload(s, rate)) => self.configure(s, rate),
                // Stop, or the handle is gone.
                Ok(Ctl::Stop) | Err(_) => self.stopping = true,
            },
            default(TICK) => {}
        }
    }

    fn publish(&self, now: Instant) {
        let (n, oldest) = self.state.pending();
        self.stats.pending.store(n as u64, Relaxed);
        debug_assert_eq!(n, self.state.waiting());
        self.stats.oldest_pending_ms.store(
            oldest.map_or(0, |o| now.duration_since(o).as_millis() as u64),
            Relaxed,
        );
    }

    fn persist(&mut self, f: impl FnOnce(&mut Store) -> io::Result<()>) {
        if let Err(e) = f(&mut self.store) {
            self.log(usize::MAX, "store", |suppressed| {
                tracing::error!(error = %e, suppressed, "DDNS: writing ddns.state failed");
            });
        }
    }

    /// Logs through `f` unless the same kind was logged for the same
    /// server within [`LOG_EVERY`]; `f` gets how many were held back.
    fn log(&mut self, server: usize, kind: &'static str, f: impl FnOnce(u64)) {
        let now = Instant::now();
        let e = self
            .logs
            .entry((server, kind))
            .or_insert((now - LOG_EVERY, 0));
        if now.duration_since(e.0) >= LOG_EVERY {
            f(e.1);
            *e = (now, 0);
        } else {
            e.1 += 1;
        }
    }

    /// Runs jobs on every server that is up and has tokens, a bounded
    /// number per call so records keep being taken in. Whether any ran.
    fn work(&mut self, now: Instant) -> bool {
        let mut ran = false;
        for srv in 0..self.servers.len() {
            let rate = f64::from(self.rate.max(1));
            {
                let s = &mut self.servers[srv];
                if s.down_until.is_some_and(|t| t > now) {
                    continue;
                }
                // Bucket: `rate` per second, a tenth of a second's worth
                // at once.
                let burst = (rate / 10.0).max(1.0);
                s.tokens =
                    (s.tokens + now.duration_since(s.refilled).as_secs_f64() * rate).min(burst);
                s.refilled = now;
            }
            for _ in 0..256 {
                if self.servers[srv].tokens < 1.0 || !self.state.has_work(srv) {
                    break;
                }
                let Some(job) = self.state.next_job(srv, now) else {
                    break;
                };
                ran = true;
                let done = self.run_job(srv, &job);
                if let Done::Retry(_) = done {
                    self.stats.retried.fetch_add(1, Relaxed);
                }
                let down = matches!(done, Done::Retry(d) if d.is_zero());
                if let Some(h) = self.state.finish(&job, done, srv, Instant::now()) {
                    self.persist(|s| s.held(job.key, &h));
                }
                if down {
                    break;
                }
            }
        }
        ran
    }

    /// One procedure against the server; spends a token and counts.
    fn call(&mut self, srv: usize, f: impl FnOnce(&mut Server) -> Outcome) -> Outcome {
        self.servers[srv].tokens -= 1.0;
        self.stats.sent.fetch_add(1, Relaxed);
        let out = f(&mut self.servers[srv].conn);
        match &out {
            Outcome::Done | Outcome::Conflict => {
                self.stats.confirmed.fetch_add(1, Relaxed);
                let s = &mut self.servers[srv];
                if s.down_until.take().is_some() {
                    tracing::info!(server = %s.conn.addr, "DDNS: the DNS server answers again");
                }
                s.backoff = BACKOFF_FIRST;
            }
            _ => {
                self.stats.failed.fetch_add(1, Relaxed);
            }
        }
        out
    }

    /// A failed procedure's consequence for the job: the server's backoff
    /// (no answer) or the address's retry delay (refused).
    fn failed(&mut self, srv: usize, key: Key, out: Outcome) -> Done {
        let addr = self.servers[srv].conn.addr;
        match out {
            Outcome::Unreachable(e) => {
                let s = &mut self.servers[srv];
                let wait = s.backoff;
                s.down_until = Some(Instant::now() + wait);
                s.backoff = (s.backoff * 2).min(BACKOFF_MAX);
                self.log(srv, "unreachable", |suppressed| {
                    tracing::warn!(server = %addr, error = %e, retry_in_ms = wait.as_millis() as u64, suppressed, "DDNS: the DNS server does not answer; updates wait");
                });
                Done::Retry(Duration::ZERO)
            }
            Outcome::BadTsig(e) => {
                self.stats.refused_tsig.fetch_add(1, Relaxed);
                let name = self.key_name_of(key);
                self.log(srv, "tsig", |suppressed| {
                    tracing::error!(server = %addr, key = %name, error = %e, suppressed, "DDNS: the DNS server refused our TSIG signature (check key_name, key_algorithm and the secret)");
                });
                Done::Retry(self.refused_delay(key))
            }
            Outcome::Refused(e) => {
                self.log(srv, "refused", |suppressed| {
                    tracing::warn!(server = %addr, rcode = %e, suppressed, "DDNS: the DNS server refused an update");
                });
                Done::Retry(self.refused_delay(key))
            }
            Outcome::Invalid(e) => {
                self.log(srv, "invalid", |suppressed| {
                    tracing::error!(server = %addr, error = %e, suppressed, "DDNS: an update cannot be built");
                });
                Done::Retry(REFUSED_MAX)
            }
            Outcome::Done | Outcome::Conflict => Done::Written,
        }
    }

    fn key_name_of(&self, key: Key) -> String {
        self.subnets
            .get(usize::from(key.0))
            .and_then(|r| r.as_ref())
            .map_or_else(String::new, |r| r.cfg.key.name.clone())
    }

    fn refused_delay(&self, key: Key) -> Duration {
        let f = self.state.failures(key).min(10);
        (REFUSED_FIRST * 2u32.pow(f)).min(REFUSED_MAX)
    }

    fn run_job(&mut self, srv: usize, job: &Job) -> Done {
        let Some(Some(rt)) = self.subnets.get(usize::from(job.key.0)) else {
            // DDNS went off for the subnet: its names stay as they are.
            return Done::Retry(REFUSED_MAX);
        };
        let cfg = rt.cfg.clone();
        let key = &cfg.key;
        let addr: Ipv4Addr = job.key.1;
        let mode = cfg.conflict_mode;
        let reverse_zone = cfg.reverse_zone.as_deref();
        if let Some(h) = job.remove.as_ref().filter(|h| !h.conflict) {
            // Conflict on removal: the name is someone else's by now.
            let b = &h.binding;
            if b.forward
                && let Err(out) =
                    answered(self.call(srv, |s| s.remove_forward(key, &forward(b, addr, mode))))
            {
                return self.failed(srv, job.key, out);
            }
            if let Some(r) = reverse(reverse_zone, b, addr, mode)
                && let Err(out) = answered(self.call(srv, |s| s.remove_reverse(key, &r)))
            {
                return self.failed(srv, job.key, out);
            }
        }
        if job.remove.is_some() {
            self.state.removed(job.key);
            self.persist(|s| s.gone(job.key));
        }
        let Some(b) = &job.add else {
            return Done::Written;
        };
        self.persist(|s| s.sending(job.key, b));
        if b.forward {
            match self.call(srv, |s| s.add_forward(key, &forward(b, addr, mode))) {
                Outcome::Done => {}
                Outcome::Conflict => {
                    self.stats.conflicts.fetch_add(1, Relaxed);
                    let fqdn = b.fqdn.clone();
                    self.log(srv, "conflict", |suppressed| {
                        tracing::warn!(name = %fqdn, %addr, suppressed, "DDNS: the name belongs to another client (its DHCID differs); not taken over");
                    });
                    // No PTR either: it would name a host that resolves
                    // to another address.
                    return Done::Conflict;
                }
                out => return self.failed(srv, job.key, out),
            }
        }
        if let Some(r) = reverse(reverse_zone, b, addr, mode)
            && let Err(out) = answered(self.call(srv, |s| s.add_reverse(key, &r)))
        {
            return self.failed(srv, job.key, out);
        }
        Done::Written
    }
}

/// Done and Conflict are answers the job goes on from; the rest are
/// failures for `Thread::failed`.
fn answered(out: Outcome) -> Result<(), Outcome> {
    match out {
        Outcome::Done | Outcome::Conflict => Ok(()),
        out => Err(out),
    }
}

/// The forward records of binding `b` for `addr`.
fn forward(b: &Binding, addr: Ipv4Addr, mode: ConflictMode) -> Forward<'_> {
    Forward {
        zone: zone_of(&b.fqdn),
        fqdn: &b.fqdn,
        addr,
        ttl: b.ttl,
        dhcid: &b.dhcid,
        mode,
    }
}

/// The PTR record of binding `b`, when it has one and there is a reverse
/// zone.
fn reverse<'a>(
    zone: Option<&'a str>,
    b: &'a Binding,
    addr: Ipv4Addr,
    mode: ConflictMode,
) -> Option<Reverse<'a>> {
    Some(Reverse {
        zone: zone.filter(|_| b.reverse)?,
        addr,
        fqdn: &b.fqdn,
        ttl: b.ttl,
        dhcid: &b.dhcid,
        mode,
    })
}

/// The zone of a name we made: everything after its one label.
fn zone_of(fqdn: &str) -> &str {
    fqdn.split_once('.').map_or(fqdn, |(_, z)| z)
}
