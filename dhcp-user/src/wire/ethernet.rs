//! Ethernet II frames with up to two VLAN tags (802.1Q, 802.1ad QinQ).
//!
//! ISP access networks put subscribers in a VLAN per service or per port,
//! often double-tagged; the engine chooses the subnet by those tags, so
//! they are parsed once here and carried into the reply unchanged.

use super::{Error, Field, Result, read_u16};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// 802.1Q customer tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service tag (QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ outer tag some switches still send.
pub const ETHERTYPE_QINQ_LEGACY: u16 = 0x9100;

/// Byte offsets of the header's fields, for the view below and for
/// `emit`. VLAN tags stand where an untagged frame has its ethertype, each
/// pushing it on by [`TAG_LEN`].
pub(crate) mod field {
    use crate::wire::Field;

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    /// The ethertype of an untagged frame, or the first tag's TPID.
    pub const ETHERTYPE: Field = 12..14;
    /// Within a tag: the TPID, the ethertype that announces it.
    pub const TAG_TPID: Field = 0..2;
    /// Within a tag: PCP, DEI and VID.
    pub const TAG_TCI: Field = 2..4;
}

/// Ethernet header without tags.
pub const HEADER_LEN: usize = field::ETHERTYPE.end;
/// One VLAN tag (TPID + TCI).
pub const TAG_LEN: usize = field::TAG_TCI.end;
pub const MAX_VLANS: usize = 2;

pub const BROADCAST: [u8; 6] = [0xff; 6];

/// Whether `ethertype` introduces a VLAN tag. All three TPIDs are accepted
/// in both positions: switches disagree on which goes where, and reading
/// the tag the same way in either position costs nothing.
#[inline]
pub const fn is_vlan_tpid(ethertype: u16) -> bool {
    matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_LEGACY
    )
}

/// One VLAN tag as it stands on the wire.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct VlanTag {
    pub tpid: u16,
    pub tci: u16,
}

impl VlanTag {
    #[inline]
    pub const fn new(tpid: u16, vid: u16) -> Self {
        VlanTag {
            tpid,
            tci: vid & 0x0fff,
        }
    }

    /// VLAN identifier (12 bits).
    #[inline]
    pub const fn vid(self) -> u16 {
        self.tci & 0x0fff
    }

    /// Priority code point (802.1p).
    #[inline]
    pub const fn pcp(self) -> u8 {
        (self.tci >> 13) as u8
    }
}

/// The tags of a frame, outermost first.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq, Hash)]
pub struct VlanTags {
    /// Number of valid entries in `tags` (0, 1 or 2).
    pub count: u8,
    pub tags: [VlanTag; MAX_VLANS],
}

impl VlanTags {
    pub const NONE: VlanTags = VlanTags {
        count: 0,
        tags: [VlanTag { tpid: 0, tci: 0 }; MAX_VLANS],
    };

    /// A single 802.1Q tag.
    pub const fn single(vid: u16) -> Self {
        VlanTags {
            count: 1,
            tags: [
                VlanTag::new(ETHERTYPE_VLAN, vid),
                VlanTag { tpid: 0, tci: 0 },
            ],
        }
    }

    /// An 802.1ad outer tag over an 802.1Q inner tag.
    pub const fn double(outer_vid: u16, inner_vid: u16) -> Self {
        VlanTags {
            count: 2,
            tags: [
                VlanTag::new(ETHERTYPE_QINQ, outer_vid),
                VlanTag::new(ETHERTYPE_VLAN, inner_vid),
            ],
        }
    }

    /// The valid tags, outermost first (`count` above 2 is clamped).
    #[inline]
    pub fn as_slice(&self) -> &[VlanTag] {
        let n = usize::from(self.count).min(MAX_VLANS);
        &self.tags[..n]
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// VID of the outermost tag (the only one of a single-tagged frame).
    #[inline]
    pub fn outer_vid(&self) -> Option<u16> {
        self.as_slice().first().map(|t| t.vid())
    }

    /// VID of the inner tag of a double-tagged frame.
    #[inline]
    pub fn inner_vid(&self) -> Option<u16> {
        self.as_slice().get(1).map(|t| t.vid())
    }
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
    vlans: VlanTags,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Checks the header and up to two VLAN tags fit in `buffer`.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let buf = buffer.as_ref();
        let mut vlans = VlanTags::NONE;
        // Where the next tag or the ethertype stands.
        let mut type_at = field::ETHERTYPE.start;
        loop {
            let Some(ty) = buf.get(in_tag(type_at, field::TAG_TPID)) else {
                return Err(Error::Truncated);
            };
            let ty = u16::from_be_bytes([ty[0], ty[1]]);
            if !is_vlan_tpid(ty) {
                break;
            }
            let n = usize::from(vlans.count);
            if n == MAX_VLANS {
                return Err(Error::TooManyVlans);
            }
            let Some(tci) = buf.get(in_tag(type_at, field::TAG_TCI)) else {
                return Err(Error::Truncated);
            };
            vlans.tags[n] = VlanTag {
                tpid: ty,
                tci: u16::from_be_bytes([tci[0], tci[1]]),
            };
            vlans.count += 1;
            type_at += TAG_LEN;
        }
        Ok(Frame { buffer, vlans })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst(&self) -> [u8; 6] {
        mac_at(self.buffer.as_ref(), field::DESTINATION.start)
    }

    #[inline]
    pub fn src(&self) -> [u8; 6] {
        mac_at(self.buffer.as_ref(), field::SOURCE.start)
    }

    #[inline]
    pub fn vlans(&self) -> VlanTags {
        self.vlans
    }

    /// 14 bytes plus 4 per VLAN tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + TAG_LEN * usize::from(self.vlans.count)
    }

    /// The innermost ethertype, the one that names the payload.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        read_u16(self.buffer.as_ref(), self.header_len() - 2)
    }
}

/// Field `f` of the tag that starts at `tag`.
#[inline(always)]
fn in_tag(tag: usize, f: Field) -> Field {
    tag + f.start..tag + f.end
}

#[inline(always)]
fn mac_at(b: &[u8], at: usize) -> [u8; 6] {
    super::read_array(b, at)
}

impl<'a, T: AsRef<[u8]> + ?Sized> Frame<&'a T> {
    /// Everything after the header and tags.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tags: &[(u16, u16)], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![1, 2, 3, 4, 5, 6, 0xa, 0xb, 0xc, 0xd, 0xe, 0xf];
        for &(tpid, tci) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn untagged() {
        let buf = frame(&[], ETHERTYPE_IPV4, &[9, 9, 9]);
        let f = Frame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.dst(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(f.src(), [0xa, 0xb, 0xc, 0xd, 0xe, 0xf]);
        assert_eq!(f.vlans(), VlanTags::NONE);
        assert_eq!(f.vlans().outer_vid(), None);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &[9, 9, 9]);
    }

    #[test]
    fn single_vlan() {
        // PCP 5, VID 100.
        let buf = frame(&[(ETHERTYPE_VLAN, 0xa064)], ETHERTYPE_IPV4, &[7]);
        let f = Frame::new_checked(&buf[..]).unwrap();
        let v = f.vlans();
        assert_eq!(v.count, 1);
        assert_eq!(v.outer_vid(), Some(100));
        assert_eq!(v.inner_vid(), None);
        assert_eq!(v.tags[0].pcp(), 5);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(f.payload(), &[7]);
    }

    #[test]
    fn qinq_both_outer_tpids() {
        for outer in [ETHERTYPE_QINQ, ETHERTYPE_QINQ_LEGACY, ETHERTYPE_VLAN] {
            let buf = frame(
                &[(outer, 300), (ETHERTYPE_VLAN, 4095)],
                ETHERTYPE_IPV4,
                &[1, 2],
            );
            let f = Frame::new_checked(&buf[..]).unwrap();
            let v = f.vlans();
            assert_eq!(v.count, 2);
            assert_eq!(v.tags[0].tpid, outer);
            assert_eq!(v.outer_vid(), Some(300));
            assert_eq!(v.inner_vid(), Some(4095));
            assert_eq!(f.header_len(), 22);
            assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
            assert_eq!(f.payload(), &[1, 2]);
        }
    }

    #[test]
    fn third_tag_rejected() {
        let buf = frame(
            &[
                (ETHERTYPE_QINQ, 1),
                (ETHERTYPE_VLAN, 2),
                (ETHERTYPE_VLAN, 3),
            ],
            ETHERTYPE_IPV4,
            &[0; 30],
        );
        assert_eq!(
            Frame::new_checked(&buf[..]).unwrap_err(),
            Error::TooManyVlans
        );
    }

    #[test]
    fn every_truncation_of_a_qinq_header() {
        let buf = frame(
            &[(ETHERTYPE_QINQ, 1), (ETHERTYPE_VLAN, 2)],
            ETHERTYPE_IPV4,
            &[],
        );
        for len in 0..buf.len() {
            assert_eq!(
                Frame::new_checked(&buf[..len]).unwrap_err(),
                Error::Truncated,
                "len {len}"
            );
        }
        assert!(Frame::new_checked(&buf[..]).unwrap().payload().is_empty());
    }

    #[test]
    fn other_ethertypes_are_reported_not_rejected() {
        let buf = frame(&[], ETHERTYPE_ARP, &[0; 28]);
        assert_eq!(
            Frame::new_checked(&buf[..]).unwrap().ethertype(),
            ETHERTYPE_ARP
        );
    }

    #[test]
    fn tags_helpers() {
        let d = VlanTags::double(10, 20);
        assert_eq!(d.as_slice().len(), 2);
        assert_eq!((d.outer_vid(), d.inner_vid()), (Some(10), Some(20)));
        let s = VlanTags::single(4095);
        assert_eq!((s.outer_vid(), s.inner_vid()), (Some(4095), None));
        let bogus = VlanTags { count: 9, ..d };
        assert_eq!(bogus.as_slice().len(), 2);
    }
}
