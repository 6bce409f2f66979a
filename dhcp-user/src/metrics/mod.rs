//! The OpenMetrics (Prometheus) endpoint: a side thread serving
//! `GET /metrics` on the `[metrics] listen` address, 404 elsewhere.
//!
//! Nothing is counted here. At each scrape a [`Collector`]
//! (`prometheus-client`'s) encodes the newest [`Status`] on the
//! [`Board`] — the snapshot the main thread takes every stats interval —
//! so the endpoint, the stats file and the control API never disagree,
//! and a scrape never touches a worker or a BPF map. The socket is
//! tiny_http's (no HTTP parsing of our own); requests are answered one at
//! a time on this thread, which is enough for a local scraper.
//!
//! [`Collector`]: prometheus_client::collector::Collector
//! [`Status`]: crate::status::Status
mod encode;

use crate::status::Board;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;

pub use encode::{CONTENT_TYPE, render};

/// The running endpoint; dropping it stops the thread.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` (an error here keeps the daemon from starting) and
    /// serves the board's newest status from a thread of its own.
    pub fn start(addr: SocketAddr, board: Arc<Board>) -> anyhow::Result<MetricsServer> {
        let server = Arc::new(
            tiny_http::Server::http(addr)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("metrics endpoint: listening on {addr}"))?,
        );
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (server, stop) = (server.clone(), stop.clone());
            std::thread::Builder::new()
                .name("metrics".into())
                .spawn(move || serve(&server, &board, &stop))
                .context("starting the metrics thread")?
        };
        tracing::info!(%addr, "metrics endpoint: http://{addr}/metrics");
        Ok(MetricsServer {
            server,
            stop,
            thread: Some(thread),
            addr,
        })
    }

    /// The address it listens on (the port chosen, when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: &tiny_http::Server, board: &Arc<Board>, stop: &AtomicBool) {
    let registry = encode::registry(board.clone());
    while !stop.load(Relaxed) {
        // A bound on the wait, so a stop is seen even if the unblock
        // came while this thread was not waiting.
        let req = match server.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            // Nothing yet, unblocked (stop) or a connection that failed.
            Ok(None) | Err(_) => continue,
        };
        let path = req.url().split('?').next().unwrap_or("");
        let response = if path == "/metrics" && *req.method() == tiny_http::Method::Get {
            match encode::encode(&registry) {
                Ok(body) => tiny_http::Response::from_string(body).with_header(
                    tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE)
                        .expect("a valid header"),
                ),
                Err(e) => {
                    tracing::warn!("metrics: encoding failed: {e}");
                    tiny_http::Response::from_string("encoding failed\n").with_status_code(500)
                }
            }
        } else {
            tiny_http::Response::from_string("not found: the metrics are at /metrics\n")
                .with_status_code(404)
        };
        // A scraper that went away is its own problem.
        let _ = req.respond(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;
    use std::io::{Read, Write};

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_and_404_elsewhere() {
        let board = Arc::new(Board::default());
        let mut st = Status {
            io: "packet",
            ..Status::default()
        };
        st.total.discover = 5;
        st.workers.push((0, st.total));
        board.publish(st);
        let m = MetricsServer::start("127.0.0.1:0".parse().unwrap(), board).unwrap();
        let r = get(m.addr(), "/metrics");
        assert!(
            r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"),
            "{r}"
        );
        assert!(
            r.to_ascii_lowercase().contains(
                "content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"
            ),
            "{r}"
        );
        assert!(
            r.contains("xdhcpd_requests_total{worker=\"0\",type=\"discover\"} 5"),
            "{r}"
        );
        assert!(r.trim_end().ends_with("# EOF"), "{r}");
        let r = get(m.addr(), "/");
        assert!(r.contains(" 404 "), "{r}");
        let r = get(m.addr(), "/metricsx");
        assert!(r.contains(" 404 "), "{r}");
        drop(m);
    }

    #[test]
    fn a_taken_address_is_an_error() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e = MetricsServer::start(l.local_addr().unwrap(), Arc::new(Board::default()));
        let e = e.err().expect("the port is taken");
        assert!(format!("{e:#}").contains("metrics endpoint"), "{e:#}");
    }
}
