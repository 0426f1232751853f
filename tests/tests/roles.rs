//! End-to-end, issue 11 "Roles": principals with roles inside a tenant,
//! their tokens created, listed and revoked (`ohm tenant token ...`). A
//! real `ohm serve` process, the real client over QUIC.

mod common;

use common::{runtime, Server, TempDir};
use ohm::driver::{Client, ClientError};
use ohm::proto::ErrorCode;
use ohm::types::Value;

fn code(e: &ClientError) -> Option<ErrorCode> {
    match e {
        ClientError::Server(r) => Some(r.code),
        _ => None,
    }
}

fn forbidden(e: &ClientError, says: &str) -> bool {
    matches!(e, ClientError::Server(r) if r.code == ErrorCode::Forbidden && r.message.contains(says))
}

fn vote() -> Vec<Value> {
    vec![Value::Int(2_125_550_001), Value::Int(1), Value::Int(2)]
}

/// `ohm tenant token ARGS...` against `server` with the admin token: its
/// exit status and what it printed.
fn token_cli(server: &Server, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(common::ohm_binary())
        .args(["tenant", "token"])
        .args(&args[..1])
        .args(["--addr", &server.addr, "--data"])
        .arg(&server.data)
        .args(&args[1..])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Before, every token of a tenant could do everything in it (deploy,
/// drop, any SQL, call anything), and no token could be added or revoked.
/// Now a tenant's owner (or an admin) creates principals whose role bounds
/// what their token may do; a revoked token is refused at once, on
/// connections already open too; all of it survives a restart.
#[test]
fn each_role_may_do_what_it_is_for_and_a_revoked_token_is_refused_at_once_and_after_a_restart() {
    let tmp = TempDir::new("roles");
    let args = ["--partitions", "2", "--demo"];
    let mut server = Server::start(tmp.path(), &args).unwrap();
    let (reader, caller, deployer) = runtime().block_on(async {
        let owner = server.client("demo.token").await;
        assert_eq!(owner.session().role, "owner");
        owner
            .call("initialize", vec![Value::Int(2), Value::text("Alice,Bob")])
            .await
            .unwrap();
        let made = |name: &'static str, role: &'static str, grants: &'static [&'static str]| {
            let owner = owner.clone();
            async move {
                let grants: Vec<String> = grants.iter().map(|g| g.to_string()).collect();
                owner.create_token(None, name, role, &grants).await
            }
        };
        let caller = made("app", "caller", &["vote"]).await.unwrap();
        assert_eq!(caller.principal.grants, vec!["vote".to_string()]);
        let reader = made("analyst", "reader", &[]).await.unwrap();
        let deployer = made("ci", "deployer", &[]).await.unwrap();
        // What cannot be made is refused, and says why.
        let e = made("app", "reader", &[]).await.unwrap_err();
        assert!(
            e.to_string().contains("already has a principal named"),
            "{e}"
        );
        let e = made("root", "admin", &[]).await.unwrap_err();
        assert_eq!(code(&e), Some(ErrorCode::BadArguments), "{e}");
        let e = made("x", "caller", &[]).await.unwrap_err();
        assert!(e.to_string().contains("needs the procedures"), "{e}");
        let e = made("x", "superuser", &[]).await.unwrap_err();
        assert!(e.to_string().contains("no role named"), "{e}");
        let e = owner.tokens(Some("system")).await.unwrap_err();
        assert!(forbidden(&e, "own tenant"), "{e}");

        // A caller calls what it was granted, and nothing else.
        let c = Client::connect(server.config(&caller.token)).await.unwrap();
        assert_eq!(c.session().role, "caller");
        c.call("vote", vote()).await.unwrap();
        let e = c
            .call("initialize", vec![Value::Int(1), Value::text("A")])
            .await
            .unwrap_err();
        assert!(forbidden(&e, "calling initialize needs a grant"), "{e}");
        let e = c.sql("SELECT 1").await.unwrap_err();
        assert!(forbidden(&e, "ad-hoc SQL"), "{e}");
        let e = c.drop_module("voter").await.unwrap_err();
        assert!(forbidden(&e, "deploying and dropping"), "{e}");
        let e = c.tokens(None).await.unwrap_err();
        assert!(forbidden(&e, "managing tokens"), "{e}");
        c.catalog().await.unwrap();

        // A reader queries, and writes nothing, not even in a batch.
        let r = Client::connect(server.config(&reader.token)).await.unwrap();
        let before = r.sql("SELECT count(*) FROM votes").await.unwrap();
        let e = r.sql("SELECT 1; DELETE FROM votes").await.unwrap_err();
        assert!(forbidden(&e, "statement 2 of 2 is not a query"), "{e}");
        let e = r.call("vote", vote()).await.unwrap_err();
        assert!(forbidden(&e, "calling vote"), "{e}");
        assert_eq!(r.sql("SELECT count(*) FROM votes").await.unwrap(), before);

        // A deployer changes the schema and modules, not the tokens.
        let d = Client::connect(server.config(&deployer.token))
            .await
            .unwrap();
        d.sql("CREATE TABLE notes (id BIGINT PRIMARY KEY)")
            .await
            .unwrap();
        assert!(!d.drop_module("nothing_here").await.unwrap());
        let e = d.create_token(None, "y", "reader", &[]).await.unwrap_err();
        assert!(forbidden(&e, "managing tokens"), "{e}");

        // Revoked: the open connection's next request is refused.
        owner.revoke_token(None, "app").await.unwrap();
        let e = c.call("vote", vote()).await.unwrap_err();
        assert_eq!(code(&e), Some(ErrorCode::AuthFailed), "{e}");
        assert!(e.to_string().contains("revoked"), "{e}");
        match Client::connect(server.config(&caller.token)).await {
            Err(ClientError::Auth { .. }) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a revoked token was accepted"),
        }
        let e = owner.revoke_token(None, "app").await.unwrap_err();
        assert!(e.to_string().contains("no principal named"), "{e}");
        for x in [c, r, d, owner] {
            x.close().await;
        }
        (reader.token, caller.token, deployer.token)
    });
    // The admin manages any tenant's tokens; the last admin stays.
    let (ok, text) = token_cli(&server, &["list", "demo"]);
    assert!(ok, "{text}");
    for line in ["demo ", "analyst ", "ci "] {
        assert!(text.contains(line), "{text}");
    }
    assert!(!text.contains("app "), "{text}");
    let (ok, text) = token_cli(
        &server,
        &[
            "create", "demo", "board", "--role", "caller", "--grant", "results",
        ],
    );
    assert!(
        ok && text.contains("may call results") && text.contains("token"),
        "{text}"
    );
    let (ok, text) = token_cli(&server, &["revoke", "system", "admin"]);
    assert!(!ok && text.contains("last admin"), "{text}");

    server.stop().unwrap();
    let server = Server::start(tmp.path(), &args).unwrap();
    runtime().block_on(async {
        let r = Client::connect(server.config(&reader)).await.unwrap();
        assert_eq!(r.session().role, "reader");
        r.sql("SELECT count(*) FROM votes").await.unwrap();
        let d = Client::connect(server.config(&deployer)).await.unwrap();
        assert_eq!(d.session().role, "deployer");
        assert!(matches!(
            Client::connect(server.config(&caller)).await,
            Err(ClientError::Auth { .. })
        ));
        let owner = server.client("demo.token").await;
        let names: Vec<String> = owner
            .tokens(None)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["analyst", "board", "ci", "demo"]);
        for x in [r, d, owner] {
            x.close().await;
        }
    });
}
