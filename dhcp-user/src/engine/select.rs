//! Subnet selection: which configured subnet a request belongs to
//! (RFC 2131 §4.3.1, RFC 3011, RFC 3527), and within a shared network,
//! which member subnet it is about.
//!
//! `subnet.rs` holds what a subnet is at run time; this file only finds
//! one for a request.
use super::subnet::SubnetRt;
use super::{Engine, Request};
use crate::lease::ClientKey;
use crate::wire::dhcp::MessageType;
use crate::wire::options::{agent, agent_sub_option};
use std::net::Ipv4Addr;

impl Engine {
    /// RFC 2131 §4.3.1 plus the relay RFCs: subnet selection (118), link
    /// selection (82.5), then giaddr, then the link the frame came in on.
    /// Options 82 and 118 are read as the trust step left them: absent
    /// unless believed.
    pub(super) fn select_subnet(&self, req: &Request<'_>) -> Option<&SubnetRt> {
        let link_selection = req
            .opts
            .agent_info
            .and_then(|ai| agent_sub_option(ai, agent::LINK_SELECTION))
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(Ipv4Addr::from);
        if let Some(a) = req
            .opts
            .subnet_selection
            .or(link_selection)
            .or_else(|| (!req.giaddr.is_unspecified()).then_some(req.giaddr))
        {
            return self.subnets.iter().find(|s| s.contains(a));
        }
        let vid = req.vlans.outer_vid();
        // A client that has an address renews, rebinds, releases or asks
        // for options (INFORM) straight to us, also when it got the address
        // through a relay (RFC 2131 §4.3.2: RENEWING is unicast, giaddr 0):
        // the subnet holding ciaddr. Never for a DISCOVER, whose ciaddr
        // means nothing and would otherwise open a relay-only pool to a
        // direct client.
        if !req.ciaddr.is_unspecified()
            && req.kind != MessageType::Discover
            && let Some(s) = self
                .subnets
                .iter()
                .find(|s| s.vlan == vid && s.contains(req.ciaddr))
        {
            return Some(s);
        }
        self.arrival_subnet(req)
    }

    /// The subnet of the link a direct request (giaddr 0) arrived on: one
    /// serving direct clients on its VLAN (or untagged), the one holding
    /// ciaddr if there is one, else the first. Relay-only subnets are
    /// never the answer.
    pub(super) fn arrival_subnet(&self, req: &Request<'_>) -> Option<&SubnetRt> {
        let vid = req.vlans.outer_vid();
        let mut on_link = self.subnets.iter().filter(|s| s.direct && s.vlan == vid);
        if req.ciaddr.is_unspecified() {
            return on_link.next();
        }
        let first = on_link.clone().next();
        on_link.find(|s| s.contains(req.ciaddr)).or(first)
    }

    /// Within a shared network, the subnet the request is about: the one
    /// holding the address it names (ciaddr, option 50), else the one
    /// holding the client's current lease, else the selected one.
    pub(super) fn member_for<'a>(
        &'a self,
        s: &'a SubnetRt,
        key: &ClientKey,
        req: &Request<'_>,
    ) -> &'a SubnetRt {
        if self.siblings(s).next().is_none() {
            return s;
        }
        let named = [
            req.ciaddr,
            req.opts.requested_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        ];
        let holds = |a: Ipv4Addr| {
            std::iter::once(s)
                .chain(self.siblings(s))
                .find(|m| m.contains(a))
        };
        if let Some(m) = named
            .iter()
            .filter(|a| !a.is_unspecified())
            .find_map(|a| holds(*a))
        {
            return m;
        }
        self.leases
            .get(key)
            .and_then(|l| holds(l.addr))
            .unwrap_or(s)
    }

    /// The subnet of `link` that holds `addr`.
    pub(super) fn subnet_of(&self, link: u16, addr: Ipv4Addr) -> Option<&SubnetRt> {
        self.subnets
            .iter()
            .find(|s| s.link == link && s.contains(addr))
    }

    /// The other subnets on `s`'s link, in configuration order (empty
    /// unless `s` is in a shared network).
    pub(super) fn siblings<'a>(
        &'a self,
        s: &'a SubnetRt,
    ) -> impl Iterator<Item = &'a SubnetRt> + Clone + 'a {
        self.subnets
            .iter()
            .filter(move |o| o.link == s.link && o.id != s.id)
    }
}
