//! Memory and recovery at scale: binds 1,000,000 leases through the
//! engine (with the journal in fast mode on a disk-backed directory),
//! prints the process RSS before and after, then reopens the journal and
//! restores the leases into a fresh engine, printing how long that took.
//! The lease table is allocated whole at start (`max_clients`, derived
//! from the pools here), so its part of the RSS is there before the
//! first lease.
//!
//! AYA_BUILD_SKIP=1 cargo bench --bench memory

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use xdhcp::config::Config;
use xdhcp::engine::{Clock, Engine, JournalLink};
use xdhcp::handler::{FrameHandler, TX_FRAME_CAPACITY};
use xdhcp::lease::journal::{Durability, Journal, JournalOptions};
use xdhcp::lease::table::{SHARDS, SWEEP_CHUNK};
use xdhcp::stats::WorkerStats;

#[path = "../tests/frames/mod.rs"]
mod frames;

const LEASES: u32 = 1_000_000;
const CHADDR: usize = 14 + 20 + 8 + 28;
const YIADDR: usize = 14 + 20 + 8 + 16;

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // and must not spend a minute here.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = std::path::Path::new("/var/tmp").join(format!("xdhcp-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = Config::parse(
        r#"
interface = "bench0"
server_id = "10.0.0.1"
[[subnet]]
prefix = "10.0.0.0/12"
pools = ["10.0.0.10-10.15.255.250"]
routers = ["10.0.0.1"]
lease_time = 10800
"#,
    )
    .unwrap();
    let server = Ipv4Addr::new(10, 0, 0, 1);
    let base = rss_mib();
    let fast = Durability::Fast {
        max_delay: Duration::from_millis(100),
    };
    let (journal, _) = Journal::open(&dir, fast, JournalOptions::default()).unwrap();
    let engine = std::sync::Arc::new(Engine::new(&cfg));
    let mut h = engine
        .handler(
            frames::SERVER_MAC,
            std::sync::Arc::new(WorkerStats::default()),
        )
        .with_journal(JournalLink::new(journal.producer().unwrap(), false));
    let (mut d, mut r) = frames::dora_templates(server);
    let at50 = frames::option50_value(&r);
    let mut tx = vec![0u8; TX_FRAME_CAPACITY];
    let started = Instant::now();
    let mut bound = 0u32;
    for i in 0..LEASES {
        if i % 4096 == 0 {
            h.begin_batch(Instant::now());
        }
        d[CHADDR + 2..CHADDR + 6].copy_from_slice(&i.to_be_bytes());
        r[CHADDR + 2..CHADDR + 6].copy_from_slice(&i.to_be_bytes());
        if h.handle(&d, &mut tx).is_none() {
            continue;
        }
        r[at50..at50 + 4].copy_from_slice(&tx[YIADDR..YIADDR + 4]);
        if h.handle(&r, &mut tx).is_some() {
            bound += 1;
        }
    }
    let took = started.elapsed();
    let after = rss_mib();
    println!(
        "lease table: {} records of {} (max_clients derived from the pools), {:.0} MiB allocated at start",
        engine.leases().len(),
        engine.leases().capacity(),
        engine.leases().footprint() as f64 / (1 << 20) as f64
    );
    // The stats thread counts the table by state every interval: each
    // shard's kept counts, one hold of its lock a shard.
    let t0 = Instant::now();
    let counts = engine.leases().count_by_state();
    let count = t0.elapsed();
    println!(
        "stats count (count_by_state, {} bound): {:.1} µs for the table ({SHARDS} holds, one a shard)",
        counts.bound,
        count.as_secs_f64() * 1e6,
    );
    // The expiry thread's sweep, every 500 ms. Each shard keeps a bound
    // before which nothing in it is due. The first sweep after start (or
    // after a reload) visits every record, a chunk of a shard per hold of
    // its lock (a hold is as long as a worker whose client falls in that
    // shard may wait), and sets the bounds; the next, with nothing due
    // (time 0 of the engine's clock: every lease runs for hours), passes
    // over every shard. Both, side by side.
    let holds = SHARDS
        * engine
            .leases()
            .capacity()
            .div_ceil(SHARDS)
            .div_ceil(SWEEP_CHUNK);
    let t0 = Instant::now();
    let ended_full = engine.expire(0);
    let sweep = t0.elapsed();
    let t0 = Instant::now();
    let ended = engine.expire(0);
    let skipped = t0.elapsed();
    println!(
        "expiry sweep, every shard due (the first after start or a reload, {ended_full} ended): {:.1} ms for the table, {:.1} µs per lock hold on average ({holds} holds of up to {SWEEP_CHUNK} records); the next, nothing due ({ended} ended): {:.1} µs",
        sweep.as_secs_f64() * 1e3,
        sweep.as_secs_f64() * 1e6 / holds as f64,
        skipped.as_secs_f64() * 1e6,
    );
    drop(h);
    journal.close().unwrap();
    let bytes: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "bound {bound} leases in {:.2} s; RSS {base:.0} MiB before, {after:.0} MiB after ({:.0} MiB for the leases, pool and table); journal {:.0} MiB on disk",
        took.as_secs_f64(),
        after - base,
        bytes as f64 / (1 << 20) as f64
    );

    let started = Instant::now();
    let (journal, recovered) =
        Journal::open(&dir, Durability::Durable, JournalOptions::default()).unwrap();
    let opened = started.elapsed();
    let fresh = Engine::new(&cfg);
    let (restored, _) = fresh.restore(&recovered.leases, Clock::now(&fresh, Instant::now()));
    println!(
        "recovery: journal read in {:.2} s, {restored} leases restored into a fresh engine in {:.2} s in all",
        opened.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    journal.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
