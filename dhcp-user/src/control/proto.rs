//! The control API's requests: one JSON object per line, its `cmd` naming
//! what is asked. Shared by the daemon (which parses them) and xdhcpctl
//! (which writes them), so the two cannot disagree on a field.
use crate::config::Identity;
use crate::tools::show::parse_mac;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Most leases one `leases` answer carries; a client pages on with
/// `after`.
pub const MAX_PAGE: usize = 10_000;
/// Leases per page when the request gives no `limit`.
pub const DEFAULT_PAGE: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// The newest status snapshot (the stats file's document).
    Stats,
    /// Its `latency` key.
    Latency,
    /// The lease(s) of one address, hardware address, client-id or
    /// circuit-id.
    Lease(Lookup),
    /// Leases, filtered, a page at a time.
    Leases(Query),
    /// Force-free the lease of an address.
    Release { addr: Ipv4Addr },
    /// Reserve an address for one client, at runtime.
    Reserve(NewReservation),
    /// Drop a runtime reservation.
    Unreserve { addr: Ipv4Addr },
    /// Every reservation in force, with where it comes from.
    Reservations,
    /// Read the configuration again (as SIGHUP).
    Reload,
}

/// `lease`: exactly one of the fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<Ipv4Addr>,
    /// `aa:bb:cc:dd:ee:ff`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Option 61, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Relay circuit-id as printed: text, or hex when not printable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
}

/// A checked [`Lookup`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LookupBy {
    Addr(Ipv4Addr),
    Mac([u8; 6]),
    ClientId(Vec<u8>),
    CircuitId(String),
}

impl Lookup {
    pub fn check(&self) -> Result<LookupBy, String> {
        let mut by = Vec::new();
        if let Some(a) = self.addr {
            by.push(LookupBy::Addr(a));
        }
        if let Some(m) = &self.mac {
            by.push(LookupBy::Mac(mac(m)?));
        }
        if let Some(c) = &self.client_id {
            by.push(LookupBy::ClientId(hex_bytes("client_id", c)?));
        }
        if let Some(c) = &self.circuit_id {
            by.push(LookupBy::CircuitId(c.clone()));
        }
        match by.len() {
            1 => Ok(by.remove(0)),
            0 => Err("lease needs one of addr, mac, client_id, circuit_id".into()),
            _ => Err("lease takes exactly one of addr, mac, client_id, circuit_id".into()),
        }
    }
}

/// `leases`: every given filter must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// `a.b.c.d/len`, or the subnet's index in the configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// offered, bound, released, expired or declined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// Exactly, ASCII case ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Leases per answer, at most [`MAX_PAGE`]; default [`DEFAULT_PAGE`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only addresses above this one: the `next` of the page before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Ipv4Addr>,
}

/// Lease states as the API names them.
pub const STATES: [&str; 5] = ["offered", "bound", "released", "expired", "declined"];

/// Which subnet a [`Query`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubnetSel {
    Index(u16),
    Prefix(u32, u32),
}

impl SubnetSel {
    pub fn holds(&self, subnet: u16, addr: Ipv4Addr) -> bool {
        match *self {
            SubnetSel::Index(i) => i == subnet,
            SubnetSel::Prefix(net, mask) => u32::from(addr) & mask == net,
        }
    }
}

/// A checked [`Query`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub subnet: Option<SubnetSel>,
    pub state: Option<&'static str>,
    pub mac: Option<[u8; 6]>,
    pub circuit_id: Option<String>,
    pub remote_id: Option<String>,
    pub hostname: Option<String>,
    pub limit: usize,
    pub after: Option<Ipv4Addr>,
}

impl Query {
    pub fn check(&self) -> Result<Filter, String> {
        let subnet = match &self.subnet {
            None => None,
            Some(s) => Some(match s.split_once('/') {
                None => SubnetSel::Index(
                    s.parse()
                        .map_err(|_| format!("subnet {s:?}: a.b.c.d/len or an index"))?,
                ),
                Some((a, l)) => {
                    let a: Ipv4Addr = a
                        .parse()
                        .map_err(|_| format!("subnet {s:?}: bad address"))?;
                    let l: u8 = l
                        .parse()
                        .ok()
                        .filter(|l| *l <= 32)
                        .ok_or_else(|| format!("subnet {s:?}: bad prefix length"))?;
                    let m = crate::config::prefix_mask(l);
                    SubnetSel::Prefix(u32::from(a) & m, m)
                }
            }),
        };
        let state = match &self.state {
            None => None,
            Some(s) => Some(
                *STATES
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(s))
                    .ok_or_else(|| format!("state {s:?}: one of {}", STATES.join(", ")))?,
            ),
        };
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if limit == 0 || limit > MAX_PAGE {
            return Err(format!("limit {limit}: between 1 and {MAX_PAGE}"));
        }
        Ok(Filter {
            subnet,
            state,
            mac: self.mac.as_deref().map(mac).transpose()?,
            circuit_id: self.circuit_id.clone(),
            remote_id: self.remote_id.clone(),
            hostname: self.hostname.clone(),
            limit,
            after: self.after,
        })
    }
}

/// `reserve`: an address and exactly one identity, as in the config's
/// `[[subnet.reservation]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReservation {
    pub addr: Ipv4Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Option 61, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Relay circuit-id (option 82 sub-option 1) as text, or
    /// `circuit_id_hex`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id_hex: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub infinite: bool,
}

impl Default for NewReservation {
    fn default() -> Self {
        NewReservation {
            addr: Ipv4Addr::UNSPECIFIED,
            mac: None,
            client_id: None,
            circuit_id: None,
            circuit_id_hex: None,
            remote_id: None,
            remote_id_hex: None,
            infinite: false,
        }
    }
}

impl NewReservation {
    /// Its identity, checked as the config checks a reservation's.
    pub fn identity(&self) -> Result<Identity, String> {
        let mut ids = Vec::new();
        if let Some(m) = &self.mac {
            ids.push(Identity::Mac(mac(m)?));
        }
        if let Some(c) = &self.client_id {
            ids.push(Identity::ClientId(hex_bytes("client_id", c)?));
        }
        if let Some(c) = &self.circuit_id {
            ids.push(Identity::CircuitId(c.as_bytes().to_vec()));
        }
        if let Some(c) = &self.circuit_id_hex {
            ids.push(Identity::CircuitId(hex_bytes("circuit_id_hex", c)?));
        }
        if let Some(r) = &self.remote_id {
            ids.push(Identity::RemoteId(r.as_bytes().to_vec()));
        }
        if let Some(r) = &self.remote_id_hex {
            ids.push(Identity::RemoteId(hex_bytes("remote_id_hex", r)?));
        }
        let id = match ids.len() {
            1 => ids.remove(0),
            0 => return Err("reserve needs one of mac, client_id, circuit_id, remote_id".into()),
            _ => {
                return Err(
                    "reserve takes exactly one of mac, client_id, circuit_id, remote_id".into(),
                );
            }
        };
        match &id {
            Identity::ClientId(b) | Identity::CircuitId(b) | Identity::RemoteId(b)
                if b.is_empty() || b.len() > 255 =>
            {
                Err("an identifier of 1 to 255 bytes".into())
            }
            _ => Ok(id),
        }
    }
}

fn mac(s: &str) -> Result<[u8; 6], String> {
    parse_mac(s).ok_or_else(|| format!("mac {s:?}: six hex bytes, like 02:00:5e:00:53:01"))
}

/// Hex, with or without `:` between the bytes.
pub fn hex_bytes(what: &str, s: &str) -> Result<Vec<u8>, String> {
    let plain: String = s.chars().filter(|c| *c != ':').collect();
    hex::decode(&plain).map_err(|e| format!("{what} {s:?}: not hex ({e})"))
}

/// Parses one request line; the error is the answer's text.
pub fn parse(line: &[u8]) -> Result<Request, String> {
    serde_json::from_slice(line).map_err(|e| {
        // serde's "unknown variant" names the command; keep its words.
        format!("bad request: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_round_trip() {
        let all = [
            Request::Stats,
            Request::Latency,
            Request::Lease(Lookup {
                mac: Some("02:00:00:00:00:01".into()),
                ..Lookup::default()
            }),
            Request::Leases(Query {
                state: Some("bound".into()),
                limit: Some(10),
                after: Some(Ipv4Addr::new(10, 0, 0, 9)),
                ..Query::default()
            }),
            Request::Release {
                addr: Ipv4Addr::new(10, 0, 0, 1),
            },
            Request::Reserve(NewReservation {
                addr: Ipv4Addr::new(10, 0, 0, 2),
                client_id: Some("01aabb".into()),
                ..NewReservation::default()
            }),
            Request::Unreserve {
                addr: Ipv4Addr::new(10, 0, 0, 2),
            },
            Request::Reservations,
            Request::Reload,
        ];
        for r in all {
            let line = serde_json::to_vec(&r).unwrap();
            assert_eq!(
                parse(&line).unwrap(),
                r,
                "{}",
                String::from_utf8_lossy(&line)
            );
        }
        assert_eq!(
            parse(br#"{"cmd":"release","addr":"10.0.0.7"}"#).unwrap(),
            Request::Release {
                addr: Ipv4Addr::new(10, 0, 0, 7)
            }
        );
    }

    #[test]
    fn bad_requests_are_errors_not_panics() {
        for (line, why) in [
            (&b"not json"[..], "bad request"),
            (br#"{"cmd":"frobnicate"}"#, "unknown variant"),
            (br#"{"addr":"10.0.0.1"}"#, "missing field `cmd`"),
            (br#"{"cmd":"release"}"#, "missing field `addr`"),
            (br#"{"cmd":"release","addr":"10.0.0.300"}"#, "bad request"),
            (br#"{"cmd":"lease","mac":"x","colour":1}"#, "unknown field"),
            (b"\xff\xfe", "bad request"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.contains(why), "{:?}: {e}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn lookups_take_exactly_one_key() {
        let l = |f: fn(&mut Lookup)| {
            let mut x = Lookup::default();
            f(&mut x);
            x.check()
        };
        assert_eq!(
            l(|x| x.client_id = Some("01:02:0a".into())),
            Ok(LookupBy::ClientId(vec![1, 2, 10]))
        );
        assert_eq!(
            l(|x| x.mac = Some("02-00-00-00-00-0a".into())),
            Ok(LookupBy::Mac([2, 0, 0, 0, 0, 10]))
        );
        assert!(l(|_| {}).unwrap_err().contains("needs one"));
        assert!(
            l(|x| {
                x.addr = Some(Ipv4Addr::LOCALHOST);
                x.mac = Some("02:00:00:00:00:01".into());
            })
            .unwrap_err()
            .contains("exactly one")
        );
        assert!(
            l(|x| x.mac = Some("02:00".into()))
                .unwrap_err()
                .contains("six hex")
        );
        assert!(
            l(|x| x.client_id = Some("zz".into()))
                .unwrap_err()
                .contains("not hex")
        );
    }

    #[test]
    fn queries_check_subnet_state_and_limit() {
        let f = Query {
            subnet: Some("10.1.2.3/16".into()),
            state: Some("Bound".into()),
            ..Query::default()
        }
        .check()
        .unwrap();
        assert_eq!(f.state, Some("bound"));
        assert_eq!(f.limit, DEFAULT_PAGE);
        let s = f.subnet.unwrap();
        assert!(s.holds(9, Ipv4Addr::new(10, 1, 200, 1)));
        assert!(!s.holds(0, Ipv4Addr::new(10, 2, 0, 1)));
        assert!(
            Query {
                subnet: Some("2".into()),
                ..Query::default()
            }
            .check()
            .unwrap()
            .subnet
            .unwrap()
            .holds(2, Ipv4Addr::UNSPECIFIED)
        );
        for (q, why) in [
            (
                Query {
                    state: Some("gone".into()),
                    ..Query::default()
                },
                "one of",
            ),
            (
                Query {
                    subnet: Some("10.0.0.0/33".into()),
                    ..Query::default()
                },
                "prefix length",
            ),
            (
                Query {
                    subnet: Some("x".into()),
                    ..Query::default()
                },
                "or an index",
            ),
            (
                Query {
                    limit: Some(0),
                    ..Query::default()
                },
                "between 1",
            ),
            (
                Query {
                    limit: Some(MAX_PAGE + 1),
                    ..Query::default()
                },
                "between 1",
            ),
        ] {
            assert!(q.check().unwrap_err().contains(why), "{q:?}");
        }
    }

    #[test]
    fn reservations_take_one_identity_like_the_config() {
        let r = |f: fn(&mut NewReservation)| {
            let mut x = NewReservation::default();
            f(&mut x);
            x.identity()
        };
        assert_eq!(
            r(|x| x.circuit_id = Some("eth0/1".into())),
            Ok(Identity::CircuitId(b"eth0/1".to_vec()))
        );
        assert_eq!(
            r(|x| x.remote_id_hex = Some("dead".into())),
            Ok(Identity::RemoteId(vec![0xde, 0xad]))
        );
        assert!(r(|_| {}).unwrap_err().contains("needs one"));
        assert!(
            r(|x| {
                x.mac = Some("02:00:00:00:00:01".into());
                x.client_id = Some("01".into());
            })
            .unwrap_err()
            .contains("exactly one")
        );
        assert!(
            r(|x| x.circuit_id = Some(String::new()))
                .unwrap_err()
                .contains("1 to 255")
        );
    }
}
