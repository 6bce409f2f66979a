//! The daemon's configuration: one TOML file, read once at start.
//!
//! A file becomes the settings the daemon runs with in two steps. serde
//! reads the text into [`Config`], the file as written (`file.rs`): a
//! default for every key left out, an error for every key it does not
//! know. [`Config::parse`] then checks the file as a whole (`check.rs`)
//! and turns each `[[subnet]]` into a [`Subnet`] of numbers and encoded
//! options; the result, [`Checked`], is what the engine and the I/O are
//! built from. Every error names the line of the offending entry and the
//! reason, so an operator can fix the file without guessing.
//!
//! `modes` holds the I/O settings (backend, XDP attach, socket bind,
//! polling), `options` the DHCP options a subnet hands out.
mod check;
pub mod cluster;
pub mod control;
pub mod ddns;
mod file;
pub mod leasequery;
pub mod modes;
pub mod options;

pub use check::{
    Checked, ConfigError, Identity, LIMIT_KINDS, Limits, Rate, Reservation, Subnet, prefix_mask,
};
pub use cluster::{Cluster, ClusterDurability, ClusterMode};
pub use control::Control;
pub use file::{
    Config, ConflictCheck, DEFAULT_CONFLICT_SKIP_RECENT, DEFAULT_CONFLICT_WAIT_MS,
    DEFAULT_METRICS_LISTEN, JournalConfig, JournalMode, LimitsConfig, MetricsConfig,
    ReservationConfig, SubnetConfig, UntrustedAgentInfo,
};
pub use leasequery::LeaseQuery;
pub use modes::{AttachMode, BindMode, IoKind, PollMode};
pub use options::{NamedOptions, RawOption};
