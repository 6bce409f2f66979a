//! The XDP steering program (`dhcp-ebpf`) from user space: load it, fill its
//! address map, attach it to the interface, hand it the AF_XDP sockets and
//! read its counters.
//!
//! The program itself is embedded in the binary at build time (see
//! `build.rs`), so the daemon never depends on files next to it.

use crate::config::{AttachMode, Rate};
use crate::os::{self, netdev::NetDev};
use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray, XskMap},
    programs::{ProgramError, Xdp, XdpMode, xdp::XdpError, xdp::XdpLinkId},
};
use dhcp_common::{
    COUNTERS_MAP, Counter, MAC_RATE_CONFIG_MAP, MAX_QUEUES, MAX_SERVER_ADDRS, SERVER_ADDRS_MAP,
    SERVER_PROG, XSKS_MAP,
};
use rustix::io::Errno;
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

/// The program's counters, summed over all CPUs. Every frame lands in
/// exactly one of `redirected`, `passed`, `malformed`, `no_socket` and
/// `rate_limited`, so those add up to `seen`.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, PartialEq, Eq)]
pub struct XdpCounters {
    pub seen: u64,
    pub redirected: u64,
    pub passed: u64,
    pub malformed: u64,
    pub no_socket: u64,
    /// Requests dropped over `[xdp] requests_per_mac`.
    pub rate_limited: u64,
}

impl XdpCounters {
    /// Counts since an earlier reading of the same program.
    pub fn since(&self, earlier: &XdpCounters) -> XdpCounters {
        XdpCounters {
            seen: self.seen.wrapping_sub(earlier.seen),
            redirected: self.redirected.wrapping_sub(earlier.redirected),
            passed: self.passed.wrapping_sub(earlier.passed),
            malformed: self.malformed.wrapping_sub(earlier.malformed),
            no_socket: self.no_socket.wrapping_sub(earlier.no_socket),
            rate_limited: self.rate_limited.wrapping_sub(earlier.rate_limited),
        }
    }
}

/// The steering program, loaded and attached to one interface. Dropping it
/// detaches the program.
pub struct Steering {
    // Owns the program and, through it, the attachment; the maps below were
    // taken out of it so they can be used without borrowing it.
    ebpf: Ebpf,
    link: Option<XdpLinkId>,
    iface: String,
    mode: AttachMode,
    xsks: XskMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
    server_addrs: HashMap<MapData, u32, u8>,
}

impl fmt::Debug for Steering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steering")
            .field("iface", &self.iface)
            .field("mode", &self.mode)
            .field("attached", &self.link.is_some())
            .finish_non_exhaustive()
    }
}

impl Steering {
    /// Loads the embedded object, fills SERVER_ADDRS, attaches to `iface`.
    pub fn attach(iface: &str, mode: AttachMode, server_addrs: &[Ipv4Addr]) -> Result<Steering> {
        Steering::attach_limited(iface, mode, server_addrs, None)
    }

    /// As [`Steering::attach`], with a request rate per source MAC
    /// enforced in the program (`[xdp] requests_per_mac`).
    pub fn attach_limited(
        iface: &str,
        mode: AttachMode,
        server_addrs: &[Ipv4Addr],
        mac_rate: Option<Rate>,
    ) -> Result<Steering> {
        let object = embedded_object();
        if object.is_empty() {
            bail!(
                "this xdhcpd was built with AYA_BUILD_SKIP set, so it carries no XDP program; \
                 rebuild it without AYA_BUILD_SKIP, or run with io = \"packet\""
            );
        }
        let if_index = if_index(iface)?;
        let mtu = iface_mtu(iface)?;
        let mtu_limit = driver_mtu_limit();

        let mut ebpf = Ebpf::load(object).map_err(|err| {
            let detail = anyhow!(err);
            if chain_errno(detail.as_ref()) == Some(Errno::PERM) {
                detail.context(NOT_PERMITTED)
            } else {
                detail.context("loading the XDP object (maps and BTF) into the kernel failed")
            }
        })?;
        let xsks = XskMap::try_from(take_map(&mut ebpf, XSKS_MAP)?)
            .with_context(|| format!("map {XSKS_MAP} has an unexpected layout"))?;
        let counters = PerCpuArray::try_from(take_map(&mut ebpf, COUNTERS_MAP)?)
            .with_context(|| format!("map {COUNTERS_MAP} has an unexpected layout"))?;
        let addr_map = HashMap::try_from(take_map(&mut ebpf, SERVER_ADDRS_MAP)?)
            .with_context(|| format!("map {SERVER_ADDRS_MAP} has an unexpected layout"))?;
        if let Some(r) = mac_rate {
            // Borrowed, not taken: the map stays with the object, which the
            // program's instructions refer to when it is loaded below.
            let map = ebpf
                .map_mut(MAC_RATE_CONFIG_MAP)
                .ok_or_else(|| anyhow!("the XDP object has no map {MAC_RATE_CONFIG_MAP}"))?;
            let mut rate_cfg: Array<_, u64> = Array::try_from(map)
                .with_context(|| format!("map {MAC_RATE_CONFIG_MAP} has an unexpected layout"))?;
            let interval_ns = r.interval_us() * 1000;
            let tolerance_ns = interval_ns * u64::from(r.burst.saturating_sub(1));
            rate_cfg
                .set(0, interval_ns, 0)
                .and_then(|()| rate_cfg.set(1, tolerance_ns, 0))
                .with_context(|| format!("filling map {MAC_RATE_CONFIG_MAP} failed"))?;
        }

        let mut steering = Steering {
            ebpf,
            link: None,
            iface: iface.to_owned(),
            mode,
            xsks,
            counters,
            server_addrs: addr_map,
        };
        // Before the attachment, so unicast to us is steered from the very
        // first frame on.
        steering.set_server_addrs(server_addrs)?;

        let program = steering.program()?;
        program.load().map_err(|err| explain_load(err, iface))?;

        let (link, used) = match mode {
            AttachMode::Driver => {
                if mtu > mtu_limit {
                    bail!(mtu_message(iface, mtu, mtu_limit));
                }
                let link = attach_as(program, iface, if_index, AttachMode::Driver)?;
                (link, AttachMode::Driver)
            }
            AttachMode::Generic => {
                let link = attach_as(program, iface, if_index, AttachMode::Generic)?;
                (link, AttachMode::Generic)
            }
            AttachMode::Auto => {
                let driver = if mtu > mtu_limit {
                    Err(anyhow!(mtu_message(iface, mtu, mtu_limit)))
                } else {
                    attach_as(program, iface, if_index, AttachMode::Driver)
                };
                match driver {
                    Ok(link) => (link, AttachMode::Driver),
                    Err(driver_err) => {
                        tracing::warn!(
                            iface,
                            error = format!("{driver_err:#}"),
                            "driver-mode XDP not possible, falling back to generic mode \
                             (every frame is copied; expect a lower rate)"
                        );
                        let link = attach_as(program, iface, if_index, AttachMode::Generic)
                            .map_err(|generic_err| {
                                generic_err
                                    .context(format!("driver mode failed first: {driver_err:#}"))
                            })?;
                        (link, AttachMode::Generic)
                    }
                }
            }
        };
        steering.link = Some(link);
        steering.mode = used;
        tracing::info!(iface, mode = %used, "XDP steering program attached");
        Ok(steering)
    }

    /// The mode actually in use (Driver or Generic).
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// The interface the program is attached to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Puts an AF_XDP socket's fd into XSKS[queue].
    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<()> {
        check_queue(queue)?;
        self.xsks.set(queue, fd, 0).map_err(|err| {
            anyhow!(err).context(format!(
                "putting the AF_XDP socket (fd {fd}) into {XSKS_MAP}[{queue}] failed; \
                 the fd must be an AF_XDP socket bound to queue {queue} of {}",
                self.iface
            ))
        })
    }

    /// Empties XSKS[queue]: frames for us on that queue go to the kernel
    /// again (counted as no_socket).
    pub fn unregister_socket(&mut self, queue: u32) -> Result<()> {
        check_queue(queue)?;
        match self.xsks.unset(queue) {
            Ok(()) => Ok(()),
            Err(err) if map_errno(&err) == Some(Errno::NOENT) => Ok(()),
            Err(err) => Err(anyhow!(err).context(format!("clearing {XSKS_MAP}[{queue}] failed"))),
        }
    }

    /// Replaces the addresses whose unicast UDP/67 is steered to us.
    pub fn set_server_addrs(&mut self, addrs: &[Ipv4Addr]) -> Result<()> {
        let wanted: HashSet<u32> = addrs.iter().map(|a| addr_key(*a)).collect();
        if wanted.len() > MAX_SERVER_ADDRS as usize {
            bail!(
                "{} server addresses given, but the XDP program holds at most {MAX_SERVER_ADDRS}",
                wanted.len()
            );
        }
        let stale: Vec<u32> = self
            .server_addrs
            .keys()
            .collect::<Result<_, _>>()
            .with_context(|| format!("reading map {SERVER_ADDRS_MAP} failed"))?;
        for key in stale.into_iter().filter(|k| !wanted.contains(k)) {
            self.server_addrs
                .remove(&key)
                .with_context(|| format!("removing {} from {SERVER_ADDRS_MAP}", key_addr(key)))?;
        }
        for key in wanted {
            self.server_addrs
                .insert(key, 1, 0)
                .with_context(|| format!("adding {} to {SERVER_ADDRS_MAP}", key_addr(key)))?;
        }
        Ok(())
    }

    /// Counters summed over all CPUs.
    pub fn counters(&self) -> Result<XdpCounters> {
        read_counters(&self.counters)
    }

    /// Detaches (also done on Drop).
    pub fn detach(mut self) -> Result<()> {
        self.detach_link()
    }

    fn detach_link(&mut self) -> Result<()> {
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        let iface = self.iface.clone();
        self.program()?
            .detach(link)
            .with_context(|| format!("detaching the XDP program from {iface} failed"))
    }

    fn program(&mut self) -> Result<&mut Xdp> {
        let program = self
            .ebpf
            .program_mut(SERVER_PROG)
            .ok_or_else(|| anyhow!("the embedded XDP object has no program {SERVER_PROG}"))?;
        program
            .try_into()
            .with_context(|| format!("program {SERVER_PROG} in the embedded object is not XDP"))
    }
}

impl Drop for Steering {
    fn drop(&mut self) {
        if let Err(err) = self.detach_link() {
            tracing::warn!(error = format!("{err:#}"), "XDP detach on drop failed");
        }
    }
}

fn embedded_object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/xdhcp-steer"))
}

/// The map key of an address: its four bytes as the program reads them
/// from the packet.
fn addr_key(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

fn key_addr(key: u32) -> Ipv4Addr {
    Ipv4Addr::from(key.to_ne_bytes())
}

fn check_queue(queue: u32) -> Result<()> {
    if queue >= MAX_QUEUES {
        bail!("queue {queue} is beyond the {MAX_QUEUES} queues the {XSKS_MAP} map holds");
    }
    Ok(())
}

fn take_map(ebpf: &mut Ebpf, name: &str) -> Result<aya::maps::Map> {
    ebpf.take_map(name)
        .ok_or_else(|| anyhow!("the embedded XDP object has no map {name}"))
}

const NOT_PERMITTED: &str = "the kernel refused to load the XDP program (EPERM): xdhcpd needs \
     root, or the capabilities CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (and CAP_NET_RAW and \
     CAP_IPC_LOCK for the AF_XDP sockets), as packaging/xdhcpd.service grants them";

/// What the verifier says when the loader lacks CAP_PERFMON: the
/// program's packet-pointer arithmetic is allowed only to a
/// "perfmon-capable" loader (the kernel's `allow_ptr_leaks`).
const NEEDS_PERFMON: &str = "prohibited for !root";

fn explain_load(err: ProgramError, iface: &str) -> anyhow::Error {
    let errno = match &err {
        ProgramError::LoadError { io_error, .. } => Errno::from_io_error(io_error),
        _ => None,
    };
    match (&err, errno) {
        (_, Some(Errno::PERM)) => anyhow!(err).context(NOT_PERMITTED),
        (ProgramError::LoadError { .. }, _) if err.to_string().contains(NEEDS_PERFMON) => {
            anyhow!(err).context(format!(
                "the kernel verifier refused the XDP program {SERVER_PROG} to a loader without \
                 CAP_PERFMON: without root xdhcpd needs it beside CAP_BPF and CAP_NET_ADMIN \
                 (see packaging/xdhcpd.service)"
            ))
        }
        (ProgramError::LoadError { .. }, _) => anyhow!(err).context(format!(
            "the kernel verifier rejected the XDP program {SERVER_PROG} meant for {iface}; \
             this kernel ({}) and the program do not agree, please report it with the \
             verifier output below; meanwhile io = \"packet\" runs without XDP",
            kernel_release()
        )),
        _ => anyhow!(err).context(format!("loading the XDP program {SERVER_PROG} failed")),
    }
}

fn attach_as(program: &mut Xdp, iface: &str, if_index: u32, mode: AttachMode) -> Result<XdpLinkId> {
    let xdp_mode = match mode {
        AttachMode::Driver => XdpMode::Driver,
        AttachMode::Generic | AttachMode::Auto => XdpMode::Skb,
    };
    program
        .attach_to_if_index(if_index, xdp_mode)
        .map_err(|err| explain_attach(err, iface, mode))
}

fn explain_attach(err: ProgramError, iface: &str, mode: AttachMode) -> anyhow::Error {
    let errno = match &err {
        ProgramError::SyscallError(e) => Errno::from_io_error(&e.io_error),
        ProgramError::XdpError(XdpError::NetlinkError(e)) => {
            e.raw_os_error().map(Errno::from_raw_os_error)
        }
        _ => None,
    };
    let why = match errno {
        Some(Errno::OPNOTSUPP) if mode == AttachMode::Driver => format!(
            "interface {iface} does not support native (driver-mode) XDP; set \
             xdp_mode = \"generic\" (works everywhere, copies every frame) or \
             io = \"packet\" in the config"
        ),
        Some(Errno::BUSY | Errno::EXIST) => format!(
            "another XDP program is already attached to {iface}; see it with \
             `ip link show {iface}` and remove it (`ip link set dev {iface} xdp off`, \
             or stop the program that holds it) before starting xdhcpd"
        ),
        Some(Errno::PERM) => NOT_PERMITTED.to_owned(),
        Some(Errno::RANGE) => format!(
            "interface {iface} (or its veth peer) has an MTU too large for single-buffer \
             XDP; lower it to at most {} (`ip link set dev {iface} mtu {}`) or set \
             xdp_mode = \"generic\"",
            driver_mtu_limit(),
            driver_mtu_limit()
        ),
        _ => format!(
            "attaching the XDP program to {iface} in {mode} mode failed; set \
             xdp_mode = \"generic\" or io = \"packet\" if this interface cannot do it"
        ),
    };
    anyhow!(err).context(why)
}

fn mtu_message(iface: &str, mtu: u32, limit: u32) -> String {
    format!(
        "interface {iface} has MTU {mtu}, but driver-mode XDP without multi-buffer support \
         (which the steering program does not use) takes frames of at most MTU {limit} on \
         this machine; lower the MTU (`ip link set dev {iface} mtu {limit}`) or set \
         xdp_mode = \"generic\""
    )
}

/// Largest MTU a single-buffer XDP frame can carry: a page, less the
/// headroom XDP reserves in front of the frame, less the `skb_shared_info`
/// the driver keeps at its end, less the Ethernet header and two VLAN tags.
/// This is the rule veth and most XDP drivers apply when the program does
/// not declare frags support.
pub fn driver_mtu_limit() -> u32 {
    const XDP_PACKET_HEADROOM: u32 = 256;
    const SKB_SHARED_INFO: u32 = 320;
    const ETH_HLEN: u32 = 14;
    const VLAN_TAGS: u32 = 2 * 4;
    let page = u32::try_from(os::page_size()).unwrap_or(4096);
    page.saturating_sub(XDP_PACKET_HEADROOM + SKB_SHARED_INFO + ETH_HLEN + VLAN_TAGS)
}

fn if_index(iface: &str) -> Result<u32> {
    let dev = NetDev::open().context("opening a socket to look up the interface")?;
    dev.index(iface).map_err(|err| {
        anyhow!(
            "network interface {iface:?} does not exist in this network namespace ({err}); \
             check the interface name with `ip -br link`"
        )
    })
}

/// The interface's MTU, asked of the kernel with SIOCGIFMTU rather than
/// read from /sys/class/net: sysfs shows the namespace it was mounted in,
/// which is not ours after a bare `setns`/`nsenter --net`.
fn iface_mtu(iface: &str) -> Result<u32> {
    let dev = NetDev::open().context("opening a socket to ask for the interface MTU")?;
    let mtu = dev
        .mtu(iface)
        .with_context(|| format!("reading the MTU of interface {iface}"))?;
    u32::try_from(mtu).with_context(|| format!("interface {iface} reports MTU {mtu}"))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown kernel".to_owned())
}

fn map_errno(err: &MapError) -> Option<Errno> {
    match err {
        MapError::SyscallError(e) => Errno::from_io_error(&e.io_error),
        MapError::IoError(e) => Errno::from_io_error(e),
        _ => None,
    }
}

/// The first OS error code along an error's chain of causes.
fn chain_errno(err: &(dyn std::error::Error + 'static)) -> Option<Errno> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(code) = e.downcast_ref::<io::Error>().and_then(Errno::from_io_error) {
            return Some(code);
        }
        cause = e.source();
    }
    None
}

/// A steering program's counters, each summed over all CPUs (the
/// generator's program keeps the same slots).
pub fn read_counters(map: &PerCpuArray<MapData, u64>) -> Result<XdpCounters> {
    let read = |counter: Counter| -> Result<u64> {
        let per_cpu = map
            .get(&(counter as u32), 0)
            .with_context(|| format!("reading counter {} failed", counter.name()))?;
        Ok(per_cpu.iter().fold(0u64, |sum, v| sum.wrapping_add(*v)))
    };
    Ok(XdpCounters {
        seen: read(Counter::Seen)?,
        redirected: read(Counter::Redirected)?,
        passed: read(Counter::Passed)?,
        malformed: read(Counter::Malformed)?,
        no_socket: read(Counter::NoSocket)?,
        rate_limited: read(Counter::RateLimited)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_keys_are_the_packets_bytes() {
        let addr = Ipv4Addr::new(192, 0, 2, 1);
        let key = addr_key(addr);
        assert_eq!(key.to_ne_bytes(), [192, 0, 2, 1]);
        assert_eq!(key_addr(key), addr);
    }

    #[test]
    fn mtu_limit_for_4k_pages() {
        if os::page_size() == 4096 {
            assert_eq!(driver_mtu_limit(), 3498);
        }
    }

    #[test]
    fn counters_since() {
        let a = XdpCounters {
            seen: 10,
            redirected: 4,
            passed: 3,
            malformed: 1,
            no_socket: 2,
            rate_limited: 0,
        };
        let b = XdpCounters {
            seen: 15,
            redirected: 6,
            passed: 5,
            malformed: 1,
            no_socket: 3,
            rate_limited: 0,
        };
        let d = b.since(&a);
        assert_eq!(d.seen, 5);
        assert_eq!(d.redirected + d.passed + d.malformed + d.no_socket, d.seen);
    }

    #[test]
    fn missing_interface_is_named() {
        let err = if_index("xdb-nonexistent0").unwrap_err().to_string();
        assert!(err.contains("xdb-nonexistent0"), "{err}");
        assert!(err.contains("does not exist"), "{err}");
    }
}
