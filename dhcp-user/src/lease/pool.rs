//! A pool of addresses as a bitmap of atomic words: bit set = taken.
//!
//! Allocation takes the lowest free address (what operators expect and
//! what keeps a pool packed) with a compare-and-swap on one word; no lock.
//! A summary level (one bit per word, set = "word looks full") lets the
//! search skip full stretches, so a /8 is not scanned word by word.
//!
//! The summary is a hint kept honest by ordering: whoever frees a bit
//! clears the word's summary bit afterwards, and whoever marks a word full
//! re-reads the word afterwards and undoes the mark if a bit came free in
//! between. A summary bit may therefore say "not full" of a full word
//! (costs a look), never "full" of a word with a free bit for longer than
//! that re-check.
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire};

/// Contiguous ranges of addresses mapped onto one run of bit indices.
#[derive(Debug)]
pub struct Pool {
    /// (first address, number of addresses, index of the first address)
    ranges: Box<[(u32, u32, u32)]>,
    words: Box<[AtomicU64]>,
    summary: Box<[AtomicU64]>,
    size: u32,
}

impl Pool {
    /// A pool over inclusive ranges (sorted, not overlapping).
    pub fn new(ranges: &[(Ipv4Addr, Ipv4Addr)]) -> Pool {
        let mut out = Vec::with_capacity(ranges.len());
        let mut size: u64 = 0;
        for &(a, b) in ranges {
            let (a, b) = (u32::from(a), u32::from(b));
            let n = u64::from(b - a) + 1;
            out.push((a, n as u32, size as u32));
            size += n;
        }
        assert!(
            size <= u64::from(u32::MAX),
            "pool larger than the IPv4 space"
        );
        let size = size as u32;
        let nwords = (size as usize).div_ceil(64);
        let words: Box<[AtomicU64]> = (0..nwords)
            .map(|w| {
                // Bits past the end of the pool are born taken.
                let used_from = (size as usize).saturating_sub(w * 64);
                AtomicU64::new(if used_from >= 64 {
                    0
                } else {
                    !0u64 << used_from
                })
            })
            .collect();
        let summary = (0..nwords.div_ceil(64))
            .map(|_| AtomicU64::new(0))
            .collect();
        Pool {
            ranges: out.into_boxed_slice(),
            words,
            summary,
            size,
        }
    }

    /// Number of addresses in the pool.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Bit index of an address, if it is in the pool.
    pub fn index_of(&self, addr: Ipv4Addr) -> Option<u32> {
        let a = u32::from(addr);
        self.ranges
            .iter()
            .find(|&&(first, n, _)| a.wrapping_sub(first) < n)
            .map(|&(first, _, base)| base + (a - first))
    }

    /// Address of a bit index.
    pub fn addr_of(&self, index: u32) -> Ipv4Addr {
        let &(first, _, base) = self
            .ranges
            .iter()
            .rev()
            .find(|&&(_, _, base)| base <= index)
            .expect("index below the first range");
        Ipv4Addr::from(first + (index - base))
    }

    /// Takes the lowest free address.
    pub fn allocate(&self) -> Option<Ipv4Addr> {
        for (si, s) in self.summary.iter().enumerate() {
            let mut hint = s.load(Acquire);
            while hint != u64::MAX {
                let wi = si * 64 + (!hint).trailing_zeros() as usize;
                if wi >= self.words.len() {
                    return None;
                }
                if let Some(bit) = self.take_lowest_in(wi) {
                    return Some(self.addr_of((wi * 64 + bit as usize) as u32));
                }
                // The word is full: say so in the summary, then look again
                // in case a free raced past the mark.
                s.fetch_or(1 << (wi % 64), AcqRel);
                if self.words[wi].load(Acquire) != u64::MAX {
                    s.fetch_and(!(1 << (wi % 64)), AcqRel);
                    continue;
                }
                hint = s.load(Acquire) | (1 << (wi % 64));
            }
        }
        None
    }

    fn take_lowest_in(&self, wi: usize) -> Option<u32> {
        let w = &self.words[wi];
        let mut cur = w.load(Acquire);
        while cur != u64::MAX {
            let bit = (!cur).trailing_zeros();
            match w.compare_exchange_weak(cur, cur | (1 << bit), AcqRel, Acquire) {
                Ok(_) => return Some(bit),
                Err(now) => cur = now,
            }
        }
        None
    }

    /// Takes a given address if it is in the pool and free.
    pub fn claim(&self, addr: Ipv4Addr) -> bool {
        let Some(i) = self.index_of(addr) else {
            return false;
        };
        let (wi, bit) = ((i / 64) as usize, i % 64);
        let prev = self.words[wi].fetch_or(1 << bit, AcqRel);
        prev & (1 << bit) == 0
    }

    /// Gives an address back. Returns false if it was not taken.
    pub fn release(&self, addr: Ipv4Addr) -> bool {
        let Some(i) = self.index_of(addr) else {
            return false;
        };
        let (wi, bit) = ((i / 64) as usize, i % 64);
        let prev = self.words[wi].fetch_and(!(1 << bit), AcqRel);
        self.summary[wi / 64].fetch_and(!(1 << (wi % 64)), AcqRel);
        prev & (1 << bit) != 0
    }

    /// Whether an address of the pool is taken.
    pub fn is_taken(&self, addr: Ipv4Addr) -> bool {
        self.index_of(addr)
            .is_some_and(|i| self.words[(i / 64) as usize].load(Acquire) & (1 << (i % 64)) != 0)
    }

    /// Number of taken addresses (a moment's view).
    pub fn taken(&self) -> u32 {
        let all: u32 = self
            .words
            .iter()
            .map(|w| w.load(Acquire).count_ones())
            .sum();
        all - (self.words.len() as u32 * 64 - self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn lowest_free_first_across_ranges() {
        let p = Pool::new(&[
            (ip("10.0.0.10"), ip("10.0.0.12")),
            (ip("10.0.1.0"), ip("10.0.1.1")),
        ]);
        assert_eq!(p.size(), 5);
        let got: Vec<_> = std::iter::from_fn(|| p.allocate()).collect();
        assert_eq!(
            got,
            [
                "10.0.0.10",
                "10.0.0.11",
                "10.0.0.12",
                "10.0.1.0",
                "10.0.1.1"
            ]
            .map(ip)
        );
        assert!(p.release(ip("10.0.0.11")));
        assert!(!p.release(ip("10.0.0.11")));
        assert_eq!(p.allocate(), Some(ip("10.0.0.11")));
        assert_eq!(p.taken(), 5);
    }

    #[test]
    fn claim_and_summary_skip_over_full_words() {
        let p = Pool::new(&[(ip("10.0.0.0"), ip("10.0.255.255"))]);
        for _ in 0..65536 {
            assert!(p.allocate().is_some());
        }
        assert_eq!(p.allocate(), None);
        assert!(p.release(ip("10.0.200.7")));
        assert_eq!(p.allocate(), Some(ip("10.0.200.7")));
        assert!(p.release(ip("10.0.3.3")));
        assert!(p.claim(ip("10.0.3.3")));
        assert!(!p.claim(ip("10.0.3.3")));
        assert!(!p.claim(ip("10.1.0.0")));
    }

    #[test]
    fn concurrent_allocations_never_collide() {
        let p = std::sync::Arc::new(Pool::new(&[(ip("10.0.0.0"), ip("10.0.39.255"))]));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    let mut taken = 0u32;
                    while let Some(a) = p.allocate() {
                        mine.push(a);
                        taken += 1;
                        // Every seventh allocation gives one back, so the
                        // threads race over freed bits until the pool fills.
                        if taken.is_multiple_of(7) {
                            let a = mine.swap_remove(mine.len() / 2);
                            assert!(p.release(a));
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<_> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "an address was handed out twice");
        assert_eq!(n as u32, p.taken());
    }
}
