//! Tests of snapshots: restore, compaction, corruption.

use super::tests_log::{append_range, entry, TempDir};
use super::*;
use crate::sql::{Engine, QueryResult};
use crate::types::{TenantId, Value};
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

#[test]
fn snapshot_restores_schema_rows_views_and_modules() {
    let t = TempDir::new("snap");
    let (mut log, _) = Log::open(t.dir(), LogOptions::default()).expect("open");
    append_range(&mut log, 1..=3);
    log.sync().expect("sync");
    let mut original = sample_engine();
    let modules: Vec<(String, Arc<[u8]>)> = vec![("bank".into(), Arc::from(&b"\0asm\x01"[..]))];
    let other = Engine::new();
    let images = [
        TenantImage {
            tenant: TenantId(5),
            engine: &original,
            modules: &modules,
        },
        TenantImage {
            tenant: TenantId(6),
            engine: &other,
            modules: &[],
        },
    ];
    let info = log.write_snapshot(Lsn(3), 77, &images).expect("snapshot");
    assert_eq!(info.rows, 7);
    assert_eq!(info.file, "snap-00000000000000000003.snap");
    assert_eq!(
        std::fs::metadata(t.path(&info.file)).expect("stat").len(),
        info.bytes
    );
    assert_eq!(log.bytes_since_snapshot(), 0);
    drop(log);
    let (_, mut rec) = Log::open(t.dir(), LogOptions::default()).expect("reopen");
    assert!(rec.entries.is_empty());
    let snap = rec.snapshot.take().expect("snapshot loaded");
    assert_eq!(
        (snap.lsn, snap.mp_txn_max, snap.tenants.len()),
        (Lsn(3), 77, 2)
    );
    let mut tenants = snap.tenants.into_iter();
    let mut first = tenants.next().expect("tenant 5");
    assert_eq!(first.tenant, TenantId(5));
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

#[test]
fn snapshot_compacts_and_later_entries_replay() {
    let t = TempDir::new("compact");
    let opts = LogOptions {
        segment_bytes_max: 120,
    };
    let (mut log, _) = Log::open(t.dir(), opts.clone()).expect("open");
    append_range(&mut log, 1..=20);
    // Not durable yet: refused.
    let e = Engine::new();
    let img = [TenantImage {
        tenant: TenantId(1),
        engine: &e,
        modules: &[],
    }];
    assert!(matches!(
        log.write_snapshot(Lsn(20), 0, &img),
        Err(DurabilityError::SnapshotAhead { .. })
    ));
    log.sync().expect("sync");
    let before = log.segment_files();
    log.write_snapshot(Lsn(12), 4, &img).expect("snapshot");
    let after = log.segment_files();
    assert!(after.len() < before.len(), "{before:?} -> {after:?}");
    assert!(after.len() >= 2);
    let since = log.bytes_since_snapshot();
    assert!(since > 0);
    append_range(&mut log, 21..=25);
    log.sync().expect("sync");
    assert!(log.bytes_since_snapshot() > since);
    // A second snapshot removes the first.
    log.write_snapshot(Lsn(15), 5, &img).expect("snapshot");
    drop(log);
    let names: Vec<String> = std::fs::read_dir(&t.0)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .filter(|n| n.starts_with("snap-"))
        .collect();
    assert_eq!(names, vec!["snap-00000000000000000015.snap".to_string()]);
    let (mut log, rec) = Log::open(t.dir(), opts.clone()).expect("reopen");
    let snap = rec.snapshot.expect("snapshot");
    assert_eq!((snap.lsn, snap.mp_txn_max), (Lsn(15), 5));
    let want: Vec<(Lsn, Entry)> = (16..=25).map(|i| (Lsn(i), entry(i))).collect();
    assert_eq!(rec.entries, want);
    append_range(&mut log, 26..=26);
    log.sync().expect("sync");
}

#[test]
fn corrupt_snapshot_is_reported() {
    let t = TempDir::new("badsnap");
    let (mut log, _) = Log::open(t.dir(), LogOptions::default()).expect("open");
    append_range(&mut log, 1..=2);
    log.sync().expect("sync");
    let e = sample_engine();
    let img = [TenantImage {
        tenant: TenantId(1),
        engine: &e,
        modules: &[],
    }];
    let info = log.write_snapshot(Lsn(2), 0, &img).expect("snapshot");
    drop(log);
    let p = t.path(&info.file);
    let good = std::fs::read(&p).expect("read");
    let mut bad = good.clone();
    bad[40] ^= 0x10;
    std::fs::write(&p, &bad).expect("write");
    match Log::open(t.dir(), LogOptions::default()) {
        Err(DurabilityError::Corrupt { file, .. }) => assert_eq!(file, info.file),
        other => panic!("expected Corrupt, got {:?}", other.map(|_| ())),
    }
    // Truncated (no End frame) is corrupt too.
    std::fs::write(&p, &good[..good.len() - 3]).expect("write");
    assert!(matches!(
        Log::open(t.dir(), LogOptions::default()),
        Err(DurabilityError::Corrupt { .. })
    ));
    // A leftover temp file from a crashed snapshot is removed at open.
    std::fs::write(&p, &good).expect("write");
    std::fs::write(t.path("snap-00000000000000000009.snap.tmp"), b"junk").expect("write");
    let (_, rec) = Log::open(t.dir(), LogOptions::default()).expect("open");
    assert_eq!(rec.snapshot.map(|s| s.lsn), Some(Lsn(2)));
    assert!(!t.path("snap-00000000000000000009.snap.tmp").exists());
}
