//! Conflict checks before OFFER, the engine's half: which OFFER needs its
//! address probed first, and what a probe's answer does to the lease
//! state. The probe itself (an ICMP echo) is sent and timed by the side
//! service in `crate::probe`; the worker's [`Handler`](super::Handler)
//! parks the OFFER meanwhile. Nothing here does I/O.
//!
//! Each checked subnet keeps, per pool address, when it was last leased
//! (ACKed) or probed without an answer ([`Recent`]). An address touched
//! within `conflict_skip_recent` seconds is offered without a probe: on a
//! busy server most offers are of addresses that came back a moment ago,
//! so the check costs only the fresh ones.
use super::Engine;
use super::lifecycle::Clock;
use super::subnet::SubnetRt;
use crate::lease::journal::{FixedBytes, LeaseRecord, RecordState};
use crate::lease::{ClientKey, LeaseState};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Per pool address of a checked subnet: engine seconds + 1 of its last
/// lease or clean probe, 0 for never. Shared by the workers (a relaxed
/// store per ACK: a stale read only costs one probe more) and carried
/// over a reload with the pool.
pub struct Recent {
    stamps: Box<[AtomicU32]>,
}

impl Recent {
    pub fn new(size: u32) -> Recent {
        Recent {
            stamps: (0..size).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Whether the address of pool index `i` was touched within `skip`
    /// seconds before `now`.
    fn fresh(&self, i: u32, now: u32, skip: u32) -> bool {
        self.stamps.get(i as usize).is_some_and(|s| {
            let t = s.load(Relaxed);
            t != 0 && now.saturating_add(1).saturating_sub(t) <= skip
        })
    }

    fn touch(&self, i: u32, now: u32) {
        if let Some(s) = self.stamps.get(i as usize) {
            s.store(now.saturating_add(1), Relaxed);
        }
    }
}

/// What the engine says about probing the OFFER it just wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Not a checked OFFER (no OFFER, a subnet without `conflict_check`,
    /// a reservation, the client's own binding).
    None,
    /// A checked subnet, but the address was leased or probed lately.
    Skipped,
    /// Probe this address before the OFFER may leave.
    Needed(ProbeAsk),
}

/// An OFFER's address to probe, and whose offer it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeAsk {
    pub subnet: u16,
    pub key: ClientKey,
    pub addr: Ipv4Addr,
}

impl Engine {
    /// The decision for an OFFER of `addr` from `s` to client `key`:
    /// `bound` when the address is the client's own binding (never
    /// probed: the client itself would answer).
    pub(super) fn probe_for(
        &self,
        s: &SubnetRt,
        key: &ClientKey,
        addr: Ipv4Addr,
        bound: bool,
        now: u32,
    ) -> Probe {
        let Some(recent) = &s.recent else {
            return Probe::None;
        };
        let Some(i) = s.pool.index_of(addr) else {
            return Probe::None;
        };
        if bound || s.is_reserved(addr) {
            return Probe::None;
        }
        if recent.fresh(i, now, self.conflict_skip_recent) {
            return Probe::Skipped;
        }
        Probe::Needed(ProbeAsk {
            subnet: s.id,
            key: *key,
            addr,
        })
    }

    /// `addr` of `s` was just leased: no probe for it within
    /// `conflict_skip_recent`.
    pub(super) fn leased(&self, s: &SubnetRt, addr: Ipv4Addr, now: u32) {
        if let (Some(recent), Some(i)) = (&s.recent, s.pool.index_of(addr)) {
            recent.touch(i, now);
        }
    }

    /// A probe of `ask` went unanswered: its address counts as recently
    /// checked.
    pub fn probed(&self, ask: &ProbeAsk, now: u32) {
        if let Some(s) = self.subnets.get(usize::from(ask.subnet)) {
            self.leased(s, ask.addr, now);
        }
    }

    /// A probe of `ask` was answered: someone uses the address. The
    /// client's offer of it is withdrawn and the address goes into
    /// probation for `decline_probation`, as if the client had declined
    /// it. Returns the journal record of the probation, if there is one
    /// (none when the client bound the address meanwhile, or another
    /// client holds it now).
    pub fn conflict(&self, ask: &ProbeAsk, clock: Clock) -> Option<LeaseRecord> {
        // By index, unless a reload moved the subnets meanwhile.
        let s = self
            .subnets
            .get(usize::from(ask.subnet))
            .filter(|s| s.contains(ask.addr))
            .or_else(|| self.subnets.iter().find(|s| s.contains(ask.addr)))?;
        let now = clock.secs;
        // Changes or removes a known record only: never Full.
        let offered = self
            .lease_update(&ask.key, |e| match e {
                Some(l) if l.addr == ask.addr && l.state == LeaseState::Offered => {
                    // The offer leaves its address, and its lines.
                    self.put_lines(l.lines);
                    *e = None;
                    Some(true)
                }
                Some(l) if l.addr == ask.addr && l.state == LeaseState::Bound => Some(false),
                _ => None,
            })
            .ok()
            .flatten();
        let take = match offered {
            // Still taken in the pool, for the offer now withdrawn.
            Some(true) => true,
            // The client made it its own meanwhile: its business.
            Some(false) => false,
            // The offer ended (the client chose another server): the
            // address is taken for the probation only if still free.
            None => s.pool.claim(ask.addr),
        };
        if !take || s.is_reserved(ask.addr) {
            return None;
        }
        let until = now.saturating_add(self.decline_hold);
        // No room for the quarantine (the table at its bound, nothing to
        // evict): the address went back to the pool through `on_evict`;
        // nothing to journal. Better a conflict the next DISCOVER probes
        // again than an address lost until restart.
        self.quarantine(s, ask.addr, until).ok()?;
        Some(LeaseRecord {
            subnet: s.id,
            addr: ask.addr,
            client: ask.key,
            hwaddr: [0; 6],
            state: RecordState::Declined,
            expires_unix: clock.unix + u64::from(until.saturating_sub(now)),
            cltt_unix: clock.unix,
            hostname: FixedBytes::new(&[]).0,
            agent_info: FixedBytes::new(&[]).0,
            fqdn_flags: 0,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use crate::wire::testutil::{bootp, udp_frame};
    use std::sync::Arc;

    pub(crate) const CHECKED: &str = r#"
interface = "test0"
server_id = "192.0.2.1"
conflict_skip_recent = 600

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["192.0.2.10-192.0.2.20"]
conflict_check = "icmp"
"#;

    pub(crate) fn mac(last: u8) -> [u8; 6] {
        [0x02, 0, 0, 0, 0x77, last]
    }

    /// A broadcast request from client `last` with these options (53
    /// first), ended.
    pub(crate) fn request(last: u8, options: &[u8]) -> Vec<u8> {
        let mut o = options.to_vec();
        o.push(255);
        let mut b = bootp(&o);
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&(0x5000 + u32::from(last)).to_be_bytes());
        b[28..34].copy_from_slice(&mac(last));
        udp_frame(
            &[],
            mac(last),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            68,
            67,
            &b,
        )
    }

    pub(crate) fn discover(last: u8) -> Vec<u8> {
        request(last, &[53, 1, 1])
    }

    /// The SELECTING REQUEST for `addr` from server 192.0.2.1.
    fn select(last: u8, addr: Ipv4Addr) -> Vec<u8> {
        let a = addr.octets();
        request(
            last,
            &[53, 1, 3, 54, 4, 192, 0, 2, 1, 50, 4, a[0], a[1], a[2], a[3]],
        )
    }

    /// The engine's verdict on `frame` at `secs`, and what it says about
    /// probing.
    fn run(e: &Engine, frame: &[u8], secs: u32) -> (Probe, Option<Ipv4Addr>) {
        let (v, _, notes, yiaddr) = crate::engine::bound_tests::run(e, frame, secs);
        let offered = matches!(
            v,
            crate::engine::Verdict::Reply(_, crate::wire::dhcp::MessageType::Offer, _)
        )
        .then_some(yiaddr);
        (notes.probe, offered)
    }

    fn engine(text: &str) -> Arc<Engine> {
        Arc::new(Engine::new(&Config::parse(text).unwrap()))
    }

    const A10: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const A11: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

    fn needed(p: Probe) -> ProbeAsk {
        match p {
            Probe::Needed(a) => a,
            other => panic!("expected a probe, got {other:?}"),
        }
    }

    #[test]
    fn a_fresh_address_is_probed_a_recently_probed_one_is_not() {
        let e = engine(CHECKED);
        let (p, offered) = run(&e, &discover(1), 100);
        assert_eq!(offered, Some(A10));
        let ask = needed(p);
        assert_eq!(ask.addr, A10);
        // Retransmitted while the probe is out: probed again (the OFFER
        // must not escape the check by a retransmission).
        assert_eq!(needed(run(&e, &discover(1), 100).0).addr, A10);
        e.probed(&ask, 100);
        assert_eq!(run(&e, &discover(1), 101), (Probe::Skipped, Some(A10)));
        // Another client's fresh address is probed.
        assert_eq!(needed(run(&e, &discover(2), 101).0).addr, A11);
        // conflict_skip_recent (600 s) later the stamp is stale again.
        assert_eq!(run(&e, &discover(1), 700).0, Probe::Skipped);
        assert_eq!(needed(run(&e, &discover(1), 701).0).addr, A10);
    }

    #[test]
    fn a_leased_address_is_not_probed_again_soon_and_the_own_binding_never() {
        let e = engine(CHECKED);
        assert_eq!(run(&e, &discover(1), 10).1, Some(A10));
        run(&e, &select(1, A10), 10);
        // The client's own binding: never probed (the client would answer).
        assert_eq!(run(&e, &discover(1), 5000), (Probe::None, Some(A10)));
        // Released and offered to someone else within skip_recent: skipped.
        let mut rel = request(1, &[53, 1, 7, 54, 4, 192, 0, 2, 1]);
        // ciaddr
        rel[14 + 20 + 8 + 12..][..4].copy_from_slice(&A10.octets());
        run(&e, &rel, 5000);
        let (p, offered) = run(&e, &discover(3), 5001);
        assert_eq!(offered, Some(A10), "the released address goes first");
        assert_eq!(p, Probe::Skipped);
    }

    #[test]
    fn a_subnet_without_the_check_never_probes() {
        let e = engine(&CHECKED.replace("conflict_check = \"icmp\"", ""));
        assert_eq!(run(&e, &discover(1), 10), (Probe::None, Some(A10)));
    }

    #[test]
    fn a_conflict_withdraws_the_offer_and_quarantines_the_address() {
        let e = engine(CHECKED);
        let ask = needed(run(&e, &discover(1), 10).0);
        let rec = e
            .conflict(
                &ask,
                Clock {
                    secs: 10,
                    unix: 1000,
                    micros: 10_000_000,
                },
            )
            .expect("a probation record");
        assert_eq!((rec.addr, rec.state), (A10, RecordState::Declined));
        assert_eq!(rec.expires_unix, 1000 + 86400, "decline_probation");
        let s = &e.subnets()[0];
        assert!(s.pool.is_taken(A10), "the address stays out of the pool");
        assert_eq!(e.leases().get(&ask.key), None, "the offer is withdrawn");
        // The client's retransmission gets the next address, probed too.
        let (p, offered) = run(&e, &discover(1), 11);
        assert_eq!((needed(p).addr, offered), (A11, Some(A11)));
        // Nobody gets the quarantined one.
        for c in 2..6 {
            assert_ne!(run(&e, &discover(c), 12).1, Some(A10));
        }
    }

    #[test]
    fn a_conflict_gives_the_withdrawn_offer_s_line_count_back() {
        use crate::lease::limits::LineKind;
        let e = engine(&format!("{CHECKED}[subnet.limits]\nleases_per_mac = 1\n"));
        let key = e.lines().key(LineKind::Mac, 0, &mac(1));
        let ask = needed(run(&e, &discover(1), 10).0);
        assert_eq!(e.lines().count(key), 1);
        let clock = Clock {
            secs: 10,
            unix: 0,
            micros: 10_000_000,
        };
        assert!(e.conflict(&ask, clock).is_some());
        assert_eq!(e.lines().count(key), 0, "the offer left its address");
        // Its limit of one would refuse the next offer had it kept it.
        assert_eq!(run(&e, &discover(1), 11).1, Some(A11));
        assert_eq!(e.lines().count(key), 1);
    }

    #[test]
    fn a_conflict_after_the_client_bound_the_address_leaves_it_alone() {
        let e = engine(CHECKED);
        let ask = needed(run(&e, &discover(1), 10).0);
        run(&e, &select(1, A10), 10);
        assert_eq!(
            e.conflict(
                &ask,
                Clock {
                    secs: 10,
                    unix: 0,
                    micros: 10_000_000,
                }
            ),
            None
        );
        assert_eq!(
            e.leases().get(&ask.key).map(|l| l.state),
            Some(LeaseState::Bound)
        );
    }
}
