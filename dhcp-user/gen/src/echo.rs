//! The AF_XDP echo: the ceiling `cargo xtask bench` holds xdhcpd against.
//!
//! [`Echo`] is a [`FrameHandler`] that answers every DHCP request with the
//! request itself, addresses swapped, and decides nothing: Ethernet
//! destination ← source (source ← our MAC), IPv4 destination ← source
//! (broadcast when the source is 0.0.0.0; source ← the old destination, or
//! our address when that was a broadcast), UDP ports swapped (68→67
//! becomes 67→68), BOOTREQUEST → BOOTREPLY, both checksums recomputed.
//! It parses as much as the server's own parser checks of the headers, so
//! a malformed frame is counted and dropped, never echoed and never a
//! panic, and nothing is allocated.
//!
//! [`serve`] runs it (`xdhcpecho --config FILE`) through the very path
//! the daemon takes, from the daemon's library: the same XDP steering
//! program attached the same way, the same `xsk::spawn_workers` with the
//! config's batch, ring and UMEM sizes, poll mode and cores. Only the engine is missing, so the
//! generator's rate against it (`xdhcpgen --scenario echo`) is what the
//! rings, the copies across the veth pair and the generator allow: one
//! round trip per request. A DORA is two such round trips.
use anyhow::Context;
use serde_json::json;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xdhcp::config::{AttachMode, BindMode, Checked, IoKind};
use xdhcp::handler::FrameHandler;
use xdhcp::io::iface::Interface;
use xdhcp::io::xdp::Steering;
use xdhcp::io::{Stop, StopFlag, WorkerOptions, WorkerSlot, packet, xsk};
use xdhcp::stats::{WorkerSnapshot, WorkerStats, bump};
use xdhcp::wire::checksum;
use xdhcp::wire::dhcp::{BOOTREPLY, BOOTREQUEST, field};
use xdhcp::wire::ipv4::MIN_HEADER_LEN;
use xdhcp::wire::{DhcpFrame, udp};

/// Why a frame got no echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoEcho {
    /// It failed the wire checks (the server's parser says so).
    Malformed,
    /// A well-formed BOOTREPLY: echoing it would loop.
    NotRequest,
    /// Longer than the TX buffer (never with a 2 KiB buffer and a request
    /// that fit an RX frame of the same size).
    TooLong,
}

/// Writes the echo of `rx` into `tx` and returns its length; see the
/// module's text for what is swapped. `mac` and `ip` stand in for a
/// broadcast destination when it would become the source.
pub fn echo_frame(rx: &[u8], tx: &mut [u8], mac: [u8; 6], ip: Ipv4Addr) -> Result<usize, NoEcho> {
    let f = DhcpFrame::parse(rx).map_err(|_| NoEcho::Malformed)?;
    if f.dhcp.op() != BOOTREQUEST {
        return Err(NoEcho::NotRequest);
    }
    let l2 = f.eth.header_len();
    let ihl = f.ip.header_len();
    let l4 = l2 + ihl;
    let udp_len = f.udp.len();
    // The datagram, without any Ethernet padding after it.
    let len = l2 + f.ip.total_len();
    let (eth_src, eth_dst) = (f.eth.src(), f.eth.dst());
    let (ip_src, ip_dst) = (f.ip.src(), f.ip.dst());
    let (sport, dport) = (f.udp.src_port(), f.udp.dst_port());
    // The parser checked these lengths against `rx`; `tx` may be shorter.
    let out = tx.get_mut(..len).ok_or(NoEcho::TooLong)?;
    let src = rx.get(..len).ok_or(NoEcho::Malformed)?;
    out.copy_from_slice(src);
    if ihl < MIN_HEADER_LEN || l4 + udp_len > len || udp_len < udp::HEADER_LEN + field::COOKIE {
        return Err(NoEcho::Malformed);
    }

    // Ethernet: back to the sender, never from a group address.
    let new_eth_src = if eth_dst[0] & 1 == 1 { mac } else { eth_dst };
    out[0..6].copy_from_slice(&eth_src);
    out[6..12].copy_from_slice(&new_eth_src);

    // IPv4: back to the sender, or broadcast to a client without one.
    let new_dst = if ip_src.is_unspecified() {
        Ipv4Addr::BROADCAST
    } else {
        ip_src
    };
    let new_src = if ip_dst.is_broadcast() || ip_dst.is_unspecified() || ip_dst.is_multicast() {
        ip
    } else {
        ip_dst
    };
    let iph = &mut out[l2..l4];
    iph[12..16].copy_from_slice(&new_src.octets());
    iph[16..20].copy_from_slice(&new_dst.octets());
    iph[10..12].fill(0);
    let sum = checksum::Sum::ZERO.add_bytes(iph).checksum();
    iph[10..12].copy_from_slice(&sum.to_be_bytes());

    // UDP and BOOTP: ports swapped, a reply, the checksum over the result.
    let seg = &mut out[l4..l4 + udp_len];
    seg[0..2].copy_from_slice(&dport.to_be_bytes());
    seg[2..4].copy_from_slice(&sport.to_be_bytes());
    seg[udp::HEADER_LEN + field::OP] = BOOTREPLY;
    seg[6..8].fill(0);
    let sum = checksum::udp_checksum(new_src, new_dst, seg);
    seg[6..8].copy_from_slice(&sum.to_be_bytes());
    Ok(len)
}

/// One worker's echo.
pub struct Echo {
    mac: [u8; 6],
    ip: Ipv4Addr,
    stats: Arc<WorkerStats>,
}

impl Echo {
    /// An echo answering from `mac` and `ip` where the request was
    /// broadcast; counts into `stats` (`discover` for each frame echoed,
    /// `malformed` and `ignored` for the dropped).
    pub fn new(mac: [u8; 6], ip: Ipv4Addr, stats: Arc<WorkerStats>) -> Echo {
        Echo { mac, ip, stats }
    }
}

impl FrameHandler for Echo {
    #[inline]
    fn begin_batch(&mut self, _now: Instant) {}

    #[inline]
    fn handle(&mut self, rx: &[u8], tx: &mut [u8]) -> Option<usize> {
        match echo_frame(rx, tx, self.mac, self.ip) {
            Ok(n) => {
                bump(&self.stats.discover);
                Some(n)
            }
            Err(NoEcho::NotRequest) => {
                bump(&self.stats.ignored);
                None
            }
            Err(NoEcho::Malformed | NoEcho::TooLong) => {
                bump(&self.stats.malformed);
                None
            }
        }
    }
}

/// `xdhcpecho`: attaches the daemon's XDP program and runs the
/// daemon's workers with [`Echo`] in place of the engine until SIGINT or
/// SIGTERM. Leases, pools and the journal of the config are not used;
/// `interface`, `io`, `xdp_mode`, `bind`, `poll`, `queues`, `cores`,
/// `batch`, `frames` and `ring_size` are, exactly as the daemon uses them.
/// Writes a stats file in the daemon's shape (`"mode": "echo"`).
pub fn serve(
    checked: &Checked,
    stats_file: Option<&Path>,
    interval: Duration,
) -> anyhow::Result<()> {
    let cfg = &checked.file;
    let iface = Interface::lookup(&cfg.interface)?;
    let mut server_ids: Vec<Ipv4Addr> = checked.subnets.iter().map(|s| s.server_id).collect();
    server_ids.sort();
    server_ids.dedup();
    let own_ip = server_ids
        .first()
        .copied()
        .or_else(|| iface.ipv4.first().map(|(a, _)| *a))
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    let queues = cfg.queues.unwrap_or(iface.rx_queues).max(1);
    let stop: StopFlag = Stop::on_signals()?;
    let opts = WorkerOptions::from_config(cfg);
    let workers: Vec<(u32, Arc<WorkerStats>)> = (0..queues)
        .map(|q| (q, Arc::new(WorkerStats::default())))
        .collect();
    let slots: Vec<_> = workers
        .iter()
        .map(|(q, stats)| WorkerSlot {
            queue: *q,
            handler: Echo::new(iface.mac, own_ip, stats.clone()),
            stats: stats.clone(),
            latency: None,
        })
        .collect();
    let mut steering = None;
    let mut bind = None;
    let handles = match cfg.io {
        IoKind::Xdp => {
            let mut s = Steering::attach(&iface.name, cfg.xdp_mode, &server_ids)
                .with_context(|| format!("cannot attach XDP to {}", iface.name))?;
            let xo = xsk::XskOptions {
                bind: cfg.bind,
                frames: cfg.frames,
                ring_size: cfg.ring_size,
            };
            let (mode, handles) =
                xsk::spawn_workers(&iface, &mut s, &xo, &opts, slots, stop.clone())?;
            bind = Some(match mode {
                BindMode::Zerocopy => "zerocopy",
                _ => "copy",
            });
            steering = Some(s);
            handles
        }
        IoKind::Packet => packet::spawn_workers(&iface, &opts, slots, stop.clone())?,
    };
    tracing::info!(interface = %iface.name, queues, io = ?cfg.io, ?bind, "xdhcpecho ready");
    let started = Instant::now();
    let write = |steering: Option<&Steering>| -> anyhow::Result<()> {
        let Some(path) = stats_file else {
            return Ok(());
        };
        let mut total = WorkerSnapshot::default();
        let per_worker: Vec<_> = workers
            .iter()
            .map(|(q, w)| {
                let s = w.snapshot();
                total += s;
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["queue"] = json!(q);
                v
            })
            .collect();
        let xdp = match steering {
            Some(s) => Some(s.counters()?),
            None => None,
        };
        let doc = json!({
            "uptime_s": started.elapsed().as_secs_f64(),
            "mode": "echo",
            "io": match cfg.io { IoKind::Xdp => "xdp", IoKind::Packet => "packet" },
            "xdp_mode": steering.map(|s| match s.mode() {
                AttachMode::Generic => "generic",
                _ => "driver",
            }),
            "bind": bind,
            "xdp": xdp,
            "journal": null,
            "workers": per_worker,
            "total": total,
        });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    };
    let interval = interval.max(Duration::from_millis(10));
    let mut next = Instant::now();
    while !stop.is_set() {
        if Instant::now() >= next {
            write(steering.as_ref())?;
            next += interval;
        }
        std::thread::sleep(Duration::from_millis(10).min(interval));
    }
    stop.wake_all();
    for h in handles {
        let _ = h.join();
    }
    write(steering.as_ref())?;
    if let Some(s) = steering {
        s.detach()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::request::{self, Identity, Request};
    use xdhcp::wire::options::code;
    use xdhcp::wire::{MessageType, VlanTags};

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    fn identity(vlans: VlanTags) -> Identity {
        Identity {
            mac_prefix: [2, 0x67, 0x65],
            iface_mac: [2, 0, 0, 0, 0, 9],
            vlans,
            broadcast: false,
            client_id: true,
            option82: false,
            server: None,
            agent: Default::default(),
            src_mac: None,
        }
    }

    /// A DISCOVER exactly as xdhcpgen sends it (client 7, epoch 3).
    fn discover(vlans: VlanTags) -> Vec<u8> {
        let mut buf = vec![0u8; 2048];
        let c = Client {
            epoch: 3,
            ..Client::default()
        };
        let n = request::build(
            &mut buf,
            &identity(vlans),
            7,
            &c,
            Request::Discover,
            None,
            0,
        )
        .unwrap();
        buf.truncate(n);
        buf
    }

    fn udp_checksum_verifies(f: &DhcpFrame) -> bool {
        f.udp.checksum() != 0 && f.udp.checksum_ok(f.ip.src(), f.ip.dst())
    }

    #[test]
    fn a_discover_comes_back_swapped() {
        for vlans in [VlanTags::NONE, VlanTags::double(100, 200)] {
            let rx = discover(vlans);
            let mut tx = [0u8; 2048];
            let n = echo_frame(&rx, &mut tx, MAC, IP).unwrap();
            assert_eq!(n, rx.len());
            let q = DhcpFrame::parse(&rx).unwrap();
            let r = DhcpFrame::parse(&tx[..n]).unwrap();
            let client = [2, 0x67, 0x65, 0, 0, 7];
            assert_eq!((r.eth.dst(), r.eth.src()), (client, MAC));
            assert_eq!(r.eth.vlans(), vlans);
            // From 0.0.0.0 to broadcast: back to broadcast, from us.
            assert_eq!((r.ip.src(), r.ip.dst()), (IP, Ipv4Addr::BROADCAST));
            assert!(r.ip.checksum_ok());
            assert_eq!((r.udp.src_port(), r.udp.dst_port()), (67, 68));
            assert!(udp_checksum_verifies(&r));
            assert_eq!(r.dhcp.op(), BOOTREPLY);
            assert_eq!(r.dhcp.xid(), q.dhcp.xid());
            assert_eq!(r.dhcp.xid(), 0x0300_0007);
            assert_eq!(r.dhcp.chaddr_mac(), client);
            // The rest of the message is the request's, byte for byte.
            assert_eq!(r.dhcp.options(), q.dhcp.options());
            let mut j = None;
            let o = r.options(&mut j).unwrap();
            assert_eq!(o.msg_type(), Some(MessageType::Discover));
            assert!(o.requests(code::LEASE_TIME));
            // What the generator reads of it.
            match crate::reply::parse(&tx[..n], 5) {
                crate::reply::Parsed::Reply(rep) => {
                    assert_eq!(
                        (rep.xid, rep.chaddr, rep.src_mac),
                        (0x0300_0007, client, MAC)
                    );
                }
                other => panic!("the generator does not take the echo: {other:?}"),
            }
        }
    }

    #[test]
    fn a_unicast_request_goes_back_to_its_sender() {
        let id = identity(VlanTags::NONE);
        let c = Client {
            epoch: 1,
            held: Ipv4Addr::new(198, 18, 0, 50),
            server_id: Ipv4Addr::new(198, 18, 0, 1),
            server_mac: [2, 0, 0, 0, 0, 0x33],
            ..Client::default()
        };
        let mut rx = [0u8; 2048];
        let n = request::build(&mut rx, &id, 1, &c, Request::Renew, None, 0).unwrap();
        let mut tx = [0u8; 2048];
        let m = echo_frame(&rx[..n], &mut tx, MAC, IP).unwrap();
        let r = DhcpFrame::parse(&tx[..m]).unwrap();
        // A unicast destination is swapped as it is, MAC and address.
        assert_eq!(r.eth.src(), [2, 0, 0, 0, 0, 0x33]);
        assert_eq!(r.eth.dst(), [2, 0x67, 0x65, 0, 0, 1]);
        assert_eq!(
            (r.ip.src(), r.ip.dst()),
            (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 50))
        );
        assert!(r.ip.checksum_ok() && udp_checksum_verifies(&r));
    }

    #[test]
    fn padding_after_the_datagram_is_not_echoed() {
        let mut rx = discover(VlanTags::NONE);
        let len = rx.len();
        rx.extend_from_slice(&[0xaa; 40]);
        let mut tx = [0u8; 2048];
        assert_eq!(echo_frame(&rx, &mut tx, MAC, IP), Ok(len));
    }

    #[test]
    fn replies_and_malformed_frames_are_dropped() {
        let rx = discover(VlanTags::NONE);
        let mut tx = [0u8; 2048];
        let n = echo_frame(&rx, &mut tx, MAC, IP).unwrap();
        // An echo is a BOOTREPLY: echoing it again would loop.
        let echoed = tx[..n].to_vec();
        assert_eq!(
            echo_frame(&echoed, &mut tx, MAC, IP),
            Err(NoEcho::NotRequest)
        );
        for cut in 0..rx.len() {
            assert_eq!(
                echo_frame(&rx[..cut], &mut tx, MAC, IP),
                Err(NoEcho::Malformed),
                "prefix {cut}"
            );
        }
        let mut bad = rx.clone();
        bad[14 + 8] ^= 1; // TTL: the IPv4 checksum no longer verifies
        assert_eq!(echo_frame(&bad, &mut tx, MAC, IP), Err(NoEcho::Malformed));
        let mut short = [0u8; 100];
        assert_eq!(echo_frame(&rx, &mut short, MAC, IP), Err(NoEcho::TooLong));
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let base = discover(VlanTags::single(7));
        let mut tx = [0u8; 2048];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut echoed, mut dropped) = (0, 0);
        for round in 0..20_000 {
            let mut f = base.clone();
            if round % 5 == 0 {
                let len = (next() % 700) as usize;
                f = (0..len).map(|_| next() as u8).collect();
            } else {
                for _ in 0..1 + next() % 3 {
                    let at = (next() % f.len() as u64) as usize;
                    f[at] = next() as u8;
                }
            }
            match echo_frame(&f, &mut tx, MAC, IP) {
                Ok(n) => {
                    echoed += 1;
                    let r = DhcpFrame::parse(&tx[..n]).expect("an echo parses");
                    assert_eq!(r.dhcp.op(), BOOTREPLY);
                }
                Err(_) => dropped += 1,
            }
        }
        assert!(echoed > 1000 && dropped > 1000, "{echoed} {dropped}");
    }

    #[test]
    fn the_handler_counts_what_it_drops() {
        let stats = Arc::new(WorkerStats::default());
        let mut h = Echo::new(MAC, IP, stats.clone());
        let rx = discover(VlanTags::NONE);
        let mut tx = [0u8; 2048];
        h.begin_batch(Instant::now());
        assert!(h.handle(&rx, &mut tx).is_some());
        assert!(h.handle(&rx[..20], &mut tx).is_none());
        let n = echo_frame(&rx, &mut tx, MAC, IP).unwrap();
        let reply = tx[..n].to_vec();
        assert!(h.handle(&reply, &mut tx).is_none());
        let s = stats.snapshot();
        assert_eq!((s.discover, s.malformed, s.ignored), (1, 1, 1));
        assert_eq!(h.hold_for(), 0);
    }
}
