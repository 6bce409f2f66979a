//! Packet captures in the lab (tcpdump inside a lab namespace), a reader
//! for the pcap files it writes, and the DHCP view of the captured frames.
use crate::lab::Lab;
use crate::process::stop_child;
use anyhow::{Context, Result, bail, ensure};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One captured frame, from the Ethernet header on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Capture time in nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub data: Vec<u8>,
}

/// A tcpdump running inside one of the lab's namespaces.
pub struct Capture {
    child: Option<Child>,
    dir: PathBuf,
    file: PathBuf,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

/// How long tcpdump may take to open the interface.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long tcpdump may take to flush and exit after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Capture {
    /// Starts `tcpdump -i IFACE -w FILE` with a BPF `filter` (empty: every
    /// frame) in the client's or the server's namespace, and returns once
    /// it is listening, so nothing sent afterwards is missed.
    pub fn start(lab: &Lab, in_client_ns: bool, iface: &str, filter: &str) -> Result<Capture> {
        let dir = crate::daemon::temp_dir("capture")?;
        let file = dir.join("capture.pcap");
        let mut cmd = if in_client_ns {
            lab.cli("tcpdump")
        } else {
            lab.srv("tcpdump")
        };
        cmd.args(["-i", iface, "-n", "-s", "0", "-U", "--immediate-mode"])
            // Debian's tcpdump drops root for the `tcpdump` user, which
            // could not write into our root-owned temp dir.
            .args(["-Z", "root"])
            .args(["--time-stamp-precision", "nano"])
            // 64 MiB of kernel buffer: a 20,000-lease perfdhcp run is
            // 80,000 frames in a few seconds.
            .args(["-B", "65536"])
            .arg("-w")
            .arg(&file);
        if !filter.trim().is_empty() {
            cmd.arg(filter);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().context("cannot start tcpdump")?;
        let pipe = child.stderr.take().context("tcpdump stderr")?;

        // The reader keeps draining stderr until tcpdump exits, so tcpdump
        // never blocks on a full pipe, and keeps its text for the report.
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let text = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let listening = line.contains("listening on");
                if let Ok(mut t) = text.lock() {
                    t.push_str(&line);
                    t.push('\n');
                }
                if listening {
                    let _ = tx.send(());
                }
            }
        });
        let mut cap = Capture {
            child: Some(child),
            dir,
            file,
            stderr,
            reader: Some(reader),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(()) => return Ok(cap),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = cap.child.as_mut().and_then(|c| c.wait().ok());
                    bail!(
                        "tcpdump on {iface} exited before listening ({status:?}): {}",
                        cap.stderr_text().trim()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "tcpdump on {iface} was not listening after {START_TIMEOUT:?}: {}",
                    cap.stderr_text().trim()
                );
            }
        }
    }

    /// What tcpdump printed on stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops the capture and returns every frame. A capture that lost
    /// frames (tcpdump reports drops by the kernel) is an error: it is not
    /// a faithful record of the wire.
    pub fn stop(self) -> Result<Vec<Frame>> {
        let (frames, dropped) = self.stop_lossy()?;
        ensure!(
            dropped == 0,
            "the capture is incomplete: the kernel dropped {dropped} frames"
        );
        Ok(frames)
    }

    /// Stops the capture and returns the frames and the number of frames
    /// the kernel dropped before tcpdump could read them.
    pub fn stop_lossy(mut self) -> Result<(Vec<Frame>, u64)> {
        let mut child = self.child.take().context("capture already stopped")?;
        let status = stop_child(&mut child, libc::SIGINT, STOP_TIMEOUT)?;
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let text = self.stderr_text();
        let Some(status) = status else {
            bail!(
                "tcpdump did not stop within {STOP_TIMEOUT:?}: {}",
                text.trim()
            );
        };
        ensure!(
            status.success(),
            "tcpdump failed ({status}): {}",
            text.trim()
        );
        let dropped = dropped_by_kernel(&text);
        let frames = read_pcap(&self.file)?;
        Ok((frames, dropped))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// tcpdump's closing line "N packets dropped by kernel".
fn dropped_by_kernel(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| l.strip_suffix(" packets dropped by kernel"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

const LINKTYPE_ETHERNET: u32 = 1;

/// Reads a classic pcap file (either byte order, micro- or nanosecond
/// timestamps) of Ethernet frames.
pub fn read_pcap(path: &Path) -> Result<Vec<Frame>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_pcap(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// Parses the bytes of a classic pcap file; see [`read_pcap`].
pub fn parse_pcap(bytes: &[u8]) -> Result<Vec<Frame>> {
    ensure!(bytes.len() >= 24, "shorter than a pcap header");
    let magic_le = u32::from_le_bytes(bytes[0..4].try_into()?);
    let (big_endian, nanos) = match magic_le {
        0xa1b2_c3d4 => (false, false),
        0xa1b2_3c4d => (false, true),
        0xd4c3_b2a1 => (true, false),
        0x4d3c_b2a1 => (true, true),
        m => bail!("not a pcap file (magic {m:#010x}); pcapng is not read here"),
    };
    let u32_at = |off: usize| -> u32 {
        let b: [u8; 4] = bytes[off..off + 4].try_into().expect("4 bytes");
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let linktype = u32_at(20) & 0x0fff_ffff;
    ensure!(
        linktype == LINKTYPE_ETHERNET,
        "link type {linktype} is not Ethernet"
    );
    let mut frames = Vec::new();
    let mut off = 24;
    while off < bytes.len() {
        ensure!(off + 16 <= bytes.len(), "record header cut at byte {off}");
        let sec = u64::from(u32_at(off));
        let frac = u64::from(u32_at(off + 4));
        let incl = u32_at(off + 8) as usize;
        off += 16;
        ensure!(off + incl <= bytes.len(), "record data cut at byte {off}");
        let ts_ns = sec * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        frames.push(Frame {
            ts_ns,
            data: bytes[off..off + incl].to_vec(),
        });
        off += incl;
    }
    Ok(frames)
}

/// The DHCP view of a captured frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpSeen {
    pub ts_ns: u64,
    /// The outer VLAN id (the only one for a single tag).
    pub vlan: Option<u16>,
    /// The inner VLAN id of a double-tagged (QinQ) frame.
    pub inner_vlan: Option<u16>,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub op: u8,
    pub xid: u32,
    /// The first six bytes of chaddr (the MAC for Ethernet clients).
    pub chaddr: [u8; 6],
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    /// Option 53, when the magic cookie is there and the option is found.
    pub msg_type: Option<u8>,
    /// The BOOTP payload (bounded by the UDP length when that is sane), for
    /// a full decode in tests.
    pub bootp: Vec<u8>,
}

pub const DHCPDISCOVER: u8 = 1;
pub const DHCPOFFER: u8 = 2;
pub const DHCPREQUEST: u8 = 3;
pub const DHCPDECLINE: u8 = 4;
pub const DHCPACK: u8 = 5;
pub const DHCPNAK: u8 = 6;
pub const DHCPRELEASE: u8 = 7;
pub const DHCPINFORM: u8 = 8;

/// The frames that are IPv4/UDP with port 67 or 68 on either side and at
/// least the fixed BOOTP fields up to chaddr; the others are skipped.
pub fn dhcp_frames(frames: &[Frame]) -> Vec<DhcpSeen> {
    frames.iter().filter_map(parse_dhcp).collect()
}

const BOOTP_FIXED: usize = 236;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Parses one frame; `None` when it is not DHCP (or too broken to say).
pub fn parse_dhcp(f: &Frame) -> Option<DhcpSeen> {
    let d = f.data.as_slice();
    let dst_mac: [u8; 6] = d.get(0..6)?.try_into().ok()?;
    let src_mac: [u8; 6] = d.get(6..12)?.try_into().ok()?;
    let mut off = 12;
    let mut ethertype = be16(d, off)?;
    let mut tags = [None, None];
    for tag in &mut tags {
        if ethertype != 0x8100 && ethertype != 0x88a8 {
            break;
        }
        *tag = Some(be16(d, off + 2)? & 0x0fff);
        off += 4;
        ethertype = be16(d, off)?;
    }
    if ethertype != 0x0800 {
        return None;
    }
    let ip = d.get(off + 2..)?;
    let ver_ihl = *ip.first()?;
    let ihl = usize::from(ver_ihl & 0x0f) * 4;
    if ver_ihl >> 4 != 4 || ihl < 20 || ip.len() < ihl || ip[9] != 17 {
        return None;
    }
    // A later fragment carries no UDP header.
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return None;
    }
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = &ip[ihl..];
    let src_port = be16(udp, 0)?;
    let dst_port = be16(udp, 2)?;
    let is_dhcp_port = |p| p == 67 || p == 68;
    if !is_dhcp_port(src_port) && !is_dhcp_port(dst_port) {
        return None;
    }
    let udp_len = usize::from(be16(udp, 4)?);
    let payload_end = if (8..=udp.len()).contains(&udp_len) {
        udp_len
    } else {
        udp.len()
    };
    let bootp = udp.get(8..payload_end)?;
    let chaddr: [u8; 6] = bootp.get(28..34)?.try_into().ok()?;
    let msg_type = if bootp.get(BOOTP_FIXED..BOOTP_FIXED + 4)? == MAGIC_COOKIE {
        find_option(&bootp[BOOTP_FIXED + 4..], 53).and_then(|v| v.first().copied())
    } else {
        None
    };
    Some(DhcpSeen {
        ts_ns: f.ts_ns,
        vlan: tags[0],
        inner_vlan: tags[1],
        src_mac,
        dst_mac,
        src_ip,
        dst_ip,
        src_port,
        dst_port,
        op: bootp[0],
        xid: u32::from_be_bytes(bootp[4..8].try_into().ok()?),
        chaddr,
        ciaddr: ipv4_at(bootp, 12)?,
        yiaddr: ipv4_at(bootp, 16)?,
        giaddr: ipv4_at(bootp, 24)?,
        msg_type,
        bootp: bootp.to_vec(),
    })
}

/// The value of the first instance of option `code` in an options field.
pub fn find_option(mut opts: &[u8], code: u8) -> Option<&[u8]> {
    loop {
        match *opts.first()? {
            0 => opts = &opts[1..],
            255 => return None,
            c => {
                let len = usize::from(*opts.get(1)?);
                let val = opts.get(2..2 + len)?;
                if c == code {
                    return Some(val);
                }
                opts = &opts[2 + len..];
            }
        }
    }
}

fn be16(d: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes(d.get(off..off + 2)?.try_into().ok()?))
}

fn ipv4_at(d: &[u8], off: usize) -> Option<Ipv4Addr> {
    let b: [u8; 4] = d.get(off..off + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

/// Request→reply latencies in microseconds, sorted ascending, for the
/// exchanges matched by (xid, chaddr): e.g. DISCOVER→OFFER. A retransmitted
/// request restarts its clock (the reply answers the latest copy); a
/// duplicate reply is not counted twice.
pub fn latencies_us(seen: &[DhcpSeen], request: u8, reply: u8) -> Vec<u64> {
    let mut ordered: Vec<&DhcpSeen> = seen.iter().collect();
    ordered.sort_by_key(|s| s.ts_ns);
    let mut pending: HashMap<(u32, [u8; 6]), u64> = HashMap::new();
    let mut out = Vec::new();
    for s in ordered {
        let key = (s.xid, s.chaddr);
        if s.op == 1 && s.msg_type == Some(request) {
            pending.insert(key, s.ts_ns);
        } else if s.op == 2
            && s.msg_type == Some(reply)
            && let Some(t0) = pending.remove(&key)
        {
            out.push(s.ts_ns.saturating_sub(t0) / 1000);
        }
    }
    out.sort_unstable();
    out
}

/// The `p`-th percentile (0–100, nearest rank) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DHCP frame as a client or server would put it on the wire.
    fn dhcp_frame(
        vlans: &[u16],
        op: u8,
        xid: u32,
        mac: [u8; 6],
        yiaddr: [u8; 4],
        t: u8,
    ) -> Vec<u8> {
        let mut bootp = vec![0u8; 240];
        bootp[0] = op;
        bootp[1] = 1;
        bootp[2] = 6;
        bootp[4..8].copy_from_slice(&xid.to_be_bytes());
        bootp[16..20].copy_from_slice(&yiaddr);
        bootp[28..34].copy_from_slice(&mac);
        bootp[236..240].copy_from_slice(&MAGIC_COOKIE);
        bootp.extend_from_slice(&[0, 0, 53, 1, t, 255]);
        let (sport, dport) = if op == 1 { (68u16, 67u16) } else { (67, 68) };
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&mac);
        for (i, v) in vlans.iter().enumerate() {
            f.extend_from_slice(&(if i == 0 { 0x88a8u16 } else { 0x8100 }).to_be_bytes());
            f.extend_from_slice(&v.to_be_bytes());
        }
        if vlans.len() == 1 {
            let n = f.len();
            f[n - 4..n - 2].copy_from_slice(&0x8100u16.to_be_bytes());
        }
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let total = 20 + 8 + bootp.len();
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255,
        ];
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&((8 + bootp.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(&bootp);
        f
    }

    fn pcap_bytes(frames: &[(u32, u32, &[u8])], magic: u32, be: bool) -> Vec<u8> {
        let w = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut out = Vec::new();
        out.extend_from_slice(&w(magic));
        out.extend_from_slice(
            &(if be {
                2u16.to_be_bytes()
            } else {
                2u16.to_le_bytes()
            }),
        );
        out.extend_from_slice(
            &(if be {
                4u16.to_be_bytes()
            } else {
                4u16.to_le_bytes()
            }),
        );
        out.extend_from_slice(&w(0));
        out.extend_from_slice(&w(0));
        out.extend_from_slice(&w(65535));
        out.extend_from_slice(&w(1));
        for (sec, frac, data) in frames {
            out.extend_from_slice(&w(*sec));
            out.extend_from_slice(&w(*frac));
            out.extend_from_slice(&w(data.len() as u32));
            out.extend_from_slice(&w(data.len() as u32));
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn pcap_in_both_byte_orders_and_precisions() {
        let a = [1u8, 2, 3];
        let b = [4u8; 60];
        for (magic, be, nanos) in [
            (0xa1b2_c3d4, false, false),
            (0xa1b2_3c4d, false, true),
            (0xa1b2_c3d4, true, false),
            (0xa1b2_3c4d, true, true),
        ] {
            let bytes = pcap_bytes(&[(10, 5, &a), (11, 7, &b)], magic, be);
            let frames = parse_pcap(&bytes).unwrap();
            let scale = if nanos { 1 } else { 1000 };
            assert_eq!(frames.len(), 2);
            assert_eq!(frames[0].ts_ns, 10_000_000_000 + 5 * scale);
            assert_eq!(frames[0].data, a);
            assert_eq!(frames[1].ts_ns, 11_000_000_000 + 7 * scale);
            assert_eq!(frames[1].data, b);
        }
    }

    #[test]
    fn broken_pcaps_are_errors() {
        let a = [1u8; 10];
        let good = pcap_bytes(&[(1, 1, &a)], 0xa1b2_c3d4, false);
        assert!(parse_pcap(&good[..20]).is_err());
        assert!(parse_pcap(&good[..good.len() - 1]).is_err());
        assert!(parse_pcap(&good[..30]).is_err());
        let mut bad_magic = good.clone();
        bad_magic[0] = 0;
        assert!(parse_pcap(&bad_magic).is_err());
        let mut not_eth = good.clone();
        not_eth[20] = 113;
        assert!(parse_pcap(&not_eth).is_err());
        assert!(parse_pcap(&good[..24]).unwrap().is_empty());
    }

    #[test]
    fn pcap_file_round_trip() {
        let f = dhcp_frame(&[], 1, 7, [2, 0, 0, 0, 0, 1], [0; 4], DHCPDISCOVER);
        let dir = crate::daemon::temp_dir("pcap-test").unwrap();
        let path = dir.join("t.pcap");
        std::fs::write(&path, pcap_bytes(&[(3, 4, &f)], 0xa1b2_c3d4, false)).unwrap();
        let frames = read_pcap(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(dhcp_frames(&frames).len(), 1);
    }

    #[test]
    fn dhcp_fields_and_vlan_tags() {
        let mac = [2, 0, 0, 0, 0, 9];
        for vlans in [&[][..], &[100], &[10, 200]] {
            let f = Frame {
                ts_ns: 5,
                data: dhcp_frame(vlans, 2, 0xdead_beef, mac, [198, 18, 0, 10], DHCPOFFER),
            };
            let s = parse_dhcp(&f).expect("a DHCP frame");
            assert_eq!(s.vlan, vlans.first().copied());
            assert_eq!(s.inner_vlan, vlans.get(1).copied());
            assert_eq!(s.op, 2);
            assert_eq!(s.xid, 0xdead_beef);
            assert_eq!(s.chaddr, mac);
            assert_eq!(s.src_mac, mac);
            assert_eq!(s.dst_mac, [0xff; 6]);
            assert_eq!(s.yiaddr, Ipv4Addr::new(198, 18, 0, 10));
            assert_eq!(s.dst_ip, Ipv4Addr::BROADCAST);
            assert_eq!((s.src_port, s.dst_port), (67, 68));
            assert_eq!(s.msg_type, Some(DHCPOFFER));
            assert_eq!(s.bootp.len(), 246);
        }
    }

    #[test]
    fn non_dhcp_and_truncated_frames_are_skipped() {
        let mac = [2, 0, 0, 0, 0, 9];
        let good = dhcp_frame(&[], 1, 1, mac, [0; 4], DHCPDISCOVER);
        let mut other_port = good.clone();
        other_port[14 + 20 + 2..14 + 20 + 4].copy_from_slice(&53u16.to_be_bytes());
        other_port[14 + 20..14 + 20 + 2].copy_from_slice(&53u16.to_be_bytes());
        let mut tcp = good.clone();
        tcp[14 + 9] = 6;
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        let mut frag = good.clone();
        frag[14 + 7] = 1;
        let mut bad_cookie = good.clone();
        bad_cookie[14 + 28 + 236] = 0;
        for (bad, why) in [
            (other_port, "port"),
            (tcp, "tcp"),
            (arp, "arp"),
            (frag, "fragment"),
        ] {
            assert!(
                parse_dhcp(&Frame {
                    ts_ns: 0,
                    data: bad
                })
                .is_none(),
                "{why}"
            );
        }
        for cut in 0..14 + 28 + 34 {
            assert!(
                parse_dhcp(&Frame {
                    ts_ns: 0,
                    data: good[..cut].to_vec()
                })
                .is_none(),
                "cut at {cut}"
            );
        }
        let s = parse_dhcp(&Frame {
            ts_ns: 0,
            data: bad_cookie,
        })
        .unwrap();
        assert_eq!(s.msg_type, None);
        // Cut inside the options: the fixed fields are still reported.
        let s = parse_dhcp(&Frame {
            ts_ns: 0,
            data: good[..good.len() - 4].to_vec(),
        })
        .unwrap();
        assert_eq!(s.msg_type, None);
        assert_eq!(s.chaddr, mac);
    }

    #[test]
    fn options_walk() {
        let opts = [0, 0, 12, 2, b'h', b'i', 53, 1, 3, 255, 61, 1, 1];
        assert_eq!(find_option(&opts, 53), Some(&[3u8][..]));
        assert_eq!(find_option(&opts, 12), Some(&b"hi"[..]));
        assert_eq!(find_option(&opts, 61), None);
        assert_eq!(find_option(&[12, 9, 1], 12), None);
        assert_eq!(find_option(&[12], 53), None);
    }

    #[test]
    fn latencies_pair_by_xid_and_chaddr() {
        let a = [2, 0, 0, 0, 0, 1];
        let b = [2, 0, 0, 0, 0, 2];
        let mk = |ts_ns: u64, op: u8, xid: u32, chaddr: [u8; 6], t: u8| {
            let f = Frame {
                ts_ns,
                data: dhcp_frame(&[], op, xid, chaddr, [0; 4], t),
            };
            parse_dhcp(&f).unwrap()
        };
        let seen = vec![
            mk(1_000_000, 1, 1, a, DHCPDISCOVER),
            mk(1_100_000, 1, 2, b, DHCPDISCOVER),
            // Retransmission: the clock restarts.
            mk(2_000_000, 1, 1, a, DHCPDISCOVER),
            mk(2_050_000, 2, 1, a, DHCPOFFER),
            // Duplicate reply: not counted again.
            mk(2_060_000, 2, 1, a, DHCPOFFER),
            // Same xid, other client: no match.
            mk(2_070_000, 2, 2, a, DHCPOFFER),
            mk(1_400_000, 2, 2, b, DHCPOFFER),
            mk(3_000_000, 1, 1, a, DHCPREQUEST),
            mk(3_010_000, 2, 1, a, DHCPACK),
        ];
        assert_eq!(latencies_us(&seen, DHCPDISCOVER, DHCPOFFER), vec![50, 300]);
        assert_eq!(latencies_us(&seen, DHCPREQUEST, DHCPACK), vec![10]);
        assert_eq!(latencies_us(&seen, DHCPREQUEST, DHCPNAK), Vec::<u64>::new());
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 99.9), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn kernel_drop_line() {
        let t = "listening on x\n100 packets captured\n100 packets received by filter\n3 packets dropped by kernel\n";
        assert_eq!(dropped_by_kernel(t), 3);
        assert_eq!(dropped_by_kernel(""), 0);
    }
}
