//! The address index: the newest journal record of every address, kept
//! by the control thread from the journal's tap and started from the
//! leases the journal recovered. The lookups of the control API answer
//! from it, with what only the journal knows (hardware address, hostname,
//! relay circuit-id and remote-id, last transaction), without reading the
//! lease table, so the workers never meet the control API on a lock.
//!
//! The journal writes no record when a lease runs out (the sweeper ends
//! it in memory only), so the index applies expiry by time: a binding
//! past its end is shown as expired, and records past `keep_released` are
//! forgotten by [`Index::prune`].
//!
//! Lookups by hardware address and by client identifier go through two
//! small secondary maps kept beside it (O(log n), as leasequery needs:
//! a relay asks per packet it cannot place, not an operator per hour);
//! by circuit-id and in listings the index is walked.
//!
//! The index is shared (`Arc<Mutex<Index>>`) by the control API and the
//! leasequery service; one [`Keeper`] thread applies the journal's tap.
use super::proto::{Filter, LookupBy};
use crate::engine::TableLease;
use crate::lease::LeaseState;
use crate::lease::journal::{INFINITE, LeaseRecord, RecordState};
use crate::tools::show::{self, CIRCUIT_ID, Dns, REMOTE_ID};
use crate::wire::options::agent_sub_option;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Client key kinds (see `engine/client.rs`): 0 the hardware address,
/// 1 option 61.
const KEY_CHADDR: u8 = 0;
const KEY_CLIENT_ID: u8 = 1;

/// Newest record per (address, subnet): overlapping subnets of different
/// links may hold the same address.
#[derive(Default)]
pub struct Index {
    by_addr: BTreeMap<(Ipv4Addr, u16), LeaseRecord>,
    /// (hardware address, address, subnet) of every record in `by_addr`
    /// with a hardware address.
    by_hwaddr: BTreeSet<([u8; 6], Ipv4Addr, u16)>,
    /// (client identifier, address, subnet) of every record in `by_addr`
    /// whose client is keyed by option 61 (of at most 32 bytes: longer
    /// ones keep only a hash and cannot be compared).
    by_client_id: BTreeSet<(Vec<u8>, Ipv4Addr, u16)>,
    keep_released: u64,
    /// Records applied from the tap since start.
    pub applied: u64,
}

/// One lease as the filters see it, from either source.
struct Row<'a> {
    addr: Ipv4Addr,
    subnet: u16,
    state: &'static str,
    hwaddr: Option<[u8; 6]>,
    client_id: Option<&'a [u8]>,
    agent: &'a [u8],
    hostname: &'a [u8],
}

impl Row<'_> {
    fn of_record(r: &LeaseRecord, now: u64) -> Row<'_> {
        Row {
            addr: r.addr,
            subnet: r.subnet,
            state: shown_state(r, now),
            hwaddr: Some(r.hwaddr),
            client_id: client_id(r.client.kind, &r.client),
            agent: r.agent_info.as_slice(),
            hostname: r.hostname.as_slice(),
        }
    }

    fn of_table(t: &TableLease) -> Row<'_> {
        Row {
            addr: t.addr,
            subnet: t.subnet,
            state: table_state(t.state),
            hwaddr: hwaddr_of(&t.key),
            client_id: client_id(t.key.kind, &t.key),
            agent: &[],
            hostname: &[],
        }
    }

    fn matches(&self, f: &Filter) -> bool {
        let agent = |code| agent_sub_option(self.agent, code).map(show::printable);
        f.subnet.is_none_or(|s| s.holds(self.subnet, self.addr))
            && f.state.is_none_or(|s| s == self.state)
            && f.mac.is_none_or(|m| self.hwaddr == Some(m))
            && f.hostname.as_deref().is_none_or(|h| {
                std::str::from_utf8(self.hostname).is_ok_and(|n| n.eq_ignore_ascii_case(h))
            })
            && f.circuit_id
                .as_deref()
                .is_none_or(|c| agent(CIRCUIT_ID).is_some_and(|v| v == c))
            && f.remote_id
                .as_deref()
                .is_none_or(|c| agent(REMOTE_ID).is_some_and(|v| v == c))
    }

    fn found_by(&self, by: &LookupBy) -> bool {
        match by {
            LookupBy::Addr(a) => self.addr == *a,
            LookupBy::Mac(m) => self.hwaddr == Some(*m),
            LookupBy::ClientId(c) => self.client_id == Some(c.as_slice()),
            LookupBy::CircuitId(c) => agent_sub_option(self.agent, CIRCUIT_ID)
                .map(show::printable)
                .is_some_and(|v| v == *c),
        }
    }
}

/// The client identifier (option 61) `r`'s client is keyed by, if it is
/// keyed by one of at most 32 bytes.
pub fn record_client_id(r: &LeaseRecord) -> Option<&[u8]> {
    client_id(r.client.kind, &r.client)
}

fn client_id(kind: u8, k: &crate::lease::ClientKey) -> Option<&[u8]> {
    // Identifiers over 32 bytes keep a hash of their tail: not comparable.
    (kind == KEY_CLIENT_ID && k.len <= 32).then(|| &k.bytes[..usize::from(k.len)])
}

fn hwaddr_of(k: &crate::lease::ClientKey) -> Option<[u8; 6]> {
    (k.kind == KEY_CHADDR && k.len == 6).then(|| k.bytes[..6].try_into().unwrap_or_default())
}

/// The record's state at `now`: a binding or quarantine past its end
/// shows as expired.
pub fn shown_state(r: &LeaseRecord, now: u64) -> &'static str {
    match r.state {
        RecordState::Bound | RecordState::Declined
            if r.expires_unix != INFINITE && r.expires_unix <= now =>
        {
            "expired"
        }
        s => show::state(s),
    }
}

fn table_state(s: LeaseState) -> &'static str {
    match s {
        LeaseState::Offered => "offered",
        LeaseState::Bound => "bound",
        LeaseState::Released => "released",
        LeaseState::Expired => "expired",
        LeaseState::Declined => "declined",
    }
}

/// A record as the API answers it: [`show::lease_json`] with the state
/// at `now`.
pub fn record_json(r: &LeaseRecord, now: u64) -> Value {
    let mut v = show::lease_json(r, &Dns::new());
    v["state"] = json!(shown_state(r, now));
    v
}

/// A lease-table record in the same shape (what the table does not keep
/// is null).
pub fn table_json(t: &TableLease) -> Value {
    let row = Row::of_table(t);
    json!({
        "address": t.addr.to_string(),
        "state": row.state,
        "subnet": t.subnet,
        "hwaddr": row.hwaddr.as_ref().map(show::mac),
        "client_id": row.client_id.map(hex::encode),
        "hostname": null,
        "circuit_id": null,
        "remote_id": null,
        "cltt_unix": null,
        "expires_unix": (t.expires_unix != INFINITE).then_some(t.expires_unix),
        "dns_name": null,
        "in_dns": null,
    })
}

/// One page of leases: the leases and the cursor for the next page
/// (`None`: this was the last).
pub struct Page {
    pub leases: Vec<Value>,
    pub next: Option<Ipv4Addr>,
}

impl Index {
    /// The index of the leases a journal recovered (in the order written:
    /// later records of an address replace earlier ones).
    pub fn new(recovered: &[LeaseRecord], keep_released: u64) -> Index {
        let mut i = Index {
            keep_released,
            ..Index::default()
        };
        for r in recovered {
            i.put(r);
        }
        i
    }

    /// A record the journal wrote.
    pub fn apply(&mut self, r: &LeaseRecord) {
        self.put(r);
        self.applied += 1;
    }

    /// `r` replaces the record of its address, in the secondary maps too.
    fn put(&mut self, r: &LeaseRecord) {
        if let Some(old) = self.by_addr.insert((r.addr, r.subnet), *r) {
            self.unlink(&old);
        }
        if r.hwaddr != [0; 6] {
            self.by_hwaddr.insert((r.hwaddr, r.addr, r.subnet));
        }
        if let Some(id) = client_id(r.client.kind, &r.client) {
            self.by_client_id.insert((id.to_vec(), r.addr, r.subnet));
        }
    }

    fn unlink(&mut self, r: &LeaseRecord) {
        self.by_hwaddr.remove(&(r.hwaddr, r.addr, r.subnet));
        if let Some(id) = client_id(r.client.kind, &r.client) {
            self.by_client_id.remove(&(id.to_vec(), r.addr, r.subnet));
        }
    }

    /// Every record, in address order.
    pub fn records(&self) -> impl Iterator<Item = &LeaseRecord> {
        self.by_addr.values()
    }

    /// The records of hardware address `hw`, in address order.
    pub fn of_hwaddr(&self, hw: &[u8; 6]) -> impl Iterator<Item = &LeaseRecord> {
        self.by_hwaddr
            .range((*hw, Ipv4Addr::UNSPECIFIED, 0)..=(*hw, Ipv4Addr::BROADCAST, u16::MAX))
            .filter_map(|(_, a, s)| self.by_addr.get(&(*a, *s)))
    }

    /// The records of client identifier `id`, in address order.
    pub fn of_client_id(&self, id: &[u8]) -> impl Iterator<Item = &LeaseRecord> {
        self.by_client_id
            .range(
                (id.to_vec(), Ipv4Addr::UNSPECIFIED, 0)
                    ..=(id.to_vec(), Ipv4Addr::BROADCAST, u16::MAX),
            )
            .filter_map(|(_, a, s)| self.by_addr.get(&(*a, *s)))
    }

    /// Entries of the secondary maps (by hardware address, by client
    /// identifier), for the tests.
    #[cfg(test)]
    fn secondary_len(&self) -> (usize, usize) {
        (self.by_hwaddr.len(), self.by_client_id.len())
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// Forgets what the journal itself would no longer recover at `now`.
    pub fn prune(&mut self, now: u64) {
        let keep = self.keep_released;
        let gone: Vec<LeaseRecord> = self
            .by_addr
            .values()
            .filter(|r| {
                !(r.is_live(now, keep)
                    // An expired binding is kept like a release.
                    || (r.state == RecordState::Bound
                        && keep > 0
                        && r.expires_unix.saturating_add(keep) > now))
            })
            .copied()
            .collect();
        for r in &gone {
            self.by_addr.remove(&(r.addr, r.subnet));
            self.unlink(r);
        }
    }

    /// The newest record of `addr` (of any subnet holding it).
    pub fn get(&self, addr: Ipv4Addr) -> Option<&LeaseRecord> {
        self.by_addr
            .range((addr, 0)..=(addr, u16::MAX))
            .max_by_key(|(_, r)| r.cltt_unix)
            .map(|(_, r)| r)
    }

    /// Every record found by `by`, in address order.
    pub fn lookup(&self, by: &LookupBy, now: u64) -> Vec<Value> {
        let hits = |r: &&LeaseRecord| Row::of_record(r, now).found_by(by);
        match by {
            LookupBy::Addr(a) => self
                .by_addr
                .range((*a, 0)..=(*a, u16::MAX))
                .map(|(_, r)| r)
                .filter(hits)
                .map(|r| record_json(r, now))
                .collect(),
            LookupBy::Mac(m) => self.of_hwaddr(m).map(|r| record_json(r, now)).collect(),
            LookupBy::ClientId(c) => self.of_client_id(c).map(|r| record_json(r, now)).collect(),
            LookupBy::CircuitId(_) => self
                .by_addr
                .values()
                .filter(hits)
                .map(|r| record_json(r, now))
                .collect(),
        }
    }

    /// The leases `f` keeps, above `f.after`, at most `f.limit` (the
    /// records of one address are never split over two pages).
    pub fn query(&self, f: &Filter, now: u64) -> Page {
        let from = match f.after {
            Some(a) => Excluded((a, u16::MAX)),
            None => Unbounded,
        };
        let rows = self
            .by_addr
            .range((from, Unbounded))
            .map(|((a, _), r)| (*a, r))
            .filter(|(_, r)| Row::of_record(r, now).matches(f));
        page(rows, f.limit, |r| record_json(r, now))
    }
}

/// The thread that keeps an index from the journal's tap: applies what
/// the journal wrote, and forgets what it would no longer recover, once
/// a minute.
pub struct Keeper {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Keeper {
    pub fn start(index: Arc<Mutex<Index>>, rx: Receiver<LeaseRecord>) -> std::io::Result<Keeper> {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("xdhcp-index".into())
            .spawn(move || feed(&index, &rx, &s))?;
        Ok(Keeper { stop, thread })
    }

    pub fn stop(self) {
        self.stop.store(true, Relaxed);
        let _ = self.thread.join();
    }
}

fn feed(index: &Mutex<Index>, rx: &Receiver<LeaseRecord>, stop: &AtomicBool) {
    let mut pruned = Instant::now();
    while !stop.load(Relaxed) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => {
                let mut i = index.lock().unwrap_or_else(|p| p.into_inner());
                i.apply(&r);
                // Whatever else is queued, under the same lock.
                for r in rx.try_iter().take(4096) {
                    i.apply(&r);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if pruned.elapsed() >= Duration::from_secs(60) {
            index
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .prune(crate::lease::journal::now_unix());
            pruned = Instant::now();
        }
    }
}

/// The same answers from the lease table, when there is no journal (and
/// so no index): a scan of what the table keeps.
pub fn table_lookup(table: &[TableLease], by: &LookupBy) -> Vec<Value> {
    let mut hits: Vec<_> = table
        .iter()
        .filter(|t| Row::of_table(t).found_by(by))
        .collect();
    hits.sort_by_key(|t| (t.addr, t.subnet));
    hits.into_iter().map(table_json).collect()
}

pub fn table_query(table: &[TableLease], f: &Filter) -> Page {
    let mut rows: Vec<_> = table
        .iter()
        .filter(|t| f.after.is_none_or(|a| t.addr > a))
        .filter(|t| Row::of_table(t).matches(f))
        .collect();
    rows.sort_by_key(|t| (t.addr, t.subnet));
    page(rows.into_iter().map(|t| (t.addr, t)), f.limit, table_json)
}

fn page<T>(
    rows: impl Iterator<Item = (Ipv4Addr, T)>,
    limit: usize,
    json: impl Fn(T) -> Value,
) -> Page {
    let mut leases = Vec::new();
    let mut last = None;
    let mut rows = rows.peekable();
    while let Some((a, r)) = rows.next() {
        leases.push(json(r));
        last = Some(a);
        if leases.len() >= limit && rows.peek().is_none_or(|(n, _)| *n != a) {
            break;
        }
    }
    let next = rows.peek().and(last);
    Page { leases, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::proto::Query;
    use crate::lease::ClientKey;
    use crate::lease::journal::FixedBytes;

    const NOW: u64 = 1_800_000_000;

    fn rec(last: u8, state: RecordState, expires: u64) -> LeaseRecord {
        let hw = [2, 0, 0, 0, 0, last];
        LeaseRecord {
            subnet: 0,
            addr: Ipv4Addr::new(10, 0, 0, last),
            client: ClientKey::new(0, KEY_CHADDR, &hw),
            hwaddr: hw,
            state,
            expires_unix: expires,
            cltt_unix: NOW - 100,
            hostname: FixedBytes::new(format!("host-{last}").as_bytes()).0,
            agent_info: FixedBytes::new(&[1, 3, b'p', b'0', last + b'0', 2, 1, 0xaa]).0,
            fqdn_flags: 0,
        }
    }

    fn addrs(v: &[Value]) -> Vec<String> {
        v.iter()
            .map(|l| l["address"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn newest_record_wins_and_expiry_applies_by_time() {
        let mut i = Index::new(&[rec(1, RecordState::Bound, NOW + 60)], 3600);
        assert_eq!(
            i.lookup(&LookupBy::Addr(Ipv4Addr::new(10, 0, 0, 1)), NOW)[0]["state"],
            "bound"
        );
        // Past its end it shows as expired, before any record says so.
        assert_eq!(
            i.lookup(&LookupBy::Addr(Ipv4Addr::new(10, 0, 0, 1)), NOW + 61)[0]["state"],
            "expired"
        );
        let mut released = rec(1, RecordState::Released, NOW);
        released.cltt_unix = NOW;
        i.apply(&released);
        assert_eq!(i.len(), 1);
        assert_eq!(i.applied, 1);
        let got = i.lookup(&LookupBy::Addr(Ipv4Addr::new(10, 0, 0, 1)), NOW);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["state"], "released");
        assert_eq!(got[0]["hostname"], "host-1");
        // Kept for keep_released, then forgotten.
        i.prune(NOW + 3599);
        assert_eq!(i.len(), 1);
        i.prune(NOW + 3601);
        assert!(i.is_empty());
    }

    #[test]
    fn lookups_by_mac_client_id_and_circuit_id() {
        let mut with_id = rec(3, RecordState::Bound, NOW + 60);
        with_id.client = ClientKey::new(0, KEY_CLIENT_ID, &[1, 2, 3]);
        let i = Index::new(
            &[
                rec(1, RecordState::Bound, NOW + 60),
                rec(2, RecordState::Bound, NOW + 60),
                with_id,
            ],
            0,
        );
        assert_eq!(
            addrs(&i.lookup(&LookupBy::Mac([2, 0, 0, 0, 0, 2]), NOW)),
            ["10.0.0.2"]
        );
        assert_eq!(
            addrs(&i.lookup(&LookupBy::ClientId(vec![1, 2, 3]), NOW)),
            ["10.0.0.3"]
        );
        assert_eq!(
            addrs(&i.lookup(&LookupBy::CircuitId("p01".into()), NOW)),
            ["10.0.0.1"]
        );
        assert!(i.lookup(&LookupBy::Mac([2, 0, 0, 0, 0, 9]), NOW).is_empty());
    }

    #[test]
    fn the_secondary_maps_follow_every_change() {
        let mut with_id = rec(3, RecordState::Bound, NOW + 60);
        with_id.client = ClientKey::new(0, KEY_CLIENT_ID, &[1, 2, 3]);
        let mut i = Index::new(&[rec(1, RecordState::Bound, NOW + 60), with_id], 60);
        assert_eq!(i.secondary_len(), (2, 1));
        let hw1 = [2, 0, 0, 0, 0, 1];
        // The same client moves to a second address: both are found.
        let mut moved = rec(1, RecordState::Bound, NOW + 60);
        moved.addr = Ipv4Addr::new(10, 0, 0, 9);
        i.apply(&moved);
        let got: Vec<_> = i.of_hwaddr(&hw1).map(|r| r.addr).collect();
        assert_eq!(
            got,
            [Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 9)]
        );
        // Another client takes 10.0.0.1: it leaves the first one's entry.
        let mut other = rec(7, RecordState::Bound, NOW + 60);
        other.addr = Ipv4Addr::new(10, 0, 0, 1);
        i.apply(&other);
        let got: Vec<_> = i.of_hwaddr(&hw1).map(|r| r.addr).collect();
        assert_eq!(got, [Ipv4Addr::new(10, 0, 0, 9)]);
        assert_eq!(
            i.of_hwaddr(&[2, 0, 0, 0, 0, 7])
                .map(|r| r.addr)
                .collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 0, 0, 1)]
        );
        assert_eq!(
            i.of_client_id(&[1, 2, 3])
                .map(|r| r.addr)
                .collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 0, 0, 3)]
        );
        assert_eq!(i.of_client_id(&[1, 2]).count(), 0);
        assert_eq!(i.secondary_len(), (3, 1));
        // Pruned records leave the maps with them.
        i.prune(NOW + 61 + 60);
        assert!(i.is_empty());
        assert_eq!(i.secondary_len(), (0, 0));
        assert_eq!(i.of_hwaddr(&hw1).count(), 0);
    }

    #[test]
    fn queries_filter_and_page_by_address() {
        let recs: Vec<_> = (1..=9)
            .map(|n| {
                let s = if n % 3 == 0 {
                    RecordState::Released
                } else {
                    RecordState::Bound
                };
                rec(n, s, NOW + 60)
            })
            .collect();
        let i = Index::new(&recs, 3600);
        let q = |q: Query| i.query(&q.check().unwrap(), NOW);
        let p = q(Query {
            state: Some("bound".into()),
            limit: Some(4),
            ..Query::default()
        });
        assert_eq!(
            addrs(&p.leases),
            ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5"]
        );
        assert_eq!(p.next, Some(Ipv4Addr::new(10, 0, 0, 5)));
        let p = q(Query {
            state: Some("bound".into()),
            limit: Some(4),
            after: p.next,
            ..Query::default()
        });
        assert_eq!(addrs(&p.leases), ["10.0.0.7", "10.0.0.8"]);
        assert_eq!(p.next, None);
        for (query, want) in [
            (
                Query {
                    hostname: Some("HOST-4".into()),
                    ..Query::default()
                },
                vec!["10.0.0.4"],
            ),
            (
                Query {
                    circuit_id: Some("p06".into()),
                    ..Query::default()
                },
                vec!["10.0.0.6"],
            ),
            (
                Query {
                    remote_id: Some("aa".into()),
                    subnet: Some("10.0.0.0/29".into()),
                    ..Query::default()
                },
                vec![
                    "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6",
                    "10.0.0.7",
                ],
            ),
            (
                Query {
                    mac: Some("02:00:00:00:00:09".into()),
                    ..Query::default()
                },
                vec!["10.0.0.9"],
            ),
        ] {
            assert_eq!(addrs(&q(query.clone()).leases), want, "{query:?}");
        }
    }

    #[test]
    fn the_records_of_one_address_stay_on_one_page() {
        let a = rec(1, RecordState::Bound, NOW + 60);
        let mut b = a;
        b.subnet = 1;
        let i = Index::new(&[a, b, rec(2, RecordState::Bound, NOW + 60)], 0);
        let p = i.query(
            &Query {
                limit: Some(1),
                ..Query::default()
            }
            .check()
            .unwrap(),
            NOW,
        );
        assert_eq!(addrs(&p.leases), ["10.0.0.1", "10.0.0.1"]);
        assert_eq!(p.next, Some(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn the_table_answers_in_the_same_shape() {
        let hw = [2, 0, 0, 0, 0, 5];
        let t = [
            TableLease {
                subnet: 0,
                addr: Ipv4Addr::new(10, 0, 0, 5),
                key: ClientKey::new(0, KEY_CHADDR, &hw),
                state: LeaseState::Offered,
                expires_unix: NOW + 30,
            },
            TableLease {
                subnet: 0,
                addr: Ipv4Addr::new(10, 0, 0, 4),
                key: ClientKey::new(0, KEY_CLIENT_ID, &[9, 9]),
                state: LeaseState::Bound,
                expires_unix: INFINITE,
            },
        ];
        let all = table_query(&t, &Query::default().check().unwrap());
        assert_eq!(addrs(&all.leases), ["10.0.0.4", "10.0.0.5"]);
        assert_eq!(all.leases[0]["client_id"], "0909");
        assert_eq!(all.leases[0]["expires_unix"], Value::Null);
        assert_eq!(all.leases[1]["state"], "offered");
        assert_eq!(all.leases[1]["hwaddr"], "02:00:00:00:00:05");
        assert_eq!(addrs(&table_lookup(&t, &LookupBy::Mac(hw))), ["10.0.0.5"]);
        assert_eq!(
            addrs(&table_lookup(&t, &LookupBy::ClientId(vec![9, 9]))),
            ["10.0.0.4"]
        );
        // What the table does not keep matches no filter on it.
        let f = Query {
            hostname: Some("x".into()),
            ..Query::default()
        };
        assert!(table_query(&t, &f.check().unwrap()).leases.is_empty());
    }
}
