//! What `xdhcpd leases` prints: the journal's live leases, picked by
//! address, hardware address, hostname or relay circuit-id, as a table an
//! operator reads or as JSON lines a script reads. The journal holds what
//! the in-memory table leaves out (hostname, option 82, last transaction
//! time), so this is where "who has 100.64.3.17, behind which port" is
//! answered, also while the daemon runs.
use crate::ddns::state::Held;
use crate::ddns::store::Key;
use crate::lease::journal::{INFINITE, LeaseRecord, RecordState};
use crate::wire::options::agent_sub_option;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::time::{Duration, UNIX_EPOCH};

/// Relay agent sub-options (RFC 3046).
pub const CIRCUIT_ID: u8 = 1;
pub const REMOTE_ID: u8 = 2;

/// Which leases to show; every given field must match.
#[derive(Debug, Default)]
pub struct Filter {
    pub addr: Option<Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    /// Hostname, exactly, ignoring ASCII case.
    pub hostname: Option<String>,
    /// Relay circuit-id (sub-option 1 of option 82), as printed: text when
    /// printable, else hex.
    pub circuit_id: Option<String>,
}

impl Filter {
    pub fn matches(&self, r: &LeaseRecord) -> bool {
        self.addr.is_none_or(|a| a == r.addr)
            && self.mac.is_none_or(|m| m == r.hwaddr)
            && self.hostname.as_deref().is_none_or(|h| {
                std::str::from_utf8(r.hostname.as_slice()).is_ok_and(|n| n.eq_ignore_ascii_case(h))
            })
            && self
                .circuit_id
                .as_deref()
                .is_none_or(|c| agent(r, CIRCUIT_ID).is_some_and(|v| v == c))
    }
}

/// `aa:bb:cc:dd:ee:ff`, for `--mac`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in &mut out {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac(m: &[u8; 6]) -> String {
    let mut s = String::with_capacity(17);
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Text when every byte is printable ASCII, else hex: circuit-ids are
/// often "eth0/1/2:100" but just as often binary.
pub fn printable(b: &[u8]) -> String {
    if !b.is_empty() && b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        String::from_utf8_lossy(b).into_owned()
    } else {
        b.iter().fold(String::new(), |mut s, c| {
            let _ = write!(s, "{c:02x}");
            s
        })
    }
}

/// Relay sub-option `sub` of the record's option 82, as printed.
pub fn agent(r: &LeaseRecord, sub: u8) -> Option<String> {
    agent_sub_option(r.agent_info.as_slice(), sub).map(printable)
}

pub fn state(s: RecordState) -> &'static str {
    match s {
        RecordState::Bound => "bound",
        RecordState::Released => "released",
        RecordState::Declined => "declined",
        RecordState::Expired => "expired",
    }
}

fn time(unix: u64) -> String {
    if unix == INFINITE {
        return "never".into();
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// The client identifier as the table prints it (hex), or "-".
fn client_id(r: &LeaseRecord) -> String {
    // Kind 1 is option 61; kind 0 keys are the hardware address itself.
    if r.client.kind != 1 {
        return "-".into();
    }
    let n = usize::from(r.client.len).min(r.client.bytes.len());
    printable_hex(&r.client.bytes[..n])
}

fn printable_hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, c| {
        let _ = write!(s, "{c:02x}");
        s
    })
}

/// What DNS holds of ours (`ddns.state`), by address.
pub type Dns = HashMap<Key, Held>;

/// The lease's DNS name, when DDNS wrote or writes one, and whether DNS
/// has it: "yes" (the server confirmed it), "sending" (not confirmed yet),
/// "conflict" (the name is another client's: not written).
fn dns(r: &LeaseRecord, d: &Dns) -> Option<(String, &'static str)> {
    let h = d.get(&(r.subnet, r.addr))?;
    let status = match (h.confirmed, h.conflict) {
        (_, true) => "conflict",
        (true, false) => "yes",
        (false, false) => "sending",
    };
    Some((h.binding.fqdn.clone(), status))
}

/// One lease as JSON: what `xdhcpd leases --json` prints per line and
/// what the control API answers (`xdhcpctl lease`). `null` where a field
/// is unknown; `expires_unix` is `null` for a lease that never ends.
pub fn lease_json(r: &LeaseRecord, d: &Dns) -> serde_json::Value {
    let dns = dns(r, d);
    serde_json::json!({
        "address": r.addr.to_string(),
        "state": state(r.state),
        "subnet": r.subnet,
        "hwaddr": mac(&r.hwaddr),
        "client_id": (r.client.kind == 1).then(|| client_id(r)),
        "hostname": (!r.hostname.is_empty())
            .then(|| String::from_utf8_lossy(r.hostname.as_slice()).into_owned()),
        "circuit_id": agent(r, CIRCUIT_ID),
        "remote_id": agent(r, REMOTE_ID),
        "cltt_unix": r.cltt_unix,
        "expires_unix": (r.expires_unix != INFINITE).then_some(r.expires_unix),
        "dns_name": dns.as_ref().map(|d| d.0.clone()),
        "in_dns": dns.map(|d| d.1),
    })
}

/// Writes the leases as an aligned table, in the order given.
pub fn write_table(w: &mut impl Write, leases: &[LeaseRecord], d: &Dns) -> io::Result<()> {
    let values: Vec<_> = leases.iter().map(|r| lease_json(r, d)).collect();
    write_value_table(w, &values)
}

/// Writes leases in the shape of [`lease_json`] as an aligned table: the
/// same table whether the leases come from the journal (`xdhcpd leases`)
/// or from the control API (`xdhcpctl leases`).
pub fn write_value_table(w: &mut impl Write, leases: &[serde_json::Value]) -> io::Result<()> {
    let text = |v: &serde_json::Value, k: &str, none: &str| match &v[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => none.to_string(),
        other => other.to_string(),
    };
    let rows: Vec<[String; 11]> = leases
        .iter()
        .map(|v| {
            [
                text(v, "address", "-"),
                text(v, "state", "-"),
                text(v, "hwaddr", "-"),
                text(v, "client_id", "-"),
                text(v, "hostname", ""),
                text(v, "circuit_id", ""),
                text(v, "remote_id", ""),
                v["cltt_unix"].as_u64().map_or_else(|| "-".into(), time),
                v["expires_unix"]
                    .as_u64()
                    .map_or_else(|| "never".into(), time),
                text(v, "dns_name", ""),
                text(v, "in_dns", ""),
            ]
        })
        .collect();
    write_aligned(
        w,
        &[
            "address",
            "state",
            "hwaddr",
            "client-id",
            "hostname",
            "circuit-id",
            "remote-id",
            "last seen (UTC)",
            "ends (UTC)",
            "dns name",
            "in dns",
        ],
        &rows,
    )
}

/// Writes `rows` under `head`, each column as wide as its widest cell,
/// two spaces apart, without trailing blanks.
pub fn write_aligned<const N: usize>(
    w: &mut dyn Write,
    head: &[&str; N],
    rows: &[[String; N]],
) -> io::Result<()> {
    let mut width = head.map(str::len);
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |w: &mut dyn Write, cells: &[&str]| -> io::Result<()> {
        let mut out = String::new();
        for (i, (c, n)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                let _ = write!(out, "{c:<n$}  ");
            }
        }
        writeln!(w, "{}", out.trim_end())
    };
    line(w, head)?;
    for row in rows {
        line(w, &row.each_ref().map(String::as_str))?;
    }
    Ok(())
}

/// Writes one JSON object per lease and line.
pub fn write_json(w: &mut impl Write, leases: &[LeaseRecord], d: &Dns) -> io::Result<()> {
    for r in leases {
        writeln!(w, "{}", lease_json(r, d))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::journal::FixedBytes;
    use crate::lease::table::ClientKey;

    fn lease(i: u8, host: &str, agent: &[u8]) -> LeaseRecord {
        let hw = [0x02, 0, 0, 0, 0, i];
        LeaseRecord {
            subnet: 0,
            addr: Ipv4Addr::new(100, 64, 0, i),
            client: ClientKey::new(0, 0, &hw),
            hwaddr: hw,
            state: RecordState::Bound,
            expires_unix: 1_800_000_000,
            cltt_unix: 1_799_992_800,
            hostname: FixedBytes::new(host.as_bytes()).0,
            agent_info: FixedBytes::new(agent).0,
            fqdn_flags: 0,
        }
    }

    #[test]
    fn filters_pick_by_address_mac_hostname_and_circuit_id() {
        let a = lease(
            1,
            "Router-A",
            &[1, 6, b'e', b't', b'h', b'0', b'/', b'1', 2, 2, 0xde, 0xad],
        );
        let b = lease(2, "phone", &[1, 2, 0x00, 0x07]);
        let pick = |f: Filter| -> Vec<Ipv4Addr> {
            [a, b]
                .iter()
                .filter(|r| f.matches(r))
                .map(|r| r.addr)
                .collect()
        };
        assert_eq!(pick(Filter::default()).len(), 2);
        let only = |x: u8| vec![Ipv4Addr::new(100, 64, 0, x)];
        assert_eq!(
            pick(Filter {
                addr: Some(Ipv4Addr::new(100, 64, 0, 2)),
                ..Filter::default()
            }),
            only(2)
        );
        assert_eq!(
            pick(Filter {
                mac: parse_mac("02:00:00:00:00:01"),
                ..Filter::default()
            }),
            only(1)
        );
        assert_eq!(
            pick(Filter {
                hostname: Some("router-a".into()),
                ..Filter::default()
            }),
            only(1)
        );
        // A printable circuit-id by its text, a binary one by its hex.
        assert_eq!(
            pick(Filter {
                circuit_id: Some("eth0/1".into()),
                ..Filter::default()
            }),
            only(1)
        );
        assert_eq!(
            pick(Filter {
                circuit_id: Some("0007".into()),
                ..Filter::default()
            }),
            only(2)
        );
        assert!(
            pick(Filter {
                addr: Some(Ipv4Addr::new(100, 64, 0, 1)),
                hostname: Some("phone".into()),
                ..Filter::default()
            })
            .is_empty(),
            "every given field must match"
        );
    }

    #[test]
    fn mac_parsing_takes_colons_or_dashes_and_nothing_else() {
        assert_eq!(parse_mac("02-00-00-0a-0B-ff"), Some([2, 0, 0, 10, 11, 255]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:00"), None);
        assert_eq!(parse_mac("zz:00:00:00:00:00"), None);
    }

    #[test]
    fn table_and_json_carry_every_field() {
        let mut r = lease(
            1,
            "cpe-1",
            &[1, 6, b'e', b't', b'h', b'0', b'/', b'1', 2, 2, 0xde, 0xad],
        );
        let mut dns = Dns::new();
        dns.insert(
            (0, r.addr),
            Held {
                binding: crate::ddns::state::Binding {
                    fqdn: "cpe-1.lab.example.".into(),
                    forward: true,
                    reverse: true,
                    dhcid: [0; 35],
                    ttl: 2400,
                },
                confirmed: true,
                conflict: false,
            },
        );
        let mut out = Vec::new();
        write_table(&mut out, &[r], &dns).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        for want in [
            "100.64.0.1",
            "bound",
            "02:00:00:00:00:01",
            "cpe-1",
            "eth0/1",
            "dead",
            "2027-01-15T06:00:00Z",
            "2027-01-15T08:00:00Z",
            "cpe-1.lab.example.",
            "yes",
        ] {
            assert!(
                lines[1].contains(want),
                "{want} missing from {:?}",
                lines[1]
            );
        }
        r.expires_unix = INFINITE;
        let mut out = Vec::new();
        write_json(&mut out, &[r], &dns).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["dns_name"], "cpe-1.lab.example.");
        assert_eq!(v["in_dns"], "yes");
        assert_eq!(v["address"], "100.64.0.1");
        assert_eq!(v["hostname"], "cpe-1");
        assert_eq!(v["circuit_id"], "eth0/1");
        assert_eq!(v["remote_id"], "dead");
        assert_eq!(v["expires_unix"], serde_json::Value::Null, "infinite");
        assert_eq!(v["client_id"], serde_json::Value::Null, "keyed by chaddr");
    }
}
