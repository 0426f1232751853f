//! PostgreSQL's plain dumps through `ohm sql -f`, end to end: the real
//! binary against a real `ohm serve`, on Chinook as `pg_dump` wrote it
//! (../shared/testdata/migration/chinook, not edited), with its
//! `expected_invariants.txt` checked after loading and after a restart.

mod common;

use common::{check_invariants, chinook, ohm_binary, one_value, runtime, Server, TempDir};
use std::process::{Command, Output};

/// `ohm sql ARGS...` against `server` as the demo tenant.
fn ohm_sql(server: &Server, args: &[&str]) -> Output {
    Command::new(ohm_binary())
        .arg("sql")
        .args(["--addr", &server.addr, "--fingerprint", &server.fingerprint])
        .args(["--token", &server.token("demo.token")])
        .args(args)
        .output()
        .expect("running ohm sql")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Issue 13: the schema dump loads as written (its keys and foreign keys
/// added by ALTER TABLE after the tables); the data loads from both the
/// COPY and the INSERT dumps with the foreign keys in force; the
/// invariants hold, and still do after a restart, with the keys still
/// enforced.
#[test]
fn chinook_plain_dumps_load_and_hold_their_invariants() {
    let Some(dir) = chinook() else { return };
    let f = |name: &str| dir.join(name).to_string_lossy().into_owned();
    for data in ["chinook_data_copy.sql", "chinook_data_inserts.sql"] {
        let tmp = TempDir::new("pgdump");
        let server = Server::start(tmp.path(), &["--partitions", "2", "--demo"]).unwrap();
        let out = ohm_sql(&server, &["-f", &f("chinook_schema.sql")]);
        let err = text(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(!err.contains("ERROR"), "{err}");
        assert!(err.contains("skipped 11 SET"), "{err}");
        let out = ohm_sql(&server, &["-f", &f(data)]);
        assert!(out.status.success(), "{data}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        if data.contains("copy") {
            assert!(
                stdout.contains("COPY public.playlist_track 8715"),
                "{stdout}"
            );
        }
        runtime().block_on(async {
            let c = server.client("demo.token").await;
            check_invariants(&c, &dir).await;
            let dup = c.sql("INSERT INTO album VALUES (1, 'again', 1)").await;
            assert!(dup.unwrap_err().to_string().contains("album_pkey"));
        });
        drop(server);
        let server = Server::start(tmp.path(), &["--partitions", "2", "--demo"]).unwrap();
        runtime().block_on(async {
            let c = server.client("demo.token").await;
            check_invariants(&c, &dir).await;
            let orphan = c
                .sql("INSERT INTO album VALUES (9999, 'orphan', 9999)")
                .await;
            let e = orphan.unwrap_err().to_string();
            assert!(e.contains("album_artist_id_fkey"), "{e}");
            let parent = c.sql("DELETE FROM artist WHERE artist_id = 1").await;
            let e = parent.unwrap_err().to_string();
            assert!(e.contains("still referenced"), "{e}");
        });
    }
}

/// A bad row in a COPY is named by its line; without `--continue` the
/// script stops there (rows before it are loaded), with it the rest load,
/// and a function whose `$$` body holds `;` fails once, on its line.
#[test]
fn a_bad_copy_row_is_named_by_its_line() {
    let tmp = TempDir::new("pgdump-bad");
    let server = Server::start(tmp.path(), &["--partitions", "2", "--demo"]).unwrap();
    let script = tmp.path().join("bad.sql");
    let rows: String = (1..=20)
        .map(|i| {
            if i == 7 {
                "7\t2021-02-30\n".to_string()
            } else {
                format!("{i}\t2021-01-{i:02}\n")
            }
        })
        .collect();
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE public.d (id integer PRIMARY KEY, day date);\n\
             COPY public.d (id, day) FROM stdin;\n{rows}\\.\nCREATE FUNCTION f() RETURNS integer AS $$ SELECT 1; $$ LANGUAGE sql;\n"
        ),
    )
    .unwrap();
    let path = script.to_string_lossy().into_owned();
    let out = ohm_sql(&server, &["-f", &path]);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.sql:9: COPY public.d"), "{err}");
    assert!(err.contains("2021-02-30"), "{err}");
    runtime().block_on(async {
        let c = server.client("demo.token").await;
        assert_eq!(one_value(&c, "SELECT count(*) FROM d").await, "6");
        c.sql("DROP TABLE d").await.unwrap();
    });
    let out = ohm_sql(&server, &["--continue", "-f", &path]);
    assert!(!out.status.success());
    // The function's body, `;` and all, is one statement refused once.
    let err = text(&out.stderr);
    let refused: Vec<&str> = err.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(refused.len(), 2, "{err}");
    assert!(refused[1].starts_with(&format!("{path}:24: ")), "{err}");
    runtime().block_on(async {
        let c = server.client("demo.token").await;
        assert_eq!(one_value(&c, "SELECT count(*) FROM d").await, "19");
    });
}
