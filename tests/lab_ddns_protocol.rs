//! Privileged lab test of the DDNS library (`xdhcp::ddns::update`)
//! against a real BIND named: the RFC 4703 procedures under the conflict
//! modes, TSIG both ways, and a server that is gone. The library runs on
//! a thread moved into the lab's server namespace (setns), where xdhcpd's
//! DDNS thread would run; named is in its own namespace beside it
//! (xtask::named). Labs are named `xdt60`..`xdt67`; run them with `cargo
//! xtask test` (as root).
mod common;

use common::*;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};
use xdhcp::config::ddns::{ConflictMode, TsigAlgorithm, decode_secret};
use xdhcp::ddns::update::{Forward, Outcome, Reverse, Server, TsigKey};
use xtask::lab::Lab;
use xtask::named::{FORWARD_ZONE, Named, NamedOptions, REVERSE_ZONE};

const FQDN: &str = "host.lab.example.";
const ADDR_1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const ADDR_2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
const TIMEOUT: Duration = Duration::from_secs(2);

/// Made-up DHCID RDATA (RFC 4701: identifier type 1, digest type 1, 32
/// digest bytes); the real computation is tested elsewhere.
fn dhcid(seed: u8) -> Vec<u8> {
    let mut d = vec![0x00, 0x01, 0x01];
    d.extend((0..32u8).map(|i| i.wrapping_mul(7).wrapping_add(seed)));
    d
}

/// What `dig +short +unknownformat` prints for a DHCID: `\# 35 HEX`.
fn dhcid_text(d: &[u8]) -> String {
    let hex: String = d.iter().map(|b| format!("{b:02X}")).collect();
    format!("\\# {} {hex}", d.len())
}

fn setup(name: &str, opts: &NamedOptions) -> (Lab, Named, TsigKey, Server) {
    let lab = lab(name, false);
    let named = Named::start(&lab, opts).unwrap_or_else(|e| panic!("named starts: {e:#}"));
    let key = TsigKey {
        name: named.key_name().into(),
        algorithm: TsigAlgorithm::HmacSha256,
        secret: decode_secret(named.secret_b64()).expect("the key named made"),
    };
    let server = Server::new(named.addr(), TIMEOUT);
    (lab, named, key, server)
}

/// Runs `f` on a thread moved into namespace `ns` (setns changes only
/// the calling thread's namespace).
fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns(2) on an fd we own; it affects this thread only.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("the thread in a lab namespace panicked")
    })
}

/// Runs `f` in the lab's server namespace, where xdhcpd's DDNS thread
/// would run. `server` opens its socket at its first exchange,
/// on that thread, so the socket is the namespace's; it keeps working
/// from later threads.
fn from_server<T: Send>(
    lab: &Lab,
    server: &mut Server,
    f: impl FnOnce(&mut Server) -> T + Send,
) -> T {
    in_netns(&lab.srv_ns, || f(server))
}

fn fwd<'a>(addr: Ipv4Addr, d: &'a [u8], mode: ConflictMode) -> Forward<'a> {
    Forward {
        zone: FORWARD_ZONE,
        fqdn: FQDN,
        addr,
        ttl: 600,
        dhcid: d,
        mode,
    }
}

fn rev<'a>(addr: Ipv4Addr, d: &'a [u8], mode: ConflictMode) -> Reverse<'a> {
    Reverse {
        zone: REVERSE_ZONE,
        addr,
        fqdn: FQDN,
        ttl: 600,
        dhcid: d,
        mode,
    }
}

fn dig(named: &Named, name: &str, rtype: &str) -> Vec<String> {
    named
        .dig(name, rtype)
        .unwrap_or_else(|e| panic!("dig {name} {rtype}: {e:#}"))
}

fn dig_dhcid(named: &Named, name: &str) -> Vec<String> {
    // +unknownformat prints the RDATA as RFC 3597 hex, comparable to the
    // bytes sent without a base64 decoder here.
    let out = named
        .dig_opts(name, "TYPE49", &["+unknownformat"])
        .unwrap_or_else(|e| panic!("dig {name} TYPE49: {e:#}"));
    out.into_iter()
        .map(|l| {
            // dig splits long hex into words: join them back.
            let mut w = l.split(' ');
            let (a, b) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
            format!("{a} {b} {}", w.collect::<String>().to_uppercase())
        })
        .collect()
}

const PTR_1: &str = "10.0.18.198.in-addr.arpa.";

#[test]
#[ignore = "needs root: network namespaces and a real named"]
fn records_are_added_and_removed_under_check_with_dhcid() {
    let (lab, named, key, mut server) = setup("xdt60", &NamedOptions::default());
    let d = dhcid(1);
    let m = ConflictMode::CheckWithDhcid;
    let (add_f, add_r) = from_server(&lab, &mut server, |s| {
        (
            s.add_forward(&key, &fwd(ADDR_1, &d, m)),
            s.add_reverse(&key, &rev(ADDR_1, &d, m)),
        )
    });
    assert_eq!(
        (add_f, add_r),
        (Outcome::Done, Outcome::Done),
        "{}",
        named.log()
    );
    assert_eq!(dig(&named, FQDN, "A"), vec![ADDR_1.to_string()]);
    assert_eq!(dig_dhcid(&named, FQDN), vec![dhcid_text(&d)]);
    assert_eq!(dig(&named, PTR_1, "PTR"), vec![FQDN.to_string()]);
    assert_eq!(dig_dhcid(&named, PTR_1), vec![dhcid_text(&d)]);

    // The same client again, at a new address: its DHCID matches, so the
    // second update of RFC 4703 §5.3.2 moves the name.
    let again = from_server(&lab, &mut server, |s| {
        s.add_forward(&key, &fwd(ADDR_2, &d, m))
    });
    assert_eq!(again, Outcome::Done);
    assert_eq!(dig(&named, FQDN, "A"), vec![ADDR_2.to_string()]);

    let (rm_f, rm_r) = from_server(&lab, &mut server, |s| {
        (
            s.remove_forward(&key, &fwd(ADDR_2, &d, m)),
            s.remove_reverse(&key, &rev(ADDR_1, &d, m)),
        )
    });
    assert_eq!((rm_f, rm_r), (Outcome::Done, Outcome::Done));
    for (name, rtype) in [
        (FQDN, "A"),
        (FQDN, "TYPE49"),
        (PTR_1, "PTR"),
        (PTR_1, "TYPE49"),
    ] {
        assert!(
            dig(&named, name, rtype).is_empty(),
            "{name} {rtype} is left"
        );
    }
    let zone = named.zone_records(FORWARD_ZONE).unwrap();
    assert!(
        !zone.iter().any(|r| r.starts_with("host.")),
        "the name is gone entirely: {zone:?}"
    );
}

#[test]
#[ignore = "needs root: network namespaces and a real named"]
fn another_client_is_refused_under_check_and_takes_over_under_no_check() {
    let (lab, named, key, mut server) = setup("xdt61", &NamedOptions::default());
    let (mine, theirs) = (dhcid(1), dhcid(2));
    let check = ConflictMode::CheckWithDhcid;
    let r = from_server(&lab, &mut server, |s| {
        let first = s.add_forward(&key, &fwd(ADDR_1, &mine, check));
        let other = s.add_forward(&key, &fwd(ADDR_2, &theirs, check));
        // Nor may the other client remove what is ours.
        let other_rm = s.remove_forward(&key, &fwd(ADDR_1, &theirs, check));
        (first, other, other_rm)
    });
    assert_eq!(r, (Outcome::Done, Outcome::Conflict, Outcome::Conflict));
    assert_eq!(dig(&named, FQDN, "A"), vec![ADDR_1.to_string()]);
    assert_eq!(dig_dhcid(&named, FQDN), vec![dhcid_text(&mine)]);

    // check-exists-with-dhcid: a DHCP server's name (it has a DHCID) is
    // taken, DHCID and all.
    let exists = from_server(&lab, &mut server, |s| {
        s.add_forward(
            &key,
            &fwd(ADDR_2, &theirs, ConflictMode::CheckExistsWithDhcid),
        )
    });
    assert_eq!(exists, Outcome::Done);
    assert_eq!(dig(&named, FQDN, "A"), vec![ADDR_2.to_string()]);
    assert_eq!(dig_dhcid(&named, FQDN), vec![dhcid_text(&theirs)]);

    // no-check-with-dhcid: whoever holds it, the first client takes it
    // back.
    let back = from_server(&lab, &mut server, |s| {
        s.add_forward(&key, &fwd(ADDR_1, &mine, ConflictMode::NoCheckWithDhcid))
    });
    assert_eq!(back, Outcome::Done);
    assert_eq!(dig(&named, FQDN, "A"), vec![ADDR_1.to_string()]);
    assert_eq!(dig_dhcid(&named, FQDN), vec![dhcid_text(&mine)]);

    // And the other client takes it again the same way.
    let taken = from_server(&lab, &mut server, |s| {
        s.add_forward(&key, &fwd(ADDR_1, &theirs, ConflictMode::NoCheckWithDhcid))
    });
    assert_eq!(taken, Outcome::Done);
    assert_eq!(dig(&named, FQDN, "A"), vec![ADDR_1.to_string()]);
    assert_eq!(dig_dhcid(&named, FQDN), vec![dhcid_text(&theirs)]);
    // Now the first client's removal is the conflict, and changes nothing.
    let rm = from_server(&lab, &mut server, |s| {
        s.remove_forward(&key, &fwd(ADDR_1, &mine, check))
    });
    assert_eq!(rm, Outcome::Conflict);
    assert_eq!(dig(&named, FQDN, "A"), vec![ADDR_1.to_string()]);
}

#[test]
#[ignore = "needs root: network namespaces and a real named"]
fn a_static_name_is_kept_unless_the_mode_does_not_check() {
    let opts = NamedOptions {
        forward_records: vec!["host IN A 198.18.9.9".into()],
    };
    let (lab, named, key, mut server) = setup("xdt62", &opts);
    let d = dhcid(3);
    let r = from_server(&lab, &mut server, |s| {
        (
            s.add_forward(&key, &fwd(ADDR_1, &d, ConflictMode::CheckWithDhcid)),
            s.add_forward(&key, &fwd(ADDR_1, &d, ConflictMode::CheckExistsWithDhcid)),
        )
    });
    assert_eq!(r, (Outcome::Conflict, Outcome::Conflict));
    assert_eq!(dig(&named, FQDN, "A"), vec!["198.18.9.9".to_string()]);
    let r = from_server(&lab, &mut server, |s| {
        s.add_forward(&key, &fwd(ADDR_1, &d, ConflictMode::NoCheckWithoutDhcid))
    });
    assert_eq!(r, Outcome::Done);
    assert_eq!(dig(&named, FQDN, "A"), vec![ADDR_1.to_string()]);
    assert!(
        dig(&named, FQDN, "TYPE49").is_empty(),
        "no DHCID in this mode"
    );
    let r = from_server(&lab, &mut server, |s| {
        s.remove_forward(&key, &fwd(ADDR_1, &d, ConflictMode::NoCheckWithoutDhcid))
    });
    assert_eq!(r, Outcome::Done);
    assert!(dig(&named, FQDN, "A").is_empty());
}

#[test]
#[ignore = "needs root: network namespaces and a real named"]
fn a_wrong_secret_is_bad_tsig_and_changes_nothing() {
    let (lab, named, key, mut server) = setup("xdt63", &NamedOptions::default());
    let d = dhcid(4);
    let mut wrong = key.clone();
    wrong.secret = b"not the secret named knows".to_vec();
    let mut unknown = key.clone();
    unknown.name = "no-such-key".into();
    let m = ConflictMode::CheckWithDhcid;
    let r = from_server(&lab, &mut server, |s| {
        (
            s.add_forward(&wrong, &fwd(ADDR_1, &d, m)),
            s.add_forward(&unknown, &fwd(ADDR_1, &d, m)),
            s.add_reverse(&wrong, &rev(ADDR_1, &d, m)),
        )
    });
    assert_eq!(
        r,
        (
            Outcome::BadTsig("BADSIG".into()),
            Outcome::BadTsig("BADKEY".into()),
            Outcome::BadTsig("BADSIG".into()),
        ),
        "{}",
        named.log()
    );
    assert!(dig(&named, FQDN, "A").is_empty());
    assert!(dig(&named, PTR_1, "PTR").is_empty());
}

#[test]
#[ignore = "needs root: network namespaces and a real named"]
fn a_stopped_named_is_unreachable_and_its_records_survive_a_restart() {
    let (lab, mut named, key, mut server) = setup("xdt64", &NamedOptions::default());
    let d = dhcid(5);
    let m = ConflictMode::CheckWithDhcid;
    let r = from_server(&lab, &mut server, |s| {
        s.add_forward(&key, &fwd(ADDR_1, &d, m))
    });
    assert_eq!(r, Outcome::Done);
    named.stop().unwrap();

    let started = Instant::now();
    let r = from_server(&lab, &mut server, |s| {
        s.add_reverse(&key, &rev(ADDR_1, &d, m))
    });
    let took = started.elapsed();
    // Nothing listens on port 53 any more: the kernel's ICMP port
    // unreachable ends the wait early, the timeout bounds it anyway.
    assert!(matches!(r, Outcome::Unreachable(_)), "{r:?}");
    assert!(
        took <= TIMEOUT + Duration::from_millis(500),
        "took {took:?}"
    );

    named.start_again().unwrap();
    assert_eq!(
        dig(&named, FQDN, "A"),
        vec![ADDR_1.to_string()],
        "the journal kept it"
    );
    // The same Server, whose socket saw the ICMP error, works again.
    let r = from_server(&lab, &mut server, |s| {
        (
            s.add_reverse(&key, &rev(ADDR_1, &d, m)),
            s.remove_forward(&key, &fwd(ADDR_1, &d, m)),
        )
    });
    assert_eq!(r, (Outcome::Done, Outcome::Done));
    assert!(dig(&named, FQDN, "A").is_empty());
}

/// Where the truncating stand-in listens, in named's namespace.
const PROXY_PORT: u16 = 5300;

/// One exchange through a stand-in for named at 192.0.2.53:5300, which
/// makes the client's transport do all it can: to the UDP request it
/// sends first an unsigned answer with the right id from another port
/// (the connected socket must drop it), then an answer with another id
/// (to be skipped), then the request's header back with QR and TC set;
/// the request that then comes over TCP goes on to named's own TCP port
/// and named's signed answer comes back the same way. Returns how many
/// TCP exchanges it relayed. Runs on a thread in named's namespace and
/// gives up after 5 s.
fn truncating_stand_in(dns_ip: Ipv4Addr, ready: std::sync::mpsc::Sender<()>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    let udp = UdpSocket::bind((dns_ip, PROXY_PORT)).expect("bind the UDP stand-in");
    let other = UdpSocket::bind((dns_ip, PROXY_PORT + 1)).expect("bind the spoofing port");
    let tcp = TcpListener::bind((dns_ip, PROXY_PORT)).expect("bind the TCP stand-in");
    ready.send(()).unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let (n, client) = udp.recv_from(&mut buf).expect("a UDP request");
    assert!(n >= 12, "a request of {n} bytes");
    let mut header = [0u8; 12];
    header.copy_from_slice(&buf[..12]);
    header[2] |= 0x80; // QR
    header[3] &= 0xf0; // NOERROR
    header[4..].fill(0); // no records
    other.send_to(&header, client).unwrap();
    let mut wrong_id = header;
    wrong_id[0] ^= 0xff;
    wrong_id[2] |= 0x02;
    udp.send_to(&wrong_id, client).unwrap();
    let mut truncated = header;
    truncated[2] |= 0x02; // TC
    udp.send_to(&truncated, client).unwrap();

    tcp.set_nonblocking(true).unwrap();
    let mut relayed = 0;
    while Instant::now() < deadline && relayed == 0 {
        let mut conn = match tcp.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => panic!("accept: {e}"),
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let request = read_framed(&mut conn);
        let mut named = TcpStream::connect(SocketAddr::from((dns_ip, 53))).expect("named's TCP");
        named
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        write_framed(&mut named, &request);
        let answer = read_framed(&mut named);
        write_framed(&mut conn, &answer);
        relayed += 1;
    }
    relayed
}

fn read_framed(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).expect("a length");
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg).expect("a message");
    msg
}

fn write_framed(s: &mut TcpStream, msg: &[u8]) {
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    s.write_all(&framed).expect("write");
}

#[test]
#[ignore = "needs root: network namespaces and a real named"]
fn a_truncated_answer_is_asked_again_over_tcp_and_stray_answers_are_skipped() {
    let (lab, named, key, _) = setup("xdt65", &NamedOptions::default());
    let dns_ip: Ipv4Addr = xtask::named::DNS_IP.parse().unwrap();
    let mut server = Server::new(SocketAddr::from((dns_ip, PROXY_PORT)), TIMEOUT);
    let d = dhcid(6);
    let m = ConflictMode::NoCheckWithDhcid;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (relayed, outcome) = std::thread::scope(|s| {
        let stand_in = s.spawn(|| in_netns(named.ns(), || truncating_stand_in(dns_ip, ready_tx)));
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the stand-in is listening");
        let outcome = from_server(&lab, &mut server, |s| {
            s.add_forward(&key, &fwd(ADDR_1, &d, m))
        });
        (stand_in.join().expect("the stand-in"), outcome)
    });
    assert_eq!(outcome, Outcome::Done, "{}", named.log());
    assert_eq!(relayed, 1, "the request came again over TCP");
    assert_eq!(dig(&named, FQDN, "A"), vec![ADDR_1.to_string()]);
}

#[test]
#[ignore = "needs root: network namespaces and a real named"]
fn a_server_that_never_answers_is_unreachable_at_the_timeout() {
    let (lab, named, key, _) = setup("xdt66", &NamedOptions::default());
    // On named's link, but no host has it: the request goes nowhere and
    // nothing (not even ICMP) comes back before the timeout.
    let mut server = Server::new("192.0.2.99:53".parse().unwrap(), TIMEOUT);
    let d = dhcid(7);
    let started = Instant::now();
    let r = from_server(&lab, &mut server, |s| {
        s.add_forward(&key, &fwd(ADDR_1, &d, ConflictMode::CheckWithDhcid))
    });
    let took = started.elapsed();
    assert!(
        matches!(&r, Outcome::Unreachable(e) if e.contains("no answer")),
        "{r:?}"
    );
    assert!(
        took >= TIMEOUT && took <= TIMEOUT + Duration::from_millis(500),
        "took {took:?}"
    );
    assert!(dig(&named, FQDN, "A").is_empty());
}

#[test]
#[ignore = "needs root: network namespaces and a real named"]
fn removal_keeps_the_other_addresses_of_the_name_and_its_dhcid() {
    // The name is ours (our DHCID) and has a second address someone added.
    let d = dhcid(8);
    let opts = NamedOptions {
        forward_records: vec![
            format!("host IN A {ADDR_1}"),
            "host IN A 198.18.9.9".into(),
            format!("host IN TYPE49 {}", dhcid_text(&d)),
        ],
    };
    let (lab, named, key, mut server) = setup("xdt67", &opts);
    assert_eq!(
        dig_dhcid(&named, FQDN),
        vec![dhcid_text(&d)],
        "the zone as written"
    );
    let m = ConflictMode::CheckWithDhcid;
    let r = from_server(&lab, &mut server, |s| {
        s.remove_forward(&key, &fwd(ADDR_1, &d, m))
    });
    assert_eq!(r, Outcome::Done);
    assert_eq!(dig(&named, FQDN, "A"), vec!["198.18.9.9".to_string()]);
    assert_eq!(
        dig_dhcid(&named, FQDN),
        vec![dhcid_text(&d)],
        "the DHCID stays while an address does"
    );
}
