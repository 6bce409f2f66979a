//! `[cluster]`: several xdhcpd sharing one network through a NATS
//! JetStream cluster (see the README's HA section): who this server is,
//! who its peers are, where NATS is, and how leases are shared and kept.
use serde::Deserialize;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// Most peers: a bit each in the ownership mask, and more than three DHCP
/// servers on one segment buys nothing but traffic.
pub const MAX_PEERS: usize = 3;

/// `[cluster]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: Spanned<String>,
    pub peers: Spanned<Vec<String>>,
    pub nats: Spanned<Vec<String>>,
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    #[serde(default)]
    pub durability: Option<Spanned<String>>,
    #[serde(default)]
    pub failover_after: Option<Spanned<String>>,
    #[serde(default)]
    pub stream: Option<Spanned<String>>,
    #[serde(default)]
    pub bucket: Option<Spanned<String>>,
    #[serde(default)]
    pub replicas: Option<Spanned<i64>>,
    #[serde(default)]
    pub retention: Option<Spanned<String>>,
}

/// How the clients are divided among the servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMode {
    /// Every live server owns a share of the clients and of each pool.
    LoadBalancing,
    /// The first peer owns everything; the others follow and wait.
    HotStandby,
}

/// When an ACK may leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterDurability {
    /// As `[journal] mode` says (local disk); records reach the stream
    /// afterwards.
    Durable,
    /// Only after the stream stored the record on a quorum of NATS nodes.
    Replicated,
}

/// `[cluster]`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    pub peers: Vec<String>,
    /// This server's place in `peers` (its home share in load-balancing).
    pub index: usize,
    pub nats: Vec<String>,
    pub mode: ClusterMode,
    pub durability: ClusterDurability,
    pub failover_after: Duration,
    pub stream: String,
    pub bucket: String,
    pub replicas: usize,
    /// How long the stream keeps a batch of records: longer than any
    /// lease or decline hold lasts (see cluster/fence.rs).
    pub retention: Duration,
}

impl Cluster {
    /// Shares the clients and pools are split into.
    pub fn shares(&self) -> u8 {
        match self.mode {
            ClusterMode::LoadBalancing => self.peers.len() as u8,
            ClusterMode::HotStandby => 1,
        }
    }

    /// The peer (index into `peers`) whose share `share` is when everyone
    /// is up.
    pub fn home_of(&self, share: u8) -> usize {
        home_of(
            share,
            self.peers.len(),
            self.mode == ClusterMode::HotStandby,
        )
    }
}

/// The peer whose share `share` is among `peers` when everyone is up:
/// share k is peer k's in load-balancing; hot-standby's one share is the
/// first peer's.
pub fn home_of(share: u8, peers: usize, hot_standby: bool) -> usize {
    if hot_standby {
        0
    } else {
        share as usize % peers.max(1)
    }
}

pub const DEFAULT_STREAM: &str = "XDHCPD";
pub const DEFAULT_BUCKET: &str = "xdhcpd";
/// Longer than twice a JetStream stream's leader election (4-9 s in
/// nats-server 2.9): a server cuts itself off after `failover_after / 2`
/// without a stored heartbeat, and losing the NATS node that leads the KV
/// bucket stops every heartbeat until the others elect a new leader.
pub const DEFAULT_FAILOVER_AFTER: Duration = Duration::from_secs(20);
/// What the default `retention` adds to the longest lease: room for the
/// clocks of the servers and of NATS to disagree, and for a record that
/// reached the stream late.
pub const RETENTION_MARGIN: Duration = Duration::from_secs(3600);

/// `"3s"`, `"1500ms"`, `"4h"`, `"90m"`.
fn duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = n.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

/// A name of a peer, stream or bucket: it becomes part of NATS subjects
/// and KV keys, where `.`, `*`, `>` and spaces mean something.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `nats://host:port` (or `tls://`), or a bare `host:port`.
fn is_nats_url(u: &str) -> bool {
    let rest = u
        .strip_prefix("nats://")
        .or_else(|| u.strip_prefix("tls://"))
        .unwrap_or(u);
    let Some((host, port)) = rest.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// The settings of `[cluster]`, or the span and reason of what is wrong.
/// `longest` is the longest time a record keeps an address (the longest
/// `max_lease_time` of any subnet, or the decline hold), in seconds;
/// `u32::MAX` for infinite leases.
pub(super) fn check(
    c: &Spanned<ClusterConfig>,
    longest: u32,
) -> Result<Cluster, (Range<usize>, String)> {
    let f = c.get_ref();
    let peers = f.peers.get_ref();
    if !(2..=MAX_PEERS).contains(&peers.len()) {
        return Err((
            f.peers.span(),
            format!(
                "peers has {} names: a cluster is 2 to {MAX_PEERS} servers",
                peers.len()
            ),
        ));
    }
    for (i, p) in peers.iter().enumerate() {
        if !is_token(p) {
            return Err((
                f.peers.span(),
                format!("peer {p:?} is not a name (letters, digits, '-', '_'; at most 64)"),
            ));
        }
        if peers[..i].contains(p) {
            return Err((f.peers.span(), format!("peer {p:?} is named twice")));
        }
    }
    let name = f.name.get_ref();
    let Some(index) = peers.iter().position(|p| p == name) else {
        return Err((
            f.name.span(),
            format!("name {name:?} is not one of the peers {peers:?}"),
        ));
    };
    let nats = f.nats.get_ref();
    if nats.is_empty() {
        return Err((f.nats.span(), "nats lists no server".into()));
    }
    if let Some(bad) = nats.iter().find(|u| !is_nats_url(u)) {
        return Err((
            f.nats.span(),
            format!("nats server {bad:?} is not nats://host:port"),
        ));
    }
    let mode = match f.mode.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
        None | Some(("load-balancing", _)) => ClusterMode::LoadBalancing,
        Some(("hot-standby", _)) => ClusterMode::HotStandby,
        Some((m, sp)) => {
            return Err((
                sp,
                format!("mode {m:?}: \"load-balancing\" or \"hot-standby\""),
            ));
        }
    };
    let durability = match f
        .durability
        .as_ref()
        .map(|m| (m.get_ref().as_str(), m.span()))
    {
        None | Some(("durable", _)) => ClusterDurability::Durable,
        Some(("replicated", _)) => ClusterDurability::Replicated,
        Some((m, sp)) => {
            return Err((
                sp,
                format!("durability {m:?}: \"durable\" or \"replicated\""),
            ));
        }
    };
    let failover_after = match &f.failover_after {
        None => DEFAULT_FAILOVER_AFTER,
        Some(s) => match duration(s.get_ref()) {
            Some(d) if (Duration::from_secs(1)..=Duration::from_secs(60)).contains(&d) => d,
            Some(_) => {
                return Err((
                    s.span(),
                    format!(
                        "failover_after {:?} is outside 1s..60s: shorter mistakes a busy moment for a death, longer leaves clients without a server",
                        s.get_ref()
                    ),
                ));
            }
            None => {
                return Err((
                    s.span(),
                    format!(
                        "failover_after {:?} is not a duration such as \"3s\" or \"2500ms\"",
                        s.get_ref()
                    ),
                ));
            }
        },
    };
    let token = |v: &Option<Spanned<String>>, default: &str, what: &str| match v {
        None => Ok(default.to_string()),
        Some(s) if is_token(s.get_ref()) => Ok(s.get_ref().clone()),
        Some(s) => Err((
            s.span(),
            format!(
                "{what} {:?} is not a name (letters, digits, '-', '_')",
                s.get_ref()
            ),
        )),
    };
    let stream = token(&f.stream, DEFAULT_STREAM, "stream")?;
    let bucket = token(&f.bucket, DEFAULT_BUCKET, "bucket")?;
    let replicas = match &f.replicas {
        None => 3,
        Some(r) if (1..=5).contains(r.get_ref()) => *r.get_ref() as usize,
        Some(r) => {
            return Err((
                r.span(),
                format!("replicas {} is outside 1..=5", r.get_ref()),
            ));
        }
    };
    // The stream forgets a batch after `retention`: every lease in it must
    // be over by then, or a server catching up would not learn it.
    if longest == u32::MAX {
        return Err((
            c.span(),
            "a subnet gives infinite leases (max_lease_time = 4294967295): the stream keeps records for `retention` only, so a cluster needs leases that end".into(),
        ));
    }
    let longest = Duration::from_secs(u64::from(longest));
    let retention = match &f.retention {
        None => longest + RETENTION_MARGIN,
        Some(s) => match duration(s.get_ref()) {
            Some(d) if d > longest => d,
            Some(_) => {
                return Err((
                    s.span(),
                    format!(
                        "retention {:?} is not longer than the longest lease or decline hold ({}s): the stream would forget leases that are still held",
                        s.get_ref(),
                        longest.as_secs()
                    ),
                ));
            }
            None => {
                return Err((
                    s.span(),
                    format!(
                        "retention {:?} is not a duration such as \"4h\" or \"300m\"",
                        s.get_ref()
                    ),
                ));
            }
        },
    };
    Ok(Cluster {
        name: name.clone(),
        peers: peers.clone(),
        index,
        nats: nats.clone(),
        mode,
        durability,
        failover_after,
        stream,
        bucket,
        replicas,
        retention,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_and_milliseconds() {
        assert_eq!(duration("3s"), Some(Duration::from_secs(3)));
        assert_eq!(duration("2500ms"), Some(Duration::from_millis(2500)));
        assert_eq!(duration("90m"), Some(Duration::from_secs(5400)));
        assert_eq!(duration("4h"), Some(Duration::from_secs(14400)));
        assert_eq!(duration("3"), None);
        assert_eq!(duration("s"), None);
        assert_eq!(duration("3d"), None);
        assert_eq!(duration("-3s"), None);
    }

    #[test]
    fn nats_urls() {
        assert!(is_nats_url("nats://10.99.0.11:4222"));
        assert!(is_nats_url("nats1.example.net:4222"));
        assert!(!is_nats_url("nats://10.99.0.11"));
        assert!(!is_nats_url("http://x:80/"));
        assert!(!is_nats_url("nats://:4222"));
    }
}
