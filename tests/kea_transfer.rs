//! Moving from Kea and back: a Kea lease4 CSV is loaded into the journal,
//! the engine restores it (the address is the client's, not the pool's),
//! and the journal exports again as a Kea CSV.
use std::net::Ipv4Addr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use xdhcp::config::Config;
use xdhcp::engine::{Clock, Engine};
use xdhcp::lease::journal::{Durability, Journal, JournalOptions};
use xdhcp::tools::kea_csv::KeaVersion;
use xdhcp::tools::transfer;

#[test]
fn kea_csv_round_trip_through_the_journal() {
    let dir = std::env::temp_dir().join(format!("xdhcp-kea-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = format!(
        r#"
interface = "lab0"
server_id = "198.18.0.1"
[journal]
dir = "{}"
[[subnet]]
prefix = "198.18.0.0/24"
pools = ["198.18.0.10-198.18.0.20"]
"#,
        dir.join("journal").display()
    );
    let cfg = Config::parse(&config).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // As Kea 2.2 writes it: a live lease with a comma in its hostname, an
    // expired one, and one outside every configured subnet.
    let csv = format!(
        "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context\n\
         198.18.0.10,02:aa:00:00:00:01,,7200,{},1,0,0,cpe&#x2c one,0,\n\
         198.18.0.11,02:aa:00:00:00:02,,7200,{},1,0,0,old,0,\n\
         10.9.9.9,02:aa:00:00:00:03,,7200,{},7,0,0,elsewhere,0,\n",
        now + 3600,
        now - 10,
        now + 3600
    );
    let input = dir.join("kea-leases4.csv");
    std::fs::write(&input, csv).unwrap();
    let jdir = dir.join("journal");
    let r = transfer::import_kea(&cfg, &jdir, &input).unwrap();
    assert_eq!((r.written, r.not_live, r.no_subnet), (1, 1, 1), "{r:?}");

    // The engine restores the imported lease: .10 is taken, the next new
    // client gets .11.
    let (j, rec) = Journal::open(&jdir, Durability::Durable, JournalOptions::default()).unwrap();
    j.close().unwrap();
    let engine = Engine::new(&cfg);
    let (restored, _) = engine.restore(&rec.leases, Clock::now(&engine, Instant::now()));
    assert_eq!(restored, 1);
    let s = &engine.subnets()[0];
    assert!(s.pool.is_taken(Ipv4Addr::new(198, 18, 0, 10)));
    assert_eq!(s.pool.allocate(), Some(Ipv4Addr::new(198, 18, 0, 11)));

    let out = dir.join("out.csv");
    let e = transfer::export_kea(&cfg, &jdir, &out, KeaVersion::V2_2).unwrap();
    assert_eq!(e.written, 1);
    let text = std::fs::read_to_string(&out).unwrap();
    let row = text.lines().nth(1).expect("one lease row");
    assert!(row.starts_with("198.18.0.10,02:aa:00:00:00:01,"), "{row}");
    assert!(
        row.contains("cpe&#x2c one"),
        "hostname escaped as Kea does: {row}"
    );
    assert!(row.contains(",1,"), "subnet 0 is Kea subnet_id 1: {row}");
    let _ = std::fs::remove_dir_all(&dir);
}
