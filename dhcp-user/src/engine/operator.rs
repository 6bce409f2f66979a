//! What the operator asks of the engine through the control API, beside
//! the packet path: force-freeing an address, and reading the lease table
//! when there is no journal to answer from. Both walk the table shard by
//! shard on the control side thread (as the expiry sweeper does); no
//! worker waits longer than one shard's walk.
use super::client::KEY_CHADDR;
use super::{Clock, Engine};
use crate::lease::journal::{INFINITE, LeaseRecord, RecordState};
use crate::lease::{ClientKey, LeaseState};
use std::net::Ipv4Addr;

/// One record of the lease table as the control API shows it without a
/// journal: only what the table keeps (no hostname, no relay data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLease {
    /// The subnet's index in the configuration.
    pub subnet: u16,
    pub addr: Ipv4Addr,
    pub key: ClientKey,
    pub state: LeaseState,
    /// Wall-clock seconds; [`INFINITE`] for a lease that never ends.
    pub expires_unix: u64,
}

/// Engine seconds `at` as wall-clock seconds, by `clock`.
fn unix_of(at: u32, clock: Clock) -> u64 {
    if at == u32::MAX {
        INFINITE
    } else if at >= clock.secs {
        clock.unix + u64::from(at - clock.secs)
    } else {
        clock.unix.saturating_sub(u64::from(clock.secs - at))
    }
}

impl Engine {
    /// Force-frees `addr` (`xdhcpctl release`): its holder's record — an
    /// offer, a binding or a quarantine — ends as released now, the
    /// address goes back to its pool (unless reserved) and the lease's
    /// line counters are given back, as for the client's own RELEASE. The
    /// record to journal is returned, so that the release survives a
    /// restart and DDNS takes the name away; `known` is what the journal
    /// last said of the address (hostname, relay data, hardware address),
    /// copied when it is the same client's. `None`: nobody holds `addr`.
    pub fn release_addr(
        &self,
        addr: Ipv4Addr,
        clock: Clock,
        known: Option<&LeaseRecord>,
    ) -> Option<LeaseRecord> {
        let s = self.subnets.iter().find(|s| s.contains(addr))?;
        let mut freed: Option<ClientKey> = None;
        self.leases.retain(|k, l| {
            if freed.is_some() || k.subnet != s.link || l.addr != addr || !l.state.holds() {
                return true;
            }
            freed = Some(*k);
            s.free(addr);
            self.put_lines(std::mem::take(&mut l.lines));
            if l.state == LeaseState::Declined {
                // A quarantine has no client to keep a record for.
                if !s.is_reserved(addr) {
                    s.leave_probation();
                }
                return false;
            }
            l.state = LeaseState::Released;
            l.expires = clock.secs;
            self.keep_released > 0
        });
        let key = freed?;
        // In use until now: no conflict probe needed soon.
        self.leased(s, addr, clock.secs);
        let mut rec = match known.filter(|r| r.addr == addr && r.client == key) {
            Some(r) => *r,
            None => LeaseRecord {
                subnet: s.id,
                addr,
                client: key,
                hwaddr: [0; 6],
                state: RecordState::Released,
                expires_unix: 0,
                cltt_unix: clock.unix,
                hostname: Default::default(),
                agent_info: Default::default(),
                fqdn_flags: 0,
            },
        };
        if key.kind == KEY_CHADDR && key.len == 6 {
            rec.hwaddr.copy_from_slice(&key.bytes[..6]);
        }
        rec.subnet = s.id;
        rec.state = RecordState::Released;
        rec.expires_unix = clock.unix;
        Some(rec)
    }

    /// Every record of the lease table, with its subnet and its times on
    /// the wall clock (the control API without a journal).
    pub fn table_leases(&self, clock: Clock) -> Vec<TableLease> {
        let mut out = Vec::with_capacity(self.leases.len());
        self.leases.retain(|k, l| {
            if let Some(s) = self.subnet_of(k.subnet, l.addr) {
                out.push(TableLease {
                    subnet: s.id,
                    addr: l.addr,
                    key: *k,
                    state: l.state,
                    expires_unix: unix_of(l.expires, clock),
                });
            }
            true
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::bound_tests::run;
    use super::super::conflict::tests::{discover, request};
    use super::*;
    use crate::config::Config;
    use crate::lease::limits::LineKind;
    use crate::wire::dhcp::MessageType;

    const CONFIG: &str = r#"
interface = "test0"
server_id = "192.0.2.1"

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["192.0.2.10-192.0.2.20"]

[subnet.limits]
leases_per_mac = 1
"#;
    const A10: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const A11: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

    fn clock(secs: u32) -> Clock {
        Clock {
            secs,
            unix: 1_000_000 + u64::from(secs),
            micros: u64::from(secs) * 1_000_000,
        }
    }

    fn select(last: u8, addr: Ipv4Addr) -> Vec<u8> {
        let a = addr.octets();
        request(
            last,
            &[53, 1, 3, 54, 4, 192, 0, 2, 1, 50, 4, a[0], a[1], a[2], a[3]],
        )
    }

    /// Client `last` through DISCOVER and REQUEST: its address.
    fn bind(e: &Engine, last: u8, secs: u32) -> Ipv4Addr {
        let (_, _, _, offered) = run(e, &discover(last), secs);
        let (v, rec, _, acked) = run(e, &select(last, offered), secs);
        assert!(
            matches!(v, super::super::Verdict::Reply(_, MessageType::Ack, _)),
            "{v:?}"
        );
        assert_eq!(rec.unwrap().state, RecordState::Bound);
        acked
    }

    fn mac_line(e: &Engine, last: u8) -> u32 {
        let mac = super::super::conflict::tests::mac(last);
        e.lines().count(e.lines().key(LineKind::Mac, 0, &mac))
    }

    #[test]
    fn release_frees_the_address_for_the_next_client_and_gives_lines_back() {
        let e = Engine::new(&Config::parse(CONFIG).unwrap());
        assert_eq!(bind(&e, 1, 5), A10);
        assert_eq!(mac_line(&e, 1), 1);
        assert!(e.subnets()[0].pool.is_taken(A10));
        let rec = e.release_addr(A10, clock(9), None).unwrap();
        assert_eq!(rec.addr, A10);
        assert_eq!(rec.state, RecordState::Released);
        assert_eq!(rec.expires_unix, clock(9).unix);
        assert_eq!(rec.hwaddr, super::super::conflict::tests::mac(1));
        assert!(!e.subnets()[0].pool.is_taken(A10));
        assert_eq!(mac_line(&e, 1), 0);
        // The table keeps the record, released (keep_released).
        let t = e.table_leases(clock(9));
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].state, LeaseState::Released);
        // Nobody holds it now: a second release finds nothing.
        assert_eq!(e.release_addr(A10, clock(9), None), None);
        // The next client is offered the freed address.
        assert_eq!(bind(&e, 2, 10), A10);
    }

    #[test]
    fn release_copies_what_the_journal_knew_of_the_same_client_only() {
        let e = Engine::new(&Config::parse(CONFIG).unwrap());
        bind(&e, 1, 5);
        let key = e.table_leases(clock(5))[0].key;
        let mut known = crate::lease::journal::tests::sample(0);
        known.addr = A10;
        known.client = key;
        known.hostname = crate::lease::journal::FixedBytes::new(b"printer").0;
        let rec = e.release_addr(A10, clock(6), Some(&known)).unwrap();
        assert_eq!(rec.hostname.as_slice(), b"printer");
        assert_eq!(rec.state, RecordState::Released);
        // Another client's record of the address is not copied.
        bind(&e, 2, 7);
        known.client.bytes[0] ^= 1;
        let rec = e.release_addr(A10, clock(8), Some(&known)).unwrap();
        assert!(rec.hostname.is_empty());
    }

    #[test]
    fn release_of_an_unheld_or_foreign_address_is_none() {
        let e = Engine::new(&Config::parse(CONFIG).unwrap());
        bind(&e, 1, 5);
        assert_eq!(e.release_addr(A11, clock(6), None), None);
        assert_eq!(
            e.release_addr(Ipv4Addr::new(198, 51, 100, 1), clock(6), None),
            None
        );
        assert!(e.subnets()[0].pool.is_taken(A10));
    }

    #[test]
    fn table_leases_give_wall_clock_expiry() {
        let e = Engine::new(&Config::parse(CONFIG).unwrap());
        bind(&e, 1, 5);
        let t = e.table_leases(clock(5));
        assert_eq!(t[0].state, LeaseState::Bound);
        // The default lease time, 7200 s, from engine second 5.
        assert_eq!(t[0].expires_unix, clock(5).unix + 7200);
        assert_eq!(unix_of(u32::MAX, clock(5)), INFINITE);
        assert_eq!(unix_of(3, clock(5)), clock(5).unix - 2);
    }
}
