//! Who holds which address: client key → lease, split into shards by the
//! key's hash. A shard's lock is held only for an in-memory lookup or
//! update, and workers meet on the same shard only when their clients
//! hash there, so no lock is shared by all workers.
//!
//! The table is bounded: `max_clients` records in all, an equal share
//! per shard, every byte of it allocated (and touched) at start. A shard
//! is an open-addressing index of fixed size over a fixed array of
//! records; nothing on the packet path allocates, grows or rehashes, and
//! removal shifts entries back instead of leaving tombstones, so a table
//! that has seen a million clients probes as short as a fresh one.
//!
//! A new client whose shard is at its bound takes the place of the
//! record that shard touched least recently among the released and
//! expired ones, else among the held offers (whose address goes back to
//! its pool); bound and declined records are never evicted. When a shard
//! holds nothing but those, the new client is refused.
//!
//! The shard and the slot in it come from a hash keyed at random at every
//! start, so clients cannot pick identifiers that pile into one shard or
//! one probe chain.
use super::limits::Lines;
use foldhash::SharedSeed;
use foldhash::fast::FixedState;
use foldhash::quality::SeedableRandomState;
use std::hash::{BuildHasher, Hash};
use std::net::Ipv4Addr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

/// Client identity within one subnet: option 61 when the client sent one,
/// else the hardware address (RFC 2131 §4.2). Scoped by subnet, so one CPE
/// on two VLANs holds two leases.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ClientKey {
    pub subnet: u16,
    /// 0: chaddr, 1: client identifier.
    pub kind: u8,
    pub len: u8,
    pub bytes: [u8; 32],
}

/// The identity as kept, not the whole 32-byte array: a MAC is 6 bytes,
/// and hashing the zeros after it was most of the cost of a table lookup.
/// The first 16 bytes go in as one u128 (one multiply for foldhash,
/// cheaper than its path for a short byte string of any length), the
/// rest only for identifiers longer than that. Equal keys have equal
/// lengths and bytes (the rest is zero, see [`ClientKey::new`]), so they
/// hash alike.
///
/// The subnet is left out: a worker locates a client's slot from the raw
/// frame, before it knows the subnet, to fetch it ahead of the batch
/// ([`LeaseTable::prefetch`]). One client on several links has its keys
/// in one probe chain, told apart by the full comparison.
impl Hash for ClientKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.kind) | u64::from(self.len) << 8);
        let (head, tail) = self.bytes.split_at(16);
        state.write_u128(u128::from_le_bytes(head.try_into().unwrap()));
        if self.len > 16 {
            state.write(&tail[..usize::from(self.len).min(self.bytes.len()) - 16]);
        }
    }
}

impl ClientKey {
    /// Identifiers up to 32 bytes are kept whole; longer ones (rare) keep
    /// their first 24 bytes and a 64-bit hash of the rest. That hash has a
    /// fixed seed on purpose: the key is what the journal stores, so it
    /// must come out the same after a restart.
    pub fn new(subnet: u16, kind: u8, id: &[u8]) -> ClientKey {
        let mut bytes = [0u8; 32];
        if id.len() <= 32 {
            bytes[..id.len()].copy_from_slice(id);
        } else {
            bytes[..24].copy_from_slice(&id[..24]);
            let h = FixedState::with_seed(0x5eed).hash_one(&id[24..]);
            bytes[24..].copy_from_slice(&h.to_le_bytes());
        }
        ClientKey {
            subnet,
            kind,
            len: id.len().min(255) as u8,
            bytes,
        }
    }

    /// `ClientKey::new(subnet, kind, &chaddr[..hlen.min(16)])`, the key of
    /// a hardware address, built per request: a copy of all 16 bytes with
    /// those past `hlen` masked off, instead of a copy as long as `hlen`
    /// into zeroed bytes (a copy of variable length).
    #[inline]
    pub fn from_chaddr(subnet: u16, kind: u8, chaddr: &[u8; 16], hlen: u8) -> ClientKey {
        /// `MASKS[n]`: the low `n` bytes of a little-endian u128 set.
        const MASKS: [u128; 17] = {
            let mut m = [0u128; 17];
            let mut n = 1;
            while n <= 16 {
                m[n] = u128::MAX >> (8 * (16 - n));
                n += 1;
            }
            m
        };
        let len = hlen.min(16);
        // Byte i of the little-endian number is chaddr[i].
        let kept = u128::from_le_bytes(*chaddr) & MASKS[usize::from(len)];
        let mut bytes = [0u8; 32];
        bytes[..16].copy_from_slice(&kept.to_le_bytes());
        ClientKey {
            subnet,
            kind,
            len,
            bytes,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseState {
    /// Offered and held for the client until `expires`.
    Offered,
    /// Acknowledged; valid until `expires`.
    Bound,
    /// Given back by the client at `expires`. The record stays a while
    /// (`keep_released`) so the client gets the same address again while
    /// nobody else took it.
    Released,
    /// Ran out at `expires` (a binding not renewed, or an offer not taken
    /// up); kept like a released one.
    Expired,
    /// Declined by a client that found it in use: out of the pool until
    /// `expires` (the probation), under a key of the address itself.
    Declined,
}

impl LeaseState {
    /// Whether the record keeps its address out of the pool.
    #[inline]
    pub fn holds(self) -> bool {
        matches!(
            self,
            LeaseState::Offered | LeaseState::Bound | LeaseState::Declined
        )
    }
}

/// Records of the table by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StateCounts {
    pub offered: u64,
    pub bound: u64,
    pub released: u64,
    pub expired: u64,
    pub declined: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub addr: Ipv4Addr,
    pub state: LeaseState,
    /// Engine seconds (monotonic) when the lease or hold ends, or, once it
    /// no longer holds its address, when it stopped; `u32::MAX` for
    /// infinite leases.
    pub expires: u32,
    /// The line counters an offered or bound lease is counted in
    /// ([`limits`](super::limits)); given back when it stops holding its
    /// address. Whatever removes or ends a holding record must give them
    /// back ([`LineTable::put_all`](super::limits::LineTable::put_all)).
    pub lines: Lines,
}

/// Shards of the table: enough that workers rarely meet on one lock.
pub const SHARDS: usize = 64;

/// Records a side thread's sweep of the table ([`LeaseTable::retain`])
/// visits per hold of a shard's lock (about 9 µs with 1 M leases): what a
/// worker may wait behind it.
pub const SWEEP_CHUNK: usize = 1024;

/// The most records one shard may hold (its indices are 32-bit).
const MAX_PER_SHARD: usize = 1 << 30;

/// The default `max_clients` for pools of `addresses` addresses in all
/// (reservations counted in): room for a record holding every address,
/// and as many again for released and expired ones, so that a client
/// coming back finds its old address; at least 4,096 records more, and
/// enough beyond the addresses that no shard (1/64 of the table, filled
/// by a random hash) can run out of room for the clients that hold
/// addresses even when every address is taken (the holders of a shard
/// vary by about the square root of their mean: six times that, plus 64).
/// Twice the addresses stops at 2^23 records (about 550 MiB); pools larger
/// than that get the addresses plus the margin.
pub fn default_max_clients(addresses: u64) -> usize {
    let shards = SHARDS as u64;
    let holders = addresses + shards * (64 + 6 * (addresses / shards).isqrt());
    let twice = (2 * addresses + shards * 64).min(1 << 23);
    let n = twice.max(holders).min((MAX_PER_SHARD * SHARDS) as u64);
    (n as usize).next_multiple_of(SHARDS)
}

/// Why an update stored nothing: the client is new, and its shard is at
/// its bound with nothing in it that may make room (every record in it
/// bound or declined).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// An index slot that holds no record.
const EMPTY: u64 = u64::MAX;
/// No record: the end of a list.
const NIL: u32 = u32::MAX;
/// `prev` of a record on the free list.
const FREE: u32 = u32::MAX - 1;

#[derive(Clone, Copy)]
struct Record {
    key: ClientKey,
    lease: Lease,
    /// Neighbours in the eviction list of the lease's state (NIL at the
    /// ends and for states that are in none); `prev` is FREE and `next`
    /// the next free record while the record is unused.
    prev: u32,
    next: u32,
}

#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// The eviction list a state belongs to: released and expired records
/// go first, held offers after them; bound and declined ones never.
#[inline]
fn class(s: LeaseState) -> Option<usize> {
    match s {
        LeaseState::Released | LeaseState::Expired => Some(0),
        LeaseState::Offered => Some(1),
        LeaseState::Bound | LeaseState::Declined => None,
    }
}

enum Probe {
    /// The key's index slot and record.
    Found(usize, usize),
    /// The empty slot where the key would go.
    Vacant(usize),
}

/// One shard: a fixed array of records and a linear-probing index over
/// them, both allocated once.
struct Shard {
    /// Slot → hash tag (high 32 bits) and record number (low 32 bits), or
    /// EMPTY. Half again as many slots as records: at the bound a third
    /// of them is still empty, which keeps probe chains short. Atomic
    /// only so that [`LeaseTable::prefetch_record`] may read a slot
    /// without the lock (a relaxed load or store is a plain move); under
    /// the lock it is read and written like any integer. Shared with the
    /// shard's [`Layout`] for that.
    index: Arc<[AtomicU64]>,
    records: Box<[Record]>,
    free: u32,
    len: u32,
    /// Least recently touched first: [released and expired, offered].
    lists: [List; 2],
    /// Records in each state (see [`state_slot`]), kept by `insert`,
    /// `remove` and `set`, the only places a record's state changes: the
    /// stats read five numbers a shard instead of every record.
    states: [u32; 5],
    /// Engine seconds before which no record here is due to the timed
    /// sweep ([`LeaseTable::retain_due`]): a lower bound, set by that
    /// sweep and lowered by every record [`LeaseTable::update`] stores.
    due: u32,
}

/// Counts held by [`state_slot`], as the stats name them.
fn by_slot(n: [u64; 5]) -> StateCounts {
    StateCounts {
        offered: n[state_slot(LeaseState::Offered)],
        bound: n[state_slot(LeaseState::Bound)],
        released: n[state_slot(LeaseState::Released)],
        expired: n[state_slot(LeaseState::Expired)],
        declined: n[state_slot(LeaseState::Declined)],
    }
}

/// A state's place in [`Shard::states`].
#[inline]
fn state_slot(s: LeaseState) -> usize {
    match s {
        LeaseState::Offered => 0,
        LeaseState::Bound => 1,
        LeaseState::Released => 2,
        LeaseState::Expired => 3,
        LeaseState::Declined => 4,
    }
}

impl Shard {
    fn new(per: usize) -> Shard {
        let slots = per + per / 2 + 1;
        let blank = Record {
            key: ClientKey {
                subnet: 0,
                kind: 0,
                len: 0,
                bytes: [0; 32],
            },
            lease: Lease {
                addr: Ipv4Addr::UNSPECIFIED,
                state: LeaseState::Expired,
                expires: 0,
                lines: Lines::NONE,
            },
            prev: FREE,
            next: NIL,
        };
        // Both are written in full here (EMPTY is not zero, and every
        // record gets its free-list link), so every page is touched at
        // start: the first clients to land in a page after an outage do
        // not pay a page fault on the packet path.
        let index = (0..slots).map(|_| AtomicU64::new(EMPTY)).collect();
        let records = (0..per)
            .map(|i| Record {
                next: if i + 1 < per { i as u32 + 1 } else { NIL },
                ..blank
            })
            .collect();
        Shard {
            index,
            records,
            free: 0,
            len: 0,
            lists: [List {
                head: NIL,
                tail: NIL,
            }; 2],
            states: [0; 5],
            due: 0,
        }
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        home(tag, self.index.len())
    }

    #[inline]
    fn slot(&self, i: usize) -> u64 {
        self.index[i].load(Relaxed)
    }

    #[inline]
    fn set_slot(&self, i: usize, v: u64) {
        self.index[i].store(v, Relaxed);
    }

    #[inline]
    fn after(&self, slot: usize) -> usize {
        if slot + 1 == self.index.len() {
            0
        } else {
            slot + 1
        }
    }

    fn probe(&self, tag: u32, key: &ClientKey) -> Probe {
        let mut i = self.home(tag);
        // The index always has an empty slot, so this ends.
        loop {
            let v = self.slot(i);
            if v == EMPTY {
                return Probe::Vacant(i);
            }
            if (v >> 32) as u32 == tag {
                let r = v as u32 as usize;
                if self.records[r].key == *key {
                    return Probe::Found(i, r);
                }
            }
            i = self.after(i);
        }
    }

    /// The index slot of record `r`, whose key has hash tag `tag`.
    fn slot_of(&self, tag: u32, r: usize) -> Option<usize> {
        let mut i = self.home(tag);
        while self.slot(i) != EMPTY {
            if self.slot(i) as u32 as usize == r {
                return Some(i);
            }
            i = self.after(i);
        }
        None
    }

    fn is_full(&self) -> bool {
        self.free == NIL
    }

    /// Stores a new record in the empty `slot`; the caller has checked
    /// that a record is free.
    fn insert(&mut self, slot: usize, tag: u32, key: ClientKey, lease: Lease) {
        let r = self.free as usize;
        self.free = self.records[r].next;
        self.records[r] = Record {
            key,
            lease,
            prev: NIL,
            next: NIL,
        };
        self.set_slot(slot, (u64::from(tag) << 32) | r as u64);
        self.len += 1;
        self.states[state_slot(lease.state)] += 1;
        self.link(r);
    }

    /// Takes the record of index slot `slot` out, and closes the gap by
    /// shifting back the entries after it that probed past it (Knuth's
    /// algorithm R), so no tombstone is left.
    fn remove(&mut self, slot: usize) -> Record {
        let r = self.slot(slot) as u32 as usize;
        self.unlink(r);
        let gone = self.records[r];
        self.states[state_slot(gone.lease.state)] -= 1;
        self.records[r].prev = FREE;
        self.records[r].next = self.free;
        self.free = r as u32;
        self.len -= 1;
        let n = self.index.len();
        let (mut hole, mut j) = (slot, slot);
        loop {
            j = self.after(j);
            let v = self.slot(j);
            if v == EMPTY {
                break;
            }
            // The entry at j may fill the hole when the hole lies between
            // its home slot and j.
            let home = self.home((v >> 32) as u32);
            if (j + n - home) % n >= (j + n - hole) % n {
                self.set_slot(hole, v);
                hole = j;
            }
        }
        self.set_slot(hole, EMPTY);
        gone
    }

    /// Appends record `r` to the tail of its state's eviction list.
    fn link(&mut self, r: usize) {
        let Some(c) = class(self.records[r].lease.state) else {
            return;
        };
        let tail = self.lists[c].tail;
        self.records[r].prev = tail;
        self.records[r].next = NIL;
        match tail {
            NIL => self.lists[c].head = r as u32,
            t => self.records[t as usize].next = r as u32,
        }
        self.lists[c].tail = r as u32;
    }

    /// Takes record `r` out of its state's eviction list.
    fn unlink(&mut self, r: usize) {
        let Some(c) = class(self.records[r].lease.state) else {
            return;
        };
        let Record { prev, next, .. } = self.records[r];
        match prev {
            NIL => self.lists[c].head = next,
            p => self.records[p as usize].next = next,
        }
        match next {
            NIL => self.lists[c].tail = prev,
            n => self.records[n as usize].prev = prev,
        }
        self.records[r].prev = NIL;
        self.records[r].next = NIL;
    }

    /// Stores `lease` in record `r`; a record that was `touched` (changed
    /// by a request), or that changes list, goes to the tail of its list.
    fn set(&mut self, r: usize, lease: Lease, touched: bool) {
        let old = self.records[r].lease;
        if old == lease {
            return;
        }
        if old.state != lease.state {
            self.states[state_slot(old.state)] -= 1;
            self.states[state_slot(lease.state)] += 1;
        }
        if touched || class(old.state) != class(lease.state) {
            self.unlink(r);
            self.records[r].lease = lease;
            self.link(r);
        } else {
            self.records[r].lease = lease;
        }
    }

    /// The record to make room with: the least recently touched released
    /// or expired one, else the least recently touched offer.
    fn victim(&self) -> Option<usize> {
        self.lists
            .iter()
            .map(|l| l.head)
            .find(|&h| h != NIL)
            .map(|h| h as usize)
    }
}

/// A shard with its lock and the counts the stats read without it (only
/// written under the lock).
#[repr(align(128))]
struct Padded {
    shard: Mutex<Shard>,
    used: AtomicU64,
    evicted: AtomicU64,
    /// The shard's index and where its records lie, for the prefetch
    /// hints, outside the lock.
    ahead: Layout,
}

struct Layout {
    /// The same index as the shard's (its slots read atomically).
    index: Arc<[AtomicU64]>,
    /// The address of the shard's records (allocated once in
    /// [`Shard::new`], `per_shard` of them, never moved or resized): only
    /// ever handed to the CPU as a prefetch hint, never read through.
    records: usize,
}

/// Where a client's key would be, found before its frame is handled
/// ([`LeaseTable::prefetch`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ahead {
    shard: u32,
    slot: u32,
}

#[inline]
fn home(tag: u32, slots: usize) -> usize {
    ((u64::from(tag) * slots as u64) >> 32) as usize
}

/// Asks the CPU to start loading the cache line at `p` (a hint: it never
/// faults, whatever `p` is).
#[inline(always)]
fn prefetch_line<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching reads nothing the program sees and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Padded {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shard> {
        self.shard.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct LeaseTable {
    shards: Box<[Padded]>,
    hasher: SeedableRandomState,
    per_shard: usize,
}

/// 64 bits from the operating system's random source (through the keys
/// std draws for its own hash maps).
fn os_random() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0x0074_6162_6c65_u64)
}

/// A hasher keyed at random for this process: the per-hasher seed and the
/// shared seed (the secrets every input is mixed with) both drawn from the
/// operating system, for maps whose keys clients choose.
pub fn random_hasher() -> SeedableRandomState {
    static SHARED: OnceLock<SharedSeed> = OnceLock::new();
    let shared = SHARED.get_or_init(|| SharedSeed::from_u64(os_random()));
    SeedableRandomState::with_seed(os_random(), shared)
}

impl LeaseTable {
    /// A table of at most `max_clients` records (rounded up to a multiple
    /// of [`SHARDS`]), all allocated now.
    pub fn new(max_clients: usize) -> LeaseTable {
        LeaseTable::with_shards(max_clients, SHARDS)
    }

    /// A table of `shards` shards of `max_clients / shards` records each
    /// (rounded up): [`LeaseTable::new`] with another layout, for tests.
    pub fn with_shards(max_clients: usize, shards: usize) -> LeaseTable {
        let shards = shards.max(1);
        let per = max_clients.div_ceil(shards).clamp(1, MAX_PER_SHARD);
        LeaseTable {
            shards: (0..shards)
                .map(|_| {
                    let shard = Shard::new(per);
                    let ahead = Layout {
                        index: shard.index.clone(),
                        records: shard.records.as_ptr() as usize,
                    };
                    Padded {
                        shard: Mutex::new(shard),
                        used: AtomicU64::new(0),
                        evicted: AtomicU64::new(0),
                        ahead,
                    }
                })
                .collect(),
            hasher: random_hasher(),
            per_shard: per,
        }
    }

    /// The key's shard and its hash tag within it: the high half of the
    /// hash picks the shard, the low half the slot.
    #[inline]
    fn locate(&self, key: &ClientKey) -> (&Padded, u32) {
        let (s, tag) = self.shard_of(key);
        (&self.shards[s], tag)
    }

    #[inline]
    fn shard_of(&self, key: &ClientKey) -> (usize, u32) {
        let h = self.hasher.hash_one(key);
        let s = ((h >> 32) * self.shards.len() as u64) >> 32;
        (s as usize, h as u32)
    }

    /// Starts loading the index line where `key`'s probe begins, without
    /// the lock and without reading it: a worker calls this for every
    /// frame of a batch before it handles the first, so that the cache
    /// misses of random clients overlap instead of coming one by one.
    /// The subnet of `key` does not matter (see [`ClientKey`]'s hash).
    #[inline]
    pub fn prefetch(&self, key: &ClientKey) -> Ahead {
        let (s, tag) = self.shard_of(key);
        let index = &self.shards[s].ahead.index;
        let slot = home(tag, index.len());
        prefetch_line(index.as_ptr().wrapping_add(slot));
        Ahead {
            shard: s as u32,
            slot: slot as u32,
        }
    }

    /// Tests: the keys in the probe chain that starts where `a` points.
    #[cfg(test)]
    pub(crate) fn chain_at(&self, a: Ahead) -> Vec<ClientKey> {
        let s = self.shards[a.shard as usize].lock();
        let mut i = a.slot as usize;
        let mut keys = Vec::new();
        while s.slot(i) != EMPTY {
            keys.push(s.records[s.slot(i) as u32 as usize].key);
            i = s.after(i);
        }
        keys
    }

    /// The second step, once the index line has had time to arrive: reads
    /// the home slot (one relaxed load, no lock: it may be stale, which
    /// only makes the hint wrong) and starts loading the record it names.
    #[inline]
    pub fn prefetch_record(&self, a: Ahead) {
        let Some(p) = self.shards.get(a.shard as usize) else {
            return;
        };
        let l = &p.ahead;
        let Some(v) = l.index.get(a.slot as usize).map(|v| v.load(Relaxed)) else {
            return;
        };
        let r = v as u32 as usize;
        if v == EMPTY || r >= self.per_shard {
            return;
        }
        // An address for the CPU alone: nothing is read through it.
        let rec = std::ptr::without_provenance::<Record>(l.records).wrapping_add(r);
        // A record spans two cache lines at most: its key and its lease.
        prefetch_line(rec);
        prefetch_line(
            rec.cast::<u8>()
                .wrapping_add(std::mem::size_of::<Record>() - 1),
        );
    }

    /// Runs `f` on the client's entry (None when absent) under its shard
    /// lock; what `f` leaves in the option is stored.
    ///
    /// A new record in a shard at its bound takes the place of the record
    /// [`Shard::victim`] names, which is handed to `on_evict` first (so the
    /// address of an evicted offer goes back to its pool). When nothing
    /// may be evicted, the new record is not stored: it goes to `on_evict`
    /// instead (what `f` took for it must be given back the same way) and
    /// the answer is [`Full`]. `on_evict` is the one place where a record
    /// leaves the table other than by `f` or [`LeaseTable::retain`].
    pub fn update<R>(
        &self,
        key: &ClientKey,
        mut on_evict: impl FnMut(&ClientKey, &Lease),
        f: impl FnOnce(&mut Option<Lease>) -> R,
    ) -> Result<R, Full> {
        let (p, tag) = self.locate(key);
        let mut shard = p.lock();
        let s = &mut *shard;
        let r = match s.probe(tag, key) {
            Probe::Found(slot, r) => {
                let mut entry = Some(s.records[r].lease);
                let out = f(&mut entry);
                match entry {
                    Some(l) => {
                        s.set(r, l, true);
                        s.due = s.due.min(l.expires);
                    }
                    None => {
                        s.remove(slot);
                    }
                }
                Ok(out)
            }
            Probe::Vacant(mut slot) => {
                let mut entry = None;
                let out = f(&mut entry);
                match entry {
                    None => Ok(out),
                    Some(l) => {
                        if s.is_full() {
                            let victim = s.victim().and_then(|v| {
                                let vt = self.hasher.hash_one(s.records[v].key) as u32;
                                s.slot_of(vt, v)
                            });
                            let Some(vslot) = victim else {
                                on_evict(key, &l);
                                return Err(Full);
                            };
                            let gone = s.remove(vslot);
                            on_evict(&gone.key, &gone.lease);
                            p.evicted.store(p.evicted.load(Relaxed) + 1, Relaxed);
                            // The removal may have shifted the empty slot.
                            if let Probe::Vacant(v) = s.probe(tag, key) {
                                slot = v;
                            }
                        }
                        s.insert(slot, tag, *key, l);
                        s.due = s.due.min(l.expires);
                        Ok(out)
                    }
                }
            }
        };
        p.used.store(u64::from(s.len), Relaxed);
        r
    }

    pub fn get(&self, key: &ClientKey) -> Option<Lease> {
        let (p, tag) = self.locate(key);
        let s = p.lock();
        match s.probe(tag, key) {
            Probe::Found(_, r) => Some(s.records[r].lease),
            Probe::Vacant(_) => None,
        }
    }

    /// Calls `f` for every shard, [`SWEEP_CHUNK`] records at a time, each
    /// call under the shard's lock: a worker whose client falls in the
    /// shard being swept waits for one chunk at most (a 2 M-record table's
    /// whole shard took about 200 µs to count, 280 µs to expire). Records
    /// stay in their slots, so one a worker changes between two chunks is
    /// seen as it is then, or as it was before.
    fn sweep(&self, mut f: impl FnMut(&Padded, &mut Shard, Range<usize>)) {
        for p in self.shards.iter() {
            let mut from = 0;
            loop {
                let mut s = p.lock();
                let to = (from + SWEEP_CHUNK).min(s.records.len());
                f(p, &mut s, from..to);
                if to == s.records.len() {
                    break;
                }
                from = to;
            }
        }
    }

    /// Visits every lease (see [`LeaseTable::sweep`]), letting `f` keep
    /// (true) or drop (false) it. For side threads (reload, the operator's
    /// changes), never the packet path. What `f` changes may make a record
    /// due earlier in ways the table cannot tell (a reload that keeps
    /// released records for less time), so every shard is due to the next
    /// timed sweep, which sets its bound again.
    pub fn retain(&self, mut f: impl FnMut(&ClientKey, &mut Lease) -> bool) {
        self.sweep(|p, s, chunk| {
            s.due = 0;
            for r in chunk {
                if s.records[r].prev == FREE {
                    continue;
                }
                let key = s.records[r].key;
                let mut l = s.records[r].lease;
                if f(&key, &mut l) {
                    s.set(r, l, false);
                } else if let Some(slot) = s.slot_of(self.hasher.hash_one(key) as u32, r) {
                    s.remove(slot);
                }
            }
            p.used.store(u64::from(s.len), Relaxed);
        });
    }

    /// The timed sweep (the expiry's): like [`LeaseTable::retain`], but `f`
    /// keeps a record by telling when it is next due (engine seconds; `f`
    /// must change nothing in it before then) or drops it with `None`, and
    /// shards in which nothing is due at `now` are passed over without a
    /// look at their records. Returns how many shards it swept.
    ///
    /// Why it pays: clients renew at half their lease, so a record's time
    /// is rarely up; each shard's bound is the earliest time `f` gave, or
    /// any record stored since (its `expires`: what `f` is given is never
    /// due before it, in any state), and a shard is swept only when a
    /// lease is really about to end or a hold to run out. The bound is
    /// reset when a sweep of the shard starts and the sweep's own minimum
    /// folded in when it ends: a record a worker stores between two chunks
    /// lowers the bound itself, so it is covered whether or not the sweep
    /// had passed it.
    pub fn retain_due(
        &self,
        now: u32,
        mut f: impl FnMut(&ClientKey, &mut Lease) -> Option<u32>,
    ) -> usize {
        let mut swept = 0;
        for p in self.shards.iter() {
            let (mut from, mut next) = (0, u32::MAX);
            loop {
                let mut s = p.lock();
                if from == 0 {
                    if s.due > now {
                        break;
                    }
                    s.due = u32::MAX;
                    swept += 1;
                }
                let to = (from + SWEEP_CHUNK).min(s.records.len());
                for r in from..to {
                    if s.records[r].prev == FREE {
                        continue;
                    }
                    let key = s.records[r].key;
                    let mut l = s.records[r].lease;
                    match f(&key, &mut l) {
                        Some(due) => {
                            s.set(r, l, false);
                            next = next.min(due);
                        }
                        None => {
                            if let Some(slot) = s.slot_of(self.hasher.hash_one(key) as u32, r) {
                                s.remove(slot);
                            }
                        }
                    }
                }
                p.used.store(u64::from(s.len), Relaxed);
                if to == s.records.len() {
                    s.due = s.due.min(next);
                    break;
                }
                from = to;
            }
        }
        swept
    }

    /// The records in each state: each shard's counts, read under its
    /// lock one shard after the other (a hold of a few nanoseconds, for
    /// the stats interval). A client that moves from a shard not yet read
    /// to one already read is missed once, which a counter read once a
    /// second can afford.
    pub fn count_by_state(&self) -> StateCounts {
        let mut n = [0u64; 5];
        for p in self.shards.iter() {
            let s = p.lock();
            for (t, c) in n.iter_mut().zip(s.states) {
                *t += u64::from(c);
            }
        }
        by_slot(n)
    }

    /// The same counts from every record (see [`LeaseTable::sweep`]):
    /// what the kept counts must equal.
    #[cfg(test)]
    fn count_by_scan(&self) -> StateCounts {
        let mut n = [0u64; 5];
        self.sweep(|_, s, chunk| {
            for r in s.records[chunk].iter().filter(|r| r.prev != FREE) {
                n[state_slot(r.lease.state)] += 1;
            }
        });
        by_slot(n)
    }

    /// Records in the table (read without locks: a moment late at most).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|p| p.used.load(Relaxed) as usize)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most records the table holds: `max_clients` rounded up to the
    /// shard layout. Fixed for the table's life.
    pub fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    /// Records evicted so far to make room for new clients.
    pub fn evicted(&self) -> u64 {
        self.shards.iter().map(|p| p.evicted.load(Relaxed)).sum()
    }

    /// Bytes the table took at start (records and index); never changes.
    pub fn footprint(&self) -> usize {
        self.shards
            .iter()
            .map(|p| {
                let s = p.lock();
                std::mem::size_of_val(&*s.records) + std::mem::size_of_val(&*s.index)
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn count_by_state_counts_every_record_once() {
        let t = LeaseTable::with_shards(64, 4);
        let states = [
            LeaseState::Offered,
            LeaseState::Bound,
            LeaseState::Bound,
            LeaseState::Released,
            LeaseState::Expired,
            LeaseState::Declined,
            LeaseState::Bound,
        ];
        for (i, st) in states.iter().enumerate() {
            put(&t, key(i as u32), lease(i as u32, *st)).0.unwrap();
        }
        let c = t.count_by_state();
        assert_eq!(
            c,
            StateCounts {
                offered: 1,
                bound: 3,
                released: 1,
                expired: 1,
                declined: 1
            }
        );
        // A removed record is counted no more.
        t.retain(|_, l| l.state != LeaseState::Bound);
        assert_eq!(t.count_by_state().bound, 0);
        assert_eq!(t.count_by_state().offered, 1);
    }

    fn key(i: u32) -> ClientKey {
        let mut mac = [0x02, 0, 0, 0, 0, 0];
        mac[2..].copy_from_slice(&i.to_be_bytes());
        ClientKey::new(0, 0, &mac)
    }

    fn lease(i: u32, state: LeaseState) -> Lease {
        Lease {
            addr: Ipv4Addr::from(0x0a00_0000 + i),
            state,
            expires: i,
            lines: Lines::NONE,
        }
    }

    /// Stores `l` for `k`, as a request would; the records evicted for it.
    fn put(t: &LeaseTable, k: ClientKey, l: Lease) -> (Result<(), Full>, Vec<(ClientKey, Lease)>) {
        let mut gone = Vec::new();
        let r = t.update(&k, |k, l| gone.push((*k, *l)), |e| *e = Some(l));
        (r, gone)
    }

    /// A shard of several chunks: the sweeps visit every record once,
    /// across the chunk boundaries, and retain drops exactly what it is
    /// told to.
    #[test]
    fn sweeps_cross_chunks_of_a_shard() {
        let n = 3 * SWEEP_CHUNK as u32 + 17;
        let t = LeaseTable::with_shards(n as usize, 1);
        for i in 0..n {
            put(&t, key(i), lease(i, LeaseState::Bound)).0.unwrap();
        }
        assert_eq!(t.count_by_state().bound, u64::from(n));
        let mut seen = 0;
        t.retain(|_, l| {
            seen += 1;
            l.expires % 2 == 0
        });
        assert_eq!(seen, n);
        assert_eq!(t.count_by_state().bound, u64::from(n.div_ceil(2)));
        assert_eq!(t.len(), n.div_ceil(2) as usize);
        // n - 1 is even (kept), n - 2 odd (dropped).
        assert!(t.get(&key(n - 1)).is_some() && t.get(&key(n - 2)).is_none());
    }

    /// The kept counts equal a scan of every record through every way a
    /// state changes: new records, changes, removals by a request and by
    /// retain, evictions of a full shard, and a new client refused.
    #[test]
    fn kept_counts_equal_a_scan_of_every_record() {
        let states = [
            LeaseState::Offered,
            LeaseState::Bound,
            LeaseState::Released,
            LeaseState::Expired,
            LeaseState::Declined,
        ];
        // 64 records in 4 shards: the 300 keys keep every shard full.
        let t = LeaseTable::with_shards(64, 4);
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..20_000u32 {
            let r = next();
            let k = key((r % 300) as u32);
            let st = states[(r >> 20) as usize % states.len()];
            match (r >> 32) % 8 {
                // A request removes the client's record.
                0 => {
                    let _ = t.update(&k, |_, _| {}, |e| *e = None);
                }
                // Expiry: some records change state, some go.
                1 if step % 50 == 0 => t.retain(|_, l| match l.expires % 3 {
                    0 => false,
                    1 => {
                        l.state = LeaseState::Expired;
                        true
                    }
                    _ => true,
                }),
                _ => {
                    let _ = put(&t, k, lease((r as u32) % 100_000, st));
                }
            }
            assert_eq!(t.count_by_state(), t.count_by_scan(), "step {step}");
        }
        let c = t.count_by_state();
        let total = c.offered + c.bound + c.released + c.expired + c.declined;
        assert_eq!(total, t.len() as u64);
        assert!(t.evicted() > 0, "no eviction was exercised");
    }

    /// The timed sweep against a plain model: after every sweep at `now`
    /// no record whose time is up is left (none missed behind a shard's
    /// bound), everything else is; shards with nothing due are passed over.
    #[test]
    fn due_sweeps_miss_nothing_and_skip_shards_with_nothing_due() {
        // Records of 2 chunks a shard, so that sweeps cross chunks.
        let t = LeaseTable::with_shards(16 * 2 * SWEEP_CHUNK, 16);
        let mut model: HashMap<u32, u32> = HashMap::new();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let due =
            |now: u32| move |_: &ClientKey, l: &mut Lease| (l.expires > now).then_some(l.expires);
        let (mut swept, mut sweeps) = (0, 0);
        for now in 1..400u32 {
            for _ in 0..40 {
                let r = next();
                let k = (r % 5000) as u32;
                // Mostly far ahead (a renewal), sometimes soon or already
                // past (a release, a short hold): what lowers a bound.
                let expires = match (r >> 32) % 10 {
                    0 => now,
                    1 => now + 1 + (r >> 40) as u32 % 3,
                    _ => now + 50 + (r >> 40) as u32 % 200,
                };
                put(&t, key(k), lease_until(k, expires)).0.unwrap();
                model.insert(k, expires);
            }
            swept += t.retain_due(now, due(now));
            sweeps += 1;
            model.retain(|_, e| *e > now);
            assert_eq!(t.len(), model.len(), "at {now}");
            for (k, e) in &model {
                assert_eq!(t.get(&key(*k)).map(|l| l.expires), Some(*e), "at {now}");
            }
        }
        assert!(swept < 16 * sweeps, "no shard was ever passed over");
        // Nothing due: no shard swept; one record made due: its shard only.
        let now = 10_000;
        t.retain_due(now, due(now));
        assert_eq!(t.retain_due(now, due(now)), 0);
        put(&t, key(1), lease_until(1, now)).0.unwrap();
        assert_eq!(t.retain_due(now, due(now)), 1);
        assert!(t.get(&key(1)).is_none());
        // A plain retain (a reload) makes every shard due once.
        t.retain(|_, _| true);
        assert_eq!(t.retain_due(now, due(now)), 16);
        assert_eq!(t.retain_due(now, due(now)), 0);
    }

    fn lease_until(i: u32, expires: u32) -> Lease {
        Lease {
            expires,
            ..lease(i, LeaseState::Bound)
        }
    }

    #[test]
    fn keys_from_chaddr_are_keys_of_the_hwaddr() {
        let mut chaddr = [0u8; 16];
        for (i, b) in chaddr.iter_mut().enumerate() {
            *b = 0xa0 + i as u8;
        }
        for hlen in 0..=255u8 {
            let hw = &chaddr[..usize::from(hlen).min(16)];
            assert_eq!(
                ClientKey::from_chaddr(7, 0, &chaddr, hlen),
                ClientKey::new(7, 0, hw),
                "hlen {hlen}"
            );
        }
    }

    #[test]
    fn keys_scope_by_subnet_and_kind() {
        let mac = [1, 2, 3, 4, 5, 6];
        assert_ne!(ClientKey::new(0, 0, &mac), ClientKey::new(1, 0, &mac));
        assert_ne!(ClientKey::new(0, 0, &mac), ClientKey::new(0, 1, &mac));
        let long_a = [7u8; 40];
        let mut long_b = long_a;
        long_b[39] = 8;
        assert_ne!(ClientKey::new(0, 1, &long_a), ClientKey::new(0, 1, &long_b));
    }

    /// The key of a long identifier is what the journal stores: it must
    /// not change from one start (or table) to the next.
    #[test]
    fn keys_of_long_identifiers_are_stable() {
        let id = [9u8; 40];
        assert_eq!(ClientKey::new(0, 1, &id), ClientKey::new(0, 1, &id));
        #[cfg(target_pointer_width = "64")]
        assert_eq!(
            ClientKey::new(0, 1, &id).bytes[24..],
            FixedState::with_seed(0x5eed)
                .hash_one(&id[24..])
                .to_le_bytes()
        );
    }

    #[test]
    fn update_inserts_changes_and_removes() {
        let t = LeaseTable::new(10);
        let k = key(1);
        let l = lease(1, LeaseState::Offered);
        assert_eq!(put(&t, k, l).0, Ok(()));
        assert_eq!(t.get(&k), Some(l));
        t.update(
            &k,
            |_, _| {},
            |e| e.as_mut().unwrap().state = LeaseState::Bound,
        )
        .unwrap();
        assert_eq!(t.get(&k).unwrap().state, LeaseState::Bound);
        t.retain(|_, l| l.expires > 100);
        assert!(t.is_empty());
        assert_eq!(t.get(&k), None);
    }

    #[test]
    fn capacity_is_max_clients_rounded_to_the_shards() {
        assert_eq!(LeaseTable::new(20_000).capacity(), 20_032);
        assert_eq!(LeaseTable::new(64).capacity(), 64);
        assert_eq!(LeaseTable::with_shards(5, 1).capacity(), 5);
    }

    /// At the bound, a new client takes the place of the least recently
    /// touched released or expired record, then of the oldest offer;
    /// bound and declined records stay, and once only they are left, the
    /// new client is refused and handed back.
    #[test]
    fn at_the_bound_the_oldest_idle_record_goes_first_never_a_bound_one() {
        let t = LeaseTable::with_shards(6, 1);
        use LeaseState::*;
        for (i, s) in [
            (1, Bound),
            (2, Released),
            (3, Offered),
            (4, Expired),
            (5, Declined),
        ] {
            assert_eq!(put(&t, key(i), lease(i, s)).0, Ok(()));
        }
        // Touching 2 makes 4 the older idle record.
        t.update(&key(2), |_, _| {}, |e| e.as_mut().unwrap().expires = 20)
            .unwrap();
        assert_eq!(put(&t, key(6), lease(6, Offered)), (Ok(()), vec![]));
        assert_eq!(t.len(), 6);
        let (r, gone) = put(&t, key(7), lease(7, Offered));
        assert_eq!(r, Ok(()));
        assert_eq!(
            gone,
            vec![(key(4), lease(4, Expired))],
            "the older idle one"
        );
        let (_, gone) = put(&t, key(8), lease(8, Offered));
        assert_eq!(gone[0].0, key(2), "then the other idle one");
        // No idle record left: the oldest offer (3), then 6, 7.
        let (_, gone) = put(&t, key(9), lease(9, Bound));
        assert_eq!(gone, vec![(key(3), lease(3, Offered))]);
        for i in [10, 11, 12] {
            let (r, gone) = put(&t, key(i), lease(i, Bound));
            assert_eq!(r, Ok(()));
            assert_eq!(gone.len(), 1);
            assert_eq!(gone[0].1.state, Offered, "{gone:?}");
        }
        // Bound and declined only: refused, the new record handed back.
        let (r, gone) = put(&t, key(13), lease(13, Offered));
        assert_eq!(r, Err(Full));
        assert_eq!(gone, vec![(key(13), lease(13, Offered))]);
        assert_eq!(t.get(&key(13)), None);
        for i in [1, 5, 9, 10, 11, 12] {
            assert!(t.get(&key(i)).is_some(), "{i} kept");
        }
        assert_eq!((t.len(), t.evicted()), (6, 6));
        // A known client is updated in place whatever the bound.
        t.update(
            &key(1),
            |_, _| panic!("nothing evicted"),
            |e| e.as_mut().unwrap().expires = 99,
        )
        .unwrap();
        assert_eq!(t.get(&key(1)).unwrap().expires, 99);
        // A new client that stores nothing needs no room.
        assert_eq!(
            t.update(&key(14), |_, _| panic!("no"), |e| e.is_none()),
            Ok(true)
        );
    }

    /// The expiry sweep turning an offer or a binding into an expired
    /// record puts it on the idle list, after those already on it.
    #[test]
    fn records_the_sweep_expires_become_evictable() {
        let t = LeaseTable::with_shards(3, 1);
        put(&t, key(1), lease(1, LeaseState::Released)).0.unwrap();
        put(&t, key(2), lease(2, LeaseState::Bound)).0.unwrap();
        put(&t, key(3), lease(3, LeaseState::Bound)).0.unwrap();
        t.retain(|k, l| {
            if *k == key(3) {
                l.state = LeaseState::Expired;
            }
            true
        });
        let (_, gone) = put(&t, key(4), lease(4, LeaseState::Offered));
        assert_eq!(gone[0].0, key(1));
        let (_, gone) = put(&t, key(5), lease(5, LeaseState::Offered));
        assert_eq!(gone[0].0, key(3));
        assert_eq!(put(&t, key(6), lease(6, LeaseState::Bound)).1[0].0, key(4));
    }

    /// A flood of new clients far past the bound: the table never holds
    /// more than its capacity, its memory does not change, and every
    /// record past the capacity evicted exactly one.
    #[test]
    fn a_flood_past_the_bound_keeps_size_and_memory() {
        let t = LeaseTable::new(1024);
        let (cap, bytes) = (t.capacity(), t.footprint());
        for i in 0..100_000 {
            put(&t, key(i), lease(i, LeaseState::Released)).0.unwrap();
            assert!(t.len() <= cap);
        }
        assert_eq!(t.len(), cap, "every shard filled");
        assert_eq!(t.evicted(), 100_000 - cap as u64);
        assert_eq!((t.capacity(), t.footprint()), (cap, bytes));
        // The newest ones are there; their lookups still end.
        assert!(t.get(&key(99_999)).is_some());
        assert_eq!(t.get(&key(0)), None);
    }

    /// Inserts, updates and removals in a random order against a HashMap:
    /// the index (with its shifted deletions) finds exactly what the map
    /// holds.
    #[test]
    fn agrees_with_a_hash_map_under_churn() {
        let t = LeaseTable::with_shards(300, 2);
        let mut model: HashMap<ClientKey, Lease> = HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key((x % 500) as u32);
            match (x >> 32) % 4 {
                0 => {
                    t.update(&k, |_, _| {}, |e| *e = None).unwrap();
                    model.remove(&k);
                }
                3 if step % 1000 == 0 => {
                    t.retain(|k, _| x.wrapping_add(u64::from(k.bytes[5])) % 3 != 0);
                    model.retain(|k, _| x.wrapping_add(u64::from(k.bytes[5])) % 3 != 0);
                }
                _ => {
                    // Bound records only: nothing is ever evicted, so
                    // the model knows what a full shard refuses.
                    let l = lease(step, LeaseState::Bound);
                    match t.update(&k, |_, _| {}, |e| *e = Some(l)) {
                        Ok(()) => {
                            model.insert(k, l);
                        }
                        Err(Full) => assert!(!model.contains_key(&k)),
                    }
                }
            }
            if step % 997 == 0 {
                for i in 0..500 {
                    assert_eq!(t.get(&key(i)), model.get(&key(i)).copied(), "step {step}");
                }
                assert_eq!(t.len(), model.len());
            }
        }
    }

    /// Hash keys are drawn at every start: two tables place one key apart.
    #[test]
    fn hash_seeds_differ_per_table() {
        let (a, b) = (LeaseTable::new(64), LeaseTable::new(64));
        let hashes = |t: &LeaseTable| {
            (0..8)
                .map(|i| t.hasher.hash_one(key(i)))
                .collect::<Vec<_>>()
        };
        assert_ne!(hashes(&a), hashes(&b));
    }

    #[test]
    fn the_default_bound_follows_the_pools() {
        // Twice the addresses plus 4,096 for a city's pools.
        assert_eq!(default_max_clients(1 << 20), (2 << 20) + 4096);
        // Small pools: the per-shard margin rules.
        let small = default_max_clients(765);
        assert!(
            small >= 2 * 765 + 4096 && small.is_multiple_of(SHARDS),
            "{small}"
        );
        // Past 2^23 records: the addresses plus the margin.
        let huge = default_max_clients(1 << 24);
        assert!(huge > 1 << 24 && huge < (1 << 24) + (1 << 20), "{huge}");
    }
}
