//! Writing the journal's leases as a Kea lease4 CSV for one of Kea's
//! layouts.
use super::{HEADER_11, INFINITE_LFT, KeaVersion, escape, hex_colon};
use crate::lease::journal::{INFINITE, LeaseRecord, RecordState};
use std::fmt::Write as _;
use std::io::{self, Write};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    pub written: usize,
    /// Leases of a subnet the caller's mapping has no Kea id for.
    pub unmapped_subnet: usize,
    /// Client identifiers longer than 32 bytes, written empty.
    pub client_ids_dropped: usize,
}

/// Writes `leases` as a Kea lease4 CSV for `version`. `subnet` maps
/// xdhcpd's subnet index to Kea's `subnet_id`.
pub fn export(
    mut w: impl Write,
    leases: &[LeaseRecord],
    subnet: impl Fn(u16) -> Option<u32>,
    version: KeaVersion,
) -> io::Result<ExportStats> {
    let mut stats = ExportStats::default();
    let mut line = String::with_capacity(256);
    line.push_str(HEADER_11);
    if version == KeaVersion::V2_6 {
        line.push_str(",pool_id");
    }
    writeln!(w, "{line}")?;
    for r in leases {
        let Some(kea_subnet) = subnet(r.subnet) else {
            stats.unmapped_subnet += 1;
            continue;
        };
        line.clear();
        let _ = write!(line, "{},", r.addr);
        if !(r.state == RecordState::Declined && r.hwaddr == [0; 6]) {
            hex_colon(&r.hwaddr, &mut line);
        }
        line.push(',');
        if r.client.kind == 1 && r.client.len > 0 {
            if r.client.len as usize <= r.client.bytes.len() {
                hex_colon(&r.client.bytes[..r.client.len as usize], &mut line);
            } else {
                stats.client_ids_dropped += 1;
            }
        }
        let valid = if r.expires_unix == INFINITE {
            INFINITE_LFT
        } else {
            // Never 0: that row would delete the lease in Kea.
            r.expires_unix
                .saturating_sub(r.cltt_unix)
                .clamp(1, u64::from(INFINITE_LFT - 1)) as u32
        };
        let expire = r.cltt_unix.saturating_add(u64::from(valid));
        let state = match r.state {
            RecordState::Bound => 0,
            RecordState::Declined => 1,
            RecordState::Released | RecordState::Expired => 2,
        };
        let _ = write!(line, ",{valid},{expire},{kea_subnet},0,0,");
        escape(&String::from_utf8_lossy(r.hostname.as_slice()), &mut line);
        let _ = write!(line, ",{state},");
        if !r.agent_info.is_empty() {
            let mut hex = String::from("0x");
            for b in r.agent_info.as_slice() {
                let _ = write!(hex, "{b:02X}");
            }
            let ctx = if version == KeaVersion::V2_2 {
                serde_json::json!({ "ISC": { "relay-agent-info": hex } })
            } else {
                serde_json::json!({ "ISC": { "relay-agent-info": { "sub-options": hex } } })
            };
            escape(&ctx.to_string(), &mut line);
        }
        if version == KeaVersion::V2_6 {
            line.push_str(",0");
        }
        line.push('\n');
        w.write_all(line.as_bytes())?;
        stats.written += 1;
    }
    w.flush()?;
    Ok(stats)
}
