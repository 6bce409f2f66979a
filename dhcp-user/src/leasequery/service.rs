//! The leasequery thread: takes the workers' query frames, answers each
//! from the address index and sends the answer to the relay through an
//! AF_PACKET socket on the served interface (the query came in below the
//! kernel's UDP stack, on the XDP or AF_PACKET path, so its answer leaves
//! the same way: no UDP socket of ours holds port 67).
use super::Job;
use super::answer::{By, Served, answer};
use super::reply::{self, Query, Sender};
use crate::control::index::Index;
use crate::lease::journal::now_unix;
use crate::wire::dhcp::MessageType;
use crossbeam_channel::Receiver;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The service's counters (each written by its one thread).
#[derive(Debug, Default)]
pub struct LeaseQueryStats {
    pub active: AtomicU64,
    pub unassigned: AtomicU64,
    pub unknown: AtomicU64,
    /// Queries naming no address, client-id or MAC, or not parsed: not
    /// answered.
    pub unanswerable: AtomicU64,
    /// Answers the socket did not take.
    pub send_failed: AtomicU64,
}

/// Where answer frames go: the interface's AF_PACKET socket, or a test's.
pub trait Sink: Send + 'static {
    fn send(&mut self, frame: &[u8]) -> io::Result<()>;
}

/// A raw packet socket on one interface that only sends (protocol 0: it
/// receives nothing).
pub struct PacketSink {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSink {
    pub fn open(ifindex: u32) -> io::Result<PacketSink> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSink {
            // SAFETY: fd is a fresh descriptor nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            ifindex: ifindex as i32,
        })
    }
}

impl Sink for PacketSink {
    fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain data; zero is a valid value.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        to.sll_ifindex = self.ifindex;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: frame and to are valid for the lengths passed.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// What the service answers with.
pub struct Answering {
    pub index: Arc<Mutex<Index>>,
    pub served: Served,
    /// The interface's MAC address.
    pub mac: [u8; 6],
    pub dscp: u8,
}

/// The running service.
pub struct LeaseQueryService {
    thread: JoinHandle<()>,
    stats: Arc<LeaseQueryStats>,
}

impl LeaseQueryService {
    /// Answers the queries of `rx` until every worker's link is gone.
    pub fn start(
        rx: Receiver<Job>,
        with: Answering,
        mut sink: impl Sink,
    ) -> io::Result<LeaseQueryService> {
        let stats = Arc::new(LeaseQueryStats::default());
        let s = stats.clone();
        let thread = std::thread::Builder::new()
            .name("xdhcp-leasequery".into())
            .spawn(move || {
                let mut buf = vec![0u8; 2048];
                for job in rx.iter() {
                    let Some(len) = respond(job.frame(), &with, &s, &mut buf, now_unix()) else {
                        continue;
                    };
                    if let Err(e) = sink.send(&buf[..len]) {
                        s.send_failed.fetch_add(1, Relaxed);
                        tracing::debug!("leasequery: answer not sent: {e}");
                    }
                }
            })?;
        Ok(LeaseQueryService { thread, stats })
    }

    pub fn stats_handle(&self) -> Arc<LeaseQueryStats> {
        self.stats.clone()
    }

    /// Waits for the thread; call once the workers (and their links) are
    /// gone.
    pub fn join(self) {
        let _ = self.thread.join();
    }
}

/// The answer frame to the query `frame`, written into `buf`, counted.
pub fn respond(
    frame: &[u8],
    with: &Answering,
    stats: &LeaseQueryStats,
    buf: &mut [u8],
    now: u64,
) -> Option<usize> {
    let q = Query::parse(frame);
    let by = q
        .as_ref()
        .and_then(|q| By::of(q.ciaddr, q.client_id.as_deref(), q.htype, q.hwaddr()));
    let (Some(q), Some(by)) = (&q, by) else {
        stats.unanswerable.fetch_add(1, Relaxed);
        return None;
    };
    let a = {
        let index = with.index.lock().unwrap_or_else(|p| p.into_inner());
        answer(by, &index, &with.served, now)
    };
    if let Some(c) = stats.counter(a.kind) {
        c.fetch_add(1, Relaxed);
    }
    let from = Sender {
        mac: with.mac,
        server_id: with.served.server_id(a.subnet, q.giaddr),
        dscp: with.dscp,
    };
    reply::write(buf, q, &a, &from, now)
}

impl LeaseQueryStats {
    fn counter(&self, kind: MessageType) -> Option<&AtomicU64> {
        match kind {
            MessageType::LeaseActive => Some(&self.active),
            MessageType::LeaseUnassigned => Some(&self.unassigned),
            MessageType::LeaseUnknown => Some(&self.unknown),
            _ => None,
        }
    }
}
