//! Checks that span clients and workers: the expected subnet, and which
//! client holds which address, so an address ACKed to two clients at once
//! is caught whichever workers serve them.
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

/// An IPv4 prefix, e.g. 198.18.0.0/15.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub net: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        };
        u32::from(a) & mask == u32::from(self.net) & mask
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (net, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not ADDRESS/LENGTH"))?;
        let net: Ipv4Addr = net.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let len: u8 = len.parse().map_err(|e| format!("{s:?}: {e}"))?;
        if len > 32 {
            return Err(format!("{s:?}: prefix length above 32"));
        }
        Ok(Prefix { net, len })
    }
}

/// Who holds which address: a lock-free open-addressing table of
/// `address << 32 | owner + 1`, shared by all workers. Keys are never
/// removed (a released address keeps its slot with owner 0), so probe
/// chains stay intact without tombstone handling; the table is sized for
/// several times the fleet, and distinct addresses beyond it are counted
/// as unchecked rather than blocking.
#[derive(Debug)]
pub struct AddressBook {
    slots: Vec<AtomicU64>,
    mask: usize,
}

/// The outcome of recording a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Recorded (or already this client's).
    Ok,
    /// Held by another client.
    Duplicate { owner: u32 },
    /// The table is full; not checked.
    Full,
}

const FREE_OWNER: u64 = 0;

impl AddressBook {
    /// A book for `clients` clients.
    pub fn new(clients: usize) -> AddressBook {
        let size = (clients.max(1024) * 4).next_power_of_two();
        AddressBook {
            slots: (0..size).map(|_| AtomicU64::new(0)).collect(),
            mask: size - 1,
        }
    }

    fn start(&self, addr: u32) -> usize {
        // Fibonacci hashing: consecutive pool addresses spread out.
        (addr.wrapping_mul(0x9e37_79b9) as usize) & self.mask
    }

    /// Records that client `owner` holds `addr`.
    pub fn claim(&self, addr: Ipv4Addr, owner: u32) -> Claim {
        let key = u32::from(addr);
        let want = (u64::from(key) << 32) | (u64::from(owner) + 1);
        let mut i = self.start(key);
        for _ in 0..=self.mask {
            let slot = &self.slots[i];
            let mut cur = slot.load(Ordering::Acquire);
            loop {
                if cur == 0 {
                    match slot.compare_exchange(0, want, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Claim::Ok,
                        Err(now) => cur = now,
                    }
                    continue;
                }
                if (cur >> 32) as u32 != key {
                    break;
                }
                let held = cur & 0xffff_ffff;
                if held == FREE_OWNER || held == u64::from(owner) + 1 {
                    match slot.compare_exchange(cur, want, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Claim::Ok,
                        Err(now) => {
                            cur = now;
                            continue;
                        }
                    }
                }
                return Claim::Duplicate {
                    owner: (held - 1) as u32,
                };
            }
            i = (i + 1) & self.mask;
        }
        Claim::Full
    }

    /// Every address ever recorded, in order (held or not): for a book
    /// that only tallies distinct addresses. Walks the whole table: for
    /// the end of a run, not the packet path.
    pub fn addresses(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self
            .slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&s| s != 0)
            .map(|s| Ipv4Addr::from((s >> 32) as u32))
            .collect();
        v.sort_unstable();
        v
    }

    /// Forgets that `owner` holds `addr` (released, NAKed, or rebound
    /// elsewhere). Nothing happens when someone else holds it.
    pub fn release(&self, addr: Ipv4Addr, owner: u32) {
        let key = u32::from(addr);
        let held = (u64::from(key) << 32) | (u64::from(owner) + 1);
        let mut i = self.start(key);
        for _ in 0..=self.mask {
            let cur = self.slots[i].load(Ordering::Acquire);
            if cur == 0 {
                return;
            }
            if (cur >> 32) as u32 == key {
                let _ = self.slots[i].compare_exchange(
                    held,
                    u64::from(key) << 32,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                return;
            }
            i = (i + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_parse_and_contains() {
        let p: Prefix = "198.18.0.0/15".parse().unwrap();
        assert!(p.contains(Ipv4Addr::new(198, 19, 255, 254)));
        assert!(!p.contains(Ipv4Addr::new(198, 20, 0, 1)));
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(8, 8, 8, 8)));
        assert!("1.2.3.4".parse::<Prefix>().is_err());
        assert!("1.2.3.4/33".parse::<Prefix>().is_err());
    }

    #[test]
    fn second_owner_is_a_duplicate_until_released() {
        let b = AddressBook::new(10);
        let a = Ipv4Addr::new(10, 0, 0, 5);
        assert_eq!(b.claim(a, 1), Claim::Ok);
        assert_eq!(b.claim(a, 1), Claim::Ok, "renewal by the holder");
        assert_eq!(b.claim(a, 2), Claim::Duplicate { owner: 1 });
        b.release(a, 2); // not the holder: no effect
        assert_eq!(b.claim(a, 2), Claim::Duplicate { owner: 1 });
        b.release(a, 1);
        assert_eq!(b.claim(a, 2), Claim::Ok);
        assert_eq!(b.claim(Ipv4Addr::new(10, 0, 0, 6), 1), Claim::Ok);
    }

    #[test]
    fn addresses_lists_each_once() {
        let b = AddressBook::new(10);
        for a in [7u32, 3, 7, 5, 3] {
            b.claim(Ipv4Addr::from(0x0a00_0000 + a), 0);
        }
        b.release(Ipv4Addr::from(0x0a00_0005), 0);
        let got: Vec<u32> = b.addresses().into_iter().map(u32::from).collect();
        assert_eq!(got, [0x0a00_0003, 0x0a00_0005, 0x0a00_0007]);
    }

    #[test]
    fn many_addresses_and_owner_zero() {
        let b = AddressBook::new(1000);
        for i in 0..3000u32 {
            assert_eq!(b.claim(Ipv4Addr::from(0x0a00_0000 + i), i), Claim::Ok);
        }
        for i in 0..3000u32 {
            assert_eq!(
                b.claim(Ipv4Addr::from(0x0a00_0000 + i), i + 1),
                Claim::Duplicate { owner: i }
            );
        }
    }
}
