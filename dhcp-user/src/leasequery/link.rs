//! The fixed-size job a worker hands the leasequery service, and the
//! workers' end of its queue.
use crossbeam_channel::{Receiver, Sender, bounded};

/// Longest query frame taken (Ethernet, two VLAN tags, IPv4, UDP, BOOTP
/// with options up to an Ethernet MTU); a longer one is dropped and
/// counted like a full queue.
pub const JOB_FRAME: usize = 1536;

/// Queries waiting for the service, over all workers.
pub const QUEUE: usize = 256;

/// One query frame, copied out of the worker's RX buffer: no allocation,
/// the channel's slots are allocated once.
pub struct Job {
    len: u16,
    frame: [u8; JOB_FRAME],
}

impl Job {
    pub fn frame(&self) -> &[u8] {
        &self.frame[..usize::from(self.len)]
    }
}

/// A worker's way into the service.
#[derive(Clone)]
pub struct LeaseQueryLink {
    tx: Sender<Job>,
}

impl LeaseQueryLink {
    /// Hands `frame` to the service; `false` if the queue is full or the
    /// frame too long to take (the caller counts it).
    #[inline]
    pub fn submit(&self, frame: &[u8]) -> bool {
        let Ok(len) = u16::try_from(frame.len()) else {
            return false;
        };
        if frame.len() > JOB_FRAME {
            return false;
        }
        let mut job = Job {
            len,
            frame: [0; JOB_FRAME],
        };
        job.frame[..frame.len()].copy_from_slice(frame);
        // Full or, at shutdown, gone: either way not taken.
        self.tx.try_send(job).is_ok()
    }
}

/// The workers' link and the service's end of the queue.
pub fn queue(capacity: usize) -> (LeaseQueryLink, Receiver<Job>) {
    let (tx, rx) = bounded(capacity);
    (LeaseQueryLink { tx }, rx)
}
