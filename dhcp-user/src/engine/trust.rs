//! Whom the engine believes: relay agent information (option 82, with
//! every use of it: circuit-id / remote-id reservations, link selection
//! 82.5, server-id override 82.11) and subnet selection (option 118) are
//! set by relay agents, and a subscriber can write them as easily (RFC 3046
//! §5). They are believed from relays (giaddr set, and inside
//! `trusted_relays` when that is configured) and from direct links whose
//! subnet says `trust_agent_info` (an L2 switch with DHCP snooping inserts
//! option 82 with giaddr 0); from anyone else they are taken out of the
//! request view, so no later step can use or echo them, or the request is
//! dropped (`untrusted_agent_info = "drop"`).
//!
//! The decision is taken once per request, here, before the subnet is
//! selected; every other step reads the view it left.
use super::decide::Silence;
use super::request::AgentTrust;
use super::{Engine, Request};

impl Engine {
    /// Decides whether `req`'s options 82 and 118 are believed and records
    /// it in `req.agent`; removes them from the view if not. `Err` when
    /// the request is to be dropped for them.
    pub(super) fn judge_agent_info(&self, req: &mut Request<'_>) -> Result<(), Silence> {
        if req.opts.agent_info.is_none() && req.opts.subnet_selection.is_none() {
            req.agent = AgentTrust::Absent;
            return Ok(());
        }
        let trusted = if req.giaddr.is_unspecified() {
            self.arrival_subnet(req).is_some_and(|s| s.trust_agent_info)
        } else {
            let g = u32::from(req.giaddr);
            self.trusted_relays.is_empty() || self.trusted_relays.iter().any(|(n, m)| g & m == *n)
        };
        if trusted {
            req.agent = AgentTrust::Trusted;
            return Ok(());
        }
        req.agent = AgentTrust::Ignored;
        // As if absent: not used, and not echoed either (RFC 3046 §2.2
        // has the relay strip option 82 from the reply; nobody strips what
        // a subscriber wrote, so echoing it would only confirm it).
        req.opts.agent_info = None;
        req.opts.subnet_selection = None;
        if self.drop_untrusted {
            return Err(Silence::Untrusted);
        }
        Ok(())
    }
}
