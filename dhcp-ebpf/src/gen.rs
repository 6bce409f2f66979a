//! The generator's (xdhcpgen) XDP program: DHCP replies for the simulated
//! clients and relays go to the AF_XDP socket of the queue they arrived
//! on; every other frame goes on to the kernel untouched.
//!
//! "A reply for us" is an unfragmented IPv4/UDP datagram to port 68 (a
//! server answers a client there, broadcast or unicast to an address the
//! kernel of this host never heard of), or to port 67 at one of
//! `GEN_RELAY_ADDRS` (a server answers the relay agents the generator
//! plays). Whether it really is a BOOTREPLY of ours is for user space to
//! check and count.
#![no_std]
#![no_main]

mod headers;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use dhcp_common::{COUNTER_SLOTS, Counter, MAX_QUEUES, MAX_RELAY_ADDRS};
use headers::{
    DHCP_SERVER_PORT, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_QINQ_9100, EthHdr, IPPROTO_UDP,
    IPV4_FRAGMENT_MASK, IPV4_MIN_HEADER_LEN, Ipv4Hdr, UdpHdr, VlanTag, has_bytes, ptr_at,
};

const DHCP_CLIENT_PORT: u16 = 68;

// User space finds the maps by these names; tie them to the shared
// constants at compile time.
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

enum Verdict {
    Steer,
    Pass,
    Malformed,
}

#[xdp]
pub fn xdhcpgen_steer(ctx: XdpContext) -> u32 {
    count(Counter::Seen);
    match classify(&ctx) {
        Verdict::Steer => {
            // XDP_PASS in the flags is what the helper returns when no
            // socket sits at this queue: the kernel then sees the reply
            // and drops it, and the generator counts a timeout.
            match GEN_XSKS.redirect(ctx.rx_queue_index(), u64::from(xdp_action::XDP_PASS)) {
                Ok(action) => {
                    count(Counter::Redirected);
                    action
                }
                Err(_) => {
                    count(Counter::NoSocket);
                    xdp_action::XDP_PASS
                }
            }
        }
        Verdict::Pass => {
            count(Counter::Passed);
            xdp_action::XDP_PASS
        }
        Verdict::Malformed => {
            count(Counter::Malformed);
            xdp_action::XDP_PASS
        }
    }
}

#[inline(always)]
fn classify(ctx: &XdpContext) -> Verdict {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Verdict::Pass;
    };
    // SAFETY: ptr_at checked that the whole header lies inside the frame.
    let mut ether_type = u16::from_be_bytes(unsafe { (*eth).ether_type });
    let mut l3 = size_of::<EthHdr>();

    // Simulated clients may sit behind one or two VLAN tags, and the
    // server answers on the request's tags.
    if matches!(ether_type, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_9100) {
        let Some(tag) = ptr_at::<VlanTag>(ctx, l3) else {
            return Verdict::Pass;
        };
        // SAFETY: bounds checked by ptr_at.
        ether_type = u16::from_be_bytes(unsafe { (*tag).ether_type });
        l3 += size_of::<VlanTag>();
        if ether_type == ETH_P_8021Q {
            let Some(tag) = ptr_at::<VlanTag>(ctx, l3) else {
                return Verdict::Pass;
            };
            // SAFETY: bounds checked by ptr_at.
            ether_type = u16::from_be_bytes(unsafe { (*tag).ether_type });
            l3 += size_of::<VlanTag>();
        }
    }
    if ether_type != ETH_P_IPV4 {
        return Verdict::Pass;
    }

    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l3) else {
        return Verdict::Malformed;
    };
    // SAFETY: bounds checked by ptr_at; byte-array fields, no alignment.
    let (version_ihl, protocol, frag_off, dst) = unsafe {
        (
            (*ip).version_ihl,
            (*ip).protocol,
            u16::from_be_bytes((*ip).frag_off),
            (*ip).dst,
        )
    };
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    if version_ihl >> 4 != 4 || header_len < IPV4_MIN_HEADER_LEN || !has_bytes(ctx, l3, header_len)
    {
        return Verdict::Malformed;
    }
    if protocol != IPPROTO_UDP || frag_off & IPV4_FRAGMENT_MASK != 0 {
        return Verdict::Pass;
    }

    let Some(udp) = ptr_at::<UdpHdr>(ctx, l3 + header_len) else {
        return Verdict::Malformed;
    };
    // SAFETY: bounds checked by ptr_at.
    let dst_port = u16::from_be_bytes(unsafe { (*udp).dst_port });
    match dst_port {
        DHCP_CLIENT_PORT => Verdict::Steer,
        DHCP_SERVER_PORT if GEN_RELAY_ADDRS.get_ptr(u32::from_ne_bytes(dst)).is_some() => {
            Verdict::Steer
        }
        _ => Verdict::Pass,
    }
}

/// Per-CPU slot, so a plain increment cannot race another CPU.
#[inline(always)]
fn count(counter: Counter) {
    if let Some(slot) = GEN_COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: this CPU's slot, touched only by this invocation.
        unsafe { *slot += 1 };
    }
}

const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // No panic path is expected to survive optimisation; if one does, the
    // endless loop makes the verifier reject the program at load time.
    loop {
        core::hint::spin_loop();
    }
}

// GPL-compatible so the kernel lets the program use every helper.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
