//! The server's XDP program: DHCPv4 requests meant for this server go to the
//! AF_XDP socket of the queue they arrived on; every other frame goes on to
//! the kernel untouched.
//!
//! "Meant for this server" is an unfragmented IPv4/UDP datagram to port 67,
//! addressed to the limited broadcast (clients without an address) or to
//! one of `SERVER_ADDRS` (relays, renewing clients). Unicast DHCP for other
//! hosts on the segment stays with the kernel.
//!
//! With `[xdp] requests_per_mac`, a request whose source MAC is over its
//! rate is dropped here, before it costs a ring slot (`MAC_RATES`).
#![no_std]
#![no_main]

mod headers;
mod steer;

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{Array, HashMap, LruPerCpuHashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use dhcp_common::{COUNTER_SLOTS, MAC_RATE_ENTRIES, MAX_QUEUES, MAX_SERVER_ADDRS};
use headers::DHCP_SERVER_PORT;
use steer::same_name;

const _: () = assert!(same_name(dhcp_common::XSKS_MAP, "XSKS"));
const _: () = assert!(same_name(dhcp_common::COUNTERS_MAP, "COUNTERS"));
const _: () = assert!(same_name(dhcp_common::SERVER_ADDRS_MAP, "SERVER_ADDRS"));
const _: () = assert!(same_name(dhcp_common::SERVER_PROG, "xdhcp_steer"));
const _: () = assert!(same_name(dhcp_common::MAC_RATES_MAP, "MAC_RATES"));
const _: () = assert!(same_name(
    dhcp_common::MAC_RATE_CONFIG_MAP,
    "MAC_RATE_CONFIG"
));

#[map]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

#[map]
static SERVER_ADDRS: HashMap<u32, u8> = HashMap::with_max_entries(MAX_SERVER_ADDRS, 0);

#[map]
static MAC_RATES: LruPerCpuHashMap<[u8; 6], u64> =
    LruPerCpuHashMap::with_max_entries(MAC_RATE_ENTRIES, 0);

/// [0]: ns between two requests of one MAC (0: no limit); [1]: how far
/// ahead of now a MAC's time may run (the burst).
#[map]
static MAC_RATE_CONFIG: Array<u64> = Array::with_max_entries(2, 0);

#[xdp]
pub fn xdhcp_steer(ctx: XdpContext) -> u32 {
    steer::steer(
        &ctx,
        &XSKS,
        &COUNTERS,
        |d| {
            d.port == DHCP_SERVER_PORT
                && (d.addr == [0xff; 4]
                    || SERVER_ADDRS.get_ptr(u32::from_ne_bytes(d.addr)).is_some())
        },
        admit,
    )
}

/// The generic cell rate algorithm per source MAC: a request is let
/// through when the MAC's next due time is at most the burst ahead of now,
/// and moves it one interval on. Per CPU: the map's value is this CPU's,
/// so no other CPU races the update (a MAC whose frames several queues
/// receive gets the rate on each).
#[inline(always)]
fn admit(mac: &[u8; 6]) -> bool {
    let interval = MAC_RATE_CONFIG.get(0).copied().unwrap_or(0);
    if interval == 0 {
        return true;
    }
    let tolerance = MAC_RATE_CONFIG.get(1).copied().unwrap_or(0);
    // SAFETY: a helper without arguments or side effects.
    let now = unsafe { bpf_ktime_get_ns() };
    match MAC_RATES.get_ptr_mut(mac) {
        Some(tat) => {
            // SAFETY: this CPU's value of the entry, which only this
            // program invocation touches while it runs.
            let due = unsafe { *tat }.max(now);
            if due - now > tolerance {
                return false;
            }
            unsafe { *tat = due + interval };
            true
        }
        None => {
            let _ = MAC_RATES.insert(mac, now + interval, 0);
            true
        }
    }
}
