//! xdhcpd: a DHCPv4 server that answers from user space through AF_XDP.
//!
//! The data's way through, one folder a stage:
//! - [`wire`]: zero-copy views of the received frame and the reply writer;
//! - [`engine`]: protocol decisions, no I/O (subnet, address, reply);
//! - [`lease`]: pool bitmaps and the lease table the engine decides over;
//! - [`io`]: the XDP steering program, AF_XDP rings, the AF_PACKET fallback
//!   and the pinned workers that carry frames between rings and engine.
//!
//! Nothing in an earlier stage reaches into a later one: the engine never
//! touches rings, the wire views never know about leases.
pub mod config;
pub mod engine;
pub mod io;
pub mod lease;
pub mod stats;
pub mod tools;
pub mod wire;
