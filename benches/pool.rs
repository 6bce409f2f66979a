//! Allocations per second: the sharded bitmap pool beside a free list in a
//! `Mutex<BTreeSet>` doing the same work, on 1 and 2 threads, in one
//! criterion group so the ratio comes from one run.
//!
//! Each iteration is one allocation (lowest free address) and one release
//! of an address held at random, on a pool kept half full: frees land all
//! over the taken part, so the search always has holes to find.
//!
//! cargo bench --bench pool
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use xdhcp::lease::Pool;

/// What both sides offer: lowest free first, and give back.
trait Alloc: Sync {
    fn take(&self, home: usize) -> Option<u32>;
    fn give(&self, i: u32);
}

impl Alloc for Pool {
    fn take(&self, home: usize) -> Option<u32> {
        self.allocate_from(home).map(u32::from)
    }
    fn give(&self, i: u32) {
        assert!(self.release(Ipv4Addr::from(i)));
    }
}

/// The baseline: free addresses in an ordered set behind one lock.
struct Locked(Mutex<BTreeSet<u32>>);

impl Locked {
    fn new(first: u32, n: u32) -> Locked {
        Locked(Mutex::new((first..first + n).collect()))
    }
}

impl Alloc for Locked {
    fn take(&self, _: usize) -> Option<u32> {
        self.0.lock().unwrap().pop_first()
    }
    fn give(&self, i: u32) {
        assert!(self.0.lock().unwrap().insert(i));
    }
}

/// xorshift: cheap, the same cost on both sides.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A pool half taken, what each of `threads` threads holds.
fn half_full(a: &impl Alloc, size: u32, threads: usize) -> Vec<Vec<u32>> {
    let mut held: Vec<Vec<u32>> = vec![Vec::new(); threads];
    for i in 0..size as usize / 2 {
        let t = i % threads;
        held[t].push(a.take(t).expect("a free address"));
    }
    // Give back a random half of it and take as much again, so the taken
    // part is full of holes from the start.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for h in &mut held {
        for _ in 0..h.len() / 2 {
            let at = rng.below(h.len());
            a.give(h.swap_remove(at));
        }
    }
    for (t, h) in held.iter_mut().enumerate() {
        while h.len() < size as usize / 2 / threads {
            h.push(a.take(t).expect("a free address"));
        }
    }
    held
}

/// `iters` allocate+release pairs split over the threads; the time of
/// the slowest, so one iteration is one allocation of the whole.
fn run(a: &impl Alloc, held: &mut [Vec<u32>], iters: u64) -> Duration {
    let threads = held.len();
    let per = iters.div_ceil(threads as u64);
    std::thread::scope(|s| {
        let workers: Vec<_> = held
            .iter_mut()
            .enumerate()
            .map(|(t, mine)| {
                s.spawn(move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 + t as u64);
                    let start = Instant::now();
                    for _ in 0..per {
                        let got = a.take(t).expect("a half-full pool has room");
                        let at = rng.below(mine.len());
                        a.give(std::mem::replace(&mut mine[at], black_box(got)));
                    }
                    start.elapsed()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .max()
            .unwrap()
    })
}

fn bench_one(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    threads: usize,
    a: &impl Alloc,
    size: u32,
) {
    let mut held = half_full(a, size, threads);
    c.bench_function(BenchmarkId::new(name, format!("{threads}t")), |b| {
        b.iter_custom(|iters| run(a, &mut held, iters))
    });
}

fn alloc_release(c: &mut Criterion) {
    let first = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    let range = |n: u32| [(Ipv4Addr::from(first), Ipv4Addr::from(first + n - 1))];

    // A /16, the size of a busy city subnet.
    let size = 1 << 16;
    let mut g = c.benchmark_group("pool_slash16");
    g.throughput(Throughput::Elements(1));
    for threads in [1, 2] {
        bench_one(
            &mut g,
            "bitmap",
            threads,
            &Pool::with_shards(&range(size), threads),
            size,
        );
        if threads > 1 {
            bench_one(
                &mut g,
                "bitmap_1shard",
                threads,
                &Pool::with_shards(&range(size), 1),
                size,
            );
        }
        bench_one(
            &mut g,
            "mutex_btreeset",
            threads,
            &Locked::new(first, size),
            size,
        );
    }
    g.finish();

    // A /8: 8 M addresses taken, the search goes through both summary levels.
    let size = 1 << 24;
    let mut g = c.benchmark_group("pool_slash8");
    g.throughput(Throughput::Elements(1));
    for threads in [1, 2] {
        bench_one(
            &mut g,
            "bitmap",
            threads,
            &Pool::with_shards(&range(size), threads),
            size,
        );
        bench_one(
            &mut g,
            "mutex_btreeset",
            threads,
            &Locked::new(first, size),
            size,
        );
    }
    g.finish();
}

criterion_group!(benches, alloc_release);
criterion_main!(benches);
