//! A worker's way into the lease journal, with a backlog for the moments
//! the journal's channel is full.
//!
//! Tickets are the producer's sequence numbers, handed out in order of
//! successful sends. A record that cannot be sent waits in the backlog,
//! and every later record queues behind it, so the ticket it will get is
//! known at once: the producer's last ticket plus its place in the
//! backlog. A durable ACK parks under that ticket like any other and
//! leaves once the record is synced — the reply waits, it is never sent
//! for a lease that is not on disk, and the client need not retransmit.
use crate::lease::journal::{LeaseRecord, Producer};
use std::collections::VecDeque;
use std::time::Instant;

/// Records a worker keeps back at most (about 200 bytes each, allocated
/// at start). Beyond it a durable ACK is dropped (the client retransmits)
/// and a fast-mode record is lost to the journal; both are counted.
pub const BACKLOG: usize = 4096;

/// A worker's producer on the journal and what a full journal means.
pub struct JournalLink {
    producer: Producer,
    /// Durable: an ACK leaves only once its record is synced. Fast: the
    /// ACK leaves at once and the journal trails.
    durable: bool,
    /// With the time each record was made: its stamp in the journal.
    backlog: VecDeque<(Instant, LeaseRecord)>,
}

/// What became of a record handed to [`JournalLink::append`].
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    /// In the journal's channel under this ticket.
    Sent(u64),
    /// In the backlog; it will get this ticket.
    Queued(u64),
    /// Neither: the backlog is full.
    Refused,
}

impl JournalLink {
    pub fn new(producer: Producer, durable: bool) -> JournalLink {
        JournalLink {
            producer,
            durable,
            backlog: VecDeque::with_capacity(BACKLOG),
        }
    }

    pub fn durable(&self) -> bool {
        self.durable
    }

    /// Sends `rec`, behind whatever waits in the backlog. Called once the
    /// decision that made it is taken: its stamp in the journal is read
    /// here, so that a record another worker's decision led to (an
    /// address it released, say), sent before this one could be made,
    /// carries the smaller one (see the journal's comment).
    pub fn append(&mut self, rec: &LeaseRecord) -> Appended {
        let at = Instant::now();
        self.flush();
        if self.backlog.is_empty()
            && let Ok(t) = self.producer.append_at(rec, at)
        {
            return Appended::Sent(t.0);
        }
        if self.backlog.len() == BACKLOG {
            return Appended::Refused;
        }
        self.backlog.push_back((at, *rec));
        Appended::Queued(self.producer.last_ticket().0 + self.backlog.len() as u64)
    }

    /// Sends what the backlog holds, in order, as far as the channel takes
    /// it.
    pub fn flush(&mut self) {
        while let Some((at, r)) = self.backlog.front() {
            if self.producer.append_at(r, *at).is_err() {
                break;
            }
            self.backlog.pop_front();
        }
    }

    /// Records still waiting to be sent.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Every ticket up to this one is safe.
    pub fn durable_seq(&self) -> u64 {
        self.producer.durable_seq()
    }

    pub fn wake_fd(&self) -> std::os::fd::RawFd {
        self.producer.wake_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::journal::tests::{TempDir, sample, wait_until};
    use crate::lease::journal::{Durability, Journal, JournalOptions};

    fn small(dir: &TempDir) -> crate::lease::journal::JournalHandle {
        let opts = JournalOptions {
            capacity: 2,
            ..JournalOptions::default()
        };
        Journal::open(&dir.0, Durability::Durable, opts).unwrap().0
    }

    #[test]
    fn a_full_channel_queues_records_in_order_under_the_tickets_they_get() {
        let d = TempDir::new("backlog");
        let j = small(&d);
        j.hold_groups(true);
        let mut link = JournalLink::new(j.producer().unwrap(), true);
        // Until the channel (2, plus one the writer may hold) is full.
        let mut sent = 0;
        let first_queued = loop {
            match link.append(&sample(sent as u32)) {
                Appended::Sent(t) => {
                    sent += 1;
                    assert_eq!(t, sent);
                    assert!(sent <= 3, "a channel of 2 took {sent}");
                }
                other => break other,
            }
        };
        assert_eq!(first_queued, Appended::Queued(sent + 1));
        for i in 2..=4 {
            assert_eq!(
                link.append(&sample((sent + i - 1) as u32)),
                Appended::Queued(sent + i)
            );
        }
        // The writer may take one record from the channel late (it then
        // stops at the gate), letting the front of the backlog through.
        assert!((3..=4).contains(&link.backlog()), "{}", link.backlog());
        assert_eq!(link.durable_seq(), 0);
        j.hold_groups(false);
        let last = sent + 4;
        wait_until("backlog synced", || {
            link.flush();
            link.durable_seq() >= last
        });
        assert_eq!(link.backlog(), 0);
        drop(link);
        j.close().unwrap();
        let (j, rec) = Journal::open(&d.0, Durability::Durable, JournalOptions::default()).unwrap();
        let addrs: Vec<_> = rec.leases.iter().map(|r| r.addr).collect();
        let want: Vec<_> = (0..last as u32).map(|i| sample(i).addr).collect();
        assert_eq!(addrs, want, "every record, in order");
        j.close().unwrap();
    }

    #[test]
    fn a_full_backlog_refuses() {
        let d = TempDir::new("backlog-full");
        let j = small(&d);
        j.hold_groups(true);
        let mut link = JournalLink::new(j.producer().unwrap(), true);
        for i in 0.. {
            if link.append(&sample(i)) == Appended::Refused {
                break;
            }
        }
        assert_eq!(
            link.backlog(),
            BACKLOG,
            "refused only once the backlog is full"
        );
        j.hold_groups(false);
        drop(link);
        j.close().unwrap();
    }
}
