//! Getting frames in and out: the XDP steering program ([`xdp`]), AF_XDP
//! sockets and their workers ([`xsk`]), the AF_PACKET fallback
//! ([`packet`]) and what both need to know of the interface ([`iface`]).
//!
//! Both backends run one pinned worker per queue around the same loop:
//! read the clock once, take a batch from RX, hand each frame to a
//! [`FrameHandler`] that writes the reply straight into a TX buffer, put
//! the batch on TX. The handler (the engine) never sees a ring.
pub mod iface;
pub mod packet;
pub mod xdp;
pub mod xsk;

use crate::stats::WorkerStats;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Room a TX buffer offers a reply: a full Ethernet frame with two VLAN
/// tags at the largest DHCP message we ever build.
pub const TX_FRAME_CAPACITY: usize = 2048;

/// What a worker does with each received frame.
pub trait FrameHandler: Send {
    /// Called once per batch before its frames, with the batch's clock.
    fn begin_batch(&mut self, now: Instant);
    /// Looks at one received frame and writes the reply frame, if any, to
    /// the start of `tx` (at least [`TX_FRAME_CAPACITY`] bytes), returning
    /// its length. Must not allocate, block, or panic on any input.
    fn handle(&mut self, rx: &[u8], tx: &mut [u8]) -> Option<usize>;
    /// The journal ticket the reply `handle` just wrote must wait for
    /// before it may be sent; 0 when it may leave at once.
    fn hold_for(&self) -> u64 {
        0
    }
    /// The highest ticket the journal has made safe. A worker calls it
    /// each loop to release the replies it parked (the handler also hands
    /// the journal what it had to keep back).
    fn durable(&mut self) -> u64 {
        u64::MAX
    }
    /// Whether lease records wait to be handed to the journal: a worker
    /// with nothing to do sleeps only briefly then.
    fn backlog(&self) -> bool {
        false
    }
    /// An eventfd that becomes readable when [`FrameHandler::durable`]
    /// moves (the journal's, for this worker): a worker with parked replies
    /// sleeps on it beside its socket, see [`wait_for`].
    fn durable_fd(&self) -> Option<RawFd> {
        None
    }
}

/// Sleeps until `sock` is readable, `wake` (an eventfd; -1 for none) is
/// signalled or the daemon stops, at most `timeout_ms`, then resets
/// `wake`. A negative `sock` waits on `wake` alone (poll(2) skips negative
/// fds).
pub(crate) fn wait_for(sock: RawFd, wake: RawFd, stop: &Stop, timeout_ms: i32) {
    let mut fds = [
        libc::pollfd {
            fd: sock,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: wake,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.wake.fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: three valid pollfds; the result only decides when the caller
    // looks at its rings again, which reports any error.
    unsafe { libc::poll(fds.as_mut_ptr(), 3, timeout_ms) };
    if fds[1].revents & libc::POLLIN != 0 {
        let mut n = 0u64;
        // SAFETY: 8 bytes into a live u64 from a non-blocking eventfd;
        // a failed read only leaves it readable for the next wait.
        unsafe { libc::read(wake, (&raw mut n).cast(), 8) };
    }
}

/// Tells the workers to stop and wakes the ones asleep in poll(2). The
/// flag is what the signal handlers set (all a handler may do is store an
/// atomic); the main thread, once it sees it, calls [`Stop::wake_all`],
/// which makes an eventfd readable that every sleeping worker polls beside
/// its socket. It is never reset, so a stop takes effect at once however
/// long `idle_sleep_ms` is.
pub struct Stop {
    flag: Arc<AtomicBool>,
    wake: crate::lease::journal::wake::Wake,
}

impl Stop {
    pub fn new() -> std::io::Result<Arc<Stop>> {
        Ok(Arc::new(Stop {
            flag: Arc::new(AtomicBool::new(false)),
            wake: crate::lease::journal::wake::Wake::new()?,
        }))
    }

    /// A stop that SIGINT and SIGTERM set.
    pub fn on_signals() -> anyhow::Result<Arc<Stop>> {
        use anyhow::Context;
        let stop = Stop::new().context("creating the stop eventfd")?;
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.flag.clone())
                .context("installing signal handlers")?;
        }
        Ok(stop)
    }

    #[inline]
    pub fn is_set(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Wakes every worker asleep in [`wait_for`], now and later.
    pub fn wake_all(&self) {
        self.wake.signal();
    }

    /// Sets the flag and wakes the workers (a worker that fails stops the
    /// others this way).
    pub fn set(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::Relaxed);
        self.wake_all();
    }
}

/// How a worker waits for frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Busy-poll the rings: lowest latency, one core at 100 %.
    Spin,
    /// Busy-poll while traffic flows; after a run of empty batches, sleep
    /// in poll(2) until the kernel has frames, so an idle server uses
    /// about no CPU.
    Adaptive,
}

/// Settings every backend's workers share.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub poll: PollMode,
    /// Frames taken from RX (and sent to TX) per batch.
    pub batch: usize,
    /// Empty batches in a row before an adaptive worker sleeps in poll(2).
    pub idle_spins: u32,
    /// poll(2) timeout of a sleeping adaptive worker, so it still sees the
    /// stop flag promptly.
    pub poll_timeout_ms: i32,
    /// Cores to pin the workers to, one per queue in order; empty: the
    /// worker of queue q goes to core q modulo the number of cores.
    pub cores: Vec<usize>,
}

impl WorkerOptions {
    /// What a configuration file says of its workers; the rest default.
    pub fn from_config(cfg: &crate::config::Config) -> WorkerOptions {
        WorkerOptions {
            poll: cfg.poll,
            batch: cfg.batch,
            cores: cfg.cores.clone(),
            poll_timeout_ms: i32::try_from(cfg.idle_sleep_ms).unwrap_or(i32::MAX),
            ..WorkerOptions::default()
        }
    }
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            poll: PollMode::Adaptive,
            batch: 64,
            idle_spins: 1024,
            poll_timeout_ms: 100,
            cores: Vec::new(),
        }
    }
}

/// One worker's share: its queue, its handler, its counters.
pub struct WorkerSlot<H> {
    pub queue: u32,
    pub handler: H,
    pub stats: Arc<WorkerStats>,
}

/// Pins the calling thread to the core chosen for `index`.
pub fn pin_worker(opts: &WorkerOptions, index: usize) -> Option<usize> {
    let cores = core_affinity::get_core_ids()?;
    if cores.is_empty() {
        return None;
    }
    let want = opts
        .cores
        .get(index)
        .copied()
        .unwrap_or(index % cores.len());
    let core = cores.iter().find(|c| c.id == want).copied()?;
    core_affinity::set_for_current(core).then_some(core.id)
}

/// Shared by the main thread and the workers; workers check it once per
/// batch.
pub type StopFlag = Arc<Stop>;
