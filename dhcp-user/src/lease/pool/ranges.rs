//! The address ranges of a pool laid end to end as one run of bit
//! indices, in address order, so that the lowest index is the lowest
//! address.
use std::net::Ipv4Addr;

#[derive(Debug)]
pub(super) struct Ranges {
    /// (first address, number of addresses, index of the first address),
    /// sorted by address; both searches below are binary, since a pool
    /// may be made of many small ranges.
    runs: Box<[(u32, u32, u32)]>,
    size: u32,
}

impl Ranges {
    /// Inclusive ranges, in any order; overlapping or touching ranges are
    /// merged so no address has two indices.
    pub(super) fn new(ranges: &[(Ipv4Addr, Ipv4Addr)]) -> Ranges {
        let mut spans: Vec<(u32, u32)> = ranges
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (u32::from(a), u32::from(b));
                assert!(a <= b, "pool range {a} > {b}");
                (a, b)
            })
            .collect();
        spans.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(spans.len());
        for (a, b) in spans {
            match merged.last_mut() {
                Some((_, last)) if a <= last.saturating_add(1) => *last = (*last).max(b),
                _ => merged.push((a, b)),
            }
        }
        let mut runs = Vec::with_capacity(merged.len());
        let mut size: u64 = 0;
        for (a, b) in merged {
            let n = u64::from(b - a) + 1;
            assert!(
                size + n <= u64::from(u32::MAX),
                "pool larger than the IPv4 space"
            );
            runs.push((a, n as u32, size as u32));
            size += n;
        }
        Ranges {
            runs: runs.into_boxed_slice(),
            size: size as u32,
        }
    }

    pub(super) fn size(&self) -> u32 {
        self.size
    }

    #[inline]
    pub(super) fn index_of(&self, addr: Ipv4Addr) -> Option<u32> {
        let a = u32::from(addr);
        let r = self.runs.partition_point(|&(first, _, _)| first <= a);
        let &(first, n, base) = self.runs.get(r.checked_sub(1)?)?;
        (a - first < n).then(|| base + (a - first))
    }

    /// Address of an index below [`Ranges::size`].
    #[inline]
    pub(super) fn addr_of(&self, index: u32) -> Ipv4Addr {
        let r = self.runs.partition_point(|&(_, _, base)| base <= index);
        let &(first, _, base) = &self.runs[r.checked_sub(1).expect("index below the first range")];
        Ipv4Addr::from(first + (index - base))
    }
}
