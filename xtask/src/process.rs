//! The processes xtask starts, and xtask's own: whether it runs as root,
//! Ctrl-C during a long run, waiting for a child with a time limit and
//! stopping one. The lab, the daemon, Kea, tcpdump and the benches all
//! stop their children the same way, so the way is written once.
use anyhow::{Result, bail};
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// An error unless xtask runs as root; `what` names the command, e.g.
/// "the lab".
pub fn require_root(what: &str) -> Result<()> {
    if !is_root() {
        bail!("{what} needs root (network namespaces, XDP, AF_XDP); run it as root");
    }
    Ok(())
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// From now on Ctrl-C only sets [`interrupted`]: it still reaches the
/// children (perfdhcp then prints its final report, the servers stop),
/// and xtask stays alive to report what was measured and take the lab
/// down. A handler, unlike SIG_IGN, is not inherited across exec.
pub fn catch_sigint() {
    let handler: extern "C" fn(libc::c_int) = on_sigint;
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
}

/// Whether Ctrl-C came since [`catch_sigint`].
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Waits for a child for at most `limit`; `None` if it is still running.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` to a child and waits `limit` for its exit status;
/// `None` when it was still running then, and has been SIGKILLed and
/// reaped.
pub fn stop_child(
    child: &mut Child,
    signal: libc::c_int,
    limit: Duration,
) -> Result<Option<ExitStatus>> {
    if let Some(s) = child.try_wait()? {
        return Ok(Some(s));
    }
    // SAFETY: kill(2) has no memory-safety preconditions; try_wait just
    // found the child not yet reaped, so the pid is still its own.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = wait_bounded(child, limit)?;
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_child_that_ignores_the_signal_is_killed() {
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 30"])
            .spawn()
            .unwrap();
        // Let sh set its trap first.
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let status = stop_child(&mut child, libc::SIGTERM, Duration::from_millis(300)).unwrap();
        assert_eq!(status, None);
        assert!(started.elapsed() < Duration::from_secs(10));
        // Reaped: a second wait returns at once.
        assert!(child.try_wait().unwrap().is_some());
    }

    #[test]
    fn a_child_that_obeys_gives_its_status() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let status = stop_child(&mut child, libc::SIGTERM, Duration::from_secs(10)).unwrap();
        assert!(status.is_some_and(|s| !s.success()));
    }
}
