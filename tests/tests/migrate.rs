//! `ohm migrate` end to end: a real PostgreSQL started by the test (as
//! `ohm bench voter` starts one), the real `ohm` binary, a real `ohm
//! serve`. Chinook (../shared/testdata/migration, restored from its
//! pg_dump custom file) migrates with zero differences and its
//! `expected_invariants.txt` holding; a change in Ohm is found by
//! `--verify` and named by its key. A schema of the types and
//! objects (tests/tests/data/migrate_extras.sql) migrates with every value
//! equal, and its migration, cut by kill -9 of `ohm migrate` and then of
//! the node, resumes to exactly the source's rows. The link to the source
//! is TLS, its certificate checked, unless the URL says sslmode=disable.

mod common;

use common::{
    acknowledged_chunks, check_invariants, chinook, ohm_binary, one_value, runtime, Server, TempDir,
};
use ohm::bench::postgres::{find_bin_dir, PgServer};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a migration may take to get some chunks of a table loaded.
const PROGRESS_WAIT: Duration = Duration::from_secs(120);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A PostgreSQL server, or None (skipped) outside CI when none is
/// installed.
fn postgres() -> Option<PgServer> {
    let Some(bin) = find_bin_dir() else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true needs PostgreSQL's server (.ci/run installs it)"
        );
        eprintln!("skipping: PostgreSQL's server is not installed");
        return None;
    };
    Some(PgServer::start(&bin).expect("starting PostgreSQL"))
}

/// `psql` as the server's superuser, over TCP, stopping at the first
/// error; `db` None: the default database.
fn psql(pg: &PgServer, db: Option<&str>, args: &[&str]) {
    let mut c = pg_tool(pg, "psql");
    if let Some(db) = db {
        c.args(["-d", db]);
    }
    let out = c
        .args(["-v", "ON_ERROR_STOP=1", "-q"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// PostgreSQL's client tool `name`, connecting to `pg` as its superuser
/// over TCP.
fn pg_tool(pg: &PgServer, name: &str) -> Command {
    let mut c = Command::new(find_bin_dir().unwrap().join(name));
    let port = pg.port.to_string();
    c.args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres"]);
    c
}

/// A database `db` on `pg`, and its URL.
fn database(pg: &PgServer, db: &str) -> String {
    psql(pg, None, &["-c", &format!("CREATE DATABASE {db}")]);
    // The test's server has no TLS: the URL says so, as a user's must.
    format!(
        "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
        pg.port
    )
}

fn psql_file(pg: &PgServer, db: &str, file: &Path) {
    psql(pg, Some(db), &["-f", file.to_str().unwrap()]);
}

fn psql_command(pg: &PgServer, db: &str, sql: &str) {
    psql(pg, Some(db), &["-c", sql]);
}

fn migrate(server: &Server, url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(ohm_binary());
    c.arg("migrate")
        .arg(url)
        .args(args)
        .args(["--addr", &server.addr, "--fingerprint", &server.fingerprint])
        .args(["--token", &server.token("demo.token")]);
    c
}

fn run(server: &Server, url: &str, args: &[&str]) -> Output {
    migrate(server, url, args)
        .output()
        .expect("running ohm migrate")
}

#[test]
fn chinook_migrates_with_zero_differences() {
    let Some(dir) = chinook() else { return };
    let Some(pg) = postgres() else { return };
    let url = database(&pg, "chinook");
    // Trust authentication ignores it; it must be written nowhere.
    let url = format!("{url}&password=s3cret-word");
    let out = pg_tool(&pg, "pg_restore")
        .args(["-d", "chinook", "--no-owner"])
        .arg(dir.join("chinook.pgdump"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tmp = TempDir::new("migrate-chinook");
    let server = Server::start(&tmp.path().join("data"), &["--partitions", "2", "--demo"]).unwrap();
    let plan = tmp.path().join("plan.sql");
    let work = tmp.path().join("work");
    let (plan_s, work_s) = (plan.to_str().unwrap(), work.to_str().unwrap());

    // The plan alone changes nothing in the tenant.
    let out = run(&server, &url, &["--plan", plan_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("nothing applied"),
        "{}",
        text(&out.stdout)
    );
    let planned = std::fs::read_to_string(&plan).unwrap();
    assert!(!planned.contains("s3cret"), "{planned}");
    for want in [
        "CREATE TABLE invoice_line (",
        "PARTITION TABLE invoice_line ON COLUMN invoice_line_id;",
        "CONSTRAINT playlist_track_pkey PRIMARY KEY (playlist_id, track_id)",
        // The self reference waits for the data.
        "ALTER TABLE employee ADD CONSTRAINT employee_reports_to_fkey",
        "track: replicated: invoice_line (2240 rows) references it",
    ] {
        assert!(planned.contains(want), "{want}\n{planned}");
    }

    let out = run(
        &server,
        &url,
        &["--plan", plan_s, "--apply", "--work-dir", work_s],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("migrated and verified: 11 tables, 15607 rows"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("  equal").count(), 11, "{stdout}");
    assert!(!work.exists(), "the work directory is removed once done");
    runtime().block_on(async {
        let c = server.client("demo.token").await;
        check_invariants(&c, &dir).await;
        // Keys are in force, the deferred one too.
        let e = c
            .sql("INSERT INTO album VALUES (9999, 'orphan', 9999)")
            .await;
        assert!(e.unwrap_err().to_string().contains("album_artist_id_fkey"));
        let e = c
            .sql("UPDATE employee SET reports_to = 99 WHERE employee_id = 2")
            .await;
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("employee_reports_to_fkey"));
        assert_eq!(
            one_value(
                &c,
                "SELECT count(*) FROM invoice_line WHERE invoice_id = 98"
            )
            .await,
            "2"
        );
        c.sql(
            "UPDATE track SET unit_price = 1.00 WHERE track_id = 7; \
             DELETE FROM playlist_track WHERE playlist_id = 1 AND track_id = 3402",
        )
        .await
        .unwrap();
    });
    // A difference is an error naming the first differing keys.
    let out = run(&server, &url, &["--verify"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("differs: (track_id)=(7)"), "{stderr}");
    assert!(
        stderr.contains("missing in Ohm: (playlist_id, track_id)=(1, 3402)"),
        "{stderr}"
    );
    assert_eq!(stdout.matches("DIFFERENT").count(), 2, "{stdout}");
    // Without sslmode, TLS is required: this server has none.
    let plain = url.replace("sslmode=disable&", "");
    let out = run(&server, &plain, &["--plan", plan_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("over TLS"),
        "{}",
        text(&out.stderr)
    );
    // A second migration into the same tenant is refused, naming a table.
    let out = run(&server, &url, &["--apply", "--work-dir", work_s]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already has artist, album"),
        "{}",
        text(&out.stderr)
    );
}

/// The chunks the loader acknowledged for `table`, from its state file in
/// the work directory (`<n>-<table>.ohm-load`).
fn acknowledged(work: &Path, table: &str) -> u64 {
    let suffix = format!("-{table}.ohm-load");
    let state = std::fs::read_dir(work).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&suffix))
    });
    state.map_or(0, |s| acknowledged_chunks(&s))
}

fn wait_for_chunks(child: &mut Child, work: &Path, table: &str, chunks: u64) {
    let start = Instant::now();
    while acknowledged(work, table) < chunks {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the migration ended ({status}) before the kill");
        }
        assert!(start.elapsed() < PROGRESS_WAIT, "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn count(server: &Server, table: &str) -> u64 {
    runtime().block_on(async {
        let c = server.client("demo.token").await;
        one_value(&c, &format!("SELECT count(*) FROM {table}"))
            .await
            .parse()
            .unwrap()
    })
}

#[test]
fn every_type_migrates_equal_and_a_killed_migration_resumes() {
    let Some(pg) = postgres() else { return };
    let url = database(&pg, "extras");
    let url = format!("{url}&password=hunter2-word");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/migrate_extras.sql");
    psql_file(&pg, "extras", &schema);
    let tmp = TempDir::new("migrate-extras");
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, &["--partitions", "2", "--demo"]).unwrap();
    let plan = tmp.path().join("plan.sql");
    let work = tmp.path().join("work");
    let args = [
        "--plan",
        plan.to_str().unwrap(),
        "--apply",
        "--work-dir",
        work.to_str().unwrap(),
        "--chunk-rows",
        "2000",
        "--parallel",
        "1",
    ];

    // kill -9 of ohm migrate while `events` loads.
    let mut child = migrate(&server, &url, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_chunks(&mut child, &work, "events", 3);
    child.kill().unwrap();
    child.wait().unwrap();
    let part = count(&server, "events");
    assert!(part > 0 && part < 300_000, "{part}");
    let state = std::fs::read_to_string(work.join("migrate.state")).unwrap();
    assert!(!state.contains("hunter2"), "{state}");
    // The source moves while the migration is cut: the resume keeps the
    // copies of the first run (all of one moment) and its placements
    // (tiny, grown past --replicate-below, stays replicated).
    psql_command(
        &pg,
        "extras",
        "INSERT INTO tiny SELECT generate_series(6, 2005); \
         INSERT INTO events (kind_id, payload) SELECT 1, 'late' FROM generate_series(1, 10)",
    );
    // Started again without --resume: refused, and says how.
    let out = run(&server, &url, &args);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--resume"),
        "{}",
        text(&out.stderr)
    );

    // Resumed, then kill -9 of the node while `events` loads.
    let mut resume_args = args.to_vec();
    resume_args.push("--resume");
    let mut child = migrate(&server, &url, &resume_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let from = acknowledged(&work, "events");
    wait_for_chunks(&mut child, &work, "events", from + 3);
    server.kill9();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("--resume"),
        "{}",
        text(&out.stderr)
    );

    // The source as it was, the node back, the migration resumed to its
    // end: every table equal (had a resume copied the moved source, events
    // would hold the late rows).
    psql_command(
        &pg,
        "extras",
        "DELETE FROM tiny WHERE id > 5; DELETE FROM events WHERE payload = 'late'",
    );
    let server = Server::start(&data, &["--partitions", "2", "--demo"]).unwrap();
    let out = run(&server, &url, &resume_args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("(resumed)"), "{stdout}");
    assert!(
        stdout.contains("migrated and verified: 6 tables, 300015 rows"),
        "{stdout}"
    );
    let planned = std::fs::read_to_string(&plan).unwrap();
    assert!(!planned.contains("hunter2"), "{planned}");
    let tiny = planned
        .lines()
        .find(|l| l.starts_with("--   tiny "))
        .unwrap();
    assert!(
        tiny.contains("replicated: as placed when this migration began"),
        "{tiny}"
    );
    for want in [
        "NOT CARRIED function touch()",
        "NOT CARRIED trigger kinds_touch ON kinds",
        "NOT CARRIED index events_lower_idx",
        "changed     column kinds.tags: text[] becomes TEXT",
        "changed     column kinds.doc: jsonb becomes TEXT",
        "changed     column kinds.feeling: enum mood becomes TEXT with a CHECK",
        "changed     foreign key events.events_kind_id_fkey: ON DELETE CASCADE is not carried",
        "CHECK ((price >= (0)::numeric))",
        "rank INTEGER",
        "CREATE VIEW happy AS",
    ] {
        assert!(planned.contains(want), "{want}\n{planned}");
    }
    runtime().block_on(async {
        let c = server.client("demo.token").await;
        // The enum's labels and the domain's check hold in Ohm.
        let e = c
            .sql("INSERT INTO kinds (code, feeling) VALUES ('e0eebc99-9c0b-4ef8-bb6d-6bb9bd380a15', 'glad')")
            .await;
        assert!(e.unwrap_err().to_string().contains("kinds_feeling_enum"));
        let e = c
            .sql("INSERT INTO kinds (code, rank) VALUES ('e0eebc99-9c0b-4ef8-bb6d-6bb9bd380a15', 0)")
            .await;
        assert!(e.unwrap_err().to_string().contains("kinds_rank_domain"));
        // Sequences go on from the source's last value.
        c.sql("INSERT INTO kinds (code) VALUES ('e0eebc99-9c0b-4ef8-bb6d-6bb9bd380a15')")
            .await
            .unwrap();
        assert_eq!(
            one_value(&c, "SELECT id FROM kinds WHERE code = 'e0eebc99-9c0b-4ef8-bb6d-6bb9bd380a15'").await,
            "5"
        );
        c.sql("INSERT INTO events (kind_id, payload) VALUES (1, 'new')")
            .await
            .unwrap();
        let id: i64 = one_value(&c, "SELECT event_id FROM events WHERE payload = 'new'")
            .await
            .parse()
            .unwrap();
        assert!(id > 300_000, "{id}");
        assert_eq!(one_value(&c, "SELECT note FROM happy").await, "tab\there\nnewline \\ back");
    });
}

/// `openssl` with `args`, in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        text(&out.stderr)
    );
}

/// A CA, and a certificate it signed for 127.0.0.1, for the source.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    // TCP only over TLS: a connection that fell back to plain text fails.
    std::fs::write(
        dir.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    // PostgreSQL reads its key only when no one else may.
    let mut perms = std::fs::metadata(dir.join("server.key"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(dir.join("server.key"), perms).unwrap();
    let root = Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&root.stdout).trim() == "0" {
        let out = Command::new("chown")
            .arg("-R")
            .arg("postgres:postgres")
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

/// A source with TLS: migrated over it with the CA given; refused with no
/// CA that signed the server's certificate.
#[test]
fn the_link_to_the_source_is_tls_with_its_certificate_checked() {
    let Some(bin) = find_bin_dir() else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true needs PostgreSQL"
        );
        eprintln!("skipping: PostgreSQL's server is not installed");
        return;
    };
    let tmp = TempDir::new("migrate-tls");
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    certificates(&certs);
    let pg = PgServer::start_with(
        &bin,
        &format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c hba_file={}",
            certs.join("server.pem").display(),
            certs.join("server.key").display(),
            certs.join("pg_hba.conf").display()
        ),
    )
    .unwrap();
    let url = database(&pg, "tls");
    let schema = tmp.path().join("tls.sql");
    std::fs::write(
        &schema,
        "CREATE TABLE secret (id integer PRIMARY KEY, what text);\n\
         INSERT INTO secret VALUES (1, 'a'), (2, 'b'), (3, 'c');\n",
    )
    .unwrap();
    psql_file(&pg, "tls", &schema);
    let server = Server::start(&tmp.path().join("data"), &["--demo"]).unwrap();
    let base = url.replace("?sslmode=disable", "");
    // This server refuses plain text.
    let out = run(
        &server,
        &url,
        &["--plan", tmp.path().join("p0.sql").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no encryption"),
        "{}",
        text(&out.stderr)
    );
    // No root that signed it: refused, before anything is read.
    let out = run(
        &server,
        &base,
        &["--plan", tmp.path().join("p.sql").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("over TLS") && stderr.contains("certificate"),
        "{stderr}"
    );
    let with_ca = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        certs.join("ca.pem").display()
    );
    let work = tmp.path().join("work");
    let out = run(
        &server,
        &with_ca,
        &["--apply", "--work-dir", work.to_str().unwrap()],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("migrated and verified: 1 tables, 3 rows"),
        "{stdout}"
    );
}
