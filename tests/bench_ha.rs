//! What high availability costs, side by side in one run (issue 14):
//! xdhcpgen's full-DORA lease rate against one plain xdhcpd (no
//! `[cluster]`) and against a pair sharing its leases through the lab's
//! three-node NATS JetStream cluster, in load-balancing and hot-standby
//! mode, each with `durable` (local fsync before the ACK) and
//! `replicated` (the stream's quorum acknowledgement before the ACK)
//! durability. The rows alternate round by round, so a noisy stretch of
//! the machine falls on all of them; the table gives each row's median
//! and its ratio to the one server. Kea's HA hook, for comparison, halves
//! it (ISC: 11,686 leases/s alone, 5,621 as a hot-standby pair).
//!
//! A benchmark, not a pass/fail test: it is not in `cargo xtask test`.
//! Run it as root with `cargo xtask bench ha [--rounds N] [--clients N]`,
//! or after `cargo build --release -p dhcp-user -p xdhcpgen`:
//!
//! XDHCPD_BIN=$PWD/target/release/xdhcpd cargo test -p xdhcpd-suite \
//!   --test bench_ha -- --include-ignored --nocapture
//!
//! Knobs: `BENCH_HA_ONLY` (row numbers from 0, e.g. `1` for a profiler),
//! `BENCH_HA_ROUNDS` (default 3), `BENCH_HA_CLIENTS` (new clients
//! per load, each a full DORA, default 100000: fewer than the pool's
//! 131,061 addresses), `BENCH_HA_WINDOW` (exchanges xdhcpgen keeps in flight,
//! default 2048: a closed loop completes at most window / round trip
//! leases per second, and replication lengthens the round trip).
//!
//! Every process shares this machine's cores: the generator, both
//! servers and the three NATS nodes. On a real deployment each server
//! and each NATS node has its own. So every row runs twice: once as
//! it is, and once with each server held to the same CPU budget in a
//! cgroup of its own (`BENCH_HA_SERVER_CPU`, a fraction of one core,
//! default 0.25; 0 leaves those rows out). A budget stands in for a host
//! of its own: a server can use no more than it, whatever the other
//! server does, and the budget is small enough that the generator and
//! NATS do not fill the machine. Those rows compare one server with a
//! pair when each server has the same CPU, as on separate hosts; the
//! kernel's softirq work for the veths is not in any budget. The table
//! gives how often each cgroup was throttled, so a row whose servers
//! were not held back by their budget can be seen.
mod common;
#[path = "common/ha.rs"]
mod ha;

use common::{TempDir, bin, counter};
use ha::*;
use std::path::PathBuf;
use std::time::Duration;
use xtask::lab::ha::HaLab;

const WITHIN: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
struct Row {
    what: &'static str,
    /// None: one server without `[cluster]`.
    cluster: Option<(&'static str, &'static str)>,
    /// Servers started (the pair's peer list names two either way).
    started: usize,
}

const ROWS: [Row; 6] = [
    Row {
        what: "one server, no [cluster]",
        cluster: None,
        started: 1,
    },
    Row {
        what: "hot-standby primary, no standby up",
        cluster: Some(("hot-standby", "durable")),
        started: 1,
    },
    Row {
        what: "pair, load-balancing, durable",
        cluster: Some(("load-balancing", "durable")),
        started: 2,
    },
    Row {
        what: "pair, load-balancing, replicated",
        cluster: Some(("load-balancing", "replicated")),
        started: 2,
    },
    Row {
        what: "pair, hot-standby, durable",
        cluster: Some(("hot-standby", "durable")),
        started: 2,
    },
    Row {
        what: "pair, hot-standby, replicated",
        cluster: Some(("hot-standby", "replicated")),
        started: 2,
    },
];

fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}")))
        .unwrap_or(default)
}

/// The cgroup-v1 CPU and cpuset controllers' roots (this lab's machines
/// mount v1).
const CPU_CGROUPS: &str = "/sys/fs/cgroup/cpu";
const CPUSET_CGROUPS: &str = "/sys/fs/cgroup/cpuset";
/// CFS bandwidth period: short, so a throttled server waits at most a
/// few milliseconds and its rings do not overflow while it waits.
const PERIOD_US: u64 = 10_000;

/// A CPU budget of `share` of one core, on one core, for the processes
/// moved into it: CFS bandwidth control (`share` x the period of run time
/// per period, summed over every thread) and a cpuset of that one core.
/// The cpuset is what makes the budget hold as set: with the threads of
/// one process on both cores, each core's run queue takes its runtime
/// from the period's pool in 5 ms slices, and a budget of 2.5 ms then
/// throttles a server that has used far less. One core also keeps the
/// servers' workers apart: moving a process into a cpuset replaces every
/// thread's affinity, the worker's pin with it. Removed on drop, after
/// moving back to the roots whatever still runs in it.
struct CpuCap {
    /// The cpu group, then the cpuset group: each pushed once made, so a
    /// failure halfway removes what was made.
    dirs: Vec<PathBuf>,
}

impl CpuCap {
    fn new(name: &str, share: f64, core: usize) -> std::io::Result<CpuCap> {
        let cpu = PathBuf::from(CPU_CGROUPS).join(name);
        let cpuset = PathBuf::from(CPUSET_CGROUPS).join(name);
        let mut cap = CpuCap { dirs: Vec::new() };
        std::fs::create_dir(&cpu)?;
        cap.dirs.push(cpu.clone());
        std::fs::create_dir(&cpuset)?;
        cap.dirs.push(cpuset.clone());
        std::fs::write(cpu.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
        let quota = (share * PERIOD_US as f64).round() as u64;
        std::fs::write(cpu.join("cpu.cfs_quota_us"), quota.to_string())?;
        let mems = std::fs::read_to_string(PathBuf::from(CPUSET_CGROUPS).join("cpuset.mems"))?;
        std::fs::write(cpuset.join("cpuset.mems"), mems.trim())?;
        std::fs::write(cpuset.join("cpuset.cpus"), core.to_string())?;
        Ok(cap)
    }

    /// Moves a process, every thread of it, into the budget (cgroup v1's
    /// cgroup.procs moves the whole thread group; threads it starts later
    /// are born inside).
    fn add(&self, pid: u32) {
        for dir in &self.dirs {
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())
                .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", dir.display()));
        }
    }

    /// Periods in which the budget ran out, from cpu.stat.
    fn throttled(&self) -> u64 {
        let stat = std::fs::read_to_string(self.dirs[0].join("cpu.stat")).unwrap_or_default();
        stat.lines()
            .find_map(|l| l.strip_prefix("nr_throttled "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        for dir in &self.dirs {
            let root = dir.parent().expect("a root").join("cgroup.procs");
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.split_whitespace() {
                let _ = std::fs::write(&root, pid);
            }
            let _ = std::fs::remove_dir(dir);
        }
    }
}

struct Sample {
    leases_per_s: f64,
    /// CPU seconds over the load: each server's, the NATS nodes', and the
    /// whole machine's (the generator and the kernel's veth work are most
    /// of the rest).
    cpu_each: Vec<f64>,
    cpu_nats: f64,
    cpu_all: f64,
    completed: u64,
    timeouts: u64,
    duplicates: u64,
    /// ACKs each server sent.
    acks: Vec<u64>,
    /// Periods each server's CPU budget ran out (empty without budgets).
    throttled: Vec<u64>,
    /// Records published and the stream messages that carried them, over
    /// the servers (0 without a cluster).
    published: (u64, u64),
}

/// One load against one row; every run has streams and a bucket of its
/// own (`tag`), so no run starts with another's leases. With `budget`,
/// each server runs in a CPU budget of its own.
fn one_run(
    lab: &HaLab,
    row: Row,
    tag: usize,
    clients: u64,
    window: u64,
    budget: Option<f64>,
) -> Sample {
    let mut members = Vec::new();
    let mut plain = None;
    let _dir = TempDir::new("bench-ha");
    match row.cluster {
        None => {
            let cfg = lab.server_config(0, None, &_dir.0);
            plain = Some(ctx(lab.start_daemon(0, &bin(), &cfg), "starting xdhcpd"));
        }
        Some((mode, durability)) => {
            let stream: &'static str = Box::leak(format!("BENCH{tag}").into_boxed_str());
            let bucket: &'static str = Box::leak(format!("bench{tag}").into_boxed_str());
            let spec = ClusterSpec {
                mode,
                names: Some((stream, bucket)),
                ..ClusterSpec::pair(durability)
            };
            for k in 0..row.started {
                members.push(Member::start(lab, k, spec));
            }
            let refs: Vec<&Member> = members.iter().collect();
            if mode == "load-balancing" {
                wait_home_shares(&refs, WITHIN);
            } else {
                let (ok, _) = wait_members(&refs, WITHIN, |s| {
                    owned_shares(&s[0]) == [0] && s[1..].iter().all(|s| owned_shares(s).is_empty())
                });
                assert!(ok, "hot-standby did not settle:\n{}", describe(&refs));
            }
        }
    }
    let w = window.to_string();
    let clients = clients.to_string();
    let mut pids: Vec<u32> = plain.iter().filter_map(|d| d.pid()).collect();
    pids.extend(members.iter().filter_map(|m| m.d().pid()));
    // The servers are stopped below, so these are empty when dropped; on
    // a panic they are dropped first and move the servers back to the root.
    let caps: Vec<CpuCap> = match budget {
        None => Vec::new(),
        Some(share) => pids
            .iter()
            .enumerate()
            .map(|(k, &pid)| {
                let cap = CpuCap::new(&format!("xdhcpd-bench-{tag}-{k}"), share, k)
                    .unwrap_or_else(|e| panic!("a CPU budget under /sys/fs/cgroup: {e}"));
                cap.add(pid);
                cap
            })
            .collect(),
    };
    let nats: Vec<u32> = lab.nats.iter().filter_map(|n| n.pid()).collect();
    let each = |pids: &[u32]| pids.iter().map(|p| cpu_of(&[*p])).collect::<Vec<_>>();
    let before = (each(&pids), cpu_of(&nats), cpu_machine());
    let run = run_gen(
        lab,
        &lab.cli_ns,
        &lab.cli_if,
        &[
            "--scenario",
            "dora",
            "--clients",
            &clients,
            "--window",
            &w,
            "--expect-subnet",
            "198.18.0.0/15",
        ],
        Duration::from_secs(300),
    );
    let after = (each(&pids), cpu_of(&nats), cpu_machine());
    let throttled = caps.iter().map(CpuCap::throttled).collect();
    let mut acks = Vec::new();
    let mut published = (0, 0);
    if let Some(d) = plain {
        acks.push(counter(&d.stop().expect("xdhcpd stops"), "/total/ack"));
    }
    for m in &mut members {
        let s = ctx(m.d().fresh_stats(), "stats");
        acks.push(counter(&s, "/total/ack"));
        published.0 += counter(&s, "/cluster/published");
        published.1 += counter(&s, "/cluster/messages");
        m.stop();
    }
    Sample {
        leases_per_s: run.summary["leases_per_sec"].as_f64().unwrap_or(0.0),
        cpu_each: after.0.iter().zip(&before.0).map(|(a, b)| a - b).collect(),
        cpu_nats: after.1 - before.1,
        cpu_all: after.2 - before.2,
        completed: run.counter("completed"),
        timeouts: run.counter("timeouts"),
        duplicates: run.counter("duplicate_addresses"),
        acks,
        throttled,
        published,
    }
}

/// CPU seconds (user and system, every thread) the processes used so far.
fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            // Fields after the command name's closing parenthesis: utime
            // and stime are the 12th and 13th.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .sum::<f64>()
        / ticks()
}

/// Busy CPU seconds of the whole machine so far (every core).
fn cpu_machine() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let f: Vec<f64> = s
        .lines()
        .next()
        .expect("the cpu line")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle, iowait.
    (f[0] + f[1] + f[2] + f[5] + f[6] + f.get(7).copied().unwrap_or(0.0)) / ticks()
}

fn ticks() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One row's rounds.
#[derive(Default, Clone)]
struct Tally {
    rates: Vec<f64>,
    /// CPU µs per lease: servers, NATS, machine.
    cpu: Vec<(f64, f64, f64)>,
    throttled: Vec<u64>,
}

#[test]
#[ignore = "a benchmark: needs root and the lab, run by hand (see the top)"]
fn ha_costs_side_by_side() {
    let rounds: usize = knob("BENCH_HA_ROUNDS", 3);
    let clients: u64 = knob("BENCH_HA_CLIENTS", 100_000);
    let window: u64 = knob("BENCH_HA_WINDOW", 2048);
    let share: f64 = knob("BENCH_HA_SERVER_CPU", 0.25);
    let mut budgets = vec![None];
    if share > 0.0 {
        let v1 = |root: &str, file: &str| std::path::Path::new(root).join(file).exists();
        if v1(CPU_CGROUPS, "cpu.cfs_quota_us") && v1(CPUSET_CGROUPS, "cpuset.cpus") {
            budgets.push(Some(share));
        } else {
            eprintln!(
                "no cgroup-v1 cpu and cpuset controllers at {CPU_CGROUPS}, {CPUSET_CGROUPS}: \
                 the rows with CPU budgets are left out"
            );
        }
    }
    let lab = ha_lab("xdt88", 2, false);
    // BENCH_HA_ONLY=1,2: only those rows (a profiler's run); the table
    // then has no baseline unless row 0 is among them.
    let only: Option<Vec<usize>> = std::env::var("BENCH_HA_ONLY").ok().map(|v| {
        v.split(',')
            .map(|x| x.trim().parse().expect("BENCH_HA_ONLY"))
            .collect()
    });
    let mut tally = vec![vec![Tally::default(); ROWS.len()]; budgets.len()];
    let mut tag = 0;
    for round in 0..rounds {
        for (b, budget) in budgets.iter().enumerate() {
            for (i, row) in ROWS.iter().enumerate() {
                if only.as_ref().is_some_and(|o| !o.contains(&i)) {
                    continue;
                }
                tag += 1;
                let s = one_run(&lab, *row, tag, clients, window, *budget);
                let per_lease = |cpu: f64| 1e6 * cpu / s.completed.max(1) as f64;
                let cpu = (
                    per_lease(s.cpu_each.iter().sum()),
                    per_lease(s.cpu_nats),
                    per_lease(s.cpu_all),
                );
                eprintln!(
                    "round {round}: {:<34} {:<13} {:>8.0} leases/s  timeouts {}  duplicates {}  ACKs per server {:?}  \
                     throttled periods {:?}  CPU µs per lease: servers {:.0} {:.1?}, NATS {:.0}, machine {:.0}  \
                     records per stream message {:.1}",
                    row.what,
                    budget_label(*budget),
                    s.leases_per_s,
                    s.timeouts,
                    s.duplicates,
                    s.acks,
                    s.throttled,
                    cpu.0,
                    s.cpu_each.iter().map(|c| per_lease(*c)).collect::<Vec<_>>(),
                    cpu.1,
                    cpu.2,
                    s.published.0 as f64 / s.published.1.max(1) as f64
                );
                assert_eq!(s.duplicates, 0, "{}: an address given twice", row.what);
                let t = &mut tally[b][i];
                t.rates.push(s.leases_per_s);
                t.cpu.push(cpu);
                t.throttled.push(s.throttled.iter().sum());
            }
        }
    }
    println!(
        "\nHA bench: full DORA of {clients} new clients, xdhcpgen window {window}, median of {rounds} alternating rounds"
    );
    for (budget, rows) in budgets.iter().zip(&tally) {
        print_table(*budget, rows);
    }
    println!(
        "  Kea HA hook (ISC's figures, memfile): one 11,686, hot-standby pair 5,621 (48 %)\n  \
         the generator, both servers and the three NATS nodes share this machine's cores;\n  \
         a budget holds each server to that much CPU, as a host of its own would"
    );
}

fn budget_label(budget: Option<f64>) -> String {
    match budget {
        None => "no budget".into(),
        Some(share) => format!("{share} core each"),
    }
}

fn print_table(budget: Option<f64>, rows: &[Tally]) {
    let base = if rows[0].rates.is_empty() {
        f64::NAN
    } else {
        median(&mut rows[0].rates.clone())
    };
    println!(
        "  {:<34} {:>10} {:>8}   CPU µs per lease: servers, NATS, machine (medians)",
        budget_label(budget),
        "leases/s",
        "vs one"
    );
    for (row, t) in ROWS.iter().zip(rows) {
        if t.rates.is_empty() {
            continue;
        }
        let m = median(&mut t.rates.clone());
        let cm =
            |f: fn(&(f64, f64, f64)) -> f64| median(&mut t.cpu.iter().map(f).collect::<Vec<_>>());
        let throttled = match budget {
            None => String::new(),
            Some(_) => format!("  throttled periods: {:?}", t.throttled),
        };
        println!(
            "  {:<34} {:>10.0} {:>7.0} %   {:>5.0} {:>5.0} {:>5.0}   (rounds: {}){throttled}",
            row.what,
            m,
            100.0 * m / base,
            cm(|x| x.0),
            cm(|x| x.1),
            cm(|x| x.2),
            t.rates
                .iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}
