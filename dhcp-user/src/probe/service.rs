//! The probe thread: takes jobs from the workers, sends each probe at
//! once, notes which probed addresses answer, and completes the probes in
//! the order they came, each `wait` after it was sent.
use super::{Job, Lane, ProbeLink};
use crate::os::EventFd;
use crossbeam_channel::{Receiver, RecvTimeoutError, bounded};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the thread looks for new jobs while probes are out: the
/// probe of a job that arrives meanwhile leaves up to this much late (the
/// workers do not ring the thread: that would be a syscall per OFFER).
const TICK: Duration = Duration::from_millis(2);
/// How long an idle thread waits for a job before it looks at the stop
/// flag again.
const IDLE: Duration = Duration::from_millis(100);

/// What sends probes and hears their answers: ICMP echo in the daemon
/// ([`super::icmp::IcmpProber`]), a table of addresses in use in tests.
pub trait Prober: Send + 'static {
    /// Sends one probe of `addr`; an error means no probe left (the
    /// address then counts as free, as in Kea's ping check).
    fn send(&mut self, addr: Ipv4Addr) -> io::Result<()>;
    /// Calls `seen` with each address that answered since the last call,
    /// without blocking.
    fn answers(&mut self, seen: &mut dyn FnMut(Ipv4Addr));
    /// Sleeps up to `timeout`, less if an answer arrives.
    fn wait(&mut self, timeout: Duration);
}

/// The service's own counters (the stats file's `probe` object).
#[derive(Default, Debug)]
pub struct ProbeStats {
    /// Probes sent.
    pub sent: AtomicU64,
    /// Probes the socket refused (no route, buffer full): counted as
    /// unanswered.
    pub send_failed: AtomicU64,
    /// Answers from an address under probe (each is a conflict).
    pub answered: AtomicU64,
    /// Answers from addresses not under probe (late ones, or someone
    /// else's pings on a raw socket).
    pub stray: AtomicU64,
}

/// The running probe thread; dropping it stops the thread.
pub struct ProbeService {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<ProbeStats>,
}

impl ProbeService {
    /// Starts the thread with `prober` for `workers` workers, each of
    /// which may have `per_worker` probes outstanding; each probe
    /// completes `wait` after it was sent. Returns one link per worker.
    pub fn start<P: Prober>(
        prober: P,
        wait: Duration,
        workers: usize,
        per_worker: usize,
    ) -> io::Result<(ProbeService, Vec<ProbeLink>)> {
        let per_worker = per_worker.max(1);
        let (jobs_tx, jobs_rx) = bounded(workers.max(1) * per_worker);
        let mut lanes = Vec::with_capacity(workers);
        let mut links = Vec::with_capacity(workers);
        for lane_id in 0..workers {
            let (ctx, crx) = bounded(per_worker);
            let lane = Arc::new(Lane {
                done: AtomicU64::new(0),
                wake: EventFd::new()?,
                conflicts: ctx,
            });
            links.push(ProbeLink {
                lane_id,
                lane: lane.clone(),
                jobs: jobs_tx.clone(),
                conflicts: crx,
                last: 0,
                capacity: per_worker,
            });
            lanes.push(lane);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ProbeStats::default());
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::Builder::new()
                .name("probe".into())
                .spawn(move || run(prober, wait, jobs_rx, lanes, &stop, &stats))?
        };
        Ok((
            ProbeService {
                stop,
                thread: Some(thread),
                stats,
            },
            links,
        ))
    }

    pub fn stats(&self) -> &ProbeStats {
        &self.stats
    }

    /// A handle on the counters that outlives borrows of the service.
    pub fn stats_handle(&self) -> Arc<ProbeStats> {
        self.stats.clone()
    }
}

impl Drop for ProbeService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread's state: the probes out, oldest first, and the addresses
/// under probe.
struct Probes<'a, P> {
    prober: P,
    wait: Duration,
    stats: &'a ProbeStats,
    inflight: VecDeque<(Instant, Job)>,
    /// Address → (probes of it out, answered).
    under: HashMap<Ipv4Addr, (u32, bool)>,
    warned: bool,
}

impl<P: Prober> Probes<'_, P> {
    fn take(&mut self, j: Job) {
        match self.prober.send(j.addr) {
            Ok(()) => bump(&self.stats.sent),
            Err(e) => {
                bump(&self.stats.send_failed);
                if !self.warned {
                    tracing::warn!(
                        addr = %j.addr,
                        "conflict probe not sent: {e} (counted as unanswered; later failures \
                         are only counted)"
                    );
                    self.warned = true;
                }
            }
        }
        self.inflight.push_back((Instant::now() + self.wait, j));
        self.under.entry(j.addr).or_insert((0, false)).0 += 1;
    }

    fn listen(&mut self) {
        let (under, stats) = (&mut self.under, self.stats);
        self.prober.answers(&mut |a| match under.get_mut(&a) {
            Some(e) => {
                e.1 = true;
                bump(&stats.answered);
            }
            None => bump(&stats.stray),
        });
    }

    /// The oldest probe if its time is up, and whether it was answered.
    fn due(&mut self, now: Instant) -> Option<(Job, bool)> {
        let &(due, j) = self.inflight.front()?;
        if due > now {
            return None;
        }
        self.inflight.pop_front();
        let answered = self.under.get_mut(&j.addr).is_some_and(|e| {
            e.0 -= 1;
            e.1
        });
        if self.under.get(&j.addr).is_some_and(|e| e.0 == 0) {
            self.under.remove(&j.addr);
        }
        Some((j, answered))
    }
}

fn run<P: Prober>(
    prober: P,
    wait: Duration,
    jobs: Receiver<Job>,
    lanes: Vec<Arc<Lane>>,
    stop: &AtomicBool,
    stats: &ProbeStats,
) {
    let mut p = Probes {
        prober,
        wait,
        stats,
        inflight: VecDeque::new(),
        under: HashMap::new(),
        warned: false,
    };
    let mut rung = vec![false; lanes.len()];
    while !stop.load(Ordering::Relaxed) {
        if p.inflight.is_empty() {
            match jobs.recv_timeout(IDLE) {
                Ok(j) => p.take(j),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        while let Ok(j) = jobs.try_recv() {
            p.take(j);
        }
        p.listen();
        let now = Instant::now();
        while let Some((j, answered)) = p.due(now) {
            let Some(lane) = lanes.get(j.lane) else {
                continue;
            };
            if answered {
                // Never full while the worker keeps to its capacity: each
                // of its outstanding probes has room for one conflict.
                let _ = lane.conflicts.try_send(j.ticket);
            }
            lane.done.store(j.ticket, Ordering::Release);
            rung[j.lane] = true;
        }
        for (i, r) in rung.iter_mut().enumerate() {
            if std::mem::take(r) {
                lanes[i].wake.signal();
            }
        }
        if let Some(&(due, _)) = p.inflight.front() {
            let left = due.saturating_duration_since(Instant::now());
            p.prober.wait(left.min(TICK));
        }
    }
}

/// Adds one to a counter only this thread writes.
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}
