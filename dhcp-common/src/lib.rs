//! What the XDP program (`dhcp-ebpf`) and user space (`dhcp-user`) share:
//! map names, counter slots and the layout of map values. Kept `no_std`
//! and free of dependencies so the BPF target can build it.
#![no_std]

/// `XSKMAP`: queue index → AF_XDP socket of that queue.
pub const XSKS_MAP: &str = "XSKS";
/// `PERCPU_ARRAY` of `u64`, indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// `HASH` of IPv4 address (network byte order, as `u32` read from the
/// packet) → 1. Unicast UDP/67 is only stolen when addressed to one of
/// these; DHCP meant for other hosts on the segment stays with the kernel.
pub const SERVER_ADDRS_MAP: &str = "SERVER_ADDRS";
/// `LRU_PERCPU_HASH` of source MAC (`[u8; 6]`) → the "theoretical arrival
/// time" (ns, `bpf_ktime_get_ns`) of its next request: the per-source-MAC
/// request rate of `[xdp] requests_per_mac`, kept per CPU.
pub const MAC_RATES_MAP: &str = "MAC_RATES";
/// `ARRAY` of two `u64`: the interval between requests of one MAC in ns
/// (0: no limit) and how far ahead of now its time may run (the burst).
pub const MAC_RATE_CONFIG_MAP: &str = "MAC_RATE_CONFIG";
/// MACs whose rate the XDP program tracks; the least recently seen make
/// room for new ones.
pub const MAC_RATE_ENTRIES: u32 = 65536;
/// Name of the server's XDP program in the object file.
pub const SERVER_PROG: &str = "xdhcp_steer";

/// Most addresses the server can claim as its own (server identifiers,
/// relay-facing addresses).
pub const MAX_SERVER_ADDRS: u32 = 256;
/// Largest queue index the XSKMAP can hold.
pub const MAX_QUEUES: u32 = 256;

/// Per-CPU counters kept by the XDP program. The daemon sums the CPUs.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Every frame the program looked at.
    Seen = 0,
    /// UDP/67 for us, handed to the queue's AF_XDP socket.
    Redirected = 1,
    /// Not DHCP for us: left to the kernel.
    Passed = 2,
    /// Claimed to be IPv4/UDP but too short or with a bad header length:
    /// passed to the kernel, which drops it.
    Malformed = 3,
    /// UDP/67 for us on a queue with no socket bound: passed.
    NoSocket = 4,
    /// UDP/67 for us from a source MAC over `[xdp] requests_per_mac`:
    /// dropped before it costs a ring slot.
    RateLimited = 5,
}

impl Counter {
    pub const ALL: [Counter; 6] = [
        Counter::Seen,
        Counter::Redirected,
        Counter::Passed,
        Counter::Malformed,
        Counter::NoSocket,
        Counter::RateLimited,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Counter::Seen => "seen",
            Counter::Redirected => "redirected",
            Counter::Passed => "passed",
            Counter::Malformed => "malformed",
            Counter::NoSocket => "no_socket",
            Counter::RateLimited => "rate_limited",
        }
    }
}

/// Number of slots in [`COUNTERS_MAP`].
pub const COUNTER_SLOTS: u32 = Counter::ALL.len() as u32;

/// The generator's (xdhcpgen) XDP program: its object's bin name in
/// `dhcp-ebpf`, which aya-build leaves in OUT_DIR under this name.
pub const GEN_OBJECT: &str = "xdhcpgen-steer";
/// Name of the generator's XDP program in its object file.
pub const GEN_PROG: &str = "xdhcpgen_steer";
/// The generator's `XSKMAP`: queue index → its AF_XDP socket.
pub const GEN_XSKS_MAP: &str = "GEN_XSKS";
/// The generator's `PERCPU_ARRAY` of `u64`, indexed by [`Counter`] with the
/// same meaning as the server's: seen, redirected (a reply for us), passed,
/// malformed, no_socket.
pub const GEN_COUNTERS_MAP: &str = "GEN_COUNTERS";
/// `HASH` of IPv4 address (network byte order, as `u32` read from the
/// packet) → 1: the relay addresses the generator plays. UDP/67 is only
/// stolen when addressed to one of these; UDP/68 always is.
pub const GEN_RELAY_ADDRS_MAP: &str = "GEN_RELAY_ADDRS";
/// Most relay addresses the generator can play at once.
pub const MAX_RELAY_ADDRS: u32 = 4096;
