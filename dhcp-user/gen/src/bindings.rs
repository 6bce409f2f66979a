//! The leases a run ended with, as a file: `--leases-out` writes which
//! client holds which address from which server, `--leases-in` gives the
//! same list back to a later run (`--scenario reboot`), so that leases one
//! run was ACKed can be asked for again, e.g. at another server after a
//! failover.
use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::Path;

/// One client's lease at the end of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The client's index in its fleet (the low 24 bits of its MAC).
    pub index: u32,
    pub address: Ipv4Addr,
    /// The server identifier of the last ACK.
    pub server_id: Ipv4Addr,
}

/// A binding as the file holds it.
#[derive(Serialize, Deserialize)]
struct Entry {
    chaddr: String,
    address: Ipv4Addr,
    server_id: Ipv4Addr,
}

/// Writes `bindings` of the fleet whose MACs start with `prefix` as a JSON
/// array of `{"chaddr", "address", "server_id"}`.
pub fn write(path: &Path, prefix: [u8; 3], bindings: &[Binding]) -> Result<()> {
    let entries: Vec<Entry> = bindings
        .iter()
        .map(|b| {
            let mac = super::client::client_mac(prefix, b.index);
            Entry {
                chaddr: mac
                    .iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
                address: b.address,
                server_id: b.server_id,
            }
        })
        .collect();
    let text = serde_json::to_string_pretty(&entries)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Reads a file [`write`] made; every chaddr must start with `prefix` (the
/// run's `--mac-prefix`), as the client's index is the rest of it.
pub fn read(path: &Path, prefix: [u8; 3]) -> Result<Vec<Binding>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let entries: Vec<Entry> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    entries
        .iter()
        .map(|e| {
            let mac = parse_mac(&e.chaddr)
                .with_context(|| format!("{}: chaddr {:?}", path.display(), e.chaddr))?;
            ensure!(
                mac[..3] == prefix,
                "{}: chaddr {} does not start with the run's --mac-prefix {:02x}:{:02x}:{:02x}",
                path.display(),
                e.chaddr,
                prefix[0],
                prefix[1],
                prefix[2]
            );
            Ok(Binding {
                index: u32::from_be_bytes([0, mac[3], mac[4], mac[5]]),
                address: e.address,
                server_id: e.server_id,
            })
        })
        .collect()
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()?;
    v.try_into().map_err(|_| anyhow::anyhow!("not six bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_prefix() {
        let dir = std::env::temp_dir().join(format!("xdhcpgen-bindings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("leases.json");
        let b = vec![
            Binding {
                index: 0x01_0203,
                address: Ipv4Addr::new(10, 0, 0, 7),
                server_id: Ipv4Addr::new(10, 0, 0, 1),
            },
            Binding {
                index: 5,
                address: Ipv4Addr::new(10, 0, 0, 8),
                server_id: Ipv4Addr::new(10, 0, 0, 2),
            },
        ];
        write(&p, [2, 0x67, 0x65], &b).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("\"02:67:65:01:02:03\""), "{text}");
        assert_eq!(read(&p, [2, 0x67, 0x65]).unwrap(), b);
        assert!(read(&p, [2, 0x61, 0x74]).is_err());
        std::fs::write(
            &p,
            r#"[{"chaddr":"02:67:65:zz:00:01","address":"10.0.0.1","server_id":"10.0.0.1"}]"#,
        )
        .unwrap();
        assert!(read(&p, [2, 0x67, 0x65]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
