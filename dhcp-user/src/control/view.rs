//! How xdhcpctl prints the daemon's answers: the latency percentile
//! table, the reservations, and `top`'s frame (rates from two successive
//! `stats` documents, drops, pool use, latency per worker). Kept in the
//! library, apart from the terminal, so that it is tested on documents
//! written by hand.
//!
//! The documents are read by key, leniently: `latency` is null when the
//! daemon records none, `leases` is absent from daemons that do not count
//! them, and a missing counter reads as 0.
use crate::tools::show::write_aligned;
use serde_json::Value;
use std::fmt::Write as _;

/// Counters shown as rates per second, from `total`.
pub const RATES: [&str; 10] = [
    "rx", "tx", "discover", "offer", "request", "ack", "nak", "release", "decline", "inform",
];

/// Counters of what was dropped or refused, from `total`.
pub const DROPS: [&str; 16] = [
    "malformed",
    "no_subnet",
    "no_address",
    "table_full",
    "tx_dropped",
    "journal_full",
    "journal_lost",
    "untrusted_dropped",
    "rate_limited_mac",
    "rate_limited_circuit_id",
    "src_mac_mismatch",
    "limited_circuit_id",
    "limited_remote_id",
    "limited_mac",
    "xsk_rx_dropped",
    "xsk_rx_ring_full",
];

/// What the XDP program dropped, from `xdp` (the rest of its counters,
/// seen, redirected and passed, is traffic, not loss).
pub const XDP_DROPS: [&str; 3] = ["malformed", "no_socket", "rate_limited"];

/// Percentile columns of the latency document, with their headings.
const PCTS: [(&str, &str); 6] = [
    ("count", "count"),
    ("p50_us", "p50 µs"),
    ("p90_us", "p90 µs"),
    ("p99_us", "p99 µs"),
    ("p999_us", "p99.9 µs"),
    ("max_us", "max µs"),
];

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn table<const N: usize>(head: &[&str; N], rows: &[[String; N]]) -> String {
    let mut out = Vec::new();
    let _ = write_aligned(&mut out, head, rows);
    String::from_utf8_lossy(&out).into_owned()
}

/// The latency kinds of a document, in its order.
fn kinds(lat: &Value) -> Vec<String> {
    match lat["kinds"].as_array() {
        Some(k) => k
            .iter()
            .filter_map(|k| k.as_str().map(String::from))
            .collect(),
        None => lat["total"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
    }
}

/// `xdhcpctl latency`: per message type, for all workers and for each,
/// since start (`total`) and over the last interval (`recent`). `doc`
/// is the `latency` answer or a whole stats document.
pub fn latency_text(doc: &Value) -> String {
    let lat = &doc["latency"];
    if lat.is_null() {
        return "no latency figures: the daemon records none (\"latency\": null; latency = false, \
                or a daemon without latency recording)\n"
            .into();
    }
    let kinds = kinds(lat);
    let mut out = String::new();
    for (part, title) in [("total", "since start"), ("recent", "last interval")] {
        let mut rows = Vec::new();
        let mut add = |scope: String, set: &Value| {
            for k in &kinds {
                let h = &set[k.as_str()];
                let mut row: [String; 8] = Default::default();
                row[0] = scope.clone();
                row[1] = k.clone();
                for (i, (key, _)) in PCTS.iter().enumerate() {
                    row[2 + i] = n(&h[*key]).to_string();
                }
                rows.push(row);
            }
        };
        add("all".into(), &lat[part]);
        for w in lat["workers"].as_array().into_iter().flatten() {
            add(format!("queue {}", n(&w["queue"])), &w[part]);
        }
        let interval = match part {
            "recent" => format!(", {} ms", n(&lat["interval_ms"])),
            _ => String::new(),
        };
        let _ = writeln!(out, "{title}{interval}:");
        let head = [
            "worker", "kind", PCTS[0].1, PCTS[1].1, PCTS[2].1, PCTS[3].1, PCTS[4].1, PCTS[5].1,
        ];
        out.push_str(&table(&head, &rows));
        out.push('\n');
    }
    out
}

/// `xdhcpctl reservations`.
pub fn reservations_text(answer: &Value) -> String {
    let rows: Vec<[String; 4]> = answer["reservations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let id = [
                "mac",
                "client_id",
                "circuit_id",
                "circuit_id_hex",
                "remote_id",
                "remote_id_hex",
            ]
            .iter()
            .find_map(|k| r[*k].as_str().map(|v| format!("{}={v}", k)))
            .unwrap_or_default();
            [
                r["addr"].as_str().unwrap_or("-").to_string(),
                id,
                if r["infinite"].as_bool() == Some(true) {
                    "infinite"
                } else {
                    ""
                }
                .to_string(),
                r["source"].as_str().unwrap_or("-").to_string(),
            ]
        })
        .collect();
    table(&["address", "client", "lease", "source"], &rows)
}

/// What one `top` frame shows, worked out from the stats documents of
/// now and of the refresh before.
#[derive(Debug, Default, PartialEq)]
pub struct Frame {
    pub title: String,
    /// (counter, per second, total).
    pub rates: Vec<(String, f64, u64)>,
    /// (counter, total, per second) of the drops that are not 0.
    pub drops: Vec<(String, u64, f64)>,
    /// subnet, size, used, use %, in probation.
    pub pools: Vec<[String; 5]>,
    /// "offered 3  bound 10 ..." when the daemon counts leases by state.
    pub leases: Option<String>,
    /// worker, then p50/p99/p99.9 of each kind over the last interval.
    pub latency_head: Vec<String>,
    pub latency: Vec<Vec<String>>,
}

impl Frame {
    /// The frame for `cur`, with rates over the time since `prev` (none
    /// on the first frame: rates are 0 then).
    pub fn new(prev: Option<&Value>, cur: &Value) -> Frame {
        let dt = prev
            .map(|p| {
                cur["uptime_s"].as_f64().unwrap_or(0.0) - p["uptime_s"].as_f64().unwrap_or(0.0)
            })
            .filter(|d| *d > 0.0);
        let rate = |key: &str| match (prev, dt) {
            (Some(p), Some(dt)) => {
                n(&cur["total"][key]).saturating_sub(n(&p["total"][key])) as f64 / dt
            }
            _ => 0.0,
        };
        let rates = RATES
            .iter()
            .map(|k| (k.to_string(), rate(k), n(&cur["total"][*k])))
            .collect();
        let mut drops: Vec<_> = DROPS
            .iter()
            .map(|k| (k.to_string(), n(&cur["total"][*k]), rate(k)))
            .collect();
        if cur["xdp"].is_object() {
            for k in XDP_DROPS {
                let v = n(&cur["xdp"][k]);
                let before = prev.map_or(v, |p| n(&p["xdp"][k]));
                let r = dt.map_or(0.0, |dt| v.saturating_sub(before) as f64 / dt);
                drops.push((format!("xdp.{k}"), v, r));
            }
        }
        drops.retain(|(_, total, _)| *total > 0);
        let pools = cur["subnets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let (size, used) = (n(&s["size"]), n(&s["used"]));
                let pct = if size > 0 {
                    used as f64 * 100.0 / size as f64
                } else {
                    0.0
                };
                [
                    s["subnet"].as_str().unwrap_or("-").to_string(),
                    size.to_string(),
                    used.to_string(),
                    format!("{pct:.1}%"),
                    n(&s["in_probation"]).to_string(),
                ]
            })
            .collect();
        let leases = cur["leases"].as_object().map(|o| {
            super::proto::STATES
                .iter()
                .filter_map(|k| o.get(*k).map(|v| format!("{k} {}", n(v))))
                .collect::<Vec<_>>()
                .join("  ")
        });
        let lat = &cur["latency"];
        let (latency_head, latency) = if lat.is_null() {
            (Vec::new(), Vec::new())
        } else {
            let kinds = kinds(lat);
            let mut head = vec!["worker".to_string()];
            for k in &kinds {
                for p in ["p50", "p99", "p99.9"] {
                    head.push(format!("{k} {p}"));
                }
            }
            let row = |name: String, set: &Value| {
                let mut r = vec![name];
                for k in &kinds {
                    for p in ["p50_us", "p99_us", "p999_us"] {
                        r.push(n(&set[k.as_str()][p]).to_string());
                    }
                }
                r
            };
            let mut rows: Vec<_> = lat["workers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|w| row(format!("queue {}", n(&w["queue"])), &w["recent"]))
                .collect();
            rows.push(row("all".into(), &lat["recent"]));
            (head, rows)
        };
        Frame {
            title: format!(
                "xdhcpd  up {}  io {}{}  workers {}  table {}/{}",
                uptime(cur["uptime_s"].as_f64().unwrap_or(0.0)),
                cur["io"].as_str().unwrap_or("-"),
                cur["xdp_mode"]
                    .as_str()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default(),
                cur["workers"].as_array().map_or(0, Vec::len),
                n(&cur["table_used"]),
                n(&cur["table_capacity"]),
            ),
            rates,
            drops,
            pools,
            leases,
            latency_head,
            latency,
        }
    }

    /// The frame as plain text (`top --once`).
    pub fn text(&self) -> String {
        let mut out = format!("{}\n\n", self.title);
        let rates: Vec<[String; 3]> = self
            .rates
            .iter()
            .map(|(k, r, t)| [k.clone(), format!("{r:.1}"), t.to_string()])
            .collect();
        out.push_str("rates\n");
        out.push_str(&table(&["counter", "per second", "total"], &rates));
        out.push_str("\ndrops\n");
        if self.drops.is_empty() {
            out.push_str("none\n");
        } else {
            let drops: Vec<[String; 3]> = self
                .drops
                .iter()
                .map(|(k, t, r)| [k.clone(), t.to_string(), format!("{r:.1}")])
                .collect();
            out.push_str(&table(&["counter", "total", "per second"], &drops));
        }
        out.push_str("\npools\n");
        out.push_str(&table(
            &["subnet", "size", "used", "use", "in probation"],
            &self.pools,
        ));
        if let Some(l) = &self.leases {
            let _ = writeln!(out, "\nleases  {l}");
        }
        out.push_str("\nlatency (last interval, µs)\n");
        if self.latency.is_empty() {
            out.push_str("none recorded\n");
        } else {
            let width: Vec<usize> = (0..self.latency_head.len())
                .map(|i| {
                    self.latency
                        .iter()
                        .map(|r| r[i].chars().count())
                        .chain([self.latency_head[i].chars().count()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            for row in std::iter::once(&self.latency_head).chain(&self.latency) {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&width)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                let _ = writeln!(out, "{}", cells.join("  ").trim_end());
            }
        }
        out
    }
}

/// The stats document's `cluster` object as text (`xdhcpctl stats`):
/// the server's role, its shares and peers, what it replicated; `None`
/// without `[cluster]`.
pub fn cluster_text(doc: &Value) -> Option<String> {
    let c = doc.get("cluster").filter(|c| c.is_object())?;
    let s = |k: &str| c[k].as_str().unwrap_or("-").to_string();
    let list = |k: &str| {
        let v: Vec<String> = c[k]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| n(x).to_string())
            .collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(",")
        }
    };
    let mut out = format!(
        "\ncluster  {} ({}, {})  {}  owns shares {} ({} buckets)\n",
        s("name"),
        s("mode"),
        s("durability"),
        s("state"),
        list("owned_shares"),
        n(&c["owned_buckets"]),
    );
    let shares: Vec<[String; 4]> = c["shares"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            [
                n(&x["share"]).to_string(),
                x["home"].as_str().unwrap_or("-").to_string(),
                x["owner"]
                    .as_str()
                    .filter(|o| !o.is_empty())
                    .unwrap_or("-")
                    .to_string(),
                n(&x["revision"]).to_string(),
            ]
        })
        .collect();
    out.push_str(&table(&["share", "home", "owner", "revision"], &shares));
    let peers: Vec<[String; 4]> = c["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            let yes = |k: &str| {
                if x[k].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                }
            };
            [
                x["name"].as_str().unwrap_or("-").to_string(),
                yes("alive").to_string(),
                yes("ready").to_string(),
                n(&x["last_seen_ms"]).to_string(),
            ]
        })
        .collect();
    out.push_str(&table(&["peer", "alive", "ready", "last seen ms"], &peers));
    let counters = [
        "published",
        "publish_errors",
        "in_flight",
        "dropped",
        "local_only",
        "applied",
        "skipped",
        "fenced",
        "decode_errors",
        "stream_lag",
        "replication_lag",
        "held_fenced",
        "takeovers",
        "handbacks",
        "cut_offs",
        "heartbeats",
        "heartbeat_errors",
        "claim_conflicts",
    ];
    let line: Vec<String> = counters
        .iter()
        .map(|k| format!("{k} {}", n(&c[*k])))
        .collect();
    for chunk in line.chunks(6) {
        let _ = writeln!(out, "{}", chunk.join("  "));
    }
    Some(out)
}

fn uptime(s: f64) -> String {
    let s = s as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(count: u64, base: u64) -> Value {
        json!({"count": count, "p50_us": base, "p90_us": base * 2, "p99_us": base * 3,
               "p999_us": base * 4, "max_us": base * 5})
    }

    /// A stats document with the latency shape of the contract.
    fn doc(uptime: f64, discover: u64, with_latency: bool) -> Value {
        let set = |b| {
            json!({"offer": h(discover, b), "ack": h(discover, b + 1),
                             "nak": h(0, 0), "journal_wait": h(0, 0)})
        };
        json!({
            "uptime_s": uptime,
            "io": "xdp",
            "xdp_mode": "driver",
            "table_used": 12, "table_capacity": 1024,
            "xdp": {"passed": 3, "redirected": 9, "no_socket": 4},
            "subnets": [{"subnet": "10.0.0.0/24", "network": "10.0.0.0", "prefix_len": 24,
                          "size": 200, "used": 50, "in_probation": 1}],
            "workers": [{"queue": 0, "discover": discover}],
            "total": {"discover": discover, "offer": discover, "malformed": 2},
            "latency": if with_latency { json!({
                "interval_ms": 1000,
                "kinds": ["offer", "ack", "nak", "journal_wait"],
                "total": set(10), "recent": set(20),
                "workers": [{"queue": 0, "total": set(10), "recent": set(20)}],
            }) } else { Value::Null },
        })
    }

    #[test]
    fn latency_table_has_every_kind_per_worker_and_in_all() {
        let t = latency_text(&doc(1.0, 7, true));
        assert!(
            t.contains("since start:") && t.contains("last interval, 1000 ms:"),
            "{t}"
        );
        let row = t
            .lines()
            .find(|l| l.starts_with("queue 0") && l.contains(" ack "))
            .unwrap();
        let cells: Vec<_> = row.split_whitespace().collect();
        // queue, 0, ack, count, p50, p90, p99, p99.9, max
        assert_eq!(cells[3..], ["7", "11", "22", "33", "44", "55"], "{row}");
        assert_eq!(t.lines().filter(|l| l.contains("journal_wait")).count(), 4);
        assert!(latency_text(&json!({"latency": null})).contains("records none"));
    }

    #[test]
    fn the_cluster_block_names_role_shares_and_peers() {
        assert!(cluster_text(&json!({ "cluster": null })).is_none());
        let doc = json!({ "cluster": {
            "name": "a", "mode": "load-balancing", "durability": "durable",
            "state": "connected", "owned_shares": [0], "owned_buckets": 128,
            "shares": [
                { "share": 0, "home": "a", "owner": "a", "revision": 7 },
                { "share": 1, "home": "b", "owner": "", "revision": 0 }
            ],
            "peers": [
                { "name": "a", "alive": true, "ready": true, "last_seen_ms": 0 },
                { "name": "b", "alive": false, "ready": false, "last_seen_ms": 4200 }
            ],
            "published": 12, "fenced": 1, "takeovers": 2
        }});
        let t = cluster_text(&doc).unwrap();
        assert!(
            t.contains(
                "cluster  a (load-balancing, durable)  connected  owns shares 0 (128 buckets)"
            ),
            "{t}"
        );
        assert!(t.contains("published 12"), "{t}");
        assert!(t.contains("takeovers 2"), "{t}");
        let b = t.lines().find(|l| l.starts_with("b ")).unwrap();
        assert!(b.contains("no") && b.contains("4200"), "{t}");
        let s1 = t.lines().find(|l| l.starts_with("1 ")).unwrap();
        assert!(s1.contains(" - "), "nobody owns share 1: {t}");
    }

    #[test]
    fn top_frame_rates_come_from_two_documents() {
        let f = Frame::new(Some(&doc(10.0, 100, true)), &doc(12.0, 300, true));
        let d = f.rates.iter().find(|r| r.0 == "discover").unwrap();
        assert_eq!((d.1, d.2), (100.0, 300));
        assert_eq!(
            f.drops,
            vec![
                ("malformed".to_string(), 2, 0.0),
                ("xdp.no_socket".into(), 4, 0.0)
            ]
        );
        assert_eq!(f.pools[0], ["10.0.0.0/24", "200", "50", "25.0%", "1"]);
        assert_eq!(f.latency.len(), 2, "one worker and all");
        assert_eq!(f.latency[0][0], "queue 0");
        assert_eq!(f.latency_head[1], "offer p50");
        assert_eq!(f.latency[0][1], "20");
        let t = f.text();
        assert!(t.contains("discover") && t.contains("100.0"), "{t}");
        // No leases key, no latency: the frame says so instead of failing.
        let f = Frame::new(None, &doc(1.0, 5, false));
        assert_eq!(f.leases, None);
        assert!(f.latency.is_empty());
        assert!(f.text().contains("none recorded"));
        assert!(f.rates.iter().all(|r| r.1 == 0.0));
        let mut with = doc(1.0, 5, false);
        with["leases"] = json!({"offered": 1, "bound": 4});
        assert_eq!(
            Frame::new(None, &with).leases.as_deref(),
            Some("offered 1  bound 4")
        );
    }

    #[test]
    fn reservations_table_names_the_source() {
        let t = reservations_text(&json!({"reservations": [
            {"addr": "10.0.0.5", "mac": "02:00:00:00:00:05", "source": "file"},
            {"addr": "10.0.0.6", "client_id": "0102", "infinite": true, "source": "runtime, also in file"},
        ]}));
        assert!(t.lines().nth(1).unwrap().contains("mac=02:00:00:00:00:05"));
        assert!(
            t.lines().nth(2).unwrap().ends_with("runtime, also in file"),
            "{t}"
        );
    }
}
