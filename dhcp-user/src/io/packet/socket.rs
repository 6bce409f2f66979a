//! Opening a worker's AF_PACKET socket (filtered before it is bound), its
//! fanout group, and the UDP socket that holds port 67.
//!
//! These stay on `libc`: rustix has no typed setsockopt for
//! SO_ATTACH_FILTER, PACKET_AUXDATA, PACKET_FANOUT(_DATA) or
//! PACKET_IGNORE_OUTGOING, and no sockaddr_ll for bind(2).
use super::ETH_P_ALL_BE;
use super::bpf::{BPF_RET_K, dhcp_filter, fanout_program, stmt};
use crate::io::iface::Interface;
use anyhow::{Result, anyhow, bail};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Kernel receive buffer per worker socket, to ride out bursts while the
/// worker is busy with the previous batch.
const SOCKET_RCVBUF: libc::c_int = 4 << 20;

/// Adds the way out when the OS error is a missing privilege.
fn os_error(what: String, err: io::Error) -> anyhow::Error {
    match err.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => {
            anyhow!("{what}: {err} — run as root or with CAP_NET_RAW")
        }
        _ => anyhow::Error::new(err).context(what),
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: val points at a T of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn new_socket(domain: i32, ty: i32, proto: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn attach_filter(
    fd: &OwnedFd,
    level: i32,
    name: i32,
    prog: &[libc::sock_filter],
) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    setsockopt(fd, level, name, &fprog)
}

/// One worker's raw socket, filtered before it is bound so not a single
/// unfiltered frame is queued on it.
pub(super) fn open_socket(iface: &Interface) -> Result<OwnedFd> {
    let name = &iface.name;
    // Protocol 0: the socket receives nothing until bind names one.
    let sock = new_socket(libc::AF_PACKET, libc::SOCK_RAW, 0)
        .map_err(|e| os_error(format!("AF_PACKET socket on {name}"), e))?;
    attach_filter(
        &sock,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &dhcp_filter(),
    )
    .map_err(|e| os_error(format!("attaching the UDP/67 BPF filter on {name}"), e))?;
    // The kernel moves the outermost VLAN tag out of the frame before any
    // packet socket sees it; auxdata hands it back.
    setsockopt(&sock, libc::SOL_PACKET, libc::PACKET_AUXDATA, &1i32)
        .map_err(|e| os_error(format!("PACKET_AUXDATA on {name}"), e))?;
    // Our replies to relays are UDP/67 frames too.
    setsockopt(&sock, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &1i32)
        .map_err(|e| os_error(format!("PACKET_IGNORE_OUTGOING on {name}"), e))?;
    if setsockopt(
        &sock,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        &SOCKET_RCVBUF,
    )
    .is_err()
    {
        // Without CAP_NET_ADMIN the kernel caps it at rmem_max.
        let _ = setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVBUF, &SOCKET_RCVBUF);
    }
    // SAFETY: sockaddr_ll is plain old data.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    // ETH_P_ALL rather than ETH_P_IP: a frame that still carries a tag
    // after the kernel took the outer one (QinQ) is not ETH_P_IP.
    sll.sll_protocol = ETH_P_ALL_BE;
    sll.sll_ifindex = iface.index as i32;
    // SAFETY: sll is a complete sockaddr_ll of the size passed.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(os_error(
            format!("binding the AF_PACKET socket to {name}"),
            io::Error::last_os_error(),
        ));
    }
    Ok(sock)
}

/// Joins `sock` to the workers' fanout group (creating it when `group`
/// is None) and returns the group id.
pub(super) fn join_fanout(sock: &OwnedFd, iface: &Interface, group: Option<u16>) -> Result<u16> {
    // A fanout group receives through its own hook, which ignores the
    // member sockets' PACKET_IGNORE_OUTGOING; the group needs the flag too.
    let mode = libc::PACKET_FANOUT_CBPF | libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
    let what = || format!("PACKET_FANOUT group on {}", iface.name);
    match group {
        Some(id) => {
            setsockopt(
                sock,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                &(u32::from(id) | mode << 16),
            )
            .map_err(|e| os_error(what(), e))?;
            Ok(id)
        }
        None => {
            // The kernel picks an id no other group in this namespace uses.
            let val = (mode | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16;
            setsockopt(sock, libc::SOL_PACKET, libc::PACKET_FANOUT, &val)
                .map_err(|e| os_error(what(), e))?;
            attach_filter(
                sock,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT_DATA,
                &fanout_program(),
            )
            .map_err(|e| os_error(format!("{}: fanout program", what()), e))?;
            let mut val = 0u32;
            let mut len = size_of::<u32>() as libc::socklen_t;
            // SAFETY: val and len describe a u32 buffer.
            let r = unsafe {
                libc::getsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_FANOUT,
                    (&mut val as *mut u32).cast(),
                    &mut len,
                )
            };
            if r < 0 {
                return Err(os_error(
                    format!("{}: reading its id", what()),
                    io::Error::last_os_error(),
                ));
            }
            Ok(val as u16)
        }
    }
}

/// The UDP socket that keeps the kernel quiet on port 67.
///
/// The kernel's own stack gets a copy of every frame the workers get.
/// With no socket on UDP 67 it answers each unicast request (renewals,
/// relayed messages) with ICMP port unreachable, and relays and clients
/// may give up on the server for it. This socket holds the port and never
/// reads: a filter that accepts nothing drops each datagram before it is
/// queued, and the smallest receive buffer bounds what could pile up if
/// the filter were ever removed. SO_REUSEADDR and SO_BINDTODEVICE keep it
/// from standing in the way of other sockets on other interfaces.
pub(super) fn udp_port_guard(iface: &Interface) -> Result<OwnedFd> {
    let name = &iface.name;
    let what = |step: &str| format!("UDP port 67 guard socket on {name}: {step}");
    let sock =
        new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).map_err(|e| os_error(what("socket"), e))?;
    setsockopt(&sock, libc::SOL_SOCKET, libc::SO_REUSEADDR, &1i32)
        .map_err(|e| os_error(what("SO_REUSEADDR"), e))?;
    let mut dev = [0u8; libc::IFNAMSIZ];
    let n = name.len().min(libc::IFNAMSIZ - 1);
    dev[..n].copy_from_slice(&name.as_bytes()[..n]);
    setsockopt(&sock, libc::SOL_SOCKET, libc::SO_BINDTODEVICE, &dev)
        .map_err(|e| os_error(what("SO_BINDTODEVICE"), e))?;
    setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVBUF, &1i32)
        .map_err(|e| os_error(what("SO_RCVBUF"), e))?;
    attach_filter(
        &sock,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &[stmt(BPF_RET_K, 0)],
    )
    .map_err(|e| os_error(what("drop-all filter"), e))?;
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 67u16.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    // SAFETY: sin is a complete sockaddr_in of the size passed.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EADDRINUSE) {
            bail!(
                "{}: {err} — is another DHCP server running on {name}?",
                what("bind 0.0.0.0:67")
            );
        }
        return Err(os_error(what("bind 0.0.0.0:67"), err));
    }
    Ok(sock)
}
