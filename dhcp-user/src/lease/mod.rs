//! Address pools and the lease table: what the engine decides over.
//!
//! [`pool`] keeps which addresses are taken as bits in atomic words (no
//! lock on allocation); [`table`] keeps who holds what, sharded so that
//! workers rarely meet on the same lock; [`journal`] writes every change
//! to disk so that a restart keeps them; [`limits`] counts the leases of
//! each subscriber line and the rate of its requests. The command-line tools that read
//! and write the journal's files sit outside the data path, in `tools`,
//! which depends on this module and not the reverse.
pub mod journal;
pub mod limits;
pub mod owner;
pub mod pool;
pub mod table;

pub use pool::Pool;
pub use table::{ClientKey, Full, Lease, LeaseState, LeaseTable, StateCounts};
