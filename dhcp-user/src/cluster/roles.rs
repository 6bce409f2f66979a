//! Who owns which share, as this server sees it, and what it should do
//! about it: the pure part of the claims and heartbeats (no I/O, no clock
//! of its own), so that takeover, hand back and the choice of the taker
//! are tested without a NATS server.
//!
//! Liveness is judged only by a peer's heartbeat revision changing, timed
//! on this server's monotonic clock: two servers' wall clocks are never
//! compared. A peer never seen counts from this server's start, so a
//! server that just started waits a whole `failover_after` before it takes
//! anything over.
use std::time::{Duration, Instant};

/// The heartbeat document, `hb.<name>` in the KV bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Heartbeat {
    /// Journal replayed and the stream caught up: the server may be handed
    /// its home shares back.
    pub ready: bool,
    pub owned: Vec<u8>,
    pub seq: u64,
}

/// The claim document, `claim.<share>`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    pub owner: String,
}

#[derive(Clone, Debug)]
pub struct PeerView {
    pub name: String,
    /// The last heartbeat revision read, and when it was first read.
    pub revision: Option<u64>,
    pub changed: Instant,
    pub ready: bool,
}

/// A share's claim as last read: `None` until read; `Some(None)` when the
/// key does not exist.
#[derive(Clone, Debug, Default)]
pub struct ClaimView {
    pub read: Option<Option<(usize, u64)>>,
}

/// What the service should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `create(claim.k)` naming this server (its home, or nobody's left).
    Create(u8),
    /// The claim names this server under `revision`: marker, catch up, bit.
    Acquire(u8, u64),
    /// The claim names another server: clear the bit now.
    Revoke(u8),
    /// The claim's owner is dead and this server is the first live one
    /// after it: CAS the claim from `revision` to this server.
    TakeOver(u8, u64),
    /// The home of a share this server holds is back and ready: clear the
    /// bit, wait, then CAS the claim from `revision` to the home.
    HandBack(u8, u64),
}

pub struct Roles {
    pub peers: Vec<PeerView>,
    pub me: usize,
    pub shares: u8,
    pub hot_standby: bool,
    pub failover: Duration,
    pub claims: Vec<ClaimView>,
}

impl Roles {
    pub fn new(
        peers: &[String],
        me: usize,
        shares: u8,
        hot_standby: bool,
        failover: Duration,
        now: Instant,
    ) -> Roles {
        Roles {
            peers: peers
                .iter()
                .map(|n| PeerView {
                    name: n.clone(),
                    revision: None,
                    changed: now,
                    ready: false,
                })
                .collect(),
            me,
            shares: shares.max(1),
            hot_standby,
            failover,
            claims: vec![ClaimView::default(); shares.max(1) as usize],
        }
    }

    /// The server whose share `k` is when everyone is up.
    pub fn home(&self, k: u8) -> usize {
        crate::config::cluster::home_of(k, self.peers.len(), self.hot_standby)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.peers.iter().position(|p| p.name == name)
    }

    /// A heartbeat read at `now` (a peer's or this server's own).
    pub fn heartbeat(&mut self, p: usize, revision: u64, hb: Option<&Heartbeat>, now: Instant) {
        let Some(v) = self.peers.get_mut(p) else {
            return;
        };
        if v.revision != Some(revision) {
            v.revision = Some(revision);
            v.changed = now;
        }
        v.ready = hb.is_some_and(|h| h.ready);
    }

    /// A claim read: its owner's name and revision, or `None` when the key
    /// does not exist. An owner that is no peer counts as a dead one.
    pub fn claim(&mut self, k: u8, read: Option<(&str, u64)>) {
        let owner = read.map(|(name, rev)| (self.index_of(name).unwrap_or(usize::MAX), rev));
        if let Some(c) = self.claims.get_mut(k as usize) {
            c.read = Some(owner);
        }
    }

    /// Whether peer `p`'s heartbeat revision changed within
    /// `failover_after` (this server always is).
    pub fn alive(&self, p: usize, now: Instant) -> bool {
        if p == self.me {
            return true;
        }
        self.peers
            .get(p)
            .is_some_and(|v| v.revision.is_some() && now.duration_since(v.changed) < self.failover)
    }

    /// Whether `p`'s heartbeat has stood still for `failover_after` (or was
    /// never seen in that time): only then may its shares be taken.
    pub fn dead(&self, p: usize, now: Instant) -> bool {
        p != self.me
            && self
                .peers
                .get(p)
                .is_none_or(|v| now.duration_since(v.changed) >= self.failover)
    }

    /// The live server first after `dead` in `peers` order (ring): the one
    /// that tries to take its shares over (the CAS decides anyway).
    pub fn taker(&self, dead: usize, now: Instant) -> usize {
        let n = self.peers.len();
        let start = if dead < n { dead } else { n - 1 };
        (1..=n)
            .map(|i| (start + i) % n)
            .find(|&p| p != dead && self.alive(p, now))
            .unwrap_or(self.me)
    }

    /// What to do, given the shares whose bits are set (`held`), those
    /// being acquired (`acquiring`) or handed back, and whether this server
    /// has caught up the stream and its heartbeats are good (`serving`).
    pub fn plan(&self, now: Instant, held: u32, busy: u32, serving: bool) -> Vec<Action> {
        let mut out = Vec::new();
        for k in 0..self.shares {
            let bit = 1u32 << k;
            let Some(read) = self.claims.get(k as usize).and_then(|c| c.read) else {
                continue;
            };
            if busy & bit != 0 {
                continue;
            }
            match read {
                None => {
                    let home = self.home(k);
                    let mine = home == self.me
                        || (self.dead(home, now) && self.taker(home, now) == self.me);
                    if serving && mine {
                        out.push(Action::Create(k));
                    }
                }
                Some((o, rev)) if o == self.me => {
                    let home = self.home(k);
                    if held & bit == 0 {
                        if serving {
                            out.push(Action::Acquire(k, rev));
                        }
                    } else if home != self.me && self.alive(home, now) && self.peers[home].ready {
                        out.push(Action::HandBack(k, rev));
                    }
                }
                Some((o, rev)) => {
                    if held & bit != 0 {
                        out.push(Action::Revoke(k));
                    } else if serving && self.dead(o, now) && self.taker(o, now) == self.me {
                        out.push(Action::TakeOver(k, rev));
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Duration = Duration::from_secs(3);

    fn roles(n: usize, me: usize, hot: bool, t0: Instant) -> Roles {
        let names: Vec<String> = ["a", "b", "c"][..n].iter().map(|s| s.to_string()).collect();
        let shares = if hot { 1 } else { n as u8 };
        Roles::new(&names, me, shares, hot, F, t0)
    }

    fn hb(ready: bool) -> Heartbeat {
        Heartbeat {
            ready,
            owned: vec![],
            seq: 1,
        }
    }

    #[test]
    fn home_creates_and_acquires_its_share_only_when_serving() {
        let t0 = Instant::now();
        let mut r = roles(2, 1, false, t0);
        r.claim(0, None);
        r.claim(1, None);
        assert!(r.plan(t0, 0, 0, false).is_empty(), "not caught up: nothing");
        assert_eq!(r.plan(t0, 0, 0, true), vec![Action::Create(1)]);
        r.claim(1, Some(("b", 7)));
        assert_eq!(r.plan(t0, 0, 0, true), vec![Action::Acquire(1, 7)]);
        assert!(r.plan(t0, 0b10, 0, true).is_empty(), "held: nothing more");
        assert!(r.plan(t0, 0, 0b10, true).is_empty(), "busy acquiring");
    }

    #[test]
    fn takeover_waits_for_a_stopped_heartbeat_and_falls_to_the_next_in_ring() {
        let t0 = Instant::now();
        let mut r = roles(3, 2, false, t0);
        for p in 0..3 {
            r.heartbeat(p, 10 + p as u64, Some(&hb(true)), t0);
        }
        r.claim(0, Some(("a", 1)));
        r.claim(1, Some(("b", 2)));
        r.claim(2, Some(("c", 3)));
        let held = 0b100;
        assert!(r.plan(t0 + F / 2, held, 0, true).is_empty());
        // b keeps beating, a stops: after failover_after a is dead. The
        // taker of a's share is b (next after a), not c.
        r.heartbeat(1, 20, Some(&hb(true)), t0 + F);
        assert!(r.dead(0, t0 + F));
        assert_eq!(r.taker(0, t0 + F), 1);
        assert!(r.plan(t0 + F, held, 0, true).is_empty());
        // b dies too: c is the only live one and takes both.
        let late = t0 + F * 2 + Duration::from_millis(1);
        assert_eq!(r.taker(0, late), 2);
        assert_eq!(
            r.plan(late, held, 0, true),
            vec![Action::TakeOver(0, 1), Action::TakeOver(1, 2)]
        );
        // Cut off (not serving): never a takeover.
        assert!(r.plan(late, held, 0, false).is_empty());
    }

    #[test]
    fn a_peer_never_seen_counts_from_the_start() {
        let t0 = Instant::now();
        let mut r = roles(2, 1, false, t0);
        r.claim(0, None);
        r.claim(1, Some(("b", 4)));
        assert!(r.plan(t0 + F / 2, 0b10, 0, true).is_empty());
        // a never appeared for failover_after: b creates its share.
        assert_eq!(r.plan(t0 + F, 0b10, 0, true), vec![Action::Create(0)]);
    }

    #[test]
    fn the_claim_naming_another_clears_the_bit_and_a_ready_home_gets_its_share_back() {
        let t0 = Instant::now();
        let mut r = roles(2, 1, false, t0);
        r.heartbeat(0, 5, Some(&hb(false)), t0);
        r.claim(0, Some(("b", 9)));
        r.claim(1, Some(("b", 4)));
        // a is alive but not ready: b keeps share 0.
        assert!(r.plan(t0, 0b11, 0, true).is_empty());
        r.heartbeat(0, 6, Some(&hb(true)), t0);
        assert_eq!(r.plan(t0, 0b11, 0, true), vec![Action::HandBack(0, 9)]);
        // The claim names a again: b clears the bit at once.
        r.claim(0, Some(("a", 10)));
        assert_eq!(r.plan(t0, 0b11, 0, true), vec![Action::Revoke(0)]);
        // Even when cut off.
        assert_eq!(r.plan(t0, 0b11, 0, false), vec![Action::Revoke(0)]);
    }

    #[test]
    fn hot_standby_has_one_share_homed_on_the_first_peer() {
        let t0 = Instant::now();
        let mut r = roles(2, 1, true, t0);
        assert_eq!(r.home(0), 0);
        r.heartbeat(0, 1, Some(&hb(true)), t0);
        r.claim(0, Some(("a", 1)));
        assert!(r.plan(t0 + F / 2, 0, 0, true).is_empty());
        assert_eq!(r.plan(t0 + F, 0, 0, true), vec![Action::TakeOver(0, 1)]);
        // An owner that is no peer is taken over like a dead one, by the
        // first live server in ring order: a while it beats, then b.
        r.claim(0, Some(("z", 2)));
        assert!(r.plan(t0, 0, 0, true).is_empty());
        assert_eq!(r.plan(t0 + F, 0, 0, true), vec![Action::TakeOver(0, 2)]);
    }
}
