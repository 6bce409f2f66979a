//! DDNS against a real BIND: xdhcpd in the lab's server namespace, named
//! in a namespace of its own (xtask::named), the names looked up with dig.
//! Run as root: cargo xtask test (or cargo test --test lab_ddns --
//! --include-ignored --test-threads=1 with XDHCPD_BIN set).
mod common;

use common::*;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use xtask::daemon::Daemon;
use xtask::lab::Lab;
use xtask::named::{Named, NamedOptions};

fn ddns_config(lab: &Lab, dir: &TempDir, secret: &str, lease_time: u32) -> String {
    journal_config("lab-ddns.toml", lab, &dir.0)
        .replace("@TSIG_SECRET@", secret)
        .replace("@LEASE_TIME@", &lease_time.to_string())
}

fn start(lab: &Lab, config: &str) -> Daemon {
    Daemon::start(lab, &bin(), config).unwrap_or_else(|e| panic!("starting xdhcpd: {e:#}"))
}

/// Polls `f` until it is true or `limit` passes; whether it became true.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ptr_name(a: Ipv4Addr) -> String {
    let o = a.octets();
    format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
}

fn a_of(named: &Named, name: &str) -> Vec<String> {
    named.dig(name, "A").expect("dig A")
}

fn ptr_of(named: &Named, a: Ipv4Addr) -> Vec<String> {
    named.dig(&ptr_name(a), "PTR").expect("dig PTR")
}

fn yiaddr(ack: &serde_json::Value) -> Ipv4Addr {
    assert_eq!(ack["type"], "ack", "{ack}");
    ack["yiaddr"].as_str().unwrap().parse().unwrap()
}

fn ddns_counter(d: &Daemon, name: &str) -> u64 {
    counter(&d.fresh_stats().expect("stats"), &format!("/ddns/{name}"))
}

/// A dhclient sending a host name gets a lease: its name resolves to the
/// address and back, with a DHCID beside it; a RELEASE takes both out; a
/// lease that runs out (no renewal) leaves DNS too.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn a_lease_is_in_dns_until_release_or_expiry() {
    let lab = lab("xdt60", false);
    let named = Named::start(&lab, &NamedOptions::default()).expect("named");
    let dir = TempDir::new("ddns-journal");
    let d = start(&lab, &ddns_config(&lab, &dir, named.secret_b64(), 12));

    // Option 81 with S set, the name in wire form (E): the server says in
    // the ACK that it writes A and PTR, under its zone.
    let fqdn = "0500000570686f6e65"; // flags S|E, rcodes, "phone"
    let (_, ack) = scapy_dora_with(&lab, "02:00:00:00:60:01", &["--fqdn-hex", fqdn])
        .expect("DORA with option 81");
    let addr = yiaddr(&ack);
    let reply = ack["fqdn_hex"].as_str().expect("option 81 in the ACK");
    // flags S|E, rcodes 255 255, "phone" "lab" "example" root.
    assert_eq!(reply, "05ffff0570686f6e65036c6162076578616d706c6500");
    assert!(
        eventually(Duration::from_secs(10), || a_of(
            &named,
            "phone.lab.example."
        ) == [addr.to_string()]),
        "A phone.lab.example. -> {addr}: {:?}\n{}",
        a_of(&named, "phone.lab.example."),
        d.log()
    );
    assert_eq!(ptr_of(&named, addr), ["phone.lab.example."]);
    let dhcid = named.dig("phone.lab.example.", "DHCID").expect("dig DHCID");
    assert_eq!(dhcid.len(), 1, "one DHCID record: {dhcid:?}");

    scapy_release(&lab, "02:00:00:00:60:01", addr).expect("release");
    assert!(
        eventually(Duration::from_secs(10), || a_of(
            &named,
            "phone.lab.example."
        )
        .is_empty()
            && ptr_of(&named, addr).is_empty()),
        "released: A {:?} PTR {:?}",
        a_of(&named, "phone.lab.example."),
        ptr_of(&named, addr)
    );
    assert!(named.dig("phone.lab.example.", "DHCID").unwrap().is_empty());

    // Option 12, and no renewal: the 12-second lease ends and so do its
    // records.
    let (_, ack) = scapy_dora_with(&lab, "02:00:00:00:60:02", &["--hostname", "Anna's Laptop"])
        .expect("DORA with option 12");
    let addr = yiaddr(&ack);
    assert!(
        eventually(Duration::from_secs(8), || a_of(
            &named,
            "anna-s-laptop.lab.example."
        ) == [addr.to_string()]),
        "the host name, made a label: {:?}",
        named.zone_records("lab.example.")
    );
    assert!(
        eventually(Duration::from_secs(25), || a_of(
            &named,
            "anna-s-laptop.lab.example."
        )
        .is_empty()
            && ptr_of(&named, addr).is_empty()),
        "expired: {:?}",
        named.zone_records("lab.example.")
    );
    let stats = d.stop().expect("xdhcpd stops cleanly");
    assert_eq!(counter(&stats, "/ddns/conflicts"), 0, "{stats}");
    assert_eq!(counter(&stats, "/ddns/pending"), 0, "{stats}");
    assert_eq!(counter(&stats, "/ddns/failed"), 0, "{stats}");
}

/// A second client asking for a name the first holds gets its lease, not
/// the name: the first client's records stay, the conflict is counted.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn a_second_client_does_not_take_over_a_name() {
    let lab = lab("xdt61", false);
    let named = Named::start(&lab, &NamedOptions::default()).expect("named");
    let dir = TempDir::new("ddns-journal");
    let d = start(&lab, &ddns_config(&lab, &dir, named.secret_b64(), 3600));
    let (_, ack) =
        scapy_dora_with(&lab, "02:00:00:00:61:01", &["--hostname", "printer"]).expect("first DORA");
    let first = yiaddr(&ack);
    assert!(eventually(Duration::from_secs(10), || a_of(
        &named,
        "printer.lab.example."
    ) == [
        first.to_string()
    ]));
    let (_, ack) = scapy_dora_with(&lab, "02:00:00:00:61:02", &["--hostname", "printer"])
        .expect("second DORA");
    let second = yiaddr(&ack);
    assert_ne!(first, second);
    assert!(
        eventually(Duration::from_secs(10), || ddns_counter(&d, "conflicts")
            == 1),
        "{}",
        d.log()
    );
    assert_eq!(a_of(&named, "printer.lab.example."), [first.to_string()]);
    assert_eq!(ptr_of(&named, first), ["printer.lab.example."]);
    assert!(
        ptr_of(&named, second).is_empty(),
        "no PTR to a name that is not the second client's"
    );
    assert!(d.log().contains("belongs to another client"), "{}", d.log());
    let stats = d.stop().expect("xdhcpd stops cleanly");
    assert_eq!(counter(&stats, "/ddns/pending"), 0, "{stats}");
}

/// Leases of `n` clients by perfdhcp as a relay (its clients send no
/// name: they get generated ones).
fn perfdhcp_leases(lab: &Lab, n: usize) -> String {
    let out = output_within(
        lab.cli("perfdhcp")
            .args(["-4", "-l", &lab.cli_if])
            .args(["-r", "200", "-R", &n.to_string()])
            .args(["-n", &n.to_string(), "-p", "20", "-W", "2000000"]),
        Duration::from_secs(40),
    )
    .expect("perfdhcp");
    text(&out)
}

fn generated_names(named: &Named) -> usize {
    named
        .zone_records("lab.example.")
        .expect("AXFR")
        .iter()
        .filter(|r| r.starts_with("dhcp-") && r.contains(" A "))
        .count()
}

/// With named down, leases go on; the updates wait, and when named is back
/// every one arrives. Then the same with xdhcpd killed (SIGKILL) while they
/// wait: after its restart, they arrive too.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn updates_wait_for_named_and_survive_a_kill() {
    const N: usize = 200;
    let lab = lab("xdt62", true);
    let mut named = Named::start(&lab, &NamedOptions::default()).expect("named");
    let dir = TempDir::new("ddns-journal");
    let config = ddns_config(&lab, &dir, named.secret_b64(), 3600);
    let d = start(&lab, &config);
    named.stop().expect("named stops");
    let report = perfdhcp_leases(&lab, N);
    let s = stats_when(&d, Duration::from_secs(10), |s| {
        counter(s, "/ddns/pending") == N as u64
    })
    .unwrap();
    // perfdhcp may run an exchange or two past -n; with -R N they reuse
    // one of its N clients, so the leases are what counts.
    assert_eq!(counter(&s, "/table_used"), N as u64, "{s}\n{report}");
    assert!(counter(&s, "/total/ack") >= N as u64, "{s}\n{report}");
    assert_eq!(counter(&s, "/ddns/pending"), N as u64, "{s}");
    named.start_again().expect("named comes back");
    assert!(
        eventually(Duration::from_secs(60), || generated_names(&named) == N),
        "{} of {N} names in DNS; stats {}",
        generated_names(&named),
        d.fresh_stats().unwrap()
    );
    let s = stats_when(&d, Duration::from_secs(5), |s| {
        counter(s, "/ddns/pending") == 0
    })
    .unwrap();
    assert_eq!(counter(&s, "/ddns/pending"), 0, "{s}");
    assert!(counter(&s, "/ddns/failed") > 0, "named was down: {s}");

    // Again, with a kill while the updates wait.
    named.stop().expect("named stops");
    let report = perfdhcp_leases_more(&lab, N);
    let s = stats_when(&d, Duration::from_secs(10), |s| {
        counter(s, "/ddns/pending") == N as u64
    })
    .unwrap();
    assert_eq!(counter(&s, "/ddns/pending"), N as u64, "{s}\n{report}");
    let pid = d.pid().expect("pid");
    // SAFETY: kill(2) has no memory-safety preconditions; the daemon is
    // our child and not yet reaped.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert!(
        eventually(Duration::from_secs(10), || proc_state(pid)
            .is_none_or(|s| s == 'Z')),
        "xdhcpd survived SIGKILL"
    );
    drop(d);
    named.start_again().expect("named comes back");
    let d = start(&lab, &config);
    assert!(
        eventually(Duration::from_secs(60), || generated_names(&named) == 2 * N),
        "{} of {} names in DNS after the restart; stats {}\n{}",
        generated_names(&named),
        2 * N,
        d.fresh_stats().unwrap(),
        d.log()
    );
    let stats = d.stop().expect("xdhcpd stops cleanly");
    assert_eq!(counter(&stats, "/ddns/pending"), 0, "{stats}");
}

/// perfdhcp with clients other than [`perfdhcp_leases`]'s (another MAC
/// prefix), so their leases are new.
fn perfdhcp_leases_more(lab: &Lab, n: usize) -> String {
    let out = output_within(
        lab.cli("perfdhcp")
            .args(["-4", "-l", &lab.cli_if, "-b", "mac=02:0c:62:00:00:01"])
            .args(["-r", "200", "-R", &n.to_string()])
            .args(["-n", &n.to_string(), "-p", "20", "-W", "2000000"]),
        Duration::from_secs(40),
    )
    .expect("perfdhcp");
    text(&out)
}

/// A wrong TSIG secret: leases go on, every update is refused and
/// counted, the log says so once per interval (not per lease), nothing
/// crashes and nothing reaches the zone.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn a_wrong_tsig_secret_is_reported_and_nothing_is_written() {
    const N: usize = 20;
    let lab = lab("xdt63", true);
    let named = Named::start(&lab, &NamedOptions::default()).expect("named");
    let dir = TempDir::new("ddns-journal");
    let wrong = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=";
    assert_ne!(wrong, named.secret_b64());
    let d = start(&lab, &ddns_config(&lab, &dir, wrong, 3600));
    let report = perfdhcp_leases(&lab, N);
    let s = stats_when(&d, Duration::from_secs(10), |s| {
        counter(s, "/ddns/refused_tsig") >= 1
    })
    .unwrap();
    // perfdhcp may run an exchange or two past -n; with -R N they reuse
    // one of its N clients, so the leases are what counts.
    assert_eq!(counter(&s, "/table_used"), N as u64, "{s}\n{report}");
    assert!(counter(&s, "/total/ack") >= N as u64, "{s}\n{report}");
    assert!(counter(&s, "/ddns/refused_tsig") >= 1, "{s}");
    assert_eq!(counter(&s, "/ddns/confirmed"), 0, "{s}");
    assert_eq!(generated_names(&named), 0);
    let log = d.log();
    let lines = log
        .lines()
        .filter(|l| l.contains("refused our TSIG"))
        .count();
    assert_eq!(lines, 1, "one log line for the interval:\n{log}");
    let stats = d.stop().expect("xdhcpd stops cleanly");
    assert_eq!(counter(&stats, "/ddns/pending"), N as u64, "{stats}");
}
