//! DDNS: every lease in DNS, by RFC 2136 updates signed with TSIG, off the
//! packet path.
//!
//! - `name`: the client's name (option 81 / 12) made into one safe DNS
//!   label, the generated names, option 81 in the reply;
//! - `dhcid`: the DHCID record (RFC 4701) that says which client a name
//!   belongs to;
//! - `update`: the RFC 4703 procedures as RFC 2136 messages, per conflict
//!   mode, signed and checked with hickory-proto's TSIG;
//! - `transport`: UDP to the DNS server, TCP when the answer is truncated.
//! - `state`: per address, what DNS should hold and what it holds; the
//!   queue of each DNS server is the difference;
//! - `store`: what DNS holds, on disk, so that the difference can be
//!   worked out again after a restart from it and the lease journal.
//! - `service`: the side thread that runs it.
pub mod dhcid;
pub mod name;
pub mod service;
pub mod state;
pub mod store;
pub mod transport;
pub mod update;
