//! Unit tests of the storage contract: constraints, indexes (hash, ordered,
//! prefix ranges, NULLs), undo, write-set and DDL rules.

use super::*;
use crate::types::Value;
use rust_decimal::Decimal;
use std::ops::Bound::{Excluded, Included, Unbounded};

pub(super) fn col(name: &str, ty: DataType, nullable: bool) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        ty,
        nullable,
        default: None,
    }
}

pub(super) fn idx(name: &str, columns: &[usize], unique: bool, kind: IndexKind) -> IndexDef {
    IndexDef {
        name: name.into(),
        columns: columns.to_vec(),
        unique,
        kind,
    }
}

pub(super) fn int(i: i64) -> Value {
    Value::Int(i)
}

pub(super) fn text(s: &str) -> Value {
    Value::text(s)
}

pub(super) fn row(vals: &[Value]) -> Row {
    vals.to_vec().into_boxed_slice()
}

/// `t(id BIGINT PRIMARY KEY, s SMALLINT, i INTEGER, v VARCHAR(3), b VARBINARY(2),
/// d DOUBLE, m DECIMAL(10,2), f BOOLEAN, ts TIMESTAMP, nn INTEGER NOT NULL)`.
fn typed_db() -> (Database, TableId) {
    let mut db = Database::new();
    let schema = TableSchema {
        name: "t".into(),
        columns: vec![
            col("id", DataType::BigInt, true),
            col("s", DataType::SmallInt, true),
            col("i", DataType::Integer, true),
            col("v", DataType::Varchar(Some(3)), true),
            col("b", DataType::Varbinary(Some(2)), true),
            col("d", DataType::Double, true),
            col(
                "m",
                DataType::Decimal {
                    precision: 10,
                    scale: 2,
                },
                true,
            ),
            col("f", DataType::Boolean, true),
            col("ts", DataType::Timestamp, true),
            col("nn", DataType::Integer, false),
        ],
        primary_key: Some(0),
        indexes: vec![idx("t_pkey", &[0], true, IndexKind::Hash)],
        partition_column: None,
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    let id = db.create_table(schema).unwrap();
    (db, id)
}

fn typed_row(id: i64) -> Vec<Value> {
    vec![
        int(id),
        int(1),
        int(2),
        text("abc"),
        Value::Bytes(vec![1u8, 2].into()),
        Value::Double(1.5),
        Value::Decimal(Decimal::new(12345, 2)),
        Value::Bool(true),
        Value::Timestamp(7),
        int(0),
    ]
}

fn with(mut r: Vec<Value>, col: usize, v: Value) -> Row {
    r[col] = v;
    r.into_boxed_slice()
}

/// Everything observable about a table, for before/after comparisons.
#[derive(Debug, PartialEq)]
struct Snapshot {
    rows: Vec<(RowId, Row)>,
    indexes: Vec<(Vec<RowId>, usize)>,
    free: Vec<u32>,
    len: usize,
    /// Slots in the arena, live or free (a rolled-back insert gives its slot back).
    slots: usize,
}

fn snapshot(db: &Database, t: TableId) -> Snapshot {
    let table = db.table(t).unwrap();
    let rows = table.scan().map(|(id, r)| (id, Row::from(r))).collect();
    let indexes = (0..table.schema().indexes.len())
        .map(|i| {
            (
                table.index_range(i, Unbounded, Unbounded),
                table.index_entry_count(i),
            )
        })
        .collect();
    Snapshot {
        rows,
        indexes,
        free: table.free_slots().to_vec(),
        len: table.len(),
        slots: table.check_arena(),
    }
}

fn insert_err(db: &mut Database, t: TableId, r: Row) -> StorageError {
    let before = snapshot(db, t);
    let sp = db.savepoint();
    let err = db.insert(t, r).unwrap_err();
    assert_eq!(snapshot(db, t), before, "failed insert changed the table");
    assert_eq!(db.savepoint(), sp, "failed insert logged a write");
    err
}

fn update_err(db: &mut Database, t: TableId, id: RowId, r: Row) -> StorageError {
    let before = snapshot(db, t);
    let sp = db.savepoint();
    let err = db.update(t, id, r).unwrap_err();
    assert_eq!(snapshot(db, t), before, "failed update changed the table");
    assert_eq!(db.savepoint(), sp, "failed update logged a write");
    err
}

#[test]
fn every_constraint_is_checked_on_insert_and_update_with_its_message() {
    let (mut db, t) = typed_db();
    db.begin().unwrap();
    let r1 = db.insert(t, typed_row(1).into()).unwrap();
    db.insert(t, typed_row(2).into()).unwrap();

    let short = row(&[int(3)]);
    let e = insert_err(&mut db, t, short.clone());
    assert_eq!(
        e.to_string(),
        "row has 1 values but table \"t\" has 10 columns"
    );
    assert!(matches!(
        update_err(&mut db, t, r1, short),
        StorageError::Arity {
            expected: 10,
            found: 1,
            ..
        }
    ));

    let bad_type = with(typed_row(3), 3, int(5));
    let e = insert_err(&mut db, t, bad_type.clone());
    assert_eq!(
        e.to_string(),
        "value of type BIGINT does not match column \"v\" of table \"t\" (VARCHAR(3))"
    );
    assert!(matches!(
        update_err(&mut db, t, r1, bad_type),
        StorageError::TypeMismatch { .. }
    ));
    // Each family against a column of another type.
    for (c, v) in [
        (0, Value::Double(1.0)),
        (5, int(1)),
        (6, Value::Double(1.0)),
        (4, text("x")),
        (7, int(1)),
        (8, int(1)),
    ] {
        let e = insert_err(&mut db, t, with(typed_row(3), c, v));
        assert!(
            matches!(e, StorageError::TypeMismatch { .. }),
            "column {c}: {e}"
        );
    }

    let e = insert_err(&mut db, t, with(typed_row(3), 1, int(32768)));
    assert_eq!(
        e.to_string(),
        "value 32768 out of range for column \"s\" of table \"t\" (SMALLINT)"
    );
    let e = update_err(&mut db, t, r1, with(typed_row(1), 2, int(-2_147_483_649)));
    assert_eq!(
        e.to_string(),
        "value -2147483649 out of range for column \"i\" of table \"t\" (INTEGER)"
    );
    db.insert(t, with(typed_row(3), 1, int(-32768))).unwrap();

    // VARCHAR counts characters, not bytes.
    db.insert(t, with(typed_row(4), 3, text("ééé"))).unwrap();
    let e = insert_err(&mut db, t, with(typed_row(5), 3, text("éééé")));
    assert_eq!(
        e.to_string(),
        "value too long for column \"v\" of table \"t\" (VARCHAR(3)): 4 > 3"
    );
    let e = update_err(
        &mut db,
        t,
        r1,
        with(typed_row(1), 4, Value::Bytes(vec![0u8; 3].into())),
    );
    assert_eq!(
        e.to_string(),
        "value too long for column \"b\" of table \"t\" (VARBINARY(2)): 3 > 2"
    );

    let e = insert_err(&mut db, t, with(typed_row(5), 9, Value::Null));
    assert_eq!(
        e.to_string(),
        "null value in column \"nn\" of table \"t\" violates not-null constraint"
    );
    // Primary key columns are NOT NULL even if declared nullable.
    let e = update_err(&mut db, t, r1, with(typed_row(1), 0, Value::Null));
    assert!(
        matches!(e, StorageError::NotNull { ref column, .. } if column == "id"),
        "{e}"
    );

    let e = insert_err(&mut db, t, typed_row(2).into());
    assert_eq!(
        e.to_string(),
        "duplicate key value violates unique constraint \"t_pkey\" on table \"t\": key (id)=(2) already exists"
    );
    let e = update_err(&mut db, t, r1, typed_row(2).into());
    assert!(
        matches!(e, StorageError::Unique { ref key, .. } if key == "2"),
        "{e}"
    );

    // Nullable non-key columns accept NULL.
    let all_null: Vec<Value> = (0..10)
        .map(|c| {
            if c == 0 || c == 9 {
                int(9)
            } else {
                Value::Null
            }
        })
        .collect();
    db.insert(t, all_null.into()).unwrap();
}

#[test]
fn checks_report_the_earliest_kind_of_failure_first() {
    let (mut db, t) = typed_db();
    db.begin().unwrap();
    db.insert(t, typed_row(1).into()).unwrap();
    // NOT NULL (col 9) and type (col 7): the type error wins.
    let mut r = typed_row(2);
    r[9] = Value::Null;
    r[7] = int(1);
    assert!(matches!(
        insert_err(&mut db, t, r.into()),
        StorageError::TypeMismatch { .. }
    ));
    // Too long (col 3) before out of range (col 1): range wins.
    let mut r = typed_row(2);
    r[3] = text("long");
    r[1] = int(1 << 20);
    assert!(matches!(
        insert_err(&mut db, t, r.into()),
        StorageError::OutOfRange { .. }
    ));
    // Length before NOT NULL; NOT NULL before a duplicate key.
    let mut r = typed_row(1);
    r[9] = Value::Null;
    r[3] = text("long");
    assert!(matches!(
        insert_err(&mut db, t, r.clone().into()),
        StorageError::TooLong { .. }
    ));
    r[3] = text("ok");
    assert!(matches!(
        insert_err(&mut db, t, r.into()),
        StorageError::NotNull { .. }
    ));
    // Two failures of one kind: the first column is reported.
    let mut r = typed_row(2);
    r[3] = text("longer");
    r[4] = Value::Bytes(vec![0u8; 3].into());
    let e = insert_err(&mut db, t, r.into());
    assert!(
        matches!(e, StorageError::TooLong { ref column, .. } if column == "v"),
        "{e}"
    );
}

/// `p(a INTEGER, b VARCHAR, c INTEGER)` with unique hash (a), unique ordered
/// (b, c) and a non-unique ordered (c).
pub(super) fn multi_db() -> (Database, TableId) {
    let mut db = Database::new();
    let schema = TableSchema {
        name: "P".into(),
        columns: vec![
            col("a", DataType::Integer, false),
            col("b", DataType::Varchar(None), true),
            col("c", DataType::Integer, true),
        ],
        primary_key: Some(0),
        indexes: vec![
            idx("p_pkey", &[0], true, IndexKind::Hash),
            idx("p_bc", &[1, 2], true, IndexKind::Ordered),
            idx("p_c", &[2], false, IndexKind::Ordered),
        ],
        partition_column: None,
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    let id = db.create_table(schema).unwrap();
    (db, id)
}

#[test]
fn failed_unique_check_on_a_later_index_leaves_earlier_indexes_alone() {
    let (mut db, t) = multi_db();
    db.begin().unwrap();
    db.insert(t, row(&[int(1), text("x"), int(1)])).unwrap();
    let e = insert_err(&mut db, t, row(&[int(2), text("x"), int(1)]));
    assert_eq!(
        e.to_string(),
        "duplicate key value violates unique constraint \"p_bc\" on table \"P\": key (b, c)=(x, 1) already exists"
    );
    let table = db.table(t).unwrap();
    assert!(table.index_lookup(0, &[int(2)]).is_empty());
    assert_eq!(table.index_lookup(2, &[int(1)]), vec![RowId(0)]);
}

#[test]
fn update_keeps_or_moves_its_keys() {
    let (mut db, t) = multi_db();
    db.begin().unwrap();
    let r0 = db.insert(t, row(&[int(1), text("x"), int(1)])).unwrap();
    let r1 = db.insert(t, row(&[int(2), text("y"), int(1)])).unwrap();
    // Same keys: no conflict with itself.
    db.update(t, r0, row(&[int(1), text("x"), int(1)])).unwrap();
    // Move every key.
    db.update(t, r0, row(&[int(5), text("z"), int(7)])).unwrap();
    let table = db.table(t).unwrap();
    assert!(table.index_lookup(0, &[int(1)]).is_empty());
    assert_eq!(table.index_get(0, &[int(5)]), Some(r0));
    assert_eq!(table.index_lookup(1, &[text("z"), int(7)]), vec![r0]);
    assert!(table.index_lookup(1, &[text("x"), int(1)]).is_empty());
    assert_eq!(table.index_lookup(2, &[int(1)]), vec![r1]);
    assert_eq!(table.index_lookup(2, &[int(7)]), vec![r0]);
    // The freed key is usable again; another row's key is not.
    db.insert(t, row(&[int(1), text("x"), int(1)])).unwrap();
    let e = update_err(&mut db, t, r1, row(&[int(5), text("y"), int(1)]));
    assert!(matches!(e, StorageError::Unique { ref constraint, .. } if constraint == "p_pkey"));
    assert_eq!(
        db.update(t, RowId(99), row(&[int(9), Value::Null, Value::Null])),
        Err(StorageError::NoSuchRow(RowId(99)))
    );
    assert_eq!(
        db.delete(t, RowId(99)),
        Err(StorageError::NoSuchRow(RowId(99)))
    );
}

#[test]
fn nulls_never_conflict_never_match_and_sort_first_in_full_scans() {
    let (mut db, t) = multi_db();
    db.begin().unwrap();
    let n0 = db
        .insert(t, row(&[int(1), Value::Null, Value::Null]))
        .unwrap();
    let n1 = db
        .insert(t, row(&[int(2), Value::Null, Value::Null]))
        .unwrap();
    let half = db
        .insert(t, row(&[int(3), text("a"), Value::Null]))
        .unwrap();
    let half2 = db
        .insert(t, row(&[int(4), text("a"), Value::Null]))
        .unwrap();
    let full = db.insert(t, row(&[int(5), text("a"), int(1)])).unwrap();
    let table = db.table(t).unwrap();
    assert!(table
        .index_lookup(1, &[Value::Null, Value::Null])
        .is_empty());
    assert!(table.index_lookup(2, &[Value::Null]).is_empty());
    assert!(table.index_lookup(1, &[text("a"), Value::Null]).is_empty());
    assert_eq!(table.index_get(1, &[Value::Null, Value::Null]), None);
    // Prefix equality on b = 'a' excludes keys with a NULL c.
    assert_eq!(table.index_lookup(1, &[text("a")]), vec![full]);
    assert_eq!(
        table.index_range(1, Unbounded, Unbounded),
        vec![n0, n1, half, half2, full]
    );
    assert_eq!(
        table.index_range(2, Unbounded, Unbounded),
        vec![n0, n1, half, half2, full]
    );
    assert_eq!(
        table.index_range(1, Unbounded, Included(&[text("b")])),
        vec![full]
    );
    assert_eq!(
        table.index_range(1, Included(&[text("a")]), Unbounded),
        vec![full]
    );
    assert_eq!(
        table.index_range(2, Unbounded, Included(&[int(5)])),
        vec![full]
    );
    assert!(table
        .index_range(2, Included(&[Value::Null]), Unbounded)
        .is_empty());
    // Updating into a NULL key does not conflict either.
    db.update(t, full, row(&[int(5), text("a"), Value::Null]))
        .unwrap();
    assert!(db
        .table(t)
        .unwrap()
        .index_lookup(1, &[text("a")])
        .is_empty());
}

/// `g(a INTEGER, b INTEGER, id INTEGER)`, ordered non-unique (a, b), rows
/// for a in 0..10, b in 0..4, each (a, b) twice.
fn grid() -> (Database, TableId, Vec<(RowId, i64, i64)>) {
    let mut db = Database::new();
    let schema = TableSchema {
        name: "g".into(),
        columns: vec![
            col("a", DataType::Integer, false),
            col("b", DataType::Integer, false),
            col("id", DataType::Integer, false),
        ],
        primary_key: None,
        indexes: vec![idx("g_ab", &[0, 1], false, IndexKind::Ordered)],
        partition_column: None,
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    let t = db.create_table(schema).unwrap();
    db.begin().unwrap();
    let mut rows = Vec::new();
    let mut n = 0;
    // Insert in a scrambled order so slot order differs from key order.
    for _ in 0..2 {
        for a in (0..10).rev() {
            for b in [2, 0, 3, 1] {
                let id = db.insert(t, row(&[int(a), int(b), int(n)])).unwrap();
                rows.push((id, a, b));
                n += 1;
            }
        }
    }
    db.commit().unwrap();
    (db, t, rows)
}

fn expect(rows: &[(RowId, i64, i64)], keep: impl Fn(i64, i64) -> bool) -> Vec<RowId> {
    let mut hits: Vec<(i64, i64, RowId)> = rows
        .iter()
        .filter(|r| keep(r.1, r.2))
        .map(|r| (r.1, r.2, r.0))
        .collect();
    hits.sort();
    hits.into_iter().map(|h| h.2).collect()
}

#[test]
fn prefix_bounds_on_a_composite_ordered_index() {
    let (db, t, rows) = grid();
    let tb = db.table(t).unwrap();
    assert_eq!(
        tb.index_range(0, Included(&[int(5)]), Unbounded),
        expect(&rows, |a, _| a >= 5)
    );
    assert_eq!(
        tb.index_range(0, Excluded(&[int(5)]), Unbounded),
        expect(&rows, |a, _| a > 5)
    );
    assert_eq!(
        tb.index_range(0, Unbounded, Excluded(&[int(7)])),
        expect(&rows, |a, _| a < 7)
    );
    assert_eq!(
        tb.index_range(0, Unbounded, Included(&[int(7)])),
        expect(&rows, |a, _| a <= 7)
    );
    assert_eq!(
        tb.index_range(0, Included(&[int(3)]), Excluded(&[int(5)])),
        expect(&rows, |a, _| (3..5).contains(&a))
    );
    assert_eq!(
        tb.index_range(0, Excluded(&[int(3), int(1)]), Included(&[int(5), int(2)])),
        expect(&rows, |a, b| (a, b) > (3, 1) && (a, b) <= (5, 2))
    );
    assert_eq!(
        tb.index_range(0, Included(&[int(3), int(2)]), Excluded(&[int(4)])),
        expect(&rows, |a, b| a == 3 && b >= 2)
    );
    assert_eq!(
        tb.index_range(0, Unbounded, Unbounded),
        expect(&rows, |_, _| true)
    );
    // Inverted and empty ranges are empty, not a panic.
    assert!(tb
        .index_range(0, Included(&[int(6)]), Excluded(&[int(6)]))
        .is_empty());
    assert!(tb
        .index_range(0, Excluded(&[int(7)]), Included(&[int(5)]))
        .is_empty());
    assert!(tb
        .index_range(0, Excluded(&[int(6)]), Excluded(&[int(6)]))
        .is_empty());
    // Mixed numeric representations compare by value.
    assert_eq!(
        tb.index_range(0, Included(&[Value::Double(4.5)]), Unbounded),
        expect(&rows, |a, _| a >= 5)
    );
    // Equality on a prefix and on the full key, ties by RowId.
    assert_eq!(tb.index_lookup(0, &[int(3)]), expect(&rows, |a, _| a == 3));
    let both = tb.index_lookup(0, &[int(3), int(1)]);
    assert_eq!(both, expect(&rows, |a, b| a == 3 && b == 1));
    assert_eq!(both.len(), 2);
    assert!(both[0] < both[1]);
    assert!(tb.index_lookup(0, &[int(11)]).is_empty());
}

#[test]
fn hash_index_non_unique_lookup_and_fallbacks() {
    let mut db = Database::new();
    let schema = TableSchema {
        name: "h".into(),
        columns: vec![
            col("a", DataType::Integer, false),
            col("b", DataType::Integer, false),
        ],
        primary_key: None,
        indexes: vec![idx("h_ab", &[1, 0], false, IndexKind::Hash)],
        partition_column: None,
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    let t = db.create_table(schema).unwrap();
    db.begin().unwrap();
    let ids: Vec<RowId> = (0..6)
        .map(|i| db.insert(t, row(&[int(i % 2), int(i % 3)])).unwrap())
        .collect();
    let tb = db.table(t).unwrap();
    // Key order is (b, a).
    assert_eq!(tb.index_lookup(0, &[int(0), int(0)]), vec![ids[0]]);
    assert_eq!(tb.index_lookup(0, &[int(1), int(1)]), vec![ids[1]]);
    assert_eq!(tb.index_lookup(0, &[int(0)]), vec![ids[0], ids[3]]);
    assert_eq!(
        tb.index_range(0, Included(&[int(2)]), Unbounded),
        vec![ids[2], ids[5]]
    );
    db.insert(t, row(&[int(1), int(2)])).unwrap();
    db.insert(t, row(&[int(1), int(2)])).unwrap();
    db.delete(t, ids[5]).unwrap();
    let tb = db.table(t).unwrap();
    assert_eq!(
        tb.index_lookup(0, &[int(2), int(1)]),
        vec![RowId(6), RowId(7)]
    );
    assert_eq!(tb.index_entry_count(0), 7);
}

#[test]
fn deleted_slots_are_reused_last_freed_first() {
    let (mut db, t) = multi_db();
    db.begin().unwrap();
    let ids: Vec<RowId> = (0..4)
        .map(|i| {
            db.insert(t, row(&[int(i), Value::Null, Value::Null]))
                .unwrap()
        })
        .collect();
    db.delete(t, ids[1]).unwrap();
    db.delete(t, ids[2]).unwrap();
    assert_eq!(
        db.insert(t, row(&[int(10), Value::Null, Value::Null]))
            .unwrap(),
        ids[2]
    );
    assert_eq!(
        db.insert(t, row(&[int(11), Value::Null, Value::Null]))
            .unwrap(),
        ids[1]
    );
    assert_eq!(
        db.insert(t, row(&[int(12), Value::Null, Value::Null]))
            .unwrap(),
        RowId(4)
    );
    assert_eq!(db.table(t).unwrap().len(), 5);
}

#[test]
fn rollback_and_rollback_to_restore_exactly_and_truncate_the_write_set() {
    let (mut db, t) = multi_db();
    db.begin().unwrap();
    for i in 0..6 {
        db.insert(t, row(&[int(i), text(&format!("k{i}")), int(i % 2)]))
            .unwrap();
    }
    db.delete(t, RowId(4)).unwrap();
    db.commit().unwrap();
    let start = snapshot(&db, t);
    let lookups = |db: &Database| {
        let tb = db.table(t).unwrap();
        let mut v: Vec<Vec<RowId>> = (0..8).map(|i| tb.index_lookup(0, &[int(i)])).collect();
        v.push(tb.index_lookup(2, &[int(1)]));
        v.push(tb.index_range(1, Included(&[text("k1")]), Excluded(&[text("k9")])));
        v
    };
    let start_lookups = lookups(&db);

    db.begin().unwrap();
    db.insert(t, row(&[int(7), text("k7"), int(1)])).unwrap(); // reuses slot 4
    db.update(t, RowId(0), row(&[int(0), text("new"), int(5)]))
        .unwrap();
    db.delete(t, RowId(2)).unwrap();
    let sp = db.savepoint();
    let mid = snapshot(&db, t);
    let mid_lookups = lookups(&db);
    db.delete(t, RowId(0)).unwrap();
    db.insert(t, row(&[int(2), text("k2"), int(0)])).unwrap(); // reuses slot 0
    db.insert(t, row(&[int(9), text("k9"), int(1)])).unwrap(); // reuses slot 2
    db.insert(t, row(&[int(8), text("k8"), int(1)])).unwrap(); // fresh slot 6
    db.update(t, RowId(6), row(&[int(8), text("k8"), int(0)]))
        .unwrap();
    db.delete(t, RowId(6)).unwrap();
    db.update(t, RowId(1), row(&[int(1), Value::Null, Value::Null]))
        .unwrap();
    assert_ne!(snapshot(&db, t), mid);
    db.rollback_to(sp);
    assert_eq!(snapshot(&db, t), mid);
    assert_eq!(lookups(&db), mid_lookups);
    assert_eq!(db.savepoint(), sp);
    db.rollback().unwrap();
    assert!(!db.in_txn());
    assert_eq!(snapshot(&db, t), start);
    assert_eq!(lookups(&db), start_lookups);
    // The next insert lands where it would have before the transaction.
    db.begin().unwrap();
    assert_eq!(
        db.insert(t, row(&[int(20), Value::Null, Value::Null]))
            .unwrap(),
        RowId(4)
    );
    let ws = db.commit().unwrap();
    assert_eq!(ws.ops.len(), 1);
}

#[test]
fn write_set_lists_every_change_in_order_with_its_rows() {
    let (mut db, t) = multi_db();
    let other = TableSchema {
        name: "other".into(),
        columns: vec![col("x", DataType::Integer, true)],
        primary_key: None,
        indexes: vec![],
        partition_column: None,
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    let g = db.create_table(other).unwrap();
    db.begin().unwrap();
    let a = row(&[int(1), text("a"), int(1)]);
    let b = row(&[int(2), text("b"), int(2)]);
    let a2 = row(&[int(1), text("a2"), int(1)]);
    let r0 = db.insert(t, a.clone()).unwrap();
    let r1 = db.insert(t, b.clone()).unwrap();
    db.insert(g, row(&[int(7)])).unwrap();
    let sp = db.savepoint();
    db.update(t, r0, a2.clone()).unwrap();
    assert_eq!(db.delete(t, r1).unwrap(), b);
    // Failed changes are not in the write-set.
    assert!(db.insert(t, a2.clone()).is_err());
    let sp2 = db.savepoint();
    db.insert(g, row(&[int(8)])).unwrap();
    db.rollback_to(sp2);
    db.update(t, r0, a.clone()).unwrap();
    db.rollback_to(Savepoint(sp.0 + 2));
    let ws = db.commit().unwrap();
    assert_eq!(
        ws.ops,
        vec![
            WriteOp::Insert {
                table: t,
                row: a.clone()
            },
            WriteOp::Insert {
                table: t,
                row: b.clone()
            },
            WriteOp::Insert {
                table: g,
                row: row(&[int(7)])
            },
            WriteOp::Update {
                table: t,
                old: a,
                new: a2
            },
            WriteOp::Delete { table: t, row: b },
        ]
    );
    assert_eq!(db.savepoint(), Savepoint(0));
    db.begin().unwrap();
    assert_eq!(db.commit().unwrap(), WriteSet::default());
}

/// `t(id BIGINT PRIMARY KEY, s VARCHAR)`.
fn text_db() -> (Database, TableId) {
    let mut db = Database::new();
    let t = db
        .create_table(TableSchema {
            name: "t".into(),
            columns: vec![
                col("id", DataType::BigInt, false),
                col("s", DataType::Varchar(None), true),
            ],
            primary_key: Some(0),
            indexes: vec![primary_key_index("t_pkey", vec![0])],
            partition_column: None,
            foreign_keys: Vec::new(),
            checks: Vec::new(),
        })
        .unwrap();
    (db, t)
}

#[test]
fn rows_that_grow_move_and_the_arena_compacts_what_they_left() {
    let (mut db, t) = text_db();
    db.begin().unwrap();
    let ids: Vec<RowId> = (0..50)
        .map(|i| db.insert(t, row(&[int(i), text("a")])).unwrap())
        .collect();
    let (_, first) = db.table(t).unwrap().arena_bytes();
    for round in 1..40usize {
        for (i, &id) in ids.iter().enumerate() {
            let s = format!("{i}:{}", "x".repeat(round));
            db.update(t, id, row(&[int(i as i64), text(&s)])).unwrap();
        }
        let tb = db.table(t).unwrap();
        tb.check_arena();
        let (bytes, used) = tb.arena_bytes();
        assert!(
            bytes - used <= super::table::ARENA_SLACK_BYTES.max(used),
            "round {round}: {bytes} bytes in the arena for {used} live"
        );
    }
    let tb = db.table(t).unwrap();
    for (i, &id) in ids.iter().enumerate() {
        let want = format!("{i}:{}", "x".repeat(39));
        assert_eq!(
            tb.get(id).as_deref(),
            Some(&[int(i as i64), text(&want)][..])
        );
    }
    assert!(tb.arena_bytes().1 > first * 5, "the rows grew");
    // Shrinking rows stay where they are: nothing moves, nothing is added.
    let before = tb.arena_bytes();
    for (i, &id) in ids.iter().enumerate() {
        db.update(t, id, row(&[int(i as i64), Value::Null]))
            .unwrap();
    }
    assert_eq!(db.table(t).unwrap().arena_bytes(), before);
    db.table(t).unwrap().check_arena();
    db.commit().unwrap();
}

#[test]
fn rows_placed_in_freed_slots_survive_the_compaction_they_cause() {
    let (mut db, t) = text_db();
    db.begin().unwrap();
    let ids: Vec<RowId> = (0..40)
        .map(|i| db.insert(t, row(&[int(i), text(&"a".repeat(20))])).unwrap())
        .collect();
    let (mut last, mut compacted) = (0, false);
    for round in 0..10i64 {
        // Free every other slot, then fill them again with longer rows:
        // each goes to the end, and the freed regions pile up until a
        // placement compacts them away.
        for &id in ids.iter().step_by(2) {
            db.delete(t, id).unwrap();
        }
        for (i, _) in ids.iter().enumerate().step_by(2) {
            let s = "b".repeat(30 + round as usize * 10);
            db.insert(t, row(&[int(i as i64), text(&s)])).unwrap();
        }
        let tb = db.table(t).unwrap();
        tb.check_arena();
        assert_eq!(tb.len(), 40);
        let (bytes, _) = tb.arena_bytes();
        compacted |= bytes < last;
        last = bytes;
        // Freed slots are reused last-freed first: the same slots, in
        // another order.
        let mut got: Vec<Row> = tb.scan().map(|(_, r)| r).collect();
        got.sort_by(|a, b| a[0].total_cmp(&b[0]));
        let want: Vec<Row> = (0..40)
            .map(|i| {
                let s = if i % 2 == 0 {
                    "b".repeat(30 + round as usize * 10)
                } else {
                    "a".repeat(20)
                };
                row(&[int(i), text(&s)])
            })
            .collect();
        assert_eq!(got, want, "round {round}");
        assert!(ids.iter().all(|&id| tb.contains(id)));
    }
    assert!(compacted, "the arena was compacted at least once");
    db.commit().unwrap();
}

#[test]
fn a_rolled_back_insert_gives_its_bytes_back_and_undo_restores_moved_rows() {
    let (mut db, t) = text_db();
    db.begin().unwrap();
    let a = db.insert(t, row(&[int(1), text("short")])).unwrap();
    db.commit().unwrap();
    let before = snapshot(&db, t);
    let bytes = db.table(t).unwrap().arena_bytes();
    db.begin().unwrap();
    db.insert(t, row(&[int(2), text(&"y".repeat(100))]))
        .unwrap();
    db.rollback().unwrap();
    assert_eq!(
        db.table(t).unwrap().arena_bytes(),
        bytes,
        "the fresh row's bytes went back"
    );
    // A row that moved (it grew) and was deleted comes back as it was.
    db.begin().unwrap();
    db.update(t, a, row(&[int(1), text(&"z".repeat(60))]))
        .unwrap();
    db.delete(t, a).unwrap();
    db.insert(t, row(&[int(3), text(&"w".repeat(70))])).unwrap();
    db.rollback().unwrap();
    assert_eq!(snapshot(&db, t), before);
    assert_eq!(
        db.table(t).unwrap().get(a).as_deref(),
        Some(&[int(1), text("short")][..])
    );
}

#[test]
fn the_load_benchmarks_row_is_stored_in_under_forty_bytes() {
    let mut db = Database::new();
    let t = db
        .create_table(TableSchema {
            name: "bench_load".into(),
            columns: vec![
                col("id", DataType::BigInt, false),
                col("name", DataType::Varchar(Some(40)), false),
                col(
                    "amount",
                    DataType::Decimal {
                        precision: 12,
                        scale: 2,
                    },
                    false,
                ),
                col("at", DataType::Timestamp, false),
            ],
            primary_key: None,
            indexes: Vec::new(),
            partition_column: None,
            foreign_keys: Vec::new(),
            checks: Vec::new(),
        })
        .unwrap();
    db.begin().unwrap();
    for i in 0..1000 {
        let r = row(&[
            int(i * 1000),
            text(&format!("golf {}", 10_000 + i)),
            Value::Decimal(Decimal::new(5_433_012 + i, 2)),
            Value::Timestamp(1_709_128_858_000_000 + i),
        ]);
        db.insert(t, r).unwrap();
    }
    db.commit().unwrap();
    let (bytes, used) = db.table(t).unwrap().arena_bytes();
    assert_eq!(bytes, used);
    assert!(used <= 40 * 1000, "{used} bytes for 1000 rows");
}
