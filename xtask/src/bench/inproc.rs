//! The in-process benches under `benches/` that need no lab: the durable
//! journal's group commit on disks (`cargo xtask bench fsync`), sharing
//! between worker threads (`cargo xtask bench scaling`) and instructions
//! per packet by callgrind, split by phase (`cargo xtask bench split`). Each builds
//! its bench with `cargo bench --no-run` (no XDP program: AYA_BUILD_SKIP)
//! and runs the binary.
use super::rig::{JOURNAL_BASE, fs_type};
use crate::daemon::temp_dir;
use crate::lab::run as run_cmd;
use crate::workspace::cargo;
use anyhow::{Context, Result, bail, ensure};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args, Clone, Debug)]
pub struct FsyncArgs {
    /// Seconds per round.
    #[arg(long, default_value_t = 6)]
    pub seconds: u64,
    /// Rounds on each file system.
    #[arg(long, default_value_t = 6)]
    pub rounds: u32,
    /// Another build of the journal_fsync bench (say, of the main branch:
    /// `cargo bench --bench journal_fsync --no-run` there prints its
    /// path), run in alternation with this one, round by round, so both
    /// see the same moments of a shared machine.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Only the disk under /var/tmp, no XFS loop device.
    #[arg(long)]
    pub no_xfs: bool,
}

/// Builds the bench `name` and returns its executable.
fn bench_binary(name: &str) -> Result<PathBuf> {
    let out = run_cmd(cargo().env("AYA_BUILD_SKIP", "1").args([
        "bench",
        "--bench",
        name,
        "--no-run",
        "--message-format=json",
    ]))?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["target"]["name"] == name
            && let Some(exe) = v["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo bench --bench {name} --no-run named no executable")
}

/// Runs `exe args`, its output passed through.
fn run_through(exe: &Path, args: &[String]) -> Result<()> {
    let st = Command::new(exe)
        .args(args)
        .status()
        .with_context(|| format!("starting {}", exe.display()))?;
    ensure!(st.success(), "{} {args:?} failed ({st})", exe.display());
    Ok(())
}

pub fn fsync(a: &FsyncArgs) -> Result<()> {
    let exe = bench_binary("journal_fsync")?;
    let mut dirs = vec![PathBuf::from(JOURNAL_BASE)];
    let xfs = if a.no_xfs {
        None
    } else {
        let x = LoopXfs::create()?;
        dirs.push(x.mnt.clone());
        Some(x)
    };
    for dir in &dirs {
        println!(
            "== {} ({}), this build{}",
            dir.display(),
            fs_type(dir)?,
            if a.baseline.is_some() {
                " and the baseline alternated (order flipped each round)"
            } else {
                ""
            }
        );
        for r in 0..a.rounds {
            let mut runs: Vec<(&str, &Path)> = vec![("this", &exe)];
            if let Some(b) = &a.baseline {
                runs.push(("baseline", b));
            }
            if r % 2 == 1 {
                runs.reverse();
            }
            for (what, bin) in runs {
                print!("{what:<9}");
                let out = run_cmd(
                    Command::new(bin)
                        .arg("--dir")
                        .arg(dir)
                        .args(["--seconds", &a.seconds.to_string()]),
                )?;
                let text = String::from_utf8_lossy(&out.stdout);
                println!(" {}", text.lines().last().unwrap_or_default());
            }
        }
    }
    drop(xfs);
    Ok(())
}

pub fn scaling(rounds: u32) -> Result<()> {
    let exe = bench_binary("scaling")?;
    run_through(&exe, &["--rounds".into(), rounds.to_string()])
}

/// The scaling bench for `cargo xtask bench`: its output, and 2 threads
/// over 1 with the shared engine and the journal (the daemon's setup).
pub fn scaling_ratio(rounds: u32) -> Result<(f64, String)> {
    let exe = bench_binary("scaling")?;
    let out = run_cmd(Command::new(&exe).args(["--rounds", &rounds.to_string()]))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let r = two_over_one(&text).context("no \"2/1 =\" on the shared-engine-with-journal line")?;
    Ok((r, text))
}

/// `2/1 = 1.81x` from the line of the shared engine with its journal.
fn two_over_one(text: &str) -> Option<f64> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("shared engine, journal fast"))?;
    let after = line.split("2/1 = ").nth(1)?;
    after.split('x').next()?.trim().parse().ok()
}

/// What callgrind counted in one phase, per packet.
struct Split {
    total: f64,
    of: Vec<(&'static str, f64)>,
}

/// The functions the count is split into (matched at the end of the
/// demangled name).
const PARTS: [(&str, &str); 6] = [
    ("handle (all)", ">::handle"),
    ("parse", "xdhcp::engine::request::parse"),
    ("decide (table, pool)", "Engine>::decide"),
    ("reply building", "xdhcp::engine::reply::write"),
    (
        "  of it headers+checksums",
        // The reply path's header writer, kept out of line for this
        // (emit::emit_headers_zeroed is inlined into it).
        "xdhcp::engine::reply::emit_reply_headers",
    ),
    (
        "  of it subnet options",
        "xdhcp::engine::reply::write_subnet_options",
    ),
];

pub fn split_instructions(clients: u32) -> Result<()> {
    let exe = bench_binary("instructions")?;
    let dir = temp_dir("bench-callgrind")?;
    println!(
        "instructions per packet by callgrind ({clients} clients, frames built before counting):"
    );
    for (phase, name) in [
        ("DISCOVER->OFFER", "instructions::offers"),
        ("REQUEST->ACK", "instructions::acks"),
    ] {
        let out = dir.join(format!("{name}.out"));
        run_cmd(
            Command::new("valgrind")
                .arg("--tool=callgrind")
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(format!("--toggle-collect=*{name}*"))
                .arg(&exe)
                .args(["split", &clients.to_string()]),
        )
        .context("is valgrind installed?")?;
        // From `/`, so that every file is named by its absolute path (from
        // the workspace, some are relative and a function's pieces split).
        let ann = run_cmd(
            Command::new("callgrind_annotate")
                .current_dir("/")
                .args(["--inclusive=yes", "--threshold=100", "--auto=no"])
                .arg(&out),
        )?;
        let s = split(&String::from_utf8_lossy(&ann.stdout), name, clients)?;
        println!("  {phase:<16} {:>6.0} instructions", s.total);
        let get = |w: &str| s.of.iter().find(|(k, _)| *k == w).map_or(0.0, |p| p.1);
        let rest = get("handle (all)")
            - get("parse")
            - get("decide (table, pool)")
            - get("reply building");
        for (what, n) in
            s.of.iter()
                .copied()
                .chain([("rest of handle (stats, record)", rest)])
        {
            println!(
                "    {what:<30} {n:>6.0}  ({:.0} %)",
                100.0 * n / s.total.max(1.0)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Inclusive counts from callgrind_annotate's `N (p%)  file:function [obj]`
/// lines, by function. A function with code inlined from other files is
/// listed once per file; the piece under its own file holds its calls
/// and so nearly all of it, the others are subsets or a few instructions
/// of inlined helpers: the largest piece is taken (summing them counted
/// the same calls twice).
fn split(annotated: &str, phase_fn: &str, clients: u32) -> Result<Split> {
    let mut by_fn: HashMap<String, u64> = HashMap::new();
    for l in annotated.lines() {
        let l = l.trim_start();
        let Some((count, rest)) = l.split_once(' ') else {
            continue;
        };
        let Ok(n) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        // Call lines (`=> callee (Nx)`) repeat a callee's count.
        let Some((_, func)) = rest.split_once(")  ").filter(|(_, f)| !f.starts_with("=>")) else {
            continue;
        };
        let func = func.split(" [").next().unwrap_or(func);
        // `file:function`: the file ends at the first single colon.
        let name = match func.find(".rs:").or_else(|| func.find(".S:")) {
            Some(i) => &func[func[i..].find(':').map_or(0, |k| i + k + 1)..],
            None => func.split_once(':').map_or(func, |(_, f)| f),
        };
        let e = by_fn.entry(name.to_owned()).or_default();
        *e = (*e).max(n);
    }
    let per = |suffix: &str| {
        by_fn
            .iter()
            .filter(|(k, _)| k.ends_with(suffix))
            .map(|(_, v)| *v)
            .sum::<u64>() as f64
            / f64::from(clients)
    };
    let total = per(phase_fn);
    ensure!(total > 0.0, "callgrind counted nothing in {phase_fn}");
    Ok(Split {
        total,
        of: PARTS.iter().map(|(what, f)| (*what, per(f))).collect(),
    })
}

/// XFS on a loop device over a sparse file under /var/tmp, for as long as
/// it lives (as the power-cut test makes one).
struct LoopXfs {
    dir: PathBuf,
    mnt: PathBuf,
    dev: Option<String>,
    mounted: bool,
}

impl LoopXfs {
    fn create() -> Result<LoopXfs> {
        let dir =
            PathBuf::from(JOURNAL_BASE).join(format!("xdhcp-fsync-xfs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("mnt"))?;
        let mut x = LoopXfs {
            mnt: dir.join("mnt"),
            dir,
            dev: None,
            mounted: false,
        };
        let img = x.dir.join("xfs.img");
        std::fs::File::create(&img)?.set_len(600 << 20)?;
        let out = run_cmd(Command::new("losetup").args(["-f", "--show"]).arg(&img))?;
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        ensure!(dev.starts_with("/dev/loop"), "losetup printed {dev:?}");
        x.dev = Some(dev.clone());
        run_cmd(Command::new("mkfs.xfs").args(["-q", &dev])).context("is xfsprogs installed?")?;
        run_cmd(Command::new("mount").arg(&dev).arg(&x.mnt))?;
        x.mounted = true;
        Ok(x)
    }
}

impl Drop for LoopXfs {
    fn drop(&mut self) {
        if self.mounted && run_cmd(Command::new("umount").arg(&self.mnt)).is_err() {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        if let Some(dev) = self.dev.take() {
            let _ = run_cmd(Command::new("losetup").args(["-d", &dev]));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaling_ratio_is_the_journal_line_s() {
        let out = "scaling: 100000 clients\n  (leases/s: median)\n  \
            shared engine, journal fast  1 thread   1000000 leases/s   900 ns CPU   2 threads   1810000 leases/s  1000 ns CPU   2/1 = 1.81x   journal writer 50 / 60 ns CPU per lease\n  \
            shared engine, no journal    1 thread   1 leases/s   2/1 = 1.95x\n";
        assert_eq!(two_over_one(out), Some(1.81));
        assert_eq!(two_over_one("shared engine, no journal 2/1 = 1.95x"), None);
    }

    #[test]
    fn a_function_counts_its_largest_piece() {
        let ann = "\
40,000 (100.0%)  /w/benches/instructions.rs:instructions::offers [/w/x]
30,000 (75.0%)  /w/src/engine/decide.rs:xdhcp::engine::decide::<impl xdhcp::engine::Engine>::decide [/w/x]
10,000 (25.0%)  /w/src/engine/mod.rs:xdhcp::engine::decide::<impl xdhcp::engine::Engine>::decide [/w/x]
 8,000 (20.0%)  /w/src/engine/reply.rs:xdhcp::engine::reply::write [/w/x]
 2,000 (5.0%)  /w/src/engine/reply.rs:xdhcp::engine::reply::write_subnet_options [/w/x]
 3,000 (7.5%)  /w/src/engine/reply.rs:xdhcp::engine::reply::emit_reply_headers [/w/x]
 8,000 (20.0%)  => /w/src/engine/reply.rs:xdhcp::engine::reply::write (10x)
";
        let s = split(ann, "instructions::offers", 10).unwrap();
        assert_eq!(s.total, 4000.0);
        let get = |w: &str| s.of.iter().find(|(k, _)| *k == w).unwrap().1;
        assert_eq!(get("decide (table, pool)"), 3000.0);
        assert_eq!(get("reply building"), 800.0);
        assert_eq!(get("  of it subnet options"), 200.0);
        assert_eq!(get("  of it headers+checksums"), 300.0);
        assert!(split("", "instructions::offers", 10).is_err());
    }
}
