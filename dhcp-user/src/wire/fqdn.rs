//! The Client FQDN option (81, RFC 4702) and DNS names as the packet
//! path and the config both need them: a client's name made into one safe
//! label, the option in the reply, zones in wire form, generated names.
//!
//! Everything a client sends is attacker-controlled. What leaves this
//! module as a label is always one valid hostname label (RFC 1035 §2.3.1,
//! RFC 1123 §2.1: letters, digits and inner hyphens, 1..=63 octets), in
//! lowercase, or nothing. Only the first label a client sends is ever
//! used: the server qualifies it with its own zone, so a subscriber can
//! name its host but cannot choose the zone the record goes to.
//!
//! The functions the packet path calls (`sanitise_label`,
//! `ClientFqdn::parse` / `first_label`, `client_label`, `encode_reply`,
//! `fqdn_wire`, `Pattern::render`) write into the caller's buffers and
//! allocate nothing; `zone_wire`, `zone_text` and `Pattern::parse` run at
//! config time (`config::ddns` checks with them). The server's policy
//! over these (RFC 4702 flags, `replace_client_name`) is `ddns::name`.
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// The longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;
/// The longest name in wire form, root label included (RFC 1035 §2.3.4).
pub const MAX_NAME: usize = 255;

/// Option 81 flags (RFC 4702 §2.1). S: the server does the A update.
pub const FLAG_S: u8 = 0x01;
/// O: the server overrode the client's S (reply only).
pub const FLAG_O: u8 = 0x02;
/// E: the name is in canonical wire form, not ASCII text.
pub const FLAG_E: u8 = 0x04;
/// N: no DNS updates by the server at all.
pub const FLAG_N: u8 = 0x08;

/// RCODE1 and RCODE2 in a server's option 81: RFC 4702 §4 has the server
/// set both to 255 (they are deprecated).
const RCODE_SERVER: u8 = 255;

fn is_ldh(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
}

/// Whether `label` is what `sanitise_label` produces: 1..=63 octets of
/// lowercase letters, digits and single inner hyphens.
pub fn is_label(label: &[u8]) -> bool {
    (1..=MAX_LABEL).contains(&label.len())
        && label.iter().all(|&b| is_ldh(b))
        && label[0] != b'-'
        && label[label.len() - 1] != b'-'
        && !label.windows(2).any(|w| w == b"--")
}

/// Makes one hostname label of whatever a client sent, into `out`;
/// returns its length, 0 when nothing usable remains.
///
/// ASCII letters (lowercased) and digits are kept; every other byte ('.',
/// '_', spaces, control bytes, NUL, every non-ASCII byte) becomes '-';
/// a run of '-' becomes one; '-' at either end is dropped; the result is
/// cut at 63 octets, and a '-' the cut leaves at the end dropped too.
///
/// Replacing rather than refusing follows Kea (`hostname-char-set` with
/// `hostname-char-replacement = "-"`): a laptop called "Anna's MacBook"
/// still gets "anna-s-macbook" rather than a generated name. Collapsing
/// runs keeps "a  b" from becoming "a--b"; it also means an IDNA A-label
/// ("xn--...") does not survive, which is the safe side: its punycode
/// is not checked here, so it cannot be vouched for.
pub fn sanitise_label(input: &[u8], out: &mut [u8; MAX_LABEL]) -> usize {
    let mut n = 0;
    // A '-' waiting for the next letter or digit: written only when one
    // follows, so none is ever left at the start or the end.
    let mut dash = false;
    for &b in input {
        if b.is_ascii_alphanumeric() {
            let need = if dash { 2 } else { 1 };
            if n + need > MAX_LABEL {
                break;
            }
            if dash {
                out[n] = b'-';
                n += 1;
                dash = false;
            }
            out[n] = b.to_ascii_lowercase();
            n += 1;
        } else {
            dash = n > 0;
        }
    }
    n
}

/// Option 81's data (without code and length) as a client sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientFqdn<'a> {
    pub flags: u8,
    name: &'a [u8],
}

impl<'a> ClientFqdn<'a> {
    /// Flags, RCODE1, RCODE2, then the name (possibly empty). None when
    /// shorter than the 3 fixed octets. RCODE1/2 are ignored (RFC 4702
    /// §2.2: deprecated, a server ignores what a client puts there), and
    /// so are the MBZ bits of the flags.
    pub fn parse(data: &'a [u8]) -> Option<ClientFqdn<'a>> {
        if data.len() < 3 {
            return None;
        }
        Some(ClientFqdn {
            flags: data[0],
            name: &data[3..],
        })
    }

    /// The name field as sent: wire form when E is set, ASCII otherwise.
    pub fn name(&self) -> &'a [u8] {
        self.name
    }

    /// The first label of the name, unsanitised; None when there is
    /// none or the encoding is malformed.
    ///
    /// E set: the name must be a well-formed sequence of length-prefixed
    /// labels, all of it (a label running past the end, a compression
    /// pointer or extended label type, bytes after the root label or a
    /// name over 255 octets make it malformed), either ending in the root
    /// label (a fully qualified name) or not (a partial name, RFC 4702
    /// §2.1). E clear (deprecated ASCII encoding, still sent): the text up
    /// to the first '.'.
    pub fn first_label(&self) -> Option<&'a [u8]> {
        let label = if self.flags & FLAG_E != 0 {
            let (start, len) = check_wire(self.name)?.first?;
            &self.name[start..start + len]
        } else {
            let end = self
                .name
                .iter()
                .position(|&b| b == b'.')
                .unwrap_or(self.name.len());
            &self.name[..end]
        };
        (!label.is_empty()).then_some(label)
    }
}

/// A wire-form name, checked: where its first label is (None for the
/// root name) and whether it ends in the root label (fully qualified) or
/// not (partial).
struct WireName {
    first: Option<(usize, usize)>,
    rooted: bool,
}

/// Checks a wire-form name, fully qualified or partial: None when a
/// label runs past the end, a length octet is a compression pointer or
/// an extended label type, bytes follow the root label, or the name is
/// over 255 octets.
fn check_wire(name: &[u8]) -> Option<WireName> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut first = None;
    let mut i = 0;
    while i < name.len() {
        let len = name[i] as usize;
        if len == 0 {
            // The root label: the name ends here, nothing may follow.
            return (i + 1 == name.len()).then_some(WireName {
                first,
                rooted: true,
            });
        }
        // 0b11...... is a compression pointer, 0b01 / 0b10 extended label
        // types (RFC 6891 §5): none has a place in option 81.
        if len > MAX_LABEL || i + 1 + len > name.len() {
            return None;
        }
        first.get_or_insert((i + 1, len));
        i += 1 + len;
    }
    Some(WireName {
        first,
        rooted: false,
    })
}

/// The reply's option 81 data (without code and length) into `out`:
/// `flags`, RCODE1 = RCODE2 = 255, then `label`.`zone` — in wire form
/// when E is set in `flags`, else as ASCII text without the final dot.
/// An empty `label` gives an empty name field. None when `out` is too
/// small, the name would exceed 255 octets, `label` is not a label as
/// `sanitise_label` makes them, or `zone_wire` is not a wire-form name.
pub fn encode_reply(flags: u8, label: &[u8], zone_wire: &[u8], out: &mut [u8]) -> Option<usize> {
    if out.len() < 3 || !(label.is_empty() || is_label(label)) || !is_wire_name(zone_wire) {
        return None;
    }
    out[0] = flags;
    out[1] = RCODE_SERVER;
    out[2] = RCODE_SERVER;
    if label.is_empty() {
        return Some(3);
    }
    if 1 + label.len() + zone_wire.len() > MAX_NAME {
        return None;
    }
    let mut w = Writer { out, n: 3 };
    if flags & FLAG_E != 0 {
        w.put(&[label.len() as u8])?;
        w.put(label)?;
        w.put(zone_wire)?;
    } else {
        w.put(label)?;
        let mut i = 0;
        while zone_wire[i] != 0 {
            let len = zone_wire[i] as usize;
            w.put(b".")?;
            w.put(&zone_wire[i + 1..i + 1 + len])?;
            i += 1 + len;
        }
    }
    Some(w.n)
}

/// Bounded writes into a caller's buffer.
struct Writer<'b> {
    out: &'b mut [u8],
    n: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.n.checked_add(bytes.len())?;
        self.out.get_mut(self.n..end)?.copy_from_slice(bytes);
        self.n = end;
        Some(())
    }
}

/// Whether `wire` is one uncompressed wire-form name ending in the root
/// label, at most 255 octets (what `zone_wire` makes).
fn is_wire_name(wire: &[u8]) -> bool {
    check_wire(wire).is_some_and(|w| w.rooted)
}

/// `label` then `zone_wire` (a name from `zone_wire`): the FQDN in wire
/// form, as the A/DHCID owner name and the DHCID digest input. None when
/// `label` is empty or over 63 octets, `zone_wire` is not a wire-form
/// name, or the whole would exceed 255 octets.
pub fn fqdn_wire(label: &[u8], zone_wire: &[u8], out: &mut [u8; MAX_NAME]) -> Option<usize> {
    if label.is_empty() || label.len() > MAX_LABEL || !is_wire_name(zone_wire) {
        return None;
    }
    let n = 1 + label.len() + zone_wire.len();
    if n > MAX_NAME {
        return None;
    }
    out[0] = label.len() as u8;
    out[1..1 + label.len()].copy_from_slice(label);
    out[1 + label.len()..n].copy_from_slice(zone_wire);
    Some(n)
}

/// A zone as written in the config ("lab.example." or "lab.example")
/// in lowercase wire form, ending in the root label.
///
/// Each label is 1..=63 octets of letters, digits and hyphens, not
/// starting or ending with a hyphen; also allowed are '_' (legal in DNS,
/// and the zone is the operator's choice, not a client's) and '/' (the
/// RFC 2317 classless reverse zones, "0/25.2.0.192.in-addr.arpa."). The
/// whole is at most 255 octets. The root zone itself is refused: no
/// DHCP server's names belong there.
pub fn zone_wire(text: &str) -> Result<Vec<u8>, String> {
    let t = text.strip_suffix('.').unwrap_or(text);
    if t.is_empty() {
        return Err(format!(
            "zone {text:?} is empty or the root zone: give the zone the names go to, e.g. \"lab.example.\""
        ));
    }
    let mut wire = Vec::with_capacity(t.len() + 2);
    for (i, label) in t.split('.').enumerate() {
        let n = i + 1;
        if label.is_empty() {
            return Err(format!(
                "zone {text:?}: label {n} is empty (two dots in a row, or a leading dot)"
            ));
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "zone {text:?}: label {n} ({label:?}) is {} octets long, at most {MAX_LABEL} are allowed",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/')))
        {
            return Err(format!(
                "zone {text:?}: label {n} ({label:?}) holds {c:?}: letters, digits, '-', '_' and '/' only"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "zone {text:?}: label {n} ({label:?}) starts or ends with '-'"
            ));
        }
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    if wire.len() > MAX_NAME {
        return Err(format!(
            "zone {text:?} is {} octets in wire form, at most {MAX_NAME} are allowed",
            wire.len()
        ));
    }
    Ok(wire)
}

/// A wire-form name as text with the final dot ("lab.example."), for
/// logs and messages; "." for the root. Octets outside letters, digits,
/// '-', '_' and '/' are written as `\DDD` (RFC 1035 §5.1), and a
/// malformed name ends the text with "<malformed>".
pub fn zone_text(wire: &[u8]) -> String {
    let mut s = String::new();
    let mut i = 0;
    while let Some(&len) = wire.get(i) {
        if len == 0 {
            if s.is_empty() {
                s.push('.');
            }
            return s;
        }
        let Some(label) = wire.get(i + 1..i + 1 + len as usize).filter(|_| len <= 63) else {
            break;
        };
        for &b in label {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/') {
                s.push(b as char);
            } else {
                let _ = write!(s, "\\{b:03}");
            }
        }
        s.push('.');
        i += 1 + len as usize;
    }
    s.push_str("<malformed>");
    s
}

/// The label of clients without a usable name, or of every client under
/// `replace_client_name = "always"`.
pub const DEFAULT_PATTERN: &str = "dhcp-{ip}";

/// A `generated_name`, parsed once at config time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(Box<[u8]>),
    /// The address with dashes: "198-18-0-10".
    Ip,
    /// One octet of the address, 0..=3 for {a}..{d}.
    Octet(usize),
    /// chaddr in lowercase hex, no separators.
    Mac,
}

/// chaddr is at most 16 octets: 32 hex digits.
const MAX_MAC_HEX: usize = 32;

impl Piece {
    fn max_len(&self) -> usize {
        match self {
            Piece::Text(t) => t.len(),
            Piece::Ip => 15,
            Piece::Octet(_) => 3,
            Piece::Mac => MAX_MAC_HEX,
        }
    }
}

impl Default for Pattern {
    fn default() -> Pattern {
        Pattern::parse(DEFAULT_PATTERN).expect("the default pattern parses")
    }
}

impl Pattern {
    /// Parses text with `{ip}`, `{a}` `{b}` `{c}` `{d}` and `{mac}`. The
    /// literal text must be lowercase letters, digits and '-', and the
    /// pattern must not start or end with '-' or hold "--", so that a
    /// rendered name is exactly the text written. It needs at least one
    /// placeholder (else every client would claim the same name), and
    /// its longest rendering ({mac} counted at 32 hex digits, the most
    /// chaddr holds) must fit in 63 octets, so that no cut ever drops the
    /// part that tells clients apart.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let Some(close) = after
                    .find(['{', '}'])
                    .filter(|&i| after.as_bytes()[i] == b'}')
                else {
                    return Err(format!(
                        "generated_name {text:?}: a '{{' is not closed by '}}'"
                    ));
                };
                let piece = match &after[..close] {
                    "ip" => Piece::Ip,
                    "a" => Piece::Octet(0),
                    "b" => Piece::Octet(1),
                    "c" => Piece::Octet(2),
                    "d" => Piece::Octet(3),
                    "mac" => Piece::Mac,
                    other => {
                        return Err(format!(
                            "generated_name {text:?}: unknown placeholder {{{other}}}: use {{ip}}, {{a}}, {{b}}, {{c}}, {{d}} or {{mac}}"
                        ));
                    }
                };
                pieces.push(piece);
                rest = &after[close + 1..];
            } else {
                let end = rest.find(['{', '}']).unwrap_or(rest.len());
                if rest[end..].starts_with('}') {
                    return Err(format!("generated_name {text:?}: a '}}' without its '{{'"));
                }
                let lit = &rest[..end];
                if let Some(c) = lit
                    .chars()
                    .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                {
                    return Err(format!(
                        "generated_name {text:?}: {c:?} cannot be in a DNS label: lowercase letters, digits and '-' only"
                    ));
                }
                pieces.push(Piece::Text(lit.as_bytes().into()));
                rest = &rest[end..];
            }
        }
        if !pieces.iter().any(|p| !matches!(p, Piece::Text(_))) {
            return Err(format!(
                "generated_name {text:?} has no placeholder: every client would get the same name; add {{ip}} or {{mac}}"
            ));
        }
        let lits: String = pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => std::str::from_utf8(t).unwrap_or(""),
                _ => "x",
            })
            .collect();
        if lits.starts_with('-') || lits.ends_with('-') || lits.contains("--") {
            return Err(format!(
                "generated_name {text:?}: a label cannot start or end with '-' or hold \"--\""
            ));
        }
        let longest: usize = pieces.iter().map(Piece::max_len).sum();
        if longest > MAX_LABEL {
            return Err(format!(
                "generated_name {text:?} can be {longest} octets long ({{ip}} up to 15, {{a}}..{{d}} up to 3, {{mac}} up to 32), at most {MAX_LABEL} fit in a DNS label"
            ));
        }
        Ok(Pattern { pieces })
    }

    /// The name for `addr` and `chaddr` (pass `&chaddr[..hlen]`), into
    /// `out`; its length. Passed through `sanitise_label`, so it is a
    /// label even for inputs `parse` did not foresee (an empty chaddr
    /// leaves its dash out; more than 16 octets are cut at 63).
    pub fn render(&self, addr: Ipv4Addr, chaddr: &[u8], out: &mut [u8; MAX_LABEL]) -> usize {
        // Room for any pattern `parse` accepts (63) and then some: a
        // longer raw rendering is cut by the sanitiser anyway.
        let mut raw = [0u8; 2 * MAX_LABEL];
        let mut w = Writer {
            out: &mut raw,
            n: 0,
        };
        let o = addr.octets();
        for p in &self.pieces {
            let done = match p {
                Piece::Text(t) => w.put(t),
                Piece::Ip => (|| {
                    put_decimal(&mut w, o[0])?;
                    for &x in &o[1..] {
                        w.put(b"-")?;
                        put_decimal(&mut w, x)?;
                    }
                    Some(())
                })(),
                Piece::Octet(i) => put_decimal(&mut w, o[*i]),
                Piece::Mac => chaddr.iter().try_for_each(|&b| {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    w.put(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]])
                }),
            };
            if done.is_none() {
                break;
            }
        }
        let n = w.n;
        sanitise_label(&raw[..n], out)
    }
}

fn put_decimal(w: &mut Writer, x: u8) -> Option<()> {
    let d = [b'0' + x / 100, b'0' + x / 10 % 10, b'0' + x % 10];
    let skip = if x >= 100 {
        0
    } else if x >= 10 {
        1
    } else {
        2
    };
    w.put(&d[skip..])
}

/// The client's own name as a label (option 81's first label, else option
/// 12's up to its first '.', sanitised), without any policy; 0 when it
/// sent none or nothing usable remains. This is what the lease record
/// keeps as the host name: `choose_label(None, Some(that), ..)` gives the
/// same label as `choose_label` over the request itself, so the DDNS
/// thread, which sees only records, names a lease as the reply did.
pub fn client_label(
    fqdn: Option<&ClientFqdn>,
    hostname: Option<&[u8]>,
    out: &mut [u8; MAX_LABEL],
) -> usize {
    let from_81 = fqdn
        .and_then(|f| f.first_label())
        .map_or(0, |l| sanitise_label(l, out));
    if from_81 > 0 {
        return from_81;
    }
    hostname
        .map(|h| &h[..h.iter().position(|&b| b == b'.').unwrap_or(h.len())])
        .map_or(0, |l| sanitise_label(l, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn san(input: &[u8]) -> String {
        let mut out = [0u8; MAX_LABEL];
        let n = sanitise_label(input, &mut out);
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    #[test]
    fn sanitise_keeps_letters_and_digits_and_makes_the_rest_single_inner_dashes() {
        assert_eq!(san(b"Anna's MacBook Pro"), "anna-s-macbook-pro");
        assert_eq!(san(b"host.example.com"), "host-example-com");
        assert_eq!(san(b"__--my_host--__"), "my-host");
        assert_eq!(san(b"a\0b"), "a-b");
        assert_eq!(san(b"host\0"), "host");
        assert_eq!(san("Žluťoučký kůň".as_bytes()), "lu-ou-k-k");
        assert_eq!(san(b"xn--bcher-kva"), "xn-bcher-kva");
        assert_eq!(san(b"007"), "007");
        assert_eq!(san(b"ABC-def"), "abc-def");
    }

    #[test]
    fn sanitise_gives_nothing_when_nothing_usable_remains() {
        for bad in [
            &b""[..],
            b"-",
            b"...",
            b" \t\r\n",
            b"\0\0",
            "日本".as_bytes(),
            b"\xff\xfe",
        ] {
            assert_eq!(san(bad), "", "{bad:?}");
        }
    }

    #[test]
    fn sanitise_cuts_at_63_and_drops_the_dash_the_cut_leaves() {
        assert_eq!(san(&[b'a'; 63]), "a".repeat(63));
        assert_eq!(san(&[b'a'; 300]), "a".repeat(63));
        // 62 letters, then a dash that would be the 63rd octet, then more.
        let mut s = vec![b'b'; 62];
        s.extend_from_slice(b" cdef");
        assert_eq!(san(&s), "b".repeat(62));
        // 61 letters, dash, letter: exactly 63.
        let mut s = vec![b'b'; 61];
        s.extend_from_slice(b"_c_d");
        assert_eq!(san(&s), format!("{}-c", "b".repeat(61)));
    }

    #[test]
    fn sanitised_output_is_a_label_and_sanitises_to_itself() {
        let inputs: [&[u8]; 6] = [
            b"Anna's MacBook",
            b"-x-",
            &[b'z'; 70],
            b"a--b",
            b"1.2.3",
            b"\x80a\x80",
        ];
        for input in inputs {
            let s = san(input);
            assert!(s.is_empty() || is_label(s.as_bytes()), "{input:?} -> {s:?}");
            assert_eq!(san(s.as_bytes()), s);
        }
    }

    fn opt81(flags: u8, name: &[u8]) -> Vec<u8> {
        let mut v = vec![flags, 0, 0];
        v.extend_from_slice(name);
        v
    }

    fn first(data: &[u8]) -> Option<Vec<u8>> {
        ClientFqdn::parse(data)?.first_label().map(<[u8]>::to_vec)
    }

    #[test]
    fn option_81_needs_three_octets_and_may_have_no_name() {
        assert_eq!(ClientFqdn::parse(&[]), None);
        assert_eq!(ClientFqdn::parse(&[FLAG_S, 0]), None);
        let f = ClientFqdn::parse(&[FLAG_S | FLAG_E, 0, 0]).unwrap();
        assert_eq!(f.flags, FLAG_S | FLAG_E);
        assert_eq!(f.name(), b"");
        assert_eq!(f.first_label(), None);
        assert_eq!(first(&[0, 0, 0]), None);
    }

    #[test]
    fn option_81_first_label_from_wire_form() {
        // Fully qualified, and partial (no root label, RFC 4702 §2.1).
        let fq = opt81(FLAG_E, b"\x04Host\x07example\x03com\x00");
        assert_eq!(first(&fq).unwrap(), b"Host");
        let partial = opt81(FLAG_E | FLAG_S, b"\x06laptop");
        assert_eq!(first(&partial).unwrap(), b"laptop");
        let two = opt81(FLAG_E, b"\x01a\x01b");
        assert_eq!(first(&two).unwrap(), b"a");
        // A 63-octet label is fine, 255 octets of name too.
        let mut n = vec![63];
        n.extend_from_slice(&[b'x'; 63]);
        n.push(0);
        assert_eq!(first(&opt81(FLAG_E, &n)).unwrap(), vec![b'x'; 63]);
        let mut n = Vec::new();
        for _ in 0..3 {
            n.push(63);
            n.extend_from_slice(&[b'y'; 63]);
        }
        n.push(61);
        n.extend_from_slice(&[b'z'; 61]);
        n.push(0);
        assert_eq!(n.len(), 255);
        assert_eq!(first(&opt81(FLAG_E, &n)).unwrap(), vec![b'y'; 63]);
        n.insert(n.len() - 1, b'z');
        *n.get_mut(192).unwrap() = 62;
        assert_eq!(n.len(), 256);
        assert_eq!(first(&opt81(FLAG_E, &n)), None, "256 octets");
    }

    #[test]
    fn option_81_malformed_wire_forms_give_none() {
        let bad: [&[u8]; 9] = [
            b"\x00",                   // the root alone: no label
            b"\x05abc",                // label runs past the end
            b"\x03abc\x05de",          // second label runs past the end
            b"\xc0\x0c",               // compression pointer
            b"\x03abc\xc0\x00",        // pointer after a label
            b"\x40abc",                // extended label type 0b01
            b"\x80abc",                // 0b10
            b"\x03abc\x00\x03def\x00", // bytes after the root label
            b"\x03abc\x00\x00",        // a second root label
        ];
        for b in bad {
            assert_eq!(first(&opt81(FLAG_E, b)), None, "{b:?}");
        }
    }

    #[test]
    fn option_81_first_label_from_ascii_text_when_e_is_clear() {
        assert_eq!(
            first(&opt81(FLAG_S, b"laptop.example.com")).unwrap(),
            b"laptop"
        );
        assert_eq!(first(&opt81(0, b"laptop")).unwrap(), b"laptop");
        assert_eq!(first(&opt81(0, b"laptop.")).unwrap(), b"laptop");
        assert_eq!(first(&opt81(0, b".example.com")), None);
        // Not wire form when E is clear: the length octet is just a byte.
        assert_eq!(first(&opt81(0, b"\x04host\x00")).unwrap(), b"\x04host\x00");
        // Wire form claimed but text sent: malformed.
        assert_eq!(first(&opt81(FLAG_E, b"laptop.example.com")), None);
    }

    #[test]
    fn encode_reply_in_wire_form_and_as_text() {
        let zone = zone_wire("Lab.Example.").unwrap();
        let mut out = [0u8; 300];
        let n = encode_reply(FLAG_S | FLAG_E, b"host", &zone, &mut out).unwrap();
        assert_eq!(&out[..n], b"\x05\xff\xff\x04host\x03lab\x07example\x00");
        let n = encode_reply(FLAG_S | FLAG_O, b"host", &zone, &mut out).unwrap();
        assert_eq!(&out[..n], b"\x03\xff\xffhost.lab.example");
        let n = encode_reply(FLAG_N, b"", &zone, &mut out).unwrap();
        assert_eq!(&out[..n], b"\x08\xff\xff");
        // The exact size fits, one less does not.
        let need = 3 + 1 + 4 + zone.len();
        assert_eq!(
            encode_reply(FLAG_E, b"host", &zone, &mut out[..need]),
            Some(need)
        );
        assert_eq!(
            encode_reply(FLAG_E, b"host", &zone, &mut out[..need - 1]),
            None
        );
        let need = 3 + "host.lab.example".len();
        assert_eq!(
            encode_reply(0, b"host", &zone, &mut out[..need]),
            Some(need)
        );
        assert_eq!(encode_reply(0, b"host", &zone, &mut out[..need - 1]), None);
        assert_eq!(encode_reply(0, b"", &zone, &mut out[..2]), None);
    }

    #[test]
    fn encode_reply_refuses_what_is_not_a_label_or_a_zone() {
        let zone = zone_wire("lab.example").unwrap();
        let mut out = [0u8; 300];
        for bad in [&b"Host"[..], b"-a", b"a-", b"a.b", b"a--b", &[b'a'; 64]] {
            assert_eq!(encode_reply(FLAG_E, bad, &zone, &mut out), None, "{bad:?}");
        }
        for bad_zone in [
            &b""[..],
            b"\x03lab",
            b"\x05lab\x00",
            b"\xc0\x0c",
            b"\x01\x00",
        ] {
            assert_eq!(
                encode_reply(FLAG_E, b"a", bad_zone, &mut out),
                None,
                "{bad_zone:?}"
            );
        }
    }

    fn long_zone(wire_len: usize) -> Vec<u8> {
        // Labels of 63 and one shorter, as wire form, `wire_len` octets.
        let mut text = Vec::new();
        let mut left = wire_len - 1;
        while left > 0 {
            let l = (left - 1).min(63);
            text.push("z".repeat(l));
            left -= 1 + l;
        }
        let w = zone_wire(&text.join(".")).unwrap();
        assert_eq!(w.len(), wire_len);
        w
    }

    #[test]
    fn fqdn_wire_is_the_label_then_the_zone_up_to_255_octets() {
        let zone = zone_wire("lab.example.").unwrap();
        let mut out = [0u8; MAX_NAME];
        let n = fqdn_wire(b"host", &zone, &mut out).unwrap();
        assert_eq!(&out[..n], b"\x04host\x03lab\x07example\x00");
        // 1 + 63 + 191 = 255 fits; one more octet of zone does not.
        let z = long_zone(191);
        assert_eq!(fqdn_wire(&[b'a'; 63], &z, &mut out), Some(255));
        let z = long_zone(192);
        assert_eq!(fqdn_wire(&[b'a'; 63], &z, &mut out), None);
        assert_eq!(fqdn_wire(b"", &zone, &mut out), None);
        assert_eq!(fqdn_wire(&[b'a'; 64], &zone, &mut out), None);
        assert_eq!(fqdn_wire(b"a", b"\x03lab", &mut out), None);
        // The text reply at the same limit: 253 characters.
        let z = long_zone(191);
        let mut big = [0u8; 300];
        let n = encode_reply(0, &[b'a'; 63], &z, &mut big).unwrap();
        assert_eq!(n - 3, 253);
        let n = encode_reply(FLAG_E, &[b'a'; 63], &z, &mut big).unwrap();
        assert_eq!(n - 3, 255);
    }

    #[test]
    fn zones_parse_to_lowercase_wire_form_with_or_without_the_dot() {
        let want = b"\x03lab\x07example\x00".to_vec();
        assert_eq!(zone_wire("lab.example.").unwrap(), want);
        assert_eq!(zone_wire("LAB.Example").unwrap(), want);
        assert_eq!(
            zone_wire("0/25.2.0.192.in-addr.arpa.").unwrap(),
            b"\x040/25\x012\x010\x03192\x07in-addr\x04arpa\x00"
        );
        assert_eq!(zone_wire("_dhcp.lab").unwrap(), b"\x05_dhcp\x03lab\x00");
        assert_eq!(zone_text(&want), "lab.example.");
        assert_eq!(zone_text(b"\x00"), ".");
        assert_eq!(zone_text(b"\x03a b\x00"), "a\\032b.");
        assert_eq!(zone_text(b"\x05ab"), "<malformed>");
        assert_eq!(zone_text(b"\x02ab\x05c"), "ab.<malformed>");
    }

    #[test]
    fn zone_errors_say_which_label_and_why() {
        let e = |t: &str| zone_wire(t).unwrap_err();
        assert!(e("").contains("empty"), "{}", e(""));
        assert!(e(".").contains("root"), "{}", e("."));
        assert!(
            e("lab..example").contains("label 2 is empty"),
            "{}",
            e("lab..example")
        );
        assert!(e(".lab").contains("label 1 is empty"));
        let long = format!("lab.{}.example", "x".repeat(64));
        assert!(
            e(&long).contains("label 2") && e(&long).contains("64 octets"),
            "{}",
            e(&long)
        );
        assert!(e("lab.exa mple").contains("label 2") && e("lab.exa mple").contains("' '"));
        assert!(e("läb.example").contains("label 1"));
        assert!(e("-lab.example").contains("starts or ends with '-'"));
        assert!(e("lab.example-.").contains("label 2"));
        // 63 labels of 3 + root = 253: fine; 64 of them = 257: too long.
        let ok = vec!["abc"; 63].join(".");
        assert_eq!(zone_wire(&ok).unwrap().len(), 253);
        let too = vec!["abc"; 64].join(".");
        assert!(e(&too).contains("257 octets"), "{}", e(&too));
    }

    fn render(p: &str, addr: [u8; 4], mac: &[u8]) -> String {
        let mut out = [0u8; MAX_LABEL];
        let n = Pattern::parse(p)
            .unwrap()
            .render(Ipv4Addr::from(addr), mac, &mut out);
        String::from_utf8(out[..n].to_vec()).unwrap()
    }

    const MAC: [u8; 6] = [0x02, 0xAB, 0x00, 0x10, 0xfe, 0x09];

    #[test]
    fn patterns_render_every_placeholder() {
        assert_eq!(
            render("dhcp-{ip}", [198, 18, 0, 10], &MAC),
            "dhcp-198-18-0-10"
        );
        assert_eq!(
            render("{d}-{c}-{b}-{a}", [198, 18, 0, 10], &MAC),
            "10-0-18-198"
        );
        assert_eq!(render("h{mac}", [0, 0, 0, 0], &MAC), "h02ab0010fe09");
        assert_eq!(render("{ip}", [255, 255, 255, 255], &[]), "255-255-255-255");
        assert_eq!(Pattern::default(), Pattern::parse("dhcp-{ip}").unwrap());
        let mut out = [0u8; MAX_LABEL];
        let n = Pattern::default().render(Ipv4Addr::new(10, 1, 2, 3), &MAC, &mut out);
        assert_eq!(&out[..n], b"dhcp-10-1-2-3");
    }

    #[test]
    fn a_rendering_is_always_a_label() {
        // An empty chaddr leaves no dangling dash.
        assert_eq!(render("cpe-{mac}", [1, 2, 3, 4], &[]), "cpe");
        assert_eq!(render("{mac}-x", [1, 2, 3, 4], &[]), "x");
        assert_eq!(render("{mac}", [1, 2, 3, 4], &[]), "");
        // A longer chaddr than DHCP holds is cut at 63.
        let s = render("{mac}{ip}", [1, 2, 3, 4], &[0xaa; 40]);
        assert_eq!(s, "a".repeat(63));
        // The longest pattern parse accepts, with a 16-octet chaddr.
        let p = format!("{}{{mac}}", "q".repeat(31));
        let s = render(&p, [1, 2, 3, 4], &[0xbb; 16]);
        assert_eq!(s.len(), 63);
        assert!(is_label(s.as_bytes()));
    }

    #[test]
    fn pattern_errors_name_what_is_wrong() {
        let e = |t: &str| Pattern::parse(t).unwrap_err();
        assert!(
            e("dhcp-{host}").contains("unknown placeholder {host}"),
            "{}",
            e("dhcp-{host}")
        );
        assert!(e("dhcp-{}").contains("unknown placeholder {}"));
        assert!(e("dhcp-{ip").contains("not closed"), "{}", e("dhcp-{ip"));
        assert!(e("dhcp-{{ip}}").contains("not closed"));
        assert!(e("dhcp-ip}").contains("without its"), "{}", e("dhcp-ip}"));
        assert!(e("{ip}}").contains("without its"));
        assert!(e("Dhcp-{ip}").contains("'D'"), "{}", e("Dhcp-{ip}"));
        assert!(e("dhcp_{ip}").contains("'_'"));
        assert!(e("dhcp.{ip}").contains("'.'"));
        assert!(e("dhcp").contains("no placeholder"));
        assert!(e("").contains("no placeholder"));
        assert!(e("-{ip}").contains("'-'"));
        assert!(e("{ip}-").contains("'-'"));
        assert!(e("a--{ip}").contains("--"));
        assert!(e("{ip}--{mac}").contains("--"));
        let too = format!("{}{{mac}}", "q".repeat(32));
        assert!(e(&too).contains("64 octets"), "{}", e(&too));
        // Adjacent placeholders are fine.
        assert!(Pattern::parse("{a}{b}{c}{d}").is_ok());
    }
}
