use super::*;
use crate::lease::journal::{FixedBytes, INFINITE, LeaseRecord, RecordState};
use crate::lease::table::ClientKey;
use std::net::Ipv4Addr;

/// Written by kea-dhcp4 2.2.0 (Debian 12) through its lease_cmds hook
/// (`lease4-add`), with two rows appended the way Kea's memfile logs
/// a renewal (a later row for 10.9.0.10) and a deletion
/// (`valid_lifetime` 0 for 10.9.0.15).
const KEA_2_2: &str = "\
address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context
10.9.0.10,1a:1b:1c:1d:1e:1f,,7200,1795833118,7,0,0,plain-host,0,
10.9.0.11,2a:2b:2c:2d:2e:2f,01:2a:2b:2c:2d:2e:2f,3600,1795829518,7,0,0,comma&#x2chost&#x26amp,0,
10.9.0.12,3a:3b:3c:3d:3e:3f,,3600,1700000000,7,0,0,,2,
10.9.0.13,,,86400,1795912318,7,0,0,,1,
10.9.0.14,4a:4b:4c:4d:4e:4f,,7200,1795833119,7,1,1,h14.example.org,0,{ \"ISC\": { \"relay-agent-info\": { \"sub-options\": \"0104AABBCCDD\" } }&#x2c \"comment\": \"a&#x2c b\" }
10.9.0.15,5a:5b:5c:5d:5e:5f,,4294967295,6090793214,7,0,0,,0,
10.9.0.10,1a:1b:1c:1d:1e:1f,,7200,1795840000,7,0,0,plain-host,0,
10.9.0.15,5a:5b:5c:5d:5e:5f,,0,1795840000,7,0,0,,0,
";

fn kea7(id: u32) -> Option<u16> {
    (id == 7).then_some(3)
}

#[test]
fn imports_a_file_written_by_kea() {
    let got = import(KEA_2_2.as_bytes(), kea7).unwrap();
    assert_eq!(got.stats.rows, 8);
    assert_eq!(got.stats.deleted, 1);
    assert_eq!(got.stats.bad_rows, 0, "{:?}", got.stats.errors);
    let by = |a: [u8; 4]| {
        got.leases
            .iter()
            .find(|r| r.addr == Ipv4Addr::from(a))
            .copied()
    };
    // Latest row wins, deleted address is gone, order is that of the
    // surviving rows.
    let order: Vec<u8> = got.leases.iter().map(|r| r.addr.octets()[3]).collect();
    assert_eq!(order, [11, 12, 13, 14, 10]);

    let r10 = by([10, 9, 0, 10]).unwrap();
    assert_eq!(r10.subnet, 3);
    assert_eq!(r10.expires_unix, 1795840000);
    assert_eq!(r10.cltt_unix, 1795840000 - 7200);
    assert_eq!(
        r10.client,
        ClientKey::new(3, 0, &[0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f])
    );
    assert_eq!(r10.state, RecordState::Bound);

    let r11 = by([10, 9, 0, 11]).unwrap();
    assert_eq!(r11.hostname.as_slice(), b"comma,host&amp");
    assert_eq!(
        r11.client,
        ClientKey::new(3, 1, &[1, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f])
    );

    assert_eq!(by([10, 9, 0, 12]).unwrap().state, RecordState::Expired);
    let r13 = by([10, 9, 0, 13]).unwrap();
    assert_eq!((r13.state, r13.hwaddr), (RecordState::Declined, [0; 6]));
    assert_eq!(r13.client.len, 0);

    let r14 = by([10, 9, 0, 14]).unwrap();
    assert_eq!(r14.agent_info.as_slice(), [1, 4, 0xaa, 0xbb, 0xcc, 0xdd]);
    assert_eq!(r14.hostname.as_slice(), b"h14.example.org");
    assert!(by([10, 9, 0, 15]).is_none());
}

#[test]
fn infinite_leases_and_kea_2_2_relay_strings_import() {
    let csv = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
               10.9.0.15,5a:5b:5c:5d:5e:5f,,4294967295,6090793214,7,0,0,,0,\n\
               10.9.0.16,5a:5b:5c:5d:5e:60,,60,1000,7,0,0,,0,{ \"ISC\": { \"relay-agent-info\": \"0x0102AB\" } }\n";
    let got = import(csv.as_bytes(), kea7).unwrap();
    assert_eq!(got.leases[0].expires_unix, INFINITE);
    assert_eq!(got.leases[0].cltt_unix, 6090793214 - 4294967295);
    assert_eq!(got.leases[1].agent_info.as_slice(), [1, 2, 0xab]);
}

#[test]
fn old_and_new_headers_import_by_column_name() {
    let v1 = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname\n\
              10.9.0.20,00:11:22:33:44:55,,100,2000,7,0,0,old\n";
    let got = import(v1.as_bytes(), kea7).unwrap();
    assert_eq!(got.leases.len(), 1);
    assert_eq!(got.leases[0].state, RecordState::Bound);
    let v26 =
        format!("{HEADER_11},pool_id\n10.9.0.21,00:11:22:33:44:56,,100,2000,7,0,0,new,0,,4\n");
    let got = import(v26.as_bytes(), kea7).unwrap();
    assert_eq!(got.leases[0].hostname.as_slice(), b"new");
    assert!(import("a,b,c\n".as_bytes(), kea7).is_err());
    assert!(import("".as_bytes(), kea7).unwrap().leases.is_empty());
}

#[test]
fn bad_rows_are_counted_and_skipped() {
    let csv = format!(
        "{HEADER_11}\n\
         10.9.0.1,00:11:22:33:44:55,,100,2000,7,0,0,ok,0,\n\
         10.9.0.300,00:11:22:33:44:55,,100,2000,7,0,0,x,0,\n\
         10.9.0.2,00:11:22:33:44,,100,2000,7,0,0,x,0,\n\
         10.9.0.3,00:11:22:33:44:55,,100,2000,7,0,0,x,9,\n\
         10.9.0.4,00:11:22:33:44:55,,100,2000,7,0,0,x,0\n\
         10.9.0.5,00:11:22:33:44:55,zz,100,2000,7,0,0,x,0,\n\
         10.9.0.6,00:11:22:33:44:55,,100,2000,7,0,0,x,0,{{broken\n\
         10.9.0.7,,,100,2000,7,0,0,x,0,\n\
         10.9.0.8,00:11:22:33:44:55,,100,2000,8,0,0,x,0,\n\
         \n"
    );
    let got = import(csv.as_bytes(), kea7).unwrap();
    assert_eq!(got.leases.len(), 1);
    assert_eq!(got.stats.bad_rows, 7);
    assert_eq!(got.stats.unknown_subnet, 1);
    assert_eq!(got.stats.errors[0].0, 3);
}

fn rec(i: u8, state: RecordState) -> LeaseRecord {
    let mac = [2, 0, 0, 0, 0, i];
    LeaseRecord {
        subnet: 3,
        addr: Ipv4Addr::new(10, 9, 0, i),
        client: ClientKey::new(3, 0, &mac),
        hwaddr: mac,
        state,
        expires_unix: 1_800_000_000 + u64::from(i),
        cltt_unix: 1_799_990_000,
        hostname: FixedBytes::default(),
        agent_info: FixedBytes::default(),
        fqdn_flags: 0,
    }
}

#[test]
fn export_then_import_gives_the_same_leases() {
    let mut leases = vec![
        rec(1, RecordState::Bound),
        rec(2, RecordState::Declined),
        rec(3, RecordState::Expired),
        rec(4, RecordState::Bound),
        rec(5, RecordState::Bound),
        rec(6, RecordState::Declined),
    ];
    leases[0].hostname = FixedBytes::new(b"a,b&#x2c;c").0;
    leases[1].hwaddr = [0; 6];
    leases[1].client = ClientKey::new(3, 0, &[]);
    leases[3].client = ClientKey::new(3, 1, &[0xff, 1, 2, 3, 4, 5, 6, 7, 8]);
    leases[3].agent_info = FixedBytes::new(&[1, 3, b'a', b',', b'b', 2, 1, 9]).0;
    leases[4].expires_unix = INFINITE;
    let to_kea = |s: u16| (s == 3).then_some(7);
    for v in [KeaVersion::V2_2, KeaVersion::V2_4, KeaVersion::V2_6] {
        let mut out = Vec::new();
        let st = export(&mut out, &leases, to_kea, v).unwrap();
        assert_eq!(st.written, leases.len());
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("a&#x2cb&#x26#x2c;c"), "{text}");
        // Every row has the header's number of fields.
        let n = text.lines().next().unwrap().split(',').count();
        assert_eq!(n, if v == KeaVersion::V2_6 { 12 } else { 11 });
        assert!(text.lines().all(|l| l.split(',').count() == n), "{text}");
        let back = import(out.as_slice(), kea7).unwrap();
        assert_eq!(back.stats.bad_rows, 0, "{:?}", back.stats.errors);
        assert_eq!(back.leases, leases, "{v:?}");
    }
}

#[test]
fn export_skips_unmapped_subnets_and_drops_hashed_client_ids() {
    let mut l = rec(1, RecordState::Bound);
    l.client = ClientKey::new(3, 1, &[7u8; 40]);
    let other = LeaseRecord {
        subnet: 9,
        ..rec(2, RecordState::Bound)
    };
    let mut out = Vec::new();
    let st = export(
        &mut out,
        &[l, other],
        |s| (s == 3).then_some(7),
        KeaVersion::V2_2,
    )
    .unwrap();
    assert_eq!(st.written, 1);
    assert_eq!(st.unmapped_subnet, 1);
    assert_eq!(st.client_ids_dropped, 1);
    let back = import(out.as_slice(), kea7).unwrap();
    assert_eq!(back.leases[0].client, ClientKey::new(3, 0, &l.hwaddr));
}

#[test]
fn escaping_matches_kea() {
    assert_eq!(unescape(b"a&#x2cb&#x26c"), b"a,b&c");
    assert_eq!(unescape(b"&#xzz&#x2"), b"&#xzz&#x2");
    let mut s = String::new();
    escape("x,&y", &mut s);
    assert_eq!(s, "x&#x2c&#x26y");
    assert_eq!(hex_bytes("1:a:ff"), Some(vec![1, 10, 255]));
    assert_eq!(hex_bytes("0x0aFF"), Some(vec![10, 255]));
    assert_eq!(hex_bytes("abc"), None);
    assert_eq!(hex_bytes("1::2"), None);
}
