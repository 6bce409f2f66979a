//! What the simulated clients do, and what counts as one completed
//! exchange.
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// DISCOVER, OFFER, REQUEST, ACK. Completed: the ACK.
    Dora,
    /// DORA, then a unicast REQUEST with ciaddr (RENEWING). Completed:
    /// the renewal's ACK.
    Renew,
    /// DORA, then a broadcast REQUEST with ciaddr (REBINDING). Completed:
    /// the rebind's ACK.
    Rebind,
    /// DORA, then a RELEASE. Completed: the RELEASE sent.
    Release,
    /// DORA through relay agents (giaddr set, unicast to the server,
    /// replies to port 67 of the relay). Completed: the ACK.
    Relay,
    /// Steady state of a city network: bound clients renew, new clients
    /// come (`--renew-share`). Completed: each ACK of a DORA or renewal.
    Mixed,
    /// Every client at once, as after an outage; reports the time until
    /// all are bound. Completed: the ACK.
    Reconnect,
    /// DISCOVERs only, to see what the server sheds. Completed: the OFFER.
    Flood,
    /// The clients of `--leases-in` (leases an earlier run was ACKed, e.g.
    /// by a server that has died since) ask for them again: a REQUEST in
    /// INIT-REBOOT (broadcast, option 50, no server identifier), then one
    /// in RENEWING (unicast to whoever ACKed the first). Completed: the
    /// renewal's ACK; an ACK of another address counts as `moved`.
    Reboot,
    /// DISCOVERs against an echo (`xdhcpecho`), which sends each one
    /// back with its addresses swapped. Completed: a frame back with the
    /// client's xid and chaddr, one round trip (its latency is the
    /// `offer` histogram). No lease is checked: an echo hands out none.
    Echo,
}

/// What a client does once its DORA is through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterDora {
    /// The exchange is complete; the client is free for another.
    Done,
    /// The exchange is complete; the client stays bound (may renew later).
    StayBound,
    Renew,
    Rebind,
    Release,
}

impl Scenario {
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::Dora => "dora",
            Scenario::Renew => "renew",
            Scenario::Rebind => "rebind",
            Scenario::Release => "release",
            Scenario::Relay => "relay",
            Scenario::Mixed => "mixed",
            Scenario::Reconnect => "reconnect",
            Scenario::Flood => "flood",
            Scenario::Reboot => "reboot",
            Scenario::Echo => "echo",
        }
    }

    pub const fn after_dora(self) -> AfterDora {
        match self {
            Scenario::Renew => AfterDora::Renew,
            Scenario::Rebind => AfterDora::Rebind,
            Scenario::Release => AfterDora::Release,
            Scenario::Mixed => AfterDora::StayBound,
            Scenario::Dora
            | Scenario::Relay
            | Scenario::Reconnect
            | Scenario::Flood
            | Scenario::Reboot
            | Scenario::Echo => AfterDora::Done,
        }
    }

    /// The exchange ends at the OFFER: no REQUEST is ever sent.
    pub const fn discover_only(self) -> bool {
        matches!(self, Scenario::Flood | Scenario::Echo)
    }
}
