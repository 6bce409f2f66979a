//! Helpers of the HA lab tests (tests/lab_ha.rs): the lab with its NATS
//! cluster, xdhcpd configs with a `[cluster]` section, xdhcpgen runs in
//! any namespace of the lab (in the foreground or beside the test), the
//! leases a run ended with, and the daemons' cluster stats.
// The including test binary may use only a part of it.
#![allow(dead_code)]

use super::common::{TempDir, bin, gen_bin, output_within, text};
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use xtask::daemon::Daemon;
pub use xtask::lab::ha::{ClusterSpec, PEERS};
use xtask::lab::ha::{HaLab, HaOptions, data_addr};

/// The lab, NATS up with a JetStream meta leader.
pub fn ha_lab(name: &str, servers: usize, relay: bool) -> HaLab {
    assert!(name.starts_with("xdt"), "lab test names start with xdt");
    let mut opts = HaOptions::new(name, servers);
    opts.relay = relay;
    let mut lab = HaLab::up(&opts).unwrap_or_else(|e| panic!("bringing up HA lab {name}: {e:#}"));
    let leader = lab
        .wait_jetstream(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("{name}: JetStream meta leader {leader}");
    lab
}

/// Server k's config: see [`HaLab::cluster_config`].
pub fn ha_config(lab: &HaLab, k: usize, spec: ClusterSpec, journal_dir: &Path) -> String {
    lab.cluster_config(k, spec, journal_dir)
}

/// One server of the cluster: its config (kept for a restart), its
/// journal directory, and the daemon while it runs.
pub struct Member {
    pub k: usize,
    pub config: String,
    pub daemon: Option<Daemon>,
    pub journal: PathBuf,
    _dir: Option<TempDir>,
}

impl Member {
    /// Starts server k with its journal in a temp dir of its own.
    pub fn start(lab: &HaLab, k: usize, spec: ClusterSpec) -> Member {
        let dir = TempDir::new(&format!("ha-journal-{k}"));
        let journal = dir.0.clone();
        let mut m = Member::start_on(lab, k, spec, &journal);
        m._dir = Some(dir);
        m
    }

    /// Starts server k with its journal in `journal` (the caller keeps it).
    pub fn start_on(lab: &HaLab, k: usize, spec: ClusterSpec, journal: &Path) -> Member {
        let config = ha_config(lab, k, spec, journal);
        let mut m = Member {
            k,
            config,
            daemon: None,
            journal: journal.to_owned(),
            _dir: None,
        };
        m.restart(lab);
        m
    }

    /// Starts the daemon (again) with the same config and journal.
    pub fn restart(&mut self, lab: &HaLab) {
        assert!(self.daemon.is_none(), "server {} still runs", self.k);
        let d = lab
            .start_daemon(self.k, &bin(), &self.config)
            .unwrap_or_else(|e| panic!("starting server {}: {e:#}\n{}", self.k, self.config));
        self.daemon = Some(d);
    }

    pub fn d(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon runs")
    }

    /// SIGKILL, and waits until the process is gone (its XDP program with
    /// it); returns the last stats it wrote and its log.
    pub fn kill(&mut self) -> (serde_json::Value, String) {
        let d = self.daemon.take().expect("the daemon runs");
        let pid = d.pid().expect("pid") as i32;
        // SAFETY: kill(2) has no memory-safety preconditions; the daemon is
        // our child and not yet reaped (Daemon holds the Child).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while super::common::proc_state(pid as u32).is_some_and(|s| s != 'Z') {
            assert!(Instant::now() < deadline, "xdhcpd survived SIGKILL");
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = d.stats().unwrap_or_default();
        let log = d.log();
        // Drop reaps it.
        drop(d);
        (stats, log)
    }

    pub fn name(&self) -> &'static str {
        PEERS[self.k]
    }

    /// SIGTERM: the daemon (and its cluster thread) must exit cleanly.
    pub fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop()
                .unwrap_or_else(|e| panic!("server {} does not stop cleanly: {e:#}", self.name()));
        }
    }
}

/// Stops every member that still runs, each exiting cleanly.
pub fn stop_all(members: &mut [&mut Member]) {
    for m in members {
        m.stop();
    }
}

/// The `cluster` object of a daemon's stats file.
pub fn cluster(stats: &serde_json::Value) -> &serde_json::Value {
    &stats["cluster"]
}

/// The shares a daemon owns now, from its stats file.
pub fn owned_shares(stats: &serde_json::Value) -> Vec<u64> {
    let mut v: Vec<u64> = cluster(stats)["owned_shares"]
        .as_array()
        .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
        .unwrap_or_default();
    v.sort_unstable();
    v
}

pub fn cluster_state(stats: &serde_json::Value) -> String {
    cluster(stats)["state"].as_str().unwrap_or("").to_owned()
}

/// A cluster counter (`takeovers`, `cut_offs`, ...).
pub fn cluster_counter(stats: &serde_json::Value, name: &str) -> u64 {
    cluster(stats)[name]
        .as_u64()
        .unwrap_or_else(|| panic!("the stats' cluster object has no counter {name}: {stats}"))
}

/// Polls `members`' stats until `done` holds for all of them together (or
/// `limit` passes); whether it did, and how long it took.
pub fn wait_members(
    members: &[&Member],
    limit: Duration,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> (bool, Duration) {
    let t0 = Instant::now();
    loop {
        let stats: Vec<serde_json::Value> = members
            .iter()
            .map(|m| m.d().stats().unwrap_or_default())
            .collect();
        if done(&stats) {
            return (true, t0.elapsed());
        }
        if t0.elapsed() > limit {
            return (false, t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What every member's cluster block says, for a failure message.
pub fn describe(members: &[&Member]) -> String {
    members
        .iter()
        .map(|m| {
            let s = m.d().stats().unwrap_or_default();
            format!("{}: {}", m.name(), cluster(&s))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until every member is connected and owns exactly its home share
/// (load-balancing: server k owns share k); panics with their stats and
/// logs if that does not happen within `limit`.
pub fn wait_home_shares(members: &[&Member], limit: Duration) -> Duration {
    let (ok, took) = wait_members(members, limit, |stats| {
        stats
            .iter()
            .zip(members)
            .all(|(s, m)| cluster_state(s) == "connected" && owned_shares(s) == [m.k as u64])
    });
    if !ok {
        let logs: Vec<String> = members
            .iter()
            .map(|m| format!("--- {} ---\n{}", m.name(), m.d().log()))
            .collect();
        panic!(
            "the servers did not each take their home share within {limit:?}:\n{}\n{}",
            describe(members),
            logs.join("\n")
        );
    }
    took
}

/// One lease of `--leases-out`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    pub chaddr: [u8; 6],
    pub address: Ipv4Addr,
    pub server_id: Ipv4Addr,
}

pub fn read_leases(path: &Path) -> Vec<Lease> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let v: Vec<serde_json::Value> = serde_json::from_str(&text).expect("leases JSON");
    v.iter()
        .map(|e| Lease {
            chaddr: xtask::lab::parse_mac(e["chaddr"].as_str().expect("chaddr")).expect("MAC"),
            address: e["address"].as_str().expect("address").parse().expect("IP"),
            server_id: e["server_id"]
                .as_str()
                .expect("server_id")
                .parse()
                .expect("IP"),
        })
        .collect()
}

/// Writes leases back in `--leases-in` form.
pub fn write_leases(path: &Path, leases: &[Lease]) {
    let v: Vec<serde_json::Value> = leases
        .iter()
        .map(|l| {
            serde_json::json!({
                "chaddr": xtask::lab::format_mac(&l.chaddr),
                "address": l.address.to_string(),
                "server_id": l.server_id.to_string(),
            })
        })
        .collect();
    std::fs::write(path, serde_json::to_string(&v).unwrap()).expect("writing leases");
}

/// The server (index) that owns a client's bucket when every one of
/// `servers` owns its home share: RFC 3074's hash of the chaddr (the
/// generator sends no client identifier), modulo the shares.
pub fn home_of(chaddr: &[u8; 6], servers: usize) -> usize {
    usize::from(xdhcp::lease::owner::bucket_of(chaddr)) % servers
}

/// Server index of a server identifier.
pub fn server_of(id: Ipv4Addr) -> Option<usize> {
    (0..3).find(|&k| data_addr(k) == id)
}

/// An xdhcpgen run's results: its summary, its leases and what it printed.
pub struct GenRun {
    pub summary: serde_json::Value,
    pub leases: Vec<Lease>,
    pub report: String,
}

impl GenRun {
    pub fn counter(&self, name: &str) -> u64 {
        // Counters the generator leaves out while 0 (reboots, moved,
        // fell_back, ...) read as 0.
        self.summary["counters"][name].as_u64().unwrap_or(0)
    }

    pub fn addresses(&self) -> HashSet<Ipv4Addr> {
        self.leases.iter().map(|l| l.address).collect()
    }
}

/// The arguments every HA run gives xdhcpgen besides its own.
fn gen_command(
    lab: &HaLab,
    ns: &str,
    iface: &str,
    dir: &Path,
    args: &[&str],
) -> std::process::Command {
    let mut c = lab.cmd(ns, &gen_bin().to_string_lossy());
    c.args(["--interface", iface, "--no-progress"])
        .arg("--json")
        .arg(dir.join("summary.json"))
        .arg("--leases-out")
        .arg(dir.join("leases.json"))
        .args(args);
    c
}

fn gen_results(dir: &Path, report: String) -> GenRun {
    let summary = serde_json::from_slice(
        &std::fs::read(dir.join("summary.json"))
            .unwrap_or_else(|e| panic!("no xdhcpgen JSON ({e}):\n{report}")),
    )
    .expect("the JSON summary parses");
    GenRun {
        summary,
        leases: read_leases(&dir.join("leases.json")),
        report,
    }
}

/// Runs xdhcpgen on `iface` in namespace `ns` to its end (at most
/// `limit`); a non-zero exit fails the test with its output.
pub fn run_gen(lab: &HaLab, ns: &str, iface: &str, args: &[&str], limit: Duration) -> GenRun {
    let dir = TempDir::new("ha-gen");
    let out = output_within(&mut gen_command(lab, ns, iface, &dir.0, args), limit)
        .expect("xdhcpgen runs");
    let report = text(&out);
    assert!(out.status.success(), "xdhcpgen {args:?} failed:\n{report}");
    gen_results(&dir.0, report)
}

/// The reboot scenario over `leases` (all of one `--mac-prefix`): every
/// client asks for its lease in INIT-REBOOT, then RENEWING.
pub fn reboot(lab: &HaLab, leases: &[Lease], extra: &[&str]) -> GenRun {
    reboot_on(lab, &lab.cli_ns, &lab.cli_if, leases, extra)
}

/// [`reboot`] from interface `iface` of namespace `ns`.
pub fn reboot_on(lab: &HaLab, ns: &str, iface: &str, leases: &[Lease], extra: &[&str]) -> GenRun {
    assert!(!leases.is_empty(), "no leases to ask for");
    assert!(
        leases
            .iter()
            .all(|l| l.chaddr[..3] == leases[0].chaddr[..3]),
        "one MAC prefix per reboot run"
    );
    let dir = TempDir::new("ha-reboot");
    let file = dir.0.join("in.json");
    write_leases(&file, leases);
    let p = leases[0].chaddr;
    let prefix = format!("{:02x}:{:02x}:{:02x}", p[0], p[1], p[2]);
    let mut args = vec![
        "--scenario",
        "reboot",
        "--mac-prefix",
        &prefix,
        "--leases-in",
        file.to_str().unwrap(),
    ];
    if !extra.contains(&"--timeout-ms") {
        args.extend_from_slice(&["--timeout-ms", "500", "--retries", "3"]);
    }
    args.extend_from_slice(extra);
    run_gen(lab, ns, iface, &args, Duration::from_secs(60))
}

/// xdhcpgen running beside the test; [`BgGen::finish`] waits for its end.
/// Dropping it unfinished kills it.
pub struct BgGen {
    child: Option<Child>,
    dir: TempDir,
    log: PathBuf,
    args: Vec<String>,
}

impl BgGen {
    pub fn start(lab: &HaLab, ns: &str, iface: &str, args: &[&str]) -> BgGen {
        let dir = TempDir::new("ha-bggen");
        let log = dir.0.join("log");
        let file = File::create(&log).expect("log file");
        let child = gen_command(lab, ns, iface, &dir.0, args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("starting xdhcpgen");
        BgGen {
            child: Some(child),
            dir,
            log,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn finish(mut self, limit: Duration) -> GenRun {
        let mut child = self.child.take().expect("running");
        let status = super::common::wait_child(&mut child, limit);
        let report = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            status.is_some_and(|s| s.success()),
            "xdhcpgen {:?} failed or hung ({status:?}):\n{report}",
            self.args
        );
        gen_results(&self.dir.0, report)
    }
}

impl Drop for BgGen {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Asserts a run gave no address twice and every ACK came from a server
/// that owned the client's bucket when all `servers` hold their home
/// shares; returns how many leases each server gave.
pub fn assert_from_owners(run: &GenRun, servers: usize, what: &str) -> Vec<usize> {
    let mut per = vec![0usize; servers];
    let mut seen = HashSet::new();
    for l in &run.leases {
        assert!(
            seen.insert(l.address),
            "{what}: {} leased twice\n{}",
            l.address,
            run.report
        );
        let k = server_of(l.server_id)
            .unwrap_or_else(|| panic!("{what}: lease from unknown server {l:?}"));
        assert_eq!(
            k,
            home_of(&l.chaddr, servers),
            "{what}: {} (bucket {}) was served by server {k}, not by its bucket's owner\n{}",
            xtask::lab::format_mac(&l.chaddr),
            xdhcp::lease::owner::bucket_of(&l.chaddr),
            run.report
        );
        per[k] += 1;
    }
    per
}

/// Context for a failure: the daemons' logs.
pub fn logs(members: &[&Member]) -> String {
    members
        .iter()
        .filter_map(|m| {
            m.daemon
                .as_ref()
                .map(|d| format!("--- {} ---\n{}", m.name(), d.log()))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `f` every 50 ms until it returns Some or `limit` passes.
pub fn poll<T>(limit: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    super::common::poll_every(limit, Duration::from_millis(50), f)
}

/// The value, or the test fails with `what` and the error.
pub fn ctx<T>(r: Result<T>, what: &str) -> T {
    r.context(what.to_owned())
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// A process in a namespace of the lab (dhcrelay), its output in a file;
/// dropping it kills it.
pub struct BgProc {
    child: Option<Child>,
    log: PathBuf,
    _dir: TempDir,
}

impl BgProc {
    pub fn spawn(mut cmd: std::process::Command, what: &str) -> BgProc {
        let dir = TempDir::new(what);
        let log = dir.0.join("log");
        let file = File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        BgProc {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }
}

impl Drop for BgProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
