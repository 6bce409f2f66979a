//! The options a subnet hands out, as written in the config and as
//! encoded on the wire (RFC 2132 and friends). Encoding happens once, at
//! load, so a bad value is reported with its line and the packet path only
//! copies bytes.
use serde::Deserialize;
use std::net::Ipv4Addr;

/// Named options an ISP commonly hands out, besides routers, DNS and the
/// domain name that `[[subnet]]` has as fields of their own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedOptions {
    /// 26: interface MTU.
    pub mtu: Option<u16>,
    /// 42: NTP servers.
    #[serde(default)]
    pub ntp: Vec<Ipv4Addr>,
    /// 66: TFTP server name (CPE provisioning).
    pub tftp_server: Option<String>,
    /// 67: boot file name.
    pub bootfile: Option<String>,
    /// 119: domain search list (RFC 3397).
    #[serde(default)]
    pub domain_search: Vec<String>,
    /// 121: classless static routes (RFC 3442), "prefix/len via gateway".
    #[serde(default)]
    pub classless_routes: Vec<String>,
}

/// An option given by code, for anything without a name here. Exactly one
/// of the value fields is set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOption {
    pub code: u8,
    pub hex: Option<String>,
    pub ip: Option<Vec<Ipv4Addr>>,
    pub string: Option<String>,
    pub u8: Option<u8>,
    pub u16: Option<u16>,
    pub u32: Option<u32>,
}

/// Codes the engine writes itself or that never belong in a reply's
/// configured options.
const NOT_CONFIGURABLE: &[(u8, &str)] = &[
    (0, "pad"),
    (1, "subnet mask (from prefix)"),
    (50, "requested address"),
    (51, "lease time (lease_time)"),
    (52, "overload"),
    (53, "message type"),
    (54, "server identifier (server_id)"),
    (55, "parameter request list"),
    (57, "maximum message size"),
    (58, "T1 (t1)"),
    (59, "T2 (t2)"),
    (61, "client identifier"),
    (82, "relay agent information"),
    (255, "end"),
];

impl RawOption {
    pub fn encode(&self) -> Result<(u8, Vec<u8>), String> {
        if let Some((_, what)) = NOT_CONFIGURABLE.iter().find(|(c, _)| *c == self.code) {
            return Err(format!(
                "option {} ({what}) cannot be configured here",
                self.code
            ));
        }
        let mut values: Vec<Vec<u8>> = Vec::new();
        if let Some(h) = &self.hex {
            values.push(parse_hex(h)?);
        }
        if let Some(v) = &self.ip {
            values.push(v.iter().flat_map(|a| a.octets()).collect());
        }
        if let Some(s) = &self.string {
            values.push(s.as_bytes().to_vec());
        }
        if let Some(v) = self.u8 {
            values.push(vec![v]);
        }
        if let Some(v) = self.u16 {
            values.push(v.to_be_bytes().to_vec());
        }
        if let Some(v) = self.u32 {
            values.push(v.to_be_bytes().to_vec());
        }
        match values.len() {
            1 => {}
            0 => {
                return Err(format!(
                    "option {} has no value (hex, ip, string, u8, u16 or u32)",
                    self.code
                ));
            }
            _ => return Err(format!("option {} has more than one value", self.code)),
        }
        let v = values.pop().unwrap_or_default();
        if v.len() > 255 {
            return Err(format!(
                "option {} is {} bytes long; 255 at most",
                self.code,
                v.len()
            ));
        }
        Ok((self.code, v))
    }
}

/// Bytes written in hex: "0a:0b:0c", "0a0b0c", "0a 0b 0c" or "0a-0b-0c"
/// (two digits a byte, either case; ':', ' ' and '-' between them are
/// ignored).
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '-'))
        .collect();
    hex::decode(&digits).map_err(|e| match e {
        hex::FromHexError::OddLength => format!("{s:?}: odd number of hex digits"),
        hex::FromHexError::InvalidHexCharacter { c, .. } => {
            format!("{s:?} is not hex ({c:?} is not a hex digit)")
        }
        other => format!("{s:?} is not hex ({other})"),
    })
}

impl NamedOptions {
    /// The encoded options, in code order.
    pub fn encode(&self) -> Result<Vec<(u8, Vec<u8>)>, String> {
        let mut out = Vec::new();
        if let Some(m) = self.mtu {
            if m < 68 {
                return Err(format!("mtu {m} is below the IPv4 minimum of 68"));
            }
            out.push((26, m.to_be_bytes().to_vec()));
        }
        if !self.ntp.is_empty() {
            out.push((42, self.ntp.iter().flat_map(|a| a.octets()).collect()));
        }
        if let Some(t) = &self.tftp_server {
            out.push((66, t.as_bytes().to_vec()));
        }
        if let Some(b) = &self.bootfile {
            out.push((67, b.as_bytes().to_vec()));
        }
        if !self.domain_search.is_empty() {
            let mut v = Vec::new();
            for d in &self.domain_search {
                encode_dns_name(d, &mut v)?;
            }
            out.push((119, v));
        }
        if !self.classless_routes.is_empty() {
            let mut v = Vec::new();
            for r in &self.classless_routes {
                encode_route(r, &mut v)?;
            }
            out.push((121, v));
        }
        for (c, v) in &out {
            if v.len() > 255 {
                return Err(format!(
                    "option {c} encodes to {} bytes; 255 at most",
                    v.len()
                ));
            }
        }
        Ok(out)
    }
}

/// RFC 1035 labels without compression, as RFC 3397 allows.
fn encode_dns_name(name: &str, out: &mut Vec<u8>) -> Result<(), String> {
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("domain {name:?}: empty or over-long label"));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

/// RFC 3442: prefix length, the significant octets of the destination,
/// then the router.
fn encode_route(r: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let (dst, gw) = r
        .split_once(" via ")
        .ok_or_else(|| format!("route {r:?}: expected \"a.b.c.d/len via gateway\""))?;
    let (net, len) = dst
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("route {r:?}: destination needs /len"))?;
    let net: Ipv4Addr = net.parse().map_err(|e| format!("route {r:?}: {e}"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("route {r:?}: bad prefix length"))?;
    if len > 32 {
        return Err(format!("route {r:?}: prefix length over 32"));
    }
    let gw: Ipv4Addr = gw.trim().parse().map_err(|e| format!("route {r:?}: {e}"))?;
    out.push(len);
    out.extend_from_slice(&net.octets()[..usize::from(len).div_ceil(8)]);
    out.extend_from_slice(&gw.octets());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_options_encode_per_rfc() {
        let n = NamedOptions {
            mtu: Some(1492),
            domain_search: vec!["isp.example".into(), "example".into()],
            classless_routes: vec![
                "10.0.0.0/8 via 192.0.2.1".into(),
                "0.0.0.0/0 via 192.0.2.254".into(),
            ],
            ..Default::default()
        };
        let e = n.encode().unwrap();
        assert_eq!(e[0], (26, vec![0x05, 0xd4]));
        assert_eq!(
            e[1],
            (119, b"\x03isp\x07example\x00\x07example\x00".to_vec())
        );
        assert_eq!(e[2], (121, vec![8, 10, 192, 0, 2, 1, 0, 192, 0, 2, 254]));
    }

    #[test]
    fn raw_options_need_exactly_one_value_and_a_free_code() {
        let raw = |code, hex: Option<&str>, s: Option<&str>| RawOption {
            code,
            hex: hex.map(Into::into),
            ip: None,
            string: s.map(Into::into),
            u8: None,
            u16: None,
            u32: None,
        };
        assert_eq!(
            raw(43, Some("01:02 0a"), None).encode().unwrap(),
            (43, vec![1, 2, 10])
        );
        assert!(raw(43, None, None).encode().is_err());
        assert!(raw(43, Some("01"), Some("x")).encode().is_err());
        assert!(
            raw(54, Some("01"), None)
                .encode()
                .unwrap_err()
                .contains("server identifier")
        );
        assert!(raw(43, Some("0g"), None).encode().is_err());
    }

    #[test]
    fn hex_takes_the_usual_separators_and_names_what_is_wrong() {
        for s in ["0a:0B:ff", "0a0bFF", "0a 0b ff", "0a-0b-ff"] {
            assert_eq!(parse_hex(s).unwrap(), vec![0x0a, 0x0b, 0xff], "{s}");
        }
        assert_eq!(parse_hex("").unwrap(), Vec::<u8>::new());
        assert_eq!(
            parse_hex("0a:b").unwrap_err(),
            "\"0a:b\": odd number of hex digits"
        );
        assert_eq!(
            parse_hex("0g").unwrap_err(),
            "\"0g\" is not hex ('g' is not a hex digit)"
        );
        // Not a panic on a character of several bytes.
        assert!(parse_hex("aé0").is_err());
        assert!(parse_hex("+a").is_err());
    }
}
