//! The fencing rule, the same for every reader of the stream.
//!
//! Walking the stream in order, each share's markers are remembered (the
//! stream sequence and the claim revision). A record of share k made under
//! a revision older than a marker of k that precedes it was made by an
//! owner that had already lost k: it is fenced (counted, never applied).
//!
//! The stream keeps every message for `retention` (`max_age`), oldest
//! first out, and `retention` is longer than any lease lasts
//! (`config::cluster`). So a full read in order sees each address's
//! records in the order they were made, and ends with the newest. A marker
//! ages out before the records after it. A record fenced by it and read
//! once the marker is gone would count as valid, but by then it describes
//! a lease that is over: the fenced record was made before its maker knew
//! it lost the share, so before the marker was published, and every lease
//! ends within the longest lease time of being made.

/// Markers remembered per share: more than the takeovers a server lives
/// through between two records of one share.
const KEPT: usize = 16;

/// The markers seen so far, per share.
#[derive(Clone, Debug, Default)]
pub struct Fence {
    /// Per share: `(stream sequence, revision)`, in stream order.
    markers: Vec<Vec<(u64, u64)>>,
}

/// What the walk says of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// A marker at this sequence with this newer revision precedes it.
    Fenced {
        marker_seq: u64,
        revision: u64,
    },
}

impl Fence {
    /// A marker of `share` under `revision` at stream sequence `seq`.
    pub fn marker(&mut self, share: u8, seq: u64, revision: u64) {
        let k = share as usize;
        if self.markers.len() <= k {
            self.markers.resize(k + 1, Vec::new());
        }
        let m = &mut self.markers[k];
        if m.len() == KEPT {
            m.remove(0);
        }
        m.push((seq, revision));
    }

    /// The record of `share`, made under `revision`, at stream sequence
    /// `seq`. Markers after `seq` (the walk has gone past it, as when a
    /// replicated ACK is checked after the fact) do not count.
    pub fn check(&self, share: u8, revision: u64, seq: u64) -> Verdict {
        let Some(m) = self.markers.get(share as usize) else {
            return Verdict::Valid;
        };
        match m
            .iter()
            .filter(|(s, r)| *s < seq && *r > revision)
            .max_by_key(|(_, r)| *r)
        {
            Some(&(marker_seq, revision)) => Verdict::Fenced {
                marker_seq,
                revision,
            },
            None => Verdict::Valid,
        }
    }

    /// The latest marker of `share`: `(sequence, revision)`.
    pub fn latest(&self, share: u8) -> Option<(u64, u64)> {
        self.markers.get(share as usize)?.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_older_than_a_preceding_marker_is_fenced() {
        let mut f = Fence::default();
        // Nothing known about share 1: valid.
        assert_eq!(f.check(1, 3, 10), Verdict::Valid);
        f.marker(1, 10, 5);
        // The owner under revision 5 itself: valid.
        assert_eq!(f.check(1, 5, 11), Verdict::Valid);
        // The old owner (revision 3) after the marker: fenced.
        assert_eq!(
            f.check(1, 3, 12),
            Verdict::Fenced {
                marker_seq: 10,
                revision: 5
            }
        );
        // Before the marker it was still the owner: valid.
        assert_eq!(f.check(1, 3, 9), Verdict::Valid);
        // Other shares are not touched by share 1's markers.
        assert_eq!(f.check(0, 3, 12), Verdict::Valid);
        // A hand back and a new takeover: each marker fences from its place.
        f.marker(1, 20, 8);
        assert_eq!(f.check(1, 5, 15), Verdict::Valid);
        assert_eq!(
            f.check(1, 5, 21),
            Verdict::Fenced {
                marker_seq: 20,
                revision: 8
            }
        );
        assert_eq!(f.latest(1), Some((20, 8)));
        assert_eq!(f.latest(2), None);
    }

    #[test]
    fn only_the_last_markers_are_kept() {
        let mut f = Fence::default();
        for i in 0..(KEPT as u64 + 5) {
            f.marker(0, 100 + i, 10 + i);
        }
        assert_eq!(f.markers[0].len(), KEPT);
        assert_eq!(
            f.latest(0),
            Some((100 + KEPT as u64 + 4, 10 + KEPT as u64 + 4))
        );
        assert!(matches!(f.check(0, 1, 1000), Verdict::Fenced { .. }));
    }
}
