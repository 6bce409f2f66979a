//! `[leasequery]`: whether the server answers RFC 4388 DHCPLEASEQUERY,
//! and from which relays.
//!
//! A leasequery answer discloses who holds an address: the subscriber's
//! hardware address, client identifier and relay agent information. So
//! only the requesters listed here are answered. Without `requesters`
//! the list is `trusted_relays` (the relays already trusted with option
//! 82), and without either nobody is: the section alone opens nothing.
use serde::Deserialize;
use std::net::Ipv4Addr;
use toml::Spanned;

/// `[leasequery]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseQueryConfig {
    /// `false` keeps the section but answers nothing.
    #[serde(default = "yes")]
    pub enable: bool,
    /// Prefixes a query's giaddr must be in; default `trusted_relays`.
    pub requesters: Option<Vec<Spanned<String>>>,
    /// `address:port` of the bulk leasequery listener (RFC 6926, TCP;
    /// the RFC's port is 67); without it, none.
    pub bulk_listen: Option<Spanned<String>>,
}

fn yes() -> bool {
    true
}

/// `[leasequery]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseQuery {
    /// (network, prefix length) a query's giaddr must be in; empty:
    /// every query is refused.
    pub requesters: Vec<(Ipv4Addr, u8)>,
    /// Where bulk leasequery (TCP) listens; `None`: no bulk leasequery.
    pub bulk_listen: Option<std::net::SocketAddr>,
}

impl LeaseQuery {
    /// Whether a query relayed by `giaddr` is answered.
    pub fn allows(&self, giaddr: Ipv4Addr) -> bool {
        let a = u32::from(giaddr);
        !giaddr.is_unspecified()
            && self.requesters.iter().any(|(n, len)| {
                let m = super::prefix_mask(*len);
                a & m == u32::from(*n) & m
            })
    }
}
