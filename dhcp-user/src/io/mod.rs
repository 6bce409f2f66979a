//! Getting frames in and out: the XDP steering program ([`xdp`]), AF_XDP
//! sockets and their workers ([`xsk`]), the AF_PACKET fallback
//! ([`packet`]) and what both need to know of the interface ([`iface`]).
//!
//! Both backends run one pinned worker per queue around the same loop:
//! read the clock once, take a batch from RX, hand each frame to a
//! [`FrameHandler`](crate::handler::FrameHandler) that writes the reply
//! straight into a TX buffer, put the batch on TX. The handler (the
//! engine) never sees a ring, and this module never sees the engine: both
//! meet only in [`crate::handler`]. What the workers share lives here:
//! their settings ([`WorkerOptions`], read from [`crate::config`]), their
//! slot, their pinning and the [`Stop`] that ends them; the system calls
//! they sleep in come from [`crate::os`].
pub mod iface;
pub mod packet;
pub mod xdp;
pub mod xsk;

use crate::config::PollMode;
use crate::handler::ReplyKind;
use crate::latency::{self, Flush, Recorder};
use crate::os::{self, EventFd};
use crate::stats::WorkerStats;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Tells the workers to stop and wakes the ones asleep in poll(2). The
/// flag is what the signal handlers set (all a handler may do is store an
/// atomic); the main thread, once it sees it, calls [`Stop::wake_all`],
/// which makes an eventfd readable that every sleeping worker polls beside
/// its socket. It is never reset, so a stop takes effect at once however
/// long `idle_sleep_ms` is.
pub struct Stop {
    flag: Arc<AtomicBool>,
    wake: EventFd,
}

impl Stop {
    pub fn new() -> std::io::Result<Arc<Stop>> {
        Ok(Arc::new(Stop {
            flag: Arc::new(AtomicBool::new(false)),
            wake: EventFd::new()?,
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

    /// Sleeps until `sock` is readable, `wake` (an eventfd) is signalled
    /// or the daemon stops, at most `timeout_ms`, then resets `wake`.
    pub(crate) fn sleep(
        &self,
        sock: Option<BorrowedFd<'_>>,
        wake: Option<BorrowedFd<'_>>,
        timeout_ms: i32,
    ) {
        os::wait_for(sock, wake, self.wake.as_fd(), timeout_ms);
    }

    /// [`Stop::sleep`] with two wake-up eventfds (journal and probes).
    pub(crate) fn sleep_any(
        &self,
        sock: Option<BorrowedFd<'_>>,
        wakes: [Option<BorrowedFd<'_>>; 2],
        timeout_ms: i32,
    ) {
        os::wait_for_any(sock, wakes, self.wake.as_fd(), timeout_ms);
    }

    /// Wakes every worker asleep in [`Stop::sleep`], now and later.
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
    /// worker of queue q goes to the q-th core the process may use (round
    /// robin).
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

/// One worker's share: its queue, its handler, its counters, and its
/// latency recorder when latency is measured.
pub struct WorkerSlot<H> {
    pub queue: u32,
    pub handler: H,
    pub stats: Arc<WorkerStats>,
    pub latency: Option<Recorder>,
}

/// The histogram a reply's latency goes to (none for other replies).
#[inline]
fn latency_kind(k: ReplyKind) -> Option<latency::Kind> {
    match k {
        ReplyKind::Offer => Some(latency::Kind::Offer),
        ReplyKind::Ack => Some(latency::Kind::Ack),
        ReplyKind::Nak => Some(latency::Kind::Nak),
        ReplyKind::Other => None,
    }
}

/// Hands the worker's histograms over when due; counts a hand-over that
/// found no empty set.
#[inline]
fn latency_tick(rec: &mut Option<Recorder>, now: std::time::Instant, stats: &WorkerStats) {
    if let Some(r) = rec
        && r.tick(now) == Flush::Held
    {
        crate::stats::bump(&stats.latency_held);
    }
}

/// The cores the process may use, as it started: read once, before the
/// main thread narrows its own to the cores the workers leave free (see
/// [`keep_side_threads_off`]), which the workers inherit before they pin
/// themselves.
fn process_cores() -> &'static [usize] {
    static CORES: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CORES.get_or_init(|| os::affinity::current().unwrap_or_default())
}

/// The core the worker of `index` is pinned to: the configured one, else
/// the index-th core the process may use, round robin.
fn worker_core(opts: &WorkerOptions, index: usize, process: &[usize]) -> Option<usize> {
    match opts.cores.get(index) {
        Some(&c) => Some(c),
        None if process.is_empty() => None,
        None => Some(process[index % process.len()]),
    }
}

/// Pins the calling thread to the core chosen for `index`, if the process
/// may use it.
pub fn pin_worker(opts: &WorkerOptions, index: usize) -> Option<usize> {
    let process = process_cores();
    let want = worker_core(opts, index, process)?;
    if !process.contains(&want) {
        return None;
    }
    os::affinity::set_current(&[want]).is_ok().then_some(want)
}

/// The cores for every thread but the workers: the process's cores the
/// workers leave free, or all of them when the workers take every one (a
/// small machine: the side threads then share the workers' cores).
pub fn side_cores(process: &[usize], workers: &[usize]) -> Vec<usize> {
    let free: Vec<usize> = process
        .iter()
        .copied()
        .filter(|c| !workers.contains(c))
        .collect();
    if free.is_empty() {
        process.to_vec()
    } else {
        free
    }
}

/// Narrows the calling thread, and so every thread it starts from then
/// on, to [`side_cores`] for `workers` workers, and gives those cores.
/// The daemon's main thread calls it before it starts its first side
/// thread (journal, cluster, DNS, control, metrics, expiry): a worker
/// polls its queue without pause under load, and a side thread woken on
/// its core waited for the worker's time slice, or took it from the
/// worker, for milliseconds (in the lab the fast mode's DORA p99 at
/// 100,000/s went from 0.7-1.2 ms to 0.3-0.6 ms with them apart). Each
/// worker pins itself to its own core afterwards.
pub fn keep_side_threads_off(opts: &WorkerOptions, workers: usize) -> std::io::Result<Vec<usize>> {
    let process = process_cores();
    let taken: Vec<usize> = (0..workers)
        .filter_map(|i| worker_core(opts, i, process))
        .collect();
    let side = side_cores(process, &taken);
    if side.len() < process.len() {
        os::affinity::set_current(&side)?;
    }
    Ok(side)
}

/// Shared by the main thread and the workers; workers check it once per
/// batch.
pub type StopFlag = Arc<Stop>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_threads_get_the_cores_the_workers_leave() {
        let opts = |cores: &[usize]| WorkerOptions {
            cores: cores.to_vec(),
            ..WorkerOptions::default()
        };
        let taken = |o: &WorkerOptions, n: usize, process: &[usize]| -> Vec<usize> {
            (0..n).filter_map(|i| worker_core(o, i, process)).collect()
        };
        // Round robin over the process's cores, which need not start at 0
        // (systemd's CPUAffinity=, a cpuset).
        assert_eq!(taken(&opts(&[]), 3, &[2, 3, 5]), [2, 3, 5]);
        assert_eq!(taken(&opts(&[]), 4, &[2, 3]), [2, 3, 2, 3]);
        assert_eq!(taken(&opts(&[5, 1]), 2, &[0, 1, 2]), [5, 1]);
        assert!(taken(&opts(&[]), 2, &[]).is_empty());
        assert_eq!(side_cores(&[0, 1, 2, 3], &[1, 2]), [0, 3]);
        assert_eq!(side_cores(&[0, 1], &[0]), [1]);
        // Workers on every core: the side threads share them.
        assert_eq!(side_cores(&[0, 1], &[0, 1, 0]), [0, 1]);
        // A configured core outside the process's takes nothing from it.
        assert_eq!(side_cores(&[0, 1], &[7]), [0, 1]);
    }
}
