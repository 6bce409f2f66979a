//! An xdhcpd running inside the lab's server namespace, watched through
//! its stats file.
use crate::lab::Lab;
use crate::process::stop_child;
use crate::workspace;
use anyhow::{Context, Result, bail};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long the daemon may take to load, attach and write its first stats.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Stats refresh period asked of the daemon: short, so tests see counters
/// settle quickly.
pub const STATS_INTERVAL_MS: u64 = 200;

/// A running xdhcpd. Its config, stats file and logs live in a temp dir of
/// its own.
pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    stats_file: PathBuf,
    log_file: PathBuf,
}

/// How a daemon is started beyond its config: for one that does not run
/// as root (tests/lab_package.rs runs it as the systemd unit would).
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// A command that runs the daemon as its last argument, by exec (so
    /// the pid stays the daemon's): `setpriv ...`, `prlimit ...`.
    pub prefix: Vec<String>,
    /// The uid and gid the prefix runs the daemon as: its directory (the
    /// config, the stats file) is given to them.
    pub owner: Option<(u32, u32)>,
}

impl Daemon {
    /// Writes `config_toml`, starts `bin` in the lab's server namespace and
    /// waits until it has written its stats file (it is serving then). If
    /// the daemon exits first, the error carries its stderr.
    /// Also serves `xdhcpecho`, which takes the same flags.
    pub fn start(lab: &Lab, bin: &Path, config_toml: &str) -> Result<Daemon> {
        Self::start_with(lab, bin, config_toml, &Launch::default())
    }

    /// [`Daemon::start`] through `launch`'s prefix, as its owner.
    pub fn start_with(lab: &Lab, bin: &Path, config_toml: &str, launch: &Launch) -> Result<Daemon> {
        Self::start_in(&lab.srv_ns, bin, config_toml, launch)
    }

    /// [`Daemon::start_with`] in network namespace `ns` (one of the HA
    /// lab's server namespaces).
    pub fn start_in(ns: &str, bin: &Path, config_toml: &str, launch: &Launch) -> Result<Daemon> {
        if !bin.exists() {
            bail!(
                "{} does not exist: run `cargo build --release -p dhcp-user -p xdhcpgen` first",
                bin.display()
            );
        }
        let dir = temp_dir("xdhcpd")?;
        let config = dir.join("xdhcpd.toml");
        std::fs::write(&config, config_toml).context("writing the daemon's config")?;
        let stats_file = dir.join("stats.json");
        let log_file = dir.join("xdhcpd.log");
        let log = File::create(&log_file).context("creating the daemon's log")?;
        if let Some((uid, gid)) = launch.owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .with_context(|| format!("giving {} to {uid}:{gid}", dir.display()))?;
        }
        let mut cmd = match launch.prefix.split_first() {
            Some((program, args)) => {
                let mut c = crate::lab::netns_command(ns, program);
                c.args(args).arg(bin);
                c
            }
            None => crate::lab::netns_command(ns, &bin.to_string_lossy()),
        };
        cmd.arg("--config")
            .arg(&config)
            .arg("--stats-file")
            .arg(&stats_file)
            .args(["--stats-interval-ms", &STATS_INTERVAL_MS.to_string()])
            .stdin(Stdio::null())
            // A file, not a pipe: nobody has to drain it while the test runs,
            // and it is still there to show when something fails.
            .stdout(log.try_clone()?)
            .stderr(log);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        // `ip netns exec` execs the program (and a prefix execs the daemon),
        // so this pid is xdhcpd's own and signals reach it directly.
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut d = Daemon {
            child: Some(child),
            dir,
            stats_file,
            log_file,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if d.stats().is_ok() {
                return Ok(d);
            }
            if let Some(status) = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                d.child = None;
                bail!("xdhcpd exited before it was ready ({status}):\n{}", d.log());
            }
            if Instant::now() > deadline {
                bail!(
                    "xdhcpd wrote no stats file within {READY_TIMEOUT:?}:\n{}",
                    d.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The config file the daemon was started with (a test may change it
    /// and have the daemon reload it).
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("xdhcpd.toml")
    }

    /// The process id of the daemon, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The stats file's latest contents.
    pub fn stats(&self) -> Result<serde_json::Value> {
        let bytes = std::fs::read(&self.stats_file)
            .with_context(|| format!("reading {}", self.stats_file.display()))?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("parsing {}", self.stats_file.display()))
    }

    /// Everything the daemon logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// Waits until the stats file has been rewritten at least once more
    /// after this call, so counters read afterwards include everything the
    /// daemon had counted when it was called.
    pub fn fresh_stats(&self) -> Result<serde_json::Value> {
        let before = self.stats()?["uptime_s"].as_f64();
        let limit = Duration::from_millis(STATS_INTERVAL_MS * 20);
        let deadline = Instant::now() + limit;
        loop {
            std::thread::sleep(Duration::from_millis(STATS_INTERVAL_MS / 4));
            let s = self.stats()?;
            if s["uptime_s"].as_f64() != before {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!(
                    "the stats file was not rewritten for {limit:?}:\n{}",
                    self.log()
                );
            }
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 10 s) and returns
    /// the stats the daemon wrote last. An exit status other than 0 is an
    /// error carrying the daemon's log.
    pub fn stop(mut self) -> Result<serde_json::Value> {
        let mut child = self.child.take().context("the daemon is not running")?;
        let Some(status) = stop_child(&mut child, libc::SIGTERM, STOP_TIMEOUT)? else {
            bail!(
                "xdhcpd did not exit within {STOP_TIMEOUT:?} of SIGTERM and was killed:\n{}",
                self.log()
            );
        };
        if !status.success() {
            bail!("xdhcpd exited with {status}:\n{}", self.log());
        }
        self.stats().context("the final stats")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            // Only a daemon that was never stopped cleanly gets here (a
            // failing test): its log is the first thing one wants to read.
            eprintln!("xdhcpd killed; its log:\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The xdhcpd binary to test: `$XDHCPD_BIN`, else the release build, else
/// the debug build of this workspace (`$CARGO_TARGET_DIR` or `target/`).
/// When none exists, the release path (whose absence the caller reports).
pub fn xdhcpd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("XDHCPD_BIN") {
        return PathBuf::from(p);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(t),
        None => workspace::root().join("target"),
    };
    let release = target.join("release").join("xdhcpd");
    let debug = target.join("debug").join("xdhcpd");
    if !release.exists() && debug.exists() {
        return debug;
    }
    release
}

/// The release xdhcpd and xdhcpgen the benches run, or what to do when
/// they are not built.
pub fn release_bins() -> Result<(PathBuf, PathBuf)> {
    let bin = xdhcpd_bin();
    anyhow::ensure!(
        bin.exists(),
        "{} does not exist: run `cargo build --release -p dhcp-user -p xdhcpgen` first",
        bin.display()
    );
    let gen_bin = bin.with_file_name("xdhcpgen");
    anyhow::ensure!(gen_bin.exists(), "{} does not exist", gen_bin.display());
    Ok((bin, gen_bin))
}

/// A fresh directory under the system temp dir, unique to this process and
/// call; the caller removes it.
pub fn temp_dir(what: &str) -> Result<PathBuf> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("xdhcp-{what}-{}-{n}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            // Left behind by an earlier process that had the same pid.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", p.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dirs_are_distinct() {
        let a = temp_dir("t").unwrap();
        let b = temp_dir("t").unwrap();
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
        std::fs::remove_dir_all(a).unwrap();
        std::fs::remove_dir_all(b).unwrap();
    }
}
