//! A pool of addresses as bitmaps of atomic words (bit set = taken), split
//! into shards so that workers allocating at once do not fight over the
//! same words. No lock anywhere: a compare-and-swap on one word takes an
//! address.
//!
//! The shards are interleaved word by word: word `w` (addresses
//! `64w..64w+63` of the pool) belongs to shard `w % shards`. Each shard
//! hands out its lowest free word first, so with one worker per shard the
//! pool still fills from the bottom, and with one shard allocation is
//! exactly lowest-free-first (what operators expect, and what keeps a pool
//! packed). A worker allocates from its home shard and steals from the
//! others, in order, only when its own runs dry.
//!
//! The interleave is only in the numbering: each shard keeps its words in
//! its own memory, so two workers never write the same cache line (words
//! 0 and 1 would share one if stored side by side).
mod ranges;
mod shard;
#[cfg(test)]
mod tests;

use ranges::Ranges;
use shard::Shard;
use std::fmt;
use std::net::Ipv4Addr;

/// Fewest words (of 64 addresses) a shard gets from [`Pool::new`].
///
/// Sharding buys freedom from contention and costs exact
/// lowest-free-first order (several workers each take the bottom of their
/// own shard). Below 4,096 addresses per shard the trade is a bad one: such
/// a pool fills within milliseconds at line rate, after which it only
/// hands out what comes back, so contention on it is short and rare, while
/// its order is what an operator reads in the lease list. 64 words is also
/// one summary word, the unit the search skips by.
const MIN_WORDS_PER_SHARD: usize = 64;

pub struct Pool {
    ranges: Ranges,
    shards: Box<[Shard]>,
    /// Cluster shares the words are split into (1 on a server of its
    /// own): word `w` is share `w % shares`, and the shard count is a
    /// multiple of it (or one shard per word), so shard `s` holds words of
    /// share `s % shares` only (see [`super::owner`]).
    shares: u32,
    /// Bits past the end of the pool in the last word, born taken.
    padding: u32,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("ranges", &self.ranges)
            .field("shards", &self.shards.len())
            .field("taken", &self.taken())
            .finish()
    }
}

impl Pool {
    /// A pool over inclusive ranges for `workers` allocating workers: one
    /// shard each (worker `w` passes `w` to [`Pool::allocate_from`]), but
    /// no shard under [`MIN_WORDS_PER_SHARD`] words. One worker gets one
    /// shard, so its pool is handed out exactly lowest-free-first.
    pub fn new(ranges: &[(Ipv4Addr, Ipv4Addr)], workers: usize) -> Pool {
        Pool::split(ranges, workers, 1)
    }

    /// A pool whose words are split into `shares` cluster shares (word
    /// `w` is share `w % shares`), each sharded for `workers` workers like
    /// [`Pool::new`]: `shares` × that many shards, so that every shard
    /// holds the words of one share. A pool of fewer words than shares
    /// gets one shard per word (the shares past its last word have no
    /// address in it).
    pub fn split(ranges: &[(Ipv4Addr, Ipv4Addr)], workers: usize, shares: u8) -> Pool {
        let ranges = Ranges::new(ranges);
        let words = (ranges.size() as usize).div_ceil(64);
        let shares = usize::from(shares.max(1));
        let shards = if words < shares {
            words
        } else {
            shares * workers.min(words / shares / MIN_WORDS_PER_SHARD).max(1)
        };
        let mut pool = Pool::build(ranges, shards);
        pool.shares = shares as u32;
        pool
    }

    /// A pool over inclusive ranges split into `shards` shards (at least
    /// one, at most one per word of the pool). Ranges may come in any
    /// order; overlapping ones are merged.
    pub fn with_shards(ranges: &[(Ipv4Addr, Ipv4Addr)], shards: usize) -> Pool {
        Pool::build(Ranges::new(ranges), shards)
    }

    fn build(ranges: Ranges, shards: usize) -> Pool {
        let size = ranges.size() as usize;
        let nwords = size.div_ceil(64);
        let n = shards.clamp(1, nwords.max(1));
        let shards = (0..n)
            .map(|s| {
                Shard::new((nwords.saturating_sub(s)).div_ceil(n), |j| {
                    let w = j * n + s;
                    // Bits past the end of the pool are born taken.
                    let free = size.saturating_sub(w * 64);
                    if free >= 64 { 0 } else { !0 << free }
                })
            })
            .collect();
        Pool {
            padding: (nwords * 64 - size) as u32,
            ranges,
            shards,
            shares: 1,
        }
    }

    /// Number of addresses in the pool.
    pub fn size(&self) -> u32 {
        self.ranges.size()
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Bit index of an address, if it is in the pool.
    #[inline]
    pub fn index_of(&self, addr: Ipv4Addr) -> Option<u32> {
        self.ranges.index_of(addr)
    }

    /// Address of a bit index (below [`Pool::size`]).
    #[inline]
    pub fn addr_of(&self, index: u32) -> Ipv4Addr {
        self.ranges.addr_of(index)
    }

    /// Takes the lowest free address of shard 0, else of the others.
    pub fn allocate(&self) -> Option<Ipv4Addr> {
        self.allocate_from(0)
    }

    /// Takes the lowest free address of shard `home % shards`; when that
    /// shard is full, of the next shard that is not, in order.
    pub fn allocate_from(&self, home: usize) -> Option<Ipv4Addr> {
        self.allocate_owned(home, u32::MAX)
    }

    /// [`Pool::allocate_from`] over the shards of the shares in `owned`
    /// (bit k: share k) only. Worker `home` starts in its own shard of the
    /// first owned share, so workers of one server keep apart as they do
    /// without shares.
    #[inline]
    pub fn allocate_owned(&self, home: usize, owned: u32) -> Option<Ipv4Addr> {
        let n = self.shards.len();
        let shares = self.shares as usize;
        let per_share = (n / shares).max(1);
        let h = ((home % per_share) * shares) % n;
        (h..n).chain(0..h).find_map(|s| {
            if owned & (1 << (s % shares)) == 0 {
                return None;
            }
            let (j, bit) = self.shards[s].take()?;
            Some(self.addr_of(((j * n + s) * 64) as u32 + bit))
        })
    }

    /// The cluster share an address of the pool belongs to.
    #[inline]
    pub fn share_of(&self, addr: Ipv4Addr) -> Option<u8> {
        let i = self.index_of(addr)?;
        Some(((i / 64) % self.shares) as u8)
    }

    /// Takes a given address if it is in the pool, free, and of a share in
    /// `owned`: a server never takes an address another may be handing
    /// out at the same moment.
    #[inline]
    pub fn claim_owned(&self, addr: Ipv4Addr, owned: u32) -> bool {
        self.share_of(addr)
            .is_some_and(|k| owned & (1 << k) != 0 && self.claim(addr))
    }

    /// The shard, its word and the bit of an address of the pool.
    #[inline]
    fn locate(&self, addr: Ipv4Addr) -> Option<(&Shard, usize, u32)> {
        let i = self.index_of(addr)?;
        let n = self.shards.len() as u32;
        let w = i / 64;
        Some((&self.shards[(w % n) as usize], (w / n) as usize, i % 64))
    }

    /// Takes a given address if it is in the pool and free.
    pub fn claim(&self, addr: Ipv4Addr) -> bool {
        self.locate(addr).is_some_and(|(s, j, bit)| s.claim(j, bit))
    }

    /// Gives an address back. Returns false if it was not taken.
    pub fn release(&self, addr: Ipv4Addr) -> bool {
        self.locate(addr)
            .is_some_and(|(s, j, bit)| s.release(j, bit))
    }

    /// Whether an address of the pool is taken.
    pub fn is_taken(&self, addr: Ipv4Addr) -> bool {
        self.locate(addr)
            .is_some_and(|(s, j, bit)| s.is_taken(j, bit))
    }

    /// Number of taken addresses (a moment's view).
    pub fn taken(&self) -> u32 {
        let ones: u64 = self.shards.iter().map(Shard::ones).sum();
        (ones - u64::from(self.padding)) as u32
    }
}
