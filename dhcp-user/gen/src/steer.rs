//! The generator's XDP program (`dhcp-ebpf/src/gen.rs`) from user space:
//! load it, tell it the relay addresses it plays, attach it to the
//! interface, hand it the AF_XDP sockets, read its counters. Loading
//! follows `io::xdp` (the server's program); the object is embedded at
//! build time.
use anyhow::{Context as _, Result, anyhow, bail};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, PerCpuArray, XskMap},
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use dhcp_common::{GEN_COUNTERS_MAP, GEN_PROG, GEN_RELAY_ADDRS_MAP, GEN_XSKS_MAP, MAX_RELAY_ADDRS};
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use xdhcp::config::AttachMode;
use xdhcp::io::xdp::{XdpCounters, read_counters};

pub struct GenSteering {
    ebpf: Ebpf,
    link: Option<XdpLinkId>,
    mode: AttachMode,
    xsks: XskMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
}

fn embedded_object() -> &'static [u8] {
    aya::include_bytes_aligned!(env!("XDHCPGEN_STEER_OBJECT"))
}

impl GenSteering {
    /// Loads the program, fills the relay addresses and attaches it to the
    /// interface `if_index` (named `iface` in messages).
    pub fn attach(
        iface: &str,
        if_index: u32,
        mode: AttachMode,
        relays: &[Ipv4Addr],
    ) -> Result<GenSteering> {
        let object = embedded_object();
        if object.is_empty() {
            bail!(
                "this xdhcpgen was built with AYA_BUILD_SKIP set, so it carries no XDP program; \
                 rebuild it without AYA_BUILD_SKIP, or run with --io packet"
            );
        }
        if relays.len() > MAX_RELAY_ADDRS as usize {
            bail!(
                "{} relay addresses given; the XDP program holds at most {MAX_RELAY_ADDRS}",
                relays.len()
            );
        }
        let mut ebpf = Ebpf::load(object).context(
            "loading the generator's XDP object failed (xdhcpgen needs root, or CAP_BPF, \
             CAP_NET_ADMIN and CAP_NET_RAW)",
        )?;
        let xsks = XskMap::try_from(take_map(&mut ebpf, GEN_XSKS_MAP)?)?;
        let counters = PerCpuArray::try_from(take_map(&mut ebpf, GEN_COUNTERS_MAP)?)?;
        let mut addrs: HashMap<MapData, u32, u8> =
            HashMap::try_from(take_map(&mut ebpf, GEN_RELAY_ADDRS_MAP)?)?;
        for a in relays {
            // The key is the address's bytes as the program reads them.
            addrs
                .insert(u32::from_ne_bytes(a.octets()), 1, 0)
                .with_context(|| format!("adding relay address {a} to {GEN_RELAY_ADDRS_MAP}"))?;
        }
        let mut s = GenSteering {
            ebpf,
            link: None,
            mode,
            xsks,
            counters,
        };
        let program = s.program()?;
        program
            .load()
            .context("the kernel refused the generator's XDP program")?;
        let try_mode = |program: &mut Xdp, m: XdpMode| program.attach_to_if_index(if_index, m);
        let (link, used) = match mode {
            AttachMode::Driver => (try_mode(program, XdpMode::Driver), AttachMode::Driver),
            AttachMode::Generic => (try_mode(program, XdpMode::Skb), AttachMode::Generic),
            AttachMode::Auto => match try_mode(program, XdpMode::Driver) {
                Ok(l) => (Ok(l), AttachMode::Driver),
                Err(e) => {
                    tracing::warn!(iface, "driver-mode XDP failed ({e}); using generic mode");
                    (try_mode(program, XdpMode::Skb), AttachMode::Generic)
                }
            },
        };
        let link = link.map_err(|e| {
            anyhow!(e).context(format!(
                "attaching the generator's XDP program to {iface} in {used} mode failed \
                 (another XDP program there? see `ip link show {iface}`); \
                 try --xdp-mode generic or --io packet"
            ))
        })?;
        s.link = Some(link);
        s.mode = used;
        Ok(s)
    }

    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    pub fn register_socket(&mut self, queue: u32, fd: RawFd) -> Result<()> {
        self.xsks
            .set(queue, fd, 0)
            .with_context(|| format!("putting the AF_XDP socket into {GEN_XSKS_MAP}[{queue}]"))
    }

    pub fn counters(&self) -> Result<XdpCounters> {
        read_counters(&self.counters)
    }

    fn program(&mut self) -> Result<&mut Xdp> {
        let p = self
            .ebpf
            .program_mut(GEN_PROG)
            .ok_or_else(|| anyhow!("the embedded object has no program {GEN_PROG}"))?;
        Ok(p.try_into()?)
    }
}

impl Drop for GenSteering {
    fn drop(&mut self) {
        if let Some(link) = self.link.take()
            && let Ok(p) = self.program()
            && let Err(e) = p.detach(link)
        {
            tracing::warn!("detaching the generator's XDP program failed: {e}");
        }
    }
}

fn take_map(ebpf: &mut Ebpf, name: &str) -> Result<aya::maps::Map> {
    ebpf.take_map(name)
        .ok_or_else(|| anyhow!("the embedded XDP object has no map {name}"))
}
