//! The one way a worker sleeps: poll(2) on its socket, the eventfds that
//! say its parked replies may leave (journal, conflict probes), and the
//! stop eventfd.
use super::eventfd::reset;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use std::os::fd::BorrowedFd;

/// Sleeps until `sock` is readable, `wake` (an eventfd) is signalled or
/// `stop` (an eventfd too, never reset) is, at most `timeout_ms` (negative:
/// no limit), then resets `wake`. Errors are ignored: the result only
/// decides when the caller looks at its rings again, which reports any.
pub fn wait_for(
    sock: Option<BorrowedFd<'_>>,
    wake: Option<BorrowedFd<'_>>,
    stop: BorrowedFd<'_>,
    timeout_ms: i32,
) {
    wait_for_any(sock, [wake, None], stop, timeout_ms);
}

/// [`wait_for`] with up to two wake-up eventfds (a worker's journal and
/// its conflict probes), each reset if it was signalled.
pub fn wait_for_any(
    sock: Option<BorrowedFd<'_>>,
    wakes: [Option<BorrowedFd<'_>>; 2],
    stop: BorrowedFd<'_>,
    timeout_ms: i32,
) {
    let entry = |fd| PollFd::from_borrowed_fd(fd, PollFlags::IN);
    let mut fds = [entry(stop), entry(stop), entry(stop), entry(stop)];
    let mut n = 1;
    if let Some(fd) = sock {
        fds[n] = entry(fd);
        n += 1;
    }
    let first_wake = n;
    for fd in wakes.into_iter().flatten() {
        fds[n] = entry(fd);
        n += 1;
    }
    let timeout = u32::try_from(timeout_ms).ok().map(|ms| Timespec {
        tv_sec: i64::from(ms / 1000),
        tv_nsec: i64::from(ms % 1000) * 1_000_000,
    });
    let _ = poll(&mut fds[..n], timeout.as_ref());
    for (i, fd) in wakes.into_iter().flatten().enumerate() {
        if fds[first_wake + i].revents().contains(PollFlags::IN) {
            reset(fd);
        }
    }
}

/// Whether `fd` becomes readable within `timeout_ms`.
pub fn readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> bool {
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: i64::from(timeout_ms / 1000),
        tv_nsec: i64::from(timeout_ms % 1000) * 1_000_000,
    };
    poll(&mut fds, Some(&timeout)) == Ok(1)
}
