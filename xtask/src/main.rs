//! `cargo xtask`: the commands that set a machine up, run the lab, the
//! demo and the whole test suite. It never depends on `dhcp-user`, because
//! `cargo xtask setup` is what installs the eBPF toolchain that crate needs.

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::lab::{self, Lab, LabOptions};
use xtask::perfdhcp;
use xtask::setup;

/// The lab's addressing: RFC 2544's benchmarking range, never routed.
const SERVER_ADDR: &str = "198.18.0.1/15";
const CLIENT_ADDR: &str = "198.18.0.2/15";

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Set up, run and test xdhcpd"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the Debian packages, Rust components and bpf-linker that
    /// building and testing need (quick when all is there).
    Setup {
        /// Redo every step even when it looks done.
        #[arg(long)]
        force: bool,
    },
    /// Bring the two-namespace veth lab up or down.
    Lab {
        #[command(subcommand)]
        action: LabCmd,
    },
    /// Build xdhcpd, run it in the lab and load it with perfdhcp.
    Demo(demo::DemoArgs),
    /// fmt, clippy, build, unit and conformance tests, then the lab tests.
    Test(test::TestArgs),
    /// End-to-end measurements in the lab (root; prints tables). Without a
    /// subcommand: `all`.
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        #[command(subcommand)]
        what: Option<BenchCmd>,
        #[command(flatten)]
        args: xtask::bench::BenchArgs,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// xdhcpd (fast and durable journal) beside kea-dhcp4 (memfile with and
    /// without persistence) under perfdhcp's rising rates and xdhcpgen,
    /// and beside the AF_XDP echo ceiling; writes target/bench/.
    All(xtask::bench::BenchArgs),
    /// Durable versus fast lease journal, leases/s side by side, driven by
    /// perfdhcp and xdhcpgen, journal on a disk-backed file system.
    Journal,
}

#[derive(Subcommand)]
enum LabCmd {
    /// Create the namespaces and the veth pair and print how to use them.
    Up {
        /// Lab name; namespaces and interfaces are named after it (keep it
        /// short: interface names have at most 15 characters).
        #[arg(long, default_value = "xlab")]
        name: String,
        /// Give the client end this address too (needed by perfdhcp, which
        /// acts as a relay, and by ping/TCP tests).
        #[arg(long, num_args = 0..=1, default_missing_value = CLIENT_ADDR)]
        client_addr: Option<String>,
        /// Put the client behind an 802.1Q sub-interface with this VLAN id.
        #[arg(long)]
        vlan: Option<u16>,
        /// Address of the server on that VLAN (a sub-interface on its end).
        #[arg(long, requires = "vlan")]
        server_vlan_addr: Option<String>,
        /// RX/TX queues of each veth end: give xdhcpd `queues = N` and
        /// xdhcpgen `--queues N` to run N workers on each side.
        #[arg(long, default_value_t = 1)]
        queues: u32,
    },
    /// Remove the lab's namespaces (and with them its interfaces).
    Down {
        #[arg(long, default_value = "xlab")]
        name: String,
    },
}

fn main() {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Setup { force } => setup::run(force),
        Cmd::Lab { action } => lab_cmd(action),
        Cmd::Demo(args) => demo::run(&args),
        Cmd::Test(args) => test::run(&args),
        Cmd::Bench { what, args } => match what {
            None => bench_all(&args),
            Some(BenchCmd::All(args)) => bench_all(&args),
            Some(BenchCmd::Journal) => xtask::bench_journal::run(),
        },
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The workspace root: xtask lives one folder below it.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// The cargo that started us (so `cargo +toolchain xtask` stays on it).
fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(workspace_root());
    // The eBPF build runs bpf-linker by name; setup installs it into cargo's
    // bin folder, which a CI shell may not have on PATH.
    let bin = setup::cargo_bin_dir();
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|p| p == bin) {
        let mut parts: Vec<PathBuf> = std::env::split_paths(&path).collect();
        parts.push(bin);
        if let Ok(joined) = std::env::join_paths(parts) {
            c.env("PATH", joined);
        }
    }
    c
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => workspace_root().join(d),
        None => workspace_root().join("target"),
    }
}

/// `cargo xtask bench [all]`: builds the release binaries (the profile
/// every bench uses), then runs xtask::bench.
fn bench_all(args: &xtask::bench::BenchArgs) -> Result<()> {
    require_root("the bench")?;
    setup::ensure()?;
    if !args.no_build {
        println!(
            "bench: building xdhcpd, xdhcpgen and xdhcpecho (cargo build --release -p dhcp-user -p xdhcpgen)"
        );
        setup::run_cmd(
            cargo().args(["build", "--release", "-p", "dhcp-user", "-p", "xdhcpgen"]),
            "cargo build --release -p dhcp-user -p xdhcpgen",
        )?;
    }
    xtask::bench::run(args, &target_dir())
}

fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("{what} needs root (network namespaces, XDP, AF_XDP); run it as root");
    }
    Ok(())
}

fn lab_cmd(action: LabCmd) -> Result<()> {
    match action {
        LabCmd::Up {
            name,
            client_addr,
            vlan,
            server_vlan_addr,
            queues,
        } => {
            require_root("the lab")?;
            let opts = LabOptions {
                name: name.clone(),
                server_addr: SERVER_ADDR.to_string(),
                client_addr: client_addr.clone(),
                client_vlan: vlan,
                server_vlan_addr: server_vlan_addr.clone(),
                queues,
            };
            let lab = Lab::up(&opts)?;
            let cli_if = lab
                .cli_vlan_if
                .clone()
                .unwrap_or_else(|| lab.cli_if.clone());
            println!("lab {name} is up");
            println!(
                "  server  namespace {:<14} interface {:<12} mac {}  address {SERVER_ADDR}{}",
                lab.srv_ns,
                lab.srv_if,
                lab::format_mac(&lab.srv_mac),
                server_vlan_addr
                    .as_deref()
                    .map(|a| format!(", {a} on VLAN {}", vlan.unwrap_or(0)))
                    .unwrap_or_default()
            );
            println!(
                "  client  namespace {:<14} interface {:<12} mac {}  address {}",
                lab.cli_ns,
                cli_if,
                lab::format_mac(&lab.cli_mac),
                client_addr.as_deref().unwrap_or("none")
            );
            println!();
            println!("  enter a side:   ip netns exec {} bash", lab.srv_ns);
            println!(
                "  run the server: ip netns exec {} target/release/xdhcpd --config FILE   (interface = \"{}\")",
                lab.srv_ns, lab.srv_if
            );
            println!(
                "  get a lease:    ip netns exec {} dhclient -1 -v -lf /tmp/{name}.leases -pf /tmp/{name}.pid {cli_if}",
                lab.cli_ns
            );
            if client_addr.is_some() {
                println!(
                    "  load it:        ip netns exec {} perfdhcp -4 -l {cli_if} -r 1000 -R 1000 -p 5",
                    lab.cli_ns
                );
            }
            println!("  take it down:   cargo xtask lab down --name {name}");
            // The lab outlives this command; `lab down` removes it.
            std::mem::forget(lab);
            Ok(())
        }
        LabCmd::Down { name } => {
            require_root("the lab")?;
            // "NAME-" so that taking down `xlab` leaves `xlab2` alone.
            let prefix = format!("{name}-");
            let found: Vec<String> = lab::netns_list()?
                .into_iter()
                .filter(|n| n.starts_with(&prefix))
                .collect();
            if found.is_empty() {
                println!("lab {name} was not up");
                return Ok(());
            }
            lab::remove_stale(&prefix)?;
            println!("lab {name} is down (removed {})", found.join(", "));
            Ok(())
        }
    }
}

mod demo {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    use xtask::capture::{self, Capture};
    use xtask::daemon::{self, Daemon};

    const DEMO_CONFIG: &str = include_str!("../configs/demo.toml");

    use xtask::capture::{DHCPACK, DHCPDISCOVER, DHCPOFFER, DHCPREQUEST};

    /// The percentiles the demo prints (nearest rank); 100 is the maximum.
    const POINTS: [(f64, &str); 5] = [
        (50.0, "p50"),
        (90.0, "p90"),
        (99.0, "p99"),
        (99.9, "p99.9"),
        (100.0, "max"),
    ];

    #[derive(Args)]
    pub struct DemoArgs {
        /// How long perfdhcp sends.
        #[arg(long, default_value_t = 10)]
        pub seconds: u32,
        /// DORA exchanges perfdhcp starts per second.
        #[arg(long, default_value_t = 8_000)]
        pub rate: u32,
        /// Distinct clients (MAC addresses) perfdhcp simulates.
        #[arg(long, default_value_t = 20_000)]
        pub clients: u32,
        /// Use this config instead of xtask/configs/demo.toml (its
        /// `interface` is replaced by the lab's server interface).
        #[arg(long)]
        pub config: Option<PathBuf>,
        /// Lab name (namespaces and interfaces are named after it).
        #[arg(long, default_value = "xdemo")]
        pub name: String,
        /// Skip `cargo build --release -p dhcp-user -p xdhcpgen`.
        #[arg(long)]
        pub no_build: bool,
        /// Clients the bundled generator (xdhcpgen) runs DORA for, open
        /// loop, after perfdhcp; 0 leaves it out.
        #[arg(long, default_value_t = 50_000)]
        pub gen_clients: u32,
    }

    static INTERRUPTED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_sigint(_: libc::c_int) {
        INTERRUPTED.store(true, Ordering::Relaxed);
    }

    /// Ctrl-C reaches perfdhcp (which then prints its final report) and
    /// the daemon; we stay alive to print what was measured and take the
    /// lab down. A handler, unlike SIG_IGN, is not inherited across exec.
    fn catch_sigint() {
        let handler: extern "C" fn(libc::c_int) = on_sigint;
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe { libc::signal(libc::SIGINT, handler as libc::sighandler_t) };
    }

    pub fn config_for(template: &str, interface: &str) -> Result<String> {
        let mut table: toml::Table = template.parse().context("parsing the demo config")?;
        table.insert("interface".into(), toml::Value::String(interface.into()));
        Ok(toml::to_string(&table)?)
    }

    pub fn run(args: &DemoArgs) -> Result<()> {
        require_root("the demo")?;
        if args.seconds == 0 || args.rate == 0 || args.clients == 0 {
            bail!("--seconds, --rate and --clients must be at least 1");
        }
        let template = match &args.config {
            Some(p) => {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
            }
            None => DEMO_CONFIG.to_string(),
        };
        setup::ensure()?;
        if !args.no_build {
            println!(
                "demo: building xdhcpd and xdhcpgen (cargo build --release -p dhcp-user -p xdhcpgen)"
            );
            setup::run_cmd(
                cargo().args(["build", "--release", "-p", "dhcp-user", "-p", "xdhcpgen"]),
                "cargo build --release -p dhcp-user -p xdhcpgen",
            )?;
        }
        let bin = daemon::xdhcpd_bin();
        if !bin.exists() {
            bail!("{} does not exist; build it first", bin.display());
        }

        // A demo killed half-way leaves its namespaces behind.
        lab::remove_stale(&format!("{}-", args.name))?;
        let mut lab = Lab::up(&LabOptions {
            client_addr: Some(CLIENT_ADDR.to_string()),
            ..LabOptions::new(&args.name)
        })?;
        let res = run_in_lab(args, &lab, &bin, &template);
        let down = lab.down();
        res?;
        down
    }

    fn run_in_lab(args: &DemoArgs, lab: &Lab, bin: &Path, template: &str) -> Result<()> {
        let config = config_for(template, &lab.srv_if)?;
        println!(
            "demo: lab {} up: xdhcpd on {} in {}, perfdhcp on {} in {}",
            args.name, lab.srv_if, lab.srv_ns, lab.cli_if, lab.cli_ns
        );
        let daemon = Daemon::start(lab, bin, &config)?;
        let cap = match Capture::start(lab, true, &lab.cli_if, "udp port 67 or udp port 68") {
            Ok(c) => c,
            Err(e) => {
                let _ = daemon.stop();
                return Err(e.context("starting the client-side capture"));
            }
        };
        catch_sigint();
        println!(
            "demo: perfdhcp -4 -l {} -r {} -R {} -p {} ({} s)",
            lab.cli_if, args.rate, args.clients, args.seconds, args.seconds
        );
        let started = Instant::now();
        let out = lab
            .cli("perfdhcp")
            .args(["-4", "-l", &lab.cli_if])
            .args(["-r", &args.rate.to_string()])
            .args(["-R", &args.clients.to_string()])
            .args(["-p", &args.seconds.to_string()])
            .output();
        let ran_for = started.elapsed();
        // Replies still on their way when perfdhcp stops belong in the capture.
        std::thread::sleep(Duration::from_millis(300));
        // At high rates tcpdump can fall behind; the demo still reports,
        // and says how much of the wire it missed.
        let frames = cap.stop_lossy();
        // Then the bundled generator, at the rate the server can take
        // (perfdhcp is the limit above), against the same daemon: fresh
        // clients, so the pool must hold both runs' clients.
        let generated = if args.gen_clients > 0 && !INTERRUPTED.load(Ordering::Relaxed) {
            let gen_bin = bin.with_file_name("xdhcpgen");
            let n = args.gen_clients.to_string();
            println!(
                "demo: xdhcpgen -i {} --clients {n} --window 256 (open loop, every reply checked)",
                lab.cli_if
            );
            Some(
                lab.cli(&gen_bin.to_string_lossy())
                    .args(["-i", &lab.cli_if, "--scenario", "dora", "--clients", &n])
                    .args(["--window", "256", "--expect-subnet", "198.18.0.0/15"])
                    .args(["--mac-prefix", "02:67:6e", "--no-progress"])
                    .output(),
            )
        } else {
            None
        };
        let stats = daemon.stop();

        let out = out.context("running perfdhcp in the client namespace")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report = perfdhcp::parse(&text);
        // Exit 3 means some exchanges did not complete: that is a result
        // (drops), not a failure of the run.
        let code = out.status.code();
        if !matches!(code, Some(0) | Some(3)) || report.exchanges.is_empty() {
            eprintln!("{text}");
            bail!("perfdhcp failed ({}) or printed no report", out.status);
        }
        let (frames, cap_dropped) = frames.context("stopping the capture")?;
        let stats = stats.context("stopping xdhcpd")?;
        let seen = capture::dhcp_frames(&frames);

        println!();
        print_results(args, ran_for, &report, &seen);
        if cap_dropped > 0 {
            println!(
                "note         the capture lost {cap_dropped} frames: leases/s and latencies from the wire undercount"
            );
        }
        if let Some(out) = generated {
            let out = out.context("running xdhcpgen in the client namespace")?;
            println!("\nxdhcpgen     the bundled generator against the same daemon");
            print!("{}", String::from_utf8_lossy(&out.stdout));
            if !out.status.success() {
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                bail!("xdhcpgen failed ({})", out.status);
            }
        }
        print_stats(&stats);
        if INTERRUPTED.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        Ok(())
    }

    fn print_results(
        args: &DemoArgs,
        ran_for: Duration,
        report: &perfdhcp::Report,
        seen: &[capture::DhcpSeen],
    ) {
        // perfdhcp sends for exactly --seconds unless it was interrupted.
        let secs = if INTERRUPTED.load(Ordering::Relaxed) {
            ran_for.as_secs_f64().min(f64::from(args.seconds))
        } else {
            f64::from(args.seconds)
        };
        let acks = seen
            .iter()
            .filter(|s| s.op == 2 && s.msg_type == Some(DHCPACK))
            .count();
        println!(
            "load         perfdhcp, {} DORA/s offered, {} clients, {} s (ran {:.1} s)",
            args.rate,
            args.clients,
            args.seconds,
            ran_for.as_secs_f64()
        );
        println!(
            "leases/s     {:>8.0}  ACKs on the client's wire ({acks}) / {secs:.1} s",
            acks as f64 / secs,
        );
        if let Some(ra) = report.exchange("REQUEST-ACK") {
            println!(
                "             {:>8.0}  ACKs perfdhcp received ({}) / {secs:.1} s",
                ra.received as f64 / secs,
                ra.received,
            );
        }
        if let Some(rate) = report.rate {
            println!(
                "             {rate:>8.0}  perfdhcp's own rate (it aimed at {})",
                report
                    .expected_rate
                    .map_or("?".into(), |r| format!("{r:.0}"))
            );
        }
        println!("drops        (perfdhcp)");
        for ex in &report.exchanges {
            println!(
                "  {:<16} sent {:>9}  received {:>9}  drops {:>8} ({:.3} %)  orphans {}  rejected {}  non-unique {}",
                ex.name,
                ex.sent,
                ex.received,
                ex.drops,
                ex.drops_ratio_pct,
                ex.orphans,
                ex.rejected,
                ex.non_unique
            );
        }
        if let Some(m) = report.malformed.filter(|m| *m > 0) {
            println!("  malformed replies: {m}");
        }
        // A reply that crossed the wire but that perfdhcp did not count was
        // lost in the client's socket: a limit of the load generator on
        // these two cores, not of the server.
        for (name, reply) in [("DISCOVER-OFFER", DHCPOFFER), ("REQUEST-ACK", DHCPACK)] {
            let on_wire = seen
                .iter()
                .filter(|s| s.op == 2 && s.msg_type == Some(reply))
                .count() as u64;
            if let Some(ex) = report.exchange(name)
                && on_wire > ex.received
            {
                println!(
                    "  {name:<16} {} replies were on the client's wire but perfdhcp did not count them (lost on the client side)",
                    on_wire - ex.received
                );
            }
        }
        print!("latency µs   (client's wire) {:>8}", "n");
        for (_, label) in POINTS {
            print!(" {label:>8}");
        }
        println!();
        for (label, req, rep) in [
            ("DISCOVER→OFFER", DHCPDISCOVER, DHCPOFFER),
            ("REQUEST→ACK", DHCPREQUEST, DHCPACK),
        ] {
            let lat = capture::latencies_us(seen, req, rep);
            print!("  {label:<26} {:>8}", lat.len());
            if lat.is_empty() {
                println!("   (no matched pairs)");
                continue;
            }
            for (p, _) in POINTS {
                print!(" {:>8}", capture::percentile(&lat, p).unwrap_or(0));
            }
            println!();
        }
    }

    fn field(v: &serde_json::Value, key: &str) -> String {
        match v.get(key) {
            None | Some(serde_json::Value::Null) => "-".into(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => match n.as_f64() {
                Some(f) if n.is_f64() => format!("{f:.1}"),
                _ => n.to_string(),
            },
            Some(other) => other.to_string(),
        }
    }

    /// The counters of the stats file in reading order, grouped by line:
    /// what moved, what came in, what went out or was refused.
    const XDP_FIELDS: [&[&str]; 1] = [&["seen", "redirected", "passed", "malformed", "no_socket"]];
    const WORKER_FIELDS: [&[&str]; 3] = [
        &["rx", "tx", "tx_dropped", "malformed"],
        &["discover", "request", "decline", "release", "inform"],
        &["offer", "ack", "nak", "ignored", "no_address", "no_subnet"],
    ];

    /// `key value` lines of a JSON object: the known keys in `groups`,
    /// then any the daemon added since, so nothing it reports is hidden.
    fn counter_lines(v: &serde_json::Value, groups: &[&[&str]], skip: &[&str]) -> Vec<String> {
        let Some(obj) = v.as_object() else {
            return vec!["-".into()];
        };
        let pair = |k: &str| obj.get(k).map(|v| format!("{k} {v}"));
        let mut lines: Vec<String> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .filter_map(|k| pair(k))
                    .collect::<Vec<_>>()
                    .join("  ")
            })
            .filter(|l| !l.is_empty())
            .collect();
        let known: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
        let extra: Vec<String> = obj
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()) && !skip.contains(&k.as_str()))
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !extra.is_empty() {
            lines.push(extra.join("  "));
        }
        lines
    }

    fn print_block(label: &str, lines: &[String]) {
        for (i, l) in lines.iter().enumerate() {
            let head = if i == 0 { label } else { "" };
            println!("  {head:<10} {l}");
        }
    }

    fn print_stats(stats: &serde_json::Value) {
        println!(
            "xdhcpd       io {}, xdp mode {}, bind {}, up {} s",
            field(stats, "io"),
            field(stats, "xdp_mode"),
            field(stats, "bind"),
            field(stats, "uptime_s")
        );
        if let Some(x) = stats.get("xdp").filter(|x| !x.is_null()) {
            print_block("xdp", &counter_lines(x, &XDP_FIELDS, &[]));
        }
        if let Some(t) = stats.get("total") {
            print_block("total", &counter_lines(t, &WORKER_FIELDS, &[]));
        }
        let workers = stats.get("workers").and_then(|w| w.as_array());
        // With one queue the worker's line repeats the total.
        if let Some(ws) = workers.filter(|w| w.len() > 1) {
            for w in ws {
                let label = format!("queue {}", field(w, "queue"));
                print_block(&label, &counter_lines(w, &WORKER_FIELDS, &["queue"]));
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn demo_config_gets_the_lab_interface() {
            let c = config_for(DEMO_CONFIG, "xyz-s").unwrap();
            let t: toml::Table = c.parse().unwrap();
            assert_eq!(t["interface"].as_str(), Some("xyz-s"));
            assert_eq!(t["io"].as_str(), Some("xdp"));
            assert_eq!(t["server_id"].as_str(), Some("198.18.0.1"));
            let subnets = t["subnet"].as_array().unwrap();
            assert_eq!(subnets[0]["prefix"].as_str(), Some("198.18.0.0/15"));
        }

        #[test]
        fn counters_print_in_reading_order_and_keep_unknown_ones() {
            let v = serde_json::json!({"tx": 2, "rx": 1, "ack": 5, "queue": 0, "new_one": 7});
            let lines = counter_lines(&v, &WORKER_FIELDS, &["queue"]);
            assert_eq!(lines, vec!["rx 1  tx 2", "ack 5", "new_one 7"]);
        }
    }
}

mod test {
    use super::*;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
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
        // SAFETY: geteuid has no preconditions and cannot fail.
        if !args.no_lab && unsafe { libc::geteuid() } != 0 {
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
            .current_dir(workspace_root())
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

        banner("cargo build --release -p dhcp-user -p xdhcpgen");
        let built = cargo()
            .args(["build", "--release", "-p", "dhcp-user", "-p", "xdhcpgen"])
            .status()?
            .success();
        record("build", built, if built { "ok" } else { "FAILED" }.into());
        let bin = target_dir().join("release").join("xdhcpd");

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

        // A bounded run of the engine's fuzz target (cargo-fuzz, nightly):
        // no panic and every malformed frame counted, on inputs nobody
        // wrote by hand.
        banner("fuzz: the request parser and engine, 60 s");
        match xtask::fuzz::run_bounded(FUZZ_SECONDS) {
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
    const LAB_TESTS: &[&str] = &["lab", "gen_lab", "lab_leases", "lab_clients"];

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
}
