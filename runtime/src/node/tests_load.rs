//! `load` through the coordinator, in process: rows routed to their
//! partitions, bad rows reported and skipped up to `max_errors`, a chunk
//! over it refused whole, a keyed chunk applied once, and all of it after a
//! restart.

use super::coordinator::CoordTask;
use super::demo::ask;
use super::tests::{assert_placed, int, per_partition, rows, sql, start, tenant, TempDir};
use super::Node;
use crate::catalog::Principal;
use crate::proto::{ErrorCode, ErrorReply, LoadRequest, Loaded, Reply};
use crate::types::Value;

fn load(node: &Node, who: &Principal, l: LoadRequest) -> Result<Loaded, ErrorReply> {
    let tenant = who.tenant;
    match ask(node, |reply| CoordTask::Load {
        tenant,
        load: l,
        reply,
    })? {
        Reply::Loaded(l) => Ok(l),
        other => panic!("{other:?}"),
    }
}

fn chunk(table: &str, columns: &[&str], rows: Vec<Vec<Value>>) -> LoadRequest {
    LoadRequest {
        table: table.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
        key: None,
        max_errors: 0,
        timeout_ms: None,
    }
}

const SCHEMA: &str = "CREATE TABLE acct (id BIGINT PRIMARY KEY, name VARCHAR(5) NOT NULL, \
                      bal DECIMAL(10,2) CHECK (bal >= 0), at TIMESTAMP); \
                      PARTITION TABLE acct ON COLUMN id; \
                      CREATE TABLE rate (cur VARCHAR(3) PRIMARY KEY, r DOUBLE)";

fn good(i: i64) -> Vec<Value> {
    vec![
        Value::Int(i),
        Value::text(&format!("n{}", i % 100)),
        Value::text(&format!("{}.25", i)),
        Value::Int(1_700_000_000_000_000 + i),
    ]
}

fn count(node: &Node, who: &Principal, table: &str) -> i64 {
    int(&rows(node, who, &format!("SELECT COUNT(*) FROM {table}"))[0][0])
}

#[test]
fn a_chunk_goes_to_each_rows_partition_and_bad_rows_are_reported_by_row_and_column() {
    let tmp = TempDir::new("load-route");
    let mut tokens = Vec::new();
    let node = start(&tmp, 3);
    let who = tenant(&node, "t1", &mut tokens);
    sql(&node, &who, SCHEMA).unwrap();
    sql(
        &node,
        &who,
        "INSERT INTO acct VALUES (5000, 'old', 1, NULL)",
    )
    .unwrap();
    let mut rs: Vec<Vec<Value>> = (1..=100).map(good).collect();
    rs[9] = vec![Value::Int(10), Value::text("x")]; // row 10: too few values
    rs[19][2] = Value::text("lots"); // row 20: not a decimal
    rs[29][1] = Value::text("toolong"); // row 30: over VARCHAR(5)
    rs[39][2] = Value::text("-1"); // row 40: fails the CHECK
    rs[49][1] = Value::Null; // row 50: NOT NULL
    rs[59][0] = Value::Int(5000); // row 60: a key the table has
    rs[69][0] = Value::Int(1); // row 70: a key the chunk has (row 1)
    rs[79][3] = Value::text("2024-02-30 10:00:00"); // row 80: no such day
    let mut l = chunk("acct", &[], rs);
    l.max_errors = 8;
    let done = load(&node, &who, l).unwrap();
    assert_eq!(done.loaded, 92, "{done:?}");
    let got: Vec<(u64, Option<&str>)> = done
        .rejected
        .iter()
        .map(|r| (r.row, r.column.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (10, None),
            (20, Some("bal")),
            (30, Some("name")),
            (40, None),
            (50, Some("name")),
            (60, None),
            (70, None),
            (80, Some("at")),
        ],
        "{:#?}",
        done.rejected
    );
    assert!(
        done.rejected[0].message.contains("2 values"),
        "{:?}",
        done.rejected[0]
    );
    assert!(
        done.rejected[5].message.contains("duplicate key"),
        "{:?}",
        done.rejected[5]
    );
    assert_eq!(count(&node, &who, "acct"), 93);
    let per = per_partition(&node, &who, "acct");
    assert!(
        per.iter().all(|&n| n > 10),
        "spread over partitions: {per:?}"
    );
    assert_placed(&node, &who, "acct");
    // Values as the wire sends them, retyped by column: the int is a
    // TIMESTAMP, the text a DECIMAL.
    let r = rows(&node, &who, "SELECT bal, at FROM acct WHERE id = 2");
    assert_eq!(r[0][0].to_string(), "2.25");
    assert_eq!(r[0][1], Value::Timestamp(1_700_000_000_000_002));

    // A replicated table's rows reach every partition.
    let rates = vec![
        vec![Value::text("EUR"), Value::Double(1.1)],
        vec![Value::text("USD"), Value::Int(1)],
    ];
    let done = load(&node, &who, chunk("rate", &["cur", "r"], rates)).unwrap();
    assert_eq!((done.loaded, done.rejected.len()), (2, 0));
    assert_eq!(per_partition(&node, &who, "rate"), vec![2, 2, 2]);

    // Everything loaded was logged: a restart has it all.
    node.shutdown();
    drop(node);
    let node = start(&tmp, 3);
    let who = tenant(&node, "t1", &mut tokens);
    assert_eq!(count(&node, &who, "acct"), 93);
    assert_eq!(per_partition(&node, &who, "rate"), vec![2, 2, 2]);
    assert_placed(&node, &who, "acct");
    node.shutdown();
}

#[test]
fn a_chunk_with_more_bad_rows_than_max_errors_loads_nothing() {
    let tmp = TempDir::new("load-refuse");
    let mut tokens = Vec::new();
    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    sql(&node, &who, SCHEMA).unwrap();
    let mut rs: Vec<Vec<Value>> = (1..=50).map(good).collect();
    rs[4][2] = Value::text("x");
    rs[44][2] = Value::text("y");
    let mut l = chunk("acct", &[], rs.clone());
    l.max_errors = 1;
    let e = load(&node, &who, l).unwrap_err();
    assert_eq!(e.code, ErrorCode::Sql, "{e:?}");
    assert!(
        e.message.contains("row 5, column \"bal\"") && e.message.contains("row 45"),
        "{e:?}"
    );
    assert!(
        e.message.contains("nothing of this chunk was loaded"),
        "{e:?}"
    );
    assert_eq!(count(&node, &who, "acct"), 0, "nothing half-applied");
    // max_errors 0 is the default: one bad row refuses the chunk.
    let e = load(&node, &who, chunk("acct", &[], rs[..10].to_vec())).unwrap_err();
    assert!(e.message.contains("row 5"), "{e:?}");
    assert_eq!(count(&node, &who, "acct"), 0);
    // And the good rows go in once the bad ones are fixed.
    rs[4] = good(5);
    rs[44] = good(45);
    assert_eq!(
        load(&node, &who, chunk("acct", &[], rs)).unwrap().loaded,
        50
    );
    assert_eq!(count(&node, &who, "acct"), 50);
    node.shutdown();
}

/// Each partition's rows go in on a thread of their own: one partition
/// refusing its share (here, too many bad rows there alone) leaves
/// nothing on the others, whose shares had gone in by then; and bad rows
/// under the limit on each partition but over it in sum refuse the chunk.
#[test]
fn a_share_refused_on_one_partition_leaves_nothing_on_the_others() {
    let tmp = TempDir::new("load-share");
    let mut tokens = Vec::new();
    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    sql(&node, &who, SCHEMA).unwrap();
    let on = |p: u32| {
        (1..)
            .filter(move |&k| crate::catalog::partition_for(&Value::Int(k), 2).0 == p)
            .map(good)
    };
    // 500 rows on each partition; two bad ones on partition 1.
    let mut rs: Vec<Vec<Value>> = on(0).take(500).chain(on(1).take(500)).collect();
    rs[600][2] = Value::text("x");
    rs[700][2] = Value::text("y");
    let mut l = chunk("acct", &[], rs.clone());
    l.max_errors = 1;
    let e = load(&node, &who, l).unwrap_err();
    assert!(
        e.message.contains("row 601") && e.message.contains("row 701"),
        "{e:?}"
    );
    assert!(e.message.contains("max_errors (1)"), "{e:?}");
    assert_eq!(per_partition(&node, &who, "acct"), vec![0, 0]);
    // The same on partition 0 (its rows on a thread of their own).
    let mut l = chunk("acct", &[], rs.clone());
    l.rows[600] = good(1_000_001);
    l.rows[700] = good(1_000_002);
    l.rows[200][2] = Value::text("x");
    l.rows[300][2] = Value::text("y");
    l.max_errors = 1;
    let e = load(&node, &who, l).unwrap_err();
    assert!(
        e.message.contains("row 201") && e.message.contains("row 301"),
        "{e:?}"
    );
    assert_eq!(per_partition(&node, &who, "acct"), vec![0, 0]);
    // One bad row on each partition: each is within the limit of 1, the
    // chunk is not.
    rs[700] = rs[699].clone();
    rs[700][0] = Value::Int(900_001);
    rs[100][2] = Value::text("z");
    let mut l = chunk("acct", &[], rs.clone());
    l.max_errors = 1;
    let e = load(&node, &who, l).unwrap_err();
    assert!(
        e.message.contains("row 101") && e.message.contains("row 601"),
        "{e:?}"
    );
    assert_eq!(per_partition(&node, &who, "acct"), vec![0, 0]);
    // Within the limit in sum: both partitions keep their good rows.
    let mut l = chunk("acct", &[], rs);
    l.max_errors = 2;
    let done = load(&node, &who, l).unwrap();
    assert_eq!((done.loaded, done.rejected.len()), (998, 2));
    assert_eq!(count(&node, &who, "acct"), 998);
    assert_placed(&node, &who, "acct");
    node.shutdown();
}

#[test]
fn what_a_load_cannot_start_with_is_named() {
    let tmp = TempDir::new("load-names");
    let mut tokens = Vec::new();
    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    sql(&node, &who, SCHEMA).unwrap();
    let row = vec![vec![Value::Int(1)]];
    let cases = [
        ("nope", vec!["id"], "no table named \"nope\""),
        ("acct", vec!["id", "zzz"], "no column \"zzz\""),
        ("acct", vec!["id", "id"], "named twice"),
        ("acct", vec!["name"], "partitioned on \"id\""),
    ];
    for (table, cols, says) in cases {
        let e = load(&node, &who, chunk(table, &cols, row.clone())).unwrap_err();
        assert_eq!(e.code, ErrorCode::Sql, "{table} {cols:?}: {e:?}");
        assert!(e.message.contains(says), "{table} {cols:?}: {e:?}");
    }
    // Another tenant's table is not there for it.
    let other = tenant(&node, "t2", &mut tokens);
    let e = load(&node, &other, chunk("acct", &["id"], row)).unwrap_err();
    assert!(e.message.contains("no table named \"acct\""), "{e:?}");
    node.shutdown();
}

#[test]
fn a_keyed_chunk_sent_again_is_answered_as_the_first_time_even_after_a_restart() {
    let tmp = TempDir::new("load-key");
    let mut tokens = Vec::new();
    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    sql(&node, &who, SCHEMA).unwrap();
    let mut rs: Vec<Vec<Value>> = (1..=20).map(good).collect();
    rs[2][2] = Value::text("bad");
    let mut l = chunk("acct", &["id", "name", "bal", "at"], rs);
    l.key = Some("load-1:chunk-0".into());
    l.max_errors = 5;
    let first = load(&node, &who, l.clone()).unwrap();
    assert_eq!(
        (first.loaded, first.rejected.len(), first.again),
        (19, 1, false)
    );
    let again = load(&node, &who, l.clone()).unwrap();
    assert!(again.again, "{again:?}");
    assert_eq!(again.loaded, 19);
    assert_eq!(again.rejected, first.rejected);
    assert_eq!(count(&node, &who, "acct"), 19, "not applied twice");
    node.shutdown();
    drop(node);
    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    let after = load(&node, &who, l.clone()).unwrap();
    assert!(after.again && after.loaded == 19, "{after:?}");
    assert_eq!(
        count(&node, &who, "acct"),
        19,
        "the key survived the restart"
    );
    // Another key is another chunk: its duplicate keys are rejected rows.
    l.key = Some("load-1:chunk-1".into());
    l.max_errors = 100;
    let other = load(&node, &who, l).unwrap();
    assert_eq!((other.loaded, other.rejected.len()), (0, 20));
    node.shutdown();
}
