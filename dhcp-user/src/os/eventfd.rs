//! An eventfd as a wake-up bell between threads: one side signals, the
//! other sleeps in poll(2) on it beside its socket and resets it when it
//! wakes. The lease journal's writer rings a worker's when the replies it
//! parked may leave; `io::Stop` rings one for a shutdown.
use rustix::event::{EventfdFlags, eventfd};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// A non-blocking eventfd.
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        Ok(EventFd(eventfd(
            0,
            EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC,
        )?))
    }

    /// Makes the fd readable until someone [`reset`]s it. It cannot fail
    /// short of the counter overflowing (2^64 − 1 signals), which only
    /// means the fd is readable already.
    pub fn signal(&self) {
        let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
    }

    /// The raw fd, for callers that hand it on as a number.
    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Resets the eventfd `fd` (readable no more until the next signal). A
/// failed read only leaves it readable for the next wait.
pub fn reset(fd: BorrowedFd<'_>) {
    let mut n = [0u8; 8];
    let _ = rustix::io::read(fd, &mut n);
}
