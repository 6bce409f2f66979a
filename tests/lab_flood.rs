//! Lab test of the bounded lease table (issue 11): a flood of a million
//! made-up MACs on a direct link, each doing DORA and RELEASE (so that
//! each leaves a released record behind, the kind that used to stay an
//! hour), against a daemon with a small pool and `max_clients = 20000`.
//! The daemon's memory must not grow past what that bound allows, the
//! table must have evicted, and a real dhclient must still get a lease.
//!
//! The lab is named `xdtf1`; run it as root with the release binaries
//! built (`cargo xtask test` does both).
mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use xtask::daemon::{self, Daemon};

const MAX_CLIENTS: u64 = 20_000;
/// What one record of the table costs: the record (key, lease, eviction
/// links: 56 bytes) and its index slots (8 bytes, 1.5 per record).
const BYTES_PER_CLIENT: u64 = 56 + 12;
/// Room beside the table for what a running daemon may still allocate
/// (log lines, the stats writer's JSON, thread stacks touched deeper):
/// far below what a million records would take.
const SLACK: u64 = 8 << 20;

const CONFIG: &str = r#"
interface = "@INTERFACE@"
io = "xdp"
xdp_mode = "driver"
bind = "copy"
poll = "adaptive"
server_id = "198.18.0.1"
max_clients = 20000

[[subnet]]
prefix = "198.18.0.0/15"
pools = ["198.18.0.10-198.18.3.254"]
routers = ["198.18.0.1"]
dns = ["198.18.0.1"]
lease_time = 7200
"#;

fn gen_bin() -> PathBuf {
    let bin = daemon::xdhcpd_bin().with_file_name("xdhcpgen");
    assert!(
        bin.exists(),
        "{} does not exist: run `cargo build --release -p dhcp-user -p xdhcpgen` first",
        bin.display()
    );
    bin
}

/// VmRSS of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[test]
#[ignore = "needs root, veth and XDP: run with cargo xtask test"]
fn a_million_macs_keep_the_table_bounded_and_a_dhclient_still_gets_a_lease() {
    let lab = lab("xdtf1", false);
    let d = Daemon::start(&lab, &bin(), &CONFIG.replace("@INTERFACE@", &lab.srv_if))
        .unwrap_or_else(|e| panic!("starting xdhcpd: {e:#}"));
    let pid = d.pid().expect("the daemon runs");
    let before = d.fresh_stats().expect("stats");
    let capacity = counter(&before, "/table_capacity");
    assert_eq!(capacity, MAX_CLIENTS.next_multiple_of(64));
    let rss_start = rss(pid);

    let dir = daemon::temp_dir("xdhcpgen").expect("temp dir");
    let json = dir.join("summary.json");
    let out = output_within(
        lab.cli(&gen_bin().to_string_lossy())
            .args(["--interface", &lab.cli_if, "--no-progress"])
            .args(["--scenario", "release", "--clients", "1000000"])
            .args(["--duration", "45", "--rate", "0", "--window", "1024"])
            .args(["--timeout-ms", "200", "--retries", "1"])
            .arg("--json")
            .arg(&json),
        Duration::from_secs(120),
    )
    .expect("xdhcpgen runs");
    let report = text(&out);
    let summary: Value = serde_json::from_slice(
        &std::fs::read(&json).unwrap_or_else(|e| panic!("no JSON ({e}):\n{report}")),
    )
    .expect("the summary parses");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{report}");

    let after = d.fresh_stats().expect("stats");
    let rss_after = rss(pid);
    let completed = counter(&summary, "/completed");
    let (used, evicted) = (
        counter(&after, "/table_used"),
        counter(&after, "/table_evicted"),
    );
    eprintln!(
        "flood: {completed} clients bound and released; daemon RSS {:.1} MiB at start, {:.1} MiB after; table {used}/{capacity}, {evicted} evicted",
        rss_start as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
    );
    assert!(
        completed > 4 * MAX_CLIENTS,
        "the flood went far past max_clients: {completed}\n{report}"
    );
    assert!(used <= capacity, "{used} records in a table of {capacity}");
    assert!(evicted > 0, "the table evicted: {after}");
    // Each client left a released record: all but a table's worth were
    // evicted to make room.
    assert!(
        evicted >= completed - capacity,
        "{evicted} evicted for {completed} clients"
    );
    // The table was allocated at start; even if it had not been, it could
    // not take more than max_clients records' worth.
    let limit = rss_start + MAX_CLIENTS * BYTES_PER_CLIENT + SLACK;
    assert!(
        rss_after <= limit,
        "RSS {rss_after} bytes after the flood, over {limit} (start {rss_start})"
    );

    let dh = Dhclient::lease(&lab, &lab.cli_if)
        .unwrap_or_else(|e| panic!("{e:#}\n--- xdhcpd log ---\n{}", d.log()));
    let addrs = lab.ipv4_addrs(true, &lab.cli_if).expect("client addresses");
    drop(dh);
    assert!(
        addrs.iter().any(|&a| in_pool(a)),
        "dhclient got no pool address after the flood ({addrs:?})"
    );
    let stats = d.stop().expect("xdhcpd stops cleanly");
    assert_eq!(counter(&stats, "/total/table_full"), 0, "nobody refused");
}
