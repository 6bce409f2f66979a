//! Protocol decisions, without I/O: which subnet a request belongs to,
//! which address a client gets, and what the reply says.
//!
//! [`Engine`] is shared by all workers; each worker drives it through its
//! own [`Handler`], which reads the received frame in place, decides, and
//! writes the reply frame straight into the TX buffer it was given.
mod journal_link;
pub mod reply;
pub mod subnet;

use crate::config::{Checked, Identity};
use crate::handler::FrameHandler;
use crate::lease::journal::{FixedBytes, INFINITE, LeaseRecord, RecordState};
use crate::lease::{ClientKey, Lease, LeaseState, LeaseTable};
use crate::stats::{WorkerStats, bump};
use crate::wire::DhcpFrame;
use crate::wire::dhcp::{self, MessageType};
use crate::wire::ethernet::VlanTags;
use crate::wire::options::agent;
use crate::wire::options::{JoinBuffer, RequestOptions, agent_sub_option};
use arc_swap::ArcSwap;
use foldhash::fast::FixedState;
pub use journal_link::{Appended, JournalLink};
use reply::{Local, Reply};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Instant;
use subnet::SubnetRt;

const SERVER_PORT: u16 = 67;
const KEY_CHADDR: u8 = 0;
const KEY_CLIENT_ID: u8 = 1;
/// Declined addresses are held under a key of their own, so the sweeper
/// that ends leases also ends their quarantine.
const KEY_DECLINED: u8 = 2;
/// Reservations by relay agent circuit-id / remote-id.
const KEY_CIRCUIT_ID: u8 = 3;
const KEY_REMOTE_ID: u8 = 4;

/// The server's state shared by all workers.
pub struct Engine {
    subnets: Box<[SubnetRt]>,
    /// Shared with the engines a reload makes, so no lease is copied or
    /// lost.
    leases: Arc<LeaseTable>,
    /// Link name → link id, kept across reloads so that client keys in the
    /// shared table keep their meaning.
    links: Arc<Mutex<HashMap<String, u16>>>,
    epoch: Instant,
    offer_hold: u32,
    decline_hold: u32,
    authoritative: bool,
    dscp: u8,
    renew_jitter: u8,
    /// Seconds released and expired records are kept (the client's
    /// address stays its own if nobody took it meanwhile).
    keep_released: u32,
    /// Workers allocating from the pools: each pool has one shard per
    /// worker (see [`Pool::new`](crate::lease::Pool::new)).
    workers: usize,
    /// Reservations of every subnet by identity, built at start and only
    /// read afterwards.
    reservations: HashMap<ClientKey, (Ipv4Addr, bool), FixedState>,
}

/// A request, read once from the frame; borrows the frame's bytes.
pub struct Request<'a> {
    pub src_mac: [u8; 6],
    pub vlans: VlanTags,
    pub htype: u8,
    pub hlen: u8,
    pub xid: u32,
    pub flags: u16,
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// chaddr as an Ethernet address (the L2 destination of unicast
    /// replies on the local link).
    pub chaddr6: [u8; 6],
    pub kind: MessageType,
    pub requested_ip: Option<Ipv4Addr>,
    pub server_id: Option<Ipv4Addr>,
    pub max_message_size: Option<u16>,
    pub client_id: Option<&'a [u8]>,
    pub subnet_selection: Option<Ipv4Addr>,
    pub opts: RequestOptions<'a>,
}

impl<'a> Request<'a> {
    /// Option 55.
    #[inline]
    pub fn param_list(&self) -> Option<&'a [u8]> {
        self.opts.param_list
    }
    /// Option 82, raw, to be echoed.
    #[inline]
    pub fn agent_info(&self) -> Option<&'a [u8]> {
        self.opts.agent_info
    }
}

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
    /// The engine for one worker: its pools hand out addresses exactly
    /// lowest-free-first.
    pub fn new(cfg: &Checked) -> Engine {
        Engine::for_workers(cfg, 1)
    }

    /// The engine for `workers` workers, each with a home shard in every
    /// pool ([`Handler::worker`]), so that they do not allocate from the
    /// same words.
    pub fn for_workers(cfg: &Checked, workers: usize) -> Engine {
        Engine::build(cfg, None, workers.max(1))
    }

    /// The engine for a new configuration that carries on from this one:
    /// the same lease table and clock, the same pools for subnets whose
    /// prefix, VLAN and ranges did not change. Addresses held in the table
    /// are claimed in the pools that are new. Workers switch to it at
    /// their next batch; call [`Engine::reclaim`] once they have.
    pub fn reload(&self, cfg: &Checked) -> Engine {
        let e = Engine::build(cfg, Some(self), self.workers);
        e.reclaim();
        e
    }

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

    fn build(cfg: &Checked, prev: Option<&Engine>, workers: usize) -> Engine {
        let links = prev.map_or_else(|| Arc::new(Mutex::new(HashMap::new())), |p| p.links.clone());
        let subnets: Box<[SubnetRt]> = {
            let mut names = links.lock().unwrap_or_else(|p| p.into_inner());
            cfg.subnets
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let name = match &s.shared_network {
                        Some(n) => format!("shared:{n}"),
                        None => format!("{}/{}@{:?}", s.network, s.prefix_len, s.vlan),
                    };
                    let next = names.len() as u16;
                    let link = *names.entry(name).or_insert(next);
                    let shape = SubnetRt::shape_of(s);
                    let pool = prev
                        .and_then(|p| p.subnets.iter().find(|o| o.shape == shape))
                        .map(|o| o.pool.clone());
                    SubnetRt::new(i as u16, link, s, pool, workers)
                })
                .collect()
        };
        let capacity = subnets
            .iter()
            .map(|s| s.pool.size() as usize)
            .sum::<usize>();
        let mut reservations = HashMap::with_hasher(FixedState::with_seed(0x7265_7376));
        for (i, sub) in cfg.subnets.iter().enumerate() {
            for r in &sub.reservations {
                let (kind, id): (u8, &[u8]) = match &r.identity {
                    Identity::Mac(m) => (KEY_CHADDR, m),
                    Identity::ClientId(c) => (KEY_CLIENT_ID, c),
                    Identity::CircuitId(c) => (KEY_CIRCUIT_ID, c),
                    Identity::RemoteId(c) => (KEY_REMOTE_ID, c),
                };
                let link = subnets[i].link;
                reservations.insert(ClientKey::new(link, kind, id), (r.address, r.infinite));
            }
        }
        Engine {
            leases: prev.map_or_else(
                || Arc::new(LeaseTable::with_capacity(capacity.min(1 << 22))),
                |p| p.leases.clone(),
            ),
            links,
            subnets,
            epoch: prev.map_or_else(Instant::now, |p| p.epoch),
            offer_hold: cfg.file.offer_hold,
            decline_hold: cfg.file.decline_probation,
            authoritative: cfg.file.authoritative,
            dscp: cfg.file.dscp,
            renew_jitter: cfg.file.renew_jitter,
            keep_released: cfg.file.keep_released,
            workers,
            reservations,
        }
    }

    /// Engine time: whole seconds since start, on the monotonic clock.
    pub fn secs(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_secs() as u32
    }

    pub fn subnets(&self) -> &[SubnetRt] {
        &self.subnets
    }

    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// A worker's handle on this engine alone (tests, tools).
    pub fn handler(self: &Arc<Self>, mac: [u8; 6], stats: Arc<WorkerStats>) -> Handler {
        Handler::new(Arc::new(ArcSwap::new(self.clone())), mac, stats)
    }
}

impl Handler {
    /// A worker's handle on whatever engine `cell` holds: the daemon swaps
    /// in a reloaded engine there and the worker takes it up at its next
    /// batch.
    pub fn new(cell: Arc<ArcSwap<Engine>>, mac: [u8; 6], stats: Arc<WorkerStats>) -> Handler {
        let engine = cell.load_full();
        Handler {
            local: Local {
                mac,
                dscp: engine.dscp,
                home: 0,
            },
            engine,
            cell,
            stats,
            clock: Clock::default(),
            journal: None,
            hold: 0,
        }
    }
}

impl Engine {
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
                .agent_info()
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

    /// The subnet of `link` that holds `addr`.
    fn subnet_of(&self, link: u16, addr: Ipv4Addr) -> Option<&SubnetRt> {
        self.subnets
            .iter()
            .find(|s| s.link == link && s.contains(addr))
    }

    /// The other subnets on `s`'s link, in configuration order (empty
    /// unless `s` is in a shared network).
    fn siblings<'a>(&'a self, s: &'a SubnetRt) -> impl Iterator<Item = &'a SubnetRt> + Clone + 'a {
        self.subnets
            .iter()
            .filter(move |o| o.link == s.link && o.id != s.id)
    }

    /// Within a shared network, the subnet the request is about: the one
    /// holding the address it names (ciaddr, option 50), else the one
    /// holding the client's current lease, else the selected one.
    fn member_for<'a>(
        &'a self,
        s: &'a SubnetRt,
        key: &ClientKey,
        req: &Request<'_>,
    ) -> &'a SubnetRt {
        if self.siblings(s).next().is_none() {
            return s;
        }
        let named = [
            req.ciaddr,
            req.requested_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        ];
        let holds = |a: Ipv4Addr| {
            std::iter::once(s)
                .chain(self.siblings(s))
                .find(|m| m.contains(a))
        };
        if let Some(m) = named
            .iter()
            .filter(|a| !a.is_unspecified())
            .find_map(|a| holds(*a))
        {
            return m;
        }
        self.leases
            .get(key)
            .and_then(|l| holds(l.addr))
            .unwrap_or(s)
    }

    /// RFC 2131 §4.3.1 plus the relay RFCs: subnet selection (118), link
    /// selection (82.5), then giaddr, then the link the frame came in on
    /// (its VLAN), preferring the subnet that holds ciaddr.
    fn select_subnet(&self, req: &Request<'_>) -> Option<&SubnetRt> {
        let link_selection = req
            .agent_info()
            .and_then(|ai| agent_sub_option(ai, agent::LINK_SELECTION))
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(Ipv4Addr::from);
        if let Some(a) = req
            .subnet_selection
            .or(link_selection)
            .or_else(|| (!req.giaddr.is_unspecified()).then_some(req.giaddr))
        {
            return self.subnets.iter().find(|s| s.contains(a));
        }
        let vid = req.vlans.outer_vid();
        let mut on_link = self.subnets.iter().filter(|s| s.vlan == vid);
        if req.ciaddr.is_unspecified() {
            return on_link.next();
        }
        let first = on_link.clone().next();
        on_link.find(|s| s.contains(req.ciaddr)).or(first)
    }

    /// The client's reservation on this subnet's link: by client identifier,
    /// hardware address, then the relay's circuit-id and remote-id.
    fn reservation(&self, s: &SubnetRt, req: &Request<'_>) -> Option<(Ipv4Addr, bool)> {
        if self.reservations.is_empty() {
            return None;
        }
        let look = |kind, id: &[u8]| {
            self.reservations
                .get(&ClientKey::new(s.link, kind, id))
                .copied()
        };
        req.client_id
            .and_then(|id| look(KEY_CLIENT_ID, id))
            .or_else(|| look(KEY_CHADDR, chaddr(req)))
            .or_else(|| {
                let ai = req.agent_info()?;
                agent_sub_option(ai, agent::CIRCUIT_ID)
                    .and_then(|id| look(KEY_CIRCUIT_ID, id))
                    .or_else(|| {
                        agent_sub_option(ai, agent::REMOTE_ID)
                            .and_then(|id| look(KEY_REMOTE_ID, id))
                    })
            })
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
                    req.requested_ip
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
        match (req.server_id, req.requested_ip, req.ciaddr.is_unspecified()) {
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
        req.server_id
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
        let addr = req.requested_ip?;
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

    fn quarantine(&self, s: &SubnetRt, addr: Ipv4Addr, until: u32) {
        let q = ClientKey::new(s.link, KEY_DECLINED, &addr.octets());
        self.leases.update(&q, |e| {
            *e = Some(Lease {
                addr,
                state: LeaseState::Declined,
                expires: until,
            })
        });
    }

    /// Puts recovered journal records back into the table and the pools
    /// (at start, before any worker runs). Records of subnets that are no
    /// longer configured, or of addresses outside them, are skipped and
    /// counted in the second number.
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
                    self.leases.update(&key, |e| {
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
                }
                RecordState::Declined => {
                    s.pool.claim(r.addr);
                    self.quarantine(s, r.addr, expires);
                }
                RecordState::Released | RecordState::Expired => {
                    self.leases.update(&key, |e| {
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

fn expiry(now: u32, lease: u32) -> u32 {
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
    fn record(&self, req: &Request<'_>, clock: Clock) -> LeaseRecord {
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
            agent_info: FixedBytes::new(req.agent_info().unwrap_or(&[])).0,
        }
    }
}

/// Who is asking, as the engine needs it for every decision.
struct Client {
    key: ClientKey,
    reserved: Option<(Ipv4Addr, bool)>,
    /// The worker's home shard in the pools.
    home: usize,
    /// Option 54 of our replies, and what the client may name as us.
    server_id: Ipv4Addr,
}

fn chaddr<'a>(req: &'a Request<'_>) -> &'a [u8] {
    &req.chaddr[..usize::from(req.hlen).min(16)]
}

/// Option 61 before chaddr (RFC 2131 §4.2), scoped to the subnet, unless
/// the subnet is told to ignore option 61.
fn client_key(s: &SubnetRt, req: &Request<'_>) -> ClientKey {
    match req.client_id {
        Some(id) if !id.is_empty() && !s.ignore_client_id => {
            ClientKey::new(s.link, KEY_CLIENT_ID, id)
        }
        _ => ClientKey::new(s.link, KEY_CHADDR, chaddr(req)),
    }
}

/// Reads a received frame down to the DHCP options. Anything that is not
/// a well-formed IPv4/UDP BOOTREQUEST to port 67 with a DHCP message type
/// is an error: the XDP program only steers UDP/67 here. `join` holds
/// options a client split in several pieces (RFC 3396).
pub fn parse<'a>(
    frame: &'a [u8],
    join: &'a mut Option<JoinBuffer>,
) -> crate::wire::Result<Request<'a>> {
    use crate::wire::Error;
    let f = DhcpFrame::parse(frame)?;
    if f.udp.dst_port() != SERVER_PORT {
        return Err(Error::NotUdp);
    }
    let msg = &f.dhcp;
    if msg.op() != dhcp::BOOTREQUEST {
        return Err(Error::BadOption);
    }
    let o = f.options(join)?;
    let kind = o.msg_type().ok_or(Error::BadOption)?;
    Ok(Request {
        src_mac: f.eth.src(),
        vlans: f.eth.vlans(),
        htype: msg.htype(),
        hlen: msg.hlen(),
        xid: msg.xid(),
        flags: msg.flags(),
        broadcast: msg.broadcast(),
        ciaddr: msg.ciaddr(),
        giaddr: msg.giaddr(),
        chaddr: *msg.chaddr_raw(),
        chaddr6: msg.chaddr_mac(),
        kind,
        requested_ip: o.requested_ip,
        server_id: o.server_id,
        max_message_size: o.max_message_size,
        client_id: o.client_id,
        subnet_selection: o.subnet_selection,
        opts: o,
    })
}

/// A worker's handle: the shared engine plus this worker's clock, MAC,
/// counters and way into the lease journal.
pub struct Handler {
    engine: Arc<Engine>,
    cell: Arc<ArcSwap<Engine>>,
    local: Local,
    stats: Arc<WorkerStats>,
    clock: Clock,
    journal: Option<JournalLink>,
    /// The ticket the reply just written waits for (0: none).
    hold: u64,
}

impl Handler {
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// This handler's worker index, which is its home shard in every pool:
    /// give each worker its own (0, 1, …) so they allocate apart.
    pub fn worker(mut self, index: usize) -> Handler {
        self.local.home = index;
        self
    }

    /// Journals this worker's lease changes through `link`.
    pub fn with_journal(mut self, link: JournalLink) -> Handler {
        self.journal = Some(link);
        self
    }
}

impl FrameHandler for Handler {
    #[inline]
    fn begin_batch(&mut self, now: Instant) {
        // A reload swaps the engine; this is the one place a worker sees it.
        if !Arc::ptr_eq(&self.cell.load(), &self.engine) {
            self.engine = self.cell.load_full();
            self.local.dscp = self.engine.dscp;
        }
        self.clock = Clock::now(&self.engine, now);
    }

    fn handle(&mut self, rx: &[u8], tx: &mut [u8]) -> Option<usize> {
        let mut record = None;
        let verdict = self
            .engine
            .process(rx, tx, self.clock, &self.local, &mut record);
        let s = &*self.stats;
        self.hold = 0;
        let (req, mut reply) = match verdict {
            Verdict::Malformed => {
                bump(&s.malformed);
                return None;
            }
            Verdict::Silent(req, why) => {
                bump(match why {
                    Silence::Ignored => &s.ignored,
                    Silence::NoSubnet => &s.no_subnet,
                    Silence::NoAddress => &s.no_address,
                });
                (req, None)
            }
            Verdict::Reply(req, kind, len) => (req, Some((kind, len))),
        };
        count_request(s, req);
        if let (Some(rec), Some(j)) = (record, self.journal.as_mut()) {
            let ticket = match j.append(&rec) {
                Appended::Sent(t) => t,
                Appended::Queued(t) => {
                    bump(&s.journal_full);
                    t
                }
                Appended::Refused => {
                    bump(&s.journal_full);
                    bump(&s.journal_lost);
                    if j.durable() {
                        // Never an ACK for a lease that is not on disk.
                        reply = None;
                    }
                    0
                }
            };
            if j.durable() {
                self.hold = ticket;
            }
        }
        let (kind, len) = reply?;
        match kind {
            MessageType::Offer => bump(&s.offer),
            MessageType::Ack => bump(&s.ack),
            MessageType::Nak => bump(&s.nak),
            _ => {}
        }
        Some(len)
    }

    #[inline]
    fn hold_for(&self) -> u64 {
        self.hold
    }

    #[inline]
    fn durable(&mut self) -> u64 {
        self.journal.as_mut().map_or(u64::MAX, |j| {
            j.flush();
            j.durable_seq()
        })
    }

    fn durable_fd(&self) -> Option<std::os::fd::RawFd> {
        self.journal.as_ref().map(JournalLink::wake_fd)
    }

    fn backlog(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.backlog() > 0)
    }
}

fn count_request(s: &WorkerStats, req: MessageType) {
    match req {
        MessageType::Discover => bump(&s.discover),
        MessageType::Request => bump(&s.request),
        MessageType::Decline => bump(&s.decline),
        MessageType::Release => bump(&s.release),
        MessageType::Inform => bump(&s.inform),
        _ => {}
    }
}
