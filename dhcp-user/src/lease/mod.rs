//! Address pools and the lease table: what the engine decides over.
//!
//! [`pool`] keeps which addresses are taken as bits in atomic words (no
//! lock on allocation); [`table`] keeps who holds what, sharded so that
//! workers rarely meet on the same lock; [`journal`] writes every change
//! to disk so that a restart keeps them. The command-line tools over the
//! journal's files are in [`crate::tools`].
pub mod journal;
pub mod pool;
pub mod table;

pub use pool::Pool;
pub use table::{ClientKey, Lease, LeaseState, LeaseTable};
