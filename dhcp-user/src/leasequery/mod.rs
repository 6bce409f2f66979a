//! DHCP leasequery (RFC 4388): a relay or access concentrator that lost
//! its state asks who holds an address, or which address a MAC address or
//! client identifier holds, and is answered DHCPLEASEACTIVE,
//! DHCPLEASEUNASSIGNED or DHCPLEASEUNKNOWN.
//!
//! A query arrives on the packet path like every DHCP frame. The worker
//! does not answer it: the answer needs the address index (what only the
//! journal knows: hardware address, client-id, option 82, last
//! transaction), which sits behind a lock the index's keeper and the
//! control API take. So the engine checks that the query is relayed by an
//! allowed requester, and the worker copies the frame into a fixed-size
//! [`Job`] and `try_send`s it here ([`LeaseQueryLink`]); a full queue is
//! counted (`leasequery_dropped`), never waited on. This service answers
//! on a side thread, one AF_PACKET `sendto` per answer.
//!
//! - `link.rs`: the fixed-size job and the workers' end of the queue (it
//!   imports nothing of the crate: the engine's handler uses it, and
//!   nothing here is imported back by the engine);
//! - `answer.rs`: which answer and which fields, from the query and the
//!   index (a pure function, tested without sockets);
//! - `reply.rs`: the answer's frame (to the relay: giaddr, port 67);
//! - `service.rs`: the thread, and the socket it sends on;
//! - `bulk.rs`: bulk leasequery (RFC 6926) over TCP, on a thread of its
//!   own (`bulk_listen`).
pub mod answer;
pub mod bulk;
pub mod link;
pub mod reply;
pub mod service;

pub use link::{JOB_FRAME, Job, LeaseQueryLink, QUEUE, queue};
pub use service::{LeaseQueryService, LeaseQueryStats};
