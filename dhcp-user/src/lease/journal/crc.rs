//! The CRC-32C (Castagnoli) of a journal frame: its four length bytes,
//! then its body, in one pass.
//!
//! The writer seals every record with it and recovery checks every one,
//! so its cost per record is a share of the journal thread's CPU per
//! lease, which on a machine with as many workers as cores is taken from
//! the workers. The crc32c crate is built for long inputs (three streams
//! interleaved, combined by tables), and a lease body is 41 bytes for a
//! MAC without a name, about 180 at most. Taken in its two calls (the
//! length, then the body), each started with single bytes up to an 8-byte
//! boundary of the address, and each dispatched anew, it was a quarter of
//! the writer's CPU in the scaling bench's profile. Here the SSE 4.2
//! instruction takes unaligned 8-byte words (x86 loads them at no extra
//! cost) from the first byte, and one call covers the frame; CPUs without
//! it use the crate, with the same result.

/// `crc32c(len_bytes ++ body)`, as `crc32c::crc32c_append(crc32c(len),
/// body)` computes it.
#[inline]
pub(crate) fn frame_crc(len_bytes: [u8; 4], body: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE 4.2, checked just above.
        return unsafe { sse42(len_bytes, body) };
    }
    portable(len_bytes, body)
}

/// The crate's way, for CPUs without SSE 4.2 (and for the tests).
fn portable(len_bytes: [u8; 4], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&len_bytes), body)
}

/// The CRC register starts at all ones and is inverted at the end
/// (CRC-32C's conventions); the instruction consumes its operand's bytes
/// in memory order when the operand is read little-endian.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn sse42(len_bytes: [u8; 4], body: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64};
    let mut c = u64::from(_mm_crc32_u32(!0, u32::from_le_bytes(len_bytes)));
    let mut rest = body;
    while let Some((w, tail)) = rest.split_first_chunk::<8>() {
        c = _mm_crc32_u64(c, u64::from_le_bytes(*w));
        rest = tail;
    }
    let mut c = c as u32;
    if let Some((w, tail)) = rest.split_first_chunk::<4>() {
        c = _mm_crc32_u32(c, u32::from_le_bytes(*w));
        rest = tail;
    }
    if let Some((w, tail)) = rest.split_first_chunk::<2>() {
        c = _mm_crc32_u16(c, u16::from_le_bytes(*w));
        rest = tail;
    }
    if let Some(&b) = rest.first() {
        c = _mm_crc32_u8(c, b);
    }
    !c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every body length up to past the largest body, at every offset of
    /// an 8-byte word (the words are read unaligned), against the crate.
    #[test]
    fn frame_crc_is_the_crates_crc_for_every_length_and_offset() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let bytes: Vec<u8> = (0..400)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for at in 0..8 {
            for len in 0..=300 {
                let body = &bytes[at + 4..at + 4 + len];
                let head: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
                assert_eq!(
                    frame_crc(head, body),
                    portable(head, body),
                    "offset {at}, length {len}"
                );
            }
        }
    }

    /// The check value of CRC-32C (RFC 3720 B.4 lists it as the CRC of
    /// "123456789"): 0xE3069283.
    #[test]
    fn the_standard_check_value() {
        assert_eq!(frame_crc(*b"1234", b"56789"), 0xe306_9283);
        assert_eq!(portable(*b"1234", b"56789"), 0xe306_9283);
    }
}
