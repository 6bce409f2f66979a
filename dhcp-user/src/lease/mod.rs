//! Address pools and the lease table: what the engine decides over.
//!
//! [`pool`] keeps which addresses are taken as bits in atomic words (no
//! lock on allocation); [`table`] keeps who holds what, sharded so that
//! workers rarely meet on the same lock.
pub mod journal;
pub mod kea_csv;
pub mod pool;
pub mod show;
pub mod table;
pub mod transfer;

pub use pool::Pool;
pub use table::{ClientKey, Lease, LeaseState, LeaseTable};
