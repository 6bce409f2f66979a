//! SIGHUP reload at the engine level: a new configuration takes effect at
//! the workers' next batch, and no lease, held offer or quarantine is lost,
//! even when subnets are added in front (their indices shift) or a pool
//! changes its ranges.
mod frames;

use arc_swap::ArcSwap;
use dhcproto::v4::{DhcpOption, MessageType, OptionCode};
use frames::{SERVER_MAC, decode_reply, frame, mac, msg_type, request};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;
use xdhcp::config::Config;
use xdhcp::engine::{Engine, Handler};
use xdhcp::handler::{FrameHandler, TX_FRAME_CAPACITY};
use xdhcp::stats::WorkerStats;

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

fn config(extra_subnet: &str, pool: &str, router: &str) -> String {
    format!(
        r#"
interface = "lab0"
server_id = "198.18.0.1"
{extra_subnet}
[[subnet]]
prefix = "198.18.0.0/24"
pools = ["{pool}"]
routers = ["{router}"]
"#
    )
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

struct Worker {
    h: Handler,
    tx: Vec<u8>,
}

impl Worker {
    fn send(&mut self, f: &[u8]) -> Option<frames::Seen> {
        self.h.begin_batch(Instant::now());
        let n = self.h.handle(f, &mut self.tx)?;
        Some(decode_reply(&self.tx[..n]))
    }
    fn discover(&mut self, i: u32) -> Option<Ipv4Addr> {
        let d = request(mac(i), MessageType::Discover, i, vec![]);
        Some(
            self.send(&frame(
                &d,
                mac(i),
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::BROADCAST,
                None,
            ))?
            .msg
            .yiaddr(),
        )
    }
    fn select(&mut self, i: u32, a: Ipv4Addr) -> frames::Seen {
        let r = request(
            mac(i),
            MessageType::Request,
            i,
            vec![
                DhcpOption::ServerIdentifier(SERVER),
                DhcpOption::RequestedIpAddress(a),
            ],
        );
        self.send(&frame(
            &r,
            mac(i),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            None,
        ))
        .unwrap()
    }
}

#[test]
fn reload_keeps_leases_offers_and_pools_and_applies_the_new_config() {
    let first = Config::parse(&config("", "198.18.0.10-198.18.0.12", "198.18.0.1")).unwrap();
    let cell = Arc::new(ArcSwap::new(Arc::new(Engine::new(&first))));
    let mut w = Worker {
        h: Handler::new(cell.clone(), SERVER_MAC, Arc::new(WorkerStats::default())),
        tx: vec![0; TX_FRAME_CAPACITY],
    };
    let a1 = w.discover(1).unwrap();
    w.select(1, a1);
    let a2 = w.discover(2).unwrap(); // held, not yet requested
    assert_eq!((a1, a2), (ip("198.18.0.10"), ip("198.18.0.11")));

    // A subnet is added in front (the old one's index shifts), the router
    // changes, the pool keeps its ranges.
    let vlan =
        "[[subnet]]\nprefix = \"100.64.0.0/24\"\npools = [\"100.64.0.10-100.64.0.20\"]\nvlan = 7\n";
    let second = Config::parse(&config(vlan, "198.18.0.10-198.18.0.12", "198.18.0.254")).unwrap();
    let next = cell.load_full().reload(&second);
    cell.store(Arc::new(next));

    let mut renew = request(mac(1), MessageType::Request, 9, vec![]);
    renew.set_ciaddr(a1);
    let r = w.send(&frame(&renew, mac(1), a1, SERVER, None)).unwrap();
    assert_eq!(
        (msg_type(&r.msg), r.msg.yiaddr()),
        (Some(MessageType::Ack), a1),
        "the binding survived"
    );
    assert_eq!(
        r.msg.opts().get(OptionCode::Router),
        Some(&DhcpOption::Router(vec![ip("198.18.0.254")])),
        "the new options apply"
    );
    let ack = w.select(2, a2);
    assert_eq!(
        msg_type(&ack.msg),
        Some(MessageType::Ack),
        "the held offer survived"
    );
    assert_eq!(
        w.discover(3),
        Some(ip("198.18.0.12")),
        "taken addresses stay taken"
    );
    assert_eq!(w.discover(4), None, "pool of three is full");

    // The pool grows: a new pool object, with what the table holds claimed.
    let third = Config::parse(&config(vlan, "198.18.0.10-198.18.0.30", "198.18.0.254")).unwrap();
    let next = cell.load_full().reload(&third);
    cell.store(Arc::new(next));
    assert_eq!(w.discover(4), Some(ip("198.18.0.13")));
    assert_eq!(
        w.discover(3),
        Some(ip("198.18.0.12")),
        "the held offer is the client's still"
    );

    // A broken file is refused with its line; the daemon then keeps the old engine.
    let e = Config::parse(&config(vlan, "198.18.0.10-198.18.9.30", "198.18.0.254")).unwrap_err();
    assert!(e.line.is_some(), "{e}");
}
