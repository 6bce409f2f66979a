//! Which clients and which addresses this server may decide for, when
//! several servers share one network (`[cluster]`).
//!
//! Clients fall into 256 buckets by RFC 3074's load-balancing hash over
//! their identity; bucket `b` belongs to share `b % N`, where N is the
//! number of shares (one per peer in `load-balancing`, one in all in
//! `hot-standby`). The words of every pool are split the same way (word
//! `w`, addresses `64w..64w+63` of the pool, is share `w % N`; see
//! [`Pool::split`](super::Pool::split)). A server answers a client only for
//! the shares it owns and allocates only from their words, so two servers
//! never offer one address, whatever the timing: what one may allocate the
//! other may not touch.
//!
//! The hash is the one ISC's servers use (Kea's HA hook, dhcpd's failover:
//! the same table, the same modulus), so a client lands in the same bucket
//! it would with them.
//!
//! Only the cluster thread changes the bits; workers read them once per
//! request with one relaxed load. Relaxed is enough: a bit that changes
//! between two requests takes effect at the next one, and nothing else is
//! published through it (a share is only granted after its records were
//! applied by the same thread that sets the bit, and the lease table's
//! locks order those for the workers).
use super::ClientKey;
use super::journal::LeaseRecord;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Buckets clients are hashed into (RFC 3074: one octet).
pub const BUCKETS: usize = 256;

/// Most shares a cluster has (one bit each in the mask).
pub const MAX_SHARES: u8 = 8;

/// RFC 3074 §6: the mixing table of the Pearson hash, 256 distinct values.
const MIX: [u8; 256] = [
    251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0, 232, //
    31, 32, 55, 60, 152, 58, 17, 237, 174, 70, 160, 144, 220, 90, 57, 223, //
    59, 3, 18, 140, 111, 166, 203, 196, 134, 243, 124, 95, 222, 179, 197, 65, //
    180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23, 97, 16, //
    40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108, 244, 67, //
    207, 9, 178, 204, 74, 98, 126, 249, 167, 116, 34, 77, 193, 200, 121, 5, //
    20, 113, 71, 35, 128, 13, 182, 94, 25, 226, 227, 199, 75, 27, 41, 245, //
    230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115, 241, 73, 88, 105, //
    39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221, 148, 154, 122, 12, 84, //
    82, 163, 44, 139, 228, 236, 205, 242, 217, 11, 187, 146, 159, 64, 86, 239, //
    195, 42, 106, 198, 118, 112, 184, 172, 87, 2, 173, 117, 176, 229, 247, 253, //
    137, 185, 99, 164, 102, 147, 45, 66, 231, 52, 141, 211, 194, 206, 246, 238, //
    56, 110, 78, 248, 63, 240, 189, 93, 92, 51, 53, 183, 19, 171, 72, 50, //
    33, 104, 101, 69, 8, 252, 83, 120, 76, 135, 85, 54, 202, 125, 188, 213, //
    96, 235, 136, 208, 162, 129, 190, 132, 156, 38, 47, 1, 7, 254, 24, 4, //
    216, 131, 89, 21, 28, 133, 37, 153, 149, 80, 170, 68, 6, 169, 234, 151, //
];

/// RFC 3074 §5: the bucket of a client identifier (option 61's data, or
/// the hardware address for a client without one). The hash starts from
/// the length and folds the octets in from the last to the first.
#[inline]
pub fn bucket_of(id: &[u8]) -> u8 {
    id.iter()
        .rev()
        .fold(id.len() as u8, |h, &b| MIX[usize::from(h ^ b)])
}

/// The bucket of a lease key: the identity as the key keeps it (whole up
/// to 32 octets, which every real client identifier and hardware address
/// is; a longer one hashes its kept form, the same on every server and
/// after every restart, since the journal stores keys, not raw
/// identifiers).
#[inline]
pub fn bucket_of_key(key: &ClientKey) -> u8 {
    bucket_of(&key.bytes[..usize::from(key.len).min(key.bytes.len())])
}

/// The shares of the clients and pools this server decides for.
#[derive(Debug)]
pub struct Ownership {
    shares: u8,
    owned: AtomicU32,
    /// Shares this server owned until it lost the cluster (durable mode):
    /// their clients' renewals of leases it holds are answered, without
    /// extending them (see `engine/cut_off.rs`); nothing else is.
    renewing: AtomicU32,
}

impl Ownership {
    /// A server on its own: one share, owned.
    pub fn all() -> Ownership {
        Ownership {
            shares: 1,
            owned: AtomicU32::new(1),
            renewing: AtomicU32::new(0),
        }
    }

    /// `shares` shares (1..=[`MAX_SHARES`]), none of them owned yet: the
    /// cluster thread grants them once it holds their claims.
    pub fn new(shares: u8) -> Ownership {
        Ownership {
            shares: shares.clamp(1, MAX_SHARES),
            owned: AtomicU32::new(0),
            renewing: AtomicU32::new(0),
        }
    }

    pub fn shares(&self) -> u8 {
        self.shares
    }

    /// The owned shares as a mask (bit k: share k).
    #[inline]
    pub fn owned(&self) -> u32 {
        self.owned.load(Relaxed)
    }

    pub fn set_owned(&self, mask: u32) {
        self.owned.store(mask & self.all_mask(), Relaxed);
    }

    /// The shares whose known leases are renewed without being extended
    /// (cut off from the cluster; see [`Ownership::set_renewing`]).
    #[inline]
    pub fn renewing(&self) -> u32 {
        self.renewing.load(Relaxed)
    }

    /// Cut off from the cluster in durable mode: the shares in `mask`
    /// are no longer owned, but a client of theirs that renews a lease
    /// this server holds gets an ACK for the same address until the end
    /// the lease already had. No address changes hands and no lease grows,
    /// so whoever takes the shares over meanwhile (and knows the leases
    /// from the stream) can never be contradicted by it. 0 ends it.
    pub fn set_renewing(&self, mask: u32) {
        self.renewing.store(mask & self.all_mask(), Relaxed);
    }

    pub fn grant(&self, share: u8) {
        if share < self.shares {
            self.owned.fetch_or(1 << share, Relaxed);
        }
    }

    pub fn revoke(&self, share: u8) {
        self.owned.fetch_and(!(1u32 << share), Relaxed);
    }

    /// Every share's bit.
    pub fn all_mask(&self) -> u32 {
        (1u32 << self.shares) - 1
    }

    /// The share a bucket belongs to.
    #[inline]
    pub fn share_of_bucket(&self, bucket: u8) -> u8 {
        bucket % self.shares
    }

    /// A server of one share (every server outside a cluster) needs no
    /// hash to know that every key is of share 0: it skips the one the
    /// decision would otherwise take per request.
    #[inline]
    pub fn share_of_key(&self, key: &ClientKey) -> u8 {
        if self.shares == 1 {
            return 0;
        }
        self.share_of_bucket(bucket_of_key(key))
    }

    /// The share whose owner decides for a record's client; `None` for a
    /// record without a holder (a declined address): whoever heard the
    /// DECLINE may quarantine it, so such records are always replicated
    /// and never fenced.
    pub fn share_of_record(&self, rec: &LeaseRecord) -> Option<u8> {
        (rec.client.len > 0).then(|| self.share_of_key(&rec.client))
    }

    #[inline]
    pub fn owns_share(&self, share: u8) -> bool {
        self.owned() & (1 << share) != 0
    }

    #[inline]
    pub fn owns_bucket(&self, bucket: u8) -> bool {
        self.owns_share(self.share_of_bucket(bucket))
    }

    #[inline]
    pub fn owns_key(&self, key: &ClientKey) -> bool {
        self.owns_share(self.share_of_key(key))
    }

    /// How many of the 256 buckets are owned now.
    pub fn owned_buckets(&self) -> u32 {
        let mask = self.owned();
        (0..BUCKETS as u32)
            .filter(|b| mask & (1 << (b % u32::from(self.shares))) != 0)
            .count() as u32
    }
}

impl Default for Ownership {
    fn default() -> Self {
        Ownership::all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC's own algorithm, written out as §5 gives it, against the
    /// fold above.
    fn rfc_hash(key: &[u8]) -> u8 {
        let mut hash = key.len() as u8;
        let mut i = key.len();
        while i > 0 {
            i -= 1;
            hash = MIX[usize::from(hash ^ key[i])];
        }
        hash
    }

    #[test]
    fn the_mixing_table_is_a_permutation() {
        let mut seen = [false; 256];
        for v in MIX {
            assert!(!seen[usize::from(v)], "{v} twice");
            seen[usize::from(v)] = true;
        }
    }

    #[test]
    fn bucket_is_the_rfc_hash() {
        for key in [
            &b""[..],
            &[0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
            &[0x01, 0x02, 0x03, 0x04, 0x05, 0x06],
            b"\x01client-identifier-of-some-length",
        ] {
            assert_eq!(bucket_of(key), rfc_hash(key));
        }
        // Worked by hand from the table: an empty key is T-less, len 0;
        // one octet 0x00 of length 1: MIX[1 ^ 0] = MIX[1] = 175.
        assert_eq!(bucket_of(&[]), 0);
        assert_eq!(bucket_of(&[0]), 175);
        assert_eq!(bucket_of(&[1]), MIX[0]);
    }

    #[test]
    fn buckets_spread_hardware_addresses_evenly() {
        // 65,536 sequential MACs (what a generator or a CPE batch has):
        // every bucket within a few percent of its mean of 256.
        let mut n = [0u32; BUCKETS];
        for i in 0..65_536u32 {
            let b = i.to_be_bytes();
            n[usize::from(bucket_of(&[0x02, 0x00, b[0], b[1], b[2], b[3]]))] += 1;
        }
        let (lo, hi) = (n.iter().min().unwrap(), n.iter().max().unwrap());
        assert!(*lo > 150 && *hi < 400, "buckets from {lo} to {hi}");
    }

    #[test]
    fn shares_split_buckets_and_follow_the_mask() {
        let o = Ownership::new(2);
        assert_eq!(o.owned_buckets(), 0);
        o.grant(1);
        assert_eq!(o.owned_buckets(), 128);
        assert!(o.owns_bucket(3) && !o.owns_bucket(4));
        o.grant(0);
        assert_eq!(o.owned_buckets(), 256);
        o.revoke(1);
        assert!(o.owns_bucket(4) && !o.owns_bucket(3));
        o.set_owned(u32::MAX);
        assert_eq!(o.owned(), 0b11, "bits past the shares are not kept");
        let one = Ownership::all();
        assert_eq!((one.shares(), one.owned_buckets()), (1, 256));
        let three = Ownership::new(3);
        three.grant(2);
        assert_eq!(three.owned_buckets(), 85);
    }

    #[test]
    fn a_key_and_its_record_fall_in_the_same_share() {
        let o = Ownership::new(3);
        let key = ClientKey::new(0, 0, &[0x02, 0, 0, 0, 0x12, 0x34]);
        let mut rec = LeaseRecord {
            subnet: 0,
            addr: std::net::Ipv4Addr::new(10, 0, 0, 5),
            client: key,
            hwaddr: [0; 6],
            state: super::super::journal::RecordState::Bound,
            expires_unix: 0,
            cltt_unix: 0,
            hostname: Default::default(),
            agent_info: Default::default(),
            fqdn_flags: 0,
        };
        assert_eq!(o.share_of_record(&rec), Some(o.share_of_key(&key)));
        rec.client.len = 0;
        assert_eq!(o.share_of_record(&rec), None);
    }
}
