//! The decision per message type (RFC 2131 §4.3): DISCOVER → OFFER,
//! REQUEST → ACK or NAK by the client's state (SELECTING, INIT-REBOOT,
//! RENEWING, REBINDING), RELEASE and DECLINE → no reply but a lease
//! change, INFORM → ACK without a lease.
//!
//! [`Engine::process`] runs the whole way of one frame: parse
//! (`request.rs`), select the subnet (`select.rs`), identify the client
//! (`client.rs`), decide (here), write the reply (`reply.rs`).
use super::client::{Claim, Client, Note, client_key};
use super::conflict::Probe;
use super::decline::Declined;
use super::lifecycle::{Change, Clock, expiry};
use super::limit::Limited;
use super::reply::{self, Local, Reply};
use super::request::AgentTrust;
use super::subnet::SubnetRt;
use super::{Engine, Request, parse};
use crate::lease::journal::{LeaseRecord, RecordState};
use crate::lease::limits::LineKeys;
use crate::lease::{Lease, LeaseState};
use crate::wire::dhcp::MessageType;
use crate::wire::options::{agent, agent_sub_option};
use foldhash::fast::FixedState;
use std::hash::BuildHasher;
use std::net::Ipv4Addr;

/// The seed of the T1/T2 jitter hash. Fixed, not random per process: a
/// client is told the same T1/T2 by every worker, at every renewal and
/// after a restart or reload, as `renew_jitter` promises. A random seed
/// would give each client new times after every restart: harmless to the
/// protocol, but renewal traffic and logs would no longer compare from one
/// run to the next. Nothing is defended by keeping the seed secret (the
/// jitter only spreads renewals). foldhash keeps its output for a seed
/// within one version and platform only: an upgrade that changes it moves
/// each client's jitter once, within the same bounds (a test pins it).
const JITTER_SEED: u64 = 0x6a69_7474_6572;

/// Why a well-formed request got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// The rules say nothing is sent (another server chosen, RELEASE, ...).
    Ignored,
    NoSubnet,
    NoAddress,
    /// A new client whose shard of the lease table is at its bound with
    /// nothing to evict (every record in it bound or declined).
    TableFull,
    /// Option 82 or 118 from someone not trusted to set it, with
    /// `untrusted_agent_info = "drop"`.
    Untrusted,
    /// A limit of `[subnet.limits]` refused it: a rate or source check
    /// dropped it, or a DISCOVER would have made a line exceed its lease
    /// limit.
    Limited(Limited),
    /// The client's bucket is another cluster member's to answer.
    NotOwned,
}

/// What the engine noticed about a request besides its verdict, for the
/// worker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notes {
    /// Its option 82 or 118 was not believed (ignored, or the request
    /// dropped for it).
    pub untrusted_agent_info: bool,
    /// An event of the decision with a counter of its own.
    pub event: Option<Note>,
    /// Whether the OFFER just written must wait for a conflict check.
    pub probe: Probe,
}

impl Default for Notes {
    fn default() -> Notes {
        Notes {
            untrusted_agent_info: false,
            event: None,
            probe: Probe::None,
        }
    }
}

/// The engine's verdict on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not a well-formed DHCP request: counted and dropped.
    Malformed,
    /// A request of this kind, answered by nothing.
    Silent(MessageType, Silence),
    /// A request of this kind, answered by a reply of that kind, `len`
    /// bytes at the start of the TX buffer.
    Reply(MessageType, MessageType, usize),
    /// A REQUEST that would have made a line exceed its lease limit,
    /// answered by a NAK of `len` bytes.
    Refused(Limited, usize),
    /// A DHCPLEASEQUERY (RFC 4388): answered by the leasequery service
    /// off the packet path if `allowed` (relayed, by a listed requester),
    /// else dropped.
    LeaseQuery { allowed: bool },
}

impl Engine {
    /// Reads one frame and, if the protocol calls for it, writes the reply.
    /// A lease the decision created, extended, released or declined is
    /// left in `record`, for the journal, before the reply may leave
    /// (`record` is only ever written with one: pass it in as None);
    /// what else is worth counting, and whether an OFFER's address must be
    /// probed first, in `notes`.
    pub fn process(
        &self,
        rx: &[u8],
        tx: &mut [u8],
        clock: Clock,
        local: &Local,
        record: &mut Option<LeaseRecord>,
        notes: &mut Notes,
    ) -> Verdict {
        let mut join = None;
        notes.probe = Probe::None;
        let Ok(mut req) = parse(rx, &mut join) else {
            return Verdict::Malformed;
        };
        match req.kind {
            MessageType::LeaseQuery => {
                return match &self.leasequery {
                    // RFC 4388 §6.3: a query without giaddr is dropped.
                    Some(lq) => Verdict::LeaseQuery {
                        allowed: lq.allows(req.giaddr),
                    },
                    None => Verdict::Silent(req.kind, Silence::Ignored),
                };
            }
            // Answers to leasequeries are not ours to take.
            MessageType::LeaseUnassigned | MessageType::LeaseUnknown | MessageType::LeaseActive => {
                return Verdict::Silent(req.kind, Silence::Ignored);
            }
            _ => {}
        }
        let judged = self.judge_agent_info(&mut req);
        notes.untrusted_agent_info = req.agent == AgentTrust::Ignored;
        if let Err(why) = judged {
            return Verdict::Silent(req.kind, why);
        }
        let mut change = None;
        let decided = self.decide(&req, clock, local.home, &mut change, notes);
        // Written only when there is a change (the caller's slot starts as
        // None): storing a None over it on every packet, and a record built
        // elsewhere and then moved in, cost more than the check.
        if let Some(ch) = change {
            ch.record_into(&req, clock, record);
        }
        match decided {
            Ok((s, reply)) => match (reply::write(tx, &req, s, &reply, local), reply.limited) {
                (Some(len), Some(why)) => Verdict::Refused(why, len),
                (Some(len), None) => Verdict::Reply(req.kind, reply.kind, len),
                (None, _) => Verdict::Silent(req.kind, Silence::Ignored),
            },
            Err(why) => Verdict::Silent(req.kind, why),
        }
    }

    /// The protocol decision for one request: the subnet it belongs to
    /// and the reply, or why there is none. `home` is the deciding
    /// worker's shard in the pools; `notes` is left what a counter of its
    /// own reports and whether an OFFER must wait for a conflict check.
    /// The request must have been through the trust step (`trust.rs`); one
    /// that was not is ignored.
    pub fn decide(
        &self,
        req: &Request<'_>,
        clock: Clock,
        home: usize,
        change: &mut Option<Change>,
        notes: &mut Notes,
    ) -> Result<(&SubnetRt, Reply), Silence> {
        if req.agent == AgentTrust::Unjudged {
            return Err(Silence::Ignored);
        }
        let now = clock.secs;
        let selected = self.select_subnet(req).ok_or(Silence::NoSubnet)?;
        self.admit(selected, req, clock.micros)
            .map_err(Silence::Limited)?;
        let key = client_key(selected, req);
        // One load for the whole decision: a share that changes hands in
        // the middle of it takes effect at the next request.
        let owned = self.owner.owned();
        let share = 1 << self.owner.share_of_key(&key);
        if owned & share == 0 {
            if self.owner.renewing() & share != 0 && req.kind == MessageType::Request {
                return self.renew_known(selected, &key, req, now);
            }
            return Err(Silence::NotOwned);
        }
        let mut reserved = self.reservation(selected, req);
        let mut moving = None;
        let mut conflict = false;
        if let Some((a, _)) = reserved
            && let Some(rs) = self.subnet_of(selected.link, a)
        {
            match self.claim(rs, &key, a) {
                Claim::Free => {}
                // Another client still holds the reserved address: this
                // one is served like an unreserved client meanwhile.
                Claim::Busy => {
                    reserved = None;
                    conflict = matches!(req.kind, MessageType::Discover | MessageType::Request);
                }
                Claim::Left => moving = Some(a),
            }
        }
        let s = match reserved {
            Some((a, _)) => self.subnet_of(selected.link, a).unwrap_or(selected),
            None => self.member_for(selected, &key, req),
        };
        let c = Client {
            key,
            reserved,
            moving,
            note: std::cell::Cell::new(conflict.then_some(Note::ReservationConflict)),
            left: std::cell::Cell::new(None),
            home,
            owned,
            lines: match req.kind {
                MessageType::Discover | MessageType::Request => self.line_keys(s, req),
                _ => LineKeys::default(),
            },
            // RFC 5107: the relay stands in for us as server identifier.
            server_id: req
                .opts
                .agent_info
                .and_then(|ai| agent_sub_option(ai, agent::SERVER_ID_OVERRIDE))
                .and_then(|v| <[u8; 4]>::try_from(v).ok())
                .map_or(s.server_id, Ipv4Addr::from),
        };
        let decided = self.decide_kind(s, &c, req, now, change, &mut notes.probe);
        notes.event = c.note.get();
        if let (Some(r), Ok((_, reply))) = (moving, &decided)
            && reply.yiaddr == r
            && let Some(res) = s.reservation(r)
        {
            // The reserved client has its address back: the conflict is over.
            res.set_holder(None);
        }
        decided
    }

    fn decide_kind<'a>(
        &'a self,
        s: &'a SubnetRt,
        c: &Client,
        req: &Request<'_>,
        now: u32,
        change: &mut Option<Change>,
        probe: &mut Probe,
    ) -> Result<(&'a SubnetRt, Reply), Silence> {
        let reply = match req.kind {
            MessageType::Discover => {
                // RFC 4039: straight to an ACK, bound like one.
                let commit = s.rapid_commit && req.opts.rapid_commit;
                let (used, r, bound) = self.discover(s, c, req, now, commit)?;
                if let (true, Some((lease, _, _))) = (commit, r.times) {
                    *change = Some(Change {
                        subnet: used.id,
                        key: c.key,
                        addr: r.yiaddr,
                        state: RecordState::Bound,
                        expires: expiry(now, lease),
                    });
                    // Bound at once: in use by its client from now on.
                    self.leased(used, r.yiaddr, now);
                } else {
                    *probe = self.probe_for(used, &c.key, r.yiaddr, bound, now);
                }
                return Ok((used, r));
            }
            MessageType::Request => {
                let r = self.request(s, c, req, now)?;
                if let (MessageType::Ack, Some((lease, _, _))) = (r.kind, r.times) {
                    self.leased(s, r.yiaddr, now);
                    *change = Some(Change {
                        subnet: s.id,
                        key: c.key,
                        addr: r.yiaddr,
                        state: RecordState::Bound,
                        expires: expiry(now, lease),
                    });
                } else if let Some(addr) = c.left.get() {
                    *change = Some(Change {
                        subnet: s.id,
                        key: c.key,
                        addr,
                        state: RecordState::Released,
                        expires: now,
                    });
                }
                r
            }
            MessageType::Release => {
                if let Some(addr) = self.release(s, c, req, now) {
                    // In use by its client until now.
                    self.leased(s, addr, now);
                    *change = Some(Change {
                        subnet: s.id,
                        key: c.key,
                        addr,
                        state: RecordState::Released,
                        expires: now,
                    });
                }
                return Err(Silence::Ignored);
            }
            MessageType::Decline => {
                let declined = self.decline(s, c, req, now);
                *change = declined.map(|d| match d {
                    Declined::Quarantined(addr) => Change {
                        subnet: s.id,
                        key: c.key,
                        addr,
                        state: RecordState::Declined,
                        expires: now.saturating_add(self.decline_hold),
                    },
                    // Over the probation cap, or a quarantine the table had
                    // no room for: the address is back in the pool,
                    // journaled as released.
                    Declined::Released(addr) | Declined::NoRoom(addr) => Change {
                        subnet: s.id,
                        key: c.key,
                        addr,
                        state: RecordState::Released,
                        expires: now,
                    },
                });
                if let Some(Declined::NoRoom(_)) = declined {
                    return Err(Silence::TableFull);
                }
                return Err(Silence::Ignored);
            }
            MessageType::Inform => Reply {
                kind: MessageType::Ack,
                yiaddr: Ipv4Addr::UNSPECIFIED,
                times: None,
                server_id: c.server_id,
                limited: None,
            },
            _ => return Err(Silence::Ignored),
        };
        Ok((s, reply))
    }

    /// Lease, T1 and T2 for this client asking for `requested` seconds
    /// (option 51), T1/T2 pulled in by up to `renew_jitter` percent, the
    /// same amount for the same client.
    fn times(&self, s: &SubnetRt, c: &Client, requested: Option<u32>) -> (u32, u32, u32) {
        let infinite = c.reserved.is_some_and(|(_, inf)| inf);
        let (lease, t1, t2) = s.lease_times(requested, infinite);
        if self.renew_jitter == 0 || lease == u32::MAX {
            return (lease, t1, t2);
        }
        let h = FixedState::with_seed(JITTER_SEED).hash_one(c.key.bytes);
        let cut = |t: u32| {
            t - (u64::from(t) * u64::from(self.renew_jitter) / 100 * (h % 1024) / 1024) as u32
        };
        (lease, cut(t1), cut(t2))
    }

    /// The OFFER for a DISCOVER, from `s` or a sibling, or with `commit`
    /// (rapid commit) an ACK of a binding; the flag says the address is the
    /// client's current binding.
    fn discover<'a>(
        &'a self,
        s: &'a SubnetRt,
        c: &Client,
        req: &Request<'_>,
        now: u32,
        commit: bool,
    ) -> Result<(&'a SubnetRt, Reply, bool), Silence> {
        let hold = now.saturating_add(self.offer_hold);
        // What the record says: a held offer, or a binding (rapid commit).
        let record = |used: &SubnetRt| {
            if commit {
                let lease = self.times(used, c, req.opts.lease_time).0;
                (LeaseState::Bound, expiry(now, lease))
            } else {
                (LeaseState::Offered, hold)
            }
        };
        let got = self.lease_update(&c.key, |e| {
            // The client's current binding or held offer keeps its address,
            // unless a reservation now says otherwise, for it or for
            // another client (that had it before the reservation).
            if let Some(l) = e
                && l.state.holds()
                && s.contains(l.addr)
            {
                if self.must_leave(s, c, l.addr) {
                    c.note.set(Some(Note::ReservationConflict));
                } else {
                    match c.reserved {
                        Some((r, _)) if r != l.addr => s.free(l.addr),
                        _ => {
                            let bound = l.state == LeaseState::Bound;
                            if commit {
                                (l.state, l.expires) = record(s);
                            } else if l.state == LeaseState::Offered {
                                l.expires = hold;
                            }
                            return Ok((s, l.addr, bound));
                        }
                    }
                }
            }
            // A lease that moves stays counted where it is; a new one is
            // counted on its lines before it takes an address.
            let carried = e.filter(|l| l.state.holds()).map(|l| l.lines);
            let lines = match carried {
                Some(l) => l,
                None => self.take_lines(s, &c.lines).map_err(Silence::Limited)?,
            };
            // Its reservation, its previous address, the one it asks for,
            // then the lowest free one — of the next subnet of a shared
            // network when this one is full.
            let previous = e.filter(|l| s.contains(l.addr)).map(|l| l.addr);
            let used_addr = c
                .reserved
                .map(|(r, _)| r)
                .or_else(|| previous.filter(|a| s.pool.claim_owned(*a, c.owned)))
                .or_else(|| {
                    req.opts
                        .requested_ip
                        .filter(|a| s.contains(*a) && s.pool.claim_owned(*a, c.owned))
                })
                .or_else(|| s.pool.allocate_owned(c.home, c.owned))
                .map(|a| (s, a))
                .or_else(|| {
                    self.siblings(s)
                        .find_map(|o| o.pool.allocate_owned(c.home, c.owned).map(|a| (o, a)))
                });
            let Some((used, addr)) = used_addr else {
                if carried.is_none() {
                    self.put_lines(lines);
                }
                return Err(Silence::NoAddress);
            };
            let (state, expires) = record(used);
            *e = Some(Lease {
                addr,
                state,
                expires,
                lines,
            });
            Ok((used, addr, false))
        });
        // At the table's bound with nothing to evict: refused (what the
        // closure took went back through `on_evict`).
        let (used, addr, bound) = got.map_err(|_| Silence::TableFull)??;
        Ok((
            used,
            Reply {
                kind: if commit {
                    MessageType::Ack
                } else {
                    MessageType::Offer
                },
                yiaddr: addr,
                times: Some(self.times(used, c, req.opts.lease_time)),
                server_id: c.server_id,
                limited: None,
            },
            bound,
        ))
    }

    fn request(
        &self,
        s: &SubnetRt,
        c: &Client,
        req: &Request<'_>,
        now: u32,
    ) -> Result<Reply, Silence> {
        let times = self.times(s, c, req.opts.lease_time);
        let ack = |addr| Reply {
            kind: MessageType::Ack,
            yiaddr: addr,
            times: Some(times),
            server_id: c.server_id,
            limited: None,
        };
        let nak = Reply {
            kind: MessageType::Nak,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            times: None,
            server_id: c.server_id,
            limited: None,
        };
        let limited = |why| Reply {
            limited: Some(why),
            ..nak
        };
        let answer = |granted: Result<bool, Limited>, want| match granted {
            Ok(true) => ack(want),
            Ok(false) => nak,
            Err(why) => limited(why),
        };
        let until = if times.0 == u32::MAX {
            u32::MAX
        } else {
            now.saturating_add(times.0)
        };
        let reserved = c.reserved.map(|(a, _)| a);
        // Whether `want` can become this client's binding now: it holds
        // it, it is reserved for it, or it held it and nobody took it since.
        // A binding that is new (the client holds nothing) is counted on
        // its lines first, and refused (Err) when one is at its limit; one
        // that continues (a renewal, a move) is never refused.
        let grant = |e: &mut Option<Lease>, want: Ipv4Addr| -> Result<bool, Limited> {
            // Off an address reserved for another client, or onto its own
            // reservation, free again: NAKed, and its hold of `want` ends.
            if self.must_leave(s, c, want) || c.moving.is_some_and(|r| r != want) {
                if let Some(l) = e
                    && l.addr == want
                    && l.state.holds()
                {
                    self.subnet_of(s.link, want).unwrap_or(s).free(want);
                    self.put_lines(std::mem::take(&mut l.lines));
                    l.state = LeaseState::Released;
                    l.expires = now;
                    c.left.set(Some(want));
                }
                c.note.set(Some(Note::ReservationConflict));
                return Ok(false);
            }
            let held = e.filter(|l| l.state.holds());
            let reclaim = match e {
                Some(l) if l.addr == want && l.state.holds() => false,
                _ if reserved == Some(want) => false,
                Some(l) if l.addr == want && reserved.is_none() => true,
                _ => return Ok(false),
            };
            let lines = match held {
                Some(l) => l.lines,
                None => self.take_lines(s, &c.lines)?,
            };
            if reclaim && !s.pool.claim_owned(want, c.owned) {
                self.put_lines(lines);
                return Ok(false);
            }
            if let Some(l) = held
                && l.addr != want
            {
                s.free(l.addr);
            }
            *e = Some(Lease {
                addr: want,
                state: LeaseState::Bound,
                expires: until,
                lines,
            });
            Ok(true)
        };
        match (
            req.opts.server_id,
            req.opts.requested_ip,
            req.ciaddr.is_unspecified(),
        ) {
            // SELECTING: the client answers an offer.
            (Some(sid), requested, _) => {
                if sid != s.server_id && sid != c.server_id {
                    // It chose another server: withdraw our offer quietly.
                    // (Changes a known record only: never Full.)
                    let _ = self.lease_update(&c.key, |e| {
                        if let Some(l) = e
                            && l.state == LeaseState::Offered
                        {
                            s.free(l.addr);
                            self.put_lines(std::mem::take(&mut l.lines));
                            l.state = LeaseState::Released;
                            l.expires = now;
                        }
                    });
                    return Err(Silence::Ignored);
                }
                // RFC 2131 §4.3.2: a SELECTING REQUEST MUST carry the
                // address it accepts (option 50); without it there is
                // nothing to grant nor to refuse.
                let Some(want) = requested else {
                    return Err(Silence::Ignored);
                };
                let granted = self
                    .lease_update(&c.key, |e| grant(e, want))
                    .map_err(|_| Silence::TableFull)?;
                Ok(answer(granted, want))
            }
            // INIT-REBOOT: a client that remembers an address.
            (None, Some(want), true) => {
                if !s.contains(want) {
                    return Ok(nak);
                }
                self.lease_update(&c.key, |e| match grant(e, want) {
                    Ok(true) => Ok(ack(want)),
                    Err(why) => Ok(limited(why)),
                    Ok(false) if e.is_some() || self.authoritative => Ok(nak),
                    // RFC 2131 §4.3.2: no record of this client.
                    Ok(false) => Err(Silence::Ignored),
                })
                .map_err(|_| Silence::TableFull)?
            }
            // RENEWING (unicast) or REBINDING (broadcast): ciaddr set.
            // RFC 2131 §4.3.2 asks for a NAK on the wrong network only of
            // an INIT-REBOOT; of a renewal it says to check ciaddr. A server
            // that is not authoritative NAKs a ciaddr outside the subnet
            // only for a client bound with it (the client moved); about
            // the others it stays silent: they may be another server's (a
            // client that took another server's offer still has a
            // withdrawn record here).
            (None, _, false) => {
                let have = req.ciaddr;
                if !s.contains(have) {
                    let bound = self
                        .leases
                        .get(&c.key)
                        .is_some_and(|l| l.state == LeaseState::Bound);
                    if self.authoritative || bound {
                        return Ok(nak);
                    }
                    return Err(Silence::Ignored);
                }
                self.lease_update(&c.key, |e| match e {
                    Some(l) if l.state == LeaseState::Bound && l.addr == have => {
                        // Held: a renewal is never refused by a limit (its
                        // lines are counted already), only NAKed off an
                        // address reserved for another client.
                        Ok(answer(grant(e, have), have))
                    }
                    _ if reserved == Some(have) => Ok(answer(grant(e, have), have)),
                    _ if self.authoritative => Ok(nak),
                    _ => Err(Silence::Ignored),
                })
                .map_err(|_| Silence::TableFull)?
            }
            (None, None, true) => Err(Silence::Ignored),
        }
    }

    /// RELEASE and DECLINE count only from the binding's owner naming us.
    pub(super) fn names_us(&self, s: &SubnetRt, c: &Client, req: &Request<'_>) -> bool {
        req.opts
            .server_id
            .is_some_and(|sid| sid == s.server_id || sid == c.server_id)
    }

    /// Frees the client's binding of ciaddr; the address freed, if any.
    fn release(&self, s: &SubnetRt, c: &Client, req: &Request<'_>, now: u32) -> Option<Ipv4Addr> {
        if !self.names_us(s, c, req) {
            return None;
        }
        self.lease_update(&c.key, |e| match e {
            Some(l) if l.state == LeaseState::Bound && l.addr == req.ciaddr => {
                s.free(l.addr);
                self.put_lines(std::mem::take(&mut l.lines));
                l.state = LeaseState::Released;
                l.expires = now;
                Some(l.addr)
            }
            _ => None,
        })
        .ok()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::super::client::KEY_CHADDR;
    use super::*;
    use crate::config::Config;
    use crate::lease::ClientKey;

    const CONFIG: &str = r#"
interface = "test0"
server_id = "192.0.2.1"
renew_jitter = 20

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["192.0.2.10-192.0.2.100"]
lease_time = 3600
"#;

    fn client(last: u8) -> Client {
        Client {
            key: ClientKey::new(0, KEY_CHADDR, &[0x02, 0, 0, 0, 0, last]),
            reserved: None,
            moving: None,
            note: Default::default(),
            left: Default::default(),
            home: 0,
            owned: u32::MAX,
            lines: LineKeys::default(),
            server_id: Ipv4Addr::new(192, 0, 2, 1),
        }
    }

    /// Two engines from one configuration stand for the daemon before and
    /// after a restart: each client is told the same T1/T2 by both, within
    /// 20 % below the subnet's 1800/3150 s, and clients differ.
    #[test]
    fn renew_jitter_is_stable_per_client_across_engines() {
        let cfg = Config::parse(CONFIG).unwrap();
        let (before, after) = (Engine::new(&cfg), Engine::new(&cfg));
        let mut t1s = Vec::new();
        for i in 0..32 {
            let c = client(i);
            let (lease, t1, t2) = before.times(&before.subnets[0], &c, None);
            assert_eq!(
                (lease, t1, t2),
                after.times(&after.subnets[0], &c, None),
                "client {i}"
            );
            assert_eq!(lease, 3600);
            assert!((1440..=1800).contains(&t1), "T1 {t1}");
            assert!((2520..=3150).contains(&t2), "T2 {t2}");
            t1s.push(t1);
        }
        t1s.sort_unstable();
        t1s.dedup();
        assert!(t1s.len() > 16, "clients spread: {t1s:?}");
    }

    /// The jitter of one client, pinned: a change of the seed or of
    /// foldhash's algorithm moves every client's T1/T2 once at the upgrade,
    /// so it should be a deliberate one. (foldhash computes differently
    /// on 32-bit targets.)
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn renew_jitter_of_a_known_client_is_pinned() {
        let cfg = Config::parse(CONFIG).unwrap();
        let e = Engine::new(&cfg);
        assert_eq!(e.times(&e.subnets[0], &client(1), None), (3600, 1750, 3063));
    }
}
