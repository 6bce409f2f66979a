//! The control API: a Unix socket on which the running daemon answers an
//! operator (`xdhcpctl`), one JSON request and one JSON answer per line.
//!
//! - `proto.rs`: the requests and how their arguments are checked (shared
//!   by the daemon and xdhcpctl);
//! - `index.rs`: the address index the lease lookups (and leasequery)
//!   answer from, kept by its own thread from the journal's tap: the packet path pays
//!   nothing for it (the journal's writer offers each written record to
//!   one more channel, a `try_send`);
//! - `runtime.rs`: reservations added at runtime, kept in a file of their
//!   own in the journal directory and merged into the configuration at
//!   start and at every reload;
//! - `server.rs`: the socket (its mode and owner), the side threads, and
//!   the answer to each request; what changes the engine as a whole
//!   (reload, reservations) is asked of the main thread, which owns the
//!   engine swap, over a channel;
//! - `view.rs`: how xdhcpctl prints the answers (tables, `top`).
pub mod index;
pub mod proto;
pub mod runtime;
pub mod server;
pub mod view;

pub use crate::config::control::DEFAULT_SOCKET;
