//! What goes on the lease stream, byte for byte, and the subjects it goes
//! on.
//!
//! A lease record travels as `version`, the origin's name, the share and
//! the claim revision it was made under (the fencing token), then the
//! record in a fixed layout of this module's own (not the journal's file
//! framing: a stream message has its own length and checksum, and the
//! journal's format may change with its files while servers of two
//! versions share a stream). Markers are small JSON objects, readable
//! with `nats stream view` when something looks wrong.
use crate::lease::journal::{LeaseRecord, Reader, RecordState};
use crate::lease::table::ClientKey;
use std::net::Ipv4Addr;

/// Layout version of [`encode_record`]; a reader refuses any other.
const VERSION: u8 = 1;

/// The share byte of a record without a holder (a declined address):
/// whoever heard the DECLINE publishes it, and no marker ever fences it.
pub const NO_SHARE: u8 = u8::MAX;

/// A lease record as read from the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// `[cluster] name` of the server that made it.
    pub origin: String,
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

/// The subjects of one stream: `<prefix>.lease.<subnet>.<addr>.<origin>` and
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
    /// One subject per address and origin: `max_msgs_per_subject = 1`
    /// keeps each server's latest record of each address, and the stream
    /// compacts itself. The origin is in the subject so that a record
    /// fenced on arrival (sent by a server cut off, landing after the
    /// taker's marker) never takes the place of the taker's valid record
    /// of the same address: a full read in stream order still ends with
    /// the newest valid word on every address.
    pub fn lease(&self, rec: &LeaseRecord, origin: &str) -> String {
        format!(
            "{}.lease.{}.{}.{origin}",
            self.prefix,
            rec.subnet,
            u32::from(rec.addr)
        )
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

/// Appends the stream payload of `rec` to `out`.
pub fn encode_record(origin: &str, share: u8, revision: u64, rec: &LeaseRecord, out: &mut Vec<u8>) {
    let name = &origin.as_bytes()[..origin.len().min(255)];
    out.push(VERSION);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(share);
    out.extend_from_slice(&revision.to_le_bytes());
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
    for f in [rec.hostname.as_slice(), rec.agent_info.as_slice()] {
        out.push(f.len() as u8);
        out.extend_from_slice(f);
    }
    out.push(rec.fqdn_flags);
}

/// Reads a payload written by [`encode_record`]; `None` for anything else
/// (another version, cut short, trailing bytes, a bad state), never a
/// panic.
pub fn decode_record(b: &[u8]) -> Option<Published> {
    let mut r = Reader(b);
    if r.u8()? != VERSION {
        return None;
    }
    let n = r.u8()? as usize;
    let origin = std::str::from_utf8(r.take(n)?).ok()?.to_string();
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
    if !r.0.is_empty() {
        return None;
    }
    Some(Published {
        origin,
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
    fn records_round_trip_and_every_cut_is_refused() {
        for i in 0..20 {
            let rec = record(i);
            let mut buf = Vec::new();
            encode_record(
                "server-a",
                (i % 3) as u8,
                1000 + u64::from(i),
                &rec,
                &mut buf,
            );
            let p = decode_record(&buf).expect("decodes");
            assert_eq!(p.rec, rec);
            assert_eq!(p.origin, "server-a");
            assert_eq!(p.share, (i % 3) as u8);
            assert_eq!(p.revision, 1000 + u64::from(i));
            for cut in 0..buf.len() {
                assert_eq!(decode_record(&buf[..cut]), None, "cut at {cut}");
            }
            let mut long = buf.clone();
            long.push(0);
            assert_eq!(decode_record(&long), None, "trailing byte");
        }
        let mut buf = Vec::new();
        encode_record("a", 0, 1, &record(1), &mut buf);
        buf[0] = 9;
        assert_eq!(decode_record(&buf), None, "other version");
        assert_eq!(decode_record(b"{\"share\":1}"), None);
    }

    #[test]
    fn subjects_and_markers() {
        let s = Subjects::new("XDHCPD");
        let rec = record(5);
        assert_eq!(
            s.lease(&rec, "a"),
            format!("xdhcpd.lease.2.{}.a", 0x0a00_0005u32)
        );
        assert_eq!(s.kind(&s.lease(&rec, "a")), Kind::Lease);
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
