//! ICMP echo as a probe: one echo request per address, through the
//! kernel's stack in the daemon's network namespace (its routes reach the
//! subscribers' subnets: the link's own address on a direct link, the
//! relay's route otherwise; on a direct link the kernel resolves the
//! address by ARP before the echo leaves).
//!
//! A raw ICMP socket (CAP_NET_RAW, which the daemon has as root) is tried
//! first, then an unprivileged ping socket (`SOCK_DGRAM`, allowed by the
//! `net.ipv4.ping_group_range` sysctl). A raw socket sees every ICMP
//! message that arrives: a filter lets only echo replies through and the
//! identifier picks ours. A ping socket sees only replies to its own
//! requests (the kernel picks the identifier).
use super::Prober;
use crate::os;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketAddrV4, SocketFlags, SocketType, ipproto, recvfrom,
    sendto, socket_with,
};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

const ECHO_REPLY: u8 = 0;
const ECHO_REQUEST: u8 = 8;
/// Echo data, so a capture shows whose probe it is.
const PAYLOAD: &[u8; 8] = b"xdhcpd\0\0";

/// The probe socket.
pub struct IcmpProber {
    fd: OwnedFd,
    /// Raw socket (replies come with their IP header) or ping socket.
    raw: bool,
    ident: u16,
    seq: u16,
    buf: Box<[u8; 2048]>,
}

impl IcmpProber {
    /// A raw ICMP socket, else a ping socket; the error says what to
    /// allow when neither opens.
    pub fn open() -> io::Result<IcmpProber> {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        let (fd, raw) = match socket_with(
            AddressFamily::INET,
            SocketType::RAW,
            flags,
            Some(ipproto::ICMP),
        ) {
            Ok(fd) => (fd, true),
            Err(raw_err) => {
                let fd = socket_with(
                    AddressFamily::INET,
                    SocketType::DGRAM,
                    flags,
                    Some(ipproto::ICMP),
                )
                .map_err(|e| {
                    io::Error::other(format!(
                        "no raw ICMP socket ({raw_err}: CAP_NET_RAW needed) and no ping socket \
                         ({e}: see sysctl net.ipv4.ping_group_range)"
                    ))
                })?;
                (fd, false)
            }
        };
        if raw {
            only_echo_replies(&fd)?;
        }
        Ok(IcmpProber {
            fd,
            raw,
            ident: (std::process::id() as u16) ^ 0x5844,
            seq: 0,
            buf: Box::new([0; 2048]),
        })
    }

    /// "raw" or "ping", for the log.
    pub fn kind(&self) -> &'static str {
        if self.raw { "raw" } else { "ping" }
    }
}

/// ICMP_FILTER on a raw socket: drop every type but echo reply in the
/// kernel (the bit of a type set means "filter out").
fn only_echo_replies(fd: &OwnedFd) -> io::Result<()> {
    const ICMP_FILTER: libc::c_int = 1;
    let mask: u32 = !(1u32 << ECHO_REPLY);
    // SAFETY: setsockopt reads `size_of::<u32>()` bytes from `&mask`,
    // which lives across the call; the fd is open (owned by the caller).
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_RAW,
            ICMP_FILTER,
            (&raw const mask).cast(),
            size_of::<u32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The RFC 1071 checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An echo request with this identifier and sequence number.
pub fn echo_request(ident: u16, seq: u16) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = ECHO_REQUEST;
    m[4..6].copy_from_slice(&ident.to_be_bytes());
    m[6..8].copy_from_slice(&seq.to_be_bytes());
    m[8..].copy_from_slice(PAYLOAD);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// Whether `msg` (with its IP header when `raw`) is an echo reply to
/// `ident` (any identifier on a ping socket: the kernel matched it).
pub fn is_our_reply(msg: &[u8], raw: bool, ident: u16) -> bool {
    let icmp = if raw {
        let Some(&v) = msg.first() else { return false };
        match msg.get(usize::from(v & 0x0f) * 4..) {
            Some(rest) if v >> 4 == 4 => rest,
            _ => return false,
        }
    } else {
        msg
    };
    icmp.len() >= 8
        && icmp[0] == ECHO_REPLY
        && icmp[1] == 0
        && (!raw || icmp[4..6] == ident.to_be_bytes())
}

impl Prober for IcmpProber {
    fn send(&mut self, addr: Ipv4Addr) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let m = echo_request(self.ident, self.seq);
        sendto(
            &self.fd,
            &m,
            SendFlags::DONTWAIT,
            &SocketAddrV4::new(addr, 0),
        )?;
        Ok(())
    }

    fn answers(&mut self, seen: &mut dyn FnMut(Ipv4Addr)) {
        while let Ok((n, _, from)) = recvfrom(&self.fd, &mut self.buf[..], RecvFlags::DONTWAIT) {
            let Some(from) = from.and_then(|a| SocketAddrV4::try_from(a).ok()) else {
                continue;
            };
            if is_our_reply(&self.buf[..n.min(self.buf.len())], self.raw, self.ident) {
                seen(*from.ip());
            }
        }
    }

    fn wait(&mut self, timeout: Duration) {
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        os::readable(self.fd.as_fd(), ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_carries_a_valid_checksum() {
        let m = echo_request(0x1234, 7);
        assert_eq!(m[0], ECHO_REQUEST);
        assert_eq!(checksum(&m), 0, "a message with its checksum sums to zero");
    }

    #[test]
    fn only_echo_replies_to_our_identifier_count() {
        let mut reply = echo_request(0x1234, 7);
        reply[0] = ECHO_REPLY;
        assert!(is_our_reply(&reply, false, 0));
        let mut ip = vec![0x45u8];
        ip.extend_from_slice(&[0; 19]);
        ip.extend_from_slice(&reply);
        assert!(is_our_reply(&ip, true, 0x1234));
        assert!(!is_our_reply(&ip, true, 0x4321), "another program's ping");
        let request = echo_request(0x1234, 7);
        assert!(
            !is_our_reply(&request, false, 0x1234),
            "a request is no answer"
        );
        assert!(!is_our_reply(&[0x45, 0], true, 0x1234), "short: no panic");
        assert!(!is_our_reply(&[], true, 0x1234));
    }
}
