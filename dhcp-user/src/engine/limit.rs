//! The subnet's `[subnet.limits]` applied to one request: the checks that
//! drop it before any other work (Ethernet source against chaddr, request
//! rates per MAC and per circuit-id), and the lines its new lease would
//! be counted on (circuit-id, remote-id, VLAN, MAC), whose counters are
//! taken before an address is.
//!
//! The counters themselves live in `lease::limits`; this file only says
//! which lines a request is on.
use super::request::AgentTrust;
use super::subnet::SubnetRt;
use super::{Engine, Request};
use crate::lease::journal::LeaseRecord;
use crate::lease::limits::{LineKeys, LineKind, Lines, Refusal};
use crate::wire::options::{agent, agent_sub_option};

/// Why a request was refused by a limit; each is counted on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The circuit-id holds `leases_per_circuit_id` leases already.
    CircuitId,
    RemoteId,
    Vlan,
    Mac,
    /// A new line found no room in the line table (sized at start).
    TableFull,
    /// Over `requests_per_mac`: dropped.
    RateMac,
    /// Over `requests_per_circuit_id`: dropped.
    RateCircuitId,
    /// `check_src_mac`: the Ethernet source is not chaddr.
    SrcMac,
}

impl From<Refusal> for Limited {
    fn from(r: Refusal) -> Limited {
        match r {
            Refusal::Limit(LineKind::CircuitId) => Limited::CircuitId,
            Refusal::Limit(LineKind::RemoteId) => Limited::RemoteId,
            Refusal::Limit(LineKind::Vlan) => Limited::Vlan,
            Refusal::Limit(LineKind::Mac) => Limited::Mac,
            Refusal::TableFull => Limited::TableFull,
        }
    }
}

/// Whether the request's option 82 may be believed: the engine's trust
/// decision (`trust.rs`: a relay inside `trusted_relays`, or a direct
/// link marked `trust_agent_info`). An untrusted option 82 is already
/// out of the request view, so circuit-id and remote-id lines exist only
/// for trusted ones; the check says so where the lines are read.
#[inline]
pub(super) fn agent_info_trusted(req: &Request<'_>) -> bool {
    req.agent == AgentTrust::Trusted
}

/// The trusted circuit-id of a request, if it has a non-empty one.
fn circuit_id<'a>(req: &Request<'a>) -> Option<&'a [u8]> {
    if !agent_info_trusted(req) {
        return None;
    }
    agent_sub_option(req.opts.agent_info?, agent::CIRCUIT_ID).filter(|c| !c.is_empty())
}

impl Engine {
    /// The checks before any other work: a direct request whose Ethernet
    /// source is not chaddr (`check_src_mac`), then the request rates. The
    /// rate per MAC is per Ethernet source on the link itself; behind a
    /// relay, whose MAC is the source of every frame, it is per chaddr.
    pub(super) fn admit(
        &self,
        s: &SubnetRt,
        req: &Request<'_>,
        micros: u64,
    ) -> Result<(), Limited> {
        let l = &s.limits;
        let direct = req.giaddr.is_unspecified();
        if l.check_src_mac && direct && req.src_mac != req.chaddr6 {
            return Err(Limited::SrcMac);
        }
        if let Some(r) = l.mac_rate {
            let mac = if direct { &req.src_mac } else { &req.chaddr6 };
            let key = self.mac_rates.key(s.link, mac);
            if !self.mac_rates.allow(key, micros, r.interval_us(), r.burst) {
                return Err(Limited::RateMac);
            }
        }
        if let Some(r) = l.circuit_rate
            && let Some(c) = circuit_id(req)
        {
            let key = self.circuit_rates.key(s.link, c);
            if !self
                .circuit_rates
                .allow(key, micros, r.interval_us(), r.burst)
            {
                return Err(Limited::RateCircuitId);
            }
        }
        Ok(())
    }

    /// The lines a new lease of this request would be counted on, for the
    /// kinds `s` limits: the trusted circuit-id and remote-id, the VLAN
    /// tags of a direct request (outer and inner id: one subscriber of a
    /// 1:1 VLAN network, single- or double-tagged), the client's MAC.
    pub(super) fn line_keys(&self, s: &SubnetRt, req: &Request<'_>) -> LineKeys {
        let l = &s.limits.leases;
        let mut k = LineKeys::default();
        if l.iter().all(|n| *n == 0) {
            return k;
        }
        let ai = req.opts.agent_info.filter(|_| agent_info_trusted(req));
        let vlans = (req.giaddr.is_unspecified() && req.vlans.count > 0).then(|| {
            let (o, i) = (
                req.vlans.outer_vid().unwrap_or(0),
                req.vlans.inner_vid().unwrap_or(0),
            );
            [o.to_be_bytes(), i.to_be_bytes()]
        });
        self.fill_keys(
            s,
            &mut k,
            ai,
            vlans.as_ref().map(|v| v.as_flattened()),
            &req.chaddr6,
        );
        k
    }

    fn fill_keys(
        &self,
        s: &SubnetRt,
        k: &mut LineKeys,
        agent_info: Option<&[u8]>,
        vlans: Option<&[u8]>,
        mac: &[u8; 6],
    ) {
        let l = &s.limits.leases;
        let t = &self.lines;
        let sub = |code| {
            agent_info
                .and_then(|ai| agent_sub_option(ai, code))
                .filter(|v| !v.is_empty())
        };
        for kind in LineKind::ALL {
            if l[kind as usize] == 0 {
                continue;
            }
            let id = match kind {
                LineKind::CircuitId => sub(agent::CIRCUIT_ID),
                LineKind::RemoteId => sub(agent::REMOTE_ID),
                LineKind::Vlan => vlans,
                LineKind::Mac => Some(&mac[..]),
            };
            if let Some(id) = id {
                k.0[kind as usize] = t.key(kind, s.link, id);
            }
        }
    }

    /// Counts a new lease on its lines, all or none, before its address
    /// is taken.
    #[inline]
    pub(super) fn take_lines(&self, s: &SubnetRt, keys: &LineKeys) -> Result<Lines, Limited> {
        if keys.is_empty() {
            return Ok(Lines::NONE);
        }
        self.lines
            .take_all(keys, &s.limits.leases)
            .map_err(Limited::from)
    }

    /// Gives back the line counts of a lease that stops holding its
    /// address.
    #[inline]
    pub(super) fn put_lines(&self, lines: Lines) {
        if !lines.is_none() {
            self.lines.put_all(lines);
        }
    }

    /// The lines of a lease restored from the journal, counted whatever
    /// the limits say (the lease exists; the limit holds new ones back).
    /// The journal keeps option 82 only when it was trusted, and no VLAN
    /// tags: VLAN lines start from zero at a restart.
    pub(super) fn restore_lines(&self, s: &SubnetRt, r: &LeaseRecord) -> Lines {
        if s.limits.leases.iter().all(|n| *n == 0) {
            return Lines::NONE;
        }
        let mut k = LineKeys::default();
        let ai = Some(r.agent_info.as_slice()).filter(|a| !a.is_empty());
        self.fill_keys(s, &mut k, ai, None, &r.hwaddr);
        self.lines.force_all(&k)
    }
}
