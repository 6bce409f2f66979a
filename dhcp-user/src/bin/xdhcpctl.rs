//! xdhcpctl: asks the running xdhcpd over its control socket (`[control]`
//! in the daemon's config) and prints the answer as a table, or as the
//! JSON the daemon sent (`--json`).
use anyhow::{Context, bail};
use clap::{CommandFactory, Parser, Subcommand};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xdhcp::control::DEFAULT_SOCKET;
use xdhcp::control::proto::{Lookup, NewReservation, Query, Request};
use xdhcp::control::view::{self, Frame};
use xdhcp::tools::show;

#[derive(Parser)]
#[command(
    name = "xdhcpctl",
    version,
    about = "Ask a running xdhcpd: leases, releases, reservations, reloads, counters and latency"
)]
struct Cli {
    /// The daemon's control socket ([control] socket in its config).
    #[arg(long, global = true, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the daemon's answer as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Leases, in address order, a page at a time; filters combine.
    Leases {
        /// Subnet a.b.c.d/len (or its index in the config).
        #[arg(long)]
        subnet: Option<String>,
        /// offered, bound, released, expired or declined.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        mac: Option<String>,
        /// Relay circuit-id (text, or hex when not printable).
        #[arg(long)]
        circuit_id: Option<String>,
        #[arg(long)]
        remote_id: Option<String>,
        #[arg(long)]
        hostname: Option<String>,
        /// Leases per page (the daemon's default: 100).
        #[arg(long)]
        limit: Option<usize>,
        /// Start after this address (the "next" of the page before).
        #[arg(long)]
        after: Option<Ipv4Addr>,
        /// Every page, not just the first.
        #[arg(long)]
        all: bool,
    },
    /// The lease of an address or a hardware address (or --client-id,
    /// --circuit-id).
    Lease {
        /// a.b.c.d or aa:bb:cc:dd:ee:ff.
        key: Option<String>,
        /// Option 61, hex.
        #[arg(long, conflicts_with = "key")]
        client_id: Option<String>,
        #[arg(long, conflicts_with_all = ["key", "client_id"])]
        circuit_id: Option<String>,
    },
    /// Force-free the lease of an address: released, journaled, the
    /// address back in its pool for the next client.
    Release { addr: Ipv4Addr },
    /// Reserve an address for one client (kept across restarts, in the
    /// journal's directory).
    Reserve {
        addr: Ipv4Addr,
        #[arg(long, required_unless_present_any = ["client_id", "circuit_id", "remote_id"])]
        mac: Option<String>,
        /// Option 61, hex.
        #[arg(long, conflicts_with = "mac")]
        client_id: Option<String>,
        /// Relay circuit-id (option 82 sub-option 1), as text.
        #[arg(long, conflicts_with_all = ["mac", "client_id"])]
        circuit_id: Option<String>,
        /// Relay remote-id (option 82 sub-option 2), as text.
        #[arg(long, conflicts_with_all = ["mac", "client_id", "circuit_id"])]
        remote_id: Option<String>,
        /// Hand it out with an infinite lease.
        #[arg(long)]
        infinite: bool,
    },
    /// Drop a runtime reservation.
    Unreserve { addr: Ipv4Addr },
    /// Every reservation, with its source: file, runtime, or runtime
    /// also in file (dropped at the next reload).
    Reservations,
    /// Read the config again (as SIGHUP): whether it was accepted, or the
    /// line and reason.
    Reload,
    /// The daemon's counters now (the stats file's document).
    Stats,
    /// Latency percentiles per message type, per worker and for all.
    Latency,
    /// A live view of rates, drops, pool use and latency; q quits.
    Top {
        /// Print one frame as text and exit (rates over one interval).
        #[arg(long)]
        once: bool,
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
    /// Write the man page xdhcpctl.1 into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
}

/// One connection to the daemon.
struct Conn {
    w: UnixStream,
    r: BufReader<UnixStream>,
}

impl Conn {
    fn open(path: &Path) -> anyhow::Result<Conn> {
        let w = UnixStream::connect(path).with_context(|| {
            format!(
                "cannot connect to {} (is xdhcpd running with [control]? are you root or in its group?)",
                path.display()
            )
        })?;
        w.set_read_timeout(Some(Duration::from_secs(30)))?;
        let r = BufReader::new(w.try_clone()?);
        Ok(Conn { w, r })
    }

    /// The answer to `req`; an `error` answer is an error.
    fn ask(&mut self, req: &Request) -> anyhow::Result<Value> {
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        self.w.write_all(&line).context("sending the request")?;
        let mut answer = String::new();
        if self
            .r
            .read_line(&mut answer)
            .context("reading the answer")?
            == 0
        {
            bail!("the daemon closed the connection without an answer");
        }
        let v: Value = serde_json::from_str(&answer).context("the answer is not JSON")?;
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            bail!("{e}");
        }
        Ok(v)
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(&cli) {
        eprintln!("xdhcpctl: {e:#}");
        std::process::exit(1);
    }
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn leases_table(v: &Value) -> anyhow::Result<()> {
    let leases: Vec<Value> = v["leases"].as_array().cloned().unwrap_or_default();
    show::write_value_table(&mut std::io::stdout().lock(), &leases)?;
    Ok(())
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    if let Cmd::Man { dir } = &cli.command {
        let page = clap_mangen::Man::new(Cli::command());
        let path = dir.join("xdhcpctl.1");
        let mut f =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        page.render(&mut f)?;
        println!("{}", path.display());
        return Ok(());
    }
    let mut c = Conn::open(&cli.socket)?;
    match &cli.command {
        Cmd::Leases {
            subnet,
            state,
            mac,
            circuit_id,
            remote_id,
            hostname,
            limit,
            after,
            all,
        } => {
            let mut q = Query {
                subnet: subnet.clone(),
                state: state.clone(),
                mac: mac.clone(),
                circuit_id: circuit_id.clone(),
                remote_id: remote_id.clone(),
                hostname: hostname.clone(),
                limit: *limit,
                after: *after,
            };
            let mut leases = Vec::new();
            let mut last = loop {
                let v = c.ask(&Request::Leases(q.clone()))?;
                leases.extend(v["leases"].as_array().cloned().unwrap_or_default());
                match v["next"].as_str().and_then(|a| a.parse().ok()) {
                    Some(n) if *all => q.after = Some(n),
                    _ => break v,
                }
            };
            last["leases"] = Value::Array(leases);
            if *all {
                last["next"] = Value::Null;
            }
            if cli.json {
                return print_json(&last);
            }
            leases_table(&last)?;
            if let Some(n) = last["next"].as_str() {
                eprintln!("more: xdhcpctl leases --after {n} (or --all)");
            }
            if last["source"] == "table" {
                eprintln!("(from the lease table: no [journal], so no hostname or relay data)");
            }
        }
        Cmd::Lease {
            key,
            client_id,
            circuit_id,
        } => {
            let mut l = Lookup {
                client_id: client_id.clone(),
                circuit_id: circuit_id.clone(),
                ..Lookup::default()
            };
            if let Some(k) = key {
                match k.parse::<Ipv4Addr>() {
                    Ok(a) => l.addr = Some(a),
                    Err(_) => l.mac = Some(k.clone()),
                }
            }
            let v = c.ask(&Request::Lease(l))?;
            if cli.json {
                return print_json(&v);
            }
            if v["leases"].as_array().is_none_or(Vec::is_empty) {
                bail!("no lease found");
            }
            leases_table(&v)?;
        }
        Cmd::Release { addr } => {
            let v = c.ask(&Request::Release { addr: *addr })?;
            if cli.json {
                return print_json(&v);
            }
            let journaled = match v["journaled"].as_bool() {
                Some(true) => "journaled",
                Some(false) => "NOT journaled (the journal was full)",
                None => "no journal",
            };
            println!("released {addr} ({journaled})");
        }
        Cmd::Reserve {
            addr,
            mac,
            client_id,
            circuit_id,
            remote_id,
            infinite,
        } => {
            let r = NewReservation {
                addr: *addr,
                mac: mac.clone(),
                client_id: client_id.clone(),
                circuit_id: circuit_id.clone(),
                remote_id: remote_id.clone(),
                infinite: *infinite,
                ..NewReservation::default()
            };
            let v = c.ask(&Request::Reserve(r))?;
            if cli.json {
                return print_json(&v);
            }
            if v["already"] == true {
                println!("{addr} was reserved so already");
            } else {
                println!("reserved {addr}");
            }
        }
        Cmd::Unreserve { addr } => {
            let v = c.ask(&Request::Unreserve { addr: *addr })?;
            if cli.json {
                return print_json(&v);
            }
            println!("unreserved {addr}");
        }
        Cmd::Reservations => {
            let v = c.ask(&Request::Reservations)?;
            if cli.json {
                return print_json(&v);
            }
            print!("{}", view::reservations_text(&v));
        }
        Cmd::Reload => {
            let v = c.ask(&Request::Reload)?;
            if cli.json {
                return print_json(&v);
            }
            println!("reloaded: {} subnet(s)", v["subnets"]);
        }
        Cmd::Stats => {
            let v = c.ask(&Request::Stats)?;
            if cli.json {
                return print_json(&v);
            }
            print!("{}", Frame::new(None, &v).text());
            if let Some(c) = view::cluster_text(&v) {
                print!("{c}");
            }
        }
        Cmd::Latency => {
            let v = c.ask(&Request::Latency)?;
            if cli.json {
                return print_json(&v);
            }
            print!("{}", view::latency_text(&v));
        }
        Cmd::Top { once, interval_ms } => {
            let every = Duration::from_millis((*interval_ms).max(100));
            if *once {
                let first = c.ask(&Request::Stats)?;
                std::thread::sleep(every);
                let now = c.ask(&Request::Stats)?;
                if cli.json {
                    return print_json(&now);
                }
                print!("{}", Frame::new(Some(&first), &now).text());
            } else {
                top::run(&mut |r| c.ask(r), every)?;
            }
        }
        Cmd::Man { .. } => unreachable!("handled first"),
    }
    Ok(())
}

/// The live view: one `stats` request per refresh, drawn with ratatui.
mod top {
    use super::*;
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    use ratatui::layout::{Constraint, Layout};
    use ratatui::style::{Modifier, Style};
    use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
    use std::time::Instant;

    pub fn run(
        ask: &mut dyn FnMut(&Request) -> anyhow::Result<Value>,
        every: Duration,
    ) -> anyhow::Result<()> {
        let mut term = ratatui::init();
        let result = (|| -> anyhow::Result<()> {
            let mut prev: Option<Value> = None;
            loop {
                let cur = ask(&Request::Stats)?;
                let frame = Frame::new(prev.as_ref(), &cur);
                term.draw(|f| draw(f, &frame))?;
                prev = Some(cur);
                let until = Instant::now() + every;
                while let Some(left) = until.checked_duration_since(Instant::now()) {
                    if event::poll(left)?
                        && let Event::Key(k) = event::read()?
                        && k.kind == KeyEventKind::Press
                        && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc)
                            || (k.code == KeyCode::Char('c')
                                && k.modifiers.contains(KeyModifiers::CONTROL)))
                    {
                        return Ok(());
                    }
                }
            }
        })();
        ratatui::restore();
        result
    }

    fn table<'a>(title: &'a str, head: Vec<String>, rows: Vec<Vec<String>>) -> Table<'a> {
        let widths: Vec<Constraint> = (0..head.len())
            .map(|i| {
                let w = rows
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .chain([head[i].chars().count()])
                    .max()
                    .unwrap_or(0);
                Constraint::Length(w as u16)
            })
            .collect();
        Table::new(rows.into_iter().map(Row::new), widths)
            .header(Row::new(head).style(Style::default().add_modifier(Modifier::BOLD)))
            .block(Block::default().borders(Borders::ALL).title(title))
            .column_spacing(2)
    }

    fn draw(f: &mut ratatui::Frame, fr: &Frame) {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let [title, mid, pools, lat] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(fr.rates.len().max(fr.drops.len()) as u16 + 3),
            Constraint::Length(fr.pools.len() as u16 + 3 + u16::from(fr.leases.is_some())),
            Constraint::Min(3),
        ])
        .areas(f.area());
        f.render_widget(Paragraph::new(format!("{}   (q quits)", fr.title)), title);
        let [rates, drops] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(mid);
        f.render_widget(
            table(
                "rates",
                s(&["counter", "per second", "total"]),
                fr.rates
                    .iter()
                    .map(|(k, r, t)| vec![k.clone(), format!("{r:.1}"), t.to_string()])
                    .collect(),
            ),
            rates,
        );
        f.render_widget(
            table(
                "drops",
                s(&["counter", "total", "per second"]),
                fr.drops
                    .iter()
                    .map(|(k, t, r)| vec![k.clone(), t.to_string(), format!("{r:.1}")])
                    .collect(),
            ),
            drops,
        );
        let mut pool_rows: Vec<Vec<String>> = fr.pools.iter().map(|p| p.to_vec()).collect();
        if let Some(l) = &fr.leases {
            pool_rows.push(vec![format!("leases: {l}")]);
        }
        f.render_widget(
            table(
                "pools",
                s(&["subnet", "size", "used", "use", "in probation"]),
                pool_rows,
            ),
            pools,
        );
        if fr.latency.is_empty() {
            f.render_widget(
                Paragraph::new("none recorded")
                    .block(Block::default().borders(Borders::ALL).title("latency")),
                lat,
            );
        } else {
            f.render_widget(
                table(
                    "latency, last interval (µs)",
                    fr.latency_head.clone(),
                    fr.latency.clone(),
                ),
                lat,
            );
        }
    }
}
