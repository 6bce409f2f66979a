//! The AF_PACKET fallback backend, for hosts where the XDP program cannot
//! attach (`io = "packet"`).
//!
//! Each worker owns one raw packet socket on the interface. A classic BPF
//! filter in the kernel passes only IPv4 UDP frames to port 67 (untagged
//! or with one or two 802.1Q/802.1ad tags), so the worker never copies
//! ARP, SSH or anything else. Frames move in batches: one `recvmmsg` takes
//! up to `batch` frames into buffers allocated once at start, the handler
//! writes each reply into its own TX buffer, one `sendmmsg` sends them all.
//!
//! recvmmsg copies every frame once; a PACKET_MMAP (TPACKET_V3) RX ring
//! would save that copy and the syscall per batch. This backend is the
//! fallback, not the fast path (that is AF_XDP), so the simpler socket
//! calls were chosen.
//!
//! With several workers the sockets join one PACKET_FANOUT group. Its
//! hash and CPU modes do not spread DHCP: every DISCOVER is
//! 0.0.0.0:68 → 255.255.255.255:67, one flow as far as the kernel's hash
//! goes, and a relay's traffic is one flow too. The group therefore uses a
//! classic BPF fanout program that picks the worker by the client's
//! hardware address (BOOTP chaddr), so a client's retransmissions and its
//! whole DORA reach the same worker.
//!
//! The files: [`worker`] starts the workers and runs their loop, `batch`
//! holds one worker's preallocated recvmmsg/sendmmsg buffers, `socket`
//! opens and filters the sockets, `bpf` assembles the classic BPF
//! programs they carry.
mod batch;
mod bpf;
mod socket;
#[cfg(test)]
mod tests;
pub mod worker;

pub use worker::spawn_workers;

/// EtherType ETH_P_ALL in network order, as sockaddr_ll wants it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();
