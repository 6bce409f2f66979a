//! Which answer a leasequery gets, and what it says (RFC 4388 §6.4):
//!
//! - by address (ciaddr): a binding of it → DHCPLEASEACTIVE; an address
//!   we hand out (a pool or a reservation) with no binding, or one whose
//!   lease was released or ran out → DHCPLEASEUNASSIGNED; any other
//!   address → DHCPLEASEUNKNOWN;
//! - by client identifier (option 61) or hardware address (chaddr): the
//!   client's newest binding → DHCPLEASEACTIVE, with every address it
//!   holds in option 92 when it holds more than one; a client we know
//!   only released or expired leases of → DHCPLEASEUNASSIGNED; a client
//!   we know nothing of → DHCPLEASEUNKNOWN.
//!
//! A query names one of the three; with none (no ciaddr, no option 61,
//! no chaddr) it is not answered.
use crate::config::Checked;
use crate::control::index::Index;
use crate::lease::journal::{INFINITE, LeaseRecord, RecordState};
use crate::wire::dhcp::{HTYPE_ETHERNET, MessageType};
use std::net::Ipv4Addr;

/// What a query asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By<'a> {
    Addr(Ipv4Addr),
    ClientId(&'a [u8]),
    /// htype, and chaddr as long as hlen says.
    HwAddr(u8, &'a [u8]),
}

impl By<'_> {
    /// RFC 4388 §6.1: ciaddr first, then option 61, then chaddr.
    pub fn of<'a>(
        ciaddr: Ipv4Addr,
        client_id: Option<&'a [u8]>,
        htype: u8,
        hw: &'a [u8],
    ) -> Option<By<'a>> {
        if !ciaddr.is_unspecified() {
            Some(By::Addr(ciaddr))
        } else if let Some(id) = client_id.filter(|id| !id.is_empty()) {
            Some(By::ClientId(id))
        } else if !hw.is_empty() && hw.iter().any(|b| *b != 0) {
            Some(By::HwAddr(htype, hw))
        } else {
            None
        }
    }
}

/// The answer: its type, the address in ciaddr, the lease it reports
/// (ACTIVE), and the client's other bound addresses (option 92).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub kind: MessageType,
    /// The bound address (ACTIVE), or the queried one (UNASSIGNED by
    /// address); unspecified otherwise.
    pub ciaddr: Ipv4Addr,
    pub lease: Option<LeaseRecord>,
    /// Every bound address of the client when it has more than one
    /// (queries by client-id or MAC), ciaddr's included; else empty.
    pub associated: Vec<Ipv4Addr>,
    /// The subnet whose server identifier the answer carries.
    pub subnet: Option<u16>,
}

/// The subnets as leasequery sees them: which addresses we hand out, and
/// each subnet's server identifier (option 54 and the IP source).
pub struct Served {
    subnets: Vec<ServedSubnet>,
}

struct ServedSubnet {
    network: u32,
    mask: u32,
    server_id: Ipv4Addr,
    pools: Vec<(u32, u32)>,
    reserved: Vec<Ipv4Addr>,
}

impl Served {
    /// In the config's order: a record's `subnet` is its index there.
    pub fn new(cfg: &Checked) -> Served {
        Served {
            subnets: cfg
                .subnets
                .iter()
                .map(|s| ServedSubnet {
                    network: u32::from(s.network),
                    mask: s.mask(),
                    server_id: s.server_id,
                    pools: s
                        .pools
                        .iter()
                        .map(|(a, b)| (u32::from(*a), u32::from(*b)))
                        .collect(),
                    reserved: s.reservations.iter().map(|r| r.address).collect(),
                })
                .collect(),
        }
    }

    /// The subnet handing `a` out (from a pool or a reservation).
    pub fn manager_of(&self, a: Ipv4Addr) -> Option<u16> {
        let n = u32::from(a);
        self.subnets
            .iter()
            .position(|s| {
                s.pools.iter().any(|(lo, hi)| (*lo..=*hi).contains(&n)) || s.reserved.contains(&a)
            })
            .map(|i| i as u16)
    }

    /// The server identifier of an answer about `subnet`, else of the
    /// subnet `giaddr` is in, else of the first subnet.
    pub fn server_id(&self, subnet: Option<u16>, giaddr: Ipv4Addr) -> Ipv4Addr {
        let g = u32::from(giaddr);
        subnet
            .and_then(|i| self.subnets.get(usize::from(i)))
            .or_else(|| self.subnets.iter().find(|s| g & s.mask == s.network))
            .or(self.subnets.first())
            .map_or(Ipv4Addr::UNSPECIFIED, |s| s.server_id)
    }
}

/// A record holds its address at `now` (a binding not past its end).
pub fn is_bound(r: &LeaseRecord, now: u64) -> bool {
    r.state == RecordState::Bound && (r.expires_unix == INFINITE || r.expires_unix > now)
}

/// The answer to a query asking `by`, from `index` at `now`.
pub fn answer(by: By<'_>, index: &Index, served: &Served, now: u64) -> Answer {
    let unknown = Answer {
        kind: MessageType::LeaseUnknown,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        lease: None,
        associated: Vec::new(),
        subnet: None,
    };
    match by {
        By::Addr(a) => match index.get(a) {
            Some(r) if is_bound(r, now) => Answer {
                kind: MessageType::LeaseActive,
                ciaddr: a,
                lease: Some(*r),
                associated: Vec::new(),
                subnet: Some(r.subnet),
            },
            // Ours, not bound: never leased, released, expired or
            // declined (in probation: nobody's).
            known => match (known.map(|r| r.subnet), served.manager_of(a)) {
                (None, None) => unknown,
                (rec, pool) => Answer {
                    kind: MessageType::LeaseUnassigned,
                    ciaddr: a,
                    lease: None,
                    associated: Vec::new(),
                    subnet: rec.or(pool),
                },
            },
        },
        By::ClientId(id) => of_client(index.of_client_id(id), now).unwrap_or(unknown),
        // The index keeps Ethernet addresses only.
        By::HwAddr(htype, hw) => match <&[u8; 6]>::try_from(hw) {
            Ok(mac) if htype == HTYPE_ETHERNET => {
                of_client(index.of_hwaddr(mac), now).unwrap_or(unknown)
            }
            _ => unknown,
        },
    }
}

/// The answer about a client from its records; `None`: no record.
fn of_client<'a>(records: impl Iterator<Item = &'a LeaseRecord>, now: u64) -> Option<Answer> {
    let mut any = None;
    let mut bound: Vec<&LeaseRecord> = Vec::new();
    for r in records {
        any = Some(r.subnet);
        if is_bound(r, now) {
            bound.push(r);
        }
    }
    let subnet = any?;
    // The newest transaction: the binding the client uses now.
    let Some(newest) = bound.iter().max_by_key(|r| r.cltt_unix).copied() else {
        return Some(Answer {
            kind: MessageType::LeaseUnassigned,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            lease: None,
            associated: Vec::new(),
            subnet: Some(subnet),
        });
    };
    Some(Answer {
        kind: MessageType::LeaseActive,
        ciaddr: newest.addr,
        lease: Some(*newest),
        associated: if bound.len() > 1 {
            bound.iter().map(|r| r.addr).collect()
        } else {
            Vec::new()
        },
        subnet: Some(newest.subnet),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::lease::ClientKey;

    pub(crate) const NOW: u64 = 1_800_000_000;

    pub(crate) const CONFIG: &str = r#"
interface = "test0"
server_id = "192.0.2.1"

[journal]
dir = "/tmp/unused"

[leasequery]

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["192.0.2.10-192.0.2.20"]

[[subnet]]
prefix = "198.51.100.0/24"
server_id = "198.51.100.1"
pools = ["198.51.100.10-198.51.100.20"]
"#;

    pub(crate) fn rec(last: u8, hw: u8, state: RecordState, cltt: u64) -> LeaseRecord {
        let mac = [2, 0, 0, 0, 0, hw];
        LeaseRecord {
            subnet: 0,
            addr: Ipv4Addr::new(192, 0, 2, last),
            client: ClientKey::new(0, 0, &mac),
            hwaddr: mac,
            state,
            expires_unix: NOW + 600,
            cltt_unix: cltt,
            hostname: Default::default(),
            agent_info: Default::default(),
            fqdn_flags: 0,
        }
    }

    fn served() -> Served {
        Served::new(&Config::parse(CONFIG).unwrap())
    }

    const A10: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const A11: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

    #[test]
    fn the_query_names_what_it_asks_by_in_the_rfcs_order() {
        let hw = [2, 0, 0, 0, 0, 1];
        assert_eq!(By::of(A10, Some(&[1]), 1, &hw), Some(By::Addr(A10)));
        let u = Ipv4Addr::UNSPECIFIED;
        assert_eq!(By::of(u, Some(&[1]), 1, &hw), Some(By::ClientId(&[1])));
        assert_eq!(By::of(u, Some(&[]), 1, &hw), Some(By::HwAddr(1, &hw)));
        assert_eq!(By::of(u, None, 1, &[0; 6]), None);
        assert_eq!(By::of(u, None, 1, &[]), None);
    }

    #[test]
    fn by_address_active_unassigned_and_unknown() {
        let s = served();
        let mut released = rec(11, 2, RecordState::Released, NOW - 10);
        released.expires_unix = NOW - 10;
        let mut expired = rec(12, 3, RecordState::Bound, NOW - 900);
        expired.expires_unix = NOW - 300;
        let i = Index::new(
            &[rec(10, 1, RecordState::Bound, NOW - 5), released, expired],
            3600,
        );
        let a = answer(By::Addr(A10), &i, &s, NOW);
        assert_eq!(a.kind, MessageType::LeaseActive);
        assert_eq!(a.ciaddr, A10);
        assert_eq!(a.lease.unwrap().hwaddr, [2, 0, 0, 0, 0, 1]);
        assert!(a.associated.is_empty());
        for addr in [
            A11,
            Ipv4Addr::new(192, 0, 2, 12),
            Ipv4Addr::new(192, 0, 2, 13),
        ] {
            let a = answer(By::Addr(addr), &i, &s, NOW);
            assert_eq!(
                (a.kind, a.ciaddr, a.lease, a.subnet),
                (MessageType::LeaseUnassigned, addr, None, Some(0)),
                "{addr}"
            );
        }
        // A pool address of the second subnet: its server identifier.
        let b = Ipv4Addr::new(198, 51, 100, 15);
        let a = answer(By::Addr(b), &i, &s, NOW);
        assert_eq!((a.kind, a.subnet), (MessageType::LeaseUnassigned, Some(1)));
        assert_eq!(s.server_id(a.subnet, A10), Ipv4Addr::new(198, 51, 100, 1));
        // In a subnet but outside its pools (the router), or outside all.
        for addr in [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(203, 0, 113, 5)] {
            let a = answer(By::Addr(addr), &i, &s, NOW);
            assert_eq!(
                (a.kind, a.ciaddr, a.subnet),
                (MessageType::LeaseUnknown, Ipv4Addr::UNSPECIFIED, None),
                "{addr}"
            );
        }
        // Past its end, the binding is unassigned without a record saying so.
        let a = answer(By::Addr(A10), &i, &s, NOW + 601);
        assert_eq!(a.kind, MessageType::LeaseUnassigned);
    }

    #[test]
    fn by_client_the_newest_binding_and_all_of_them_in_option_92() {
        let s = served();
        let mut with_id = rec(15, 9, RecordState::Bound, NOW - 1);
        with_id.client = ClientKey::new(0, 1, &[1, 0xaa, 0xbb]);
        let mut gone = rec(16, 5, RecordState::Released, NOW - 1);
        gone.expires_unix = NOW - 1;
        let i = Index::new(
            &[
                rec(10, 1, RecordState::Bound, NOW - 50),
                rec(11, 1, RecordState::Bound, NOW - 5),
                rec(12, 2, RecordState::Bound, NOW - 5),
                with_id,
                gone,
            ],
            3600,
        );
        let mac1 = [2, 0, 0, 0, 0, 1];
        let a = answer(By::HwAddr(1, &mac1), &i, &s, NOW);
        assert_eq!((a.kind, a.ciaddr), (MessageType::LeaseActive, A11));
        assert_eq!(a.associated, [A10, A11]);
        let a = answer(By::HwAddr(1, &[2, 0, 0, 0, 0, 2]), &i, &s, NOW);
        assert_eq!(
            (a.kind, a.ciaddr),
            (MessageType::LeaseActive, Ipv4Addr::new(192, 0, 2, 12))
        );
        assert!(a.associated.is_empty(), "one address: no option 92");
        let a = answer(By::ClientId(&[1, 0xaa, 0xbb]), &i, &s, NOW);
        assert_eq!(
            (a.kind, a.ciaddr),
            (MessageType::LeaseActive, Ipv4Addr::new(192, 0, 2, 15))
        );
        // Known, nothing bound; unknown; not Ethernet.
        let a = answer(By::HwAddr(1, &[2, 0, 0, 0, 0, 5]), &i, &s, NOW);
        assert_eq!(
            (a.kind, a.ciaddr, a.subnet),
            (MessageType::LeaseUnassigned, Ipv4Addr::UNSPECIFIED, Some(0))
        );
        for by in [
            By::HwAddr(1, &[2, 0, 0, 0, 0, 77]),
            By::HwAddr(6, &mac1),
            By::ClientId(&[1, 0xaa]),
        ] {
            assert_eq!(
                answer(by, &i, &s, NOW).kind,
                MessageType::LeaseUnknown,
                "{by:?}"
            );
        }
        // Unknown: the server identifier of the relay's subnet, or the first.
        assert_eq!(
            s.server_id(None, Ipv4Addr::new(198, 51, 100, 254)),
            Ipv4Addr::new(198, 51, 100, 1)
        );
        assert_eq!(
            s.server_id(None, Ipv4Addr::new(10, 9, 9, 9)),
            Ipv4Addr::new(192, 0, 2, 1)
        );
    }
}
