//! The lab that the demo, the benchmarks and the privileged tests share:
//! network namespaces joined by veth pairs ([`lab`]), a running daemon
//! inside them ([`daemon`]), and reading what a capture saw ([`capture`]).
pub mod bench;
pub mod bench_journal;
pub mod capture;
pub mod daemon;
pub mod fuzz;
pub mod kea;
pub mod lab;
pub mod perfdhcp;
pub mod setup;
