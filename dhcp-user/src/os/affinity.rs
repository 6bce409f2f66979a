//! The CPUs a thread may run on (sched_setaffinity(2)): the daemon keeps
//! its side threads off the cores its workers poll on (see
//! `io::keep_side_threads_off`).
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
use std::io;

/// The CPUs the calling thread may run on, in order.
pub fn current() -> io::Result<Vec<usize>> {
    let set = sched_getaffinity(None)?;
    Ok((0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect())
}

/// Lets the calling thread run on `cpus` only; the threads it starts from
/// then on inherit that.
pub fn set_current(cpus: &[usize]) -> io::Result<()> {
    let mut set = CpuSet::new();
    for &c in cpus.iter().filter(|&&c| c < CpuSet::MAX_CPU) {
        set.set(c);
    }
    sched_setaffinity(None, &set)?;
    Ok(())
}
