//! A bounded cargo-fuzz run over the protocol engine (`fuzz/`, a crate of
//! its own outside the workspace), for `cargo xtask test`.
use crate::setup::{cargo_bin_dir, run_cmd};
use crate::workspace;
use anyhow::{Context, Result, ensure};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The fuzz target in `fuzz/fuzz_targets/`.
pub const TARGET: &str = "engine";

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

/// Installs cargo-fuzz when it is missing, then fuzzes the engine for
/// `seconds` (libFuzzer's `-max_total_time`) on the nightly toolchain with
/// AddressSanitizer, starting from the checked-in seeds. A crash, a failed
/// check or a sanitizer report makes it an error; the input that caused it
/// is left in `fuzz/artifacts/engine/`.
pub fn run_bounded(seconds: u64) -> Result<()> {
    ensure!(seconds > 0, "a fuzz run of 0 seconds tests nothing");
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
    let dir = workspace::root().join("fuzz");
    let corpus = dir.join("corpus").join(TARGET);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    let seeds = dir.join("seeds").join(TARGET);
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
        // The engine needs no XDP program: dhcp-user's build script then
        // skips the eBPF build (which sanitizer flags would only break).
        .env("AYA_BUILD_SKIP", "1")
        .args(["+nightly", "fuzz", "run", TARGET, "--target-dir"])
        .arg(target_dir())
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1");
    run_cmd(&mut cmd, "cargo +nightly fuzz run engine")
}
