//! A cluster member cut off from NATS, in durable mode: it no longer owns
//! its shares (another member may take them over at any moment), but the
//! subscribers it can still hear should not lose their addresses because
//! the NATS cluster is down. So it answers one thing: a REQUEST renewing a
//! lease it holds, with an ACK for the same address and the time the lease
//! has left — never a new address, never a longer lease, never a record.
//!
//! Why that cannot give an address twice: the address stays with the
//! client that holds it; and the lease ends when it ended before, which is
//! what every other member knows of it from the stream (a record it made
//! before the cut), so a member that took the share over frees the address
//! no earlier than the client stops using it. In replicated mode the
//! cluster thread never sets this (an ACK there means "stored on a
//! quorum").
use super::lifecycle::expiry;
use super::reply::Reply;
use super::subnet::{SubnetRt, renewal_times};
use super::{Engine, Request, Silence};
use crate::lease::{ClientKey, LeaseState};
use crate::wire::dhcp::MessageType;

/// Below this many seconds left, the client is left to find a server
/// that owns it: an ACK for a few seconds only makes it come back at once.
const MIN_LEFT: u32 = 30;

impl Engine {
    /// The ACK of a renewal (RENEWING, REBINDING or INIT-REBOOT) of the
    /// lease this server holds for `key`, for the time it has left; silent
    /// for anything else.
    pub(super) fn renew_known<'a>(
        &'a self,
        selected: &'a SubnetRt,
        key: &ClientKey,
        req: &Request<'_>,
        now: u32,
    ) -> Result<(&'a SubnetRt, Reply), Silence> {
        let l = self.leases.get(key).ok_or(Silence::NotOwned)?;
        let asked = if req.ciaddr.is_unspecified() {
            req.opts.requested_ip
        } else {
            Some(req.ciaddr)
        };
        // A SELECTING REQUEST (server identifier set) answers an OFFER:
        // a new lease, not a renewal.
        if l.state != LeaseState::Bound || asked != Some(l.addr) || req.opts.server_id.is_some() {
            return Err(Silence::NotOwned);
        }
        let left = l.expires.saturating_sub(now);
        if l.expires != u32::MAX && left < MIN_LEFT {
            return Err(Silence::NotOwned);
        }
        let s = self
            .subnet_of(selected.link, l.addr)
            .ok_or(Silence::NotOwned)?;
        let lease = if l.expires == u32::MAX {
            u32::MAX
        } else {
            left
        };
        debug_assert_eq!(expiry(now, lease), l.expires);
        Ok((
            s,
            Reply {
                kind: MessageType::Ack,
                yiaddr: l.addr,
                times: Some(renewal_times(lease)),
                server_id: s.server_id,
                limited: None,
            },
        ))
    }
}
