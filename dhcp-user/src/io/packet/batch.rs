//! One worker's preallocated batch: RX frames with their control buffers,
//! TX frames, and the recvmmsg/sendmmsg headers pointing at them. All of
//! it is allocated once when the worker starts; a batch allocates nothing.
//!
//! The frames are owned vectors that the worker reaches by safe indexing.
//! The kernel reaches them through the pointers in the message headers,
//! and those are taken from the vectors right before each call (after the
//! last write through a reference), so nothing the worker does between
//! calls can leave the kernel a stale pointer.
//!
//! The calls stay on `libc`: rustix has no recvmmsg, and its sendmmsg
//! cannot address a sockaddr_ll.
use super::ETH_P_ALL_BE;
use super::bpf::ETH_P_8021Q;
use crate::handler::{FrameHandler, TX_FRAME_CAPACITY};
use crate::io::latency_kind;
use crate::latency::{Kind, Recorder};
use crate::stats::{WorkerStats, add, bump};
use std::io;
use std::mem::size_of;
use std::os::fd::RawFd;
use std::time::Instant;

/// Largest frame a worker takes in; longer ones arrive truncated and are
/// dropped as malformed (DHCP messages are a few hundred bytes).
const RX_FRAME_CAPACITY: usize = 2048;
/// Room in front of each RX frame to put back the VLAN tag the kernel
/// stripped, by moving only the 12 address bytes.
const VLAN_HEADROOM: usize = 4;
const RX_STRIDE: usize = RX_FRAME_CAPACITY + VLAN_HEADROOM;
/// recvmmsg/sendmmsg take at most UIO_MAXIOV messages a call.
pub(super) const MAX_BATCH: usize = 1024;
/// Control buffer per message, in u64 words so cmsghdr is aligned; the
/// only control message enabled is PACKET_AUXDATA (40 bytes with header).
const CMSG_WORDS: usize = 8;

/// A reply's kind and its request batch's arrival, for the latency
/// histograms.
type Meta = (Option<Kind>, Instant);

pub(super) struct Batch {
    len: usize,
    /// `len` RX slots of RX_STRIDE bytes, the frame at VLAN_HEADROOM.
    rx_buf: Vec<u8>,
    rx_ctl: Vec<u64>,
    rx_iov: Vec<libc::iovec>,
    rx_msgs: Vec<libc::mmsghdr>,
    /// `len` TX slots of TX_FRAME_CAPACITY bytes.
    tx_buf: Vec<u8>,
    /// Length of the reply in each TX slot.
    tx_len: Vec<usize>,
    /// Each TX slot's reply kind and the arrival of its request's batch,
    /// for the latency histograms.
    tx_meta: Vec<Meta>,
    /// When the last batch was received.
    arrived: Instant,
    tx_iov: Vec<libc::iovec>,
    tx_msgs: Vec<libc::mmsghdr>,
    tx_dest: libc::sockaddr_ll,
    /// OFFERs waiting for their conflict probe, copied out of the TX
    /// slots so the batch can go on: `park_slots` frames of
    /// TX_FRAME_CAPACITY bytes (none when the handler probes nothing).
    park_buf: Vec<u8>,
    park_free: Vec<u16>,
    /// (probe ticket, journal ticket, slot, length, kind and arrival), in
    /// probe-ticket order.
    parked: std::collections::VecDeque<(u64, u64, u16, u16, Meta)>,
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
    /// A batch of `len` frames; `park_slots` OFFERs may wait for conflict
    /// probes at once (0: the handler probes nothing).
    pub(super) fn new(len: usize, ifindex: u32, park_slots: usize) -> Batch {
        let park_slots = park_slots.min(usize::from(u16::MAX));
        // SAFETY: sockaddr_ll is plain old data; all zeros is a valid value.
        let mut dest: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        dest.sll_family = libc::AF_PACKET as u16;
        dest.sll_protocol = ETH_P_ALL_BE;
        dest.sll_ifindex = ifindex as i32;
        let mut b = Batch {
            len,
            rx_buf: vec![0; len * RX_STRIDE],
            rx_ctl: vec![0; len * CMSG_WORDS],
            rx_iov: vec![empty_iovec(); len],
            rx_msgs: vec![empty_mmsghdr(); len],
            tx_buf: vec![0; len * TX_FRAME_CAPACITY],
            tx_len: vec![0; len],
            tx_meta: vec![(None, Instant::now()); len],
            arrived: Instant::now(),
            tx_iov: vec![empty_iovec(); len],
            tx_msgs: vec![empty_mmsghdr(); len],
            tx_dest: dest,
            park_buf: vec![0; park_slots * TX_FRAME_CAPACITY],
            park_free: (0..park_slots as u16).rev().collect(),
            parked: std::collections::VecDeque::with_capacity(park_slots),
        };
        for m in b.rx_msgs.iter_mut().chain(b.tx_msgs.iter_mut()) {
            m.msg_hdr.msg_iovlen = 1;
        }
        for m in &mut b.tx_msgs {
            m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
        }
        b
    }

    /// Takes the frames waiting on the socket, up to a batch, without
    /// blocking; `Err(EAGAIN)` when there are none.
    pub(super) fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        let buf = self.rx_buf.as_mut_ptr();
        let ctl = self.rx_ctl.as_mut_ptr();
        for (i, iov) in self.rx_iov.iter_mut().enumerate() {
            *iov = libc::iovec {
                iov_base: buf.wrapping_add(i * RX_STRIDE + VLAN_HEADROOM).cast(),
                iov_len: RX_FRAME_CAPACITY,
            };
        }
        let iov = self.rx_iov.as_mut_ptr();
        for (i, m) in self.rx_msgs.iter_mut().enumerate() {
            let h = &mut m.msg_hdr;
            h.msg_iov = iov.wrapping_add(i);
            h.msg_control = ctl.wrapping_add(i * CMSG_WORDS).cast();
            // The kernel shortened it on the last call.
            h.msg_controllen = CMSG_WORDS * 8;
        }
        // SAFETY: rx_msgs holds `len` headers, each pointing (as set just
        // above, with nothing touching the vectors since) at one iovec of
        // rx_iov, which points at RX_FRAME_CAPACITY bytes of its RX slot,
        // and at CMSG_WORDS words of rx_ctl: all inside this Batch, which
        // the call borrows mutably.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.rx_msgs.as_mut_ptr(),
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
    pub(super) fn serve<H: FrameHandler>(
        &mut self,
        n: usize,
        handler: &mut H,
        stats: &WorkerStats,
    ) -> (usize, u64) {
        add(&stats.rx, n as u64);
        self.arrived = Instant::now();
        handler.begin_batch(self.arrived);
        // The lease table's lines for the whole batch first (see
        // `FrameHandler::prefetch`). The frame as the kernel left it, its
        // VLAN tag (if any) in the metadata: the hint does not need the
        // tag, a client's key leaves the link out.
        for i in 0..n {
            if let Some(len) = frame_len(&self.rx_msgs[i]) {
                handler.prefetch(&self.rx_buf[i * RX_STRIDE + VLAN_HEADROOM..][..len]);
            }
        }
        handler.prefetched();
        let mut replies = 0;
        let mut hold = 0;
        for i in 0..n {
            let m = &self.rx_msgs[i];
            let Some(len) = frame_len(m) else {
                bump(&stats.malformed);
                continue;
            };
            let tag = vlan_tag(&m.msg_hdr);
            let slot = &mut self.rx_buf[i * RX_STRIDE..(i + 1) * RX_STRIDE];
            let rx: &[u8] = match tag {
                Some((tpid, tci)) => {
                    slot.copy_within(VLAN_HEADROOM..VLAN_HEADROOM + 12, 0);
                    slot[12..14].copy_from_slice(&tpid.to_be_bytes());
                    slot[14..16].copy_from_slice(&tci.to_be_bytes());
                    &slot[..len + VLAN_HEADROOM]
                }
                None => &slot[VLAN_HEADROOM..VLAN_HEADROOM + len],
            };
            let tx = &mut self.tx_buf[replies * TX_FRAME_CAPACITY..][..TX_FRAME_CAPACITY];
            match handler.handle(rx, tx) {
                Some(0) | None => {}
                Some(l) if l <= TX_FRAME_CAPACITY => match handler.probe_for() {
                    0 => {
                        self.tx_len[replies] = l;
                        self.tx_meta[replies] = (latency_kind(handler.reply_kind()), self.arrived);
                        replies += 1;
                        hold = hold.max(handler.hold_for());
                    }
                    probe => match self.park_free.pop() {
                        // Out of the batch into the parking lot; the TX
                        // slot serves the next reply.
                        Some(p) => {
                            let at = usize::from(p) * TX_FRAME_CAPACITY;
                            self.park_buf[at..at + l].copy_from_slice(&tx[..l]);
                            let meta = (latency_kind(handler.reply_kind()), self.arrived);
                            self.parked
                                .push_back((probe, handler.hold_for(), p, l as u16, meta));
                        }
                        None => bump(&stats.tx_dropped),
                    },
                },
                Some(_) => bump(&stats.tx_dropped),
            }
        }
        (replies, hold)
    }

    /// When the last batch was received.
    pub(super) fn arrived(&self) -> Instant {
        self.arrived
    }

    /// Records the journal's wait for the first `count` replies, synced
    /// by now.
    pub(super) fn journal_waited(&self, count: usize, rec: &mut Option<Recorder>) {
        if let Some(r) = rec {
            let now = Instant::now();
            for &(_, at) in &self.tx_meta[..count] {
                r.record(Kind::JournalWait, at, now);
            }
        }
    }

    /// OFFERs waiting for their conflict probe.
    pub(super) fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Moves the parked OFFERs whose probe completed (tickets up to
    /// `probed`) into the TX slots, from the first, dropping those whose
    /// address answered; returns how many were moved (at most a batch) and
    /// the journal ticket the newest of them waits for.
    pub(super) fn release<H: FrameHandler>(
        &mut self,
        probed: u64,
        handler: &mut H,
    ) -> (usize, u64) {
        let (mut count, mut hold) = (0, 0);
        while count < self.len {
            let Some(&(ticket, journal, p, l, meta)) = self.parked.front() else {
                break;
            };
            if ticket > probed {
                break;
            }
            self.parked.pop_front();
            self.park_free.push(p);
            if !handler.released(ticket) {
                continue;
            }
            let (at, l) = (usize::from(p) * TX_FRAME_CAPACITY, usize::from(l));
            self.tx_buf[count * TX_FRAME_CAPACITY..][..l]
                .copy_from_slice(&self.park_buf[at..at + l]);
            self.tx_len[count] = l;
            self.tx_meta[count] = meta;
            hold = hold.max(journal);
            count += 1;
        }
        (count, hold)
    }

    /// Sends the first `count` TX frames, with as few sendmmsg calls as
    /// errors allow: a frame the kernel refuses is dropped, and when the
    /// socket refuses outright (buffer full, device down) the rest of the
    /// batch is dropped rather than retried, so the worker never stalls.
    /// The latency of each frame the kernel took goes to `rec`.
    pub(super) fn send(
        &mut self,
        fd: RawFd,
        count: usize,
        stats: &WorkerStats,
        rec: &mut Option<Recorder>,
    ) {
        let buf = self.tx_buf.as_mut_ptr();
        for (i, (iov, &len)) in self.tx_iov.iter_mut().zip(&self.tx_len).enumerate() {
            *iov = libc::iovec {
                iov_base: buf.wrapping_add(i * TX_FRAME_CAPACITY).cast(),
                iov_len: len,
            };
        }
        let iov = self.tx_iov.as_mut_ptr();
        let dest = &raw mut self.tx_dest;
        for (i, m) in self.tx_msgs.iter_mut().enumerate() {
            m.msg_hdr.msg_iov = iov.wrapping_add(i);
            m.msg_hdr.msg_name = dest.cast();
        }
        let msgs = self.tx_msgs.as_mut_ptr();
        let mut done = 0;
        while done < count {
            // SAFETY: count ≤ len; headers done..count point (as set just
            // above, with nothing touching the vectors since) at one iovec
            // of tx_iov each, which points at its reply in tx_buf, and at
            // tx_dest: all inside this Batch, which the call borrows
            // mutably.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    msgs.wrapping_add(done),
                    (count - done) as u32,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                let r = r as usize;
                add(&stats.tx, r as u64);
                if let Some(rec) = rec.as_mut() {
                    let now = Instant::now();
                    for &(kind, at) in &self.tx_meta[done..done + r] {
                        if let Some(k) = kind {
                            rec.record(k, at, now);
                        }
                    }
                }
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
/// The length of a received frame that may be served: not cut short by
/// the RX slot, and an Ethernet header at least.
fn frame_len(m: &libc::mmsghdr) -> Option<usize> {
    let len = m.msg_len as usize;
    (m.msg_hdr.msg_flags & libc::MSG_TRUNC == 0 && (14..=RX_FRAME_CAPACITY).contains(&len))
        .then_some(len)
}

fn vlan_tag(hdr: &libc::msghdr) -> Option<(u16, u16)> {
    // SAFETY: `hdr` is one recvmmsg filled: msg_control points at its
    // words of rx_ctl (set in `receive`, not touched since) and
    // msg_controllen says how many bytes of them the kernel wrote.
    // CMSG_FIRSTHDR and CMSG_NXTHDR return null rather than step past
    // that, and the length check keeps the auxdata read inside the message.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `serve` asked of the handler, in order.
    #[derive(Debug, PartialEq)]
    enum Call {
        Prefetch(Vec<u8>),
        Prefetched,
        Handle(Vec<u8>),
    }

    #[derive(Default)]
    struct Recording(Vec<Call>);

    impl FrameHandler for Recording {
        fn begin_batch(&mut self, _now: Instant) {}
        fn handle(&mut self, rx: &[u8], _tx: &mut [u8]) -> Option<usize> {
            self.0.push(Call::Handle(rx.to_vec()));
            None
        }
        fn prefetch(&mut self, rx: &[u8]) {
            self.0.push(Call::Prefetch(rx.to_vec()));
        }
        fn prefetched(&mut self) {
            self.0.push(Call::Prefetched);
        }
    }

    #[test]
    fn the_whole_batch_is_prefetched_before_the_first_frame_is_served() {
        let mut b = Batch::new(4, 1, 0);
        // Frames of 20, 14 and 40 bytes, one cut short by its slot and
        // one shorter than an Ethernet header.
        let frames: [(usize, bool); 4] = [(20, false), (40, true), (8, false), (14, false)];
        for (i, &(len, truncated)) in frames.iter().enumerate() {
            let at = i * RX_STRIDE + VLAN_HEADROOM;
            b.rx_buf[at..at + len].fill(i as u8 + 1);
            b.rx_msgs[i].msg_len = len as u32;
            b.rx_msgs[i].msg_hdr.msg_flags = if truncated { libc::MSG_TRUNC } else { 0 };
        }
        let mut h = Recording::default();
        let stats = WorkerStats::default();
        b.serve(4, &mut h, &stats);
        let servable = [vec![1u8; 20], vec![4u8; 14]];
        let mut want: Vec<Call> = servable.iter().cloned().map(Call::Prefetch).collect();
        want.push(Call::Prefetched);
        want.extend(servable.iter().cloned().map(Call::Handle));
        assert_eq!(h.0, want);
        assert_eq!(
            stats.malformed.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }
}
