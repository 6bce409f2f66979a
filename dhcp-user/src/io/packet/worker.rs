//! The AF_PACKET workers: all sockets opened before any thread starts,
//! then one pinned thread per socket around receive, serve, send.
use super::batch::{Batch, MAX_BATCH};
use super::socket::{join_fanout, open_socket, udp_port_guard};
use crate::config::PollMode;
use crate::handler::{FrameHandler, PARK_LIMIT};
use crate::io::iface::Interface;
use crate::io::{Stop, StopFlag, WorkerOptions, WorkerSlot, latency_tick, pin_worker};
use crate::latency::Recorder;
use crate::stats::{WorkerStats, add};
use anyhow::{Context, Result, bail};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Starts one worker thread per slot on `iface`, each pinned with
/// [`pin_worker`] and serving its own AF_PACKET socket. All sockets are
/// opened before any thread starts, so a setup error comes back here
/// with what failed. The workers exit at the first batch after `stop`.
pub fn spawn_workers<H: FrameHandler + 'static>(
    iface: &Interface,
    opts: &WorkerOptions,
    slots: Vec<WorkerSlot<H>>,
    stop: StopFlag,
) -> Result<Vec<JoinHandle<()>>> {
    if slots.is_empty() {
        bail!("AF_PACKET backend on {}: no worker slots", iface.name);
    }
    let mut sockets = Vec::with_capacity(slots.len());
    let mut group = None;
    for _ in 0..slots.len() {
        let sock = open_socket(iface)?;
        if slots.len() > 1 {
            group = Some(join_fanout(&sock, iface, group)?);
        }
        sockets.push(sock);
    }
    let guard = Arc::new(udp_port_guard(iface)?);

    let mut handles = Vec::with_capacity(slots.len());
    for (index, (slot, sock)) in slots.into_iter().zip(sockets).enumerate() {
        let opts = opts.clone();
        let stop_w = stop.clone();
        let guard = guard.clone();
        let ifindex = iface.index;
        let ifname = iface.name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("xdhcp-pkt{}", slot.queue))
            .spawn(move || {
                // Kept until the last worker ends: the port-67 guard must
                // outlive every socket that serves port 67.
                let _guard = guard;
                let core = pin_worker(&opts, index);
                tracing::debug!(
                    iface = %ifname, queue = slot.queue, ?core,
                    "AF_PACKET worker started"
                );
                run_worker(&sock, ifindex, &opts, slot, &stop_w);
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // Workers already running would otherwise serve a
                // daemon that is about to fail.
                stop.set();
                for h in handles {
                    let _ = h.join();
                }
                return Err(e).context(format!("starting AF_PACKET worker {index}"));
            }
        }
    }
    Ok(handles)
}

fn run_worker<H: FrameHandler>(
    sock: &OwnedFd,
    ifindex: u32,
    opts: &WorkerOptions,
    mut slot: WorkerSlot<H>,
    stop: &Stop,
) {
    let fd = sock.as_raw_fd();
    // A parking lot for OFFERs under a conflict probe, only when the
    // handler probes (as many as its probes may be outstanding).
    let park = if slot.handler.probe_fd().is_some() {
        PROBE_PARK
    } else {
        0
    };
    let mut batch = Batch::new(opts.batch.clamp(1, MAX_BATCH), ifindex, park);
    let stats: &WorkerStats = &slot.stats;
    let mut latency = slot.latency.take();
    let mut idle = 0u32;
    let mut spins = 0u32;
    let mut last_errno = 0;
    while !stop.is_set() {
        // OFFERs whose conflict probe completed leave first (and the
        // handler takes up completed probes, also of lost replies).
        let probed = slot.handler.probed();
        loop {
            let (ready, hold) = batch.release(probed, &mut slot.handler);
            if ready == 0 {
                break;
            }
            let ready = wait_durable(&mut slot.handler, hold, ready, stop, stats);
            if hold != 0 {
                batch.journal_waited(ready, &mut latency);
            }
            batch.send(fd, ready, stats, &mut latency);
        }
        match batch.receive(fd) {
            Ok(0) => {}
            Ok(n) => {
                idle = 0;
                let (replies, hold) = batch.serve(n, &mut slot.handler, stats);
                latency_tick(&mut latency, batch.arrived(), stats);
                let replies = wait_durable(&mut slot.handler, hold, replies, stop, stats);
                if hold != 0 {
                    batch.journal_waited(replies, &mut latency);
                }
                batch.send(fd, replies, stats, &mut latency);
                continue;
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::EAGAIN) => {}
                Some(libc::EINTR) => continue,
                errno => {
                    // An interface going down reports ENETDOWN once;
                    // say so once per kind, then wait instead of spinning.
                    let errno = errno.unwrap_or(-1);
                    if errno != last_errno {
                        tracing::warn!(queue = slot.queue, "AF_PACKET receive: {e}");
                        last_errno = errno;
                    }
                    wait_readable(sock, stop, opts.poll_timeout_ms);
                    continue;
                }
            },
        }
        // An idle worker hands its histograms over too: a clock read
        // beside each poll(2), or once per `idle_spins` empty loops.
        idle_latency_tick(&mut latency, opts, idle, &mut spins, stats);
        match opts.poll {
            PollMode::Spin => std::hint::spin_loop(),
            PollMode::Adaptive if batch.parked() > 0 => {
                // Sleep at once: the probe service rings when they may go.
                match slot.handler.probe_fd() {
                    Some(wake) => {
                        // SAFETY: the handler owns this eventfd for as
                        // long as it lives (FrameHandler::probe_fd).
                        let wake = unsafe { BorrowedFd::borrow_raw(wake) };
                        stop.sleep(Some(sock.as_fd()), Some(wake), opts.poll_timeout_ms);
                    }
                    None => wait_readable(sock, stop, 1),
                }
            }
            PollMode::Adaptive if idle >= opts.idle_spins => {
                wait_readable(sock, stop, opts.poll_timeout_ms)
            }
            PollMode::Adaptive => idle += 1,
        }
    }
    if let Some(r) = latency {
        r.finish();
    }
    tracing::debug!(
        queue = slot.queue,
        probing = batch.parked(),
        "AF_PACKET worker stopped"
    );
}

fn idle_latency_tick(
    rec: &mut Option<Recorder>,
    opts: &WorkerOptions,
    idle: u32,
    spins: &mut u32,
    stats: &WorkerStats,
) {
    if rec.is_none() {
        return;
    }
    let due = match opts.poll {
        PollMode::Adaptive => idle >= opts.idle_spins,
        PollMode::Spin => {
            *spins = spins.wrapping_add(1);
            spins.is_multiple_of(opts.idle_spins.max(1))
        }
    };
    if due {
        latency_tick(rec, std::time::Instant::now(), stats);
    }
}

/// OFFERs a worker keeps parked for conflict probes at most (2 KiB each,
/// allocated at start when the handler probes); beyond, an OFFER is lost
/// (`tx_dropped`) and the client retransmits.
const PROBE_PARK: usize = 1024;

/// Durable journal: this fallback keeps no parking lot for ACKs; the
/// `replies` written wait for the newest lease record among them (`hold`)
/// to be synced (one wait per batch, not per lease). Returns how many may
/// leave: all of them, or none when the wait passed [`PARK_LIMIT`].
fn wait_durable<H: FrameHandler>(
    handler: &mut H,
    hold: u64,
    replies: usize,
    stop: &Stop,
    stats: &WorkerStats,
) -> usize {
    if hold == 0 {
        return replies;
    }
    add(&stats.parked, replies as u64);
    let since = std::time::Instant::now();
    while handler.durable() < hold && !stop.is_set() {
        if since.elapsed() > PARK_LIMIT {
            add(&stats.parked_expired, replies as u64);
            return 0;
        }
        match handler.durable_fd() {
            Some(wake) => {
                // SAFETY: the handler owns this eventfd for as long as it
                // lives (see FrameHandler::durable_fd), past the call.
                let wake = unsafe { BorrowedFd::borrow_raw(wake) };
                stop.sleep(None, Some(wake), 1);
            }
            None => std::thread::sleep(std::time::Duration::from_micros(50)),
        }
    }
    replies
}

fn wait_readable(sock: &OwnedFd, stop: &Stop, timeout_ms: i32) {
    stop.sleep(Some(sock.as_fd()), None, timeout_ms);
}
