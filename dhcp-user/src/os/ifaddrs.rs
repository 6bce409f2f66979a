//! The IPv4 addresses of every interface of this network namespace, from
//! getifaddrs(3).
//!
//! This is the one place the daemon calls `libc` for something rustix
//! could otherwise cover: getifaddrs is a C library routine (a netlink
//! dump parsed into a linked list), not a system call, and rustix has no
//! counterpart.
use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;

/// One IPv4 address of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfAddr {
    pub name: String,
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// Owns the list getifaddrs(3) returns, so every path frees it.
struct List(*mut libc::ifaddrs);

impl Drop for List {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful getifaddrs and is
        // freed once, here.
        unsafe { libc::freeifaddrs(self.0) }
    }
}

/// Every IPv4 address of every interface, with its prefix length.
pub fn ipv4() -> io::Result<Vec<IfAddr>> {
    let mut head = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head that `List` frees.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let list = List(head);
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
    // SAFETY: a non-null sockaddr of the list; its family says which
    // struct it is, and an AF_INET one is a whole sockaddr_in (read
    // unaligned, as the list makes no promise of alignment).
    unsafe {
        if i32::from((*sa).sa_family) != libc::AF_INET {
            return None;
        }
        let sin = std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in>());
        Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
    }
}
