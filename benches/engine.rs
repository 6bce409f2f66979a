//! The engine on one core, in ns per packet: parse + decide + allocate +
//! build the reply frame, beside dhcproto decoding the same request and
//! encoding the same reply through its owned API, in one criterion group
//! so the ratio comes from one run. The engine is driven as a worker
//! drives it: in batches of [`frames::BATCH`] frames, the lease table's
//! lines fetched ahead for the whole batch before its first frame.
//!
//! cargo bench --bench engine
use criterion::{Criterion, criterion_group, criterion_main};
use dhcproto::v4::{Message, MessageType};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdhcp::config::Config;
use xdhcp::engine::{Engine, Handler};
use xdhcp::handler::{FrameHandler, TX_FRAME_CAPACITY};
use xdhcp::stats::WorkerStats;

#[path = "../tests/frames/mod.rs"]
mod frames;

/// Where chaddr starts in our request frames: Ethernet 14 + IP 20 + UDP 8 + 28.
const CHADDR: usize = 14 + 20 + 8 + 28;
/// yiaddr in a reply frame.
const YIADDR: usize = 14 + 20 + 8 + 16;
/// A fresh engine before the /16 pool runs dry.
const REFILL: u64 = 60_000;
/// Offers made ahead of each timed run of REQUESTs.
const CHUNK: u64 = 4096;

fn engine() -> Handler {
    let cfg = Config::parse(frames::BENCH_CONFIG).unwrap();
    let e = Arc::new(Engine::new(&cfg));
    let mut h = e.handler(frames::SERVER_MAC, Arc::new(WorkerStats::default()));
    h.begin_batch(Instant::now());
    h
}

fn set_client(f: &mut [u8], i: u64) {
    f[CHADDR + 2..CHADDR + 6].copy_from_slice(&(i as u32).to_be_bytes());
}

fn bench(c: &mut Criterion) {
    let (discover, request) = frames::dora_templates(frames::BENCH_SERVER);
    let at50 = frames::option50_value(&request);

    let mut g = c.benchmark_group("discover_offer");
    g.throughput(criterion::Throughput::Elements(1));
    g.bench_function("xdhcp_engine", |b| {
        b.iter_custom(|iters| {
            let mut h = engine();
            let mut fs = vec![discover.clone(); frames::BATCH];
            let mut tx = vec![0u8; TX_FRAME_CAPACITY];
            let mut spent = Duration::ZERO;
            let mut i = 0;
            while i < iters {
                let n = (iters - i).min(REFILL);
                let t = Instant::now();
                let mut k = 0;
                while k < n {
                    let batch = &mut fs[..(n - k).min(frames::BATCH as u64) as usize];
                    for (j, f) in batch.iter_mut().enumerate() {
                        set_client(f, k + j as u64);
                    }
                    frames::start_batch(&mut h, batch.iter().map(Vec::as_slice));
                    for f in batch.iter() {
                        black_box(h.handle(black_box(f), &mut tx));
                    }
                    k += batch.len() as u64;
                }
                spent += t.elapsed();
                i += n;
                if i < iters {
                    h = engine();
                }
            }
            spent
        })
    });
    g.bench_function("dhcproto_decode_encode", |b| {
        let bootp = &discover[42..];
        let mut out = Vec::with_capacity(600);
        b.iter(|| {
            let req = Message::decode(&mut Decoder::new(black_box(bootp))).unwrap();
            let reply = frames::reply_like(&req, MessageType::Offer);
            out.clear();
            reply.encode(&mut Encoder::new(&mut out)).unwrap();
            black_box(&out);
        })
    });
    g.finish();

    let mut g = c.benchmark_group("request_ack");
    g.throughput(criterion::Throughput::Elements(1));
    g.bench_function("xdhcp_engine", |b| {
        b.iter_custom(|iters| {
            let mut h = engine();
            let mut d = discover.clone();
            let mut rs = vec![request.clone(); frames::BATCH];
            let mut yi = vec![[0u8; 4]; CHUNK as usize];
            let mut tx = vec![0u8; TX_FRAME_CAPACITY];
            let mut spent = Duration::ZERO;
            let mut i = 0;
            while i < iters {
                let n = (iters - i).min(REFILL);
                // Offers are made in chunks outside the timed part; only
                // REQUEST -> ACK is measured.
                let mut k = 0;
                while k < n {
                    let m = (n - k).min(CHUNK);
                    h.begin_batch(Instant::now());
                    for j in 0..m {
                        set_client(&mut d, i + k + j);
                        h.handle(&d, &mut tx).unwrap();
                        yi[j as usize].copy_from_slice(&tx[YIADDR..YIADDR + 4]);
                    }
                    let t = Instant::now();
                    let mut j = 0;
                    while j < m {
                        let batch = &mut rs[..(m - j).min(frames::BATCH as u64) as usize];
                        for (b, r) in batch.iter_mut().enumerate() {
                            let c = j + b as u64;
                            set_client(r, i + k + c);
                            r[at50..at50 + 4].copy_from_slice(&yi[c as usize]);
                        }
                        frames::start_batch(&mut h, batch.iter().map(Vec::as_slice));
                        for r in batch.iter() {
                            black_box(h.handle(black_box(r), &mut tx));
                        }
                        j += batch.len() as u64;
                    }
                    spent += t.elapsed();
                    k += m;
                }
                i += n;
                if i < iters {
                    h = engine();
                }
            }
            spent
        })
    });
    g.bench_function("dhcproto_decode_encode", |b| {
        let bootp = &request[42..];
        let mut out = Vec::with_capacity(600);
        b.iter(|| {
            let req = Message::decode(&mut Decoder::new(black_box(bootp))).unwrap();
            let reply = frames::reply_like(&req, MessageType::Ack);
            out.clear();
            reply.encode(&mut Encoder::new(&mut out)).unwrap();
            black_box(&out);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
