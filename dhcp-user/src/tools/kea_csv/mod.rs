//! Kea's memfile lease file (`kea-leases4.csv`), read and written, so an
//! operator can move from Kea to xdhcpd and back.
//!
//! The format, as Kea 2.2 writes it (checked against a file written by
//! kea-dhcp4 2.2.0 itself):
//!
//! ```text
//! address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context
//! 10.9.0.11,2a:2b:2c:2d:2e:2f,01:2a:2b:2c:2d:2e:2f,3600,1795829518,7,0,0,comma&#x2chost,0,
//! ```
//!
//! - `expire` is `cltt + valid_lifetime`; an infinite lease has
//!   `valid_lifetime` 4294967295 (and an `expire` past `u32`).
//! - `state`: 0 default (bound), 1 declined (empty `hwaddr` allowed),
//!   2 expired-reclaimed.
//! - Commas (and `&` itself) in `hostname` and `user_context` are written
//!   as `&#x2c` / `&#x26`: `&#x` and two hex digits stand for one byte.
//! - The file is a log until Kea's LFC rewrites it: an address may appear
//!   several times and the last row wins; a row with `valid_lifetime` 0
//!   deletes the address.
//! - Kea 2.2 keeps option 82 as `user_context`
//!   `{"ISC": {"relay-agent-info": "0x…"}}`; later versions as
//!   `{"ISC": {"relay-agent-info": {"sub-options": "0x…", …}}}`. Both
//!   are read. Kea 2.6 adds a `pool_id` column; columns are found by
//!   name, so older and newer headers both import.
//!
//! Not carried over: `fqdn_fwd`/`fqdn_rev` (xdhcpd's DDNS decides again on
//! the next renewal), hardware addresses other than 6-byte Ethernet (such
//! rows are refused and counted), client identifiers over 32 bytes on
//! export (xdhcpd keeps only a hash of their tail; written empty, so Kea
//! falls back to the hardware address).
//!
//! [`import()`] reads such a file, [`export()`] writes one; this module holds
//! what both share: the header, and the encodings of a field (Kea's
//! escaping of text, its hex of bytes).
use std::fmt::Write as _;

mod export;
mod import;
#[cfg(test)]
mod tests;

pub use export::{ExportStats, export};
pub use import::{ImportStats, Imported, import};

/// Which Kea the exported file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeaVersion {
    /// 2.2: 11 columns, option 82 as a hex string.
    V2_2,
    /// 2.4: 11 columns, option 82 as `{"sub-options": …}`.
    V2_4,
    /// 2.6 and later: 12 columns (`pool_id`).
    V2_6,
}

const HEADER_11: &str = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context";
const INFINITE_LFT: u32 = u32::MAX;

/// Hex with an optional `0x`, bytes optionally separated by `:`. Kea
/// writes `a:b:c` with single digits allowed per byte.
fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.is_empty() {
        return Some(Vec::new());
    }
    if s.contains(':') {
        return s
            .split(':')
            .map(|p| {
                (1..=2)
                    .contains(&p.len())
                    .then(|| u8::from_str_radix(p, 16).ok())
                    .flatten()
            })
            .collect();
    }
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Kea's CSV unescaping: `&#x` and two hex digits is one byte; anything
/// else is kept as it stands.
fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let escaped = s[i..]
            .starts_with(b"&#x")
            .then(|| s.get(i + 3..i + 5))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let Some(b) = escaped {
            out.push(b);
            i += 5;
            continue;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Kea's CSV escaping of a text field: commas and `&` (so that text that
/// happens to look like an escape survives), and line breaks, which Kea
/// does not escape but which would break the file.
fn escape(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            ',' | '&' | '\n' | '\r' => {
                let _ = write!(out, "&#x{:02x}", ch as u32);
            }
            _ => out.push(ch),
        }
    }
}

/// Bytes as Kea writes a hardware address or client id: `aa:bb:cc`.
fn hex_colon(b: &[u8], out: &mut String) {
    for (i, x) in b.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{x:02x}");
    }
}
