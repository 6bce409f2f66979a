//! The xtask library: the lab that the demo, the benchmarks and the
//! privileged tests share, and the commands of `cargo xtask` (main.rs is
//! only their command line).
//!
//! The lab: network namespaces joined by veth pairs ([`lab`]), a running
//! daemon inside them ([`daemon`]), Kea beside it ([`kea`]), a BIND named
//! taking its DNS updates ([`named`]), reading what a
//! capture saw ([`capture`]), the processes xtask starts ([`process`]).
//! The commands: [`setup`], [`lab_cmd`], [`demo`], [`test`] (with
//! [`fuzz`]), [`bench`] (with [`perfdhcp`]'s report), [`deb`],
//! all run in the [`workspace`].
pub mod bench;
pub mod capture;
pub mod daemon;
pub mod deb;
pub mod demo;
pub mod fuzz;
pub mod kea;
pub mod lab;
pub mod lab_cmd;
pub mod named;
pub mod perfdhcp;
pub mod process;
pub mod setup;
pub mod test;
pub mod workspace;
