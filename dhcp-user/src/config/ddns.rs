//! `[ddns]` and `[subnet.ddns]` as written, and the two settings whose
//! names operators know from Kea: the conflict mode and the TSIG
//! algorithm. The top-level table holds the defaults of every subnet; a
//! subnet's table overrides key by key. `check.rs` resolves the two into
//! one complete setting per subnet.
use crate::wire::fqdn::{Pattern, zone_text, zone_wire};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;
use toml::Spanned;

/// Default of `max_updates_per_second`, per DNS server.
pub const DEFAULT_UPDATES_PER_SECOND: u32 = 2000;

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

/// One subnet's DDNS, checked and complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetDdns {
    pub server: SocketAddr,
    /// Lowercase, with the final dot, and in wire form (what the option
    /// 81 reply and the DHCID digest carry).
    pub forward_zone: String,
    pub forward_zone_wire: Vec<u8>,
    pub reverse_zone: Option<String>,
    pub key: TsigKeyConfig,
    pub ttl: u32,
    pub override_client_update: bool,
    pub override_no_update: bool,
    pub replace_client_name: ReplaceClientName,
    pub generated_name: Pattern,
    pub conflict_mode: ConflictMode,
}

/// A TSIG key: its name, algorithm and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKeyConfig {
    pub name: String,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
}

// The secret stays out of logs and `check-config` output.
impl std::fmt::Debug for TsigKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TsigKeyConfig {{ name: {:?}, algorithm: {:?}, secret: {} bytes }}",
            self.name,
            self.algorithm,
            self.secret.len()
        )
    }
}

/// An error with the span of the entry it is about.
pub(super) type Spot = (Range<usize>, String);

impl DdnsConfig {
    /// Every key set in `self`, else in `top`.
    fn over(&self, top: &DdnsConfig) -> DdnsConfig {
        macro_rules! pick {
            ($($f:ident),*) => { DdnsConfig { $($f: self.$f.clone().or_else(|| top.$f.clone()),)* } };
        }
        pick!(
            enabled,
            server,
            forward_zone,
            reverse_zone,
            key_name,
            key_algorithm,
            key_secret,
            key_file,
            ttl,
            override_client_update,
            override_no_update,
            replace_client_name,
            generated_name,
            conflict_mode,
            max_updates_per_second
        )
    }
}

/// The DDNS of one subnet from the top-level `[ddns]` and the subnet's
/// own table (`at`: the subnet's span, for errors about keys it lacks).
/// `None`: DDNS is off for it.
pub(super) fn resolve(
    top: Option<&Spanned<DdnsConfig>>,
    sub: Option<&Spanned<DdnsConfig>>,
    lease_time: u32,
    at: Range<usize>,
) -> Result<Option<SubnetDdns>, Spot> {
    if let Some(s) = sub
        && let Some(m) = &s.get_ref().max_updates_per_second
    {
        return Err((
            m.span(),
            "max_updates_per_second is a setting of the top-level [ddns] only".into(),
        ));
    }
    let empty = DdnsConfig::default();
    let c = match (top, sub) {
        (None, None) => return Ok(None),
        (Some(t), None) => t.get_ref().over(&empty),
        (None, Some(s)) => s.get_ref().over(&empty),
        (Some(t), Some(s)) => s.get_ref().over(t.get_ref()),
    };
    let at = sub.or(top).map_or(at, |t| t.span());
    if c.enabled == Some(false) {
        return Ok(None);
    }
    let need = |name: &str| (at.clone(), format!("[ddns]: {name} is not set"));
    let server = c.server.as_ref().ok_or_else(|| need("server"))?;
    let server = parse_server(server.get_ref()).map_err(|m| (server.span(), m))?;
    let fz = c
        .forward_zone
        .as_ref()
        .ok_or_else(|| need("forward_zone"))?;
    let (forward_zone, forward_zone_wire) =
        zone(fz.get_ref()).map_err(|m| (fz.span(), format!("forward_zone: {m}")))?;
    let reverse_zone = match &c.reverse_zone {
        Some(r) => {
            let (z, _) = zone(r.get_ref()).map_err(|m| (r.span(), format!("reverse_zone: {m}")))?;
            if !z.ends_with(".in-addr.arpa.") {
                return Err((
                    r.span(),
                    format!("reverse_zone {z:?} is not under in-addr.arpa."),
                ));
            }
            Some(z)
        }
        None => None,
    };
    let key = key(&c, &at)?;
    let ttl = match c.ttl {
        Some(0) => return Err((at, "[ddns]: ttl must be at least 1 second".into())),
        Some(t) => t,
        // RFC 4702 §5: a third of the lease; a lease that never ends gets
        // a day.
        None if lease_time == u32::MAX => 86_400,
        None => (lease_time / 3).max(1),
    };
    let generated_name = match &c.generated_name {
        Some(p) => Pattern::parse(p.get_ref()).map_err(|m| (p.span(), m))?,
        None => Pattern::default(),
    };
    Ok(Some(SubnetDdns {
        server,
        forward_zone,
        forward_zone_wire,
        reverse_zone,
        key,
        ttl,
        override_client_update: c.override_client_update.unwrap_or(true),
        override_no_update: c.override_no_update.unwrap_or(false),
        replace_client_name: c.replace_client_name.unwrap_or_default(),
        generated_name,
        conflict_mode: c.conflict_mode.unwrap_or_default(),
    }))
}

/// `max_updates_per_second` of the top-level table, checked.
pub(super) fn updates_per_second(top: Option<&Spanned<DdnsConfig>>) -> Result<u32, Spot> {
    match top.and_then(|t| t.get_ref().max_updates_per_second.as_ref()) {
        None => Ok(DEFAULT_UPDATES_PER_SECOND),
        Some(v) if (1..=1_000_000).contains(v.get_ref()) => Ok(*v.get_ref()),
        Some(v) => Err((
            v.span(),
            format!(
                "max_updates_per_second = {} must be between 1 and 1000000",
                v.get_ref()
            ),
        )),
    }
}

fn parse_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, 53)),
        Err(_) => Err(format!(
            "server {s:?} is not an address or address:port (names are not looked up)"
        )),
    }
}

/// A zone (or key) name checked by `wire::fqdn::zone_wire`, as text
/// (lowercase, with the final dot) and in wire form. Classless reverse
/// zones (RFC 2317, "0/25.2.0.192.in-addr.arpa.") are refused: the PTR
/// of an address is written at d.c.b.a.in-addr.arpa., which is not in
/// them.
fn zone(text: &str) -> Result<(String, Vec<u8>), String> {
    let wire = zone_wire(text.trim())?;
    if text.contains('/') {
        return Err(format!(
            "{text:?}: classless reverse zones (RFC 2317) are not supported; give the in-addr.arpa. zone the PTR records are in"
        ));
    }
    Ok((zone_text(&wire), wire))
}

fn key(c: &DdnsConfig, at: &Range<usize>) -> Result<TsigKeyConfig, Spot> {
    let mut name = c.key_name.as_ref().map(|n| n.get_ref().clone());
    let mut algorithm = match &c.key_algorithm {
        Some(a) => Some(TsigAlgorithm::parse(a.get_ref()).map_err(|m| (a.span(), m))?),
        None => None,
    };
    let (secret, at_secret) = match (&c.key_secret, &c.key_file) {
        (Some(_), Some(f)) => {
            return Err((
                f.span(),
                "[ddns]: key_secret and key_file are both set".into(),
            ));
        }
        (None, None) => {
            return Err((
                at.clone(),
                "[ddns]: updates are signed with TSIG: set key_secret or key_file".into(),
            ));
        }
        (Some(s), None) => (
            decode_secret(s.get_ref()).map_err(|m| (s.span(), m))?,
            s.span(),
        ),
        (None, Some(f)) => {
            let in_file =
                |m: String| (f.span(), format!("key_file {}: {m}", f.get_ref().display()));
            let text = std::fs::read_to_string(f.get_ref()).map_err(|e| in_file(e.to_string()))?;
            let (file_name, file_alg, secret) = parse_key_file(&text).map_err(in_file)?;
            name = name.or(file_name);
            algorithm = algorithm.or(file_alg);
            (secret, f.span())
        }
    };
    if secret.len() < 16 {
        return Err((
            at_secret,
            format!(
                "the TSIG secret has {} bytes; use at least 16 (tsig-keygen makes 32)",
                secret.len()
            ),
        ));
    }
    let name = name.ok_or_else(|| (at.clone(), "[ddns]: key_name is not set".to_string()))?;
    zone(&name).map_err(|m| (at.clone(), format!("key_name: {m}")))?;
    Ok(TsigKeyConfig {
        name,
        algorithm: algorithm.unwrap_or(TsigAlgorithm::HmacSha256),
        secret,
    })
}

/// A TSIG secret from its base64 text (BIND may split it over lines).
pub fn decode_secret(b64: &str) -> Result<Vec<u8>, String> {
    // BIND writes long secrets over several lines inside the quotes.
    let compact: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    let secret = data_encoding::BASE64
        .decode(compact.as_bytes())
        .map_err(|e| format!("the TSIG secret is not base64: {e}"))?;
    if secret.is_empty() {
        return Err("the TSIG secret is empty".into());
    }
    Ok(secret)
}

/// The tokens of a BIND named.conf fragment: words, quoted strings, and
/// `{` `}` `;`; comments (`#`, `//`, `/* */`) dropped.
fn bind_tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                let mut closed = false;
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        closed = true;
                        break;
                    }
                    prev = c;
                }
                if !closed {
                    return Err("a /* comment is not closed".into());
                }
            }
            '{' | '}' | ';' => out.push(c.to_string()),
            '"' => {
                let mut s = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '"' {
                        closed = true;
                        break;
                    }
                    s.push(c);
                }
                if !closed {
                    return Err("a quoted string is not closed".into());
                }
                out.push(s);
            }
            c => {
                let mut s = c.to_string();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '{' | '}' | ';' | '"') {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// A BIND key clause as `tsig-keygen` writes it (`key "name" {
/// algorithm hmac-sha256; secret "base64"; };`, comments allowed), or
/// the bare base64 secret: (name, algorithm, secret).
#[allow(clippy::type_complexity)]
fn parse_key_file(text: &str) -> Result<(Option<String>, Option<TsigAlgorithm>, Vec<u8>), String> {
    let tokens = bind_tokens(text)?;
    if !tokens.iter().any(|t| t == "{") {
        // The bare secret.
        return Ok((None, None, decode_secret(text.trim())?));
    }
    // key NAME { algorithm ALG; secret "B64"; };
    let mut it = tokens.iter().map(String::as_str);
    if it.next() != Some("key") {
        return Err("expected `key \"name\" { algorithm ...; secret \"...\"; };`".into());
    }
    let name = match it.next() {
        Some(n) if !matches!(n, "{" | "}" | ";") => n.to_string(),
        _ => return Err("the key clause has no name".into()),
    };
    if it.next() != Some("{") {
        return Err(format!("expected `{{` after key {name:?}"));
    }
    let (mut algorithm, mut secret) = (None, None);
    loop {
        match it.next() {
            Some("}") => break,
            Some("algorithm") => {
                let a = it.next().ok_or("`algorithm` without a value")?;
                algorithm = Some(TsigAlgorithm::parse(a)?);
            }
            Some("secret") => {
                secret = Some(decode_secret(it.next().ok_or("`secret` without a value")?)?);
            }
            Some(other) => return Err(format!("unexpected {other:?} in key {name:?}")),
            None => return Err(format!("key {name:?} is not closed with `}};`")),
        }
        if it.next() != Some(";") {
            return Err(format!("expected `;` in key {name:?}"));
        }
    }
    if !matches!(it.next(), Some(";") | None) {
        return Err("the file holds more than one key clause".into());
    }
    if it.next().is_some() {
        return Err("the file holds more than one key clause".into());
    }
    let secret = secret.ok_or_else(|| format!("key {name:?} has no secret"))?;
    Ok((Some(name), algorithm, secret))
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

#[cfg(test)]
mod resolve_tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==";

    fn table(text: &str) -> Spanned<DdnsConfig> {
        #[derive(Deserialize)]
        struct Doc {
            ddns: Spanned<DdnsConfig>,
        }
        toml::from_str::<Doc>(text).unwrap().ddns
    }

    fn top() -> Spanned<DdnsConfig> {
        table(&format!(
            "[ddns]\nserver = \"192.0.2.53\"\nforward_zone = \"Lab.Example\"\nkey_name = \"xdhcpd-key\"\nkey_secret = \"{SECRET}\"\n"
        ))
    }

    #[test]
    fn defaults_fill_in_and_a_subnet_overrides_key_by_key() {
        let t = top();
        let d = resolve(Some(&t), None, 7200, 0..0).unwrap().unwrap();
        assert_eq!(d.server, "192.0.2.53:53".parse().unwrap());
        assert_eq!(d.forward_zone, "lab.example.");
        assert_eq!(d.reverse_zone, None);
        assert_eq!(d.ttl, 2400);
        assert_eq!(d.key.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(d.conflict_mode, ConflictMode::CheckWithDhcid);
        assert!(d.override_client_update && !d.override_no_update);
        assert_eq!(d.generated_name, Pattern::default());
        assert_eq!(d.forward_zone_wire, b"\x03lab\x07example\x00");
        let s = table(
            "[ddns]\nserver = \"192.0.2.54:5353\"\nreverse_zone = \"18.198.in-addr.arpa\"\nconflict_mode = \"no-check-with-dhcid\"\n",
        );
        let d = resolve(Some(&t), Some(&s), 7200, 0..0).unwrap().unwrap();
        assert_eq!(d.server, "192.0.2.54:5353".parse().unwrap());
        assert_eq!(d.forward_zone, "lab.example.");
        assert_eq!(d.reverse_zone.as_deref(), Some("18.198.in-addr.arpa."));
        assert_eq!(d.conflict_mode, ConflictMode::NoCheckWithDhcid);
        let off = table("[ddns]\nenabled = false\n");
        assert_eq!(resolve(Some(&t), Some(&off), 7200, 0..0).unwrap(), None);
        assert_eq!(resolve(None, None, 7200, 0..0).unwrap(), None);
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let t = top();
        let err = |sub: &str| {
            resolve(Some(&t), Some(&table(sub)), 7200, 0..0)
                .unwrap_err()
                .1
        };
        assert!(err("[ddns]\nkey_algorithm = \"hmac-md5\"\n").contains("hmac-md5"));
        assert!(err("[ddns]\nserver = \"dns.example\"\n").contains("not an address"));
        assert!(err("[ddns]\nforward_zone = \"a..b\"\n").contains("label"));
        assert!(err("[ddns]\nreverse_zone = \"lab.example\"\n").contains("in-addr.arpa"));
        assert!(err("[ddns]\ngenerated_name = \"h-{host}\"\n").contains("{host}"));
        assert!(err("[ddns]\ngenerated_name = \"H_{ip}\"\n").contains("lowercase"));
        assert!(err("[ddns]\nkey_secret = \"not base64!\"\n").contains("base64"));
        assert!(err("[ddns]\nkey_secret = \"c2hvcnQ=\"\n").contains("at least 16"));
        assert!(err("[ddns]\nkey_secret = \"\"\n").contains("empty"));
        assert!(err("[ddns]\nkey_name = \"bad..name\"\n").contains("key_name"));
        assert!(err("[ddns]\nreverse_zone = \"0/25.2.0.192.in-addr.arpa\"\n").contains("RFC 2317"));
        assert!(err("[ddns]\nmax_updates_per_second = 5\n").contains("top-level"));
        let bare = table("[ddns]\nforward_zone = \"lab.example\"\n");
        assert!(
            resolve(None, Some(&bare), 7200, 0..0)
                .unwrap_err()
                .1
                .contains("server")
        );
    }

    #[test]
    fn key_files_as_tsig_keygen_writes_them() {
        let (name, alg, secret) = parse_key_file(&format!(
            "key \"xdhcpd-key\" {{\n\talgorithm hmac-sha512;\n\tsecret \"{SECRET}\";\n}};\n"
        ))
        .unwrap();
        assert_eq!(name.as_deref(), Some("xdhcpd-key"));
        assert_eq!(alg, Some(TsigAlgorithm::HmacSha512));
        assert_eq!(secret, b"secret-secret-secret-secret!");
        let (_, _, bare) = parse_key_file(&format!("{SECRET}\n")).unwrap();
        assert_eq!(bare, secret);
        assert!(parse_key_file("key \"k\" { algorithm hmac-sha256; };").is_err());
    }

    #[test]
    fn tsig_keygen_files_parse_and_old_algorithms_are_refused() {
        // As `tsig-keygen -a hmac-sha256 xdhcpd-key` writes it.
        let text = "key \"xdhcpd-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IG9mIDMyIGJ5dGVzIQ==\";\n};\n";
        let (name, alg, secret) = parse_key_file(text).unwrap();
        assert_eq!(name.as_deref(), Some("xdhcpd-key"));
        assert_eq!(alg, Some(TsigAlgorithm::HmacSha256));
        assert_eq!(secret, b"this is a test secret of 32 bytes!");
        // Comments, an unquoted name, a secret split over lines.
        let text = "# made by hand\nkey k1 { // the key\n algorithm HMAC-SHA512; secret \"dGhpcyBpcyBh\n IHRlc3Q=\"; };";
        let (name, alg, secret) = parse_key_file(text).unwrap();
        assert_eq!(
            (name.as_deref(), alg),
            (Some("k1"), Some(TsigAlgorithm::HmacSha512))
        );
        assert_eq!(secret, b"this is a test");
        // The bare secret.
        let (name, alg, secret) = parse_key_file("  b3RoZXIgc2VjcmV0\n").unwrap();
        assert_eq!((name, alg, secret), (None, None, b"other secret".to_vec()));
        // hmac-md5 is refused by name; broken files say what is wrong.
        let e = parse_key_file("key \"k\" { algorithm hmac-md5; secret \"AAAA\"; };").unwrap_err();
        assert!(e.contains("hmac-md5"), "{e}");
        assert!(
            parse_key_file("key \"k\" { algorithm hmac-sha256; };")
                .unwrap_err()
                .contains("no secret")
        );
        assert!(parse_key_file("key \"k\" { secret \"AAAA\";").is_err());
        assert!(parse_key_file("not base64 at all!").is_err());
        assert!(parse_key_file("").is_err());
    }

    #[test]
    fn a_key_file_is_read_for_name_algorithm_and_secret() {
        let dir = std::env::temp_dir().join(format!("xdhcp-tsig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("k.key");
        std::fs::write(
            &p,
            format!("key \"a\" {{ algorithm hmac-sha384; secret \"{SECRET}\"; }};"),
        )
        .unwrap();
        let t = table(&format!(
            "[ddns]\nserver = \"192.0.2.53\"\nforward_zone = \"lab.example\"\nkey_file = \"{}\"\n",
            p.display()
        ));
        let r = resolve(None, Some(&t), 7200, 0..0);
        std::fs::remove_dir_all(&dir).unwrap();
        let k = r.unwrap().unwrap().key;
        assert_eq!(
            (k.name.as_str(), k.algorithm, k.secret.as_slice()),
            (
                "a",
                TsigAlgorithm::HmacSha384,
                &b"secret-secret-secret-secret!"[..]
            )
        );
        let t = table(
            "[ddns]\nserver = \"192.0.2.53\"\nforward_zone = \"lab.example\"\nkey_file = \"/nonexistent/k.key\"\n",
        );
        let e = resolve(None, Some(&t), 7200, 0..0).unwrap_err().1;
        assert!(e.contains("/nonexistent/k.key"), "{e}");
    }
}
