//! The AF_PACKET fallback backend, for hosts where the XDP program cannot
//! attach (`io = "packet"`).
//!
//! Each worker owns one raw packet socket on the interface. A classic BPF
//! filter in the kernel passes only IPv4 UDP frames to port 67 (untagged
//! or with one or two 802.1Q/802.1ad tags), so the worker never copies
//! ARP, SSH or anything else. Frames move in batches: one `recvmmsg` takes
//! up to `batch` frames into buffers allocated once at start, the handler
//! writes each reply into its own TX buffer, one `sendmmsg` sends them all.
//!
//! recvmmsg copies every frame once; a PACKET_MMAP (TPACKET_V3) RX ring
//! would save that copy and the syscall per batch. This backend is the
//! fallback, not the fast path (that is AF_XDP), so the simpler socket
//! calls were chosen.
//!
//! With several workers the sockets join one PACKET_FANOUT group. Its
//! hash and CPU modes do not spread DHCP: every DISCOVER is
//! 0.0.0.0:68 → 255.255.255.255:67, one flow as far as the kernel's hash
//! goes, and a relay's traffic is one flow too. The group therefore uses a
//! classic BPF fanout program that picks the worker by the client's
//! hardware address (BOOTP chaddr), so a client's retransmissions and its
//! whole DORA reach the same worker.
use super::iface::Interface;
use super::{
    FrameHandler, PollMode, Stop, StopFlag, TX_FRAME_CAPACITY, WorkerOptions, WorkerSlot,
    pin_worker,
};
use crate::stats::{WorkerStats, add, bump};
use anyhow::{Context, Result, anyhow, bail};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Largest frame a worker takes in; longer ones arrive truncated and are
/// dropped as malformed (DHCP messages are a few hundred bytes).
const RX_FRAME_CAPACITY: usize = 2048;
/// Room in front of each RX frame to put back the VLAN tag the kernel
/// stripped, by moving only the 12 address bytes.
const VLAN_HEADROOM: usize = 4;
const RX_STRIDE: usize = RX_FRAME_CAPACITY + VLAN_HEADROOM;
/// recvmmsg/sendmmsg take at most UIO_MAXIOV messages a call.
const MAX_BATCH: usize = 1024;
/// Control buffer per message, in u64 words so cmsghdr is aligned; the
/// only control message enabled is PACKET_AUXDATA (40 bytes with header).
const CMSG_WORDS: usize = 8;
/// Kernel receive buffer per worker socket, to ride out bursts while the
/// worker is busy with the previous batch.
const SOCKET_RCVBUF: libc::c_int = 4 << 20;
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

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
    let mut batch = Batch::new(opts.batch.clamp(1, MAX_BATCH), ifindex);
    let stats: &WorkerStats = &slot.stats;
    let mut idle = 0u32;
    let mut last_errno = 0;
    while !stop.is_set() {
        match batch.receive(fd) {
            Ok(0) => {}
            Ok(n) => {
                idle = 0;
                let (replies, hold) = batch.serve(n, &mut slot.handler, stats);
                // Durable journal: this fallback keeps no parking lot; the
                // whole batch waits for its newest lease record to be
                // synced (one wait per batch, not per lease).
                if hold > 0 {
                    add(&stats.parked, replies as u64);
                    while slot.handler.durable() < hold && !stop.is_set() {
                        match slot.handler.durable_fd() {
                            Some(wake) => super::wait_for(-1, wake, stop, 1),
                            None => std::thread::sleep(std::time::Duration::from_micros(50)),
                        }
                    }
                }
                batch.send(fd, replies, stats);
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
                    wait_readable(fd, stop, opts.poll_timeout_ms);
                    continue;
                }
            },
        }
        match opts.poll {
            PollMode::Spin => std::hint::spin_loop(),
            PollMode::Adaptive if idle >= opts.idle_spins => {
                wait_readable(fd, stop, opts.poll_timeout_ms)
            }
            PollMode::Adaptive => idle += 1,
        }
    }
    tracing::debug!(queue = slot.queue, "AF_PACKET worker stopped");
}

fn wait_readable(fd: RawFd, stop: &Stop, timeout_ms: i32) {
    super::wait_for(fd, -1, stop, timeout_ms);
}

/// A heap array whose elements are only ever reached through the pointer
/// taken at allocation, so the kernel's pointers into it (held in the
/// mmsghdr/iovec arrays) and ours never invalidate each other.
struct Region<T> {
    _owner: Vec<T>,
    ptr: *mut T,
    len: usize,
}

impl<T: Clone> Region<T> {
    fn new(len: usize, fill: T) -> Self {
        let mut owner = vec![fill; len];
        let ptr = owner.as_mut_ptr();
        Region {
            _owner: owner,
            ptr,
            len,
        }
    }

    /// Pointer to element `i`; only valid to use when `i` is below `len`.
    fn at(&self, i: usize) -> *mut T {
        debug_assert!(i < self.len);
        self.ptr.wrapping_add(i)
    }
}

/// One worker's preallocated batch: RX frames with their control
/// buffers, TX frames, and the message headers pointing at them.
struct Batch {
    len: usize,
    rx_buf: Region<u8>,
    rx_ctl: Region<u64>,
    rx_iov: Region<libc::iovec>,
    rx_msgs: Region<libc::mmsghdr>,
    tx_buf: Region<u8>,
    tx_iov: Region<libc::iovec>,
    tx_msgs: Region<libc::mmsghdr>,
    tx_dest: Region<libc::sockaddr_ll>,
}

fn empty_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

fn empty_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data; zero is null pointers and lengths.
    unsafe { std::mem::zeroed() }
}

impl Batch {
    fn new(len: usize, ifindex: u32) -> Batch {
        // SAFETY: sockaddr_ll is plain old data.
        let mut dest: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        dest.sll_family = libc::AF_PACKET as u16;
        dest.sll_protocol = ETH_P_ALL_BE;
        dest.sll_ifindex = ifindex as i32;
        let b = Batch {
            len,
            rx_buf: Region::new(len * RX_STRIDE, 0u8),
            rx_ctl: Region::new(len * CMSG_WORDS, 0u64),
            rx_iov: Region::new(len, empty_iovec()),
            rx_msgs: Region::new(len, empty_mmsghdr()),
            tx_buf: Region::new(len * TX_FRAME_CAPACITY, 0u8),
            tx_iov: Region::new(len, empty_iovec()),
            tx_msgs: Region::new(len, empty_mmsghdr()),
            tx_dest: Region::new(1, dest),
        };
        for i in 0..len {
            // SAFETY: every index is below `len`, the size of each Region
            // (times its stride), and the Regions live as long as `b`.
            unsafe {
                *b.rx_iov.at(i) = libc::iovec {
                    iov_base: b.rx_buf.at(i * RX_STRIDE + VLAN_HEADROOM).cast(),
                    iov_len: RX_FRAME_CAPACITY,
                };
                let h = &mut (*b.rx_msgs.at(i)).msg_hdr;
                h.msg_iov = b.rx_iov.at(i);
                h.msg_iovlen = 1;
                h.msg_control = b.rx_ctl.at(i * CMSG_WORDS).cast();
                h.msg_controllen = CMSG_WORDS * 8;

                *b.tx_iov.at(i) = libc::iovec {
                    iov_base: b.tx_buf.at(i * TX_FRAME_CAPACITY).cast(),
                    iov_len: 0,
                };
                let h = &mut (*b.tx_msgs.at(i)).msg_hdr;
                h.msg_iov = b.tx_iov.at(i);
                h.msg_iovlen = 1;
                h.msg_name = b.tx_dest.at(0).cast();
                h.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
            }
        }
        b
    }

    /// Takes the frames waiting on the socket, up to a batch, without
    /// blocking; `Err(EAGAIN)` when there are none.
    fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..self.len {
            // SAFETY: i < len; the kernel shortened it on the last call.
            unsafe { (*self.rx_msgs.at(i)).msg_hdr.msg_controllen = CMSG_WORDS * 8 };
        }
        // SAFETY: rx_msgs holds `len` headers whose buffers all live in
        // this Batch.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.rx_msgs.at(0),
                self.len as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Hands the `n` received frames to the handler; returns how many
    /// replies it wrote to the TX buffers (in order from the first) and the
    /// journal ticket the newest of them waits for (0: none).
    fn serve<H: FrameHandler>(
        &mut self,
        n: usize,
        handler: &mut H,
        stats: &WorkerStats,
    ) -> (usize, u64) {
        add(&stats.rx, n as u64);
        handler.begin_batch(Instant::now());
        let mut replies = 0;
        let mut hold = 0;
        for i in 0..n {
            // SAFETY: i < n ≤ len; recvmmsg filled header i.
            let (hdr, len) = unsafe {
                let m = &*self.rx_msgs.at(i);
                (&m.msg_hdr, m.msg_len as usize)
            };
            if hdr.msg_flags & libc::MSG_TRUNC != 0 || len < 14 {
                bump(&stats.malformed);
                continue;
            }
            let tag = vlan_tag(hdr);
            let base = self.rx_buf.at(i * RX_STRIDE);
            // SAFETY: slot i spans RX_STRIDE bytes from `base`; the frame
            // lies at VLAN_HEADROOM and is `len` ≤ RX_FRAME_CAPACITY long.
            let rx: &[u8] = unsafe {
                match tag {
                    Some((tpid, tci)) => {
                        std::ptr::copy(base.add(VLAN_HEADROOM), base, 12);
                        let tag = [tpid.to_be_bytes(), tci.to_be_bytes()];
                        std::ptr::copy_nonoverlapping(tag.as_flattened().as_ptr(), base.add(12), 4);
                        std::slice::from_raw_parts(base, len + VLAN_HEADROOM)
                    }
                    None => std::slice::from_raw_parts(base.add(VLAN_HEADROOM), len),
                }
            };
            // SAFETY: TX slot `replies` < len spans TX_FRAME_CAPACITY bytes
            // that nothing else references during the call.
            let tx = unsafe {
                std::slice::from_raw_parts_mut(
                    self.tx_buf.at(replies * TX_FRAME_CAPACITY),
                    TX_FRAME_CAPACITY,
                )
            };
            match handler.handle(rx, tx) {
                Some(0) | None => {}
                Some(l) if l <= TX_FRAME_CAPACITY => {
                    // SAFETY: replies < len.
                    unsafe { (*self.tx_iov.at(replies)).iov_len = l };
                    replies += 1;
                    hold = hold.max(handler.hold_for());
                }
                Some(_) => bump(&stats.tx_dropped),
            }
        }
        (replies, hold)
    }

    /// Sends the first `count` TX frames, with as few sendmmsg calls as
    /// errors allow: a frame the kernel refuses is dropped, and when the
    /// socket refuses outright (buffer full, device down) the rest of the
    /// batch is dropped rather than retried, so the worker never stalls.
    fn send(&mut self, fd: RawFd, count: usize, stats: &WorkerStats) {
        let mut done = 0;
        while done < count {
            // SAFETY: headers done..count are set up and point at TX
            // frames of this Batch.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.tx_msgs.at(done),
                    (count - done) as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                let r = r as usize;
                add(&stats.tx, r as u64);
                done += r;
                if done < count {
                    // sendmmsg stopped at a frame it could not send.
                    bump(&stats.tx_dropped);
                    done += 1;
                }
            } else if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            } else {
                add(&stats.tx_dropped, (count - done) as u64);
                break;
            }
        }
    }
}

/// The VLAN tag the kernel took off the frame, from PACKET_AUXDATA:
/// (TPID, TCI).
fn vlan_tag(hdr: &libc::msghdr) -> Option<(u16, u16)> {
    // SAFETY: the header's control buffer was filled by recvmmsg and
    // msg_controllen says how much of it; the CMSG macros stay inside it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET
                && (*c).cmsg_type == libc::PACKET_AUXDATA
                && (*c).cmsg_len as usize
                    >= libc::CMSG_LEN(size_of::<libc::tpacket_auxdata>() as u32) as usize
            {
                let aux: libc::tpacket_auxdata =
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID == 0 {
                    return None;
                }
                let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    aux.tp_vlan_tpid
                } else {
                    ETH_P_8021Q
                };
                return Some((tpid, aux.tp_vlan_tci));
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

/// Adds the way out when the OS error is a missing privilege.
fn os_error(what: String, err: io::Error) -> anyhow::Error {
    match err.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => {
            anyhow!("{what}: {err} — run as root or with CAP_NET_RAW")
        }
        _ => anyhow::Error::new(err).context(what),
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: val points at a T of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn new_socket(domain: i32, ty: i32, proto: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn attach_filter(
    fd: &OwnedFd,
    level: i32,
    name: i32,
    prog: &[libc::sock_filter],
) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    setsockopt(fd, level, name, &fprog)
}

/// One worker's raw socket, filtered before it is bound so not a single
/// unfiltered frame is queued on it.
fn open_socket(iface: &Interface) -> Result<OwnedFd> {
    let name = &iface.name;
    // Protocol 0: the socket receives nothing until bind names one.
    let sock = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
        .map_err(|e| os_error(format!("AF_PACKET socket on {name}"), e))?;
    attach_filter(
        &sock,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &dhcp_filter(),
    )
    .map_err(|e| os_error(format!("attaching the UDP/67 BPF filter on {name}"), e))?;
    // The kernel moves the outermost VLAN tag out of the frame before any
    // packet socket sees it; auxdata hands it back.
    setsockopt(&sock, libc::SOL_PACKET, libc::PACKET_AUXDATA, &1i32)
        .map_err(|e| os_error(format!("PACKET_AUXDATA on {name}"), e))?;
    // Our replies to relays are UDP/67 frames too.
    setsockopt(&sock, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32)
        .map_err(|e| os_error(format!("PACKET_IGNORE_OUTGOING on {name}"), e))?;
    if setsockopt(
        &sock,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        &SOCKET_RCVBUF,
    )
    .is_err()
    {
        // Without CAP_NET_ADMIN the kernel caps it at rmem_max.
        let _ = setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVBUF, &SOCKET_RCVBUF);
    }
    // SAFETY: sockaddr_ll is plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    // ETH_P_ALL rather than ETH_P_IP: a frame that still carries a tag
    // after the kernel took the outer one (QinQ) is not ETH_P_IP.
    sll.sll_protocol = ETH_P_ALL_BE;
    sll.sll_ifindex = iface.index as i32;
    // SAFETY: sll is a complete sockaddr_ll of the size passed.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(os_error(
            format!("binding the AF_PACKET socket to {name}"),
            io::Error::last_os_error(),
        ));
    }
    Ok(sock)
}

/// Joins `sock` to the workers' fanout group (creating it when `group`
/// is None) and returns the group id.
fn join_fanout(sock: &OwnedFd, iface: &Interface, group: Option<u16>) -> Result<u16> {
    // A fanout group receives through its own hook, which ignores the
    // member sockets' PACKET_IGNORE_OUTGOING; the group needs the flag too.
    let mode = libc::PACKET_FANOUT_CBPF | libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
    let what = || format!("PACKET_FANOUT group on {}", iface.name);
    match group {
        Some(id) => {
            setsockopt(
                sock,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                &(u32::from(id) | mode << 16),
            )
            .map_err(|e| os_error(what(), e))?;
            Ok(id)
        }
        None => {
            // The kernel picks an id no other group in this namespace uses.
            let val = (mode | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16;
            setsockopt(sock, libc::SOL_PACKET, libc::PACKET_FANOUT, &val)
                .map_err(|e| os_error(what(), e))?;
            attach_filter(
                sock,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT_DATA,
                &fanout_program(),
            )
            .map_err(|e| os_error(format!("{}: fanout program", what()), e))?;
            let mut val = 0u32;
            let mut len = size_of::<u32>() as libc::socklen_t;
            // SAFETY: val and len describe a u32 buffer.
            let r = unsafe {
                libc::getsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_FANOUT,
                    (&mut val as *mut u32).cast(),
                    &mut len,
                )
            };
            if r < 0 {
                return Err(os_error(
                    format!("{}: reading its id", what()),
                    io::Error::last_os_error(),
                ));
            }
            Ok(val as u16)
        }
    }
}

/// The UDP socket that keeps the kernel quiet on port 67.
///
/// The kernel's own stack gets a copy of every frame the workers get.
/// With no socket on UDP 67 it answers each unicast request (renewals,
/// relayed messages) with ICMP port unreachable, and relays and clients
/// may give up on the server for it. This socket holds the port and never
/// reads: a filter that accepts nothing drops each datagram before it is
/// queued, and the smallest receive buffer bounds what could pile up if
/// the filter were ever removed. SO_REUSEADDR and SO_BINDTODEVICE keep it
/// from standing in the way of other sockets on other interfaces.
fn udp_port_guard(iface: &Interface) -> Result<OwnedFd> {
    let name = &iface.name;
    let what = |step: &str| format!("UDP port 67 guard socket on {name}: {step}");
    let sock =
        new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).map_err(|e| os_error(what("socket"), e))?;
    setsockopt(&sock, libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32)
        .map_err(|e| os_error(what("SO_REUSEADDR"), e))?;
    let mut dev = [0u8; libc::IFNAMSIZ];
    let n = name.len().min(libc::IFNAMSIZ - 1);
    dev[..n].copy_from_slice(&name.as_bytes()[..n]);
    setsockopt(&sock, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &dev)
        .map_err(|e| os_error(what("SO_BINDTODEVICE"), e))?;
    setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVBUF, &1i32)
        .map_err(|e| os_error(what("SO_RCVBUF"), e))?;
    attach_filter(
        &sock,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &[stmt(BPF_RET_K, 0)],
    )
    .map_err(|e| os_error(what("drop-all filter"), e))?;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 67u16.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: sin is a complete sockaddr_in of the size passed.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EADDRINUSE) {
            bail!(
                "{}: {err} — is another DHCP server running on {name}?",
                what("bind 0.0.0.0:67")
            );
        }
        return Err(os_error(what("bind 0.0.0.0:67"), err));
    }
    Ok(sock)
}

// ---- classic BPF programs -------------------------------------------------

const ETH_P_IPV4: u32 = 0x0800;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u32 = 0x88a8;
const DHCP_SERVER_PORT: u32 = 67;
/// Where the last four bytes of BOOTP chaddr start, from the UDP header.
const CHADDR_TAIL_FROM_UDP: u32 = 8 + 28 + 2;
/// Ancillary load: 1 when the kernel took a VLAN tag off the frame.
const VLAN_TAG_PRESENT: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_VLAN_TAG_PRESENT) as u32;
/// Offsets in a socket filter on a raw packet socket count from the
/// Ethernet header.
const FROM_SOCKET_DATA: u32 = 0;
/// A fanout program runs before the packet socket puts the Ethernet header
/// back in front of the data; this base makes its offsets count from the
/// Ethernet header too.
const FROM_LINK_HEADER: u32 = libc::SKF_LL_OFF as u32;

const BPF_LDW_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const BPF_LDH_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
const BPF_LDB_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
const BPF_LDH_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
const BPF_LDW_IND: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_IND) as u16;
const BPF_LDX_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
const BPF_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const BPF_RSH_K: u16 = (libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K) as u16;
const BPF_XOR_X: u16 = (libc::BPF_ALU | libc::BPF_XOR | libc::BPF_X) as u16;
const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const BPF_TAX: u16 = (libc::BPF_MISC | libc::BPF_TAX) as u16;
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const BPF_RET_A: u16 = (libc::BPF_RET | libc::BPF_A) as u16;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// Where a conditional jump goes: on to the next instruction or to a
/// named place further down.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum To {
    Next,
    /// The kernel took one tag off already: one more may be in the frame.
    Stripped,
    StrippedTag2,
    Tag2,
    Tag3,
    Ipv4At(u32),
    Drop,
}

/// Builds a program whose jumps name places; `finish` turns the names
/// into the forward offsets classic BPF wants.
#[derive(Default)]
struct Asm {
    code: Vec<(libc::sock_filter, To, To)>,
    places: Vec<(To, usize)>,
}

impl Asm {
    fn place(&mut self, at: To) {
        self.places.push((at, self.code.len()));
    }
    fn op(&mut self, code: u16, k: u32) {
        self.code.push((stmt(code, k), To::Next, To::Next));
    }
    fn jump(&mut self, code: u16, k: u32, yes: To, no: To) {
        self.code.push((stmt(code, k), yes, no));
    }
    /// Dispatches on the ethertype at `at`: IPv4 goes to its header
    /// check, a VLAN tag to `tag` (or, with `tag` = Drop, nowhere).
    fn ethertype(&mut self, base: u32, at: u32, tag: To) {
        self.op(BPF_LDH_ABS, base.wrapping_add(at));
        if tag == To::Drop {
            self.jump(BPF_JEQ_K, ETH_P_IPV4, To::Ipv4At(at + 2), To::Drop);
        } else {
            self.jump(BPF_JEQ_K, ETH_P_IPV4, To::Ipv4At(at + 2), To::Next);
            self.jump(BPF_JEQ_K, ETH_P_8021Q.into(), tag, To::Next);
            self.jump(BPF_JEQ_K, ETH_P_8021AD, tag, To::Drop);
        }
    }
    fn finish(self) -> Vec<libc::sock_filter> {
        let offset = |from: usize, to: To| -> u8 {
            if to == To::Next {
                return 0;
            }
            let at = self
                .places
                .iter()
                .find(|(p, _)| *p == to)
                .map(|&(_, at)| at)
                .unwrap_or_else(|| panic!("BPF program jumps to {to:?}, which it never places"));
            u8::try_from(at.checked_sub(from + 1).expect("BPF jumps go forward only"))
                .expect("BPF jump within 255 instructions")
        };
        self.code
            .iter()
            .enumerate()
            .map(|(i, &(mut ins, yes, no))| {
                ins.jt = offset(i, yes);
                ins.jf = offset(i, no);
                ins
            })
            .collect()
    }
}

/// The shared part of both programs: find an IPv4 header behind at most
/// two VLAN tags (counting one the kernel already took off), check it
/// carries an unfragmented (or first-fragment) UDP datagram to port 67,
/// and leave X = IP header length for `found(asm, base, ip_offset)` to
/// finish. Every other frame ends at `ret #0`; so does a frame too short
/// for a load, as the kernel returns 0 from a load beyond the end.
/// Offsets count from the Ethernet header plus `base`.
fn udp67_program(base: u32, found: fn(&mut Asm, u32, u32)) -> Vec<libc::sock_filter> {
    let mut a = Asm::default();
    a.op(BPF_LDW_ABS, VLAN_TAG_PRESENT);
    a.jump(BPF_JEQ_K, 0, To::Next, To::Stripped);
    a.ethertype(base, 12, To::Tag2);
    a.place(To::Tag2);
    a.ethertype(base, 16, To::Tag3);
    a.place(To::Tag3);
    a.ethertype(base, 20, To::Drop);
    a.place(To::Stripped);
    a.ethertype(base, 12, To::StrippedTag2);
    a.place(To::StrippedTag2);
    a.ethertype(base, 16, To::Drop);
    for ip in [14, 18, 22] {
        a.place(To::Ipv4At(ip));
        a.op(BPF_LDB_ABS, base.wrapping_add(ip));
        a.op(BPF_AND_K, 0xf0);
        a.jump(BPF_JEQ_K, 0x40, To::Next, To::Drop);
        a.op(BPF_LDB_ABS, base.wrapping_add(ip + 9));
        a.jump(BPF_JEQ_K, libc::IPPROTO_UDP as u32, To::Next, To::Drop);
        // A later fragment has no UDP header where one is looked for.
        a.op(BPF_LDH_ABS, base.wrapping_add(ip + 6));
        a.jump(BPF_JSET_K, 0x1fff, To::Drop, To::Next);
        a.op(BPF_LDX_MSH, base.wrapping_add(ip));
        a.op(BPF_LDH_IND, base.wrapping_add(ip + 2));
        a.jump(BPF_JEQ_K, DHCP_SERVER_PORT, To::Next, To::Drop);
        found(&mut a, base, ip);
    }
    a.place(To::Drop);
    a.op(BPF_RET_K, 0);
    a.finish()
}

/// The worker sockets' filter: keep IPv4 UDP/67 frames whole.
fn dhcp_filter() -> Vec<libc::sock_filter> {
    udp67_program(FROM_SOCKET_DATA, |a, _, _| a.op(BPF_RET_K, u32::MAX))
}

/// The fanout program: the kernel sends a frame to member
/// `result % members`; the result folds the last four bytes of chaddr
/// (the first two are mostly the vendor's). Frames that are not DHCP go
/// to member 0, whose filter drops them.
fn fanout_program() -> Vec<libc::sock_filter> {
    udp67_program(FROM_LINK_HEADER, |a, base, ip| {
        a.op(BPF_LDW_IND, base.wrapping_add(ip + CHADDR_TAIL_FROM_UDP));
        a.op(BPF_TAX, 0);
        a.op(BPF_RSH_K, 16);
        a.op(BPF_XOR_X, 0);
        a.op(BPF_RET_A, 0);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program the way the kernel does for the
    /// instructions these programs use. `p` starts at the Ethernet header
    /// (where both the socket filter's data and the link-layer base
    /// point); a load beyond the frame returns 0.
    fn run(prog: &[libc::sock_filter], p: &[u8], tag_stripped: bool) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let load = |k: u32, n: usize| -> Option<u32> {
            if k == VLAN_TAG_PRESENT {
                return Some(tag_stripped.into());
            }
            let off = match k as i32 {
                k if k >= 0 => k as usize,
                k if (libc::SKF_LL_OFF..libc::SKF_NET_OFF).contains(&k) => {
                    (k - libc::SKF_LL_OFF) as usize
                }
                _ => panic!("load at {k:#x} not modelled"),
            };
            let b = p.get(off..off + n)?;
            Some(b.iter().fold(0, |v, &b| v << 8 | u32::from(b)))
        };
        loop {
            let ins = prog[pc];
            pc += 1;
            let k = ins.k;
            let loaded = match ins.code {
                BPF_LDW_ABS => load(k, 4),
                BPF_LDH_ABS => load(k, 2),
                BPF_LDB_ABS => load(k, 1),
                BPF_LDH_IND => load(x.wrapping_add(k), 2),
                BPF_LDW_IND => load(x.wrapping_add(k), 4),
                _ => Some(a),
            };
            let Some(loaded) = loaded else { return 0 };
            match ins.code {
                BPF_LDW_ABS | BPF_LDH_ABS | BPF_LDB_ABS | BPF_LDH_IND | BPF_LDW_IND => a = loaded,
                BPF_LDX_MSH => match load(k, 1) {
                    Some(v) => x = (v & 0xf) * 4,
                    None => return 0,
                },
                BPF_AND_K => a &= k,
                BPF_RSH_K => a >>= k,
                BPF_XOR_X => a ^= x,
                BPF_TAX => x = a,
                BPF_JEQ_K | BPF_JSET_K => {
                    let yes = if ins.code == BPF_JEQ_K {
                        a == k
                    } else {
                        a & k != 0
                    };
                    pc += usize::from(if yes { ins.jt } else { ins.jf });
                }
                BPF_RET_K => return k,
                BPF_RET_A => return a,
                c => panic!("instruction {c:#x} not modelled"),
            }
        }
    }

    /// A DHCP frame as a packet socket sees it: `tags` are the VLAN tags
    /// still in the frame; `stripped` says whether the kernel took one more
    /// off into the packet's metadata.
    struct Frame {
        tags: Vec<u16>,
        stripped: bool,
        ihl: u8,
        proto: u8,
        frag: u16,
        dport: u16,
        chaddr: [u8; 6],
        ethertype: u16,
    }

    impl Default for Frame {
        fn default() -> Self {
            Frame {
                tags: vec![],
                stripped: false,
                ihl: 5,
                proto: 17,
                frag: 0,
                dport: 67,
                chaddr: [0x02, 0, 0, 0, 0, 1],
                ethertype: 0x0800,
            }
        }
    }

    impl Frame {
        fn bytes(&self) -> Vec<u8> {
            let mut f = vec![0xff; 6];
            f.extend([0x02, 0, 0, 0, 0, 9]);
            for (i, tpid) in self.tags.iter().enumerate() {
                f.extend(tpid.to_be_bytes());
                f.extend((100 + i as u16).to_be_bytes());
            }
            f.extend(self.ethertype.to_be_bytes());
            let mut ip = vec![0u8; usize::from(self.ihl) * 4];
            ip[0] = 0x40 | self.ihl;
            ip[6..8].copy_from_slice(&self.frag.to_be_bytes());
            ip[8] = 64;
            ip[9] = self.proto;
            f.extend(ip);
            f.extend(68u16.to_be_bytes());
            f.extend(self.dport.to_be_bytes());
            f.extend([0, 0, 0, 0]);
            let mut bootp = vec![0u8; 240];
            bootp[0] = 1;
            bootp[28..34].copy_from_slice(&self.chaddr);
            f.extend(bootp);
            f
        }

        fn filter(&self) -> u32 {
            run(&dhcp_filter(), &self.bytes(), self.stripped)
        }

        fn fanout(&self) -> u32 {
            run(&fanout_program(), &self.bytes(), self.stripped)
        }
    }

    fn passes(f: Frame) -> bool {
        f.filter() != 0
    }

    fn tagged(tags: &[u16], stripped: bool) -> Frame {
        Frame {
            tags: tags.to_vec(),
            stripped,
            ..Default::default()
        }
    }

    #[test]
    fn filter_keeps_udp67_behind_up_to_two_tags() {
        assert_eq!(Frame::default().filter(), u32::MAX);
        for (tags, stripped) in [
            (&[][..], true),
            (&[0x8100][..], false),
            (&[0x88a8][..], false),
            (&[0x8100][..], true),
            (&[0x88a8, 0x8100][..], false),
            (&[0x8100, 0x8100][..], false),
        ] {
            assert!(passes(tagged(tags, stripped)), "{tags:x?} {stripped}");
        }
        assert!(passes(Frame {
            ihl: 6,
            ..Default::default()
        }));
        assert!(passes(Frame {
            ihl: 15,
            tags: vec![0x8100],
            stripped: true,
            ..Default::default()
        }));
        // Don't-fragment, and the first fragment of a datagram.
        assert!(passes(Frame {
            frag: 0x4000,
            ..Default::default()
        }));
        assert!(passes(Frame {
            frag: 0x2000,
            ..Default::default()
        }));
    }

    #[test]
    fn filter_drops_everything_else() {
        let drops = |f: Frame| assert_eq!(f.filter(), 0);
        drops(Frame {
            dport: 68,
            ..Default::default()
        });
        drops(Frame {
            dport: 0x4300,
            ..Default::default()
        });
        drops(Frame {
            proto: 6,
            ..Default::default()
        });
        drops(Frame {
            proto: 1,
            ..Default::default()
        });
        drops(Frame {
            frag: 0x0001,
            ..Default::default()
        });
        drops(Frame {
            frag: 0x2000 | 185,
            ..Default::default()
        });
        drops(Frame {
            ethertype: 0x0806,
            ..Default::default()
        });
        drops(Frame {
            ethertype: 0x86dd,
            ..Default::default()
        });
        // Three tags, however many of them the kernel took off.
        drops(tagged(&[0x8100; 3], false));
        drops(tagged(&[0x8100; 2], true));
        drops(tagged(&[0x9100], false));
        let mut v6 = Frame::default().bytes();
        v6[14] = 0x65;
        assert_eq!(run(&dhcp_filter(), &v6, false), 0);
        let whole = Frame::default().bytes();
        for cut in [0, 13, 14, 30, 34, 35] {
            assert_eq!(run(&dhcp_filter(), &whole[..cut], false), 0, "cut at {cut}");
        }
        assert_ne!(run(&dhcp_filter(), &whole[..38], false), 0);
    }

    #[test]
    fn fanout_follows_chaddr() {
        let a = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
        let want = 0x2233_4455 ^ 0x2233;
        for (tags, stripped, ihl) in [
            (&[][..], false, 5),
            (&[][..], true, 7),
            (&[0x8100][..], false, 7),
            (&[0x8100][..], true, 5),
            (&[0x88a8, 0x8100][..], false, 5),
        ] {
            let f = Frame {
                chaddr: a,
                ihl,
                ..tagged(tags, stripped)
            };
            assert_eq!(f.fanout(), want, "{tags:x?} {stripped}");
        }
        let mut spread = [0usize; 4];
        for i in 0..=255u8 {
            let f = Frame {
                chaddr: [0x02, 0, 0, 0, 0, i],
                ..Default::default()
            };
            spread[f.fanout() as usize % 4] += 1;
        }
        assert_eq!(spread, [64; 4]);
        let dns = Frame {
            dport: 53,
            ..Default::default()
        };
        assert_eq!(dns.fanout(), 0);
    }
}
