//! The classic BPF programs of the AF_PACKET sockets, and the small
//! assembler that writes them with named jump targets: the socket filter
//! that keeps only IPv4 UDP/67 frames, and the fanout program that picks
//! a worker by the client's hardware address.
use libc::sock_filter;

const ETH_P_IPV4: u32 = 0x0800;
/// The 802.1Q TPID (PACKET_AUXDATA leaves it out when it is the one).
pub(super) const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u32 = 0x88a8;
const DHCP_SERVER_PORT: u32 = 67;
/// Where the last four bytes of BOOTP chaddr start, from the UDP header.
const CHADDR_TAIL_FROM_UDP: u32 = 8 + 28 + 2;
/// Ancillary load: 1 when the kernel took a VLAN tag off the frame.
pub(super) const VLAN_TAG_PRESENT: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_VLAN_TAG_PRESENT) as u32;
/// Offsets in a socket filter on a raw packet socket count from the
/// Ethernet header.
const FROM_SOCKET_DATA: u32 = 0;
/// A fanout program runs before the packet socket puts the Ethernet header
/// back in front of the data; this base makes its offsets count from the
/// Ethernet header too.
const FROM_LINK_HEADER: u32 = libc::SKF_LL_OFF as u32;

pub(super) const BPF_LDW_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub(super) const BPF_LDH_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
pub(super) const BPF_LDB_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
pub(super) const BPF_LDH_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
pub(super) const BPF_LDW_IND: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_IND) as u16;
pub(super) const BPF_LDX_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
pub(super) const BPF_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
pub(super) const BPF_RSH_K: u16 = (libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K) as u16;
pub(super) const BPF_XOR_X: u16 = (libc::BPF_ALU | libc::BPF_XOR | libc::BPF_X) as u16;
pub(super) const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub(super) const BPF_JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
pub(super) const BPF_TAX: u16 = (libc::BPF_MISC | libc::BPF_TAX) as u16;
pub(super) const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
pub(super) const BPF_RET_A: u16 = (libc::BPF_RET | libc::BPF_A) as u16;

pub(super) fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// Where a conditional jump goes: on to the next instruction or to a
/// named place further down.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum To {
    Next,
    /// The kernel took one tag off already: one more may be in the frame.
    Stripped,
    StrippedTag2,
    Tag2,
    Tag3,
    Ipv4At(u32),
    Drop,
}

/// Builds a program whose jumps name places; `finish` turns the names
/// into the forward offsets classic BPF wants.
#[derive(Default)]
struct Asm {
    code: Vec<(sock_filter, To, To)>,
    places: Vec<(To, usize)>,
}

impl Asm {
    fn place(&mut self, at: To) {
        self.places.push((at, self.code.len()));
    }
    fn op(&mut self, code: u16, k: u32) {
        self.code.push((stmt(code, k), To::Next, To::Next));
    }
    fn jump(&mut self, code: u16, k: u32, yes: To, no: To) {
        self.code.push((stmt(code, k), yes, no));
    }
    /// Dispatches on the ethertype at `at`: IPv4 goes to its header
    /// check, a VLAN tag to `tag` (or, with `tag` = Drop, nowhere).
    fn ethertype(&mut self, base: u32, at: u32, tag: To) {
        self.op(BPF_LDH_ABS, base.wrapping_add(at));
        if tag == To::Drop {
            self.jump(BPF_JEQ_K, ETH_P_IPV4, To::Ipv4At(at + 2), To::Drop);
        } else {
            self.jump(BPF_JEQ_K, ETH_P_IPV4, To::Ipv4At(at + 2), To::Next);
            self.jump(BPF_JEQ_K, ETH_P_8021Q.into(), tag, To::Next);
            self.jump(BPF_JEQ_K, ETH_P_8021AD, tag, To::Drop);
        }
    }
    fn finish(self) -> Vec<sock_filter> {
        let offset = |from: usize, to: To| -> u8 {
            if to == To::Next {
                return 0;
            }
            let at = self
                .places
                .iter()
                .find(|(p, _)| *p == to)
                .map(|&(_, at)| at)
                .unwrap_or_else(|| panic!("BPF program jumps to {to:?}, which it never places"));
            u8::try_from(at.checked_sub(from + 1).expect("BPF jumps go forward only"))
                .expect("BPF jump within 255 instructions")
        };
        self.code
            .iter()
            .enumerate()
            .map(|(i, &(mut ins, yes, no))| {
                ins.jt = offset(i, yes);
                ins.jf = offset(i, no);
                ins
            })
            .collect()
    }
}

/// The shared part of both programs: find an IPv4 header behind at most
/// two VLAN tags (counting one the kernel already took off), check it
/// carries an unfragmented (or first-fragment) UDP datagram to port 67,
/// and leave X = IP header length for `found(asm, base, ip_offset)` to
/// finish. Every other frame ends at `ret #0`; so does a frame too short
/// for a load, as the kernel returns 0 from a load beyond the end.
/// Offsets count from the Ethernet header plus `base`.
fn udp67_program(base: u32, found: fn(&mut Asm, u32, u32)) -> Vec<sock_filter> {
    let mut a = Asm::default();
    a.op(BPF_LDW_ABS, VLAN_TAG_PRESENT);
    a.jump(BPF_JEQ_K, 0, To::Next, To::Stripped);
    a.ethertype(base, 12, To::Tag2);
    a.place(To::Tag2);
    a.ethertype(base, 16, To::Tag3);
    a.place(To::Tag3);
    a.ethertype(base, 20, To::Drop);
    a.place(To::Stripped);
    a.ethertype(base, 12, To::StrippedTag2);
    a.place(To::StrippedTag2);
    a.ethertype(base, 16, To::Drop);
    for ip in [14, 18, 22] {
        a.place(To::Ipv4At(ip));
        a.op(BPF_LDB_ABS, base.wrapping_add(ip));
        a.op(BPF_AND_K, 0xf0);
        a.jump(BPF_JEQ_K, 0x40, To::Next, To::Drop);
        a.op(BPF_LDB_ABS, base.wrapping_add(ip + 9));
        a.jump(BPF_JEQ_K, libc::IPPROTO_UDP as u32, To::Next, To::Drop);
        // A later fragment has no UDP header where one is looked for.
        a.op(BPF_LDH_ABS, base.wrapping_add(ip + 6));
        a.jump(BPF_JSET_K, 0x1fff, To::Drop, To::Next);
        a.op(BPF_LDX_MSH, base.wrapping_add(ip));
        a.op(BPF_LDH_IND, base.wrapping_add(ip + 2));
        a.jump(BPF_JEQ_K, DHCP_SERVER_PORT, To::Next, To::Drop);
        found(&mut a, base, ip);
    }
    a.place(To::Drop);
    a.op(BPF_RET_K, 0);
    a.finish()
}

/// The worker sockets' filter: keep IPv4 UDP/67 frames whole.
pub(super) fn dhcp_filter() -> Vec<sock_filter> {
    udp67_program(FROM_SOCKET_DATA, |a, _, _| a.op(BPF_RET_K, u32::MAX))
}

/// The fanout program: the kernel sends a frame to member
/// `result % members`; the result folds the last four bytes of chaddr
/// (the first two are mostly the vendor's). Frames that are not DHCP go
/// to member 0, whose filter drops them.
pub(super) fn fanout_program() -> Vec<sock_filter> {
    udp67_program(FROM_LINK_HEADER, |a, base, ip| {
        a.op(BPF_LDW_IND, base.wrapping_add(ip + CHADDR_TAIL_FROM_UDP));
        a.op(BPF_TAX, 0);
        a.op(BPF_RSH_K, 16);
        a.op(BPF_XOR_X, 0);
        a.op(BPF_RET_A, 0);
    })
}
