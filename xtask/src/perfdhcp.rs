//! perfdhcp's final report, parsed from its text output (Kea 2.2): the
//! demo and the benchmarks read it.

/// One "***Statistics for: DISCOVER-OFFER***" block.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Exchange {
    pub name: String,
    pub sent: u64,
    pub received: u64,
    pub drops: u64,
    pub drops_ratio_pct: f64,
    pub orphans: u64,
    pub rejected: u64,
    pub non_unique: u64,
    pub min_ms: Option<f64>,
    pub avg_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// Completed exchanges per second, as perfdhcp measured them.
    pub rate: Option<f64>,
    pub expected_rate: Option<f64>,
    pub malformed: Option<u64>,
    pub exchanges: Vec<Exchange>,
}

impl Report {
    pub fn exchange(&self, name: &str) -> Option<&Exchange> {
        self.exchanges.iter().find(|e| e.name == name)
    }
}

/// The first number in `s`, ignoring units around it ("3.2 ms", "38 %").
fn number(s: &str) -> Option<f64> {
    let start = s.find(|c: char| c.is_ascii_digit())?;
    let rest = &s[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn count(s: &str) -> u64 {
    number(s).map_or(0, |v| v as u64)
}

/// Reads what it recognises and skips everything else, so extra lines
/// (periodic reports, warnings) or a missing block do not break it.
pub fn parse(text: &str) -> Report {
    let mut r = Report::default();
    let mut cur: Option<Exchange> = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line
            .strip_prefix("***Statistics for:")
            .and_then(|s| s.strip_suffix("***"))
        {
            r.exchanges.extend(cur.take());
            cur = Some(Exchange {
                name: name.trim().to_string(),
                ..Exchange::default()
            });
            continue;
        }
        if line.starts_with("***") {
            r.exchanges.extend(cur.take());
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        if key == "rate" {
            r.rate = number(value);
            if let Some((_, exp)) = value.split_once("expected rate:") {
                r.expected_rate = number(exp);
            }
            continue;
        }
        if key == "malformed packets" {
            r.malformed = number(value).map(|v| v as u64);
            continue;
        }
        let Some(ex) = cur.as_mut() else { continue };
        match key.as_str() {
            "sent packets" => ex.sent = count(value),
            "received packets" => ex.received = count(value),
            "drops" => ex.drops = count(value),
            "drops ratio" => ex.drops_ratio_pct = number(value).unwrap_or(0.0),
            "orphans" => ex.orphans = count(value),
            "rejected leases" => ex.rejected = count(value),
            "non unique addresses" => ex.non_unique = count(value),
            "min delay" => ex.min_ms = number(value),
            "avg delay" => ex.avg_ms = number(value),
            "max delay" => ex.max_ms = number(value),
            _ => {}
        }
    }
    r.exchanges.extend(cur);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real run against Kea 2.2 in the lab, overloaded on purpose.
    const OVERLOADED: &str = "Running: perfdhcp -4 -l xtc0-c -r 20000 -R 50000 -p 3
Scenario: basic.
Multi-thread mode enabled.
***Rate statistics***
Rate: 9430.2 4-way exchanges/second, expected rate: 20000

***Malformed Packets***
Malformed packets: 0
***Statistics for: DISCOVER-OFFER***
sent packets: 59958
received packets: 36982
drops: 22976
drops ratio: 38.3202 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.064 ms
avg delay: 7.847 ms
max delay: 18.175 ms
std deviation: 3.469 ms
collected packets: 11938

***Statistics for: REQUEST-ACK***
sent packets: 36982
received packets: 28396
drops: 8586
drops ratio: 23.217 %
orphans: 0
rejected leases: 0
non unique addresses: 0

min delay: 0.054 ms
avg delay: 6.767 ms
max delay: 17.961 ms
std deviation: 3.533 ms
collected packets: 3343
";

    #[test]
    fn parses_a_real_report() {
        let r = parse(OVERLOADED);
        assert_eq!(r.rate, Some(9430.2));
        assert_eq!(r.expected_rate, Some(20000.0));
        assert_eq!(r.malformed, Some(0));
        assert_eq!(r.exchanges.len(), 2);
        let d = r.exchange("DISCOVER-OFFER").unwrap();
        assert_eq!((d.sent, d.received, d.drops), (59958, 36982, 22976));
        assert_eq!(d.drops_ratio_pct, 38.3202);
        assert_eq!(d.max_ms, Some(18.175));
        let a = r.exchange("REQUEST-ACK").unwrap();
        assert_eq!((a.sent, a.received, a.drops), (36982, 28396, 8586));
        assert_eq!(a.min_ms, Some(0.054));
    }

    #[test]
    fn survives_a_truncated_or_foreign_report() {
        let r = parse(
            "Running: perfdhcp\n***Statistics for: DISCOVER-OFFER***\nsent packets: 12\nerror: foo: bar\n",
        );
        assert_eq!(r.rate, None);
        let d = r.exchange("DISCOVER-OFFER").unwrap();
        assert_eq!(d.sent, 12);
        assert_eq!(d.received, 0);
        assert!(parse("").exchanges.is_empty());
        assert!(parse("Rate: n/a").rate.is_none());
    }
}
