//! The generator's (xdhcpgen) XDP program: DHCP replies for the simulated
//! clients and relays go to the AF_XDP socket of the queue they arrived
//! on; every other frame goes on to the kernel untouched.
//!
//! "A reply for us" is an unfragmented IPv4/UDP datagram to port 68 (a
//! server answers a client there, broadcast or unicast to an address the
//! kernel of this host never heard of), or to port 67 at one of
//! `GEN_RELAY_ADDRS` (a server answers the relay agents the generator
//! plays). Simulated clients may sit behind one or two VLAN tags, and the
//! server answers on the request's tags. Whether it really is a BOOTREPLY
//! of ours is for user space to check and count; with no socket at the
//! queue the kernel sees the reply and drops it, and the generator counts
//! a timeout.
#![no_std]
#![no_main]

mod headers;
mod steer;

use aya_ebpf::{
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use dhcp_common::{COUNTER_SLOTS, MAX_QUEUES, MAX_RELAY_ADDRS};
use headers::DHCP_SERVER_PORT;
use steer::same_name;

const DHCP_CLIENT_PORT: u16 = 68;

const _: () = assert!(same_name(dhcp_common::GEN_XSKS_MAP, "GEN_XSKS"));
const _: () = assert!(same_name(dhcp_common::GEN_COUNTERS_MAP, "GEN_COUNTERS"));
const _: () = assert!(same_name(
    dhcp_common::GEN_RELAY_ADDRS_MAP,
    "GEN_RELAY_ADDRS"
));
const _: () = assert!(same_name(dhcp_common::GEN_PROG, "xdhcpgen_steer"));

#[map]
static GEN_XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

#[map]
static GEN_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

#[map]
static GEN_RELAY_ADDRS: HashMap<u32, u8> = HashMap::with_max_entries(MAX_RELAY_ADDRS, 0);

#[xdp]
pub fn xdhcpgen_steer(ctx: XdpContext) -> u32 {
    steer::steer(
        &ctx,
        &GEN_XSKS,
        &GEN_COUNTERS,
        |d| match d.port {
            DHCP_CLIENT_PORT => true,
            DHCP_SERVER_PORT => GEN_RELAY_ADDRS
                .get_ptr(u32::from_ne_bytes(d.addr))
                .is_some(),
            _ => false,
        },
        |_| true,
    )
}
