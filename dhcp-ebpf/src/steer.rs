//! What the server's and the generator's programs share: finding the UDP
//! destination of a frame behind Ethernet and up to two VLAN tags (802.1Q,
//! 802.1ad or the old 0x9100 outer tag), redirecting to the socket of the
//! queue the frame came in on, and counting each outcome. Each program
//! only says which destinations are its own.
use crate::headers::{
    ETH_P_8021AD, ETH_P_8021Q, ETH_P_IPV4, ETH_P_QINQ_9100, EthHdr, IPPROTO_UDP,
    IPV4_FRAGMENT_MASK, IPV4_MIN_HEADER_LEN, Ipv4Hdr, UdpHdr, VlanTag, has_bytes, ptr_at,
};
use aya_ebpf::{
    bindings::xdp_action,
    maps::{PerCpuArray, XskMap},
    programs::XdpContext,
};
use dhcp_common::Counter;

/// Where an unfragmented IPv4/UDP datagram is going.
pub struct UdpDst {
    /// The Ethernet source.
    pub src_mac: [u8; 6],
    /// IPv4 destination as it sits in the frame (network order).
    pub addr: [u8; 4],
    pub port: u16,
}

/// Why a frame is not a datagram to look at.
enum Skip {
    /// Not IPv4/UDP, or a fragment: the kernel's business.
    Pass,
    /// Claims IPv4 or UDP but cannot hold the header it claims.
    Malformed,
}

/// Counts the frame, then sends it to the queue's AF_XDP socket in `xsks`
/// if `ours` says its destination is one of ours and `admit` lets its
/// source through (else it is dropped); every other frame goes on to the
/// kernel.
#[inline(always)]
pub fn steer(
    ctx: &XdpContext,
    xsks: &XskMap,
    counters: &PerCpuArray<u64>,
    ours: impl FnOnce(&UdpDst) -> bool,
    admit: impl FnOnce(&[u8; 6]) -> bool,
) -> u32 {
    count(counters, Counter::Seen);
    let outcome = match udp_destination(ctx) {
        Ok(d) if ours(&d) => {
            if !admit(&d.src_mac) {
                count(counters, Counter::RateLimited);
                return xdp_action::XDP_DROP;
            }
            // The fallback in the flags' low bits is what the helper
            // returns when no socket sits at this queue: the frame still
            // reaches the kernel, which keeps working for everything else.
            match xsks.redirect(ctx.rx_queue_index(), u64::from(xdp_action::XDP_PASS)) {
                Ok(action) => {
                    count(counters, Counter::Redirected);
                    return action;
                }
                Err(_) => Counter::NoSocket,
            }
        }
        Ok(_) | Err(Skip::Pass) => Counter::Passed,
        Err(Skip::Malformed) => Counter::Malformed,
    };
    count(counters, outcome);
    xdp_action::XDP_PASS
}

#[inline(always)]
fn udp_destination(ctx: &XdpContext) -> Result<UdpDst, Skip> {
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Err(Skip::Pass);
    };
    // SAFETY: ptr_at checked that the whole header lies inside the frame.
    let (mut ether_type, src_mac) = unsafe { (u16::from_be_bytes((*eth).ether_type), (*eth).src) };
    let mut l3 = size_of::<EthHdr>();

    if matches!(ether_type, ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_9100) {
        let Some(tag) = ptr_at::<VlanTag>(ctx, l3) else {
            return Err(Skip::Pass);
        };
        // SAFETY: bounds checked by ptr_at.
        ether_type = u16::from_be_bytes(unsafe { (*tag).ether_type });
        l3 += size_of::<VlanTag>();
        if ether_type == ETH_P_8021Q {
            let Some(tag) = ptr_at::<VlanTag>(ctx, l3) else {
                return Err(Skip::Pass);
            };
            // SAFETY: bounds checked by ptr_at.
            ether_type = u16::from_be_bytes(unsafe { (*tag).ether_type });
            l3 += size_of::<VlanTag>();
        }
    }
    if ether_type != ETH_P_IPV4 {
        return Err(Skip::Pass);
    }

    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l3) else {
        return Err(Skip::Malformed);
    };
    // SAFETY: bounds checked by ptr_at; the fields are byte arrays, so no
    // alignment is assumed.
    let (version_ihl, protocol, frag_off, addr) = unsafe {
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
        return Err(Skip::Malformed);
    }
    if protocol != IPPROTO_UDP || frag_off & IPV4_FRAGMENT_MASK != 0 {
        return Err(Skip::Pass);
    }

    let Some(udp) = ptr_at::<UdpHdr>(ctx, l3 + header_len) else {
        return Err(Skip::Malformed);
    };
    // SAFETY: bounds checked by ptr_at.
    let port = u16::from_be_bytes(unsafe { (*udp).dst_port });
    Ok(UdpDst {
        src_mac,
        addr,
        port,
    })
}

/// Per-CPU slot, so a plain increment cannot race another CPU.
#[inline(always)]
fn count(counters: &PerCpuArray<u64>, counter: Counter) {
    if let Some(slot) = counters.get_ptr_mut(counter as u32) {
        // SAFETY: the map lookup returned this CPU's slot, which only this
        // program invocation touches while it runs.
        unsafe { *slot += 1 };
    }
}

/// Whether two names are the same, at compile time: user space finds the
/// maps by the statics' identifiers, which must match the shared constants.
pub const fn same_name(a: &str, b: &str) -> bool {
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
