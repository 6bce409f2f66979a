//! Bulk leasequery (RFC 6926) over TCP: a requester that lost many
//! bindings at once (a relay after a restart) asks for all of them on one
//! connection instead of one DHCPLEASEQUERY per packet it cannot place.
//!
//! Each message on the connection is a BOOTP message (no IP or UDP)
//! behind its length in two bytes, network order. A DHCPBULKLEASEQUERY
//! asks by relay-id (option 82 sub-option 12), by remote-id (sub-option
//! 2), by address, client-id or MAC (as RFC 4388), or, with none of
//! those, for every binding; the answer is one DHCPLEASEACTIVE per bound
//! lease that matches (with its option 82, option 152 base-time and 156
//! dhcp-state), then a DHCPLEASEQUERYDONE with a status-code (151):
//! Success, MalformedQuery for what is not a bulk query, NotAllowed for
//! a peer outside the requesters (then the connection is closed).
//!
//! One side thread serves one connection at a time (RFC 6926 lets a
//! server limit them); a connection idle for [`IDLE`] is closed.
use super::answer::{By, Served, answer, is_bound};
use crate::config::LeaseQuery;
use crate::control::index::{Index, record_client_id};
use crate::lease::journal::{INFINITE, LeaseRecord, now_unix};
use crate::wire::dhcp::{BOOTREPLY, CHADDR_LEN, HTYPE_ETHERNET, Message};
use crate::wire::emit::{BootpHeader, DhcpWriter};
use crate::wire::options::{RequestOptions, agent, agent_sub_option, code};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BULK_LEASE_QUERY: u8 = 14;
pub const LEASE_QUERY_DONE: u8 = 15;
const LEASE_ACTIVE: u8 = 13;
/// RFC 6925: the relay's identifier, in option 82.
pub const RELAY_ID: u8 = 12;
const STATUS_CODE: u8 = 151;
const BASE_TIME: u8 = 152;
const DHCP_STATE: u8 = 156;
const STATE_ACTIVE: u8 = 2;

/// RFC 6926 §6.2.2 status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    Success = 0,
    MalformedQuery = 3,
    NotAllowed = 4,
}

/// A connection idle this long is closed.
pub const IDLE: Duration = Duration::from_secs(30);
/// Largest message taken (a BOOTP message with options).
const MAX_MESSAGE: usize = 1500;

/// What a bulk query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkBy<'a> {
    RelayId(&'a [u8]),
    RemoteId(&'a [u8]),
    One(By<'a>),
    All,
}

/// The query in one message; `None`: not a DHCPBULKLEASEQUERY.
pub struct BulkQuery<'a> {
    pub xid: u32,
    pub by: BulkBy<'a>,
    pub wants_agent_info: bool,
}

impl<'a> BulkQuery<'a> {
    pub fn parse(
        msg: &'a [u8],
        join: &'a mut Option<crate::wire::options::JoinBuffer>,
    ) -> Option<BulkQuery<'a>> {
        let m = Message::new_checked(msg).ok()?;
        let opts = RequestOptions::parse(&m, join).ok()?;
        if opts.message_type != Some(BULK_LEASE_QUERY) {
            return None;
        }
        let ai = opts.agent_info.unwrap_or_default();
        let by = if let Some(id) = agent_sub_option(ai, RELAY_ID).filter(|v| !v.is_empty()) {
            BulkBy::RelayId(id)
        } else if let Some(id) = agent_sub_option(ai, agent::REMOTE_ID).filter(|v| !v.is_empty()) {
            BulkBy::RemoteId(id)
        } else {
            match By::of(m.ciaddr(), opts.client_id, m.htype(), m.chaddr()) {
                Some(b) => BulkBy::One(b),
                None => BulkBy::All,
            }
        };
        Some(BulkQuery {
            xid: m.xid(),
            by,
            wants_agent_info: opts.requests(code::AGENT_INFO),
        })
    }
}

/// The bound leases a bulk query asks for, in address order.
pub fn bound_matching(
    by: &BulkBy<'_>,
    index: &Index,
    served: &Served,
    now: u64,
) -> Vec<LeaseRecord> {
    let sub =
        |r: &LeaseRecord, code| agent_sub_option(r.agent_info.as_slice(), code).map(<[u8]>::to_vec);
    let keep = |r: &&LeaseRecord| {
        is_bound(r, now)
            && match by {
                BulkBy::RelayId(id) => sub(r, RELAY_ID).as_deref() == Some(*id),
                BulkBy::RemoteId(id) => sub(r, agent::REMOTE_ID).as_deref() == Some(*id),
                BulkBy::All => true,
                BulkBy::One(_) => false,
            }
    };
    match by {
        BulkBy::One(b) => {
            let a = answer(*b, index, served, now);
            // A client's every bound address, or the one asked about.
            let mut out: Vec<LeaseRecord> = Vec::new();
            if let Some(l) = a.lease {
                out.push(l);
            }
            for addr in a.associated {
                if let Some(r) = index.get(addr).filter(|r| is_bound(r, now))
                    && !out.iter().any(|o| o.addr == r.addr)
                {
                    out.push(*r);
                }
            }
            out.sort_by_key(|r| r.addr);
            out
        }
        _ => index.records().filter(keep).copied().collect(),
    }
}

/// One DHCPLEASEACTIVE of a bulk answer into `buf`; its length.
pub fn write_active(
    buf: &mut [u8],
    xid: u32,
    l: &LeaseRecord,
    server_id: Ipv4Addr,
    agent_info: bool,
    now: u64,
) -> Option<usize> {
    let mut w = DhcpWriter::new(buf).ok()?;
    w.set_limit(MAX_MESSAGE);
    let mut chaddr = [0u8; CHADDR_LEN];
    chaddr[..6].copy_from_slice(&l.hwaddr);
    w.header(&BootpHeader {
        op: BOOTREPLY,
        htype: HTYPE_ETHERNET,
        hlen: 6,
        hops: 0,
        xid,
        secs: 0,
        flags: 0,
        ciaddr: l.addr,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr,
    });
    w.option_u8(code::MESSAGE_TYPE, LEASE_ACTIVE).ok()?;
    w.option_ip(code::SERVER_ID, server_id).ok()?;
    let left = if l.expires_unix == INFINITE {
        u32::MAX
    } else {
        u32::try_from(l.expires_unix.saturating_sub(now)).unwrap_or(u32::MAX - 1)
    };
    w.option_u32(code::LEASE_TIME, left).ok()?;
    w.option_u32(
        code::CLIENT_LAST_TRANSACTION_TIME,
        u32::try_from(now.saturating_sub(l.cltt_unix)).unwrap_or(u32::MAX),
    )
    .ok()?;
    w.option_u32(BASE_TIME, now as u32).ok()?;
    w.option_u8(DHCP_STATE, STATE_ACTIVE).ok()?;
    if let Some(id) = record_client_id(l) {
        w.option(code::CLIENT_ID, id).ok()?;
    }
    if agent_info && !l.agent_info.is_empty() {
        w.option(code::AGENT_INFO, l.agent_info.as_slice()).ok()?;
    }
    w.finish().ok()
}

/// The DHCPLEASEQUERYDONE closing an answer, with its status.
pub fn write_done(
    buf: &mut [u8],
    xid: u32,
    server_id: Ipv4Addr,
    status: Status,
    now: u64,
) -> Option<usize> {
    let mut w = DhcpWriter::new(buf).ok()?;
    w.header(&BootpHeader {
        op: BOOTREPLY,
        htype: 0,
        hlen: 0,
        hops: 0,
        xid,
        secs: 0,
        flags: 0,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: [0; CHADDR_LEN],
    });
    w.option_u8(code::MESSAGE_TYPE, LEASE_QUERY_DONE).ok()?;
    w.option_ip(code::SERVER_ID, server_id).ok()?;
    w.option_u32(BASE_TIME, now as u32).ok()?;
    w.option(STATUS_CODE, &[status as u8]).ok()?;
    w.finish().ok()
}

/// What the bulk thread answers from.
pub struct Bulk {
    pub index: Arc<Mutex<Index>>,
    pub served: Served,
    pub allowed: LeaseQuery,
}

/// The running bulk leasequery listener.
pub struct BulkService {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    pub addr: SocketAddr,
}

impl BulkService {
    pub fn start(listen: SocketAddr, with: Bulk) -> io::Result<BulkService> {
        let l = TcpListener::bind(listen)?;
        let addr = l.local_addr()?;
        l.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("xdhcp-bulklq".into())
            .spawn(move || {
                while !s.load(Relaxed) {
                    match l.accept() {
                        Ok((c, peer)) => {
                            if let Err(e) = serve(c, peer, &with, &s) {
                                tracing::debug!(%peer, "bulk leasequery connection: {e}");
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => {
                            tracing::warn!("bulk leasequery: accept: {e}");
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })?;
        Ok(BulkService { stop, thread, addr })
    }

    pub fn stop(self) {
        self.stop.store(true, Relaxed);
        let _ = self.thread.join();
    }
}

fn send(c: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| io::Error::other("message too long"))?;
    c.write_all(&len.to_be_bytes())?;
    c.write_all(msg)
}

/// Fills `buf` from `c`; `Ok(false)`: the peer closed the connection
/// before the first byte. Gives up when `stop` is set or the connection
/// has been idle for [`IDLE`].
fn read_full(c: &mut TcpStream, buf: &mut [u8], stop: &AtomicBool) -> io::Result<bool> {
    let mut got = 0;
    let idle_until = Instant::now() + IDLE;
    while got < buf.len() {
        match c.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Relaxed) || Instant::now() > idle_until {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "idle"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// One connection: queries until the peer closes it.
fn serve(mut c: TcpStream, peer: SocketAddr, with: &Bulk, stop: &AtomicBool) -> io::Result<()> {
    c.set_nonblocking(false)?;
    // Short, so that a stop is seen; the idle limit is read_full's.
    c.set_read_timeout(Some(Duration::from_millis(200)))?;
    c.set_write_timeout(Some(IDLE))?;
    let peer_ip = match peer.ip() {
        IpAddr::V4(a) => a,
        IpAddr::V6(a) => a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
    };
    let server_id = with.served.server_id(None, peer_ip);
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut out = vec![0u8; MAX_MESSAGE];
    loop {
        let mut len = [0u8; 2];
        if !read_full(&mut c, &mut len, stop)? {
            return Ok(());
        }
        let n = usize::from(u16::from_be_bytes(len));
        if n > buf.len() {
            return Err(io::Error::other(format!("a {n}-byte message")));
        }
        if !read_full(&mut c, &mut buf[..n], stop)? {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let now = now_unix();
        let mut join = None;
        let q = BulkQuery::parse(&buf[..n], &mut join);
        let xid = q.as_ref().map_or_else(|| xid_of(&buf[..n]), |q| q.xid);
        if !with.allowed.allows(peer_ip) {
            if let Some(l) = write_done(&mut out, xid, server_id, Status::NotAllowed, now) {
                send(&mut c, &out[..l])?;
            }
            return Ok(());
        }
        let Some(q) = q else {
            if let Some(l) = write_done(&mut out, xid, server_id, Status::MalformedQuery, now) {
                send(&mut c, &out[..l])?;
            }
            continue;
        };
        let leases = {
            let index = with.index.lock().unwrap_or_else(|p| p.into_inner());
            bound_matching(&q.by, &index, &with.served, now)
        };
        for l in &leases {
            let sid = with.served.server_id(Some(l.subnet), peer_ip);
            if let Some(len) = write_active(&mut out, q.xid, l, sid, q.wants_agent_info, now) {
                send(&mut c, &out[..len])?;
            }
        }
        if let Some(l) = write_done(&mut out, q.xid, server_id, Status::Success, now) {
            send(&mut c, &out[..l])?;
        }
    }
}

fn xid_of(msg: &[u8]) -> u32 {
    msg.get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::lease::ClientKey;
    use crate::lease::journal::{FixedBytes, RecordState};
    use crate::wire::dhcp::OPTIONS_OFFSET;
    use crate::wire::options::OptionIter;
    use crate::wire::testutil::bootp;

    const NOW: u64 = 1_800_000_000;

    const CONFIG: &str = r#"
interface = "test0"
server_id = "192.0.2.1"

[journal]
dir = "/tmp/unused"

[leasequery]

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["192.0.2.10-192.0.2.20"]
"#;

    /// A lease of 192.0.2.`last` relayed with remote-id `remote` and
    /// relay-id `relay`.
    fn rec(last: u8, remote: &[u8], relay: &[u8], state: RecordState) -> LeaseRecord {
        let mac = [2, 0, 0, 0, 0, last];
        let mut ai = vec![1, 1, last, 2, remote.len() as u8];
        ai.extend_from_slice(remote);
        ai.extend_from_slice(&[RELAY_ID, relay.len() as u8]);
        ai.extend_from_slice(relay);
        LeaseRecord {
            subnet: 0,
            addr: Ipv4Addr::new(192, 0, 2, last),
            client: ClientKey::new(0, 0, &mac),
            hwaddr: mac,
            state,
            expires_unix: if state == RecordState::Bound {
                NOW + 300
            } else {
                NOW
            },
            cltt_unix: NOW - 10,
            hostname: Default::default(),
            agent_info: FixedBytes::new(&ai).0,
            fqdn_flags: 0,
        }
    }

    fn addrs(v: &[LeaseRecord]) -> Vec<u8> {
        v.iter().map(|r| r.addr.octets()[3]).collect()
    }

    #[test]
    fn by_remote_id_relay_id_and_all_exactly_the_bound_leases() {
        let served = Served::new(&Config::parse(CONFIG).unwrap());
        let mut past = rec(14, b"olt-a", b"r1", RecordState::Bound);
        past.expires_unix = NOW - 1;
        let i = Index::new(
            &[
                rec(10, b"olt-a", b"r1", RecordState::Bound),
                rec(11, b"olt-b", b"r1", RecordState::Bound),
                rec(12, b"olt-a", b"r2", RecordState::Bound),
                rec(13, b"olt-a", b"r1", RecordState::Released),
                past,
            ],
            3600,
        );
        let got = |by: BulkBy<'_>| addrs(&bound_matching(&by, &i, &served, NOW));
        assert_eq!(got(BulkBy::RemoteId(b"olt-a")), [10, 12]);
        assert_eq!(got(BulkBy::RemoteId(b"olt-b")), [11]);
        assert!(got(BulkBy::RemoteId(b"olt")).is_empty());
        assert_eq!(got(BulkBy::RelayId(b"r1")), [10, 11]);
        assert_eq!(got(BulkBy::All), [10, 11, 12]);
        assert_eq!(
            got(BulkBy::One(By::Addr(Ipv4Addr::new(192, 0, 2, 12)))),
            [12]
        );
        assert!(got(BulkBy::One(By::Addr(Ipv4Addr::new(192, 0, 2, 13)))).is_empty());
    }

    #[test]
    fn a_query_names_its_kind_and_the_answers_carry_the_bulk_options() {
        let msg = |opts: &[u8]| {
            let mut o = vec![53, 1, BULK_LEASE_QUERY];
            o.extend_from_slice(opts);
            o.push(255);
            let mut b = bootp(&o);
            b[0] = 1;
            b[4..8].copy_from_slice(&7u32.to_be_bytes());
            b
        };
        let m = msg(&[82, 7, 2, 5, b'o', b'l', b't', b'-', b'a', 55, 1, 82]);
        let mut j = None;
        let q = BulkQuery::parse(&m, &mut j).unwrap();
        assert_eq!(
            (q.xid, &q.by, q.wants_agent_info),
            (7, &BulkBy::RemoteId(b"olt-a"), true)
        );
        let m = msg(&[82, 4, RELAY_ID, 2, b'r', b'1']);
        let mut j = None;
        assert_eq!(
            BulkQuery::parse(&m, &mut j).unwrap().by,
            BulkBy::RelayId(b"r1")
        );
        let m = msg(&[]);
        let mut j = None;
        assert_eq!(BulkQuery::parse(&m, &mut j).unwrap().by, BulkBy::All);
        let mut not = msg(&[]);
        not[OPTIONS_OFFSET + 2] = 10;
        let mut j = None;
        assert!(BulkQuery::parse(&not, &mut j).is_none());

        let l = rec(10, b"olt-a", b"r1", RecordState::Bound);
        let mut buf = [0u8; 1500];
        let n = write_active(&mut buf, 7, &l, Ipv4Addr::new(192, 0, 2, 1), true, NOW).unwrap();
        let m = Message::new_checked(&buf[..n]).unwrap();
        assert_eq!((m.op(), m.xid(), m.ciaddr()), (BOOTREPLY, 7, l.addr));
        assert_eq!(m.chaddr(), l.hwaddr);
        let opts: Vec<(u8, Vec<u8>)> = OptionIter::new(&buf[OPTIONS_OFFSET..n])
            .map(|o| o.map(|(c, d)| (c, d.to_vec())).unwrap())
            .collect();
        let codes: Vec<u8> = opts.iter().map(|(c, _)| *c).collect();
        assert_eq!(codes, [53, 54, 51, 91, 152, 156, 82]);
        assert_eq!(opts[0].1, [LEASE_ACTIVE]);
        assert_eq!(opts[2].1, 300u32.to_be_bytes());
        assert_eq!(opts[5].1, [STATE_ACTIVE]);
        assert_eq!(opts[6].1, l.agent_info.as_slice());
        let n = write_done(
            &mut buf,
            7,
            Ipv4Addr::new(192, 0, 2, 1),
            Status::NotAllowed,
            NOW,
        )
        .unwrap();
        let opts: Vec<(u8, Vec<u8>)> = OptionIter::new(&buf[OPTIONS_OFFSET..n])
            .map(|o| o.map(|(c, d)| (c, d.to_vec())).unwrap())
            .collect();
        assert_eq!(opts[0], (53, vec![LEASE_QUERY_DONE]));
        assert_eq!(opts[3], (STATUS_CODE, vec![4]));
    }

    /// Reads one length-framed message.
    fn read_msg(c: &mut TcpStream) -> Vec<u8> {
        let mut len = [0u8; 2];
        c.read_exact(&mut len).unwrap();
        let mut m = vec![0u8; usize::from(u16::from_be_bytes(len))];
        c.read_exact(&mut m).unwrap();
        m
    }

    fn msg_type(m: &[u8]) -> u8 {
        OptionIter::new(&m[OPTIONS_OFFSET..])
            .filter_map(Result::ok)
            .find(|(c, _)| *c == 53)
            .map_or(0, |(_, d)| d[0])
    }

    #[test]
    fn over_tcp_the_answers_then_done_and_a_stranger_is_refused() {
        let cfg = Config::parse(CONFIG).unwrap();
        let i = Index::new(
            &[
                rec(10, b"olt-a", b"r1", RecordState::Bound),
                rec(11, b"olt-b", b"r1", RecordState::Bound),
            ],
            3600,
        );
        let index = Arc::new(Mutex::new(i));
        let start = |requesters: Vec<(Ipv4Addr, u8)>| {
            BulkService::start(
                "127.0.0.1:0".parse().unwrap(),
                Bulk {
                    index: index.clone(),
                    served: Served::new(&cfg),
                    allowed: LeaseQuery {
                        requesters,
                        bulk_listen: None,
                    },
                },
            )
            .unwrap()
        };
        let mut o = vec![53, 1, BULK_LEASE_QUERY, 82, 7, 2, 5];
        o.extend_from_slice(b"olt-b");
        o.push(255);
        let mut q = bootp(&o);
        q[0] = 1;
        q[4..8].copy_from_slice(&9u32.to_be_bytes());
        let framed = |m: &[u8]| {
            let mut f = (m.len() as u16).to_be_bytes().to_vec();
            f.extend_from_slice(m);
            f
        };
        let svc = start(vec![(Ipv4Addr::new(127, 0, 0, 1), 32)]);
        let mut c = TcpStream::connect(svc.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // Two queries on one connection: each answered, each done.
        for _ in 0..2 {
            c.write_all(&framed(&q)).unwrap();
            let a = read_msg(&mut c);
            assert_eq!(msg_type(&a), LEASE_ACTIVE);
            assert_eq!(
                Message::new_checked(&a[..]).unwrap().ciaddr(),
                Ipv4Addr::new(192, 0, 2, 11)
            );
            assert_eq!(Message::new_checked(&a[..]).unwrap().xid(), 9);
            assert_eq!(msg_type(&read_msg(&mut c)), LEASE_QUERY_DONE);
        }
        // Not a bulk query: MalformedQuery, the connection stays.
        let mut bad = q.clone();
        bad[OPTIONS_OFFSET + 2] = 3;
        c.write_all(&framed(&bad)).unwrap();
        let d = read_msg(&mut c);
        assert_eq!(msg_type(&d), LEASE_QUERY_DONE);
        assert!(
            d.windows(3)
                .any(|w| w == [STATUS_CODE, 1, Status::MalformedQuery as u8])
        );
        drop(c);
        svc.stop();
        // Nobody allowed: NotAllowed, then closed.
        let svc = start(Vec::new());
        let mut c = TcpStream::connect(svc.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c.write_all(&framed(&q)).unwrap();
        let d = read_msg(&mut c);
        assert!(
            d.windows(3)
                .any(|w| w == [STATUS_CODE, 1, Status::NotAllowed as u8])
        );
        let mut rest = Vec::new();
        assert_eq!(c.read_to_end(&mut rest).unwrap(), 0, "closed");
        svc.stop();
    }
}
