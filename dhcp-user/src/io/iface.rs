//! What the backends need to know of a network interface: index, MAC,
//! MTU, number of RX queues and IPv4 addresses, all read from the kernel
//! of the caller's network namespace.
use crate::os::ifaddrs::{self, IfAddr};
use crate::os::netdev::{IFNAMSIZ, NetDev};
use anyhow::{Context, Result, bail};
use rustix::io::Errno;
use std::net::Ipv4Addr;

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
        check_name(name)?;
        let dev = NetDev::open().with_context(|| format!("socket for ioctls on {name}"))?;
        let index = match dev.index(name) {
            Ok(index) => index,
            Err(err) if Errno::from_io_error(&err) == Some(Errno::NODEV) => {
                bail!("network interface {name:?} does not exist in this network namespace");
            }
            Err(err) => {
                return Err(err).with_context(|| format!("looking up network interface {name:?}"));
            }
        };
        let mac = dev
            .mac(name)
            .with_context(|| format!("reading the MAC address of {name} (SIOCGIFHWADDR)"))?;
        let mtu = dev
            .mtu(name)
            .with_context(|| format!("reading the MTU of {name} (SIOCGIFMTU)"))?
            .max(0) as u32;

        let rx_queues = match dev.rx_channels(name) {
            Ok(n) if n > 0 => n,
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

fn ipv4_addrs() -> Result<Vec<IfAddr>> {
    ifaddrs::ipv4().context("listing interface addresses (getifaddrs)")
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() >= IFNAMSIZ {
        bail!(
            "network interface name {name:?} must be 1 to {} bytes long",
            IFNAMSIZ - 1
        );
    }
    if name.contains('\0') {
        bail!("network interface name {name:?} contains NUL");
    }
    Ok(())
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
