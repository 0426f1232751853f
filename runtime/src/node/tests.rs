//! The node in process (no network): routing, the coordinator path,
//! tenants, and recovery after a clean stop, a snapshot, and a
//! coordinator transaction that only some partitions logged.

use super::coordinator::CoordTask;
use super::demo::ask;
use super::writer::Durability;
use super::{Node, NodeConfig};
use crate::catalog::{partition_for, Principal};
use crate::durability::{
    self, DirFs, Entry, Log, LogOptions, LogRecord, LoggedOp, LoggedWrites, MultiBody, Storage,
};
use crate::proto::{ErrorCode, ErrorReply, Reply, SqlResult};
use crate::types::{TenantId, Value};
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("ohm-node-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub(super) fn dir(&self) -> cap_std::fs::Dir {
        cap_std::fs::Dir::open_ambient_dir(&self.0, cap_std::ambient_authority()).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn config(partitions: u32) -> NodeConfig {
    NodeConfig {
        partitions,
        durability: Durability::Sync,
        snapshot_log_bytes: 1 << 40,
        snapshot_step_bytes: crate::partition::SNAPSHOT_STEP_BYTES,
        segment_bytes_max: 1 << 20,
        quota: crate::catalog::Quota::default(),
        compile_time_max_ms: super::COMPILE_TIME_MAX_MS_DEFAULT,
    }
}

pub(super) fn start(tmp: &TempDir, partitions: u32) -> Arc<Node> {
    Node::start(tmp.dir(), config(partitions), false).unwrap()
}

/// A node that snapshots after every group commit it can (the writer takes
/// a snapshot whenever the partition is free): snapshots race the load.
fn start_snapshotting(tmp: &TempDir, partitions: u32) -> Arc<Node> {
    let cfg = NodeConfig {
        snapshot_log_bytes: 1,
        ..config(partitions)
    };
    Node::start(tmp.dir(), cfg, false).unwrap()
}

/// A tenant and its principal (created on first use, found afterwards).
pub(super) fn tenant(node: &Node, name: &str, tokens: &mut Vec<(String, String)>) -> Principal {
    if let Some((_, tok)) = tokens.iter().find(|(n, _)| n == name) {
        return node.catalog.read().unwrap().authenticate(tok).unwrap();
    }
    let name_s = name.to_string();
    let r = ask(node, |reply| CoordTask::CreateTenant {
        name: name_s,
        reply,
    })
    .unwrap();
    let Reply::TenantCreated { token, .. } = r else {
        panic!("{r:?}")
    };
    tokens.push((name.to_string(), token.clone()));
    node.catalog.read().unwrap().authenticate(&token).unwrap()
}

pub(super) fn sql(node: &Node, who: &Principal, text: &str) -> Result<Vec<SqlResult>, ErrorReply> {
    let (tenant, sql) = (who.tenant, text.to_string());
    match ask(node, |reply| CoordTask::Sql {
        tenant,
        sql,
        params: Vec::new(),
        timeout_ms: None,
        read_only: false,
        client: None,
        reply,
    })? {
        Reply::Sql(r) => Ok(r),
        other => panic!("{other:?}"),
    }
}

pub(super) fn rows(node: &Node, who: &Principal, text: &str) -> Vec<Vec<Value>> {
    match sql(node, who, text).unwrap().pop() {
        Some(SqlResult::Rows(r)) => r.rows,
        other => panic!("{text}: {other:?}"),
    }
}

pub(super) fn call(
    node: &Node,
    who: &Principal,
    proc: &str,
    args: Vec<Value>,
) -> Result<Reply, ErrorReply> {
    let (tx, rx) = sync_channel(1);
    node.call(
        who,
        proc.to_string(),
        args,
        (None, None),
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv().unwrap()
}

fn voter_wasm() -> Vec<u8> {
    let path = crate::wasm::testing::procedure_wasm("ohm_voter").unwrap_or_else(|e| panic!("{e}"));
    std::fs::read(path).expect("run `cargo procs` first: the voter module is missing")
}

/// Deploys `wasm` as module `name` through the coordinator.
pub(super) fn deploy(
    node: &Node,
    who: &Principal,
    name: &str,
    wasm: Vec<u8>,
) -> Result<Reply, ErrorReply> {
    let (tenant, name) = (who.tenant, name.to_string());
    ask(node, |reply| CoordTask::Deploy {
        tenant,
        name,
        wasm,
        compiled: None,
        reply,
    })
}

pub(super) fn deploy_voter(node: &Node, who: &Principal) {
    for stmt in ohm_voter::SCHEMA {
        sql(node, who, stmt).unwrap();
    }
    deploy(node, who, "voter", voter_wasm()).unwrap();
    let r = call(
        node,
        who,
        "initialize",
        vec![Value::Int(3), Value::text("A,B,C")],
    )
    .unwrap();
    assert_eq!(r, Reply::Value(Value::Int(3)));
}

pub(super) fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("not an int: {other:?}"),
    }
}

pub(super) fn totals(node: &Node, who: &Principal) -> Vec<(String, i64)> {
    let Reply::Rows(r) = call(node, who, "results", vec![]).unwrap() else {
        panic!()
    };
    r.rows
        .iter()
        .map(|row| match (&row[0], &row[2]) {
            (Value::Text(name), v) => (name.to_string(), int(v)),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Runs `f` on every partition's state, held (lent by its core) for it.
pub(super) fn inspect<R: Send + 'static>(
    node: &Node,
    f: impl FnOnce(&mut [Box<crate::partition::PartitionState>]) -> R + Send + 'static,
) -> R {
    let (tx, rx) = sync_channel(1);
    ask(node, |reply| CoordTask::Inspect {
        f: Box::new(move |states| {
            let _ = tx.send(f(states));
        }),
        reply,
    })
    .unwrap();
    rx.recv().unwrap()
}

/// Rows of `table` on each partition.
pub(super) fn per_partition(node: &Node, who: &Principal, table: &str) -> Vec<usize> {
    let (tenant, table) = (who.tenant, table.to_string());
    inspect(node, move |states| {
        states
            .iter()
            .map(|st| {
                let t = st
                    .tenant_ref(tenant)
                    .unwrap()
                    .engine
                    .database()
                    .table_by_name(&table);
                t.unwrap().len()
            })
            .collect()
    })
}

/// Checks every row of `table` sits on the partition its first column
/// (the partition column) hashes to.
pub(super) fn assert_placed(node: &Node, who: &Principal, table: &str) {
    let (tenant, table) = (who.tenant, table.to_string());
    inspect(node, move |states| {
        let n = states.len() as u32;
        for st in states.iter() {
            let db = st.tenant_ref(tenant).unwrap().engine.database();
            for (_, row) in db.table_by_name(&table).unwrap().scan() {
                assert_eq!(partition_for(&row[0], n), st.id, "{table} row {row:?}");
            }
        }
    })
}

#[test]
fn votes_route_to_partitions_and_survive_restart_and_snapshot() {
    let tmp = TempDir::new("voter");
    let mut tokens = Vec::new();
    let node = start_snapshotting(&tmp, 3);
    let who = tenant(&node, "t1", &mut tokens);
    deploy_voter(&node, &who);
    let mut accepted = 0;
    for i in 0..300i64 {
        let phone = 2_125_550_000 + i % 150; // each phone votes twice, then is refused
        let r = call(
            &node,
            &who,
            "vote",
            vec![Value::Int(phone), Value::Int(1 + i % 3), Value::Int(2)],
        );
        if r.unwrap() == Reply::Value(Value::Int(0)) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 300);
    // Every vote row sits on the partition its phone hashes to.
    assert_placed(&node, &who, "votes");
    for (p, n) in per_partition(&node, &who, "votes").iter().enumerate() {
        assert!(*n > 0, "partition {p} got no votes");
    }
    let before = totals(&node, &who);
    assert_eq!(before.iter().map(|t| t.1).sum::<i64>(), 300);
    let count = rows(&node, &who, "SELECT COUNT(*) FROM votes");
    assert_eq!(int(&count[0][0]), 300);
    node.shutdown();
    drop(node);

    let node = start(&tmp, 3);
    let who = tenant(&node, "t1", &mut tokens);
    assert_eq!(totals(&node, &who), before);
    let over = call(
        &node,
        &who,
        "vote",
        vec![Value::Int(2_125_550_000), Value::Int(1), Value::Int(2)],
    );
    assert_eq!(
        over.unwrap(),
        Reply::Value(Value::Int(2)),
        "the per-phone count survived"
    );
    for p in 0..3 {
        node.snapshot(crate::catalog::PartitionId(p));
    }
    call(
        &node,
        &who,
        "vote",
        vec![Value::Int(3_125_550_000), Value::Int(2), Value::Int(2)],
    )
    .unwrap();
    node.shutdown();
    drop(node);

    let node = start(&tmp, 3);
    let who = tenant(&node, "t1", &mut tokens);
    let after = totals(&node, &who);
    assert_eq!(after.iter().map(|t| t.1).sum::<i64>(), 301);
    node.shutdown();
}

#[test]
fn adhoc_sql_spans_partitions() {
    let tmp = TempDir::new("adhoc");
    let mut tokens = Vec::new();
    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    sql(
        &node,
        &who,
        "CREATE TABLE acct (id BIGINT PRIMARY KEY, owner VARCHAR(20), balance BIGINT NOT NULL); \
                      PARTITION TABLE acct ON COLUMN id; \
                      CREATE TABLE rate (cur VARCHAR(3) PRIMARY KEY, r DOUBLE)",
    )
    .unwrap();
    let values: Vec<String> = (1..=40)
        .map(|i| format!("({i}, 'o{}', {})", i % 4, i * 10))
        .collect();
    let r = sql(
        &node,
        &who,
        &format!("INSERT INTO acct VALUES {}", values.join(", ")),
    )
    .unwrap();
    assert_eq!(r, vec![SqlResult::Affected(40)]);
    sql(
        &node,
        &who,
        "INSERT INTO rate VALUES ('EUR', 1.1), ('USD', 1.0)",
    )
    .unwrap();
    let per = per_partition(&node, &who, "acct");
    assert_eq!(per.iter().sum::<usize>(), 40);
    assert!(per.iter().all(|&n| n > 5), "rows spread: {per:?}");
    let rates = per_partition(&node, &who, "rate");
    assert_eq!(rates, vec![2, 2], "replicated tables are everywhere");

    let top = rows(
        &node,
        &who,
        "SELECT id, balance FROM acct ORDER BY balance DESC LIMIT 3",
    );
    assert_eq!(
        top.iter().map(|r| int(&r[0])).collect::<Vec<_>>(),
        vec![40, 39, 38]
    );
    let sums = rows(
        &node,
        &who,
        "SELECT owner, SUM(balance) FROM acct GROUP BY owner ORDER BY owner",
    );
    assert_eq!(sums.len(), 4);
    // A duplicate key (on its owning partition) fails the whole statement.
    let dup = sql(
        &node,
        &who,
        "INSERT INTO acct VALUES (100, 'x', 1), (7, 'dup', 1)",
    )
    .unwrap_err();
    assert_eq!(dup.code, ErrorCode::Sql, "{dup:?}");
    assert!(
        rows(&node, &who, "SELECT * FROM acct WHERE id = 100").is_empty(),
        "nothing half-applied"
    );
    // Moving a row's partition value moves the row.
    sql(&node, &who, "UPDATE acct SET id = id + 1000 WHERE id <= 10").unwrap();
    let moved = rows(&node, &who, "SELECT COUNT(*) FROM acct WHERE id > 1000");
    assert_eq!(int(&moved[0][0]), 10);
    assert_placed(&node, &who, "acct");
    sql(&node, &who, "DELETE FROM acct WHERE balance < 200").unwrap();
    let left = rows(&node, &who, "SELECT COUNT(*), SUM(balance) FROM acct");
    let begin = sql(&node, &who, "BEGIN").unwrap_err();
    assert_eq!(begin.code, ErrorCode::NotSupported);
    node.shutdown();
    drop(node);

    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    assert_eq!(
        rows(&node, &who, "SELECT COUNT(*), SUM(balance) FROM acct"),
        left
    );
    // Another tenant sees none of it and cannot call t1's procedures.
    let other = tenant(&node, "t2", &mut tokens);
    let e = sql(&node, &other, "SELECT * FROM acct").unwrap_err();
    assert!(e.message.contains("acct"), "{e:?}");
    node.shutdown();
}

#[test]
fn one_node_per_data_directory() {
    let tmp = TempDir::new("lock");
    let node = start(&tmp, 1);
    let second = Node::start(tmp.dir(), config(1), false)
        .err()
        .expect("a second node must be refused");
    assert!(second.to_string().contains("another node"), "{second}");
    node.shutdown();
    drop(node);
    start(&tmp, 1).shutdown();
}

#[test]
fn tenants_cannot_reach_each_others_procedures() {
    let tmp = TempDir::new("tenants");
    let mut tokens = Vec::new();
    let node = start(&tmp, 2);
    let a = tenant(&node, "a", &mut tokens);
    let b = tenant(&node, "b", &mut tokens);
    deploy_voter(&node, &a);
    let e = call(
        &node,
        &b,
        "vote",
        vec![Value::Int(1), Value::Int(1), Value::Int(2)],
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownProcedure);
    let e = call(&node, &b, "results", vec![]).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnknownProcedure);
    // b may deploy its own voter: same names, separate data.
    deploy_voter(&node, &b);
    call(
        &node,
        &b,
        "vote",
        vec![Value::Int(2_125_550_001), Value::Int(1), Value::Int(2)],
    )
    .unwrap();
    assert_eq!(totals(&node, &a).iter().map(|t| t.1).sum::<i64>(), 0);
    assert_eq!(totals(&node, &b).iter().map(|t| t.1).sum::<i64>(), 1);
    node.shutdown();
}

#[test]
fn a_coordinator_transaction_only_some_partitions_logged_is_skipped() {
    let tmp = TempDir::new("torn-mp");
    let mut tokens = Vec::new();
    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    sql(
        &node,
        &who,
        "CREATE TABLE r (k INTEGER PRIMARY KEY, v TEXT)",
    )
    .unwrap();
    sql(&node, &who, "INSERT INTO r VALUES (1, 'kept')").unwrap();
    let last_txn = inspect(&node, |states| states[0].mp_txn_max);
    node.shutdown();
    drop(node);

    // As if the node died after partition 0 logged a replicated insert and
    // before partition 1 did: never acknowledged.
    {
        let sub = tmp.dir().open_dir("p0").unwrap();
        let opts = LogOptions {
            segment_bytes_max: 1 << 20,
            ..LogOptions::default()
        };
        let (mut log, _) = Log::open(DirFs::new(sub), opts).unwrap();
        let row: crate::storage::Row = vec![Value::Int(2), Value::text("lost")].into();
        let writes = LoggedWrites {
            ops: vec![LoggedOp::Insert {
                table: "r".into(),
                row,
            }],
        };
        let entry = Entry::Multi {
            txn: last_txn + 1,
            tenant: TenantId(who.tenant.0),
            body: MultiBody::Writes(writes),
        };
        let mut payload = Vec::new();
        durability::encode_entry(&entry, &mut payload).unwrap();
        let slot = log.last_slot().next();
        let ballot = log.vote().promised;
        let rec = LogRecord {
            slot,
            ballot,
            payload: payload.into(),
        };
        log.append(&rec).unwrap();
        log.sync().unwrap();
    }
    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    assert_eq!(int(&rows(&node, &who, "SELECT COUNT(*) FROM r")[0][0]), 1);
    // Later coordinator transactions get later ids and stay consistent.
    sql(&node, &who, "INSERT INTO r VALUES (3, 'new')").unwrap();
    node.shutdown();
    drop(node);
    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    let got = rows(&node, &who, "SELECT k FROM r ORDER BY k");
    assert_eq!(
        got.iter().map(|r| int(&r[0])).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(per_partition(&node, &who, "r"), vec![2, 2]);
    node.shutdown();
}

/// A clean stop with thousands of votes in flight: every call gets an
/// answer (a result, or `unavailable` from a partition that stopped taking
/// calls), none is dropped unanswered, and every vote acknowledged is there
/// after the restart.
#[test]
fn a_clean_stop_answers_every_call_in_flight() {
    const CALLS: i64 = 20_000;
    let tmp = TempDir::new("stop-in-flight");
    let mut tokens = Vec::new();
    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    deploy_voter(&node, &who);
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..CALLS {
        let tx = tx.clone();
        node.call(
            &who,
            "vote".to_string(),
            vec![Value::Int(4_000_000_000 + i), Value::Int(1), Value::Int(2)],
            (None, None),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
    }
    drop(tx);
    node.shutdown();
    let answers: Vec<_> = rx.iter().collect();
    assert_eq!(answers.len(), CALLS as usize, "every call is answered");
    let mut acked = 0;
    for a in &answers {
        match a {
            Ok(Reply::Value(Value::Int(0))) => acked += 1,
            Err(e) if e.code == ErrorCode::Unavailable => {}
            // Past the tenant's lane (`LANE_CALLS_MAX`) on a partition.
            Err(e) if e.code == ErrorCode::Overloaded => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    drop(node);
    let node = start(&tmp, 2);
    let who = tenant(&node, "t1", &mut tokens);
    let votes: i64 = totals(&node, &who).iter().map(|t| t.1).sum();
    assert!(
        votes >= acked,
        "{acked} votes acknowledged, {votes} after the restart"
    );
    node.shutdown();
}
