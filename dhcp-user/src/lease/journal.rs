//! The lease journal: every change of a lease, appended to disk by one
//! side thread in groups, so that leases survive a restart and, in the
//! durable mode, a power cut.
//!
//! # Who does what
//!
//! Each worker owns a [`Producer`] and hands it [`LeaseRecord`]s; `append`
//! is a `try_send` on a bounded channel of the producer's own (no
//! syscall, no lock, no allocation, and no cache line another worker
//! writes) and returns a [`Ticket`], or [`Full`] when the writer is
//! behind — the worker counts it and, in durable mode, keeps the reply
//! parked and tries again later. Once per batch the worker reads
//! [`Producer::durable_seq`] (one atomic load) and sends every parked reply
//! whose ticket it has passed.
//!
//! The writer thread takes whatever the channels hold (up to
//! `max_group_records`), merged in the order the records were sent (see
//! below), encodes it into one buffer and writes it with one `pwrite`. In [`Durability::Durable`] it then `fdatasync`s and only after
//! that moves the producers' durable marks; in [`Durability::Fast`] it moves
//! them after the write and syncs at most `max_delay` later.
//!
//! Tickets count per producer rather than globally: a global counter
//! taken before `try_send` would leave holes whenever the channel is full,
//! and records from different threads may enter the channel out of ticket
//! order. One thread's sends are ordered, so the writer's mark for a
//! producer is simply the last ticket of that producer it has written.
//!
//! # Why the channels are merged by a clock stamp
//!
//! Recovery keeps the last record of each address in file order, and
//! two workers may write records of one address: a client's ACK leaves
//! worker A, its RELEASE arrives on worker B. One channel shared by all
//! workers kept such records in order, but every send then took the same
//! cache line from the other workers' cores: two workers scaled to 1.16×
//! one in the in-process bench. With one channel per producer the writer
//! must merge them so that a record never precedes one that happened
//! before it. Each record carries the monotonic clock read when it was
//! made, after the decision that made it; the writer reads the clock (the
//! cut) before each group, only then learns of new channels, and takes,
//! across all channels, the records with the smallest stamps that are
//! not after the cut. If B's record r2 is taken, it was stamped before
//! the cut; a record r2 depends on, like A's r1 (sent before the ACK
//! left, so before the RELEASE reached B), was in A's channel before r2
//! was stamped, hence before the cut, and carries the smaller stamp: it
//! is written first. This leans on the kernel's `CLOCK_MONOTONIC`
//! agreeing across cores (it does, or Linux does not use the clock
//! source) and on the chain from r1's send to r2's stamp passing through
//! a full barrier (the NIC ring, a syscall, a lock).
//!
//! What it does not order, as one shared channel did not either: two
//! decisions that meet in the lease table or a pool (A frees an address,
//! B takes it at once) and whose records are sent in the other order
//! than they were made, in the moment between a decision and its send;
//! and, in fast mode, a record held in a worker's backlog while its
//! channel is full (`engine::journal_link`), whose ACK leaves before the
//! record is sent. Records no chain links are concurrent, and their
//! order is as arbitrary as it was with one channel.
//!
//! # Files
//!
//! A directory holds `snapshot-G.snap` (the live leases as of a cut) and
//! `journal-G.log` (records appended after snapshot G was cut), by
//! generation G. Both start with a 24-byte header (magic, format version,
//! kind, generation, CRC32C). Records are framed as `len: u32 LE`,
//! `crc32c(len bytes ++ body): u32 LE`, `body`, all little-endian; a
//! snapshot ends with an end record that carries its lease count.
//!
//! # Compaction, and why a crash at any point is safe
//!
//! When the current journal (generation G) passes `compact_after_bytes`, or
//! on request:
//!
//! 1. the writer syncs `journal-G` and creates `journal-(G+1)` (header
//!    synced, directory synced); appends go there from now on, so G and
//!    everything older are sealed;
//! 2. a compaction thread reads the newest snapshot and the sealed
//!    journals, keeps the latest record per (subnet, address) if it is
//!    live, and writes them to `snapshot-(G+1).snap.tmp`, then `fsync`;
//! 3. renames it to `snapshot-(G+1).snap` and syncs the directory;
//! 4. removes the sealed files and syncs the directory.
//!
//! Recovery takes the newest snapshot S (or none), then every journal of
//! generation ≥ S in order, and removes `.tmp` files and anything older
//! than S. A crash before step 3 leaves snapshot S and journals S..=G+1:
//! the same state read the long way. A crash after step 3 leaves snapshot
//! G+1 and journal G+1 (plus stale files that are removed): the same state
//! read the short way. A snapshot's name only ever appears after its
//! contents are on disk, so a snapshot is never half there.
//!
//! # Recovery from damage
//!
//! A record cut short at the end of the newest journal (a crash mid-write,
//! or a file system that left a hole of zeros) is a torn tail: it is cut
//! away and appending resumes after the last good record. A record that
//! fails its check with data after it is corruption: that file is read up
//! to there (later files are still read, their records being newer), the
//! place is reported, and the journal moves to a fresh generation with a
//! snapshot of what was recovered; the damaged file is kept aside as
//! `<name>.corrupt` for the operator.
mod compact;
mod crc;
mod record;
mod replay;
mod segment;
mod writer;

pub(crate) use record::Reader;
pub use record::{FQDN_SENT, FixedBytes, INFINITE, LeaseRecord, RecordState};
pub use replay::RecoveryStats;
pub use segment::Stop;

use crate::os::EventFd;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use hdrhistogram::Histogram;
use replay::Sources;
use segment::Kind;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// When an appended record counts as safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// After `fdatasync` returned for the group holding it.
    Durable,
    /// After it was written to the page cache; synced at most `max_delay`
    /// later, so a power cut loses up to that much.
    Fast { max_delay: Duration },
}

#[derive(Clone, Debug)]
pub struct JournalOptions {
    /// Records each producer's channel holds before `append` says
    /// [`Full`]. The channel is allocated whole (about 260 bytes a record)
    /// when its producer slot is first taken: one per worker, plus one for
    /// the control API and one for the cluster when they are on.
    pub capacity: usize,
    /// Most records written (and synced) as one group.
    pub max_group_records: usize,
    /// Durable mode: how long the writer lets records gather after a
    /// group of more than one record was synced, before it writes the
    /// next (zero: at once). A lone record does not start the wait, so a
    /// quiet server writes each request when it comes; under load each
    /// group carries a longer stretch of them. A group costs the writer
    /// about 100 µs of CPU whatever its size (fdatasync's own work on the
    /// lab's disk), and back-to-back syncs queue on the disk. In the lab,
    /// with the writer's short time slice (`os::sched`), 0.5 ms against
    /// none (same build, 2 runs each): DORA p90 at 70,000/s 1.1-1.3 ms
    /// against 2.9-3.0 ms, and 183,000-189,000 leases/s at the open
    /// loop's maximum against 145,000-168,000.
    pub durable_gather: Duration,
    /// Size of the current journal file that triggers a compaction.
    pub compact_after_bytes: u64,
    /// How long released and expired records are kept through compaction
    /// and recovery (so a returning client finds its old address); 0 keeps
    /// only bound and declined addresses.
    pub keep_released_secs: u64,
    /// Most producers alive at once (one per worker, plus tools).
    pub max_producers: usize,
    /// Where each record goes once its group is written (and, in durable
    /// mode, synced): the side threads that follow the leases (DDNS, the
    /// control API's address index). Each is offered every record; one
    /// that is full loses it alone (its own `dropped`).
    pub taps: Vec<Tap>,
    /// The cluster's copy of every record (`[cluster]`), with the
    /// producer and ticket it came with; see [`Replication`].
    pub replication: Option<Replication>,
}

/// A record on its way to the cluster, with its producer's ticket, so
/// that the cluster thread can move that producer's mark once the stream
/// stored it ([`Replication::gates_acks`]).
#[derive(Clone, Copy, Debug)]
pub struct Shipped {
    pub producer: u16,
    pub seq: u64,
    pub rec: LeaseRecord,
}

/// Where the writer hands every record once its group is safe on the
/// local disk (written in fast mode, synced in durable mode), in each
/// producer's order: one message per group commit, its records in order.
#[derive(Clone, Debug)]
pub struct Replication {
    pub tx: Sender<Vec<Shipped>>,
    /// `durability = "replicated"`: the journal never moves the producers'
    /// durable marks itself; the receiver does, with [`Marks::advance`],
    /// once the cluster stored the record, so an ACK waits for both disks.
    /// The writer then waits on a full channel rather than lose a record
    /// (it is a side thread: the workers see its queue fill and count
    /// `journal_full`). Otherwise (`durable`) a full channel loses the
    /// group to the cluster alone, its records counted in `dropped`.
    pub gates_acks: bool,
    pub dropped: Arc<AtomicU64>,
    /// Emptied group buffers the receiver hands back, taken for the next
    /// group before a new one is allocated: in steady load the two threads
    /// pass the same few buffers round. A group of a few hundred records
    /// is a large allocation, and allocated on one thread and freed on the
    /// other each time, the allocator kept returning its pages to the
    /// kernel and faulting fresh (zeroed, often huge) pages back in: that
    /// zeroing was a third of the cluster thread's CPU.
    pub spares: Receiver<Vec<Shipped>>,
}

/// The receiving end of a [`Replication`]: the groups, and where their
/// emptied buffers go back.
pub struct Feed {
    pub shipped: Receiver<Vec<Shipped>>,
    /// Fed only by [`Feed::give_back`], so every spare is empty.
    spares: Sender<Vec<Shipped>>,
}

impl Feed {
    /// Hands an emptied group buffer back to the writer. Dropped when the
    /// writer has enough spares already: a buffer, not a record.
    pub fn give_back(&self, mut group: Vec<Shipped>) {
        group.clear();
        let _ = self.spares.try_send(group);
    }
}

/// Spare buffers the writer keeps at most: about the groups in flight
/// between it and the stream in steady load.
const SPARES: usize = 64;

impl Replication {
    /// A feed with room for `groups` group commits (see [`Self::gates_acks`]
    /// for what a full one does).
    pub fn channel(groups: usize, gates_acks: bool) -> (Replication, Feed) {
        let (tx, shipped) = crossbeam_channel::bounded(groups);
        let (spares_tx, spares) = crossbeam_channel::bounded(SPARES);
        (
            Replication {
                tx,
                gates_acks,
                dropped: Arc::new(AtomicU64::new(0)),
                spares,
            },
            Feed {
                shipped,
                spares: spares_tx,
            },
        )
    }
}

/// A copy of every record the journal wrote, for a side service that
/// follows the leases (DDNS, the control API). Records are offered with `try_send`: the
/// writer never waits for the follower, and what a full channel refuses
/// is counted in `dropped` (the follower catches up from the journal at
/// its next start).
#[derive(Clone, Debug)]
pub struct Tap {
    pub tx: Sender<LeaseRecord>,
    pub dropped: Arc<AtomicU64>,
}

/// [`JournalOptions::durable_gather`] unless configured (`gather_us`).
pub const DEFAULT_DURABLE_GATHER_US: u64 = 500;

impl Default for JournalOptions {
    fn default() -> Self {
        // Per producer: a worker's third of a second at 100,000 ACKs/s
        // waits in the queue rather than being refused (8.5 MB a worker).
        JournalOptions {
            capacity: 32 * 1024,
            max_group_records: 16 * 1024,
            durable_gather: Duration::from_micros(DEFAULT_DURABLE_GATHER_US),
            compact_after_bytes: 64 << 20,
            keep_released_secs: 0,
            max_producers: 64,
            taps: Vec::new(),
            replication: None,
        }
    }
}

/// The journal's side thread is behind (or gone): the record was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// No producer slot left (see [`JournalOptions::max_producers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoProducerSlot;

/// A record's place in its producer's sequence: it is safe once
/// [`Producer::durable_seq`] reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// What a journal held when it was opened.
#[derive(Debug)]
pub struct Recovered {
    /// The latest record of every address whose latest record is live,
    /// in the order they were written: applying them in order leaves each
    /// client with its newest lease.
    pub leases: Vec<LeaseRecord>,
    pub stats: RecoveryStats,
}

/// The journal's counters; serialized as the stats file's `journal`
/// object (the bookkeeping fields left out).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct JournalStats {
    pub records: u64,
    pub groups: u64,
    pub bytes: u64,
    pub fsyncs: u64,
    pub fsync_p50_us: u64,
    pub fsync_p99_us: u64,
    pub fsync_max_us: u64,
    /// `append`s refused because the channel was full.
    pub full: u64,
    pub io_errors: u64,
    pub compactions: u64,
    #[serde(skip)]
    pub compaction_errors: u64,
    /// Generation of the file appended to now.
    #[serde(skip)]
    pub generation: u64,
    /// Leases in the last snapshot written.
    #[serde(skip)]
    pub snapshot_leases: u64,
}

/// A record in its producer's channel. Records travel inline: boxing
/// them would allocate per packet.
pub(crate) struct Queued {
    pub seq: u64,
    /// The monotonic clock, in [`Shared::stamp`]'s terms, when the record
    /// was made (after its decision, before its send): the writer merges
    /// the channels in this order (see the module's comment).
    pub stamp: u64,
    pub rec: LeaseRecord,
}

/// What the writer hears on its control channel.
pub(crate) enum Msg {
    /// A producer slot's channel, sent once, when the slot is first taken.
    Producer(u16, Receiver<Queued>),
    Compact,
    Close,
}

#[repr(align(128))]
pub(crate) struct Slot {
    /// Last sequence number of this producer that is safe.
    pub durable: AtomicU64,
    /// Last sequence number handed out, saved when the producer is dropped
    /// so the next owner of the slot goes on from there.
    issued: AtomicU64,
    /// Signalled by the writer after each group that moved `durable`, so
    /// a worker asleep while its replies wait for the journal sees the
    /// mark at once, not at its next poll timeout or frame.
    pub wake: EventFd,
    in_use: AtomicBool,
    /// This slot's channel, made when the slot is first taken and kept by
    /// its later owners, so that what one left queued stays ahead of the
    /// next one's records.
    queue: OnceLock<Sender<Queued>>,
}

pub(crate) struct Shared {
    pub slots: Box<[Slot]>,
    /// When the journal opened: stamps count from here.
    clock: Instant,
    /// Records per producer channel.
    capacity: usize,
    pub records: AtomicU64,
    pub groups: AtomicU64,
    pub bytes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub full: AtomicU64,
    pub io_errors: AtomicU64,
    pub compactions: AtomicU64,
    pub compaction_errors: AtomicU64,
    pub generation: AtomicU64,
    pub snapshot_leases: AtomicU64,
    /// Set by `close`: an I/O error then ends the writer instead of being
    /// retried forever.
    pub closing: AtomicBool,
    fsync_us: Mutex<Histogram<u64>>,
    thread: Mutex<Option<JoinHandle<io::Result<()>>>>,
    #[cfg(test)]
    gate: tests::Gate,
}

impl Shared {
    /// Nanoseconds of the monotonic clock since the journal opened (a
    /// vDSO read, no syscall).
    #[inline]
    pub(crate) fn stamp(&self) -> u64 {
        self.stamp_of(Instant::now())
    }

    /// `at` as a stamp: nanoseconds since the journal opened.
    #[inline]
    fn stamp_of(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.clock).as_nanos() as u64
    }

    pub(crate) fn record_fsync(&self, d: Duration) {
        let us = (d.as_micros() as u64).max(1);
        if let Ok(mut h) = self.fsync_us.lock() {
            h.saturating_record(us);
        }
        // After the histogram and before any durable mark moves, so that a
        // reader who sees the mark also sees this count.
        self.fsyncs.fetch_add(1, Release);
    }

    #[cfg(test)]
    pub(crate) fn gate_group(&self) {
        self.gate.wait(|g| g.hold_group);
    }
    #[cfg(test)]
    pub(crate) fn gate_sync(&self) {
        self.gate.wait(|g| g.hold_sync);
    }
    #[cfg(not(test))]
    #[inline(always)]
    pub(crate) fn gate_group(&self) {}
    #[cfg(not(test))]
    #[inline(always)]
    pub(crate) fn gate_sync(&self) {}
}

/// The journal: opened once at start.
pub struct Journal;

impl Journal {
    /// Recovers the state in `dir` (created if missing), repairs what a
    /// crash left, and starts the writer thread.
    pub fn open(
        dir: &Path,
        mode: Durability,
        opts: JournalOptions,
    ) -> io::Result<(JournalHandle, Recovered)> {
        let opts = JournalOptions {
            capacity: opts.capacity.max(1),
            max_group_records: opts.max_group_records.max(1),
            max_producers: opts.max_producers.clamp(1, u16::MAX as usize),
            ..opts
        };
        fs::create_dir_all(dir)?;
        let listing = segment::list(dir)?;
        let (src, stale) = Sources::choose(dir, &listing);
        for p in &stale {
            fs::remove_file(p)?;
        }
        if !stale.is_empty() {
            segment::sync_dir(dir)?;
        }
        let now = now_unix();
        let mut leases = Vec::new();
        let (mut stats, scans) = replay::latest(dir, &src, now, opts.keep_released_secs, |r| {
            leases.push(*r);
            Ok(())
        })?;
        stats.stale_removed = stale.len();

        let corrupt = scans.iter().any(|s| s.stop == Stop::Corrupt);
        let newest = src.journals.last().copied();
        let (file, pos, generation, sealed) = match (newest, scans.last()) {
            (Some(g), Some(scan)) if !corrupt => {
                let path = dir.join(segment::file_name(Kind::Journal, g));
                let f = fs::OpenOptions::new().read(true).write(true).open(&path)?;
                let mut pos = scan.valid_len;
                if pos < segment::HEADER_LEN {
                    // Crash while the file was being created: start it over.
                    f.set_len(0)?;
                    f.write_all_at(&segment::header(Kind::Journal, g), 0)?;
                    pos = segment::HEADER_LEN;
                    f.sync_all()?;
                } else if f.metadata()?.len() != pos {
                    // Torn tail: cut it so new records follow good ones.
                    f.set_len(pos)?;
                    f.sync_all()?;
                }
                let mut sealed = src.clone();
                sealed.journals.pop();
                (f, pos, g, sealed)
            }
            _ => {
                let next = src.snapshot.max(newest).unwrap_or(0) + 1;
                let f = segment::create_journal(dir, next)?;
                let sealed = if corrupt {
                    let c = compact::compact(dir, &src, next, now, opts.keep_released_secs)?;
                    Sources {
                        snapshot: Some(c.generation),
                        journals: Vec::new(),
                    }
                } else {
                    src.clone()
                };
                (f, segment::HEADER_LEN, next, sealed)
            }
        };

        let slots = (0..opts.max_producers)
            .map(|_| {
                Ok(Slot {
                    durable: AtomicU64::new(0),
                    issued: AtomicU64::new(0),
                    wake: EventFd::new()?,
                    in_use: AtomicBool::new(false),
                    queue: OnceLock::new(),
                })
            })
            .collect::<io::Result<_>>()?;
        let hist = Histogram::new_with_bounds(1, 60_000_000, 3)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let shared = Arc::new(Shared {
            slots,
            clock: Instant::now(),
            capacity: opts.capacity,
            records: AtomicU64::new(0),
            groups: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            full: AtomicU64::new(0),
            io_errors: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            compaction_errors: AtomicU64::new(0),
            generation: AtomicU64::new(generation),
            snapshot_leases: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            fsync_us: Mutex::new(hist),
            thread: Mutex::new(None),
            #[cfg(test)]
            gate: tests::Gate::default(),
        });
        // Unbounded: a few messages in the journal's life (one per
        // producer slot, compactions, close), and taking a producer or
        // asking for a compaction must not wait for a writer stuck on a
        // failing disk.
        let (tx, rx) = crossbeam_channel::unbounded();
        let w = writer::Writer {
            dir: dir.to_path_buf(),
            file,
            pos,
            generation,
            sealed,
            control: rx,
            shared: shared.clone(),
            mode,
            opts,
        };
        let h = std::thread::Builder::new()
            .name("xdhcp-journal".into())
            .spawn(move || w.run())?;
        *shared.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
        Ok((JournalHandle { tx, shared }, Recovered { leases, stats }))
    }
}

/// Shared access to a running journal: hands out producers, reads stats,
/// asks for compaction, stops it.
#[derive(Clone)]
pub struct JournalHandle {
    /// The writer's control channel.
    tx: Sender<Msg>,
    shared: Arc<Shared>,
}

impl Journal {
    /// The live leases of the journal in `dir` (the latest record of each
    /// address, if live at `now_unix`), read without taking the journal
    /// over: it writes nothing, cuts nothing, so it may run beside the
    /// daemon that appends to it. It sees the records written when it
    /// listed the files; a compaction that removes a file meanwhile makes
    /// it list again.
    pub fn read_live(
        dir: &Path,
        now_unix: u64,
        keep_released: u64,
    ) -> io::Result<(Vec<LeaseRecord>, RecoveryStats)> {
        let mut attempt = 0;
        loop {
            let listing = segment::list(dir)?;
            let (src, _) = Sources::choose(dir, &listing);
            let mut leases = Vec::new();
            match replay::latest(dir, &src, now_unix, keep_released, |r| {
                leases.push(*r);
                Ok(())
            }) {
                Ok((stats, _)) => return Ok((leases, stats)),
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 5 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }
}

impl JournalHandle {
    /// Tests: stops the writer before it takes its next group (or lets it
    /// go on), so that the channel fills.
    #[cfg(test)]
    pub(crate) fn hold_groups(&self, hold: bool) {
        self.shared.gate.set(|g| g.hold_group = hold);
    }

    /// A producer for one thread. Its tickets go on from where the last
    /// producer of the same slot stopped.
    /// Who moves the producers' marks when the journal does not
    /// ([`Replication::gates_acks`]).
    pub fn marks(&self) -> Marks {
        Marks(self.shared.clone())
    }

    pub fn producer(&self) -> Result<Producer, NoProducerSlot> {
        for (id, s) in self.shared.slots.iter().enumerate() {
            if s.in_use
                .compare_exchange(false, true, AcqRel, Relaxed)
                .is_ok()
            {
                let tx = s.queue.get_or_init(|| {
                    let (tx, rx) = crossbeam_channel::bounded(self.shared.capacity);
                    // A writer that is gone drops `rx` with the message:
                    // the producer's appends then see Full.
                    let _ = self.tx.send(Msg::Producer(id as u16, rx));
                    tx
                });
                return Ok(Producer {
                    id: id as u16,
                    next: s.issued.load(Acquire),
                    tx: tx.clone(),
                    _control: self.tx.clone(),
                    shared: self.shared.clone(),
                });
            }
        }
        Err(NoProducerSlot)
    }

    /// Asks for a compaction now (it starts after the current group).
    pub fn compact(&self) -> Result<(), Full> {
        self.tx.try_send(Msg::Compact).map_err(|_| Full)
    }

    pub fn stats(&self) -> JournalStats {
        let s = &self.shared;
        let (p50, p99, max) = match s.fsync_us.lock() {
            Ok(h) if !h.is_empty() => {
                (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max())
            }
            _ => (0, 0, 0),
        };
        JournalStats {
            records: s.records.load(Relaxed),
            groups: s.groups.load(Relaxed),
            bytes: s.bytes.load(Relaxed),
            fsyncs: s.fsyncs.load(Acquire),
            fsync_p50_us: p50,
            fsync_p99_us: p99,
            fsync_max_us: max,
            full: s.full.load(Relaxed),
            io_errors: s.io_errors.load(Relaxed),
            compactions: s.compactions.load(Relaxed),
            compaction_errors: s.compaction_errors.load(Relaxed),
            generation: s.generation.load(Relaxed),
            snapshot_leases: s.snapshot_leases.load(Relaxed),
        }
    }

    /// Writes and syncs everything sent before, waits for a running
    /// compaction, and stops the writer. Appends after this get [`Full`].
    pub fn close(&self) -> io::Result<()> {
        let Some(h) = self
            .shared
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return Ok(());
        };
        self.shared.closing.store(true, Relaxed);
        // Blocking is fine here: shutdown, and the writer drains the channel.
        let _ = self.tx.send(Msg::Close);
        h.join()
            .map_err(|_| io::Error::other("lease journal writer panicked"))?
    }
}

/// The producers' durable marks, for the cluster thread in replicated
/// mode: it moves a producer's mark once the records up to a ticket are
/// stored by the cluster (and were safe locally before it saw them).
#[derive(Clone)]
pub struct Marks(Arc<Shared>);

impl Marks {
    /// Every ticket of `producer` up to `seq` is safe; wakes the worker
    /// if its mark moved. Marks only move forward (acks may come back in
    /// any order); an unknown producer is ignored.
    pub fn advance(&self, producer: u16, seq: u64) {
        if let Some(s) = self.0.slots.get(usize::from(producer))
            && s.durable.fetch_max(seq, AcqRel) < seq
        {
            s.wake.signal();
        }
    }
}

/// One thread's way into the journal.
pub struct Producer {
    id: u16,
    next: u64,
    tx: Sender<Queued>,
    /// Keeps the writer running while a producer lives, as when records
    /// shared the control channel (the writer stops once nobody holds it).
    _control: Sender<Msg>,
    shared: Arc<Shared>,
}

impl Producer {
    /// Queues `rec` without blocking. `Full` when the writer is behind or
    /// stopped; nothing was queued then, and the ticket is not used up.
    #[inline]
    pub fn append(&mut self, rec: &LeaseRecord) -> Result<Ticket, Full> {
        self.append_at(rec, Instant::now())
    }

    /// [`Self::append`] with the stamp taken from `at` rather than the
    /// clock: the time the record was made, for one that waited in a
    /// worker's backlog. `at` must be no earlier than the decision that
    /// made the record and no later than now, and a producer's stamps
    /// must not go back (see the module's comment).
    #[inline]
    pub fn append_at(&mut self, rec: &LeaseRecord, at: Instant) -> Result<Ticket, Full> {
        let seq = self.next + 1;
        let msg = Queued {
            seq,
            stamp: self.shared.stamp_of(at),
            rec: *rec,
        };
        match self.tx.try_send(msg) {
            Ok(()) => {
                self.next = seq;
                Ok(Ticket(seq))
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.full.fetch_add(1, Relaxed);
                Err(Full)
            }
        }
    }

    /// Every ticket up to this one is safe (synced in durable mode).
    #[inline]
    pub fn durable_seq(&self) -> u64 {
        self.shared.slots[self.id as usize].durable.load(Acquire)
    }

    /// An eventfd that becomes readable when [`Producer::durable_seq`]
    /// moves: a worker with parked replies sleeps on it beside its socket.
    /// Whoever wakes reads it to reset it (see `os::wait_for`).
    pub fn wake_fd(&self) -> std::os::fd::RawFd {
        self.shared.slots[self.id as usize].wake.fd()
    }

    #[inline]
    pub fn is_durable(&self, t: Ticket) -> bool {
        self.durable_seq() >= t.0
    }

    /// The last ticket handed out.
    pub fn last_ticket(&self) -> Ticket {
        Ticket(self.next)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let s = &self.shared.slots[self.id as usize];
        s.issued.store(self.next, Relaxed);
        s.in_use.store(false, Release);
    }
}

/// Wall-clock seconds since 1970, as the journal stores times.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests;
