//! The few system calls the daemon makes by hand, in one place: the
//! eventfd that wakes a sleeping worker ([`EventFd`]), the poll(2) it
//! sleeps in ([`wait_for`]), the interface ioctls ([`netdev`]) and the
//! address list ([`ifaddrs`]), a group's id by name ([`group`], for the
//! control socket), the cores a thread may run on ([`affinity`]) and its
//! time slice ([`sched`]).
//!
//! Both the I/O workers and the lease journal's writer use them, so they
//! live below both and import nothing of the crate. They are written with
//! `rustix`, which wraps each call in a typed, fd-owning API; only
//! getifaddrs(3) and getgrnam_r(3) go through `libc`, as they are C library
//! routines (a netlink dump, an NSS lookup), not system calls rustix could wrap.
pub mod affinity;
mod eventfd;
pub mod group;
pub mod ifaddrs;
pub mod netdev;
mod poll;
pub mod sched;

pub use eventfd::EventFd;
pub use poll::{readable, wait_for, wait_for_any};

/// The size of a memory page, from the auxiliary vector.
pub fn page_size() -> usize {
    rustix::param::page_size()
}
