//! xdhcpd: the daemon. Reads the config, attaches the XDP program, starts
//! one pinned worker per queue, and reports counters until SIGINT/SIGTERM.
use anyhow::{Context, bail};
use arc_swap::ArcSwap;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use xdhcp::cluster::{ClusterService, ClusterStatsHandle, LearnOwn, Links};
use xdhcp::config::{
    AttachMode, Checked, Cluster, ClusterDurability, ClusterMode, Config, ConflictCheck, IoKind,
    JournalMode, Reservation,
};
use xdhcp::control::index::{Index, Keeper};
use xdhcp::control::runtime::{self, RuntimeSet};
use xdhcp::control::server::{self as control, Ask, ControlService};
use xdhcp::ddns::{
    self,
    service::{DdnsHandle, DdnsStats},
};
use xdhcp::engine::{Clock, Engine, Handler, JournalLink};
use xdhcp::io::iface::{Interface, local_ipv4_addrs};
use xdhcp::io::xdp::Steering;
use xdhcp::io::{Stop, WorkerOptions, WorkerSlot, packet, xsk};
use xdhcp::latency::{Collector, CollectorHandle};
use xdhcp::lease::journal::{
    Durability, Journal, JournalHandle, JournalOptions, LeaseRecord, Producer, Replication,
    now_unix,
};
use xdhcp::leasequery::answer::Served;
use xdhcp::leasequery::service::{Answering, PacketSink};
use xdhcp::leasequery::{self, LeaseQueryService};
use xdhcp::metrics::MetricsServer;
use xdhcp::probe::icmp::IcmpProber;
use xdhcp::probe::{ProbeService, ProbeStats};
use xdhcp::stats::{WorkerSnapshot, WorkerStats};
use xdhcp::status::{Board, DdnsStatus, LeaseQueryStatus, ProbeStatus, Status, SubnetStatus};
use xdhcp::tools::kea_csv::KeaVersion;
use xdhcp::tools::{show, transfer};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "xdhcpd",
    version,
    about = "DHCPv4 server answering from user space through XDP and AF_XDP"
)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Write counters as JSON to this file (atomically, every interval).
    #[arg(long)]
    stats_file: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    stats_interval_ms: u64,
    /// Log lines as text or as one JSON object each (for log collectors).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file and exit: 0 if it is valid, else the
    /// offending line and the reason.
    CheckConfig { file: PathBuf },
    /// Load a Kea memfile lease4 CSV into the journal of --config (daemon
    /// stopped). Addresses pick their subnet; expired leases are left out.
    ImportKea { csv: PathBuf },
    /// Write the live leases of the journal of --config as a Kea lease4
    /// CSV (subnet n of the config becomes Kea subnet_id n+1).
    ExportKea {
        csv: PathBuf,
        /// Kea's CSV layout: 2.2, 2.4 or 2.6.
        #[arg(long, default_value = "2.6")]
        kea_version: String,
    },
    /// Show the live leases of the journal of --config, with hostname and
    /// relay circuit-id / remote-id; safe while the daemon runs. Filters
    /// combine.
    Leases {
        /// Only this address.
        #[arg(long)]
        addr: Option<Ipv4Addr>,
        /// Only this hardware address (aa:bb:cc:dd:ee:ff).
        #[arg(long)]
        mac: Option<String>,
        /// Only this hostname (ASCII case ignored).
        #[arg(long)]
        hostname: Option<String>,
        /// Only this relay circuit-id (text, or hex when not printable).
        #[arg(long)]
        circuit_id: Option<String>,
        /// One JSON object per lease and line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write the man pages (xdhcpd.1 and one per subcommand) into DIR: the
    /// Debian package's, built by `cargo xtask deb`.
    #[command(hide = true)]
    Man { dir: PathBuf },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// The journal directory a subcommand works on.
fn journal_dir(c: &Checked) -> anyhow::Result<&Path> {
    c.file
        .journal
        .as_ref()
        .map(|j| j.dir.as_path())
        .ok_or_else(|| anyhow::anyhow!("the config has no [journal] section"))
}

fn transfer(cli: &Cli, cmd: &Command) -> anyhow::Result<()> {
    let path = cli
        .config
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("--config FILE is required"))?;
    let c = Config::load(path)?;
    let dir = journal_dir(&c)?;
    match cmd {
        Command::ImportKea { csv } => {
            let r = transfer::import_kea(&c, dir, csv)?;
            println!(
                "{}: {} leases written to {}; {} with no configured subnet, {} already over, {} bad rows",
                csv.display(),
                r.written,
                dir.display(),
                r.no_subnet,
                r.not_live,
                r.stats.bad_rows
            );
        }
        Command::ExportKea { csv, kea_version } => {
            let version = match kea_version.as_str() {
                "2.2" => KeaVersion::V2_2,
                "2.4" => KeaVersion::V2_4,
                "2.6" => KeaVersion::V2_6,
                v => anyhow::bail!("--kea-version {v}: 2.2, 2.4 or 2.6"),
            };
            let s = transfer::export_kea(&c, dir, csv, version)?;
            println!("{}: {} leases written", csv.display(), s.written);
        }
        Command::Leases {
            addr,
            mac,
            hostname,
            circuit_id,
            json,
        } => {
            let filter = show::Filter {
                addr: *addr,
                mac: match mac {
                    Some(m) => Some(show::parse_mac(m).ok_or_else(|| {
                        anyhow::anyhow!("--mac {m}: six hex bytes, like 02:00:5e:00:53:01")
                    })?),
                    None => None,
                },
                hostname: hostname.clone(),
                circuit_id: circuit_id.clone(),
            };
            let (mut leases, _) =
                Journal::read_live(dir, now_unix(), u64::from(c.file.keep_released))
                    .with_context(|| format!("reading the journal in {}", dir.display()))?;
            leases.retain(|r| filter.matches(r));
            leases.sort_by_key(|r| r.addr);
            let dns = ddns::store::read(dir).with_context(|| {
                format!("reading {}", dir.join(ddns::store::FILE_NAME).display())
            })?;
            let mut out = std::io::stdout().lock();
            if *json {
                show::write_json(&mut out, &leases, &dns)?;
            } else {
                show::write_table(&mut out, &leases, &dns)?;
            }
        }
        Command::CheckConfig { .. } | Command::Man { .. } => unreachable!("handled in main"),
    }
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        );
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let result = match (&cli.command, &cli.config) {
        (Some(Command::CheckConfig { file }), _) => Config::load(file).map(|c| {
            println!("{}: ok, {} subnet(s)", file.display(), c.subnets.len());
        }),
        (Some(Command::Man { dir }), _) => write_man_pages(dir),
        (Some(cmd), _) => transfer(&cli, cmd),
        (None, Some(path)) => Config::load(path).and_then(|c| serve(&cli, c)),
        (None, None) => Err(anyhow::anyhow!("--config FILE is required")),
    };
    if let Err(e) = result {
        match cli.log_format {
            LogFormat::Text => eprintln!("xdhcpd: {e:#}"),
            // A collector reading JSON lines would drop a bare text line:
            // the reason the daemon stopped goes as a log record.
            LogFormat::Json => tracing::error!(error = format!("{e:#}"), "xdhcpd exits"),
        }
        std::process::exit(1);
    }
}

/// What is running, for the stats file.
struct Running {
    journal: Option<JournalHandle>,
    io: IoKind,
    steering: Option<Steering>,
    bind: Option<&'static str>,
    workers: Vec<(u32, Arc<WorkerStats>)>,
    /// The engine the workers use; its lease table, kept across reloads,
    /// says how full it is.
    engine: Arc<ArcSwap<Engine>>,
    started: Instant,
    /// The conflict-check service's counters, when it runs.
    probe: Option<Arc<ProbeStats>>,
    /// The leasequery service's counters, when it runs.
    leasequery: Option<Arc<leasequery::LeaseQueryStats>>,
    /// The DDNS side thread, when a subnet has DDNS, and its counters
    /// (which outlive it for the last stats).
    ddns: Option<DdnsHandle>,
    ddns_stats: Option<Arc<DdnsStats>>,
    /// The HA cluster thread (`[cluster]`), and its counters (which
    /// outlive it for the last stats).
    cluster: Option<ClusterService>,
    cluster_stats: Option<ClusterStatsHandle>,
    /// `[cluster]` as started with: it changes only with a restart.
    cluster_config: Option<Cluster>,
    /// The latency collector, unless `latency = false`.
    latency: Option<CollectorHandle>,
    /// Reservations made with `xdhcpctl reserve` (with a journal: they
    /// are kept in its directory), and those of the file as last loaded.
    runtime: Option<RuntimeSet>,
    file_reservations: Vec<Reservation>,
}

fn serve(cli: &Cli, mut checked: Checked) -> anyhow::Result<()> {
    // Runtime reservations join the file's before anything is built.
    let file_reservations = file_reservations(&checked);
    let runtime = match &checked.file.journal {
        Some(j) => {
            let mut set = RuntimeSet::load(&j.dir).map_err(anyhow::Error::msg)?;
            merge_runtime(&mut set, &mut checked);
            Some(set)
        }
        None => None,
    };
    // The control socket first: a second daemon on the same socket is
    // refused before it touches the interface.
    let control_listener = match &checked.control {
        Some(c) => Some(
            control::listen(c)
                .with_context(|| format!("opening the control socket {}", c.socket.display()))?,
        ),
        None => None,
    };
    let cfg = &checked.file;
    let iface = Interface::lookup(&cfg.interface)?;
    let server_ids: Vec<Ipv4Addr> = {
        let mut v: Vec<_> = checked.subnets.iter().map(|s| s.server_id).collect();
        v.sort();
        v.dedup();
        v
    };
    let local = local_ipv4_addrs()?;
    for id in &server_ids {
        if !local.iter().any(|(_, a)| a == id) {
            bail!(
                "server identifier {id} is not an address of this host: replies are sent from it and \
                 the kernel must answer ARP for it; add it to an interface (ip addr add {id}/.. dev {})",
                iface.name
            );
        }
    }
    let queues = cfg.queues.unwrap_or(iface.rx_queues).max(1);
    // Every side thread (journal, cluster, DNS, control, metrics, expiry)
    // is started from this thread after this point and inherits its
    // cores: the ones the workers leave free.
    let opts = WorkerOptions::from_config(cfg);
    match xdhcp::io::keep_side_threads_off(&opts, queues as usize) {
        Ok(cores) => tracing::info!(?cores, "side threads' cores"),
        Err(e) => tracing::warn!("cannot keep the side threads off the workers' cores: {e}"),
    }
    // One worker per queue, each with its home shard in every pool. The
    // interface's own addresses say which subnets are on its link and so
    // serve direct clients (giaddr 0); the others are for relays only.
    let addrs = iface_addrs(&iface.name)?;
    let engine = Arc::new(Engine::on_interface(&checked, queues as usize, &addrs));
    for (s, rt) in checked.subnets.iter().zip(engine.subnets()) {
        if !rt.direct {
            tracing::info!(
                subnet = %format!("{}/{}", s.network, s.prefix_len),
                "relayed requests only: no address of {} in this subnet (set direct = true to \
                 serve direct clients from it)",
                iface.name
            );
        }
    }
    // Workers and the expiry thread read the engine through this cell; a
    // reload (SIGHUP) swaps a new one in.
    let cell = Arc::new(ArcSwap::new(engine.clone()));
    let table = engine.leases();
    let addresses = checked.addresses();
    tracing::info!(
        max_clients = table.capacity(),
        addresses,
        mib = table.footprint() >> 20,
        "lease table allocated"
    );
    if (table.capacity() as u64) < addresses {
        tracing::warn!(
            max_clients = table.capacity(),
            addresses,
            "max_clients is below the pools' addresses: once that many clients hold one, new clients are refused (table_full)"
        );
    }
    // DDNS follows the journal's records (the config check made sure
    // there is a journal when a subnet has DDNS).
    let mut ddns_tap = checked
        .subnets
        .iter()
        .any(|s| s.ddns.is_some())
        .then(ddns::service::tap);
    let mut ddns = None;
    // The address index follows the journal too, for the control API and
    // leasequery (the config check made sure leasequery has a journal).
    let mut index_tap = (checked.control.is_some() || checked.leasequery.is_some())
        .then_some(cfg.journal.as_ref())
        .flatten()
        .map(|_| control::tap());
    let mut index = None;
    let mut control_journal = None;
    // The cluster's copy of every record the journal makes safe (the
    // config check made sure a cluster has a journal). In `replicated`
    // the journal leaves the durable marks to the cluster thread.
    let replicated = checked
        .cluster
        .as_ref()
        .is_some_and(|c| c.durability == ClusterDurability::Replicated);
    let mut cluster_feed = checked.cluster.as_ref().map(|_| {
        // Bounded in groups (one per group commit): 4 Ki of them are a few
        // seconds of commits whatever the rate, as the 64 Ki records it
        // held before were at a few thousand leases/s.
        let (repl, feed) = Replication::channel(4 * 1024, replicated);
        let dropped = repl.dropped.clone();
        (repl, feed, dropped)
    });
    let mut cluster = None;
    let journal = match &cfg.journal {
        Some(j) => {
            let mode = match j.mode {
                JournalMode::Durable => Durability::Durable,
                JournalMode::Fast => Durability::Fast {
                    max_delay: Duration::from_millis(j.max_delay_ms),
                },
            };
            let opts = JournalOptions {
                compact_after_bytes: j.compact_after_mb << 20,
                durable_gather: Duration::from_micros(j.gather_us()),
                keep_released_secs: u64::from(cfg.keep_released),
                taps: ddns_tap
                    .iter()
                    .chain(&index_tap)
                    .map(|(t, _)| t.clone())
                    .collect(),
                replication: cluster_feed.as_ref().map(|(r, _, _)| r.clone()),
                ..JournalOptions::default()
            };
            let started = Instant::now();
            let (handle, recovered) = Journal::open(&j.dir, mode, opts)
                .with_context(|| format!("opening the lease journal in {}", j.dir.display()))?;
            let (restored, skipped) =
                engine.restore(&recovered.leases, Clock::now(&engine, Instant::now()));
            tracing::info!(
                dir = %j.dir.display(),
                mode = ?j.mode,
                restored,
                skipped,
                stats = ?recovered.stats,
                took_ms = started.elapsed().as_millis() as u64,
                "lease journal recovered"
            );
            warn_reservation_conflicts(&engine);
            if index_tap.is_some() {
                let shared = Arc::new(Mutex::new(Index::new(
                    &recovered.leases,
                    u64::from(cfg.keep_released),
                )));
                if checked.control.is_some() {
                    control_journal = Some(control::JournalSide {
                        producer: handle.producer().map_err(|_| {
                            anyhow::anyhow!("no journal producer slot for the control API")
                        })?,
                        durable: j.mode == JournalMode::Durable || replicated,
                        index: shared.clone(),
                    });
                }
                index = Some(shared);
            }
            if let Some((tap, rx)) = ddns_tap.take() {
                let subnets = checked.subnets.iter().map(|s| s.ddns.clone()).collect();
                ddns = Some(
                    DdnsHandle::start(
                        &j.dir,
                        subnets,
                        checked.ddns_updates_per_second,
                        &recovered.leases,
                        &tap,
                        rx,
                    )
                    .with_context(|| {
                        format!("starting DDNS (its state is in {})", j.dir.display())
                    })?,
                );
            }
            if let (Some(c), Some((_, feed, dropped))) = (&checked.cluster, cluster_feed.take()) {
                // After the journal's own replay, so the stream catch-up
                // only adds what the others made.
                let apply_to = cell.clone();
                // A journal that held nothing (a new disk, or a lost one):
                // this server's own leases are in the stream only, so the
                // catch-up takes them back, into the engine and the journal.
                let learn_own = if recovered.stats.records == 0 {
                    let mut producer = handle
                        .producer()
                        .map_err(|_| anyhow::anyhow!("no journal producer slot for the cluster"))?;
                    let engine = cell.clone();
                    let mut writer_stuck = false;
                    Some(Box::new(move |r: &LeaseRecord| {
                        let e = engine.load();
                        if !e.apply_remote(r, Clock::now(&e, Instant::now())) {
                            return false;
                        }
                        append_learned(&mut producer, r, &mut writer_stuck);
                        true
                    }) as LearnOwn)
                } else {
                    None
                };
                let svc = ClusterService::start(
                    c,
                    Links {
                        ownership: engine.ownership().clone(),
                        feed,
                        marks: replicated.then(|| handle.marks()),
                        apply: Box::new(move |r| {
                            let e = apply_to.load();
                            e.apply_remote(r, Clock::now(&e, Instant::now()))
                        }),
                        learn_own,
                        journal_dropped: dropped,
                    },
                )
                .context("starting the cluster thread")?;
                let homes: Vec<u8> = (0..c.shares())
                    .filter(|k| c.home_of(*k) == c.index)
                    .collect();
                tracing::info!(
                    name = %c.name,
                    peers = ?c.peers,
                    mode = ?c.mode,
                    durability = ?c.durability,
                    home_shares = ?homes,
                    role = match (c.mode, c.index) {
                        (ClusterMode::HotStandby, 0) => "primary",
                        (ClusterMode::HotStandby, _) => "standby",
                        _ => "load-balancing member",
                    },
                    nats = ?c.nats,
                    failover_after_ms = c.failover_after.as_millis() as u64,
                    "cluster member: silent until the stream is caught up and its shares are claimed"
                );
                cluster = Some(svc);
            }
            // Replicated: an ACK waits for the cluster's mark even over a
            // fast journal.
            Some((handle, j.mode == JournalMode::Durable || replicated))
        }
        None => {
            tracing::warn!(
                "no [journal] configured: leases live in memory only and a restart forgets them"
            );
            None
        }
    };
    // One thread keeps the index from the journal's tap; what the tap
    // could not take is counted (the control API shows it).
    let (keeper, index_lost) = match (&index, index_tap.take()) {
        (Some(i), Some((tap, rx))) => (
            Some(Keeper::start(i.clone(), rx).context("starting the address index thread")?),
            Some(tap.dropped),
        ),
        _ => (None, None),
    };
    // Leasequery: answered on a side thread from the index; the workers
    // only hand it the query frames.
    let (leasequery, mut leasequery_link) = match (&checked.leasequery, &index) {
        (Some(lq), Some(i)) => {
            let (link, rx) = leasequery::queue(leasequery::QUEUE);
            let sink = PacketSink::open(iface.index).with_context(|| {
                format!(
                    "opening the leasequery answer socket (AF_PACKET) on {}",
                    iface.name
                )
            })?;
            let with = Answering {
                index: i.clone(),
                served: Served::new(&checked),
                mac: iface.mac,
                dscp: cfg.dscp,
            };
            let svc = LeaseQueryService::start(rx, with, sink)
                .context("starting the leasequery service")?;
            tracing::info!(requesters = ?lq.requesters, "leasequery (RFC 4388) answered");
            (Some(svc), Some(link))
        }
        _ => (None, None),
    };
    // Bulk leasequery (RFC 6926): TCP, on a thread of its own.
    let bulk_at = checked
        .leasequery
        .as_ref()
        .and_then(|lq| Some((lq, lq.bulk_listen?)));
    let bulk = match (bulk_at, &index) {
        (Some((lq, at)), Some(i)) => {
            let svc = leasequery::bulk::BulkService::start(
                at,
                leasequery::bulk::Bulk {
                    index: i.clone(),
                    served: Served::new(&checked),
                    allowed: lq.clone(),
                },
            )
            .with_context(|| {
                format!(
                    "bulk leasequery: listening on {at} (TCP; port 67 needs CAP_NET_BIND_SERVICE)"
                )
            })?;
            tracing::info!(listen = %svc.addr, "bulk leasequery (RFC 6926) listening");
            Some(svc)
        }
        _ => None,
    };
    let stop = Stop::on_signals()?;
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .context("installing the SIGHUP handler")?;
    // The conflict-check service, when a subnet asks for it. Each worker
    // may have as many probes out as it can park OFFERs: a quarter of its
    // UMEM frames (AF_XDP; the rest carry other replies), or the AF_PACKET
    // worker's parking lot.
    let (probe, mut probe_links) = if checked
        .subnets
        .iter()
        .any(|s| s.conflict_check == ConflictCheck::Icmp)
    {
        let prober = IcmpProber::open().context("opening the conflict-check (ICMP) socket")?;
        let per_worker = match cfg.io {
            IoKind::Xdp => (cfg.frames as usize / 4).clamp(16, 1024),
            IoKind::Packet => 1024,
        };
        let wait = Duration::from_millis(u64::from(cfg.conflict_wait_ms()));
        let (service, links) = ProbeService::start(prober, wait, queues as usize, per_worker)
            .context("starting the conflict-check service")?;
        tracing::info!(
            wait_ms = cfg.conflict_wait_ms(),
            skip_recent_s = cfg.conflict_skip_recent(),
            per_worker,
            "conflict checks by ICMP echo"
        );
        (Some(service), links.into_iter().map(Some).collect())
    } else {
        (None, Vec::new())
    };
    let interval = Duration::from_millis(cli.stats_interval_ms.max(10));
    // Latency histograms: one recorder per worker, merged at the stats
    // interval by a side thread.
    let (collector, mut recorders) = if cfg.latency {
        let qs: Vec<u32> = (0..queues).collect();
        let (c, r) = Collector::new(&qs, interval);
        (Some(c), r.into_iter().map(Some).collect())
    } else {
        (None, Vec::new())
    };
    let mut workers = Vec::new();
    let slots: Vec<_> = (0..queues)
        .map(|q| {
            let stats = Arc::new(WorkerStats::default());
            workers.push((q, stats.clone()));
            let mut handler =
                Handler::new(cell.clone(), iface.mac, stats.clone()).worker(q as usize);
            if let Some((j, durable)) = &journal {
                let producer = j
                    .producer()
                    .map_err(|_| anyhow::anyhow!("more workers than journal producer slots"))?;
                handler = handler.with_journal(JournalLink::new(producer, *durable));
            }
            if let Some(link) = probe_links.get_mut(q as usize).and_then(Option::take) {
                handler = handler.with_probe(link);
            }
            if let Some(link) = &leasequery_link {
                handler = handler.with_leasequery(link.clone());
            }
            Ok(WorkerSlot {
                queue: q,
                handler,
                stats,
                latency: recorders.get_mut(q as usize).and_then(Option::take),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    // The workers hold the service's links now; it ends when they do.
    leasequery_link.take();

    let mut running = Running {
        journal: journal.as_ref().map(|(j, _)| j.clone()),
        io: cfg.io,
        steering: None,
        bind: None,
        workers,
        engine: cell.clone(),
        started: Instant::now(),
        probe: probe.as_ref().map(ProbeService::stats_handle),
        leasequery: leasequery.as_ref().map(LeaseQueryService::stats_handle),
        ddns_stats: ddns.as_ref().map(DdnsHandle::stats_handle),
        ddns,
        cluster_stats: cluster.as_ref().map(ClusterService::stats_handle),
        cluster,
        cluster_config: checked.cluster.clone(),
        latency: match collector {
            Some(c) => Some(c.start().context("starting the latency collector")?),
            None => None,
        },
        runtime,
        file_reservations,
    };
    // The newest snapshot, for whoever reads it between two intervals:
    // the metrics endpoint (and the control API).
    let board = Arc::new(Board::default());
    let metrics = match checked.metrics_listen {
        Some(addr) => Some(MetricsServer::start(addr, board.clone())?),
        None => None,
    };
    let handles = match cfg.io {
        IoKind::Xdp => {
            let mut steering = Steering::attach_limited(&iface.name, cfg.xdp_mode, &server_ids, checked.xdp_mac_rate).with_context(|| {
                format!(
                    "cannot attach XDP to {}; on hosts without XDP set io = \"packet\" in the config",
                    iface.name
                )
            })?;
            let xo = xsk::XskOptions {
                bind: cfg.bind,
                frames: cfg.frames,
                ring_size: cfg.ring_size,
            };
            let (bind, handles) =
                xsk::spawn_workers(&iface, &mut steering, &xo, &opts, slots, stop.clone())?;
            running.bind = Some(match bind {
                xdhcp::config::BindMode::Zerocopy => "zerocopy",
                _ => "copy",
            });
            running.steering = Some(steering);
            handles
        }
        IoKind::Packet => packet::spawn_workers(&iface, &opts, slots, stop.clone())?,
    };

    let expiry = {
        let (cell, stop) = (cell.clone(), stop.clone());
        std::thread::Builder::new()
            .name("expiry".into())
            .spawn(move || {
                while !stop.is_set() {
                    let engine = cell.load_full();
                    engine.expire(engine.secs(Instant::now()));
                    std::thread::sleep(Duration::from_millis(500));
                }
            })?
    };

    tracing::info!(
        interface = %iface.name,
        queues,
        io = ?cfg.io,
        xdp_mode = ?running.steering.as_ref().map(|s| s.mode()),
        bind = ?running.bind,
        "xdhcpd ready"
    );
    // A first snapshot before the control API answers.
    report(cli, &running, &board)?;
    // The control API; what it asks of the engine as a whole comes here.
    let (control, asks) = match (&checked.control, control_listener) {
        (Some(c), Some(listener)) => {
            let (main, asks) = crossbeam_channel::bounded(4);
            let ctx = control::Context {
                board: board.clone(),
                engine: cell.clone(),
                journal: control_journal.take(),
                main,
            };
            let svc = ControlService::start(c, listener, ctx, index_lost.clone())
                .with_context(|| format!("starting the control API on {}", c.socket.display()))?;
            (Some(svc), Some(asks))
        }
        _ => (None, None),
    };
    let mut next = Instant::now();
    while !stop.is_set() {
        if reload.swap(false, Relaxed) {
            let _ = reload_config(cli, &iface.name, cfg, &cell, &mut running);
        }
        while let Some(a) = asks.as_ref().and_then(|r| r.try_recv().ok()) {
            let answer = control_ask(cli, &iface.name, cfg, &cell, &mut running, a.ask);
            let _ = a.reply.send(answer);
        }
        if Instant::now() >= next {
            report(cli, &running, &board)?;
            next += interval;
        }
        std::thread::sleep(Duration::from_millis(10).min(interval));
    }
    tracing::info!("stopping");
    if let Some(c) = control {
        c.stop();
    }
    stop.wake_all();
    for h in handles {
        let _ = h.join();
    }
    let _ = expiry.join();
    if let Some(lq) = leasequery {
        lq.join();
    }
    if let Some(b) = bulk {
        b.stop();
    }
    // The workers are gone; so are the probes' links. Their last
    // histograms are with the collector: merge them for the last report.
    drop(probe);
    if let Some(c) = running.latency.as_mut() {
        c.stop();
    }
    if let Some(j) = &running.journal {
        j.close().context("closing the lease journal")?;
    }
    if let Some(k) = keeper {
        k.stop();
    }
    // After the journal: its last records reached the thread's channel.
    // What DNS has not confirmed stays owed and goes after the next start.
    if let Some(d) = running.ddns.take() {
        d.stop();
    }
    // After the journal too: its last records went to the cluster thread,
    // which gets a moment to publish them.
    if let Some(c) = running.cluster.take() {
        c.stop();
    }
    report(cli, &running, &board)?;
    drop(metrics);
    let total = total(&running);
    tracing::info!(?total, "final counters");
    if let Some(s) = running.steering.take() {
        s.detach()?;
    }
    Ok(())
}

/// SIGHUP (and the control API's `reload`): read the config again; if it
/// is valid, merge the runtime reservations into it and swap in an engine
/// that keeps every lease, pool and held offer of the running one; if
/// not, say why (the error: the line and the reason) and keep serving
/// with the old one. What needs sockets anew (interface, io, queues,
/// rings) takes a restart and is left as it was. Ok: the subnets now.
fn reload_config(
    cli: &Cli,
    iface: &str,
    old: &Config,
    cell: &ArcSwap<Engine>,
    running: &mut Running,
) -> Result<usize, String> {
    let Some(path) = &cli.config else {
        return Err("no --config file to reload".into());
    };
    let mut checked = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload refused, keeping the running config: {e:#}");
            return Err(format!("{e:#}"));
        }
    };
    running.file_reservations = file_reservations(&checked);
    if let Some(set) = running.runtime.as_mut() {
        merge_runtime(set, &mut checked);
    }
    let c = &checked.file;
    // The workers' sockets and loops are built once, at start.
    if c.interface != iface
        || c.io != old.io
        || c.xdp_mode != old.xdp_mode
        || c.bind != old.bind
        || c.queues != old.queues
        || c.cores != old.cores
        || c.frames != old.frames
        || c.ring_size != old.ring_size
        || c.batch != old.batch
        || c.poll != old.poll
        || c.idle_sleep_ms != old.idle_sleep_ms
        || c.max_clients.as_ref().map(|m| *m.get_ref())
            != old.max_clients.as_ref().map(|m| *m.get_ref())
    {
        tracing::warn!(
            "interface, io, xdp_mode, bind, queues, cores, frames, ring_size, batch, poll, \
             idle_sleep_ms and max_clients change only with a restart; the rest is reloaded"
        );
    }
    if checked.cluster != running.cluster_config {
        tracing::warn!(
            "[cluster] changes only with a restart: the cluster thread keeps the settings it \
             started with"
        );
    }
    if running.probe.is_some() && c.conflict_wait_ms() != old.conflict_wait_ms() {
        // Every probe waits the same time: that keeps them in order.
        tracing::warn!(
            "conflict_wait_ms changes only with a restart; probes keep waiting {} ms",
            old.conflict_wait_ms()
        );
    }
    if running.probe.is_none()
        && checked
            .subnets
            .iter()
            .any(|s| s.conflict_check == ConflictCheck::Icmp)
    {
        tracing::warn!(
            "conflict_check = \"icmp\" takes a restart when no subnet had it at start: \
             until then those subnets offer without probing"
        );
    }
    let current = cell.load_full();
    let next = Arc::new(match iface_addrs(iface) {
        Ok(addrs) => current.reload_on(&checked, &addrs),
        Err(e) => {
            tracing::warn!("reload: {e:#}; keeping the interface addresses read before");
            current.reload(&checked)
        }
    });
    let capacity = next.leases().capacity();
    if (capacity as u64) < checked.addresses() {
        tracing::warn!(
            max_clients = capacity,
            addresses = checked.addresses(),
            "the reloaded pools have more addresses than the lease table (sized at start) has records: restart to resize it"
        );
    }
    cell.store(next.clone());
    match &running.ddns {
        Some(d) => d.reload(
            checked.subnets.iter().map(|s| s.ddns.clone()).collect(),
            checked.ddns_updates_per_second,
        ),
        None if checked.subnets.iter().any(|s| s.ddns.is_some()) => tracing::warn!(
            "DDNS takes a restart when no subnet had it at start: until then no names go to DNS"
        ),
        None => {}
    }
    if let Some(s) = running.steering.as_mut() {
        let mut ids: Vec<Ipv4Addr> = checked.subnets.iter().map(|s| s.server_id).collect();
        ids.sort();
        ids.dedup();
        if let Err(e) = s.set_server_addrs(&ids) {
            tracing::error!("reload: updating the XDP program's server addresses: {e:#}");
        }
    }
    // Workers take the new engine at their next batch; what they handed
    // out from a replaced pool until then is claimed again here.
    std::thread::sleep(Duration::from_millis(50));
    next.reclaim();
    tracing::info!(subnets = checked.subnets.len(), "configuration reloaded");
    warn_reservation_conflicts(&next);
    Ok(checked.subnets.len())
}

/// The reservations of a configuration as loaded from its file.
fn file_reservations(c: &Checked) -> Vec<Reservation> {
    c.subnets
        .iter()
        .flat_map(|s| s.reservations.iter().cloned())
        .collect()
}

/// Merges the runtime reservations into `checked` (just loaded from its
/// file), saying what was dropped and saving the set when it changed.
fn merge_runtime(set: &mut RuntimeSet, checked: &mut Checked) {
    let notes = set.merge(checked);
    for n in &notes {
        tracing::warn!("{n}");
    }
    if !notes.is_empty()
        && let Err(e) = set.save()
    {
        tracing::error!("writing {}: {e}", set.path().display());
    }
    if !set.entries.is_empty() {
        tracing::info!(
            reservations = set.entries.len(),
            file = %set.path().display(),
            "runtime reservations merged into the configuration"
        );
    }
}

/// What the control API asks of the main thread, which owns the engine
/// swap: a reload, a runtime reservation added or removed (each applied
/// by a reload), or the list of reservations.
fn control_ask(
    cli: &Cli,
    iface: &str,
    old: &Config,
    cell: &ArcSwap<Engine>,
    running: &mut Running,
    ask: Ask,
) -> serde_json::Value {
    use serde_json::json;
    let err = |m: String| json!({ "error": m });
    let reload = |running: &mut Running| reload_config(cli, iface, old, cell, running);
    match ask {
        Ask::Reload => match reload(running) {
            Ok(n) => json!({ "reloaded": true, "subnets": n }),
            Err(e) => json!({ "reloaded": false, "error": e }),
        },
        Ask::Reservations => {
            let on_disk = cli.config.as_deref().and_then(|p| Config::load(p).ok());
            let mut list: Vec<_> = running
                .file_reservations
                .iter()
                .map(runtime::file_json)
                .collect();
            for r in running.runtime.iter().flat_map(|s| &s.entries) {
                let in_file = on_disk
                    .as_ref()
                    .is_some_and(|f| runtime::against(f, r).0 == runtime::Against::InFile);
                list.push(r.json(if in_file {
                    "runtime, also in file"
                } else {
                    "runtime"
                }));
            }
            json!({ "reservations": list })
        }
        Ask::Reserve(r) => {
            let Some(path) = &cli.config else {
                return err("no --config file".into());
            };
            let file = match Config::load(path) {
                Ok(f) => f,
                Err(e) => {
                    return err(format!(
                        "the config file does not load (fix it first): {e:#}"
                    ));
                }
            };
            let Some(set) = running.runtime.as_mut() else {
                return err(
                    "runtime reservations are kept in the journal's directory: the config has no [journal]".into(),
                );
            };
            match set.check_new(&file, &r) {
                Err(e) => return err(e),
                Ok(false) => return json!({ "reserved": r.address.to_string(), "already": true }),
                Ok(true) => {}
            }
            set.entries.push(r.clone());
            if let Err(e) = set.save() {
                set.entries.pop();
                return err(format!("writing {}: {e}", set.path().display()));
            }
            tracing::info!(address = %r.address, identity = ?r.identity, "runtime reservation added");
            match reload(running) {
                Ok(_) => json!({ "reserved": r.address.to_string() }),
                Err(e) => err(format!("saved, but the reload that applies it failed: {e}")),
            }
        }
        Ask::Unreserve(addr) => {
            let Some(set) = running.runtime.as_mut() else {
                return err("the config has no [journal], so no runtime reservations".into());
            };
            let Some(i) = set.entries.iter().position(|r| r.address == addr) else {
                return if running.file_reservations.iter().any(|r| r.address == addr) {
                    err(format!(
                        "{addr} is reserved in the config file: remove it there and reload"
                    ))
                } else {
                    err(format!("{addr} has no runtime reservation"))
                };
            };
            let gone = set.entries.remove(i);
            if let Err(e) = set.save() {
                set.entries.insert(i, gone);
                return err(format!("writing {}: {e}", set.path().display()));
            }
            tracing::info!(address = %addr, "runtime reservation removed");
            match reload(running) {
                Ok(_) => json!({ "unreserved": addr.to_string() }),
                Err(e) => err(format!(
                    "removed, but the reload that applies it failed: {e}"
                )),
            }
        }
    }
}

/// Appends a lease taken back from the stream to the journal. The
/// catch-up reads faster than the writer syncs, so a full channel is waited
/// out (on the cluster thread, before this server serves), up to a second
/// per record; a writer that stays full is reported once and then only
/// tried, the lease being in the engine and still in the stream.
fn append_learned(producer: &mut Producer, r: &LeaseRecord, writer_stuck: &mut bool) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while producer.append(r).is_err() {
        if *writer_stuck || Instant::now() >= deadline {
            if !*writer_stuck {
                tracing::warn!(
                    addr = %r.addr,
                    "cluster: the journal stays full; leases taken back from the stream are \
                     not all written to it (the next start with this journal will not know them)"
                );
            }
            *writer_stuck = true;
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    *writer_stuck = false;
}

/// Reserved addresses that another client holds (the reservation is newer
/// than its lease): each holder is NAKed off at its next renewal.
fn warn_reservation_conflicts(engine: &Engine) {
    let n = engine.reservation_conflicts();
    if n > 0 {
        tracing::warn!(
            addresses = n,
            "reserved addresses held by other clients: they are NAKed at their next renewal, \
             the reserved clients get pool addresses until then (reservation_conflict)"
        );
    }
}

/// The IPv4 addresses of the served interface, with their prefix length.
fn iface_addrs(name: &str) -> anyhow::Result<Vec<(Ipv4Addr, u8)>> {
    Ok(xdhcp::os::ifaddrs::ipv4()
        .context("listing interface addresses (getifaddrs)")?
        .into_iter()
        .filter(|a| a.name == name)
        .map(|a| (a.addr, a.prefix))
        .collect())
}

fn total(r: &Running) -> WorkerSnapshot {
    let mut t = WorkerSnapshot::default();
    for (_, w) in &r.workers {
        t += w.snapshot();
    }
    t
}

/// What is counted now, for the board and the stats file.
fn snapshot(r: &Running) -> anyhow::Result<Status> {
    let engine = r.engine.load();
    let table = engine.leases();
    let l = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    Ok(Status {
        uptime_s: r.started.elapsed().as_secs_f64(),
        io: match r.io {
            IoKind::Xdp => "xdp",
            IoKind::Packet => "packet",
        },
        xdp_mode: r.steering.as_ref().map(|s| match s.mode() {
            AttachMode::Generic => "generic",
            _ => "driver",
        }),
        bind: r.bind,
        xdp: match &r.steering {
            Some(s) => Some(s.counters()?),
            None => None,
        },
        journal: r.journal.as_ref().map(JournalHandle::stats),
        table_used: table.len(),
        table_capacity: table.capacity(),
        table_evicted: table.evicted(),
        leases: table.count_by_state(),
        leasequery: r.leasequery.as_ref().map(|s| LeaseQueryStatus {
            active: l(&s.active),
            unassigned: l(&s.unassigned),
            unknown: l(&s.unknown),
            unanswerable: l(&s.unanswerable),
            send_failed: l(&s.send_failed),
        }),
        probe: r.probe.as_ref().map(|p| ProbeStatus {
            sent: l(&p.sent),
            send_failed: l(&p.send_failed),
            answered: l(&p.answered),
            stray: l(&p.stray),
        }),
        ddns: r.ddns_stats.as_ref().map(|s| DdnsStatus {
            queued: l(&s.queued),
            sent: l(&s.sent),
            confirmed: l(&s.confirmed),
            failed: l(&s.failed),
            retried: l(&s.retried),
            refused_tsig: l(&s.refused_tsig),
            conflicts: l(&s.conflicts),
            lost: l(&s.lost),
            pending: l(&s.pending),
            oldest_pending_ms: l(&s.oldest_pending_ms),
        }),
        cluster: r.cluster_stats.as_ref().map(ClusterStatsHandle::snapshot),
        subnets: engine
            .subnets()
            .iter()
            .map(|s| {
                let network = Ipv4Addr::from(s.network);
                let prefix_len = s.mask.count_ones() as u8;
                SubnetStatus {
                    subnet: format!("{network}/{prefix_len}"),
                    network,
                    prefix_len,
                    size: s.pool.size(),
                    used: s.pool.taken(),
                    in_probation: s.in_probation(),
                }
            })
            .collect(),
        workers: r.workers.iter().map(|(q, w)| (*q, w.snapshot())).collect(),
        total: total(r),
        latency: r.latency.as_ref().map(CollectorHandle::latest),
    })
}

/// Takes a snapshot, publishes it on the board and writes the stats file.
fn report(cli: &Cli, r: &Running, board: &Board) -> anyhow::Result<()> {
    let status = snapshot(r)?;
    if let Some(path) = &cli.stats_file {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&status.to_json())?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    }
    board.publish(status);
    Ok(())
}

/// `xdhcpd man DIR`: xdhcpd.1 and xdhcpd-SUBCOMMAND.1 for each visible
/// subcommand, rendered by clap_mangen from the definitions above, so the
/// pages say what --help says.
fn write_man_pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing the man pages into {}", dir.display()))
}
