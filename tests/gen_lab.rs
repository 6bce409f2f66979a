//! Privileged lab tests of the bundled generator, xdhcpgen: against xdhcpd
//! in every scenario (its JSON counts must match the daemon's), as relay
//! agents, over AF_PACKET, against Kea (a server it did not grow up with),
//! against a deliberately faulty responder, whose faults it must count
//! exactly, and against the AF_XDP echo (`xdhcpecho`) of `cargo xtask
//! bench`. With it, two things only a real load shows: two queues served by
//! two workers sharing the pool (stealing included) and the journal, and a
//! durable group's ACKs leaving as soon as they are synced; and an attack
//! fleet beside the normal one, each reported apart. Labs are named
//! `xdtg…`; run them with `cargo xtask test` (as root).
mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::Duration;
use xtask::daemon::Daemon;
use xtask::kea::Kea;
use xtask::lab::{Lab, format_mac};

const EXPECT: &str = "198.18.0.0/15";

/// Runs xdhcpgen in the lab's client namespace with `args` and returns its
/// JSON summary; a non-zero exit fails the test with its output.
fn xdhcpgen(lab: &Lab, args: &[&str]) -> Value {
    xdhcpgen_and_table(lab, args).0
}

/// As [`xdhcpgen`], and the table it printed.
fn xdhcpgen_and_table(lab: &Lab, args: &[&str]) -> (Value, String) {
    let mut all = vec!["--expect-subnet", EXPECT];
    all.extend_from_slice(args);
    xdhcpgen_run(lab, &all, Duration::from_secs(120))
}

fn num(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("summary has no {pointer}: {v}"))
}

/// No check failed: no timeout, NAK, duplicate, wrong xid or chaddr,
/// address outside the subnet, missing option, malformed frame.
fn assert_clean(s: &Value) {
    for field in [
        "timeouts",
        "naks",
        "duplicate_addresses",
        "wrong_xid",
        "wrong_chaddr",
        "bad_subnet",
        "missing_lease_time",
        "missing_server_id",
        "malformed",
        "handoff_dropped",
    ] {
        assert_eq!(num(s, &format!("/counters/{field}")), 0, "{field}: {s}");
    }
    assert_eq!(num(s, "/unfinished"), 0, "{s}");
}

/// The generator's counts of what it sent and received equal the daemon's
/// counts of what it received and sent.
fn assert_counts_match(s: &Value, stats: &Value) {
    assert_eq!(
        counter(stats, "/total/discover"),
        num(s, "/counters/sent_discover"),
        "DISCOVERs: daemon {stats}\ngenerator {s}"
    );
    assert_eq!(
        counter(stats, "/total/request"),
        num(s, "/counters/sent_request"),
        "REQUESTs: daemon {stats}\ngenerator {s}"
    );
    assert_eq!(
        counter(stats, "/total/release"),
        num(s, "/counters/sent_release"),
        "{stats}"
    );
    assert_eq!(
        counter(stats, "/total/offer"),
        num(s, "/counters/offers"),
        "{stats}"
    );
    assert_eq!(
        counter(stats, "/total/ack"),
        num(s, "/counters/acks"),
        "{stats}"
    );
    assert_eq!(counter(stats, "/total/nak"), 0, "{stats}");
    assert_eq!(counter(stats, "/total/malformed"), 0, "{stats}");
    assert_eq!(counter(stats, "/total/tx"), num(s, "/received"), "{stats}");
}

/// One try per exchange, with a timeout no healthy run comes near (a
/// journal sync on a slow disk takes milliseconds): a retransmitted
/// REQUEST would be answered twice and spoil exact per-worker counts, and
/// an ACK the server left waiting shows up as a timeout.
const NO_RETRANSMIT: [&str; 4] = ["--timeout-ms", "5000", "--retries", "0"];

fn pinned_xdp() -> [&'static str; 4] {
    ["--xdp-mode", "driver", "--bind", "copy"]
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn gen_dora_against_xdhcpd_and_the_json_shape() {
    let lab = lab("xdtg1", false);
    let d = start_daemon(&lab, "lab-xdp.toml");
    let s = xdhcpgen(
        &lab,
        &[&pinned_xdp()[..], &["--clients", "3000", "--client-id"][..]].concat(),
    );
    let stats = d.stop().expect("xdhcpd stops cleanly");

    // Every documented field, with the documented types.
    assert_eq!(s["scenario"], "dora");
    assert_eq!(num(&s, "/clients"), 3000);
    assert!(s["duration_s"].as_f64().is_some_and(|d| d > 0.0), "{s}");
    assert!(s["leases_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{s}");
    for f in [
        "completed",
        "timeouts",
        "naks",
        "duplicate_addresses",
        "wrong_xid",
        "sent",
        "received",
    ] {
        num(&s, &format!("/{f}"));
    }
    for kind in ["offer", "ack", "dora"] {
        for p in ["p50", "p90", "p99", "p999", "max"] {
            num(&s, &format!("/latency_us/{kind}/{p}"));
        }
        assert_eq!(num(&s, &format!("/latency_us/{kind}/count")), 3000, "{s}");
        assert!(
            num(&s, &format!("/latency_us/{kind}/p50"))
                <= num(&s, &format!("/latency_us/{kind}/max")),
            "{s}"
        );
    }
    assert_eq!(
        (s["io"].as_str(), s["bind"].as_str()),
        (Some("xdp"), Some("copy")),
        "{s}"
    );
    assert_eq!(s["xdp_mode"], "driver", "{s}");

    assert_eq!(num(&s, "/completed"), 3000, "{s}");
    assert_eq!(num(&s, "/counters/dora"), 3000, "{s}");
    assert_clean(&s);
    assert_counts_match(&s, &stats);
    // Each reply went through the generator's XDP program into its socket.
    assert_eq!(num(&s, "/xdp/redirected"), num(&s, "/received"), "{s}");
    assert_eq!(num(&s, "/xdp/no_socket"), 0, "{s}");
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn gen_every_scenario_against_xdhcpd() {
    let lab = lab("xdtg2", false);
    // (scenario, clients, exchanges)
    let cases: [(&str, u64, u64); 6] = [
        ("renew", 1000, 2000),
        ("rebind", 1000, 2000),
        ("release", 1000, 2000),
        ("mixed", 1000, 4000),
        ("reconnect", 2000, 2000),
        ("flood", 1000, 3000),
    ];
    for (scenario, clients, count) in cases {
        let d = start_daemon(&lab, "lab-xdp.toml");
        let (c, n) = (clients.to_string(), count.to_string());
        let s = xdhcpgen(
            &lab,
            &[
                &pinned_xdp()[..],
                &["--scenario", scenario, "--clients", &c, "--count", &n],
            ]
            .concat(),
        );
        let stats = d.stop().expect("xdhcpd stops cleanly");
        let expect_completed = if scenario == "reconnect" {
            clients
        } else {
            count
        };
        assert_eq!(num(&s, "/completed"), expect_completed, "{scenario}: {s}");
        assert_eq!(s["scenario"], scenario);
        assert_clean(&s);
        assert_counts_match(&s, &stats);
        let k = |f: &str| num(&s, &format!("/counters/{f}"));
        match scenario {
            "renew" => assert_eq!((k("dora"), k("renewals")), (count, count), "{s}"),
            "rebind" => assert_eq!((k("dora"), k("rebinds")), (count, count), "{s}"),
            "release" => assert_eq!((k("dora"), k("sent_release")), (count, count), "{s}"),
            "mixed" => {
                assert_eq!(k("dora") + k("renewals"), count, "{s}");
                assert!(
                    k("dora") >= clients.min(count) / 2 && k("renewals") > 0,
                    "{s}"
                );
            }
            "reconnect" => {
                assert_eq!(k("dora"), clients, "{s}");
                assert!(s["all_bound_s"].as_f64().is_some_and(|t| t > 0.0), "{s}");
            }
            _ => assert_eq!((k("offers"), k("sent_request")), (count, 0), "{s}"),
        }
        if scenario != "flood" {
            assert!(num(&s, "/latency_us/dora/count") > 0, "{s}");
        }
    }
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn gen_relay_agents_against_xdhcpd() {
    // The relays' first address is the client end's own, the others are
    // addresses only the generator's XDP program knows.
    let lab = lab("xdtg3", true);
    let d = start_daemon(&lab, "lab-xdp.toml");
    let mac = format_mac(&lab.srv_mac);
    let s = xdhcpgen(
        &lab,
        &[
            &pinned_xdp()[..],
            &[
                "--scenario",
                "relay",
                "--clients",
                "2000",
                "--relay",
                CLIENT_IP,
                "--relays",
                "4",
                "--server",
                SERVER_IP,
                "--server-mac",
                &mac,
            ][..],
        ]
        .concat(),
    );
    let stats = d.stop().expect("xdhcpd stops cleanly");
    assert_eq!(num(&s, "/completed"), 2000, "{s}");
    assert_clean(&s);
    assert_counts_match(&s, &stats);
    assert_eq!(num(&s, "/xdp/redirected"), num(&s, "/received"), "{s}");
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn gen_over_af_packet_against_xdhcpd() {
    let lab = lab("xdtg4", false);
    let d = start_daemon(&lab, "lab-xdp.toml");
    let s = xdhcpgen(&lab, &["--io", "packet", "--clients", "1000", "--option82"]);
    let stats = d.stop().expect("xdhcpd stops cleanly");
    assert_eq!(s["io"], "packet");
    assert!(s["xdp"].is_null(), "{s}");
    assert_eq!(num(&s, "/completed"), 1000, "{s}");
    assert_clean(&s);
    assert_counts_match(&s, &stats);
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn gen_dora_against_kea() {
    let lab = lab("xdtg5", false);
    let config = std::fs::read_to_string(fixture("kea-dhcp4.json"))
        .expect("kea fixture")
        .replace("@INTERFACE@", &lab.srv_if);
    let kea = Kea::start(&lab, &config).unwrap_or_else(|e| panic!("{e:#}"));
    // Well inside Kea's rate on this machine, so nothing is dropped.
    let s = xdhcpgen(
        &lab,
        &[
            &pinned_xdp()[..],
            &["--clients", "300", "--rate", "500", "--window", "64"][..],
        ]
        .concat(),
    );
    assert_eq!(num(&s, "/completed"), 300, "{s}\nKea said:\n{}", kea.log());
    assert_clean(&s);
    assert_eq!(num(&s, "/latency_us/dora/count"), 300, "{s}");
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn gen_counts_a_faulty_responders_faults_exactly() {
    const CLIENTS: u64 = 40;
    let lab = lab("xdtg6", false);
    let mut responder = lab
        .srv(PYTHON)
        .arg(fixture("faulty_responder.py"))
        .args([&lab.srv_if, SERVER_IP])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the faulty responder");
    let mut ready = String::new();
    BufReader::new(responder.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("reading the responder");
    assert_eq!(ready.trim(), "ready", "the responder did not start");

    // scapy answers in milliseconds, not microseconds: a generous timeout
    // and a small window, so that only the planted faults go wrong.
    let s = xdhcpgen(
        &lab,
        &[
            "--clients",
            &CLIENTS.to_string(),
            "--window",
            "8",
            "--timeout-ms",
            "1500",
            "--retries",
            "1",
        ],
    );
    let _ = responder.kill();
    let _ = responder.wait();

    // Clients x7 get nothing, x3 one wrong-xid OFFER, x5 the address of x4.
    let per_tenth = CLIENTS / 10;
    assert_eq!(num(&s, "/timeouts"), per_tenth, "{s}");
    assert_eq!(num(&s, "/wrong_xid"), per_tenth, "{s}");
    assert_eq!(num(&s, "/duplicate_addresses"), per_tenth, "{s}");
    assert_eq!(num(&s, "/completed"), CLIENTS - per_tenth, "{s}");
    assert_eq!(num(&s, "/naks"), 0, "{s}");
    assert_eq!(num(&s, "/counters/wrong_chaddr"), 0, "{s}");
    assert_eq!(num(&s, "/counters/bad_subnet"), 0, "{s}");

    // --strict turns those faults into a failing exit status.
    let out = output_within(
        lab.cli(&gen_bin().to_string_lossy())
            .args(["--interface", &lab.cli_if, "--no-progress", "--strict"])
            .args(["--clients", "1", "--timeout-ms", "100", "--retries", "0"]),
        Duration::from_secs(30),
    )
    .expect("xdhcpgen runs");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn gen_echo_scenario_against_the_af_xdp_echo() {
    const COUNT: u64 = 20_000;
    let lab = lab("xdtg7", false);
    let echo = bin().with_file_name("xdhcpecho");
    let d = Daemon::start(&lab, &echo, &config("lab-xdp.toml", &lab))
        .unwrap_or_else(|e| panic!("starting xdhcpecho: {e:#}"));
    let s = xdhcpgen(
        &lab,
        &[
            &pinned_xdp()[..],
            &[
                "--scenario",
                "echo",
                "--clients",
                "5000",
                "--count",
                &COUNT.to_string(),
                "--window",
                "256",
            ][..],
        ]
        .concat(),
    );
    let stats = d.stop().expect("xdhcpecho stops cleanly");
    assert_eq!(s["scenario"], "echo");
    assert_eq!(stats["mode"], "echo", "{stats}");
    assert_eq!(num(&s, "/completed"), COUNT, "{s}");
    assert_eq!(num(&s, "/counters/echoes"), COUNT, "{s}");
    assert_eq!(num(&s, "/timeouts"), 0, "{s}");
    assert_eq!(num(&s, "/latency_us/offer/count"), COUNT, "{s}");
    assert_clean(&s);
    // Every DISCOVER reached the echo and came back, nothing else.
    assert_eq!(num(&s, "/counters/sent_discover"), COUNT, "{s}");
    assert_eq!(counter(&stats, "/total/rx"), COUNT, "{stats}");
    assert_eq!(counter(&stats, "/total/tx"), COUNT, "{stats}");
    assert_eq!(counter(&stats, "/total/discover"), COUNT, "{stats}");
    assert_eq!(counter(&stats, "/total/malformed"), 0, "{stats}");
    assert_eq!(num(&s, "/received"), COUNT, "{s}");
}

/// Each client's address, by MAC, from `xdhcpd leases` over the journal
/// of `config` (a file holding the daemon's config); every lease bound.
fn leases_by_mac(config: &std::path::Path) -> BTreeMap<String, Ipv4Addr> {
    xdhcpd_leases(config, &[])
        .iter()
        .map(|v| {
            assert_eq!(v["state"], "bound", "{v}");
            let addr = v["address"]
                .as_str()
                .expect("address")
                .parse()
                .expect("an IPv4 address");
            (v["hwaddr"].as_str().expect("hwaddr").to_owned(), addr)
        })
        .collect()
}

/// Two RX queues, two workers on each side. xdhcpgen's worker k sends on
/// queue k, so each of xdhcpd's workers serves its own clients and
/// allocates from its own shard of the pool; the journal is durable, with
/// one producer per worker. First 4,000 clients over both queues (2,000
/// per worker), then 6,000 more on queue 0 only: worker 0's shard (6,144
/// addresses) runs dry and it must steal from shard 1. Shards hand out
/// their lowest free word first, so whatever the interleaving, the leased
/// set is exactly all of shard 0 and the bottom of shard 1; without
/// stealing, 1,856 clients would get no offer. Then a restart recovers
/// every lease from the two producers' records, and the same clients get
/// the same addresses again.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn gen_two_queues_two_workers_share_the_pool_and_the_journal() {
    // lab-two-queues.toml: 192 words of 64, word w in shard w mod 2.
    const SHARD: u64 = 96 * 64;
    const BOTH: u64 = 4_000;
    const ONLY_0: u64 = 6_000;
    let lab = lab_with_queues("xdtg8", false, 2);
    let dir = TempDir::new("two-queues");
    let jdir = dir.0.join("journal");
    std::fs::create_dir(&jdir).expect("journal dir");
    let cfg = journal_config("lab-two-queues.toml", &lab, &jdir);
    let cfg_file = dir.0.join("xdhcpd.toml");
    std::fs::write(&cfg_file, &cfg).expect("config file");
    let both = [
        &pinned_xdp()[..],
        &["--queues", "2", "--clients", "4000", "--count", "4000"][..],
        &NO_RETRANSMIT[..],
    ]
    .concat();
    let only_0 = [
        &pinned_xdp()[..],
        &["--queues", "1", "--clients", "6000", "--count", "6000"][..],
        &["--mac-prefix", "02:67:66"][..],
        &NO_RETRANSMIT[..],
    ]
    .concat();
    let acks = |stats: &Value| -> Vec<u64> {
        let workers = stats["workers"].as_array().expect("per-worker stats");
        assert_eq!(workers.len(), 2, "{stats}");
        for (q, w) in workers.iter().enumerate() {
            assert_eq!(counter(w, "/queue"), q as u64, "{stats}");
        }
        workers.iter().map(|w| counter(w, "/ack")).collect()
    };

    let d = Daemon::start(&lab, &bin(), &cfg).unwrap_or_else(|e| panic!("starting xdhcpd: {e:#}"));
    let s = xdhcpgen(&lab, &both);
    assert_eq!(num(&s, "/completed"), BOTH, "{s}");
    assert_clean(&s);
    let s = xdhcpgen(&lab, &only_0);
    assert_eq!(num(&s, "/completed"), ONLY_0, "{s}");
    assert_clean(&s);
    let stats = d.stop().expect("xdhcpd stops cleanly");
    assert_eq!(counter(&stats, "/total/no_address"), 0, "{stats}");
    // Every frame came in on the queue of the generator's worker that sent
    // it, and was answered by the server's worker of that queue.
    assert_eq!(acks(&stats), [BOTH / 2 + ONLY_0, BOTH / 2], "{stats}");

    let first = leases_by_mac(&cfg_file);
    assert_eq!(first.len() as u64, BOTH + ONLY_0, "one lease per client");
    let pool_start = u32::from(Ipv4Addr::new(198, 18, 0, 10));
    let mut leased: Vec<u64> = first
        .values()
        .map(|a| u64::from(u32::from(*a) - pool_start))
        .collect();
    leased.sort_unstable();
    leased.dedup();
    assert_eq!(
        leased.len() as u64,
        BOTH + ONLY_0,
        "an address leased twice"
    );
    // Bit index i is word i/64, of shard (i/64) mod 2; a shard's n-th bit
    // is bit n%64 of word 2(n/64) + shard.
    let shard_bit = |shard: u64, n: u64| (2 * (n / 64) + shard) * 64 + n % 64;
    let mut expected: Vec<u64> = (0..SHARD)
        .map(|n| shard_bit(0, n))
        .chain((0..BOTH + ONLY_0 - SHARD).map(|n| shard_bit(1, n)))
        .collect();
    expected.sort_unstable();
    assert!(
        leased == expected,
        "leased set is not shard 0 full plus the bottom of shard 1; first differences \
         (leased, expected): {:?}",
        leased
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .take(5)
            .collect::<Vec<_>>()
    );

    // Restart on the same journal: every lease comes back, and the same
    // clients get the same addresses.
    let d =
        Daemon::start(&lab, &bin(), &cfg).unwrap_or_else(|e| panic!("restarting xdhcpd: {e:#}"));
    for args in [&both, &only_0] {
        let s = xdhcpgen(&lab, args);
        assert_clean(&s);
    }
    let log = d.log();
    let stats = d.stop().expect("xdhcpd stops cleanly");
    assert_eq!(
        restored_count(&log),
        Some(BOTH + ONLY_0),
        "the restarted daemon's log:\n{log}"
    );
    assert_eq!(counter(&stats, "/total/no_address"), 0, "{stats}");
    assert_eq!(acks(&stats), [BOTH / 2 + ONLY_0, BOTH / 2], "{stats}");
    assert_eq!(
        leases_by_mac(&cfg_file),
        first,
        "clients moved after the restart"
    );
}

/// In durable mode a worker releases a whole journal group's ACKs at once,
/// often more than one kick of a copy-mode AF_XDP socket sends (32 frames
/// by default). The worker must keep kicking until they are out instead of
/// going to sleep with them on its TX ring: here an idle worker sleeps up
/// to 30 s, far beyond the generator's 5 s timeout, so an ACK left on the
/// ring until the worker woke would be a timeout. The stop at the end must
/// wake the sleeping worker too: the harness kills a daemon that has not
/// exited 10 s after SIGTERM, and that fails the test.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn gen_durable_acks_leave_when_synced_not_when_the_worker_wakes() {
    let lab = lab("xdtg9", false);
    let dir = TempDir::new("durable-burst");
    let cfg = journal_config("lab-journal-durable.toml", &lab, &dir.0)
        .replace("server_id =", "idle_sleep_ms = 30000\nserver_id =");
    let d = Daemon::start(&lab, &bin(), &cfg).unwrap_or_else(|e| panic!("starting xdhcpd: {e:#}"));
    for prefix in ["02:68:01", "02:68:02", "02:68:03"] {
        let s = xdhcpgen(
            &lab,
            &[
                &pinned_xdp()[..],
                &[
                    "--clients",
                    "4000",
                    "--count",
                    "4000",
                    "--mac-prefix",
                    prefix,
                ][..],
                &NO_RETRANSMIT[..],
            ]
            .concat(),
        );
        assert_eq!(num(&s, "/completed"), 4000, "{s}");
        assert_clean(&s);
    }
    let stats = d.stop().expect("xdhcpd stops cleanly");
    assert_eq!(
        counter(&stats, "/total/parked"),
        12_000,
        "every ACK waited for its sync: {stats}"
    );
}

/// `--attack starve` beside a normal DORA fleet, against today's xdhcpd
/// (no limits yet, so the attack gets every address it asks for): 3,000
/// made-up MACs through one relay with one circuit id, 500 normal clients
/// directly on the link, started 100 ms after the attack. The run reports
/// the two fleets apart, and what the daemon counted and recorded agrees
/// with that split: its DISCOVERs and REQUESTs are the two fleets' sums,
/// and its journal holds each fleet's leases under that fleet's MACs, the
/// attack's with the one circuit id, the normal clients' with none.
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn gen_starve_attack_beside_dora_is_reported_apart() {
    const LEGIT: u64 = 500;
    const ATTACK: u64 = 3000;
    let lab = lab("xdtgs", true);
    let dir = TempDir::new("starve-beside");
    let cfg = journal_config("lab-journal-durable.toml", &lab, &dir.0);
    let cfg_file = dir.0.join("xdhcpd.toml");
    std::fs::write(&cfg_file, &cfg).expect("config file");
    let d = Daemon::start(&lab, &bin(), &cfg).unwrap_or_else(|e| panic!("starting xdhcpd: {e:#}"));
    let mac = format_mac(&lab.srv_mac);
    let (s, table) = xdhcpgen_and_table(
        &lab,
        &[
            &pinned_xdp()[..],
            &NO_RETRANSMIT[..],
            &["--clients", &LEGIT.to_string()][..],
            &[
                "--attack",
                "starve",
                "--attack-clients",
                &ATTACK.to_string(),
            ],
            &["--attack-relay", CLIENT_IP, "--attack-circuit-id", "port-7"],
            &["--attack-timeout-ms", "5000", "--attack-lead-ms", "100"],
            &["--server", SERVER_IP, "--server-mac", &mac],
        ]
        .concat(),
    );
    let stats = d.stop().expect("xdhcpd stops cleanly");

    // The top-level figures are the normal fleet's, as without an attack.
    assert_eq!(num(&s, "/completed"), LEGIT, "{s}");
    assert_clean(&s);
    let (l, a) = (&s["legit"], &s["attack"]);
    assert_eq!(a["kind"], "starve", "{s}");
    assert_eq!(a["circuit_id"], "port-7", "{s}");
    assert_eq!(a["relays"], serde_json::json!([CLIENT_IP]), "{s}");
    assert_eq!(a["mac_prefix"], "02:61:74", "{s}");
    assert_eq!(l["mac_prefix"], "02:67:65", "{s}");
    for (side, n) in [(l, LEGIT), (a, ATTACK)] {
        for f in ["started", "completed", "leases", "offers", "acks"] {
            assert_eq!(num(side, &format!("/{f}")), n, "{f}: {side}");
        }
        for f in [
            "naks",
            "timeouts",
            "retransmits",
            "duplicate_addresses",
            "bad_subnet",
            "unfinished",
        ] {
            assert_eq!(num(side, &format!("/{f}")), 0, "{f}: {side}");
        }
    }
    assert_eq!(num(l, "/latency_us/dora/count"), LEGIT, "{s}");
    assert_eq!(num(&s, "/latency_us/dora/count"), LEGIT, "{s}");

    // The daemon saw both fleets' messages, and nothing else.
    let sum = |f: &str| num(l, &format!("/{f}")) + num(a, &format!("/{f}"));
    assert_eq!(
        counter(&stats, "/total/discover"),
        sum("sent_discover"),
        "{stats}"
    );
    assert_eq!(
        counter(&stats, "/total/discover"),
        LEGIT + ATTACK,
        "{stats}"
    );
    assert_eq!(
        counter(&stats, "/total/request"),
        sum("sent_request"),
        "{stats}"
    );
    assert_eq!(counter(&stats, "/total/offer"), sum("offers"), "{stats}");
    assert_eq!(counter(&stats, "/total/ack"), sum("acks"), "{stats}");
    assert_eq!(counter(&stats, "/total/tx"), sum("received"), "{stats}");
    assert_eq!(counter(&stats, "/total/malformed"), 0, "{stats}");
    assert_eq!(num(&s, "/xdp/redirected"), sum("received"), "{s}");

    // The journal: each fleet's leases under its own MACs, all distinct
    // and in the pool; the attack's carry its one circuit id.
    let leases = xdhcpd_leases(&cfg_file, &[]);
    let mut legit = Vec::new();
    let mut attack = Vec::new();
    for v in &leases {
        assert_eq!(v["state"], "bound", "{v}");
        let addr: Ipv4Addr = v["address"]
            .as_str()
            .expect("address")
            .parse()
            .expect("IPv4");
        assert!(in_pool(addr), "{v}");
        match v["hwaddr"].as_str().expect("hwaddr") {
            h if h.starts_with("02:67:65:") => {
                assert!(v["circuit_id"].is_null(), "a direct client: {v}");
                legit.push(addr);
            }
            h if h.starts_with("02:61:74:") => {
                assert_eq!(v["circuit_id"], "port-7", "{v}");
                attack.push(addr);
            }
            _ => panic!("a lease of no fleet: {v}"),
        }
    }
    assert_eq!((legit.len() as u64, attack.len() as u64), (LEGIT, ATTACK));
    let mut all: Vec<Ipv4Addr> = legit.iter().chain(&attack).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len() as u64, LEGIT + ATTACK, "an address leased twice");
    // The report's lowest addresses of each fleet are that fleet's leases.
    for (side, got) in [(l, &legit), (a, &attack)] {
        let listed = side["addresses"].as_array().expect("addresses");
        assert_eq!(listed.len(), 64, "{side}");
        for x in listed {
            let x: Ipv4Addr = x.as_str().expect("an address").parse().expect("IPv4");
            assert!(got.contains(&x), "{x} is not the fleet's: {side}");
        }
    }

    // The table ends with the two fleets side by side.
    assert!(
        table.contains("attack starve: 3000 clients 02:61:74:xx:xx:xx"),
        "{table}"
    );
    let row = |name: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{table}"));
        line.split_whitespace().skip(1).map(str::to_owned).collect()
    };
    assert_eq!(row("legit   ")[..3], ["500", "500", "500"], "{table}");
    assert_eq!(row("attack  ")[..3], ["3000", "3000", "3000"], "{table}");
}
