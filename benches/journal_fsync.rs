//! The durable journal's group commit on a real disk: one producer
//! appends a burst of lease records, waits until the writer says they are
//! synced, and does it again for a while. Prints the writer's own fsync
//! p50/p99/max and the latency each burst saw from its first append to
//! its durable mark (write, fdatasync and anything else the writer did
//! meanwhile, such as extending the file), so that a stall outside the
//! fsync shows too.
//!
//! Records cycle over `--addresses` distinct addresses (the lab's 120,000
//! clients by default) and the journal compacts every `--compact-mb`, so
//! the snapshots a busy server writes beside its appends are in the way
//! too, as they are in `cargo xtask bench journal`.
//!
//! cargo bench --bench journal_fsync -- [--dir DIR] [--seconds N] [--burst K]
//!     [--rounds R] [--addresses A] [--compact-mb M]
//!
//! DIR must be on a disk (the default /var/tmp is on Debian); `cargo xtask
//! bench fsync` runs it there and on XFS on a loop device.
use hdrhistogram::Histogram;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use xdhcp::lease::ClientKey;
use xdhcp::lease::journal::{
    Durability, FixedBytes, Journal, JournalOptions, LeaseRecord, RecordState,
};

struct Args {
    dir: PathBuf,
    seconds: u64,
    burst: u32,
    rounds: u32,
    addresses: u32,
    compact_mb: u64,
}

fn args() -> Args {
    let mut a = Args {
        dir: PathBuf::from("/var/tmp"),
        seconds: 10,
        burst: 256,
        rounds: 1,
        addresses: 120_000,
        compact_mb: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--dir" => a.dir = PathBuf::from(v()),
            "--seconds" => a.seconds = v().parse().expect("--seconds N"),
            "--burst" => a.burst = v().parse().expect("--burst K"),
            "--rounds" => a.rounds = v().parse().expect("--rounds R"),
            "--addresses" => a.addresses = v().parse().expect("--addresses A"),
            "--compact-mb" => a.compact_mb = v().parse().expect("--compact-mb M"),
            // What `cargo bench` passes to every harness.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn record(i: u32) -> LeaseRecord {
    let mac = [
        0x02,
        0,
        (i >> 24) as u8,
        (i >> 16) as u8,
        (i >> 8) as u8,
        i as u8,
    ];
    LeaseRecord {
        subnet: 0,
        addr: Ipv4Addr::from(0xc612_0000 | (i & 0x1_ffff)),
        client: ClientKey::new(0, 1, &mac),
        hwaddr: mac,
        state: RecordState::Bound,
        expires_unix: 1_900_000_000,
        cltt_unix: 1_800_000_000,
        hostname: FixedBytes::new(b"host").0,
        agent_info: FixedBytes::default(),
        fqdn_flags: 0,
    }
}

/// Blocks until the eventfd is readable (or 100 ms passed), then resets it.
fn wait(fd: i32) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; an 8-byte read into a u64 from an eventfd.
    unsafe {
        libc::poll(&mut p, 1, 100);
        let mut v = 0u64;
        libc::read(fd, (&mut v as *mut u64).cast(), 8);
    }
}

fn one_round(a: &Args, round: u32) {
    let dir = a
        .dir
        .join(format!("xdhcp-fsync-{}-{round}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = JournalOptions {
        compact_after_bytes: a.compact_mb << 20,
        // The sync path alone, comparable with runs before the gather
        // existed: each burst would otherwise land in the writer's wait
        // after the last one's group (the gather is measured in the lab).
        durable_gather: Duration::ZERO,
        ..JournalOptions::default()
    };
    let (j, _) = Journal::open(&dir, Durability::Durable, opts).expect("opening the journal");
    let mut p = j.producer().expect("a producer slot");
    let mut burst_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let (start, mut i) = (Instant::now(), 0u32);
    while start.elapsed() < Duration::from_secs(a.seconds) {
        let t = Instant::now();
        let mut last = None;
        for _ in 0..a.burst {
            i = (i + 1) % a.addresses;
            if let Ok(tk) = p.append(&record(i)) {
                last = Some(tk);
            }
        }
        let Some(last) = last else { continue };
        while !p.is_durable(last) {
            wait(p.wake_fd());
        }
        burst_us.saturating_record((t.elapsed().as_micros() as u64).max(1));
    }
    let secs = start.elapsed().as_secs_f64();
    drop(p);
    let s = j.stats();
    j.close().expect("closing the journal");
    println!(
        "round {round}: {:>7.0} records/s  fsync p50 {:>6} us p99 {:>7} us max {:>7} us ({} fsyncs, \
         {} compactions)  burst of {} append->durable p50 {:>6} us p99 {:>7} us max {:>7} us",
        s.records as f64 / secs,
        s.fsync_p50_us,
        s.fsync_p99_us,
        s.fsync_max_us,
        s.fsyncs,
        s.compactions,
        a.burst,
        burst_us.value_at_quantile(0.5),
        burst_us.value_at_quantile(0.99),
        burst_us.max(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let a = args();
    println!(
        "journal fsync bench: durable mode under {}, {} s per round, bursts of {}, \
         {} addresses, compaction every {} MiB",
        a.dir.display(),
        a.seconds,
        a.burst,
        a.addresses,
        a.compact_mb
    );
    for r in 0..a.rounds {
        one_round(&a, r);
    }
}
