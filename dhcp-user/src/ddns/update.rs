//! The RFC 4703 procedures as RFC 2136 update messages, one set per
//! conflict mode (Kea's `ddns-conflict-resolution-mode`), each signed with
//! TSIG (RFC 8945) and its answer checked the same way.
//!
//! An update is one atomic transaction at the server: its prerequisites
//! are tested, and only when all hold are its updates applied. The
//! procedures below use them so that a name another client holds (its
//! DHCID record says so) is never overwritten, and a name is removed only
//! while it is still ours.
//!
//! RFC 2136 §2.4 prerequisites and §2.5 updates, as written here:
//!
//! | meaning                          | class | type | rdata |
//! |----------------------------------|-------|------|-------|
//! | name is not in use               | NONE  | ANY  | empty |
//! | RRset exists (any value)         | ANY   | T    | empty |
//! | RRset does not exist             | NONE  | T    | empty |
//! | RRset exists with this value     | IN    | T    | value |
//! | add to an RRset                  | IN    | T    | value |
//! | delete an RRset                  | ANY   | T    | empty |
//! | delete one RR from an RRset      | NONE  | T    | value |
use std::net::Ipv4Addr;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm as HickoryAlg, TsigError};
use hickory_proto::rr::rdata::{A, NULL, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};

use crate::config::ddns::{ConflictMode, TsigAlgorithm};

pub use super::transport::Server;
use super::transport::TransportError;

/// RFC 4701: the DHCID RR type, which hickory-proto has no typed record
/// for; its RDATA travels as opaque bytes.
pub const DHCID: RecordType = RecordType::Unknown(49);

/// RFC 8945 §10 recommends 300 s of clock skew allowed between us and the
/// server.
const FUDGE: u16 = 300;

/// A TSIG key as the config check made it: name, algorithm, secret
/// (kept out of `Debug`).
pub use crate::config::ddns::TsigKeyConfig as TsigKey;

impl TsigKey {
    fn signer(&self) -> Result<TSigner, String> {
        let name = Name::from_ascii(&self.name)
            .map_err(|e| format!("TSIG key name {:?}: {e}", self.name))?;
        let alg = match self.algorithm {
            TsigAlgorithm::HmacSha256 => HickoryAlg::HmacSha256,
            TsigAlgorithm::HmacSha384 => HickoryAlg::HmacSha384,
            TsigAlgorithm::HmacSha512 => HickoryAlg::HmacSha512,
        };
        TSigner::new(self.secret.clone(), alg, name, FUDGE)
            .map_err(|e| format!("TSIG key {:?}: {e}", self.name))
    }
}

/// What became of one procedure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The records are as asked.
    Done,
    /// A prerequisite says the name is someone else's: nothing changed.
    /// On removal also when nothing of ours is left there.
    Conflict,
    /// The server refused or failed the update (REFUSED, SERVFAIL,
    /// NOTZONE, FORMERR...): the rcode's name.
    Refused(String),
    /// The TSIG exchange failed: the server's TSIG error (BADSIG, BADKEY,
    /// BADTIME) or an answer unsigned or not verifiable with our key.
    BadTsig(String),
    /// No answer: timeout, ICMP unreachable, an I/O error.
    Unreachable(String),
    /// The request cannot be built: a name that is not a DNS name or not
    /// inside its zone, or a key hickory-proto refuses. Retrying cannot
    /// help.
    Invalid(String),
}

/// The A and DHCID records of one lease in the forward zone.
#[derive(Clone, Copy, Debug)]
pub struct Forward<'a> {
    /// "lab.example."
    pub zone: &'a str,
    /// "host.lab.example."
    pub fqdn: &'a str,
    pub addr: Ipv4Addr,
    pub ttl: u32,
    /// The DHCID RDATA (RFC 4701), as the server writes it.
    pub dhcid: &'a [u8],
    pub mode: ConflictMode,
}

/// The PTR (and DHCID) records of one lease in the reverse zone.
#[derive(Clone, Copy, Debug)]
pub struct Reverse<'a> {
    /// "198.in-addr.arpa."
    pub zone: &'a str,
    pub addr: Ipv4Addr,
    /// What the PTR points to.
    pub fqdn: &'a str,
    pub ttl: u32,
    pub dhcid: &'a [u8],
    pub mode: ConflictMode,
}

/// The names of a forward request, parsed once.
struct ForwardNames {
    zone: Name,
    fqdn: Name,
}

fn parse_name(what: &str, text: &str) -> Result<Name, String> {
    let mut name = Name::from_ascii(text).map_err(|e| format!("{what} {text:?}: {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// RFC 4701 §3: identifier type (2 bytes), digest type (1), digest; a
/// shorter DHCID is the caller's bug, refused before anything is sent.
fn check_dhcid(mode: ConflictMode, dhcid: &[u8]) -> Result<(), String> {
    if mode.writes_dhcid() && dhcid.len() < 4 {
        return Err(format!(
            "DHCID RDATA of {} bytes: RFC 4701 needs a type, a digest type and a digest",
            dhcid.len()
        ));
    }
    Ok(())
}

fn names_in_zone(zone: &str, owner: &str) -> Result<ForwardNames, String> {
    let zone_name = parse_name("zone", zone)?;
    let fqdn = parse_name("name", owner)?;
    if !zone_name.zone_of(&fqdn) {
        return Err(format!("{fqdn} is not inside the zone {zone_name}"));
    }
    Ok(ForwardNames {
        zone: zone_name,
        fqdn,
    })
}

/// d.c.b.a.in-addr.arpa. (RFC 1035 §3.5).
pub fn ptr_name(addr: Ipv4Addr) -> String {
    let [a, b, c, d] = addr.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
}

/// An update message for `zone`, with a random id (hickory-proto draws
/// it from the thread's RNG).
fn update(zone: &Name) -> Message {
    let mut m = Message::query();
    m.metadata.op_code = OpCode::Update;
    m.metadata.recursion_desired = false;
    let mut q = Query::new();
    q.set_name(zone.clone())
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::SOA);
    m.add_query(q);
    m
}

fn empty(name: &Name, class: DNSClass, rtype: RecordType) -> Record {
    let mut r = Record::update0(name.clone(), 0, rtype).into_record_of_rdata();
    r.dns_class = class;
    r
}

fn with_data(name: &Name, class: DNSClass, ttl: u32, data: RData) -> Record {
    let mut r = Record::from_rdata(name.clone(), ttl, data);
    r.dns_class = class;
    r
}

fn a_data(addr: Ipv4Addr) -> RData {
    RData::A(A(addr))
}

fn dhcid_data(rdata: &[u8]) -> RData {
    RData::Unknown {
        code: DHCID,
        rdata: NULL::with(rdata.to_vec()),
    }
}

/// The prerequisite that the name's DHCID says it is ours: its exact
/// value under check-with-dhcid, any DHCID under check-exists-with-dhcid
/// (a DHCP server's name, not a static one); none in the no-check modes.
fn ours_prereq(name: &Name, dhcid: &[u8], mode: ConflictMode) -> Option<Record> {
    match mode {
        ConflictMode::CheckWithDhcid => Some(with_data(name, DNSClass::IN, 0, dhcid_data(dhcid))),
        ConflictMode::CheckExistsWithDhcid => Some(empty(name, DNSClass::ANY, DHCID)),
        ConflictMode::NoCheckWithDhcid | ConflictMode::NoCheckWithoutDhcid => None,
    }
}

fn is_check_mode(mode: ConflictMode) -> bool {
    matches!(
        mode,
        ConflictMode::CheckWithDhcid | ConflictMode::CheckExistsWithDhcid
    )
}

/// RFC 4703 §5.3.1 (check modes): the name is free; A and DHCID added.
/// No-check modes: the one and only update, taking the name whoever has
/// it.
fn forward_add_first(n: &ForwardNames, f: &Forward) -> Message {
    let mut m = update(&n.zone);
    let a = with_data(&n.fqdn, DNSClass::IN, f.ttl, a_data(f.addr));
    match f.mode {
        ConflictMode::CheckWithDhcid | ConflictMode::CheckExistsWithDhcid => {
            m.add_answer(empty(&n.fqdn, DNSClass::NONE, RecordType::ANY));
            m.add_authority(a);
            m.add_authority(with_data(&n.fqdn, DNSClass::IN, f.ttl, dhcid_data(f.dhcid)));
        }
        ConflictMode::NoCheckWithDhcid => {
            m.add_authority(empty(&n.fqdn, DNSClass::ANY, RecordType::A));
            m.add_authority(empty(&n.fqdn, DNSClass::ANY, DHCID));
            m.add_authority(a);
            m.add_authority(with_data(&n.fqdn, DNSClass::IN, f.ttl, dhcid_data(f.dhcid)));
        }
        ConflictMode::NoCheckWithoutDhcid => {
            m.add_authority(empty(&n.fqdn, DNSClass::ANY, RecordType::A));
            m.add_authority(a);
        }
    }
    m
}

/// RFC 4703 §5.3.2: the name is in use; if its DHCID is ours, our A
/// replaces the A RRset (the DHCID already matches and stays). Under
/// check-exists-with-dhcid any DHCID will do, and ours replaces it, so
/// the name is ours from then on (as Kea does).
fn forward_add_second(n: &ForwardNames, f: &Forward) -> Message {
    let mut m = update(&n.zone);
    if let Some(p) = ours_prereq(&n.fqdn, f.dhcid, f.mode) {
        m.add_answer(p);
    }
    let take_dhcid = f.mode == ConflictMode::CheckExistsWithDhcid;
    m.add_authority(empty(&n.fqdn, DNSClass::ANY, RecordType::A));
    if take_dhcid {
        m.add_authority(empty(&n.fqdn, DNSClass::ANY, DHCID));
    }
    m.add_authority(with_data(&n.fqdn, DNSClass::IN, f.ttl, a_data(f.addr)));
    if take_dhcid {
        m.add_authority(with_data(&n.fqdn, DNSClass::IN, f.ttl, dhcid_data(f.dhcid)));
    }
    m
}

/// RFC 4703 §5.5, first update: while the name is ours, our A record
/// goes (only ours: other addresses of the name stay).
fn forward_remove_first(n: &ForwardNames, f: &Forward) -> Message {
    let mut m = update(&n.zone);
    if let Some(p) = ours_prereq(&n.fqdn, f.dhcid, f.mode) {
        m.add_answer(p);
    }
    m.add_authority(with_data(&n.fqdn, DNSClass::NONE, 0, a_data(f.addr)));
    m
}

/// RFC 4703 §5.5, second update: once no A and no AAAA is left, the
/// DHCID goes too and the name is free. The ownership prerequisite is
/// repeated so a name taken over between the two updates keeps its new
/// owner's DHCID. None when no DHCID is written.
fn forward_remove_second(n: &ForwardNames, f: &Forward) -> Option<Message> {
    if !f.mode.writes_dhcid() {
        return None;
    }
    let mut m = update(&n.zone);
    if let Some(p) = ours_prereq(&n.fqdn, f.dhcid, f.mode) {
        m.add_answer(p);
    }
    m.add_answer(empty(&n.fqdn, DNSClass::NONE, RecordType::A));
    m.add_answer(empty(&n.fqdn, DNSClass::NONE, RecordType::AAAA));
    m.add_authority(empty(&n.fqdn, DNSClass::ANY, DHCID));
    Some(m)
}

fn reverse_names(r: &Reverse) -> Result<(ForwardNames, Name), String> {
    check_dhcid(r.mode, r.dhcid)?;
    let names = names_in_zone(r.zone, &ptr_name(r.addr))?;
    let target = parse_name("name", r.fqdn)?;
    Ok((names, target))
}

/// The address's PTR (and DHCID) replace whatever the reverse name held:
/// an address has one lease at a time, so the reverse name is always the
/// current lease's (RFC 4703 §5.4: no conflict detection on PTRs).
fn reverse_add(n: &ForwardNames, target: &Name, r: &Reverse) -> Message {
    let mut m = update(&n.zone);
    m.add_authority(empty(&n.fqdn, DNSClass::ANY, RecordType::PTR));
    if r.mode.writes_dhcid() {
        m.add_authority(empty(&n.fqdn, DNSClass::ANY, DHCID));
    }
    m.add_authority(with_data(
        &n.fqdn,
        DNSClass::IN,
        r.ttl,
        RData::PTR(PTR(target.clone())),
    ));
    if r.mode.writes_dhcid() {
        m.add_authority(with_data(&n.fqdn, DNSClass::IN, r.ttl, dhcid_data(r.dhcid)));
    }
    m
}

/// The PTR and DHCID go; in the check modes only while the PTR still
/// points to our name (a later lease of the address may have rewritten
/// it already).
fn reverse_remove(n: &ForwardNames, target: &Name, r: &Reverse) -> Message {
    let mut m = update(&n.zone);
    if is_check_mode(r.mode) {
        m.add_answer(with_data(
            &n.fqdn,
            DNSClass::IN,
            0,
            RData::PTR(PTR(target.clone())),
        ));
    }
    m.add_authority(empty(&n.fqdn, DNSClass::ANY, RecordType::PTR));
    if r.mode.writes_dhcid() {
        m.add_authority(empty(&n.fqdn, DNSClass::ANY, DHCID));
    }
    m
}

/// The rcodes a procedure branches on (RFC 2136 §2.4: which one says
/// which prerequisite failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    NoError,
    /// "Name is not in use" failed.
    YxDomain,
    /// "Name is in use" failed.
    NxDomain,
    /// An "RRset exists" failed.
    NxRrset,
    /// "RRset does not exist" failed.
    YxRrset,
}

impl Server {
    /// Adds the A (and DHCID) of a lease: RFC 4703 §5.3 in the check
    /// modes, one overwriting update in the no-check ones.
    pub fn add_forward(&mut self, key: &TsigKey, f: &Forward) -> Outcome {
        let n = match check_dhcid(f.mode, f.dhcid).and_then(|()| names_in_zone(f.zone, f.fqdn)) {
            Ok(n) => n,
            Err(e) => return Outcome::Invalid(e),
        };
        match self.send(key, forward_add_first(&n, f)) {
            Ok(Answer::NoError) => Outcome::Done,
            Ok(Answer::YxDomain) if is_check_mode(f.mode) => {
                match self.send(key, forward_add_second(&n, f)) {
                    Ok(Answer::NoError) => Outcome::Done,
                    Ok(Answer::NxRrset | Answer::NxDomain) => Outcome::Conflict,
                    Ok(other) => unexpected(other),
                    Err(o) => o,
                }
            }
            Ok(other) => unexpected(other),
            Err(o) => o,
        }
    }

    /// Removes the A of a lease, then the DHCID when the name holds no
    /// address any more: RFC 4703 §5.5. Conflict when the name is not
    /// ours (any more).
    pub fn remove_forward(&mut self, key: &TsigKey, f: &Forward) -> Outcome {
        let n = match check_dhcid(f.mode, f.dhcid).and_then(|()| names_in_zone(f.zone, f.fqdn)) {
            Ok(n) => n,
            Err(e) => return Outcome::Invalid(e),
        };
        match self.send(key, forward_remove_first(&n, f)) {
            Ok(Answer::NoError) => {}
            Ok(Answer::NxRrset | Answer::NxDomain) if is_check_mode(f.mode) => {
                return Outcome::Conflict;
            }
            Ok(other) => return unexpected(other),
            Err(o) => return o,
        }
        let Some(second) = forward_remove_second(&n, f) else {
            return Outcome::Done;
        };
        match self.send(key, second) {
            // Done, or another address keeps the name (YXRRSET) and its
            // DHCID with it; or someone else took it in between (NXRRSET):
            // our A is gone either way.
            Ok(Answer::NoError | Answer::YxRrset | Answer::NxRrset | Answer::NxDomain) => {
                Outcome::Done
            }
            Ok(other) => unexpected(other),
            Err(o) => o,
        }
    }

    /// Writes the PTR (and DHCID) of a lease, replacing what the reverse
    /// name held.
    pub fn add_reverse(&mut self, key: &TsigKey, r: &Reverse) -> Outcome {
        let (n, target) = match reverse_names(r) {
            Ok(x) => x,
            Err(e) => return Outcome::Invalid(e),
        };
        match self.send(key, reverse_add(&n, &target, r)) {
            Ok(Answer::NoError) => Outcome::Done,
            Ok(other) => unexpected(other),
            Err(o) => o,
        }
    }

    /// Removes the PTR (and DHCID) of a lease; in the check modes only
    /// while the PTR still names our FQDN (else Conflict).
    pub fn remove_reverse(&mut self, key: &TsigKey, r: &Reverse) -> Outcome {
        let (n, target) = match reverse_names(r) {
            Ok(x) => x,
            Err(e) => return Outcome::Invalid(e),
        };
        match self.send(key, reverse_remove(&n, &target, r)) {
            Ok(Answer::NoError) => Outcome::Done,
            Ok(Answer::NxRrset | Answer::NxDomain) if is_check_mode(r.mode) => Outcome::Conflict,
            Ok(other) => unexpected(other),
            Err(o) => o,
        }
    }

    /// Signs, sends, and checks the answer's signature; the prerequisite
    /// rcodes come back for the procedure to branch on, every other
    /// ending as the procedure's outcome.
    fn send(&mut self, key: &TsigKey, mut msg: Message) -> Result<Answer, Outcome> {
        let signer = key.signer().map_err(Outcome::Invalid)?;
        let now = unix_now();
        let mut verifier = msg
            .finalize(&signer, now)
            .map_err(|e| Outcome::Invalid(format!("cannot sign the update: {e}")))?
            .ok_or_else(|| Outcome::Invalid("TSIG signing gave no verifier".into()))?;
        let bytes = msg
            .to_vec()
            .map_err(|e| Outcome::Invalid(format!("cannot encode the update: {e}")))?;
        let answer = self.exchange(&bytes).map_err(|e| match e {
            TransportError::Timeout => Outcome::Unreachable(format!(
                "{}: no answer within {:?}",
                self.addr, self.timeout
            )),
            TransportError::Io(e) => Outcome::Unreachable(format!("{}: {e}", self.addr)),
        })?;
        check_answer(&answer, &mut |bytes| {
            verifier
                .verify(bytes)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

fn unexpected(a: Answer) -> Outcome {
    // A prerequisite rcode to a message that had no such prerequisite:
    // the server misbehaves; say what it said.
    let rcode = match a {
        Answer::NoError => ResponseCode::NoError,
        Answer::YxDomain => ResponseCode::YXDomain,
        Answer::NxDomain => ResponseCode::NXDomain,
        Answer::NxRrset => ResponseCode::NXRRSet,
        Answer::YxRrset => ResponseCode::YXRRSet,
    };
    Outcome::Refused(rcode.to_str().to_string())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn tsig_error_name(e: &TsigError) -> String {
    match e {
        TsigError::BadSig => "BADSIG".into(),
        TsigError::BadKey => "BADKEY".into(),
        TsigError::BadTime => "BADTIME".into(),
        TsigError::BadTrunc => "BADTRUNC".into(),
        TsigError::Unknown(n) => format!("TSIG error {n}"),
    }
}

/// The answer's rcode once its TSIG is checked. The TSIG error field is
/// read before the signature: BADSIG and BADKEY answers come unsigned
/// (RFC 8945 §5.3.2), so they cannot verify, and the error says more.
fn check_answer(
    bytes: &[u8],
    verify: &mut dyn FnMut(&[u8]) -> Result<(), String>,
) -> Result<Answer, Outcome> {
    let msg = Message::from_vec(bytes)
        .map_err(|e| Outcome::BadTsig(format!("the answer does not parse: {e}")))?;
    let rcode = msg.metadata.response_code;
    if msg.metadata.message_type != MessageType::Response || msg.metadata.op_code != OpCode::Update
    {
        return Err(Outcome::Refused(format!(
            "the answer is not an update response ({})",
            rcode.to_str()
        )));
    }
    let Some(tsig) = msg.signature() else {
        return Err(Outcome::BadTsig(format!(
            "the answer ({}) is not signed",
            rcode.to_str()
        )));
    };
    if let Some(e) = &tsig.data.error {
        return Err(Outcome::BadTsig(tsig_error_name(e)));
    }
    verify(bytes).map_err(|e| {
        Outcome::BadTsig(format!(
            "the answer ({}) does not verify with our key: {e}",
            rcode.to_str()
        ))
    })?;
    match rcode {
        ResponseCode::NoError => Ok(Answer::NoError),
        ResponseCode::YXDomain => Ok(Answer::YxDomain),
        ResponseCode::NXDomain => Ok(Answer::NxDomain),
        ResponseCode::NXRRSet => Ok(Answer::NxRrset),
        ResponseCode::YXRRSet => Ok(Answer::YxRrset),
        ResponseCode::NotAuth
        | ResponseCode::BADSIG
        | ResponseCode::BADKEY
        | ResponseCode::BADTIME => Err(Outcome::BadTsig(rcode.to_str().to_string())),
        other => Err(Outcome::Refused(other.to_str().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use data_encoding::BASE64;
    use hickory_proto::rr::TSigResponseContext;

    const ZONE: &str = "lab.example.";
    const FQDN: &str = "host.lab.example.";
    const ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 7);

    fn dhcid() -> Vec<u8> {
        let mut d = vec![0x00, 0x01, 0x01];
        d.extend((0..32).map(|i| i as u8));
        d
    }

    /// A key as the config check makes them (`config::ddns`).
    fn key_of(name: &str, b64: &str) -> TsigKey {
        TsigKey {
            name: name.into(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: BASE64.decode(b64.as_bytes()).unwrap(),
        }
    }

    fn key() -> TsigKey {
        key_of(
            "xdhcpd-key",
            "dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IG9mIDMyIGJ5dGVzIQ==",
        )
    }

    fn fwd(d: &[u8], mode: ConflictMode) -> Forward<'_> {
        Forward {
            zone: ZONE,
            fqdn: FQDN,
            addr: ADDR,
            ttl: 1200,
            dhcid: d,
            mode,
        }
    }

    fn rev(d: &[u8], mode: ConflictMode) -> Reverse<'_> {
        Reverse {
            zone: "198.in-addr.arpa.",
            addr: ADDR,
            fqdn: FQDN,
            ttl: 1200,
            dhcid: d,
            mode,
        }
    }

    /// One record as (class, type, rdata bytes or "" for empty), to
    /// compare sections compactly.
    type Shape = (DNSClass, RecordType, Vec<u8>);

    fn shape(r: &Record) -> Shape {
        let data = match &r.data {
            RData::Update0(_) => vec![],
            RData::A(a) => a.0.octets().to_vec(),
            RData::Unknown { rdata, .. } => rdata.anything.clone(),
            RData::PTR(p) => p.0.to_ascii().into_bytes(),
            other => panic!("unexpected rdata {other:?}"),
        };
        (r.dns_class, r.record_type(), data)
    }

    /// Encodes, signs and parses the message back, as the server sees it.
    fn on_the_wire(mut m: Message) -> Message {
        m.finalize(&key().signer().unwrap(), unix_now()).unwrap();
        let back = Message::from_vec(&m.to_vec().unwrap()).unwrap();
        assert_eq!(back.metadata.op_code, OpCode::Update);
        assert_eq!(back.queries.len(), 1);
        assert_eq!(back.queries[0].query_type(), RecordType::SOA);
        assert!(back.signature().is_some(), "every update is signed");
        back
    }

    fn sections(m: &Message) -> (Vec<Shape>, Vec<Shape>) {
        for r in m.answers.iter().chain(&m.authorities) {
            assert_eq!(r.name.to_ascii(), FQDN);
        }
        (
            m.answers.iter().map(shape).collect(),
            m.authorities.iter().map(shape).collect(),
        )
    }

    const IN: DNSClass = DNSClass::IN;
    const NONE: DNSClass = DNSClass::NONE;
    const ANY: DNSClass = DNSClass::ANY;

    fn names() -> ForwardNames {
        names_in_zone(ZONE, FQDN).unwrap()
    }

    #[test]
    fn check_with_dhcid_add_asks_for_a_free_name_then_for_our_dhcid() {
        let d = dhcid();
        let f = fwd(&d, ConflictMode::CheckWithDhcid);
        let first = on_the_wire(forward_add_first(&names(), &f));
        assert_eq!(first.queries[0].name().to_ascii(), ZONE);
        let (pre, upd) = sections(&first);
        assert_eq!(pre, vec![(NONE, RecordType::ANY, vec![])]);
        assert_eq!(
            upd,
            vec![
                (IN, RecordType::A, vec![198, 18, 0, 7]),
                (IN, DHCID, d.clone())
            ]
        );
        assert!(first.authorities.iter().all(|r| r.ttl == 1200));
        let second = on_the_wire(forward_add_second(&names(), &f));
        let (pre, upd) = sections(&second);
        assert_eq!(pre, vec![(IN, DHCID, d.clone())]);
        assert_eq!(
            second.answers[0].ttl, 0,
            "RFC 2136 §2.4.2: prerequisite TTL 0"
        );
        assert_eq!(
            upd,
            vec![
                (ANY, RecordType::A, vec![]),
                (IN, RecordType::A, vec![198, 18, 0, 7])
            ]
        );
    }

    #[test]
    fn check_exists_with_dhcid_takes_a_name_with_any_dhcid() {
        let d = dhcid();
        let f = fwd(&d, ConflictMode::CheckExistsWithDhcid);
        let (pre, _) = sections(&on_the_wire(forward_add_first(&names(), &f)));
        assert_eq!(pre, vec![(NONE, RecordType::ANY, vec![])]);
        let (pre, upd) = sections(&on_the_wire(forward_add_second(&names(), &f)));
        assert_eq!(pre, vec![(ANY, DHCID, vec![])]);
        assert_eq!(
            upd,
            vec![
                (ANY, RecordType::A, vec![]),
                (ANY, DHCID, vec![]),
                (IN, RecordType::A, vec![198, 18, 0, 7]),
                (IN, DHCID, d.clone()),
            ]
        );
    }

    #[test]
    fn no_check_modes_overwrite_in_one_update_without_prerequisites() {
        let d = dhcid();
        let (pre, upd) = sections(&on_the_wire(forward_add_first(
            &names(),
            &fwd(&d, ConflictMode::NoCheckWithDhcid),
        )));
        assert!(pre.is_empty());
        assert_eq!(
            upd,
            vec![
                (ANY, RecordType::A, vec![]),
                (ANY, DHCID, vec![]),
                (IN, RecordType::A, vec![198, 18, 0, 7]),
                (IN, DHCID, d.clone()),
            ]
        );
        let (pre, upd) = sections(&on_the_wire(forward_add_first(
            &names(),
            &fwd(&d, ConflictMode::NoCheckWithoutDhcid),
        )));
        assert!(pre.is_empty());
        assert_eq!(
            upd,
            vec![
                (ANY, RecordType::A, vec![]),
                (IN, RecordType::A, vec![198, 18, 0, 7])
            ]
        );
    }

    #[test]
    fn removal_deletes_our_address_then_the_dhcid_once_no_address_is_left() {
        let d = dhcid();
        let f = fwd(&d, ConflictMode::CheckWithDhcid);
        let (pre, upd) = sections(&on_the_wire(forward_remove_first(&names(), &f)));
        assert_eq!(pre, vec![(IN, DHCID, d.clone())]);
        assert_eq!(upd, vec![(NONE, RecordType::A, vec![198, 18, 0, 7])]);
        let (pre, upd) = sections(&on_the_wire(forward_remove_second(&names(), &f).unwrap()));
        assert_eq!(
            pre,
            vec![
                (IN, DHCID, d.clone()),
                (NONE, RecordType::A, vec![]),
                (NONE, RecordType::AAAA, vec![]),
            ]
        );
        assert_eq!(upd, vec![(ANY, DHCID, vec![])]);

        let f = fwd(&d, ConflictMode::NoCheckWithDhcid);
        let (pre, _) = sections(&on_the_wire(forward_remove_first(&names(), &f)));
        assert!(pre.is_empty());
        let (pre, _) = sections(&on_the_wire(forward_remove_second(&names(), &f).unwrap()));
        assert_eq!(
            pre,
            vec![
                (NONE, RecordType::A, vec![]),
                (NONE, RecordType::AAAA, vec![])
            ]
        );
        let f = fwd(&d, ConflictMode::NoCheckWithoutDhcid);
        assert!(forward_remove_second(&names(), &f).is_none());
    }

    #[test]
    fn reverse_updates_name_the_address_backwards_and_replace_the_ptr() {
        let d = dhcid();
        let r = rev(&d, ConflictMode::CheckWithDhcid);
        let (n, target) = reverse_names(&r).unwrap();
        assert_eq!(n.fqdn.to_ascii(), "7.0.18.198.in-addr.arpa.");
        let m = on_the_wire(reverse_add(&n, &target, &r));
        assert_eq!(m.queries[0].name().to_ascii(), "198.in-addr.arpa.");
        assert!(m.answers.is_empty());
        let upd: Vec<_> = m.authorities.iter().map(shape).collect();
        assert_eq!(
            upd,
            vec![
                (ANY, RecordType::PTR, vec![]),
                (ANY, DHCID, vec![]),
                (IN, RecordType::PTR, FQDN.as_bytes().to_vec()),
                (IN, DHCID, d.clone()),
            ]
        );
        let m = on_the_wire(reverse_remove(&n, &target, &r));
        let pre: Vec<_> = m.answers.iter().map(shape).collect();
        assert_eq!(pre, vec![(IN, RecordType::PTR, FQDN.as_bytes().to_vec())]);
        let r = rev(&d, ConflictMode::NoCheckWithoutDhcid);
        let m = on_the_wire(reverse_add(&n, &target, &r));
        assert_eq!(m.authorities.len(), 2, "no DHCID in no-check-without-dhcid");
        let m = on_the_wire(reverse_remove(&n, &target, &r));
        assert!(m.answers.is_empty());
    }

    #[test]
    fn names_outside_their_zone_are_invalid_not_sent() {
        let d = dhcid();
        let mut f = fwd(&d, ConflictMode::CheckWithDhcid);
        f.fqdn = "host.other.example.";
        let mut s = Server::new(
            "192.0.2.53:53".parse().unwrap(),
            std::time::Duration::from_secs(1),
        );
        assert!(
            matches!(s.add_forward(&key(), &f), Outcome::Invalid(e) if e.contains("not inside"))
        );
        let mut r = rev(&d, ConflictMode::CheckWithDhcid);
        r.zone = "10.in-addr.arpa.";
        assert!(matches!(s.add_reverse(&key(), &r), Outcome::Invalid(_)));
    }

    /// A server's answer to `request`, signed as BIND signs it (the
    /// request's MAC chained in), or with a TSIG error.
    fn answer_to(
        request: &Message,
        signer: &TSigner,
        rcode: ResponseCode,
        error: Option<TsigError>,
    ) -> Vec<u8> {
        let mut resp = Message::response(request.metadata.id, OpCode::Update);
        resp.metadata.response_code = rcode;
        resp.add_queries(request.queries.clone());
        let unsigned = resp.to_vec().unwrap();
        let req_mac = request.signature().unwrap().data.mac.clone();
        let now = unix_now();
        let tsig = match error {
            Some(TsigError::BadSig) => {
                TSigResponseContext::bad_signature(request.metadata.id, now, signer.clone())
            }
            _ => TSigResponseContext::new(request.metadata.id, now, signer.clone(), req_mac, error),
        }
        .sign(&unsigned)
        .unwrap();
        resp.set_signature(tsig);
        resp.to_vec().unwrap()
    }

    fn signed_request() -> (Message, hickory_proto::rr::TSigVerifier) {
        let d = dhcid();
        let mut m = forward_add_first(&names(), &fwd(&d, ConflictMode::CheckWithDhcid));
        let v = m
            .finalize(&key().signer().unwrap(), unix_now())
            .unwrap()
            .unwrap();
        (m, v)
    }

    fn check(bytes: &[u8], v: &mut hickory_proto::rr::TSigVerifier) -> Result<Answer, Outcome> {
        check_answer(bytes, &mut |b| {
            v.verify(b).map(|_| ()).map_err(|e| e.to_string())
        })
    }

    #[test]
    fn a_signed_answer_verifies_and_its_rcode_comes_through() {
        let signer = key().signer().unwrap();
        let (req, mut v) = signed_request();
        let bytes = answer_to(&req, &signer, ResponseCode::YXDomain, None);
        assert_eq!(check(&bytes, &mut v), Ok(Answer::YxDomain));
        let (req, mut v) = signed_request();
        let bytes = answer_to(&req, &signer, ResponseCode::Refused, None);
        assert_eq!(
            check(&bytes, &mut v),
            Err(Outcome::Refused(ResponseCode::Refused.to_str().into()))
        );
    }

    #[test]
    fn unsigned_wrongly_signed_and_tsig_error_answers_are_bad_tsig() {
        let (req, mut v) = signed_request();
        // Unsigned.
        let mut resp = Message::response(req.metadata.id, OpCode::Update);
        resp.add_queries(req.queries.clone());
        let r = check(&resp.to_vec().unwrap(), &mut v);
        assert!(
            matches!(r, Err(Outcome::BadTsig(ref e)) if e.contains("not signed")),
            "{r:?}"
        );
        // Signed with another secret.
        let other = key_of("xdhcpd-key", "b3RoZXIgc2VjcmV0").signer().unwrap();
        let bytes = answer_to(&req, &other, ResponseCode::NoError, None);
        let r = check(&bytes, &mut v);
        assert!(
            matches!(r, Err(Outcome::BadTsig(ref e)) if e.contains("does not verify")),
            "{r:?}"
        );
        // The server's BADSIG (unsigned TSIG with the error, rcode NOTAUTH).
        let bytes = answer_to(&req, &other, ResponseCode::NotAuth, Some(TsigError::BadSig));
        assert_eq!(
            check(&bytes, &mut v),
            Err(Outcome::BadTsig("BADSIG".into()))
        );
    }

    #[test]
    fn no_answer_bytes_panic() {
        let (req, mut v) = signed_request();
        let good = answer_to(&req, &key().signer().unwrap(), ResponseCode::NoError, None);
        // Every truncation and every single-byte change of a real answer.
        for n in 0..good.len() {
            let _ = check(&good[..n], &mut v);
        }
        for i in 0..good.len() {
            for x in [0x00, 0xff, 0x80, 0x01] {
                let mut b = good.clone();
                b[i] ^= x;
                let _ = check(&b, &mut v);
            }
        }
        let _ = check(&[], &mut v);
        // Random records behind a plausible header: an update response
        // with a few records in each section.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut b = good[..12].to_vec();
            b[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 1, 0, 2]);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 200) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.push(x as u8);
            }
            let _ = check(&b, &mut v);
        }
    }

    #[test]
    fn the_secret_stays_out_of_debug() {
        let k = key_of("k", "AAAA");
        assert!(
            !format!("{k:?}").contains("AAAA") && !format!("{k:?}").contains("[0, 0, 0]"),
            "the secret stays out of Debug"
        );
    }
}
