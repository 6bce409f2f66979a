//! The DHCID record (RFC 4701): which client a name in DNS belongs to.
//!
//! RDATA = identifier type (2 octets) | digest type (1 octet, 1 = SHA-256)
//! | SHA-256(identifier || FQDN in canonical wire form). The digest hides
//! the client's MAC or client-id from anyone reading the zone while still
//! letting every DHCP server that knows the client recompute it (RFC 4701
//! §3.3, §3.5). RFC 4703 compares it before touching a name, so this
//! computation must give the same bytes for the same client every time:
//! the FQDN is lowercased here whatever the caller passes.
//!
//! Allocation-free: the packet path and the DDNS thread both call it.
use sha2::{Digest, Sha256};

/// RDATA length: 2 + 1 + 32 (SHA-256).
pub const DHCID_LEN: usize = 35;

/// Digest type 1: SHA-256 (RFC 4701 §3.4), the only one defined.
const DIGEST_SHA256: u8 = 1;

/// What identifies the client, in the order of preference RFC 4701 §3.3
/// gives: the client identifier option when the client sent one, else
/// its hardware address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identifier<'a> {
    /// Type 0x0000: the htype octet followed by `hlen` octets of chaddr
    /// (pass `&chaddr[..hlen]`).
    Chaddr { htype: u8, chaddr: &'a [u8] },
    /// Type 0x0001: option 61's data (type octet + identifier), as sent.
    ClientId(&'a [u8]),
    /// Type 0x0002: a DUID. RFC 4701 §3.3 names it for DHCPv6 clients
    /// and for the DUID inside a DHCPv4 RFC 4361 client identifier
    /// (option 61 of type 255: IAID then DUID). Which of `ClientId` and
    /// `Duid` such a client gets is the caller's choice; it must be the
    /// same every time for the same client.
    Duid(&'a [u8]),
}

impl Identifier<'_> {
    fn type_code(&self) -> u16 {
        match self {
            Identifier::Chaddr { .. } => 0x0000,
            Identifier::ClientId(_) => 0x0001,
            Identifier::Duid(_) => 0x0002,
        }
    }
}

/// The DHCID RDATA for `id` and the name `fqdn_wire` (uncompressed wire
/// form, ending in the root label). ASCII letters are lowercased while
/// hashing (RFC 4701 §3.5 hashes the canonical form, RFC 4034 §6.2);
/// length octets are at most 63 and so never letters.
pub fn rdata(id: Identifier, fqdn_wire: &[u8]) -> [u8; DHCID_LEN] {
    let mut h = Sha256::new();
    match id {
        Identifier::Chaddr { htype, chaddr } => {
            h.update([htype]);
            h.update(chaddr);
        }
        Identifier::ClientId(data) | Identifier::Duid(data) => h.update(data),
    }
    let mut lower = [0u8; 64];
    for chunk in fqdn_wire.chunks(lower.len()) {
        let l = &mut lower[..chunk.len()];
        l.copy_from_slice(chunk);
        l.make_ascii_lowercase();
        h.update(&*l);
    }
    let mut out = [0u8; DHCID_LEN];
    out[..2].copy_from_slice(&id.type_code().to_be_bytes());
    out[2] = DIGEST_SHA256;
    out[3..].copy_from_slice(&h.finalize());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fqdn::zone_wire;
    use data_encoding::BASE64;

    fn wire(name: &str) -> Vec<u8> {
        zone_wire(name).unwrap()
    }

    // RFC 4701 §3.6. Note the pairs: the client-id example is
    // "chi.example.com", the chaddr example "client.example.com".

    #[test]
    fn rfc4701_example_2_client_id() {
        // 3.6.2: client-identifier option data 01:07:08:09:0a:0b:0c,
        // name "chi.example.com".
        let id = [0x01, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c];
        let r = rdata(Identifier::ClientId(&id), &wire("chi.example.com."));
        assert_eq!(
            BASE64.encode(&r),
            "AAEBOSD+XR3Os/0LozeXVqcNc7FwCfQdWL3b/NaiUDlW2No="
        );
    }

    #[test]
    fn rfc4701_example_3_chaddr() {
        // 3.6.3: no client identifier, htype 1, chaddr 01:02:03:04:05:06,
        // name "client.example.com".
        let mac = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06];
        let r = rdata(
            Identifier::Chaddr {
                htype: 1,
                chaddr: &mac,
            },
            &wire("client.example.com."),
        );
        assert_eq!(
            BASE64.encode(&r),
            "AAABxLmlskllE0MVjd57zHcWmEH3pCQ6VytcKD//7es/deY="
        );
    }

    #[test]
    fn rfc4701_example_1_duid() {
        // 3.6.1 (a DHCPv6 client): DUID 00:01:00:06:41:2d:f1:66:01:02:03:
        // 04:05:06, name "chi6.example.com".
        let duid = [
            0x00, 0x01, 0x00, 0x06, 0x41, 0x2d, 0xf1, 0x66, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        ];
        let r = rdata(Identifier::Duid(&duid), &wire("chi6.example.com."));
        assert_eq!(
            BASE64.encode(&r),
            "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA="
        );
    }

    #[test]
    fn the_name_is_hashed_lowercase_and_the_identifier_type_matters() {
        let id = [0x01, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c];
        let upper = b"\x03CHI\x07Example\x03COM\x00";
        assert_eq!(
            rdata(Identifier::ClientId(&id), upper),
            rdata(Identifier::ClientId(&id), &wire("chi.example.com"))
        );
        // Same bytes, other type: other record (the type is in the RDATA,
        // not in the digest).
        let a = rdata(Identifier::ClientId(&id), upper);
        let b = rdata(Identifier::Duid(&id), upper);
        assert_ne!(a[..2], b[..2]);
        assert_eq!(a[2..], b[2..]);
    }

    #[test]
    fn a_name_longer_than_one_chunk_hashes_like_one_update() {
        let long = wire(&format!("{}.{}.example", "a".repeat(63), "b".repeat(63)));
        let mac = [1, 2, 3, 4, 5, 6];
        let mut h = Sha256::new();
        h.update([1u8]);
        h.update(mac);
        h.update(&long);
        let r = rdata(
            Identifier::Chaddr {
                htype: 1,
                chaddr: &mac,
            },
            &long,
        );
        assert_eq!(r[..3], [0, 0, 1]);
        assert_eq!(r[3..], h.finalize()[..]);
    }
}
