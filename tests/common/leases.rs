//! Helpers of the lease lab tests (tests/lab_leases.rs): a throwaway XFS
//! on a loop device whose power can be cut, a relay agent in the lab's
//! client namespace that speaks DHCP over a plain UDP socket, the state
//! of a process. (The dhclient whose lease file outlives one run,
//! `DhclientHome`, is in `common`.)
// The including test binary may use only a part of it.
#![allow(dead_code)]

use anyhow::{Context, Result, bail, ensure};
use dhcproto::v4::{DhcpOption, Flags, HType, Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder, Encodable};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use xtask::daemon::temp_dir;
use xtask::lab::{Lab, run};

/// An XFS file system in a sparse image file on a loop device, mounted in
/// a temp dir. Dropping it unmounts it, detaches the loop device and
/// removes the image, whatever state a failing test left it in.
pub struct Xfs {
    dir: PathBuf,
    img: PathBuf,
    mnt: PathBuf,
    dev: Option<String>,
    mounted: bool,
}

impl Xfs {
    /// `truncate -s 300M IMG; losetup -f --show IMG; mkfs.xfs -q DEV;
    /// mount DEV MNT`.
    pub fn create() -> Result<Xfs> {
        let dir = temp_dir("xfs")?;
        let mut fs = Xfs {
            img: dir.join("xfs.img"),
            mnt: dir.join("mnt"),
            dir,
            dev: None,
            mounted: false,
        };
        std::fs::create_dir(&fs.mnt)?;
        std::fs::File::create(&fs.img)?.set_len(300 << 20)?;
        let out = run(Command::new("losetup").args(["-f", "--show"]).arg(&fs.img))?;
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        ensure!(dev.starts_with("/dev/loop"), "losetup printed {dev:?}");
        fs.dev = Some(dev.clone());
        run(Command::new("mkfs.xfs").args(["-q", &dev])).context("is xfsprogs installed?")?;
        fs.mount()?;
        Ok(fs)
    }

    pub fn mount_point(&self) -> &Path {
        &self.mnt
    }

    fn mount(&mut self) -> Result<()> {
        let dev = self.dev.as_deref().context("no loop device")?;
        run(Command::new("mount").arg(dev).arg(&self.mnt))?;
        self.mounted = true;
        Ok(())
    }

    /// The power cut: `xfs_io -x -c shutdown MNT` without `-f`, so the
    /// log is not flushed and only what was synced survives.
    pub fn shutdown(&self) -> Result<()> {
        run(Command::new("xfs_io")
            .args(["-x", "-c", "shutdown"])
            .arg(&self.mnt))?;
        Ok(())
    }

    /// Unmounts (after a shutdown) and mounts again: XFS replays its log,
    /// as after a reboot.
    pub fn remount(&mut self) -> Result<()> {
        self.unmount()?;
        self.mount()
    }

    fn unmount(&mut self) -> Result<()> {
        if !self.mounted {
            return Ok(());
        }
        // A process that was just killed may hold a file open for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match run(Command::new("umount").arg(&self.mnt)) {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        self.mounted = false;
        Ok(())
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            eprintln!("xfs: {e:#}; detaching it lazily");
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        if let Some(dev) = self.dev.take()
            && let Err(e) = run(Command::new("losetup").args(["-d", &dev]))
        {
            eprintln!("xfs: {e:#}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A DHCP relay agent in the lab's client namespace: a UDP socket bound
/// to `giaddr:67` there. Whatever it sends carries `giaddr`, so the server
/// answers to this socket, and no address has to be configured per client.
pub struct Relay {
    sock: UdpSocket,
    pub giaddr: Ipv4Addr,
    pub server: Ipv4Addr,
}

/// How often an unanswered request is sent in all: enough that a lost
/// frame is not taken for a server that stays silent on purpose.
const TRIES: usize = 3;
const REPLY_TIMEOUT: Duration = Duration::from_millis(400);
/// Requests in flight at once: well inside the server's rings.
const WINDOW: usize = 256;

impl Relay {
    pub fn open(lab: &Lab, giaddr: Ipv4Addr, server: Ipv4Addr) -> Result<Relay> {
        let ns_file = PathBuf::from("/run/netns").join(&lab.cli_ns);
        // setns(2) moves only the calling thread, so a short-lived thread
        // enters the namespace and makes the socket there; a socket keeps
        // the namespace it was made in, whichever thread uses it later.
        let sock = std::thread::spawn(move || -> Result<UdpSocket> {
            let ns = std::fs::File::open(&ns_file)
                .with_context(|| format!("opening {}", ns_file.display()))?;
            // SAFETY: setns(2) on a namespace file we hold open; it only
            // changes this thread's network namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                bail!(
                    "setns {}: {}",
                    ns_file.display(),
                    std::io::Error::last_os_error()
                );
            }
            // Bound to the lab's own address: in any other namespace this
            // fails, so nothing is ever sent from outside the lab.
            UdpSocket::bind(SocketAddrV4::new(giaddr, 67))
                .with_context(|| format!("binding {giaddr}:67 in the client namespace"))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))??;
        set_rcvbuf(&sock, 4 << 20)?;
        Ok(Relay {
            sock,
            giaddr,
            server,
        })
    }

    /// A request as this relay forwards it: giaddr set, one hop.
    pub fn message(&self, kind: MessageType, xid: u32, mac: [u8; 6]) -> Message {
        let u = Ipv4Addr::UNSPECIFIED;
        let mut m = Message::new_with_id(xid, u, u, u, self.giaddr, &mac);
        m.set_opcode(Opcode::BootRequest)
            .set_htype(HType::Eth)
            .set_hops(1)
            .set_flags(Flags::default());
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        m
    }

    pub fn discover(&self, xid: u32, mac: [u8; 6]) -> Message {
        self.message(MessageType::Discover, xid, mac)
    }

    /// SELECTING: the client takes `addr` from this server's offer.
    pub fn select(&self, xid: u32, mac: [u8; 6], addr: Ipv4Addr) -> Message {
        let mut m = self.message(MessageType::Request, xid, mac);
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(addr));
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(self.server));
        m
    }

    /// RENEWING: a bound client extends `addr` (ciaddr, no option 50/54).
    pub fn renew(
        &self,
        xid: u32,
        mac: [u8; 6],
        addr: Ipv4Addr,
        client_id: Option<&[u8]>,
    ) -> Message {
        let mut m = self.message(MessageType::Request, xid, mac);
        m.set_ciaddr(addr);
        if let Some(id) = client_id {
            m.opts_mut()
                .insert(DhcpOption::ClientIdentifier(id.to_vec()));
        }
        m
    }

    pub fn release(&self, xid: u32, mac: [u8; 6], addr: Ipv4Addr) -> Message {
        let mut m = self.message(MessageType::Release, xid, mac);
        m.set_ciaddr(addr);
        m.opts_mut()
            .insert(DhcpOption::ServerIdentifier(self.server));
        m
    }

    /// Sends without waiting for a reply (RELEASE has none).
    pub fn send(&self, m: &Message) -> Result<()> {
        let bytes = m.to_vec().context("encoding")?;
        self.sock
            .send_to(&bytes, SocketAddrV4::new(self.server, 67))
            .context("sending to the server")?;
        Ok(())
    }

    /// Sends every request (distinct xids), `WINDOW` at a time, and
    /// collects the reply to each by xid; a request left unanswered is
    /// sent again, `TRIES` times in all. Requests without a reply are
    /// missing from the map. Replies whose chaddr differs from their
    /// request's are an error: the server mixed up two clients.
    pub fn exchange(&self, reqs: &[Message]) -> Result<HashMap<u32, Message>> {
        let by_xid: HashMap<u32, &Message> = reqs.iter().map(|m| (m.xid(), m)).collect();
        ensure!(by_xid.len() == reqs.len(), "requests share xids");
        let mut replies = HashMap::new();
        let mut pending: Vec<u32> = reqs.iter().map(Message::xid).collect();
        for _ in 0..TRIES {
            for chunk in pending.chunks(WINDOW) {
                for xid in chunk {
                    self.send(by_xid[xid])?;
                }
                let deadline = Instant::now() + REPLY_TIMEOUT;
                while chunk.iter().any(|x| !replies.contains_key(x)) {
                    let Some(reply) = self.recv_until(deadline)? else {
                        break;
                    };
                    let Some(req) = by_xid.get(&reply.xid()) else {
                        continue;
                    };
                    ensure!(
                        reply.chaddr() == req.chaddr(),
                        "reply for xid {:#x} names chaddr {:02x?}, the request {:02x?}",
                        reply.xid(),
                        reply.chaddr(),
                        req.chaddr()
                    );
                    replies.insert(reply.xid(), reply);
                }
            }
            pending.retain(|x| !replies.contains_key(x));
            if pending.is_empty() {
                break;
            }
        }
        Ok(replies)
    }

    /// The next BOOTREPLY that decodes, or `None` at the deadline.
    fn recv_until(&self, deadline: Instant) -> Result<Option<Message>> {
        let mut buf = [0u8; 1500];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock.set_read_timeout(Some(left))?;
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Ok(m) = Message::decode(&mut Decoder::new(&buf[..n]))
                        && m.opcode() == Opcode::BootReply
                    {
                        return Ok(Some(m));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e).context("receiving replies"),
            }
        }
    }
}

fn set_rcvbuf(sock: &UdpSocket, bytes: libc::c_int) -> Result<()> {
    // SAFETY: setsockopt(2) reads `size_of::<c_int>()` bytes from a live
    // local; the fd is owned by `sock`.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    ensure!(rc == 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
    Ok(())
}

pub fn msg_type(m: &Message) -> Option<MessageType> {
    m.opts().msg_type()
}

/// A locally administered MAC for simulated client `i` of a group.
pub fn client_mac(group: u8, i: u32) -> [u8; 6] {
    let [_, a, b, c] = i.to_be_bytes();
    [0x02, 0x6c, group, a, b, c]
}
