//! The conflict-check service: a side thread that probes addresses before
//! they are offered (`conflict_check = "icmp"`), so that a device someone
//! configured by hand inside a pool is found before a client is given its
//! address.
//!
//! A worker never waits for it. It hands the address over a bounded
//! channel ([`ProbeLink::submit`]), parks the OFFER it wrote under the
//! ticket it got, and carries on. The service sends an ICMP echo request
//! ([`icmp`]) and, `conflict_wait_ms` later, completes the probe: every
//! wait is the same length and jobs are taken in order, so the probes of
//! one worker complete in ticket order and one number says how far they
//! are done ([`ProbeLink::done`]), like the journal's durable ticket. A
//! probe that was answered is the exception: its ticket is sent back on a
//! channel of its own ([`ProbeLink::next_conflict`]) *before* the
//! watermark passes it. The service rings the worker's eventfd when its
//! watermark moves, so a worker with parked OFFERs sleeps in poll(2)
//! instead of spinning.
//!
//! The service does no lease work: the worker's handler withdraws the
//! offer and puts the address into probation when it learns of a
//! conflict, on its own thread, with the lease table it already uses.
//!
//! It imports nothing of the crate but [`crate::os`].
pub mod icmp;
mod service;

pub use service::{ProbeService, ProbeStats, Prober};

use crate::os::EventFd;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A probe asked for by a worker.
#[derive(Clone, Copy, Debug)]
struct Job {
    lane: usize,
    ticket: u64,
    addr: Ipv4Addr,
}

/// What the service and one worker share.
struct Lane {
    /// Every probe of this worker up to this ticket has completed.
    done: AtomicU64,
    /// Rung when `done` moves.
    wake: EventFd,
    /// Tickets whose probe was answered, sent before `done` passes them.
    conflicts: Sender<u64>,
}

/// A worker's way to the probe service.
pub struct ProbeLink {
    lane_id: usize,
    lane: Arc<Lane>,
    jobs: Sender<Job>,
    conflicts: Receiver<u64>,
    /// The last ticket handed out.
    last: u64,
    /// Probes this worker may have outstanding at most (the caller keeps
    /// to it: see [`ProbeLink::capacity`]).
    capacity: usize,
}

impl ProbeLink {
    /// Hands `addr` to the service; the ticket its completion will carry,
    /// or `None` when the service's queue is full (nothing was sent).
    pub fn submit(&mut self, addr: Ipv4Addr) -> Option<u64> {
        let job = Job {
            lane: self.lane_id,
            ticket: self.last + 1,
            addr,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.last += 1;
                Some(self.last)
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => None,
        }
    }

    /// Every probe up to this ticket has completed (read it before
    /// [`ProbeLink::next_conflict`]: a conflict is sent before the
    /// watermark passes its ticket).
    pub fn done(&self) -> u64 {
        self.lane.done.load(Ordering::Acquire)
    }

    /// The next ticket whose probe was answered, in ticket order.
    pub fn next_conflict(&self) -> Option<u64> {
        self.conflicts.try_recv().ok()
    }

    /// The eventfd rung when [`ProbeLink::done`] moves.
    pub fn wake_fd(&self) -> RawFd {
        self.lane.wake.fd()
    }

    /// Outstanding probes (submitted, not yet taken up by the worker) the
    /// worker may have at most; its conflict channel holds that many, so
    /// the service never blocks on a worker that keeps to it.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
