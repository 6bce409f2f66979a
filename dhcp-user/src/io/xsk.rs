//! AF_XDP sockets (xsk-rs) and the workers that run them.
//!
//! One socket and one UMEM per queue (a socket only sees the queue it is
//! bound to; a UMEM of its own avoids xsk-rs's shared-UMEM teardown
//! problem). The UMEM's frames are split in two: the RX half circulates
//! fill ring → RX ring → fill ring, the TX half circulates free list →
//! TX ring → completion ring → free list. A request is read where the
//! kernel put it and the reply is written once, into a TX frame.
use super::iface::Interface;
use super::xdp::Steering;
use super::{StopFlag, WorkerOptions, WorkerSlot, latency_kind, latency_tick, pin_worker};
use crate::config::{BindMode, PollMode};
use crate::handler::{FrameHandler, PARK_LIMIT, TX_FRAME_CAPACITY};
use crate::latency::Kind;
use crate::stats::{WorkerStats, add, bump};
use anyhow::{Context, bail};
use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::Instant;
use xsk_rs::config::{BindFlags, FrameSize, LibxdpFlags, QueueSize, SocketConfig, UmemConfig};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

/// Sizes of one queue's rings and UMEM.
#[derive(Clone, Copy, Debug)]
pub struct XskOptions {
    pub bind: BindMode,
    /// UMEM frames per queue.
    pub frames: u32,
    /// Entries of each ring.
    pub ring_size: u32,
}

/// One queue's socket and its UMEM, ready to hand to the thread that runs
/// it (the server's worker here, the generator's in `xdhcpgen::afxdp`). Every
/// part is `Send` as xsk-rs defines it, so the whole moves to that thread.
///
/// Drop order: the fields go in the order written. `umem` is only a
/// handle: the socket holds one of its own, so the UMEM stays mapped.
/// The socket itself is deleted when the last of the four queues that
/// share it goes (`cq`), and the UMEM right after, with the socket's
/// handle on it.
pub struct QueueSocket {
    pub umem: Umem,
    pub descs: Vec<FrameDesc>,
    pub tx: TxQueue,
    pub rx: RxQueue,
    pub fq: FillQueue,
    pub cq: CompQueue,
    /// Entries of the TX ring.
    pub tx_ring: u32,
}

impl QueueSocket {
    /// Descriptors on the TX ring that the kernel has not taken yet.
    fn tx_on_ring(&mut self) -> u32 {
        self.tx_ring - self.tx.nb_free_exact()
    }
}

impl QueueSocket {
    /// The socket's fd, for the XSKMAP and for poll(2).
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.rx.fd().as_raw_fd()
    }
}

/// Opens queue `queue`'s socket bound as `mode` asks — `Auto` tries
/// zero-copy and falls back to copy with a warning — and returns it with
/// the mode it got.
pub fn open_socket(
    iface: &str,
    queue: u32,
    o: &XskOptions,
    mode: BindMode,
) -> anyhow::Result<(QueueSocket, BindMode)> {
    match mode {
        BindMode::Zerocopy => Ok((
            open(iface, queue, o, BindFlags::XDP_ZEROCOPY).with_context(|| {
                format!(
                    "zero-copy bind failed on {iface} (the driver may not support it; veth never \
                     does): bind copy or auto instead"
                )
            })?,
            BindMode::Zerocopy,
        )),
        BindMode::Copy => Ok((open(iface, queue, o, BindFlags::XDP_COPY)?, BindMode::Copy)),
        BindMode::Auto => match open(iface, queue, o, BindFlags::XDP_ZEROCOPY) {
            Ok(s) => Ok((s, BindMode::Zerocopy)),
            Err(e) => {
                tracing::warn!("zero-copy bind on {iface} failed ({e:#}); using copy mode");
                Ok((open(iface, queue, o, BindFlags::XDP_COPY)?, BindMode::Copy))
            }
        },
    }
}

fn open(iface: &str, queue: u32, o: &XskOptions, bind: BindFlags) -> anyhow::Result<QueueSocket> {
    let ring = QueueSize::new(o.ring_size).context("ring_size")?;
    let umem_cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(4096).context("frame size")?)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .build()
        .context("UMEM config")?;
    let frames = NonZeroU32::new(o.frames).context("frames must not be 0")?;
    let (umem, descs) = Umem::new(umem_cfg, frames, false).map_err(|e| {
        // libxdp gives no errno here; these are the two causes seen
        // when xdhcpd runs without root (tests/lab_package.rs).
        anyhow::anyhow!(
            "creating the UMEM of queue {queue} ({} MiB): {e}; without root it takes \
                 CAP_NET_RAW (the AF_XDP socket), and CAP_IPC_LOCK or an RLIMIT_MEMLOCK \
                 (LimitMEMLOCK=) above the UMEM's size",
            (u64::from(o.frames) * 4096) >> 20
        )
    })?;
    let sock_cfg = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(bind | BindFlags::XDP_USE_NEED_WAKEUP)
        .build();
    let name = iface
        .parse()
        .map_err(|e| anyhow::anyhow!("interface name {iface:?}: {e:?}"))?;
    // SAFETY: xsk-rs asks for XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD when the
    // UMEM is shared and the (interface, queue) pair already bound; it is
    // set (the steering program is ours), and this UMEM is never shared:
    // one per queue. The UMEM's lifetime is xsk-rs's business (each queue
    // holds the socket, the socket holds the UMEM), see QueueSocket.
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
        tx_ring: o.ring_size,
    })
}

/// Opens one socket per slot, registers each in the XDP program's XSKMAP
/// and starts the workers. Returns the bind mode in use.
pub fn spawn_workers<H: FrameHandler + 'static>(
    iface: &Interface,
    steering: &mut Steering,
    xo: &XskOptions,
    opts: &WorkerOptions,
    slots: Vec<WorkerSlot<H>>,
    stop: StopFlag,
) -> anyhow::Result<(BindMode, Vec<JoinHandle<()>>)> {
    if (xo.frames / 2) < opts.batch as u32 {
        bail!(
            "frames ({}) must be at least twice the batch ({})",
            xo.frames,
            opts.batch
        );
    }
    let mut sockets = Vec::with_capacity(slots.len());
    let mut mode = xo.bind;
    for slot in &slots {
        // Once one queue settled the mode, the others follow it.
        let (s, got) = open_socket(&iface.name, slot.queue, xo, mode)?;
        mode = got;
        steering.register_socket(slot.queue, s.raw_fd())?;
        sockets.push(s);
    }
    let mut handles = Vec::with_capacity(slots.len());
    for (i, (slot, sock)) in slots.into_iter().zip(sockets).enumerate() {
        let opts = opts.clone();
        let stop = stop.clone();
        let h = std::thread::Builder::new()
            .name(format!("xsk-q{}", slot.queue))
            .spawn(move || {
                let core = pin_worker(&opts, i);
                tracing::info!(queue = slot.queue, ?core, "AF_XDP worker started");
                run(sock, slot, &opts, &stop);
            })
            .context("spawning a worker thread")?;
        handles.push(h);
    }
    Ok((mode, handles))
}

/// What the latency histograms need of a reply on its way to TX: its
/// kind and when its batch came off the RX ring.
#[derive(Clone, Copy)]
struct Meta {
    kind: Option<Kind>,
    at: Instant,
}

/// The worker loop: completions back to the free list, a batch from RX,
/// one engine call per frame, the batch to TX, the RX frames back to the
/// fill ring. At most one syscall per batch (the TX kick), none when the
/// kernel says it needs no wakeup. Replies whose lease record must be
/// synced first (durable journal) are parked, in ticket order, and join a
/// later TX batch once the journal says they are safe. OFFERs whose
/// address is being probed (conflict check) park apart, in probe-ticket
/// order, so that a probe's wait never holds up a durable ACK; once the
/// probe completes they leave, or go back to the free list if the address
/// answered.
fn run<H: FrameHandler>(
    mut s: QueueSocket,
    mut slot: WorkerSlot<H>,
    opts: &WorkerOptions,
    stop: &StopFlag,
) {
    let stats: &WorkerStats = &slot.stats;
    let batch = opts.batch;
    let half = s.descs.len() / 2;
    let mut free_tx: Vec<FrameDesc> = s.descs.split_off(half);
    // Frames the fill ring could not take yet (a fill ring smaller than
    // the RX half); offered again every loop.
    let mut spare_fill: Vec<FrameDesc> = std::mem::take(&mut s.descs);
    let mut rx_descs = vec![FrameDesc::default(); batch];
    let mut comp_descs = vec![FrameDesc::default(); batch];
    let mut tx_out: Vec<FrameDesc> = Vec::with_capacity(half);
    // Beside each of tx_out, in the same order.
    let mut tx_meta: Vec<Meta> = Vec::with_capacity(half);
    let mut parked: VecDeque<(u64, FrameDesc, Meta)> = VecDeque::with_capacity(half);
    // (probe ticket, journal ticket, frame).
    let mut probing: VecDeque<(u64, u64, FrameDesc, Meta)> = VecDeque::with_capacity(half);
    let mut latency = slot.latency.take();
    let mut scratch = vec![0u8; TX_FRAME_CAPACITY];
    let mut idle: u32 = 0;
    let mut next_report = Instant::now();

    while !stop.is_set() {
        // SAFETY (all ring calls below): every FrameDesc comes from this
        // socket's UMEM and sits in exactly one place at a time — the
        // fill/RX rings, `free_tx`, `parked`, `probing`, `tx_out`, or the
        // TX/completion rings.
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
        if n > 0 {
            idle = 0;
            let now = Instant::now();
            slot.handler.begin_batch(now);
            for d in &rx_descs[..n] {
                slot.handler.prefetch(unsafe { s.umem.data(d) }.contents());
            }
            slot.handler.prefetched();
            latency_tick(&mut latency, now, stats);
            // The kernel's own drop counters, one getsockopt a second.
            if now >= next_report {
                report_kernel_stats(&s.rx, stats);
                next_report = now + std::time::Duration::from_secs(1);
            }
            for d in &rx_descs[..n] {
                let req = unsafe { s.umem.data(d) };
                match free_tx.pop() {
                    Some(mut t) => {
                        let mut out = unsafe { s.umem.data_mut(&mut t) };
                        let mut c = out.cursor();
                        let room = c.buf_len().min(TX_FRAME_CAPACITY);
                        c.set_pos(room);
                        match slot.handler.handle(req.contents(), out.contents_mut()) {
                            Some(len) => {
                                out.cursor().set_pos(len);
                                let journal = slot.handler.hold_for();
                                let meta = Meta {
                                    kind: latency_kind(slot.handler.reply_kind()),
                                    at: now,
                                };
                                match (slot.handler.probe_for(), journal) {
                                    (0, 0) => {
                                        tx_out.push(t);
                                        tx_meta.push(meta);
                                    }
                                    (0, ticket) => {
                                        bump(&stats.parked);
                                        parked.push_back((ticket, t, meta));
                                    }
                                    (probe, _) => probing.push_back((probe, journal, t, meta)),
                                }
                            }
                            None => free_tx.push(t),
                        }
                    }
                    None => {
                        // No TX frame left: the decision still counts (the
                        // lease state must follow what the client will see
                        // when it retransmits), the reply is lost.
                        if slot.handler.handle(req.contents(), &mut scratch).is_some() {
                            bump(&stats.tx_dropped);
                        }
                    }
                }
            }
            add(&stats.rx, n as u64);
            if unsafe { s.fq.produce(&rx_descs[..n]) } != n {
                spare_fill.extend_from_slice(&rx_descs[..n]);
            }
        } else {
            idle = idle.saturating_add(1);
        }

        // Every loop, not only with OFFERs parked: the handler takes up
        // completed probes here (probation, stamps) also for replies that
        // found no TX frame. Without probes in use it is a constant.
        let probed = slot.handler.probed();
        while let Some(&(ticket, journal, t, meta)) = probing.front() {
            if ticket > probed {
                break;
            }
            probing.pop_front();
            if !slot.handler.released(ticket) {
                // The address answered: no OFFER of it.
                free_tx.push(t);
            } else if journal == 0 {
                tx_out.push(t);
                tx_meta.push(meta);
            } else {
                // Behind later tickets it leaves no earlier than they do.
                bump(&stats.parked);
                parked.push_back((journal, t, meta));
            }
        }
        if !parked.is_empty() || slot.handler.backlog() {
            let safe = slot.handler.durable();
            // One clock read for all the replies the journal released.
            let mut synced = None;
            let now = Instant::now();
            while let Some(&(ticket, t, meta)) = parked.front() {
                if ticket > safe {
                    // Too old to be worth sending (see PARK_LIMIT): its
                    // frame goes back, the client asks again.
                    if now.saturating_duration_since(meta.at) > PARK_LIMIT {
                        parked.pop_front();
                        free_tx.push(t);
                        bump(&stats.parked_expired);
                        continue;
                    }
                    break;
                }
                parked.pop_front();
                tx_out.push(t);
                tx_meta.push(meta);
                if let Some(r) = latency.as_mut() {
                    let now = *synced.get_or_insert_with(Instant::now);
                    r.record(Kind::JournalWait, meta.at, now);
                }
            }
        }
        let replied = !tx_out.is_empty();
        if replied {
            let sent = unsafe { s.tx.produce(&tx_out) };
            if sent == tx_out.len() {
                add(&stats.tx, sent as u64);
                tx_out.clear();
                if let Some(r) = latency.as_mut() {
                    let now = Instant::now();
                    for m in &tx_meta {
                        if let Some(k) = m.kind {
                            r.record(k, m.at, now);
                        }
                    }
                }
                tx_meta.clear();
            } else {
                // The ring takes all or nothing. Keep them, in order, for
                // the next round, once the kernel has completed some: a
                // durable ACK was released after its lease was bound and
                // must not be lost here. (With `ring_size` at least half
                // of `frames`, checked at start, every TX frame fits on
                // the ring at once and this does not happen.)
                bump(&stats.tx_ring_full);
            }
        }
        // Kick while descriptors wait on the TX ring. In copy mode one kick
        // sends at most the socket's TX budget (32 frames by default) and
        // the rest wait for the next: a burst larger than that — a durable
        // group's ACKs released at once — would otherwise wait for the
        // next reply or a poll timeout. `draining`: the kick took some,
        // more are left, so stay awake for the next. A ring the kick does
        // not shrink (link down; zero-copy, where the driver drains it on
        // its own) is looked at again within a millisecond instead.
        let mut on_ring = s.tx_on_ring();
        let mut draining = false;
        if on_ring > 0 && s.tx.needs_wakeup() {
            let _ = s.tx.wakeup();
            let left = s.tx_on_ring();
            draining = left > 0 && left < on_ring;
            on_ring = left;
        }
        if !replied && n == 0 {
            // Idle. Sleep in poll(2) once adaptive polling has spun long
            // enough — at once while replies wait for the journal: the
            // writer wakes us when they may leave, and spinning meanwhile
            // only keeps a core from the writer (on a small machine, the
            // core it needs).
            let waiting = !parked.is_empty() || !probing.is_empty();
            let sleep =
                opts.poll == PollMode::Adaptive && (idle > opts.idle_spins || waiting) && !draining;
            // An idle worker hands its histograms over too (a clock read
            // beside a poll(2), or once per `idle_spins` empty loops).
            if latency.is_some() && (sleep || idle.is_multiple_of(opts.idle_spins.max(1))) {
                latency_tick(&mut latency, Instant::now(), stats);
            }
            if sleep || s.fq.needs_wakeup() {
                let timeout = if sleep { opts.poll_timeout_ms } else { 0 };
                // Replies parked for the journal: the writer's eventfd
                // wakes us the moment they may leave; OFFERs parked for
                // probes: the probe service's.
                let wake = if parked.is_empty() {
                    None
                } else {
                    slot.handler.durable_fd()
                };
                let probe_wake = if probing.is_empty() {
                    None
                } else {
                    slot.handler.probe_fd()
                };
                let unwoken = (!parked.is_empty() && wake.is_none())
                    || (!probing.is_empty() && probe_wake.is_none());
                // A backlog is handed to the journal as it drains, and a
                // TX ring that did not drain is kicked again: look again
                // soon.
                let timeout = if slot.handler.backlog() || unwoken || on_ring > 0 {
                    timeout.min(1)
                } else {
                    timeout
                };
                // SAFETY: the socket's fd stays open while `s` owns its
                // queues, and the handler's eventfds while the handler
                // lives (FrameHandler::durable_fd, probe_fd); all outlive
                // the call.
                let (sock, wake, probe_wake) = unsafe {
                    (
                        BorrowedFd::borrow_raw(s.raw_fd()),
                        wake.map(|fd| BorrowedFd::borrow_raw(fd)),
                        probe_wake.map(|fd| BorrowedFd::borrow_raw(fd)),
                    )
                };
                stop.sleep_any(Some(sock), [wake, probe_wake], timeout);
            }
        }
    }
    report_kernel_stats(&s.rx, stats);
    if let Some(r) = latency {
        r.finish();
    }
    tracing::info!(
        queue = slot.queue,
        parked = parked.len(),
        probing = probing.len(),
        "AF_XDP worker stopped"
    );
}

/// Copies the socket's XDP_STATISTICS into the worker's counters, so the
/// stats file shows frames XDP redirected that never reached the worker.
fn report_kernel_stats(rx: &RxQueue, stats: &WorkerStats) {
    if let Ok(k) = rx.fd().xdp_statistics() {
        stats.xsk_rx_dropped.store(k.rx_dropped(), Relaxed);
        stats.xsk_rx_ring_full.store(k.rx_ring_full(), Relaxed);
        stats
            .xsk_fill_ring_empty
            .store(k.rx_fill_ring_empty_descs(), Relaxed);
        stats.xsk_tx_invalid.store(k.tx_invalid_descs(), Relaxed);
    }
}
