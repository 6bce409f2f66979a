//! Reading a Kea lease4 CSV: columns found by name, the last row of an
//! address wins, bad rows counted and skipped.
use super::{INFINITE_LFT, hex_bytes, unescape};
use crate::lease::journal::{FixedBytes, INFINITE, LeaseRecord, RecordState};
use crate::lease::table::ClientKey;
use std::collections::HashMap;
use std::io::{self, BufRead};
use std::net::Ipv4Addr;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Data rows read.
    pub rows: usize,
    /// Rows with `valid_lifetime` 0 (Kea's deletion).
    pub deleted: usize,
    /// Rows of a subnet the caller's mapping does not know.
    pub unknown_subnet: usize,
    /// Rows that did not parse.
    pub bad_rows: usize,
    pub hostnames_cut: usize,
    pub agent_info_cut: usize,
    /// The first few bad rows: line number and why.
    pub errors: Vec<(usize, String)>,
}

#[derive(Debug)]
pub struct Imported {
    /// The last row of every address still present, in file order of
    /// those rows. Expired ones are included: liveness is the caller's
    /// call ([`LeaseRecord::is_live`]).
    pub leases: Vec<LeaseRecord>,
    pub stats: ImportStats,
}

const MAX_ERRORS_KEPT: usize = 20;

/// Reads a Kea lease4 CSV. `subnet` maps Kea's `subnet_id` to xdhcpd's
/// subnet index. Bad rows are counted and skipped, never fatal; only an
/// unreadable input or a header without the needed columns is an error.
pub fn import(r: impl BufRead, subnet: impl Fn(u32) -> Option<u16>) -> io::Result<Imported> {
    let mut lines = r.split(b'\n');
    let header = match lines.next() {
        Some(h) => h?,
        None => {
            return Ok(Imported {
                leases: Vec::new(),
                stats: ImportStats::default(),
            });
        }
    };
    let cols = Columns::new(&String::from_utf8_lossy(&header))?;
    let mut stats = ImportStats::default();
    let mut order: Vec<Option<LeaseRecord>> = Vec::new();
    let mut at: HashMap<(u16, Ipv4Addr), usize> = HashMap::new();
    for (i, line) in lines.enumerate() {
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        stats.rows += 1;
        match parse_row(line, &cols, &subnet, &mut stats) {
            Ok(Row::Lease(rec)) => {
                let key = (rec.subnet, rec.addr);
                if let Some(old) = at.insert(key, order.len()) {
                    order[old] = None;
                }
                order.push(Some(rec));
            }
            Ok(Row::Delete(key)) => {
                stats.deleted += 1;
                if let Some(old) = at.remove(&key) {
                    order[old] = None;
                }
            }
            Ok(Row::UnknownSubnet) => stats.unknown_subnet += 1,
            Err(why) => {
                stats.bad_rows += 1;
                if stats.errors.len() < MAX_ERRORS_KEPT {
                    // Line 1 is the header.
                    stats.errors.push((i + 2, why));
                }
            }
        }
    }
    Ok(Imported {
        leases: order.into_iter().flatten().collect(),
        stats,
    })
}

struct Columns {
    count: usize,
    address: usize,
    hwaddr: usize,
    client_id: usize,
    valid: usize,
    expire: usize,
    subnet: usize,
    hostname: usize,
    state: Option<usize>,
    user_context: Option<usize>,
}

impl Columns {
    fn new(header: &str) -> io::Result<Columns> {
        let names: Vec<&str> = header.trim_end_matches('\r').split(',').collect();
        let find = |n: &str| names.iter().position(|&c| c == n);
        let need = |n: &str| {
            find(n).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not a Kea lease4 file: no '{n}' column in the header"),
                )
            })
        };
        Ok(Columns {
            count: names.len(),
            address: need("address")?,
            hwaddr: need("hwaddr")?,
            client_id: need("client_id")?,
            valid: need("valid_lifetime")?,
            expire: need("expire")?,
            subnet: need("subnet_id")?,
            hostname: need("hostname")?,
            state: find("state"),
            user_context: find("user_context"),
        })
    }
}

enum Row {
    Lease(LeaseRecord),
    Delete((u16, Ipv4Addr)),
    UnknownSubnet,
}

fn parse_row(
    line: &[u8],
    c: &Columns,
    subnet: &impl Fn(u32) -> Option<u16>,
    stats: &mut ImportStats,
) -> Result<Row, String> {
    let f: Vec<&[u8]> = line.split(|&b| b == b',').collect();
    if f.len() != c.count {
        return Err(format!("{} fields, the header has {}", f.len(), c.count));
    }
    let text = |i: usize| std::str::from_utf8(f[i]).map_err(|_| "not UTF-8".to_string());
    let addr: Ipv4Addr = text(c.address)?
        .parse()
        .map_err(|_| format!("bad address {:?}", text(c.address)))?;
    let kea_subnet: u32 = text(c.subnet)?.parse().map_err(|_| "bad subnet_id")?;
    let valid: u32 = text(c.valid)?.parse().map_err(|_| "bad valid_lifetime")?;
    let expire: u64 = text(c.expire)?.parse().map_err(|_| "bad expire")?;
    let Some(sub) = subnet(kea_subnet) else {
        return Ok(Row::UnknownSubnet);
    };
    if valid == 0 {
        return Ok(Row::Delete((sub, addr)));
    }
    let state = match c.state.map(text).transpose()? {
        None | Some("0") => RecordState::Bound,
        Some("1") => RecordState::Declined,
        Some("2") => RecordState::Expired,
        Some(s) => return Err(format!("unknown state {s:?}")),
    };
    let hw = hex_bytes(text(c.hwaddr)?).ok_or("bad hwaddr")?;
    let hwaddr: [u8; 6] = match hw.len() {
        6 => hw.as_slice().try_into().map_err(|_| "bad hwaddr")?,
        0 if state == RecordState::Declined => [0; 6],
        n => return Err(format!("hwaddr of {n} bytes; only Ethernet is served")),
    };
    let client_id = hex_bytes(text(c.client_id)?).ok_or("bad client_id")?;
    let client = if !client_id.is_empty() {
        ClientKey::new(sub, 1, &client_id)
    } else if !hw.is_empty() {
        ClientKey::new(sub, 0, &hwaddr)
    } else {
        ClientKey::new(sub, 0, &[])
    };
    let cltt = expire.saturating_sub(u64::from(valid));
    let expires_unix = if valid == INFINITE_LFT {
        INFINITE
    } else {
        expire
    };
    let (hostname, cut) = FixedBytes::new(&unescape(f[c.hostname]));
    stats.hostnames_cut += usize::from(cut);
    let agent = match c.user_context {
        Some(i) if !f[i].is_empty() => relay_agent_info(&unescape(f[i]))?,
        _ => Vec::new(),
    };
    let (agent_info, cut) = FixedBytes::new(&agent);
    stats.agent_info_cut += usize::from(cut);
    Ok(Row::Lease(LeaseRecord {
        subnet: sub,
        addr,
        client,
        hwaddr,
        state,
        expires_unix,
        cltt_unix: cltt,
        hostname,
        agent_info,
        fqdn_flags: 0,
    }))
}

/// Option 82's data from a lease's user context, in either of Kea's forms.
fn relay_agent_info(ctx: &[u8]) -> Result<Vec<u8>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(ctx).map_err(|e| format!("user_context is not JSON: {e}"))?;
    let rai = &v["ISC"]["relay-agent-info"];
    let hex = match rai {
        serde_json::Value::String(s) => s.as_str(),
        serde_json::Value::Object(m) => match m.get("sub-options") {
            Some(serde_json::Value::String(s)) => s.as_str(),
            _ => return Ok(Vec::new()),
        },
        _ => return Ok(Vec::new()),
    };
    hex_bytes(hex).ok_or_else(|| format!("bad relay-agent-info {hex:?}"))
}
