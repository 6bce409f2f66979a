//! `cargo xtask bench instructions`: what one packet costs the engine in
//! instructions, beside dhcproto doing the same work, counted by callgrind
//! (exact and repeatable whatever else the machine does, unlike time).
//!
//! `benches/instructions.rs` runs N packets through one Handler (or through
//! dhcproto: decode, build the reply, encode); the difference of two runs
//! over the packets between them is the cost of one packet with start-up
//! cancelled out: DISCOVER→OFFER from `discover 2N − discover N`,
//! REQUEST→ACK from `dora N − discover N`.
use crate::workspace::cargo;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Packets per step: enough that start-up noise is far below one
/// instruction per packet, few enough for a minute under valgrind.
const N: u64 = 10_000;

/// Instructions per packet.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct PerPacket {
    pub engine_discover: u64,
    pub engine_request: u64,
    pub dhcproto_discover: u64,
    pub dhcproto_request: u64,
}

impl PerPacket {
    /// The table, for the terminal and the bench report.
    pub fn render(&self) -> String {
        let r = |a: u64, b: u64| b as f64 / a.max(1) as f64;
        format!(
            "| per packet (callgrind, instructions) | xdhcpd engine | dhcproto | dhcproto / engine |\n\
             |---|---:|---:|---:|\n\
             | DISCOVER → OFFER | {} | {} | {:.1}× |\n\
             | REQUEST → ACK | {} | {} | {:.1}× |\n",
            self.engine_discover,
            self.dhcproto_discover,
            r(self.engine_discover, self.dhcproto_discover),
            self.engine_request,
            self.dhcproto_request,
            r(self.engine_request, self.dhcproto_request),
        )
    }
}

/// Builds the bench binary and counts.
pub fn measure(target_dir: &Path) -> Result<PerPacket> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        bail!("valgrind is not installed (apt-get install valgrind)");
    }
    let out = cargo()
        .args([
            "bench",
            "--bench",
            "instructions",
            "--no-run",
            "--message-format=json",
        ])
        .env("AYA_BUILD_SKIP", "1")
        .output()
        .context("cargo bench --bench instructions --no-run")?;
    if !out.status.success() {
        bail!(
            "building benches/instructions.rs failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bin = executable(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("no instructions executable under {}", target_dir.display()))?;
    let count = |mode: &str, n: u64| -> Result<u64> {
        let o = Command::new("valgrind")
            .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
            .arg(&bin)
            .args([mode, &n.to_string()])
            .output()
            .with_context(|| format!("valgrind {} {mode} {n}", bin.display()))?;
        let err = String::from_utf8_lossy(&o.stderr);
        collected(&err).with_context(|| format!("no instruction count from valgrind:\n{err}"))
    };
    let per = |a: u64, b: u64| b.saturating_sub(a) / N;
    let (d1, d2, r) = (
        count("discover", N)?,
        count("discover", 2 * N)?,
        count("dora", N)?,
    );
    let (p1, p2, pr) = (
        count("dhcproto-discover", N)?,
        count("dhcproto-discover", 2 * N)?,
        count("dhcproto-dora", N)?,
    );
    Ok(PerPacket {
        engine_discover: per(d1, d2),
        engine_request: per(d1, r),
        dhcproto_discover: per(p1, p2),
        dhcproto_request: per(p1, pr),
    })
}

/// `cargo xtask bench instructions`.
pub fn run(target_dir: &Path) -> Result<()> {
    let p = measure(target_dir)?;
    println!("{}", p.render());
    Ok(())
}

/// The bench executable cargo reported (`--message-format=json`).
fn executable(json_lines: &str) -> Option<PathBuf> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"]["name"] == "instructions")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
}

/// valgrind's "Collected : N" line.
fn collected(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_valgrind_and_cargo_print() {
        assert_eq!(
            collected("==1== Events    : Ir\n==1== Collected : 41414153\n==1==\n"),
            Some(41_414_153)
        );
        assert_eq!(collected("nothing"), None);
        let json = r#"{"reason":"compiler-artifact","target":{"name":"engine"},"executable":"/t/engine-1"}
{"reason":"compiler-artifact","target":{"name":"instructions"},"executable":"/t/instructions-2"}"#;
        assert_eq!(executable(json), Some(PathBuf::from("/t/instructions-2")));
    }

    #[test]
    fn the_table_gives_the_ratios() {
        let p = PerPacket {
            engine_discover: 2_000,
            engine_request: 2_500,
            dhcproto_discover: 13_000,
            dhcproto_request: 15_000,
        };
        let t = p.render();
        assert!(
            t.contains("| DISCOVER → OFFER | 2000 | 13000 | 6.5× |"),
            "{t}"
        );
        assert!(t.contains("| REQUEST → ACK | 2500 | 15000 | 6.0× |"), "{t}");
    }
}
