//! Reading the state back: which files count, and the latest record per
//! address over them, in two passes so that memory stays at a few words
//! per address however long the journal grew.
use super::record::LeaseRecord;
use super::segment::{self, Kind, Listing, Stop};
use foldhash::fast::FixedState;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// The files that make up the state: the newest snapshot, then every
/// journal of its generation or later, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sources {
    pub snapshot: Option<u64>,
    pub journals: Vec<u64>,
}

impl Sources {
    /// The live set of a listing, and what it supersedes (older snapshots
    /// and journals, half-written snapshots), which may be deleted.
    pub(crate) fn choose(dir: &Path, l: &Listing) -> (Sources, Vec<PathBuf>) {
        let snapshot = l.snapshots.last().copied();
        let floor = snapshot.unwrap_or(0);
        let mut stale = l.temps.clone();
        stale.extend(
            l.snapshots
                .iter()
                .filter(|&&g| Some(g) != snapshot)
                .map(|&g| dir.join(segment::file_name(Kind::Snapshot, g))),
        );
        stale.extend(
            l.journals
                .iter()
                .filter(|&&g| g < floor)
                .map(|&g| dir.join(segment::file_name(Kind::Journal, g))),
        );
        let journals = l.journals.iter().copied().filter(|&g| g >= floor).collect();
        (Sources { snapshot, journals }, stale)
    }

    fn files(&self, dir: &Path) -> Vec<(PathBuf, Kind, u64)> {
        let snap = self.snapshot.map(|g| {
            (
                dir.join(segment::file_name(Kind::Snapshot, g)),
                Kind::Snapshot,
                g,
            )
        });
        snap.into_iter()
            .chain(self.journals.iter().map(|&g| {
                (
                    dir.join(segment::file_name(Kind::Journal, g)),
                    Kind::Journal,
                    g,
                )
            }))
            .collect()
    }
}

/// What reading the files found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// Generation of the snapshot read first, if any.
    pub snapshot: Option<u64>,
    /// Files read (snapshot and journals).
    pub files: usize,
    /// Lease records read, superseded ones included.
    pub records: u64,
    /// Distinct addresses seen.
    pub addresses: usize,
    /// Records handed back: the live ones.
    pub live: usize,
    /// The newest journal ended in a record cut short by a crash; it is
    /// cut away before appending resumes.
    pub torn_tail: bool,
    /// Bytes after the last good record of the newest journal.
    pub torn_bytes: u64,
    /// The first record that failed its check with data after it: the
    /// file and the offset. That file is read up to there only; later
    /// files are still read, their records being newer.
    pub corrupt_at: Option<(PathBuf, u64)>,
    /// A snapshot lacked its end record or disagreed with it.
    pub snapshot_incomplete: bool,
    /// Superseded and half-written files removed at open.
    pub stale_removed: usize,
}

/// Per-file outcome, for the caller that must act on it (cut a torn
/// tail, keep a corrupt file aside).
#[derive(Debug)]
pub(crate) struct FileScan {
    pub path: PathBuf,
    pub kind: Kind,
    pub valid_len: u64,
    pub stop: Stop,
}

/// Calls `emit` with the latest record of every address whose latest
/// record is live at `now`, in the order those records were written.
pub(crate) fn latest(
    dir: &Path,
    src: &Sources,
    now_unix: u64,
    keep_released: u64,
    mut emit: impl FnMut(&LeaseRecord) -> io::Result<()>,
) -> io::Result<(RecoveryStats, Vec<FileScan>)> {
    let files = src.files(dir);
    let mut stats = RecoveryStats {
        snapshot: src.snapshot,
        files: files.len(),
        ..RecoveryStats::default()
    };
    // Pass 1: the ordinal of the last record of each address.
    let mut last: HashMap<u64, u64, FixedState> = HashMap::default();
    let mut ordinal = 0u64;
    let mut scans = Vec::with_capacity(files.len());
    for (path, kind, g) in &files {
        let s = segment::scan(path, *kind, *g, |r| {
            last.insert(r.slot(), ordinal);
            ordinal += 1;
        })?;
        stats.records += s.records;
        if *kind == Kind::Snapshot && s.end != Some(s.records) {
            stats.snapshot_incomplete = true;
        }
        if s.stop == Stop::Corrupt && stats.corrupt_at.is_none() {
            stats.corrupt_at = Some((path.clone(), s.valid_len));
        }
        scans.push(FileScan {
            path: path.clone(),
            kind: *kind,
            valid_len: s.valid_len,
            stop: s.stop,
        });
    }
    if let Some(newest) = scans
        .last()
        .filter(|n| n.kind == Kind::Journal && n.stop == Stop::Torn)
    {
        stats.torn_tail = true;
        stats.torn_bytes = std::fs::metadata(&newest.path)?
            .len()
            .saturating_sub(newest.valid_len);
    }
    stats.addresses = last.len();
    // Pass 2: the files have not changed (nobody writes to them now), so
    // the same ordinals come back and each address's last one is kept.
    let mut ordinal = 0u64;
    let mut err = Ok(());
    for (path, kind, g) in &files {
        segment::scan(path, *kind, *g, |r| {
            if err.is_ok()
                && last.get(&r.slot()) == Some(&ordinal)
                && r.is_live(now_unix, keep_released)
            {
                stats.live += 1;
                err = emit(r);
            }
            ordinal += 1;
        })?;
    }
    err?;
    Ok((stats, scans))
}
