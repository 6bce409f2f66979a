//! One lease as the journal stores it, and its byte encoding.
//!
//! The record is `Copy` and fixed-size in memory (the workers build it on
//! the packet path without allocating); on disk only the used bytes of the
//! variable fields are written, so a typical record is about 70 bytes.
use crate::lease::table::ClientKey;
use std::net::Ipv4Addr;

/// `expires_unix` of a lease that never ends.
pub const INFINITE: u64 = u64::MAX;

/// Up to `N` bytes kept inline. Longer input is cut at `N` (the caller
/// learns it from [`FixedBytes::new`]'s second value).
#[derive(Clone, Copy)]
pub struct FixedBytes<const N: usize> {
    len: u8,
    buf: [u8; N],
}

impl<const N: usize> FixedBytes<N> {
    /// The bytes, cut to `N`; the flag says whether anything was cut.
    pub fn new(bytes: &[u8]) -> (Self, bool) {
        let n = bytes.len().min(N).min(255);
        let mut buf = [0u8; N];
        buf[..n].copy_from_slice(&bytes[..n]);
        (FixedBytes { len: n as u8, buf }, n < bytes.len())
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for FixedBytes<N> {
    fn default() -> Self {
        FixedBytes {
            len: 0,
            buf: [0; N],
        }
    }
}

// Equality over the used bytes only, so two values that were cut or built
// differently but hold the same text compare equal.
impl<const N: usize> PartialEq for FixedBytes<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}
impl<const N: usize> Eq for FixedBytes<N> {}

impl<const N: usize> std::fmt::Debug for FixedBytes<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
    }
}

/// What became of the address. `Offered` holds are never journaled: an
/// offer that is lost in a crash costs the client one more DISCOVER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordState {
    Bound = 1,
    Released = 2,
    Declined = 3,
    Expired = 4,
}

impl RecordState {
    pub(crate) fn from_u8(v: u8) -> Option<RecordState> {
        Some(match v {
            1 => RecordState::Bound,
            2 => RecordState::Released,
            3 => RecordState::Declined,
            4 => RecordState::Expired,
            _ => return None,
        })
    }
}

/// The latest word on one address of one subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    pub subnet: u16,
    pub addr: Ipv4Addr,
    /// The holder. Its `subnet` is not stored: it is `self.subnet` when
    /// decoded. `len == 0` means no known holder (a declined address).
    pub client: ClientKey,
    pub hwaddr: [u8; 6],
    pub state: RecordState,
    /// Wall-clock seconds; [`INFINITE`] for leases that never end. For
    /// `Declined` it ends the quarantine.
    pub expires_unix: u64,
    /// Wall-clock seconds of the client's last transaction.
    pub cltt_unix: u64,
    /// The name the client asked for, cut at 64 bytes: option 81's first
    /// label when it sent one, else option 12. Raw, as sent; DDNS makes a
    /// DNS label of it.
    pub hostname: FixedBytes<64>,
    /// Option 82's data (the sub-options, without code and length), cut at
    /// 64 bytes: a copy for the operator and for reservations by circuit
    /// id. Replies echo the option from the request itself, never this.
    pub agent_info: FixedBytes<64>,
    /// Option 81's flags (RFC 4702: S, O, E, N in the low bits) with
    /// [`FQDN_SENT`] set when the client sent the option; 0 without it.
    /// DDNS decides from them whether the server writes the A record.
    pub fqdn_flags: u8,
}

/// Set in [`LeaseRecord::fqdn_flags`] when the client sent option 81.
pub const FQDN_SENT: u8 = 0x80;

impl LeaseRecord {
    /// Whether the record still matters at `now`: an unexpired binding or
    /// quarantine, or a release / expiry younger than `keep_released`
    /// seconds (kept so a returning client gets its old address back).
    pub fn is_live(&self, now_unix: u64, keep_released: u64) -> bool {
        match self.state {
            RecordState::Bound | RecordState::Declined => self.expires_unix > now_unix,
            RecordState::Released | RecordState::Expired => {
                keep_released > 0 && self.cltt_unix.saturating_add(keep_released) > now_unix
            }
        }
    }

    /// The key the journal keeps one record per.
    pub(crate) fn slot(&self) -> u64 {
        (u64::from(self.subnet) << 32) | u64::from(u32::from(self.addr))
    }
}

/// Record kinds inside a file. A snapshot ends with `END`, so a snapshot
/// cut short (or a bug that stops writing early) is seen as such.
pub(crate) const KIND_LEASE: u8 = 1;
pub(crate) const KIND_END: u8 = 2;

/// Largest body any kind may have; a length field above it is corruption.
pub(crate) const MAX_BODY: usize = 256;
/// Length + CRC32C in front of every body.
pub(crate) const FRAME_HEAD: usize = 8;

/// Appends one framed lease record to `out`.
pub(crate) fn encode_lease(rec: &LeaseRecord, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEAD]);
    out.push(KIND_LEASE);
    out.extend_from_slice(&rec.subnet.to_le_bytes());
    out.extend_from_slice(&rec.addr.octets());
    out.push(rec.client.kind);
    out.push(rec.client.len);
    let id_len = (rec.client.len as usize).min(32);
    out.extend_from_slice(&rec.client.bytes[..id_len]);
    out.extend_from_slice(&rec.hwaddr);
    out.push(rec.state as u8);
    out.extend_from_slice(&rec.expires_unix.to_le_bytes());
    out.extend_from_slice(&rec.cltt_unix.to_le_bytes());
    out.push(rec.hostname.len);
    out.extend_from_slice(rec.hostname.as_slice());
    out.push(rec.agent_info.len);
    out.extend_from_slice(rec.agent_info.as_slice());
    // Added with DDNS: a record of an older journal ends before it (and
    // decodes with 0: no option 81).
    out.push(rec.fqdn_flags);
    seal(out, start);
}

/// Appends the end-of-snapshot record carrying the number of leases.
pub(crate) fn encode_end(count: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEAD]);
    out.push(KIND_END);
    out.extend_from_slice(&count.to_le_bytes());
    seal(out, start);
}

/// Fills in the length and the CRC of the frame that starts at `start`.
/// The CRC covers the length too, so a flipped length bit is caught rather
/// than read as a different record boundary.
fn seal(out: &mut [u8], start: usize) {
    let body_len = (out.len() - start - FRAME_HEAD) as u32;
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    let crc = frame_crc(body_len.to_le_bytes(), &out[start + FRAME_HEAD..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

pub(crate) use super::crc::frame_crc;

/// A decoded body.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Body {
    Lease(LeaseRecord),
    End(u64),
}

/// Decodes a body whose CRC already matched. `None` when it does not parse
/// (a record of a newer version, or a bug): the reader treats that like
/// corruption.
pub(crate) fn decode_body(b: &[u8]) -> Option<Body> {
    let mut r = Reader(b);
    match r.u8()? {
        KIND_LEASE => {
            let subnet = u16::from_le_bytes(r.array()?);
            let addr = Ipv4Addr::from(r.array::<4>()?);
            let kind = r.u8()?;
            let len = r.u8()?;
            let mut bytes = [0u8; 32];
            let id_len = (len as usize).min(32);
            bytes[..id_len].copy_from_slice(r.take(id_len)?);
            let hwaddr = r.array()?;
            let state = RecordState::from_u8(r.u8()?)?;
            let expires_unix = u64::from_le_bytes(r.array()?);
            let cltt_unix = u64::from_le_bytes(r.array()?);
            let hostname = r.fixed()?;
            let agent_info = r.fixed()?;
            let fqdn_flags = match r.0 {
                [] => 0,
                [f] => *f,
                _ => return None,
            };
            Some(Body::Lease(LeaseRecord {
                subnet,
                addr,
                client: ClientKey {
                    subnet,
                    kind,
                    len,
                    bytes,
                },
                hwaddr,
                state,
                expires_unix,
                cltt_unix,
                hostname,
                agent_info,
                fqdn_flags,
            }))
        }
        KIND_END => {
            let n = u64::from_le_bytes(r.array()?);
            r.0.is_empty().then_some(Body::End(n))
        }
        _ => None,
    }
}

/// A cursor over a record's bytes: every read is checked and gives `None`
/// past the end, never a panic. The cluster's stream payload reads with it
/// too (`cluster::payload`).
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    pub(crate) fn array<const K: usize>(&mut self) -> Option<[u8; K]> {
        self.take(K)?.try_into().ok()
    }
    /// A length byte, then that many bytes (at most `N`).
    pub(crate) fn fixed<const N: usize>(&mut self) -> Option<FixedBytes<N>> {
        let n = self.u8()? as usize;
        if n > N {
            return None;
        }
        Some(FixedBytes::new(self.take(n)?).0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record with every field set, varied by `i`.
    pub(crate) fn sample(i: u32) -> LeaseRecord {
        let mac = [0x02, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 7];
        let subnet = (i % 3) as u16;
        let client = if i.is_multiple_of(2) {
            ClientKey::new(subnet, 0, &mac)
        } else {
            let mut id = vec![1u8];
            id.extend_from_slice(&mac);
            id.extend_from_slice(&i.to_be_bytes());
            ClientKey::new(subnet, 1, &id)
        };
        LeaseRecord {
            subnet,
            addr: Ipv4Addr::from(0x0a00_0000 + i),
            client,
            hwaddr: mac,
            state: RecordState::Bound,
            expires_unix: 4_000_000_000 + u64::from(i),
            cltt_unix: 1_700_000_000 + u64::from(i),
            hostname: FixedBytes::new(format!("host-{i}").as_bytes()).0,
            agent_info: FixedBytes::new(&[1, 4, 0xaa, 0xbb, 0xcc, (i & 0xff) as u8]).0,
            fqdn_flags: if i.is_multiple_of(3) {
                FQDN_SENT | 0x05
            } else {
                0
            },
        }
    }

    fn frame_body(buf: &[u8]) -> &[u8] {
        let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(buf.len(), FRAME_HEAD + len);
        let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
        assert_eq!(crc, frame_crc(buf[..4].try_into().unwrap(), &buf[8..]));
        &buf[8..]
    }

    #[test]
    fn records_round_trip() {
        for i in 0..50 {
            let mut rec = sample(i);
            rec.state = [
                RecordState::Bound,
                RecordState::Released,
                RecordState::Declined,
                RecordState::Expired,
            ][i as usize % 4];
            if i == 7 {
                rec.expires_unix = INFINITE;
                rec.hostname = FixedBytes::default();
                rec.agent_info = FixedBytes::default();
            }
            let mut buf = Vec::new();
            encode_lease(&rec, &mut buf);
            assert!(buf.len() - FRAME_HEAD <= MAX_BODY);
            assert_eq!(decode_body(frame_body(&buf)), Some(Body::Lease(rec)));
        }
    }

    #[test]
    fn long_client_ids_and_names_keep_what_fits() {
        let long_id = [9u8; 40];
        let mut rec = sample(1);
        rec.client = ClientKey::new(rec.subnet, 1, &long_id);
        let (host, cut) = FixedBytes::<64>::new(&[b'h'; 100]);
        assert!(cut);
        assert_eq!(host.as_slice().len(), 64);
        rec.hostname = host;
        rec.agent_info = FixedBytes::new(&[0x55; 64]).0;
        let mut buf = Vec::new();
        encode_lease(&rec, &mut buf);
        assert!(buf.len() - FRAME_HEAD <= MAX_BODY);
        assert_eq!(decode_body(frame_body(&buf)), Some(Body::Lease(rec)));
    }

    #[test]
    fn end_record_round_trips_and_junk_does_not_decode() {
        let mut buf = Vec::new();
        encode_end(12345, &mut buf);
        assert_eq!(decode_body(frame_body(&buf)), Some(Body::End(12345)));
        assert_eq!(decode_body(&[]), None);
        assert_eq!(decode_body(&[99, 1, 2]), None);
        let mut lease = Vec::new();
        encode_lease(&sample(3), &mut lease);
        let body = &lease[FRAME_HEAD..];
        // Every strict prefix of a body is malformed, never a panic, but
        // for the one without the last byte: a record of a journal older
        // than option 81's flags, which decodes with none.
        for cut in 0..body.len() - 1 {
            assert_eq!(decode_body(&body[..cut]), None, "cut at {cut}");
        }
        let mut old = sample(3);
        old.fqdn_flags = 0;
        assert_eq!(decode_body(&body[..body.len() - 1]), Some(Body::Lease(old)));
        // A bad state byte is refused.
        let mut bad = body.to_vec();
        let state_at = 1 + 2 + 4 + 2 + (sample(3).client.len as usize).min(32) + 6;
        bad[state_at] = 0;
        assert_eq!(decode_body(&bad), None);
    }

    #[test]
    fn liveness_follows_state_and_time() {
        let mut r = sample(0);
        r.expires_unix = 100;
        r.cltt_unix = 50;
        assert!(r.is_live(99, 0));
        assert!(!r.is_live(100, 0));
        r.expires_unix = INFINITE;
        assert!(r.is_live(u64::MAX - 1, 0));
        r.state = RecordState::Released;
        assert!(!r.is_live(60, 0));
        assert!(r.is_live(60, 20));
        assert!(!r.is_live(70, 20));
        r.state = RecordState::Declined;
        r.expires_unix = 80;
        assert!(r.is_live(79, 0));
    }
}
