//! A kea-dhcp4 running inside the lab's server namespace, for the lab
//! tests that check xdhcpgen against a server it did not grow up with and
//! for `cargo xtask bench`, which puts it beside xdhcpd.
use crate::daemon::temp_dir;
use crate::lab::Lab;
use crate::process::stop_child;
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// How long Kea may take to log DHCP4_STARTED.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running kea-dhcp4; its config, pid and lock files and its log live in
/// a temp dir of its own. Dropping it kills it.
pub struct Kea {
    child: Option<Child>,
    dir: PathBuf,
}

impl Kea {
    /// Writes `config_json` (a whole Kea config, interface filled in),
    /// starts kea-dhcp4 in the lab's server namespace and waits until it
    /// logs DHCP4_STARTED. Kea's loggers must write to stdout.
    pub fn start(lab: &Lab, config_json: &str) -> Result<Kea> {
        let dir = temp_dir("kea")?;
        let path = dir.join("kea-dhcp4.json");
        std::fs::write(&path, config_json).context("writing the Kea config")?;
        let log = std::fs::File::create(dir.join("kea.log")).context("creating Kea's log")?;
        let child = lab
            .srv("kea-dhcp4")
            .arg("-c")
            .arg(&path)
            .env("KEA_PIDFILE_DIR", &dir)
            .env("KEA_LOCKFILE_DIR", &dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting kea-dhcp4 (is Kea installed? cargo xtask setup)")?;
        let mut kea = Kea {
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while !kea.log().contains("DHCP4_STARTED") {
            if let Some(status) = kea.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                kea.child = None;
                bail!(
                    "kea-dhcp4 exited before it started ({status}):\n{}",
                    kea.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "kea-dhcp4 did not start within {READY_TIMEOUT:?}:\n{}",
                    kea.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(kea)
    }

    /// Everything Kea logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kea.log")).unwrap_or_default()
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 10 s). Returns its
    /// log; an exit that was not clean is an error carrying it.
    pub fn stop(mut self) -> Result<String> {
        let mut child = self.child.take().context("kea-dhcp4 is not running")?;
        match stop_child(&mut child, libc::SIGTERM, STOP_TIMEOUT)? {
            Some(s) if s.success() => Ok(self.log()),
            Some(s) => bail!("kea-dhcp4 exited with {s}:\n{}", self.log()),
            None => bail!(
                "kea-dhcp4 did not exit within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
                self.log()
            ),
        }
    }
}

impl Drop for Kea {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
