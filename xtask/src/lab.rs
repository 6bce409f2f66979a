//! The test lab: two network namespaces joined by one veth pair, the
//! server's end in one and the clients' end in the other.
//!
//! Everything the lab makes lives inside namespaces it created itself, so
//! nothing it does (XDP programs, DHCP clients, broadcasts) can reach the
//! host's own interfaces. Interfaces are created straight inside their
//! namespace and never exist in the root namespace, not even for a moment.
use anyhow::{Context, Result, bail, ensure};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub mod ha;

/// The lab's addressing: RFC 2544's benchmarking range, never routed.
pub const SERVER_ADDR: &str = "198.18.0.1/15";
pub const CLIENT_ADDR: &str = "198.18.0.2/15";

/// What to build. Interface names are derived from `name`, so it must be
/// short: the longest derived name, `NAME-c.VID`, has to fit the kernel's
/// 15 characters.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Unique short prefix, e.g. `xdt3`: namespaces `NAME-srv`/`NAME-cli`,
    /// interfaces `NAME-s`/`NAME-c`.
    pub name: String,
    /// Address (with prefix length) of the server's veth end.
    pub server_addr: String,
    /// Address of the client's veth end, for tests that need one (a relay
    /// such as perfdhcp, ping, TCP).
    pub client_addr: Option<String>,
    /// Also create `CLIENT_IF.VID` in the client namespace and
    /// `SERVER_IF.VID` in the server namespace. Needs a kernel with 802.1Q
    /// devices (`CONFIG_VLAN_8021Q`); without them `up` fails saying so.
    pub client_vlan: Option<u16>,
    /// Address of `SERVER_IF.VID`, so the server's kernel answers ARP for a
    /// per-VLAN server identifier.
    pub server_vlan_addr: Option<String>,
    /// RX and TX queues on each veth end (1 unless a test wants several
    /// workers). A frame lands on the peer's queue of the same number as
    /// the queue it was sent on, so a sender with one AF_XDP socket per
    /// queue reaches every server worker.
    pub queues: u32,
}

impl LabOptions {
    /// The common case: server at 198.18.0.1/15, client end unaddressed.
    pub fn new(name: &str) -> LabOptions {
        LabOptions {
            name: name.to_owned(),
            server_addr: SERVER_ADDR.to_owned(),
            client_addr: None,
            client_vlan: None,
            server_vlan_addr: None,
            queues: 1,
        }
    }
}

/// A running lab. Dropping it tears it down.
#[derive(Debug)]
pub struct Lab {
    pub name: String,
    pub srv_ns: String,
    pub cli_ns: String,
    pub srv_if: String,
    pub cli_if: String,
    pub srv_mac: [u8; 6],
    pub cli_mac: [u8; 6],
    pub cli_vlan_if: Option<String>,
    pub srv_vlan_if: Option<String>,
    up: bool,
}

/// Offloads that would hide what is really on the wire from XDP: partial
/// UDP checksums from sockets in the peer namespace, VLAN tags moved into
/// skb metadata, and frames merged or left unsegmented.
const OFFLOADS_OFF: [&str; 12] = [
    "tx", "off", "txvlan", "off", "rxvlan", "off", "gro", "off", "gso", "off", "tso", "off",
];

const MAX_IFNAME: usize = 15;

impl Lab {
    /// Builds the lab, first removing namespaces left over under the same
    /// names (a run that was killed before it could clean up).
    pub fn up(opts: &LabOptions) -> Result<Lab> {
        validate_name(&opts.name)?;
        let vlan_suffix = opts.client_vlan.map(|v| format!(".{v}"));
        let srv_if = format!("{}-s", opts.name);
        let cli_if = format!("{}-c", opts.name);
        if let Some(vid) = opts.client_vlan {
            ensure!(
                (1..=4094).contains(&vid),
                "VLAN id {vid} is outside 1..=4094"
            );
        }
        if let Some(sfx) = &vlan_suffix {
            ensure!(
                cli_if.len() + sfx.len() <= MAX_IFNAME,
                "lab name {:?} is too long for the VLAN interface {cli_if}{sfx} (15 characters at most)",
                opts.name
            );
        }
        let mut lab = Lab {
            name: opts.name.clone(),
            srv_ns: format!("{}-srv", opts.name),
            cli_ns: format!("{}-cli", opts.name),
            cli_vlan_if: vlan_suffix.as_ref().map(|s| format!("{cli_if}{s}")),
            srv_vlan_if: vlan_suffix.as_ref().map(|s| format!("{srv_if}{s}")),
            srv_if,
            cli_if,
            srv_mac: [0; 6],
            cli_mac: [0; 6],
            up: false,
        };
        remove_netns_present(&[&lab.srv_ns, &lab.cli_ns])?;
        // From here on the namespaces exist, so a failure must remove them:
        // `lab` is dropped on the error path and Drop cleans up.
        lab.up = true;
        lab.build(opts)?;
        Ok(lab)
    }

    fn build(&mut self, opts: &LabOptions) -> Result<()> {
        for ns in [&self.srv_ns, &self.cli_ns] {
            add_netns(ns)?;
        }
        // One queue per end unless asked: veth would otherwise get one per
        // CPU, and a frame lands on the queue its sender's socket hashed
        // to, so a server bound to queue 0 only would miss some of them.
        // (xsk-rs reports ENOMEM binding veth queues above 0 on older
        // kernels, see TOOLCHAIN.md; 6.18 binds them.)
        ensure!(opts.queues >= 1, "a veth end needs at least one queue");
        add_veth(
            (&self.srv_ns, &self.srv_if),
            (&self.cli_ns, &self.cli_if),
            opts.queues,
        )?;
        ip(
            &self.srv_ns,
            &["addr", "add", &opts.server_addr, "dev", &self.srv_if],
        )?;
        if let Some(addr) = &opts.client_addr {
            ip(&self.cli_ns, &["addr", "add", addr, "dev", &self.cli_if])?;
        }
        ip(&self.srv_ns, &["link", "set", &self.srv_if, "up"])?;
        ip(&self.cli_ns, &["link", "set", &self.cli_if, "up"])?;

        if let Some(vid) = opts.client_vlan {
            let vid = vid.to_string();
            let pairs = [
                (&self.cli_ns, &self.cli_if, self.cli_vlan_if.as_ref()),
                (&self.srv_ns, &self.srv_if, self.srv_vlan_if.as_ref()),
            ];
            for (ns, parent, vif) in pairs {
                let vif = vif.context("VLAN interface name")?;
                let add = [
                    "link", "add", "link", parent, "name", vif, "type", "vlan", "id", &vid,
                ];
                ip(ns, &add).map_err(|e| {
                    if e.to_string().contains("Unknown device type") {
                        e.context(
                            "this kernel has no 802.1Q VLAN devices (CONFIG_VLAN_8021Q): \
                             craft tagged frames on the untagged interface instead",
                        )
                    } else {
                        e
                    }
                })?;
                ip(ns, &["link", "set", vif, "up"])?;
            }
            if let (Some(addr), Some(vif)) = (&opts.server_vlan_addr, &self.srv_vlan_if) {
                ip(&self.srv_ns, &["addr", "add", addr, "dev", vif])?;
            }
        } else if opts.server_vlan_addr.is_some() {
            bail!("server_vlan_addr needs client_vlan");
        }

        self.srv_mac = link_mac(&self.srv_ns, &self.srv_if)?;
        self.cli_mac = link_mac(&self.cli_ns, &self.cli_if)?;
        Ok(())
    }

    /// `ip netns exec SRV program`: a command that runs in the server's
    /// namespace.
    pub fn srv(&self, program: &str) -> Command {
        netns_command(&self.srv_ns, program)
    }

    /// `ip netns exec CLI program`: a command that runs in the clients'
    /// namespace.
    pub fn cli(&self, program: &str) -> Command {
        netns_command(&self.cli_ns, program)
    }

    /// The IPv4 addresses (without prefix length) configured on an
    /// interface of the lab.
    pub fn ipv4_addrs(&self, in_client_ns: bool, ifname: &str) -> Result<Vec<std::net::Ipv4Addr>> {
        let ns = if in_client_ns {
            &self.cli_ns
        } else {
            &self.srv_ns
        };
        ipv4_addrs(ns, ifname)
    }

    /// Removes both namespaces, after killing whatever still runs in them.
    /// Idempotent.
    pub fn down(&mut self) -> Result<()> {
        if self.up {
            remove_netns_present(&[&self.srv_ns, &self.cli_ns])?;
        }
        self.up = false;
        Ok(())
    }
}

impl Lab {
    /// Adds a third namespace `NAME-SUFFIX` joined to the lab's client
    /// namespace by a veth pair of its own: `NAME-SUFFIXi` inside it,
    /// `NAME-SUFFIXo` in the client namespace. With the client namespace
    /// as a relay this makes client — relay — server; bridged with the
    /// client's veth end ([`Lab::bridge_client_side`]) it puts another
    /// host on the server's segment. Addresses take a prefix length.
    pub fn spur(
        &self,
        suffix: &str,
        inner_addr: Option<&str>,
        outer_addr: Option<&str>,
    ) -> Result<Spur> {
        self.spur_on(&self.cli_ns, suffix, inner_addr, outer_addr)
    }

    /// As [`Lab::spur`], but joined to the lab's server namespace: a host
    /// the server reaches beside its DHCP segment (the DNS server taking
    /// its updates). `NAME-SUFFIXo` is in the server namespace.
    pub fn server_spur(
        &self,
        suffix: &str,
        inner_addr: Option<&str>,
        outer_addr: Option<&str>,
    ) -> Result<Spur> {
        self.spur_on(&self.srv_ns, suffix, inner_addr, outer_addr)
    }

    fn spur_on(
        &self,
        peer_ns: &str,
        suffix: &str,
        inner_addr: Option<&str>,
        outer_addr: Option<&str>,
    ) -> Result<Spur> {
        ensure!(self.up, "lab {} is down", self.name);
        let ns = format!("{}-{suffix}", self.name);
        validate_name(&ns)?;
        let inner_if = format!("{ns}i");
        let outer_if = format!("{ns}o");
        ensure!(
            outer_if.len() <= MAX_IFNAME,
            "spur {suffix:?} of lab {:?} makes interface {outer_if}, longer than 15 characters",
            self.name
        );
        ensure!(
            ns != self.srv_ns && ns != self.cli_ns,
            "spur {suffix:?} would reuse one of the lab's namespaces"
        );
        remove_netns_present(&[&ns])?;
        let mut spur = Spur {
            ns,
            inner_if,
            outer_if,
            inner_mac: [0; 6],
            outer_mac: [0; 6],
            up: false,
        };
        // From here a failure drops `spur`, whose Drop removes the
        // namespace (if `ip netns add` got as far as making it).
        spur.up = true;
        add_netns(&spur.ns)?;
        // Created inside the new namespace, the far end straight in the
        // lab's namespace: neither end ever exists in the root one.
        add_veth((&spur.ns, &spur.inner_if), (peer_ns, &spur.outer_if), 1)?;
        for (ns, ifname, addr) in [
            (spur.ns.as_str(), &spur.inner_if, inner_addr),
            (peer_ns, &spur.outer_if, outer_addr),
        ] {
            if let Some(a) = addr {
                ip(ns, &["addr", "add", a, "dev", ifname])?;
            }
            ip(ns, &["link", "set", ifname, "up"])?;
        }
        spur.inner_mac = link_mac(&spur.ns, &spur.inner_if)?;
        spur.outer_mac = link_mac(peer_ns, &spur.outer_if)?;
        Ok(spur)
    }

    /// Joins the client's veth end and `ports` (interfaces of the client
    /// namespace, e.g. spurs' outer ends) in a bridge `NAME-br`, so that
    /// they form one broadcast segment with the server; returns the
    /// bridge's name, the interface a client on that segment uses.
    pub fn bridge_client_side(&self, ports: &[&str]) -> Result<String> {
        ensure!(self.up, "lab {} is down", self.name);
        let br = format!("{}-br", self.name);
        ensure!(br.len() <= MAX_IFNAME, "bridge name {br} is too long");
        // No STP: ports forward as soon as they are up, not after the
        // listening and learning delays.
        ip(
            &self.cli_ns,
            &["link", "add", &br, "type", "bridge", "stp_state", "0"],
        )?;
        for port in std::iter::once(self.cli_if.as_str()).chain(ports.iter().copied()) {
            ip(&self.cli_ns, &["link", "set", port, "master", &br])?;
        }
        ip(&self.cli_ns, &["link", "set", &br, "up"])?;
        Ok(br)
    }

    /// Adds a route inside the lab's server (`in_client_ns` false) or
    /// client namespace, e.g. the server's way back to a relay's links.
    pub fn route_add(&self, in_client_ns: bool, args: &[&str]) -> Result<()> {
        let ns = if in_client_ns {
            &self.cli_ns
        } else {
            &self.srv_ns
        };
        ip(ns, &[&["route", "add"], args].concat())?;
        Ok(())
    }
}

/// A namespace hanging off the lab's client namespace (see [`Lab::spur`]).
/// Dropping it removes the namespace and what runs inside.
#[derive(Debug)]
pub struct Spur {
    pub ns: String,
    /// The veth end inside the spur's namespace.
    pub inner_if: String,
    /// The veth end inside the lab's client namespace (server namespace
    /// for [`Lab::server_spur`]).
    pub outer_if: String,
    pub inner_mac: [u8; 6],
    pub outer_mac: [u8; 6],
    up: bool,
}

/// The IPv4 addresses (without prefix length) of interface `ifname` in
/// namespace `ns`.
fn ipv4_addrs(ns: &str, ifname: &str) -> Result<Vec<std::net::Ipv4Addr>> {
    let out = ip(ns, &["-j", "-4", "addr", "show", "dev", ifname])?;
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing `ip -j addr show`")?;
    let mut addrs = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for info in link["addr_info"].as_array().into_iter().flatten() {
            if let Some(a) = info["local"].as_str() {
                addrs.push(a.parse().with_context(|| format!("address {a:?}"))?);
            }
        }
    }
    Ok(addrs)
}

impl Spur {
    /// `ip netns exec NS program`: a command that runs in the spur.
    pub fn cmd(&self, program: &str) -> Command {
        netns_command(&self.ns, program)
    }

    /// The IPv4 addresses (without prefix length) on the spur's veth end.
    pub fn ipv4_addrs(&self) -> Result<Vec<std::net::Ipv4Addr>> {
        ipv4_addrs(&self.ns, &self.inner_if)
    }

    /// Removes the namespace, after killing whatever still runs in it.
    /// Idempotent.
    pub fn down(&mut self) -> Result<()> {
        if self.up {
            remove_netns_present(&[&self.ns])?;
        }
        self.up = false;
        Ok(())
    }
}

impl Drop for Spur {
    fn drop(&mut self) {
        if let Err(e) = self.down() {
            eprintln!("spur {}: teardown failed: {e:#}", self.ns);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.down() {
            eprintln!("lab {}: teardown failed: {e:#}", self.name);
        }
    }
}

/// Deletes every network namespace whose name starts with `prefix`, and
/// the processes running in it.
pub fn remove_stale(prefix: &str) -> Result<()> {
    // An empty or one-letter prefix would sweep up namespaces that belong
    // to someone else.
    ensure!(
        prefix.len() >= 2,
        "prefix {prefix:?} is too short to be safe"
    );
    for ns in netns_list()? {
        if ns.starts_with(prefix) {
            remove_netns(&ns)?;
        }
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<()> {
    ensure!(!name.is_empty(), "lab name is empty");
    ensure!(
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "lab name {name:?} must be ASCII letters, digits, '-' or '_'"
    );
    ensure!(
        name.len() + 2 <= MAX_IFNAME,
        "lab name {name:?} is too long: interface {name}-s must fit 15 characters"
    );
    Ok(())
}

/// `ip netns exec NS program`.
pub fn netns_command(ns: &str, program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]);
    c
}

/// Names of the network namespaces `ip netns` knows.
pub fn netns_list() -> Result<Vec<String>> {
    let out = run(Command::new("ip").args(["netns", "list"]))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// `ip netns add NS`, with IPv6 off and loopback up: IPv6 would fill
/// captures with router solicitations and MLD reports that no lab test is
/// about.
fn add_netns(ns: &str) -> Result<()> {
    run(Command::new("ip").args(["netns", "add", ns]))?;
    for key in [
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
    ] {
        run(Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", key]))?;
    }
    ip(ns, &["link", "set", "lo", "up"])?;
    Ok(())
}

/// A veth pair made inside `a`'s namespace with its peer straight in
/// `b`'s, `queues` RX/TX queues on each end, the offloads that would hide
/// the wire from XDP off on both.
fn add_veth(a: (&str, &str), b: (&str, &str), queues: u32) -> Result<()> {
    let ((a_ns, a_if), (b_ns, b_if)) = (a, b);
    let veth = format!(
        "link add {a_if} numtxqueues {queues} numrxqueues {queues} type veth \
         peer name {b_if} numtxqueues {queues} numrxqueues {queues} netns {b_ns}"
    );
    ip(a_ns, &veth.split_whitespace().collect::<Vec<_>>())?;
    for (ns, ifname) in [a, b] {
        run(Command::new("ip")
            .args(["netns", "exec", ns, "ethtool", "-K", ifname])
            .args(OFFLOADS_OFF))?;
    }
    Ok(())
}

/// The teardown of a lab and of a spur: removes those of `names` that
/// exist ([`remove_netns`]). It tries every one, so that one that fails
/// does not keep the others; the first error, if any.
fn remove_netns_present(names: &[&str]) -> Result<()> {
    let existing = netns_list()?;
    let mut first_err = None;
    for ns in names {
        if existing.iter().any(|n| n == ns)
            && let Err(e) = remove_netns(ns)
        {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Kills what runs inside `ns` (only processes in a namespace the lab made,
/// so never anything of the host's), then deletes it. While any process
/// stays inside, the kernel would keep the namespace and its veth alive.
fn remove_netns(ns: &str) -> Result<()> {
    let out = run(Command::new("ip").args(["netns", "pids", ns]))?;
    let me = std::process::id();
    let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|&p| p > 1 && p as u32 != me)
        .collect();
    for &pid in &pids {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // Give them a moment to die, so that whatever they held (an XDP
    // program, a socket on port 67) is gone when this returns.
    let deadline = Instant::now() + Duration::from_secs(2);
    while pids
        .iter()
        .any(|p| Path::new(&format!("/proc/{p}")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    run(Command::new("ip").args(["netns", "del", ns]))?;
    Ok(())
}

fn link_mac(ns: &str, ifname: &str) -> Result<[u8; 6]> {
    let out = ip(ns, &["-j", "link", "show", "dev", ifname])?;
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing `ip -j link show`")?;
    let s = v[0]["address"]
        .as_str()
        .with_context(|| format!("no MAC address for {ifname} in {ns}"))?;
    parse_mac(s)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts
            .next()
            .with_context(|| format!("MAC {s:?} is too short"))?;
        *b = u8::from_str_radix(p, 16).with_context(|| format!("MAC {s:?}"))?;
    }
    ensure!(parts.next().is_none(), "MAC {s:?} is too long");
    Ok(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = *mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Runs a command to completion; a non-zero exit is an error carrying the
/// command line and its stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {}", show(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            show(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `ip -n NS ARGS...`: iproute2 acting inside a namespace.
fn ip(ns: &str, args: &[&str]) -> Result<Output> {
    run(Command::new("ip").arg("-n").arg(ns).args(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m = parse_mac("02:0a:ff:00:10:9c").unwrap();
        assert_eq!(m, [0x02, 0x0a, 0xff, 0x00, 0x10, 0x9c]);
        assert_eq!(format_mac(&m), "02:0a:ff:00:10:9c");
        assert!(parse_mac("02:0a:ff:00:10").is_err());
        assert!(parse_mac("02:0a:ff:00:10:9c:01").is_err());
        assert!(parse_mac("02:0a:ff:00:10:zz").is_err());
    }

    #[test]
    fn names_that_cannot_make_interfaces_are_refused() {
        assert!(validate_name("xdt3").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("has space").is_err());
        assert!(validate_name("abcdefghijklmn").is_err());
        assert!(remove_stale("").is_err());
        assert!(remove_stale("x").is_err());
    }
}
