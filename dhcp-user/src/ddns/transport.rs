//! One DNS exchange with the server taking the updates: the request over
//! UDP, the answer matched by its id, and the same request again over TCP
//! when the answer comes back truncated (RFC 1035 §4.2, RFC 7766).
//!
//! Blocking, for the DDNS side thread: one connected UDP socket per
//! server, kept between exchanges so the kernel drops datagrams from any
//! other address, and opened again after an error.
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// DNS header: id (2 bytes), then flags; QR is the top bit of byte 2, TC
/// the second lowest bit of it.
const HEADER_LEN: usize = 12;
const QR: u8 = 0x80;
const TC: u8 = 0x02;

/// Largest UDP answer taken: an update's answer is a header, the zone and
/// a TSIG record, far below it; EDNS is not sent, so a conforming server
/// keeps to 512 bytes anyway.
const UDP_MAX: usize = 4096;

/// The DNS server and the socket kept for it.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    /// For one whole exchange: the UDP wait, and the TCP retry after a
    /// truncated answer has what is left of it.
    pub timeout: Duration,
    /// Connected to the address it is stored with: a changed `addr` opens
    /// a new one.
    socket: Option<(SocketAddr, UdpSocket)>,
}

/// Why an exchange got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No answer with our id within the timeout.
    Timeout,
    /// The socket said no: ICMP port unreachable (nothing listens), no
    /// route, a TCP reset.
    Io(String),
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Timeout => write!(f, "no answer within the timeout"),
            TransportError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl Server {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Server {
        Server {
            addr,
            timeout,
            socket: None,
        }
    }

    /// Sends `request` (a whole DNS message whose first two bytes are its
    /// id) and returns the first answer carrying that id with QR set.
    /// Datagrams with another id, queries, and runts are skipped: the wait
    /// goes on until the timeout. A truncated answer sends the request
    /// again over TCP.
    pub fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        if request.len() < HEADER_LEN {
            return Err(TransportError::Io(
                "request shorter than a DNS header".into(),
            ));
        }
        let id = [request[0], request[1]];
        let deadline = Instant::now() + self.timeout;
        let answer = match self.exchange_udp(request, id, deadline) {
            Ok(a) => a,
            Err(e) => {
                // A socket that failed (ICMP unreachable is reported on the
                // next call too) is opened again for the next exchange.
                self.socket = None;
                return Err(e);
            }
        };
        if answer[2] & TC == 0 {
            return Ok(answer);
        }
        exchange_tcp(self.addr, request, id, deadline)
    }

    fn exchange_udp(
        &mut self,
        request: &[u8],
        id: [u8; 2],
        deadline: Instant,
    ) -> Result<Vec<u8>, TransportError> {
        let addr = self.addr;
        if self.socket.as_ref().is_some_and(|(a, _)| *a != addr) {
            self.socket = None;
        }
        let (_, socket) = match &mut self.socket {
            Some(s) => s,
            slot => slot.insert((addr, open_udp(addr).map_err(io_error)?)),
        };
        socket.send(request).map_err(io_error)?;
        let mut buf = vec![0u8; UDP_MAX];
        loop {
            let left = remaining(deadline)?;
            socket.set_read_timeout(Some(left)).map_err(io_error)?;
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if is_timeout(&e) => return Err(TransportError::Timeout),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e)),
            };
            if is_answer_to(&buf[..n], id) {
                buf.truncate(n);
                return Ok(buf);
            }
        }
    }
}

/// A UDP socket on an ephemeral port, connected to the server: the kernel
/// then delivers only the server's datagrams, and ICMP errors reach us.
fn open_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(addr)?;
    Ok(socket)
}

/// RFC 1035 §4.2.2: each message preceded by its length in two bytes.
fn exchange_tcp(
    addr: SocketAddr,
    request: &[u8],
    id: [u8; 2],
    deadline: Instant,
) -> Result<Vec<u8>, TransportError> {
    let len = u16::try_from(request.len())
        .map_err(|_| TransportError::Io("request longer than 65535 bytes".into()))?;
    let mut stream = TcpStream::connect_timeout(&addr, remaining(deadline)?).map_err(io_error)?;
    stream.set_nodelay(true).map_err(io_error)?;
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(io_error)?;
    let mut framed = Vec::with_capacity(request.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(request);
    stream.write_all(&framed).map_err(io_error)?;
    // The server may send other messages on the stream first (it does not
    // for an update, but nothing stops it): skip those as over UDP.
    loop {
        let mut head = [0u8; 2];
        read_exact_by(&mut stream, &mut head, deadline)?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(head))];
        read_exact_by(&mut stream, &mut answer, deadline)?;
        if is_answer_to(&answer, id) {
            return Ok(answer);
        }
    }
}

fn read_exact_by(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<(), TransportError> {
    let mut done = 0;
    while done < buf.len() {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(io_error)?;
        match stream.read(&mut buf[done..]) {
            Ok(0) => {
                return Err(TransportError::Io(
                    "the server closed the TCP connection before its answer".into(),
                ));
            }
            Ok(n) => done += n,
            Err(e) if is_timeout(&e) => return Err(TransportError::Timeout),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    Ok(())
}

/// An answer (QR set) with our id, at least a header long.
fn is_answer_to(msg: &[u8], id: [u8; 2]) -> bool {
    msg.len() >= HEADER_LEN && msg[..2] == id && msg[2] & QR != 0
}

fn remaining(deadline: Instant) -> Result<Duration, TransportError> {
    let left = deadline.saturating_duration_since(Instant::now());
    // A zero read timeout means "block forever" to the socket calls.
    if left < Duration::from_millis(1) {
        Err(TransportError::Timeout)
    } else {
        Ok(left)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn io_error(e: io::Error) -> TransportError {
    TransportError::Io(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_matched_by_id_and_qr_and_runts_are_skipped() {
        let mut answer = [0u8; 12];
        answer[0] = 0xab;
        answer[1] = 0xcd;
        answer[2] = QR;
        assert!(is_answer_to(&answer, [0xab, 0xcd]));
        assert!(!is_answer_to(&answer, [0xab, 0xce]));
        assert!(!is_answer_to(&answer[..11], [0xab, 0xcd]));
        answer[2] = 0;
        assert!(!is_answer_to(&answer, [0xab, 0xcd]), "a query is no answer");
    }

    #[test]
    fn a_short_request_is_refused_before_any_socket() {
        let mut s = Server::new("192.0.2.53:53".parse().unwrap(), Duration::from_secs(1));
        assert!(matches!(s.exchange(&[0; 5]), Err(TransportError::Io(_))));
        assert!(s.socket.is_none());
    }
}
