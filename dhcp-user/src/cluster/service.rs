//! The cluster side thread: a tokio runtime of its own (current-thread)
//! driving async-nats, never a worker.
//!
//! Three tasks share one [`Control`] behind a mutex (taken per heartbeat,
//! per acquire and per shipped batch, never by a worker):
//!
//! - the *control* task (`kv.rs`): every `failover_after / 6` it puts this
//!   server's heartbeat, reads the peers' heartbeats and the claims, and
//!   acts on them (create, take over, hand back, revoke);
//! - the *watchdog*: clears every ownership bit the moment the last
//!   successful heartbeat put (the time it was sent) is `failover_after / 2`
//!   old, so that this server is silent before any other may take its
//!   shares (they wait `failover_after` of a standing heartbeat);
//! - the *stream* task (`stream.rs`): publishes what the journal ships,
//!   pipelined, moves the durable marks in `replicated` mode as the
//!   acknowledgements come back in order, consumes the stream (fencing,
//!   applying the others' records), and finishes acquires once the stream
//!   was read up to this server's own marker.
//!
//! A plain thread bridges the journal's crossbeam channel into the
//! runtime, so that the writer's `send` (replicated) or `try_send`
//! (durable) never touches tokio.
//!
//! Replicated ACKs that wait while the server is cut off are released when
//! it is back only if their record is not fenced by another owner's
//! marker (the share was not taken meanwhile, or the record was stored
//! before the taker's marker, so the taker applied it). A fenced one is
//! never released to its client: its mark passes it only after twice the
//! workers' `PARK_LIMIT`, when the parked reply was dropped; the client
//! asks again, at the new owner (`held_fenced` counts them).
use super::kv;
use super::pipeline::Pipeline;
use super::roles::Roles;
use super::stats::ClusterStats;
use super::stream;
use crate::config::cluster::{Cluster, ClusterDurability, ClusterMode};
use crate::engine::Ownership;
use crate::lease::journal::{Feed, LeaseRecord, Marks, Shipped};
use crate::lease::owner::MAX_SHARES;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Applies a record of another server to this server's engine; true when
/// applied, false when skipped (no such subnet here, no room in the
/// table). Records come in stream order, so the newest is applied last.
pub type Apply = Box<dyn Fn(&LeaseRecord) -> bool + Send>;

/// Takes one of this server's own records back from the stream: applies
/// it to the engine and appends it to the local journal; true when
/// applied. Used only by a server whose journal was empty at start (a new
/// disk), during the catch-up: otherwise its own records are in its
/// journal already, the same or newer, and are skipped.
pub type LearnOwn = Box<dyn FnMut(&LeaseRecord) -> bool + Send>;

/// What the daemon hands the cluster thread.
pub struct Links {
    /// The bits the workers read; only the cluster thread writes them.
    pub ownership: Arc<Ownership>,
    /// Every record the journal wrote, in each producer's order, one
    /// message per group commit (and where its buffer goes back).
    pub feed: Feed,
    /// `replicated`: the journal's marks, moved here once the stream stored
    /// the record. `None` in `durable` (the journal moves them itself).
    pub marks: Option<Marks>,
    pub apply: Apply,
    /// `Some` when the journal was empty at start (see [`LearnOwn`]).
    pub learn_own: Option<LearnOwn>,
    /// What the journal could not hand over (its channel full).
    pub journal_dropped: Arc<AtomicU64>,
}

/// Most publishes waiting for their acknowledgement; past it the shipped
/// records wait in the bridge channel (and, in `replicated`, the journal
/// writer waits for it).
pub const MAX_IN_FLIGHT: usize = 8192;
/// Groups waiting in the runtime's channel, at most.
const GROUPS: usize = 64;

/// State shared by the tasks; the ownership bits change only under it.
pub(crate) struct Control {
    /// Per share: the claim revision naming this server while it holds or
    /// acquires the share (the fencing token its records carry).
    pub mine: Vec<Option<u64>>,
    /// Shares whose bit is set.
    pub held: u32,
    /// Shares being acquired or handed back.
    pub busy: u32,
    /// Shares being handed back: their bits are clear, but the records
    /// decided before still go out under `mine` until the claim moves (a
    /// record whose ACK left must reach the stream before the home's
    /// marker, or the home would never learn it).
    pub releasing: u32,
    /// Heartbeats good (not cut off).
    pub serving: bool,
    /// Until when the last successful heartbeat keeps the claims valid.
    pub valid_until: Option<Instant>,
    /// Counts cut-offs, so that an ACK held across one is checked again.
    pub epoch: u64,
    /// The stream was read to its end once: the heartbeat says `ready`.
    pub caught_up: bool,
}

/// The settings and handles every task reads.
pub(crate) struct Shared {
    pub name: String,
    pub me: usize,
    pub peers: Vec<String>,
    pub shares: u8,
    pub hot_standby: bool,
    pub replicated: bool,
    pub failover: Duration,
    pub stream_name: String,
    /// How long the stream keeps a message (`max_age`).
    pub retention: Duration,
    pub bucket: String,
    pub replicas: usize,
    pub nats: Vec<String>,
    pub ownership: Arc<Ownership>,
    pub stats: Arc<ClusterStats>,
    pub control: Mutex<Control>,
    /// Per share: this server's publishes not yet answered by the stream
    /// (the stream task's pipeline, for the control task's hand backs).
    pub unstored: [AtomicU32; MAX_SHARES as usize],
    /// Wakes the control task before its next period (the stream was just
    /// caught up: the shares can be acquired now).
    pub kick: tokio::sync::Notify,
    /// Tells apart this process's publishes from a previous one's in the
    /// stream's duplicate window (publishes are retried with the same id).
    pub boot: u64,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The heartbeat period, also the hand back's wait and the timeout of
    /// one KV operation.
    pub fn period(&self) -> Duration {
        (self.failover / 6).max(Duration::from_millis(50))
    }

    /// Clears every bit: cut off (or stopping). Silent for the clients of
    /// every share until the claims are acquired again.
    pub fn fence_all(&self, c: &mut Control) {
        for k in 0..self.shares {
            self.ownership.revoke(k);
        }
        c.held = 0;
        c.busy = 0;
        c.releasing = 0;
        c.mine.iter_mut().for_each(|m| *m = None);
    }

    pub fn revoke(&self, c: &mut Control, k: u8) {
        self.ownership.revoke(k);
        c.held &= !(1 << k);
        c.busy &= !(1 << k);
        c.releasing &= !(1 << k);
        c.mine[k as usize] = None;
    }
}

/// The running cluster thread.
pub struct ClusterService {
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    bridge: Option<JoinHandle<()>>,
    stats: ClusterStatsHandle,
}

/// The counters and names, for the stats snapshot; outlives the service.
#[derive(Clone)]
pub struct ClusterStatsHandle {
    pub stats: Arc<ClusterStats>,
    pub name: String,
    pub mode: &'static str,
    pub durability: &'static str,
    pub journal_dropped: Arc<AtomicU64>,
}

impl ClusterStatsHandle {
    pub fn snapshot(&self) -> super::stats::ClusterStatus {
        self.stats.snapshot(
            &self.name,
            self.mode,
            self.durability,
            self.journal_dropped.load(Relaxed),
        )
    }
}

impl ClusterService {
    /// Starts the bridge and the cluster thread. It connects in the
    /// background (retrying until stopped); until it has read the stream
    /// and acquired a share, the server owns nothing.
    pub fn start(c: &Cluster, links: Links) -> io::Result<ClusterService> {
        let shares = c.shares().max(1);
        let stats = Arc::new(ClusterStats::default());
        let shared = Arc::new(Shared {
            name: c.name.clone(),
            me: c.index,
            peers: c.peers.clone(),
            shares,
            hot_standby: c.mode == ClusterMode::HotStandby,
            replicated: c.durability == ClusterDurability::Replicated,
            failover: c.failover_after,
            stream_name: c.stream.clone(),
            retention: c.retention,
            bucket: c.bucket.clone(),
            replicas: c.replicas.max(1),
            nats: c.nats.clone(),
            ownership: links.ownership.clone(),
            stats: stats.clone(),
            control: Mutex::new(Control {
                mine: vec![None; shares as usize],
                held: 0,
                busy: 0,
                releasing: 0,
                serving: false,
                valid_until: None,
                epoch: 0,
                caught_up: false,
            }),
            unstored: Default::default(),
            kick: tokio::sync::Notify::new(),
            boot: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        });
        // Nothing is owned until acquired.
        links.ownership.set_owned(0);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let (batch_tx, batch_rx) = tokio::sync::mpsc::channel::<Vec<Shipped>>(GROUPS);
        let feed = links.feed;
        let bridge = {
            let (rx, stop_rx) = (feed.shipped.clone(), stop_rx.clone());
            std::thread::Builder::new()
                .name("xdhcp-cluster-in".into())
                .spawn(move || bridge(rx, batch_tx, stop_rx))?
        };
        let handle = ClusterStatsHandle {
            stats,
            name: c.name.clone(),
            mode: match c.mode {
                ClusterMode::LoadBalancing => "load-balancing",
                ClusterMode::HotStandby => "hot-standby",
            },
            durability: match c.durability {
                ClusterDurability::Durable => "durable",
                ClusterDurability::Replicated => "replicated",
            },
            journal_dropped: links.journal_dropped,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (marks, apply, learn_own) = (links.marks, links.apply, links.learn_own);
        let thread = std::thread::Builder::new()
            .name("xdhcp-cluster".into())
            .spawn(move || {
                rt.block_on(run(
                    shared, batch_rx, feed, marks, apply, learn_own, stop_rx,
                ));
            })?;
        Ok(ClusterService {
            stop,
            thread: Some(thread),
            bridge: Some(bridge),
            stats: handle,
        })
    }

    pub fn stats_handle(&self) -> ClusterStatsHandle {
        self.stats.clone()
    }

    /// Stops the tasks (what is in flight gets a moment to be
    /// acknowledged) and joins the threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(b) = self.bridge.take() {
            let _ = b.join();
        }
    }
}

impl Drop for ClusterService {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Carries the journal's groups into the runtime as they are (the worker
/// joins what waits into its messages; joining here cost a copy and a
/// growing allocation per group). Ends when the journal is gone (its
/// sender dropped) or on stop.
fn bridge(
    rx: Receiver<Vec<Shipped>>,
    tx: tokio::sync::mpsc::Sender<Vec<Shipped>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let group = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(g) => g,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Blocks while the runtime is behind: in `replicated` the journal
        // writer then waits too, which is the configured back pressure.
        if tx.blocking_send(group).is_err() {
            return;
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    batches: tokio::sync::mpsc::Receiver<Vec<Shipped>>,
    feed: Feed,
    marks: Option<Marks>,
    apply: Apply,
    learn_own: Option<LearnOwn>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    set_state(&shared);
    let Some(conn) = stream::Conn::open(&shared, &mut stop).await else {
        return;
    };
    tracing::info!(
        name = %shared.name,
        stream = %shared.stream_name,
        bucket = %shared.bucket,
        "cluster: stream and KV bucket ready"
    );
    let roles = Roles::new(
        &shared.peers,
        shared.me,
        shared.shares,
        shared.hot_standby,
        shared.failover,
        Instant::now(),
    );
    let (acquire_tx, acquire_rx) = tokio::sync::mpsc::unbounded_channel();
    let watchdog = tokio::spawn(watchdog(shared.clone(), stop.clone()));
    let control = tokio::spawn(kv::control(
        shared.clone(),
        conn.kv.clone(),
        conn.js.clone(),
        roles,
        acquire_tx,
        stop.clone(),
    ));
    let worker = stream::Worker {
        shared: shared.clone(),
        conn,
        pipeline: Pipeline::default(),
        marks,
        apply,
        learn_own,
        fence: Default::default(),
        applied_seq: 0,
        pending: Vec::new(),
        last_read: Instant::now(),
        sent: 0,
        feed,
        ids: Vec::new(),
        body: Default::default(),
    };
    worker.run(batches, acquire_rx, stop).await;
    let _ = control.await;
    let _ = watchdog.await;
    let mut c = shared.lock();
    shared.fence_all(&mut c);
}

/// Clears every bit once the last good heartbeat is `failover_after / 2`
/// old; wakes at least every half period to look.
async fn watchdog(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let step = shared.period() / 2;
    loop {
        let wake = {
            let mut c = shared.lock();
            let now = Instant::now();
            match c.valid_until {
                Some(until) if now >= until && c.serving => {
                    c.serving = false;
                    c.epoch += 1;
                    // Durable: the renewals of leases this server holds in
                    // the shares it owned are still answered, for the time
                    // they have left (engine/cut_off.rs). Replicated: an
                    // ACK means stored on a quorum, so nothing.
                    if !shared.replicated {
                        shared.ownership.set_renewing(c.held);
                    }
                    shared.fence_all(&mut c);
                    shared.stats.cut_offs.fetch_add(1, Relaxed);
                    drop(c);
                    set_state(&shared);
                    tracing::warn!(
                        name = %shared.name,
                        "cluster: no heartbeat stored for failover_after/2: cut off, \
                         silent for every share until the cluster answers again"
                    );
                    now + step
                }
                Some(until) if c.serving => until.min(now + step),
                _ => now + step,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Puts the state the shared control says into the stats: `starting`
/// until the stream was caught up once, `cut-off` while the heartbeats do
/// not get through after they once did, else `connected`; and the shares
/// owned. Called wherever a bit changes (the control task's round, an
/// acquire's end, the watchdog), so that the stats show the moment, not
/// the end of a control round that may wait on timeouts.
pub(crate) fn set_state(shared: &Shared) {
    let (state, held) = {
        let c = shared.lock();
        let state = if !c.serving && c.epoch > 0 {
            "cut-off"
        } else if !c.caught_up || !c.serving {
            "starting"
        } else {
            "connected"
        };
        (state, c.held)
    };
    if let Ok(mut v) = shared.stats.views.lock() {
        v.state = state;
        v.owned_shares = super::kv::bits(held);
        v.owned_buckets = shared.ownership.owned_buckets();
    }
}
