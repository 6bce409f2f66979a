//! The server's XDP program: DHCPv4 requests meant for this server go to the
//! AF_XDP socket of the queue they arrived on; every other frame goes on to
//! the kernel untouched.
//!
//! "Meant for this server" is an unfragmented IPv4/UDP datagram to port 67,
//! addressed to the limited broadcast (clients without an address) or to
//! one of `SERVER_ADDRS` (relays, renewing clients). Unicast DHCP for other
//! hosts on the segment stays with the kernel.
#![no_std]
#![no_main]

mod headers;
mod steer;

use aya_ebpf::{
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use dhcp_common::{COUNTER_SLOTS, MAX_QUEUES, MAX_SERVER_ADDRS};
use headers::DHCP_SERVER_PORT;
use steer::same_name;

const _: () = assert!(same_name(dhcp_common::XSKS_MAP, "XSKS"));
const _: () = assert!(same_name(dhcp_common::COUNTERS_MAP, "COUNTERS"));
const _: () = assert!(same_name(dhcp_common::SERVER_ADDRS_MAP, "SERVER_ADDRS"));
const _: () = assert!(same_name(dhcp_common::SERVER_PROG, "xdhcp_steer"));

#[map]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

#[map]
static SERVER_ADDRS: HashMap<u32, u8> = HashMap::with_max_entries(MAX_SERVER_ADDRS, 0);

#[xdp]
pub fn xdhcp_steer(ctx: XdpContext) -> u32 {
    steer::steer(&ctx, &XSKS, &COUNTERS, |d| {
        d.port == DHCP_SERVER_PORT
            && (d.addr == [0xff; 4] || SERVER_ADDRS.get_ptr(u32::from_ne_bytes(d.addr)).is_some())
    })
}
