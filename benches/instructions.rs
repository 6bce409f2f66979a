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
use dhcproto::v4::{Message, MessageType};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use xdhcp::config::Config;
use xdhcp::engine::Engine;
use xdhcp::handler::{FrameHandler, TX_FRAME_CAPACITY};
use xdhcp::stats::WorkerStats;

#[path = "../tests/frames/mod.rs"]
mod frames;

const CHADDR: usize = 14 + 20 + 8 + 28;
const YIADDR: usize = 14 + 20 + 8 + 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (kind, n) = match (args.get(1).map(String::as_str), args.get(2)) {
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
