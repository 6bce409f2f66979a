//! Installs what building and testing xdhcpd need on a fresh Debian 12
//! machine: Debian packages, the nightly `rust-src` the eBPF build uses, and
//! a `bpf-linker` built against the same LLVM major as rustc (22), and
//! cargo-deb for the Debian package.
//!
//! Every step first checks whether its part is already there, so a machine
//! that has everything is done in well under a second.

use crate::process::is_root;
use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian packages the build, the lab and the peers of the lab tests need.
pub const APT_PACKAGES: &[&str] = &[
    // bpf-linker is linked against LLVM 22, the LLVM of rustc 1.95.
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    // xsk-rs builds libxdp and libbpf from source.
    "m4",
    "libelf-dev",
    "pkg-config",
    "clang",
    "gcc-multilib",
    // libxdp's configure step insists on pcap headers.
    "libpcap-dev",
    // The lab and what looks at its wire.
    "iproute2",
    "ethtool",
    "tcpdump",
    "tshark",
    "iputils-ping",
    "python3-scapy",
    // Real peers: load generator, reference server, clients, relay.
    "kea-dhcp4-server",
    "kea-admin",
    "isc-dhcp-client",
    "dhcpcd-base",
    "busybox",
    "isc-dhcp-relay",
    // The DNS server of the DDNS tests, and dig / nsupdate to look at it.
    "bind9",
    "bind9-dnsutils",
    // The power-cut test runs on an XFS loop device.
    "xfsprogs",
    // The HA lab's cluster: three JetStream nodes (tests/lab_ha.rs).
    "nats-server",
    // lab_metrics scrapes with curl; lab_package and lab_control run as
    // nobody with setpriv and prlimit (util-linux); the deb step verifies
    // the unit with systemd-analyze and gzips the man pages; the maintainer
    // scripts' test runs adduser / useradd.
    "curl",
    "util-linux",
    "systemd",
    "gzip",
    "adduser",
    "passwd",
];

/// The Rust toolchain the eBPF crate is built with (aya-build's default).
const NIGHTLY: &str = "nightly";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

/// `cargo xtask setup`: installs whatever is missing. `force` redoes every
/// step (apt-get update and install, rustup, `cargo install --force
/// bpf-linker`) even when its check passes.
pub fn run(force: bool) -> Result<()> {
    let started = Instant::now();
    let mut did = Vec::new();
    if apt(force)? {
        did.push("Debian packages");
    }
    if rust_components(force)? {
        did.push("Rust components");
    }
    if bpf_linker(force)? {
        did.push("bpf-linker");
    }
    if cargo_deb(force)? {
        did.push("cargo-deb");
    }
    let took = started.elapsed().as_secs_f64();
    if did.is_empty() {
        println!("setup: everything is already installed ({took:.1} s)");
    } else {
        println!("setup: installed {} ({took:.1} s)", did.join(", "));
    }
    Ok(())
}

/// What `demo` and `test` call first: installs only what is missing.
pub fn ensure() -> Result<()> {
    run(false)
}

/// Returns the packages of `wanted` that dpkg does not list as installed.
pub fn missing_packages(wanted: &[&str]) -> Result<Vec<String>> {
    // One dpkg-query for all: it prints the installed ones and complains on
    // stderr (exit 1) about the unknown ones, which is what we want to know.
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${Status}\n")
        .args(wanted)
        .stderr(Stdio::null())
        .output()
        .context("running dpkg-query (is this a Debian machine?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let installed: BTreeSet<&str> = text
        .lines()
        .filter(|l| l.ends_with(" install ok installed"))
        .filter_map(|l| l.split_whitespace().next())
        // Multi-arch packages may print as name:arch.
        .map(|p| p.split(':').next().unwrap_or(p))
        .collect();
    Ok(wanted
        .iter()
        .filter(|p| !installed.contains(*p))
        .map(|p| (*p).to_string())
        .collect())
}

fn apt(force: bool) -> Result<bool> {
    let missing = if force {
        APT_PACKAGES.iter().map(|p| (*p).to_string()).collect()
    } else {
        missing_packages(APT_PACKAGES)?
    };
    if missing.is_empty() {
        return Ok(false);
    }
    println!("setup: installing Debian packages: {}", missing.join(" "));
    if !is_root() {
        bail!(
            "installing Debian packages needs root; run as root, or install them by hand: \
             apt-get install -y {}",
            missing.join(" ")
        );
    }
    run_cmd(apt_get().arg("update"), "apt-get update")?;
    let daemons_before = package_daemons();
    let guard = ServiceStartGuard::install()?;
    let installed = run_cmd(
        apt_get().args(["install", "-y"]).args(&missing),
        "apt-get install",
    );
    drop(guard);
    stop_new_daemons(&daemons_before);
    installed?;
    let still = missing_packages(APT_PACKAGES)?;
    if !still.is_empty() {
        bail!(
            "apt-get finished but these are still missing: {}",
            still.join(" ")
        );
    }
    Ok(true)
}

fn apt_get() -> Command {
    let mut c = Command::new("apt-get");
    c.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-o", "Dpkg::Options::=--force-confdef"])
        .args(["-o", "Dpkg::Options::=--force-confold"])
        .arg("-q");
    c
}

/// Debian's kea and bind9 packages start their service on install. A `policy-rc.d`
/// that answers 101 ("action forbidden") makes invoke-rc.d skip that; it is
/// put in place only when the machine has none, and removed again after.
struct ServiceStartGuard {
    created: Option<PathBuf>,
}

impl ServiceStartGuard {
    const PATH: &'static str = "/usr/sbin/policy-rc.d";

    fn install() -> Result<Self> {
        let path = PathBuf::from(Self::PATH);
        if path.exists() {
            return Ok(Self { created: None });
        }
        std::fs::write(
            &path,
            "#!/bin/sh\n# xtask setup: no services while installing\nexit 101\n",
        )
        .with_context(|| format!("writing {}", path.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        Ok(Self {
            created: Some(path),
        })
    }
}

impl Drop for ServiceStartGuard {
    fn drop(&mut self) {
        if let Some(p) = self.created.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Pids of running processes whose name is one of Kea's daemons or
/// named.
fn package_daemons() -> BTreeSet<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| {
                    let c = c.trim_end();
                    c.starts_with("kea-") || c == "named"
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Stops the Kea daemons and the named that appeared while the packages
/// were installed (a service started by the package would hold port 67 or
/// 53 in the root namespace). Those that ran before are someone else's.
fn stop_new_daemons(before: &BTreeSet<i32>) {
    let new: Vec<i32> = package_daemons().difference(before).copied().collect();
    if new.is_empty() {
        return;
    }
    println!("setup: stopping the daemons the packages started: {new:?}");
    for &pid in &new {
        // SAFETY: plain kill(2) on a pid we just read from /proc.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && new.iter().any(|p| alive(*p)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for &pid in new.iter().filter(|p| alive(**p)) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Makes sure the nightly toolchain with `rust-src` (for `-Z build-std`)
/// and the active toolchain's clippy and rustfmt (for `cargo xtask test`)
/// are there.
fn rust_components(force: bool) -> Result<bool> {
    let mut did = false;
    let nightly = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", NIGHTLY])
        .stderr(Stdio::null())
        .output()
        .context("running rustup (is rustup installed?)")?;
    if !nightly.status.success() {
        println!("setup: installing the {NIGHTLY} toolchain with rust-src");
        run_cmd(
            Command::new("rustup").args([
                "toolchain",
                "install",
                NIGHTLY,
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]),
            "rustup toolchain install",
        )?;
        did = true;
    } else if force || !has_component(&nightly.stdout, "rust-src") {
        println!("setup: adding rust-src to the {NIGHTLY} toolchain");
        run_cmd(
            Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]),
            "rustup component add rust-src",
        )?;
        did = true;
    }

    // The active toolchain is whatever rustup resolves in this directory;
    // RUSTUP_TOOLCHAIN, set by the rustup proxy that started us, names it.
    let active = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
        .context("running rustup component list")?;
    let missing: Vec<&str> = ["clippy", "rustfmt"]
        .into_iter()
        .filter(|c| force || !has_component(&active.stdout, c))
        .collect();
    if !missing.is_empty() {
        println!(
            "setup: adding {} to the active toolchain",
            missing.join(", ")
        );
        run_cmd(
            Command::new("rustup")
                .args(["component", "add"])
                .args(&missing),
            "rustup component add",
        )?;
        did = true;
    }
    Ok(did)
}

/// `rustup component list --installed` prints `name-<target triple>`, or
/// just `name` for target-independent components such as rust-src.
fn has_component(list: &[u8], name: &str) -> bool {
    String::from_utf8_lossy(list)
        .lines()
        .any(|l| component_name(l.trim()) == name)
}

fn component_name(line: &str) -> &str {
    // The triple is `<arch>-unknown-linux-<env>`; the component is what
    // stands before the arch.
    match line.find("-unknown-linux-") {
        Some(vendor) => line[..vendor].rfind('-').map_or(line, |arch| &line[..arch]),
        None => line,
    }
}

/// Where `cargo install` puts binaries.
pub fn cargo_bin_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("CARGO_HOME") {
        return PathBuf::from(h).join("bin");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cargo").join("bin")
}

/// The bpf-linker found on PATH or in cargo's bin folder, if it runs.
pub fn bpf_linker_version() -> Option<String> {
    let candidates = [
        PathBuf::from("bpf-linker"),
        cargo_bin_dir().join("bpf-linker"),
    ];
    candidates.iter().find_map(|bin| {
        let out = Command::new(bin)
            .arg("--version")
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    })
}

fn bpf_linker(force: bool) -> Result<bool> {
    if !force && bpf_linker_version().is_some() {
        return Ok(false);
    }
    println!("setup: building bpf-linker against LLVM 22 (about a minute and a half)");
    let llvm_bin = format!("{LLVM_PREFIX}/bin");
    if !std::path::Path::new(&llvm_bin).join("llvm-config").exists() {
        bail!("{llvm_bin}/llvm-config is missing: the llvm-22-dev package did not install it");
    }
    // Without the PATH and LLVM_PREFIX it finds Debian's default
    // llvm-config (14) and fails to link -lLLVM.
    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut parts = vec![PathBuf::from(&llvm_bin)];
            parts.extend(std::env::split_paths(&p));
            std::env::join_paths(parts)?
        }
        None => llvm_bin.clone().into(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "install",
        "bpf-linker",
        "--no-default-features",
        "--features",
        "llvm-22",
    ])
    .env("PATH", path)
    .env("LLVM_PREFIX", LLVM_PREFIX)
    // Not the workspace's target folder: this is a tool, not the project.
    .env_remove("CARGO_TARGET_DIR");
    if force {
        cmd.arg("--force");
    }
    run_cmd(&mut cmd, "cargo install bpf-linker")?;
    match bpf_linker_version() {
        Some(v) => {
            println!("setup: {v}");
            Ok(true)
        }
        None => bail!(
            "bpf-linker was installed but does not run; is {} on PATH?",
            cargo_bin_dir().display()
        ),
    }
}

/// cargo-deb (`cargo deb`, for `cargo xtask deb`), installed from
/// crates.io with its own lock file when `cargo deb --version` fails.
pub fn cargo_deb(force: bool) -> Result<bool> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let present = Command::new(&cargo)
        .args(["deb", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present && !force {
        return Ok(false);
    }
    println!("setup: installing cargo-deb (cargo install cargo-deb --locked, about two minutes)");
    let mut cmd = Command::new(&cargo);
    cmd.args(["install", "cargo-deb", "--locked"])
        // Not the workspace's target folder: this is a tool, not the project.
        .env_remove("CARGO_TARGET_DIR");
    if force {
        cmd.arg("--force");
    }
    run_cmd(&mut cmd, "cargo install cargo-deb")?;
    Ok(true)
}

/// Runs a command with inherited stdio and fails with its name on a
/// non-zero exit.
pub fn run_cmd(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_tells_installed_from_missing() {
        let missing = missing_packages(&["dpkg", "no-such-package-xdhcpd"]).unwrap();
        assert_eq!(missing, vec!["no-such-package-xdhcpd".to_string()]);
    }

    #[test]
    fn component_names_match_with_and_without_target() {
        let list = b"cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\nrust-src\nrustfmt-x86_64-unknown-linux-gnu\n";
        assert!(has_component(list, "rust-src"));
        assert!(has_component(list, "clippy"));
        assert!(has_component(list, "rustfmt"));
        assert!(!has_component(list, "rust"));
        assert!(!has_component(list, "miri"));
        assert!(!has_component(
            b"rust-docs-x86_64-unknown-linux-gnu\n",
            "rust"
        ));
    }
}
