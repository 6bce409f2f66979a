//! DHCP options (RFC 2132): iteration over an option area and the one-pass
//! gathering of what the engine decides on.

use core::net::Ipv4Addr;

use super::dhcp::{Message, MessageType};
use super::{Error, Result};

/// Option codes the server reads or writes.
pub mod code {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const TIME_OFFSET: u8 = 2;
    pub const ROUTER: u8 = 3;
    pub const DOMAIN_NAME_SERVER: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const INTERFACE_MTU: u8 = 26;
    pub const BROADCAST_ADDRESS: u8 = 28;
    pub const STATIC_ROUTE: u8 = 33;
    pub const NTP_SERVERS: u8 = 42;
    pub const VENDOR_SPECIFIC: u8 = 43;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAM_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const VENDOR_CLASS: u8 = 60;
    pub const CLIENT_ID: u8 = 61;
    pub const TFTP_SERVER: u8 = 66;
    pub const BOOTFILE: u8 = 67;
    pub const RAPID_COMMIT: u8 = 80;
    pub const CLIENT_FQDN: u8 = 81;
    pub const AGENT_INFO: u8 = 82;
    /// RFC 4388: seconds since the client's last transaction.
    pub const CLIENT_LAST_TRANSACTION_TIME: u8 = 91;
    /// RFC 4388: every address the client asked about holds.
    pub const ASSOCIATED_IP: u8 = 92;
    pub const SUBNET_SELECTION: u8 = 118;
    pub const DOMAIN_SEARCH: u8 = 119;
    pub const CLASSLESS_STATIC_ROUTE: u8 = 121;
    pub const END: u8 = 255;
}

/// Sub-option codes of the relay agent information option (82).
pub mod agent {
    /// RFC 3046.
    pub const CIRCUIT_ID: u8 = 1;
    /// RFC 3046.
    pub const REMOTE_ID: u8 = 2;
    /// RFC 3527.
    pub const LINK_SELECTION: u8 = 5;
    /// RFC 3993.
    pub const SUBSCRIBER_ID: u8 = 6;
    /// RFC 5107.
    pub const SERVER_ID_OVERRIDE: u8 = 11;
}

/// Option 52 bits: which BOOTP fields carry options too.
pub const OVERLOAD_FILE: u8 = 1;
pub const OVERLOAD_SNAME: u8 = 2;

/// Walks an option area yielding `(code, data)`. Pad is skipped and End
/// stops the walk; an area that simply ends is accepted as if End followed.
/// An option running past the area yields `Err(BadOption)` once, then the
/// iterator ends.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> OptionIter<'a> {
    #[inline]
    pub fn new(area: &'a [u8]) -> Self {
        OptionIter { rest: area }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<(u8, &'a [u8])>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&code, after_code) = self.rest.split_first()?;
            match code {
                code::PAD => self.rest = after_code,
                code::END => {
                    self.rest = &[];
                    return None;
                }
                _ => {
                    let parsed = after_code.split_first().and_then(|(&len, body)| {
                        let len = usize::from(len);
                        (len <= body.len()).then(|| body.split_at(len))
                    });
                    return Some(match parsed {
                        Some((data, tail)) => {
                            self.rest = tail;
                            Ok((code, data))
                        }
                        None => {
                            self.rest = &[];
                            Err(Error::BadOption)
                        }
                    });
                }
            }
        }
    }
}

/// Finds sub-option `code` in the payload of option 82. Sub-options have
/// no Pad or End; a malformed payload yields `None`.
pub fn agent_sub_option(agent_info: &[u8], code: u8) -> Option<&[u8]> {
    let mut rest = agent_info;
    while let [sub, len, body @ ..] = rest {
        let len = usize::from(*len);
        if len > body.len() {
            return None;
        }
        let (data, tail) = body.split_at(len);
        if *sub == code {
            return Some(data);
        }
        rest = tail;
    }
    None
}

/// Room for the concatenation of the split instances of one option
/// (RFC 3396): two full instances. Anything longer is `BadOption`.
pub const JOIN_CAP: usize = 2 * 255;

/// Where the instances of a split option 55 or 82 are joined.
///
/// The caller passes `&mut None`; a buffer is made only for the rare
/// client or relay that splits one of them, so the common parse neither
/// fills nor moves a kilobyte.
#[derive(Clone)]
pub struct JoinBuffer {
    param_list: [u8; JOIN_CAP],
    agent_info: [u8; JOIN_CAP],
}

impl JoinBuffer {
    pub const fn new() -> Self {
        JoinBuffer {
            param_list: [0; JOIN_CAP],
            agent_info: [0; JOIN_CAP],
        }
    }
}

impl Default for JoinBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// One option that RFC 3396 lets a sender split into several instances:
/// borrowed from the packet while there is one, copied once there are two.
enum Join<'a> {
    Absent,
    One(&'a [u8]),
    Many(&'a mut [u8; JOIN_CAP], usize),
}

impl<'a> Join<'a> {
    #[inline]
    fn push(
        &mut self,
        part: &'a [u8],
        space: impl FnOnce() -> Option<&'a mut [u8; JOIN_CAP]>,
    ) -> Result<()> {
        match self {
            Join::Absent => *self = Join::One(part),
            Join::One(first) => {
                let first = *first;
                let buf = space().ok_or(Error::BadOption)?;
                let total = first.len() + part.len();
                let dst = buf.get_mut(..total).ok_or(Error::BadOption)?;
                let (a, b) = dst.split_at_mut(first.len());
                a.copy_from_slice(first);
                b.copy_from_slice(part);
                *self = Join::Many(buf, total);
            }
            Join::Many(buf, len) => {
                let total = *len + part.len();
                let dst = buf.get_mut(*len..total).ok_or(Error::BadOption)?;
                dst.copy_from_slice(part);
                *len = total;
            }
        }
        Ok(())
    }

    #[inline]
    fn finish(self) -> Option<&'a [u8]> {
        match self {
            Join::Absent => None,
            Join::One(s) => Some(s),
            Join::Many(buf, len) => {
                let buf: &'a [u8; JOIN_CAP] = buf;
                buf.get(..len)
            }
        }
    }
}

/// Hands out the two halves of the caller's `JoinBuffer`, creating it on
/// the first split option.
struct JoinSpace<'a> {
    source: Option<&'a mut Option<JoinBuffer>>,
    param_list: Option<&'a mut [u8; JOIN_CAP]>,
    agent_info: Option<&'a mut [u8; JOIN_CAP]>,
}

impl<'a> JoinSpace<'a> {
    fn open(&mut self) {
        if let Some(source) = self.source.take() {
            let JoinBuffer {
                param_list,
                agent_info,
            } = source.get_or_insert_with(JoinBuffer::new);
            self.param_list = Some(param_list);
            self.agent_info = Some(agent_info);
        }
    }
}

/// The options of a client message that the engine decides on, gathered
/// in one pass over the option area and, when option 52 says so, `file`
/// and then `sname` (RFC 2131 §4.1).
///
/// Fixed-length options of another length, and variable-length options
/// shorter than their RFC minimum (55, 12, 60: 1 byte; 61: 2; 81: 3), are
/// `BadOption`: the whole message is malformed. Options 55 and 82 split
/// into several instances are concatenated (RFC 3396), in area order; of
/// every other option the first instance counts and later ones are
/// ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestOptions<'a> {
    /// 53, raw so that unknown types reach the engine's counters.
    pub message_type: Option<u8>,
    /// 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// 51.
    pub lease_time: Option<u32>,
    /// 54.
    pub server_id: Option<Ipv4Addr>,
    /// 55, every instance concatenated.
    pub param_list: Option<&'a [u8]>,
    /// 57.
    pub max_message_size: Option<u16>,
    /// 61.
    pub client_id: Option<&'a [u8]>,
    /// 12.
    pub hostname: Option<&'a [u8]>,
    /// 60.
    pub vendor_class: Option<&'a [u8]>,
    /// 81 (RFC 4702), raw: flags, two obsolete rcodes, the name.
    pub client_fqdn: Option<&'a [u8]>,
    /// 82, raw, to be echoed; every instance concatenated.
    pub agent_info: Option<&'a [u8]>,
    /// 118 (RFC 3011).
    pub subnet_selection: Option<Ipv4Addr>,
    /// 52, 0 when absent.
    pub overload: u8,
    /// 80 (RFC 4039), present and empty as the RFC has it; an option 80
    /// with data is not the Rapid Commit option and is passed over.
    pub rapid_commit: bool,
}

/// `RequestOptions` while it is gathered, with the split options still open.
struct Gather<'a> {
    opts: RequestOptions<'a>,
    param_list: Join<'a>,
    agent_info: Join<'a>,
    space: JoinSpace<'a>,
}

impl<'a> RequestOptions<'a> {
    /// Gathers the options of `msg`. A message without option 53 is still
    /// returned; the engine decides what to do with it.
    ///
    /// `join` is where split 55/82 instances are joined: pass `&mut None`
    /// (a local of the caller); it is filled only when needed.
    ///
    /// Inline: out of line, the options (some 140 bytes) were returned
    /// through a `Result` and copied again into the request view.
    #[inline]
    pub fn parse(msg: &Message<&'a [u8]>, join: &'a mut Option<JoinBuffer>) -> Result<Self> {
        let mut g = Gather {
            opts: RequestOptions::default(),
            param_list: Join::Absent,
            agent_info: Join::Absent,
            space: JoinSpace {
                source: Some(join),
                param_list: None,
                agent_info: None,
            },
        };
        g.area(msg.options(), true)?;
        if g.opts.overload & OVERLOAD_FILE != 0 {
            g.area(msg.file(), false)?;
        }
        if g.opts.overload & OVERLOAD_SNAME != 0 {
            g.area(msg.sname(), false)?;
        }
        let mut opts = g.opts;
        opts.param_list = g.param_list.finish();
        opts.agent_info = g.agent_info.finish();
        Ok(opts)
    }

    /// Option 53 as a known message type.
    #[inline]
    pub fn msg_type(&self) -> Option<MessageType> {
        self.message_type.and_then(MessageType::from_u8)
    }

    /// Whether the client listed `code` in option 55.
    #[inline]
    pub fn requests(&self, code: u8) -> bool {
        self.param_list.is_some_and(|l| l.contains(&code))
    }

    /// A sub-option of option 82.
    #[inline]
    pub fn agent_sub_option(&self, code: u8) -> Option<&'a [u8]> {
        agent_sub_option(self.agent_info?, code)
    }
}

impl<'a> Gather<'a> {
    fn area(&mut self, area: &'a [u8], is_options_field: bool) -> Result<()> {
        let o = &mut self.opts;
        for item in OptionIter::new(area) {
            let (c, data) = item?;
            match c {
                code::MESSAGE_TYPE => first(&mut o.message_type, byte(data)?),
                code::REQUESTED_IP => first(&mut o.requested_ip, ip(data)?),
                code::LEASE_TIME => first(&mut o.lease_time, u32_be(data)?),
                code::SERVER_ID => first(&mut o.server_id, ip(data)?),
                code::MAX_MESSAGE_SIZE => first(&mut o.max_message_size, u16_be(data)?),
                code::SUBNET_SELECTION => first(&mut o.subnet_selection, ip(data)?),
                code::CLIENT_ID => first(&mut o.client_id, at_least(data, 2)?),
                code::HOSTNAME => first(&mut o.hostname, at_least(data, 1)?),
                code::VENDOR_CLASS => first(&mut o.vendor_class, at_least(data, 1)?),
                code::CLIENT_FQDN => first(&mut o.client_fqdn, at_least(data, 3)?),
                code::RAPID_COMMIT if data.is_empty() => o.rapid_commit = true,
                code::PARAM_LIST => {
                    let space = &mut self.space;
                    self.param_list.push(data, || {
                        space.open();
                        space.param_list.take()
                    })?
                }
                code::AGENT_INFO => {
                    let space = &mut self.space;
                    self.agent_info.push(data, || {
                        space.open();
                        space.agent_info.take()
                    })?
                }
                // Option 52 counts only in the options field (RFC 2131 §4.1);
                // inside file or sname it would point at itself.
                code::OVERLOAD if is_options_field => {
                    let v = byte(data)?;
                    if !(1..=3).contains(&v) {
                        return Err(Error::BadOption);
                    }
                    if o.overload == 0 {
                        o.overload = v;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[inline(always)]
fn first<V>(slot: &mut Option<V>, value: V) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

#[inline(always)]
fn byte(data: &[u8]) -> Result<u8> {
    match data {
        [b] => Ok(*b),
        _ => Err(Error::BadOption),
    }
}

#[inline(always)]
fn u16_be(data: &[u8]) -> Result<u16> {
    let a: [u8; 2] = data.try_into().map_err(|_| Error::BadOption)?;
    Ok(u16::from_be_bytes(a))
}

#[inline(always)]
fn u32_be(data: &[u8]) -> Result<u32> {
    let a: [u8; 4] = data.try_into().map_err(|_| Error::BadOption)?;
    Ok(u32::from_be_bytes(a))
}

#[inline(always)]
fn ip(data: &[u8]) -> Result<Ipv4Addr> {
    let a: [u8; 4] = data.try_into().map_err(|_| Error::BadOption)?;
    Ok(Ipv4Addr::from(a))
}

#[inline(always)]
fn at_least(data: &[u8], min: usize) -> Result<&[u8]> {
    if data.len() >= min {
        Ok(data)
    } else {
        Err(Error::BadOption)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::dhcp::field;
    use crate::wire::testutil::bootp;

    fn collect(area: &[u8]) -> Vec<Result<(u8, Vec<u8>)>> {
        OptionIter::new(area)
            .map(|r| r.map(|(c, d)| (c, d.to_vec())))
            .collect()
    }

    #[test]
    fn iter_skips_pad_and_stops_at_end() {
        let area = [0, 0, 53, 1, 3, 0, 12, 2, b'h', b'i', 255, 53, 1, 1, 7];
        assert_eq!(
            collect(&area),
            vec![Ok((53, vec![3])), Ok((12, b"hi".to_vec()))]
        );
    }

    #[test]
    fn iter_without_end_stops_at_area_end() {
        assert_eq!(collect(&[53, 1, 1, 0, 0]), vec![Ok((53, vec![1]))]);
        assert_eq!(collect(&[]), vec![]);
        assert_eq!(collect(&[255]), vec![]);
    }

    #[test]
    fn iter_truncated_option_errs_once() {
        assert_eq!(
            collect(&[53, 1, 1, 12, 5, b'a']),
            vec![Ok((53, vec![1])), Err(Error::BadOption)]
        );
        // A code as the last byte, without its length.
        assert_eq!(
            collect(&[53, 1, 1, 12]),
            vec![Ok((53, vec![1])), Err(Error::BadOption)]
        );
        // Zero-length options are fine.
        assert_eq!(collect(&[80, 0]), vec![Ok((80, vec![]))]);
    }

    fn parse_error(options: &[u8]) -> Option<Error> {
        let buf = bootp(options);
        let msg = Message::new_checked(&buf[..]).unwrap();
        RequestOptions::parse(&msg, &mut None).err()
    }

    #[test]
    fn gathers_every_field() {
        let area = [
            53, 1, 3, //
            50, 4, 10, 0, 0, 9, //
            51, 4, 0, 0, 0x0e, 0x10, //
            54, 4, 10, 0, 0, 1, //
            55, 4, 1, 3, 6, 15, //
            57, 2, 0x05, 0xdc, //
            61, 7, 1, 2, 3, 4, 5, 6, 7, //
            12, 4, b'h', b'o', b's', b't', //
            60, 3, b'v', b'c', b'i', //
            81, 5, 0, 0, 0, b'a', b'b', //
            118, 4, 10, 1, 0, 0, //
            82, 8, 1, 2, 0xc1, 0xc2, 2, 2, 0xd1, 0xd2, //
            255,
        ];
        let buf = bootp(&area);
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut join = None;
        let o = RequestOptions::parse(&msg, &mut join).unwrap();
        assert_eq!(o.message_type, Some(3));
        assert_eq!(o.msg_type(), Some(MessageType::Request));
        assert_eq!(o.requested_ip, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(o.lease_time, Some(3600));
        assert_eq!(o.server_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(o.param_list, Some(&[1, 3, 6, 15][..]));
        assert!(o.requests(6) && !o.requests(42));
        assert_eq!(o.max_message_size, Some(1500));
        assert_eq!(o.client_id, Some(&[1, 2, 3, 4, 5, 6, 7][..]));
        assert_eq!(o.hostname, Some(&b"host"[..]));
        assert_eq!(o.vendor_class, Some(&b"vci"[..]));
        assert_eq!(o.client_fqdn, Some(&[0, 0, 0, b'a', b'b'][..]));
        assert_eq!(o.subnet_selection, Some(Ipv4Addr::new(10, 1, 0, 0)));
        assert_eq!(o.agent_info, Some(&area[area.len() - 9..area.len() - 1]));
        assert_eq!(
            o.agent_sub_option(agent::CIRCUIT_ID),
            Some(&[0xc1, 0xc2][..])
        );
        assert_eq!(
            o.agent_sub_option(agent::REMOTE_ID),
            Some(&[0xd1, 0xd2][..])
        );
        assert_eq!(o.agent_sub_option(agent::LINK_SELECTION), None);
        assert_eq!(o.overload, 0);
    }

    #[test]
    fn no_message_type_is_still_returned() {
        let buf = bootp(&[12, 1, b'x', 255]);
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut join = None;
        let o = RequestOptions::parse(&msg, &mut join).unwrap();
        assert_eq!(o.message_type, None);
        assert_eq!(o.msg_type(), None);
        assert_eq!(o.hostname, Some(&b"x"[..]));
    }

    #[test]
    fn unknown_message_type_kept_raw() {
        let buf = bootp(&[53, 1, 200, 255]);
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut join = None;
        let o = RequestOptions::parse(&msg, &mut join).unwrap();
        assert_eq!((o.message_type, o.msg_type()), (Some(200), None));
    }

    #[test]
    fn wrong_lengths_are_bad_options() {
        let cases: &[&[u8]] = &[
            &[53, 0],
            &[53, 2, 1, 1],
            &[50, 3, 1, 2, 3],
            &[50, 5, 1, 2, 3, 4, 5],
            &[51, 2, 0, 1],
            &[52, 2, 1, 1],
            &[52, 1, 0],
            &[52, 1, 4],
            &[54, 0],
            &[57, 1, 5],
            &[57, 4, 0, 0, 5, 0],
            &[118, 6, 0, 0, 0, 0, 0, 0],
            &[61, 1, 1],
            &[61, 0],
            &[12, 0],
            &[60, 0],
            &[81, 2, 0, 0],
            &[53, 1, 1, 61, 9, 1],
        ];
        for case in cases {
            assert_eq!(parse_error(case), Some(Error::BadOption), "{case:?}");
        }
    }

    #[test]
    fn first_instance_wins_for_single_options() {
        let buf = bootp(&[53, 1, 1, 53, 1, 3, 61, 2, 1, 1, 61, 2, 1, 2, 255]);
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut join = None;
        let o = RequestOptions::parse(&msg, &mut join).unwrap();
        assert_eq!(o.message_type, Some(1));
        assert_eq!(o.client_id, Some(&[1, 1][..]));
    }

    fn with_overload(options: &[u8], file: &[u8], sname: &[u8]) -> Vec<u8> {
        let mut buf = bootp(options);
        buf[field::FILE..field::FILE + file.len()].copy_from_slice(file);
        buf[field::SNAME..field::SNAME + sname.len()].copy_from_slice(sname);
        buf
    }

    #[test]
    fn overload_reads_file_then_sname() {
        let buf = with_overload(
            &[53, 1, 1, 52, 1, 3, 55, 2, 1, 3, 255],
            &[12, 3, b'f', b'o', b'o', 55, 1, 6, 255],
            &[61, 2, 1, 9, 55, 1, 15, 52, 1, 1, 255],
        );
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut join = None;
        let o = RequestOptions::parse(&msg, &mut join).unwrap();
        assert_eq!(o.overload, 3);
        assert_eq!(o.hostname, Some(&b"foo"[..]));
        assert_eq!(o.client_id, Some(&[1, 9][..]));
        // RFC 3396 order: options field, file, sname.
        assert_eq!(o.param_list, Some(&[1, 3, 6, 15][..]));
    }

    #[test]
    fn overload_file_only_leaves_sname_alone() {
        let buf = with_overload(
            &[53, 1, 1, 52, 1, OVERLOAD_FILE, 255],
            &[12, 1, b'f', 255],
            &[61, 2, 1, 9, 255],
        );
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut join = None;
        let o = RequestOptions::parse(&msg, &mut join).unwrap();
        assert_eq!(o.hostname, Some(&b"f"[..]));
        assert_eq!(o.client_id, None);

        let buf = with_overload(
            &[52, 1, OVERLOAD_SNAME, 255],
            &[12, 1, b'f', 255],
            &[61, 2, 1, 9, 255],
        );
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut join = None;
        let o = RequestOptions::parse(&msg, &mut join).unwrap();
        assert_eq!(o.hostname, None);
        assert_eq!(o.client_id, Some(&[1, 9][..]));
    }

    #[test]
    fn without_overload_file_and_sname_are_names() {
        let buf = with_overload(&[53, 1, 1, 255], &[12, 1, b'f', 255], &[]);
        let msg = Message::new_checked(&buf[..]).unwrap();
        assert_eq!(
            RequestOptions::parse(&msg, &mut None).unwrap().hostname,
            None
        );
    }

    #[test]
    fn truncated_option_in_overloaded_file_is_bad() {
        let mut buf = with_overload(&[52, 1, 1, 255], &[], &[]);
        // An option whose length runs past the 128-byte file field.
        buf[field::FILE + 120] = 12;
        buf[field::FILE + 121] = 20;
        let msg = Message::new_checked(&buf[..]).unwrap();
        assert_eq!(
            RequestOptions::parse(&msg, &mut None).unwrap_err(),
            Error::BadOption
        );
    }

    #[test]
    fn split_agent_info_is_joined() {
        // Sub-option 2 straddles the boundary between the two instances.
        let buf = bootp(&[82, 5, 1, 1, 0xaa, 2, 3, 82, 3, 0xb1, 0xb2, 0xb3, 255]);
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut join = None;
        let o = RequestOptions::parse(&msg, &mut join).unwrap();
        assert_eq!(
            o.agent_info,
            Some(&[1, 1, 0xaa, 2, 3, 0xb1, 0xb2, 0xb3][..])
        );
        assert_eq!(
            o.agent_sub_option(agent::REMOTE_ID),
            Some(&[0xb1, 0xb2, 0xb3][..])
        );
        assert!(join.is_some());
    }

    #[test]
    fn join_buffer_made_only_for_split_options() {
        let buf = bootp(&[53, 1, 1, 55, 2, 1, 3, 82, 3, 1, 1, 7, 255]);
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut join = None;
        let o = RequestOptions::parse(&msg, &mut join).unwrap();
        assert_eq!(o.param_list, Some(&[1, 3][..]));
        assert_eq!(o.agent_info, Some(&[1, 1, 7][..]));
        assert!(join.is_none(), "unsplit options borrow from the packet");
    }

    #[test]
    fn both_split_into_a_reused_buffer() {
        // Interleaved instances of 55 and 82, across options, file and
        // sname; the buffer holds stale bytes from an earlier message.
        let mut buf = bootp(&[52, 1, 3, 55, 1, 1, 82, 2, 1, 3, 255]);
        buf[field::FILE..field::FILE + 8].copy_from_slice(&[82, 2, b'a', b'b', 55, 1, 3, 255]);
        buf[field::SNAME..field::SNAME + 6].copy_from_slice(&[55, 1, 6, 82, 1, b'c']);
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut stale = JoinBuffer::new();
        stale.param_list.fill(0xee);
        stale.agent_info.fill(0xee);
        let mut join = Some(stale);
        let o = RequestOptions::parse(&msg, &mut join).unwrap();
        assert_eq!(o.param_list, Some(&[1, 3, 6][..]));
        assert_eq!(o.agent_info, Some(&[1, 3, b'a', b'b', b'c'][..]));
        assert_eq!(o.agent_sub_option(agent::CIRCUIT_ID), Some(&b"abc"[..]));
    }

    #[test]
    fn join_longer_than_two_full_instances_is_refused() {
        let mut area = Vec::new();
        for _ in 0..3 {
            area.push(55);
            area.push(255);
            area.extend(core::iter::repeat_n(1u8, 255));
        }
        area.push(255);
        let buf = bootp(&area);
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut join = None;
        assert_eq!(
            RequestOptions::parse(&msg, &mut join).unwrap_err(),
            Error::BadOption
        );
        // Two are fine.
        let buf = bootp(&area[..2 * 257]);
        let msg = Message::new_checked(&buf[..]).unwrap();
        let mut join = None;
        let o = RequestOptions::parse(&msg, &mut join).unwrap();
        assert_eq!(o.param_list.map(<[u8]>::len), Some(JOIN_CAP));
    }

    #[test]
    fn agent_sub_options() {
        let info = [
            1, 3, b'c', b'i', b'd', 2, 1, b'r', 5, 4, 10, 0, 0, 0, 11, 4, 10, 9, 9, 9,
        ];
        assert_eq!(
            agent_sub_option(&info, agent::CIRCUIT_ID),
            Some(&b"cid"[..])
        );
        assert_eq!(agent_sub_option(&info, agent::REMOTE_ID), Some(&b"r"[..]));
        assert_eq!(
            agent_sub_option(&info, agent::LINK_SELECTION),
            Some(&[10, 0, 0, 0][..])
        );
        assert_eq!(
            agent_sub_option(&info, agent::SERVER_ID_OVERRIDE),
            Some(&[10, 9, 9, 9][..])
        );
        assert_eq!(agent_sub_option(&info, agent::SUBSCRIBER_ID), None);
        assert_eq!(agent_sub_option(&[1, 5, 0], agent::CIRCUIT_ID), None);
        assert_eq!(agent_sub_option(&[1], agent::CIRCUIT_ID), None);
        assert_eq!(agent_sub_option(&[], agent::CIRCUIT_ID), None);
        // A bad sub-option after the one looked for does not hide it.
        assert_eq!(
            agent_sub_option(&[1, 1, 7, 2, 9], agent::CIRCUIT_ID),
            Some(&[7][..])
        );
    }
}
