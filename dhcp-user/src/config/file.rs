//! The configuration file as written: the serde model of the TOML, with
//! the default of every key an operator may leave out. Unknown keys are
//! refused here, by serde, with their line. Nothing in this file judges a
//! value against another; `check.rs` does, which is why the entries whose
//! errors need a line (subnets, prefixes, pools, options, reservations)
//! keep their `Spanned` position in the text.
use super::modes::{AttachMode, BindMode, IoKind, PollMode};
use super::options::{NamedOptions, RawOption};
use serde::Deserialize;
use std::net::Ipv4Addr;
use toml::Spanned;

fn default_poll() -> PollMode {
    PollMode::Adaptive
}
fn default_batch() -> usize {
    64
}
fn default_idle_sleep_ms() -> u32 {
    100
}
fn default_frames() -> u32 {
    4096
}
fn default_ring() -> u32 {
    2048
}
fn default_lease_time() -> u32 {
    7200
}
fn default_offer_hold() -> u32 {
    30
}
fn default_decline_probation() -> u32 {
    86400
}
fn default_keep_released() -> u32 {
    3600
}
fn default_decline_rate() -> u16 {
    4
}
fn default_max_probation_percent() -> u8 {
    10
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The interface facing the subscribers (or the relays).
    pub interface: String,
    #[serde(default)]
    pub io: IoKind,
    #[serde(default)]
    pub xdp_mode: AttachMode,
    #[serde(default)]
    pub bind: BindMode,
    #[serde(default = "default_poll")]
    pub poll: PollMode,
    /// Number of queues (and workers); default: every RX queue.
    pub queues: Option<u32>,
    /// Cores for the workers, in queue order.
    #[serde(default)]
    pub cores: Vec<usize>,
    /// Frames per RX/TX batch.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Adaptive polling: longest sleep of an idle worker in poll(2). A frame
    /// or a synced journal group wakes it sooner; the bound is for what
    /// wakes nobody (timers of held offers are read per batch).
    #[serde(default = "default_idle_sleep_ms")]
    pub idle_sleep_ms: u32,
    /// UMEM frames per queue (half stock the fill ring, half carry replies).
    #[serde(default = "default_frames")]
    pub frames: u32,
    /// Size of each AF_XDP ring.
    #[serde(default = "default_ring")]
    pub ring_size: u32,
    /// The server identifier (option 54) and source address of replies:
    /// an address of this host, so the kernel answers ARP for it.
    pub server_id: Spanned<Ipv4Addr>,
    /// DSCP of reply packets (0–63).
    #[serde(default)]
    pub dscp: u8,
    /// Seconds an offered address stays reserved for the client.
    #[serde(default = "default_offer_hold")]
    pub offer_hold: u32,
    /// NAK requests for addresses we know nothing about (RFC 2131 §4.3.2)
    /// instead of staying silent.
    #[serde(default)]
    pub authoritative: bool,
    /// Seconds a declined address stays out of the pool (RFC 2131 §3.1.5:
    /// the client found it in use).
    #[serde(default = "default_decline_probation")]
    pub decline_probation: u32,
    /// DECLINEs one client may make in an hour; more are ignored (and
    /// counted), so one client cannot cycle through the pool putting
    /// address after address into probation. 0: no DECLINE is acted on.
    #[serde(default = "default_decline_rate")]
    pub decline_rate: u16,
    /// Seconds the record of a released or expired lease is kept, in
    /// memory and in the journal, so that a returning client gets its old
    /// address back if nobody took it (Kea's `hold-reclaimed-time`).
    /// Older ones are forgotten, which bounds the table by the clients of
    /// the last hour rather than all clients ever seen.
    #[serde(default = "default_keep_released")]
    pub keep_released: u32,
    /// The most client records the lease table holds (bound, offered,
    /// released, expired, declined), allocated at start. Default: derived
    /// from the pools (twice their addresses plus a margin, see the
    /// README). At the bound the oldest released, expired and offered
    /// records make room; a new client that finds none is refused.
    pub max_clients: Option<Spanned<u64>>,
    /// Relays whose option 82 and 118 are believed, as prefixes
    /// "a.b.c.d/len" matched against giaddr; empty (the default): every
    /// relay. Direct requests (giaddr 0) are judged by the subnet of
    /// their link (`trust_agent_info`).
    #[serde(default)]
    pub trusted_relays: Vec<Spanned<String>>,
    /// What becomes of a request whose option 82 or 118 is not believed:
    /// served as if it had none (`ignore`) or dropped (`drop`).
    #[serde(default)]
    pub untrusted_agent_info: UntrustedAgentInfo,
    /// Up to this many percent taken off T1 and T2, differently for each
    /// client, so that the renewals of a city that reconnected at once do
    /// not come back as one wave.
    #[serde(default)]
    pub renew_jitter: u8,
    /// Milliseconds a conflict check waits for an echo reply before the
    /// parked OFFER leaves (subnets with `conflict_check = "icmp"`);
    /// default [`DEFAULT_CONFLICT_WAIT_MS`].
    pub conflict_wait_ms: Option<Spanned<u32>>,
    /// Seconds after a lease (an ACK) or a clean probe during which an
    /// address is offered again without a new probe; default
    /// [`DEFAULT_CONFLICT_SKIP_RECENT`].
    pub conflict_skip_recent: Option<Spanned<u32>>,
    /// Where leases are kept across restarts; without it they live in
    /// memory only.
    pub journal: Option<JournalConfig>,
    /// `[xdp]`: what the XDP program does beyond steering.
    pub xdp: Option<Spanned<XdpConfig>>,
    /// `[ddns]`: DNS updates for every subnet (each may override or turn
    /// them off in `[subnet.ddns]`).
    pub ddns: Option<Spanned<super::ddns::DdnsConfig>>,
    /// Reply latency histograms in the workers (the stats file's
    /// "latency", the metrics); `false` records nothing, so their cost can
    /// be measured.
    #[serde(default = "default_latency")]
    pub latency: bool,
    /// `[metrics]`: the OpenMetrics endpoint; without it, none.
    pub metrics: Option<Spanned<MetricsConfig>>,
    /// `[control]`: the control API's socket (xdhcpctl); off without it.
    pub control: Option<Spanned<super::control::ControlConfig>>,
    /// `[cluster]`: several servers sharing the network through NATS
    /// JetStream; a server of its own without it.
    pub cluster: Option<Spanned<super::cluster::ClusterConfig>>,
    /// `[leasequery]`: RFC 4388 answers to the listed relays; off without it.
    pub leasequery: Option<Spanned<super::leasequery::LeaseQueryConfig>>,
    #[serde(default, rename = "subnet")]
    pub subnets: Vec<Spanned<SubnetConfig>>,
}

fn default_latency() -> bool {
    true
}

/// `[metrics]`: where the OpenMetrics (Prometheus) endpoint listens.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `address:port`; default [`DEFAULT_METRICS_LISTEN`].
    pub listen: Option<Spanned<String>>,
}

/// Local only: the endpoint has no authentication.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9267";

/// `[xdp]`: a request rate per source MAC enforced inside the XDP program,
/// so that a flood is dropped before it costs a ring slot. Off unless set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdpConfig {
    pub requests_per_mac: Option<u32>,
    pub burst_per_mac: Option<u32>,
}

/// What becomes of a request whose relay agent information (option 82)
/// or subnet selection (option 118) comes from someone not trusted to
/// set it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UntrustedAgentInfo {
    /// Served as if the options were absent (and not echoed).
    #[default]
    Ignore,
    /// Not served at all.
    Drop,
}

/// The lease journal: `durable` syncs each group of lease records before
/// their ACKs leave; `fast` ACKs at once and syncs at most `max_delay_ms`
/// later (a power cut loses up to that much).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    pub dir: std::path::PathBuf,
    #[serde(default)]
    pub mode: JournalMode,
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: u64,
    /// Journal size (MiB) that triggers a compaction into a snapshot.
    #[serde(default = "default_compact_mb")]
    pub compact_after_mb: u64,
    /// Durable mode: µs the writer lets records gather after each synced
    /// group (`JournalOptions::durable_gather`); 0 writes at once.
    pub gather_us: Option<Spanned<u64>>,
}

/// Most `gather_us` accepted: a durable ACK waits up to that much longer.
pub const MAX_GATHER_US: u64 = 100_000;

impl JournalConfig {
    /// `gather_us`, or its default.
    pub fn gather_us(&self) -> u64 {
        self.gather_us
            .as_ref()
            .map_or(crate::lease::journal::DEFAULT_DURABLE_GATHER_US, |v| {
                *v.get_ref()
            })
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JournalMode {
    #[default]
    Durable,
    Fast,
}

fn default_max_delay_ms() -> u64 {
    100
}
fn default_compact_mb() -> u64 {
    64
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    /// "a.b.c.d/len"
    pub prefix: Spanned<String>,
    /// Ranges "first-last" (inclusive) or single addresses.
    #[serde(default)]
    pub pools: Vec<Spanned<String>>,
    #[serde(default)]
    pub routers: Vec<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    #[serde(default = "default_lease_time")]
    pub lease_time: u32,
    /// Renewal time; default 50 % of the lease.
    pub t1: Option<u32>,
    /// Rebinding time; default 87.5 % of the lease.
    pub t2: Option<u32>,
    /// Requests tagged with this VLAN id (the outer tag) use this subnet.
    pub vlan: Option<u16>,
    /// Overrides the global server identifier for this subnet.
    pub server_id: Option<Ipv4Addr>,
    /// Shortest and longest lease a client may ask for (option 51);
    /// default: `lease_time`, i.e. requests are not honoured.
    pub min_lease_time: Option<u32>,
    pub max_lease_time: Option<u32>,
    /// Identify clients by chaddr only, for CPEs that change option 61.
    #[serde(default)]
    pub ignore_client_id: bool,
    /// Subnets with the same name share one link (several prefixes on
    /// one VLAN or behind one relay): a client is one client across them,
    /// and a new client gets an address from the next when one is full.
    pub shared_network: Option<String>,
    /// Direct requests (giaddr 0) arriving on this subnet's link may carry
    /// option 82 (and 118) inserted by an L2 switch doing DHCP snooping:
    /// believe them. Default: only relays are believed.
    #[serde(default)]
    pub trust_agent_info: bool,
    /// Whether the subnet serves direct clients (giaddr 0) on its link:
    /// default yes for a subnet with `vlan` or one that holds an address
    /// of the interface, no for the others (reached through relays only).
    pub direct: Option<bool>,
    /// The most of this subnet's pool that may sit in probation at once,
    /// in percent (0–100): declines beyond it release the address instead
    /// of quarantining it, so DECLINEs cannot take a pool out of service.
    #[serde(default = "default_max_probation_percent")]
    pub max_probation_percent: u8,
    /// RFC 4039: a DISCOVER carrying option 80 is answered by an ACK at
    /// once (two messages instead of four).
    #[serde(default)]
    pub rapid_commit: bool,
    /// Named options (mtu, ntp, tftp_server, bootfile, domain_search,
    /// classless_routes).
    #[serde(default)]
    pub options: NamedOptions,
    /// Options by code: `[[subnet.option]] code = 43, hex = "..."`.
    #[serde(default, rename = "option")]
    pub raw_options: Vec<Spanned<RawOption>>,
    #[serde(default, rename = "reservation")]
    pub reservations: Vec<Spanned<ReservationConfig>>,
    /// `[subnet.limits]`: what one subscriber line may hold and how fast
    /// it may ask.
    pub limits: Option<Spanned<LimitsConfig>>,
    /// Probe a fresh address before offering it: "none" (default) or
    /// "icmp" (an echo request; an answer means someone uses it).
    #[serde(default)]
    pub conflict_check: ConflictCheck,
    /// `[subnet.ddns]`: this subnet's DNS updates, over `[ddns]`.
    pub ddns: Option<Spanned<super::ddns::DdnsConfig>>,
}

/// Limits per subscriber line in one subnet; every key is off unless set.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Leases (offered + bound) one option 82 circuit-id may hold.
    pub leases_per_circuit_id: Option<u32>,
    /// Leases one option 82 remote-id may hold.
    pub leases_per_remote_id: Option<u32>,
    /// Leases one VLAN (the tags of a direct request) may hold.
    pub leases_per_vlan: Option<u32>,
    /// Leases one client hardware address (chaddr) may hold.
    pub leases_per_mac: Option<u32>,
    /// Requests per second one source MAC may send, and how many at once.
    pub requests_per_mac: Option<u32>,
    pub burst_per_mac: Option<u32>,
    /// Requests per second one circuit-id may send, and how many at once.
    pub requests_per_circuit_id: Option<u32>,
    pub burst_per_circuit_id: Option<u32>,
    /// Direct requests (giaddr 0) whose Ethernet source is not chaddr are
    /// dropped.
    #[serde(default)]
    pub check_src_mac: bool,
}

/// What a subnet does before it offers an address nobody leased lately.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictCheck {
    /// Offer at once.
    #[default]
    None,
    /// Send an ICMP echo request to the address and offer it only when
    /// no reply came within `conflict_wait_ms`.
    Icmp,
}

/// Default of `conflict_wait_ms`: half of ISC dhcpd's one second, five
/// times Kea's ping-check `reply-timeout` (100 ms), well below a client's
/// first DISCOVER retransmission (about 4 s).
pub const DEFAULT_CONFLICT_WAIT_MS: u32 = 500;
/// Default of `conflict_skip_recent`: an hour, as `keep_released`.
pub const DEFAULT_CONFLICT_SKIP_RECENT: u32 = 3600;

impl Config {
    /// `conflict_wait_ms`, or its default.
    pub fn conflict_wait_ms(&self) -> u32 {
        self.conflict_wait_ms
            .as_ref()
            .map_or(DEFAULT_CONFLICT_WAIT_MS, |v| *v.get_ref())
    }

    /// `conflict_skip_recent`, or its default.
    pub fn conflict_skip_recent(&self) -> u32 {
        self.conflict_skip_recent
            .as_ref()
            .map_or(DEFAULT_CONFLICT_SKIP_RECENT, |v| *v.get_ref())
    }
}

/// A fixed address for one client, found by exactly one identity.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationConfig {
    pub address: Ipv4Addr,
    /// Hardware address "aa:bb:cc:dd:ee:ff".
    pub mac: Option<String>,
    /// Option 61 as hex.
    pub client_id: Option<String>,
    /// Option 82 circuit-id (sub-option 1) as text, or `circuit_id_hex`.
    pub circuit_id: Option<String>,
    pub circuit_id_hex: Option<String>,
    /// Option 82 remote-id (sub-option 2) as text, or `remote_id_hex`.
    pub remote_id: Option<String>,
    pub remote_id_hex: Option<String>,
    /// Hand it out with an infinite lease (0xffffffff).
    #[serde(default)]
    pub infinite: bool,
}
