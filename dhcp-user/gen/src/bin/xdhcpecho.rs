//! xdhcpecho: the benchmark's ceiling. Runs the daemon's XDP/AF_XDP path
//! with the engine replaced by an address swap ([`xdhcpgen::echo`]): each
//! DHCP request comes back as a reply, nothing decided. Takes the
//! daemon's config and flags (the ones it needs), so `cargo xtask bench`
//! and the lab tests start it exactly as they start xdhcpd.
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;
use xdhcp::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Benchmarking only: xdhcpd's XDP/AF_XDP path answering every DHCP request with itself, addresses swapped"
)]
struct Cli {
    /// xdhcpd's configuration file (TOML): its interface, io, xdp_mode,
    /// bind, poll, queues, cores, batch, frames and ring_size are used.
    #[arg(long, short)]
    config: PathBuf,
    /// Write counters as JSON to this file (atomically, every interval),
    /// in the daemon's shape with `"mode": "echo"`.
    #[arg(long)]
    stats_file: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    stats_interval_ms: u64,
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let every = Duration::from_millis(cli.stats_interval_ms);
    let result = Config::load(&cli.config)
        .and_then(|c| xdhcpgen::echo::serve(&c, cli.stats_file.as_deref(), every));
    if let Err(e) = result {
        eprintln!("xdhcpecho: {e:#}");
        std::process::exit(1);
    }
}
