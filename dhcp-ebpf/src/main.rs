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

use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray, XskMap},
    programs::XdpContext,
};
use dhcp_common::{COUNTER_SLOTS, Counter, MAX_QUEUES, MAX_SERVER_ADDRS};
use headers::{
    DHCP_SERVER_PORT, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_QINQ_9100, EthHdr, IPPROTO_UDP,
    IPV4_FRAGMENT_MASK, IPV4_MIN_HEADER_LEN, Ipv4Hdr, UdpHdr, VlanTag, has_bytes, ptr_at,
};

// User space finds the maps by these names; the statics' identifiers are
// the names, so tie them to the shared constants at compile time.
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

/// What the frame is, as far as steering cares.
enum Verdict {
    /// DHCP for us: to the queue's AF_XDP socket.
    Steer,
    /// Anything else the kernel should see.
    Pass,
    /// Claims IPv4 or UDP but cannot hold the header it claims.
    Malformed,
}

#[xdp]
pub fn xdhcp_steer(ctx: XdpContext) -> u32 {
    count(Counter::Seen);
    match classify(&ctx) {
        Verdict::Steer => {
            // The fallback in the flags' low bits is what the helper returns
            // when XSKS has no socket at this queue: the frame still reaches
            // the kernel, which answers nothing on port 67 but keeps
            // working for everything else.
            match XSKS.redirect(ctx.rx_queue_index(), u64::from(xdp_action::XDP_PASS)) {
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
    // SAFETY: bounds checked by ptr_at; the fields are byte arrays, so no
    // alignment is assumed.
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
    if dst_port != DHCP_SERVER_PORT {
        return Verdict::Pass;
    }

    if dst == [0xff; 4] || SERVER_ADDRS.get_ptr(u32::from_ne_bytes(dst)).is_some() {
        Verdict::Steer
    } else {
        Verdict::Pass
    }
}

/// Per-CPU slot, so a plain increment cannot race another CPU.
#[inline(always)]
fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: the map lookup returned this CPU's slot, which only this
        // program invocation touches while it runs.
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
    // Nothing above can panic; if a panic path ever survives optimisation,
    // this endless loop makes the verifier reject the program at load time
    // instead of it misbehaving at run time.
    loop {
        core::hint::spin_loop();
    }
}

// GPL-compatible so the kernel lets the program use every helper; the
// licence of the rest of the project is unaffected.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
