//! The DDNS side thread's picture, per address: what DNS should hold
//! (`want`, from the leases) and what it holds (`held`, as the server
//! confirmed). An address whose two differ is pending and sits once in
//! its DNS server's queue; whatever changes meanwhile only changes
//! `want`, so a client that renews, moves or leaves before its update
//! went out costs one update (or none), never a backlog of superseded
//! ones.
//!
//! Pure: no I/O, no clock of its own. The service feeds it lease records
//! and outcomes and asks it for the next job.
use super::store::Key;
use crate::lease::ClientKey;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// What one address should map to in DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// "label.zone." — the A record's owner and the PTR's target.
    pub fqdn: String,
    /// The server writes the A record (and DHCID): RFC 4702 flags and the
    /// override policy.
    pub forward: bool,
    /// The server writes the PTR record (a reverse zone is set).
    pub reverse: bool,
    /// RFC 4701 RDATA of the client's DHCID record.
    pub dhcid: [u8; 35],
    pub ttl: u32,
}

/// A binding as the DNS server has it, or may have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub binding: Binding,
    /// The server confirmed it. An unconfirmed entry was being sent when
    /// the daemon stopped: it may or may not be in DNS.
    pub confirmed: bool,
    /// The name was someone else's: no A record was written (nor PTR).
    pub conflict: bool,
}

/// What the leases say DNS should hold for an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub binding: Binding,
    /// Wall-clock second the lease ends ([`u64::MAX`]: never); the record
    /// leaves DNS then unless a renewal came.
    pub expires_unix: u64,
    pub client: ClientKey,
}

#[derive(Debug, Default)]
struct Entry {
    want: Option<Want>,
    held: Option<Held>,
    /// Queue of the DNS server this entry waits in, while it waits.
    queued: Option<usize>,
    /// When it became pending.
    since: Option<Instant>,
    /// Failed attempts in a row, and the earliest next one.
    failures: u32,
    not_before: Option<Instant>,
}

impl Entry {
    fn pending(&self) -> bool {
        match (&self.want, &self.held) {
            (None, None) => false,
            (None, Some(_)) => true,
            (Some(_), None) => true,
            (Some(w), Some(h)) => !h.confirmed || h.binding != w.binding,
        }
    }
}

/// One unit of work for a DNS server: take `remove` out, then put `add`
/// in (either may be absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub key: Key,
    pub remove: Option<Held>,
    pub add: Option<Binding>,
}

/// How a job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// The server has `add` (or nothing, without one).
    Written,
    /// The name belongs to someone else: nothing was written for it.
    Conflict,
    /// Not done; try again after the delay.
    Retry(Duration),
}

/// The picture of every address.
#[derive(Default)]
pub struct State {
    entries: HashMap<Key, Entry>,
    /// Where each client's wanted binding is, so that a client moving to
    /// another address leaves the old one.
    by_client: HashMap<ClientKey, Key>,
    /// (expiry, address), earliest first; stale items are skipped.
    expiries: BinaryHeap<Reverse<(u64, Key)>>,
    queues: Vec<VecDeque<Key>>,
    /// Entries whose `since` is set: the pending count, kept as they
    /// change so the stats can read it at any moment.
    waiting: usize,
}

fn start(since: &mut Option<Instant>, waiting: &mut usize, now: Instant) {
    if since.is_none() {
        *waiting += 1;
    }
    *since = Some(now);
}

fn stop(since: &mut Option<Instant>, waiting: &mut usize) {
    if since.take().is_some() {
        *waiting -= 1;
    }
}

impl State {
    /// A state for `servers` DNS servers, with what the store said DNS
    /// holds.
    pub fn new(servers: usize, held: HashMap<Key, Held>) -> State {
        let mut s = State {
            queues: vec![VecDeque::new(); servers],
            ..State::default()
        };
        for (k, h) in held {
            s.entries.insert(
                k,
                Entry {
                    held: Some(h),
                    ..Entry::default()
                },
            );
        }
        s
    }

    /// Sets what `key` should hold (`None`: nothing), to be sent through
    /// server `server`. Returns whether this made the address pending
    /// (an update was queued) — false when nothing changed, which is what
    /// a renewal is.
    pub fn want(&mut self, key: Key, want: Option<Want>, server: usize, now: Instant) -> bool {
        if let Some(w) = &want {
            if let Some(old) = self.by_client.insert(w.client, key)
                && old != key
            {
                // The client moved: its old address's name goes.
                self.set(old, None, server, now);
            }
            if w.expires_unix != u64::MAX {
                self.expiries.push(Reverse((w.expires_unix, key)));
            }
        }
        self.set(key, want, server, now)
    }

    fn set(&mut self, key: Key, want: Option<Want>, server: usize, now: Instant) -> bool {
        let e = self.entries.entry(key).or_default();
        if let Some(old) = &e.want
            && want.as_ref().is_none_or(|w| w.client != old.client)
            && self.by_client.get(&old.client) == Some(&key)
        {
            self.by_client.remove(&old.client);
        }
        let changed = e.want.as_ref().map(|w| &w.binding) != want.as_ref().map(|w| &w.binding);
        e.want = want;
        let is = e.pending();
        if changed {
            // A new wish starts over: earlier failures were for another.
            e.failures = 0;
            e.not_before = None;
        }
        if is && e.since.is_none() {
            start(&mut e.since, &mut self.waiting, now);
        }
        if is && e.queued.is_none() {
            e.queued = Some(server);
            self.queues[server].push_back(key);
            return true;
        }
        if !is {
            stop(&mut e.since, &mut self.waiting);
        }
        if e.want.is_none() && e.held.is_none() && e.queued.is_none() {
            self.entries.remove(&key);
        }
        is && changed
    }

    /// Ends the wants of leases whose time is up at `now_unix`; returns
    /// how many ended.
    pub fn expire(
        &mut self,
        now_unix: u64,
        server_of: impl Fn(u16) -> usize,
        now: Instant,
    ) -> usize {
        let mut ended = 0;
        while let Some(Reverse((at, key))) = self.expiries.peek().copied() {
            if at > now_unix {
                break;
            }
            self.expiries.pop();
            let live = self
                .entries
                .get(&key)
                .and_then(|e| e.want.as_ref())
                .is_some_and(|w| w.expires_unix == at);
            if live {
                self.set(key, None, server_of(key.0), now);
                ended += 1;
            }
        }
        ended
    }

    /// Queues the removal of everything held that no lease wants (after
    /// the start's records were applied: their leases ended while the
    /// daemon was down). `server_of` says which server a subnet's updates
    /// go to; `None` (DDNS now off for it) leaves the entry alone.
    pub fn settle(&mut self, server_of: impl Fn(u16) -> Option<usize>, now: Instant) -> usize {
        let mut queued = 0;
        for (k, e) in self.entries.iter_mut() {
            if e.want.is_none()
                && e.held.is_some()
                && e.queued.is_none()
                && let Some(srv) = server_of(k.0)
            {
                e.queued = Some(srv);
                start(&mut e.since, &mut self.waiting, now);
                self.queues[srv].push_back(*k);
                queued += 1;
            }
        }
        queued
    }

    /// Makes room for `n` servers' queues (a reload may add servers).
    pub fn grow(&mut self, n: usize) {
        if self.queues.len() < n {
            self.queues.resize(n, VecDeque::new());
        }
    }

    /// The next job for server `server` that may run at `now`. An entry
    /// whose retry time has not come goes to the back of the queue.
    pub fn next_job(&mut self, server: usize, now: Instant) -> Option<Job> {
        let q = self.queues.get_mut(server)?;
        for _ in 0..q.len() {
            let key = q.pop_front()?;
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            if !e.pending() {
                e.queued = None;
                stop(&mut e.since, &mut self.waiting);
                continue;
            }
            if e.not_before.is_some_and(|t| t > now) {
                q.push_back(key);
                continue;
            }
            e.queued = None;
            let want = e.want.as_ref().map(|w| &w.binding);
            let remove = e
                .held
                .as_ref()
                .filter(|h| Some(&h.binding) != want || !h.confirmed)
                .cloned();
            // An unconfirmed entry of the same binding is simply written
            // again: the RFC 4703 procedures are idempotent for the owner.
            let remove = remove.filter(|h| Some(&h.binding) != want);
            return Some(Job {
                key,
                remove,
                add: want.cloned(),
            });
        }
        None
    }

    /// The job's removal is done: the server holds nothing of ours there.
    pub fn removed(&mut self, key: Key) {
        if let Some(e) = self.entries.get_mut(&key) {
            e.held = None;
        }
    }

    /// Records how `job` ended and queues the address again if it is
    /// still (or again) pending. Returns the entry's `held` after it, for
    /// the store.
    pub fn finish(&mut self, job: &Job, done: Done, server: usize, now: Instant) -> Option<Held> {
        let e = self.entries.get_mut(&job.key)?;
        match done {
            Done::Written | Done::Conflict => {
                e.failures = 0;
                e.not_before = None;
                e.held = job.add.clone().map(|binding| Held {
                    binding,
                    confirmed: true,
                    conflict: done == Done::Conflict,
                });
            }
            Done::Retry(after) => {
                e.failures += 1;
                e.not_before = Some(now + after);
            }
        }
        let held = e.held.clone();
        if e.pending() {
            if e.queued.is_none() {
                e.queued = Some(server);
                self.queues[server].push_back(job.key);
            }
        } else {
            stop(&mut e.since, &mut self.waiting);
            if e.want.is_none() && e.held.is_none() && e.queued.is_none() {
                self.entries.remove(&job.key);
            }
        }
        held
    }

    /// Failed attempts in a row of the address's current wish.
    pub fn failures(&self, key: Key) -> u32 {
        self.entries.get(&key).map_or(0, |e| e.failures)
    }

    /// Addresses pending now (kept up to date: cheap to read).
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Addresses pending now, and since when the oldest has waited (a
    /// walk over every entry).
    pub fn pending(&self) -> (usize, Option<Instant>) {
        let mut n = 0;
        let mut oldest: Option<Instant> = None;
        for e in self.entries.values() {
            if let Some(s) = e.since.filter(|_| e.pending()) {
                n += 1;
                oldest = Some(oldest.map_or(s, |o| o.min(s)));
            }
        }
        (n, oldest)
    }

    /// Whether server `server` has anything queued.
    pub fn has_work(&self, server: usize) -> bool {
        self.queues.get(server).is_some_and(|q| !q.is_empty())
    }

    /// Every confirmed or possibly written entry, for a store rewrite.
    pub fn held_map(&self) -> HashMap<Key, Held> {
        self.entries
            .iter()
            .filter_map(|(k, e)| e.held.clone().map(|h| (*k, h)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn client(i: u8) -> ClientKey {
        ClientKey::new(0, 0, &[2, 0, 0, 0, 0, i])
    }
    fn binding(name: &str, i: u8) -> Binding {
        Binding {
            fqdn: format!("{name}.lab.example."),
            forward: true,
            reverse: true,
            dhcid: [i; 35],
            ttl: 2400,
        }
    }
    fn want(name: &str, i: u8, expires: u64) -> Want {
        Want {
            binding: binding(name, i),
            expires_unix: expires,
            client: client(i),
        }
    }
    fn key(i: u8) -> Key {
        (0, Ipv4Addr::new(198, 18, 0, i))
    }

    #[test]
    fn a_new_lease_is_one_job_and_its_renewals_none() {
        let t = Instant::now();
        let mut s = State::new(1, HashMap::new());
        assert!(s.want(key(1), Some(want("a", 1, 100)), 0, t));
        // Renewals: same binding, later expiry.
        assert!(!s.want(key(1), Some(want("a", 1, 200)), 0, t));
        assert!(!s.want(key(1), Some(want("a", 1, 300)), 0, t));
        let j = s.next_job(0, t).unwrap();
        assert_eq!(j.add, Some(binding("a", 1)));
        assert_eq!(j.remove, None);
        assert_eq!(s.next_job(0, t), None, "queued once");
        let held = s.finish(&j, Done::Written, 0, t).unwrap();
        assert!(held.confirmed);
        assert_eq!(s.pending().0, 0);
        assert!(!s.want(key(1), Some(want("a", 1, 400)), 0, t));
        assert_eq!(s.next_job(0, t), None);
    }

    #[test]
    fn what_is_superseded_before_it_was_sent_costs_nothing() {
        let t = Instant::now();
        let mut s = State::new(1, HashMap::new());
        s.want(key(1), Some(want("a", 1, 100)), 0, t);
        s.want(key(1), None, 0, t);
        assert_eq!(s.next_job(0, t), None, "added and released before sending");
        s.want(key(2), Some(want("b", 2, 100)), 0, t);
        s.want(key(2), Some(want("c", 2, 100)), 0, t);
        let j = s.next_job(0, t).unwrap();
        assert_eq!(j.add.unwrap().fqdn, "c.lab.example.");
    }

    #[test]
    fn a_change_of_name_removes_the_old_one_first() {
        let t = Instant::now();
        let mut s = State::new(1, HashMap::new());
        s.want(key(1), Some(want("a", 1, 100)), 0, t);
        let j = s.next_job(0, t).unwrap();
        s.finish(&j, Done::Written, 0, t);
        s.want(key(1), Some(want("b", 1, 100)), 0, t);
        let j = s.next_job(0, t).unwrap();
        assert_eq!(j.remove.unwrap().binding, binding("a", 1));
        assert_eq!(j.add.unwrap(), binding("b", 1));
    }

    #[test]
    fn expiry_and_moves_take_names_out() {
        let t = Instant::now();
        let mut s = State::new(1, HashMap::new());
        s.want(key(1), Some(want("a", 1, 100)), 0, t);
        s.want(key(2), Some(want("b", 2, 150)), 0, t);
        for _ in 0..2 {
            let j = s.next_job(0, t).unwrap();
            s.finish(&j, Done::Written, 0, t);
        }
        // A renewal pushes key 1's end to 300: the heap's old item is stale.
        s.want(key(1), Some(want("a", 1, 300)), 0, t);
        assert_eq!(s.expire(200, |_| 0, t), 1);
        let j = s.next_job(0, t).unwrap();
        assert_eq!(j.key, key(2));
        assert_eq!(j.add, None);
        assert!(j.remove.is_some());
        s.finish(&j, Done::Written, 0, t);
        // Client 1 moves to key 3: key 1's name goes.
        s.want(key(3), Some(want("a", 1, 300)), 0, t);
        let jobs: Vec<Job> = std::iter::from_fn(|| s.next_job(0, t)).collect();
        assert_eq!(jobs.len(), 2);
        assert!(jobs.iter().any(|j| j.key == key(1) && j.add.is_none()));
        assert!(jobs.iter().any(|j| j.key == key(3) && j.add.is_some()));
    }

    #[test]
    fn failures_wait_their_turn_and_conflicts_are_not_retried() {
        let t = Instant::now();
        let mut s = State::new(1, HashMap::new());
        s.want(key(1), Some(want("a", 1, 100)), 0, t);
        let j = s.next_job(0, t).unwrap();
        s.finish(&j, Done::Retry(Duration::from_secs(5)), 0, t);
        assert_eq!(s.failures(key(1)), 1);
        assert_eq!(s.next_job(0, t), None, "not before 5 s");
        let j = s.next_job(0, t + Duration::from_secs(5)).unwrap();
        assert_eq!(s.waiting(), 1);
        s.finish(&j, Done::Conflict, 0, t);
        assert_eq!((s.waiting(), s.pending().0), (0, 0));
        assert_eq!(s.next_job(0, t + Duration::from_secs(60)), None);
        assert!(s.held_map()[&key(1)].conflict);
    }

    #[test]
    fn at_start_what_dns_holds_without_a_lease_is_removed_and_unconfirmed_is_resent() {
        let t = Instant::now();
        let mut held = HashMap::new();
        held.insert(
            key(1),
            Held {
                binding: binding("a", 1),
                confirmed: true,
                conflict: false,
            },
        );
        held.insert(
            key(2),
            Held {
                binding: binding("b", 2),
                confirmed: false,
                conflict: false,
            },
        );
        held.insert(
            key(3),
            Held {
                binding: binding("c", 3),
                confirmed: true,
                conflict: false,
            },
        );
        let mut s = State::new(1, held);
        // Leases from the journal: 2 and 3 are still bound, 1 is not.
        assert!(s.want(key(2), Some(want("b", 2, 100)), 0, t));
        assert!(!s.want(key(3), Some(want("c", 3, 100)), 0, t));
        s.want(key(1), None, 0, t);
        assert_eq!(s.waiting(), 2);
        assert_eq!(s.pending().0, 2);
        let jobs: Vec<Job> = std::iter::from_fn(|| s.next_job(0, t)).collect();
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        for j in &jobs {
            s.finish(j, Done::Written, 0, t);
        }
        assert_eq!((s.waiting(), s.pending().0), (0, 0));
        let j2 = jobs.iter().find(|j| j.key == key(2)).unwrap();
        assert_eq!(j2.remove, None);
        assert_eq!(j2.add, Some(binding("b", 2)));
        let j1 = jobs.iter().find(|j| j.key == key(1)).unwrap();
        assert!(j1.remove.is_some() && j1.add.is_none());
    }
}
