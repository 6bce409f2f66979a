//! The workspace xtask serves: its root, its target dir, and the cargo
//! that started xtask, for the commands that build and test it.
use crate::setup;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root: the parent of this crate's manifest directory.
pub fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `$CARGO_TARGET_DIR` (relative to the root, where [`cargo`] runs), or
/// the root's `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => root().join(d),
        None => root().join("target"),
    }
}

/// How [`release_build`] reads in messages.
pub const RELEASE_BUILD: &str = "cargo build --release -p dhcp-user -p xdhcpgen";

/// The release build that the demo, the tests, the package and the
/// benches all use: the daemon's and the generator's packages together,
/// because `-p dhcp-user` alone resolves other features of shared crates,
/// and each build would then rebuild the other's binaries.
pub fn release_build() -> Command {
    let mut c = cargo();
    c.args(["build", "--release", "-p", "dhcp-user", "-p", "xdhcpgen"]);
    c
}

/// The cargo that started us (so `cargo +toolchain xtask` stays on it),
/// in the workspace root.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    // `cargo run` gave xtask its own package's variables; a build script
    // that watches one (ring's CARGO_MANIFEST_DIR) would otherwise see it
    // change between `cargo build` and `cargo xtask ...` and rebuild ring
    // and everything above it each time one follows the other.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*k,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            c.env_remove(&*k);
        }
    }
    // The eBPF build runs bpf-linker by name; setup installs it into cargo's
    // bin folder, which a CI shell may not have on PATH.
    let bin = setup::cargo_bin_dir();
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|p| p == bin) {
        let mut parts: Vec<PathBuf> = std::env::split_paths(&path).collect();
        parts.push(bin);
        if let Ok(joined) = std::env::join_paths(parts) {
            c.env("PATH", joined);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }
}
