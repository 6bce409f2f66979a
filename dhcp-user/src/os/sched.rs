//! A thread's time slice under the kernel's fair scheduler (EEVDF,
//! Linux 6.6 and later), set with sched_setattr(2).
//!
//! Why a side thread asks for a short one: a durable ACK waits for the
//! journal writer, and the writer wakes (its channel, the end of an
//! fsync) on a core where something else runs without pause — a worker
//! polling its queue, or any busy process on the side cores. With the
//! default slice the woken writer may wait for the running task's slice
//! to end, which the kernel notices only at a tick (4 ms at HZ=250).
//! Since Linux 6.12 a task may ask for a slice of its own, and one
//! shorter than the running task's preempts it on wakeup
//! (`PREEMPT_SHORT`) when it is eligible and its deadline comes first.
//! The writer runs for tens of microseconds between its waits (a group
//! takes a few such runs), so the short slice costs nobody a share of the
//! core: it changes when the writer gets its turn, not how much of it. In
//! the lab (durable, 70,000 DORA/s) the DORA's median went from about
//! 2.1 ms to 0.5–0.7 ms with it.
//!
//! The slice is the asking thread's alone: threads it starts later (the
//! journal's compactor, which is long and heavy) get the default one
//! (`SCHED_FLAG_RESET_ON_FORK`).
//!
//! Older kernels take the call and ignore the slice; [`set_slice`] then
//! reports that none was set.
use std::io;
use std::time::Duration;

/// SCHED_OTHER and SCHED_BATCH, where the kernel takes a requested
/// slice. A thread the operator moved elsewhere (`chrt`: real time,
/// deadline, or SCHED_IDLE) is left as it is.
const FAIR: [u32; 2] = [libc::SCHED_OTHER as u32, libc::SCHED_BATCH as u32];

/// The kernel's bounds for a requested slice (`sched_setattr(2)`).
pub const MIN_SLICE: Duration = Duration::from_micros(100);
pub const MAX_SLICE: Duration = Duration::from_millis(100);

fn get() -> io::Result<libc::sched_attr> {
    // SAFETY: sched_attr is plain data; all zeros is a valid value.
    let mut a: libc::sched_attr = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::sched_attr>() as u32;
    // SAFETY: the kernel writes at most `size` bytes into `a`; pid 0 is
    // the calling thread.
    let r = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut a, size, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(a)
}

/// The calling thread's slice as the kernel reports it: on Linux 6.12 and
/// later its slice, the default one unless it asked for another; `None`
/// before 6.12 (the kernel reports none) and outside SCHED_OTHER and
/// SCHED_BATCH.
pub fn slice() -> io::Result<Option<Duration>> {
    let a = get()?;
    Ok((FAIR.contains(&a.sched_policy) && a.sched_runtime > 0)
        .then(|| Duration::from_nanos(a.sched_runtime)))
}

/// Asks for a slice of `want` (clamped to the kernel's bounds) for the
/// calling thread, keeping its policy and nice value; the threads it
/// starts from then on begin with the default slice. Returns the slice
/// the kernel now keeps: `None` where it keeps none (before Linux 6.12)
/// or the thread is not under SCHED_OTHER or SCHED_BATCH (then nothing is
/// changed).
pub fn set_slice(want: Duration) -> io::Result<Option<Duration>> {
    let mut a = get()?;
    if !FAIR.contains(&a.sched_policy) {
        return Ok(None);
    }
    a.size = std::mem::size_of::<libc::sched_attr>() as u32;
    // Reset on fork: the slice stays with this thread (an unprivileged
    // thread may set the flag, never clear it, so one set already stays).
    a.sched_flags = libc::SCHED_FLAG_RESET_ON_FORK as u64;
    a.sched_runtime = want.clamp(MIN_SLICE, MAX_SLICE).as_nanos() as u64;
    // SAFETY: `a` is a whole sched_attr of the size it names; pid 0 is
    // the calling thread.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_slice_is_kept_with_the_nice_value_and_not_inherited() {
        // Nice and slice are per thread: a thread of its own, so that the
        // test harness's threads keep theirs.
        std::thread::spawn(|| {
            let before = get().unwrap();
            if !FAIR.contains(&before.sched_policy) {
                // Run under chrt or SCHED_IDLE: `set_slice` leaves such a
                // thread alone, which is all there is to see.
                assert_eq!(set_slice(MIN_SLICE).unwrap(), None);
                return;
            }
            // A kernel with per-task slices reports one for every thread.
            let has_slices = before.sched_runtime != 0;
            // One step nicer than we run: raising one's own nice value
            // needs no privilege, whatever it starts at.
            let nice = (before.sched_nice + 1).min(19);
            // SAFETY: setpriority on the calling thread (tid 0).
            assert_eq!(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) }, 0);
            let got = set_slice(Duration::from_micros(150)).unwrap();
            assert_eq!(get().unwrap().sched_nice, nice, "the nice value is kept");
            if !has_slices {
                assert_eq!(got, None);
                return;
            }
            assert_eq!(got, Some(Duration::from_micros(150)));
            // Clamped to the kernel's bounds, not refused.
            assert_eq!(set_slice(Duration::ZERO).unwrap(), Some(MIN_SLICE));
            assert_eq!(slice().unwrap(), Some(MIN_SLICE));
            // A thread started now begins with the default slice.
            let child = std::thread::spawn(slice).join().unwrap().unwrap();
            assert!(child.is_some_and(|c| c > MIN_SLICE), "{child:?}");
        })
        .join()
        .unwrap();
    }
}
