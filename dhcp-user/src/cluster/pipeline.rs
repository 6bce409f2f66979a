//! The publishes in flight, in the order the journal shipped them, so
//! that the durable marks move in each producer's order however the
//! acknowledgements come back.
//!
//! Many publishes are out at once (the group commit of `replicated`: one
//! round trip to the stream's quorum is shared by everything sent in it);
//! an entry leaves the front only when it and everything before it is
//! acknowledged (or, for a record that is not published, at once), and
//! only then may the producer's mark pass it.
use super::payload::NO_SHARE;
use crate::lease::journal::{LeaseRecord, RecordState};
use crate::lease::owner::MAX_SHARES;
use std::collections::VecDeque;

/// Whether a shipped record goes to the stream, and under what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Under this share and claim revision (the fencing token).
    Publish { share: u8, revision: u64 },
    /// Kept in this server's journal only (`local_only`): e.g. the sweeper
    /// expiring a lease of a share another server owns (which expires it
    /// there too).
    Local { share: u8 },
}

/// The publish filter. A record of a share this server holds goes out
/// under the share's claim revision. A record without a holder (a
/// declined address: whoever heard the DECLINE quarantines it) and a
/// release of a share not held go out under no share, never fenced: the
/// engine answers no client's RELEASE for a share it does not own, so such
/// a release is the operator's (the control API's force-free), which every
/// server should learn. Anything else of a share not held stays local.
pub fn route(share: Option<u8>, state: RecordState, held: u32, mine: &[Option<u64>]) -> Route {
    let Some(k) = share else {
        return Route::Publish {
            share: NO_SHARE,
            revision: 0,
        };
    };
    let revision = mine.get(k as usize).copied().flatten();
    match revision {
        Some(r) if held & (1 << k) != 0 => Route::Publish {
            share: k,
            revision: r,
        },
        _ if state == RecordState::Released => Route::Publish {
            share: NO_SHARE,
            revision: 0,
        },
        _ => Route::Local { share: k },
    }
}

/// One shipped record.
#[derive(Clone, Debug)]
pub struct Entry {
    pub producer: u16,
    pub seq: u64,
    pub rec: LeaseRecord,
    pub share: u8,
    pub revision: u64,
    pub state: State,
    /// The cut-off count when it was shipped (see `Control::epoch`).
    pub epoch: u64,
    /// When it reached the cluster thread: a fenced record's mark is moved
    /// past it only once its reply has surely expired at the worker.
    pub shipped: std::time::Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Published, no answer yet.
    InFlight,
    /// Stored by the stream at this sequence.
    Stored(u64),
    /// Not published (`local_only`), or given up (`durable`: peers learn
    /// the address at its next change).
    Settled,
}

#[derive(Default)]
pub struct Pipeline {
    entries: VecDeque<Entry>,
    /// Id of the front entry; ids count up from 0 in push order.
    first: u64,
    in_flight: usize,
    /// Of those in flight, per share (a hand back waits for its share's).
    in_flight_share: [u32; MAX_SHARES as usize],
}

impl Pipeline {
    pub fn push(&mut self, e: Entry) -> u64 {
        if e.state == State::InFlight {
            self.in_flight += 1;
            if let Some(n) = self.in_flight_share.get_mut(e.share as usize) {
                *n += 1;
            }
        }
        self.entries.push_back(e);
        self.first + self.entries.len() as u64 - 1
    }

    pub fn get(&self, id: u64) -> Option<&Entry> {
        self.entries.get(id.checked_sub(self.first)? as usize)
    }

    /// The answer for entry `id`: stored at `seq`, or settled without.
    pub fn answer(&mut self, id: u64, state: State) {
        let Some(e) = id
            .checked_sub(self.first)
            .and_then(|i| self.entries.get_mut(i as usize))
        else {
            return;
        };
        if e.state == State::InFlight && state != State::InFlight {
            self.in_flight -= 1;
            if let Some(n) = self.in_flight_share.get_mut(e.share as usize) {
                *n -= 1;
            }
        }
        e.state = state;
    }

    /// Takes the answered entries off the front while `may_pass` lets
    /// them, and gives the furthest sequence per producer passed (the
    /// marks to move), in the order first passed.
    pub fn drain(&mut self, mut may_pass: impl FnMut(&Entry) -> bool) -> Vec<(u16, u64)> {
        let mut marks: Vec<(u16, u64)> = Vec::new();
        while let Some(e) = self.entries.front() {
            if e.state == State::InFlight || !may_pass(e) {
                break;
            }
            match marks.iter_mut().find(|(p, _)| *p == e.producer) {
                Some(m) => m.1 = m.1.max(e.seq),
                None => marks.push((e.producer, e.seq)),
            }
            self.entries.pop_front();
            self.first += 1;
        }
        marks
    }

    /// Publishes without an answer yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Publishes of records of `share` without an answer yet.
    pub fn in_flight_of(&self, share: u8) -> u32 {
        self.in_flight_share
            .get(share as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Entries shipped and not yet passed (answered or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a record of the same address was shipped after entry `id`:
    /// a failed publish of `id` is then not sent again, the newer one
    /// carries the address (sent again, `id` would land after it, and
    /// readers apply records in stream order).
    pub fn superseded(&self, id: u64) -> bool {
        let Some(i) = id.checked_sub(self.first) else {
            return true;
        };
        let Some(e) = self.entries.get(i as usize) else {
            return true;
        };
        let slot = (e.rec.subnet, e.rec.addr);
        self.entries
            .iter()
            .skip(i as usize + 1)
            .any(|n| (n.rec.subnet, n.rec.addr) == slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::payload::tests::record;

    fn entry(producer: u16, seq: u64, i: u32, state: State) -> Entry {
        Entry {
            producer,
            seq,
            rec: record(i),
            share: 0,
            revision: 1,
            state,
            epoch: 0,
            shipped: std::time::Instant::now(),
        }
    }

    #[test]
    fn marks_move_in_order_as_acks_come_back_out_of_order() {
        let mut p = Pipeline::default();
        let a = p.push(entry(0, 1, 1, State::InFlight));
        let b = p.push(entry(1, 1, 2, State::InFlight));
        let c = p.push(entry(0, 2, 3, State::Settled));
        let d = p.push(entry(0, 3, 4, State::InFlight));
        assert_eq!(p.in_flight(), 3);
        assert_eq!((p.in_flight_of(0), p.in_flight_of(1)), (3, 0));
        // The last ack first: nothing moves, the front still waits.
        p.answer(d, State::Stored(40));
        assert!(p.drain(|_| true).is_empty());
        p.answer(b, State::Stored(20));
        assert!(p.drain(|_| true).is_empty());
        p.answer(a, State::Stored(10));
        assert_eq!(p.drain(|_| true), vec![(0, 3), (1, 1)]);
        assert!(p.is_empty());
        assert_eq!(p.in_flight(), 0);
        assert_eq!(p.in_flight_of(0), 0);
        let _ = c;
    }

    #[test]
    fn a_refused_entry_holds_everything_behind_it() {
        let mut p = Pipeline::default();
        let a = p.push(entry(0, 1, 1, State::InFlight));
        let b = p.push(entry(0, 2, 2, State::InFlight));
        p.answer(a, State::Stored(5));
        p.answer(b, State::Stored(6));
        assert!(p.drain(|e| e.seq != 1).is_empty());
        assert_eq!(p.len(), 2);
        assert_eq!(p.drain(|_| true), vec![(0, 2)]);
        // Answers for ids already gone are ignored.
        p.answer(a, State::Stored(5));
        assert!(p.get(a).is_none());
    }

    #[test]
    fn the_publish_filter() {
        let mine = [Some(7), None];
        let p = |share, revision| Route::Publish { share, revision };
        assert_eq!(route(Some(0), RecordState::Bound, 0b01, &mine), p(0, 7));
        // Acquiring (revision known, bit not yet set): local.
        assert_eq!(
            route(Some(0), RecordState::Bound, 0b00, &mine),
            Route::Local { share: 0 }
        );
        assert_eq!(
            route(Some(1), RecordState::Expired, 0b01, &mine),
            Route::Local { share: 1 }
        );
        assert_eq!(
            route(Some(1), RecordState::Released, 0b01, &mine),
            p(NO_SHARE, 0)
        );
        assert_eq!(route(None, RecordState::Declined, 0, &mine), p(NO_SHARE, 0));
    }

    #[test]
    fn a_later_record_of_the_same_address_supersedes() {
        let mut p = Pipeline::default();
        let a = p.push(entry(0, 1, 1, State::InFlight));
        let b = p.push(entry(0, 2, 2, State::InFlight));
        assert!(!p.superseded(a));
        p.push(entry(1, 1, 1, State::InFlight));
        assert!(p.superseded(a));
        assert!(!p.superseded(b));
    }
}
