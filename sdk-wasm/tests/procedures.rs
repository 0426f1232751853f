//! Procedures written with the macros, run through `Module::call` against a
//! small test host that decodes each batch request and answers from a
//! few in-memory vectors. It checks the SDK's own encoding, decoding and
//! status mapping end to end; SQL itself is the runtime's business.

use ohm_sdk::abi::{self, outcome_kind, ty, Reader, Writer};
use ohm_sdk::prelude::*;
use ohm_sdk::{encode_args, Backend, BatchError, CallOutput, Reply};

ohm_sdk::statements! {
    /// Whether a contestant exists.
    pub CHECK_CONTESTANT = "SELECT contestant_number FROM contestants WHERE contestant_number = ?";
    pub COUNT_VOTES = "SELECT COUNT(*) FROM votes WHERE phone_number = ?";
    INSERT_VOTE = "INSERT INTO votes (phone_number, state, contestant_number) VALUES (?, ?, ?)";
    TOTALS = "SELECT contestant_number, COUNT(*) FROM votes GROUP BY contestant_number";
}

#[procedure(partition = "votes.phone_number", parameter = 0)]
pub fn vote(
    ctx: &mut Context,
    phone_number: i64,
    contestant_number: i32,
    max_votes: i64,
) -> Result<i64> {
    ctx.queue(&CHECK_CONTESTANT, (contestant_number,));
    ctx.queue(&COUNT_VOTES, (phone_number,));
    let r = ctx.execute()?;
    if r[0].is_empty() {
        return Ok(1);
    }
    let n: i64 = r[1].scalar()?;
    if n >= max_votes {
        return Ok(2);
    }
    if contestant_number == 13 {
        return Err(abort(format!("contestant {contestant_number} is unlucky")));
    }
    let done = ctx.execute_one(&INSERT_VOTE, (phone_number, "XX", contestant_number))?;
    Ok(done.affected() as i64 - 1)
}

#[procedure]
pub fn results(ctx: &mut Context) -> Result<Rows> {
    let totals = ctx.execute_one(&TOTALS, ())?;
    let mut out = Rows::new(["contestant", "votes", "share"]);
    let all: i64 = totals
        .iter()
        .map(|r| r.get::<i64>(1))
        .sum::<Result<i64>>()?;
    for row in &totals {
        let votes: i64 = row.get(1)?;
        let share = Decimal::from(votes * 100 / all.max(1));
        out.push(vec![
            Value::from(row.get::<i32>(0)?),
            Value::Int(votes),
            share.into(),
        ]);
    }
    Ok(out)
}

/// Hands every parameter type back as one row.
#[procedure(partition = "kv.k", parameter = 1)]
#[allow(clippy::too_many_arguments)]
pub fn echo(
    _ctx: &mut Context,
    flag: bool,
    k: String,
    d: Decimal,
    t: Timestamp,
    b: Vec<u8>,
    small: i16,
    x: f64,
    maybe: Option<i32>,
) -> Result<Rows> {
    let mut out = Rows::new(["flag", "k", "d", "t", "b", "small", "x", "maybe"]);
    out.push(vec![
        flag.into(),
        k.into(),
        d.into(),
        t.into(),
        b.into(),
        small.into(),
        x.into(),
        maybe.into(),
    ]);
    Ok(out)
}

/// Fails in the way `how` names.
#[procedure]
pub fn fail(ctx: &mut Context, how: String) -> Result<Option<String>> {
    match how.as_str() {
        "sql" => {
            ctx.execute_one(&INSERT_VOTE, (1i64, "XX", 1i32))?;
            Ok(None)
        }
        "catch" => match ctx.execute_one(&INSERT_VOTE, (1i64, "XX", 1i32)) {
            Err(e) if e.sql_code() == Some(ErrorCode::Unique) => Ok(Some("caught".into())),
            Err(e) => Err(e),
            Ok(_) => Ok(Some("inserted".into())),
        },
        "type" => {
            let r = ctx.execute_one(&COUNT_VOTES, (1i64,))?;
            let s: String = r.scalar()?;
            Ok(Some(s))
        }
        "many" => {
            for _ in 0..=abi::BATCH_STATEMENTS_MAX {
                ctx.queue(&COUNT_VOTES, (1i64,));
            }
            ctx.execute()?;
            Ok(None)
        }
        "clock" => Ok(Some(format!("{} {}", ctx.now(), ctx.rng().range(0..1000)))),
        _ => Ok(Some(how)),
    }
}

/// Dates, times, intervals and UUIDs through the macros: moves `at` and
/// `day` on by `by` and hands everything back.
#[procedure]
pub fn later(
    _ctx: &mut Context,
    at: TimestampTz,
    day: Date,
    time: Option<Time>,
    by: Interval,
    id: Uuid,
) -> Result<Rows> {
    let mut out = Rows::new(["at", "day", "time", "by", "id"]);
    out.push(vec![
        TimestampTz(at.0 + by.micros).into(),
        Date(day.0 + by.days).into(),
        time.into(),
        by.into(),
        id.into(),
    ]);
    Ok(out)
}

ohm_sdk::export!(
    statements = STATEMENTS,
    procedures = [vote, results, echo, fail, later]
);

/// The test host: contestants, votes, and an optional failure for the
/// next batch (which then applies nothing).
#[derive(Default)]
struct Host {
    contestants: Vec<i32>,
    votes: Vec<(i64, String, i32)>,
    fail_next: Option<BatchError>,
    batches: usize,
}

fn rows_outcome(w: &mut Writer, rows: &Rows) {
    w.u8(outcome_kind::ROWS);
    rows.encode(w).unwrap();
}

impl Host {
    fn voter() -> Host {
        Host {
            contestants: (1..=6).chain([13]).collect(),
            ..Host::default()
        }
    }

    fn call(&mut self, name: &str, args: impl ohm_sdk::Params) -> CallOutput {
        let n = module().procedure_number(name).unwrap();
        module().call(self, n, &encode_args(args).unwrap())
    }

    fn reply(&mut self, name: &str, args: impl ohm_sdk::Params) -> Reply {
        self.call(name, args).reply().unwrap()
    }

    fn answer(&mut self, index: u32, params: &[Value], w: &mut Writer) {
        let int = |i: usize| match params[i] {
            Value::Int(n) => n,
            ref v => panic!("parameter {i} is {v:?}"),
        };
        match index {
            i if i == CHECK_CONTESTANT.index => {
                let mut rows = Rows::new(["contestant_number"]);
                if self.contestants.contains(&(int(0) as i32)) {
                    rows.push(vec![params[0].clone()]);
                }
                rows_outcome(w, &rows);
            }
            i if i == COUNT_VOTES.index => {
                let mut rows = Rows::new(["count"]);
                let n = self.votes.iter().filter(|v| v.0 == int(0)).count();
                rows.push(vec![Value::Int(n as i64)]);
                rows_outcome(w, &rows);
            }
            i if i == INSERT_VOTE.index => {
                let Value::Text(state) = &params[1] else {
                    panic!("state is {:?}", params[1])
                };
                self.votes.push((int(0), state.clone(), int(2) as i32));
                w.u8(outcome_kind::AFFECTED);
                w.u64(1);
            }
            i if i == TOTALS.index => {
                let mut rows = Rows::new(["contestant_number", "count"]);
                for c in &self.contestants {
                    let n = self.votes.iter().filter(|v| v.2 == *c).count();
                    if n > 0 {
                        rows.push(vec![Value::Int((*c).into()), Value::Int(n as i64)]);
                    }
                }
                rows_outcome(w, &rows);
            }
            i => panic!("no statement {i}"),
        }
    }
}

impl Backend for Host {
    fn batch(
        &mut self,
        request: &[u8],
        response: &mut Vec<u8>,
    ) -> core::result::Result<(), BatchError> {
        self.batches += 1;
        if let Some(e) = self.fail_next.take() {
            return Err(e);
        }
        let mut r = Reader::new(request);
        let n = r
            .count(abi::BATCH_STATEMENTS_MAX, "statement count")
            .unwrap();
        let mut w = Writer::new();
        w.u32(n as u32);
        for _ in 0..n {
            let index = r.u32("statement index").unwrap();
            let nparams = r
                .count(abi::STATEMENT_PARAMS_MAX, "parameter count")
                .unwrap();
            let params: Vec<Value> = (0..nparams)
                .map(|_| Value::from_raw(r.value().unwrap()))
                .collect();
            self.answer(index, &params, &mut w);
        }
        r.finish().unwrap();
        *response = w.into_inner();
        Ok(())
    }

    fn now(&self) -> i64 {
        1_700_000_000_000_000
    }

    fn seed(&self) -> u64 {
        99
    }
}

#[test]
fn vote_round_trips_through_module_call() {
    let mut host = Host::voter();
    let phone = 2_065_550_123i64;
    assert_eq!(
        host.reply("vote", (phone, 3i32, 2i64)),
        Reply::Value(Value::Int(0))
    );
    assert_eq!(
        host.reply("vote", (phone, 4i32, 2i64)),
        Reply::Value(Value::Int(0))
    );
    assert_eq!(
        host.reply("vote", (phone, 5i32, 2i64)),
        Reply::Value(Value::Int(2))
    );
    assert_eq!(
        host.reply("vote", (phone + 1, 999i32, 2i64)),
        Reply::Value(Value::Int(1))
    );
    assert_eq!(
        host.votes,
        [(phone, "XX".into(), 3), (phone, "XX".into(), 4)]
    );
    // Checks and count share one crossing; the insert is a second.
    assert_eq!(host.batches, 2 + 2 + 1 + 1);
}

#[test]
fn results_returns_built_rows() {
    let mut host = Host::voter();
    host.votes = vec![
        (1, "WA".into(), 2),
        (2, "WA".into(), 2),
        (3, "OR".into(), 5),
    ];
    let Reply::Rows(rows) = host.reply("results", ()) else {
        panic!("not rows")
    };
    assert_eq!(rows.columns(), ["contestant", "votes", "share"]);
    let got: Vec<(i32, i64, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0).unwrap(),
                r.get(1).unwrap(),
                r.get::<Decimal>(2).unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, [(2, 2, "66".to_string()), (5, 1, "33".to_string())]);
}

#[test]
fn every_parameter_type_round_trips() {
    let mut host = Host::voter();
    let d: Decimal = "-12.345".parse().unwrap();
    let args = (
        true,
        "key",
        d,
        Timestamp(-5),
        vec![0u8, 255],
        -7i16,
        0.25f64,
        None::<i32>,
    );
    let Reply::Rows(rows) = host.reply("echo", args) else {
        panic!("not rows")
    };
    assert_eq!(
        rows.first().unwrap().values(),
        [
            Value::Bool(true),
            Value::Text("key".into()),
            Value::Decimal(d),
            Value::Timestamp(Timestamp(-5)),
            Value::Bytes(vec![0, 255]),
            Value::Int(-7),
            Value::Double(0.25),
            Value::Null,
        ]
    );
    let Reply::Rows(rows) = host.reply(
        "echo",
        (false, "", 1i64, Timestamp(0), b"", 0i16, 1i64, Some(3i32)),
    ) else {
        panic!("not rows")
    };
    // An INTEGER argument is accepted for DECIMAL and DOUBLE parameters.
    assert_eq!(
        rows.first().unwrap().get::<Decimal>(2).unwrap(),
        Decimal::from(1)
    );
    assert_eq!(rows.first().unwrap().get::<f64>(6).unwrap(), 1.0);
    assert_eq!(
        rows.first().unwrap().get::<Option<i32>>(7).unwrap(),
        Some(3)
    );
    assert_eq!(host.batches, 0);
}

#[test]
fn bad_arguments_name_the_parameter() {
    let mut host = Host::voter();
    for (args, message) in [
        (
            encode_args((1i64, 2i32)).unwrap(),
            "expected 3 arguments (phone_number, contestant_number, max_votes), got 2",
        ),
        (
            encode_args((1i64, "three", 2i64)).unwrap(),
            "parameter 1 (contestant_number): expected INTEGER, got TEXT",
        ),
        (
            encode_args((1i64, 1i64 << 33, 2i64)).unwrap(),
            "parameter 1 (contestant_number): 8589934592 is out of range for INTEGER",
        ),
        (
            encode_args((None::<i64>, 1i32, 2i64)).unwrap(),
            "parameter 0 (phone_number): is NULL, but BIGINT is not nullable",
        ),
        (
            vec![3, 0, 0, 0, abi::tag::INT, 1],
            "argument 0 (phone_number) did not decode",
        ),
    ] {
        let out = module().call(&mut host, 0, &args);
        assert_eq!(out.status, abi::status::CALL_BAD_ARGS);
        let Reply::BadArgs(m) = out.reply().unwrap() else {
            panic!("not bad args")
        };
        assert!(
            m.starts_with(message),
            "{m:?} does not start with {message:?}"
        );
    }
    let mut trailing = encode_args((1i64, 2i32, 3i64)).unwrap();
    trailing.push(0);
    let out = module().call(&mut host, 0, &trailing);
    assert!(
        matches!(out.reply().unwrap(), Reply::BadArgs(m) if m.contains("1 unexpected trailing bytes"))
    );
    assert_eq!(host.batches, 0, "nothing ran");
}

#[test]
fn abort_reaches_the_caller() {
    let mut host = Host::voter();
    let out = host.call("vote", (1i64, 13i32, 5i64));
    assert_eq!(out.status, abi::status::CALL_ABORT);
    assert_eq!(
        out.reply().unwrap(),
        Reply::Aborted("contestant 13 is unlucky".into())
    );
}

#[test]
fn sql_errors_propagate_with_their_code_or_can_be_caught() {
    let unique = || BatchError {
        code: ErrorCode::Unique,
        statement: 0,
        message: "duplicate key (1)".into(),
    };
    let mut host = Host::voter();
    host.fail_next = Some(unique());
    let out = host.call("fail", ("sql",));
    assert_eq!(out.status, abi::status::CALL_SQL_ERROR);
    assert_eq!(
        out.reply().unwrap(),
        Reply::Sql {
            code: ErrorCode::Unique,
            message: "duplicate key (1)".into()
        }
    );
    host.fail_next = Some(unique());
    assert_eq!(
        host.reply("fail", ("catch",)),
        Reply::Value(Value::Text("caught".into()))
    );
    assert!(host.votes.is_empty());
}

#[test]
fn sdk_errors_become_aborts_with_their_message() {
    let mut host = Host::voter();
    assert_eq!(
        host.reply("fail", ("type",)),
        Reply::Aborted("column 0 (\"count\"): expected TEXT, found INTEGER".into())
    );
    let Reply::Aborted(m) = host.reply("fail", ("many",)) else {
        panic!("not an abort")
    };
    assert!(m.starts_with("more than 1000 statements queued"), "{m}");
    assert_eq!(host.batches, 1, "the over-full batch never crossed");
}

#[test]
fn dates_times_intervals_and_uuids_round_trip() {
    let mut host = Host::voter();
    let id: Uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".parse().unwrap();
    let day = Date::from_ymd(2024, 2, 28).unwrap();
    let by = Interval::new(0, 2, 1_500_000);
    let args = (TimestampTz(0), day, Time::from_hms(24, 0, 0), by, id);
    let Reply::Rows(rows) = host.reply("later", args) else {
        panic!("not rows")
    };
    let row = rows.first().unwrap();
    let text: Vec<String> = row.values().iter().map(Value::to_string).collect();
    assert_eq!(
        text,
        [
            "1970-01-01 00:00:01.5+00",
            "2024-03-01",
            "24:00:00",
            "2 days 00:00:01.5",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        ]
    );
    assert_eq!(row.get::<Uuid>(4).unwrap(), id);
    let desc = module().desc();
    let later = &desc.procedures[4];
    let types: Vec<u8> = later.params.iter().map(|p| p.ty).collect();
    assert_eq!(
        types,
        [
            ty::TIMESTAMPTZ,
            ty::DATE,
            ty::TIME | ty::NULLABLE,
            ty::INTERVAL,
            ty::UUID
        ]
    );
    // A DATE argument for the TIMESTAMPTZ parameter is refused by the SDK.
    let Reply::BadArgs(m) = host.reply("later", (day, day, None::<Time>, by, id)) else {
        panic!("not refused")
    };
    assert!(m.contains("expected TIMESTAMPTZ, got DATE"), "{m}");
}

#[test]
fn clock_and_seed_come_from_the_host() {
    let mut host = Host::voter();
    let first = host.reply("fail", ("clock",));
    assert_eq!(
        first,
        host.reply("fail", ("clock",)),
        "the same seed replays"
    );
    let Reply::Value(Value::Text(s)) = first else {
        panic!("not text")
    };
    assert!(s.starts_with("2023-11-14 22:13:20 "), "{s}");
}

#[test]
fn description_matches_the_attributes() {
    let desc = module().desc();
    assert_eq!(abi::ModuleDesc::decode(&desc.encode()).unwrap(), desc);
    let names: Vec<&str> = desc.statements.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["CHECK_CONTESTANT", "COUNT_VOTES", "INSERT_VOTE", "TOTALS"]
    );
    assert_eq!(desc.statements[2].sql, INSERT_VOTE.sql);
    let vote = &desc.procedures[0];
    assert_eq!(vote.name, "vote");
    let params: Vec<(&str, u8)> = vote
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.ty))
        .collect();
    assert_eq!(
        params,
        [
            ("phone_number", ty::I64),
            ("contestant_number", ty::I32),
            ("max_votes", ty::I64)
        ]
    );
    assert_eq!(vote.returns, ty::I64);
    let part = vote.partition.as_ref().unwrap();
    assert_eq!(
        (part.table.as_str(), part.column.as_str(), part.parameter),
        ("votes", "phone_number", 0)
    );
    let results = &desc.procedures[1];
    assert_eq!(
        (results.returns, results.partition.is_none()),
        (ty::ROWS, true)
    );
    let echo = &desc.procedures[2];
    let types: Vec<u8> = echo.params.iter().map(|p| p.ty).collect();
    assert_eq!(
        types,
        [
            ty::BOOL,
            ty::TEXT,
            ty::DECIMAL,
            ty::TIMESTAMP,
            ty::BYTES,
            ty::I16,
            ty::F64,
            ty::I32 | ty::NULLABLE
        ]
    );
    assert_eq!(echo.partition.as_ref().unwrap().parameter, 1);
    assert_eq!(desc.procedures[3].returns, ty::TEXT | ty::NULLABLE);
}

#[test]
fn procedures_stay_plain_functions() {
    let mut host = Host::voter();
    let mut ctx = Context::new(&mut host);
    assert_eq!(vote(&mut ctx, 5, 1, 1), Ok(0));
    assert_eq!(vote(&mut ctx, 5, 1, 1), Ok(2));
}
