//! What the kernel says of a network interface through ioctls on an
//! ordinary socket (netdevice(7)): index, MAC, MTU, RX channels. They
//! answer for the caller's network namespace, which /sys/class/net does
//! not after a bare `setns`/`nsenter --net` (sysfs shows the namespace it
//! was mounted in).
use rustix::ioctl::{Opcode, Updater, ioctl};
use rustix::net::{AddressFamily, SocketFlags, SocketType, socket_with};
use std::io;
use std::os::fd::OwnedFd;

/// Longest interface name plus its NUL (`IFNAMSIZ` of linux/if.h).
pub const IFNAMSIZ: usize = 16;

const SIOCGIFHWADDR: Opcode = 0x8927;
const SIOCGIFMTU: Opcode = 0x8921;
const SIOCETHTOOL: Opcode = 0x8946;
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// `struct ifreq` of linux/if.h with its union as the one member a
/// request uses: the name, then `T` where the union starts. `_room` makes
/// it at least as large as the kernel's (40 bytes on 64-bit), which it
/// copies whole in and out.
#[repr(C)]
struct IfReq<T> {
    name: [u8; IFNAMSIZ],
    value: T,
    _room: [u64; 3],
}

/// `struct sockaddr` as SIOCGIFHWADDR fills it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct HwAddr {
    family: u16,
    data: [u8; 14],
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

/// A datagram socket to ask interface ioctls on.
pub struct NetDev(OwnedFd);

impl NetDev {
    pub fn open() -> io::Result<NetDev> {
        let sock = socket_with(
            AddressFamily::INET,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        Ok(NetDev(sock))
    }

    /// The interface's index; ENODEV when this namespace has no such
    /// interface.
    pub fn index(&self, name: &str) -> io::Result<u32> {
        Ok(rustix::net::netdevice::name_to_index(&self.0, name)?)
    }

    /// The interface's MTU (SIOCGIFMTU).
    pub fn mtu(&self, name: &str) -> io::Result<i32> {
        let mut req = ifreq(name, 0i32)?;
        // SAFETY: SIOCGIFMTU reads the name of an ifreq and writes the
        // int at the start of its union, which is `value`.
        unsafe { ioctl(&self.0, Updater::<SIOCGIFMTU, _>::new(&mut req)) }?;
        Ok(req.value)
    }

    /// The interface's hardware address (SIOCGIFHWADDR).
    pub fn mac(&self, name: &str) -> io::Result<[u8; 6]> {
        let mut req = ifreq(name, HwAddr::default())?;
        // SAFETY: SIOCGIFHWADDR reads the name of an ifreq and writes a
        // struct sockaddr at the start of its union, which is `value`.
        unsafe { ioctl(&self.0, Updater::<SIOCGIFHWADDR, _>::new(&mut req)) }?;
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&req.value.data[..6]);
        Ok(mac)
    }

    /// The interface's RX queues, RX-only and combined channels together
    /// (ETHTOOL_GCHANNELS); an error for drivers without it (lo, some
    /// virtual ones).
    pub fn rx_channels(&self, name: &str) -> io::Result<u32> {
        let mut ch = EthtoolChannels {
            cmd: ETHTOOL_GCHANNELS,
            ..Default::default()
        };
        let mut req = ifreq(name, (&raw mut ch).cast::<u8>())?;
        // SAFETY: SIOCETHTOOL reads the name of an ifreq and the pointer
        // at the start of its union (`value`), and for ETHTOOL_GCHANNELS
        // fills the ethtool_channels it points to: `ch`, alive and not
        // otherwise borrowed until the call returns.
        unsafe { ioctl(&self.0, Updater::<SIOCETHTOOL, _>::new(&mut req)) }?;
        // A queue serves RX whether its channel is RX-only or combined.
        Ok(ch.rx_count.saturating_add(ch.combined_count))
    }
}

fn ifreq<T>(name: &str, value: T) -> io::Result<IfReq<T>> {
    let bytes = name.as_bytes();
    if bytes.len() >= IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from(rustix::io::Errno::NODEV));
    }
    let mut req = IfReq {
        name: [0; IFNAMSIZ],
        value,
        _room: [0; 3],
    };
    req.name[..bytes.len()].copy_from_slice(bytes);
    Ok(req)
}
