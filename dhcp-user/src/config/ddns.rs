//! `[ddns]` and `[subnet.ddns]` as written, and the two settings whose
//! names operators know from Kea: the conflict mode and the TSIG
//! algorithm. The top-level table holds the defaults of every subnet; a
//! subnet's table overrides key by key. `check.rs` resolves the two into
//! one complete setting per subnet.
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// One `[ddns]` table. Every key is optional so that a subnet's table
/// can override only what differs; `check.rs` fills in the defaults.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DdnsConfig {
    /// Default: on when the table is present.
    pub enabled: Option<bool>,
    /// The DNS server taking the updates: "a.b.c.d" or "a.b.c.d:port".
    pub server: Option<Spanned<String>>,
    /// The zone the A and DHCID records go to; also the suffix that
    /// qualifies the client's name.
    pub forward_zone: Option<Spanned<String>>,
    /// The zone the PTR records go to (e.g. "18.198.in-addr.arpa.").
    /// Without it no PTR is written.
    pub reverse_zone: Option<Spanned<String>>,
    /// TSIG: the key's name, algorithm and secret (base64), or a file
    /// holding the secret (a BIND `key` clause as `tsig-keygen` writes it,
    /// or the bare base64).
    pub key_name: Option<Spanned<String>>,
    pub key_algorithm: Option<Spanned<String>>,
    pub key_secret: Option<Spanned<String>>,
    pub key_file: Option<Spanned<PathBuf>>,
    /// TTL of the records; default a third of the lease time (RFC 4702
    /// §5).
    pub ttl: Option<u32>,
    /// Write the A record even when the client says it will (flag S = 0):
    /// Kea's `ddns-override-client-update`.
    pub override_client_update: Option<bool>,
    /// Write the records even when the client asks for none (flag N = 1):
    /// Kea's `ddns-override-no-update`.
    pub override_no_update: Option<bool>,
    /// When the server's own name replaces the client's.
    pub replace_client_name: Option<ReplaceClientName>,
    /// The label of clients without a usable name, or of every client
    /// under `replace_client_name = "always"`: text with `{ip}` (the
    /// address with dashes), `{a}` `{b}` `{c}` `{d}` (its octets) and
    /// `{mac}` (chaddr in hex). Default "dhcp-{ip}".
    pub generated_name: Option<Spanned<String>>,
    /// How a name that someone else holds is treated (RFC 4703).
    pub conflict_mode: Option<ConflictMode>,
    /// Top level only: the most DNS updates per second sent to one
    /// server, so a city that reconnects at once is not a DNS storm.
    pub max_updates_per_second: Option<Spanned<u32>>,
    /// Top level only: updates waiting for the DNS server at most; beyond
    /// it new ones are counted as lost (and restored at the next start
    /// from the lease journal).
    pub max_pending: Option<Spanned<u32>>,
}

/// Kea's `ddns-replace-client-name`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplaceClientName {
    /// The client's name when it sent one, else `generated_name`.
    #[default]
    WhenAbsent,
    /// Always `generated_name`.
    Always,
    /// The client's name, and no record for a client that sent none.
    Never,
}

/// Kea's `ddns-conflict-resolution-mode`: the RFC 4703 procedure and its
/// relaxations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictMode {
    /// RFC 4703: a name is written only when it is free or its DHCID
    /// record says it is this client's.
    #[default]
    CheckWithDhcid,
    /// DHCID records are written, but a name is taken over whoever holds
    /// it.
    NoCheckWithDhcid,
    /// A name is taken over when it has any DHCID record (some DHCP
    /// server's), refused when it has none (a static record).
    CheckExistsWithDhcid,
    /// No DHCID records and no checks: the last writer wins.
    NoCheckWithoutDhcid,
}

impl ConflictMode {
    /// Whether DHCID records are written beside the names.
    pub fn writes_dhcid(self) -> bool {
        self != ConflictMode::NoCheckWithoutDhcid
    }
}

/// TSIG algorithms hickory-proto signs with. The older ones (hmac-md5,
/// hmac-sha1, hmac-sha224) are refused at config check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    /// Parses the name as BIND writes it ("hmac-sha256", any case, a
    /// trailing dot allowed); the error names what was given.
    pub fn parse(name: &str) -> Result<TsigAlgorithm, String> {
        let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
        match n.as_str() {
            "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
            "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
            "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
            "hmac-md5" | "hmac-md5.sig-alg.reg.int" | "hmac-sha1" | "hmac-sha224" => Err(format!(
                "TSIG algorithm {name:?} is not supported (hickory-proto signs with hmac-sha256, hmac-sha384 and hmac-sha512 only): make a new key with `tsig-keygen -a hmac-sha256`"
            )),
            _ => Err(format!(
                "unknown TSIG algorithm {name:?}: use hmac-sha256, hmac-sha384 or hmac-sha512"
            )),
        }
    }

    /// The name as it goes into the TSIG record.
    pub fn name(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha384 => "hmac-sha384",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsig_algorithms_parse_and_old_ones_are_refused_by_name() {
        assert_eq!(
            TsigAlgorithm::parse("HMAC-SHA256."),
            Ok(TsigAlgorithm::HmacSha256)
        );
        assert_eq!(
            TsigAlgorithm::parse("hmac-sha512"),
            Ok(TsigAlgorithm::HmacSha512)
        );
        let e = TsigAlgorithm::parse("hmac-md5").unwrap_err();
        assert!(e.contains("hmac-md5") && e.contains("not supported"), "{e}");
        assert!(TsigAlgorithm::parse("rot13").unwrap_err().contains("rot13"));
    }
}
