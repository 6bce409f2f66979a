//! Attacks a server must withstand, run beside the normal scenario: a
//! second fleet of clients with MACs of their own (`--attack-mac-prefix`),
//! its own rate, window and count, on the same workers and sockets as the
//! normal fleet. A reply goes to the fleet its chaddr names, so one run
//! reports what the attack got and what the legitimate clients got.
//!
//! - `starve`: DORA for many made-up MACs as fast as the window allows,
//!   from one place: one port (direct; `--attack-src-mac` makes every
//!   frame come from one Ethernet address), one circuit id (through the
//!   relays, `--attack-circuit-id`) or one VLAN (`--attack-vlan`).
//! - `spoof82`: a subscriber forging a relay's information: giaddr 0 and
//!   an option 82 with a chosen circuit id (and link selection 82.5).
//! - `decline`: DECLINE every address ACKed, or every address only
//!   offered (`--attack-decline offered`, no REQUEST at all).
use super::fleet::Fleet;
use super::reply::{self, Parsed};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::time::Duration;
use xdhcp::wire::VlanTags;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Attack {
    /// DORA for many made-up MACs, as fast as the window allows.
    Starve,
    /// DORA with giaddr 0 and a forged option 82 (`--attack-circuit-id`).
    Spoof82,
    /// DORA, then DECLINE the address (`--attack-decline`).
    Decline,
}

impl Attack {
    pub const fn name(self) -> &'static str {
        match self {
            Attack::Starve => "starve",
            Attack::Spoof82 => "spoof82",
            Attack::Decline => "decline",
        }
    }
}

/// What the decline attack declines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeclineWhen {
    /// The address the server ACKed (a full DORA first).
    Acked,
    /// The address the server only offered (DISCOVER, OFFER, DECLINE).
    Offered,
}

/// The attack fleet of a run.
#[derive(Clone, Debug)]
pub struct AttackOptions {
    pub attack: Attack,
    /// Made-up clients (distinct MACs).
    pub clients: u32,
    /// Exchanges in all; None (and no duration): one per client, or the
    /// normal fleet's duration when it runs by duration.
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    /// Exchanges started per second; 0: as fast as the window allows.
    pub rate: f64,
    pub window: u32,
    pub timeout: Duration,
    pub retries: u8,
    /// The normal fleet starts this much later than the attack.
    pub lead: Duration,
    pub mac_prefix: [u8; 3],
    /// One circuit id for every attack client (82.1).
    pub circuit_id: Option<Vec<u8>>,
    pub remote_id: Option<Vec<u8>>,
    /// Link selection (82.5) in the attack's option 82.
    pub link_selection: Option<Ipv4Addr>,
    /// The attack's VLAN tags; None: the normal fleet's.
    pub vlans: Option<VlanTags>,
    /// The relays the attack comes through; None: the normal fleet's.
    /// spoof82 never has any (giaddr 0 is the point).
    pub relays: Option<Vec<Ipv4Addr>>,
    /// Ethernet source of every direct attack frame.
    pub src_mac: Option<[u8; 6]>,
    pub decline: DeclineWhen,
}

impl AttackOptions {
    /// The attack with its defaults: 1000 clients (1 for spoof82), open
    /// loop in a window of 512, no retransmission (a flood does not wait),
    /// MACs 02:61:74:xx:xx:xx.
    pub fn new(attack: Attack) -> AttackOptions {
        AttackOptions {
            attack,
            clients: if attack == Attack::Spoof82 { 1 } else { 1000 },
            count: None,
            duration: None,
            rate: 0.0,
            window: 512,
            timeout: Duration::from_secs(1),
            retries: 0,
            lead: Duration::ZERO,
            mac_prefix: [0x02, 0x61, 0x74],
            circuit_id: None,
            remote_id: None,
            link_selection: None,
            vlans: None,
            relays: None,
            src_mac: None,
            decline: DeclineWhen::Acked,
        }
    }

    /// Whether the attack's frames carry option 82 without a relay.
    pub fn option82(&self) -> bool {
        self.attack == Attack::Spoof82
            || self.circuit_id.is_some()
            || self.remote_id.is_some()
            || self.link_selection.is_some()
    }
}

/// One worker's fleets: the normal one and, beside it, the attack. The
/// worker loops drive this; without an attack it is the normal fleet
/// alone, frame for frame.
pub struct Fleets {
    pub legit: Fleet,
    pub attack: Option<Fleet>,
    attack_prefix: [u8; 3],
    /// Which fleet is asked first for the next frame: they take turns, so
    /// neither crowds the other out of a TX batch.
    attack_first: bool,
}

impl Fleets {
    pub fn new(legit: Fleet, attack: Option<Fleet>) -> Fleets {
        Fleets {
            attack_prefix: attack.as_ref().map_or([0; 3], Fleet::mac_prefix),
            legit,
            attack,
            attack_first: false,
        }
    }

    /// One received frame, to the fleet whose MAC prefix its chaddr has
    /// (what is no reply goes to the normal fleet's counters).
    pub fn receive(&mut self, now_ns: u64, frame: &[u8]) {
        let Some(a) = &mut self.attack else {
            self.legit.receive(now_ns, frame);
            return;
        };
        let parsed = reply::parse(frame, now_ns);
        match parsed {
            Parsed::Reply(r) if r.chaddr[..3] == self.attack_prefix => a.take(parsed),
            _ => self.legit.take(parsed),
        }
    }

    pub fn drain_inbox(&mut self) {
        self.legit.drain_inbox();
        if let Some(a) = &mut self.attack {
            a.drain_inbox();
        }
    }

    pub fn tick(&mut self, now_ns: u64) {
        self.legit.tick(now_ns);
        if let Some(a) = &mut self.attack {
            a.tick(now_ns);
        }
    }

    pub fn has_ready(&self) -> bool {
        self.legit.has_ready() || self.attack.as_ref().is_some_and(Fleet::has_ready)
    }

    /// The next frame of one fleet or the other, taking turns.
    pub fn next_frame(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        let Some(a) = &mut self.attack else {
            return self.legit.next_frame(now_ns, buf);
        };
        self.attack_first = !self.attack_first;
        if self.attack_first {
            a.next_frame(now_ns, buf)
                .or_else(|| self.legit.next_frame(now_ns, buf))
        } else {
            self.legit
                .next_frame(now_ns, buf)
                .or_else(|| a.next_frame(now_ns, buf))
        }
    }

    pub fn is_done(&self, now_ns: u64) -> bool {
        self.legit.is_done(now_ns) && self.attack.as_ref().is_none_or(|a| a.is_done(now_ns))
    }
}
