//! Unit tests of the catalog (DDL rules, index creation and dropping) and
//! of the transaction state machine.

use super::tests::{col, idx, int, multi_db, row, text};
use super::*;
use crate::types::Value;

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
