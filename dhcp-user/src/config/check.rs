//! From the file as written to the configuration the daemon runs with.
//! The file is checked as a whole (pools inside their prefix and apart,
//! timers in order, one reservation per address and per client, subnets
//! apart on a link), and every `[[subnet]]` becomes a [`Subnet`] of
//! numbers and encoded options, once, at load: the packet path only
//! compares and copies. Every error names the line of the offending entry.
use super::file::{
    Config, ConflictCheck, LimitsConfig, ReservationConfig, SubnetConfig, XdpConfig,
};
use super::options;
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Range;

/// How a reservation recognises its client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    Mac([u8; 6]),
    ClientId(Vec<u8>),
    CircuitId(Vec<u8>),
    RemoteId(Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct Reservation {
    pub identity: Identity,
    pub address: Ipv4Addr,
    pub infinite: bool,
}

impl ReservationConfig {
    fn check(&self) -> Result<Identity, String> {
        let mut ids = Vec::new();
        if let Some(m) = &self.mac {
            let b = options::parse_hex(m)?;
            let mac: [u8; 6] = b
                .try_into()
                .map_err(|_| format!("mac {m:?} is not 6 bytes"))?;
            ids.push(Identity::Mac(mac));
        }
        if let Some(c) = &self.client_id {
            ids.push(Identity::ClientId(options::parse_hex(c)?));
        }
        if let Some(c) = &self.circuit_id {
            ids.push(Identity::CircuitId(c.as_bytes().to_vec()));
        }
        if let Some(c) = &self.circuit_id_hex {
            ids.push(Identity::CircuitId(options::parse_hex(c)?));
        }
        if let Some(r) = &self.remote_id {
            ids.push(Identity::RemoteId(r.as_bytes().to_vec()));
        }
        if let Some(r) = &self.remote_id_hex {
            ids.push(Identity::RemoteId(options::parse_hex(r)?));
        }
        match ids.len() {
            1 => Ok(ids.remove(0)),
            0 => Err("a reservation needs one of mac, client_id, circuit_id, remote_id".into()),
            _ => Err(
                "a reservation takes exactly one of mac, client_id, circuit_id, remote_id".into(),
            ),
        }
    }
}

/// Lease limits are kept in this order: circuit-id, remote-id, VLAN, MAC.
pub const LIMIT_KINDS: usize = 4;
/// The highest lease limit a line may be given (the counters have 20 bits).
const MAX_LEASE_LIMIT: u32 = (1 << 20) - 1;
const MAX_RATE: u32 = 1_000_000;

/// A request rate: `per_sec` on average, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_sec: u32,
    pub burst: u32,
}

impl Rate {
    /// Microseconds between two requests at this rate.
    pub fn interval_us(&self) -> u64 {
        1_000_000 / u64::from(self.per_sec.max(1))
    }
}

/// `[subnet.limits]`, checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Leases one line may hold, by kind (circuit-id, remote-id, VLAN,
    /// MAC); 0: no limit.
    pub leases: [u32; LIMIT_KINDS],
    pub mac_rate: Option<Rate>,
    pub circuit_rate: Option<Rate>,
    pub check_src_mac: bool,
}

/// A rate and its burst, checked: the burst defaults to twice the rate
/// and at least 4.
fn rate(
    name: &str,
    per: Option<u32>,
    bname: &str,
    burst: Option<u32>,
) -> Result<Option<Rate>, String> {
    match (per, burst) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(format!("{bname} is set without {name}")),
        (Some(p), _) if !(1..=MAX_RATE).contains(&p) => {
            Err(format!("{name} = {p} must be between 1 and {MAX_RATE}"))
        }
        (Some(_), Some(b)) if !(1..=MAX_RATE).contains(&b) => {
            Err(format!("{bname} = {b} must be between 1 and {MAX_RATE}"))
        }
        // A DORA is two requests: the default burst lets one through
        // whole, and a few retransmissions besides.
        (Some(p), b) => Ok(Some(Rate {
            per_sec: p,
            burst: b.unwrap_or(p.saturating_mul(2).max(4)),
        })),
    }
}

impl XdpConfig {
    fn check(&self) -> Result<Option<Rate>, String> {
        rate(
            "requests_per_mac",
            self.requests_per_mac,
            "burst_per_mac",
            self.burst_per_mac,
        )
    }
}

impl LimitsConfig {
    fn check(&self) -> Result<Limits, String> {
        let lease = |name: &str, v: Option<u32>| match v {
            None => Ok(0),
            Some(n) if (1..=MAX_LEASE_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(format!(
                "{name} = {n} must be between 1 and {MAX_LEASE_LIMIT}"
            )),
        };
        Ok(Limits {
            leases: [
                lease("leases_per_circuit_id", self.leases_per_circuit_id)?,
                lease("leases_per_remote_id", self.leases_per_remote_id)?,
                lease("leases_per_vlan", self.leases_per_vlan)?,
                lease("leases_per_mac", self.leases_per_mac)?,
            ],
            mac_rate: rate(
                "requests_per_mac",
                self.requests_per_mac,
                "burst_per_mac",
                self.burst_per_mac,
            )?,
            circuit_rate: rate(
                "requests_per_circuit_id",
                self.requests_per_circuit_id,
                "burst_per_circuit_id",
                self.burst_per_circuit_id,
            )?,
            check_src_mac: self.check_src_mac,
        })
    }
}
/// Bounds of `max_clients`: one record per shard of the lease table at
/// least; at most 2^28 records (about 18 GiB).
const MIN_CLIENTS: u64 = 64;
const MAX_CLIENTS: u64 = 1 << 28;

/// A configuration error, with the line it was found on.
#[derive(Debug)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// One subnet, checked and turned into numbers.
#[derive(Clone, Debug)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix_len: u8,
    /// Inclusive address ranges, sorted, not overlapping.
    pub pools: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    pub lease_time: u32,
    pub t1: u32,
    pub t2: u32,
    pub vlan: Option<u16>,
    pub server_id: Ipv4Addr,
    pub min_lease_time: u32,
    pub max_lease_time: u32,
    pub ignore_client_id: bool,
    pub shared_network: Option<String>,
    /// Believe option 82/118 in direct requests on this subnet's link
    /// (an L2 switch with DHCP snooping inserts them).
    pub trust_agent_info: bool,
    /// Serves direct clients: `Some` as configured, `None` to be decided
    /// by the engine from the interface's addresses (and `vlan`).
    pub direct: Option<bool>,
    /// Percent of the pool that may be in probation (declined) at once.
    pub max_probation_percent: u8,
    /// Answer a DISCOVER with option 80 by an ACK (RFC 4039).
    pub rapid_commit: bool,
    /// Every configured option but the mask, encoded, in the order the
    /// config gives them (routers, DNS, domain, broadcast, named, by code).
    pub options: Vec<(u8, Vec<u8>)>,
    pub reservations: Vec<Reservation>,
    pub limits: Limits,
    /// Probe a fresh address before offering it.
    pub conflict_check: ConflictCheck,
    /// `[ddns]` with the subnet's `[subnet.ddns]` over it; `None`: off.
    pub ddns: Option<std::sync::Arc<super::ddns::SubnetDdns>>,
}

impl Subnet {
    pub fn mask(&self) -> u32 {
        prefix_mask(self.prefix_len)
    }
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.network)
    }
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }
}

pub fn prefix_mask(len: u8) -> u32 {
    if len == 0 { 0 } else { u32::MAX << (32 - len) }
}

/// The checked configuration the daemon runs with.
#[derive(Debug)]
pub struct Checked {
    pub file: Config,
    pub subnets: Vec<Subnet>,
    /// `[xdp] requests_per_mac`: the rate the XDP program holds each
    /// source MAC to.
    pub xdp_mac_rate: Option<Rate>,
    /// `trusted_relays` as (network, prefix length); empty: every relay.
    pub trusted_relays: Vec<(Ipv4Addr, u8)>,
    /// `[ddns] max_updates_per_second`.
    pub ddns_updates_per_second: u32,
    /// `[metrics] listen`: where the metrics endpoint listens, if any.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `[control]`: the control API's socket; `None`: no control API.
    pub control: Option<super::Control>,
    /// `[cluster]`; `None`: a server of its own.
    pub cluster: Option<super::Cluster>,
    /// `[leasequery]` with `enable`: who is answered; `None`: nobody.
    pub leasequery: Option<super::LeaseQuery>,
}

impl Checked {
    /// The link of subnet `i`: the first subnet of its shared network, or
    /// itself. Client identity is scoped by link.
    pub fn link_of(&self, i: usize) -> u16 {
        let s = &self.subnets[i];
        self.subnets
            .iter()
            .position(|o| o.shared_network.is_some() && o.shared_network == s.shared_network)
            .unwrap_or(i) as u16
    }

    /// Addresses the subnets hand out: their pools and their reservations
    /// (a reserved address inside a pool counted twice, as a bound on the
    /// records that can hold one).
    pub fn addresses(&self) -> u64 {
        self.subnets
            .iter()
            .map(|s| {
                let pools: u64 = s
                    .pools
                    .iter()
                    .map(|(a, b)| u64::from(u32::from(*b) - u32::from(*a)) + 1)
                    .sum();
                pools + s.reservations.len() as u64
            })
            .sum()
    }

    /// The subnet holding `addr`, as (index, link).
    pub fn subnet_holding(&self, addr: Ipv4Addr) -> Option<(u16, u16)> {
        let i = self.subnets.iter().position(|s| s.contains(addr))?;
        Some((i as u16, self.link_of(i)))
    }
}

impl Config {
    /// Parses and checks a configuration text.
    pub fn parse(text: &str) -> Result<Checked, ConfigError> {
        let file: Config = toml::from_str(text).map_err(|e| ConfigError {
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_string(),
        })?;
        let subnets = file.check(text)?;
        let xdp_mac_rate = match &file.xdp {
            Some(x) => x.get_ref().check().map_err(|m| ConfigError {
                line: Some(line_of(text, x.span().start)),
                message: format!("[xdp]: {m}"),
            })?,
            None => None,
        };
        let trusted_relays = file.check_relays(text)?;
        let ddns_updates_per_second =
            super::ddns::updates_per_second(file.ddns.as_ref()).map_err(|(sp, m)| ConfigError {
                line: Some(line_of(text, sp.start)),
                message: format!("[ddns]: {m}"),
            })?;
        let metrics_listen = metrics_listen(&file, text)?;
        if file.journal.is_none()
            && let Some(i) = subnets.iter().position(|s| s.ddns.is_some())
        {
            return Err(ConfigError {
                line: Some(line_of(text, file.subnets[i].span().start)),
                message: "DDNS needs a [journal]: the updates still owed to DNS are worked out from it after a restart".into(),
            });
        }
        let control = match &file.control {
            Some(c) => Some(super::control::check(c).map_err(|(sp, m)| ConfigError {
                line: Some(line_of(text, sp.start)),
                message: format!("[control]: {m}"),
            })?),
            None => None,
        };
        let leasequery = file.check_leasequery(text, &trusted_relays)?;
        let cluster = match &file.cluster {
            Some(c) => {
                let at = |sp: std::ops::Range<usize>, m: String| ConfigError {
                    line: Some(line_of(text, sp.start)),
                    message: format!("[cluster]: {m}"),
                };
                let longest = subnets
                    .iter()
                    .map(|s| s.max_lease_time)
                    .max()
                    .unwrap_or(0)
                    .max(file.decline_probation);
                let checked = super::cluster::check(c, longest).map_err(|(sp, m)| at(sp, m))?;
                if file.journal.is_none() {
                    return Err(at(
                        c.span(),
                        "a cluster needs a [journal]: it is what each server replicates, and what it restarts from before it catches up with the stream".into(),
                    ));
                }
                Some(checked)
            }
            None => None,
        };
        Ok(Checked {
            file,
            subnets,
            xdp_mac_rate,
            trusted_relays,
            ddns_updates_per_second,
            metrics_listen,
            control,
            leasequery,
            cluster,
        })
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Checked> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        Config::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    fn check(&self, text: &str) -> Result<Vec<Subnet>, ConfigError> {
        let at = |span: Range<usize>, message: String| ConfigError {
            line: Some(line_of(text, span.start)),
            message,
        };
        if self.interface.is_empty() {
            return Err(ConfigError {
                line: None,
                message: "`interface` is empty".into(),
            });
        }
        if self.batch == 0 || self.batch > 1024 {
            return Err(ConfigError {
                line: None,
                message: format!("`batch` = {} must be between 1 and 1024", self.batch),
            });
        }
        if self.idle_sleep_ms == 0 || self.idle_sleep_ms > 60_000 {
            return Err(ConfigError {
                line: None,
                message: format!(
                    "`idle_sleep_ms` = {} must be between 1 and 60000",
                    self.idle_sleep_ms
                ),
            });
        }
        if !self.frames.is_power_of_two() || self.frames < 2 * self.batch as u32 {
            return Err(ConfigError {
                line: None,
                message: format!(
                    "`frames` = {} must be a power of two and at least twice `batch`",
                    self.frames
                ),
            });
        }
        if !self.ring_size.is_power_of_two() {
            return Err(ConfigError {
                line: key_line(text, "ring_size"),
                message: format!("`ring_size` = {} must be a power of two", self.ring_size),
            });
        }
        // Half the frames carry replies; every one of them may wait on the
        // TX ring at once (a durable group's ACKs released together), so
        // the ring must hold them all or a reply is dropped after its
        // lease was bound.
        if self.ring_size < self.frames / 2 {
            return Err(ConfigError {
                line: key_line(text, "ring_size").or_else(|| key_line(text, "frames")),
                message: format!(
                    "`ring_size` = {} is smaller than half of `frames` = {}: the TX ring must \
                     take every reply frame ({}) at once",
                    self.ring_size,
                    self.frames,
                    self.frames / 2
                ),
            });
        }
        if self.renew_jitter > 25 {
            return Err(ConfigError {
                line: None,
                message: format!(
                    "`renew_jitter` = {} must be 0–25 (percent)",
                    self.renew_jitter
                ),
            });
        }
        if self.dscp > 63 {
            return Err(ConfigError {
                line: None,
                message: format!("`dscp` = {} must be 0–63", self.dscp),
            });
        }
        if let Some(m) = &self.max_clients
            && !(MIN_CLIENTS..=MAX_CLIENTS).contains(m.get_ref())
        {
            return Err(at(
                m.span(),
                format!(
                    "`max_clients` = {} must be between {MIN_CLIENTS} and {MAX_CLIENTS}",
                    m.get_ref()
                ),
            ));
        }
        if let Some(w) = &self.conflict_wait_ms
            && !(1..=5000).contains(w.get_ref())
        {
            return Err(at(
                w.span(),
                format!(
                    "`conflict_wait_ms` = {} must be 1–5000: the OFFER waits that long, and a \
                     client retransmits its DISCOVER after about 4 s",
                    w.get_ref()
                ),
            ));
        }
        if let Some(w) = &self.conflict_wait_ms
            && u64::from(*w.get_ref()) >= u64::from(self.offer_hold) * 1000
        {
            return Err(at(
                w.span(),
                format!(
                    "`conflict_wait_ms` = {} must be shorter than `offer_hold` ({} s), which \
                     holds the address for the client meanwhile",
                    w.get_ref(),
                    self.offer_hold
                ),
            ));
        }
        if let Some(g) = self.journal.as_ref().and_then(|j| j.gather_us.as_ref())
            && *g.get_ref() > super::file::MAX_GATHER_US
        {
            return Err(at(
                g.span(),
                format!(
                    "`gather_us` = {} must be 0–{}: a durable ACK waits up to that much longer",
                    g.get_ref(),
                    super::file::MAX_GATHER_US
                ),
            ));
        }
        if self.subnets.is_empty() {
            return Err(ConfigError {
                line: None,
                message: "no [[subnet]] configured: nothing to hand out".into(),
            });
        }
        let mut out: Vec<Subnet> = Vec::with_capacity(self.subnets.len());
        for s in &self.subnets {
            let span = s.span();
            let s = s.get_ref();
            let (network, prefix_len) = parse_prefix(s.prefix.get_ref()).map_err(|m| {
                at(
                    s.prefix.span(),
                    format!("prefix {:?}: {m}", s.prefix.get_ref()),
                )
            })?;
            let mut sub = Subnet {
                network,
                prefix_len,
                pools: Vec::new(),
                routers: s.routers.clone(),
                dns: s.dns.clone(),
                domain_name: s.domain_name.clone(),
                lease_time: s.lease_time,
                t1: 0,
                t2: 0,
                vlan: s.vlan,
                server_id: s.server_id.unwrap_or(*self.server_id.get_ref()),
                min_lease_time: s.min_lease_time.unwrap_or(s.lease_time),
                max_lease_time: s.max_lease_time.unwrap_or(s.lease_time),
                ignore_client_id: s.ignore_client_id,
                shared_network: s.shared_network.clone(),
                trust_agent_info: s.trust_agent_info,
                direct: s.direct,
                max_probation_percent: s.max_probation_percent,
                rapid_commit: s.rapid_commit,
                options: Vec::new(),
                reservations: Vec::new(),
                limits: match &s.limits {
                    Some(l) => l
                        .get_ref()
                        .check()
                        .map_err(|m| at(l.span(), format!("[subnet.limits]: {m}")))?,
                    None => Limits::default(),
                },
                conflict_check: s.conflict_check,
                ddns: super::ddns::resolve(
                    self.ddns.as_ref(),
                    s.ddns.as_ref(),
                    s.lease_time,
                    span.clone(),
                )
                .map_err(|(sp, m)| at(sp, m))?
                .map(std::sync::Arc::new),
            };
            if !(sub.min_lease_time <= s.lease_time && s.lease_time <= sub.max_lease_time) {
                return Err(at(
                    span.clone(),
                    format!(
                        "min_lease_time ({}) <= lease_time ({}) <= max_lease_time ({}) does not hold",
                        sub.min_lease_time, s.lease_time, sub.max_lease_time
                    ),
                ));
            }
            if s.max_probation_percent > 100 {
                return Err(at(
                    span.clone(),
                    format!(
                        "max_probation_percent = {} must be 0–100",
                        s.max_probation_percent
                    ),
                ));
            }
            sub.options = subnet_options(s, &sub).map_err(|m| at(span.clone(), m))?;
            for o in &s.raw_options {
                let (code, v) = o.get_ref().encode().map_err(|m| at(o.span(), m))?;
                if sub.options.iter().any(|(c, _)| *c == code) {
                    return Err(at(o.span(), format!("option {code} is configured twice")));
                }
                sub.options.push((code, v));
            }
            for p in &s.pools {
                let (first, last) = parse_range(p.get_ref())
                    .map_err(|m| at(p.span(), format!("pool {:?}: {m}", p.get_ref())))?;
                if !sub.contains(first) || !sub.contains(last) {
                    return Err(at(
                        p.span(),
                        format!(
                            "pool {:?} is not inside subnet {}",
                            p.get_ref(),
                            s.prefix.get_ref()
                        ),
                    ));
                }
                if let Some((a, b)) = sub.pools.iter().find(|(a, b)| {
                    u32::from(first) <= u32::from(*b) && u32::from(*a) <= u32::from(last)
                }) {
                    return Err(at(
                        p.span(),
                        format!(
                            "pool {:?} overlaps pool {a}-{b} of the same subnet",
                            p.get_ref()
                        ),
                    ));
                }
                sub.pools.push((first, last));
            }
            sub.pools.sort_by_key(|(a, _)| u32::from(*a));
            for r in &s.reservations {
                let rc = r.get_ref();
                let identity = rc.check().map_err(|m| at(r.span(), m))?;
                if !sub.contains(rc.address) {
                    return Err(at(
                        r.span(),
                        format!(
                            "reservation {} is not inside subnet {}",
                            rc.address,
                            s.prefix.get_ref()
                        ),
                    ));
                }
                if rc.address == sub.network || rc.address == sub.broadcast() {
                    return Err(at(
                        r.span(),
                        format!(
                            "reservation {} is the network or broadcast address",
                            rc.address
                        ),
                    ));
                }
                if let Some(o) = sub.reservations.iter().find(|o| o.address == rc.address) {
                    return Err(at(
                        r.span(),
                        format!(
                            "address {} is already reserved for {:?}",
                            rc.address, o.identity
                        ),
                    ));
                }
                if sub.reservations.iter().any(|o| o.identity == identity) {
                    return Err(at(
                        r.span(),
                        format!("{identity:?} has two reservations in this subnet"),
                    ));
                }
                sub.reservations.push(Reservation {
                    identity,
                    address: rc.address,
                    infinite: rc.infinite,
                });
            }
            if s.lease_time == 0 {
                return Err(at(span, "lease_time must be at least 1 second".into()));
            }
            let lease = u64::from(s.lease_time);
            sub.t1 = s.t1.unwrap_or((lease / 2) as u32);
            sub.t2 = s.t2.unwrap_or((lease * 7 / 8) as u32);
            if s.lease_time != u32::MAX && !(sub.t1 < sub.t2 && sub.t2 < s.lease_time) {
                return Err(at(
                    span,
                    format!(
                        "t1 ({}) < t2 ({}) < lease_time ({}) does not hold",
                        sub.t1, sub.t2, s.lease_time
                    ),
                ));
            }
            if let Some(v) = s.vlan
                && !(1..=4094).contains(&v)
            {
                return Err(at(span, format!("vlan {v} is not a VLAN id (1–4094)")));
            }
            if let Some(o) = out.iter().find(|o| {
                sub.shared_network.is_some()
                    && o.shared_network == sub.shared_network
                    && o.vlan != sub.vlan
            }) {
                return Err(at(
                    span,
                    format!(
                        "shared network {:?} spans two VLANs ({:?} and {:?}): one link, one VLAN",
                        sub.shared_network.as_deref().unwrap_or_default(),
                        o.vlan,
                        sub.vlan
                    ),
                ));
            }
            if let Some(o) = out.iter().find(|o| {
                sub.shared_network.is_some()
                    && o.shared_network == sub.shared_network
                    && (o.direct != sub.direct || o.trust_agent_info != sub.trust_agent_info)
            }) {
                return Err(at(
                    span,
                    format!(
                        "shared network {:?}: `direct` and `trust_agent_info` are settings of \
                         the link, its subnets must agree (subnet {}/{} says {:?} and {})",
                        sub.shared_network.as_deref().unwrap_or_default(),
                        o.network,
                        o.prefix_len,
                        o.direct,
                        o.trust_agent_info
                    ),
                ));
            }
            if let Some(o) = out.iter().find(|o| {
                let m = prefix_mask(o.prefix_len.min(sub.prefix_len));
                u32::from(o.network) & m == u32::from(sub.network) & m && o.vlan == sub.vlan
            }) {
                return Err(at(
                    s.prefix.span(),
                    format!(
                        "subnet {} overlaps subnet {}/{} on the same link",
                        s.prefix.get_ref(),
                        o.network,
                        o.prefix_len
                    ),
                ));
            }
            out.push(sub);
        }
        Ok(out)
    }
}

impl Config {
    /// `trusted_relays`, each a prefix.
    fn check_relays(&self, text: &str) -> Result<Vec<(Ipv4Addr, u8)>, ConfigError> {
        self.trusted_relays
            .iter()
            .map(|r| {
                parse_prefix_any(r.get_ref()).map_err(|m| ConfigError {
                    line: Some(line_of(text, r.span().start)),
                    message: format!("trusted_relays {:?}: {m}", r.get_ref()),
                })
            })
            .collect()
    }
}

impl Config {
    /// `[leasequery]`: its requesters (default `trusted_relays`), each a
    /// prefix; it answers from the address index, which the journal
    /// keeps, so it needs a `[journal]`.
    fn check_leasequery(
        &self,
        text: &str,
        trusted_relays: &[(Ipv4Addr, u8)],
    ) -> Result<Option<super::LeaseQuery>, ConfigError> {
        let Some(lq) = &self.leasequery else {
            return Ok(None);
        };
        let at = |sp: Range<usize>, message: String| ConfigError {
            line: Some(line_of(text, sp.start)),
            message: format!("[leasequery]: {message}"),
        };
        if !lq.get_ref().enable {
            return Ok(None);
        }
        if self.journal.is_none() {
            return Err(at(
                lq.span(),
                "leasequery needs a [journal]: it answers from the address index the journal's records keep (hardware address, client-id, option 82, last transaction)".into(),
            ));
        }
        let requesters = match &lq.get_ref().requesters {
            None => trusted_relays.to_vec(),
            Some(list) => list
                .iter()
                .map(|r| {
                    parse_prefix_any(r.get_ref())
                        .map_err(|m| at(r.span(), format!("requesters {:?}: {m}", r.get_ref())))
                })
                .collect::<Result<_, _>>()?,
        };
        let bulk_listen = match &lq.get_ref().bulk_listen {
            None => None,
            Some(l) => Some(l.get_ref().parse().map_err(|e| {
                at(
                    l.span(),
                    format!("bulk_listen {:?}: {e} (expected address:port)", l.get_ref()),
                )
            })?),
        };
        if requesters.is_empty() {
            tracing::warn!(
                "[leasequery] has no requesters and there are no trusted_relays: every leasequery is refused"
            );
        }
        Ok(Some(super::LeaseQuery {
            requesters,
            bulk_listen,
        }))
    }
}

/// `[metrics] listen`, checked: an `address:port` (IPv4 or `[IPv6]`).
fn metrics_listen(file: &Config, text: &str) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let Some(m) = &file.metrics else {
        return Ok(None);
    };
    let Some(l) = &m.get_ref().listen else {
        return Ok(Some(
            super::file::DEFAULT_METRICS_LISTEN
                .parse()
                .expect("a valid default"),
        ));
    };
    let v = l.get_ref();
    match v.parse::<std::net::SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(Some(a)),
        Ok(_) => Err(ConfigError {
            line: Some(line_of(text, l.span().start)),
            message: format!("[metrics] listen = {v:?}: port 0 is not a port to scrape"),
        }),
        Err(_) => Err(ConfigError {
            line: Some(line_of(text, l.span().start)),
            message: format!(
                "[metrics] listen = {v:?} is not an address:port (like \"127.0.0.1:9267\" or \"[::1]:9267\")"
            ),
        }),
    }
}

/// The line of a top-level `key = ...`, for errors about keys serde does
/// not keep a position of.
fn key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// A prefix "a.b.c.d/len" of any length (a single relay is a /32); a bare
/// address is a /32.
fn parse_prefix_any(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, len) = s.split_once('/').unwrap_or((s, "32"));
    let addr: Ipv4Addr = addr.trim().parse().map_err(|e| format!("{e}"))?;
    let len: u8 = len
        .trim()
        .parse()
        .ok()
        .filter(|l| *l <= 32)
        .ok_or_else(|| "prefix length is not 0–32".to_string())?;
    if u32::from(addr) & !prefix_mask(len) != 0 {
        return Err(format!(
            "host bits set; the network is {}/{len}",
            Ipv4Addr::from(u32::from(addr) & prefix_mask(len))
        ));
    }
    Ok((addr, len))
}

/// Routers, DNS, domain name, broadcast address, then the named options.
fn subnet_options(s: &SubnetConfig, sub: &Subnet) -> Result<Vec<(u8, Vec<u8>)>, String> {
    let ips = |v: &[Ipv4Addr]| v.iter().flat_map(|a| a.octets()).collect::<Vec<u8>>();
    let mut out = Vec::new();
    if !s.routers.is_empty() {
        out.push((3, ips(&s.routers)));
    }
    if !s.dns.is_empty() {
        out.push((6, ips(&s.dns)));
    }
    if let Some(d) = &s.domain_name {
        out.push((15, d.as_bytes().to_vec()));
    }
    out.push((28, sub.broadcast().octets().to_vec()));
    out.extend(s.options.encode()?);
    for (c, v) in &out {
        if v.len() > 255 {
            return Err(format!("option {c} is {} bytes long; 255 at most", v.len()));
        }
    }
    Ok(out)
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn parse_prefix(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, len) = s
        .split_once('/')
        .ok_or_else(|| "expected a.b.c.d/len".to_string())?;
    let addr: Ipv4Addr = addr.trim().parse().map_err(|e| format!("{e}"))?;
    let len: u8 = len
        .trim()
        .parse()
        .map_err(|_| "prefix length is not a number".to_string())?;
    if len > 30 {
        return Err(format!("/{len} leaves no room for hosts"));
    }
    if u32::from(addr) & !prefix_mask(len) != 0 {
        return Err(format!(
            "host bits set; the network is {}/{len}",
            Ipv4Addr::from(u32::from(addr) & prefix_mask(len))
        ));
    }
    Ok((addr, len))
}

fn parse_range(s: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let a: Ipv4Addr = a.parse().map_err(|e| format!("{e}"))?;
    let b: Ipv4Addr = b.parse().map_err(|e| format!("{e}"))?;
    if u32::from(a) > u32::from(b) {
        return Err("the first address is above the last".into());
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IoKind, PollMode};

    const GOOD: &str = r#"
interface = "eth1"
server_id = "198.18.0.1"

[[subnet]]
prefix = "198.18.0.0/15"
pools = ["198.18.0.10-198.19.255.254"]
routers = ["198.18.0.1"]
dns = ["198.18.0.1"]
lease_time = 7200
"#;

    #[test]
    fn good_config_parses_with_defaults() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.file.io, IoKind::Xdp);
        assert_eq!(c.file.poll, PollMode::Adaptive);
        let s = &c.subnets[0];
        assert_eq!(s.prefix_len, 15);
        assert_eq!((s.t1, s.t2), (3600, 6300));
        assert_eq!(s.server_id, Ipv4Addr::new(198, 18, 0, 1));
        assert!(s.contains(Ipv4Addr::new(198, 19, 1, 1)));
        assert!(!s.contains(Ipv4Addr::new(198, 20, 0, 1)));
    }

    fn err(text: &str) -> ConfigError {
        Config::parse(text).unwrap_err()
    }

    #[test]
    fn control_section_defaults_its_socket_and_checks_with_the_line() {
        assert!(Config::parse(GOOD).unwrap().control.is_none());
        let with = |body: &str| format!("{GOOD}\n[control]\n{body}");
        let c = Config::parse(&with("")).unwrap().control.unwrap();
        assert_eq!(c.socket, std::path::Path::new("/run/xdhcpd/control.sock"));
        assert_eq!(c.group, None);
        let c = Config::parse(&with("socket = \"/tmp/x.sock\"\ngroup = \"adm\""))
            .unwrap()
            .control
            .unwrap();
        assert_eq!(c.socket, std::path::Path::new("/tmp/x.sock"));
        assert_eq!(c.group.as_deref(), Some("adm"));
        let line = GOOD.lines().count() + 3;
        for (bad, why) in [
            ("socket = \"run/x.sock\"", "absolute"),
            ("socket = \"/run/\"", "directory"),
            (&format!("socket = \"/{}\"", "a".repeat(120)), "at most 107"),
            ("group = \"no such\"", "not a group name"),
        ] {
            let e = err(&with(bad));
            assert_eq!(e.line, Some(line), "{bad}: {e}");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
        let e = err(&with("sock = \"/x\""));
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn journal_gather_has_a_default_and_a_bound() {
        let with = |extra: &str| format!("{GOOD}\n[journal]\ndir = \"/tmp/j\"\n{extra}");
        let j = |extra: &str| {
            let c = Config::parse(&with(extra)).unwrap();
            c.file.journal.as_ref().unwrap().gather_us()
        };
        assert_eq!(j(""), crate::lease::journal::DEFAULT_DURABLE_GATHER_US);
        assert_eq!(j("gather_us = 0"), 0);
        assert_eq!(j("gather_us = 2000"), 2000);
        let e = Config::parse(&with("gather_us = 100001")).unwrap_err();
        assert!(
            e.message.contains("`gather_us` = 100001 must be 0–100000"),
            "{e}"
        );
        assert_eq!(e.line, Some(GOOD.lines().count() + 4), "{e}");
    }

    #[test]
    fn cluster_section_is_checked_with_the_line() {
        assert!(Config::parse(GOOD).unwrap().cluster.is_none());
        let j = "[journal]\ndir = \"/tmp/j\"\n";
        let base = "name = \"b\"\npeers = [\"a\", \"b\"]\nnats = [\"nats://10.99.0.11:4222\"]\n";
        let with = |body: &str| format!("{GOOD}\n{j}[cluster]\n{body}");
        let c = Config::parse(&with(base)).unwrap().cluster.unwrap();
        assert_eq!((c.index, c.shares(), c.replicas), (1, 2, 3));
        assert_eq!(c.mode, super::super::ClusterMode::LoadBalancing);
        assert_eq!(c.durability, super::super::ClusterDurability::Durable);
        assert_eq!(c.failover_after, std::time::Duration::from_secs(20));
        assert_eq!((c.stream.as_str(), c.bucket.as_str()), ("XDHCPD", "xdhcpd"));
        // The longest hold of an address (the decline hold's default of a
        // day, over the 7200 s leases) and an hour.
        assert_eq!(c.retention, std::time::Duration::from_secs(86_400 + 3600));
        let c = Config::parse(&with(&format!(
            "{base}mode = \"hot-standby\"\ndurability = \"replicated\"\nfailover_after = \"1500ms\"\nreplicas = 1\n"
        )))
        .unwrap()
        .cluster
        .unwrap();
        assert_eq!((c.shares(), c.replicas), (1, 1));
        assert_eq!(c.durability, super::super::ClusterDurability::Replicated);
        assert_eq!(c.failover_after, std::time::Duration::from_millis(1500));
        let first = GOOD.lines().count() + 5;
        for (bad, line, why) in [
            ("name = \"c\"", first, "not one of the peers"),
            ("peers = [\"a\"]", first + 1, "2 to 3 servers"),
            ("peers = [\"a\", \"a\"]", first + 1, "named twice"),
            ("peers = [\"a\", \"b.c\"]", first + 1, "not a name"),
            ("nats = []", first + 2, "no server"),
            ("nats = [\"nats://x\"]", first + 2, "not nats://host:port"),
        ] {
            let key = bad.split(' ').next().unwrap();
            let body: String = base
                .lines()
                .map(|l| if l.starts_with(key) { bad } else { l })
                .map(|l| format!("{l}\n"))
                .collect();
            let e = err(&with(&body));
            assert_eq!(e.line, Some(line), "{bad}: {e}");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
        for (extra, why) in [
            ("mode = \"active\"", "load-balancing"),
            ("durability = \"fast\"", "replicated"),
            ("failover_after = \"200ms\"", "outside 1s..60s"),
            ("failover_after = \"3\"", "not a duration"),
            ("replicas = 7", "outside 1..=5"),
            ("stream = \"a.b\"", "not a name"),
            ("retention = \"24h\"", "not longer than the longest lease"),
            ("retention = \"2 days\"", "not a duration"),
        ] {
            let e = err(&with(&format!("{base}{extra}\n")));
            assert_eq!(e.line, Some(first + 3), "{extra}: {e}");
            assert!(e.message.contains(why), "{extra}: {e}");
        }
        let e = err(&format!("{GOOD}\n[cluster]\n{base}"));
        assert!(e.message.contains("needs a [journal]"), "{e}");
        let e = err(&with(base).replace("lease_time = 7200", "lease_time = 4294967295"));
        assert_eq!(e.line, Some(first - 1), "{e}");
        assert!(e.message.contains("infinite leases"), "{e}");
    }

    #[test]
    fn leasequery_needs_a_journal_and_defaults_to_the_trusted_relays() {
        let with = |top: &str, body: &str| {
            format!("{top}\n{GOOD}\n[journal]\ndir = \"/tmp/j\"\n[leasequery]\n{body}")
        };
        assert!(Config::parse(GOOD).unwrap().leasequery.is_none());
        // Neither requesters nor trusted_relays: on, but nobody answered.
        let lq = Config::parse(&with("", "")).unwrap().leasequery.unwrap();
        assert!(lq.requesters.is_empty());
        assert!(!lq.allows(Ipv4Addr::new(198, 18, 0, 1)));
        let lq = Config::parse(&with("trusted_relays = [\"10.1.0.0/16\"]", ""))
            .unwrap()
            .leasequery
            .unwrap();
        assert_eq!(lq.requesters, [(Ipv4Addr::new(10, 1, 0, 0), 16)]);
        assert!(lq.allows(Ipv4Addr::new(10, 1, 2, 3)));
        assert!(!lq.allows(Ipv4Addr::new(10, 2, 0, 1)));
        assert!(!lq.allows(Ipv4Addr::UNSPECIFIED));
        // Its own list replaces the default.
        let lq = Config::parse(&with(
            "trusted_relays = [\"10.1.0.0/16\"]",
            "requesters = [\"192.0.2.7\", \"10.9.0.0/24\"]",
        ))
        .unwrap()
        .leasequery
        .unwrap();
        assert!(lq.allows(Ipv4Addr::new(192, 0, 2, 7)));
        assert!(!lq.allows(Ipv4Addr::new(192, 0, 2, 8)));
        assert!(lq.allows(Ipv4Addr::new(10, 9, 0, 200)));
        assert!(!lq.allows(Ipv4Addr::new(10, 1, 2, 3)));
        assert!(
            Config::parse(&with("", "enable = false"))
                .unwrap()
                .leasequery
                .is_none()
        );
        let lq = Config::parse(&with("", "bulk_listen = \"198.18.0.1:67\""))
            .unwrap()
            .leasequery
            .unwrap();
        assert_eq!(lq.bulk_listen, Some("198.18.0.1:67".parse().unwrap()));
        let text = with("", "bulk_listen = \"198.18.0.1\"");
        let e = err(&text);
        assert_eq!(e.line, Some(text.lines().count()), "{e}");
        assert!(e.message.contains("address:port"), "{e}");
        // A bad prefix names its line.
        let text = with("", "requesters = [\"10.9.0.1/24\"]");
        let e = err(&text);
        assert_eq!(e.line, Some(text.lines().count()), "{e}");
        assert!(e.message.contains("host bits"), "{e}");
        // Without a journal: refused, on the section's line.
        let text = format!("{GOOD}\n[leasequery]\n");
        let e = err(&text);
        assert_eq!(e.line, Some(GOOD.lines().count() + 2), "{e}");
        assert!(e.message.contains("needs a [journal]"), "{e}");
    }

    #[test]
    fn max_clients_is_bounded_and_names_its_line() {
        let c = Config::parse(GOOD).unwrap();
        assert!(c.file.max_clients.is_none());
        // The /15 pool: 131,061 addresses.
        assert_eq!(c.addresses(), 131_061);
        let with = |v: &str| GOOD.replace("server_id", &format!("max_clients = {v}\nserver_id"));
        let c = Config::parse(&with("20000")).unwrap();
        assert_eq!(c.file.max_clients.map(|m| *m.get_ref()), Some(20_000));
        for bad in ["0", "63", "268435457", "-1"] {
            let e = err(&with(bad));
            assert_eq!(e.line, Some(3), "{bad}: {e}");
        }
        assert!(err(&with("10")).message.contains("max_clients"));
    }

    #[test]
    fn latency_and_metrics_parse_and_a_bad_listen_names_its_line() {
        let c = Config::parse(GOOD).unwrap();
        assert!(c.file.latency, "on by default");
        assert_eq!(c.metrics_listen, None);
        let off = GOOD.replace("server_id", "latency = false\nserver_id");
        assert!(!Config::parse(&off).unwrap().file.latency);
        let e = err(&GOOD.replace("server_id", "latency = \"no\"\nserver_id"));
        assert_eq!(e.line, Some(3), "{e}");
        let with = |m: &str| format!("{GOOD}\n[metrics]\n{m}\n");
        let c = Config::parse(&with("")).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9267".parse().unwrap()));
        let c = Config::parse(&with("listen = \"[::1]:9100\"")).unwrap();
        assert_eq!(c.metrics_listen, Some("[::1]:9100".parse().unwrap()));
        let line = with("").lines().count();
        for bad in [
            "9267",
            "localhost:9267",
            "127.0.0.1",
            "127.0.0.1:0",
            "1.2.3.4:70000",
        ] {
            let e = err(&with(&format!("listen = \"{bad}\"")));
            assert_eq!(e.line, Some(line), "{bad}: {e}");
            assert!(e.message.contains("[metrics] listen"), "{e}");
        }
        let e = err(&with("port = 9267"));
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn idle_sleep_is_bounded() {
        assert_eq!(Config::parse(GOOD).unwrap().file.idle_sleep_ms, 100);
        let with = |v: &str| GOOD.replace("server_id", &format!("idle_sleep_ms = {v}\nserver_id"));
        assert_eq!(
            Config::parse(&with("5000")).unwrap().file.idle_sleep_ms,
            5000
        );
        for bad in ["0", "60001"] {
            let e = err(&with(bad));
            assert!(e.message.contains("idle_sleep_ms"), "{e}");
        }
    }

    #[test]
    fn conflict_check_keys_default_parse_and_are_checked_with_their_line() {
        let c = Config::parse(GOOD).unwrap();
        assert_eq!(c.subnets[0].conflict_check, ConflictCheck::None);
        assert_eq!(
            (c.file.conflict_wait_ms(), c.file.conflict_skip_recent()),
            (500, 3600)
        );
        let on = GOOD.replace(
            "lease_time = 7200",
            "lease_time = 7200\nconflict_check = \"icmp\"",
        );
        let on = on.replace(
            "server_id",
            "conflict_wait_ms = 250\nconflict_skip_recent = 60\nserver_id",
        );
        let c = Config::parse(&on).unwrap();
        assert_eq!(c.subnets[0].conflict_check, ConflictCheck::Icmp);
        assert_eq!(
            (c.file.conflict_wait_ms(), c.file.conflict_skip_recent()),
            (250, 60)
        );
        // Line 3: the key, before server_id.
        for bad in ["0", "5001"] {
            let e =
                err(&GOOD.replace("server_id", &format!("conflict_wait_ms = {bad}\nserver_id")));
            assert!(e.message.contains("conflict_wait_ms"), "{e}");
            assert_eq!(e.line, Some(3), "{e}");
        }
        // Not shorter than offer_hold.
        let e = err(&GOOD.replace(
            "server_id",
            "offer_hold = 2\nconflict_wait_ms = 2000\nserver_id",
        ));
        assert!(e.message.contains("offer_hold"), "{e}");
        assert_eq!(e.line, Some(4), "{e}");
        let e = err(&GOOD.replace(
            "lease_time = 7200",
            "lease_time = 7200\nconflict_check = \"arp\"",
        ));
        assert_eq!(e.line, Some(11), "{e}");
    }

    #[test]
    fn pool_outside_subnet_names_its_line() {
        let e = err(&GOOD.replace("198.19.255.254", "198.20.0.5"));
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.message.contains("not inside subnet"), "{e}");
    }

    #[test]
    fn unknown_key_is_rejected_with_line() {
        let e = err(&GOOD.replace("lease_time", "lease_tme"));
        assert_eq!(e.line, Some(10), "{e}");
        assert!(e.message.contains("lease_tme"), "{e}");
    }

    #[test]
    fn overlapping_pools_and_bad_timers_are_rejected() {
        let e = err(&GOOD.replace(
            r#"pools = ["198.18.0.10-198.19.255.254"]"#,
            r#"pools = ["198.18.0.10-198.18.0.20", "198.18.0.15-198.18.0.30"]"#,
        ));
        assert!(e.message.contains("overlaps"), "{e}");
        let e = err(&GOOD.replace(
            "lease_time = 7200",
            "lease_time = 7200\nt1 = 7000\nt2 = 6000",
        ));
        assert!(e.message.contains("t1"), "{e}");
        let e = err(&GOOD.replace("198.18.0.0/15", "198.18.0.1/15"));
        assert!(e.message.contains("host bits"), "{e}");
        assert_eq!(e.line, Some(6));
    }

    #[test]
    fn limits_parse_with_default_bursts_and_bad_ones_name_their_line() {
        let with = |l: &str| format!("{GOOD}\n[subnet.limits]\n{l}\n");
        let c = Config::parse(&with(
            "leases_per_circuit_id = 4\nleases_per_mac = 2\nrequests_per_mac = 5\n\
             requests_per_circuit_id = 50\nburst_per_circuit_id = 20\ncheck_src_mac = true",
        ))
        .unwrap();
        let l = c.subnets[0].limits;
        assert_eq!(l.leases, [4, 0, 0, 2]);
        assert_eq!(
            l.mac_rate,
            Some(Rate {
                per_sec: 5,
                burst: 10
            })
        );
        assert_eq!(
            l.circuit_rate,
            Some(Rate {
                per_sec: 50,
                burst: 20
            })
        );
        assert!(l.check_src_mac);
        assert_eq!(
            Config::parse(GOOD).unwrap().subnets[0].limits,
            Limits::default()
        );
        for (bad, what) in [
            ("leases_per_vlan = 0", "leases_per_vlan"),
            ("leases_per_remote_id = 2000000", "leases_per_remote_id"),
            ("burst_per_mac = 3", "without requests_per_mac"),
            ("requests_per_circuit_id = 0", "requests_per_circuit_id"),
        ] {
            let e = err(&with(bad));
            assert!(e.message.contains(what), "{bad}: {e}");
            assert_eq!(e.line, Some(12), "{bad}: {e}");
        }
        let x = Config::parse(
            &GOOD.replace("[[subnet]]", "[xdp]\nrequests_per_mac = 20\n\n[[subnet]]"),
        )
        .unwrap();
        assert_eq!(
            x.xdp_mac_rate,
            Some(Rate {
                per_sec: 20,
                burst: 40
            })
        );
        let e = err(&GOOD.replace("[[subnet]]", "[xdp]\nburst_per_mac = 20\n\n[[subnet]]"));
        assert!(e.message.contains("[xdp]"), "{e}");
        assert_eq!(e.line, Some(5), "{e}");
        let e = err(&with("leases_per_port = 1"));
        assert!(e.message.contains("leases_per_port"), "{e}");
    }
}
