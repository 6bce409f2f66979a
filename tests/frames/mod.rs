//! Request frames built with dhcproto (an encoder independent of ours),
//! wrapped in Ethernet/IPv4/UDP by hand, for tests that feed the engine.
#![allow(dead_code)]
use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use std::net::Ipv4Addr;

pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

/// Where the requested address (option 50's value) sits in a request
/// frame made by [`frame`], so that a loop can patch it in place.
pub fn option50_value(f: &[u8]) -> usize {
    let mut i = 14 + 20 + 8 + 240;
    while f[i] != 50 {
        i += 2 + f[i + 1] as usize;
    }
    i + 2
}

/// The in-process benches' server: the subnet of `cargo xtask bench`
/// (routers, DNS, a domain: the options a real reply carries).
pub const LAB_SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const LAB_CONFIG: &str = r#"
interface = "bench0"
server_id = "198.18.0.1"
[[subnet]]
prefix = "198.18.0.0/15"
pools = ["198.18.0.10-198.19.255.254"]
routers = ["198.18.0.1"]
dns = ["198.18.0.1", "198.18.0.2"]
domain_name = "isp.example"
lease_time = 7200
"#;
/// yiaddr in a reply frame: Ethernet 14 + IPv4 20 + UDP 8 + 16.
pub const YIADDR: usize = 14 + 20 + 8 + 16;
/// Frames per `begin_batch`, as a worker's RX batch.
pub const BATCH: usize = 64;

/// What a worker does before a batch's first frame: the clock, then the
/// lease table's lines fetched ahead for every frame of the batch (part
/// of each packet's cost, so the benches count it).
pub fn start_batch<'a>(h: &mut xdhcp::engine::Handler, frames: impl IntoIterator<Item = &'a [u8]>) {
    use xdhcp::handler::FrameHandler;
    h.begin_batch(std::time::Instant::now());
    for f in frames {
        h.prefetch(std::hint::black_box(f));
    }
    h.prefetched();
}

pub fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0xaa, b[0], b[1], b[2], b[3]]
}

/// A DHCP request from `chaddr` of the given type with extra options.
pub fn request(chaddr: [u8; 6], kind: MessageType, xid: u32, opts: Vec<DhcpOption>) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_xid(xid)
        .set_flags(Flags::default())
        .set_chaddr(&chaddr);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    for o in opts {
        m.opts_mut().insert(o);
    }
    m.opts_mut().insert(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
    ]));
    m
}

/// Wraps an encoded BOOTP message in Ethernet (optionally VLAN-tagged),
/// IPv4 and UDP, from `src_ip`:68 (or 67 for relays) to `dst_ip`:67.
pub fn frame(
    msg: &Message,
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    vlan: Option<u16>,
) -> Vec<u8> {
    let mut bootp = Vec::new();
    msg.encode(&mut Encoder::new(&mut bootp)).unwrap();
    let sport: u16 = if msg.giaddr().is_unspecified() {
        68
    } else {
        67
    };
    let mut f = Vec::with_capacity(64 + bootp.len());
    let dst_mac = if dst_ip == Ipv4Addr::BROADCAST {
        [0xff; 6]
    } else {
        SERVER_MAC
    };
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    if let Some(v) = vlan {
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 8 + bootp.len()) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src_ip.octets());
    ip[16..20].copy_from_slice(&dst_ip.octets());
    let ck = checksum(&ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&67u16.to_be_bytes());
    f.extend_from_slice(&(8 + bootp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&bootp);
    f
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The parts of a reply frame a test looks at, decoded with dhcproto.
pub struct Seen {
    pub dst_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub dst_port: u16,
    pub ttl: u8,
    pub msg: Message,
}

pub fn decode_reply(f: &[u8]) -> Seen {
    let mut dst_mac = [0u8; 6];
    dst_mac.copy_from_slice(&f[..6]);
    let (vlan, at) = if u16::from_be_bytes([f[12], f[13]]) == 0x8100 {
        (Some(u16::from_be_bytes([f[14], f[15]]) & 0x0fff), 18)
    } else {
        (None, 14)
    };
    let ip = &f[at..];
    assert_eq!(checksum(&ip[..20]), 0, "IPv4 header checksum");
    let src_ip = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let udp = &ip[20..];
    let ulen = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    // UDP checksum over the pseudo-header must verify to zero.
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&ip[12..20]);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(ulen as u16).to_be_bytes());
    pseudo.extend_from_slice(&udp[..ulen]);
    assert_eq!(checksum(&pseudo), 0, "UDP checksum");
    let msg =
        Message::decode(&mut Decoder::new(&udp[8..ulen])).expect("dhcproto decodes the reply");
    Seen {
        dst_mac,
        vlan,
        src_ip,
        dst_ip,
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        ttl: ip[8],
        msg,
    }
}

pub fn msg_type(m: &Message) -> Option<MessageType> {
    match m.opts().get(OptionCode::MessageType) {
        Some(DhcpOption::MessageType(t)) => Some(*t),
        _ => None,
    }
}

/// An engine with one worker handle, fed frames directly.
pub struct Harness {
    pub h: xdhcp::engine::Handler,
    pub stats: std::sync::Arc<xdhcp::stats::WorkerStats>,
    pub engine: std::sync::Arc<xdhcp::engine::Engine>,
    pub tx: Vec<u8>,
}

impl Harness {
    /// An engine built without an interface: the subnets holding a server
    /// identifier serve direct clients (`Engine::new`).
    pub fn new(config: &str) -> Harness {
        let cfg = xdhcp::config::Config::parse(config).unwrap_or_else(|e| panic!("config: {e}"));
        Harness::with(xdhcp::engine::Engine::new(&cfg))
    }

    /// An engine serving an interface with these addresses (address,
    /// prefix length), as the daemon builds it.
    pub fn on_interface(config: &str, addrs: &[(Ipv4Addr, u8)]) -> Harness {
        let cfg = xdhcp::config::Config::parse(config).unwrap_or_else(|e| panic!("config: {e}"));
        Harness::with(xdhcp::engine::Engine::on_interface(&cfg, 1, addrs))
    }

    fn with(engine: xdhcp::engine::Engine) -> Harness {
        use xdhcp::handler::FrameHandler;
        let engine = std::sync::Arc::new(engine);
        let stats = std::sync::Arc::new(xdhcp::stats::WorkerStats::default());
        let mut h = engine.handler(SERVER_MAC, stats.clone());
        h.begin_batch(std::time::Instant::now());
        Harness {
            h,
            stats,
            engine,
            tx: vec![0; xdhcp::handler::TX_FRAME_CAPACITY],
        }
    }

    /// Hands one frame to the engine; the decoded reply, if any.
    pub fn send(&mut self, f: &[u8]) -> Option<Seen> {
        use xdhcp::handler::FrameHandler;
        let n = self.h.handle(f, &mut self.tx)?;
        Some(decode_reply(&self.tx[..n]))
    }

    /// The raw reply bytes of the last `send` that answered.
    pub fn raw_options(&self) -> &[u8] {
        let at = if u16::from_be_bytes([self.tx[12], self.tx[13]]) == 0x8100 {
            18
        } else {
            14
        };
        &self.tx[at + 28 + 240..]
    }
}

/// Codes of the options in a raw option area, in wire order, up to End.
pub fn option_codes(opts: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < opts.len() && opts[i] != 255 {
        if opts[i] == 0 {
            i += 1;
            continue;
        }
        out.push(opts[i]);
        i += 2 + opts[i + 1] as usize;
    }
    out
}

/// Appends raw option bytes before End and fixes the IP/UDP lengths.
pub fn with_raw_option(mut f: Vec<u8>, code: u8, data: &[u8]) -> Vec<u8> {
    let at = if u16::from_be_bytes([f[12], f[13]]) == 0x8100 {
        18
    } else {
        14
    };
    let end = f.len() - 1;
    assert_eq!(f[end], 255);
    f.truncate(end);
    f.push(code);
    f.push(data.len() as u8);
    f.extend_from_slice(data);
    f.push(255);
    let ip_len = (f.len() - at) as u16;
    f[at + 2..at + 4].copy_from_slice(&ip_len.to_be_bytes());
    f[at + 10..at + 12].copy_from_slice(&[0, 0]);
    let ck = checksum(&f[at..at + 20]);
    f[at + 10..at + 12].copy_from_slice(&ck.to_be_bytes());
    let udp_len = (f.len() - at - 20) as u16;
    f[at + 24..at + 26].copy_from_slice(&udp_len.to_be_bytes());
    f
}

/// The benches' server address.
pub const BENCH_SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// The benches' config (`benches/engine.rs`, `benches/instructions.rs`):
/// a /16 with a router, DNS servers and a domain.
pub const BENCH_CONFIG: &str = r#"
interface = "bench0"
server_id = "10.0.0.1"
[[subnet]]
prefix = "10.0.0.0/16"
pools = ["10.0.0.10-10.0.255.250"]
routers = ["10.0.0.1"]
dns = ["10.0.0.1", "10.0.0.2"]
domain_name = "isp.example"
"#;

/// Client `mac(0)`'s DISCOVER and REQUEST (server identifier and requested
/// address both `server`), broadcast from 0.0.0.0: the frames a bench
/// patches per client (chaddr, and option 50 at [`option50_value`]).
pub fn dora_templates(server: Ipv4Addr) -> (Vec<u8>, Vec<u8>) {
    let one = |kind, opts| {
        frame(
            &request(mac(0), kind, 1, opts),
            mac(0),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            None,
        )
    };
    (
        one(MessageType::Discover, vec![]),
        one(
            MessageType::Request,
            vec![
                DhcpOption::ServerIdentifier(server),
                DhcpOption::RequestedIpAddress(server),
            ],
        ),
    )
}

/// The reply the benches' engine builds (their config: 10.0.0.0/16,
/// router and DNS 10.0.0.1), through dhcproto's owned types: what
/// dhcproto does for the same work, beside the engine.
pub fn reply_like(req: &Message, kind: MessageType) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootReply)
        .set_xid(req.xid())
        .set_flags(req.flags())
        .set_giaddr(req.giaddr())
        .set_yiaddr(Ipv4Addr::new(10, 0, 0, 10))
        .set_chaddr(req.chaddr());
    let o = m.opts_mut();
    o.insert(DhcpOption::MessageType(kind));
    o.insert(DhcpOption::ServerIdentifier(BENCH_SERVER));
    o.insert(DhcpOption::AddressLeaseTime(7200));
    o.insert(DhcpOption::Renewal(3600));
    o.insert(DhcpOption::Rebinding(6300));
    o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 0, 0)));
    o.insert(DhcpOption::Router(vec![BENCH_SERVER]));
    o.insert(DhcpOption::DomainNameServer(vec![
        BENCH_SERVER,
        Ipv4Addr::new(10, 0, 0, 2),
    ]));
    o.insert(DhcpOption::DomainName("isp.example".into()));
    o.insert(DhcpOption::BroadcastAddr(Ipv4Addr::new(10, 0, 255, 255)));
    m
}
