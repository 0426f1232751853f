//! The PostgreSQL side of `ohm bench voter`: a throwaway cluster on
//! loopback (initdb into a temp dir, `pg_ctl start`, stopped and deleted on
//! drop), the voter schema with `vote`/`initialize`/`results` as PL/pgSQL
//! functions of the same logic as the Wasm procedures, and the connections
//! the load generator drives. Must not touch any cluster it did not start
//! (with `--pg-dsn` it only creates the voter tables in that database).

use super::load::VoteFn;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Connections the PostgreSQL server accepts (the bench uses far fewer).
const PG_MAX_CONNECTIONS: usize = 100;

/// A PostgreSQL server this process started; stopped and removed on drop.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
    pub port: u16,
    pub version: String,
    running: bool,
}

/// Where `initdb` and `pg_ctl` live: the newest /usr/lib/postgresql/*/bin,
/// else PATH. None when PostgreSQL's server is not installed.
pub fn find_bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    dirs.sort();
    if let Some((_, bin)) = dirs.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// A fresh, unique directory under the system temp dir.
pub fn fresh_temp_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

impl PgServer {
    /// initdb + start on 127.0.0.1 and a free port, `fsync=on`,
    /// `synchronous_commit=on`. As root, runs everything as user
    /// `postgres` (initdb refuses root).
    pub fn start(bin: &Path) -> anyhow::Result<PgServer> {
        PgServer::start_with(bin, "")
    }

    /// `start`, with more server options (`-c ssl=on -c ...`).
    pub fn start_with(bin: &Path, options: &str) -> anyhow::Result<PgServer> {
        let as_postgres = is_root();
        let dir = fresh_temp_dir("ohm-bench-pg")?;
        let mut server = PgServer {
            bin: bin.to_path_buf(),
            dir,
            as_postgres,
            port: free_port()?,
            version: String::new(),
            running: false,
        };
        if as_postgres {
            server.run(
                Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(&server.dir),
            )?;
        }
        let data = server.dir.join("data");
        let mut initdb = server.pg_command("initdb");
        server.run(
            initdb
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "-D",
                ])
                .arg(&data),
        )?;
        server.version = std::fs::read_to_string(data.join("PG_VERSION"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories={} \
             -c fsync=on -c synchronous_commit=on -c max_connections={PG_MAX_CONNECTIONS} \
             {options}",
            server.port,
            server.dir.display()
        );
        let mut start = server.pg_command("pg_ctl");
        start
            .args(["-w", "-t", "60", "-l"])
            .arg(server.dir.join("server.log"));
        start.arg("-D").arg(&data).args(["-o", &opts, "start"]);
        server.running = true; // stop on drop even if start half-failed
        server.run(&mut start)?;
        Ok(server)
    }

    /// The DSN of the server's `postgres` database.
    pub fn dsn(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    fn pg_command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn run(&self, cmd: &mut Command) -> anyhow::Result<()> {
        let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            bail!(
                "{cmd:?} failed ({}):\n{}{}\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let mut stop = self.pg_command("pg_ctl");
            stop.arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "fast", "-w", "stop"]);
            if let Err(e) = self.run(&mut stop) {
                eprintln!("warning: stopping PostgreSQL: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The voter schema and PL/pgSQL functions. `vote` takes a transaction
/// advisory lock on the phone number so concurrent votes of one phone
/// count one after another, as on Ohm's single partition.
pub fn schema_sql() -> String {
    let codes: Vec<String> = ohm_voter::AREA_CODES
        .iter()
        .map(|(code, state)| format!("({code},'{state}')"))
        .collect();
    format!(
        "DROP VIEW IF EXISTS votes_by_contestant_state;
DROP TABLE IF EXISTS votes, contestants, area_code_state;
CREATE TABLE contestants (contestant_number INTEGER PRIMARY KEY,
    contestant_name VARCHAR(50) NOT NULL);
CREATE TABLE area_code_state (area_code SMALLINT PRIMARY KEY, state VARCHAR(2) NOT NULL);
CREATE TABLE votes (phone_number BIGINT NOT NULL, state VARCHAR(2) NOT NULL,
    contestant_number INTEGER NOT NULL);
CREATE INDEX votes_by_phone ON votes (phone_number);
CREATE VIEW votes_by_contestant_state AS
    SELECT contestant_number, state, COUNT(*) AS num_votes
    FROM votes GROUP BY contestant_number, state;

CREATE OR REPLACE FUNCTION initialize(contestant_count INTEGER, names_csv TEXT)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE existing BIGINT; names TEXT[];
BEGIN
    SELECT COUNT(*) INTO existing FROM contestants;
    IF existing <> 0 THEN RETURN existing; END IF;
    names := string_to_array(names_csv, ',');
    IF contestant_count < 1 OR contestant_count > array_length(names, 1) THEN
        RAISE EXCEPTION 'contestant_count is %, but names_csv has % names',
            contestant_count, array_length(names, 1);
    END IF;
    INSERT INTO contestants (contestant_name, contestant_number)
        SELECT trim(names[i]), i FROM generate_series(1, contestant_count) AS i;
    INSERT INTO area_code_state (area_code, state) VALUES {codes};
    RETURN contestant_count;
END $$;

CREATE OR REPLACE FUNCTION vote(p_phone BIGINT, p_contestant INTEGER, p_max BIGINT)
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE n BIGINT; st VARCHAR(2);
BEGIN
    PERFORM 1 FROM contestants WHERE contestant_number = p_contestant;
    IF NOT FOUND THEN RETURN {invalid}; END IF;
    PERFORM pg_advisory_xact_lock(p_phone);
    SELECT COUNT(*) INTO n FROM votes WHERE phone_number = p_phone;
    IF n >= p_max THEN RETURN {over}; END IF;
    SELECT state INTO st FROM area_code_state WHERE area_code = p_phone / {factor};
    IF NOT FOUND THEN st := '{unknown}'; END IF;
    INSERT INTO votes (phone_number, state, contestant_number)
        VALUES (p_phone, st, p_contestant);
    RETURN {accepted};
END $$;

CREATE OR REPLACE FUNCTION results()
RETURNS TABLE (contestant_name VARCHAR, contestant_number INTEGER, total_votes BIGINT)
LANGUAGE sql AS $$
    SELECT c.contestant_name, c.contestant_number,
        COALESCE(SUM(v.num_votes), 0)::BIGINT AS total_votes
    FROM contestants c
    LEFT JOIN votes_by_contestant_state v ON v.contestant_number = c.contestant_number
    GROUP BY c.contestant_name, c.contestant_number
    ORDER BY total_votes DESC, c.contestant_number ASC
$$;",
        codes = codes.join(","),
        invalid = ohm_voter::VOTE_INVALID_CONTESTANT,
        over = ohm_voter::VOTE_OVER_LIMIT,
        accepted = ohm_voter::VOTE_ACCEPTED,
        factor = ohm_voter::PHONE_AREA_FACTOR,
        unknown = ohm_voter::UNKNOWN_STATE,
    )
}

/// Connects once; the connection's task is spawned on the current runtime.
pub async fn connect(dsn: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {dsn}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("PostgreSQL connection: {e}");
        }
    });
    Ok(client)
}

/// Creates the schema and functions, then `initialize`s; returns the
/// contestant count.
pub async fn setup(dsn: &str, contestants: i32, names: &str) -> anyhow::Result<i64> {
    let client = connect(dsn).await?;
    client
        .batch_execute(&schema_sql())
        .await
        .context("creating the voter schema in PostgreSQL")?;
    let row = client
        .query_one("SELECT initialize($1, $2)", &[&contestants, &names])
        .await
        .context("initialize() on PostgreSQL")?;
    Ok(row.get(0))
}

/// `connections` connections, each a `VoteFn` pipelining its calls of the
/// prepared `SELECT vote($1,$2,$3)`; `synchronous_commit` set per session.
pub async fn vote_fns(
    dsn: &str,
    connections: usize,
    synchronous_commit: bool,
    max_votes: i64,
) -> anyhow::Result<Vec<VoteFn>> {
    let mut fns = Vec::with_capacity(connections);
    for _ in 0..connections {
        let client = connect(dsn).await?;
        let setting = if synchronous_commit { "on" } else { "off" };
        client
            .batch_execute(&format!("SET synchronous_commit = {setting}"))
            .await?;
        let stmt = client.prepare("SELECT vote($1, $2, $3)").await?;
        let client = Arc::new(client);
        let f: VoteFn = Arc::new(move |phone, contestant| {
            let (client, stmt) = (client.clone(), stmt.clone());
            Box::pin(async move {
                let row = client
                    .query_one(&stmt, &[&phone, &contestant, &max_votes])
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(row.get::<_, i64>(0))
            })
        });
        fns.push(f);
    }
    Ok(fns)
}

/// What the invariants are checked against, read from the database.
pub async fn read_tallies(dsn: &str, max_votes: i64) -> anyhow::Result<super::voter::Tallies> {
    let client = connect(dsn).await?;
    let results = client
        .query("SELECT contestant_number, total_votes FROM results()", &[])
        .await?
        .iter()
        .map(|r| (r.get::<_, i32>(0) as i64, r.get::<_, i64>(1)))
        .collect();
    let over = client
        .query(
            "SELECT phone_number FROM votes GROUP BY phone_number HAVING COUNT(*) > $1",
            &[&max_votes],
        )
        .await?
        .len() as u64;
    let group_by = client
        .query(
            "SELECT contestant_number, COUNT(*) FROM votes GROUP BY contestant_number",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get::<_, i32>(0) as i64, r.get::<_, i64>(1)))
        .collect();
    Ok(super::voter::Tallies {
        results,
        phones_over_limit: over,
        group_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_carries_every_area_code_and_the_same_codes() {
        let sql = schema_sql();
        assert!(sql.contains("(201,'NJ')"));
        assert_eq!(sql.matches("'),(").count() + 1, ohm_voter::AREA_CODES.len());
        assert!(sql.contains("p_phone / 10000000"));
        assert!(sql.contains("RETURN 2; END IF"));
    }
}
