//! The high-availability lab: several xdhcpd on one client segment, and a
//! NATS JetStream cluster on a management network of its own.
//!
//! ```text
//!            clients (NAME-cli: NAME-c, NAME-c2)    relay clients (NAME-rc)
//!               |        |                                 |
//!   NAME-sw: bridge NAME-br ---------------------- relay (NAME-rly, dhcrelay)
//!               |        |        |
//!          NAME-s0   NAME-s1   NAME-s2          the servers: data veth NAME-sd
//!               |        |        |             (XDP attaches there)
//!   NAME-mg: bridge NAME-mb                     management veth NAME-sm
//!               |        |        |
//!          NAME-n0   NAME-n1   NAME-n2          nats-server, one per namespace
//! ```
//!
//! The data bridge makes one broadcast segment: a DISCOVER reaches every
//! server, as on a real access network. Each server has a second veth on
//! the management bridge, where the NATS nodes are too, so one server can
//! be cut off from the cluster ([`HaLab::cut_mgmt`]) while its clients still
//! reach it, and one NATS node can be killed alone. As in [`super::Lab`],
//! every interface is created inside a namespace the lab made, and every
//! address lives only there.
use super::{MAX_IFNAME, add_netns, add_veth, ip, link_mac, netns_command, remove_netns_present};
use crate::daemon::{self, Daemon, Launch};
use crate::process::stop_child;
use anyhow::{Context, Result, bail, ensure};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The clients' segment: RFC 2544's benchmarking range, as in the plain lab.
/// Server k's data address is `198.18.0.(1 + k)`.
pub const DATA_PREFIX_LEN: u8 = 15;
/// The management network (servers `10.99.0.(1 + k)`, NATS nodes
/// `10.99.0.(11 + i)`).
pub const MGMT_PREFIX_LEN: u8 = 24;
/// NATS ports: clients, monitoring (HTTP), cluster routes.
pub const NATS_CLIENT_PORT: u16 = 4222;
pub const NATS_HTTP_PORT: u16 = 8222;
pub const NATS_ROUTE_PORT: u16 = 6222;
/// The relay's link to the switch, and the clients' link behind it.
pub const RELAY_UP_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 9);
pub const RELAY_DOWN_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const RELAY_NET: &str = "203.0.113.0/24";

/// Server k's address on the clients' segment (its server identifier).
pub fn data_addr(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, 1 + k as u8)
}

/// Server k's address on the management network.
pub fn mgmt_addr(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, 1 + k as u8)
}

/// The peers' names in `[cluster]`: server k is `PEERS[k]`.
pub const PEERS: [&str; 3] = ["a", "b", "c"];

/// NATS node i's address.
pub fn nats_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, 0, 11 + i as u8)
}

/// What to build.
#[derive(Debug, Clone)]
pub struct HaOptions {
    /// Short prefix, e.g. `xdt90`; every namespace is `NAME-...`.
    pub name: String,
    /// Server namespaces (1 to 3).
    pub servers: usize,
    /// NATS nodes (0 to 3), started at once.
    pub nats: usize,
    /// Also the relay namespace and its clients' namespace.
    pub relay: bool,
}

impl HaOptions {
    pub fn new(name: &str, servers: usize) -> HaOptions {
        HaOptions {
            name: name.to_owned(),
            servers,
            nats: 3,
            relay: false,
        }
    }
}

/// What the `[cluster]` section says, beside the lab's own parts.
#[derive(Clone, Copy, Debug)]
pub struct ClusterSpec {
    pub servers: usize,
    pub mode: &'static str,
    pub durability: &'static str,
    pub failover_after: &'static str,
    /// `[cluster] stream` and `bucket`, when not the defaults (a second
    /// cluster on the same NATS).
    pub names: Option<(&'static str, &'static str)>,
}

impl ClusterSpec {
    pub fn pair(durability: &'static str) -> ClusterSpec {
        ClusterSpec {
            servers: 2,
            mode: "load-balancing",
            durability,
            failover_after: "2s",
            names: None,
        }
    }
}

/// One server's namespace.
#[derive(Debug, Clone)]
pub struct HaServer {
    pub ns: String,
    /// The veth on the clients' segment (the daemon's `interface`).
    pub data_if: String,
    pub data_ip: Ipv4Addr,
    pub data_mac: [u8; 6],
    pub mgmt_if: String,
    pub mgmt_ip: Ipv4Addr,
    /// The management bridge's port facing this server (in `NAME-mg`).
    mgmt_port: String,
}

/// One nats-server, in its own namespace.
#[derive(Debug)]
pub struct NatsNode {
    pub name: String,
    pub ns: String,
    pub ip: Ipv4Addr,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsNode {
    /// `nats://IP:4222`.
    pub fn url(&self) -> String {
        format!("nats://{}:{NATS_CLIENT_PORT}", self.ip)
    }

    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The nats-server process (`ip netns exec` execs it), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// The relay and the clients behind it.
#[derive(Debug, Clone)]
pub struct HaRelay {
    /// dhcrelay runs here: `up_if` on the switch, `down_if` to the clients.
    pub ns: String,
    pub up_if: String,
    pub down_if: String,
    /// The clients' namespace and interface (xdhcpgen runs there).
    pub cli_ns: String,
    pub cli_if: String,
}

/// A running HA lab. Dropping it stops the NATS nodes and removes every
/// namespace (and whatever still runs inside).
pub struct HaLab {
    pub name: String,
    /// The switch: the data bridge.
    pub sw_ns: String,
    /// The management bridge.
    pub mg_ns: String,
    /// The clients: `cli_if` for the load, `probe_if` for probes beside it.
    pub cli_ns: String,
    pub cli_if: String,
    pub probe_if: String,
    pub servers: Vec<HaServer>,
    pub nats: Vec<NatsNode>,
    pub relay: Option<HaRelay>,
    /// NATS configs, stores and logs.
    dir: PathBuf,
    namespaces: Vec<String>,
}

impl HaLab {
    /// Builds the lab (first removing namespaces left over under its
    /// names) and starts the NATS nodes; does not wait for JetStream
    /// ([`HaLab::wait_jetstream`]).
    pub fn up(opts: &HaOptions) -> Result<HaLab> {
        ensure!(
            (1..=3).contains(&opts.servers),
            "an HA lab has 1 to 3 servers"
        );
        ensure!(opts.nats <= 3, "an HA lab has at most 3 NATS nodes");
        let n = &opts.name;
        // The longest name made from it: `NAME-pc2` / `NAME-rly`.
        super::validate_name(n)?;
        ensure!(
            n.len() + 4 <= MAX_IFNAME,
            "HA lab name {n:?} is too long: interface {n}-pc2 must fit 15 characters"
        );
        let mut namespaces = vec![format!("{n}-sw"), format!("{n}-mg"), format!("{n}-cli")];
        namespaces.extend((0..opts.servers).map(|k| format!("{n}-s{k}")));
        namespaces.extend((0..opts.nats).map(|i| format!("{n}-n{i}")));
        if opts.relay {
            namespaces.push(format!("{n}-rly"));
            namespaces.push(format!("{n}-rc"));
        }
        let stale: Vec<&str> = namespaces.iter().map(String::as_str).collect();
        remove_netns_present(&stale)?;
        let mut lab = HaLab {
            name: n.clone(),
            sw_ns: format!("{n}-sw"),
            mg_ns: format!("{n}-mg"),
            cli_ns: format!("{n}-cli"),
            cli_if: format!("{n}-c"),
            probe_if: format!("{n}-c2"),
            servers: Vec::new(),
            nats: Vec::new(),
            relay: None,
            dir: daemon::temp_dir(&format!("ha-{n}"))?,
            namespaces: Vec::new(),
        };
        // From here on a failure drops `lab`, and Drop removes whatever
        // namespaces were made.
        lab.build(opts, namespaces)?;
        Ok(lab)
    }

    fn build(&mut self, opts: &HaOptions, namespaces: Vec<String>) -> Result<()> {
        let n = self.name.clone();
        for ns in namespaces {
            add_netns(&ns)?;
            self.namespaces.push(ns);
        }
        let (sw, mg) = (self.sw_ns.clone(), self.mg_ns.clone());
        let (br, mb) = (format!("{n}-br"), format!("{n}-mb"));
        // No STP: ports forward as soon as they are up.
        ip(
            &sw,
            &["link", "add", &br, "type", "bridge", "stp_state", "0"],
        )?;
        ip(
            &mg,
            &["link", "add", &mb, "type", "bridge", "stp_state", "0"],
        )?;
        ip(&sw, &["link", "set", &br, "up"])?;
        ip(&mg, &["link", "set", &mb, "up"])?;
        let port = |ns: &str, bridge: &str, ifname: &str| -> Result<()> {
            ip(ns, &["link", "set", ifname, "master", bridge])?;
            ip(ns, &["link", "set", ifname, "up"])?;
            Ok(())
        };
        let up = |ns: &str, ifname: &str, addr: Option<String>| -> Result<()> {
            if let Some(a) = addr {
                ip(ns, &["addr", "add", &a, "dev", ifname])?;
            }
            ip(ns, &["link", "set", ifname, "up"])?;
            Ok(())
        };

        // The clients: two ports on the switch, no addresses (xdhcpgen and
        // scapy need none).
        let cli = self.cli_ns.clone();
        for (ifname, p) in [
            (&self.cli_if, format!("{n}-pc")),
            (&self.probe_if, format!("{n}-pc2")),
        ] {
            add_veth((&cli, ifname), (&sw, &p), 1)?;
            up(&cli, ifname, None)?;
            port(&sw, &br, &p)?;
        }

        for k in 0..opts.servers {
            let ns = format!("{n}-s{k}");
            let s = HaServer {
                data_if: format!("{n}-sd"),
                data_ip: data_addr(k),
                data_mac: [0; 6],
                mgmt_if: format!("{n}-sm"),
                mgmt_ip: mgmt_addr(k),
                mgmt_port: format!("{n}-m{k}"),
                ns,
            };
            let sw_port = format!("{n}-p{k}");
            add_veth((&s.ns, &s.data_if), (&sw, &sw_port), 1)?;
            up(
                &s.ns,
                &s.data_if,
                Some(format!("{}/{DATA_PREFIX_LEN}", s.data_ip)),
            )?;
            port(&sw, &br, &sw_port)?;
            add_veth((&s.ns, &s.mgmt_if), (&mg, &s.mgmt_port), 1)?;
            up(
                &s.ns,
                &s.mgmt_if,
                Some(format!("{}/{MGMT_PREFIX_LEN}", s.mgmt_ip)),
            )?;
            port(&mg, &mb, &s.mgmt_port)?;
            let mac = link_mac(&s.ns, &s.data_if)?;
            self.servers.push(HaServer { data_mac: mac, ..s });
        }

        if opts.relay {
            let r = HaRelay {
                ns: format!("{n}-rly"),
                up_if: format!("{n}-ru"),
                down_if: format!("{n}-rd"),
                cli_ns: format!("{n}-rc"),
                cli_if: format!("{n}-rc"),
            };
            let sw_port = format!("{n}-pr");
            add_veth((&r.ns, &r.up_if), (&sw, &sw_port), 1)?;
            up(
                &r.ns,
                &r.up_if,
                Some(format!("{RELAY_UP_ADDR}/{DATA_PREFIX_LEN}")),
            )?;
            port(&sw, &br, &sw_port)?;
            add_veth((&r.ns, &r.down_if), (&r.cli_ns, &r.cli_if), 1)?;
            up(&r.ns, &r.down_if, Some(format!("{RELAY_DOWN_ADDR}/24")))?;
            up(&r.cli_ns, &r.cli_if, None)?;
            // The servers answer the relay's link through the relay.
            for s in &self.servers {
                ip(
                    &s.ns,
                    &["route", "add", RELAY_NET, "via", &RELAY_UP_ADDR.to_string()],
                )?;
            }
            self.relay = Some(r);
        }

        for i in 0..opts.nats {
            let ns = format!("{n}-n{i}");
            let (nif, mport) = (format!("{n}-n{i}"), format!("{n}-q{i}"));
            add_veth((&ns, &nif), (&mg, &mport), 1)?;
            up(
                &ns,
                &nif,
                Some(format!("{}/{MGMT_PREFIX_LEN}", nats_addr(i))),
            )?;
            port(&mg, &mb, &mport)?;
            let node = NatsNode {
                name: format!("n{i}"),
                ip: nats_addr(i),
                conf: self.dir.join(format!("n{i}.conf")),
                log: self.dir.join(format!("n{i}.log")),
                ns,
                child: None,
            };
            std::fs::write(&node.conf, nats_config(&node, &self.dir, opts.nats))?;
            self.nats.push(node);
        }
        for i in 0..self.nats.len() {
            self.start_nats(i)?;
        }
        Ok(())
    }

    /// `ip netns exec NS program` for any namespace of the lab.
    pub fn cmd(&self, ns: &str, program: &str) -> Command {
        netns_command(ns, program)
    }

    /// `nats://...` of every NATS node, for `[cluster] nats`.
    pub fn nats_urls(&self) -> Vec<String> {
        self.nats.iter().map(NatsNode::url).collect()
    }

    /// Starts NATS node `i` (again, on the store it had: a restart).
    pub fn start_nats(&mut self, i: usize) -> Result<()> {
        let node = self.nats.get_mut(i).context("no such NATS node")?;
        ensure!(!node.running(), "NATS node {} already runs", node.name);
        let log = File::options().create(true).append(true).open(&node.log)?;
        let child = netns_command(&node.ns, "nats-server")
            .arg("-c")
            .arg(&node.conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start nats-server (is it installed? cargo xtask setup)")?;
        node.child = Some(child);
        Ok(())
    }

    /// SIGKILLs NATS node `i` (a crash: nothing flushed, no goodbye to the
    /// routes).
    pub fn kill_nats(&mut self, i: usize) -> Result<()> {
        let node = self.nats.get_mut(i).context("no such NATS node")?;
        if let Some(mut c) = node.child.take() {
            stop_child(&mut c, libc::SIGKILL, Duration::from_secs(5))?;
        }
        Ok(())
    }

    /// Cuts server `k` off the management network (its bridge port goes
    /// down): it still hears its clients, it no longer reaches NATS.
    pub fn cut_mgmt(&self, k: usize) -> Result<()> {
        let s = self.servers.get(k).context("no such server")?;
        ip(&self.mg_ns, &["link", "set", &s.mgmt_port, "down"])?;
        Ok(())
    }

    /// Undoes [`HaLab::cut_mgmt`].
    pub fn restore_mgmt(&self, k: usize) -> Result<()> {
        let s = self.servers.get(k).context("no such server")?;
        ip(&self.mg_ns, &["link", "set", &s.mgmt_port, "up"])?;
        Ok(())
    }

    /// `GET PATH` of NATS node `i`'s monitoring port, from inside its
    /// namespace: (status, body).
    pub fn nats_http(&self, i: usize, path: &str) -> Result<(u16, String)> {
        let node = self.nats.get(i).context("no such NATS node")?;
        let addr = SocketAddrV4::new(node.ip, NATS_HTTP_PORT);
        let path = path.to_owned();
        in_netns(&node.ns, move || http_get(addr, &path))
    }

    /// Waits until every running NATS node reports JetStream healthy
    /// (`/healthz?js-enabled-only=true`), all agree on one meta leader
    /// (`/jsz`), and that leader is among the running nodes; returns its
    /// name.
    pub fn wait_jetstream(&mut self, limit: Duration) -> Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let last = match self.jetstream_leader() {
                Ok(leader) => return Ok(leader),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .nats
                    .iter()
                    .map(|n| format!("--- {} ---\n{}", n.name, tail(&n.log(), 20)))
                    .collect();
                bail!(
                    "JetStream had no meta leader within {limit:?}: {last}\n{}",
                    logs.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn jetstream_leader(&mut self) -> Result<String> {
        let running: Vec<usize> = (0..self.nats.len())
            .filter(|&i| self.nats[i].running())
            .collect();
        ensure!(!running.is_empty(), "no NATS node runs");
        let mut leader: Option<String> = None;
        for &i in &running {
            let (status, body) = self.nats_http(i, "/healthz?js-enabled-only=true")?;
            ensure!(
                status == 200,
                "{}: healthz {status} {body}",
                self.nats[i].name
            );
            let (status, body) = self.nats_http(i, "/jsz")?;
            ensure!(status == 200, "{}: jsz {status}", self.nats[i].name);
            let v: serde_json::Value = serde_json::from_str(&body).context("parsing /jsz")?;
            let l = v["meta_cluster"]["leader"]
                .as_str()
                .filter(|l| !l.is_empty())
                .with_context(|| format!("{} knows no meta leader yet", self.nats[i].name))?;
            match &leader {
                None => leader = Some(l.to_owned()),
                Some(o) => ensure!(o == l, "{} says {l} leads, another {o}", self.nats[i].name),
            }
        }
        let leader = leader.context("no leader")?;
        ensure!(
            running.iter().any(|&i| self.nats[i].name == leader),
            "the meta leader {leader} is not running"
        );
        Ok(leader)
    }

    /// A NATS request (publish with a reply inbox, wait for the one
    /// answer) through node `i`, from inside its namespace: the raw
    /// protocol, enough for the JetStream API and publish acks.
    pub fn nats_request(
        &self,
        i: usize,
        subject: &str,
        payload: &[u8],
        limit: Duration,
    ) -> Result<Vec<u8>> {
        let node = self.nats.get(i).context("no such NATS node")?;
        let addr = SocketAddrV4::new(node.ip, NATS_CLIENT_PORT);
        let (subject, payload) = (subject.to_owned(), payload.to_vec());
        in_netns(&node.ns, move || {
            nats_request(addr, &subject, &payload, limit)
        })
    }

    /// Server k's config: the XDP path on its data veth, its journal in
    /// `journal_dir` (durable), the lab's subnet (and the relay's link), and
    /// `[cluster]` naming every peer and every NATS node.
    pub fn cluster_config(&self, k: usize, spec: ClusterSpec, journal_dir: &Path) -> String {
        self.server_config(k, Some(spec), journal_dir)
    }

    /// [`HaLab::cluster_config`], or without `[cluster]` (one plain server
    /// on the lab, the baseline of `cargo xtask bench ha`).
    pub fn server_config(&self, k: usize, spec: Option<ClusterSpec>, journal_dir: &Path) -> String {
        let s = &self.servers[k];
        let cluster = spec.map(|spec| {
            let peers: Vec<String> = PEERS[..spec.servers]
                .iter()
                .map(|p| format!("\"{p}\""))
                .collect();
            let nats: Vec<String> = self
                .nats_urls()
                .iter()
                .map(|u| format!("\"{u}\""))
                .collect();
            format!(
                r#"
[cluster]
name = "{name}"
peers = [{peers}]
nats = [{nats}]
mode = "{mode}"
durability = "{durability}"
failover_after = "{failover}"
{names}"#,
                name = PEERS[k],
                peers = peers.join(", "),
                nats = nats.join(", "),
                mode = spec.mode,
                durability = spec.durability,
                failover = spec.failover_after,
                names = spec
                    .names
                    .map(|(st, b)| format!("stream = \"{st}\"\nbucket = \"{b}\"\n"))
                    .unwrap_or_default(),
            )
        });
        format!(
            r#"interface = "{iface}"
io = "xdp"
xdp_mode = "driver"
bind = "copy"
poll = "adaptive"
cores = [{core}]
server_id = "{sid}"

[journal]
dir = "{dir}"
mode = "durable"
{cluster}
[[subnet]]
prefix = "198.18.0.0/15"
pools = ["198.18.0.10-198.19.255.254"]
routers = ["198.18.0.1"]
lease_time = 3600

[[subnet]]
prefix = "203.0.113.0/24"
pools = ["203.0.113.10-203.0.113.250"]
routers = ["203.0.113.1"]
lease_time = 3600
"#,
            iface = s.data_if,
            sid = s.data_ip,
            // Each server's worker on a core of its own where there are
            // enough, as on hosts of their own (else both would pin to
            // core 0: a worker pins to its queue's index).
            core = k % std::thread::available_parallelism().map_or(1, |n| n.get()),
            dir = journal_dir.display(),
            cluster = cluster.unwrap_or_default(),
        )
    }

    /// Starts xdhcpd in server `k`'s namespace with `config_toml` (whose
    /// `interface` should be [`HaServer::data_if`]).
    pub fn start_daemon(&self, k: usize, bin: &Path, config_toml: &str) -> Result<Daemon> {
        let s = self.servers.get(k).context("no such server")?;
        Daemon::start_in(&s.ns, bin, config_toml, &Launch::default())
    }

    /// Stops the NATS nodes and removes every namespace. Idempotent.
    pub fn down(&mut self) -> Result<()> {
        for i in 0..self.nats.len() {
            let _ = self.kill_nats(i);
        }
        let names: Vec<&str> = self.namespaces.iter().map(String::as_str).collect();
        let res = remove_netns_present(&names);
        self.namespaces.clear();
        res
    }
}

impl Drop for HaLab {
    fn drop(&mut self) {
        if let Err(e) = self.down() {
            eprintln!("HA lab {}: teardown failed: {e:#}", self.name);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// nats-server's config for one node of a cluster of `nodes`: JetStream
/// on a file store of its own, routes to every node (its own is ignored).
fn nats_config(node: &NatsNode, dir: &Path, nodes: usize) -> String {
    let routes: Vec<String> = (0..nodes)
        .map(|i| format!("nats://{}:{NATS_ROUTE_PORT}", nats_addr(i)))
        .collect();
    let store = dir.join(format!("{}-store", node.name));
    let cluster = if nodes > 1 {
        format!(
            "cluster {{\n  name: xdhcpd-lab\n  listen: {ip}:{NATS_ROUTE_PORT}\n  routes: [{}]\n}}\n",
            routes.join(", "),
            ip = node.ip
        )
    } else {
        String::new()
    };
    format!(
        "server_name: {name}\nlisten: {ip}:{NATS_CLIENT_PORT}\nhttp: {ip}:{NATS_HTTP_PORT}\n\
         jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 64MB\n  max_file_store: 256MB\n}}\n{cluster}",
        name = node.name,
        ip = node.ip,
        store = store.display(),
    )
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Runs `f` on a thread of its own that first enters network namespace
/// `ns` (setns only moves the calling thread), so the sockets it opens
/// live there; the test process itself never leaves the root namespace.
pub fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).with_context(|| format!("opening {path}"))?;
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a namespace fd we hold open; it changes only
        // this thread, which ends when `f` returns.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            bail!("setns into {path}: {}", std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread in {ns} panicked"))?
}

/// A plain HTTP/1.0 GET: (status, body).
fn http_get(addr: SocketAddrV4, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status in {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// The NATS text protocol, just enough for one request: CONNECT, SUB an
/// inbox, PUB with it as reply subject, and read until the MSG on it
/// (answering the server's PINGs).
fn nats_request(
    addr: SocketAddrV4,
    subject: &str,
    payload: &[u8],
    limit: Duration,
) -> Result<Vec<u8>> {
    let s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}"))?;
    let deadline = Instant::now() + limit;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    // INFO first.
    read_line(&mut r, &mut line, deadline)?;
    ensure!(line.starts_with("INFO"), "{addr} greeted with {line:?}");
    let inbox = "_INBOX.xdhcpd-lab";
    write!(
        w,
        "CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {inbox} 1\r\nPUB {subject} {inbox} {}\r\n",
        payload.len()
    )?;
    w.write_all(payload)?;
    w.write_all(b"\r\n")?;
    loop {
        read_line(&mut r, &mut line, deadline)
            .with_context(|| format!("no answer to {subject} within {limit:?}"))?;
        if line.starts_with("PING") {
            w.write_all(b"PONG\r\n")?;
        } else if line.starts_with("-ERR") {
            bail!("{addr}: {}", line.trim());
        } else if line.starts_with("MSG") {
            let n: usize = line
                .split_whitespace()
                .last()
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("bad MSG line {line:?}"))?;
            let mut body = vec![0u8; n + 2];
            r.get_mut()
                .set_read_timeout(Some(limit.max(Duration::from_secs(1))))?;
            r.read_exact(&mut body)?;
            body.truncate(n);
            return Ok(body);
        }
    }
}

/// One protocol line into `line`, retrying read timeouts until `deadline`.
fn read_line(r: &mut BufReader<TcpStream>, line: &mut String, deadline: Instant) -> Result<()> {
    line.clear();
    loop {
        match r.read_line(line) {
            Ok(0) => bail!("connection closed"),
            Ok(_) if line.ends_with('\n') => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
        if Instant::now() > deadline {
            bail!("timed out");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_config_routes_to_every_node() {
        let node = NatsNode {
            name: "n1".into(),
            ns: "x-n1".into(),
            ip: nats_addr(1),
            conf: PathBuf::new(),
            log: PathBuf::new(),
            child: None,
        };
        let c = nats_config(&node, Path::new("/tmp/d"), 3);
        assert!(c.contains("server_name: n1\n"), "{c}");
        assert!(c.contains("listen: 10.99.0.12:4222"), "{c}");
        assert!(c.contains("store_dir: \"/tmp/d/n1-store\""), "{c}");
        for ip in ["10.99.0.11", "10.99.0.12", "10.99.0.13"] {
            assert!(c.contains(&format!("nats://{ip}:6222")), "{c}");
        }
        assert!(!nats_config(&node, Path::new("/tmp/d"), 1).contains("cluster"));
    }

    #[test]
    fn addresses_of_the_plan() {
        assert_eq!(data_addr(0), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(mgmt_addr(2), Ipv4Addr::new(10, 99, 0, 3));
        assert_eq!(nats_addr(0), Ipv4Addr::new(10, 99, 0, 11));
    }
}
