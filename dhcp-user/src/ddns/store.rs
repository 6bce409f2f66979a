//! What DNS holds of ours, on disk: one file, `ddns.state`, beside the
//! lease journal.
//!
//! The lease journal says what DNS *should* hold (every live binding);
//! this file says what it *does*, as far as the server confirmed. The
//! updates still to send are the difference, so nothing pending is kept
//! anywhere: after a crash, the next start recomputes it from the two
//! files and sends it. That is how an update survives a restart although
//! it never sat in a queue on disk.
//!
//! A name is written as `Sending` before its update leaves and as `Held`
//! once the server said yes; a removal as `Gone` once confirmed. A
//! `Sending` entry found at start counts as possibly in DNS: it is
//! removed if its lease is gone, so a crash between the server's answer
//! and our write cannot leave a stale record behind.
//!
//! Framing is the journal's: a length, a CRC32C over length and body, the
//! body. The file is read up to the first frame that does not check out (a
//! torn tail after a crash) and rewritten whole at open and whenever it
//! has grown to several times what it holds.
use super::state::{Binding, Held};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "ddns.state";
const FRAME_HEAD: usize = 8;
const MAX_BODY: usize = 2 + 4 + 1 + 1 + 4 + 35 + 1 + 255;

const KIND_SENDING: u8 = 1;
const KIND_HELD: u8 = 2;
const KIND_GONE: u8 = 3;

const F_FORWARD: u8 = 1;
const F_REVERSE: u8 = 2;
const F_CONFLICT: u8 = 4;

/// (subnet, address): one binding per address, as in the journal.
pub type Key = (u16, Ipv4Addr);

/// The open file and what it held.
pub struct Store {
    path: PathBuf,
    file: File,
    /// Frames appended since the last rewrite, and entries live after it:
    /// the rewrite is due when the first outgrows the second.
    appended: u64,
    live: u64,
    dirty: bool,
    buf: Vec<u8>,
}

impl Store {
    /// Opens (or creates) the state file in `dir` and returns what DNS
    /// holds of ours, then rewrites the file to exactly that.
    pub fn open(dir: &Path) -> io::Result<(Store, HashMap<Key, Held>)> {
        fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let mut held = HashMap::new();
        match File::open(&path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)?;
                replay(&bytes, &mut held);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let file = rewrite(&path, &held)?;
        let live = held.len() as u64;
        Ok((
            Store {
                path,
                file,
                appended: 0,
                live,
                dirty: false,
                buf: Vec::with_capacity(4096),
            },
            held,
        ))
    }

    /// Notes that an update for `b` is about to leave.
    pub fn sending(&mut self, key: Key, b: &Binding) -> io::Result<()> {
        self.put(key, KIND_SENDING, Some((b, false)))
    }

    /// Notes that the server holds `h` for `key`.
    pub fn held(&mut self, key: Key, h: &Held) -> io::Result<()> {
        self.put(key, KIND_HELD, Some((&h.binding, h.conflict)))
    }

    /// Notes that the server holds nothing of ours for `key`.
    pub fn gone(&mut self, key: Key) -> io::Result<()> {
        self.put(key, KIND_GONE, None)
    }

    fn put(&mut self, key: Key, kind: u8, b: Option<(&Binding, bool)>) -> io::Result<()> {
        self.buf.clear();
        encode(&mut self.buf, key, kind, b);
        self.file.write_all(&self.buf)?;
        self.appended += 1;
        self.dirty = true;
        Ok(())
    }

    /// Syncs what was appended since the last call. The caller does it
    /// now and then, not per entry: a lost tail only makes the next start
    /// send some updates again (they are idempotent).
    pub fn sync(&mut self) -> io::Result<()> {
        if self.dirty {
            self.file.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Whether the file has grown enough to be rewritten from `held`.
    pub fn wants_rewrite(&self) -> bool {
        self.appended > 4 * self.live + 65_536
    }

    /// Rewrites the file to hold exactly `held`.
    pub fn rewrite(&mut self, held: &HashMap<Key, Held>) -> io::Result<()> {
        self.file = rewrite(&self.path, held)?;
        self.appended = 0;
        self.live = held.len() as u64;
        self.dirty = false;
        Ok(())
    }
}

/// What the state file in `dir` says DNS holds, read only (for `xdhcpd
/// leases`, also while the daemon runs); empty without a file.
pub fn read(dir: &Path) -> io::Result<HashMap<Key, Held>> {
    let mut held = HashMap::new();
    match fs::read(dir.join(FILE_NAME)) {
        Ok(bytes) => replay(&bytes, &mut held),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(held)
}

/// Writes `held` to a new file, syncs it, renames it over the old one and
/// syncs the folder; returns the new file open for appending.
fn rewrite(path: &Path, held: &HashMap<Key, Held>) -> io::Result<File> {
    let tmp = path.with_extension("state.new");
    let mut buf = Vec::with_capacity(held.len() * 96);
    for (k, h) in held {
        let kind = if h.confirmed { KIND_HELD } else { KIND_SENDING };
        encode(&mut buf, *k, kind, Some((&h.binding, h.conflict)));
    }
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    OpenOptions::new().append(true).open(path)
}

fn encode(out: &mut Vec<u8>, key: Key, kind: u8, b: Option<(&Binding, bool)>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEAD]);
    out.extend_from_slice(&key.0.to_le_bytes());
    out.extend_from_slice(&key.1.octets());
    out.push(kind);
    if let Some((b, conflict)) = b {
        let mut flags = 0;
        if b.forward {
            flags |= F_FORWARD;
        }
        if b.reverse {
            flags |= F_REVERSE;
        }
        if conflict {
            flags |= F_CONFLICT;
        }
        out.push(flags);
        out.extend_from_slice(&b.ttl.to_le_bytes());
        out.extend_from_slice(&b.dhcid);
        let name = &b.fqdn.as_bytes()[..b.fqdn.len().min(255)];
        out.push(name.len() as u8);
        out.extend_from_slice(name);
    }
    let body_len = (out.len() - start - FRAME_HEAD) as u32;
    out[start..start + 4].copy_from_slice(&body_len.to_le_bytes());
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&out[start..start + 4]),
        &out[start + FRAME_HEAD..],
    );
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Applies every whole frame of `bytes` to `held`, in order; stops at the
/// first one that is cut short or does not check out.
fn replay(mut bytes: &[u8], held: &mut HashMap<Key, Held>) {
    while bytes.len() >= FRAME_HEAD {
        let len = u32::from_le_bytes(bytes[..4].try_into().unwrap_or_default()) as usize;
        if len > MAX_BODY || bytes.len() < FRAME_HEAD + len {
            return;
        }
        let crc = u32::from_le_bytes(bytes[4..8].try_into().unwrap_or_default());
        let body = &bytes[FRAME_HEAD..FRAME_HEAD + len];
        if crc32c::crc32c_append(crc32c::crc32c(&bytes[..4]), body) != crc {
            return;
        }
        let Some((key, entry)) = decode(body) else {
            return;
        };
        match entry {
            Some(h) => {
                held.insert(key, h);
            }
            None => {
                held.remove(&key);
            }
        }
        bytes = &bytes[FRAME_HEAD + len..];
    }
}

fn decode(b: &[u8]) -> Option<(Key, Option<Held>)> {
    let subnet = u16::from_le_bytes(b.get(0..2)?.try_into().ok()?);
    let addr = Ipv4Addr::from(<[u8; 4]>::try_from(b.get(2..6)?).ok()?);
    let kind = *b.get(6)?;
    let key = (subnet, addr);
    if kind == KIND_GONE {
        return (b.len() == 7).then_some((key, None));
    }
    if kind != KIND_SENDING && kind != KIND_HELD {
        return None;
    }
    let flags = *b.get(7)?;
    let ttl = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?);
    let dhcid: [u8; 35] = b.get(12..47)?.try_into().ok()?;
    let n = usize::from(*b.get(47)?);
    let name = b.get(48..48 + n)?;
    if b.len() != 48 + n {
        return None;
    }
    let fqdn = String::from_utf8(name.to_vec()).ok()?;
    Some((
        key,
        Some(Held {
            binding: Binding {
                fqdn,
                forward: flags & F_FORWARD != 0,
                reverse: flags & F_REVERSE != 0,
                dhcid,
                ttl,
            },
            confirmed: kind == KIND_HELD,
            conflict: flags & F_CONFLICT != 0,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn new(what: &str) -> Dir {
            let p = std::env::temp_dir().join(format!(
                "xdhcp-ddns-store-{what}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&p);
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn binding(i: u8) -> Binding {
        Binding {
            fqdn: format!("host-{i}.lab.example."),
            forward: i.is_multiple_of(2),
            reverse: true,
            dhcid: [i; 35],
            ttl: 2400 + u32::from(i),
        }
    }

    fn key(i: u8) -> Key {
        (u16::from(i % 2), Ipv4Addr::new(198, 18, 0, i))
    }

    #[test]
    fn what_was_held_comes_back_after_a_reopen_and_gone_entries_do_not() {
        let d = Dir::new("reopen");
        {
            let (mut s, held) = Store::open(&d.0).unwrap();
            assert!(held.is_empty());
            for i in 0..10 {
                s.sending(key(i), &binding(i)).unwrap();
                if i % 3 != 0 {
                    let h = Held {
                        binding: binding(i),
                        confirmed: true,
                        conflict: i == 4,
                    };
                    s.held(key(i), &h).unwrap();
                }
            }
            s.gone(key(2)).unwrap();
            s.sync().unwrap();
        }
        let (_, held) = Store::open(&d.0).unwrap();
        assert_eq!(held.len(), 9);
        assert!(!held.contains_key(&key(2)));
        for i in [0u8, 3, 6, 9] {
            let h = &held[&key(i)];
            assert!(!h.confirmed, "{i} was only being sent");
            assert_eq!(h.binding, binding(i));
        }
        assert!(held[&key(4)].confirmed && held[&key(4)].conflict);
        assert!(held[&key(5)].confirmed && !held[&key(5)].conflict);
        // The reopen rewrote the file: a third open reads the same, and
        // so does a reader.
        assert_eq!(read(&d.0).unwrap(), held);
        let (_, again) = Store::open(&d.0).unwrap();
        assert_eq!(again, held);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_where_reading_stops() {
        let d = Dir::new("torn");
        {
            let (mut s, _) = Store::open(&d.0).unwrap();
            for i in 0..5 {
                s.sending(key(i), &binding(i)).unwrap();
            }
        }
        let path = d.0.join(FILE_NAME);
        let whole = fs::read(&path).unwrap();
        let frame = whole.len() / 5;
        // Every cut inside the last frame keeps the first four.
        for cut in (whole.len() - frame + 1)..whole.len() {
            fs::write(&path, &whole[..cut]).unwrap();
            let (_, held) = Store::open(&d.0).unwrap();
            assert_eq!(held.len(), 4, "cut at {cut}");
        }
        // A flipped bit in the third frame drops it and what follows.
        let mut bad = whole.clone();
        bad[2 * frame + 12] ^= 1;
        fs::write(&path, &bad).unwrap();
        let (_, held) = Store::open(&d.0).unwrap();
        assert_eq!(held.len(), 2);
    }

    #[test]
    fn a_rewrite_keeps_exactly_the_entries_given() {
        let d = Dir::new("rewrite");
        let (mut s, mut held) = Store::open(&d.0).unwrap();
        for i in 0..20 {
            s.sending(key(i), &binding(i)).unwrap();
            held.insert(
                key(i),
                Held {
                    binding: binding(i),
                    confirmed: false,
                    conflict: false,
                },
            );
        }
        held.retain(|k, _| k.1.octets()[3] < 7);
        s.rewrite(&held).unwrap();
        s.gone(key(1)).unwrap();
        drop(s);
        let (_, back) = Store::open(&d.0).unwrap();
        held.remove(&key(1));
        assert_eq!(back, held);
    }
}
