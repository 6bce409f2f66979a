//! The server's DDNS naming policy over what `wire::fqdn` reads and
//! writes: what it does with a client's option 81 flags (RFC 4702) and
//! which label a lease gets (`replace_client_name`, `generated_name`).
//! The engine (for the reply) and the DDNS thread (for the update) both
//! call `choose_label`, so they always agree on the name.
use crate::config::ddns::ReplaceClientName;
use crate::wire::fqdn::{
    ClientFqdn, FLAG_E, FLAG_N, FLAG_O, FLAG_S, MAX_LABEL, Pattern, client_label,
};
use std::net::Ipv4Addr;

/// What the server does for a client that sent option 81, and the flags
/// of its reply (RFC 4702 §4, §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The server writes the A record (and DHCID).
    pub forward: bool,
    /// The server writes the PTR record.
    pub reverse: bool,
    /// Flags for the reply's option 81.
    pub reply_flags: u8,
}

/// The server's part given the client's flags, with Kea's
/// `ddns-override-client-update` and `ddns-override-no-update`:
///
/// | client | override        | server does  | reply      |
/// |--------|-----------------|--------------|------------|
/// | S=1    | -               | A and PTR    | S=1        |
/// | S=0    | no              | PTR only     | S=0        |
/// | S=0    | client_update   | A and PTR    | S=1, O=1   |
/// | N=1    | no              | nothing      | N=1, S=0   |
/// | N=1    | no_update       | A and PTR    | S=1, O=1   |
///
/// E in the reply is the client's E. A client setting both S and N
/// (RFC 4702 §2.1: "If the N bit is 1, the S bit MUST be 0") is taken
/// at its N: it said it wants no updates, and doing none is the
/// cautious reading (Kea refuses such an option). A client's O bit is
/// ignored (it MUST be 0 from a client).
///
/// A client without option 81 (option 12 or no name at all) does not
/// come here: the server writes both records for it, and sends no option
/// 81 back (RFC 4702 §4: only to clients that sent one).
pub fn decide(
    client_flags: u8,
    override_client_update: bool,
    override_no_update: bool,
) -> Decision {
    let e = client_flags & FLAG_E;
    let both = |reply: u8| Decision {
        forward: true,
        reverse: true,
        reply_flags: reply | e,
    };
    if client_flags & FLAG_N != 0 {
        if override_no_update {
            both(FLAG_S | FLAG_O)
        } else {
            Decision {
                forward: false,
                reverse: false,
                reply_flags: FLAG_N | e,
            }
        }
    } else if client_flags & FLAG_S != 0 {
        both(FLAG_S)
    } else if override_client_update {
        both(FLAG_S | FLAG_O)
    } else {
        Decision {
            forward: false,
            reverse: true,
            reply_flags: e,
        }
    }
}

/// The label for a lease, into `out`; its length, 0 for no name. The
/// engine and the DDNS thread both call this, so they always agree on the
/// name.
///
/// The client's name is option 81's first label, else option 12's
/// (also only up to its first '.': some clients put their FQDN there),
/// sanitised. `Always` ignores it for `pattern`; `WhenAbsent` uses
/// `pattern` when the client's name is missing or nothing usable remains
/// of it; `Never` gives 0 then.
pub fn choose_label(
    fqdn: Option<&ClientFqdn>,
    hostname: Option<&[u8]>,
    policy: ReplaceClientName,
    pattern: &Pattern,
    addr: Ipv4Addr,
    chaddr: &[u8],
    out: &mut [u8; MAX_LABEL],
) -> usize {
    if policy != ReplaceClientName::Always {
        let n = client_label(fqdn, hostname, out);
        if n > 0 || policy == ReplaceClientName::Never {
            return n;
        }
    }
    pattern.render(addr, chaddr, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_follows_rfc_4702_and_the_overrides() {
        let d = |forward, reverse, reply_flags| Decision {
            forward,
            reverse,
            reply_flags,
        };
        let (s, o, n, e) = (FLAG_S, FLAG_O, FLAG_N, FLAG_E);
        // (client flags, override_client_update, override_no_update) -> decision
        let table = [
            (s, false, false, d(true, true, s)),
            (s, true, false, d(true, true, s)),
            (s, false, true, d(true, true, s)),
            (s, true, true, d(true, true, s)),
            (0, false, false, d(false, true, 0)),
            (0, true, false, d(true, true, s | o)),
            (0, false, true, d(false, true, 0)),
            (0, true, true, d(true, true, s | o)),
            (n, false, false, d(false, false, n)),
            (n, true, false, d(false, false, n)),
            (n, false, true, d(true, true, s | o)),
            (n, true, true, d(true, true, s | o)),
            // S and N both set: N wins.
            (s | n, false, false, d(false, false, n)),
            (s | n, false, true, d(true, true, s | o)),
            // E is echoed; a client's O and the MBZ bits are not.
            (s | e, false, false, d(true, true, s | e)),
            (e, false, false, d(false, true, e)),
            (n | e, false, false, d(false, false, n | e)),
            (e, true, false, d(true, true, s | o | e)),
            (o | 0xf0, false, false, d(false, true, 0)),
            (s | o | 0xf0, false, false, d(true, true, s)),
        ];
        for (flags, ocu, onu, want) in table {
            assert_eq!(
                decide(flags, ocu, onu),
                want,
                "flags {flags:#04x} ocu {ocu} onu {onu}"
            );
        }
    }

    const MAC: [u8; 6] = [0x02, 0xAB, 0x00, 0x10, 0xfe, 0x09];

    fn opt81(flags: u8, name: &[u8]) -> Vec<u8> {
        let mut v = vec![flags, 0, 0];
        v.extend_from_slice(name);
        v
    }

    fn choose(fqdn: Option<&[u8]>, hostname: Option<&[u8]>, policy: ReplaceClientName) -> String {
        let f = fqdn.map(|d| ClientFqdn::parse(d).unwrap());
        let mut out = [0u8; MAX_LABEL];
        let n = choose_label(
            f.as_ref(),
            hostname,
            policy,
            &Pattern::default(),
            Ipv4Addr::new(198, 18, 0, 10),
            &MAC,
            &mut out,
        );
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn choose_label_prefers_option_81_then_12_then_the_pattern() {
        use ReplaceClientName::*;
        let o81 = opt81(FLAG_E | FLAG_S, b"\x06Laptop\x04evil\x03com\x00");
        let o81_text = opt81(FLAG_S, b"Phone.evil.com");
        let o81_bad = opt81(FLAG_E, b"\xc0\x0c");
        let o81_empty = opt81(FLAG_E, b"\x03___\x00");
        let h = Some(&b"Desk.top.example"[..]);
        assert_eq!(choose(Some(&o81), h, WhenAbsent), "laptop");
        assert_eq!(choose(Some(&o81_text), h, WhenAbsent), "phone");
        assert_eq!(choose(Some(&o81_bad), h, WhenAbsent), "desk");
        assert_eq!(choose(Some(&o81_empty), h, WhenAbsent), "desk");
        assert_eq!(choose(None, h, WhenAbsent), "desk");
        assert_eq!(choose(None, Some(b"My Host"), WhenAbsent), "my-host");
        assert_eq!(
            choose(Some(&o81_bad), Some(b"..."), WhenAbsent),
            "dhcp-198-18-0-10"
        );
        assert_eq!(choose(None, None, WhenAbsent), "dhcp-198-18-0-10");
        assert_eq!(choose(Some(&o81), h, Always), "dhcp-198-18-0-10");
        assert_eq!(choose(None, None, Always), "dhcp-198-18-0-10");
        assert_eq!(choose(Some(&o81), h, Never), "laptop");
        assert_eq!(choose(None, h, Never), "desk");
        assert_eq!(choose(Some(&o81_bad), Some(b"___"), Never), "");
        assert_eq!(choose(None, None, Never), "");
    }
}
