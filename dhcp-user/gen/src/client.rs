//! One simulated client: its identity (derived from its index, so it costs
//! no memory) and the state of its current exchange.
use std::net::Ipv4Addr;

/// Most clients one run can simulate: the client's index fills the low 24
/// bits of every xid and MAC it uses.
pub const MAX_CLIENTS: u32 = 1 << 24;
const INDEX_MASK: u32 = MAX_CLIENTS - 1;

/// Where a client is in its exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// No exchange running; free to start one.
    #[default]
    Idle,
    /// DISCOVER sent, waiting for an OFFER.
    Selecting,
    /// REQUEST for the offer sent, waiting for the ACK.
    Requesting,
    /// Bound, no exchange running (mixed scenario: may renew).
    Bound,
    /// Unicast REQUEST with ciaddr sent, waiting for the ACK.
    Renewing,
    /// Broadcast REQUEST with ciaddr sent, waiting for the ACK.
    Rebinding,
    /// INIT-REBOOT: broadcast REQUEST for the address held (option 50, no
    /// server identifier, ciaddr 0) sent, waiting for the ACK.
    Rebooting,
    /// Bound and about to send its RELEASE (no reply comes).
    Releasing,
    /// Offered or bound and about to DECLINE the address (no reply comes).
    Declining,
}

impl Phase {
    /// Whether a message of this phase waits for a reply (and so has a
    /// retransmission timer).
    pub fn awaits_reply(self) -> bool {
        matches!(
            self,
            Phase::Selecting
                | Phase::Requesting
                | Phase::Renewing
                | Phase::Rebinding
                | Phase::Rebooting
        )
    }
}

/// The state of one client. `Copy` and small, kept in one array per worker.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub phase: Phase,
    /// Sends of the current message so far (1 after the first).
    pub tries: u8,
    /// Bumped for every new transaction: the xid's top byte.
    pub epoch: u8,
    /// In the worker's queue of clients due to send.
    pub queued: bool,
    /// The address offered in the current exchange.
    pub offered: Ipv4Addr,
    /// The address this client holds (recorded in the address book), or
    /// 0.0.0.0.
    pub held: Ipv4Addr,
    pub server_id: Ipv4Addr,
    /// The Ethernet source of the server's last reply: where unicast to
    /// the server goes.
    pub server_mac: [u8; 6],
    /// When the exchange's first message went out (ns since run start).
    pub started_ns: u64,
    /// When the current message first went out.
    pub msg_ns: u64,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            phase: Phase::Idle,
            tries: 0,
            epoch: 0,
            queued: false,
            offered: Ipv4Addr::UNSPECIFIED,
            held: Ipv4Addr::UNSPECIFIED,
            server_id: Ipv4Addr::UNSPECIFIED,
            server_mac: [0; 6],
            started_ns: 0,
            msg_ns: 0,
        }
    }
}

impl Client {
    /// The current transaction's id: epoch in the top byte, the client's
    /// index below, so a reply finds its client without a lookup table.
    #[inline]
    pub fn xid(&self, index: u32) -> u32 {
        (u32::from(self.epoch) << 24) | (index & INDEX_MASK)
    }
}

/// The client index an xid names.
#[inline]
pub fn xid_index(xid: u32) -> u32 {
    xid & INDEX_MASK
}

/// The xid's transaction number.
#[inline]
pub fn xid_epoch(xid: u32) -> u8 {
    (xid >> 24) as u8
}

/// Client `index`'s MAC: the run's 3-byte prefix (locally administered)
/// and the index.
#[inline]
pub fn client_mac(prefix: [u8; 3], index: u32) -> [u8; 6] {
    let i = index.to_be_bytes();
    [prefix[0], prefix[1], prefix[2], i[1], i[2], i[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xid_round_trip() {
        let c = Client {
            epoch: 0xab,
            ..Client::default()
        };
        let x = c.xid(0x12_3456);
        assert_eq!(x, 0xab12_3456);
        assert_eq!(xid_index(x), 0x12_3456);
        assert_eq!(xid_epoch(x), 0xab);
        assert_eq!(
            client_mac([2, 0x67, 0x65], 0x12_3456),
            [2, 0x67, 0x65, 0x12, 0x34, 0x56]
        );
        assert!(Phase::Renewing.awaits_reply() && !Phase::Releasing.awaits_reply());
    }
}
