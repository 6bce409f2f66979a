//! `cargo xtask`: the commands that set a machine up, run the lab, the
//! demo and the whole test suite. It never depends on `dhcp-user`, because
//! `cargo xtask setup` is what installs the eBPF toolchain that crate needs.
//! This file is the command line and its dispatch; each command is a module
//! of the xtask library (see lib.rs).

use anyhow::Result;
use clap::{Parser, Subcommand};

use xtask::lab::{CLIENT_ADDR, LabOptions, SERVER_ADDR};
use xtask::process::require_root;
use xtask::workspace::{RELEASE_BUILD, cargo, release_build, target_dir};
use xtask::{deb, demo, lab_cmd, setup, test};

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
    /// Build the Debian package (release build, man pages, cargo deb),
    /// check what it holds and print its path.
    Deb {
        /// Package the release binaries already built.
        #[arg(long)]
        no_build: bool,
    },
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
    /// xdhcpd (journal fast) with one queue and with two in a lab of two
    /// queues, alternated, xdhcpgen with a worker per queue: leases/s two
    /// queues over one (the generator shares the cores). Release binaries
    /// as built.
    Queues(xtask::bench::BenchArgs),
    /// Instructions per packet of the engine beside dhcproto, by callgrind
    /// (no root, no lab).
    Instructions,
    /// The durable journal's group commit without the lab: fsync and
    /// append-to-durable p50/p99/max under /var/tmp and on XFS on a loop
    /// device, optionally beside a baseline build of the same bench.
    Fsync(xtask::bench::inproc::FsyncArgs),
    /// DORA through one engine (and the journal) from 1 and 2 worker
    /// threads, with pre-built frames: leases/s 2 threads over 1.
    Scaling {
        #[arg(long, default_value_t = 9)]
        rounds: u32,
    },
    /// Instructions per packet by callgrind (valgrind), DISCOVER->OFFER
    /// and REQUEST->ACK, split into parse, decide and reply building.
    Split {
        #[arg(long, default_value_t = 20_000)]
        clients: u32,
    },
    /// The HA lab (three nats-server, two xdhcpd): full-DORA leases/s of
    /// one server beside the pair in each mode and durability, with the
    /// CPU per lease of the servers and of NATS (tests/bench_ha.rs).
    Ha {
        /// Alternating rounds; the table gives the medians.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// New clients per round.
        #[arg(long, default_value_t = 100_000)]
        clients: u32,
        /// The CPU budget of each server in the second half of the rows,
        /// in cores (a cgroup each, standing in for a host each); 0 leaves
        /// those rows out.
        #[arg(long, default_value_t = 0.25)]
        server_cpu: f64,
    },
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
        Cmd::Lab { action } => lab(action),
        Cmd::Demo(args) => demo::run(&args),
        Cmd::Test(args) => test::run(&args),
        Cmd::Deb { no_build } => deb::run(no_build).map(|_| ()),
        Cmd::Bench { what, args } => match what {
            None => bench_all(&args),
            Some(BenchCmd::All(args)) => bench_all(&args),
            Some(BenchCmd::Journal) => xtask::bench::journal::run(),
            Some(BenchCmd::Queues(args)) => require_root("the bench")
                .and_then(|()| setup::ensure())
                .and_then(|()| xtask::bench::queues::run(&args)),
            Some(BenchCmd::Instructions) => {
                xtask::bench::instructions::run(&xtask::workspace::target_dir())
            }
            Some(BenchCmd::Fsync(a)) => require_root("the fsync bench (a loop device)")
                .and_then(|()| xtask::bench::inproc::fsync(&a)),
            Some(BenchCmd::Scaling { rounds }) => xtask::bench::inproc::scaling(rounds),
            Some(BenchCmd::Split { clients }) => xtask::bench::inproc::split_instructions(clients),
            Some(BenchCmd::Ha {
                rounds,
                clients,
                server_cpu,
            }) => bench_ha(rounds, clients, server_cpu),
        },
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// `cargo xtask bench [all]`: builds the release binaries (the profile
/// every bench uses), then runs xtask::bench.
fn bench_all(args: &xtask::bench::BenchArgs) -> Result<()> {
    require_root("the bench")?;
    setup::ensure()?;
    if !args.no_build {
        println!("bench: building xdhcpd, xdhcpgen and xdhcpecho ({RELEASE_BUILD})");
        setup::run_cmd(&mut release_build(), RELEASE_BUILD)?;
    }
    xtask::bench::run(args, &target_dir())
}

/// `cargo xtask bench ha`: the release binaries, then tests/bench_ha.rs
/// (it starts its own lab and NATS cluster and removes them).
fn bench_ha(rounds: u32, clients: u32, server_cpu: f64) -> Result<()> {
    require_root("the HA bench (network namespaces)")?;
    setup::ensure()?;
    setup::run_cmd(&mut release_build(), RELEASE_BUILD)?;
    setup::run_cmd(
        cargo()
            .args(["test", "-p", "xdhcpd-suite", "--test", "bench_ha"])
            .args(["--", "--include-ignored", "--nocapture"])
            .env("XDHCPD_BIN", target_dir().join("release/xdhcpd"))
            .env("BENCH_HA_ROUNDS", rounds.to_string())
            .env("BENCH_HA_CLIENTS", clients.to_string())
            .env("BENCH_HA_SERVER_CPU", server_cpu.to_string()),
        "cargo test -p xdhcpd-suite --test bench_ha",
    )
}

fn lab(action: LabCmd) -> Result<()> {
    match action {
        LabCmd::Up {
            name,
            client_addr,
            vlan,
            server_vlan_addr,
            queues,
        } => lab_cmd::up(&LabOptions {
            name,
            server_addr: SERVER_ADDR.to_string(),
            client_addr,
            client_vlan: vlan,
            server_vlan_addr,
            queues,
        }),
        LabCmd::Down { name } => lab_cmd::down(&name),
    }
}
