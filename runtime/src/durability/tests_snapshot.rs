//! Tests of snapshots: the codec (both versions), restore, compaction,
//! corruption.

use super::tests_log::{
    append_range, expect_records, get, on_both_disks, open, put, read_all, record, Disk, TempDir,
};
use super::*;
use crate::sql::{Engine, QueryResult};
use crate::types::{Ballot, NodeId, Slot, TenantId, Value};
use std::sync::Arc;

fn rows(e: &mut Engine, sql: &str) -> Vec<Vec<Value>> {
    match e.execute(sql).expect("query") {
        QueryResult::Rows(r) => r.rows,
        other => panic!("not rows: {other:?}"),
    }
}

fn sample_engine() -> Engine {
    let mut e = Engine::new();
    e.execute(
        "CREATE TABLE Acct (id INT PRIMARY KEY, owner VARCHAR(20) NOT NULL, \
         bal DECIMAL(12,2) DEFAULT 0, note TEXT DEFAULT 'none', flag BOOLEAN, \
         at TIMESTAMP, blob VARBINARY(8), score DOUBLE)",
    )
    .expect("ddl");
    e.execute("CREATE INDEX acct_owner ON Acct (owner, bal)")
        .expect("ddl");
    e.execute("CREATE UNIQUE INDEX acct_note ON Acct (note)")
        .expect("ddl");
    e.execute("PARTITION TABLE Acct ON COLUMN owner")
        .expect("ddl");
    e.execute("CREATE TABLE bag (a INT, b TEXT)").expect("ddl");
    e.execute(
        "INSERT INTO Acct (id, owner, bal, note, flag, at, score) VALUES \
         (1, 'ann', 10.50, 'n1', TRUE, '2024-01-02 03:04:05', -0.0), (2, 'bob', 3, 'n2', NULL, NULL, 1.5), \
         (3, 'ann', -7.25, NULL, FALSE, '1969-12-31 23:59:59.5', NULL)",
    )
    .expect("insert");
    e.execute("INSERT INTO Acct (id, owner) VALUES (4, 'cy')")
        .expect("insert");
    e.execute("INSERT INTO bag VALUES (1, 'x'), (1, 'x'), (NULL, NULL)")
        .expect("insert");
    e.execute("CREATE VIEW rich (who, total) AS SELECT owner, sum(bal) FROM Acct GROUP BY owner")
        .expect("view");
    e.execute("CREATE VIEW \"Zed\" AS SELECT who FROM rich WHERE total > 0")
        .expect("view");
    e
}

fn sorted(e: &mut Engine, table: &str) -> Vec<Vec<Value>> {
    let mut r = rows(e, &format!("SELECT * FROM {table}"));
    r.sort();
    r
}

fn assert_same(a: &mut Engine, b: &mut Engine) {
    let sa: Vec<_> = a.database().tables().map(|t| t.schema().clone()).collect();
    let sb: Vec<_> = b.database().tables().map(|t| t.schema().clone()).collect();
    assert_eq!(sa, sb);
    for s in &sa {
        assert_eq!(sorted(a, &s.name), sorted(b, &s.name), "table {}", s.name);
    }
    let q = "SELECT who, total FROM rich ORDER BY who";
    assert_eq!(rows(a, q), rows(b, q));
    assert_eq!(
        rows(a, "SELECT * FROM \"Zed\" ORDER BY who"),
        rows(b, "SELECT * FROM \"Zed\" ORDER BY who")
    );
    let va: Vec<_> = a
        .views()
        .values()
        .map(|v| (v.name.clone(), v.columns.clone()))
        .collect();
    let vb: Vec<_> = b
        .views()
        .values()
        .map(|v| (v.name.clone(), v.columns.clone()))
        .collect();
    assert_eq!(va, vb);
}

fn meta(slot: u64) -> SnapshotMeta {
    SnapshotMeta {
        slot: Slot(slot),
        ballot: Ballot {
            round: slot + 100,
            node: NodeId(2),
        },
    }
}

static NO_QUOTA: crate::catalog::QuotaSet = crate::catalog::QuotaSet::new();

fn empty_image(e: &Engine) -> [TenantImage<'_>; 1] {
    [TenantImage {
        tenant: TenantId(1),
        engine: e,
        modules: &[],
        kept: Vec::new(),
        quota: &NO_QUOTA,
    }]
}

#[test]
fn snapshot_restores_schema_rows_views_and_modules() {
    let t = TempDir::new("snap");
    let (mut log, _) = open(&t, LogOptions::default());
    append_range(&mut log, 1..=3);
    log.sync().expect("sync");
    let mut original = sample_engine();
    let modules: Vec<(String, Arc<[u8]>)> = vec![("bank".into(), Arc::from(&b"\0asm\x01"[..]))];
    let other = Engine::new();
    let mut quota = crate::catalog::QuotaSet::default();
    quota.set_named("rows_max", Some(12)).unwrap();
    quota.set_named("calls_per_sec", Some(0)).unwrap();
    let images = [
        TenantImage {
            tenant: TenantId(5),
            engine: &original,
            modules: &modules,
            kept: Vec::new(),
            quota: &quota,
        },
        TenantImage {
            tenant: TenantId(6),
            engine: &other,
            modules: &[],
            kept: Vec::new(),
            quota: &NO_QUOTA,
        },
    ];
    let bytes = snapshot::encode(
        meta(3),
        77,
        &snapshot::Committed::default(),
        &[],
        &Default::default(),
        &images,
    )
    .expect("encode");
    assert_eq!(snapshot::read_meta(&bytes).expect("meta"), meta(3));
    log.install_snapshot(meta(3), &bytes).expect("install");
    let file = "snap-00000000000000000003.snap";
    assert_eq!(std::fs::read(t.0.join(file)).expect("read"), bytes);
    assert_eq!(log.bytes_since_snapshot(), 0);
    drop(log);
    let (mut log, _) = open(&t, LogOptions::default());
    assert!(read_all(&mut log).is_empty());
    assert_eq!(log.snapshot_meta(), Some(meta(3)));
    let (m, got) = log.read_snapshot().expect("read").expect("a snapshot");
    assert_eq!((m, &got), (meta(3), &bytes));
    let snap = snapshot::decode(&got).expect("decode");
    assert_eq!(
        (snap.slot, snap.ballot, snap.mp_txn_max, snap.tenants.len()),
        (Slot(3), meta(3).ballot, 77, 2)
    );
    let mut tenants = snap.tenants.into_iter();
    let mut first = tenants.next().expect("tenant 5");
    assert_eq!(first.tenant, TenantId(5));
    assert_eq!(first.quota, quota, "the quotas an administrator set");
    assert_eq!(
        first.modules,
        vec![("bank".to_string(), b"\0asm\x01".to_vec())]
    );
    assert_same(&mut original, &mut first.engine);
    // The restored indexes work: the unique index still refuses a duplicate.
    assert!(first
        .engine
        .execute("INSERT INTO acct (id, owner, note) VALUES (9, 'z', 'n1')")
        .is_err());
    let second = tenants.next().expect("tenant 6");
    assert_eq!(second.tenant, TenantId(6));
    assert_eq!(second.engine.database().tables().count(), 0);
}

on_both_disks!(
    snapshot_compacts_and_later_records_replay,
    corrupt_snapshot_is_reported
);

fn snapshot_compacts_and_later_records_replay<D: Disk>(d: &D) {
    let opts = LogOptions {
        segment_bytes_max: 120,
        ..LogOptions::default()
    };
    let (mut log, _) = open(d, opts.clone());
    append_range(&mut log, 1..=20);
    let e = Engine::new();
    let img = empty_image(&e);
    log.sync().expect("sync");
    let before = log.segment_files();
    let bytes = snapshot::encode(
        meta(12),
        4,
        &snapshot::Committed::default(),
        &[],
        &Default::default(),
        &img,
    )
    .expect("encode");
    log.install_snapshot(meta(12), &bytes).expect("snapshot");
    let after = log.segment_files();
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert!(after.len() >= 2);
    let since = log.bytes_since_snapshot();
    assert!(since > 0);
    append_range(&mut log, 21..=25);
    log.sync().expect("sync");
    assert!(log.bytes_since_snapshot() > since);
    // A second snapshot removes the first.
    let bytes = snapshot::encode(
        meta(15),
        5,
        &snapshot::Committed::default(),
        &[],
        &Default::default(),
        &img,
    )
    .expect("encode");
    log.install_snapshot(meta(15), &bytes).expect("snapshot");
    drop(log);
    let names: Vec<String> = d
        .fs()
        .list(100)
        .expect("ls")
        .into_iter()
        .filter(|n| n.starts_with("snap-"))
        .collect();
    assert_eq!(names, vec!["snap-00000000000000000015.snap".to_string()]);
    let (mut log, _) = open(d, opts.clone());
    let (m, bytes) = log.read_snapshot().expect("read").expect("snapshot");
    let snap = snapshot::decode(&bytes).expect("decode");
    assert_eq!((m, snap.slot, snap.mp_txn_max), (meta(15), Slot(15), 5));
    expect_records(&mut log, 16..=25);
    append_range(&mut log, 26..=26);
    log.sync().expect("sync");
}

fn corrupt_snapshot_is_reported<D: Disk>(d: &D) {
    let (mut log, _) = open(d, LogOptions::default());
    append_range(&mut log, 1..=2);
    log.sync().expect("sync");
    let e = sample_engine();
    let bytes = snapshot::encode(
        meta(2),
        0,
        &snapshot::Committed::default(),
        &[],
        &Default::default(),
        &empty_image(&e),
    )
    .expect("encode");
    log.install_snapshot(meta(2), &bytes).expect("snapshot");
    drop(log);
    let fs = d.fs();
    let file = "snap-00000000000000000002.snap";
    // A flipped byte in the Begin frame is found at open, one later when
    // the snapshot is read.
    for (at, at_open) in [
        (30, true),
        (bytes.len() / 2, false),
        (bytes.len() - 1, false),
    ] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        put(&fs, file, &bad);
        let err = match Log::open(d.fs(), LogOptions::default()) {
            Err(e) => {
                assert!(at_open, "refused at open, byte {at}: {e}");
                e
            }
            Ok((mut log, _)) => log.read_snapshot().expect_err("corrupt snapshot read"),
        };
        match err {
            DurabilityError::Corrupt { file: f, .. } => assert_eq!(f, file),
            other => panic!("expected Corrupt, got {other}"),
        }
    }
    // Truncated (no End frame) is corrupt too.
    put(&fs, file, &bytes[..bytes.len() - 3]);
    let (mut log, _) = open(d, LogOptions::default());
    assert!(matches!(
        log.read_snapshot(),
        Err(DurabilityError::Corrupt { .. })
    ));
    drop(log);
    // A leftover temp file from a crashed snapshot is removed at open.
    put(&fs, file, &bytes);
    let tmp = "snap-00000000000000000009.snap.tmp";
    put(&fs, tmp, b"junk");
    let (mut log, _) = open(d, LogOptions::default());
    assert_eq!(
        log.read_snapshot().expect("read").map(|s| s.0),
        Some(meta(2))
    );
    assert!(!fs.list(100).expect("ls").iter().any(|n| n == tmp));
}

/// `bytes` (a current snapshot whose tenants have no quotas set and whose
/// tables no foreign keys) as version 1 wrote it: no ballot in Begin, no
/// kept-call count nor quotas in Tenant frames, no foreign keys in Table
/// frames, no Committed frame.
fn to_v1(bytes: &[u8]) -> Vec<u8> {
    let (header, rest) = bytes.split_at(12);
    let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
    let (begin, frames) = rest[8..].split_at(n);
    // kind, slot, then the 12 ballot bytes go; mp_txn_max and tenants stay.
    let v1_begin = [&begin[..9], &begin[21..]].concat();
    let mut out = header[..8].to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(v1_begin.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&v1_begin).to_le_bytes());
    out.extend_from_slice(&v1_begin);
    // Tenant frames lose the kept-call count (version 3).
    let mut rest = frames;
    while !rest.is_empty() {
        let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        let mut payload = rest[8..8 + n].to_vec();
        // No Committed frame (version 4) nor Tenants frame (version 5).
        if payload[0] == 9 || payload[0] == 10 {
            rest = &rest[8 + n..];
            continue;
        }
        drop_foreign_key_count(&mut payload);
        if payload[0] == 2 {
            // The kept-call count (version 3), then no quotas (version 6).
            assert_eq!(payload[payload.len() - 4..], [0; 4], "no quotas");
            payload.truncate(payload.len() - 8);
        }
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        rest = &rest[8 + n..];
    }
    out
}

#[test]
fn a_version_1_snapshot_loads_with_the_default_ballot() {
    let sim = SimFs::new();
    let e = sample_engine();
    let v2 = snapshot::encode(
        meta(4),
        9,
        &snapshot::Committed::default(),
        &[],
        &Default::default(),
        &empty_image(&e),
    )
    .expect("encode");
    let v1 = to_v1(&v2);
    let tables = e.database().tables().count();
    assert_eq!(
        v1.len(),
        v2.len() - 12 - 4 - 4 - (8 + 1 + 8 + 4) - (8 + 1 + 4 + 4) - 8 * tables,
        "ballot, kept-call count, quotas, foreign-key and check counts and the empty Committed and \
         Tenants frames gone"
    );
    let old = SnapshotMeta {
        slot: Slot(4),
        ballot: Ballot::default(),
    };
    assert_eq!(snapshot::read_meta(&v1).expect("meta"), old);
    let snap = snapshot::decode(&v1).expect("decode");
    assert_eq!(
        (snap.slot, snap.ballot, snap.mp_txn_max),
        (Slot(4), Ballot::default(), 9)
    );
    // As a file beside a log: opened, read, and the log continues after it.
    put(&sim, "snap-00000000000000000004.snap", &v1);
    let (mut log, _) = open(&sim, LogOptions::default());
    assert_eq!((log.snapshot_meta(), log.last_slot()), (Some(old), Slot(4)));
    assert_eq!(log.read_snapshot().expect("read"), Some((old, v1.clone())));
    append_range(&mut log, 5..=6);
    log.sync().expect("sync");
    drop(log);
    let (mut log, _) = open(&sim, LogOptions::default());
    expect_records(&mut log, 5..=6);
    assert_eq!(get(&sim, "snap-00000000000000000004.snap"), v1);
}

#[test]
fn hostile_snapshot_bytes_are_errors_not_panics() {
    let e = sample_engine();
    let bytes = snapshot::encode(
        meta(1),
        0,
        &snapshot::Committed::default(),
        &[],
        &Default::default(),
        &empty_image(&e),
    )
    .expect("encode");
    for cut in 0..bytes.len() {
        assert!(snapshot::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    for at in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        assert!(snapshot::decode(&bad).is_err(), "flip at {at}");
    }
    // A huge frame length is refused without allocating.
    let mut bad = bytes.clone();
    bad[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = snapshot::decode(&bad).unwrap_err();
    assert!(err.to_string().contains("out of bounds"), "{err}");
}

#[test]
fn records_after_a_snapshot_keep_their_ballots() {
    let sim = SimFs::new();
    let (mut log, _) = open(&sim, LogOptions::default());
    append_range(&mut log, 1..=6);
    let bytes = snapshot::encode(
        meta(3),
        0,
        &snapshot::Committed::default(),
        &[],
        &Default::default(),
        &[],
    )
    .expect("encode");
    log.install_snapshot(meta(3), &bytes).expect("install");
    log.sync().expect("sync");
    drop(log);
    let (mut log, _) = open(&sim, LogOptions::default());
    assert_eq!(read_all(&mut log), (4..=6).map(record).collect::<Vec<_>>());
}

#[test]
fn kept_calls_round_trip_oldest_first() {
    use crate::wasm::ProcOutput;
    let e = sample_engine();
    let one = ProcOutput::Value(Value::Int(1));
    let text = ProcOutput::Value(Value::text("ok"));
    let images = [TenantImage {
        tenant: TenantId(4),
        engine: &e,
        modules: &[],
        kept: vec![("b", Some(&one)), ("a", None), ("c", Some(&text))],
        quota: &NO_QUOTA,
    }];
    let bytes = snapshot::encode(
        meta(2),
        0,
        &snapshot::Committed::default(),
        &[],
        &Default::default(),
        &images,
    )
    .expect("encode");
    let snap = snapshot::decode(&bytes).expect("decode");
    let got: Vec<_> = snap.tenants[0]
        .kept
        .iter()
        .map(|k| (k.key.as_str(), k.output.clone()))
        .collect();
    assert_eq!(
        got,
        [("b", Some(one)), ("a", None), ("c", Some(text))],
        "every kept call, in order"
    );
}

#[test]
fn partition_0s_committed_transactions_round_trip_and_older_snapshots_claim_none() {
    let e = sample_engine();
    let committed = snapshot::Committed {
        floor: 3,
        txns: vec![3, 5, 8],
    };
    let bytes = snapshot::encode(
        meta(6),
        8,
        &committed,
        &[],
        &Default::default(),
        &empty_image(&e),
    )
    .expect("encode");
    let snap = snapshot::decode(&bytes).expect("decode");
    assert_eq!((snap.mp_txn_max, &snap.committed), (8, &committed));
    // A version 1 snapshot did not record them: nothing up to its
    // mp_txn_max is known, rather than every one taken for aborted.
    let v1 = to_v1(&bytes);
    let old = snapshot::decode(&v1).expect("decode v1");
    assert_eq!(
        old.committed,
        snapshot::Committed {
            floor: 9,
            txns: vec![]
        }
    );
}

#[test]
fn partition_0s_created_tenants_round_trip_and_older_snapshots_hold_none() {
    let e = sample_engine();
    let created = vec![
        TenantRecord {
            id: TenantId(2),
            name: "acme".into(),
            principal: "owner".into(),
            admin: false,
            token_sha256: [7; 32],
        },
        TenantRecord {
            id: TenantId(3),
            name: "ops".into(),
            principal: "root".into(),
            admin: true,
            token_sha256: [9; 32],
        },
    ];
    let committed = snapshot::Committed::default();
    let mut principals = crate::catalog::PrincipalOverlay::new();
    principals.insert(
        (TenantId(2), "app".into()),
        Some(crate::catalog::PrincipalEntry {
            role: crate::catalog::Role::Caller(vec!["vote".into()]),
            token_sha256: [5; 32],
        }),
    );
    principals.insert((TenantId(2), "owner".into()), None);
    let bytes = snapshot::encode(
        meta(6),
        8,
        &committed,
        &created,
        &principals,
        &empty_image(&e),
    )
    .expect("encode");
    let snap = snapshot::decode(&bytes).expect("decode");
    assert_eq!(snap.created_tenants, created);
    assert_eq!(snap.principals, principals);
    assert_eq!(
        snap.tenants.len(),
        1,
        "the tenant images follow the records"
    );
    let old = snapshot::decode(&to_v1(&bytes)).expect("decode v1");
    assert!(old.created_tenants.is_empty() && old.principals.is_empty());
    // Version 6 wrote no principals after the tenant records.
    let bytes = snapshot::encode(
        meta(6),
        8,
        &committed,
        &created,
        &Default::default(),
        &empty_image(&e),
    )
    .expect("encode");
    let v6 = snapshot::decode(&to_v6(&bytes)).expect("decode v6");
    assert_eq!(v6.created_tenants, created);
    assert!(v6.principals.is_empty());
}

/// A Table frame's payload as versions before 8 wrote it: no foreign-key
/// count (zero here) before the row count.
/// A Table frame of a table with no foreign keys and no checks loses both
/// counts (versions 8 and 9), which sit just before its last 8 bytes.
fn drop_foreign_key_count(payload: &mut Vec<u8>) {
    if payload[0] == 3 {
        let at = payload.len() - 16;
        assert_eq!(payload[at..at + 8], [0; 8], "no foreign keys, no checks");
        payload.drain(at..at + 8);
    }
}

/// A version 7 snapshot (with no principals, and tables without foreign
/// keys) as version 6 wrote it.
fn to_v6(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes[..8].to_vec();
    out.extend_from_slice(&6u32.to_le_bytes());
    let mut rest = &bytes[12..];
    while !rest.is_empty() {
        let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        let mut payload = rest[8..8 + n].to_vec();
        if payload[0] == 10 {
            assert_eq!(payload[payload.len() - 4..], [0; 4], "no principals");
            payload.truncate(payload.len() - 4);
        }
        drop_foreign_key_count(&mut payload);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        rest = &rest[8 + n..];
    }
    out
}

/// `e`'s one tenant through a snapshot and back, its schemas the same.
fn round_trip(e: &Engine) -> Engine {
    let bytes = snapshot::encode(
        meta(3),
        1,
        &snapshot::Committed::default(),
        &[],
        &Default::default(),
        &empty_image(e),
    )
    .expect("encode");
    let snap = snapshot::decode(&bytes).expect("decode");
    let back = snap.tenants.into_iter().next().expect("a tenant").engine;
    let schemas =
        |e: &Engine| -> Vec<_> { e.database().tables().map(|t| t.schema().clone()).collect() };
    assert_eq!(schemas(e), schemas(&back));
    back
}

#[test]
fn foreign_keys_survive_a_snapshot() {
    let mut e = Engine::new();
    for sql in [
        "CREATE TABLE kind (k INT PRIMARY KEY, name TEXT UNIQUE)",
        "CREATE TABLE bag (a INT REFERENCES kind (k), b TEXT, FOREIGN KEY (b) REFERENCES kind (name))",
        "INSERT INTO kind VALUES (1, 'one')",
        "INSERT INTO bag VALUES (1, 'one'), (NULL, NULL)",
    ] {
        e.execute(sql).expect(sql);
    }
    let mut back = round_trip(&e);
    assert_eq!(sorted(&mut e, "bag"), sorted(&mut back, "bag"));
    let bag = back.database().table_by_name("bag").expect("bag");
    assert_eq!(bag.schema().foreign_keys.len(), 2);
    let m = back
        .execute("INSERT INTO bag VALUES (2, NULL)")
        .expect_err("no kind 2");
    assert!(m.to_string().contains("bag_a_fkey"), "{m}");
}

#[test]
fn checks_defaults_and_altered_tables_survive_a_snapshot() {
    let mut e = Engine::new();
    for sql in [
        "CREATE TABLE item (id INT PRIMARY KEY, price INT CHECK (price > 0), \
           at TIMESTAMPTZ DEFAULT now(), note TEXT DEFAULT 'none', CHECK (id < 100))",
        "INSERT INTO item (id, price) VALUES (1, 5), (2, 6)",
        "ALTER TABLE item ADD COLUMN qty INT NOT NULL DEFAULT 3",
        "ALTER TABLE item DROP COLUMN note",
        "ALTER TABLE item RENAME COLUMN price TO cost",
    ] {
        e.execute(sql).expect(sql);
    }
    let mut back = round_trip(&e);
    assert_eq!(sorted(&mut e, "item"), sorted(&mut back, "item"));
    let m = back
        .execute("INSERT INTO item (id, cost) VALUES (3, 0)")
        .expect_err("cost must be positive");
    assert!(m.to_string().contains("item_price_check"), "{m}");
    back.set_now(86_400_000_000);
    back.execute("INSERT INTO item (id, cost) VALUES (3, 1)")
        .expect("a good row");
    let r = back
        .execute("SELECT at, qty FROM item WHERE id = 3")
        .expect("select");
    let QueryResult::Rows(r) = r else {
        panic!("rows")
    };
    assert_eq!(
        r.rows,
        vec![vec![Value::TimestampTz(86_400_000_000), Value::Int(3)]]
    );
}
