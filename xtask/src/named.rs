//! A BIND named beside the lab's server, taking xdhcpd's dynamic updates:
//! a namespace of its own (`NAME-dns`) joined to the server namespace by a
//! veth pair ([`Lab::server_spur`]), the server side at 192.0.2.1, named
//! at 192.0.2.53 (RFC 5737's TEST-NET-1, never routed).
//!
//! named serves two primary zones, the forward `lab.example.` and the
//! reverse `198.in-addr.arpa.` (the lab's addresses are 198.18.0.0/15),
//! both updatable with one TSIG key made by `tsig-keygen` at start and
//! transferable by anyone (inside the lab), so a test can read a whole
//! zone. Its config, zone files, journals and log live in a temp dir that
//! outlives a [`Named::stop`], so [`Named::start_again`] serves what the
//! updates made before.
use crate::daemon::temp_dir;
use crate::lab::{Lab, Spur, run};
use crate::process::stop_child;
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// named's address, and the lab server's on the same link.
pub const DNS_IP: &str = "192.0.2.53";
pub const SERVER_SIDE_IP: &str = "192.0.2.1";
pub const FORWARD_ZONE: &str = "lab.example.";
pub const REVERSE_ZONE: &str = "198.in-addr.arpa.";
pub const KEY_NAME: &str = "xdhcpd-key";

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What named serves beyond the two empty zones.
#[derive(Debug, Clone, Default)]
pub struct NamedOptions {
    /// Zone-file lines added to the forward zone (relative names or
    /// FQDNs), e.g. `"static IN A 198.18.9.9"`: names no DHCP server
    /// wrote, which the conflict procedures must leave alone.
    pub forward_records: Vec<String>,
}

/// A running named. Dropping it kills named and removes its namespace,
/// its veth pair and its dir.
pub struct Named {
    child: Option<Child>,
    dir: PathBuf,
    key_file: PathBuf,
    secret_b64: String,
    // Last: dropped after the Drop impl has killed named.
    spur: Spur,
}

impl Named {
    /// Builds the DNS namespace, writes the config and zones, makes the
    /// key and starts named, waiting until it answers for both zones.
    pub fn start(lab: &Lab, opts: &NamedOptions) -> Result<Named> {
        let spur = lab.server_spur(
            "dns",
            Some(&format!("{DNS_IP}/24")),
            Some(&format!("{SERVER_SIDE_IP}/24")),
        )?;
        let dir = temp_dir("named")?;
        // From here a failure drops `named`, which removes all of it.
        let mut named = Named {
            child: None,
            key_file: dir.join(format!("{KEY_NAME}.key")),
            dir,
            secret_b64: String::new(),
            spur,
        };
        let key =
            run(std::process::Command::new("tsig-keygen").args(["-a", "hmac-sha256", KEY_NAME]))
                .context("making the TSIG key (is bind9 installed? cargo xtask setup)")?;
        let key_text = String::from_utf8(key.stdout).context("tsig-keygen's output")?;
        named.secret_b64 = key_secret(&key_text)?;
        std::fs::write(&named.key_file, &key_text).context("writing the key file")?;
        std::fs::write(
            named.dir.join("named.conf"),
            named_conf(&named.dir, &named.key_file),
        )
        .context("writing named.conf")?;
        std::fs::write(
            named.dir.join("forward.zone"),
            zone_file(FORWARD_ZONE, &opts.forward_records),
        )?;
        std::fs::write(named.dir.join("reverse.zone"), zone_file(REVERSE_ZONE, &[]))?;
        named.spawn()?;
        Ok(named)
    }

    /// Starts named again after [`Named::stop`], on the same config, zone
    /// files and journals.
    pub fn start_again(&mut self) -> Result<()> {
        ensure!(self.child.is_none(), "named is still running");
        self.spawn()
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("named.log"))
            .context("opening named's log")?;
        // -g: foreground, logging to stderr; -4: no IPv6 (the lab has
        // none); -n 1: one worker thread, the machine is shared.
        let child = self
            .spur
            .cmd("named")
            .args(["-g", "-4", "-n", "1", "-c"])
            .arg(self.dir.join("named.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting named (is bind9 installed? cargo xtask setup)")?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "named exited before it answered ({status}):\n{}",
                    self.log()
                );
            }
            let fwd = self.dig(FORWARD_ZONE, "SOA").unwrap_or_default();
            let rev = self.dig(REVERSE_ZONE, "SOA").unwrap_or_default();
            if !fwd.is_empty() && !rev.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "named did not answer within {READY_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, then waits for the exit; the dir stays for
    /// [`Named::start_again`]. An unclean exit is an error with the log.
    pub fn stop(&mut self) -> Result<()> {
        let mut child = self.child.take().context("named is not running")?;
        match stop_child(&mut child, libc::SIGTERM, STOP_TIMEOUT)? {
            Some(s) if s.success() => Ok(()),
            Some(s) => bail!("named exited with {s}:\n{}", self.log()),
            None => bail!(
                "named did not exit within {STOP_TIMEOUT:?} of SIGTERM:\n{}",
                self.log()
            ),
        }
    }

    /// Everything named logged so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("named.log")).unwrap_or_default()
    }

    pub fn key_name(&self) -> &str {
        KEY_NAME
    }

    /// The key's secret, as base64 (what xdhcpd's `key_secret` takes).
    pub fn secret_b64(&self) -> &str {
        &self.secret_b64
    }

    /// The key as `tsig-keygen` wrote it (what xdhcpd's `key_file` takes).
    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// named's address and port, for xdhcpd's `server`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(DNS_IP.parse().expect("literal"), 53)
    }

    /// The DNS namespace, for commands of a test's own.
    pub fn ns(&self) -> &str {
        &self.spur.ns
    }

    /// `dig +short NAME RTYPE` at named, from inside its namespace: one
    /// line per record's data, nothing for no records. RTYPE may be
    /// `DHCID` (its data prints as base64) or `TYPE49`.
    pub fn dig(&self, name: &str, rtype: &str) -> Result<Vec<String>> {
        self.dig_opts(name, rtype, &[])
    }

    /// [`Named::dig`] with more of dig's options, e.g. `+unknownformat`
    /// (RDATA as RFC 3597 hex: `\# LEN HEX`).
    pub fn dig_opts(&self, name: &str, rtype: &str, opts: &[&str]) -> Result<Vec<String>> {
        let out = run(self
            .spur
            .cmd("dig")
            .arg(format!("@{DNS_IP}"))
            .args(["+short", "+norecurse", "+time=2", "+tries=1"])
            .args(opts)
            .args([name, rtype]))?;
        Ok(lines(&out.stdout))
    }

    /// Every record of `zone` by AXFR, one per line with the fields
    /// separated by one space (`name ttl class type data`), SOA first and
    /// last as the transfer has them.
    pub fn zone_records(&self, zone: &str) -> Result<Vec<String>> {
        let out = run(self
            .spur
            .cmd("dig")
            .arg(format!("@{DNS_IP}"))
            .args(["+noall", "+answer", "+time=2", "+tries=1", zone, "AXFR"]))?;
        let records = lines(&out.stdout);
        ensure!(
            records.first().is_some_and(|r| r.contains(" SOA ")),
            "AXFR of {zone} gave no SOA: {records:?}\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        Ok(records)
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The spur's own Drop then removes the namespace and the veth.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Non-empty lines, their whitespace runs made one space.
fn lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .collect()
}

/// The secret of a `key "name" { algorithm ...; secret "..."; };` clause.
fn key_secret(key_text: &str) -> Result<String> {
    let after = key_text
        .split("secret")
        .nth(1)
        .context("tsig-keygen wrote no secret")?;
    let secret = after
        .split('"')
        .nth(1)
        .context("tsig-keygen's secret is not quoted")?;
    ensure!(!secret.is_empty(), "tsig-keygen wrote an empty secret");
    Ok(secret.to_string())
}

fn named_conf(dir: &Path, key_file: &Path) -> String {
    let d = dir.display();
    let zone = |name: &str, file: &str| {
        format!(
            "zone \"{name}\" {{\n\ttype primary;\n\tfile \"{d}/{file}\";\n\
             \tupdate-policy {{ grant {KEY_NAME} zonesub ANY; }};\n}};\n"
        )
    };
    format!(
        "// Written by xtask's named.rs for one lab test.\n\
         include \"{key}\";\n\
         options {{\n\
         \tdirectory \"{d}\";\n\
         \tpid-file \"{d}/named.pid\";\n\
         \tsession-keyfile \"{d}/session.key\";\n\
         \tmanaged-keys-directory \"{d}\";\n\
         \tlisten-on port 53 {{ {DNS_IP}; }};\n\
         \tlisten-on-v6 {{ none; }};\n\
         \trecursion no;\n\
         \tallow-query {{ any; }};\n\
         \tallow-transfer {{ any; }};\n\
         \tdnssec-validation no;\n\
         \tnotify no;\n\
         }};\n\
         // No rndc: the tests stop named with SIGTERM.\n\
         controls {{ }};\n\
         {fwd}{rev}",
        key = key_file.display(),
        fwd = zone(FORWARD_ZONE, "forward.zone"),
        rev = zone(REVERSE_ZONE, "reverse.zone"),
    )
}

/// A zone with its SOA and NS (ns.lab.example. at named's address) and
/// `extra` lines.
fn zone_file(origin: &str, extra: &[String]) -> String {
    let mut z = format!(
        "$ORIGIN {origin}\n$TTL 300\n\
         @ IN SOA ns.{FORWARD_ZONE} hostmaster.{FORWARD_ZONE} 1 3600 600 86400 300\n\
         @ IN NS ns.{FORWARD_ZONE}\n"
    );
    if origin == FORWARD_ZONE {
        z.push_str(&format!("ns IN A {DNS_IP}\n"));
    }
    for line in extra {
        z.push_str(line);
        z.push('\n');
    }
    z
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_comes_out_of_a_tsig_keygen_clause() {
        let text = "key \"xdhcpd-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0\";\n};\n";
        assert_eq!(key_secret(text).unwrap(), "c2VjcmV0");
        assert!(key_secret("key \"k\" { algorithm hmac-sha256; };").is_err());
    }

    #[test]
    fn zones_are_updatable_with_the_key_only_and_hold_their_extras() {
        let conf = named_conf(Path::new("/tmp/d"), Path::new("/tmp/d/k.key"));
        assert_eq!(conf.matches("grant xdhcpd-key zonesub ANY").count(), 2);
        assert!(conf.contains("include \"/tmp/d/k.key\""));
        assert!(conf.contains("listen-on port 53 { 192.0.2.53; }"));
        let z = zone_file(FORWARD_ZONE, &["static IN A 198.18.9.9".into()]);
        assert!(z.contains("ns IN A 192.0.2.53") && z.ends_with("static IN A 198.18.9.9\n"));
        assert!(!zone_file(REVERSE_ZONE, &[]).contains(" IN A "));
    }
}
