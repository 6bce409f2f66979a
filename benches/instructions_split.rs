//! A driver for counting instructions per packet under callgrind: N
//! DISCOVER→OFFER exchanges through a `Handler` in `offers`, then N
//! REQUEST→ACK in `acks`, every frame built before either starts. Run
//! alone it prints ns per packet; `cargo xtask bench split` runs it
//! under `valgrind --tool=callgrind --toggle-collect=…` once per function
//! and splits the count into parse, decide and reply building.
//!
//! cargo bench --bench instructions_split -- [--clients N]
use dhcproto::v4::{DhcpOption, MessageType};
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

use frames::{BATCH, LAB_CONFIG as CONFIG, LAB_SERVER as SERVER, YIADDR};

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
    for (k, (d, o)) in discovers.iter().zip(offered.iter_mut()).enumerate() {
        if k % BATCH == 0 {
            h.begin_batch(Instant::now());
        }
        let n = h.handle(black_box(d), tx);
        assert!(n.is_some(), "an OFFER");
        o.copy_from_slice(&tx[YIADDR..YIADDR + 4]);
    }
}

/// REQUEST → ACK for every frame (option 50 already patched).
#[inline(never)]
fn acks(h: &mut Handler, requests: &[Vec<u8>], tx: &mut [u8]) {
    for (k, r) in requests.iter().enumerate() {
        if k % BATCH == 0 {
            h.begin_batch(Instant::now());
        }
        let n = h.handle(black_box(r), tx);
        assert!(n.is_some(), "an ACK");
    }
}

fn main() {
    let mut n = 20_000u32;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--clients" => n = it.next().and_then(|v| v.parse().ok()).expect("--clients N"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let cfg = Config::parse(CONFIG).expect("config");
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
                    DhcpOption::ServerIdentifier(SERVER),
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
        "instructions driver: {n} clients, DISCOVER->OFFER {:.0} ns, REQUEST->ACK {:.0} ns per packet",
        t_offers.as_nanos() as f64 / f64::from(n),
        t_acks.as_nanos() as f64 / f64::from(n),
    );
}
