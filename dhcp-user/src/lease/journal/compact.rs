//! Cutting a snapshot: the live leases of a set of sealed files written to
//! a new snapshot, made durable, then the sealed files removed. See the
//! protocol in the parent module's documentation.
use super::record::{self, LeaseRecord};
use super::replay::{self, RecoveryStats, Sources};
use super::segment::{self, Kind, Stop};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Compacted {
    pub generation: u64,
    pub leases: u64,
    pub bytes: u64,
    pub read: RecoveryStats,
}

/// Writes `snapshot-<target>` from `src` (sealed files, none written to
/// any more), then removes `src`. A source that held corruption is kept
/// under `<name>.corrupt` for the operator instead of being removed.
pub(crate) fn compact(
    dir: &Path,
    src: &Sources,
    target: u64,
    now_unix: u64,
    keep_released: u64,
) -> io::Result<Compacted> {
    let tmp = dir.join(segment::tmp_name(target));
    let file = File::create(&tmp)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(&segment::header(Kind::Snapshot, target))?;
    let mut buf = Vec::with_capacity(record::MAX_BODY + record::FRAME_HEAD);
    let mut leases = 0u64;
    let (read, scans) = replay::latest(dir, src, now_unix, keep_released, |r: &LeaseRecord| {
        buf.clear();
        record::encode_lease(r, &mut buf);
        leases += 1;
        w.write_all(&buf)
    })?;
    buf.clear();
    record::encode_end(leases, &mut buf);
    w.write_all(&buf)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    // Contents durable before the name: a crash must never leave a
    // snapshot name in front of missing data.
    file.sync_all()?;
    let bytes = file.metadata()?.len();
    drop(file);
    fs::rename(&tmp, dir.join(segment::file_name(Kind::Snapshot, target)))?;
    segment::sync_dir(dir)?;
    // From here the new snapshot supersedes the sources; a crash before
    // they are gone leaves them for the next open to remove.
    for s in &scans {
        if s.stop == Stop::Corrupt {
            let mut aside = s.path.clone().into_os_string();
            aside.push(".corrupt");
            fs::rename(&s.path, aside)?;
        } else {
            fs::remove_file(&s.path)?;
        }
    }
    segment::sync_dir(dir)?;
    Ok(Compacted {
        generation: target,
        leases,
        bytes,
        read,
    })
}
