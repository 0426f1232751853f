//! The voter workload (`../shared/WORKLOADS.md`): a TV talent show takes
//! phone votes. Each phone may vote `max_votes` times; votes are partitioned
//! by phone number, contestants and area codes are replicated.
//!
//! Procedures: `initialize` (multi-partition; loads contestants and area
//! codes once), `vote` (single-partition on `votes.phone_number`), and
//! `results` (multi-partition; totals per contestant, highest first).

use ohm_sdk::prelude::*;

mod area_codes;
pub use area_codes::AREA_CODES;

/// `vote` accepted the vote.
pub const VOTE_ACCEPTED: i64 = 0;
/// `vote` refused: no such contestant.
pub const VOTE_INVALID_CONTESTANT: i64 = 1;
/// `vote` refused: this phone has already voted `max_votes` times.
pub const VOTE_OVER_LIMIT: i64 = 2;
/// The state recorded for a phone whose area code is unknown.
pub const UNKNOWN_STATE: &str = "XX";
/// A phone number is `area code * PHONE_AREA_FACTOR + a 7-digit number`.
pub const PHONE_AREA_FACTOR: i64 = 10_000_000;

/// The schema, one statement each (run in order before deploying).
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE contestants (
        contestant_number INTEGER PRIMARY KEY,
        contestant_name VARCHAR(50) NOT NULL)",
    "CREATE TABLE area_code_state (
        area_code SMALLINT PRIMARY KEY,
        state VARCHAR(2) NOT NULL)",
    "CREATE TABLE votes (
        phone_number BIGINT NOT NULL,
        state VARCHAR(2) NOT NULL,
        contestant_number INTEGER NOT NULL)",
    "PARTITION TABLE votes ON COLUMN phone_number",
    // The per-phone count `vote` checks is a hash probe: equality only.
    "CREATE INDEX votes_by_phone ON votes USING HASH (phone_number)",
    // Per-(contestant, state) totals.
    "CREATE VIEW votes_by_contestant_state AS
        SELECT contestant_number, state, COUNT(*) AS num_votes
        FROM votes GROUP BY contestant_number, state",
];

ohm_sdk::statements! {
    pub CHECK_CONTESTANT =
        "SELECT contestant_number FROM contestants WHERE contestant_number = ?";
    pub COUNT_PHONE_VOTES = "SELECT COUNT(*) FROM votes WHERE phone_number = ?";
    pub LOOKUP_STATE = "SELECT state FROM area_code_state WHERE area_code = ?";
    pub INSERT_VOTE =
        "INSERT INTO votes (phone_number, state, contestant_number) VALUES (?, ?, ?)";
    pub COUNT_CONTESTANTS = "SELECT COUNT(*) FROM contestants";
    pub INSERT_CONTESTANT =
        "INSERT INTO contestants (contestant_name, contestant_number) VALUES (?, ?)";
    pub INSERT_AREA_CODE = "INSERT INTO area_code_state (area_code, state) VALUES (?, ?)";
    pub RESULTS = "SELECT c.contestant_name, c.contestant_number,
            COALESCE(SUM(v.num_votes), 0) AS total_votes
        FROM contestants c
        LEFT JOIN votes_by_contestant_state v ON v.contestant_number = c.contestant_number
        GROUP BY c.contestant_name, c.contestant_number
        ORDER BY total_votes DESC, c.contestant_number ASC";
}

/// Loads `contestant_count` contestants (names from `names_csv`, numbered
/// from 1) and the area codes, unless contestants exist already. Returns
/// the number of contestants.
#[procedure]
pub fn initialize(ctx: &mut Context, contestant_count: i32, names_csv: String) -> Result<i64> {
    let existing: i64 = ctx.execute_one(&COUNT_CONTESTANTS, ())?.scalar()?;
    if existing != 0 {
        return Ok(existing);
    }
    let names: Vec<&str> = names_csv.split(',').map(str::trim).collect();
    if contestant_count < 1 || contestant_count as usize > names.len() {
        return Err(abort(format!(
            "contestant_count is {contestant_count}, but names_csv has {} names",
            names.len()
        )));
    }
    for (i, name) in names.iter().take(contestant_count as usize).enumerate() {
        ctx.queue(&INSERT_CONTESTANT, (*name, i as i64 + 1));
    }
    ctx.execute()?;
    for (code, state) in AREA_CODES {
        ctx.queue(&INSERT_AREA_CODE, (code, state));
    }
    ctx.execute()?;
    Ok(contestant_count as i64)
}

/// Records one vote. Returns `VOTE_ACCEPTED`, `VOTE_INVALID_CONTESTANT` or
/// `VOTE_OVER_LIMIT`.
#[procedure(partition = "votes.phone_number", parameter = 0)]
pub fn vote(
    ctx: &mut Context,
    phone_number: i64,
    contestant_number: i32,
    max_votes: i64,
) -> Result<i64> {
    ctx.queue(&CHECK_CONTESTANT, (contestant_number,));
    ctx.queue(&COUNT_PHONE_VOTES, (phone_number,));
    ctx.queue(&LOOKUP_STATE, (phone_number / PHONE_AREA_FACTOR,));
    let checks = ctx.execute()?;
    if checks[0].is_empty() {
        return Ok(VOTE_INVALID_CONTESTANT);
    }
    let votes: i64 = checks[1].scalar()?;
    if votes >= max_votes {
        return Ok(VOTE_OVER_LIMIT);
    }
    let state: String = match checks[2].first() {
        Some(row) => row.get(0)?,
        None => UNKNOWN_STATE.to_string(),
    };
    ctx.queue(&INSERT_VOTE, (phone_number, state, contestant_number));
    ctx.execute()?;
    Ok(VOTE_ACCEPTED)
}

/// Total votes per contestant, with names, highest first:
/// `(contestant_name, contestant_number, total_votes)`.
#[procedure]
pub fn results(ctx: &mut Context) -> Result<Rows> {
    ctx.execute_one(&RESULTS, ())
}

ohm_sdk::export!(
    statements = STATEMENTS,
    procedures = [initialize, vote, results]
);

/// Native unit tests: the procedures above, run against an in-process
/// engine without building Wasm (`cargo test -p ohm-voter`).
#[cfg(test)]
mod tests {
    use ohm::types::Value;
    use ohm::wasm::testing::TestDb;
    use ohm::wasm::ProcOutput;

    fn voter() -> TestDb {
        let mut db = TestDb::new();
        for ddl in super::SCHEMA {
            db.sql(ddl);
        }
        db.deploy_native("voter", super::module()).unwrap();
        let names = Value::Text("Ann,Ben,Cy".into());
        db.call("initialize", &[Value::Int(3), names]).unwrap();
        db
    }

    fn vote(db: &mut TestDb, phone: i64, contestant: i64) -> i64 {
        let args = [Value::Int(phone), Value::Int(contestant), Value::Int(2)];
        match db.call("vote", &args).unwrap() {
            ProcOutput::Value(Value::Int(code)) => code,
            other => panic!("vote returned {other:?}"),
        }
    }

    #[test]
    fn a_phone_votes_at_most_max_votes_times() {
        let mut db = voter();
        let phone = 6_175_550_000; // area code 617: Massachusetts
        assert_eq!(vote(&mut db, phone, 1), super::VOTE_ACCEPTED);
        assert_eq!(vote(&mut db, phone, 2), super::VOTE_ACCEPTED);
        assert_eq!(vote(&mut db, phone, 3), super::VOTE_OVER_LIMIT);
        assert_eq!(vote(&mut db, phone, 4), super::VOTE_INVALID_CONTESTANT);
        let rows = db.query_rows("SELECT state, COUNT(*) FROM votes GROUP BY state");
        assert_eq!(rows, vec![vec![Value::Text("MA".into()), Value::Int(2)]]);
    }

    #[test]
    fn initialize_loads_every_area_code_once() {
        let mut db = voter();
        let n = super::AREA_CODES.len() as i64;
        assert_eq!(
            db.query_rows("SELECT COUNT(*) FROM area_code_state"),
            vec![vec![Value::Int(n)]]
        );
        let again = db.call("initialize", &[Value::Int(3), Value::Text("x,y,z".into())]);
        assert_eq!(again.unwrap(), ProcOutput::Value(Value::Int(3)));
        let mut empty = TestDb::new();
        for ddl in super::SCHEMA {
            empty.sql(ddl);
        }
        empty.deploy_native("voter", super::module()).unwrap();
        let short = empty
            .call("initialize", &[Value::Int(5), Value::Text("a,b".into())])
            .unwrap_err();
        assert_eq!(
            short.to_string(),
            "procedure initialize aborted: contestant_count is 5, but names_csv has 2 names"
        );
        assert_eq!(
            empty.query_rows("SELECT COUNT(*) FROM contestants"),
            vec![vec![Value::Int(0)]]
        );
    }
}
