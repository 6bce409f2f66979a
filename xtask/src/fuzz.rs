//! A bounded cargo-fuzz run over the protocol engine and the DDNS naming
//! (`fuzz/`, a crate of its own outside the workspace), for `cargo xtask
//! test`.
use crate::setup::{cargo_bin_dir, run_cmd};
use crate::workspace;
use anyhow::{Context, Result, ensure};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The fuzz targets in `fuzz/fuzz_targets/` and their shares of a
/// bounded run: the engine, whose inputs reach far more code, three
/// quarters; the DDNS naming (option 81 and 12 into a DNS label), a
/// quarter.
pub const TARGETS: [(&str, u64); 2] = [("engine", 3), ("ddns_name", 1)];

/// Where cargo-fuzz's build goes: beside the workspace's own builds,
/// inside the ignored `target/`, not a new folder in the tree.
fn target_dir() -> PathBuf {
    workspace::target_dir().join("fuzz")
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Whether `cargo fuzz` runs (it is a cargo subcommand from
/// `~/.cargo/bin/cargo-fuzz`).
fn have_cargo_fuzz() -> bool {
    let on_path = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    on_path || cargo_bin_dir().join("cargo-fuzz").exists()
}

/// Installs cargo-fuzz when it is missing, then fuzzes each target of
/// [`TARGETS`] for its share of `seconds` (libFuzzer's `-max_total_time`;
/// 60 s: engine 45 s, ddns_name 15 s) on the nightly toolchain with
/// AddressSanitizer, starting from the checked-in seeds. A crash, a failed
/// check or a sanitizer report makes it an error, after the other targets
/// have had their turn; the input that caused it is left in
/// `fuzz/artifacts/<target>/`.
pub fn run_bounded(seconds: u64) -> Result<()> {
    let total: u64 = TARGETS.iter().map(|(_, share)| share).sum();
    ensure!(
        seconds >= total,
        "a fuzz run of {seconds} s leaves a target less than a second"
    );
    if !have_cargo_fuzz() {
        println!("fuzz: installing cargo-fuzz");
        run_cmd(
            cargo()
                .args(["install", "cargo-fuzz", "--locked"])
                // A tool, not the project: not into the workspace's target.
                .env_remove("CARGO_TARGET_DIR"),
            "cargo install cargo-fuzz",
        )?;
    }
    let mut failed = Vec::new();
    for (target, share) in TARGETS {
        let s = seconds * share / total;
        println!("fuzz: {target}, {s} s");
        if let Err(e) = run_target(target, s) {
            eprintln!("fuzz: {target}: {e:#}");
            failed.push(target);
        }
    }
    ensure!(
        failed.is_empty(),
        "fuzz target(s) failed: {}",
        failed.join(", ")
    );
    Ok(())
}

/// One target for `seconds`.
fn run_target(target: &str, seconds: u64) -> Result<()> {
    let dir = workspace::root().join("fuzz");
    let corpus = dir.join("corpus").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let seeds = dir.join("seeds").join(target);
    // `+nightly` needs rustup's cargo proxy (~/.cargo/bin/cargo); under
    // `cargo xtask`, PATH may lead to the active toolchain's own cargo,
    // and RUSTUP_TOOLCHAIN would pin the stable toolchain.
    let proxy = cargo_bin_dir().join("cargo");
    let mut cmd = Command::new(if proxy.exists() {
        proxy
    } else {
        PathBuf::from("cargo")
    });
    cmd.current_dir(&dir)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        // Neither target needs an XDP program: dhcp-user's build script
        // then skips the eBPF build (which sanitizer flags would only
        // break).
        .env("AYA_BUILD_SKIP", "1")
        .args(["+nightly", "fuzz", "run", target, "--target-dir"])
        .arg(target_dir())
        .arg(&corpus);
    // A target without checked-in seeds starts from an empty corpus.
    if seeds.is_dir() {
        cmd.arg(&seeds);
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1");
    run_cmd(&mut cmd, &format!("cargo +nightly fuzz run {target}"))
}
