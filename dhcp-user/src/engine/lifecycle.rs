//! The lease life cycle beside the decisions: the engine's clock, the
//! change a decision leaves for the journal, and what happens to leases
//! without a request — they expire (the sweeper), come back from the
//! journal at start (restore), and are claimed again in the pools of a
//! reloaded engine (reclaim). Quarantine of declined addresses is here
//! too, since both DECLINE and restore put addresses under it.
use super::client::KEY_DECLINED;
use super::subnet::SubnetRt;
use super::{Engine, Request};
use crate::lease::journal::{FixedBytes, INFINITE, LeaseRecord, RecordState};
use crate::lease::{ClientKey, Full, Lease, LeaseState};
use std::net::Ipv4Addr;
use std::time::Instant;

/// The engine's clock: whole seconds since start on the monotonic clock
/// (deadlines), and wall-clock seconds (what the journal stores), both
/// read once per batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    pub secs: u32,
    pub unix: u64,
}

impl Clock {
    pub fn now(engine: &Engine, at: Instant) -> Clock {
        Clock {
            secs: engine.secs(at),
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
    /// about the client (hardware address, host name, relay information).
    pub(super) fn record(&self, req: &Request<'_>, clock: Clock) -> LeaseRecord {
        let expires_unix = if self.expires == u32::MAX {
            INFINITE
        } else {
            clock.unix + u64::from(self.expires.saturating_sub(clock.secs))
        };
        LeaseRecord {
            subnet: self.subnet,
            addr: self.addr,
            client: self.key,
            hwaddr: req.chaddr6,
            state: self.state,
            expires_unix,
            cltt_unix: clock.unix,
            hostname: FixedBytes::new(req.opts.hostname.unwrap_or(&[])).0,
            agent_info: FixedBytes::new(req.opts.agent_info.unwrap_or(&[])).0,
        }
    }
}

impl Engine {
    /// Claims, in this engine's pools, every address the lease table holds
    /// (bound, offered, quarantined). Idempotent; after a reload it covers
    /// what workers still on the old engine handed out meanwhile.
    pub fn reclaim(&self) {
        self.leases.retain(|k, l| {
            if l.state.holds()
                && let Some(s) = self.subnet_of(k.subnet, l.addr)
                && !s.is_reserved(l.addr)
            {
                s.pool.claim(l.addr);
            }
            true
        });
    }

    /// Ends held offers, leases and quarantines whose time is up and gives
    /// their addresses back to the pools; forgets released and expired
    /// records older than `keep_released`. Runs on a side thread; returns
    /// how many it ended.
    pub fn expire(&self, now: u32) -> usize {
        let mut ended = 0;
        self.leases.retain(|k, l| {
            if !l.state.holds() {
                return l.expires.saturating_add(self.keep_released) > now;
            }
            if l.expires > now {
                return true;
            }
            if let Some(s) = self.subnet_of(k.subnet, l.addr) {
                s.free(l.addr);
            }
            ended += 1;
            if l.state == LeaseState::Declined {
                return false;
            }
            l.state = LeaseState::Expired;
            self.keep_released > 0
        });
        ended
    }

    /// Holds `addr` under quarantine until `until` (engine seconds); the
    /// caller keeps it taken in the pool. A table with no room for the
    /// quarantine gives the address back to the pool instead (through
    /// [`Engine::on_evict`]): better a conflict the client may decline
    /// again than an address lost until restart.
    pub(super) fn quarantine(&self, s: &SubnetRt, addr: Ipv4Addr, until: u32) -> Result<(), Full> {
        let q = ClientKey::new(s.link, KEY_DECLINED, &addr.octets());
        self.lease_update(&q, |e| {
            *e = Some(Lease {
                addr,
                state: LeaseState::Declined,
                expires: until,
            })
        })
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
                    if !s.is_reserved(r.addr) {
                        s.pool.claim(r.addr);
                    }
                    let stored = self.lease_update(&key, |e| {
                        if let Some(old) = e
                            && old.addr != r.addr
                            && old.state.holds()
                        {
                            s.free(old.addr);
                        }
                        *e = Some(Lease {
                            addr: r.addr,
                            state: LeaseState::Bound,
                            expires,
                        })
                    });
                    // No room (a `max_clients` below what the journal
                    // holds): the address went back to the pool.
                    if stored.is_err() {
                        skipped += 1;
                        continue;
                    }
                }
                RecordState::Declined => {
                    s.pool.claim(r.addr);
                    if self.quarantine(s, r.addr, expires).is_err() {
                        skipped += 1;
                        continue;
                    }
                }
                RecordState::Released | RecordState::Expired => {
                    // Evicts older idle records at the bound, like a
                    // request would; nothing held is lost.
                    let _ = self.lease_update(&key, |e| {
                        if e.is_none_or(|l| l.addr == r.addr) {
                            if let Some(l) = e
                                && l.state.holds()
                            {
                                s.free(l.addr);
                            }
                            *e = Some(Lease {
                                addr: r.addr,
                                state: if r.state == RecordState::Expired {
                                    LeaseState::Expired
                                } else {
                                    LeaseState::Released
                                },
                                expires: clock.secs,
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
