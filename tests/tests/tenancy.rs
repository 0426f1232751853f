//! End-to-end, issue 11: one tenant's worst cannot stop the node for the
//! others. Real `ohm serve` processes, the real client over QUIC.

mod common;

use common::{runtime, Server, TempDir};
use ohm::driver::{CallResult, Client, ClientError};
use ohm::proto::{ErrorCode, SqlResult};
use ohm::types::Value;
use std::time::Duration;

/// A table `t` of `rows` integers, in the client's tenant.
async fn numbers(c: &Client, rows: i64) {
    c.sql("CREATE TABLE t (x BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    c.sql("CREATE TABLE t2 (x BIGINT)").await.unwrap();
    let values: Vec<String> = (0..rows).map(|i| format!("({i})")).collect();
    c.sql(&format!("INSERT INTO t VALUES {}", values.join(",")))
        .await
        .unwrap();
}

/// A write that would visit 8e9 row combinations and insert nothing.
const ENDLESS_WRITE: &str =
    "INSERT INTO t2 SELECT a.x FROM t a, t b, t c WHERE a.x + b.x + c.x < 0";

fn count(r: Vec<SqlResult>) -> i64 {
    match r.into_iter().next_back() {
        Some(SqlResult::Rows(r)) => match r.rows[0][0] {
            Value::Int(n) => n,
            ref other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// Finding 6: a statement ran as long as it liked, holding every
/// partition for every tenant. It is now stopped at its time limit and
/// rolled back, and the other tenant's calls are all served.
#[test]
fn a_statement_past_its_time_limit_is_rolled_back_while_another_tenant_is_served() {
    let tmp = TempDir::new("deadline");
    let server = Server::start(
        tmp.path(),
        &["--partitions", "2", "--demo", "--sql-timeout-ms", "300"],
    )
    .unwrap();
    runtime().block_on(async {
        let admin = server.client("admin.token").await;
        let acme = admin.create_tenant("acme").await.unwrap();
        let b = Client::connect(server.config(&acme.token)).await.unwrap();
        numbers(&b, 2000).await;
        let a = server.client("demo.token").await;
        let names = "Alice,Bob".to_string();
        a.call("initialize", vec![Value::Int(2), Value::Text(names.into())])
            .await
            .unwrap();
        let voter = {
            let a = a.clone();
            tokio::spawn(async move {
                for i in 0..200i64 {
                    let args = vec![Value::Int(2_125_550_000 + i), Value::Int(1), Value::Int(5)];
                    match a.call("vote", args).await.unwrap() {
                        CallResult::Value(Value::Int(0)) => {}
                        other => panic!("vote {i}: {other:?}"),
                    }
                }
            })
        };
        let stopped = tokio::time::timeout(Duration::from_secs(120), b.sql(ENDLESS_WRITE))
            .await
            .expect("the statement was not stopped");
        match stopped {
            Err(ClientError::Server(e)) => {
                assert_eq!(e.code, ErrorCode::Timeout, "{}", e.message);
                assert!(e.message.contains("300 ms"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(count(b.sql("SELECT COUNT(*) FROM t2").await.unwrap()), 0);
        voter.await.unwrap();
        let total = count(a.sql("SELECT COUNT(*) FROM votes").await.unwrap());
        assert_eq!(total, 200);
    });
}

/// Finding 6: closing the client did not stop its query. A client that
/// goes away now cancels it, and the node is free for the next request
/// long before the statement's time limit.
#[test]
fn a_dropped_client_has_its_running_query_cancelled() {
    let tmp = TempDir::new("cancel");
    let server = Server::start(
        tmp.path(),
        &["--partitions", "2", "--demo", "--sql-timeout-ms", "3600000"],
    )
    .unwrap();
    runtime().block_on(async {
        let admin = server.client("admin.token").await;
        let acme = admin.create_tenant("acme").await.unwrap();
        let b = Client::connect(server.config(&acme.token)).await.unwrap();
        numbers(&b, 2000).await;
        let running = {
            let b = b.clone();
            tokio::spawn(async move { b.sql(ENDLESS_WRITE).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        running.abort();
        b.close().await;
        drop(b);
        // Ad-hoc SQL needs the coordinator, which the query held.
        let a = server.client("demo.token").await;
        let next = tokio::time::timeout(Duration::from_secs(120), a.sql("SELECT 1"))
            .await
            .expect("the dropped client's query is still running");
        next.unwrap();
        let b = Client::connect(server.config(&acme.token)).await.unwrap();
        assert_eq!(count(b.sql("SELECT COUNT(*) FROM t2").await.unwrap()), 0);
    });
}
