//! xdhcpd: a DHCPv4 server that answers from user space through AF_XDP.
//!
//! The data's way through, one folder a stage:
//! - [`wire`]: zero-copy views of the received frame and the reply writer;
//! - [`engine`]: protocol decisions, no I/O (subnet, address, reply);
//! - [`lease`]: pool bitmaps and the lease table the engine decides over;
//! - [`handler`]: the contract between I/O and engine, which both depend
//!   on and neither owns;
//! - [`io`]: the XDP steering program, AF_XDP rings, the AF_PACKET fallback
//!   and the pinned workers that carry frames between rings and engine.
//!
//! Beside the way: [`config`] (the file and the settings types every stage
//! reads), [`os`] (the eventfd, poll and interface system calls, for the
//! workers and the journal alike; it imports nothing of the crate),
//! [`probe`] (the side thread that pings an address before it is offered,
//! `conflict_check`; it imports only `os`), [`status`] (the snapshot of
//! every counter that the stats file, the control API and the metrics
//! endpoint read), [`control`] (the control API's socket and side threads,
//! and what xdhcpctl prints of its answers), [`leasequery`] (RFC 4388
//! answers on a side thread, from the control API's address index; the
//! engine's handler reaches it only through its queue link, which holds
//! nothing of the crate).
//!
//! Nothing in an earlier stage reaches into a later one: the engine never
//! touches rings, the wire views never know about leases.
pub mod cluster;
pub mod config;
pub mod control;
pub mod ddns;
pub mod engine;
pub mod handler;
pub mod io;
pub mod latency;
pub mod lease;
pub mod leasequery;
pub mod metrics;
pub mod os;
pub mod probe;
pub mod stats;
pub mod status;
pub mod tools;
pub mod wire;
