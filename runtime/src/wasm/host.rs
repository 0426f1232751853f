//! Engine-free call logic: what the host does for a procedure, whether the
//! procedure runs as Wasm (through `imports`) or natively (through `native`).
//!
//! Owns: `CallState` (per-call counters, pending bytes, the result, the
//! first fatal fault), statement batches over `sql::Engine`, the mapping of
//! `SqlError` to `abi::ErrorCode`, and turning a call's status + payload
//! into a `ProcOutput` or a `ProcError`.
//! Must not: know about wasmtime, guest memory, or transactions beyond the
//! savepoint that makes one batch all-or-nothing (the caller begins and
//! ends the transaction).
//!
//! ```text
//!   batch(request) --decode--> execute_prepared x n --encode--> response
//!        | statement error: rollback_to(savepoint), BatchFailure::Statement (guest sees it)
//!        | limit / malformed: rollback_to(savepoint), BatchFailure::Fatal (ends the call)
//! ```

use super::codec;
use super::error::Fault;
use super::limits::{Limits, PANIC_MESSAGE_BYTES_MAX};
use super::{ProcError, ProcOutput, TxnContext};
use crate::sql::{Engine, Prepared, QueryResult, SqlError};
use crate::storage::StorageError;
use crate::types::Value;
use ohm_sdk::abi::{self, status, ErrorCode, Reader, Writer};
use ohm_sdk::BatchError;

/// Buffers larger than this are released at the start of the next call, so
/// one large call does not pin its memory in the host for good.
const RETAINED_BUFFER_BYTES_MAX: usize = 1 << 20;

/// Why a batch did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFailure {
    /// A statement failed; the batch changed nothing and the guest is told.
    Statement(BatchError),
    /// A limit or a malformed request: the call ends (the guest never sees it).
    Fatal(Fault),
}

/// The host's side of one call in progress. Reused across calls (`reset`)
/// so the hot path does not allocate.
#[derive(Debug)]
pub struct CallState {
    limits: Limits,
    txn: TxnContext,
    statements_run: u64,
    rows_returned: u64,
    bytes_returned: u64,
    /// Bytes waiting for `take`: the arguments, or a batch response too big
    /// for the guest's buffer.
    pending: Vec<u8>,
    result: Vec<u8>,
    panic: Option<String>,
    /// The first fatal fault; once set, every later host call fails.
    fault: Option<Fault>,
    params: Vec<Value>,
}

impl CallState {
    pub fn new(limits: Limits, txn: TxnContext) -> CallState {
        CallState {
            limits: limits.clamped(),
            txn,
            statements_run: 0,
            rows_returned: 0,
            bytes_returned: 0,
            pending: Vec::new(),
            result: Vec::new(),
            panic: None,
            fault: None,
            params: Vec::new(),
        }
    }

    /// Starts a new call: counters to zero, `args` pending for `take`.
    pub fn reset(&mut self, limits: Limits, txn: TxnContext, args: &[u8]) {
        self.limits = limits.clamped();
        self.txn = txn;
        self.statements_run = 0;
        self.rows_returned = 0;
        self.bytes_returned = 0;
        for buf in [&mut self.pending, &mut self.result] {
            if buf.capacity() > RETAINED_BUFFER_BYTES_MAX {
                *buf = Vec::new();
            }
            buf.clear();
        }
        self.pending.extend_from_slice(args);
        self.panic = None;
        self.fault = None;
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn txn(&self) -> TxnContext {
        self.txn
    }

    /// Records `fault` unless one is already recorded (the first cause
    /// wins) and returns the recorded one.
    pub fn fail(&mut self, fault: Fault) -> Fault {
        self.fault.get_or_insert(fault).clone()
    }

    /// Takes the recorded fault, if any.
    pub fn take_fault(&mut self) -> Option<Fault> {
        self.fault.take()
    }

    /// The bytes waiting for `take`.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Empties the pending bytes (after `take` copied them out).
    pub fn clear_pending(&mut self) {
        self.pending.clear();
    }

    /// Makes `bytes` the pending bytes (a response too big for the guest's buffer).
    pub fn set_pending(&mut self, bytes: &[u8]) {
        self.pending.clear();
        self.pending.extend_from_slice(bytes);
    }

    /// Stores the procedure's result payload (`ohm.result`); a later call replaces it.
    pub fn set_result(&mut self, payload: &[u8]) -> Result<(), Fault> {
        if payload.len() > self.limits.result_bytes_max {
            return Err(self.fail(Fault::Limit {
                what: "result bytes",
                limit: self.limits.result_bytes_max as u64,
            }));
        }
        self.result.clear();
        self.result.extend_from_slice(payload);
        Ok(())
    }

    pub fn result(&self) -> &[u8] {
        &self.result
    }

    /// Records a guest panic message (`ohm.panic`), cut to `PANIC_MESSAGE_BYTES_MAX`.
    pub fn record_panic(&mut self, message: &[u8]) {
        let cut = &message[..message.len().min(PANIC_MESSAGE_BYTES_MAX)];
        self.panic = Some(String::from_utf8_lossy(cut).into_owned());
    }

    pub fn panic_message(&self) -> Option<&str> {
        self.panic.as_deref()
    }

    /// Runs one batch request (`abi` layout) against `statements`; on
    /// success `response` holds the encoded batch response. The batch is
    /// all-or-nothing: any failure undoes what its statements did.
    pub fn batch(
        &mut self,
        engine: &mut Engine,
        statements: &[Prepared],
        request: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BatchFailure> {
        debug_assert!(engine.in_txn(), "batches run inside the call's transaction");
        if let Some(f) = &self.fault {
            return Err(BatchFailure::Fatal(f.clone()));
        }
        let sp = engine.savepoint();
        let out = self.run_batch(engine, statements, request, response);
        if let Err(e) = &out {
            engine.rollback_to(sp);
            if let BatchFailure::Fatal(f) = e {
                self.fail(f.clone());
            }
        }
        out
    }

    fn run_batch(
        &mut self,
        engine: &mut Engine,
        statements: &[Prepared],
        request: &[u8],
        response: &mut Vec<u8>,
    ) -> Result<(), BatchFailure> {
        let fatal = BatchFailure::Fatal;
        if request.len() > self.limits.request_bytes_max {
            return Err(fatal(Fault::Limit {
                what: "bytes per batch request",
                limit: self.limits.request_bytes_max as u64,
            }));
        }
        let mut r = Reader::new(request);
        let count = r
            .count(abi::BATCH_STATEMENTS_MAX, "statement count")
            .map_err(|e| fatal(malformed(&e)))?;
        if count == 0 {
            return Err(fatal(Fault::Abi(
                "malformed batch request: it has no statements (1 to 1000)".into(),
            )));
        }
        self.statements_run += count as u64;
        if self.statements_run > self.limits.statements_max {
            return Err(fatal(Fault::Limit {
                what: "statements",
                limit: self.limits.statements_max,
            }));
        }
        let mut w = Writer::with_buf(std::mem::take(response));
        w.buf.clear();
        w.len(count);
        let mut params = std::mem::take(&mut self.params);
        let mut out = Ok(());
        for i in 0..count {
            out = self.run_one(engine, statements, &mut r, i, &mut params, &mut w);
            if out.is_err() {
                break;
            }
        }
        params.clear();
        self.params = params;
        *response = w.into_inner();
        out?;
        r.finish().map_err(|e| fatal(malformed(&e)))?;
        self.bytes_returned += response.len() as u64;
        self.check_bytes(0).map_err(fatal)
    }

    /// Decodes, executes and encodes statement `i` of a batch.
    fn run_one(
        &mut self,
        engine: &mut Engine,
        statements: &[Prepared],
        r: &mut Reader<'_>,
        i: usize,
        params: &mut Vec<Value>,
        w: &mut Writer,
    ) -> Result<(), BatchFailure> {
        let fatal = BatchFailure::Fatal;
        let index = r.u32("statement index").map_err(|e| fatal(malformed(&e)))?;
        let stmt = statements.get(index as usize).ok_or_else(|| {
            fatal(Fault::Abi(format!(
                "batch statement {i} names statement {index}; the module declares {}",
                statements.len()
            )))
        })?;
        let n = r
            .count(abi::STATEMENT_PARAMS_MAX, "parameter count")
            .map_err(|e| fatal(malformed(&e)))?;
        if n != stmt.param_count() {
            return Err(fatal(Fault::Abi(format!(
                "malformed batch request: statement {i} (number {index}) takes {} parameters, \
                 the request gives {n}",
                stmt.param_count()
            ))));
        }
        params.clear();
        for _ in 0..n {
            params.push(codec::read_value(r).map_err(|e| fatal(malformed(&e)))?);
        }
        match engine.execute_prepared(stmt, params) {
            Ok(res) => self.write_outcome(&res, w).map_err(fatal),
            // Not the guest's to handle: the call ends, rolled back.
            Err(SqlError::Stopped(why)) => Err(fatal(Fault::Stopped(why))),
            Err(e) => Err(BatchFailure::Statement(BatchError {
                code: error_code(&e),
                statement: i as u32,
                message: e.to_string(),
            })),
        }
    }

    /// Appends one statement's outcome, counting rows and bytes against the limits.
    fn write_outcome(&mut self, res: &QueryResult, w: &mut Writer) -> Result<(), Fault> {
        match res {
            QueryResult::Rows(rows) => {
                self.rows_returned += rows.rows.len() as u64;
                if self.rows_returned > self.limits.rows_returned_max {
                    return Err(Fault::Limit {
                        what: "rows returned",
                        limit: self.limits.rows_returned_max,
                    });
                }
                w.u8(abi::outcome_kind::ROWS);
                codec::write_columns(w, &rows.columns);
                w.len(rows.rows.len());
                for row in &rows.rows {
                    for v in row {
                        codec::write_value(w, v);
                    }
                    // Checked per row so one huge result stops early.
                    self.check_bytes(w.buf.len())?;
                }
            }
            QueryResult::Affected(n) => {
                w.u8(abi::outcome_kind::AFFECTED);
                w.u64(*n);
            }
            // Deploy admits only queries and DML; count "done" as nothing affected.
            QueryResult::Done(_) => {
                w.u8(abi::outcome_kind::AFFECTED);
                w.u64(0);
            }
        }
        Ok(())
    }

    fn check_bytes(&self, more: usize) -> Result<(), Fault> {
        if self.bytes_returned + more as u64 > self.limits.bytes_returned_max as u64 {
            return Err(Fault::Limit {
                what: "bytes returned",
                limit: self.limits.bytes_returned_max as u64,
            });
        }
        Ok(())
    }
}

fn malformed(e: &abi::DecodeError) -> Fault {
    Fault::Abi(format!("malformed batch request: {e}"))
}

/// The ABI error code for a statement error.
pub fn error_code(e: &SqlError) -> ErrorCode {
    match e {
        SqlError::Parse(_) | SqlError::Unsupported(_) | SqlError::Plan(_) => ErrorCode::Plan,
        SqlError::TooLong(_) => ErrorCode::TooLong,
        SqlError::OutOfRange(_) => ErrorCode::OutOfRange,
        SqlError::Storage(s) => match s {
            StorageError::NotNull { .. } => ErrorCode::NotNull,
            StorageError::Unique { .. } => ErrorCode::Unique,
            StorageError::TooLong { .. } => ErrorCode::TooLong,
            StorageError::OutOfRange { .. } => ErrorCode::OutOfRange,
            StorageError::TypeMismatch { .. } => ErrorCode::Type,
            StorageError::TableFull(_) => ErrorCode::TableFull,
            StorageError::NoSuchTable(_) => ErrorCode::Plan,
            _ => ErrorCode::Exec,
        },
        _ => ErrorCode::Exec,
    }
}

/// A batch error as the guest receives it: `u32` statement index, then the message.
pub fn encode_batch_error(e: &BatchError, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&e.statement.to_le_bytes());
    out.extend_from_slice(e.message.as_bytes());
}

/// Turns what `ohm_call` returned (status + the payload of `ohm.result`)
/// into the call's output or error. `returns` is the declared result type.
pub fn finish(
    procedure: &str,
    returns: u8,
    status: i32,
    payload: &[u8],
    limits: &Limits,
) -> Result<ProcOutput, ProcError> {
    let procedure_s = || procedure.to_string();
    let text = || String::from_utf8_lossy(payload).into_owned();
    match status {
        status::CALL_OK => codec::decode_result(returns, payload, limits.rows_returned_max)
            .map_err(|m| Fault::Abi(m).into_error(procedure)),
        status::CALL_ABORT => Err(ProcError::Aborted {
            procedure: procedure_s(),
            reason: text(),
        }),
        status::CALL_BAD_ARGS => Err(ProcError::BadArguments {
            procedure: procedure_s(),
            message: text(),
        }),
        status::CALL_SQL_ERROR => {
            let (code, message) = payload.split_at_checked(4).ok_or_else(|| {
                Fault::Abi("CALL_SQL_ERROR payload is shorter than its 4-byte code".into())
                    .into_error(procedure)
            })?;
            let n = u32::from_le_bytes([code[0], code[1], code[2], code[3]]);
            let code = ErrorCode::from_u32(n).ok_or_else(|| {
                Fault::Abi(format!("CALL_SQL_ERROR carries unknown error code {n}"))
                    .into_error(procedure)
            })?;
            Err(ProcError::Sql {
                procedure: procedure_s(),
                code,
                message: String::from_utf8_lossy(message).into_owned(),
            })
        }
        s => Err(Fault::Abi(format!("ohm_call returned unknown status {s}")).into_error(procedure)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut e = Engine::new();
        e.execute("CREATE TABLE kv (k BIGINT PRIMARY KEY, v VARCHAR(10))")
            .unwrap();
        e.execute("INSERT INTO kv VALUES (1, 'one')").unwrap();
        e
    }

    fn prepare(e: &mut Engine, sqls: &[&str]) -> Vec<Prepared> {
        sqls.iter().map(|s| e.prepare(s).unwrap()).collect()
    }

    fn request(stmts: &[(u32, &[Value])]) -> Vec<u8> {
        let mut w = Writer::new();
        w.len(stmts.len());
        for (index, params) in stmts {
            w.u32(*index);
            w.len(params.len());
            for p in *params {
                codec::write_value(&mut w, p);
            }
        }
        w.into_inner()
    }

    fn state(limits: Limits) -> CallState {
        CallState::new(limits, TxnContext::default())
    }

    #[test]
    fn batch_runs_statements_and_encodes_outcomes() {
        let mut e = engine();
        let st = prepare(
            &mut e,
            &[
                "INSERT INTO kv VALUES (?, ?)",
                "SELECT v FROM kv WHERE k = ?",
            ],
        );
        let mut s = state(Limits::default());
        e.begin().unwrap();
        let req = request(&[
            (0, &[Value::Int(2), Value::text("two")]),
            (1, &[Value::Int(2)]),
        ]);
        let mut resp = Vec::new();
        s.batch(&mut e, &st, &req, &mut resp).unwrap();
        let mut r = Reader::new(&resp);
        assert_eq!(r.u32("n").unwrap(), 2);
        assert_eq!(r.u8("kind").unwrap(), abi::outcome_kind::AFFECTED);
        assert_eq!(r.u64("n").unwrap(), 1);
        assert_eq!(r.u8("kind").unwrap(), abi::outcome_kind::ROWS);
        let rows = codec::read_row_set(&mut r, 10).unwrap();
        assert_eq!(rows.columns[0].name, "v");
        assert_eq!(rows.rows, vec![vec![Value::text("two")]]);
        r.finish().unwrap();
    }

    #[test]
    fn statement_error_undoes_the_whole_batch() {
        let mut e = engine();
        let st = prepare(&mut e, &["INSERT INTO kv VALUES (?, ?)"]);
        let mut s = state(Limits::default());
        e.begin().unwrap();
        let req = request(&[
            (0, &[Value::Int(5), Value::text("five")]),
            (0, &[Value::Int(1), Value::text("dup")]),
        ]);
        let err = s.batch(&mut e, &st, &req, &mut Vec::new()).unwrap_err();
        let BatchFailure::Statement(b) = err else {
            panic!("{err:?}")
        };
        assert_eq!((b.code, b.statement), (ErrorCode::Unique, 1));
        assert!(b.message.contains("duplicate key"), "{}", b.message);
        e.commit().unwrap();
        let rows = e.execute("SELECT COUNT(*) FROM kv").unwrap();
        let QueryResult::Rows(rows) = rows else {
            panic!()
        };
        assert_eq!(rows.rows, vec![vec![Value::Int(1)]]);
        // A statement error is not fatal: the next batch runs.
        e.begin().unwrap();
        let req = request(&[(0, &[Value::Int(5), Value::text("five")])]);
        s.batch(&mut e, &st, &req, &mut Vec::new()).unwrap();
    }

    #[test]
    fn limits_and_malformed_requests_are_fatal_and_sticky() {
        let mut e = engine();
        let st = prepare(&mut e, &["SELECT k FROM kv"]);
        e.begin().unwrap();
        let limits = Limits {
            statements_max: 2,
            ..Limits::default()
        };
        let mut s = state(limits);
        let req = request(&[(0, &[]), (0, &[])]);
        s.batch(&mut e, &st, &req, &mut Vec::new()).unwrap();
        let err = s.batch(&mut e, &st, &request(&[(0, &[])]), &mut Vec::new());
        let limit = Fault::Limit {
            what: "statements",
            limit: 2,
        };
        assert_eq!(err, Err(BatchFailure::Fatal(limit.clone())));
        assert_eq!(s.take_fault(), Some(limit));

        let mut s = state(Limits::default());
        let err = s.batch(&mut e, &st, &request(&[(7, &[])]), &mut Vec::new());
        let Err(BatchFailure::Fatal(Fault::Abi(m))) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            m,
            "batch statement 0 names statement 7; the module declares 1"
        );
        // Sticky: a valid batch after a fatal fault fails too.
        let err = s.batch(&mut e, &st, &request(&[(0, &[])]), &mut Vec::new());
        assert!(matches!(err, Err(BatchFailure::Fatal(Fault::Abi(_)))));

        let mut s = state(Limits::default());
        let mut req = request(&[(0, &[])]);
        req.push(0);
        let err = s.batch(&mut e, &st, &req, &mut Vec::new());
        let Err(BatchFailure::Fatal(Fault::Abi(m))) = err else {
            panic!("{err:?}")
        };
        assert!(m.contains("1 unexpected trailing bytes"), "{m}");
    }

    #[test]
    fn rows_and_bytes_returned_are_bounded() {
        let mut e = engine();
        e.execute("INSERT INTO kv VALUES (2, 'two'), (3, 'three')")
            .unwrap();
        let st = prepare(&mut e, &["SELECT k, v FROM kv"]);
        e.begin().unwrap();
        let mut s = state(Limits {
            rows_returned_max: 2,
            ..Limits::default()
        });
        let err = s.batch(&mut e, &st, &request(&[(0, &[])]), &mut Vec::new());
        assert!(matches!(
            err,
            Err(BatchFailure::Fatal(Fault::Limit {
                what: "rows returned",
                ..
            }))
        ));
        let mut s = state(Limits {
            bytes_returned_max: 30,
            ..Limits::default()
        });
        let err = s.batch(&mut e, &st, &request(&[(0, &[])]), &mut Vec::new());
        assert!(matches!(
            err,
            Err(BatchFailure::Fatal(Fault::Limit {
                what: "bytes returned",
                ..
            }))
        ));
    }

    #[test]
    fn panic_messages_are_cut_and_results_bounded() {
        let mut s = state(Limits {
            result_bytes_max: 3,
            ..Limits::default()
        });
        s.record_panic(&[b'a'; 10_000]);
        assert_eq!(
            s.panic_message().map(str::len),
            Some(PANIC_MESSAGE_BYTES_MAX)
        );
        s.set_result(b"abc").unwrap();
        assert_eq!(s.result(), b"abc");
        let e = s.set_result(b"abcd").unwrap_err();
        assert_eq!(e.to_string(), "over the limit of 3 result bytes");
        s.reset(Limits::default(), TxnContext::default(), b"args");
        assert_eq!(
            (s.panic_message(), s.result(), s.pending()),
            (None, &b""[..], &b"args"[..])
        );
        assert_eq!(s.take_fault(), None);
    }

    #[test]
    fn finish_maps_statuses() {
        let l = Limits::default();
        let mut sql = 3u32.to_le_bytes().to_vec();
        sql.extend_from_slice(b"dup");
        assert_eq!(
            finish("p", abi::ty::UNIT, status::CALL_SQL_ERROR, &sql, &l),
            Err(ProcError::Sql {
                procedure: "p".into(),
                code: ErrorCode::Unique,
                message: "dup".into()
            })
        );
        assert_eq!(
            finish("p", abi::ty::UNIT, status::CALL_ABORT, b"no money", &l),
            Err(ProcError::Aborted {
                procedure: "p".into(),
                reason: "no money".into()
            })
        );
        let e = finish("p", abi::ty::UNIT, 9, b"", &l).unwrap_err();
        assert_eq!(
            e.to_string(),
            "procedure p broke the host ABI: ohm_call returned unknown status 9"
        );
        let e = finish("p", abi::ty::UNIT, status::CALL_SQL_ERROR, b"ab", &l).unwrap_err();
        assert!(matches!(e, ProcError::Abi { .. }), "{e}");
    }
}
