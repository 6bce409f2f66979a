//! Reservations added at runtime (`xdhcpctl reserve`), kept in a file of
//! their own in the journal directory so they survive a restart, and
//! merged into the configuration at start and at every reload — the file
//! wins: a runtime reservation that the file now has too is dropped (it
//! is the file's from then on), one the file now contradicts is dropped
//! with the reason, both said in the log.
//!
//! The file is JSON, written whole and atomically (a temporary file,
//! fsync, rename, fsync of the directory), so it is the old or the new
//! one after a crash, never half of each. One that does not parse all
//! the same (edited by hand, a disk error) stops the daemon with its
//! path and the reason, rather than serving without reservations the
//! operator made.
use super::proto::NewReservation;
use crate::config::{Checked, Identity, Reservation};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The file's name in the journal directory.
pub const FILE_NAME: &str = "runtime-reservations.json";
const VERSION: u32 = 1;

/// One runtime reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runtime {
    pub address: Ipv4Addr,
    pub identity: Identity,
    pub infinite: bool,
}

/// The file's document.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    version: u32,
    reservations: Vec<NewReservation>,
}

impl Runtime {
    pub fn from_request(r: &NewReservation) -> Result<Runtime, String> {
        Ok(Runtime {
            address: r.addr,
            identity: r.identity()?,
            infinite: r.infinite,
        })
    }

    /// As the file stores it (binary identities in hex).
    fn to_request(&self) -> NewReservation {
        let mut r = NewReservation {
            addr: self.address,
            infinite: self.infinite,
            ..NewReservation::default()
        };
        match &self.identity {
            Identity::Mac(m) => r.mac = Some(crate::tools::show::mac(m)),
            Identity::ClientId(c) => r.client_id = Some(hex::encode(c)),
            Identity::CircuitId(c) => r.circuit_id_hex = Some(hex::encode(c)),
            Identity::RemoteId(c) => r.remote_id_hex = Some(hex::encode(c)),
        }
        r
    }

    /// Its JSON in the API's answers.
    pub fn json(&self, source: &str) -> serde_json::Value {
        let mut v = serde_json::to_value(self.to_request()).unwrap_or_default();
        v["source"] = source.into();
        v
    }
}

/// A reservation of the configuration in the API's answers.
pub fn file_json(r: &Reservation) -> serde_json::Value {
    Runtime {
        address: r.address,
        identity: r.identity.clone(),
        infinite: r.infinite,
    }
    .json("file")
}

/// How a runtime reservation stands against a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Against {
    /// Neither the same nor in conflict: it may be added.
    Apart,
    /// The file has the very same reservation.
    InFile,
    /// The file reserves the address or the client otherwise: the reason.
    Conflict(String),
}

/// Where `r` stands against the reservations of `file` (a configuration
/// as loaded, before any runtime reservation is merged in). The index of
/// the subnet holding its address comes with `Apart`/`InFile`.
pub fn against(file: &Checked, r: &Runtime) -> (Against, Option<usize>) {
    let Some(i) = file.subnets.iter().position(|s| s.contains(r.address)) else {
        return (
            Against::Conflict(format!("{} is in no configured subnet", r.address)),
            None,
        );
    };
    let s = &file.subnets[i];
    if r.address == s.network || r.address == s.broadcast() {
        return (
            Against::Conflict(format!(
                "{} is the network or broadcast address of {}/{}",
                r.address, s.network, s.prefix_len
            )),
            Some(i),
        );
    }
    if r.address == s.server_id || s.routers.contains(&r.address) {
        return (
            Against::Conflict(format!(
                "{} is the subnet's server identifier or a router",
                r.address
            )),
            Some(i),
        );
    }
    // Identities are scoped by link: the subnets of a shared network
    // are one.
    let link = file.link_of(i);
    for (j, o) in file.subnets.iter().enumerate() {
        for f in &o.reservations {
            let same_addr = f.address == r.address;
            let same_client = f.identity == r.identity && file.link_of(j) == link;
            match (same_addr, same_client) {
                (true, true) => return (Against::InFile, Some(i)),
                (true, false) => {
                    return (
                        Against::Conflict(format!(
                            "{} is reserved in the config file for {:?}",
                            r.address, f.identity
                        )),
                        Some(i),
                    );
                }
                (false, true) => {
                    return (
                        Against::Conflict(format!(
                            "{:?} is reserved in the config file for {}",
                            r.identity, f.address
                        )),
                        Some(i),
                    );
                }
                (false, false) => {}
            }
        }
    }
    (Against::Apart, Some(i))
}

/// The runtime reservations, and the file they are kept in.
#[derive(Debug)]
pub struct RuntimeSet {
    path: PathBuf,
    pub entries: Vec<Runtime>,
}

impl RuntimeSet {
    /// The set kept in `dir` (empty when the file is not there yet).
    pub fn load(dir: &Path) -> Result<RuntimeSet, String> {
        let path = dir.join(FILE_NAME);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(RuntimeSet {
                    path,
                    entries: Vec::new(),
                });
            }
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let bad = |why: String| {
            format!(
                "{}: {why}; it holds the reservations made with xdhcpctl reserve: repair it, \
                 or move it away to start without them",
                path.display()
            )
        };
        let doc: Doc = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        if doc.version != VERSION {
            return Err(bad(format!(
                "version {} (this xdhcpd reads {VERSION})",
                doc.version
            )));
        }
        let entries = doc
            .reservations
            .iter()
            .map(|r| Runtime::from_request(r).map_err(|e| bad(format!("{}: {e}", r.addr))))
            .collect::<Result<_, _>>()?;
        Ok(RuntimeSet { path, entries })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the set: temporary file, fsync, rename, fsync of the
    /// directory.
    pub fn save(&self) -> io::Result<()> {
        let doc = Doc {
            version: VERSION,
            reservations: self.entries.iter().map(Runtime::to_request).collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&doc).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::File::open(dir)?.sync_all()
    }

    /// Checks `r` against the configuration file `file` and the set:
    /// `Ok(true)` when it is new, `Ok(false)` when the set has it already,
    /// else the reason it is refused.
    pub fn check_new(&self, file: &Checked, r: &Runtime) -> Result<bool, String> {
        match against(file, r).0 {
            Against::Apart => {}
            Against::InFile => {
                return Err(format!(
                    "{} is reserved for {:?} in the config file already",
                    r.address, r.identity
                ));
            }
            Against::Conflict(why) => return Err(why),
        }
        let link_of = |a: Ipv4Addr| {
            file.subnets
                .iter()
                .position(|s| s.contains(a))
                .map(|i| file.link_of(i))
        };
        for o in &self.entries {
            if o == r {
                return Ok(false);
            }
            if o.address == r.address {
                return Err(format!(
                    "{} is reserved at runtime for {:?}: unreserve it first",
                    r.address, o.identity
                ));
            }
            if o.identity == r.identity && link_of(o.address) == link_of(r.address) {
                return Err(format!(
                    "{:?} is reserved at runtime for {}: unreserve it first",
                    r.identity, o.address
                ));
            }
        }
        Ok(true)
    }

    /// Merges the set into `cfg` (a configuration just loaded from its
    /// file): each reservation the file does not have and does not
    /// contradict is added to its subnet; the others are dropped from the
    /// set. What was dropped, and why, for the log; the caller saves the
    /// set when it is not empty.
    pub fn merge(&mut self, cfg: &mut Checked) -> Vec<String> {
        let mut notes = Vec::new();
        let mut keep = Vec::with_capacity(self.entries.len());
        for r in self.entries.drain(..) {
            match against(cfg, &r) {
                (Against::Apart, Some(i)) => {
                    cfg.subnets[i].reservations.push(Reservation {
                        identity: r.identity.clone(),
                        address: r.address,
                        infinite: r.infinite,
                    });
                    keep.push(r);
                }
                (Against::InFile, _) => notes.push(format!(
                    "runtime reservation of {} for {:?} is in the config file now: dropped from {}",
                    r.address, r.identity, FILE_NAME
                )),
                (Against::Conflict(why), _) => notes.push(format!(
                    "runtime reservation of {} for {:?} dropped: {why}",
                    r.address, r.identity
                )),
                (Against::Apart, None) => notes.push(format!(
                    "runtime reservation of {} for {:?} dropped: in no subnet",
                    r.address, r.identity
                )),
            }
        }
        self.entries = keep;
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::lease::journal::tests::TempDir;

    const FILE: &str = r#"
interface = "test0"
server_id = "192.0.2.1"

[[subnet]]
prefix = "192.0.2.0/24"
pools = ["192.0.2.10-192.0.2.100"]

[[subnet.reservation]]
address = "192.0.2.50"
mac = "02:00:00:00:00:32"
"#;

    fn mac(last: u8) -> Identity {
        Identity::Mac([2, 0, 0, 0, 0, last])
    }

    fn res(last: u8, ident: Identity) -> Runtime {
        Runtime {
            address: Ipv4Addr::new(192, 0, 2, last),
            identity: ident,
            infinite: false,
        }
    }

    #[test]
    fn the_file_survives_a_save_and_a_load() {
        let d = TempDir::new("runtime-save");
        let mut set = RuntimeSet::load(&d.0).unwrap();
        assert!(set.entries.is_empty());
        set.entries = vec![
            res(20, mac(20)),
            res(21, Identity::ClientId(vec![1, 2, 3])),
            res(22, Identity::CircuitId(b"eth0/1".to_vec())),
            Runtime {
                infinite: true,
                ..res(23, Identity::RemoteId(vec![0xde, 0xad]))
            },
        ];
        set.save().unwrap();
        let back = RuntimeSet::load(&d.0).unwrap();
        assert_eq!(back.entries, set.entries);
        assert!(!d.0.join("runtime-reservations.json.tmp").exists());
    }

    #[test]
    fn a_torn_or_corrupt_file_is_a_clear_error() {
        let d = TempDir::new("runtime-corrupt");
        let mut set = RuntimeSet::load(&d.0).unwrap();
        set.entries = vec![res(20, mac(20)), res(21, mac(21))];
        set.save().unwrap();
        let good = fs::read(set.path()).unwrap();
        // Cut anywhere inside the document: never read as fewer entries.
        for cut in [1, good.len() / 2, good.len() - 3] {
            fs::write(set.path(), &good[..cut]).unwrap();
            let e = RuntimeSet::load(&d.0).unwrap_err();
            assert!(
                e.contains(FILE_NAME) && e.contains("repair it"),
                "{cut}: {e}"
            );
        }
        fs::write(
            set.path(),
            br#"{"version":1,"reservations":[{"addr":"192.0.2.9"}]}"#,
        )
        .unwrap();
        let e = RuntimeSet::load(&d.0).unwrap_err();
        assert!(e.contains("192.0.2.9: reserve needs one of"), "{e}");
        fs::write(set.path(), br#"{"version":7,"reservations":[]}"#).unwrap();
        assert!(RuntimeSet::load(&d.0).unwrap_err().contains("version 7"));
    }

    #[test]
    fn new_reservations_are_checked_against_the_file_and_the_set() {
        let file = Config::parse(FILE).unwrap();
        let mut set = RuntimeSet {
            path: PathBuf::from("/nonexistent"),
            entries: vec![res(20, mac(20))],
        };
        assert_eq!(set.check_new(&file, &res(21, mac(21))), Ok(true));
        assert_eq!(set.check_new(&file, &res(20, mac(20))), Ok(false));
        for (r, why) in [
            (res(50, mac(51)), "reserved in the config file for Mac"),
            (
                res(51, mac(50)),
                "reserved in the config file for 192.0.2.50",
            ),
            (res(50, mac(50)), "in the config file already"),
            (res(20, mac(22)), "reserved at runtime for Mac"),
            (res(22, mac(20)), "reserved at runtime for 192.0.2.20"),
            (res(255, mac(1)), "broadcast"),
            (res(1, mac(1)), "server identifier"),
            (
                Runtime {
                    address: Ipv4Addr::new(198, 51, 100, 1),
                    ..res(1, mac(1))
                },
                "in no configured subnet",
            ),
        ] {
            let e = set.check_new(&file, &r).unwrap_err();
            assert!(e.contains(why), "{r:?}: {e}");
        }
        set.entries.clear();
    }

    #[test]
    fn merge_adds_apart_ones_and_drops_what_the_file_took_over() {
        let mut cfg = Config::parse(FILE).unwrap();
        let mut set = RuntimeSet {
            path: PathBuf::from("/nonexistent"),
            entries: vec![
                res(20, mac(20)),
                // The file gained it meanwhile.
                res(50, mac(50)),
                // The file reserves the address for someone else now.
                res(50, mac(7)),
            ],
        };
        let notes = set.merge(&mut cfg);
        assert_eq!(set.entries, vec![res(20, mac(20))]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("in the config file now"), "{}", notes[0]);
        assert!(
            notes[1].contains("dropped: 192.0.2.50 is reserved"),
            "{}",
            notes[1]
        );
        let rs = &cfg.subnets[0].reservations;
        assert_eq!(rs.len(), 2);
        assert_eq!(rs[1].address, Ipv4Addr::new(192, 0, 2, 20));
        // The merged configuration gives the runtime reservation's client
        // its address.
        let e = crate::engine::Engine::new(&cfg);
        assert!(e.subnets()[0].is_reserved(Ipv4Addr::new(192, 0, 2, 20)));
    }
}
