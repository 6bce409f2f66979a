use super::*;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn range(a: &str, b: &str) -> [(Ipv4Addr, Ipv4Addr); 1] {
    [(ip(a), ip(b))]
}

/// Shard that owns index `i` in a pool of `n` shards.
fn shard_of(i: u32, n: usize) -> usize {
    (i / 64) as usize % n
}

#[test]
fn lowest_free_first_across_ranges() {
    // Given out of order, with an overlap: sorted and merged.
    let p = Pool::new(
        &[
            (ip("10.0.1.0"), ip("10.0.1.1")),
            (ip("10.0.0.10"), ip("10.0.0.11")),
            (ip("10.0.0.11"), ip("10.0.0.12")),
        ],
        4,
    );
    assert_eq!(p.shards(), 1, "a small pool is not sharded");
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
    assert_eq!(p.index_of(ip("10.0.0.9")), None);
    assert_eq!(p.index_of(ip("10.0.0.13")), None);
    assert_eq!(p.index_of(ip("10.0.1.1")), Some(4));
    assert_eq!(p.addr_of(3), ip("10.0.1.0"));
}

#[test]
fn many_ranges_map_both_ways() {
    // 1,000 ranges of 3 addresses, 7 apart.
    let ranges: Vec<_> = (0..1000u32)
        .map(|r| {
            let a = u32::from(ip("10.1.0.0")) + r * 7;
            (Ipv4Addr::from(a), Ipv4Addr::from(a + 2))
        })
        .collect();
    let p = Pool::with_shards(&ranges, 3);
    assert_eq!(p.size(), 3000);
    for i in 0..3000 {
        let a = p.addr_of(i);
        assert_eq!(p.index_of(a), Some(i));
        assert_eq!(u32::from(a), u32::from(ip("10.1.0.0")) + i / 3 * 7 + i % 3);
    }
    assert_eq!(p.index_of(ip("10.1.0.3")), None);
    let p = &p;
    let mut all: Vec<_> = (0..3)
        .flat_map(|h| std::iter::from_fn(move || p.allocate_from(h)))
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3000);
}

#[test]
fn one_shard_is_exactly_lowest_free_first() {
    let p = Pool::with_shards(&range("10.0.0.0", "10.0.15.255"), 1);
    for i in 0..p.size() {
        assert_eq!(p.allocate_from(i as usize), Some(p.addr_of(i)));
    }
    assert_eq!(p.allocate(), None);
    for i in [4095, 700, 64, 63, 3] {
        assert!(p.release(p.addr_of(i)));
    }
    for i in [3, 63, 64, 700, 4095] {
        assert_eq!(p.allocate(), Some(p.addr_of(i)));
    }
}

#[test]
fn several_shards_each_fill_from_their_bottom() {
    let p = Pool::with_shards(&range("10.0.0.0", "10.0.15.255"), 4);
    assert_eq!(p.shards(), 4);
    // One thread, home 1: the words of shard 1 in order, lowest bit first.
    for w in [1u32, 5, 9] {
        for b in 0..64 {
            assert_eq!(p.allocate_from(1), Some(p.addr_of(w * 64 + b)));
        }
    }
    assert!(p.release(p.addr_of(5 * 64 + 17)));
    assert!(p.release(p.addr_of(9 * 64 + 2)));
    assert_eq!(
        p.allocate_from(5),
        Some(p.addr_of(5 * 64 + 17)),
        "home wraps"
    );
    assert_eq!(p.allocate_from(1), Some(p.addr_of(9 * 64 + 2)));
    assert_eq!(p.allocate_from(1), Some(p.addr_of(13 * 64)));

    // One thread taking a word's worth from each home in turn fills the
    // pool exactly from the bottom.
    let p = Pool::with_shards(&range("10.0.0.0", "10.0.15.255"), 4);
    for i in 0..p.size() {
        assert_eq!(p.allocate_from(i as usize / 64), Some(p.addr_of(i)));
    }
    assert_eq!(p.allocate_from(2), None);
}

#[test]
fn a_dry_home_steals_from_the_next_shards() {
    // 16 words, 4 shards of 4 words.
    let p = Pool::with_shards(&range("10.0.0.0", "10.0.3.255"), 4);
    let from_home: Vec<_> = (0..256).map(|_| p.allocate_from(1).unwrap()).collect();
    assert!(
        from_home
            .iter()
            .all(|&a| shard_of(p.index_of(a).unwrap(), 4) == 1)
    );
    // Shard 1 is full: shard 2's lowest, then 3, then 0.
    assert_eq!(p.allocate_from(1), Some(p.addr_of(2 * 64)));
    for s in [2, 3, 0] {
        let mut n = 0;
        while let Some(a) = p.allocate_from(1) {
            let i = p.index_of(a).unwrap();
            if shard_of(i, 4) != s {
                assert!(p.release(a));
                break;
            }
            n += 1;
        }
        assert_eq!(n, if s == 2 { 255 } else { 256 }, "shard {s}");
    }
    assert_eq!(p.taken(), 1024);
    assert_eq!(p.allocate_from(1), None);
    // Freed in shard 3 only: every home finds it.
    let freed = p.addr_of(3 * 64 + 9);
    for h in 0..4 {
        assert!(p.release(freed));
        assert_eq!(p.taken(), 1023);
        assert_eq!(p.allocate_from(h), Some(freed), "home {h}");
    }
}

#[test]
fn exhaustion_returns_none_and_frees_come_back() {
    // 1,000 addresses: the last word is partly outside the pool.
    let p = Pool::with_shards(&range("10.0.0.0", "10.0.3.231"), 3);
    assert_eq!(p.size(), 1000);
    let mut got: Vec<_> = (0..1000).map(|i| p.allocate_from(i % 3).unwrap()).collect();
    for h in 0..3 {
        assert_eq!(p.allocate_from(h), None);
    }
    assert_eq!(p.taken(), 1000);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 1000);
    assert!(got.iter().all(|&a| p.index_of(a).is_some()));
    for i in [999, 500, 64] {
        assert!(p.release(p.addr_of(i)));
    }
    assert_eq!(p.taken(), 997);
    // Each comes back, whichever home asks.
    let mut back: Vec<_> = (0..3).map(|h| p.allocate_from(h).unwrap()).collect();
    back.sort();
    assert_eq!(back, [64, 500, 999].map(|i| p.addr_of(i)));
    assert_eq!(p.allocate(), None);
}

#[test]
fn claim_release_and_is_taken_across_shards() {
    let p = Pool::with_shards(&range("10.0.0.0", "10.0.3.255"), 4);
    // One address in each shard: words 0, 1, 2, 3.
    let claimed = [5, 64 + 6, 128 + 7, 192 + 8].map(|i| p.addr_of(i));
    for &a in &claimed {
        assert!(!p.is_taken(a));
        assert!(p.claim(a));
        assert!(!p.claim(a));
        assert!(p.is_taken(a));
    }
    assert_eq!(p.taken(), 4);
    // Allocation skips claimed addresses.
    for s in 0..4 {
        let got: Vec<_> = (0..64).map(|_| p.allocate_from(s).unwrap()).collect();
        assert!(!got.iter().any(|a| claimed.contains(a)));
        assert_eq!(got[0], p.addr_of(s as u32 * 64));
    }
    assert_eq!(p.taken(), 4 + 4 * 64);
    for &a in &claimed {
        assert!(p.release(a));
        assert!(!p.release(a));
        assert!(!p.is_taken(a));
    }
    // Addresses outside the pool are never taken.
    let out = ip("10.0.4.0");
    assert!(!p.claim(out));
    assert!(!p.release(out));
    assert!(!p.is_taken(out));
}

#[test]
fn empty_pool_has_nothing() {
    let p = Pool::new(&[], 2);
    assert_eq!((p.size(), p.taken(), p.shards()), (0, 0, 1));
    assert_eq!(p.allocate_from(3), None);
    assert!(!p.claim(ip("10.0.0.1")));
}

#[test]
fn default_shard_count() {
    // 64 words (4,096 addresses) or fewer: one shard, whatever the workers.
    assert_eq!(Pool::new(&range("10.0.0.0", "10.0.15.255"), 8).shards(), 1);
    // One shard per worker, as long as each gets 64 words.
    let big = range("10.0.0.0", "10.3.255.255");
    assert_eq!(Pool::new(&big, 1).shards(), 1);
    assert_eq!(Pool::new(&big, 2).shards(), 2);
    assert_eq!(Pool::new(&big, 100).shards(), 64);
    assert_eq!(Pool::new(&big, 0).shards(), 1);
    // Never more shards than words.
    assert_eq!(
        Pool::with_shards(&range("10.0.0.0", "10.0.0.99"), 8).shards(),
        2
    );
}

/// Allocates `n` addresses spreading them over the homes word by word, as
/// workers would, and checks they sit at the bottom of the pool.
fn fill(p: &Pool, n: u32) {
    for i in 0..n {
        let a = p.allocate_from((i / 64) as usize).unwrap();
        assert_eq!(p.index_of(a), Some(i));
    }
}

#[test]
fn slash_8_pool() {
    for shards in [1, 4] {
        let p = Pool::with_shards(&range("10.0.0.0", "10.255.255.255"), shards);
        assert_eq!(p.size(), 1 << 24);
        fill(&p, 100_000);
        assert_eq!(p.taken(), 100_000);
        let freed = [99_999, 99_000, 98_765, 12, 3, 70];
        for i in freed {
            assert!(p.release(p.addr_of(i)));
        }
        // Each freed address is the next one of its shard's home, lowest
        // first; with one shard that is the lowest freed overall.
        let mut order = freed;
        order.sort();
        for i in order {
            assert_eq!(p.allocate_from(shard_of(i, shards)), Some(p.addr_of(i)));
        }
        // The edge of the filled part is in word 1,562 (shard 2 of 4).
        assert_eq!(
            p.allocate_from(shard_of(100_000, shards)),
            Some(p.addr_of(100_000))
        );
        if shards == 4 {
            assert_eq!(p.allocate_from(0), Some(p.addr_of(1564 * 64)));
        }
        // The top of the pool.
        let top = ip("10.255.255.255");
        assert!(p.claim(top));
        assert!(p.is_taken(top));
        assert!(p.release(top));
    }
}

/// A tiny xorshift: the tests need reproducible noise, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A barrier that fails instead of hanging when one of its threads
/// panicked: a failed check must fail the test, not leave the others
/// waiting for a thread that is gone.
struct Meet {
    threads: usize,
    arrived: AtomicUsize,
    round: AtomicUsize,
    failed: AtomicBool,
}

impl Meet {
    fn new(threads: usize) -> Meet {
        Meet {
            threads,
            arrived: AtomicUsize::new(0),
            round: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
        }
    }

    /// True for the last thread to arrive.
    fn wait(&self) -> bool {
        let round = self.round.load(SeqCst);
        if self.arrived.fetch_add(1, SeqCst) + 1 == self.threads {
            self.arrived.store(0, SeqCst);
            self.round.fetch_add(1, SeqCst);
            return true;
        }
        while self.round.load(SeqCst) == round {
            assert!(!self.failed.load(SeqCst), "another thread failed");
            std::thread::yield_now();
        }
        false
    }
}

/// Marks the [`Meet`] failed when the thread holding it unwinds.
struct FailOnPanic<'a>(&'a Meet);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, SeqCst);
        }
    }
}

/// At a moment when no thread is inside the pool: the taken bits are the
/// owned addresses, and allocation finds every other address (a summary
/// that hid a free word would show here; a free announces the word again,
/// so such a loss may not last until the end of the run).
fn check_quiet(p: &Pool, owner: &[AtomicBool]) {
    let owned = owner.iter().filter(|o| o.load(Relaxed)).count();
    assert_eq!(p.taken() as usize, owned);
    let found: Vec<_> = std::iter::from_fn(|| p.allocate()).collect();
    assert_eq!(
        found.len() + owned,
        p.size() as usize,
        "a free address was lost"
    );
    for a in found {
        assert!(!owner[p.index_of(a).unwrap() as usize].load(Relaxed));
        assert!(p.release(a));
    }
}

/// Threads allocate (from their home or all from shard 0), claim and free
/// at random, each keeping what it owns; `owner` says for every index
/// whether some thread owns it, so an address handed out twice is caught
/// at the moment it happens. Frees go by a counter of operations, not by
/// how much a thread holds, so no thread waits on another to give back.
/// Every `QUIET` operations the threads meet at a barrier for
/// [`check_quiet`].
fn stress(ranges: &[(Ipv4Addr, Ipv4Addr)], shards: usize, threads: usize, ops: usize, homes: bool) {
    let p = Pool::with_shards(ranges, shards);
    let owner: Vec<AtomicBool> = (0..p.size()).map(|_| AtomicBool::new(false)).collect();
    let (empty, stolen) = (AtomicU64::new(0), AtomicU64::new(0));
    let quiet = Meet::new(threads);
    const QUIET: usize = 1024;
    let kept: Vec<Vec<Ipv4Addr>> = std::thread::scope(|sc| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (p, owner, empty, stolen, quiet) = (&p, &owner, &empty, &stolen, &quiet);
                sc.spawn(move || {
                    let _fail = FailOnPanic(quiet);
                    let home = if homes { t } else { 0 };
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1234_5678_9abc));
                    let mut mine: Vec<Ipv4Addr> = Vec::new();
                    let take = |a: Ipv4Addr, mine: &mut Vec<Ipv4Addr>| {
                        let i = p.index_of(a).expect("an address of the pool");
                        assert!(
                            !owner[i as usize].swap(true, Relaxed),
                            "{a} handed out twice"
                        );
                        assert!(p.is_taken(a));
                        mine.push(a);
                    };
                    for op in 0..ops {
                        match rng.below(16) {
                            // Slightly more takes than frees: the pool fills
                            // and then churns at the edge of exhaustion.
                            0..=8 => match p.allocate_from(home) {
                                Some(a) => {
                                    if shard_of(p.index_of(a).unwrap(), p.shards())
                                        != home % p.shards()
                                    {
                                        stolen.fetch_add(1, Relaxed);
                                    }
                                    take(a, &mut mine);
                                }
                                None => {
                                    empty.fetch_add(1, Relaxed);
                                }
                            },
                            9 => {
                                let a = p.addr_of(rng.below(p.size() as usize) as u32);
                                if p.claim(a) {
                                    take(a, &mut mine);
                                }
                            }
                            _ if mine.is_empty() => {}
                            _ => {
                                let a = mine.swap_remove(rng.below(mine.len()));
                                owner[p.index_of(a).unwrap() as usize].store(false, Relaxed);
                                assert!(p.release(a), "{a} was owned but free");
                            }
                        }
                        // Every 4,096th operation a thread gives back half
                        // of what it holds, so the pool also drains.
                        if op % 4096 == 4095 {
                            for a in mine.drain(..mine.len() / 2) {
                                owner[p.index_of(a).unwrap() as usize].store(false, Relaxed);
                                assert!(p.release(a));
                            }
                        }
                        if op % QUIET == QUIET - 1 {
                            if quiet.wait() {
                                check_quiet(p, owner);
                            }
                            quiet.wait();
                        }
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut all: Vec<_> = kept.iter().flatten().copied().collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "an address is owned twice");
    assert_eq!(p.taken() as usize, n);
    assert_eq!(owner.iter().filter(|o| o.load(Relaxed)).count(), n);
    assert!(empty.load(Relaxed) > 0, "the pool never ran dry");
    if shards > 1 {
        assert!(stolen.load(Relaxed) > 0, "no thread ever stole");
    }
    check_quiet(&p, &owner);
}

#[test]
fn concurrent_homes_never_hand_out_twice() {
    // 3,000 addresses: 47 words, the last one partial, over 4 shards.
    stress(&range("10.0.0.0", "10.0.11.183"), 4, 4, 200_000, true);
}

#[test]
fn concurrent_one_shard_never_hands_out_twice() {
    // Everyone on the same words: the most compare-and-swap races.
    stress(&range("10.0.0.0", "10.0.7.255"), 1, 4, 200_000, true);
}

#[test]
fn concurrent_shared_home_with_many_ranges() {
    let ranges: Vec<_> = (0..40u32)
        .map(|r| {
            let a = u32::from(ip("10.2.0.0")) + r * 256;
            (Ipv4Addr::from(a + 1), Ipv4Addr::from(a + 100))
        })
        .collect();
    stress(&ranges, 3, 5, 150_000, false);
}

#[test]
fn concurrent_tiny_pool_keeps_its_hints_honest() {
    // Two words, always at the edge of exhaustion: most allocations find
    // a full word and mark it while others free bits in it.
    stress(&range("10.0.0.0", "10.0.0.127"), 2, 4, 300_000, true);
    stress(&range("10.0.0.0", "10.0.0.63"), 1, 4, 300_000, true);
}

#[test]
fn shares_split_the_words_and_never_hand_out_each_others() {
    // A /22 (16 words) split in two shares for two workers: 4 shards,
    // shard s holding words of share s % 2.
    let r = range("10.1.0.0", "10.1.3.255");
    let a = Pool::split(&r, 2, 2);
    let b = Pool::split(&r, 1, 2);
    assert_eq!(
        (a.shards(), b.shards()),
        (2, 2),
        "16 words: one shard per share"
    );
    let big = range("10.0.0.0", "10.0.255.255");
    assert_eq!(Pool::split(&big, 2, 2).shards(), 4);
    assert_eq!(Pool::split(&big, 2, 3).shards(), 6);
    // Server a owns share 0, server b share 1: all of each one's
    // allocations are of its own share, and together they never meet.
    let mut seen = std::collections::HashSet::new();
    for w in 0..4 {
        while let Some(x) = a.allocate_owned(w, 0b01) {
            assert_eq!(a.share_of(x), Some(0));
            assert!(seen.insert(x));
        }
        while let Some(x) = b.allocate_owned(w, 0b10) {
            assert_eq!(b.share_of(x), Some(1));
            assert!(seen.insert(x));
        }
    }
    assert_eq!(seen.len(), 1024, "the two halves make the whole pool");
    // The words of a share are the same whatever the worker count.
    for i in (0..1024).step_by(37) {
        let x = a.addr_of(i);
        assert_eq!(a.share_of(x), b.share_of(x));
        assert_eq!(a.share_of(x), Some(((i / 64) % 2) as u8));
    }
}

#[test]
fn claiming_an_address_of_a_share_not_owned_is_refused() {
    let p = Pool::split(&range("10.1.0.0", "10.1.0.255"), 1, 2);
    let share0 = ip("10.1.0.5");
    let share1 = ip("10.1.0.70");
    assert_eq!((p.share_of(share0), p.share_of(share1)), (Some(0), Some(1)));
    assert!(!p.claim_owned(share1, 0b01));
    assert!(!p.is_taken(share1));
    assert!(p.claim_owned(share0, 0b01));
    assert!(!p.claim_owned(share0, 0b01), "taken already");
    assert!(p.claim_owned(share1, 0b11));
    // Without shares, everything is share 0.
    let one = Pool::new(&range("10.1.0.0", "10.1.0.255"), 1);
    assert_eq!(one.share_of(share1), Some(0));
}

#[test]
fn a_pool_smaller_than_its_shares_gives_each_word_its_own() {
    // One word, three shares: share 0 has it all, the others nothing.
    let p = Pool::split(&range("10.1.0.1", "10.1.0.40"), 2, 3);
    assert_eq!(p.shards(), 1);
    assert_eq!(p.allocate_owned(0, 0b110), None);
    assert_eq!(p.allocate_owned(1, 0b001), Some(ip("10.1.0.1")));
}
