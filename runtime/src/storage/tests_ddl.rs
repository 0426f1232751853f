//! Unit tests of the catalog (DDL rules, index creation and dropping) and
//! of the transaction state machine.

use super::tests::{col, idx, int, multi_db, row, text};
use super::*;
use crate::types::{DataType, Value};

#[test]
fn transaction_state_rules() {
    let (mut db, t) = multi_db();
    let r = row(&[int(1), Value::Null, Value::Null]);
    assert_eq!(db.insert(t, r.clone()), Err(StorageError::NoTxn));
    assert_eq!(db.update(t, RowId(0), r.clone()), Err(StorageError::NoTxn));
    assert_eq!(db.delete(t, RowId(0)), Err(StorageError::NoTxn));
    assert_eq!(db.commit(), Err(StorageError::NoTxn));
    assert_eq!(db.rollback(), Err(StorageError::NoTxn));
    db.begin().unwrap();
    assert_eq!(db.begin(), Err(StorageError::TxnOpen));
    db.insert(t, r).unwrap();
    let other = TableSchema {
        name: "x".into(),
        columns: vec![],
        primary_key: None,
        indexes: vec![],
        partition_column: None,
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    assert_eq!(db.create_table(other), Err(StorageError::TxnOpen));
    assert_eq!(db.drop_table(t), Err(StorageError::TxnOpen));
    assert_eq!(
        db.create_index(t, idx("i", &[1], false, IndexKind::Hash)),
        Err(StorageError::TxnOpen)
    );
    assert_eq!(db.drop_index(t, "p_c"), Err(StorageError::TxnOpen));
    assert_eq!(db.set_partition_column(t, 0), Err(StorageError::TxnOpen));
    assert!(matches!(
        db.insert(TableId(42), row(&[])),
        Err(StorageError::NoSuchTable(_))
    ));
    db.commit().unwrap();
    db.set_partition_column(t, 0).unwrap();
    assert_eq!(db.table(t).unwrap().schema().partition_column, Some(0));
    assert!(matches!(
        db.set_partition_column(t, 3),
        Err(StorageError::InvalidSchema(_))
    ));
}

#[test]
fn catalog_rules_for_tables_and_index_names() {
    let (mut db, t) = multi_db();
    let v0 = db.schema_version();
    assert_eq!(db.table_id("p"), Some(t));
    assert_eq!(db.table_by_name("P").map(Table::id), Some(t));
    let mut s = db.table(t).unwrap().schema().clone();
    assert_eq!(
        db.create_table(s.clone()),
        Err(StorageError::TableExists("P".into()))
    );
    s.name = "q".into();
    // Index names are global.
    assert_eq!(
        db.create_table(s.clone()),
        Err(StorageError::IndexExists("p_pkey".into()))
    );
    s.indexes = vec![
        idx("q_a", &[0], true, IndexKind::Hash),
        idx("Q_A", &[1], true, IndexKind::Hash),
    ];
    assert_eq!(
        db.create_table(s.clone()),
        Err(StorageError::IndexExists("Q_A".into()))
    );
    s.indexes = vec![idx("q_a", &[3], true, IndexKind::Hash)];
    assert!(matches!(
        db.create_table(s.clone()),
        Err(StorageError::InvalidSchema(_))
    ));
    s.indexes = vec![idx("q_a", &[0], false, IndexKind::Hash)];
    assert!(matches!(
        db.create_table(s.clone()),
        Err(StorageError::InvalidSchema(_))
    ));
    s.columns.push(col("A", DataType::Integer, true));
    s.indexes.clear();
    s.primary_key = None;
    assert!(matches!(
        db.create_table(s.clone()),
        Err(StorageError::InvalidSchema(_))
    ));
    assert_eq!(db.schema_version(), v0);
    s.columns.pop();
    let q = db.create_table(s.clone()).unwrap();
    assert_eq!(
        db.create_index(q, idx("P_C", &[0], false, IndexKind::Hash)),
        Err(StorageError::IndexExists("P_C".into()))
    );
    assert!(matches!(
        db.create_index(q, idx("q_x", &[7], false, IndexKind::Hash)),
        Err(StorageError::InvalidSchema(_))
    ));
    // Ids are never reused.
    db.drop_table(q).unwrap();
    assert_eq!(db.table(q).map(Table::id), None);
    assert_eq!(db.table_id("q"), None);
    assert!(matches!(
        db.drop_table(q),
        Err(StorageError::NoSuchTable(_))
    ));
    let q2 = db.create_table(s).unwrap();
    assert!(q2 > q);
    assert_eq!(db.tables().map(Table::id).collect::<Vec<_>>(), vec![t, q2]);
    assert!(db.schema_version() > v0);
}

#[test]
fn create_index_on_duplicates_fails_and_leaves_nothing() {
    let (mut db, t) = multi_db();
    db.begin().unwrap();
    db.insert(t, row(&[int(1), text("x"), int(3)])).unwrap();
    db.insert(t, row(&[int(2), text("y"), int(3)])).unwrap();
    db.insert(t, row(&[int(3), text("z"), Value::Null]))
        .unwrap();
    db.insert(t, row(&[int(4), text("w"), Value::Null]))
        .unwrap();
    db.commit().unwrap();
    let before = db.table(t).unwrap().schema().clone();
    let e = db
        .create_index(t, idx("p_c_key", &[2], true, IndexKind::Ordered))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "duplicate key value violates unique constraint \"p_c_key\" on table \"P\": key (c)=(3) already exists"
    );
    assert_eq!(db.table(t).unwrap().schema(), &before);
    assert_eq!(db.table(t).unwrap().index_position("p_c_key"), None);
    // Duplicate NULLs are fine; the index then serves lookups.
    db.begin().unwrap();
    db.update(t, RowId(1), row(&[int(2), text("y"), int(4)]))
        .unwrap();
    db.commit().unwrap();
    db.create_index(t, idx("p_c_key", &[2], true, IndexKind::Hash))
        .unwrap();
    let tb = db.table(t).unwrap();
    let pos = tb.index_position("P_C_KEY").unwrap();
    assert_eq!(tb.index_lookup(pos, &[int(4)]), vec![RowId(1)]);
    db.begin().unwrap();
    assert!(matches!(
        db.insert(t, row(&[int(9), Value::Null, int(4)])),
        Err(StorageError::Unique { .. })
    ));
}

#[test]
fn drop_index_keeps_the_primary_key_position_right() {
    let mut db = Database::new();
    let schema = TableSchema {
        name: "d".into(),
        columns: vec![
            col("a", DataType::Integer, false),
            col("b", DataType::Integer, false),
        ],
        primary_key: Some(1),
        indexes: vec![
            idx("d_b", &[1], false, IndexKind::Ordered),
            idx("d_pkey", &[0], true, IndexKind::Hash),
        ],
        partition_column: None,
        foreign_keys: Vec::new(),
        checks: Vec::new(),
    };
    let t = db.create_table(schema).unwrap();
    db.begin().unwrap();
    db.insert(t, row(&[int(1), int(2)])).unwrap();
    db.commit().unwrap();
    assert_eq!(
        db.drop_index(t, "nope"),
        Err(StorageError::NoSuchIndex("nope".into()))
    );
    db.drop_index(t, "D_B").unwrap();
    let tb = db.table(t).unwrap();
    assert_eq!(tb.schema().primary_key, Some(0));
    assert_eq!(tb.index_get(0, &[int(1)]), Some(RowId(0)));
    db.drop_index(t, "d_pkey").unwrap();
    assert_eq!(db.table(t).unwrap().schema().primary_key, None);
    assert!(db.table(t).unwrap().schema().indexes.is_empty());
    // With the key gone, duplicates are accepted.
    db.begin().unwrap();
    db.insert(t, row(&[int(1), int(2)])).unwrap();
}

/// Every row of table `t`, in slot order.
fn all_rows(db: &Database, t: TableId) -> Vec<Vec<Value>> {
    db.table(t)
        .unwrap()
        .scan()
        .map(|(_, r)| r.to_vec())
        .collect()
}

#[test]
fn add_and_drop_column_reshape_rows_and_rebuild_indexes() {
    let (mut db, t) = multi_db();
    db.begin().unwrap();
    for i in 0..5 {
        db.insert(t, row(&[int(i), text(&format!("r{i}")), int(i * 10)]))
            .unwrap();
    }
    db.delete(t, RowId(1)).unwrap();
    db.commit().unwrap();
    // NULL cannot fill a NOT NULL column of a table with rows.
    let e = db
        .add_column(t, col("d", DataType::Integer, false), Value::Null, 10)
        .unwrap_err();
    assert!(e.to_string().contains("contains null values"), "{e}");
    assert!(db
        .add_column(t, col("B", DataType::Integer, true), int(1), 10)
        .unwrap_err()
        .to_string()
        .contains("already exists"));
    assert!(db
        .add_column(t, col("d", DataType::Integer, true), int(1), 3)
        .unwrap_err()
        .to_string()
        .contains("the most it may have"));
    let v0 = db.schema_version();
    db.add_column(t, col("d", DataType::Integer, false), int(7), 10)
        .unwrap();
    assert!(db.schema_version() > v0);
    db.table(t).unwrap().check_arena();
    assert_eq!(
        all_rows(&db, t)[0],
        vec![int(0), text("r0"), int(0), int(7)]
    );
    // The freed slot is reused with the new width; indexes answer.
    db.begin().unwrap();
    db.insert(t, row(&[int(9), text("r9"), int(90), int(8)]))
        .unwrap();
    db.commit().unwrap();
    let tb = db.table(t).unwrap();
    tb.check_arena();
    assert_eq!(tb.index_lookup(0, &[int(9)]), vec![RowId(1)]);
    assert_eq!(tb.index_lookup(2, &[int(30)]), vec![RowId(3)]);
    // Dropping b takes the unique index (b, c) with it; c's index shifts.
    db.drop_column(t, 1, Vec::new()).unwrap();
    let tb = db.table(t).unwrap();
    tb.check_arena();
    let names: Vec<&str> = tb
        .schema()
        .indexes
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(names, ["p_pkey", "p_c"]);
    assert_eq!(tb.schema().indexes[1].columns, vec![1]);
    assert_eq!(tb.schema().primary_key, Some(0));
    assert_eq!(tb.index_lookup(1, &[int(90)]), vec![RowId(1)]);
    assert_eq!(all_rows(&db, t)[1], vec![int(9), int(90), int(8)]);
    // Dropping the key's column drops the key.
    db.drop_column(t, 0, Vec::new()).unwrap();
    let tb = db.table(t).unwrap();
    assert_eq!(tb.schema().primary_key, None);
    assert_eq!(tb.schema().indexes.len(), 1);
    db.drop_column(t, 1, Vec::new()).unwrap();
    assert!(db
        .drop_column(t, 0, Vec::new())
        .unwrap_err()
        .to_string()
        .contains("last column"));
    db.begin().unwrap();
    assert_eq!(db.drop_column(t, 0, Vec::new()), Err(StorageError::TxnOpen));
    db.rollback().unwrap();
}

#[test]
fn dropping_a_column_shifts_the_foreign_keys_that_point_past_it() {
    let mut db = Database::new();
    let parent = db
        .create_table(TableSchema {
            name: "parent".into(),
            columns: vec![
                col("junk", DataType::Integer, true),
                col("id", DataType::Integer, false),
            ],
            primary_key: Some(0),
            indexes: vec![idx("parent_pkey", &[1], true, IndexKind::Hash)],
            partition_column: None,
            foreign_keys: Vec::new(),
            checks: Vec::new(),
        })
        .unwrap();
    let child = db
        .create_table(TableSchema {
            name: "child".into(),
            columns: vec![
                col("x", DataType::Integer, true),
                col("pid", DataType::Integer, true),
            ],
            primary_key: None,
            indexes: vec![],
            partition_column: None,
            foreign_keys: vec![ForeignKey {
                name: "child_pid_fkey".into(),
                columns: vec![1],
                parent: "parent".into(),
                parent_columns: vec![1],
            }],
            checks: Vec::new(),
        })
        .unwrap();
    let e = db.drop_column(parent, 1, Vec::new()).unwrap_err();
    assert!(e.to_string().contains("child_pid_fkey"), "{e}");
    db.drop_column(parent, 0, Vec::new()).unwrap();
    db.drop_column(child, 0, Vec::new()).unwrap();
    let fk = &db.table(child).unwrap().schema().foreign_keys[0];
    assert_eq!(
        (fk.columns.clone(), fk.parent_columns.clone()),
        (vec![0], vec![0])
    );
    // The child's own key column goes with its key.
    db.add_column(child, col("y", DataType::Integer, true), Value::Null, 10)
        .unwrap();
    db.drop_column(child, 0, Vec::new()).unwrap();
    assert!(db.table(child).unwrap().schema().foreign_keys.is_empty());
}

#[test]
fn a_snapshot_begun_before_a_reshape_reads_the_old_rows() {
    let (mut db, t) = multi_db();
    db.begin().unwrap();
    for i in 0..6 {
        db.insert(t, row(&[int(i), text("x"), int(i)])).unwrap();
    }
    db.commit().unwrap();
    let before = all_rows(&db, t);
    let token = SnapshotToken::new(std::sync::atomic::AtomicBool::new(true));
    db.begin_snapshot(&token);
    let mut got: Vec<Vec<Value>> = Vec::new();
    let mut take = |db: &mut Database, n: usize| {
        let mut took = 0;
        db.snapshot_table(t)
            .unwrap()
            .snapshot_rows(&token, |r| {
                got.push(r.to_vec());
                took += 1;
                took < n
            })
            .unwrap()
    };
    assert!(!take(&mut db, 2));
    db.add_column(t, col("d", DataType::Integer, true), int(1), 10)
        .unwrap();
    db.drop_column(t, 1, Vec::new()).unwrap();
    assert!(take(&mut db, 100));
    assert_eq!(got, before);
    assert_eq!(all_rows(&db, t)[5], vec![int(5), int(5), int(1)]);
}
