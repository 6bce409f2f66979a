//! The worker's side of the engine: a [`Handler`] per worker holds the
//! engine it currently uses, its clock, MAC, counters and way into the
//! lease journal, and implements the I/O's [`FrameHandler`] contract.
//!
//! Per frame it asks [`Engine::process`] for a verdict, counts it, hands
//! the lease change to the journal and, in durable mode, holds the reply
//! until its record is on disk. A reload is taken up here, at the start
//! of a batch, never in the middle of one.
use super::journal_link::{Appended, JournalLink};
use super::lifecycle::Clock;
use super::reply::Local;
use super::{Engine, Silence, Verdict};
use crate::handler::FrameHandler;
use crate::stats::{WorkerStats, bump};
use crate::wire::dhcp::MessageType;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Instant;

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
}

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

    fn handle(&mut self, rx: &[u8], tx: &mut [u8]) -> Option<usize> {
        let mut record = None;
        let verdict = self
            .engine
            .process(rx, tx, self.clock, &self.local, &mut record);
        let s = &*self.stats;
        self.hold = 0;
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
                });
                (req, None)
            }
            Verdict::Reply(req, kind, len) => (req, Some((kind, len))),
        };
        count_request(s, req);
        if let (Some(rec), Some(j)) = (record, self.journal.as_mut()) {
            let ticket = match j.append(&rec) {
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
        match kind {
            MessageType::Offer => bump(&s.offer),
            MessageType::Ack => bump(&s.ack),
            MessageType::Nak => bump(&s.nak),
            _ => {}
        }
        Some(len)
    }

    #[inline]
    fn hold_for(&self) -> u64 {
        self.hold
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
