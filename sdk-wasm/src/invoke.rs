//! The two ends of a call: decoding arguments for the code `#[procedure]`
//! generates, and turning what the procedure returned into a `CallOutput`.
//! Also the reverse, for native tests and runners: `encode_args` and
//! `CallOutput::reply`.
//!
//! Owns: the mapping from `Result<R>` to a status and payload:
//!
//! ```text
//!   Ok(v)                      -> CALL_OK         result_kind + value | row set
//!   Err(Aborted(reason))       -> CALL_ABORT      reason
//!   Err(Sql { code, message }) -> CALL_SQL_ERROR  u32 code, message
//!   Err(Type(m) | Batch(m))    -> CALL_ABORT      m
//!   Ok(v) that does not encode -> CALL_ABORT      why
//!   arguments that do not fit  -> CALL_BAD_ARGS   which parameter, why
//! ```
//!
//! Must not: run statements or know about Wasm.

use crate::abi::{self, result_kind, status, DecodeError, ErrorCode, Reader, Writer};
use crate::convert::Params;
use crate::error::{Error, Result};
use crate::proc_types::{ProcParam, ProcReturn};
use crate::rows::Rows;
use crate::value::Value;
use crate::{CallOutput, Param};

/// Capacity a result payload starts with (kind byte + the largest
/// fixed-size value, a decimal: 1 + 1 + 16 + 1).
const RESULT_BYTES_INITIAL: usize = 32;

fn bad_args(message: String) -> CallOutput {
    CallOutput {
        status: status::CALL_BAD_ARGS,
        payload: message.into_bytes(),
    }
}

/// The arguments of one call, read one parameter at a time by generated code.
#[doc(hidden)]
pub struct Args<'a> {
    r: Reader<'a>,
    params: &'static [Param],
    next: usize,
}

impl<'a> Args<'a> {
    /// Reads the argument count; it must equal the parameter count.
    pub fn new(
        bytes: &'a [u8],
        params: &'static [Param],
    ) -> core::result::Result<Args<'a>, CallOutput> {
        let mut r = Reader::new(bytes);
        let n = r
            .count(abi::PARAMS_MAX, "argument count")
            .map_err(|e| bad_args(format!("the arguments did not decode: {e}")))?;
        if n != params.len() {
            let names: Vec<&str> = params.iter().map(|p| p.name).collect();
            return Err(bad_args(format!(
                "expected {} arguments ({}), got {n}",
                params.len(),
                names.join(", ")
            )));
        }
        Ok(Args { r, params, next: 0 })
    }

    /// The next argument as the next parameter's type.
    #[inline]
    pub fn read<T: ProcParam>(&mut self) -> core::result::Result<T, CallOutput> {
        let i = self.next;
        self.next += 1;
        let name = self.params.get(i).map_or("?", |p| p.name);
        let raw = self
            .r
            .value()
            .map_err(|e| bad_args(format!("argument {i} ({name}) did not decode: {e}")))?;
        T::from_raw(raw).map_err(|why| bad_args(format!("parameter {i} ({name}): {why}")))
    }

    /// Fails if bytes are left over after the last argument.
    pub fn finish(&self) -> core::result::Result<(), CallOutput> {
        self.r
            .finish()
            .map_err(|e| bad_args(format!("the arguments did not decode: {e}")))
    }
}

/// Maps what a procedure returned to its status and payload (see the
/// module doc for the table).
#[doc(hidden)]
pub fn output<R: ProcReturn, E: Into<Error>>(result: core::result::Result<R, E>) -> CallOutput {
    let error = match result.map_err(Into::into) {
        Ok(v) => {
            // Room for a kind byte and any fixed-size value, so a scalar
            // result is one allocation, not a grow and a move.
            let mut w = Writer::with_buf(Vec::with_capacity(RESULT_BYTES_INITIAL));
            match v.encode_result(&mut w) {
                Ok(()) => {
                    return CallOutput {
                        status: status::CALL_OK,
                        payload: w.into_inner(),
                    }
                }
                Err(e) => Error::Type(format!("the procedure's result did not encode: {e}")),
            }
        }
        Err(e) => e,
    };
    match error {
        Error::Sql { code, message, .. } => {
            let mut w = Writer::new();
            w.u32(code as u32);
            w.buf.extend_from_slice(message.as_bytes());
            CallOutput {
                status: status::CALL_SQL_ERROR,
                payload: w.into_inner(),
            }
        }
        Error::Aborted(reason) => CallOutput {
            status: status::CALL_ABORT,
            payload: reason.into_bytes(),
        },
        other => CallOutput {
            status: status::CALL_ABORT,
            payload: other.to_string().into_bytes(),
        },
    }
}

/// Encodes procedure arguments as `ohm_call` expects them pending: for
/// calling `Module::call` natively (`encode_args((7i64, "x"))`).
pub fn encode_args<P: Params>(args: P) -> Result<Vec<u8>> {
    let mut w = Writer::new();
    w.len(args.count());
    args.encode(&mut w)?;
    Ok(w.into_inner())
}

/// What the caller of a procedure sees: a `CallOutput`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// CALL_OK with one value (NULL for a procedure returning `()`).
    Value(Value),
    /// CALL_OK with a row set.
    Rows(Rows),
    /// CALL_ABORT: the procedure's reason.
    Aborted(String),
    /// CALL_SQL_ERROR: a statement failed and the procedure passed it on.
    Sql {
        /// Why the statement failed.
        code: ErrorCode,
        /// The host's message.
        message: String,
    },
    /// CALL_BAD_ARGS: the arguments did not fit the parameters.
    BadArgs(String),
}

impl CallOutput {
    /// Decodes the status and payload into what a caller sees.
    pub fn reply(&self) -> core::result::Result<Reply, DecodeError> {
        let mut r = Reader::new(&self.payload);
        let text = |r: &mut Reader<'_>| -> core::result::Result<String, DecodeError> {
            let at = r.offset();
            let rest = r.take(r.remaining(), "message")?;
            String::from_utf8(rest.to_vec()).map_err(|_| DecodeError {
                offset: at,
                message: "message is not valid UTF-8".into(),
            })
        };
        let reply = match self.status {
            status::CALL_OK => match r.u8("result kind")? {
                result_kind::VALUE => Reply::Value(Value::from_raw(r.value()?)),
                result_kind::ROWS => Reply::Rows(Rows::decode(&mut r)?),
                k => return Err(r.error(format!("unknown result kind {k}"))),
            },
            status::CALL_ABORT => Reply::Aborted(text(&mut r)?),
            status::CALL_BAD_ARGS => Reply::BadArgs(text(&mut r)?),
            status::CALL_SQL_ERROR => {
                let n = r.u32("error code")?;
                let code = ErrorCode::from_u32(n)
                    .ok_or_else(|| r.error(format!("unknown error code {n}")))?;
                Reply::Sql {
                    code,
                    message: text(&mut r)?,
                }
            }
            s => return Err(r.error(format!("unknown call status {s}"))),
        };
        r.finish()?;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::abort;

    const PARAMS: &[Param] = &[
        Param {
            name: "id",
            ty: abi::ty::I64,
        },
        Param {
            name: "small",
            ty: abi::ty::I16,
        },
    ];

    #[test]
    fn arguments_are_checked_by_count_type_and_range() {
        let ok = encode_args((1i64, 2i32)).unwrap();
        let mut a = Args::new(&ok, PARAMS).unwrap();
        assert_eq!(a.read::<i64>().unwrap(), 1);
        assert_eq!(a.read::<i16>().unwrap(), 2);
        a.finish().unwrap();

        let reply = |out: CallOutput| out.reply().unwrap();
        let few = encode_args((1i64,)).unwrap();
        let e = Args::new(&few, PARAMS).err().unwrap();
        assert_eq!(
            reply(e),
            Reply::BadArgs("expected 2 arguments (id, small), got 1".into())
        );
        let far = encode_args((1i64, 1i64 << 20)).unwrap();
        let mut a = Args::new(&far, PARAMS).unwrap();
        a.read::<i64>().unwrap();
        let e = a.read::<i16>().err().unwrap();
        assert_eq!(
            reply(e),
            Reply::BadArgs(
                "parameter 1 (small): 1048576 is out of range for SMALLINT (-32768..=32767)".into()
            )
        );
        let mut cut = ok.clone();
        cut.pop();
        let mut a = Args::new(&cut, PARAMS).unwrap();
        a.read::<i64>().unwrap();
        let e = a.read::<i16>().err().unwrap();
        assert!(
            matches!(reply(e), Reply::BadArgs(m) if m.starts_with("argument 1 (small) did not decode"))
        );
    }

    #[test]
    fn results_and_errors_map_to_statuses() {
        let out = output::<i64, Error>(Ok(3));
        assert_eq!(
            (out.status, out.reply().unwrap()),
            (status::CALL_OK, Reply::Value(Value::Int(3)))
        );
        let out = output::<(), _>(Err(abort("no")));
        assert_eq!(
            (out.status, out.reply().unwrap()),
            (status::CALL_ABORT, Reply::Aborted("no".into()))
        );
        let out = output::<(), _>(Err(Error::Sql {
            code: ErrorCode::NotNull,
            statement: 0,
            message: "x is NULL".into(),
        }));
        assert_eq!(out.status, status::CALL_SQL_ERROR);
        assert_eq!(&out.payload[..4], &2u32.to_le_bytes());
        assert_eq!(
            out.reply().unwrap(),
            Reply::Sql {
                code: ErrorCode::NotNull,
                message: "x is NULL".into()
            }
        );
        let out = output::<(), _>(Err(Error::Type("column 0: bad".into())));
        assert_eq!(out.reply().unwrap(), Reply::Aborted("column 0: bad".into()));
        let mut ragged = Rows::new(["a"]);
        ragged.push(vec![]);
        let out = output::<Rows, Error>(Ok(ragged));
        assert_eq!(out.status, status::CALL_ABORT);
        assert!(
            matches!(out.reply().unwrap(), Reply::Aborted(m) if m.contains("result row 0 has 0 values"))
        );
    }
}
