//! The internet checksum (RFC 1071) for IPv4 headers and UDP.
//!
//! The sum is taken over 64-bit big-endian words with end-around carry:
//! since 2^64 ≡ 1 (mod 2^16 − 1), that folds to the same value as the
//! 16-bit one's-complement sum, at a quarter of the additions.

use core::net::Ipv4Addr;

/// IPv4 protocol number of UDP, for the pseudo-header.
pub const PROTO_UDP: u8 = 17;

/// A running one's-complement sum over the pieces of a message, kept
/// wide until the end: 64 bits in the machine's own byte order, carries
/// added back in as they happen, and folded to 16 bits and swapped once,
/// by [`Sum::value`] or [`Sum::checksum`]. Summing a UDP datagram in
/// pieces (pseudo-header, the bytes before a zeroed run, those after it)
/// then costs one fold, not one per piece.
///
/// The words are added in the machine's own byte order and the folded sum
/// swapped once at the end (RFC 1071 §2(B): the sum is independent of byte
/// order), which saves a byte swap per word; four words per round keep
/// the loop's own overhead small.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sum(u64);

impl Sum {
    /// A sum of nothing.
    pub const ZERO: Sum = Sum(0);

    /// A sum that starts from `initial`, a sum of 16-bit big-endian words
    /// (for the tests, which hold it against a 16-bit reference).
    #[cfg(test)]
    fn from_value(initial: u32) -> Sum {
        Sum(u64::from(fold32(initial).to_be()))
    }

    /// The sum of the IPv4 pseudo-header that UDP's checksum covers.
    #[inline]
    pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> Sum {
        let [l0, l1] = length.to_be_bytes();
        let mut words = [0u8; 12];
        words[..4].copy_from_slice(&src.octets());
        words[4..8].copy_from_slice(&dst.octets());
        words[8..].copy_from_slice(&[0, protocol, l0, l1]);
        Sum::ZERO.add_bytes(&words)
    }

    /// Adds `data` as 16-bit big-endian words, an odd last byte padded
    /// with zero: every piece but the last must have an even length.
    #[inline]
    pub fn add_bytes(self, data: &[u8]) -> Sum {
        let mut acc = self.0;
        let mut rest = data;
        while let Some((words, tail)) = rest.split_first_chunk::<32>() {
            let w = |i: usize| u64::from_ne_bytes(words[i..i + 8].try_into().unwrap());
            acc = add_carry(acc, w(0));
            acc = add_carry(acc, w(8));
            acc = add_carry(acc, w(16));
            acc = add_carry(acc, w(24));
            rest = tail;
        }
        while let Some((word, tail)) = rest.split_first_chunk::<8>() {
            acc = add_carry(acc, u64::from_ne_bytes(*word));
            rest = tail;
        }
        if let Some((word, tail)) = rest.split_first_chunk::<4>() {
            acc = add_carry(acc, u64::from(u32::from_ne_bytes(*word)));
            rest = tail;
        }
        if let Some((word, tail)) = rest.split_first_chunk::<2>() {
            acc = add_carry(acc, u64::from(u16::from_ne_bytes(*word)));
            rest = tail;
        }
        if let Some(&last) = rest.first() {
            acc = add_carry(acc, u64::from(u16::from_ne_bytes([last, 0])));
        }
        Sum(acc)
    }

    /// The sum folded to 16 bits, as a number (big-endian word order).
    #[inline]
    pub fn value(self) -> u16 {
        u16::from_be(fold64(self.0))
    }

    /// The checksum field value: the complement of [`Sum::value`].
    #[inline]
    pub fn checksum(self) -> u16 {
        !self.value()
    }
}

/// The UDP checksum of `segment` (header with a zero checksum field, then
/// the payload) between `src` and `dst`. A computed 0 is sent as 0xffff,
/// because 0 on the wire means "no checksum" (RFC 768).
#[inline]
pub fn udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    udp_checksum_parts(src, dst, segment, 0..0)
}

/// [`udp_checksum`] of a segment whose bytes `zero` (even offsets into
/// the segment) are all zero: they are not read.
#[inline]
pub fn udp_checksum_parts(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    segment: &[u8],
    zero: core::ops::Range<usize>,
) -> u16 {
    let len = u16::try_from(segment.len()).unwrap_or(u16::MAX);
    let sum = Sum::pseudo_header(src, dst, PROTO_UDP, len)
        .add_bytes(&segment[..zero.start])
        .add_bytes(&segment[zero.end..]);
    match sum.checksum() {
        0 => 0xffff,
        c => c,
    }
}

#[inline(always)]
fn add_carry(acc: u64, word: u64) -> u64 {
    let (sum, carry) = acc.overflowing_add(word);
    sum + u64::from(carry)
}

#[inline(always)]
fn fold64(acc: u64) -> u16 {
    let folded = (acc >> 32) + (acc & 0xffff_ffff);
    let folded = (folded >> 32) + (folded & 0xffff_ffff);
    fold32(folded as u32)
}

#[inline(always)]
fn fold32(sum: u32) -> u16 {
    let folded = (sum >> 16) + (sum & 0xffff);
    let folded = (folded >> 16) + (folded & 0xffff);
    folded as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::{XorShift, reference_sum};

    /// `initial` plus `data`, folded: what the tests hold against
    /// [`reference_sum`].
    fn sum(data: &[u8], initial: u32) -> u32 {
        u32::from(Sum::from_value(initial).add_bytes(data).value())
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&data, 0), 0xddf2);
        assert_eq!(Sum::ZERO.add_bytes(&data).checksum(), 0x220d);
    }

    #[test]
    fn matches_16_bit_reference_on_random_data() {
        let mut rng = XorShift::new(7);
        let mut buf = [0u8; 1600];
        for round in 0..2000 {
            let len = rng.below(buf.len() + 1);
            rng.fill(&mut buf[..len]);
            if round % 3 == 0 {
                // Long runs of 0xff exercise the carries.
                buf[..len].fill(0xff);
            }
            let initial = rng.next_u32() & 0x000f_ffff;
            assert_eq!(
                sum(&buf[..len], initial),
                u32::from(reference_sum(&buf[..len], initial)),
                "len {len} initial {initial:#x}"
            );
        }
    }

    /// Pieces at even offsets sum to what one pass does, kept wide between
    /// them or folded and started again.
    #[test]
    fn sum_in_pieces_equals_one_pass() {
        let mut rng = XorShift::new(11);
        let mut buf = [0u8; 700];
        rng.fill(&mut buf);
        let whole = sum(&buf, 0x1_2345);
        for split in (0..buf.len()).step_by(2) {
            let (a, b) = buf.split_at(split);
            let wide = Sum::from_value(0x1_2345).add_bytes(a).add_bytes(b);
            assert_eq!(u32::from(wide.value()), whole, "split {split}");
            assert_eq!(sum(b, sum(a, 0x1_2345)), whole, "split {split}");
        }
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(192, 168, 7, 9));
        let pseudo = [10, 0, 0, 1, 192, 168, 7, 9, 0, PROTO_UDP, 0x02, 0xbc];
        assert_eq!(
            Sum::pseudo_header(src, dst, PROTO_UDP, 700).value(),
            reference_sum(&pseudo, 0)
        );
    }

    #[test]
    fn udp_checksum_verifies_and_never_zero() {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut seg = [0u8; 13];
        seg[..8].copy_from_slice(&[0, 67, 0, 68, 0, 13, 0, 0]);
        seg[8..].copy_from_slice(b"hello");
        let c = udp_checksum(src, dst, &seg);
        assert_ne!(c, 0);
        seg[6..8].copy_from_slice(&c.to_be_bytes());
        let check = Sum::pseudo_header(src, dst, PROTO_UDP, 13).add_bytes(&seg);
        assert_eq!(check.checksum(), 0);
    }
}
