//! What the backends need to know of a network interface: index, MAC,
//! MTU, number of RX queues and IPv4 addresses, all read from the kernel
//! of the caller's network namespace.
use anyhow::{Context, Result, bail};
use std::ffi::{CStr, CString};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A network interface as the kernel of this namespace sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// RX queues (combined + RX-only channels): one AF_XDP worker each.
    pub rx_queues: u32,
    /// The interface's IPv4 addresses with their prefix lengths.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
}

impl Interface {
    /// Reads the interface `name`; fails with a clear message when this
    /// namespace has no such interface.
    pub fn lookup(name: &str) -> Result<Interface> {
        let cname = ifname(name)?;
        // SAFETY: cname is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if index == 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENODEV) {
                bail!("network interface {name:?} does not exist in this network namespace");
            }
            return Err(err).with_context(|| format!("looking up network interface {name:?}"));
        }
        let sock = ioctl_socket().with_context(|| format!("socket for ioctls on {name}"))?;

        let mut req = ifreq(&cname);
        ioctl(&sock, libc::SIOCGIFHWADDR, &mut req)
            .with_context(|| format!("reading the MAC address of {name} (SIOCGIFHWADDR)"))?;
        let mut mac = [0u8; 6];
        // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
        let hw = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
        for (m, b) in mac.iter_mut().zip(hw.iter()) {
            *m = *b as u8;
        }

        let mut req = ifreq(&cname);
        ioctl(&sock, libc::SIOCGIFMTU, &mut req)
            .with_context(|| format!("reading the MTU of {name} (SIOCGIFMTU)"))?;
        // SAFETY: SIOCGIFMTU filled the mtu member of the union.
        let mtu = unsafe { req.ifr_ifru.ifru_mtu }.max(0) as u32;

        let rx_queues = match ethtool_rx_channels(&sock, &cname) {
            Some(n) if n > 0 => n,
            // Drivers without ETHTOOL_GCHANNELS (lo, some virtual ones)
            // still list their queues in sysfs.
            _ => sysfs_rx_queues(name).max(1),
        };

        let ipv4 = ipv4_addrs()?
            .into_iter()
            .filter(|a| a.name == name)
            .map(|a| (a.addr, a.prefix))
            .collect();

        Ok(Interface {
            name: name.to_owned(),
            index,
            mac,
            mtu,
            rx_queues,
            ipv4,
        })
    }
}

/// Every IPv4 address of every interface of this network namespace.
pub fn local_ipv4_addrs() -> Result<Vec<(String, Ipv4Addr)>> {
    Ok(ipv4_addrs()?
        .into_iter()
        .map(|a| (a.name, a.addr))
        .collect())
}

struct IfAddr {
    name: String,
    addr: Ipv4Addr,
    prefix: u8,
}

/// Owns the list getifaddrs(3) returns, so every path frees it.
struct IfAddrs(*mut libc::ifaddrs);

impl Drop for IfAddrs {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful getifaddrs.
        unsafe { libc::freeifaddrs(self.0) }
    }
}

fn ipv4_addrs() -> Result<Vec<IfAddr>> {
    let mut head = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free through IfAddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error()).context("listing interface addresses (getifaddrs)");
    }
    let list = IfAddrs(head);
    let mut out = Vec::new();
    let mut cur = list.0;
    while !cur.is_null() {
        // SAFETY: cur walks the list getifaddrs returned, which stays
        // alive until `list` drops.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if let Some(addr) = sockaddr_v4(ifa.ifa_addr) {
            let prefix = sockaddr_v4(ifa.ifa_netmask)
                .map(|m| u32::from(m).leading_ones() as u8)
                .unwrap_or(32);
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
                .to_string_lossy()
                .into_owned();
            out.push(IfAddr { name, addr, prefix });
        }
    }
    Ok(out)
}

fn sockaddr_v4(sa: *const libc::sockaddr) -> Option<Ipv4Addr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null sockaddr from getifaddrs; the family says which
    // struct it is, and sockaddr_in fits in what the kernel allocated for it.
    unsafe {
        if (*sa).sa_family as i32 != libc::AF_INET {
            return None;
        }
        let sin = std::ptr::read_unaligned(sa as *const libc::sockaddr_in);
        Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
    }
}

fn ifname(name: &str) -> Result<CString> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        bail!(
            "network interface name {name:?} must be 1 to {} bytes long",
            libc::IFNAMSIZ - 1
        );
    }
    CString::new(name).with_context(|| format!("network interface name {name:?} contains NUL"))
}

fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &CStr) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all zeros is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.to_bytes()) {
        *d = *s as libc::c_char;
    }
    req
}

fn ioctl(sock: &OwnedFd, op: libc::c_ulong, req: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: every request used here reads and writes one ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), op as _, req as *mut libc::ifreq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct ethtool_channels` of linux/ethtool.h.
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;

fn ethtool_rx_channels(sock: &OwnedFd, name: &CStr) -> Option<u32> {
    let mut ch = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..Default::default()
    };
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_data = (&mut ch as *mut EthtoolChannels).cast();
    ioctl(sock, libc::SIOCETHTOOL, &mut req).ok()?;
    // A queue serves RX whether its channel is RX-only or combined.
    Some(ch.rx_count.saturating_add(ch.combined_count))
}

fn sysfs_rx_queues(name: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found() {
        let lo = Interface::lookup("lo").unwrap();
        assert_eq!(lo.name, "lo");
        assert!(lo.index > 0);
        assert_eq!(lo.mac, [0; 6]);
        assert!(lo.mtu >= 1500);
        assert!(lo.rx_queues >= 1);
        assert!(lo.ipv4.contains(&(Ipv4Addr::LOCALHOST, 8)), "{lo:?}");
    }

    #[test]
    fn missing_interface_says_so() {
        let err = Interface::lookup("xdd-nosuch0").unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
        let err = Interface::lookup("a-name-far-too-long")
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 to 15 bytes"), "{err}");
        assert!(Interface::lookup("").is_err());
    }

    #[test]
    fn local_addresses_include_loopback() {
        let all = local_ipv4_addrs().unwrap();
        assert!(
            all.contains(&("lo".to_owned(), Ipv4Addr::LOCALHOST)),
            "{all:?}"
        );
    }
}
