//! The generator over an AF_PACKET socket, for hosts where XDP cannot
//! attach (`--io packet`). One worker: a classic BPF filter passes only
//! IPv4 UDP to port 67 or 68, `recvmmsg` takes a batch, `sendmmsg` sends
//! one; buffers are allocated once. The kernel also sees every reply (it
//! drops them: nothing listens on port 68 here), and frames copy once in
//! each direction; this is the fallback, not the fast path.
use super::attack::Fleets;
use super::counters::{GenCounters, bump};
use anyhow::{Context, Result};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;
use xdhcp::config::PollMode;
use xdhcp::handler::TX_FRAME_CAPACITY;
use xdhcp::io::WorkerOptions;

const RX_FRAME: usize = 2048;
const MAX_BATCH: usize = 1024;

/// IPv4, UDP, not a fragment, destination port 67 or 68.
const FILTER: [libc::sock_filter; 12] = [
    op(0x28, 0, 0, 12),     // ldh [12]            ethertype
    op(0x15, 0, 9, 0x0800), // jeq IPv4 ? next : reject
    op(0x30, 0, 0, 23),     // ldb [23]            IP protocol
    op(0x15, 0, 7, 17),     // jeq UDP ? next : reject
    op(0x28, 0, 0, 20),     // ldh [20]            flags + fragment offset
    op(0x45, 5, 0, 0x1fff), // jset fragment ? reject : next
    op(0xb1, 0, 0, 14),     // ldxb 4*([14]&0xf)   IP header length
    op(0x48, 0, 0, 16),     // ldh [x+16]          UDP destination port
    op(0x15, 1, 0, 68),     // jeq 68 ? accept : next
    op(0x15, 0, 1, 67),     // jeq 67 ? accept : reject
    op(0x06, 0, 0, 0xffff), // accept
    op(0x06, 0, 0, 0),      // reject
];

const fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// A raw socket on `if_index`, filtered, non-blocking, deaf to what this
/// host sends (our own relayed requests go to port 67 too).
pub fn open(if_index: u32) -> Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            proto.into(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error())
            .context("opening an AF_PACKET socket (needs root or CAP_NET_RAW)");
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let prog = libc::sock_fprog {
        len: FILTER.len() as u16,
        filter: FILTER.as_ptr() as *mut libc::sock_filter,
    };
    setsockopt(&sock, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
        .context("attaching the socket filter")?;
    setsockopt(&sock, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32)
        .context("PACKET_IGNORE_OUTGOING")?;
    setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVBUF, &(4i32 << 20)).context("SO_RCVBUF")?;
    // SAFETY: sockaddr_ll is plain old data; all zeroes is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = if_index as i32;
    // SAFETY: addr is a valid sockaddr_ll of the size given.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error()).context("binding the AF_PACKET socket");
    }
    Ok(sock)
}

fn setsockopt<T>(sock: &OwnedFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: value points at a live T of the size given.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as u32,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Buffers and message headers for one direction, set up once; the
/// kernel's pointers into `bufs` stay valid because it never grows.
struct Batch {
    bufs: Vec<u8>,
    stride: usize,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new(n: usize, stride: usize) -> Batch {
        let mut bufs = vec![0u8; n * stride];
        let base = bufs.as_mut_ptr();
        let mut iovs: Vec<libc::iovec> = (0..n)
            .map(|i| libc::iovec {
                iov_base: base.wrapping_add(i * stride).cast(),
                iov_len: stride,
            })
            .collect();
        let iov_base = iovs.as_mut_ptr();
        let msgs = (0..n)
            .map(|i| {
                // SAFETY: mmsghdr is plain old data; all zeroes is valid.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_iov = iov_base.wrapping_add(i);
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        Batch {
            bufs,
            stride,
            iovs,
            msgs,
        }
    }

    fn buf(&self, i: usize) -> &[u8] {
        &self.bufs[i * self.stride..(i + 1) * self.stride]
    }

    fn buf_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i * self.stride..(i + 1) * self.stride]
    }
}

/// Runs `fleet` over `sock` until it is done or `stop` is set.
pub fn run(
    sock: &OwnedFd,
    fleet: &mut Fleets,
    counters: &GenCounters,
    opts: &WorkerOptions,
    stop: &AtomicBool,
    t0: Instant,
) {
    let fd = sock.as_raw_fd();
    let batch = opts.batch.clamp(1, MAX_BATCH);
    let mut rx = Batch::new(batch, RX_FRAME);
    let mut tx = Batch::new(batch, TX_FRAME_CAPACITY);
    let mut idle = 0u32;
    // Frames built but not yet accepted by the kernel: [pending_from, pending_to).
    let (mut pending_from, mut pending_to) = (0usize, 0usize);
    while !stop.load(Relaxed) {
        let now_ns = t0.elapsed().as_nanos() as u64;
        // SAFETY: msgs, iovs and bufs were set up together and outlive the call.
        let got = unsafe {
            libc::recvmmsg(
                fd,
                rx.msgs.as_mut_ptr(),
                batch as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let got = if got > 0 { got as usize } else { 0 };
        for i in 0..got {
            let len = (rx.msgs[i].msg_len as usize).min(RX_FRAME);
            fleet.receive(now_ns, &rx.buf(i)[..len]);
        }
        fleet.drain_inbox();
        fleet.tick(now_ns);

        if pending_from == pending_to {
            pending_from = 0;
            pending_to = 0;
            while pending_to < batch {
                match fleet.next_frame(now_ns, tx.buf_mut(pending_to)) {
                    Some(len) => {
                        tx.iovs[pending_to].iov_len = len;
                        pending_to += 1;
                    }
                    None => break,
                }
            }
        } else if fleet.has_ready() {
            bump(&counters.tx_full);
        }
        let mut sent = 0;
        if pending_from < pending_to {
            // SAFETY: as for recvmmsg; the headers from pending_from on are
            // consecutive and each names one filled buffer.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    tx.msgs.as_mut_ptr().add(pending_from),
                    (pending_to - pending_from) as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                sent = n as usize;
                pending_from += sent;
            }
        }
        if fleet.is_done(now_ns) && pending_from == pending_to {
            break;
        }
        if got == 0 && sent == 0 {
            idle = idle.saturating_add(1);
            if opts.poll == PollMode::Adaptive && idle > opts.idle_spins {
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd; 1 ms so timers keep turning.
                unsafe { libc::poll(&mut pfd, 1, 1) };
            }
        } else {
            idle = 0;
        }
    }
}
