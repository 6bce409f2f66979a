//! Privileged lab tests of the bundled generator, xdhcpgen: against xdhcpd
//! in every scenario (its JSON counts must match the daemon's), as relay
//! agents, over AF_PACKET, against Kea (a server it did not grow up with),
//! against a deliberately faulty responder, whose faults it must count
//! exactly, and against the AF_XDP echo (`xdhcpd --echo`) of `cargo xtask
//! bench`. Labs are named `xdtg…`; run them with `cargo xtask test` (as
//! root).
mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use xtask::daemon::{self, Daemon};
use xtask::kea::Kea;
use xtask::lab::{Lab, format_mac};

const EXPECT: &str = "198.18.0.0/15";

/// xdhcpgen, built next to the daemon under test.
fn gen_bin() -> PathBuf {
    let bin = daemon::xdhcpd_bin().with_file_name("xdhcpgen");
    assert!(
        bin.exists(),
        "{} does not exist: run `cargo build --release -p dhcp-user` first (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// Runs xdhcpgen in the lab's client namespace with `args` and returns its
/// JSON summary; a non-zero exit fails the test with its output.
fn xdhcpgen(lab: &Lab, args: &[&str]) -> Value {
    let dir = daemon::temp_dir("xdhcpgen").expect("temp dir");
    let json = dir.join("summary.json");
    let out = output_within(
        lab.cli(&gen_bin().to_string_lossy())
            .args(["--interface", &lab.cli_if, "--no-progress"])
            .args(["--expect-subnet", EXPECT])
            .arg("--json")
            .arg(&json)
            .args(args),
        Duration::from_secs(120),
    )
    .expect("xdhcpgen runs");
    let report = text(&out);
    assert!(out.status.success(), "xdhcpgen {args:?} failed:\n{report}");
    let summary: Value = serde_json::from_slice(
        &std::fs::read(&json).unwrap_or_else(|e| panic!("no JSON ({e}):\n{report}")),
    )
    .expect("the JSON summary parses");
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{report}");
    summary
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
    let d = Daemon::start_with_args(&lab, &bin(), &config("lab-xdp.toml", &lab), &["--echo"])
        .unwrap_or_else(|e| panic!("starting xdhcpd --echo: {e:#}"));
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
    let stats = d.stop().expect("xdhcpd --echo stops cleanly");
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
