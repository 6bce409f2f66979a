//! One shard of a pool: its bitmap words (bit set = taken) and a
//! two-level summary that finds the lowest word with a free bit without a
//! linear scan: `summary` has one bit per word ("may have a free bit"),
//! `top` one bit per summary word ("may have a set bit"). For a /8 in one
//! shard that is 262,144 words under 4,096 summary words under 64 top
//! words.
//!
//! The summary is a hint kept honest by ordering, at both levels:
//! - whoever frees a bit sets the word's summary bit, then its top bit,
//!   each after the change below it;
//! - whoever finds a word full clears its summary bit, then reads the word
//!   again, and sets the bit back if something came free in between (the
//!   same for a top bit over an empty summary word).
//!
//! Each side writes one location and then reads the other's (a
//! store-load pattern), which only sequentially consistent operations keep
//! apart: with SeqCst either the marker's re-read sees the free, or the
//! freer's write to the summary comes after the mark. That is also what
//! lets a freer skip the write when its load already sees the bit set.
//! SeqCst costs nothing extra here: on x86-64 and AArch64 the
//! read-modify-writes are the same instructions as AcqRel and the loads
//! are plain acquire loads.
//!
//! So a hint may say "free" of a full word (costs a look), and says "full"
//! of a word with a free bit only for the moment before a re-check.
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

const FULL: u64 = u64::MAX;
const PER_LINE: usize = 16;

/// Two cache lines of words: the adjacent-line prefetcher pulls lines in
/// pairs, so this is the unit two shards must never share.
#[repr(align(128))]
struct Line([AtomicU64; PER_LINE]);

/// Atomic words in whole [`Line`]s, so that no two shards (and no shard
/// and anything else) write the same cache line.
struct Words(Box<[Line]>);

impl Words {
    fn new(n: usize, init: impl Fn(usize) -> u64) -> Words {
        Words(
            (0..n.div_ceil(PER_LINE))
                .map(|l| {
                    Line(std::array::from_fn(|i| {
                        let at = l * PER_LINE + i;
                        AtomicU64::new(if at < n { init(at) } else { 0 })
                    }))
                })
                .collect(),
        )
    }

    #[inline]
    fn at(&self, i: usize) -> &AtomicU64 {
        &self.0[i / PER_LINE].0[i % PER_LINE]
    }
}

/// Spins for about a microsecond (test builds only), long enough for
/// another core to free a bit in the middle of a mark.
#[cfg(test)]
fn widen_race() {
    for _ in 0..256 {
        std::hint::spin_loop();
    }
}

pub(super) struct Shard {
    words: Words,
    summary: Words,
    top: Words,
    nwords: usize,
    ntop: usize,
}

impl Shard {
    /// A shard of `nwords` words, word `j` born as `init(j)`.
    pub(super) fn new(nwords: usize, init: impl Fn(usize) -> u64) -> Shard {
        let words = Words::new(nwords, &init);
        let nsummary = nwords.div_ceil(64);
        let summary = Words::new(nsummary, |k| {
            (k * 64..nwords.min(k * 64 + 64))
                .filter(|&j| init(j) != FULL)
                .fold(0, |acc, j| acc | 1 << (j % 64))
        });
        let ntop = nsummary.div_ceil(64);
        let top = Words::new(ntop, |t| {
            (t * 64..nsummary.min(t * 64 + 64))
                .filter(|&k| summary.at(k).load(SeqCst) != 0)
                .fold(0, |acc, k| acc | 1 << (k % 64))
        });
        Shard {
            words,
            summary,
            top,
            nwords,
            ntop,
        }
    }

    /// Takes the lowest free bit: (word in this shard, bit in the word).
    pub(super) fn take(&self) -> Option<(usize, u32)> {
        for t in 0..self.ntop {
            loop {
                let top = self.top.at(t).load(SeqCst);
                if top == 0 {
                    break;
                }
                let k = t * 64 + top.trailing_zeros() as usize;
                if let Some(got) = self.take_under(k) {
                    return Some(got);
                }
                self.mark_empty(k);
            }
        }
        None
    }

    /// Takes the lowest free bit among the words of summary word `k`;
    /// None once that summary word says all of them are full.
    fn take_under(&self, k: usize) -> Option<(usize, u32)> {
        loop {
            let hint = self.summary.at(k).load(SeqCst);
            if hint == 0 {
                return None;
            }
            let j = k * 64 + hint.trailing_zeros() as usize;
            let w = self.words.at(j);
            let mut cur = w.load(SeqCst);
            while cur != FULL {
                let bit = (!cur).trailing_zeros();
                match w.compare_exchange_weak(cur, cur | 1 << bit, SeqCst, SeqCst) {
                    Ok(_) => return Some((j, bit)),
                    Err(now) => cur = now,
                }
            }
            self.mark_full(j);
        }
    }

    // Cold, like mark_empty: a word fills once per 64 takes, and kept out
    // of line the take loop around it stays short.
    #[cold]
    fn mark_full(&self, j: usize) {
        // Tests widen the window between seeing the word full and marking
        // it, where a free racing past the mark would be lost without the
        // re-check below.
        #[cfg(test)]
        widen_race();
        self.summary.at(j / 64).fetch_and(!(1 << (j % 64)), SeqCst);
        if self.words.at(j).load(SeqCst) != FULL {
            self.hint_free(j);
        }
    }

    #[cold]
    fn mark_empty(&self, k: usize) {
        #[cfg(test)]
        widen_race();
        let top = self.top.at(k / 64);
        top.fetch_and(!(1 << (k % 64)), SeqCst);
        if self.summary.at(k).load(SeqCst) != 0 {
            top.fetch_or(1 << (k % 64), SeqCst);
        }
    }

    /// Says word `j` may have a free bit, at both levels. The loads first
    /// keep the common case (the hint is already set) a read of a shared
    /// line instead of a write that bounces it between cores.
    fn hint_free(&self, j: usize) {
        let (k, t) = (j / 64, j / 4096);
        let s = self.summary.at(k);
        if s.load(SeqCst) & 1 << (j % 64) == 0 {
            s.fetch_or(1 << (j % 64), SeqCst);
        }
        let top = self.top.at(t);
        if top.load(SeqCst) & 1 << (k % 64) == 0 {
            top.fetch_or(1 << (k % 64), SeqCst);
        }
    }

    /// Sets a bit; true if it was free.
    pub(super) fn claim(&self, j: usize, bit: u32) -> bool {
        self.words.at(j).fetch_or(1 << bit, SeqCst) & 1 << bit == 0
    }

    /// Clears a bit; true if it was taken.
    pub(super) fn release(&self, j: usize, bit: u32) -> bool {
        let was = self.words.at(j).fetch_and(!(1 << bit), SeqCst) & 1 << bit != 0;
        // A bit that was already free is its earlier freer's to announce.
        if was {
            self.hint_free(j);
        }
        was
    }

    pub(super) fn is_taken(&self, j: usize, bit: u32) -> bool {
        self.words.at(j).load(SeqCst) & 1 << bit != 0
    }

    /// Set bits in the words of this shard (a moment's view).
    pub(super) fn ones(&self) -> u64 {
        (0..self.nwords)
            .map(|j| u64::from(self.words.at(j).load(SeqCst).count_ones()))
            .sum()
    }
}
