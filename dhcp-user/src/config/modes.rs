//! The I/O choices a configuration file names: which backend carries the
//! frames, how the XDP program attaches, how the AF_XDP sockets bind, how
//! a worker waits. They are settings, so they live here; `io` reads them
//! and acts on them (and the generator's command line reuses them).
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which I/O backend carries the frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoKind {
    /// XDP steering into AF_XDP sockets.
    #[default]
    Xdp,
    /// AF_PACKET sockets, for hosts where XDP cannot attach.
    Packet,
}

/// Where the kernel runs the steering program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    /// Driver mode when the interface takes it, generic mode otherwise.
    #[default]
    Auto,
    /// Native XDP in the driver: frames are steered before any socket
    /// buffer exists.
    Driver,
    /// Generic XDP in the network stack: works on every interface, but
    /// each frame is already a socket buffer and AF_XDP must copy it.
    Generic,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Auto => "auto",
            AttachMode::Driver => "driver",
            AttachMode::Generic => "generic",
        })
    }
}

/// How the AF_XDP sockets bind to their queues.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    /// Zero-copy, else copy mode with a warning.
    #[default]
    Auto,
    Zerocopy,
    Copy,
}

/// How a worker waits for frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Busy-poll the rings: lowest latency, one core at 100 %.
    Spin,
    /// Busy-poll while traffic flows; after a run of empty batches, sleep
    /// in poll(2) until the kernel has frames, so an idle server uses
    /// about no CPU.
    Adaptive,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_mode_config_names() {
        #[derive(serde::Deserialize)]
        struct C {
            m: AttachMode,
        }
        let c: C = serde_json::from_str(r#"{"m":"generic"}"#).unwrap();
        assert_eq!(c.m, AttachMode::Generic);
        assert_eq!(AttachMode::Driver.to_string(), "driver");
    }
}
