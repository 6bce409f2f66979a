//! What goes on the lease stream, byte for byte, and the subjects it goes
//! on.
//!
//! Lease records travel in batches: one message carries whatever the
//! journal shipped together (up to [`MAX_BATCH`]), because the stream's
//! cost is per message (stored three times, acknowledged, delivered to
//! every reader), not per byte. A batch is `version`, the record count,
//! the origin's name, then per record the share and the claim revision it
//! was made under (the fencing token) and the record in a fixed layout of
//! this module's own (not the journal's file framing: a stream message has
//! its own length and checksum, and the journal's format may change with
//! its files while servers of two versions share a stream). Markers are
//! small JSON objects, readable with `nats stream view` when something
//! looks wrong.
use crate::lease::journal::{LeaseRecord, Reader, RecordState};
use crate::lease::table::ClientKey;
use bytes::BufMut;
use std::net::Ipv4Addr;

/// Layout version of [`encode_batch`]; a reader refuses any other (1 was
/// one record per message on a subject per address).
const VERSION: u8 = 2;

/// Most records in one message: with the longest client id, hostname and
/// agent information a record is 203 bytes, so a full batch is about
/// 100 KiB, well below NATS' default `max_payload` of 1 MiB.
pub const MAX_BATCH: usize = 512;

/// The share byte of a record without a holder (a declined address):
/// whoever heard the DECLINE publishes it, and no marker ever fences it.
pub const NO_SHARE: u8 = u8::MAX;

/// A batch as read from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// `[cluster] name` of the server that made its records.
    pub origin: String,
    pub records: Vec<Published>,
}

/// A lease record of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub share: u8,
    /// The `claim.<share>` revision its origin held when it published.
    pub revision: u64,
    pub rec: LeaseRecord,
}

/// A server announcing that it owns `share` under claim `revision` from
/// here on in the stream.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    pub share: u8,
    pub revision: u64,
    pub owner: String,
}

/// The subjects of one stream: `<prefix>.lease.<origin>` and
/// `<prefix>.claim.<share>`, prefix the stream's name in lower case.
#[derive(Clone, Debug)]
pub struct Subjects {
    pub prefix: String,
}

/// A message's subject, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Lease,
    Claim(u8),
    /// Neither: counted as a decode error.
    Other,
}

impl Subjects {
    pub fn new(stream: &str) -> Subjects {
        Subjects {
            prefix: stream.to_ascii_lowercase(),
        }
    }
    /// What the stream is created over.
    pub fn all(&self) -> String {
        format!("{}.>", self.prefix)
    }
    /// One subject per origin, for whoever reads the stream by hand
    /// (`nats stream view --subject`); readers take the origin from the
    /// payload.
    pub fn lease(&self, origin: &str) -> String {
        format!("{}.lease.{origin}", self.prefix)
    }
    pub fn claim(&self, share: u8) -> String {
        format!("{}.claim.{share}", self.prefix)
    }
    pub fn kind(&self, subject: &str) -> Kind {
        let Some(rest) = subject
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('.'))
        else {
            return Kind::Other;
        };
        if rest.starts_with("lease.") {
            Kind::Lease
        } else if let Some(k) = rest.strip_prefix("claim.") {
            k.parse().map_or(Kind::Other, Kind::Claim)
        } else {
            Kind::Other
        }
    }
}

/// Appends a batch of `origin`'s records (share, claim revision, record)
/// to `out` (a `Vec<u8>`, or the cluster thread's reused `BytesMut`); at
/// most [`MAX_BATCH`] of them are taken.
pub fn encode_batch<'a>(
    origin: &str,
    records: impl IntoIterator<Item = (u8, u64, &'a LeaseRecord)>,
    out: &mut (impl BufMut + AsMut<[u8]>),
) {
    let name = &origin.as_bytes()[..origin.len().min(255)];
    out.put_u8(VERSION);
    let count_at = out.as_mut().len();
    out.put_slice(&[0, 0]);
    out.put_u8(name.len() as u8);
    out.put_slice(name);
    let mut n = 0u16;
    for (share, revision, rec) in records.into_iter().take(MAX_BATCH) {
        encode_record(share, revision, rec, out);
        n += 1;
    }
    out.as_mut()[count_at..count_at + 2].copy_from_slice(&n.to_le_bytes());
}

fn encode_record(share: u8, revision: u64, rec: &LeaseRecord, out: &mut impl BufMut) {
    out.put_u8(share);
    out.put_slice(&revision.to_le_bytes());
    out.put_slice(&rec.subnet.to_le_bytes());
    out.put_slice(&rec.addr.octets());
    out.put_u8(rec.client.kind);
    out.put_u8(rec.client.len);
    let id_len = (rec.client.len as usize).min(32);
    out.put_slice(&rec.client.bytes[..id_len]);
    out.put_slice(&rec.hwaddr);
    out.put_u8(rec.state as u8);
    out.put_slice(&rec.expires_unix.to_le_bytes());
    out.put_slice(&rec.cltt_unix.to_le_bytes());
    for f in [rec.hostname.as_slice(), rec.agent_info.as_slice()] {
        out.put_u8(f.len() as u8);
        out.put_slice(f);
    }
    out.put_u8(rec.fqdn_flags);
}

/// The origin and record count of a batch, read without decoding its
/// records (a server skips its own batches so).
pub fn batch_header(b: &[u8]) -> Option<(&str, u16)> {
    let mut r = Reader(b);
    if r.u8()? != VERSION {
        return None;
    }
    let count = u16::from_le_bytes(r.array()?);
    let n = r.u8()? as usize;
    Some((std::str::from_utf8(r.take(n)?).ok()?, count))
}

/// Reads a batch written by [`encode_batch`]; `None` for anything else
/// (another version, cut short, trailing bytes, a count that does not
/// match, a bad state), never a panic.
pub fn decode_batch(b: &[u8]) -> Option<Batch> {
    let (origin, count) = batch_header(b)?;
    let mut r = Reader(&b[4 + origin.len()..]);
    // The count is the sender's word: it bounds nothing read here.
    let mut records = Vec::with_capacity((count as usize).min(MAX_BATCH));
    for _ in 0..count {
        records.push(decode_record(&mut r)?);
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(Batch {
        origin: origin.to_string(),
        records,
    })
}

fn decode_record(r: &mut Reader<'_>) -> Option<Published> {
    let share = r.u8()?;
    let revision = u64::from_le_bytes(r.array()?);
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
    let fqdn_flags = r.u8()?;
    Some(Published {
        share,
        revision,
        rec: LeaseRecord {
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
        },
    })
}

pub fn encode_marker(m: &Marker) -> Vec<u8> {
    serde_json::to_vec(m).unwrap_or_default()
}

pub fn decode_marker(b: &[u8]) -> Option<Marker> {
    serde_json::from_slice(b).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lease::journal::FixedBytes;

    pub(crate) fn record(i: u32) -> LeaseRecord {
        let mac = [2, 0, 0, (i >> 8) as u8, i as u8, 1];
        LeaseRecord {
            subnet: (i % 3) as u16,
            addr: Ipv4Addr::from(0x0a00_0000 + i),
            client: ClientKey::new((i % 3) as u16, (i % 2) as u8, &mac),
            hwaddr: mac,
            state: RecordState::Bound,
            expires_unix: 4_000_000_000 + u64::from(i),
            cltt_unix: 1_700_000_000,
            hostname: FixedBytes::new(format!("h{i}").as_bytes()).0,
            agent_info: FixedBytes::new(&[1, 2, 3]).0,
            fqdn_flags: (i % 4) as u8,
        }
    }

    #[test]
    fn batches_round_trip_and_every_cut_is_refused() {
        for n in [1u32, 2, 7] {
            let recs: Vec<LeaseRecord> = (0..n).map(record).collect();
            let mut buf = Vec::new();
            encode_batch(
                "server-a",
                recs.iter()
                    .enumerate()
                    .map(|(i, r)| ((i % 3) as u8, 1000 + i as u64, r)),
                &mut buf,
            );
            assert_eq!(batch_header(&buf), Some(("server-a", n as u16)));
            let b = decode_batch(&buf).expect("decodes");
            assert_eq!(b.origin, "server-a");
            assert_eq!(b.records.len(), n as usize);
            for (i, p) in b.records.iter().enumerate() {
                assert_eq!(p.rec, recs[i]);
                assert_eq!(p.share, (i % 3) as u8);
                assert_eq!(p.revision, 1000 + i as u64);
            }
            for cut in 0..buf.len() {
                assert_eq!(decode_batch(&buf[..cut]), None, "cut at {cut}");
            }
            let mut long = buf.clone();
            long.push(0);
            assert_eq!(decode_batch(&long), None, "trailing byte");
            // A count above what follows is refused, not trusted.
            let mut more = buf.clone();
            more[1..3].copy_from_slice(&(n as u16 + 1).to_le_bytes());
            assert_eq!(decode_batch(&more), None, "count too high");
        }
        let mut buf = Vec::new();
        encode_batch("a", [(0, 1, &record(1))], &mut buf);
        buf[0] = 1;
        assert_eq!(decode_batch(&buf), None, "other version");
        assert_eq!(batch_header(&buf), None);
        assert_eq!(decode_batch(b"{\"share\":1}"), None);
        // At most MAX_BATCH records go in one message.
        let r = record(3);
        let mut buf = Vec::new();
        encode_batch("a", (0..MAX_BATCH + 5).map(|_| (0, 1, &r)), &mut buf);
        assert_eq!(batch_header(&buf), Some(("a", MAX_BATCH as u16)));
        assert_eq!(decode_batch(&buf).unwrap().records.len(), MAX_BATCH);
    }

    #[test]
    fn subjects_and_markers() {
        let s = Subjects::new("XDHCPD");
        assert_eq!(s.lease("a"), "xdhcpd.lease.a");
        assert_eq!(s.kind(&s.lease("a")), Kind::Lease);
        assert_eq!(s.kind("xdhcpd.claim.2"), Kind::Claim(2));
        assert_eq!(s.kind("xdhcpd.claim.x"), Kind::Other);
        assert_eq!(s.kind("other.lease.1.2"), Kind::Other);
        assert_eq!(s.all(), "xdhcpd.>");
        let m = Marker {
            share: 1,
            revision: 7,
            owner: "b".into(),
        };
        assert_eq!(decode_marker(&encode_marker(&m)), Some(m));
        assert_eq!(decode_marker(b"\xff"), None);
    }
}
