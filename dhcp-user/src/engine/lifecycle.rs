//! The lease life cycle beside the decisions: the engine's clock, the
//! change a decision leaves for the journal, and what happens to leases
//! without a request — they expire (the sweeper), come back from the
//! journal at start (restore), and are claimed again in the pools of a
//! reloaded engine (reclaim). Quarantine of declined addresses is here
//! too, since both DECLINE and restore put addresses under it.
use super::client::{KEY_CHADDR, KEY_CIRCUIT_ID, KEY_DECLINED, KEY_REMOTE_ID};
use super::limit::agent_info_trusted;
use super::subnet::SubnetRt;
use super::{Engine, Request};
use crate::lease::journal::{FQDN_SENT, FixedBytes, INFINITE, LeaseRecord, RecordState};
use crate::lease::limits::Lines;
use crate::lease::{ClientKey, Full, Lease, LeaseState};
use crate::wire::fqdn::{ClientFqdn, MAX_LABEL, client_label};
use crate::wire::options::{agent, agent_sub_option};
use std::net::Ipv4Addr;
use std::time::Instant;

/// The engine's clock: whole seconds since start on the monotonic clock
/// (deadlines), and wall-clock seconds (what the journal stores), both
/// read once per batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    pub secs: u32,
    pub unix: u64,
    /// Microseconds since start (request rates).
    pub micros: u64,
}

impl Clock {
    pub fn now(engine: &Engine, at: Instant) -> Clock {
        let since = at.saturating_duration_since(engine.epoch);
        Clock {
            secs: since.as_secs() as u32,
            micros: since.as_micros() as u64,
            unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// When a lease of `lease` seconds granted at `now` ends; `u32::MAX`
/// (infinite) never does.
pub(super) fn expiry(now: u32, lease: u32) -> u32 {
    if lease == u32::MAX {
        u32::MAX
    } else {
        now.saturating_add(lease)
    }
}

/// A lease change to be journaled.
#[derive(Clone, Copy, Debug)]
pub struct Change {
    pub subnet: u16,
    pub key: ClientKey,
    pub addr: Ipv4Addr,
    pub state: RecordState,
    /// Engine seconds; `u32::MAX`: never.
    pub expires: u32,
}

impl Change {
    /// The journal record of this change, with what the request said
    /// about the client (hardware address, host name, relay information),
    /// written straight into the caller's slot: built and returned, the
    /// record (a couple of hundred bytes) was copied once more on the way.
    // Inlined into `process` on purpose: the compiler's own choice flipped
    // with unrelated changes, and out of line it cost about 20 more
    // instructions per ACK (callgrind).
    #[inline]
    pub(super) fn record_into(
        &self,
        req: &Request<'_>,
        clock: Clock,
        out: &mut Option<LeaseRecord>,
    ) {
        let expires_unix = if self.expires == u32::MAX {
            INFINITE
        } else {
            clock.unix + u64::from(self.expires.saturating_sub(clock.secs))
        };
        // The client's name as a DNS label: safe to print, and what DDNS
        // names the lease by (`fqdn::client_label`).
        let fqdn = req.opts.client_fqdn.and_then(ClientFqdn::parse);
        let mut label = [0u8; MAX_LABEL];
        let n = client_label(fqdn.as_ref(), req.opts.hostname, &mut label);
        *out = Some(LeaseRecord {
            subnet: self.subnet,
            addr: self.addr,
            client: self.key,
            hwaddr: req.chaddr6,
            state: self.state,
            expires_unix,
            cltt_unix: clock.unix,
            hostname: FixedBytes::new(&label[..n]).0,
            // Only what a trusted agent said: the journal's circuit-id
            // and remote-id count the lease on its lines after a restart.
            agent_info: FixedBytes::new(
                req.opts
                    .agent_info
                    .filter(|_| agent_info_trusted(req))
                    .unwrap_or(&[]),
            )
            .0,
            fqdn_flags: fqdn.map_or(0, |f| FQDN_SENT | (f.flags & 0x0f)),
        });
    }
}

impl Engine {
    /// Claims, in this engine's pools, every address the lease table holds
    /// (bound, offered, quarantined). Idempotent; after a reload it covers
    /// what workers still on the old engine handed out meanwhile. A client
    /// holding an address that this configuration newly reserves for
    /// another is noted as its holder: it is moved off at its next request
    /// (see `client.rs`).
    pub fn reclaim(&self) {
        let mut quarantined = vec![0u32; self.subnets.len()];
        self.leases.retain(|k, l| {
            if l.state.holds()
                && let Some(s) = self.subnet_of(k.subnet, l.addr)
            {
                match s.reservation(l.addr) {
                    None => {
                        s.pool.claim(l.addr);
                        if l.state == LeaseState::Declined {
                            quarantined[usize::from(s.id)] += 1;
                        }
                    }
                    Some(r) => {
                        if r.fresh()
                            && l.state != LeaseState::Declined
                            && k != r.owner()
                            && r.holder().is_none()
                        {
                            r.set_holder(Some(*k));
                        }
                    }
                }
            }
            true
        });
        for (s, n) in self.subnets.iter().zip(quarantined) {
            s.recount_probation(n);
        }
    }

    /// Reserved addresses held by a client that may not be theirs, as far
    /// as the engine knows (for the log after a restore or reload).
    pub fn reservation_conflicts(&self) -> usize {
        self.subnets
            .iter()
            .map(|s| s.reservations().filter(|r| r.holder().is_some()).count())
            .sum()
    }

    /// Ends held offers, leases and quarantines whose time is up and gives
    /// their addresses back to the pools; forgets released and expired
    /// records older than `keep_released`. Runs on a side thread; returns
    /// how many it ended. Only the table's shards in which something is
    /// due are visited ([`crate::lease::table::LeaseTable::retain_due`]).
    pub fn expire(&self, now: u32) -> usize {
        let mut ended = 0;
        self.leases.retain_due(now, |k, l| {
            if !l.state.holds() {
                let gone = l.expires.saturating_add(self.keep_released);
                return (gone > now).then_some(gone);
            }
            if l.expires > now {
                return Some(l.expires);
            }
            let s = self.subnet_of(k.subnet, l.addr);
            if let Some(s) = s {
                s.free(l.addr);
            }
            self.put_lines(std::mem::take(&mut l.lines));
            ended += 1;
            if l.state == LeaseState::Declined {
                if let Some(s) = s
                    && !s.is_reserved(l.addr)
                {
                    s.leave_probation();
                }
                return None;
            }
            l.state = LeaseState::Expired;
            (self.keep_released > 0).then(|| l.expires.saturating_add(self.keep_released))
        });
        ended
    }

    /// Holds `addr` under quarantine until `until` (engine seconds); the
    /// caller keeps it taken in the pool and counts it into probation.
    /// Whether the quarantine is new (false: an earlier one was extended).
    /// A table with no room for the quarantine gives the address back to
    /// the pool instead (through [`Engine::on_evict`]), and the caller
    /// takes it out of probation again: better a conflict the client may
    /// decline again than an address lost until restart.
    pub(super) fn quarantine(
        &self,
        s: &SubnetRt,
        addr: Ipv4Addr,
        until: u32,
    ) -> Result<bool, Full> {
        let q = ClientKey::new(s.link, KEY_DECLINED, &addr.octets());
        self.lease_update(&q, |e| {
            let new = !e.is_some_and(|l| l.state == LeaseState::Declined);
            *e = Some(Lease {
                addr,
                state: LeaseState::Declined,
                expires: until,
                lines: Lines::NONE,
            });
            new
        })
    }

    /// Whether the journal's record `r`, bound under `key` to an address
    /// reserved for `owner`, is the reservation's own: its key, its MAC,
    /// or the circuit-id / remote-id its record carries. A record without
    /// option 82 (a renewal sent straight to us) is given the benefit of
    /// the doubt for circuit-id and remote-id reservations.
    fn owns(owner: &ClientKey, key: &ClientKey, r: &LeaseRecord) -> bool {
        let ai = r.agent_info.as_slice();
        let sub = |code| agent_sub_option(ai, code);
        key == owner
            || match owner.kind {
                KEY_CHADDR => ClientKey::new(owner.subnet, KEY_CHADDR, &r.hwaddr) == *owner,
                KEY_CIRCUIT_ID | KEY_REMOTE_ID if ai.is_empty() => true,
                KEY_CIRCUIT_ID => sub(agent::CIRCUIT_ID)
                    .is_some_and(|id| ClientKey::new(owner.subnet, KEY_CIRCUIT_ID, id) == *owner),
                KEY_REMOTE_ID => sub(agent::REMOTE_ID)
                    .is_some_and(|id| ClientKey::new(owner.subnet, KEY_REMOTE_ID, id) == *owner),
                _ => false,
            }
    }

    /// Applies one record another cluster member made (its share's lease,
    /// read from the lease stream) to the table and the pools, while the
    /// workers run: the same steps as [`Engine::restore`], each of which is
    /// safe beside them (a pool bit by compare-and-swap, the record under
    /// its shard's lock). The owner decided; this server only learns it,
    /// so that it answers the client's renewals and never hands the
    /// address to anyone else. False: skipped (no such subnet here, no
    /// room in the table).
    pub fn apply_remote(&self, rec: &LeaseRecord, clock: Clock) -> bool {
        self.restore(std::slice::from_ref(rec), clock).0 == 1
    }

    /// Puts recovered journal records back into the table and the pools
    /// (at start, before any worker runs). Records of subnets that are no
    /// longer configured, of addresses outside them, or that found no room
    /// in the lease table (a `max_clients` below what the journal holds),
    /// are skipped and counted in the second number.
    pub fn restore(&self, records: &[LeaseRecord], clock: Clock) -> (usize, usize) {
        let (mut restored, mut skipped) = (0, 0);
        for r in records {
            let Some(s) = self
                .subnets
                .get(usize::from(r.subnet))
                .filter(|s| s.contains(r.addr))
                .or_else(|| self.subnets.iter().find(|s| s.contains(r.addr)))
            else {
                skipped += 1;
                continue;
            };
            let expires = if r.expires_unix == INFINITE {
                u32::MAX
            } else {
                let left = r.expires_unix.saturating_sub(clock.unix);
                clock
                    .secs
                    .saturating_add(left.min(u64::from(u32::MAX - 1)) as u32)
            };
            let mut key = r.client;
            key.subnet = s.link;
            match r.state {
                RecordState::Bound => {
                    // Bound to another client than the one it is reserved
                    // for (the reservation is newer than the lease): that
                    // client is moved off at its next request.
                    let suspect = match s.reservation(r.addr) {
                        None => {
                            s.pool.claim(r.addr);
                            None
                        }
                        Some(res) if !Self::owns(res.owner(), &key, r) => Some(res),
                        Some(_) => None,
                    };
                    let stored = self.lease_update(&key, |e| {
                        let held = e.filter(|l| l.state.holds());
                        if let Some(old) = held
                            && old.addr != r.addr
                        {
                            s.free(old.addr);
                        }
                        // A later record of a held lease: still one lease.
                        let lines = held.map_or_else(|| self.restore_lines(s, r), |l| l.lines);
                        *e = Some(Lease {
                            addr: r.addr,
                            state: LeaseState::Bound,
                            expires,
                            lines,
                        })
                    });
                    // No room (a `max_clients` below what the journal
                    // holds): the address went back to the pool, and the
                    // client is not known to hold it (nor, for the
                    // conflict check, to have used it lately).
                    if stored.is_err() {
                        skipped += 1;
                        continue;
                    }
                    if let Some(res) = suspect {
                        res.set_holder(Some(key));
                    }
                    // Leased until lately: no conflict probe needed soon.
                    self.leased(s, r.addr, clock.secs);
                }
                // A reserved address is never quarantined (the
                // reservation keeps it out of the pool anyway).
                RecordState::Declined if !s.is_reserved(r.addr) => {
                    s.pool.claim(r.addr);
                    match self.quarantine(s, r.addr, expires) {
                        Ok(true) => s.force_probation(),
                        Ok(false) => {}
                        // No room: the address went back to the pool.
                        Err(Full) => {
                            skipped += 1;
                            continue;
                        }
                    }
                }
                RecordState::Declined => {}
                RecordState::Released | RecordState::Expired => {
                    // Evicts older idle records at the bound, like a
                    // request would; nothing held is lost.
                    let _ = self.lease_update(&key, |e| {
                        if e.is_none_or(|l| l.addr == r.addr) {
                            if let Some(l) = e
                                && l.state.holds()
                            {
                                s.free(l.addr);
                                self.put_lines(l.lines);
                            }
                            *e = Some(Lease {
                                addr: r.addr,
                                state: if r.state == RecordState::Expired {
                                    LeaseState::Expired
                                } else {
                                    LeaseState::Released
                                },
                                expires: clock.secs,
                                lines: Lines::NONE,
                            });
                        }
                    });
                }
            }
            restored += 1;
        }
        (restored, skipped)
    }
}
