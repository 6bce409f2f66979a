//! DHCPDECLINE (RFC 2131 §4.3.3): a client tells us the address we bound
//! to it is in use by someone else. Believed only within limits, since
//! every believed DECLINE takes an address out of service for
//! `decline_probation`:
//!
//! - only from the client the address is bound to, naming us: an address
//!   that was only offered, or bound to another client, is not the
//!   sender's to decline (`decline_not_bound`);
//! - at most `decline_rate` per client in an hour (`decline_rate_limited`),
//!   tracked in a fixed table, so the check allocates nothing;
//! - at most `max_probation_percent` of a subnet's pool in probation at
//!   once: a DECLINE over it releases the address instead
//!   (`probation_full`).
use super::client::{Client, Note};
use super::subnet::SubnetRt;
use super::{Engine, Request};
use crate::lease::{ClientKey, Full, LeaseState};
use foldhash::fast::{FixedState, RandomState};
use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Slots of the decline table: 32 KiB. Only clients that declined within
/// the hour occupy one.
const SLOTS: usize = 4096;
/// The window of `decline_rate`, in minutes.
const WINDOW_MIN: u32 = 60;

/// Recent declines per client, in a fixed table of atomic words: a slot
/// per hash of the client key, holding a 16-bit tag of the key, the count
/// and the minute its window began. A client whose slot another decliner
/// took starts afresh; with a seed chosen at random at start, a client
/// cannot choose whose slot it lands in.
pub(super) struct DeclineRates {
    slots: Box<[AtomicU64]>,
    hasher: FixedState,
}

fn pack(tag: u16, count: u16, start: u32) -> u64 {
    (u64::from(tag) << 48) | (u64::from(count) << 32) | u64::from(start)
}

fn unpack(v: u64) -> (u16, u16, u32) {
    ((v >> 48) as u16, (v >> 32) as u16, v as u32)
}

impl DeclineRates {
    pub(super) fn new() -> DeclineRates {
        DeclineRates::with_seed(RandomState::default().hash_one(SLOTS))
    }

    fn with_seed(seed: u64) -> DeclineRates {
        DeclineRates {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: FixedState::with_seed(seed),
        }
    }

    fn slot(&self, key: &ClientKey) -> (&AtomicU64, u16) {
        // The link too: `ClientKey`'s own hash leaves it out (see
        // there), and one client on two links has a rate on each.
        let h = self.hasher.hash_one((key.subnet, key));
        (&self.slots[h as usize % SLOTS], (h >> 48) as u16)
    }

    /// Takes one DECLINE of `key` at engine second `now`: false when the
    /// client already made `rate` within its window.
    pub(super) fn take(&self, key: &ClientKey, now: u32, rate: u16) -> bool {
        if rate == 0 {
            return false;
        }
        let (slot, tag) = self.slot(key);
        let minute = now / 60;
        slot.fetch_update(Relaxed, Relaxed, |v| {
            let (t, count, start) = unpack(v);
            if t == tag && minute.wrapping_sub(start) < WINDOW_MIN {
                (count < rate).then(|| pack(tag, count + 1, start))
            } else {
                Some(pack(tag, 1, minute))
            }
        })
        .is_ok()
    }
}

/// What a believed DECLINE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Declined {
    /// Under quarantine for `decline_probation` (or, reserved, kept out of
    /// the pool by its reservation anyway).
    Quarantined(Ipv4Addr),
    /// The pool's probation is full: back in the pool.
    Released(Ipv4Addr),
    /// The lease table, at its bound, had no room for the quarantine
    /// record: back in the pool (through [`Engine::on_evict`]), as better
    /// a conflict the client may decline again than an address lost until
    /// restart.
    NoRoom(Ipv4Addr),
}

impl Engine {
    /// Ends the sender's binding of the address it declines and puts the
    /// address into probation, within the limits above; what it did, if
    /// anything.
    pub(super) fn decline(
        &self,
        s: &SubnetRt,
        c: &Client,
        req: &Request<'_>,
        now: u32,
    ) -> Option<Declined> {
        let addr = req.opts.requested_ip?;
        if !self.names_us(s, c, req) {
            return None;
        }
        // Changes or removes the client's own record only: never Full.
        let done = self.lease_update(&c.key, |e| {
            if !e.is_some_and(|l| l.state == LeaseState::Bound && l.addr == addr) {
                c.note.set(Some(Note::DeclineNotBound));
                return None;
            }
            if !self.declines.take(&c.key, now, self.decline_rate) {
                c.note.set(Some(Note::DeclineRateLimited));
                return None;
            }
            // The client will not use the address (§3.1.5): its binding
            // ends either way, and with it its count on its lines.
            if let Some(l) = e.take() {
                self.put_lines(l.lines);
            }
            if s.is_reserved(addr) || s.enter_probation() {
                return Some(Declined::Quarantined(addr));
            }
            // Over the cap the address goes back into service, as if the
            // client had released it: keeping it bound to a client that
            // has stopped using it would take it out of service for
            // nobody.
            c.note.set(Some(Note::ProbationFull));
            s.free(addr);
            Some(Declined::Released(addr))
        });
        let done = done.ok().flatten()?;
        if let Declined::Quarantined(a) = done
            && !s.is_reserved(a)
        {
            match self.quarantine(s, a, now.saturating_add(self.decline_hold)) {
                Ok(true) => {}
                // Already in quarantine (nothing new entered probation).
                Ok(false) => s.leave_probation(),
                // No room for the quarantine: the address went back to
                // the pool, and out of probation with it.
                Err(Full) => {
                    s.leave_probation();
                    return Some(Declined::NoRoom(a));
                }
            }
        }
        Some(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_allows_n_per_window_per_client_then_starts_afresh() {
        let t = DeclineRates::with_seed(1);
        let a = ClientKey::new(0, 0, &[2, 0, 0, 0, 0, 1]);
        let b = ClientKey::new(0, 0, &[2, 0, 0, 0, 0, 2]);
        assert!(!std::ptr::eq(t.slot(&a).0, t.slot(&b).0), "pick keys apart");
        assert!(t.take(&a, 100, 2));
        assert!(t.take(&a, 200, 2));
        assert!(!t.take(&a, 300, 2), "third within the hour");
        assert!(t.take(&b, 300, 2), "another client has its own count");
        assert!(!t.take(&a, 60 + 59 * 60, 2), "still the same window");
        assert!(t.take(&a, 60 * 61, 2), "an hour after the first");
        assert!(!t.take(&a, 0, 0), "rate 0 takes none");
    }

    /// The table's key hash leaves the link out; the rate does not.
    #[test]
    fn one_client_on_two_links_has_a_rate_on_each() {
        let t = DeclineRates::with_seed(1);
        let mac = [2, 0, 0, 0, 0, 1];
        let (a, b) = (ClientKey::new(0, 0, &mac), ClientKey::new(1, 0, &mac));
        assert!(t.take(&a, 100, 1));
        assert!(!t.take(&a, 100, 1));
        assert!(t.take(&b, 100, 1), "the other link's rate is its own");
    }
}
