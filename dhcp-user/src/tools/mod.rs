//! Command-line tools over the lease journal, apart from the data path:
//! what `xdhcpd leases` shows ([`show`]) and the move of leases between
//! Kea and xdhcpd (`xdhcpd import-kea` / `export-kea`: [`transfer`] over
//! [`kea_csv`]). They read or write the journal's files; the workers and
//! the engine never call them. A control API of the running daemon will
//! sit beside them.
pub mod kea_csv;
pub mod show;
pub mod transfer;
