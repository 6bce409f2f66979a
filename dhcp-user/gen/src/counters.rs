//! The generator's counters. Each worker owns one [`GenCounters`] and is
//! its only writer (a plain load + store, no locked instruction); the
//! progress line reads them from the main thread.
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! gen_counters {
    ($($(#[$attr:meta])* $name:ident: $doc:literal),* $(,)?) => {
        /// One worker's live counters.
        #[derive(Default, Debug)]
        #[repr(align(128))]
        pub struct GenCounters {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        /// A plain copy of [`GenCounters`], summed over workers for reports.
        #[derive(Default, Debug, Clone, Copy, Serialize, PartialEq, Eq)]
        pub struct GenSnapshot {
            $(#[doc = $doc] $(#[$attr])* pub $name: u64,)*
        }

        impl GenCounters {
            pub fn snapshot(&self) -> GenSnapshot {
                GenSnapshot { $($name: self.$name.load(Relaxed),)* }
            }
        }

        impl std::ops::AddAssign for GenSnapshot {
            fn add_assign(&mut self, o: Self) {
                $(self.$name += o.$name;)*
            }
        }
    };
}

gen_counters! {
    started: "Exchanges started (a DORA, or a DORA and what the scenario does after it).",
    completed: "Exchanges that reached the scenario's goal.",
    finished: "Exchanges over: completed, timed out, NAKed or given up.",
    sent: "Frames put on the wire.",
    sent_discover: "DHCPDISCOVER sent (retransmissions included).",
    sent_request: "DHCPREQUEST sent (selecting, renewing, rebinding; retransmissions included).",
    sent_release: "DHCPRELEASE sent.",
    retransmits: "Messages sent again after their reply did not come in time.",
    tx_full: "Frames not sent at once because no TX buffer was free (sent later).",
    received: "Frames the generator's socket received.",
    offers: "DHCPOFFER matched to a client waiting for one.",
    acks: "DHCPACK matched to a client waiting for one.",
    naks: "DHCPNAK matched to a client (its exchange ends there).",
    echoes: "Echo scenario: frames back with a waiting client's xid and chaddr (one round trip each).",
    timeouts: "Exchanges given up after the last retransmission went unanswered.",
    dora: "Full DORA exchanges completed (DISCOVER to ACK).",
    renewals: "Renewals (unicast REQUEST with ciaddr) answered with an ACK.",
    rebinds: "Rebinds (broadcast REQUEST with ciaddr) answered with an ACK.",
    wrong_xid: "Replies whose xid is no client's current transaction.",
    wrong_chaddr: "Replies whose xid names a client but whose chaddr is another's.",
    bad_subnet: "OFFER/ACK with a yiaddr outside --expect-subnet.",
    missing_lease_time: "OFFER/ACK without a lease time (option 51).",
    missing_server_id: "OFFER/ACK/NAK without a server identifier (option 54); such an OFFER is unusable.",
    duplicate_addresses: "ACKs of an address another client holds.",
    unexpected: "Well-formed replies the client was not waiting for (a second OFFER after a retransmission, an ACK to a DISCOVER, ...).",
    malformed: "Received frames that failed the wire checks.",
    not_ours: "Received frames that are no BOOTREPLY to port 68 or to a relay.",
    handoff_dropped: "Replies for another worker's client lost because its inbox was full.",
    dup_check_skipped: "ACKed addresses the duplicate check could not record (its table was full).",
    // Only the decline attack sends these; left out of the JSON while 0,
    // so a run without it reports what it always did.
    #[serde(skip_serializing_if = "is_zero")]
    sent_decline: "DHCPDECLINE sent (the decline attack).",
    // Only the reboot scenario and --rebind-on-timeout make these.
    #[serde(skip_serializing_if = "is_zero")]
    reboots: "INIT-REBOOT REQUESTs answered with an ACK (reboot scenario).",
    #[serde(skip_serializing_if = "is_zero")]
    moved: "ACKs in INIT-REBOOT, RENEWING or REBINDING of an address other than the one the client held.",
    #[serde(skip_serializing_if = "is_zero")]
    fell_back: "Renewals that went unanswered and were sent again broadcast, REBINDING (--rebind-on-timeout).",
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Adds `n` to a counter only the calling thread writes.
#[inline(always)]
pub fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed)
}

/// Adds one to a counter only the calling thread writes.
#[inline(always)]
pub fn bump(c: &AtomicU64) {
    add(c, 1)
}
