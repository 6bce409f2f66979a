//! How the writer wakes a worker that sleeps while replies wait for the
//! journal: an eventfd per producer, written after each group that moved
//! the producer's durable mark. Without it a sleeping worker would only
//! see the mark at its next poll timeout or frame, and every parked ACK
//! would wait that long on top of the sync. (`io::Stop` wakes sleeping
//! workers for a shutdown with one too.)
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub(crate) struct Wake(OwnedFd);

impl Wake {
    pub(crate) fn new() -> io::Result<Wake> {
        // SAFETY: plain syscall; the fd is owned from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        Ok(Wake(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Makes the fd readable until the worker drains it. Runs on the
    /// writer thread, once per producer per group.
    pub(crate) fn signal(&self) {
        let one = 1u64;
        // SAFETY: 8 bytes from a live u64 into our eventfd. It cannot fail
        // short of the counter overflowing (2^64 − 1 signals), which only
        // means the fd is already readable.
        unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}
