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

/// A node with the demo tenant whose ad-hoc statements stop after `ms`.
fn start(name: &str, ms: &str) -> (TempDir, Server) {
    let tmp = TempDir::new(name);
    let args = ["--partitions", "2", "--demo", "--sql-timeout-ms", ms];
    let server = Server::start(tmp.path(), &args).unwrap();
    (tmp, server)
}

/// A new tenant `acme` on `server` with 2,000 numbers in `t`: a client
/// of it, and its token.
async fn acme(server: &Server) -> (Client, String) {
    let admin = server.client("admin.token").await;
    let acme = admin.create_tenant("acme").await.unwrap();
    let c = Client::connect(server.config(&acme.token)).await.unwrap();
    numbers(&c, 2000).await;
    (c, acme.token)
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
    let (_tmp, server) = start("deadline", "300");
    runtime().block_on(async {
        let (b, _) = acme(&server).await;
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
    let (_tmp, server) = start("cancel", "3600000");
    runtime().block_on(async {
        let (b, token) = acme(&server).await;
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
        let b = Client::connect(server.config(&token)).await.unwrap();
        assert_eq!(count(b.sql("SELECT COUNT(*) FROM t2").await.unwrap()), 0);
    });
}

/// A module with one procedure, `p<i>`, that returns nothing: written in
/// WAT against docs/ABI.md (procedure names are unique per tenant).
fn tiny_module(i: usize) -> Vec<u8> {
    use ohm_sdk::abi::{self, ModuleDesc, ProcedureDesc};
    let desc = ModuleDesc {
        statements: vec![],
        procedures: vec![ProcedureDesc {
            name: format!("p{i}"),
            params: vec![],
            returns: abi::ty::UNIT,
            partition: None,
        }],
    }
    .encode();
    let bytes = |b: &[u8]| b.iter().map(|b| format!("\\{b:02x}")).collect::<String>();
    let unit = [abi::result_kind::VALUE, abi::tag::NULL];
    let wat = format!(
        r#"(module
  (import "ohm" "result" (func $result (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "{desc}")
  (data (i32.const 512) "{unit}")
  (func (export "ohm_describe") (result i64) (i64.const {packed}))
  (func (export "ohm_call") (param i32 i32) (result i32)
    (call $result (i32.const 512) (i32.const 2)) (i32.const 0)))"#,
        desc = bytes(&desc),
        unit = bytes(&unit),
        packed = (1024u64 << 32) | desc.len() as u64,
    );
    wat::parse_str(&wat).expect("the tiny module assembles")
}

/// Deploys, retrying while the node answers `overloaded` (it compiles two
/// modules at a time), as a client should.
async fn deploy(c: &Client, name: &str, wasm: Vec<u8>) -> Result<(), ClientError> {
    for _ in 0..6000 {
        match c.deploy(name, wasm.clone()).await {
            Err(ClientError::Server(e)) if e.code == ErrorCode::Overloaded => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            other => return other.map(|_| ()),
        }
    }
    panic!("deploy {name}: overloaded for a minute");
}

/// The node's resident memory and memory mappings, from /proc.
fn footprint(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    (kib("VmRSS:") << 10, maps.lines().count())
}

/// "Done" for issue 11: a node with 100 tenants, each at its module quota,
/// starts, serves and restarts; prints RSS and mappings per idle module.
/// CI deploys 8 modules per tenant; OHM_TENANCY_MODULES=64 runs the whole
/// default quota.
#[test]
fn a_hundred_tenants_at_their_module_quota_start_serve_and_restart() {
    let per_tenant: usize = std::env::var("OHM_TENANCY_MODULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let tenants = 100;
    let tmp = TempDir::new("hundred");
    let quota = per_tenant.to_string();
    let args = ["--partitions", "2", "--quota-modules", &quota];
    let mut server = Server::start(tmp.path(), &args).unwrap();
    let mut tokens = Vec::new();
    let (before, after) =
        runtime().block_on(async {
            let admin = server.client("admin.token").await;
            let mut clients = Vec::new();
            for t in 0..tenants {
                let created = admin.create_tenant(&format!("t{t}")).await.unwrap();
                clients.push(
                    Client::connect(server.config(&created.token))
                        .await
                        .unwrap(),
                );
                tokens.push(created.token);
            }
            let before = footprint(server.child.id());
            let deploys = clients.iter().cloned().map(|c| {
            tokio::spawn(async move {
                for i in 0..per_tenant {
                    deploy(&c, &format!("m{i}"), tiny_module(i)).await.unwrap();
                }
                let over = deploy(&c, "over", tiny_module(per_tenant)).await.unwrap_err();
                assert!(
                    matches!(&over, ClientError::Server(e) if e.code == ErrorCode::QuotaExceeded),
                    "{over}"
                );
            })
        });
            for d in deploys.collect::<Vec<_>>() {
                d.await.unwrap();
            }
            let after = footprint(server.child.id());
            for c in &clients {
                c.call("p0", vec![]).await.unwrap();
            }
            (before, after)
        });
    let modules = (tenants * per_tenant) as u64;
    let rss = after.0.saturating_sub(before.0) / modules;
    let maps = after.1.saturating_sub(before.1) as f64 / modules as f64;
    eprintln!(
        "{tenants} tenants x {per_tenant} modules: RSS {} -> {} MiB ({rss} bytes per idle module), \
         mappings {} -> {} ({maps:.2} per idle module)",
        before.0 >> 20,
        after.0 >> 20,
        before.1,
        after.1
    );
    server.stop().unwrap();
    let started = std::time::Instant::now();
    let server = Server::start(tmp.path(), &args).unwrap();
    eprintln!(
        "restarted and ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    runtime().block_on(async {
        for token in &tokens {
            let c = Client::connect(server.config(token)).await.unwrap();
            let last = format!("p{}", per_tenant - 1);
            match c.call(&last, vec![]).await.unwrap() {
                CallResult::Value(Value::Null) => {}
                other => panic!("{other:?}"),
            }
        }
    });
}

/// `ohm tenant quota ARGS...` against `server` as its admin: what it printed.
fn quota_cli(server: &Server, args: &[&str]) -> String {
    let out = std::process::Command::new(common::ohm_binary())
        .args(["tenant", "quota", "--addr", &server.addr, "--data"])
        .arg(&server.data)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ohm tenant quota {args:?}: {text}{err}"
    );
    text
}

fn over_quota(e: &ClientError, name: &str) -> bool {
    matches!(e, ClientError::Server(r) if r.code == ErrorCode::QuotaExceeded && r.message.contains(name))
}

/// Issue 11, "quotas per tenant, set by the admin": an administrator
/// sets one tenant's connections, requests in flight, call rate and rows
/// (`ohm tenant quota`); going over any is a `quota_exceeded` answer
/// naming it, for that tenant alone, and the quotas survive a restart.
/// Before, every tenant had the node's flags and nothing bounded one
/// tenant's connections, requests or call rate.
#[test]
fn an_admin_sets_a_tenants_quotas_and_only_that_tenant_is_held_to_them() {
    let tmp = TempDir::new("set-quota");
    let args = ["--partitions", "2", "--demo"];
    let mut server = Server::start(tmp.path(), &args).unwrap();
    let acme_token = runtime().block_on(async {
        let (acme, token) = acme(&server).await;
        let admin = server.client("admin.token").await;
        // Only an admin sees or sets quotas; a bad one changes nothing.
        let e = acme.tenant_quota("acme", &[]).await.unwrap_err();
        assert!(matches!(&e, ClientError::Server(r) if r.code == ErrorCode::Forbidden), "{e}");
        let bad = [("rows_max".to_string(), Some(1)), ("nope".to_string(), Some(1))];
        let e = admin.tenant_quota("acme", &bad).await.unwrap_err();
        assert!(matches!(&e, ClientError::Server(r) if r.code == ErrorCode::BadArguments && r.message.contains("nope")), "{e}");
        let e = admin.tenant_quota("nobody", &[]).await.unwrap_err();
        assert!(matches!(&e, ClientError::Server(r) if r.code == ErrorCode::BadArguments), "{e}");
        let q = admin.tenant_quota("acme", &[]).await.unwrap();
        assert!(q.iter().all(|v| !v.set), "{q:?}");
        let demo = server.client("demo.token").await;
        let names = "Alice,Bob".to_string();
        demo.call("initialize", vec![Value::Int(2), Value::Text(names.into())])
            .await
            .unwrap();
        // Closed before this runtime stops: a connection that goes
        // without a close counts until the node's idle timeout ends it.
        acme.close().await;
        token
    });
    let shown = quota_cli(
        &server,
        &[
            "acme",
            "connections_max=2",
            "in_flight_max=2",
            "calls_per_sec=20",
            "rows_max=5000",
            // The slow statements below are never cut short by a busy machine.
            "sql_timeout_ms=120000",
        ],
    );
    assert!(
        shown.contains("rows_max") && shown.contains("5000"),
        "{shown}"
    );
    let check = |server: &Server| {
        runtime().block_on(async {
            let a = Client::connect(server.config(&acme_token)).await.unwrap();
            let b = Client::connect(server.config(&acme_token)).await.unwrap();
            match Client::connect(server.config(&acme_token)).await {
                Err(e) => assert!(over_quota(&e, "connections_max"), "{e}"),
                Ok(_) => panic!("a third connection of a tenant allowed two"),
            }
            // The demo tenant still connects and calls at will.
            let demo = server.client("demo.token").await;
            // Two statements run (or wait) at once; the rest of six sent
            // together are refused at once.
            let slow = "SELECT count(*) FROM t a, t b WHERE a.x + b.x < 0";
            let sent: Vec<_> = (0..6)
                .map(|_| {
                    let a = a.clone();
                    tokio::spawn(async move { a.sql(slow).await })
                })
                .collect();
            let mut refused = 0;
            for s in sent {
                match s.await.unwrap() {
                    Ok(r) => assert_eq!(count(r), 0),
                    Err(e) if over_quota(&e, "in_flight_max") => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(
                refused >= 1,
                "six statements at once, two in flight allowed"
            );
            // 20 calls a second (a second's worth at once): of 60 sent
            // back to back, those past the rate are refused; none of demo's are.
            let (mut taken, mut limited) = (0, 0);
            let started = std::time::Instant::now();
            for _ in 0..60 {
                match b.sql("SELECT 1").await {
                    Ok(_) => taken += 1,
                    Err(e) if over_quota(&e, "calls_per_sec") => limited += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            // At most the burst and what the time taken let through,
            // however slow the machine.
            let most = 20.0 + 20.0 * started.elapsed().as_secs_f64() + 1.0;
            assert!(f64::from(taken) <= most, "taken {taken}, refused {limited}");
            for i in 0..60i64 {
                let args = vec![
                    Value::Int(2_125_550_000 + i),
                    Value::Int(1),
                    Value::Int(100),
                ];
                demo.call("vote", args).await.unwrap();
            }
            // Rows: 2,000 held, 5,000 allowed (on one partition).
            tokio::time::sleep(Duration::from_millis(1100)).await;
            let more: Vec<String> = (2000..12_000).map(|i| format!("({i})")).collect();
            let e = b
                .sql(&format!("INSERT INTO t VALUES {}", more.join(",")))
                .await
                .unwrap_err();
            assert!(over_quota(&e, "rows_max"), "{e}");
            assert_eq!(count(b.sql("SELECT count(*) FROM t").await.unwrap()), 2000);
            a.close().await;
            b.close().await;
        })
    };
    check(&server);
    server.stop().unwrap();
    let server = Server::start(tmp.path(), &args).unwrap();
    check(&server);
    // Back to the node's default.
    let shown = quota_cli(&server, &["acme", "connections_max=default"]);
    assert!(
        shown.contains("connections_max") && shown.contains("1000"),
        "{shown}"
    );
    runtime().block_on(async {
        let clients = connect_n(&server, &acme_token, 3).await;
        assert_eq!(clients.len(), 3);
    });
}

/// `n` clients of the tenant whose token is `token`.
async fn connect_n(server: &Server, token: &str, n: usize) -> Vec<Client> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Client::connect(server.config(token)).await.unwrap());
    }
    out
}
