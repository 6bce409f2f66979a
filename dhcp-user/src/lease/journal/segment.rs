//! The journal's files on disk: their names, their header, and reading
//! their records back with a clear verdict on where and why reading
//! stopped (clean end, torn tail, corruption).
use super::record::{self, Body, FRAME_HEAD, LeaseRecord, MAX_BODY};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: [u8; 8] = *b"XDHCPJNL";
pub(crate) const VERSION: u16 = 1;
pub(crate) const HEADER_LEN: u64 = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Journal = 1,
    Snapshot = 2,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Journal => "journal-",
            Kind::Snapshot => "snapshot-",
        }
    }
}

/// `journal-0000000000000003.log` holds the records written after the
/// snapshot of generation 3 was cut; `snapshot-0000000000000003.snap` is
/// the state up to the end of `journal-…02.log`.
pub(crate) fn file_name(kind: Kind, generation: u64) -> String {
    match kind {
        Kind::Journal => format!("journal-{generation:016}.log"),
        Kind::Snapshot => format!("snapshot-{generation:016}.snap"),
    }
}

pub(crate) fn tmp_name(generation: u64) -> String {
    format!("{}.tmp", file_name(Kind::Snapshot, generation))
}

/// What a directory holds, by generation, ascending.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub journals: Vec<u64>,
    pub snapshots: Vec<u64>,
    /// Half-written snapshots: leftovers of a compaction cut short.
    pub temps: Vec<PathBuf>,
}

pub(crate) fn list(dir: &Path) -> io::Result<Listing> {
    let mut l = Listing::default();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".snap.tmp") {
            l.temps.push(dir.join(name));
        } else if let Some(g) = parse_gen(name, Kind::Journal, ".log") {
            l.journals.push(g);
        } else if let Some(g) = parse_gen(name, Kind::Snapshot, ".snap") {
            l.snapshots.push(g);
        }
    }
    l.journals.sort_unstable();
    l.snapshots.sort_unstable();
    Ok(l)
}

fn parse_gen(name: &str, kind: Kind, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(kind.prefix())?.strip_suffix(suffix)?;
    (digits.len() == 16 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

pub(crate) fn header(kind: Kind, generation: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    h[10] = kind as u8;
    h[12..20].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Makes a durable, empty journal file: header written and synced, and
/// the directory entry synced, so a record appended to it later is never
/// behind a name that a crash could lose.
pub(crate) fn create_journal(dir: &Path, generation: u64) -> io::Result<File> {
    let path = dir.join(file_name(Kind::Journal, generation));
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    f.write_all(&header(Kind::Journal, generation))?;
    // The first stretch of zeros goes down with the header's sync, so the
    // first groups overwrite blocks that are already there.
    write_zeros(&f, HEADER_LEN, next_fill(HEADER_LEN, HEADER_LEN))?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok(f)
}

/// Smallest lead of zeros a journal file keeps ahead of its last record.
pub(crate) const MIN_FILL: u64 = 64 << 10;
/// Largest: the lead is the file's own size (so a busy journal makes few
/// extensions and an idle one, or a test's, stays small) up to this.
pub(crate) const MAX_FILL: u64 = 8 << 20;
/// Most zeros written at once, between two groups. The writer fills while
/// the next group waits (in durable mode it syncs the zeros too), so one
/// fill of the whole 8 MiB lead held every ACK behind it for as long as
/// writing and syncing 8 MiB takes, several times a second at full rate;
/// in bites of this size the wait is one bite's, and a bite is still
/// larger than a usual group, so the lead is kept.
pub(crate) const FILL_CHUNK: u64 = 512 << 10;

/// The lead of zeros wanted ahead of a file written up to `pos`.
fn lead(pos: u64) -> u64 {
    pos.clamp(MIN_FILL, MAX_FILL)
}

/// Where a file written up to `pos` and zero-filled up to `filled` should
/// be zero-filled to next, rounded to whole 4 KiB blocks: up to the lead,
/// and never more than [`FILL_CHUNK`] at once.
///
/// Why zeros ahead of the writer: a group that grows the file (or lands
/// in blocks the file system has only reserved, as `fallocate` leaves
/// them) changes its size or extent map, so the group's `fdatasync` must
/// commit the file system's own journal as well — on ext4 in ordered
/// mode that commit waits for every other file's dirty data in the same
/// transaction, which is what made single syncs take 100 ms and more on
/// a disk shared with compilers while the median was 0.3 ms. Overwriting
/// blocks that were written and synced once changes no metadata, so the
/// sync is the data and a cache flush. Recovery reads the zeros after the
/// last record as the end (see `classify_tail`).
pub(crate) fn next_fill(pos: u64, filled: u64) -> u64 {
    let from = filled.max(pos);
    (pos + lead(pos))
        .min(from + FILL_CHUNK)
        .max(from + 1)
        .next_multiple_of(4096)
}

/// Whether the zeros ahead of `pos` are running short: a bite (or, for a
/// small lead, half of it) used up since the last fill.
pub(crate) fn fill_due(pos: u64, filled: u64) -> bool {
    let lead = lead(pos);
    filled.saturating_sub(pos) < lead - (lead / 2).min(FILL_CHUNK)
}

/// Writes zeros over `[from, to)` of `f` (not synced).
pub(crate) fn write_zeros(f: &File, from: u64, to: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    static ZEROS: [u8; 256 << 10] = [0; 256 << 10];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        f.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Where and why reading a file stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The file ends after a whole record.
    Clean,
    /// The last record is incomplete or garbled, with nothing valid after
    /// it: a write cut short by a crash. Safe to cut away.
    Torn,
    /// A record that does not check out, with more data after it. What
    /// follows cannot be trusted; reading stops here.
    Corrupt,
}

#[derive(Debug)]
pub(crate) struct Scan {
    pub records: u64,
    /// Count carried by a snapshot's end record, when one was read.
    pub end: Option<u64>,
    /// Bytes up to the end of the last good record (or of the header).
    pub valid_len: u64,
    pub stop: Stop,
}

/// Reads every record of `path` in order into `f`, stopping at the first
/// one that does not check out.
pub(crate) fn scan(
    path: &Path,
    kind: Kind,
    generation: u64,
    mut f: impl FnMut(&LeaseRecord),
) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut out = Scan {
        records: 0,
        end: None,
        valid_len: 0,
        stop: Stop::Clean,
    };
    let mut h = [0u8; HEADER_LEN as usize];
    if file_len < HEADER_LEN {
        // A crash between creating the file and syncing its header.
        out.stop = if file_len == 0 {
            Stop::Clean
        } else {
            Stop::Torn
        };
        return Ok(out);
    }
    r.read_exact(&mut h)?;
    let version = u16::from_le_bytes([h[8], h[9]]);
    if h[..8] != MAGIC || crc32c::crc32c(&h[..20]).to_le_bytes() != h[20..24] {
        out.stop = Stop::Corrupt;
        return Ok(out);
    }
    if version > VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: written by a newer xdhcpd (format {version})",
                path.display()
            ),
        ));
    }
    if h[10] != kind as u8 || h[12..20] != generation.to_le_bytes() {
        out.stop = Stop::Corrupt;
        return Ok(out);
    }
    out.valid_len = HEADER_LEN;
    let mut body = [0u8; MAX_BODY];
    loop {
        let at = out.valid_len;
        let rest = file_len - at;
        if rest == 0 {
            return Ok(out);
        }
        if out.end.is_some() {
            // Nothing may follow a snapshot's end record.
            out.stop = Stop::Corrupt;
            return Ok(out);
        }
        let mut head = [0u8; FRAME_HEAD];
        let bad = if rest < FRAME_HEAD as u64 {
            true
        } else {
            r.read_exact(&mut head)?;
            let len_bytes: [u8; 4] = head[..4].try_into().unwrap_or_default();
            let len = u32::from_le_bytes(len_bytes) as usize;
            if len == 0 || len > MAX_BODY || FRAME_HEAD as u64 + len as u64 > rest {
                true
            } else {
                r.read_exact(&mut body[..len])?;
                let crc = u32::from_le_bytes(head[4..8].try_into().unwrap_or_default());
                if crc != record::frame_crc(len_bytes, &body[..len]) {
                    // A garbled last record is a torn write, not rot.
                    if FRAME_HEAD as u64 + len as u64 == rest {
                        out.stop = Stop::Torn;
                        return Ok(out);
                    }
                    true
                } else {
                    match record::decode_body(&body[..len]) {
                        Some(Body::Lease(rec)) => {
                            f(&rec);
                            out.records += 1;
                        }
                        Some(Body::End(n)) => out.end = Some(n),
                        None => {
                            out.stop = Stop::Corrupt;
                            return Ok(out);
                        }
                    }
                    out.valid_len += (FRAME_HEAD + len) as u64;
                    false
                }
            }
        };
        if bad {
            out.stop = classify_tail(path, at, file_len)?;
            return Ok(out);
        }
    }
}

/// A bad frame at `at`: torn when nothing but zeros follows it (or it runs
/// past the end) — a file system may leave the unwritten end of a crashed
/// append as a hole of zeros, and a journal file is zero-filled ahead of
/// its last record (see [`next_fill`]), so a record cut short inside it
/// is followed by zeros — corrupt when real data follows.
fn classify_tail(path: &Path, at: u64, file_len: u64) -> io::Result<Stop> {
    let mut f = File::open(path)?;
    io::Seek::seek(&mut f, io::SeekFrom::Start(at))?;
    let mut head = [0u8; FRAME_HEAD];
    let n = read_up_to(&mut f, &mut head)?;
    if n < FRAME_HEAD {
        return Ok(Stop::Torn);
    }
    let len = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
    let plausible = len != 0 && len <= MAX_BODY as u64;
    if plausible && at + FRAME_HEAD as u64 + len > file_len {
        return Ok(Stop::Torn);
    }
    // What must be zeros for the frame to be the torn end: all of it from
    // `at`, or, after a head with a length, everything after the frame it
    // claims to be (its body is what was cut short). A head with a junk
    // length is damage.
    if head.iter().any(|&b| b != 0) {
        if !plausible {
            return Ok(Stop::Corrupt);
        }
        io::Seek::seek(&mut f, io::SeekFrom::Current(len as i64))?;
    }
    let mut rest = BufReader::new(f);
    let mut chunk = [0u8; 8192];
    loop {
        let k = rest.read(&mut chunk)?;
        if k == 0 {
            return Ok(Stop::Torn);
        }
        if chunk[..k].iter().any(|&b| b != 0) {
            return Ok(Stop::Corrupt);
        }
    }
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups of every size, as the writer meets them: a fill is never
    /// more than a bite, and once the lead stands, groups smaller than
    /// half a bite never take it below the wanted lead less a bite; after
    /// a group larger than the zeros (which grows the file) it comes back.
    #[test]
    fn zeros_are_kept_ahead_in_bites() {
        let mut pos = HEADER_LEN;
        let mut filled = next_fill(pos, pos);
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let (mut fills, mut steady) = (0, false);
        let floor = |pos: u64| lead(pos).saturating_sub(FILL_CHUNK);
        for i in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Mostly groups of up to 64 KiB, one in a thousand of 1.5 MiB
            // (16 Ki records of 96 bytes, the largest group).
            let group = if i % 1000 == 500 {
                1_572_864
            } else {
                rng % (64 << 10) + 96
            };
            pos += group;
            if fill_due(pos, filled) {
                let from = filled.max(pos);
                let to = next_fill(pos, filled);
                assert!(to > from, "a fill that adds nothing");
                assert!(to - from <= FILL_CHUNK + 4096, "a fill of {}", to - from);
                assert_eq!(to % 4096, 0);
                filled = to;
                fills += 1;
            }
            let ahead = filled.saturating_sub(pos);
            assert!(ahead <= lead(pos) + 4096, "{ahead} bytes ahead at {pos}");
            if steady && group <= FILL_CHUNK / 2 {
                assert!(ahead >= floor(pos), "{ahead} bytes ahead at {pos}");
            }
            steady = ahead >= floor(pos);
        }
        assert!(
            steady,
            "the lead did not come back after the last large group"
        );
        // Some 700 MiB written: a fill per bite or so, not one per group.
        assert!(fills < 20_000 / 4, "{fills} fills for 20,000 groups");
    }

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        let dir = crate::lease::journal::tests::TempDir::new("names");
        for (k, g) in [
            (Kind::Journal, 1),
            (Kind::Journal, 12),
            (Kind::Snapshot, 12),
        ] {
            File::create(dir.0.join(file_name(k, g))).unwrap();
        }
        File::create(dir.0.join(tmp_name(13))).unwrap();
        File::create(dir.0.join("journal-12.log")).unwrap();
        File::create(dir.0.join("journal-0000000000000012.log.corrupt")).unwrap();
        File::create(dir.0.join("notes.txt")).unwrap();
        let l = list(&dir.0).unwrap();
        assert_eq!(l.journals, vec![1, 12]);
        assert_eq!(l.snapshots, vec![12]);
        assert_eq!(l.temps, vec![dir.0.join(tmp_name(13))]);
    }

    #[test]
    fn header_checks_kind_generation_and_version() {
        let dir = crate::lease::journal::tests::TempDir::new("header");
        let p = dir.0.join("x");
        fs::write(&p, header(Kind::Journal, 5)).unwrap();
        let s = scan(&p, Kind::Journal, 5, |_| {}).unwrap();
        assert_eq!((s.stop, s.valid_len), (Stop::Clean, HEADER_LEN));
        assert_eq!(
            scan(&p, Kind::Snapshot, 5, |_| {}).unwrap().stop,
            Stop::Corrupt
        );
        assert_eq!(
            scan(&p, Kind::Journal, 6, |_| {}).unwrap().stop,
            Stop::Corrupt
        );
        let mut newer = header(Kind::Journal, 5);
        newer[8] = 9;
        let crc = crc32c::crc32c(&newer[..20]);
        newer[20..].copy_from_slice(&crc.to_le_bytes());
        fs::write(&p, newer).unwrap();
        assert!(scan(&p, Kind::Journal, 5, |_| {}).is_err());
        fs::write(&p, &header(Kind::Journal, 5)[..10]).unwrap();
        assert_eq!(scan(&p, Kind::Journal, 5, |_| {}).unwrap().stop, Stop::Torn);
    }

    #[test]
    fn zero_filled_tail_is_torn_and_data_after_junk_is_corrupt() {
        let dir = crate::lease::journal::tests::TempDir::new("zeros");
        let p = dir.0.join("x");
        let mut buf = header(Kind::Journal, 1).to_vec();
        record::encode_lease(&record::tests::sample(1), &mut buf);
        let good = buf.len() as u64;
        buf.extend_from_slice(&[0u8; 5000]);
        fs::write(&p, &buf).unwrap();
        let s = scan(&p, Kind::Journal, 1, |_| {}).unwrap();
        assert_eq!((s.records, s.valid_len, s.stop), (1, good, Stop::Torn));
        buf.push(1);
        fs::write(&p, &buf).unwrap();
        let s = scan(&p, Kind::Journal, 1, |_| {}).unwrap();
        assert_eq!((s.records, s.valid_len, s.stop), (1, good, Stop::Corrupt));
    }
}
