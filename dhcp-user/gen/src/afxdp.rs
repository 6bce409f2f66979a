//! The generator's AF_XDP worker: one socket and one UMEM per queue, as
//! the server's (`io::xsk`), but a loop of its own, because a generator
//! sends on its own schedule rather than in reply to what it receives.
//!
//! Per turn: completions back to the free TX list, a batch from RX into
//! the fleet, timers, then as many frames as the fleet has due (up to a
//! batch) written straight into TX frames. The clock is read once per
//! turn; at most one syscall per turn (the TX kick), none when the kernel
//! needs no wakeup.
use super::attack::Fleets;
use super::counters::{GenCounters, bump};
use anyhow::bail;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;
use xdhcp::config::{BindMode, PollMode};
use xdhcp::handler::TX_FRAME_CAPACITY;
use xdhcp::io::WorkerOptions;
use xdhcp::io::xsk::{QueueSocket, XskOptions, open_socket};
use xsk_rs::FrameDesc;

/// Opens queue `queue`'s socket (see `io::xsk`); returns it and the bind
/// mode used.
pub(crate) fn open(
    iface: &str,
    queue: u32,
    s: &XskOptions,
) -> anyhow::Result<(QueueSocket, BindMode)> {
    if s.frames / 2 > s.ring_size {
        // More TX frames than the TX ring holds could make a full batch
        // bounce off the ring after the fleet already counted it sent.
        bail!(
            "frames ({}) must be at most twice the ring size ({})",
            s.frames,
            s.ring_size
        );
    }
    open_socket(iface, queue, s, s.bind)
}

/// Runs `fleet` over `s` until it is done or `stop` is set.
pub(crate) fn run(
    mut s: QueueSocket,
    fleet: &mut Fleets,
    counters: &GenCounters,
    opts: &WorkerOptions,
    stop: &AtomicBool,
    t0: Instant,
) {
    let batch = opts.batch.max(1);
    let half = s.descs.len() / 2;
    let mut free_tx: Vec<FrameDesc> = s.descs.split_off(half);
    let mut spare_fill: Vec<FrameDesc> = std::mem::take(&mut s.descs);
    let mut rx_descs = vec![FrameDesc::default(); batch];
    let mut comp_descs = vec![FrameDesc::default(); batch.max(half)];
    let mut tx_out: Vec<FrameDesc> = Vec::with_capacity(batch);
    let mut idle: u32 = 0;

    while !stop.load(Relaxed) {
        let now_ns = t0.elapsed().as_nanos() as u64;
        // SAFETY (every ring call below): each FrameDesc comes from this
        // socket's UMEM and is in exactly one place at a time: the fill or
        // RX ring, `spare_fill`, `free_tx`, `tx_out`, or the TX or
        // completion ring.
        if !spare_fill.is_empty() {
            let n = spare_fill.len().min(batch);
            let at = spare_fill.len() - n;
            if unsafe { s.fq.produce(&spare_fill[at..]) } == n {
                spare_fill.truncate(at);
            }
        }
        let done = unsafe { s.cq.consume(&mut comp_descs) };
        free_tx.extend_from_slice(&comp_descs[..done]);

        let n = unsafe { s.rx.consume(&mut rx_descs) };
        for d in &rx_descs[..n] {
            let data = unsafe { s.umem.data(d) };
            fleet.receive(now_ns, data.contents());
        }
        if n > 0 && unsafe { s.fq.produce(&rx_descs[..n]) } != n {
            spare_fill.extend_from_slice(&rx_descs[..n]);
        }
        fleet.drain_inbox();
        fleet.tick(now_ns);

        while tx_out.len() < batch {
            let Some(mut desc) = free_tx.pop() else {
                if fleet.has_ready() {
                    bump(&counters.tx_full);
                }
                break;
            };
            // A descriptor back from the completion ring has its length
            // reset: open the whole frame, then set the written length.
            let mut data = unsafe { s.umem.data_mut(&mut desc) };
            let mut cursor = data.cursor();
            let room = cursor.buf_len().min(TX_FRAME_CAPACITY);
            cursor.set_pos(room);
            match fleet.next_frame(now_ns, data.contents_mut()) {
                Some(len) => {
                    data.cursor().set_pos(len);
                    tx_out.push(desc);
                }
                None => {
                    free_tx.push(desc);
                    break;
                }
            }
        }
        let sent = tx_out.len();
        if sent > 0 {
            // Never refused: the TX half of the UMEM is no larger than the
            // TX ring (checked in `open`).
            if unsafe { s.tx.produce(&tx_out) } != sent {
                free_tx.extend_from_slice(&tx_out);
            }
            tx_out.clear();
        }
        if s.tx.needs_wakeup() && (sent > 0 || free_tx.len() < half) {
            let _ = s.tx.wakeup();
        }
        if fleet.is_done(now_ns) {
            flush_tx(&mut s, &mut free_tx, &mut comp_descs, half);
            break;
        }
        if n == 0 && sent == 0 {
            idle = idle.saturating_add(1);
            let sleep = opts.poll == PollMode::Adaptive && idle > opts.idle_spins;
            if sleep || s.fq.needs_wakeup() {
                // 1 ms at most: timers and the pacer need the loop to turn.
                let _ = s.rx.poll(if sleep { 1 } else { 0 });
            }
        } else {
            idle = 0;
        }
    }
}

/// Waits (briefly) until the kernel has sent every frame on the TX ring:
/// the last frames of a run (a RELEASE has no reply to wait for) would
/// otherwise die with the socket.
fn flush_tx(
    s: &mut QueueSocket,
    free_tx: &mut Vec<FrameDesc>,
    comp: &mut [FrameDesc],
    half: usize,
) {
    let deadline = Instant::now() + std::time::Duration::from_millis(200);
    while free_tx.len() < half && Instant::now() < deadline {
        if s.tx.needs_wakeup() {
            let _ = s.tx.wakeup();
        }
        // SAFETY: as in `run`: completed descriptors return to the free list.
        let done = unsafe { s.cq.consume(comp) };
        free_tx.extend_from_slice(&comp[..done]);
        if done == 0 {
            std::thread::yield_now();
        }
    }
}
