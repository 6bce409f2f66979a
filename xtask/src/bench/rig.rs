//! What both benches set up: xdhcpd's config with a journal, a scratch
//! directory on a disk for the journals, and a load generator run with a
//! time limit.
use crate::daemon::temp_dir;
use crate::lab::run as run_cmd;
use crate::process::wait_bounded;
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Journals go here: a disk-backed file system on a stock Debian, unlike
/// /tmp on many systems (tmpfs, where fsync costs nothing).
pub(crate) const JOURNAL_BASE: &str = "/var/tmp";

/// xdhcpd in the lab: the /15 pool, a journal; both benches run it.
pub(crate) const CONFIG: &str = r#"
interface = "@INTERFACE@"
io = "xdp"
xdp_mode = "driver"
bind = "copy"
poll = "adaptive"
queues = @QUEUES@
server_id = "198.18.0.1"

[journal]
dir = "@JOURNAL_DIR@"
mode = "@MODE@"
max_delay_ms = 100
compact_after_mb = 64

[[subnet]]
prefix = "198.18.0.0/15"
pools = ["198.18.0.10-198.19.255.254"]
lease_time = 7200
"#;

/// [`CONFIG`] for the server end `interface`, its journal in `journal_dir`
/// in `mode` ("fast" or "durable"), one worker per queue of `queues`.
pub(crate) fn config(interface: &str, journal_dir: &Path, mode: &str, queues: u32) -> String {
    CONFIG
        .replace("@INTERFACE@", interface)
        .replace("@JOURNAL_DIR@", &journal_dir.to_string_lossy())
        .replace("@MODE@", mode)
        .replace("@QUEUES@", &queues.to_string())
}

/// A scratch directory on a disk-backed file system for the journals
/// (and Kea's lease file), removed however the bench ends.
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Scratch {
    /// `JOURNAL_BASE/NAME-PID`, with the type of the file system it is on;
    /// an error on tmpfs or ramfs, where fsync costs nothing, saying that
    /// `needs` (e.g. "the bench needs") a disk-backed one.
    pub(crate) fn on_disk(name: &str, needs: &str) -> Result<(Scratch, String)> {
        let scratch =
            Scratch(PathBuf::from(JOURNAL_BASE).join(format!("{name}-{}", std::process::id())));
        std::fs::create_dir_all(&scratch.0)
            .with_context(|| format!("creating {}", scratch.0.display()))?;
        let fs = fs_type(&scratch.0)?;
        ensure!(
            fs != "tmpfs" && fs != "ramfs",
            "{} is on {fs}: {needs} a disk-backed file system",
            scratch.0.display()
        );
        Ok((scratch, fs))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The file system type of the one holding `dir`, as `stat -f -c %T`
/// names it.
pub(crate) fn fs_type(dir: &Path) -> Result<String> {
    let out = run_cmd(Command::new("stat").args(["-f", "-c", "%T"]).arg(dir))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs a load generator to its end (killed after `limit`: its run time
/// plus a margin) and returns what it printed; its output goes to a file,
/// so it never blocks on a pipe nobody reads.
pub(crate) fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<String> {
    let dir = temp_dir("bench-journal")?;
    let log = dir.join("load.log");
    let file = std::fs::File::create(&log)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let started = Instant::now();
    let status = wait_bounded(&mut child, limit)?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    match status {
        // perfdhcp: 0 clean, 3 drops seen; anything else is a failure.
        Some(s) if matches!(s.code(), Some(0 | 3)) => Ok(text),
        Some(s) => bail!("{cmd:?} failed ({s}):\n{text}"),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd:?} still ran after {:?}:\n{text}", started.elapsed())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_every_placeholder() {
        let c = config("x", Path::new("/d"), "durable", 2);
        assert!(!c.contains('@'), "{c}");
        assert!(c.contains("queues = 2\n"), "{c}");
    }
}
