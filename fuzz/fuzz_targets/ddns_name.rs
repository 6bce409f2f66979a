//! Arbitrary client names through the DDNS naming, as the engine and the
//! DDNS thread run it: option 81 parsed, its first label, option 12,
//! `choose_label` under every policy, the server's part, the reply's
//! option 81, the FQDN and its DHCID. No panic, and every label that
//! comes out is empty or one valid lowercase LDH label of at most 63
//! octets that sanitises to itself; the reply's option 81 carries that
//! label back; the FQDN is built exactly when it fits in 255 octets.
//!
//! Input: a settings byte (bits 0-1 the `replace_client_name` policy,
//! 2 `override_client_update`, 3 `override_no_update`, 4 a 191-octet
//! zone instead of a short one, 5 no option 81, 6 no option 12), four
//! octets of address, a chaddr length (mod 17) and chaddr, a length of
//! option 81's data and the data; what is left is option 12, and is also
//! tried as a `generated_name` pattern. The seeds in `seeds/ddns_name/`
//! are hand-made inputs in this format: a wire-form and a text option 81,
//! N with the override and a 63-octet label into the long zone, option
//! 12 alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::sync::OnceLock;
use xdhcp::config::ddns::ReplaceClientName;
use xdhcp::ddns::dhcid::{self, Identifier};
use xdhcp::ddns::name;
use xdhcp::wire::fqdn::{
    self, ClientFqdn, FLAG_E, FLAG_N, FLAG_O, FLAG_S, MAX_LABEL, MAX_NAME, Pattern,
};

struct Setup {
    short_zone: Vec<u8>,
    long_zone: Vec<u8>,
    pattern: Pattern,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| Setup {
        short_zone: fqdn::zone_wire("Lab.Example.").unwrap(),
        // 191 octets: with a 63-octet label, exactly 255.
        long_zone: fqdn::zone_wire(&format!(
            "{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(61)
        ))
        .unwrap(),
        pattern: Pattern::parse("cpe-{mac}-{ip}").unwrap(),
    })
}

/// The one property every output label has.
fn check_label(label: &[u8], what: &str) {
    if label.is_empty() {
        return;
    }
    assert!(fqdn::is_label(label), "{what}: {label:?} is not a label");
    assert!(label.len() <= MAX_LABEL);
    let mut again = [0u8; MAX_LABEL];
    let n = fqdn::sanitise_label(label, &mut again);
    assert_eq!(
        &again[..n],
        label,
        "{what}: {label:?} does not sanitise to itself"
    );
}

/// Splits `n` octets off the front (fewer when fewer are left).
fn take<'a>(data: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = data.split_at(n.min(data.len()));
    *data = tail;
    head
}

fuzz_target!(|input: &[u8]| {
    let s = setup();
    let mut data = input;
    let settings = take(&mut data, 1).first().copied().unwrap_or(0);
    let mut addr = [0u8; 4];
    let a = take(&mut data, 4);
    addr[..a.len()].copy_from_slice(a);
    let addr = Ipv4Addr::from(addr);
    let hlen = take(&mut data, 1).first().map_or(0, |&b| (b % 17) as usize);
    let chaddr = take(&mut data, hlen);
    let len81 = take(&mut data, 1).first().copied().unwrap_or(0) as usize;
    let opt81 = take(&mut data, len81);
    let opt12 = data;

    let policy = match settings & 3 {
        1 => ReplaceClientName::Always,
        2 => ReplaceClientName::Never,
        _ => ReplaceClientName::WhenAbsent,
    };
    let zone = if settings & 0x10 != 0 {
        &s.long_zone
    } else {
        &s.short_zone
    };
    let fqdn = if settings & 0x20 == 0 {
        ClientFqdn::parse(opt81)
    } else {
        None
    };
    let hostname = (settings & 0x40 == 0).then_some(opt12);
    assert_eq!(ClientFqdn::parse(opt81).is_some(), opt81.len() >= 3);

    let mut label = [0u8; MAX_LABEL];
    if let Some(f) = &fqdn
        && let Some(first) = f.first_label()
    {
        assert!(!first.is_empty());
        // As text, the first label stops at the first dot.
        assert!(f.flags & FLAG_E != 0 || !first.contains(&b'.'));
        let n = fqdn::sanitise_label(first, &mut label);
        check_label(&label[..n], "option 81's first label");
    }
    let n = fqdn::sanitise_label(opt12, &mut label);
    check_label(&label[..n], "option 12");

    let n = name::choose_label(
        fqdn.as_ref(),
        hostname,
        policy,
        &s.pattern,
        addr,
        chaddr,
        &mut label,
    );
    let label = &label[..n];
    check_label(label, "choose_label");
    if policy != ReplaceClientName::Never {
        // The pattern always has an address to render.
        assert!(n > 0, "no name under {policy:?}");
    }

    let client_flags = fqdn.map_or(FLAG_S, |f| f.flags);
    let d = name::decide(client_flags, settings & 4 != 0, settings & 8 != 0);
    let known = FLAG_S | FLAG_O | FLAG_E | FLAG_N;
    assert_eq!(d.reply_flags & !known, 0);
    assert_eq!(d.reply_flags & FLAG_E, client_flags & FLAG_E);
    assert!(d.reply_flags & (FLAG_S | FLAG_N) != (FLAG_S | FLAG_N));
    assert_eq!(d.reply_flags & FLAG_N != 0, !d.forward && !d.reverse);
    assert_eq!(d.forward, d.reply_flags & FLAG_S != 0);

    let fits = n > 0 && 1 + n + zone.len() <= MAX_NAME;
    let mut wire = [0u8; MAX_NAME];
    let built = fqdn::fqdn_wire(label, zone, &mut wire);
    assert_eq!(built.is_some(), fits);
    if let Some(len) = built {
        let r = dhcid::rdata(Identifier::Chaddr { htype: 1, chaddr }, &wire[..len]);
        assert_eq!(r[..3], [0, 0, 1]);
    }

    let mut reply = [0u8; 3 + MAX_NAME];
    match fqdn::encode_reply(d.reply_flags, label, zone, &mut reply) {
        Some(len) => {
            let back = ClientFqdn::parse(&reply[..len]).expect("3 octets at least");
            assert_eq!(back.flags, d.reply_flags);
            assert_eq!(reply[1..3], [255, 255]);
            assert_eq!(back.first_label().unwrap_or_default(), label);
            if let Some(w) = built
                && d.reply_flags & FLAG_E != 0
            {
                assert_eq!(back.name(), &wire[..w]);
            }
        }
        None => assert!(n > 0 && !fits, "no reply for {label:?}"),
    }
    // Too small a buffer is refused, not overrun.
    assert_eq!(
        fqdn::encode_reply(d.reply_flags, label, zone, &mut reply[..2]),
        None
    );

    // The rest as a generated_name: refused with a message, or rendering
    // a label.
    if let Ok(text) = std::str::from_utf8(opt12)
        && let Ok(p) = Pattern::parse(text)
    {
        let mut out = [0u8; MAX_LABEL];
        let n = p.render(addr, chaddr, &mut out);
        check_label(&out[..n], "a parsed pattern");
    }
});
