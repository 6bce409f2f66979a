//! The decision per message type (RFC 2131 §4.3): DISCOVER → OFFER,
//! REQUEST → ACK or NAK by the client's state (SELECTING, INIT-REBOOT,
//! RENEWING, REBINDING), RELEASE and DECLINE → no reply but a lease
//! change, INFORM → ACK without a lease.
//!
//! [`Engine::process`] runs the whole way of one frame: parse
//! (`request.rs`), select the subnet (`select.rs`), identify the client
//! (`client.rs`), decide (here), write the reply (`reply.rs`).
use super::client::{Client, client_key};
use super::lifecycle::{Change, Clock, expiry};
use super::reply::{self, Local, Reply};
use super::subnet::SubnetRt;
use super::{Engine, Request, parse};
use crate::lease::journal::{LeaseRecord, RecordState};
use crate::lease::{Lease, LeaseState};
use crate::wire::dhcp::MessageType;
use crate::wire::options::{agent, agent_sub_option};
use std::net::Ipv4Addr;

/// Why a well-formed request got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// The rules say nothing is sent (another server chosen, RELEASE, ...).
    Ignored,
    NoSubnet,
    NoAddress,
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
}

impl Engine {
    /// Reads one frame and, if the protocol calls for it, writes the reply.
    /// A lease the decision created, extended, released or declined is
    /// left in `record`, for the journal, before the reply may leave.
    pub fn process(
        &self,
        rx: &[u8],
        tx: &mut [u8],
        clock: Clock,
        local: &Local,
        record: &mut Option<LeaseRecord>,
    ) -> Verdict {
        let mut join = None;
        let Ok(req) = parse(rx, &mut join) else {
            return Verdict::Malformed;
        };
        let mut change = None;
        let decided = self.decide(&req, clock.secs, local.home, &mut change);
        *record = change.map(|ch| ch.record(&req, clock));
        match decided {
            Ok((s, reply)) => match reply::write(tx, &req, s, &reply, local) {
                Some(len) => Verdict::Reply(req.kind, reply.kind, len),
                None => Verdict::Silent(req.kind, Silence::Ignored),
            },
            Err(why) => Verdict::Silent(req.kind, why),
        }
    }

    /// The protocol decision for one request: the subnet it belongs to
    /// and the reply, or why there is none. `home` is the deciding
    /// worker's shard in the pools.
    pub fn decide(
        &self,
        req: &Request<'_>,
        now: u32,
        home: usize,
        change: &mut Option<Change>,
    ) -> Result<(&SubnetRt, Reply), Silence> {
        let selected = self.select_subnet(req).ok_or(Silence::NoSubnet)?;
        let key = client_key(selected, req);
        let reserved = self.reservation(selected, req);
        let s = match reserved {
            Some((a, _)) => self.subnet_of(selected.link, a).unwrap_or(selected),
            None => self.member_for(selected, &key, req),
        };
        let c = Client {
            key,
            reserved,
            home,
            // RFC 5107: the relay stands in for us as server identifier.
            server_id: req
                .opts
                .agent_info
                .and_then(|ai| agent_sub_option(ai, agent::SERVER_ID_OVERRIDE))
                .and_then(|v| <[u8; 4]>::try_from(v).ok())
                .map_or(s.server_id, Ipv4Addr::from),
        };
        let reply = match req.kind {
            MessageType::Discover => {
                let (used, r) = self.discover(s, &c, req, now)?;
                return Ok((used, r));
            }
            MessageType::Request => {
                let r = self.request(s, &c, req, now)?;
                if let (MessageType::Ack, Some((lease, _, _))) = (r.kind, r.times) {
                    *change = Some(Change {
                        subnet: s.id,
                        key: c.key,
                        addr: r.yiaddr,
                        state: RecordState::Bound,
                        expires: expiry(now, lease),
                    });
                }
                r
            }
            MessageType::Release => {
                if let Some(addr) = self.release(s, &c, req, now) {
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
                if let Some(addr) = self.decline(s, &c, req, now) {
                    *change = Some(Change {
                        subnet: s.id,
                        key: c.key,
                        addr,
                        state: RecordState::Declined,
                        expires: now.saturating_add(self.decline_hold),
                    });
                }
                return Err(Silence::Ignored);
            }
            MessageType::Inform => Reply {
                kind: MessageType::Ack,
                yiaddr: Ipv4Addr::UNSPECIFIED,
                times: None,
                server_id: c.server_id,
            },
            _ => return Err(Silence::Ignored),
        };
        Ok((s, reply))
    }

    /// Lease, T1 and T2 for this client, T1/T2 pulled in by up to
    /// `renew_jitter` percent, the same amount for the same client.
    fn times(&self, s: &SubnetRt, c: &Client, req: &Request<'_>) -> (u32, u32, u32) {
        let infinite = c.reserved.is_some_and(|(_, inf)| inf);
        let (lease, t1, t2) = s.lease_times(req.opts.lease_time, infinite);
        if self.renew_jitter == 0 || lease == u32::MAX {
            return (lease, t1, t2);
        }
        let h = c.key.bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let cut = |t: u32| {
            t - (u64::from(t) * u64::from(self.renew_jitter) / 100 * (h % 1024) / 1024) as u32
        };
        (lease, cut(t1), cut(t2))
    }

    fn discover<'a>(
        &'a self,
        s: &'a SubnetRt,
        c: &Client,
        req: &Request<'_>,
        now: u32,
    ) -> Result<(&'a SubnetRt, Reply), Silence> {
        let hold = now.saturating_add(self.offer_hold);
        let got = self.leases.update(&c.key, |e| {
            // The client's current binding or held offer keeps its address,
            // unless a reservation now says otherwise.
            if let Some(l) = e
                && l.state.holds()
                && s.contains(l.addr)
            {
                match c.reserved {
                    Some((r, _)) if r != l.addr => s.free(l.addr),
                    _ => {
                        if l.state == LeaseState::Offered {
                            l.expires = hold;
                        }
                        return Some((s, l.addr));
                    }
                }
            }
            // Its reservation, its previous address, the one it asks for,
            // then the lowest free one — of the next subnet of a shared
            // network when this one is full.
            let previous = e.filter(|l| s.contains(l.addr)).map(|l| l.addr);
            let (used, addr) = c
                .reserved
                .map(|(r, _)| r)
                .or_else(|| previous.filter(|a| s.pool.claim(*a)))
                .or_else(|| {
                    req.opts
                        .requested_ip
                        .filter(|a| s.contains(*a) && s.pool.claim(*a))
                })
                .or_else(|| s.pool.allocate_from(c.home))
                .map(|a| (s, a))
                .or_else(|| {
                    self.siblings(s)
                        .find_map(|o| o.pool.allocate_from(c.home).map(|a| (o, a)))
                })?;
            *e = Some(Lease {
                addr,
                state: LeaseState::Offered,
                expires: hold,
            });
            Some((used, addr))
        });
        let (used, addr) = got.ok_or(Silence::NoAddress)?;
        Ok((
            used,
            Reply {
                kind: MessageType::Offer,
                yiaddr: addr,
                times: Some(self.times(used, c, req)),
                server_id: c.server_id,
            },
        ))
    }

    fn request(
        &self,
        s: &SubnetRt,
        c: &Client,
        req: &Request<'_>,
        now: u32,
    ) -> Result<Reply, Silence> {
        let times = self.times(s, c, req);
        let ack = |addr| Reply {
            kind: MessageType::Ack,
            yiaddr: addr,
            times: Some(times),
            server_id: c.server_id,
        };
        let nak = Reply {
            kind: MessageType::Nak,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            times: None,
            server_id: c.server_id,
        };
        let until = if times.0 == u32::MAX {
            u32::MAX
        } else {
            now.saturating_add(times.0)
        };
        let reserved = c.reserved.map(|(a, _)| a);
        // Whether `want` can become this client's binding now: it holds
        // it, it is reserved for it, or it held it and nobody took it since.
        let grant = |e: &mut Option<Lease>, want: Ipv4Addr| {
            let ok = match e {
                Some(l) if l.addr == want && l.state.holds() => true,
                _ if reserved == Some(want) => true,
                Some(l) if l.addr == want => reserved.is_none() && s.pool.claim(want),
                _ => false,
            };
            if ok {
                if let Some(l) = e
                    && l.addr != want
                    && l.state.holds()
                {
                    s.free(l.addr);
                }
                *e = Some(Lease {
                    addr: want,
                    state: LeaseState::Bound,
                    expires: until,
                });
            }
            ok
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
                    self.leases.update(&c.key, |e| {
                        if let Some(l) = e
                            && l.state == LeaseState::Offered
                        {
                            s.free(l.addr);
                            l.state = LeaseState::Released;
                            l.expires = now;
                        }
                    });
                    return Err(Silence::Ignored);
                }
                let want = requested.unwrap_or(req.ciaddr);
                let granted = self.leases.update(&c.key, |e| grant(e, want));
                Ok(if granted { ack(want) } else { nak })
            }
            // INIT-REBOOT: a client that remembers an address.
            (None, Some(want), true) => {
                if !s.contains(want) {
                    return Ok(nak);
                }
                self.leases.update(&c.key, |e| {
                    if grant(e, want) {
                        Ok(ack(want))
                    } else if e.is_some() || self.authoritative {
                        Ok(nak)
                    } else {
                        // RFC 2131 §4.3.2: no record of this client.
                        Err(Silence::Ignored)
                    }
                })
            }
            // RENEWING (unicast) or REBINDING (broadcast): ciaddr set.
            (None, _, false) => {
                let have = req.ciaddr;
                if !s.contains(have) {
                    return Ok(nak);
                }
                self.leases.update(&c.key, |e| match e {
                    Some(l) if l.state == LeaseState::Bound && l.addr == have => {
                        grant(e, have);
                        Ok(ack(have))
                    }
                    _ if reserved == Some(have) => {
                        grant(e, have);
                        Ok(ack(have))
                    }
                    _ if self.authoritative => Ok(nak),
                    _ => Err(Silence::Ignored),
                })
            }
            (None, None, true) => Err(Silence::Ignored),
        }
    }

    /// RELEASE and DECLINE count only from the binding's owner naming us.
    fn names_us(&self, s: &SubnetRt, c: &Client, req: &Request<'_>) -> bool {
        req.opts
            .server_id
            .is_some_and(|sid| sid == s.server_id || sid == c.server_id)
    }

    /// Frees the client's binding of ciaddr; the address freed, if any.
    fn release(&self, s: &SubnetRt, c: &Client, req: &Request<'_>, now: u32) -> Option<Ipv4Addr> {
        if !self.names_us(s, c, req) {
            return None;
        }
        self.leases.update(&c.key, |e| match e {
            Some(l) if l.state == LeaseState::Bound && l.addr == req.ciaddr => {
                s.free(l.addr);
                l.state = LeaseState::Released;
                l.expires = now;
                Some(l.addr)
            }
            _ => None,
        })
    }

    /// Quarantines the address the client declines; the address, if any.
    fn decline(&self, s: &SubnetRt, c: &Client, req: &Request<'_>, now: u32) -> Option<Ipv4Addr> {
        let addr = req.opts.requested_ip?;
        if !self.names_us(s, c, req) {
            return None;
        }
        let declined = self.leases.update(&c.key, |e| match e {
            Some(l) if l.state.holds() && l.addr == addr => {
                *e = None;
                true
            }
            _ => false,
        });
        if !declined {
            return None;
        }
        if !s.is_reserved(addr) {
            // The address stays taken in the pool, now under quarantine.
            self.quarantine(s, addr, now.saturating_add(self.decline_hold));
        }
        Some(addr)
    }
}
