//! The engine's work per packet in instructions, for callgrind (which
//! counts instructions exactly, whatever else the machine does): runs
//! `discover N` (N DISCOVER→OFFER of new clients) or `dora N` (the same,
//! then each client's REQUEST→ACK) through one Handler, the frames and
//! engine of `benches/engine.rs`; `dhcproto-discover N` and
//! `dhcproto-dora N` do the same work with dhcproto (decode the request,
//! build and encode the reply) for the comparison. The difference of two
//! runs divided by the packets between them is the cost of one packet,
//! start-up cancelled out:
//!
//!   cargo bench --bench instructions --no-run
//!   valgrind --tool=callgrind target/release/deps/instructions-* discover 20000
//!
//! `cargo xtask bench instructions` runs the four and prints the figures.
//!
//! `split N` is for counting by phase instead: N DISCOVER→OFFER in
//! [`offers`], then N REQUEST→ACK in [`acks`], every frame built before
//! either starts, on the lab's subnet; `cargo xtask bench split` runs it
//! under `valgrind --tool=callgrind --toggle-collect=…` once per function
//! and splits the count into parse, decide and reply building. Run alone
//! it prints ns per packet.
use dhcproto::v4::{DhcpOption, Message, MessageType};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;
use xdhcp::config::Config;
use xdhcp::engine::{Engine, Handler};
use xdhcp::handler::{FrameHandler, TX_FRAME_CAPACITY};
use xdhcp::stats::WorkerStats;

#[path = "../tests/frames/mod.rs"]
mod frames;

const CHADDR: usize = 14 + 20 + 8 + 28;
const YIADDR: usize = 14 + 20 + 8 + 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (kind, n) = match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("split"), Some(n)) => return split(n.parse().expect("split N")),
        (Some(k @ ("discover" | "dora" | "dhcproto-discover" | "dhcproto-dora")), Some(n)) => {
            (k.to_string(), n.parse::<u32>().unwrap())
        }
        // `cargo bench` runs every bench binary with `--bench`: nothing to
        // time here.
        _ => return,
    };
    let cfg = Config::parse(frames::BENCH_CONFIG).unwrap();
    let e = Arc::new(Engine::new(&cfg));
    let mut h = e.handler(frames::SERVER_MAC, Arc::new(WorkerStats::default()));
    h.begin_batch(Instant::now());
    let (mut d, mut r) = frames::dora_templates(frames::BENCH_SERVER);
    let at50 = frames::option50_value(&r);
    if let Some(which) = kind.strip_prefix("dhcproto-") {
        dhcproto(&d, &r, which == "dora", n);
        return;
    }
    let mut tx = vec![0u8; TX_FRAME_CAPACITY];
    let mut offered = Vec::with_capacity(n as usize);
    for i in 0..n {
        d[CHADDR + 2..CHADDR + 6].copy_from_slice(&i.to_be_bytes());
        h.handle(black_box(&d), &mut tx).expect("an OFFER");
        let mut y = [0u8; 4];
        y.copy_from_slice(&tx[YIADDR..YIADDR + 4]);
        offered.push(y);
    }
    if kind == "dora" {
        for (i, y) in offered.iter().enumerate() {
            r[CHADDR + 2..CHADDR + 6].copy_from_slice(&(i as u32).to_be_bytes());
            r[at50..at50 + 4].copy_from_slice(y);
            h.handle(black_box(&r), &mut tx).expect("an ACK");
        }
    }
    black_box(&tx);
}

/// dhcproto's side: each DISCOVER decoded and its OFFER built and encoded;
/// with `dora`, then each REQUEST and its ACK the same way.
fn dhcproto(d: &[u8], r: &[u8], dora: bool, n: u32) {
    let mut out = Vec::with_capacity(600);
    let mut one = |frame: &[u8], kind: MessageType| {
        let req = Message::decode(&mut Decoder::new(black_box(&frame[42..]))).unwrap();
        let reply = frames::reply_like(&req, kind);
        out.clear();
        reply.encode(&mut Encoder::new(&mut out)).unwrap();
        black_box(&out);
    };
    let (mut d, mut r) = (d.to_vec(), r.to_vec());
    for i in 0..n {
        d[CHADDR + 2..CHADDR + 6].copy_from_slice(&i.to_be_bytes());
        one(&d, MessageType::Offer);
    }
    if dora {
        for i in 0..n {
            r[CHADDR + 2..CHADDR + 6].copy_from_slice(&i.to_be_bytes());
            one(&r, MessageType::Ack);
        }
    }
}

fn frame(i: u32, kind: MessageType, opts: Vec<DhcpOption>) -> Vec<u8> {
    let m = frames::mac(i);
    frames::frame(
        &frames::request(m, kind, i, opts),
        m,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        None,
    )
}

/// DISCOVER → OFFER for every frame; keeps each offered address.
#[inline(never)]
fn offers(h: &mut Handler, discovers: &[Vec<u8>], offered: &mut [[u8; 4]], tx: &mut [u8]) {
    for (ds, os) in discovers
        .chunks(frames::BATCH)
        .zip(offered.chunks_mut(frames::BATCH))
    {
        frames::start_batch(h, ds.iter().map(Vec::as_slice));
        for (d, o) in ds.iter().zip(os) {
            let n = h.handle(black_box(d), tx);
            assert!(n.is_some(), "an OFFER");
            o.copy_from_slice(&tx[YIADDR..YIADDR + 4]);
        }
    }
}

/// REQUEST → ACK for every frame (option 50 already patched).
#[inline(never)]
fn acks(h: &mut Handler, requests: &[Vec<u8>], tx: &mut [u8]) {
    for rs in requests.chunks(frames::BATCH) {
        frames::start_batch(h, rs.iter().map(Vec::as_slice));
        for r in rs {
            let n = h.handle(black_box(r), tx);
            assert!(n.is_some(), "an ACK");
        }
    }
}

/// The `split` driver: the lab's subnet, frames built first.
fn split(n: u32) {
    let cfg = Config::parse(frames::LAB_CONFIG).expect("config");
    let engine = Arc::new(Engine::new(&cfg));
    let mut h = engine.handler(frames::SERVER_MAC, Arc::new(WorkerStats::default()));
    let discovers: Vec<Vec<u8>> = (0..n)
        .map(|i| frame(i, MessageType::Discover, vec![]))
        .collect();
    let mut requests: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            frame(
                i,
                MessageType::Request,
                vec![
                    DhcpOption::ServerIdentifier(frames::LAB_SERVER),
                    DhcpOption::RequestedIpAddress(Ipv4Addr::UNSPECIFIED),
                ],
            )
        })
        .collect();
    let at50 = frames::option50_value(&requests[0]);
    let mut offered = vec![[0u8; 4]; n as usize];
    let mut tx = vec![0u8; TX_FRAME_CAPACITY];

    let t = Instant::now();
    offers(&mut h, &discovers, &mut offered, &mut tx);
    let t_offers = t.elapsed();
    for (r, o) in requests.iter_mut().zip(&offered) {
        r[at50..at50 + 4].copy_from_slice(o);
    }
    let t = Instant::now();
    acks(&mut h, &requests, &mut tx);
    let t_acks = t.elapsed();
    println!(
        "instructions split driver: {n} clients, DISCOVER->OFFER {:.0} ns, REQUEST->ACK {:.0} ns per packet",
        t_offers.as_nanos() as f64 / f64::from(n),
        t_acks.as_nanos() as f64 / f64::from(n),
    );
}
