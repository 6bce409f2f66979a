//! xdhcpgen: the bundled DHCPv4 load generator. Simulates many clients (or
//! relay agents) against a server, checks every reply, and reports
//! leases per second and latency percentiles.
use anyhow::Context;
use clap::Parser;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use xdhcp::config::{AttachMode, BindMode, PollMode};
use xdhcp::wire::VlanTags;
use xdhcpgen::{Attack, AttackOptions, DeclineWhen, IoBackend, Options, Prefix, Scenario, report};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "DHCPv4 load generator: simulated clients over AF_XDP (or AF_PACKET), every reply checked"
)]
struct Cli {
    /// Interface facing the server (in a lab: the client end).
    #[arg(long, short)]
    interface: String,
    #[arg(long, value_enum, default_value = "dora")]
    scenario: Scenario,
    /// Simulated clients (distinct MACs).
    #[arg(long, default_value_t = 1000)]
    clients: u32,
    /// Exchanges to run in all (default: one per client, unless --duration).
    #[arg(long)]
    count: Option<u64>,
    /// Keep starting exchanges for this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Exchanges started per second; 0 for open loop (as fast as the window allows).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Exchanges in flight at once.
    #[arg(long, default_value_t = 512)]
    window: u32,
    /// Wait for the first reply, in ms; doubled for each retransmission.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Retransmissions before an exchange counts as a timeout.
    #[arg(long, default_value_t = 2)]
    retries: u8,
    /// Mixed scenario: share of started exchanges that are renewals.
    #[arg(long, default_value_t = 0.8)]
    renew_share: f64,
    /// Count OFFER/ACK addresses outside this prefix (e.g. 198.18.0.0/15).
    #[arg(long)]
    expect_subnet: Option<Prefix>,
    /// Send option 61 (client identifier: type 1 and the MAC).
    #[arg(long)]
    client_id: bool,
    /// Send option 82 (circuit id gen-<index>, remote id the interface MAC)
    /// also without a relay.
    #[arg(long)]
    option82: bool,
    /// Tag every frame with this VLAN id (twice for QinQ: outer, inner).
    #[arg(long, num_args = 1..=2, value_delimiter = ',')]
    vlan: Vec<u16>,
    /// Set the BOOTP broadcast flag (replies come broadcast).
    #[arg(long)]
    broadcast: bool,
    /// Act as relay agent(s) with these addresses (giaddr; replies to port 67).
    #[arg(long, value_delimiter = ',')]
    relay: Vec<Ipv4Addr>,
    /// Play this many relays: consecutive addresses from the first --relay.
    #[arg(long)]
    relays: Option<u32>,
    /// The server's address, for relayed (unicast) messages.
    #[arg(long)]
    server: Option<Ipv4Addr>,
    /// The server's MAC (or the next router's), for relayed messages.
    #[arg(long, value_parser = parse_mac)]
    server_mac: Option<[u8; 6]>,
    /// First three bytes of the clients' MACs (locally administered).
    #[arg(long, value_parser = parse_prefix, default_value = "02:67:65")]
    mac_prefix: [u8; 3],
    #[arg(long, value_enum, default_value = "xdp")]
    io: IoBackend,
    #[arg(long, value_parser = parse_attach, default_value = "auto")]
    xdp_mode: AttachMode,
    #[arg(long, value_parser = parse_bind, default_value = "auto")]
    bind: BindMode,
    /// AF_XDP queues, one worker each (default: every RX queue).
    #[arg(long)]
    queues: Option<u32>,
    #[arg(long, default_value_t = 4096)]
    frames: u32,
    #[arg(long, default_value_t = 2048)]
    ring_size: u32,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// spin (lowest latency, a core at 100 %) or adaptive.
    #[arg(long, value_parser = parse_poll, default_value = "spin")]
    poll: PollMode,
    /// Cores to pin the workers to, in queue order; default: the last
    /// cores, downwards, away from a server on the same host (which takes
    /// core q for queue q).
    #[arg(long, value_delimiter = ',')]
    cores: Vec<usize>,
    /// Write the summary as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the percentile distribution (HdrHistogram text format).
    #[arg(long)]
    hgrm: Option<PathBuf>,
    /// Write a latency-percentile plot (SVG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// No live progress line (it is off anyway when stderr is no terminal).
    #[arg(long)]
    no_progress: bool,
    /// Write every client's lease at the end (JSON: chaddr, address,
    /// server_id), for a later `--scenario reboot --leases-in`.
    #[arg(long)]
    leases_out: Option<PathBuf>,
    /// The reboot scenario's leases: a file `--leases-out` wrote (with the
    /// same --mac-prefix).
    #[arg(long)]
    leases_in: Option<PathBuf>,
    /// A renewal that goes unanswered is sent again broadcast (REBINDING)
    /// instead of timing out, as a client does when its server is gone.
    #[arg(long)]
    rebind_on_timeout: bool,
    /// Exit with status 2 when any check failed (timeouts, NAKs,
    /// duplicates, wrong xids, ...).
    #[arg(long)]
    strict: bool,
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    #[command(flatten)]
    attack: AttackCli,
}

/// A second fleet beside the scenario's, playing an attacker; the report
/// gives what each fleet got.
#[derive(clap::Args)]
struct AttackCli {
    /// Run this attack beside the scenario: starve (DORA for many made-up
    /// MACs), spoof82 (giaddr 0 with a forged option 82), decline
    /// (DECLINE storms).
    #[arg(long, value_enum)]
    attack: Option<Attack>,
    /// Made-up attack clients (distinct MACs; default 1000, spoof82 1).
    #[arg(long, requires = "attack")]
    attack_clients: Option<u32>,
    /// Attack exchanges in all (default: one per attack client, or the
    /// scenario's --duration).
    #[arg(long, requires = "attack")]
    attack_count: Option<u64>,
    /// Keep starting attack exchanges for this many seconds.
    #[arg(long, requires = "attack")]
    attack_duration: Option<f64>,
    /// Attack exchanges started per second; 0: as fast as the window allows.
    #[arg(long, requires = "attack", default_value_t = 0.0)]
    attack_rate: f64,
    /// Attack exchanges in flight at once.
    #[arg(long, requires = "attack", default_value_t = 512)]
    attack_window: u32,
    /// The attack's wait for a reply, in ms.
    #[arg(long, requires = "attack", default_value_t = 1000)]
    attack_timeout_ms: u64,
    /// The attack's retransmissions (default none: a flood does not wait).
    #[arg(long, requires = "attack", default_value_t = 0)]
    attack_retries: u8,
    /// Start the scenario's clients this many ms after the attack.
    #[arg(long, requires = "attack", default_value_t = 0)]
    attack_lead_ms: u64,
    /// First three bytes of the attack clients' MACs.
    #[arg(long, requires = "attack", value_parser = parse_prefix, default_value = "02:61:74")]
    attack_mac_prefix: [u8; 3],
    /// One option 82 circuit id for every attack client (relayed: one
    /// subscriber line; spoof82: the forged one).
    #[arg(long, requires = "attack")]
    attack_circuit_id: Option<String>,
    /// The attack's option 82 remote id (default: the interface MAC).
    #[arg(long, requires = "attack")]
    attack_remote_id: Option<String>,
    /// Put link selection (82.5) naming this subnet into the attack's
    /// option 82.
    #[arg(long, requires = "attack")]
    attack_link_selection: Option<Ipv4Addr>,
    /// Tag the attack's frames with this VLAN (twice for QinQ) instead of --vlan.
    #[arg(long, requires = "attack", num_args = 1..=2, value_delimiter = ',')]
    attack_vlan: Vec<u16>,
    /// Relay addresses the attack comes through (default: the scenario's
    /// relays; spoof82 never has any).
    #[arg(long, requires = "attack", value_delimiter = ',')]
    attack_relay: Vec<Ipv4Addr>,
    /// Send every direct attack frame from this Ethernet address (one
    /// device, many chaddrs) instead of each client's MAC.
    #[arg(long, requires = "attack", value_parser = parse_mac)]
    attack_src_mac: Option<[u8; 6]>,
    /// Decline attack: DECLINE what was ACKed, or what was only offered.
    #[arg(long, requires = "attack", value_enum, default_value = "acked")]
    attack_decline: DeclineWhen,
}

impl AttackCli {
    fn options(&self) -> Option<AttackOptions> {
        let mut a = AttackOptions::new(self.attack?);
        if let Some(n) = self.attack_clients {
            a.clients = n;
        }
        a.count = self.attack_count;
        a.duration = self.attack_duration.map(Duration::from_secs_f64);
        a.rate = self.attack_rate;
        a.window = self.attack_window;
        a.timeout = Duration::from_millis(self.attack_timeout_ms);
        a.retries = self.attack_retries;
        a.lead = Duration::from_millis(self.attack_lead_ms);
        a.mac_prefix = self.attack_mac_prefix;
        a.circuit_id = self.attack_circuit_id.clone().map(String::into_bytes);
        a.remote_id = self.attack_remote_id.clone().map(String::into_bytes);
        a.link_selection = self.attack_link_selection;
        a.vlans = (!self.attack_vlan.is_empty()).then(|| vlan_tags(&self.attack_vlan));
        a.relays = (!self.attack_relay.is_empty()).then(|| self.attack_relay.clone());
        a.src_mac = self.attack_src_mac;
        a.decline = self.attack_decline;
        Some(a)
    }
}

fn vlan_tags(v: &[u16]) -> VlanTags {
    match v {
        [] => VlanTags::NONE,
        [v] => VlanTags::single(*v),
        [outer, inner, ..] => VlanTags::double(*outer, *inner),
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Cli::parse()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("xdhcpgen: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let mut relays = cli.relay.clone();
    if let Some(n) = cli.relays {
        let first = *relays
            .first()
            .context("--relays N counts from the first --relay address")?;
        relays = (0..n)
            .map(|i| Ipv4Addr::from(u32::from(first).wrapping_add(i)))
            .collect();
    }
    if let Some(p) = &cli.plot
        && p.extension().and_then(|e| e.to_str()) != Some("svg")
    {
        anyhow::bail!("--plot writes SVG: give a file name ending in .svg");
    }
    let vlans = vlan_tags(&cli.vlan);
    let opts = Options {
        iface: cli.interface.clone(),
        io: cli.io,
        xdp_mode: cli.xdp_mode,
        bind: cli.bind,
        queues: cli.queues,
        frames: cli.frames,
        ring_size: cli.ring_size,
        batch: cli.batch,
        poll: cli.poll,
        cores: cli.cores.clone(),
        scenario: cli.scenario,
        clients: cli.clients,
        count: cli.count,
        duration: cli.duration.map(Duration::from_secs_f64),
        rate: cli.rate,
        window: cli.window,
        timeout: Duration::from_millis(cli.timeout_ms),
        retries: cli.retries,
        renew_share: cli.renew_share,
        expect_subnet: cli.expect_subnet,
        mac_prefix: cli.mac_prefix,
        client_id: cli.client_id,
        option82: cli.option82,
        vlans,
        broadcast: cli.broadcast,
        relays,
        server: cli.server,
        server_mac: cli.server_mac,
        progress: !cli.no_progress,
        seed: cli.seed,
        attack: cli.attack.options(),
        leases_in: match &cli.leases_in {
            Some(p) => Some(xdhcpgen::bindings::read(p, cli.mac_prefix)?.into()),
            None => None,
        },
        rebind_fallback: cli.rebind_on_timeout,
        leases_out: cli.leases_out.is_some(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let out = xdhcpgen::run(&opts, stop)?;
    print!("{}", out.summary.table());
    if let Some(p) = &cli.json {
        report::write_json(p, &out.summary)?;
    }
    if let Some(p) = &cli.leases_out {
        xdhcpgen::bindings::write(p, cli.mac_prefix, &out.bindings)?;
    }
    if let Some(p) = &cli.hgrm {
        report::write_hgrm(p, &out.latencies, out.main_latency)?;
    }
    if let Some(p) = &cli.plot {
        let title = format!(
            "xdhcpgen {} on {}: {:.0}/s",
            out.summary.scenario, cli.interface, out.summary.leases_per_sec
        );
        report::write_plot(p, &title, &out.latencies)?;
    }
    Ok(if cli.strict && !out.summary.clean() {
        2
    } else {
        0
    })
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let v = parse_hex_bytes(s)?;
    v.try_into()
        .map_err(|_| format!("{s:?} is not a MAC (aa:bb:cc:dd:ee:ff)"))
}

fn parse_prefix(s: &str) -> Result<[u8; 3], String> {
    let v = parse_hex_bytes(s)?;
    v.try_into()
        .map_err(|_| format!("{s:?} is not three bytes (02:67:65)"))
}

/// "02:67:65": bytes in hex between colons, one or two digits each.
fn parse_hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    s.split(':')
        .map(|b| {
            let pair = match b.as_bytes() {
                [lo] => [b'0', *lo],
                [hi, lo] => [*hi, *lo],
                _ => return Err(format!("{s:?}: {b:?} is not one or two hex digits")),
            };
            let mut byte = [0u8];
            hex::decode_to_slice(pair, &mut byte)
                .map_err(|_| format!("{s:?}: {b:?} is not hex"))?;
            Ok(byte[0])
        })
        .collect()
}

fn parse_attach(s: &str) -> Result<AttachMode, String> {
    match s {
        "auto" => Ok(AttachMode::Auto),
        "driver" => Ok(AttachMode::Driver),
        "generic" => Ok(AttachMode::Generic),
        _ => Err(format!("{s:?}: auto, driver or generic")),
    }
}

fn parse_bind(s: &str) -> Result<BindMode, String> {
    match s {
        "auto" => Ok(BindMode::Auto),
        "copy" => Ok(BindMode::Copy),
        "zerocopy" => Ok(BindMode::Zerocopy),
        _ => Err(format!("{s:?}: auto, copy or zerocopy")),
    }
}

fn parse_poll(s: &str) -> Result<PollMode, String> {
    match s {
        "spin" => Ok(PollMode::Spin),
        "adaptive" => Ok(PollMode::Adaptive),
        _ => Err(format!("{s:?}: spin or adaptive")),
    }
}
