//! `cargo xtask deb`: the Debian package of xdhcpd, made by cargo-deb from
//! `[package.metadata.deb]` in dhcp-user/Cargo.toml, and the checks that it
//! holds what an operator installs: the daemon, the unit, the conffile,
//! the man pages, the state directory, the maintainer scripts. `cargo
//! xtask test` builds and checks it after the release build.
use crate::setup::run_cmd;
use crate::workspace::{RELEASE_BUILD, cargo, release_build, target_dir};
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the man pages go: under `target/release/`, the prefix cargo-deb
/// resolves to the build's output directory (dhcp-user/Cargo.toml's
/// assets name them so).
fn man_dir(target: &Path) -> PathBuf {
    target.join("release").join("man")
}

/// What `dpkg-deb -c` must list. The unit may sit in /lib or /usr/lib
/// (cargo-deb versions differ), hence the alternatives.
const CONTENTS: &[&[&str]] = &[
    &["./usr/sbin/xdhcpd"],
    &["./usr/bin/xdhcpctl"],
    &[
        "./usr/lib/systemd/system/xdhcpd.service",
        "./lib/systemd/system/xdhcpd.service",
    ],
    &["./etc/xdhcpd/xdhcpd.toml"],
    &["./usr/share/man/man1/xdhcpd.1.gz"],
    &["./usr/share/man/man1/xdhcpctl.1.gz"],
    &["./usr/share/doc/xdhcpd/grafana-dashboard.json"],
    &["./var/lib/xdhcpd/"],
];

const CONFFILE: &str = "/etc/xdhcpd/xdhcpd.toml";

/// `cargo xtask deb`: the release build (unless `no_build`), then
/// [`build`] and [`check`]; prints the package's path.
pub fn run(no_build: bool) -> Result<PathBuf> {
    crate::setup::cargo_deb(false)?;
    if !no_build {
        run_cmd(&mut release_build(), RELEASE_BUILD)?;
    }
    let deb = build(&target_dir())?;
    let listing = check(&deb)?;
    print!("{listing}");
    println!("{}", deb.display());
    Ok(deb)
}

/// Writes the man pages with the release xdhcpd's hidden `man` command
/// (gzipped, as Debian ships them) and runs `cargo deb --no-build`; the
/// path of the .deb.
pub fn build(target: &Path) -> Result<PathBuf> {
    let bin = target.join("release").join("xdhcpd");
    ensure!(
        bin.exists(),
        "{} does not exist: build it first (cargo build --release -p dhcp-user)",
        bin.display()
    );
    let man = man_dir(target);
    if man.exists() {
        std::fs::remove_dir_all(&man).with_context(|| format!("clearing {}", man.display()))?;
    }
    output(Command::new(&bin).arg("man").arg(&man), "xdhcpd man")?;
    let ctl = target.join("release").join("xdhcpctl");
    ensure!(
        ctl.exists(),
        "{} does not exist: build it first (cargo build --release -p dhcp-user)",
        ctl.display()
    );
    output(Command::new(&ctl).arg("man").arg(&man), "xdhcpctl man")?;
    let written = std::fs::read_dir(&man)?.count();
    ensure!(
        written > 0,
        "xdhcpd man wrote nothing into {}",
        man.display()
    );
    // -n: no name or time stamp in the header, so a rebuild is the same
    // file.
    run_cmd(
        Command::new("gzip")
            .args(["-9", "-n", "-f"])
            .args(std::fs::read_dir(&man)?.flatten().map(|e| e.path())),
        "gzip the man pages",
    )?;
    let out = output(
        cargo().args(["deb", "-p", "dhcp-user", "--no-build", "--strip"]),
        "cargo deb -p dhcp-user --no-build",
    )?;
    // cargo-deb prints the package's path last.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let deb = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .with_context(|| format!("cargo deb named no .deb:\n{stdout}"))?;
    ensure!(
        deb.exists(),
        "cargo deb said {}, which does not exist",
        deb.display()
    );
    Ok(deb)
}

/// Checks the package: `dpkg-deb -c` lists every file of [`CONTENTS`] and
/// a man page for each one `xdhcpd man` wrote, `dpkg-deb -I` shows the
/// conffile and the maintainer scripts (which must parse as sh), and
/// `systemd-analyze verify` accepts the unit as installed. Returns the
/// listing; the error says everything that is missing.
pub fn check(deb: &Path) -> Result<String> {
    let deb_s = deb.to_string_lossy();
    let listing = text(&output(
        Command::new("dpkg-deb").args(["-c", &deb_s]),
        "dpkg-deb -c",
    )?);
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    let mut missing: Vec<String> = CONTENTS
        .iter()
        .filter(|alts| !alts.iter().any(|p| paths.contains(p)))
        .map(|alts| alts.join(" or "))
        .collect();
    if let Some(target) = deb.parent().and_then(Path::parent) {
        for page in std::fs::read_dir(man_dir(target))
            .into_iter()
            .flatten()
            .flatten()
        {
            let want = format!(
                "./usr/share/man/man1/{}",
                page.file_name().to_string_lossy()
            );
            if !paths.contains(&want.as_str()) {
                missing.push(want);
            }
        }
    }

    let info = text(&output(
        Command::new("dpkg-deb").args(["-I", &deb_s]),
        "dpkg-deb -I",
    )?);
    for part in ["conffiles", "postinst", "postrm"] {
        if !info
            .lines()
            .any(|l| l.split_whitespace().any(|w| w == part))
        {
            missing.push(format!("{part} (dpkg-deb -I)"));
        }
    }
    let conffiles = text(&output(
        Command::new("dpkg-deb").args(["-I", &deb_s, "conffiles"]),
        "dpkg-deb -I conffiles",
    )?);
    if !conffiles.lines().any(|l| l.trim() == CONFFILE) {
        missing.push(format!("{CONFFILE} as a conffile (has: {conffiles:?})"));
    }
    if !missing.is_empty() {
        bail!(
            "{} lacks:\n  {}\ndpkg-deb -c:\n{listing}dpkg-deb -I:\n{info}",
            deb.display(),
            missing.join("\n  ")
        );
    }

    let scratch = scratch_dir()?;
    let res = check_scripts_and_unit(deb, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    res?;
    Ok(listing)
}

/// The maintainer scripts parse (`sh -n`), cargo-deb replaced their
/// `#DEBHELPER#`, and postinst makes the user; `systemd-analyze verify`
/// accepts the unit in the package's file tree.
fn check_scripts_and_unit(deb: &Path, scratch: &Path) -> Result<()> {
    let control = scratch.join("control");
    run_cmd(
        Command::new("dpkg-deb").arg("-e").arg(deb).arg(&control),
        "dpkg-deb -e",
    )?;
    for script in ["postinst", "postrm", "prerm"] {
        let path = control.join(script);
        if !path.exists() {
            continue;
        }
        let body = std::fs::read_to_string(&path)?;
        ensure!(
            !body.contains("#DEBHELPER#"),
            "{script}: #DEBHELPER# was left in"
        );
        run_cmd(
            Command::new("sh").arg("-n").arg(&path),
            &format!("sh -n {script}"),
        )?;
    }
    let postinst = std::fs::read_to_string(control.join("postinst"))?;
    ensure!(
        postinst.contains("adduser --system") && postinst.contains("chown xdhcpd:xdhcpd"),
        "postinst does not make the xdhcpd user and give it /var/lib/xdhcpd"
    );
    verify_unit(deb, &scratch.join("root"))
}

/// `systemd-analyze verify` needs no systemd as PID 1, but resolves the
/// unit's binaries and its dependencies in a file tree: the package's
/// files, the host's targets (sysinit.target ...), and `/bin/kill` for
/// ExecReload. Any message it prints fails the check: it reports unknown
/// keys as warnings with exit status 0. Without systemd-analyze (a build
/// host without systemd) the unit is left unverified, and it says so.
fn verify_unit(deb: &Path, root: &Path) -> Result<()> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("deb: no systemd-analyze on this host: the unit is not verified");
        return Ok(());
    }
    run_cmd(
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(root),
        "dpkg-deb -x",
    )?;
    let units = ["usr/lib/systemd/system", "lib/systemd/system"]
        .iter()
        .map(|d| root.join(d))
        .find(|d| d.join("xdhcpd.service").exists())
        .context("the unit is not in the package")?;
    for host in ["/usr/lib/systemd/system", "/lib/systemd/system"] {
        for e in std::fs::read_dir(host).into_iter().flatten().flatten() {
            let name = e.file_name();
            let to = units.join(&name);
            if name.to_string_lossy().ends_with(".target") && !to.exists() {
                std::fs::copy(e.path(), to)?;
            }
        }
    }
    let kill = ["/usr/bin/kill", "/bin/kill"]
        .iter()
        .find(|p| Path::new(p).exists())
        .context("no kill(1) on this host")?;
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::copy(kill, root.join("bin/kill"))?;
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(["--man=no", "xdhcpd.service"])
        .output()
        .context("running systemd-analyze verify")?;
    let said = text(&out);
    ensure!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify xdhcpd.service ({}):\n{said}",
        out.status
    );
    Ok(())
}

fn scratch_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("xtask-deb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Runs a command, capturing its output; a failure carries it.
fn output(cmd: &mut Command, what: &str) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({}):\n{}", out.status, text(&out));
    }
    Ok(out)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
