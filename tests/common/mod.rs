//! Helpers of the privileged lab tests: the binary, configs, a dhclient
//! that cannot outlive its test, the scapy fixtures, stats counters.
// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use anyhow::{Context, Result, bail, ensure};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use xtask::daemon::{self, Daemon};
use xtask::lab::{Lab, LabOptions};

/// The lab's main subnet and pool (see tests/fixtures/lab-*.toml).
pub const POOL_FIRST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
pub const POOL_LAST: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 254);
pub use xtask::lab::{CLIENT_ADDR, SERVER_ADDR};
pub const SERVER_IP: &str = "198.18.0.1";
pub const CLIENT_IP: &str = "198.18.0.2";

/// Python with scapy: Debian's, whatever `python3` is first in PATH.
pub const PYTHON: &str = "/usr/bin/python3";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The daemon under test; fails the test with what to do when it is not
/// built.
pub fn bin() -> PathBuf {
    let bin = daemon::xdhcpd_bin();
    assert!(
        bin.exists(),
        "{} does not exist: run `cargo build --release -p dhcp-user` first (cargo xtask test does), or point XDHCPD_BIN at a build",
        bin.display()
    );
    bin
}

/// A lab named `name` (which starts with `xdt`, the prefix `cargo xtask
/// test` sweeps before and after the run).
pub fn lab(name: &str, client_addr: bool) -> Lab {
    lab_with_queues(name, client_addr, 1)
}

/// A lab whose veth ends have `queues` RX/TX queues each.
pub fn lab_with_queues(name: &str, client_addr: bool, queues: u32) -> Lab {
    assert!(name.starts_with("xdt"), "lab test names start with xdt");
    let mut opts = LabOptions::new(name);
    opts.server_addr = SERVER_ADDR.to_owned();
    opts.client_addr = client_addr.then(|| CLIENT_ADDR.to_owned());
    opts.queues = queues;
    Lab::up(&opts).unwrap_or_else(|e| panic!("bringing up lab {name}: {e:#}"))
}

/// A config fixture with the lab's server interface filled in.
pub fn config(fixture_name: &str, lab: &Lab) -> String {
    let text = std::fs::read_to_string(fixture(fixture_name))
        .unwrap_or_else(|e| panic!("reading fixture {fixture_name}: {e}"));
    assert!(
        text.contains("@INTERFACE@"),
        "{fixture_name} names no interface"
    );
    text.replace("@INTERFACE@", &lab.srv_if)
}

pub fn start_daemon(lab: &Lab, fixture_name: &str) -> Daemon {
    Daemon::start(lab, &bin(), &config(fixture_name, lab))
        .unwrap_or_else(|e| panic!("starting xdhcpd with {fixture_name}: {e:#}"))
}

/// A counter of the stats file by JSON pointer, e.g. `/xdp/redirected`.
pub fn counter(stats: &serde_json::Value, pointer: &str) -> u64 {
    stats
        .pointer(pointer)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("stats have no counter {pointer}: {stats}"))
}

pub fn in_pool(a: Ipv4Addr) -> bool {
    (POOL_FIRST..=POOL_LAST).contains(&a)
}

pub fn in_net(a: Ipv4Addr, net: Ipv4Addr, prefix_len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix_len).unwrap_or(0);
    u32::from(a) & mask == u32::from(net) & mask
}

/// Runs a command with a time limit; the output either way, or an error
/// if it had to be killed.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    // Drain both pipes while waiting, so a chatty child cannot block on a
    // full pipe and look hung.
    let out = child.stdout.take().context("stdout")?;
    let err = child.stderr.take().context("stderr")?;
    let read_all = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let (out, err) = (read_all(Box::new(out)), read_all(Box::new(err)));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            bail!("{cmd:?} did not finish within {limit:?}; stderr:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Waits for a child for at most `limit`, then kills it; its exit status
/// if it ended by itself.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// ISC dhclient in the client namespace with our own script and config
/// (tests/fixtures), so it touches nothing of the host, and its lease file
/// in a directory that outlives each run: a second run starts from the
/// lease the first one got (INIT-REBOOT). Dropping it kills a dhclient
/// still running and removes the directory.
pub struct DhclientHome {
    pub leases: PathBuf,
    pid_file: PathBuf,
    script: PathBuf,
    // Removed when the fields drop, after Drop has ended the dhclient.
    dir: TempDir,
}

impl DhclientHome {
    pub fn new() -> Result<DhclientHome> {
        DhclientHome::in_temp_dir("dhclient-home")
    }

    fn in_temp_dir(what: &str) -> Result<DhclientHome> {
        let dir = TempDir(daemon::temp_dir(what)?);
        let script = dir.0.join("dhclient-script");
        std::fs::copy(fixture("dhclient-script"), &script)?;
        // Executable whatever mode the checkout gave the fixture.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
        let leases = dir.0.join("dhclient.leases");
        // dhclient resolves the lease file's real path, so it must exist.
        std::fs::write(&leases, "")?;
        Ok(DhclientHome {
            pid_file: dir.0.join("dhclient.pid"),
            leases,
            script,
            dir,
        })
    }

    /// `dhclient -1 -v` on `iface`: one try, failing after 45 s at most;
    /// it stays in the background once bound (renewing). What it printed,
    /// or an error when it got no lease.
    pub fn lease(&self, lab: &Lab, iface: &str) -> Result<String> {
        let out = output_within(
            lab.cli("dhclient")
                .args(["-1", "-v", "-cf"])
                .arg(fixture("dhclient.conf"))
                .arg("-lf")
                .arg(&self.leases)
                .arg("-pf")
                .arg(&self.pid_file)
                .arg("-sf")
                .arg(&self.script)
                .arg(iface),
            Duration::from_secs(45),
        )?;
        let log = text(&out);
        ensure!(
            out.status.success(),
            "dhclient on {iface} failed ({}):\n{log}",
            out.status
        );
        Ok(log)
    }

    /// Ends the background dhclient with `signal`, if it runs. SIGKILL
    /// leaves the lease file as it is and sends nothing.
    pub fn kill(&self, signal: libc::c_int) {
        end_dhclient(&self.pid_file, signal);
    }
}

impl Drop for DhclientHome {
    fn drop(&mut self) {
        self.kill(libc::SIGKILL);
    }
}

/// A [`DhclientHome`] of its own for one lease: the dhclient of a test
/// that needs no second run. Dropping it stops the dhclient.
pub struct Dhclient {
    home: DhclientHome,
    /// What `dhclient -v` printed while getting the lease.
    pub log: String,
}

impl Dhclient {
    /// Gets a lease on `iface` (one try: `dhclient -1`), failing after
    /// 45 s at most.
    pub fn lease(lab: &Lab, iface: &str) -> Result<Dhclient> {
        let mut d = Dhclient {
            home: DhclientHome::in_temp_dir("dhclient")?,
            log: String::new(),
        };
        d.log = d.home.lease(lab, iface)?;
        Ok(d)
    }

    /// Stops the background dhclient. Idempotent.
    pub fn stop(&mut self) {
        self.home.kill(libc::SIGTERM);
    }
}

impl Drop for Dhclient {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Ends the dhclient whose pid file is `pid_file` with `signal`, then
/// SIGKILL if it is still there after 3 s, and removes the pid file.
/// Only that dhclient, never a process that took over a recycled pid.
pub fn end_dhclient(pid_file: &std::path::Path, signal: libc::c_int) {
    let Ok(pid) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let Ok(pid) = pid.trim().parse::<i32>() else {
        return;
    };
    let is_dhclient = || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "dhclient")
    };
    if pid > 1 && is_dhclient() {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid, signal) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while is_dhclient() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if is_dhclient() {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = std::fs::remove_file(pid_file);
}

/// What `dhcp_lab.py dora` reports about one reply.
#[derive(Debug)]
pub struct Reply {
    pub kind: String,
    pub yiaddr: Ipv4Addr,
    pub server_id: Option<Ipv4Addr>,
    pub vlan: Option<u16>,
}

fn reply(v: &serde_json::Value) -> Result<Reply> {
    Ok(Reply {
        kind: v["type"].as_str().context("type")?.to_owned(),
        yiaddr: v["yiaddr"].as_str().context("yiaddr")?.parse()?,
        server_id: v["server_id"].as_str().map(str::parse).transpose()?,
        vlan: v["vlan"].as_u64().map(|x| x as u16),
    })
}

/// A scapy DORA with extra `dhcp_lab.py dora` arguments (`--hostname`,
/// `--fqdn-hex`...): (OFFER, ACK) as dhcp_lab.py prints them.
pub fn scapy_dora_with(
    lab: &Lab,
    chaddr: &str,
    extra: &[&str],
) -> Result<(serde_json::Value, serde_json::Value)> {
    let mut cmd = lab.cli(PYTHON);
    cmd.arg(fixture("dhcp_lab.py"))
        .args(["dora", &lab.cli_if, chaddr])
        .args(extra);
    let out = output_within(&mut cmd, Duration::from_secs(30))?;
    ensure!(
        out.status.success(),
        "scapy DORA failed ({}):\n{}",
        out.status,
        text(&out)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("dhcp_lab.py printed {line:?}"))?;
    Ok((v["offer"].clone(), v["ack"].clone()))
}

/// A DHCPRELEASE of `addr` by `chaddr`, crafted with scapy.
pub fn scapy_release(lab: &Lab, chaddr: &str, addr: Ipv4Addr) -> Result<()> {
    let out = output_within(
        lab.cli(PYTHON).arg(fixture("dhcp_lab.py")).args([
            "release",
            &lab.cli_if,
            chaddr,
            &addr.to_string(),
            SERVER_IP,
        ]),
        Duration::from_secs(20),
    )?;
    ensure!(out.status.success(), "scapy RELEASE failed: {}", text(&out));
    Ok(())
}

/// A DORA crafted with scapy on the client's veth end (broadcast flag, so
/// it needs no address), optionally 802.1Q-tagged: (xid, OFFER, ACK).
pub fn scapy_dora(lab: &Lab, chaddr: &str, vlan: Option<u16>) -> Result<(u32, Reply, Reply)> {
    let mut cmd = lab.cli(PYTHON);
    cmd.arg(fixture("dhcp_lab.py"))
        .args(["dora", &lab.cli_if, chaddr]);
    if let Some(v) = vlan {
        cmd.args(["--vlan", &v.to_string()]);
    }
    let out = output_within(&mut cmd, Duration::from_secs(30))?;
    ensure!(
        out.status.success(),
        "scapy DORA failed ({}):\n{}",
        out.status,
        text(&out)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("dhcp_lab.py printed {line:?}"))?;
    let xid = v["xid"].as_u64().context("xid")? as u32;
    Ok((xid, reply(&v["offer"])?, reply(&v["ack"])?))
}

/// Sends `count` malformed DISCOVERs of one kind (see dhcp_lab.py) from
/// the client's veth end.
pub fn scapy_malformed(lab: &Lab, kind: &str, count: u32) -> Result<()> {
    let out = output_within(
        lab.cli(PYTHON)
            .arg(fixture("dhcp_lab.py"))
            .args([
                "malformed",
                &lab.cli_if,
                &xtask::lab::format_mac(&lab.cli_mac),
            ])
            .args([kind, &count.to_string()]),
        Duration::from_secs(30),
    )?;
    ensure!(
        out.status.success(),
        "sending {kind} frames failed ({}):\n{}",
        out.status,
        text(&out)
    );
    Ok(())
}

/// Polls the daemon's stats until `done` holds (or `limit` passes), then
/// returns one more fresh copy, so a counter that would overshoot has had
/// the time to.
pub fn stats_when(
    d: &Daemon,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value> {
    let deadline = Instant::now() + limit;
    loop {
        let s = d.fresh_stats()?;
        if done(&s) || Instant::now() > deadline {
            return d.fresh_stats();
        }
    }
}

/// `restored=N` from the daemon's "lease journal recovered" log line.
pub fn restored_count(log: &str) -> Option<u64> {
    let line = log
        .lines()
        .find(|l| l.contains("lease journal recovered"))?;
    // tracing colours field names when it believes it writes to a
    // terminal; drop the escape sequences first.
    let mut plain = String::new();
    let mut esc = false;
    for c in line.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    let rest = plain.split("restored=").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// A journal config fixture for this lab, its journal in `dir`.
pub fn journal_config(fixture_name: &str, lab: &Lab, dir: &Path) -> String {
    let text = config(fixture_name, lab);
    assert!(
        text.contains("@JOURNAL_DIR@"),
        "{fixture_name} has no journal dir"
    );
    text.replace("@JOURNAL_DIR@", &dir.to_string_lossy())
}

/// A directory removed when the test ends, however it ends.
pub struct TempDir(pub PathBuf);

/// Runs `f` every `every` until it returns Some or `limit` passes.
pub fn poll_every<T>(
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        TempDir(daemon::temp_dir(what).expect("temp dir"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `xdhcpd leases --json FILTER…` over the journal of the config in
/// `config_file`: one JSON object per lease.
pub fn xdhcpd_leases(config_file: &Path, filter: &[&str]) -> Vec<serde_json::Value> {
    let out = output_within(
        Command::new(bin())
            .arg("--config")
            .arg(config_file)
            .args(["leases", "--json"])
            .args(filter),
        Duration::from_secs(10),
    )
    .expect("xdhcpd leases runs");
    assert!(out.status.success(), "xdhcpd leases: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON lease per line"))
        .collect()
}

/// The daemon's process state letter from /proc (`R`, `S`, `Z`, ...), or
/// `None` once it is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the state follows
    // the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// A benchmark's knob: the environment variable `name` as a number, or
/// `default`.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The generator built beside the daemon under test.
pub fn gen_bin() -> PathBuf {
    let bin = daemon::xdhcpd_bin().with_file_name("xdhcpgen");
    assert!(
        bin.exists(),
        "{} does not exist: run `cargo build --release -p dhcp-user -p xdhcpgen` first (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// Runs xdhcpgen in the lab's client namespace with `args` (beside
/// `--interface`, `--no-progress` and `--json`), for at most `limit`;
/// returns its JSON summary and the table it printed. A non-zero exit
/// fails the test with its output.
pub fn xdhcpgen_run(lab: &Lab, args: &[&str], limit: Duration) -> (serde_json::Value, String) {
    let dir = TempDir::new("xdhcpgen");
    let json = dir.0.join("summary.json");
    let out = output_within(
        lab.cli(&gen_bin().to_string_lossy())
            .args(["--interface", &lab.cli_if, "--no-progress"])
            .arg("--json")
            .arg(&json)
            .args(args),
        limit,
    )
    .expect("xdhcpgen runs");
    let report = text(&out);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "xdhcpgen {args:?} failed:\n{report}");
    let summary = serde_json::from_slice(
        &std::fs::read(&json).unwrap_or_else(|e| panic!("no JSON ({e}):\n{report}")),
    )
    .expect("the JSON summary parses");
    eprintln!("{report}");
    (summary, table)
}
