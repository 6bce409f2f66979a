//! Privileged lab tests of the metrics endpoint and the daemon's own
//! latency histograms: while xdhcpgen loads xdhcpd the endpoint answers
//! in the server's namespace with a well-formed OpenMetrics exposition;
//! once the generator has finished, the endpoint's request, reply and
//! lease counts equal the generator's and the stats file's exactly, and
//! the latency histograms hold one sample per reply sent (and, with a
//! durable journal, one journal wait per parked reply); `xdhcpctl stats`
//! answers during the run and agrees after it. Labs `xdt80`,
//! `xdt81`; run with `cargo xtask test` (as root).
mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use xtask::daemon::Daemon;
use xtask::lab::Lab;

const LISTEN: &str = "127.0.0.1:9267";

fn with_metrics(text: String) -> String {
    format!("{text}\n[metrics]\nlisten = \"{LISTEN}\"\n")
}

/// One sample: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// GET /metrics from inside the server's namespace: the headers and the
/// parsed samples, after checking the exposition's form.
fn scrape(lab: &Lab) -> (String, Vec<Sample>) {
    let out = output_within(
        lab.srv("curl").args([
            "-sS",
            "--max-time",
            "10",
            "-D",
            "-",
            &format!("http://{LISTEN}/metrics"),
        ]),
        Duration::from_secs(20),
    )
    .expect("curl runs");
    assert!(out.status.success(), "curl: {}", text(&out));
    let body = String::from_utf8(out.stdout).expect("UTF-8 exposition");
    let (head, body) = body.split_once("\r\n\r\n").expect("headers, then a body");
    (head.to_owned(), parse(body))
}

/// A small OpenMetrics text parser: every sample belongs to a family
/// declared by a `# TYPE` line before it, names are `xdhcpd_…`, label
/// values are quoted, values are numbers, and `# EOF` is the last line.
fn parse(body: &str) -> Vec<Sample> {
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "the last line is # EOF");
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for l in &lines[..lines.len() - 1] {
        if let Some(rest) = l.strip_prefix("# ") {
            let mut w = rest.splitn(3, ' ');
            let (kw, name) = (w.next().unwrap(), w.next().expect("a name"));
            assert!(["TYPE", "HELP", "UNIT"].contains(&kw), "{l}");
            if kw == "TYPE" {
                let t = w.next().expect("a type");
                assert!(
                    ["counter", "gauge", "histogram", "info"].contains(&t),
                    "{l}"
                );
                assert!(types.insert(name.into(), t.into()).is_none(), "twice: {l}");
            }
            continue;
        }
        let (series, value) = l.rsplit_once(' ').expect("a value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("a number: {l}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let mut m = BTreeMap::new();
                for kv in inner.split("\",").filter(|s| !s.is_empty()) {
                    let (k, v) = kv.split_once("=\"").expect("k=\"v\"");
                    m.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (n, m)
            }
            None => (series, BTreeMap::new()),
        };
        assert!(name.starts_with("xdhcpd_"), "{l}");
        let family = types
            .keys()
            .filter(|f| name.starts_with(f.as_str()))
            .max_by_key(|f| f.len())
            .unwrap_or_else(|| panic!("no TYPE before {l}"));
        let t = &types[family];
        let suffix = &name[family.len()..];
        let ok = match t.as_str() {
            "counter" => suffix == "_total",
            "histogram" => ["_bucket", "_sum", "_count"].contains(&suffix),
            "info" => suffix == "_info",
            _ => suffix.is_empty(),
        };
        assert!(ok, "{l}: not a sample of {t} {family}");
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    out
}

/// The sum of `name`'s samples whose labels include `want`.
fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> u64 {
    let v: f64 = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
        .sum();
    v as u64
}

fn num(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no {pointer} in {v}"))
}

/// Scrapes until `done` holds of the samples (a liveness bound, the
/// endpoint shows the board of the last stats interval), then returns
/// the last scrape either way.
fn scrape_until(lab: &Lab, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, s) = scrape(lab);
        if done(&s) || Instant::now() > until {
            return s;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs xdhcpgen against `d` and checks the endpoint during and after.
/// Returns the final scrape and the stats file.
/// What `xdhcpctl ARGS` against `socket` prints, which must succeed.
fn ctl_out(socket: &Path, args: &[&str]) -> String {
    let out = output_within(
        Command::new(bin().with_file_name("xdhcpctl"))
            .arg("--socket")
            .arg(socket)
            .args(args),
        Duration::from_secs(30),
    )
    .expect("xdhcpctl runs");
    assert!(out.status.success(), "xdhcpctl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `xdhcpctl --json stats` against `socket`: the control API's snapshot.
fn ctl_stats(socket: &Path) -> Value {
    serde_json::from_str(&ctl_out(socket, &["--json", "stats"]))
        .expect("xdhcpctl --json stats is JSON")
}

/// Loads xdhcpd with `clients` DORAs of xdhcpgen and checks the endpoint
/// (and, given its socket, `xdhcpctl stats`) during and after the run.
fn load_and_check(
    lab: &Lab,
    d: &Daemon,
    clients: u32,
    ctl: Option<&Path>,
) -> (Vec<Sample>, Value, Value) {
    let clients_s = clients.to_string();
    let (g, during) = std::thread::scope(|sc| {
        let generator = sc.spawn(|| {
            xdhcpgen_run(
                lab,
                &[
                    "--clients",
                    &clients_s,
                    "--expect-subnet",
                    "198.18.0.0/15",
                    "--timeout-ms",
                    "5000",
                    "--retries",
                    "0",
                ],
                Duration::from_secs(120),
            )
            .0
        });
        // While it runs: the endpoint answers, well-formed, with the right type.
        let mut during = 0;
        while !generator.is_finished() {
            let (head, samples) = scrape(lab);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert!(
                head.to_ascii_lowercase().contains(
                    "content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"
                ),
                "{head}"
            );
            assert!(!samples.is_empty());
            if let Some(socket) = ctl {
                let v = ctl_stats(socket);
                assert!(v["total"]["rx"].is_u64(), "{v}");
            }
            during += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        (generator.join().expect("xdhcpgen ran"), during)
    });
    assert!(during > 0, "the endpoint was scraped while xdhcpgen ran");
    eprintln!("scraped {during} times during the run");
    let (offers, acks) = (num(&g, "/counters/offers"), num(&g, "/counters/acks"));
    assert_eq!(acks, u64::from(clients), "every client bound: {g}");
    // Once the last interval has been published, everything agrees.
    let m = scrape_until(lab, |s| {
        sum(s, "xdhcpd_replies_total", &[("type", "ack")]) == acks
            && sum(s, "xdhcpd_reply_latency_seconds_count", &[("kind", "ack")]) == acks
            && sum(s, "xdhcpd_leases", &[("state", "bound")]) == acks
    });
    for x in m.iter().filter(|x| {
        x.name == "xdhcpd_replies_total"
            || x.name == "xdhcpd_reply_latency_seconds_count"
            || x.name == "xdhcpd_reply_latency_recent_seconds"
            || x.name == "xdhcpd_leases"
    }) {
        eprintln!("{} {:?} {}", x.name, x.labels, x.value);
    }
    let stats = d.fresh_stats().expect("stats");
    let req = |t| sum(&m, "xdhcpd_requests_total", &[("type", t)]);
    let rep = |t| sum(&m, "xdhcpd_replies_total", &[("type", t)]);
    assert_eq!(req("discover"), num(&g, "/counters/sent_discover"), "{g}");
    assert_eq!(req("request"), num(&g, "/counters/sent_request"), "{g}");
    assert_eq!(rep("offer"), offers, "{g}");
    assert_eq!(rep("ack"), acks, "{g}");
    assert_eq!(rep("nak"), 0);
    for t in ["discover", "request", "release", "decline", "inform"] {
        assert_eq!(req(t), num(&stats, &format!("/total/{t}")), "{t}");
    }
    for t in ["offer", "ack", "nak"] {
        assert_eq!(rep(t), num(&stats, &format!("/total/{t}")), "{t}");
    }
    // Per worker, the labelled samples add up to the stats file's.
    assert_eq!(
        sum(&m, "xdhcpd_rx_frames_total", &[("worker", "0")]),
        num(&stats, "/workers/0/rx")
    );
    // Leases by state: every client bound, in the endpoint and the file.
    assert_eq!(sum(&m, "xdhcpd_leases", &[("state", "bound")]), acks);
    assert_eq!(num(&stats, "/leases/bound"), acks);
    assert_eq!(num(&stats, "/leases/offered"), 0);
    // Latency: one sample per reply sent, in the histogram (its +Inf
    // bucket too) and the stats file; the percentiles are in order.
    for (kind, n) in [("offer", offers), ("ack", acks)] {
        let labels = [("kind", kind)];
        assert_eq!(
            sum(&m, "xdhcpd_reply_latency_seconds_count", &labels),
            n,
            "{kind}"
        );
        assert_eq!(
            sum(
                &m,
                "xdhcpd_reply_latency_seconds_bucket",
                &[("kind", kind), ("le", "+Inf")]
            ),
            n,
            "{kind}"
        );
        assert_eq!(num(&stats, &format!("/latency/total/{kind}/count")), n);
        let p = |q: &str| num(&stats, &format!("/latency/total/{kind}/{q}"));
        assert!(
            p("p50_us") <= p("p99_us") && p("p99_us") <= p("max_us"),
            "{stats}"
        );
        assert!(p("max_us") > 0, "{stats}");
    }
    assert_eq!(
        sum(&m, "xdhcpd_reply_latency_seconds_count", &[("kind", "nak")]),
        0
    );
    // The control API answers from the same snapshot, so xdhcpctl's
    // counts are the generator's too.
    if let Some(socket) = ctl {
        let c = stats_agreeing(socket, acks);
        assert_eq!(num(&c, "/total/discover"), req("discover"), "{c}");
        assert_eq!(num(&c, "/total/request"), req("request"), "{c}");
        assert_eq!(num(&c, "/total/offer"), offers, "{c}");
        assert_eq!(num(&c, "/total/ack"), acks, "{c}");
        assert_eq!(num(&c, "/leases/bound"), acks, "{c}");
        assert_eq!(num(&c, "/latency/total/offer/count"), offers, "{c}");
        assert_eq!(num(&c, "/latency/total/ack/count"), acks, "{c}");
        let table = ctl_out(socket, &["latency"]);
        for kind in ["offer", "ack"] {
            assert!(
                table.contains(kind),
                "xdhcpctl latency shows {kind}:\n{table}"
            );
        }
        eprintln!("$ xdhcpctl latency\n{table}");
        let top = ctl_out(socket, &["top", "--once"]);
        assert!(top.contains("rates") && top.contains("pools"), "{top}");
        eprintln!("$ xdhcpctl top --once\n{top}");
    }
    eprintln!("stats file latency: {}", stats["latency"]);
    eprintln!(
        "daemon latency (us): offer p50 {} p99 {} max {}; ack p50 {} p99 {} max {}; \
         journal_wait p50 {} p99 {}",
        num(&stats, "/latency/total/offer/p50_us"),
        num(&stats, "/latency/total/offer/p99_us"),
        num(&stats, "/latency/total/offer/max_us"),
        num(&stats, "/latency/total/ack/p50_us"),
        num(&stats, "/latency/total/ack/p99_us"),
        num(&stats, "/latency/total/ack/max_us"),
        num(&stats, "/latency/total/journal_wait/p50_us"),
        num(&stats, "/latency/total/journal_wait/p99_us"),
    );
    eprintln!(
        "xdhcpgen latency (us): offer p50 {} p99 {}; ack p50 {} p99 {}",
        num(&g, "/latency_us/offer/p50"),
        num(&g, "/latency_us/offer/p99"),
        num(&g, "/latency_us/ack/p50"),
        num(&g, "/latency_us/ack/p99"),
    );
    (m, stats, g)
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn metrics_agree_with_the_generator_and_the_stats_file() {
    let lab = lab("xdt80", false);
    let dir = TempDir::new("metrics-control");
    let socket = dir.0.join("control.sock");
    let text = format!(
        "{}\n[control]\nsocket = \"{}\"\n",
        with_metrics(config("lab-xdp.toml", &lab)),
        socket.display()
    );
    let d = Daemon::start(&lab, &bin(), &text).expect("xdhcpd starts");
    let (m, _, _) = load_and_check(&lab, &d, 5000, Some(&socket));
    // No journal: no journal waits, no journal metrics.
    assert_eq!(
        sum(
            &m,
            "xdhcpd_reply_latency_seconds_count",
            &[("kind", "journal_wait")]
        ),
        0
    );
    assert!(!m.iter().any(|s| s.name.starts_with("xdhcpd_journal_")));
    // Every metric the Grafana dashboard queries is exported.
    let dash = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("dhcp-user/packaging/grafana/xdhcpd.json"),
    )
    .expect("the dashboard");
    let names: std::collections::BTreeSet<String> = m.iter().map(|s| s.name.clone()).collect();
    let mut queried = 0;
    for name in metric_names(&dash) {
        queried += 1;
        assert!(
            names.contains(&name),
            "the dashboard queries {name}, which the endpoint does not export"
        );
    }
    assert!(queried > 5, "the dashboard queries metrics");
    d.stop().expect("xdhcpd stops cleanly");
}

/// `xdhcpctl stats` once its snapshot holds `acks` ACKs and as many ACK
/// latencies (the board is published once an interval).
fn stats_agreeing(socket: &Path, acks: u64) -> Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let c = ctl_stats(socket);
        if num(&c, "/total/ack") == acks && num(&c, "/latency/total/ack/count") == acks
            || Instant::now() > until
        {
            return c;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every `xdhcpd_…` name in a text (journal metrics aside when the run
/// had no journal).
fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("xdhcpd_") {
        let start = i + at;
        let mut end = start + "xdhcpd_".len();
        while end < b.len()
            && (b[end].is_ascii_lowercase() || b[end] == b'_' || b[end].is_ascii_digit())
        {
            end += 1;
        }
        let name = &text[start..end];
        if !name.starts_with("xdhcpd_journal_") && !name.starts_with("xdhcpd_ddns_") {
            out.push(name.to_owned());
        }
        i = end;
    }
    out.sort();
    out.dedup();
    out
}

#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn durable_journal_waits_are_counted_once_per_parked_reply() {
    let lab = lab("xdt81", false);
    let dir = TempDir::new("lab-metrics");
    let text = with_metrics(journal_config("lab-journal-durable.toml", &lab, &dir.0));
    let d = Daemon::start(&lab, &bin(), &text).expect("xdhcpd starts");
    let (m, stats, _) = load_and_check(&lab, &d, 3000, None);
    let parked = num(&stats, "/total/parked");
    assert!(parked > 0, "durable: replies were parked: {stats}");
    let m = if sum(
        &m,
        "xdhcpd_reply_latency_seconds_count",
        &[("kind", "journal_wait")],
    ) == parked
    {
        m
    } else {
        scrape_until(&lab, |s| {
            sum(
                s,
                "xdhcpd_reply_latency_seconds_count",
                &[("kind", "journal_wait")],
            ) == parked
        })
    };
    assert_eq!(
        sum(
            &m,
            "xdhcpd_reply_latency_seconds_count",
            &[("kind", "journal_wait")]
        ),
        parked
    );
    assert_eq!(sum(&m, "xdhcpd_parked_total", &[]), parked);
    assert_eq!(num(&stats, "/latency/total/journal_wait/count"), parked);
    // The journal's own figures are there, and agree with the file.
    assert_eq!(
        sum(&m, "xdhcpd_journal_records_total", &[]),
        num(&stats, "/journal/records")
    );
    assert!(sum(&m, "xdhcpd_journal_fsyncs_total", &[]) > 0);
    d.stop().expect("xdhcpd stops cleanly");
}

/// The AF_PACKET workers record the same way: one latency per reply,
/// one journal wait per parked reply (the whole batch waits there).
#[test]
#[ignore = "needs root and the lab: run with cargo xtask test"]
fn af_packet_workers_record_latency_too() {
    let lab = lab("xdt83", false);
    let dir = TempDir::new("lab-metrics-packet");
    let text = journal_config("lab-journal-durable.toml", &lab, &dir.0)
        .replace("io = \"xdp\"", "io = \"packet\"");
    assert!(text.contains("io = \"packet\""));
    let d = Daemon::start(&lab, &bin(), &with_metrics(text)).expect("xdhcpd starts");
    let (m, stats, _) = load_and_check(&lab, &d, 2000, None);
    assert_eq!(stats["io"], "packet");
    assert!(!m.iter().any(|s| s.name.starts_with("xdhcpd_xsk_")));
    let parked = num(&stats, "/total/parked");
    assert!(parked > 0, "{stats}");
    assert_eq!(num(&stats, "/latency/total/journal_wait/count"), parked);
    d.stop().expect("xdhcpd stops cleanly");
}
