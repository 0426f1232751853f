//! Operations on single values: arithmetic with overflow checks, SQL
//! comparison, CAST, LIKE and the scalar function library.
//!
//! Owns: the semantics of one operator or function applied to values.
//! Must not: know about rows, plans or storage. Pure functions, no I/O.
//!
//! IMPLEMENTATION NOTE FOR THE OPS HELPER: the signatures below are the
//! contract the planner/executor codes against. Replace every `todo!()`.

use super::error::SqlError;
use crate::types::{DataType, Value};
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// `a op b`. NULL in, NULL out. Int op Int stays Int (division truncates
/// toward zero); overflow is an error ("bigint out of range"); division or
/// modulo by zero is an error ("division by zero"). Int with Double -> Double;
/// Decimal with Int -> Decimal; Decimal with Double -> Double. Bool, Text,
/// Bytes, Timestamp operands -> a type error naming the operator and both types.
pub fn arith(_op: ArithOp, _a: &Value, _b: &Value) -> Result<Value, SqlError> {
    todo!()
}

/// Unary minus. NULL -> NULL; i64::MIN -> overflow error.
pub fn negate(_v: &Value) -> Result<Value, SqlError> {
    todo!()
}

/// SQL comparison: `Ok(None)` if either side is NULL. Numbers compare by value
/// across Int/Double/Decimal; text by bytes; bool, bytes, timestamps with
/// their own kind. Comparing different families (text with a number) is a
/// type error naming both types.
pub fn compare(_a: &Value, _b: &Value) -> Result<Option<Ordering>, SqlError> {
    todo!()
}

/// CAST(v AS ty), PostgreSQL rules: text parses strictly (leading/trailing
/// spaces allowed), a failed parse is an error naming the value and type;
/// double -> integer rounds half away from zero; out-of-range is an error;
/// bool <-> integer; anything -> text renders it; VARCHAR(n) truncates on an
/// explicit cast; DECIMAL(p,s) rounds to scale s and errors past precision p.
pub fn cast(_v: &Value, _ty: DataType) -> Result<Value, SqlError> {
    todo!()
}

/// `s LIKE pattern` with `%` and `_`, an optional escape character, case
/// sensitive unless `case_insensitive` (ILIKE).
pub fn like(_s: &str, _pattern: &str, _escape: Option<char>, _case_insensitive: bool) -> bool {
    todo!()
}

/// Scalar functions by lower-case name, with already-evaluated arguments:
/// abs, length/char_length, upper, lower, substr/substring, trim/ltrim/rtrim,
/// replace, round, floor, ceil/ceiling, sqrt, power, mod, sign, concat,
/// greatest, least, coalesce and nullif are handled by the caller (they are
/// lazy). Returns `Ok(None)` if the name is unknown (the caller reports it),
/// an error for wrong argument count or types.
pub fn call_scalar(_name: &str, _args: &[Value]) -> Result<Option<Value>, SqlError> {
    todo!()
}

/// The result type of a scalar function given its argument types (None for
/// an argument that is a NULL literal), or None if the name is unknown.
pub fn scalar_return_type(_name: &str, _args: &[Option<DataType>]) -> Option<DataType> {
    todo!()
}
