//! `cargo xtask demo`: xdhcpd in a lab of its own under perfdhcp's load,
//! then the bundled generator's, and what the client's wire, perfdhcp and
//! the daemon's counters saw.
use crate::capture::{self, Capture};
use crate::capture::{DHCPACK, DHCPDISCOVER, DHCPOFFER, DHCPREQUEST};
use crate::daemon::{self, Daemon};
use crate::lab::{self, CLIENT_ADDR, Lab, LabOptions};
use crate::process::{catch_sigint, interrupted, require_root};
use crate::workspace::{RELEASE_BUILD, release_build};
use crate::{perfdhcp, setup};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DEMO_CONFIG: &str = include_str!("../configs/demo.toml");

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
        println!("demo: building xdhcpd and xdhcpgen ({RELEASE_BUILD})");
        setup::run_cmd(&mut release_build(), RELEASE_BUILD)?;
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
    // Ctrl-C reaches perfdhcp (which then prints its final report) and the
    // daemon; the demo stays to print what was measured.
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
    let generated = if args.gen_clients > 0 && !interrupted() {
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
    if interrupted() {
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
    let secs = if interrupted() {
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
