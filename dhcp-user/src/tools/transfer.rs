//! Moving leases between Kea and xdhcpd: a Kea memfile lease4 CSV into
//! the journal, and the journal out as such a CSV. Subnets are matched by
//! address on the way in (Kea's subnet ids mean nothing here); on the way
//! out xdhcpd's subnet n (from 0, in config order) becomes Kea's id n+1.
//!
//! Run these with the daemon stopped: the journal has one writer.
use super::kea_csv::{self, ExportStats, ImportStats, KeaVersion};
use crate::config::Checked;
use crate::lease::journal::{Durability, Journal, JournalOptions, now_unix};
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

/// What an import did.
#[derive(Debug)]
pub struct ImportReport {
    pub stats: ImportStats,
    /// Live leases written to the journal.
    pub written: usize,
    /// Leases whose address no configured subnet holds.
    pub no_subnet: usize,
    /// Leases already over (expired, released) and left out.
    pub not_live: usize,
}

/// Appends the live leases of a Kea CSV to the journal in `dir`.
pub fn import_kea(cfg: &Checked, dir: &Path, csv: &Path) -> anyhow::Result<ImportReport> {
    let file = std::fs::File::open(csv).with_context(|| format!("opening {}", csv.display()))?;
    let imported = kea_csv::import(std::io::BufReader::new(file), |_| Some(0))
        .with_context(|| format!("reading {}", csv.display()))?;
    let (journal, _) = Journal::open(dir, Durability::Durable, JournalOptions::default())
        .with_context(|| format!("opening the journal in {}", dir.display()))?;
    let mut producer = journal
        .producer()
        .map_err(|_| anyhow::anyhow!("no journal producer slot"))?;
    let now = now_unix();
    let mut report = ImportReport {
        stats: imported.stats,
        written: 0,
        no_subnet: 0,
        not_live: 0,
    };
    for mut r in imported.leases {
        let Some((subnet, link)) = cfg.subnet_holding(r.addr) else {
            report.no_subnet += 1;
            continue;
        };
        if !r.is_live(now, 0) {
            report.not_live += 1;
            continue;
        }
        r.subnet = subnet;
        r.client.subnet = link;
        // A bulk load may outrun the writer: wait for room, it is not the
        // packet path.
        while producer.append(&r).is_err() {
            std::thread::sleep(Duration::from_millis(1));
        }
        report.written += 1;
    }
    drop(producer);
    journal.close().context("syncing the journal")?;
    Ok(report)
}

/// Writes the journal's live leases in `dir` as a Kea CSV.
pub fn export_kea(
    cfg: &Checked,
    dir: &Path,
    csv: &Path,
    version: KeaVersion,
) -> anyhow::Result<ExportStats> {
    let (journal, recovered) =
        Journal::open(dir, Durability::Durable, JournalOptions::default())
            .with_context(|| format!("opening the journal in {}", dir.display()))?;
    journal.close().context("closing the journal")?;
    let file = std::fs::File::create(csv).with_context(|| format!("creating {}", csv.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let n = cfg.subnets.len() as u16;
    let stats = kea_csv::export(
        &mut w,
        &recovered.leases,
        |s| (s < n).then_some(u32::from(s) + 1),
        version,
    )?;
    std::io::Write::flush(&mut w)?;
    Ok(stats)
}
