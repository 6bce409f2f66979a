//! The control socket and its side threads.
//!
//! One thread accepts connections (at most [`MAX_CONNECTIONS`] at once;
//! one more is told so and closed), each served on a thread of its own:
//! one request per line, at most [`MAX_LINE`] bytes, one answer per line.
//! A connection idle for [`IDLE_TIMEOUT`], or whose reader does not take
//! an answer within [`WRITE_TIMEOUT`], is closed, so a stuck client holds
//! one of the slots for a while and never the daemon. The address index
//! is kept from the journal's tap by an [`index::Keeper`] the daemon
//! starts (the leasequery service reads the same index).
//!
//! What changes the configuration as a whole (reload, runtime
//! reservations) goes to the main thread, which owns the engine swap, as
//! a [`MainAsk`]; the connection waits for its answer at most
//! [`MAIN_WAIT`].
use super::index::{self, Index};
use super::proto::{self, Request};
use super::runtime::Runtime;
use crate::config::Control;
use crate::engine::{Clock, Engine};
use crate::lease::journal::{LeaseRecord, Producer, Tap, now_unix};
use crate::status::Board;
use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, bounded};
use serde_json::{Value, json};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Longest request line.
pub const MAX_LINE: usize = 64 * 1024;
/// A connection with no complete request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// An answer the client does not read within this is dropped with the
/// connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the main thread (reload, reservations).
pub const MAIN_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for a release's record to be synced (durable mode).
const JOURNAL_WAIT: Duration = Duration::from_secs(5);
/// Records the index's tap holds before the journal's writer counts them
/// lost (about 200 bytes each).
pub const TAP_CAPACITY: usize = 64 * 1024;

/// What only the main thread may do, and where its answer goes.
pub struct MainAsk {
    pub ask: Ask,
    pub reply: Sender<Value>,
}

#[derive(Debug)]
pub enum Ask {
    Reload,
    Reserve(Runtime),
    Unreserve(Ipv4Addr),
    Reservations,
}

/// The journal's side of the control API: the address index and a
/// producer of its own for the records of `release`.
pub struct JournalSide {
    pub producer: Producer,
    pub durable: bool,
    /// Shared with the leasequery service; kept by an [`index::Keeper`].
    pub index: Arc<Mutex<Index>>,
}

/// What the control threads read and change.
pub struct Context {
    pub board: Arc<Board>,
    pub engine: Arc<ArcSwap<Engine>>,
    pub journal: Option<JournalSide>,
    pub main: Sender<MainAsk>,
}

struct Shared {
    board: Arc<Board>,
    engine: Arc<ArcSwap<Engine>>,
    main: Sender<MainAsk>,
    /// `None` without a journal: lookups scan the lease table.
    index: Option<Arc<Mutex<Index>>>,
    producer: Option<Mutex<(Producer, bool)>>,
    /// Records the tap could not take (the index misses them).
    index_lost: Arc<AtomicU64>,
    stop: AtomicBool,
    conns: AtomicUsize,
}

/// The index's end of the journal's tap, and the control thread's.
pub fn tap() -> (Tap, Receiver<LeaseRecord>) {
    let (tx, rx) = bounded(TAP_CAPACITY);
    (
        Tap {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

/// The running control API.
pub struct ControlService {
    shared: Arc<Shared>,
    path: PathBuf,
    threads: Vec<JoinHandle<()>>,
}

/// Binds the socket at `path` with the mode (0600, or 0660 for `group`)
/// and group set before it can be reached: it is bound in a directory of
/// mode 0700 beside `path`, given its mode and group there, and renamed
/// into place. A socket already at `path` that nobody answers on (left by
/// a daemon that died) is removed; one that answers is another daemon's,
/// and refused.
pub fn bind(path: &Path, group: Option<u32>) -> io::Result<UnixListener> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{}: another xdhcpd answers on it (stop it, or give this one another [control] socket)",
                        path.display()
                    ),
                ));
            }
            Err(_) => {
                tracing::info!(path = %path.display(), "removing a stale control socket");
                std::fs::remove_file(path)?;
            }
        },
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = parent.join(format!(".{name}.{}.d", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::DirBuilder::new().mode(0o700).create(&tmp)?;
    let result = (|| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))?;
        let at = tmp.join("s");
        let listener = UnixListener::bind(&at)?;
        let mode = if group.is_some() { 0o660 } else { 0o600 };
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(&at, None, Some(gid))?;
        }
        std::fs::rename(&at, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Binds the socket of `cfg` ([`bind`], with its group's id): done first
/// at start, so that a second daemon is refused before it touches the
/// interface.
pub fn listen(cfg: &Control) -> io::Result<UnixListener> {
    let gid = match &cfg.group {
        Some(g) => Some(
            crate::os::group::gid(g)
                .map_err(|e| io::Error::new(e.kind(), format!("[control] group {g:?}: {e}")))?,
        ),
        None => None,
    };
    bind(&cfg.socket, gid)
}

impl ControlService {
    /// Starts the threads on `listener` (from [`listen`]); `index_lost`
    /// is the loss counter of the index's tap (with a journal).
    pub fn start(
        cfg: &Control,
        listener: UnixListener,
        ctx: Context,
        index_lost: Option<Arc<AtomicU64>>,
    ) -> io::Result<ControlService> {
        listener.set_nonblocking(true)?;
        let (index, producer) = match ctx.journal {
            Some(j) => (Some(j.index), Some(Mutex::new((j.producer, j.durable)))),
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            board: ctx.board,
            engine: ctx.engine,
            main: ctx.main,
            index,
            producer,
            index_lost: index_lost.unwrap_or_else(|| Arc::new(AtomicU64::new(0))),
            stop: AtomicBool::new(false),
            conns: AtomicUsize::new(0),
        });
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("xdhcp-ctl".into())
                .spawn(move || accept(&s, &listener))?,
        );
        tracing::info!(
            socket = %cfg.socket.display(),
            group = ?cfg.group,
            "control API listening"
        );
        Ok(ControlService {
            shared,
            path: cfg.socket.clone(),
            threads,
        })
    }

    /// Stops the threads (open connections are closed) and removes the
    /// socket.
    pub fn stop(self) {
        self.shared.stop.store(true, Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept(s: &Arc<Shared>, listener: &UnixListener) {
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !s.stop.load(Relaxed) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                conns.retain(|h| !h.is_finished());
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
                if s.conns.load(Relaxed) >= MAX_CONNECTIONS {
                    let _ = answer(
                        &mut stream,
                        &error(format!(
                            "too many connections (at most {MAX_CONNECTIONS}): try again"
                        )),
                    );
                    continue;
                }
                s.conns.fetch_add(1, Relaxed);
                let sh = s.clone();
                match std::thread::Builder::new()
                    .name("xdhcp-ctl-conn".into())
                    .spawn(move || {
                        serve(&sh, stream);
                        sh.conns.fetch_sub(1, Relaxed);
                    }) {
                    Ok(h) => conns.push(h),
                    Err(e) => {
                        s.conns.fetch_sub(1, Relaxed);
                        tracing::warn!("control: cannot start a connection thread: {e}");
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                tracing::warn!("control: accept: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

fn error(msg: impl Into<String>) -> Value {
    json!({ "error": msg.into() })
}

fn answer(stream: &mut UnixStream, v: &Value) -> io::Result<()> {
    let mut line = serde_json::to_vec(v).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)
}

/// One connection: lines in, answers out, until the client closes, goes
/// quiet for [`IDLE_TIMEOUT`], sends an overlong line, or the daemon
/// stops.
fn serve(s: &Shared, mut stream: UnixStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut last = Instant::now();
    while !s.stop.load(Relaxed) {
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            if end > MAX_LINE {
                break;
            }
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let v = match proto::parse(line) {
                Ok(req) => handle(s, req),
                Err(e) => error(e),
            };
            if answer(&mut stream, &v).is_err() {
                return;
            }
            last = Instant::now();
        }
        if buf.len() > MAX_LINE {
            let _ = answer(
                &mut stream,
                &error(format!("request line longer than {MAX_LINE} bytes")),
            );
            return;
        }
        if last.elapsed() >= IDLE_TIMEOUT {
            let _ = answer(&mut stream, &error("idle for too long: closing"));
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The answer to one request.
fn handle(s: &Shared, req: Request) -> Value {
    match req {
        Request::Stats => s.board.latest().to_json(),
        Request::Latency => {
            let doc = s.board.latest().to_json();
            json!({ "latency": doc.get("latency").cloned().unwrap_or(Value::Null) })
        }
        Request::Lease(l) => match l.check() {
            Ok(by) => {
                let (leases, source) = match &s.index {
                    Some(i) => (
                        i.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .lookup(&by, now_unix()),
                        "journal",
                    ),
                    None => (index::table_lookup(&table(s), &by), "table"),
                };
                json!({ "leases": leases, "source": source, "index_lost": s.index_lost.load(Relaxed) })
            }
            Err(e) => error(e),
        },
        Request::Leases(q) => match q.check() {
            Ok(f) => {
                let (page, source) = match &s.index {
                    Some(i) => (
                        i.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .query(&f, now_unix()),
                        "journal",
                    ),
                    None => (index::table_query(&table(s), &f), "table"),
                };
                json!({
                    "leases": page.leases,
                    "next": page.next.map(|a| a.to_string()),
                    "source": source,
                    "index_lost": s.index_lost.load(Relaxed),
                })
            }
            Err(e) => error(e),
        },
        Request::Release { addr } => release(s, addr),
        Request::Reserve(r) => match Runtime::from_request(&r) {
            Ok(r) => ask_main(s, Ask::Reserve(r)),
            Err(e) => error(e),
        },
        Request::Unreserve { addr } => ask_main(s, Ask::Unreserve(addr)),
        Request::Reservations => ask_main(s, Ask::Reservations),
        Request::Reload => ask_main(s, Ask::Reload),
    }
}

fn table(s: &Shared) -> Vec<crate::engine::TableLease> {
    let e = s.engine.load_full();
    e.table_leases(Clock::now(&e, Instant::now()))
}

fn ask_main(s: &Shared, ask: Ask) -> Value {
    let (tx, rx) = bounded(1);
    if s.main.try_send(MainAsk { ask, reply: tx }).is_err() {
        return error("the main thread is busy with other control requests: try again");
    }
    match rx.recv_timeout(MAIN_WAIT) {
        Ok(v) => v,
        Err(_) => error(format!(
            "the main thread did not answer within {} s",
            MAIN_WAIT.as_secs()
        )),
    }
}

/// `release`: the engine frees the address; its record goes to the
/// journal through the control thread's own producer (synced before the
/// answer in durable mode) and into the index at once.
fn release(s: &Shared, addr: Ipv4Addr) -> Value {
    let engine = s.engine.load_full();
    let clock = Clock::now(&engine, Instant::now());
    let known = s.index.as_ref().and_then(|i| {
        i.lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(addr)
            .copied()
    });
    let Some(rec) = engine.release_addr(addr, clock, known.as_ref()) else {
        return error(format!("no client holds {addr}"));
    };
    let journaled = match &s.producer {
        None => Value::Null,
        Some(p) => {
            let mut p = p.lock().unwrap_or_else(|p| p.into_inner());
            let (producer, durable) = &mut *p;
            match producer.append(&rec) {
                Ok(t) => {
                    let until = Instant::now() + JOURNAL_WAIT;
                    while *durable && !producer.is_durable(t) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    json!(!*durable || producer.is_durable(t))
                }
                Err(_) => {
                    tracing::warn!(%addr, "release: the journal is full, its record is not written");
                    json!(false)
                }
            }
        }
    };
    if let Some(i) = &s.index {
        i.lock().unwrap_or_else(|p| p.into_inner()).apply(&rec);
    }
    tracing::info!(%addr, "lease released by the operator (control API)");
    json!({
        "released": addr.to_string(),
        "journaled": journaled,
        "lease": index::record_json(&rec, now_unix()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::lease::journal::tests::TempDir;

    const CONFIG: &str = r#"
interface = "test0"
server_id = "192.0.2.1"

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["192.0.2.10-192.0.2.20"]
"#;

    fn start(dir: &Path) -> (ControlService, PathBuf, Receiver<MainAsk>) {
        let engine = Engine::new(&Config::parse(CONFIG).unwrap());
        let (main, main_rx) = bounded(4);
        let path = dir.join("ctl.sock");
        let ctx = Context {
            board: Arc::new(Board::default()),
            engine: Arc::new(ArcSwap::new(Arc::new(engine))),
            journal: None,
            main,
        };
        let cfg = Control {
            socket: path.clone(),
            group: None,
        };
        let l = listen(&cfg).unwrap();
        (
            ControlService::start(&cfg, l, ctx, None).unwrap(),
            path,
            main_rx,
        )
    }

    fn ask(path: &Path, lines: &[&str]) -> Vec<Value> {
        let mut c = UnixStream::connect(path).unwrap();
        for l in lines {
            c.write_all(l.as_bytes()).unwrap();
            c.write_all(b"\n").unwrap();
        }
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        out.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_socket_answers_line_by_line_with_errors_as_answers() {
        let d = TempDir::new("ctl-sock");
        let (svc, path, main_rx) = start(&d.0);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The main thread's side, for `reload`.
        let main = std::thread::spawn(move || {
            let a = main_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert!(matches!(a.ask, Ask::Reload));
            a.reply.send(json!({"reloaded": true})).unwrap();
        });
        let got = ask(
            &path,
            &[
                r#"{"cmd":"stats"}"#,
                "garbage",
                r#"{"cmd":"nope"}"#,
                r#"{"cmd":"latency"}"#,
                r#"{"cmd":"leases","state":"bound"}"#,
                r#"{"cmd":"release","addr":"192.0.2.10"}"#,
                r#"{"cmd":"reload"}"#,
            ],
        );
        main.join().unwrap();
        assert_eq!(got.len(), 7, "{got:?}");
        assert_eq!(got[0]["table_used"], 0);
        assert!(got[1]["error"].as_str().unwrap().contains("bad request"));
        assert!(
            got[2]["error"]
                .as_str()
                .unwrap()
                .contains("unknown variant")
        );
        assert_eq!(got[3], json!({"latency": null}));
        assert_eq!(got[4]["leases"], json!([]));
        assert_eq!(got[4]["source"], "table");
        assert!(
            got[5]["error"]
                .as_str()
                .unwrap()
                .contains("no client holds")
        );
        assert_eq!(got[6]["reloaded"], true);
        // A line over the limit is refused and the connection closed.
        let long = format!(r#"{{"cmd":"stats","x":"{}"}}"#, "a".repeat(MAX_LINE));
        let got = ask(&path, &[&long, r#"{"cmd":"stats"}"#]);
        assert_eq!(got.len(), 1);
        assert!(got[0]["error"].as_str().unwrap().contains("longer than"));
        svc.stop();
        assert!(!path.exists(), "the socket is removed at stop");
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let d = TempDir::new("ctl-stale");
        let path = d.0.join("s.sock");
        // A socket nobody listens on any more.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let live = bind(&path, None).unwrap();
        let e = bind(&path, None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        drop(live);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not a socket").unwrap();
        let e = bind(&path, None).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        // With a group: 0660 and that group.
        std::fs::remove_file(&path).unwrap();
        let _l = bind(&path, Some(0)).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o660);
        assert_eq!(std::os::unix::fs::MetadataExt::gid(&m), 0);
        // Nothing is left beside it.
        let names: Vec<_> = std::fs::read_dir(&d.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["s.sock"]);
    }

    #[test]
    fn release_frees_journals_and_updates_the_index() {
        use crate::lease::journal::{Durability, Journal, JournalOptions, RecordState};
        let d = TempDir::new("ctl-release");
        let (tap_tx, tap_rx) = tap();
        let (h, recovered) = Journal::open(
            &d.0,
            Durability::Durable,
            JournalOptions {
                taps: vec![tap_tx.clone()],
                ..JournalOptions::default()
            },
        )
        .unwrap();
        let shared = Arc::new(Mutex::new(Index::new(&recovered.leases, 3600)));
        let keeper = index::Keeper::start(shared.clone(), tap_rx).unwrap();
        let engine = Arc::new(Engine::new(&Config::parse(CONFIG).unwrap()));
        // A client bound to .10, as the journal would restore it.
        let a = Ipv4Addr::new(192, 0, 2, 10);
        let hw = [2, 0, 0, 0, 0, 1];
        let bound = LeaseRecord {
            subnet: 0,
            addr: a,
            client: crate::lease::ClientKey::new(0, 0, &hw),
            hwaddr: hw,
            state: RecordState::Bound,
            expires_unix: now_unix() + 600,
            cltt_unix: now_unix(),
            hostname: crate::lease::journal::FixedBytes::new(b"cpe").0,
            agent_info: Default::default(),
            fqdn_flags: 0,
        };
        engine.restore(&[bound], Clock::now(&engine, Instant::now()));
        assert!(engine.subnets()[0].pool.is_taken(a));
        let mut worker = h.producer().unwrap();
        worker.append(&bound).unwrap();
        let (main, _main_rx) = bounded(1);
        let ctx = Context {
            board: Arc::new(Board::default()),
            engine: Arc::new(ArcSwap::new(engine.clone())),
            journal: Some(JournalSide {
                producer: h.producer().unwrap(),
                durable: true,
                index: shared,
            }),
            main,
        };
        let cfg = Control {
            socket: d.0.join("ctl.sock"),
            group: None,
        };
        let l = listen(&cfg).unwrap();
        let svc = ControlService::start(&cfg, l, ctx, Some(tap_tx.dropped.clone())).unwrap();
        crate::lease::journal::tests::wait_until("the index has the binding", || {
            let got = ask(&cfg.socket, &[r#"{"cmd":"lease","addr":"192.0.2.10"}"#]);
            got[0]["leases"]
                .as_array()
                .is_some_and(|l| l.len() == 1 && l[0]["state"] == "bound")
        });
        let got = ask(&cfg.socket, &[r#"{"cmd":"release","addr":"192.0.2.10"}"#]);
        assert_eq!(got[0]["released"], "192.0.2.10");
        assert_eq!(got[0]["journaled"], true);
        assert_eq!(got[0]["lease"]["state"], "released");
        // What the journal knew of the client is kept in its record.
        assert_eq!(got[0]["lease"]["hostname"], "cpe");
        assert!(!engine.subnets()[0].pool.is_taken(a));
        let got = ask(&cfg.socket, &[r#"{"cmd":"leases","state":"released"}"#]);
        assert_eq!(got[0]["leases"][0]["address"], "192.0.2.10");
        assert_eq!(got[0]["source"], "journal");
        svc.stop();
        keeper.stop();
        drop(worker);
        h.close().unwrap();
        // Durable: the journal recovers the release.
        let (h, recovered) = Journal::open(
            &d.0,
            Durability::Durable,
            JournalOptions {
                keep_released_secs: 3600,
                ..JournalOptions::default()
            },
        )
        .unwrap();
        let last = recovered.leases.iter().rev().find(|r| r.addr == a).unwrap();
        assert_eq!(last.state, RecordState::Released);
        h.close().unwrap();
    }
}
