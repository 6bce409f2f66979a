//! The cluster side thread against a real `nats-server` (JetStream): two
//! servers' cluster threads, no XDP, over one lease view each.
//!
//! Everything runs inside a network namespace of its own (xdt96n, xdt97n):
//! the NATS server is started there with `ip netns exec`, and the test's
//! body runs on a thread that entered it with setns(2), so the cluster
//! threads it starts (threads inherit the namespace of the thread that
//! makes them) connect there; nothing binds in the root namespace. Server
//! a reaches NATS through a small TCP relay of the test's own, which can be
//! frozen: a partition of one server from the cluster, the other still
//! connected.
//!
//! Run as root: `cargo test -p xdhcpd-suite --test cluster_nats --
//! --include-ignored --test-threads=1`.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};
use xdhcp::cluster::{ClusterService, ClusterStatus, LearnOwn, Links, payload};
use xdhcp::config::Config;
use xdhcp::config::{Cluster, ClusterDurability, ClusterMode};
use xdhcp::engine::Ownership;
use xdhcp::engine::{Clock, Engine};
use xdhcp::lease::journal::{
    Feed, FixedBytes, Journal, JournalHandle, JournalOptions, LeaseRecord, Marks, RecordState,
    Replication, Shipped,
};
use xdhcp::lease::{ClientKey, LeaseState};

const NATS_PORT: u16 = 4222;

/// A namespace with a nats-server in it; both go on drop, also when the
/// test fails.
struct NatsLab {
    ns: String,
    server: Option<Child>,
    dir: PathBuf,
}

impl NatsLab {
    fn start(ns: &str) -> NatsLab {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
            .with_test_writer()
            .try_init();
        // A namespace a killed run left behind.
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
        let dir = std::env::temp_dir().join(format!("{ns}-js"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("JetStream dir");
        let mut lab = NatsLab {
            ns: ns.to_string(),
            server: None,
            dir,
        };
        run(&["ip", "netns", "add", ns]);
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        lab.serve();
        lab
    }

    /// Starts the NATS server (again: its JetStream store is kept) and
    /// waits until it listens.
    fn serve(&mut self) {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "nats-server",
                "-js",
                "-a",
                "127.0.0.1",
            ])
            .args(["-p", &NATS_PORT.to_string(), "-sd"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server (installed by setup at /usr/bin/nats-server)");
        self.server = Some(child);
        let up = self.inside(|| {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if TcpStream::connect(("127.0.0.1", NATS_PORT)).is_ok() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        });
        assert!(up, "nats-server did not listen within 10 s");
    }

    /// Kills the NATS server (SIGKILL: the whole NATS cluster gone).
    fn kill(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs `f` on a thread inside the namespace; its panic is this one's.
    fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns_file = PathBuf::from("/run/netns").join(&self.ns);
        std::thread::scope(|s| {
            let h = s.spawn(move || {
                let ns = std::fs::File::open(&ns_file).expect("namespace file");
                // SAFETY: setns(2) on a namespace file held open; it changes
                // only this thread's network namespace (and that of the
                // threads it starts).
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            });
            match h.join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }
}

impl Drop for NatsLab {
    fn drop(&mut self) {
        self.kill();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .expect(args[0]);
    assert!(st.success(), "{args:?}: {st}");
}

/// A TCP relay to the NATS server that can be frozen: while frozen it
/// moves no byte either way, as a cut link does (the connections stay
/// open, requests time out).
struct Relay {
    port: u16,
    frozen: Arc<AtomicBool>,
}

impl Relay {
    fn start() -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").expect("relay listen (in the namespace)");
        let port = l.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let f = frozen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let Ok(s) = TcpStream::connect(("127.0.0.1", NATS_PORT)) else {
                    continue;
                };
                for (mut from, mut to) in [(c.try_clone().unwrap(), s.try_clone().unwrap()), (s, c)]
                {
                    let f = f.clone();
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(20)));
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            if f.load(Relaxed) {
                                std::thread::sleep(Duration::from_millis(5));
                                continue;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => return,
                                Ok(n) => {
                                    // Read before the freeze, written after
                                    // it: held, as a cut link would.
                                    while f.load(Relaxed) {
                                        std::thread::sleep(Duration::from_millis(5));
                                    }
                                    if to.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => return,
                            }
                        }
                    });
                }
            }
        });
        Relay { port, frozen }
    }
}

/// A minimal NATS client over the text protocol, for what the test does
/// behind the servers' backs: publish a crafted record, read a message.
struct Raw {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Raw {
    fn connect() -> Raw {
        let w = TcpStream::connect(("127.0.0.1", NATS_PORT)).expect("raw connect");
        w.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(w.try_clone().unwrap());
        let mut info = String::new();
        r.read_line(&mut info).unwrap();
        assert!(info.starts_with("INFO"), "{info}");
        let mut raw = Raw { w, r };
        raw.send(b"CONNECT {\"verbose\":false,\"headers\":true}\r\nSUB _INBOX.t 1\r\n");
        raw
    }
    fn send(&mut self, b: &[u8]) {
        self.w.write_all(b).unwrap();
    }
    /// A request and its reply's payload.
    fn request(&mut self, subject: &str, body: &[u8]) -> Vec<u8> {
        let mut m = format!("PUB {subject} _INBOX.t {}\r\n", body.len()).into_bytes();
        m.extend_from_slice(body);
        m.extend_from_slice(b"\r\n");
        self.send(&m);
        loop {
            let mut line = String::new();
            self.r.read_line(&mut line).expect("reply");
            if line.starts_with("PING") {
                self.send(b"PONG\r\n");
            } else if let Some(rest) = line.strip_prefix("MSG ") {
                let n: usize = rest.split_whitespace().last().unwrap().parse().unwrap();
                let mut b = vec![0u8; n + 2];
                self.r.read_exact(&mut b).unwrap();
                b.truncate(n);
                return b;
            }
        }
    }
}

fn record(i: u32, want_share: u8, own: &Ownership) -> LeaseRecord {
    // A client whose bucket falls in the wanted share.
    for salt in 0u32.. {
        let mac = [
            2,
            0x99,
            (salt >> 8) as u8,
            salt as u8,
            (i >> 8) as u8,
            i as u8,
        ];
        let rec = LeaseRecord {
            subnet: 0,
            addr: Ipv4Addr::new(10, 96, (i >> 8) as u8, i as u8),
            client: ClientKey::new(0, 0, &mac),
            hwaddr: mac,
            state: RecordState::Bound,
            expires_unix: 4_000_000_000,
            cltt_unix: 1_800_000_000,
            hostname: FixedBytes::new(format!("h{i}").as_bytes()).0,
            agent_info: FixedBytes::default(),
            fqdn_flags: 0,
        };
        if own.share_of_record(&rec) == Some(want_share) {
            return rec;
        }
    }
    unreachable!()
}

fn settings(name: &str, port: u16, durability: ClusterDurability, failover: Duration) -> Cluster {
    let peers = vec!["a".to_string(), "b".to_string()];
    Cluster {
        name: name.into(),
        index: peers.iter().position(|p| p == name).unwrap(),
        peers,
        nats: vec![format!("nats://127.0.0.1:{port}")],
        mode: ClusterMode::LoadBalancing,
        durability,
        failover_after: failover,
        stream: "XDHCPD".into(),
        bucket: "xdhcpd".into(),
        replicas: 1,
        retention: Duration::from_secs(3600),
    }
}

/// The engine config of one member: one subnet, the records' addresses
/// in its pool.
fn engine(name: &str) -> Arc<Engine> {
    let text = format!(
        r#"
interface = "xdt96-s"
server_id = "10.96.0.1"

[journal]
dir = "/nonexistent/cluster_nats-opens-no-journal-here"

[cluster]
name = "{name}"
peers = ["a", "b"]
nats = ["nats://127.0.0.1:4222"]

[[subnet]]
prefix = "10.96.0.0/16"
pools = ["10.96.0.10-10.96.255.250"]
"#
    );
    Arc::new(Engine::new(&Config::parse(&text).expect("engine config")))
}

/// One server's side of the test: its cluster thread over its own engine
/// (the engine's ownership bits, `apply_remote` for the others' records).
struct Node {
    svc: ClusterService,
    engine: Arc<Engine>,
    own: Arc<Ownership>,
    /// What the journal's replication hook would send; `None` when a real
    /// journal feeds the thread.
    tx: Option<crossbeam_channel::Sender<Vec<Shipped>>>,
    seq: u64,
}

impl Node {
    fn start(c: &Cluster, journal: Option<(Feed, Marks)>) -> Node {
        Node::start_with(c, journal, false)
    }
    /// `learn`: as the daemon starts over an empty journal, taking its own
    /// records back from the stream into the engine.
    fn start_with(c: &Cluster, journal: Option<(Feed, Marks)>, learn: bool) -> Node {
        let engine = engine(&c.name);
        let own = engine.ownership().clone();
        let (tx, feed, marks) = match journal {
            Some((feed, marks)) => (None, feed, Some(marks)),
            None => {
                let (repl, feed) = Replication::channel(1024, false);
                (Some(repl.tx), feed, None)
            }
        };
        let e = engine.clone();
        let learn_own = learn.then(|| {
            let e = engine.clone();
            Box::new(move |r: &LeaseRecord| e.apply_remote(r, Clock::now(&e, Instant::now())))
                as LearnOwn
        });
        let svc = ClusterService::start(
            c,
            Links {
                ownership: own.clone(),
                feed,
                marks,
                apply: Box::new(move |r: &LeaseRecord| {
                    e.apply_remote(r, Clock::now(&e, Instant::now()))
                }),
                learn_own,
                journal_dropped: Default::default(),
            },
        )
        .expect("cluster thread");
        Node {
            svc,
            engine,
            own,
            tx,
            seq: 0,
        }
    }
    fn ship(&mut self, rec: LeaseRecord) {
        self.seq += 1;
        let tx = self.tx.as_ref().expect("no journal behind this node");
        tx.send(vec![Shipped {
            producer: 0,
            seq: self.seq,
            rec,
        }])
        .unwrap();
    }
    fn stats(&self) -> ClusterStatus {
        self.svc.stats_handle().snapshot()
    }
    /// Whether the engine holds `rec`'s lease (its client bound to its
    /// address).
    fn has(&self, rec: &LeaseRecord) -> bool {
        self.engine
            .leases()
            .get(&rec.client)
            .is_some_and(|l| l.addr == rec.addr && l.state == LeaseState::Bound)
    }
}

/// A real journal with the replication hook in a fresh temp directory
/// `name`, as the daemon opens it in `replicated` mode: the writer syncs,
/// ships every record to the returned channel, and leaves the marks to the
/// cluster thread.
fn replicated_journal(name: &str) -> (PathBuf, JournalHandle, Feed) {
    let dir = std::env::temp_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    let (repl, feed) = Replication::channel(1024, true);
    let (journal, _) = Journal::open(
        &dir,
        xdhcp::lease::journal::Durability::Durable,
        JournalOptions {
            replication: Some(repl),
            ..JournalOptions::default()
        },
    )
    .expect("journal");
    (dir, journal, feed)
}

/// Waits (bounded) for `cond`, checking `always` at every look.
fn wait_for(what: &str, limit: Duration, mut always: impl FnMut(), mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    loop {
        always();
        if cond() {
            return;
        }
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
#[ignore = "lab: needs root, ip netns and nats-server"]
fn replication_takeover_fencing_and_hand_back() {
    let lab = NatsLab::start("xdt96n");
    lab.inside(|| {
        let relay = Relay::start();
        let f = Duration::from_secs(2);
        let mut a = Node::start(
            &settings("a", relay.port, ClusterDurability::Durable, f),
            None,
        );
        let mut b = Node::start(
            &settings("b", NATS_PORT, ClusterDurability::Durable, f),
            None,
        );
        let limit = Duration::from_secs(20);
        // Never two owners of one share, at any look.
        let both = |a: &Node, b: &Node| {
            let (x, y) = (a.own.owned(), b.own.owned());
            assert_eq!(
                x & y,
                0,
                "a owns {x:#b}, b owns {y:#b}: a share owned twice"
            );
        };
        wait_for(
            "each home to own its share",
            limit,
            || both(&a, &b),
            || a.own.owned() == 0b01 && b.own.owned() == 0b10,
        );
        let sa = a.stats();
        assert_eq!(sa.state, "connected");
        let rev_a = sa.shares[0].revision;
        assert!(rev_a > 0, "{sa:?}");

        // A record a publishes is applied by b (and b's by a); neither
        // applies its own.
        let ra = record(1, 0, &a.own);
        let rb = record(2, 1, &b.own);
        a.ship(ra);
        b.ship(rb);
        wait_for(
            "the records to cross",
            limit,
            || both(&a, &b),
            || b.has(&ra) && a.has(&rb),
        );
        // Each reads its own record back and leaves it.
        wait_for(
            "own records read",
            limit,
            || {},
            || a.stats().own == 1 && b.stats().own == 1,
        );
        assert_eq!((a.stats().applied, b.stats().applied), (1, 1));
        assert!(!a.has(&ra) && !b.has(&rb), "own records are not applied");
        // A record of a share a does not own stays local.
        a.ship(record(3, 1, &a.own));
        wait_for("local_only", limit, || {}, || a.stats().local_only == 1);

        // Partition a from NATS: a's claims expire (its bits clear) before
        // b takes share 0 over; the check above runs at every look.
        relay.frozen.store(true, Relaxed);
        let mut a_cleared_first = false;
        wait_for(
            "b to take share 0 over",
            limit,
            || {
                both(&a, &b);
                if a.own.owned() == 0 && b.own.owned() & 1 == 0 {
                    a_cleared_first = true;
                }
            },
            || b.own.owned() == 0b11,
        );
        assert!(a_cleared_first, "b owned share 0 before a let go of it");
        let sa = a.stats();
        let sb = b.stats();
        assert_eq!(sa.state, "cut-off", "{sa:?}");
        assert_eq!(sa.cut_offs, 1);
        assert_eq!(sb.takeovers, 1, "{sb:?}");
        let rev_b = sb.shares[0].revision;
        assert!(
            rev_b > rev_a,
            "the takeover's revision {rev_b} is newer than {rev_a}"
        );

        // A stale record: share 0 under a's old revision, published after
        // b's marker: fenced by b. A record under b's revision after it is
        // applied, so the stale one was read (in order) before it. Their
        // origin is a third name, so that both servers judge them.
        let own = Ownership::new(2);
        let stale = record(10, 0, &own);
        let fresh = record(11, 0, &own);
        let mut raw = Raw::connect();
        for (rec, rev) in [(stale, rev_a), (fresh, rev_b)] {
            let mut body = Vec::new();
            payload::encode_batch("c", [(0, rev, &rec)], &mut body);
            let ack = raw.request("xdhcpd.lease.c", &body);
            assert!(String::from_utf8_lossy(&ack).contains("\"seq\""), "{ack:?}");
        }
        wait_for(
            "the fresh record at b",
            limit,
            || both(&a, &b),
            || b.has(&fresh),
        );
        assert!(!b.has(&stale), "a fenced record was applied");
        assert_eq!(b.stats().fenced, 1);

        // a comes back: it is ready and home of share 0, so b hands it
        // back (never both owning it on the way).
        relay.frozen.store(false, Relaxed);
        wait_for(
            "share 0 back at a",
            limit * 2,
            || both(&a, &b),
            || a.own.owned() == 0b01 && b.own.owned() == 0b10,
        );
        assert_eq!(b.stats().handbacks, 1);
        let sa = a.stats();
        assert_eq!(sa.state, "connected", "{sa:?}");
        assert!(sa.shares[0].revision > rev_b);
        // a, back, caught up what it missed: the fresh record (the stale
        // one is fenced for it too).
        wait_for("a to read the fresh record", limit, || {}, || a.has(&fresh));
        assert!(!a.has(&stale));
        // b stops: a takes share 1 over after failover_after.
        b.svc.stop();
        wait_for("a to own both", limit, || {}, || a.own.owned() == 0b11);
        a.svc.stop();
    });
    drop(lab);
}

/// A server that lost its disk (its journal empty at start) takes its own
/// leases back from the stream while it catches up; one that kept its
/// journal has them there, newer or the same, and only counts them.
#[test]
#[ignore = "lab: needs root, ip netns and nats-server"]
fn an_empty_journal_takes_the_servers_own_leases_back_from_the_stream() {
    let lab = NatsLab::start("xdt95n");
    lab.inside(|| {
        let c = settings(
            "a",
            NATS_PORT,
            ClusterDurability::Durable,
            Duration::from_secs(2),
        );
        let limit = Duration::from_secs(20);
        let mut a = Node::start(&c, None);
        wait_for("a to own share 0", limit, || {}, || a.own.owned() & 1 == 1);
        let recs: Vec<LeaseRecord> = (1..=40).map(|i| record(i, 0, &a.own)).collect();
        for r in &recs {
            a.ship(*r);
        }
        wait_for(
            "a's records stored",
            limit,
            || {},
            || {
                let s = a.stats();
                s.published == 40 && s.replication_lag == 0
            },
        );
        a.svc.stop();

        // a again, caught up; `learn`: over an empty journal.
        let restart = |learn: bool| {
            let n = Node::start_with(&c, None, learn);
            wait_for(
                "the catch-up",
                limit,
                || {},
                || n.stats().state == "connected",
            );
            n
        };

        // Restarted with its journal: the stream's records are its own.
        let kept = restart(false);
        let s = kept.stats();
        assert_eq!((s.own, s.learned, s.applied), (40, 0, 0), "{s:?}");
        assert!(recs.iter().all(|r| !kept.has(r)), "{s:?}");
        kept.svc.stop();

        // Restarted over an empty journal: it learns them back.
        let lost = restart(true);
        let s = lost.stats();
        assert_eq!((s.own, s.learned, s.applied), (40, 40, 0), "{s:?}");
        if let Some(r) = recs.iter().find(|r| !lost.has(r)) {
            panic!("{} not learned back: {s:?}", r.addr);
        }
        lost.svc.stop();
    });
    drop(lab);
}

#[test]
#[ignore = "lab: needs root, ip netns and nats-server"]
fn replicated_marks_move_only_after_the_stream_stored_the_record() {
    let lab = NatsLab::start("xdt97n");
    let (dir, journal, rx) = replicated_journal("xdt97-journal");
    let mut producer = journal.producer().expect("producer");
    let marks = journal.marks();
    lab.inside(|| {
        let relay = Relay::start();
        // A long failover_after: the freeze below must not cut the server
        // off (that would hold the marks for another reason).
        let c = settings(
            "a",
            relay.port,
            ClusterDurability::Replicated,
            Duration::from_secs(60),
        );
        let a = Node::start(&c, Some((rx, marks)));
        let limit = Duration::from_secs(20);
        wait_for("a to own share 0", limit, || {}, || a.own.owned() & 1 == 1);
        let r1 = record(1, 0, &a.own);
        let t1 = producer.append(&r1).expect("append");
        wait_for(
            "the first record durable",
            limit,
            || {},
            || producer.is_durable(t1),
        );
        // The mark moved: the stream has the record.
        let mut raw = Raw::connect();
        let got = raw.request(
            "$JS.API.STREAM.MSG.GET.XDHCPD",
            br#"{"last_by_subj":"xdhcpd.lease.a"}"#,
        );
        assert!(
            String::from_utf8_lossy(&got).contains("\"message\""),
            "{}",
            String::from_utf8_lossy(&got)
        );
        // Frozen link: the journal syncs and ships, the publishes go out,
        // no acknowledgement can come back, and the mark stays.
        relay.frozen.store(true, Relaxed);
        let mut last = t1;
        for i in 2..=50 {
            last = producer.append(&record(i, 0, &a.own)).expect("append");
        }
        wait_for(
            "the journal to ship all",
            limit,
            || {},
            || journal.stats().records >= 50 && a.stats().replication_lag >= 49,
        );
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(producer.durable_seq(), t1.0, "a mark moved without an ack");
        let s = a.stats();
        assert_eq!(s.state, "connected", "not cut off: {s:?}");
        relay.frozen.store(false, Relaxed);
        wait_for(
            "the last record durable",
            limit,
            || {},
            || producer.is_durable(last),
        );
        let s = a.stats();
        assert_eq!(s.replication_lag, 0, "{s:?}");
        assert_eq!(s.published, 50, "{s:?}");
        // The 49 records appended back to back while the link was frozen
        // went out in a handful of group commits, each shipped as one
        // message (not 49).
        assert!(s.messages >= 2 && s.messages <= 10, "{s:?}");
        a.svc.stop();
    });
    drop(producer);
    journal.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
    drop(lab);
}

#[test]
#[ignore = "lab: needs root, ip netns and nats-server"]
fn replicated_records_fenced_after_a_takeover_are_never_acked() {
    let lab = NatsLab::start("xdt98n");
    let (dir, journal, rx) = replicated_journal("xdt98-journal");
    let mut producer = journal.producer().expect("producer");
    let marks = journal.marks();
    lab.inside(|| {
        let relay = Relay::start();
        let f = Duration::from_secs(2);
        let a = Node::start(
            &settings("a", relay.port, ClusterDurability::Replicated, f),
            Some((rx, marks)),
        );
        let mut b = Node::start(
            &settings("b", NATS_PORT, ClusterDurability::Durable, f),
            None,
        );
        let limit = Duration::from_secs(20);
        wait_for(
            "each home to own its share",
            limit,
            || {},
            || a.own.owned() == 0b01 && b.own.owned() == 0b10,
        );
        // a is cut from NATS while it still owns share 0 (its claims last
        // failover_after/2 from its last heartbeat): the records it makes
        // now go out under its revision and wait in the cut link.
        relay.frozen.store(true, Relaxed);
        assert_eq!(a.own.owned(), 0b01, "a let go before the records were made");
        let recs: Vec<_> = (1..=5).map(|i| record(i, 0, &a.own)).collect();
        let mut last = None;
        for r in &recs {
            last = Some(producer.append(r).expect("append"));
        }
        let last = last.unwrap();
        wait_for(
            "b to take share 0 over",
            limit,
            || {},
            || b.own.owned() == 0b11,
        );
        let s = a.stats();
        assert_eq!(
            s.local_only, 0,
            "the records were published under share 0 (a still owned it): {s:?}"
        );
        assert_eq!(producer.durable_seq(), 0, "no ACK while cut off");
        // b, the owner now, leases the first of those addresses to a
        // client of its own.
        let mut mine = recs[0];
        mine.client = ClientKey::new(0, 0, &[2, 0xbb, 0, 0, 0, 1]);
        mine.hwaddr = [2, 0xbb, 0, 0, 0, 1];
        b.ship(mine);
        wait_for(
            "b's record stored",
            limit,
            || {},
            || b.stats().published == 1,
        );
        // The link comes back: the records land after b's marker, so every
        // reader fences them, and a never releases their ACKs; their marks
        // pass only once the parked replies have expired at the workers.
        relay.frozen.store(false, Relaxed);
        wait_for("b to fence them", limit, || {}, || b.stats().fenced == 5);
        assert!(recs.iter().all(|r| !b.has(r)), "b applied a fenced record");
        // Both are in the stream, a's after b's: a full read in order
        // applies b's record of that address and fences a's.
        let mut raw = Raw::connect();
        let mut last_seq = |origin: &str| -> u64 {
            let body = format!("{{\"last_by_subj\":\"xdhcpd.lease.{origin}\"}}");
            let got = raw.request("$JS.API.STREAM.MSG.GET.XDHCPD", body.as_bytes());
            let v: serde_json::Value = serde_json::from_slice(&got)
                .unwrap_or_else(|e| panic!("{origin}: {e}: {}", String::from_utf8_lossy(&got)));
            v["message"]["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("{origin}: no message: {v}"))
        };
        let (seq_a, seq_b) = (last_seq("a"), last_seq("b"));
        assert!(seq_a > seq_b, "a's batch {seq_a} after b's {seq_b}");
        wait_for(
            "a to give the ACKs up",
            limit,
            || {},
            || producer.is_durable(last),
        );
        let s = a.stats();
        assert_eq!(s.held_fenced, 5, "{s:?}");
        a.svc.stop();
        b.svc.stop();
    });
    drop(producer);
    journal.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
    drop(lab);
}

#[test]
#[ignore = "lab: needs root, ip netns and nats-server"]
fn the_whole_nats_cluster_gone_and_back() {
    let mut lab = NatsLab::start("xdt99n");
    let f = Duration::from_secs(2);
    let limit = Duration::from_secs(30);
    let (mut a, b) = lab.inside(|| {
        let a = Node::start(
            &settings("a", NATS_PORT, ClusterDurability::Durable, f),
            None,
        );
        let b = Node::start(
            &settings("b", NATS_PORT, ClusterDurability::Durable, f),
            None,
        );
        wait_for(
            "each home to own its share",
            limit,
            || {},
            || a.own.owned() == 0b01 && b.own.owned() == 0b10,
        );
        (a, b)
    });
    // Every NATS node gone: both are cut off, silent for new clients, and
    // in durable mode renew what they hold (renewing = what they owned).
    lab.kill();
    wait_for(
        "both cut off",
        limit,
        || {},
        || a.own.owned() == 0 && b.own.owned() == 0,
    );
    assert_eq!((a.own.renewing(), b.own.renewing()), (0b01, 0b10));
    assert_eq!(a.stats().state, "cut-off");
    // Back: heartbeats, the claims still name them, each acquires its own
    // share again; renewing-only ends; records cross again.
    lab.serve();
    lab.inside(|| {
        wait_for(
            "both back",
            limit,
            || {},
            || a.own.owned() == 0b01 && b.own.owned() == 0b10,
        );
        assert_eq!((a.own.renewing(), b.own.renewing()), (0, 0));
        let r = record(7, 0, &a.own);
        a.ship(r);
        wait_for("a record after the return at b", limit, || {}, || b.has(&r));
        let (sa, sb) = (a.stats(), b.stats());
        assert_eq!((sa.state, sb.state), ("connected", "connected"));
        assert_eq!((sa.cut_offs, sb.cut_offs), (1, 1));
        assert_eq!((sa.takeovers, sb.takeovers), (0, 0), "nobody took anything");
    });
    a.svc.stop();
    b.svc.stop();
    drop(lab);
}
