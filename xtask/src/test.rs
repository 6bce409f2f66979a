//! `cargo xtask test`: every check in one run (fmt, clippy for the host
//! and the eBPF target, the release build, the Debian package of it
//! (built and checked), `cargo test`, a bounded fuzz
//! run, the privileged lab tests), each step recorded, a summary line at
//! the end. A `cargo test` step has a time limit; past it the whole
//! process tree is killed, so a hung test cannot hide the summary.
use crate::process::is_root;
use crate::workspace::{self, cargo, target_dir};
use crate::{deb, lab, setup};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Prefix of the namespaces the lab tests create.
const TEST_PREFIX: &str = "xdt";

#[derive(Args)]
pub struct TestArgs {
    /// Leave out the privileged lab tests (they need root).
    #[arg(long)]
    pub no_lab: bool,
}

/// Totals of libtest's `test result:` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Counts {
    /// Adds one `test result: ok. 3 passed; 0 failed; 1 ignored; ...`.
    pub fn add_line(&mut self, line: &str) -> bool {
        let Some(rest) = line.trim().strip_prefix("test result:") else {
            return false;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
        true
    }
}

struct Step {
    name: &'static str,
    outcome: String,
    ok: bool,
}

/// Longest a `cargo test` step may run (build included): a hung test
/// must not eat CI's whole budget before the summary is printed.
const STEP_LIMIT: Duration = Duration::from_secs(30 * 60);

/// What one `cargo test` invocation came to.
struct TestRun {
    ok: bool,
    counts: Counts,
    timed_out: bool,
}

/// Runs a cargo test invocation, forwarding its output line by line
/// and adding up its results; after `limit` it kills the whole tree.
fn cargo_test(cmd: &mut Command, limit: Duration) -> Result<TestRun> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let pid = child.id();
    // `reaped` is set, under the lock, before the child is waited for,
    // so the watchdog never signals a pid that could have been reused.
    let reaped = Arc::new(Mutex::new(false));
    let timed_out = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (reaped, timed_out) = (Arc::clone(&reaped), Arc::clone(&timed_out));
        std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let done = reaped.lock().unwrap_or_else(|e| e.into_inner());
                if *done {
                    return;
                }
                if Instant::now() > deadline {
                    timed_out.store(true, Ordering::Relaxed);
                    kill_tree(pid);
                    return;
                }
            }
        })
    };
    let mut counts = Counts::default();
    let stdout = child.stdout.take().expect("stdout is piped");
    let forwarded = forward(stdout, &mut counts);
    *reaped.lock().unwrap_or_else(|e| e.into_inner()) = true;
    let status = child.wait()?;
    let _ = watchdog.join();
    forwarded?;
    let timed_out = timed_out.load(Ordering::Relaxed);
    if timed_out {
        println!("xtask: killed after {} min", limit.as_secs() / 60);
    }
    Ok(TestRun {
        ok: status.success() && !timed_out,
        counts,
        timed_out,
    })
}

/// Copies lines to our stdout as they come (println! flushes each line,
/// and a test's harness captures it).
fn forward(from: impl std::io::Read, counts: &mut Counts) -> Result<()> {
    for line in BufReader::new(from).lines() {
        let line = line?;
        counts.add_line(&line);
        println!("{line}");
    }
    Ok(())
}

/// SIGKILLs `root` and every process below it (cargo, the test
/// binaries, and whatever a lab test started).
fn kill_tree(root: u32) {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parent_pid(&s))
            {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        tree.extend(children.get(&tree[i]).into_iter().flatten());
        i += 1;
    }
    for pid in tree {
        // SAFETY: kill(2) on processes this run started; no memory is
        // involved.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

/// The parent pid from `/proc/PID/stat`: the field after the state,
/// which follows the command name in parentheses (which may itself hold
/// spaces and parentheses, hence the last ')').
fn parent_pid(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn banner(what: &str) {
    println!("\n==> {what}");
}

pub fn run(args: &TestArgs) -> Result<()> {
    let mut steps: Vec<Step> = Vec::new();
    let mut record = |name, ok: bool, outcome: String| steps.push(Step { name, outcome, ok });
    if !args.no_lab && !is_root() {
        bail!("the lab tests need root (namespaces, XDP): run as root, or pass --no-lab");
    }

    banner("setup");
    setup::ensure()?;

    banner("cargo fmt --all -- --check");
    let ok = cargo()
        .args(["fmt", "--all", "--", "--check"])
        .status()?
        .success();
    record("fmt", ok, if ok { "ok" } else { "FAILED" }.into());

    banner("cargo clippy --all-targets -- -D warnings");
    let ok = cargo()
        .args(["clippy", "--all-targets", "--", "-D", "warnings"])
        .status()?
        .success();
    record("clippy", ok, if ok { "ok" } else { "FAILED" }.into());

    // The XDP program only builds for the BPF target, so the host
    // clippy above never sees it.
    banner("cargo +nightly clippy -p dhcp-ebpf (bpfel-unknown-none)");
    // The rustup proxy (not $CARGO, the stable toolchain's own cargo)
    // understands +nightly.
    let ok = Command::new(setup::cargo_bin_dir().join("cargo"))
        .current_dir(workspace::root())
        .args([
            "+nightly",
            "clippy",
            "-p",
            "dhcp-ebpf",
            "--release",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ])
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .status()?
        .success();
    record("clippy (eBPF)", ok, if ok { "ok" } else { "FAILED" }.into());

    banner(workspace::RELEASE_BUILD);
    let built = workspace::release_build().status()?.success();
    record("build", built, if built { "ok" } else { "FAILED" }.into());
    let bin = target_dir().join("release").join("xdhcpd");

    // The package of what was just built: it must hold the daemon, the
    // unit, the conffile, the man pages and the state directory.
    banner("Debian package (cargo deb --no-build, dpkg-deb -c / -I, systemd-analyze verify)");
    if built {
        let started = Instant::now();
        match deb::build(&target_dir()).and_then(|d| deb::check(&d).map(|_| d)) {
            Ok(d) => {
                let took = started.elapsed().as_secs_f64();
                println!("deb: {} ({took:.1} s)", d.display());
                record("deb", true, format!("ok ({took:.1} s)"));
            }
            Err(e) => {
                eprintln!("deb: {e:#}");
                record("deb", false, "FAILED".into());
            }
        }
    } else {
        record("deb", false, "not run: the release build failed".into());
    }

    banner("cargo test");
    let run = cargo_test(
        cargo()
            .args(["test", "--no-fail-fast"])
            .env("XDHCPD_BIN", &bin),
        STEP_LIMIT,
    )?;
    let c = run.counts;
    let mut outcome = format!(
        "{} passed, {} failed, {} ignored",
        c.passed, c.failed, c.ignored
    );
    if run.timed_out {
        outcome.push_str(", TIMED OUT");
    }
    record("cargo test", run.ok, outcome);

    // A bounded run of the fuzz targets (cargo-fuzz, nightly): no panic
    // and every malformed frame counted, every DDNS name a valid label,
    // on inputs nobody wrote by hand.
    banner(&format!(
        "fuzz: the request parser and engine, the DDNS naming, {FUZZ_SECONDS} s"
    ));
    match crate::fuzz::run_bounded(FUZZ_SECONDS) {
        Ok(()) => record("fuzz", true, format!("{FUZZ_SECONDS} s, no finding")),
        Err(e) => {
            eprintln!("fuzz: {e:#}");
            record("fuzz", false, "FAILED".into());
        }
    }

    if args.no_lab {
        record("lab", true, "left out (--no-lab)".into());
    } else if !built {
        record("lab", false, "not run: the release build failed".into());
    } else {
        banner(
            "lab tests (cargo test -p xdhcpd-suite --test lab --test gen_lab ... -- --include-ignored --test-threads=1)",
        );
        let (ok, outcome) = lab_tests(&bin)?;
        record("lab", ok, outcome);
    }

    println!();
    let failed: Vec<&str> = steps.iter().filter(|s| !s.ok).map(|s| s.name).collect();
    let line = steps
        .iter()
        .map(|s| format!("{}: {}", s.name, s.outcome))
        .collect::<Vec<_>>()
        .join("; ");
    if failed.is_empty() {
        println!("xtask test: all steps passed ({line})");
        Ok(())
    } else {
        println!("xtask test: FAILED {} ({line})", failed.join(", "));
        bail!("failed: {}", failed.join(", "))
    }
}

const FUZZ_SECONDS: u64 = 60;

/// The privileged test files, each run with --include-ignored.
const LAB_TESTS: &[&str] = &[
    "lab",
    "gen_lab",
    "lab_leases",
    "lab_clients",
    "lab_hostile",
    "lab_conflict",
    "lab_limits",
    "lab_flood",
    "lab_ddns_protocol",
    "lab_ddns",
    "lab_package",
    "lab_metrics",
    "lab_control",
    "lab_leasequery",
    "cluster_nats",
    "lab_ha",
];

fn lab_tests(bin: &Path) -> Result<(bool, String)> {
    lab::remove_stale(TEST_PREFIX)?;
    let res = cargo_test(
        cargo()
            .args(["test", "--no-fail-fast", "-p", "xdhcpd-suite"])
            .args(LAB_TESTS.iter().flat_map(|t| ["--test", t]))
            .arg("--")
            .args(["--include-ignored", "--test-threads=1"])
            .env("XDHCPD_BIN", bin),
        STEP_LIMIT,
    );
    let cleaned = lab::remove_stale(TEST_PREFIX);
    let run = res?;
    cleaned?;
    let c = run.counts;
    if run.timed_out {
        return Ok((
            false,
            format!("{} passed, {} failed, TIMED OUT", c.passed, c.failed),
        ));
    }
    if run.ok && c.passed + c.failed == 0 {
        return Ok((false, "ran no test".into()));
    }
    Ok((run.ok, format!("{} passed, {} failed", c.passed, c.failed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_pid_survives_odd_command_names() {
        assert_eq!(parent_pid("42 (a) b) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parent_pid("1 (init) S 0 1 1"), Some(0));
        assert_eq!(parent_pid("garbage"), None);
    }

    #[test]
    fn kill_tree_ends_a_child_and_its_children() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 60 & sleep 60; wait"])
            .spawn()
            .unwrap();
        let pid = child.id();
        let children_of = |pid: u32| -> Vec<u32> {
            std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/stat"))
                        .ok()
                        .and_then(|s| parent_pid(&s))
                        == Some(pid)
                })
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut grandchildren = children_of(pid);
        while grandchildren.len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            grandchildren = children_of(pid);
        }
        assert_eq!(grandchildren.len(), 2, "sh started two sleeps");
        kill_tree(pid);
        assert!(!child.wait().unwrap().success());
        std::thread::sleep(Duration::from_millis(200));
        for g in grandchildren {
            let stat = std::fs::read_to_string(format!("/proc/{g}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for init to reap it.
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next());
            assert!(
                matches!(state, None | Some("Z")),
                "sleep {g} survived: {stat}"
            );
        }
    }

    #[test]
    fn a_hung_step_is_killed_and_keeps_its_counts() {
        let started = Instant::now();
        let run = cargo_test(
            Command::new("sh").args([
                "-c",
                "echo 'test result: ok. 3 passed; 0 failed; 0 ignored'; sleep 60",
            ]),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(run.timed_out && !run.ok);
        assert_eq!(run.counts.passed, 3);
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn adds_up_result_lines() {
        let mut c = Counts::default();
        assert!(c.add_line(
            "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s"
        ));
        assert!(c.add_line(
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.50s"
        ));
        assert!(!c.add_line("test foo ... ok"));
        assert_eq!(
            c,
            Counts {
                passed: 13,
                failed: 2,
                ignored: 3
            }
        );
    }
}
