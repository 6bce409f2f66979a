//! The classic BPF programs, run through a model of the kernel's
//! interpreter over frames built to each shape the filter must tell apart.
use super::bpf::*;

/// Runs a classic BPF program the way the kernel does for the
/// instructions these programs use. `p` starts at the Ethernet header
/// (where both the socket filter's data and the link-layer base
/// point); a load beyond the frame returns 0.
fn run(prog: &[libc::sock_filter], p: &[u8], tag_stripped: bool) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let load = |k: u32, n: usize| -> Option<u32> {
        if k == VLAN_TAG_PRESENT {
            return Some(tag_stripped.into());
        }
        let off = match k as i32 {
            k if k >= 0 => k as usize,
            k if (libc::SKF_LL_OFF..libc::SKF_NET_OFF).contains(&k) => {
                (k - libc::SKF_LL_OFF) as usize
            }
            _ => panic!("load at {k:#x} not modelled"),
        };
        let b = p.get(off..off + n)?;
        Some(b.iter().fold(0, |v, &b| v << 8 | u32::from(b)))
    };
    loop {
        let ins = prog[pc];
        pc += 1;
        let k = ins.k;
        let loaded = match ins.code {
            BPF_LDW_ABS => load(k, 4),
            BPF_LDH_ABS => load(k, 2),
            BPF_LDB_ABS => load(k, 1),
            BPF_LDH_IND => load(x.wrapping_add(k), 2),
            BPF_LDW_IND => load(x.wrapping_add(k), 4),
            _ => Some(a),
        };
        let Some(loaded) = loaded else { return 0 };
        match ins.code {
            BPF_LDW_ABS | BPF_LDH_ABS | BPF_LDB_ABS | BPF_LDH_IND | BPF_LDW_IND => a = loaded,
            BPF_LDX_MSH => match load(k, 1) {
                Some(v) => x = (v & 0xf) * 4,
                None => return 0,
            },
            BPF_AND_K => a &= k,
            BPF_RSH_K => a >>= k,
            BPF_XOR_X => a ^= x,
            BPF_TAX => x = a,
            BPF_JEQ_K | BPF_JSET_K => {
                let yes = if ins.code == BPF_JEQ_K {
                    a == k
                } else {
                    a & k != 0
                };
                pc += usize::from(if yes { ins.jt } else { ins.jf });
            }
            BPF_RET_K => return k,
            BPF_RET_A => return a,
            c => panic!("instruction {c:#x} not modelled"),
        }
    }
}

/// A DHCP frame as a packet socket sees it: `tags` are the VLAN tags
/// still in the frame; `stripped` says whether the kernel took one more
/// off into the packet's metadata.
struct Frame {
    tags: Vec<u16>,
    stripped: bool,
    ihl: u8,
    proto: u8,
    frag: u16,
    dport: u16,
    chaddr: [u8; 6],
    ethertype: u16,
}

impl Default for Frame {
    fn default() -> Self {
        Frame {
            tags: vec![],
            stripped: false,
            ihl: 5,
            proto: 17,
            frag: 0,
            dport: 67,
            chaddr: [0x02, 0, 0, 0, 0, 1],
            ethertype: 0x0800,
        }
    }
}

impl Frame {
    fn bytes(&self) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend([0x02, 0, 0, 0, 0, 9]);
        for (i, tpid) in self.tags.iter().enumerate() {
            f.extend(tpid.to_be_bytes());
            f.extend((100 + i as u16).to_be_bytes());
        }
        f.extend(self.ethertype.to_be_bytes());
        let mut ip = vec![0u8; usize::from(self.ihl) * 4];
        ip[0] = 0x40 | self.ihl;
        ip[6..8].copy_from_slice(&self.frag.to_be_bytes());
        ip[8] = 64;
        ip[9] = self.proto;
        f.extend(ip);
        f.extend(68u16.to_be_bytes());
        f.extend(self.dport.to_be_bytes());
        f.extend([0, 0, 0, 0]);
        let mut bootp = vec![0u8; 240];
        bootp[0] = 1;
        bootp[28..34].copy_from_slice(&self.chaddr);
        f.extend(bootp);
        f
    }

    fn filter(&self) -> u32 {
        run(&dhcp_filter(), &self.bytes(), self.stripped)
    }

    fn fanout(&self) -> u32 {
        run(&fanout_program(), &self.bytes(), self.stripped)
    }
}

fn passes(f: Frame) -> bool {
    f.filter() != 0
}

fn tagged(tags: &[u16], stripped: bool) -> Frame {
    Frame {
        tags: tags.to_vec(),
        stripped,
        ..Default::default()
    }
}

#[test]
fn filter_keeps_udp67_behind_up_to_two_tags() {
    assert_eq!(Frame::default().filter(), u32::MAX);
    for (tags, stripped) in [
        (&[][..], true),
        (&[0x8100][..], false),
        (&[0x88a8][..], false),
        (&[0x8100][..], true),
        (&[0x88a8, 0x8100][..], false),
        (&[0x8100, 0x8100][..], false),
    ] {
        assert!(passes(tagged(tags, stripped)), "{tags:x?} {stripped}");
    }
    assert!(passes(Frame {
        ihl: 6,
        ..Default::default()
    }));
    assert!(passes(Frame {
        ihl: 15,
        tags: vec![0x8100],
        stripped: true,
        ..Default::default()
    }));
    // Don't-fragment, and the first fragment of a datagram.
    assert!(passes(Frame {
        frag: 0x4000,
        ..Default::default()
    }));
    assert!(passes(Frame {
        frag: 0x2000,
        ..Default::default()
    }));
}

#[test]
fn filter_drops_everything_else() {
    let drops = |f: Frame| assert_eq!(f.filter(), 0);
    drops(Frame {
        dport: 68,
        ..Default::default()
    });
    drops(Frame {
        dport: 0x4300,
        ..Default::default()
    });
    drops(Frame {
        proto: 6,
        ..Default::default()
    });
    drops(Frame {
        proto: 1,
        ..Default::default()
    });
    drops(Frame {
        frag: 0x0001,
        ..Default::default()
    });
    drops(Frame {
        frag: 0x2000 | 185,
        ..Default::default()
    });
    drops(Frame {
        ethertype: 0x0806,
        ..Default::default()
    });
    drops(Frame {
        ethertype: 0x86dd,
        ..Default::default()
    });
    // Three tags, however many of them the kernel took off.
    drops(tagged(&[0x8100; 3], false));
    drops(tagged(&[0x8100; 2], true));
    drops(tagged(&[0x9100], false));
    let mut v6 = Frame::default().bytes();
    v6[14] = 0x65;
    assert_eq!(run(&dhcp_filter(), &v6, false), 0);
    let whole = Frame::default().bytes();
    for cut in [0, 13, 14, 30, 34, 35] {
        assert_eq!(run(&dhcp_filter(), &whole[..cut], false), 0, "cut at {cut}");
    }
    assert_ne!(run(&dhcp_filter(), &whole[..38], false), 0);
}

#[test]
fn fanout_follows_chaddr() {
    let a = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    let want = 0x2233_4455 ^ 0x2233;
    for (tags, stripped, ihl) in [
        (&[][..], false, 5),
        (&[][..], true, 7),
        (&[0x8100][..], false, 7),
        (&[0x8100][..], true, 5),
        (&[0x88a8, 0x8100][..], false, 5),
    ] {
        let f = Frame {
            chaddr: a,
            ihl,
            ..tagged(tags, stripped)
        };
        assert_eq!(f.fanout(), want, "{tags:x?} {stripped}");
    }
    let mut spread = [0usize; 4];
    for i in 0..=255u8 {
        let f = Frame {
            chaddr: [0x02, 0, 0, 0, 0, i],
            ..Default::default()
        };
        spread[f.fanout() as usize % 4] += 1;
    }
    assert_eq!(spread, [64; 4]);
    let dns = Frame {
        dport: 53,
        ..Default::default()
    };
    assert_eq!(dns.fanout(), 0);
}
