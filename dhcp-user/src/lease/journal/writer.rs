//! The writer thread: drains the producers' channels in groups, merged
//! by their stamps, one `pwrite` per group, syncs per the durability
//! mode, tells each producer how far its records are safe, and starts
//! compactions.
use super::compact::{self, Compacted};
use super::record;
use super::replay::Sources;
use super::segment;
use super::{Durability, JournalOptions, Msg, Queued, Shared};
use crossbeam_channel::{Receiver, Select, TryRecvError};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a fast-mode writer lets records gather after each group.
const FAST_GATHER: Duration = Duration::from_millis(1);

const COMPACTOR_POLL: Duration = Duration::from_millis(20);

pub(crate) struct Writer {
    pub dir: PathBuf,
    pub file: File,
    /// End of the last whole group in `file`: where the next one goes.
    pub pos: u64,
    pub generation: u64,
    /// The files the next compaction folds: everything before `file`.
    pub sealed: Sources,
    pub control: Receiver<Msg>,
    pub shared: Arc<Shared>,
    pub mode: Durability,
    pub opts: JournalOptions,
}

/// One producer slot's channel, and the record taken from it but not
/// yet written (stamped after the cut, or behind a smaller stamp).
struct Queue {
    producer: u16,
    rx: Receiver<Queued>,
    head: Option<Queued>,
}

impl Queue {
    /// The stamp of the next record, taking it from the channel if need be.
    fn peek(&mut self) -> Option<u64> {
        if self.head.is_none() {
            self.head = self.rx.try_recv().ok();
        }
        self.head.as_ref().map(|q| q.stamp)
    }
}

struct Loop {
    /// Every producer slot's channel, in the order they were taken.
    queues: Vec<Queue>,
    /// Set at `Close` (or when nobody holds the control channel any
    /// more): records stamped up to here are written, then the writer
    /// stops.
    close_cut: Option<u64>,
    buf: Vec<u8>,
    /// Highest sequence number per producer in the current group.
    group_max: Vec<u64>,
    touched: Vec<u16>,
    unsynced: bool,
    last_sync: Instant,
    bytes_since_compaction: u64,
    compactor: Option<JoinHandle<io::Result<Compacted>>>,
    compact_asked: bool,
    closing: bool,
    /// The current group's records, for the taps (empty without one).
    tapped: Vec<super::LeaseRecord>,
    /// The same with their tickets, for the cluster (empty without one).
    shipped: Vec<super::Shipped>,
    /// End of the zeros written (and synced) ahead of `pos` in `file`, so
    /// that groups overwrite blocks in place (see `segment::next_fill`);
    /// `None` after extending failed, until the next file.
    filled: Option<u64>,
}

/// A durable ACK waits for this thread: let it preempt a busy core on
/// wakeup instead of waiting for a tick (see `os::sched`). It runs for
/// tens of microseconds between its waits, which the kernel's shortest
/// slice covers; the compactor it starts keeps the default slice.
fn ask_for_a_short_slice() {
    match crate::os::sched::set_slice(crate::os::sched::MIN_SLICE) {
        Ok(got) => tracing::debug!(slice = ?got, "lease journal writer's time slice"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot shorten the lease journal writer's time slice")
        }
    }
}

impl Writer {
    pub(crate) fn run(mut self) -> io::Result<()> {
        if matches!(self.mode, Durability::Durable) {
            ask_for_a_short_slice();
        }
        let mut l = Loop {
            queues: Vec::with_capacity(self.shared.slots.len()),
            close_cut: None,
            buf: Vec::with_capacity(self.opts.max_group_records * 96),
            group_max: vec![0; self.shared.slots.len()],
            touched: Vec::with_capacity(self.shared.slots.len()),
            unsynced: false,
            last_sync: Instant::now(),
            bytes_since_compaction: self.pos,
            compactor: None,
            compact_asked: false,
            closing: false,
            tapped: Vec::with_capacity(if !self.opts.taps.is_empty() {
                self.opts.max_group_records
            } else {
                0
            }),
            shipped: Vec::with_capacity(if self.opts.replication.is_some() {
                self.opts.max_group_records
            } else {
                0
            }),
            filled: Some(self.file_len()),
        };
        self.keep_ahead(&mut l);
        loop {
            // Wake up for a trailing sync that falls due, and now and then
            // while a compaction runs, to take its result when idle.
            let mut wake = None;
            if let (true, Durability::Fast { max_delay }) = (l.unsynced, self.mode) {
                wake = Some(max_delay.saturating_sub(l.last_sync.elapsed()));
            }
            if l.compactor.is_some() {
                wake = Some(wake.map_or(COMPACTOR_POLL, |w| w.min(COMPACTOR_POLL)));
            }
            if !self.wait(&l, wake) {
                if l.unsynced
                    && matches!(self.mode, Durability::Fast { max_delay }
                        if l.last_sync.elapsed() >= max_delay)
                {
                    self.sync(&mut l);
                }
                self.poll_compactor(&mut l, false);
                continue;
            }
            self.shared.gate_group();
            // The cut before the control channel: a producer with records
            // stamped before the cut sent its channel before them, so it
            // is known by the time they are merged.
            let cut = self.shared.stamp();
            self.control(&mut l);
            let taken = self.gather(&mut l, cut);
            if !l.buf.is_empty() {
                self.write_group(&mut l)?;
                self.keep_ahead(&mut l);
            }
            self.poll_compactor(&mut l, false);
            if l.closing {
                if taken == 0 {
                    break;
                }
                continue;
            }
            if l.compactor.is_none()
                && (l.compact_asked || l.bytes_since_compaction >= self.opts.compact_after_bytes)
            {
                l.compact_asked = false;
                self.start_compaction(&mut l)?;
            }
            if let Durability::Fast { max_delay } = self.mode {
                // Nobody waits for a fast-mode write: let records gather
                // for a moment instead of waking for every few. A writer
                // blocked on the channel costs each worker's send a futex
                // wake (a syscall on the packet path), and small groups
                // cost a write each.
                std::thread::sleep(FAST_GATHER.min(max_delay));
            } else if taken > 1
                && taken < self.opts.max_group_records
                && !self.opts.durable_gather.is_zero()
            {
                // A durable group that had company was just synced: let the
                // next gather (see `JournalOptions::durable_gather`). Not
                // after a lone record (a quiet server: the next one is
                // written when it comes), nor after a full group (more wait
                // already). The control channel ends the wait: a close or
                // a compaction asked for is not held up by it.
                let mut sel = Select::new();
                sel.recv(&self.control);
                let _ = sel.ready_timeout(self.opts.durable_gather);
            }
        }
        if l.unsynced {
            self.sync(&mut l);
        }
        self.trim();
        self.poll_compactor(&mut l, true);
        Ok(())
    }

    fn file_len(&self) -> u64 {
        self.file.metadata().map_or(self.pos, |m| m.len())
    }

    /// Zero-fills the file ahead of `pos` when what is left runs short, and
    /// in durable mode syncs it, after a group was published: the next
    /// group waits for it, not this one. Fast mode syncs only every
    /// `max_delay`, and its next trailing sync commits the zeros with the
    /// records. A group larger than what is left simply grows the file
    /// (its sync then commits metadata, as every sync did before).
    fn keep_ahead(&mut self, l: &mut Loop) {
        let Some(filled) = l.filled else { return };
        let filled = filled.max(self.pos);
        l.filled = Some(filled);
        if !segment::fill_due(self.pos, filled) {
            return;
        }
        let to = segment::next_fill(self.pos, filled);
        let durable = matches!(self.mode, Durability::Durable);
        let t = Instant::now();
        let r = segment::write_zeros(&self.file, filled, to).and_then(|()| {
            if durable {
                self.file.sync_data()?;
                self.shared.record_fsync(t.elapsed());
            }
            Ok(())
        });
        match r {
            Ok(()) => {
                l.filled = Some(to);
            }
            Err(e) => {
                // Not a lost record: groups go on growing the file. Zeros
                // that did land read as the end, like the rest.
                l.filled = None;
                tracing::warn!(error = %e, "cannot zero-fill the lease journal ahead");
            }
        }
    }

    /// At a clean stop: cuts the zeros after the last record, so that the
    /// next start finds a file that ends cleanly (a crash leaves them, and
    /// the next start cuts them as a torn tail).
    fn trim(&mut self) {
        if self.file_len() > self.pos
            && let Err(e) = self
                .file
                .set_len(self.pos)
                .and_then(|()| self.file.sync_all())
        {
            tracing::warn!(error = %e, "cannot cut the lease journal's zero-filled tail");
        }
    }

    /// Until a channel holds something, the control channel speaks or
    /// `timeout` passes (false then). A record held back from the last
    /// group is there at once.
    fn wait(&self, l: &Loop, timeout: Option<Duration>) -> bool {
        if l.closing || l.queues.iter().any(|q| q.head.is_some()) {
            return true;
        }
        // Built anew each time (a small allocation on this side thread):
        // it borrows the channels, and the set grows as producers come.
        let mut sel = Select::new();
        sel.recv(&self.control);
        for q in &l.queues {
            sel.recv(&q.rx);
        }
        // `ready` may return without anything there; the gather that
        // follows then simply takes nothing.
        match timeout {
            Some(t) => sel.ready_timeout(t).is_ok(),
            None => {
                sel.ready();
                true
            }
        }
    }

    /// Takes what the control channel holds: new producers' channels,
    /// compaction requests, the close.
    fn control(&mut self, l: &mut Loop) {
        loop {
            match self.control.try_recv() {
                Ok(Msg::Producer(producer, rx)) => l.queues.push(Queue {
                    producer,
                    rx,
                    head: None,
                }),
                Ok(Msg::Compact) => l.compact_asked = true,
                Ok(Msg::Close) | Err(TryRecvError::Disconnected) => {
                    if !l.closing {
                        l.closing = true;
                        l.close_cut = Some(self.shared.stamp());
                    }
                    return;
                }
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    /// Takes up to `max_group_records` records, the smallest stamps first
    /// across all channels and none stamped after `cut` (or after the
    /// close's, if earlier): the module's comment says why that keeps
    /// dependent records in order.
    /// Runs of one channel are taken up to the next channel's stamp, so a
    /// record costs one look at the other channels only where they
    /// interleave.
    fn gather(&mut self, l: &mut Loop, cut: u64) -> usize {
        let cut = l.close_cut.map_or(cut, |c| c.min(cut));
        let max = self.opts.max_group_records;
        let mut taken = 0;
        // Out of `l` while `take` writes into it.
        let mut queues = std::mem::take(&mut l.queues);
        while taken < max {
            // The channel with the smallest head, and the smallest head of
            // the others (or the cut): how far a run from it may go.
            let mut best: Option<(usize, u64)> = None;
            let mut limit = cut;
            for (i, q) in queues.iter_mut().enumerate() {
                let Some(st) = q.peek() else { continue };
                match best {
                    Some((_, b)) if st >= b => limit = limit.min(st),
                    _ => {
                        if let Some((_, b)) = best {
                            limit = limit.min(b);
                        }
                        best = Some((i, st));
                    }
                }
            }
            let Some((i, _)) = best.filter(|&(_, st)| st <= cut) else {
                break;
            };
            // The head is the smallest, so within the limit; the run
            // goes on straight from the channel (a record is 260 bytes:
            // moved once, not through the head).
            let q = &mut queues[i];
            if let Some(h) = q.head.take() {
                self.take(q.producer, &h, l);
                taken += 1;
            }
            while taken < max {
                match q.rx.try_recv() {
                    Ok(r) if r.stamp <= limit => {
                        self.take(q.producer, &r, l);
                        taken += 1;
                    }
                    Ok(r) => {
                        q.head = Some(r);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        l.queues = queues;
        taken
    }

    fn take(&self, producer: u16, q: &Queued, l: &mut Loop) {
        record::encode_lease(&q.rec, &mut l.buf);
        if !self.opts.taps.is_empty() {
            l.tapped.push(q.rec);
        }
        if self.opts.replication.is_some() {
            l.shipped.push(super::Shipped {
                producer,
                seq: q.seq,
                rec: q.rec,
            });
        }
        let p = producer as usize;
        if l.group_max[p] == 0 {
            l.touched.push(producer);
        }
        l.group_max[p] = q.seq;
        self.shared.records.fetch_add(1, Relaxed);
    }

    /// Writes the group at `pos`, syncs it in durable mode, then publishes
    /// it. An I/O error is retried on the same bytes at the same offset
    /// (after a failed fsync the kernel may have dropped the pages, so
    /// only a rewrite and a new fsync make them safe); meanwhile nothing is
    /// published and producers see the channel fill up.
    fn write_group(&mut self, l: &mut Loop) -> io::Result<()> {
        let durable = matches!(self.mode, Durability::Durable);
        let mut backoff = Duration::from_millis(1);
        loop {
            let r = self.file.write_all_at(&l.buf, self.pos).and_then(|()| {
                if durable {
                    self.shared.gate_sync();
                    let t = Instant::now();
                    self.file.sync_data()?;
                    self.shared.record_fsync(t.elapsed());
                }
                Ok(())
            });
            match r {
                Ok(()) => break,
                Err(e) => {
                    self.shared.io_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, "lease journal write failed; retrying");
                    if self.shared.closing.load(Relaxed) {
                        return Err(e);
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
        let n = l.buf.len() as u64;
        self.pos += n;
        l.bytes_since_compaction += n;
        self.shared.bytes.fetch_add(n, Relaxed);
        self.shared.groups.fetch_add(1, Relaxed);
        l.buf.clear();
        if durable {
            l.last_sync = Instant::now();
        } else {
            l.unsynced = true;
        }
        // In replicated mode the cluster thread moves the marks instead,
        // once the stream stored what is shipped below.
        let marks_here = !self.opts.replication.as_ref().is_some_and(|r| r.gates_acks);
        for &p in &l.touched {
            let p = p as usize;
            if marks_here {
                self.shared.slots[p].durable.store(l.group_max[p], Release);
                self.shared.slots[p].wake.signal();
            }
            l.group_max[p] = 0;
        }
        l.touched.clear();
        self.ship(l);
        // One try_send per record and tap: the writer never waits for a
        // follower.
        for rec in l.tapped.drain(..) {
            for tap in &self.opts.taps {
                if tap.tx.try_send(rec).is_err() {
                    tap.dropped.fetch_add(1, Relaxed);
                }
            }
        }
        if matches!(self.mode, Durability::Fast { max_delay } if l.last_sync.elapsed() >= max_delay)
        {
            self.sync(l);
        }
        Ok(())
    }

    /// Hands the group's records to the cluster thread, the whole group
    /// as one message (the channel's cost and the receiver's wakeup are
    /// paid once per group commit, not once per record): waiting on a
    /// full channel when ACKs wait for the cluster (nothing may be skipped
    /// then; the wait ends at shutdown), else losing the group to it,
    /// counted by its records.
    fn ship(&self, l: &mut Loop) {
        let Some(r) = &self.opts.replication else {
            return;
        };
        if l.shipped.is_empty() {
            return;
        }
        // A buffer the receiver handed back (emptied), else a new one the
        // size of this group (the next is likely alike).
        let next = r
            .spares
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(l.shipped.len()));
        let mut group = std::mem::replace(&mut l.shipped, next);
        let n = group.len() as u64;
        if !r.gates_acks {
            if r.tx.try_send(group).is_err() {
                r.dropped.fetch_add(n, Relaxed);
            }
            return;
        }
        loop {
            match r.tx.send_timeout(group, Duration::from_millis(100)) {
                Ok(()) => return,
                Err(crossbeam_channel::SendTimeoutError::Timeout(back))
                    if !self.shared.closing.load(Relaxed) =>
                {
                    group = back;
                }
                Err(_) => {
                    r.dropped.fetch_add(n, Relaxed);
                    return;
                }
            }
        }
    }

    /// The fast mode's trailing sync. A failure is counted; the records it
    /// covered were already acknowledged, which is what fast mode accepts.
    fn sync(&mut self, l: &mut Loop) {
        let t = Instant::now();
        match self.file.sync_data() {
            Ok(()) => self.shared.record_fsync(t.elapsed()),
            Err(e) => {
                self.shared.io_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "lease journal fsync failed");
            }
        }
        l.unsynced = false;
        l.last_sync = Instant::now();
    }

    /// Seals the current journal and moves appends to a fresh one, then
    /// folds the sealed files into a snapshot on another thread so that
    /// appends go on meanwhile.
    fn start_compaction(&mut self, l: &mut Loop) -> io::Result<()> {
        // The sealed file must be whole on disk before any record lands in
        // the next one, or a crash could keep a newer record and lose an
        // older one of the same address.
        if l.unsynced {
            self.sync(l);
        }
        let next = self.generation + 1;
        let file = match segment::create_journal(&self.dir, next) {
            Ok(f) => f,
            Err(e) => {
                // Keep appending to the current file; the next group retries.
                self.shared.compaction_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "cannot start a new journal file");
                return Ok(());
            }
        };
        self.sealed.journals.push(self.generation);
        self.file = file;
        self.pos = segment::HEADER_LEN;
        l.filled = Some(self.file_len());
        self.generation = next;
        self.shared.generation.store(next, Relaxed);
        l.bytes_since_compaction = 0;
        let (dir, src, keep) = (
            self.dir.clone(),
            self.sealed.clone(),
            self.opts.keep_released_secs,
        );
        let spawned = std::thread::Builder::new()
            .name("xdhcp-compact".into())
            .spawn(move || compact::compact(&dir, &src, next, super::now_unix(), keep));
        match spawned {
            Ok(h) => l.compactor = Some(h),
            Err(e) => {
                self.shared.compaction_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "cannot spawn the compaction thread");
            }
        }
        Ok(())
    }

    fn poll_compactor(&mut self, l: &mut Loop, wait: bool) {
        let done = l.compactor.as_ref().is_some_and(|h| h.is_finished());
        if !(done || wait) {
            return;
        }
        let Some(h) = l.compactor.take() else { return };
        match h.join() {
            Ok(Ok(c)) => {
                self.sealed = Sources {
                    snapshot: Some(c.generation),
                    journals: Vec::new(),
                };
                self.shared.compactions.fetch_add(1, Relaxed);
                self.shared.snapshot_leases.store(c.leases, Relaxed);
                tracing::info!(
                    generation = c.generation,
                    leases = c.leases,
                    bytes = c.bytes,
                    "lease journal compacted"
                );
            }
            Ok(Err(e)) => {
                // The sources are still there (they go only after the new
                // snapshot is durable); the next compaction folds them.
                self.shared.compaction_errors.fetch_add(1, Relaxed);
                tracing::error!(error = %e, "lease journal compaction failed");
            }
            Err(_) => {
                self.shared.compaction_errors.fetch_add(1, Relaxed);
                tracing::error!("lease journal compaction thread panicked");
            }
        }
    }
}
