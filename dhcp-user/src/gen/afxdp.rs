//! The generator's AF_XDP worker: one socket and one UMEM per queue, as
//! the server's (`io::xsk`), but a loop of its own, because a generator
//! sends on its own schedule rather than in reply to what it receives.
//!
//! Per turn: completions back to the free TX list, a batch from RX into
//! the fleet, timers, then as many frames as the fleet has due (up to a
//! batch) written straight into TX frames. The clock is read once per
//! turn; at most one syscall per turn (the TX kick), none when the kernel
//! needs no wakeup.
use super::counters::{GenCounters, bump};
use super::fleet::Fleet;
use crate::config::BindMode;
use crate::io::{PollMode, TX_FRAME_CAPACITY, WorkerOptions};
use anyhow::{Context, bail};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;
use xsk_rs::config::{BindFlags, FrameSize, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// Sizes of one queue's rings and UMEM.
#[derive(Clone, Copy, Debug)]
pub struct XskSettings {
    pub bind: BindMode,
    /// UMEM frames per queue, half for RX and half for TX.
    pub frames: u32,
    pub ring_size: u32,
}

pub struct QueueSocket {
    umem: Umem,
    descs: Vec<FrameDesc>,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
}

// SAFETY: the rings and the UMEM mapping are used by exactly one thread,
// the worker the socket moves to; the kernel side is synchronised through
// the rings' producer/consumer indices.
unsafe impl Send for QueueSocket {}

impl QueueSocket {
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.rx.fd().as_raw_fd()
    }
}

fn open_as(
    iface: &str,
    queue: u32,
    s: &XskSettings,
    bind: BindFlags,
) -> anyhow::Result<QueueSocket> {
    let ring = QueueSize::new(s.ring_size).context("ring size must be a power of two")?;
    let umem_cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(4096).context("frame size")?)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .build()
        .context("UMEM config")?;
    let frames = NonZeroU32::new(s.frames).context("frames must not be 0")?;
    let (umem, descs) = Umem::new(umem_cfg, frames, false)
        .map_err(|e| anyhow::anyhow!("creating the UMEM of queue {queue}: {e}"))?;
    let sock_cfg = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(bind | BindFlags::XDP_USE_NEED_WAKEUP)
        .build();
    let name = iface
        .parse()
        .map_err(|e| anyhow::anyhow!("interface name {iface:?}: {e:?}"))?;
    // SAFETY: the UMEM moves with the socket into the worker and outlives
    // the rings there (they are dropped first, in field order).
    let (tx, rx, fq_cq) = unsafe { Socket::new(sock_cfg, &umem, &name, queue) }
        .map_err(|e| anyhow::anyhow!("AF_XDP socket on {iface} queue {queue}: {e}"))?;
    let (fq, cq) = fq_cq.context("the socket came without fill and completion rings")?;
    Ok(QueueSocket {
        umem,
        descs,
        tx,
        rx,
        fq,
        cq,
    })
}

/// Opens queue `queue`'s socket; returns it and the bind mode used.
pub fn open(iface: &str, queue: u32, s: &XskSettings) -> anyhow::Result<(QueueSocket, BindMode)> {
    if s.frames / 2 > s.ring_size {
        // More TX frames than the TX ring holds could make a full batch
        // bounce off the ring after the fleet already counted it sent.
        bail!(
            "frames ({}) must be at most twice the ring size ({})",
            s.frames,
            s.ring_size
        );
    }
    match s.bind {
        BindMode::Copy => Ok((
            open_as(iface, queue, s, BindFlags::XDP_COPY)?,
            BindMode::Copy,
        )),
        BindMode::Zerocopy => Ok((
            open_as(iface, queue, s, BindFlags::XDP_ZEROCOPY).with_context(|| {
                format!(
                    "zero-copy bind failed on {iface} (veth never supports it): use --bind copy"
                )
            })?,
            BindMode::Zerocopy,
        )),
        BindMode::Auto => match open_as(iface, queue, s, BindFlags::XDP_ZEROCOPY) {
            Ok(sock) => Ok((sock, BindMode::Zerocopy)),
            Err(_) => Ok((
                open_as(iface, queue, s, BindFlags::XDP_COPY)?,
                BindMode::Copy,
            )),
        },
    }
}

/// Runs `fleet` over `s` until it is done or `stop` is set.
pub fn run(
    mut s: QueueSocket,
    fleet: &mut Fleet,
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
