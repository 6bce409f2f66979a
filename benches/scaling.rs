//! What sharing costs: full DORA exchanges (DISCOVER→OFFER, REQUEST→ACK)
//! through the engine, its pools and lease table, and the journal in fast
//! mode (into a temp dir), from 1 and from 2 worker threads, each with its
//! own `Handler` (its own home shard in every pool, its own stats and
//! journal producer, as the daemon's workers have) and its own clients.
//! The frames are built before the clock starts; no kernel is in the way.
//!
//! The same clients are served either way: one thread serves all of them,
//! or two threads half each, so the pool and the table end equally full
//! and the figure is wall time for the same work. The ratio is leases/s
//! with 2 threads over 1; the run without a journal says how much of the
//! gap is the journal's channel and thread (the writer needs a core too,
//! and on a 2-core machine two workers leave it none of its own).
//!
//! cargo bench --bench scaling -- [--clients N] [--rounds R] [--only journal|shared|apart]
//! [--threads 1|2] (the last two for a profiler)
use dhcproto::v4::{DhcpOption, MessageType};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use xdhcp::config::Config;
use xdhcp::engine::{Engine, Handler, JournalLink};
use xdhcp::handler::{FrameHandler, TX_FRAME_CAPACITY};
use xdhcp::lease::journal::{Durability, Journal, JournalHandle, JournalOptions};
use xdhcp::stats::WorkerStats;

#[path = "../tests/frames/mod.rs"]
mod frames;

use frames::{BATCH, LAB_CONFIG as CONFIG, LAB_SERVER as SERVER, YIADDR};

/// One client's two requests; the REQUEST's option 50 is patched with
/// the address offered.
struct Client {
    discover: Vec<u8>,
    request: Vec<u8>,
}

fn clients(n: u32) -> Vec<Client> {
    (0..n)
        .map(|i| {
            let m = frames::mac(i);
            let d = frames::request(m, MessageType::Discover, i, vec![]);
            let r = frames::request(
                m,
                MessageType::Request,
                i,
                vec![
                    DhcpOption::ServerIdentifier(SERVER),
                    DhcpOption::RequestedIpAddress(Ipv4Addr::UNSPECIFIED),
                ],
            );
            let f = |msg| frames::frame(msg, m, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, None);
            Client {
                discover: f(&d),
                request: f(&r),
            }
        })
        .collect()
}

/// This thread's CPU time: beside the wall time it tells a thread that
/// waited for a core (the machine is shared) from one that spent more
/// cycles per lease (cache lines and locks shared with the other worker).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU time of this process's threads named `name` (from
/// /proc/self/task/*/schedstat, whose first field is ns on a CPU).
fn named_threads_cpu(name: &str) -> Duration {
    let mut ns = 0u64;
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let st = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            ns += st
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(ns)
}

struct Served {
    acks: u64,
    wall: Duration,
    cpu: Duration,
}

/// Serves `cs` through `h`.
fn serve(h: &mut Handler, cs: &mut [Client], at50: usize) -> Served {
    let mut tx = vec![0u8; TX_FRAME_CAPACITY];
    let (t, c) = (Instant::now(), thread_cpu());
    let mut acks = 0;
    for chunk in cs.chunks_mut(BATCH / 2) {
        frames::start_batch(
            h,
            chunk
                .iter()
                .flat_map(|c| [c.discover.as_slice(), c.request.as_slice()]),
        );
        for c in chunk {
            if h.handle(&c.discover, &mut tx).is_none() {
                continue;
            }
            c.request[at50..at50 + 4].copy_from_slice(&tx[YIADDR..YIADDR + 4]);
            if h.handle(&c.request, &mut tx).is_some() {
                acks += 1;
            }
        }
    }
    Served {
        acks,
        wall: t.elapsed(),
        cpu: thread_cpu() - c,
    }
}

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    /// One engine for all workers, the journal in fast mode.
    Journal,
    /// One engine, no journal.
    Shared,
    /// An engine per worker, no journal: nothing shared, so 2 threads
    /// over 1 is what the machine gives right now (the control).
    Apart,
}

/// One run's outcome: leases per second over the wall time of the
/// slowest worker, and CPU ns per lease over all workers.
struct Run {
    rate: f64,
    cpu_ns: f64,
    /// The journal's writer thread, CPU ns per lease, until the workers
    /// were done.
    writer_ns: f64,
}

/// One run: a fresh engine (and journal), `threads` workers over the
/// clients split evenly.
fn run(all: &mut [Client], threads: usize, setup: Setup, round: u32) -> Run {
    let cfg = Config::parse(CONFIG).expect("config");
    let engines: Vec<Arc<Engine>> = if setup == Setup::Apart {
        (0..threads)
            .map(|_| Arc::new(Engine::for_workers(&cfg, 1)))
            .collect()
    } else {
        vec![Arc::new(Engine::for_workers(&cfg, threads))]
    };
    let dir = Dir(std::env::temp_dir().join(format!(
        "xdhcp-scaling-{}-{threads}-{round}",
        std::process::id()
    )));
    let _ = std::fs::remove_dir_all(&dir.0);
    let j: Option<JournalHandle> = (setup == Setup::Journal).then(|| {
        let mode = Durability::Fast {
            max_delay: Duration::from_millis(100),
        };
        Journal::open(&dir.0, mode, JournalOptions::default())
            .expect("journal")
            .0
    });
    let at50 = frames::option50_value(&all[0].request);
    let per = all.len().div_ceil(threads);
    let barrier = Arc::new(Barrier::new(threads));
    let results: Vec<Served> = std::thread::scope(|s| {
        let hs: Vec<_> = all
            .chunks_mut(per)
            .enumerate()
            .map(|(w, cs)| {
                let (engine, home) = match setup {
                    Setup::Apart => (&engines[w], 0),
                    _ => (&engines[0], w),
                };
                let mut h = engine
                    .handler(frames::SERVER_MAC, Arc::new(WorkerStats::default()))
                    .worker(home);
                if let Some(j) = &j {
                    h = h.with_journal(JournalLink::new(j.producer().expect("producer"), false));
                }
                let b = barrier.clone();
                s.spawn(move || {
                    b.wait();
                    serve(&mut h, cs, at50)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("worker")).collect()
    });
    let writer = named_threads_cpu("xdhcp-journal");
    let full = j.as_ref().map_or(0, |j| j.stats().full);
    if let Some(j) = j {
        j.close().expect("closing the journal");
    }
    let acks: u64 = results.iter().map(|r| r.acks).sum();
    assert_eq!(acks, all.len() as u64, "every client got its ACK");
    assert_eq!(full, 0, "the journal's channel never filled");
    let wall = results.iter().map(|r| r.wall).max().unwrap_or_default();
    let cpu: Duration = results.iter().map(|r| r.cpu).sum();
    Run {
        rate: acks as f64 / wall.as_secs_f64(),
        cpu_ns: cpu.as_nanos() as f64 / acks as f64,
        writer_ns: writer.as_nanos() as f64 / acks as f64,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (mut n, mut rounds) = (100_000u32, 9u32);
    let mut setups = vec![Setup::Journal, Setup::Shared, Setup::Apart];
    let mut counts = vec![1usize, 2];
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--clients" => n = it.next().and_then(|v| v.parse().ok()).expect("--clients N"),
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds R"),
            "--only" => {
                setups = vec![match it.next().as_deref() {
                    Some("journal") => Setup::Journal,
                    Some("shared") => Setup::Shared,
                    Some("apart") => Setup::Apart,
                    _ => panic!("--only journal|shared|apart"),
                }]
            }
            "--threads" => {
                counts = vec![
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .expect("--threads 1|2"),
                ]
            }
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let mut all = clients(n);
    println!(
        "scaling: {n} clients, DISCOVER->OFFER + REQUEST->ACK each, {rounds} rounds, \
         1 and 2 threads alternated, {} cores",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    println!("  (leases/s: median of rounds; CPU ns per lease: median, all workers' CPU time)");
    for setup in setups {
        let (mut one, mut two) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            let mut order = counts.clone();
            if r % 2 == 1 {
                order.reverse();
            }
            for t in order {
                let v = run(&mut all, t, setup, r);
                if t == 1 { &mut one } else { &mut two }.push(v);
            }
        }
        let what = match setup {
            Setup::Journal => "shared engine, journal fast",
            Setup::Shared => "shared engine, no journal",
            Setup::Apart => "engine per thread (control)",
        };
        if one.is_empty() || two.is_empty() {
            let v = if one.is_empty() { &two } else { &one };
            println!(
                "  {what}: {} threads {:.0} leases/s",
                counts[0],
                median(v.iter().map(|r| r.rate).collect())
            );
            continue;
        }
        let rate = |v: &[Run]| median(v.iter().map(|r| r.rate).collect());
        let cpu = |v: &[Run]| median(v.iter().map(|r| r.cpu_ns).collect());
        let writer = |v: &[Run]| median(v.iter().map(|r| r.writer_ns).collect());
        let w = if setup == Setup::Journal {
            format!(
                "   journal writer {:.0} / {:.0} ns CPU per lease",
                writer(&one),
                writer(&two)
            )
        } else {
            String::new()
        };
        println!(
            "  {what:<28} 1 thread {:>9.0} leases/s {:>5.0} ns CPU   2 threads {:>9.0} leases/s {:>5.0} ns CPU   \
             2/1 = {:.2}x{w}",
            rate(&one),
            cpu(&one),
            rate(&two),
            cpu(&two),
            rate(&two) / rate(&one),
        );
    }
}
