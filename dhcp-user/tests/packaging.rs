//! What the Debian package ships, checked without root: the sample
//! config passes `xdhcpd check-config`, the unit's command lines are ones
//! the CLI takes, the man pages are written, and `--log-format json`
//! writes JSON lines. (The unit's capabilities are measured in the lab:
//! tests/lab_package.rs.)
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const XDHCPD: &str = env!("CARGO_BIN_EXE_xdhcpd");
/// Where the sample config points DDNS at its TSIG key; postinst writes it.
const KEY_FILE: &str = "/etc/xdhcpd/ddns.key";
/// Where the package puts the sample config, as the unit names it.
const CONFIG: &str = "/etc/xdhcpd/xdhcpd.toml";

fn packaging(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(name)
}

/// A directory of this test's own, removed when it ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("xdhcpd-pkg-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// city.toml as installed, with its key file where postinst would have
/// written one (a random secret of the same shape), since check-config
/// reads it.
fn city_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(packaging("city.toml")).unwrap();
    assert_eq!(
        text.matches(KEY_FILE).count(),
        2,
        "city.toml names {KEY_FILE} in its comments and as key_file"
    );
    let key = dir.join("ddns.key");
    // 32 bytes, base64, as postinst's `head -c 32 /dev/urandom | base64`.
    std::fs::write(&key, "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=\n").unwrap();
    let path = dir.join("xdhcpd.toml");
    std::fs::write(&path, text.replace(KEY_FILE, &key.to_string_lossy())).unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(XDHCPD)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn city_sample_passes_check_config() {
    let dir = Scratch::new("city");
    let config = city_config(&dir.0);
    let out = run(&["check-config", &config.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok, 2 subnet(s)"), "{}", text(&out));

    // What the package relies on: the journal in the unit's
    // StateDirectory, durable.
    let checked = xdhcp::config::Config::load(&config).unwrap();
    let journal = checked.file.journal.as_ref().expect("a [journal]");
    assert_eq!(journal.dir, Path::new("/var/lib/xdhcpd"));
    assert_eq!(journal.mode, xdhcp::config::JournalMode::Durable);
    assert!(checked.subnets.iter().all(|s| s.ddns.is_some()));
}

#[test]
fn city_sample_without_its_key_file_says_so() {
    // On a host without /etc/xdhcpd/ddns.key (postinst did not run), the
    // check names the file: the operator knows what is missing.
    if Path::new(KEY_FILE).exists() {
        return;
    }
    let out = run(&["check-config", &packaging("city.toml").to_string_lossy()]);
    assert!(!out.status.success());
    assert!(text(&out).contains(KEY_FILE), "{}", text(&out));
}

/// The values of the unit's `key=` lines.
fn unit_values(key: &str) -> Vec<String> {
    let unit = std::fs::read_to_string(packaging("xdhcpd.service")).unwrap();
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_owned())
        .collect()
}

#[test]
fn unit_command_lines_are_ones_the_cli_takes() {
    let dir = Scratch::new("unit");
    let config = city_config(&dir.0);
    let config = config.to_string_lossy();
    // ExecStartPre checks the installed config: it passes on the sample.
    let pre = unit_values("ExecStartPre");
    assert_eq!(pre.len(), 1, "{pre:?}");
    let words: Vec<&str> = pre[0].split_whitespace().collect();
    assert_eq!(words[0], "/usr/sbin/xdhcpd");
    let args: Vec<&str> = words[1..]
        .iter()
        .map(|w| if *w == CONFIG { &*config } else { w })
        .collect();
    let out = run(&args);
    assert!(
        out.status.success(),
        "ExecStartPre {args:?}: {}",
        text(&out)
    );

    // ExecStart would serve: clap must take its flags (an unknown one
    // fails before --help is reached).
    let start = unit_values("ExecStart");
    assert_eq!(start.len(), 1, "{start:?}");
    let words: Vec<&str> = start[0].split_whitespace().collect();
    assert_eq!(words[0], "/usr/sbin/xdhcpd");
    assert!(words.contains(&CONFIG), "{start:?}");
    let mut args = words[1..].to_vec();
    args.push("--help");
    let out = run(&args);
    assert!(out.status.success(), "ExecStart {args:?}: {}", text(&out));

    assert_eq!(unit_values("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(unit_values("User"), ["xdhcpd"]);
    assert_eq!(unit_values("StateDirectory"), ["xdhcpd"]);
}

#[test]
fn man_pages_are_written_and_the_command_is_hidden() {
    let dir = Scratch::new("man");
    let out = run(&["man", &dir.0.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out));
    let page = std::fs::read_to_string(dir.0.join("xdhcpd.1")).unwrap();
    assert!(page.contains(".TH xdhcpd 1"), "{page}");
    assert!(page.contains("log\\-format"), "the page lists --log-format");
    for sub in ["check-config", "leases", "import-kea", "export-kea"] {
        let p = dir.0.join(format!("xdhcpd-{sub}.1"));
        assert!(p.exists(), "{} is missing", p.display());
    }
    assert!(!dir.0.join("xdhcpd-man.1").exists());
    let help = text(&run(&["--help"]));
    assert!(!help.contains("man "), "`man` shows in --help:\n{help}");
}

#[test]
fn json_log_lines_are_json() {
    // A valid config whose interface cannot exist (longer than IFNAMSIZ):
    // the daemon logs why it stops, and exits, before it touches anything.
    let dir = Scratch::new("json");
    let config = dir.0.join("xdhcpd.toml");
    std::fs::write(
        &config,
        "interface = \"xdhcpd-test-no-such-interface\"\nserver_id = \"198.18.0.1\"\n\
         [[subnet]]\nprefix = \"198.18.0.0/15\"\npools = [\"198.18.0.10-198.18.0.20\"]\n",
    )
    .unwrap();
    let out = run(&[
        "--log-format",
        "json",
        "--config",
        &config.to_string_lossy(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let fatal = lines
        .iter()
        .find(|v| v["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR record in {stderr}"));
    assert_eq!(fatal["fields"]["message"], "xdhcpd exits");
    let error = fatal["fields"]["error"].as_str().unwrap();
    assert!(error.contains("xdhcpd-test-no-such-interface"), "{fatal}");
    assert!(fatal["timestamp"].is_string(), "{fatal}");

    // The default stays text: the same failure is one plain line.
    let out = run(&["--config", &config.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("xdhcpd: "), "{stderr}");
    assert!(serde_json::from_str::<serde_json::Value>(stderr.trim()).is_err());
}
