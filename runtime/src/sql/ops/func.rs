//! The scalar function library's front: name lookup, arity checks, NULL
//! strictness and result types. Bodies live in `func_num` and `func_text`.

use super::{arith, compare, decimal_type, func_num, func_text, kind_list, ArithOp, SqlError};
use crate::types::{DataType, Value};
use std::cmp::Ordering;

/// Accepted argument counts: (min, max), max None for variadic.
fn arity(name: &str) -> Option<(usize, Option<usize>)> {
    let a = match name {
        "abs" | "sign" | "floor" | "ceil" | "ceiling" | "sqrt" | "exp" | "ln" => (1, Some(1)),
        "round" | "trunc" | "log" => (1, Some(2)),
        "power" | "pow" | "mod" => (2, Some(2)),
        "length" | "char_length" | "character_length" | "octet_length" => (1, Some(1)),
        "upper" | "lower" | "reverse" => (1, Some(1)),
        "substr" | "substring" | "lpad" | "rpad" => (2, Some(3)),
        "trim" | "btrim" | "ltrim" | "rtrim" => (1, Some(2)),
        "replace" => (3, Some(3)),
        "left" | "right" | "repeat" | "position" | "strpos" | "nullif" => (2, Some(2)),
        "concat" | "greatest" | "least" | "coalesce" => (1, None),
        _ => return super::func_time::arity(name),
    };
    Some(a)
}

fn arity_error(name: &str, (min, max): (usize, Option<usize>), got: usize) -> SqlError {
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    let expected = match max {
        None => format!("at least {min} {}", plural(min)),
        Some(max) if max == min => format!("{min} {}", plural(min)),
        Some(max) if max == min + 1 => format!("{min} or {max} arguments"),
        Some(max) => format!("{min} to {max} arguments"),
    };
    SqlError::exec(format!("function {name} expects {expected}, got {got}"))
}

/// The error for arguments of types a function does not take.
pub(crate) fn no_such_signature(name: &str, args: &[Value]) -> SqlError {
    SqlError::exec(format!(
        "function {name}({}) does not exist",
        kind_list(args)
    ))
}

/// Scalar functions by lower-case name, with already-evaluated arguments:
/// abs, sign, round, floor, ceil/ceiling, trunc, sqrt, power/pow, exp, ln,
/// log, mod, length/char_length/character_length, octet_length, upper, lower,
/// substr/substring, trim/btrim/ltrim/rtrim, replace, reverse, left, right,
/// repeat, position/strpos, concat, lpad/rpad, greatest, least, and (eager
/// forms of) coalesce and nullif. NULL in any argument gives NULL, except
/// concat (skips NULLs), greatest/least (ignore NULLs), coalesce and nullif.
/// Returns `Ok(None)` if the name is unknown (the caller reports it), an
/// error for wrong argument count or types.
pub fn call_scalar(name: &str, args: &[Value]) -> Result<Option<Value>, SqlError> {
    let Some(ar) = arity(name) else {
        return Ok(None);
    };
    if args.len() < ar.0 || ar.1.is_some_and(|max| args.len() > max) {
        return Err(arity_error(name, ar, args.len()));
    }
    let v = match name {
        "concat" => func_text::concat(args),
        "greatest" => extreme(args, Ordering::Greater)?,
        "least" => extreme(args, Ordering::Less)?,
        "coalesce" => args
            .iter()
            .find(|a| !a.is_null())
            .cloned()
            .unwrap_or(Value::Null),
        "nullif" => match compare(&args[0], &args[1])? {
            Some(Ordering::Equal) => Value::Null,
            _ => args[0].clone(),
        },
        _ if args.iter().any(Value::is_null) => Value::Null,
        "mod" => arith(ArithOp::Mod, &args[0], &args[1])?,
        _ => match func_num::call(name, args)? {
            Some(v) => v,
            None => match super::func_time::call(name, args)? {
                Some(v) => v,
                None => func_text::call(name, args)?,
            },
        },
    };
    Ok(Some(v))
}

/// greatest / least: NULLs ignored, all NULL gives NULL; the first of equal
/// values wins.
fn extreme(args: &[Value], want: Ordering) -> Result<Value, SqlError> {
    let mut best: Option<&Value> = None;
    for a in args.iter().filter(|a| !a.is_null()) {
        best = match best {
            Some(b) if compare(a, b)? != Some(want) => Some(b),
            _ => Some(a),
        };
    }
    Ok(best.cloned().unwrap_or(Value::Null))
}

/// The type several values are unified to (greatest, least, coalesce,
/// CASE arms): numbers widen Int -> Decimal -> Double; identical types stay;
/// NULL literals are ignored; None if all are NULL; otherwise the first
/// known type (the runtime comparison reports real mismatches).
pub fn common_type(types: &[Option<DataType>]) -> Option<DataType> {
    let known: Vec<DataType> = types.iter().flatten().copied().collect();
    let first = *known.first()?;
    if known.iter().all(|t| *t == first) {
        return Some(first);
    }
    if known.iter().all(|t| t.is_numeric()) {
        if known.contains(&DataType::Double) {
            return Some(DataType::Double);
        }
        let scale = known
            .iter()
            .filter_map(|t| match t {
                DataType::Decimal { scale, .. } => Some(*scale),
                _ => None,
            })
            .max();
        return Some(scale.map_or(DataType::BigInt, decimal_type));
    }
    if known.iter().all(|t| t.is_text()) {
        return Some(DataType::Varchar(None));
    }
    Some(first)
}

/// The result type of a scalar function given its argument types (None for
/// an argument that is a NULL literal), or None if the name is unknown. A
/// function whose arguments are all NULL literals types as PostgreSQL
/// resolves `unknown`: DOUBLE for numeric functions, TEXT otherwise.
pub fn scalar_return_type(name: &str, args: &[Option<DataType>]) -> Option<DataType> {
    let first = args.first().copied().flatten();
    let text = DataType::Varchar(None);
    let ty = match name {
        "abs" | "sign" => same_numeric(first, None),
        "round" | "trunc" if args.len() >= 2 => same_numeric(first, None),
        "round" | "trunc" | "floor" | "ceil" | "ceiling" => same_numeric(first, Some(0)),
        "sqrt" | "power" | "pow" | "exp" | "ln" | "log" => DataType::Double,
        "mod" => {
            let b = args.get(1).copied().flatten();
            super::arith_return_type(first, b).unwrap_or(DataType::BigInt)
        }
        "length" | "char_length" | "character_length" | "octet_length" | "position" | "strpos" => {
            DataType::BigInt
        }
        "substr" | "substring" if matches!(first, Some(DataType::Varbinary(_))) => {
            DataType::Varbinary(None)
        }
        "upper" | "lower" | "substr" | "substring" | "trim" | "btrim" | "ltrim" | "rtrim"
        | "replace" | "reverse" | "left" | "right" | "repeat" | "concat" | "lpad" | "rpad" => text,
        "greatest" | "least" | "coalesce" => common_type(args).unwrap_or(text),
        "nullif" => first.unwrap_or(text),
        _ => return super::func_time::return_type(name, args),
    };
    Some(ty)
}

/// abs/sign/round...: integers give BIGINT, doubles DOUBLE, decimals DECIMAL
/// with the input's scale (or `scale` if given); NULL literal gives DOUBLE.
fn same_numeric(t: Option<DataType>, scale: Option<u8>) -> DataType {
    match t {
        Some(t) if t.is_integer() => DataType::BigInt,
        Some(DataType::Decimal { scale: s, .. }) => decimal_type(scale.unwrap_or(s)),
        _ => DataType::Double,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, args: &[Value]) -> Result<Value, String> {
        match call_scalar(name, args) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err("unknown".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn unknown_and_arity() {
        assert_eq!(call_scalar("random", &[]), Ok(None));
        assert_eq!(call_scalar("typeof", &[Value::Int(1)]), Ok(None));
        assert_eq!(
            call("substr", &[Value::text("a")]).unwrap_err(),
            "function substr expects 2 or 3 arguments, got 1"
        );
        assert_eq!(
            call("abs", &[]).unwrap_err(),
            "function abs expects 1 argument, got 0"
        );
        assert_eq!(
            call("replace", &[Value::Null]).unwrap_err(),
            "function replace expects 3 arguments, got 1"
        );
        assert_eq!(
            call("greatest", &[]).unwrap_err(),
            "function greatest expects at least 1 argument, got 0"
        );
        assert_eq!(
            call("power", &[Value::Int(1)]).unwrap_err(),
            "function power expects 2 arguments, got 1"
        );
    }

    #[test]
    fn strict_null_handling() {
        for (name, args) in [
            ("abs", vec![Value::Null]),
            ("round", vec![Value::Double(1.5), Value::Null]),
            ("mod", vec![Value::Int(1), Value::Null]),
            ("substr", vec![Value::text("abc"), Value::Null]),
            (
                "replace",
                vec![Value::text("a"), Value::Null, Value::text("b")],
            ),
            ("lpad", vec![Value::Null, Value::Int(3)]),
            ("upper", vec![Value::Null]),
        ] {
            assert_eq!(
                call(name, &args).unwrap().kind(),
                crate::types::ValueKind::Null,
                "{name}"
            );
        }
    }

    #[test]
    fn greatest_least_coalesce_nullif() {
        let args = [
            Value::Int(3),
            Value::Null,
            Value::Double(7.5),
            Value::Int(-1),
        ];
        assert!(matches!(call("greatest", &args).unwrap(), Value::Double(d) if d == 7.5));
        assert!(matches!(call("least", &args).unwrap(), Value::Int(-1)));
        assert!(call("greatest", &[Value::Null, Value::Null])
            .unwrap()
            .is_null());
        let nan = Value::Double(f64::NAN);
        assert!(
            matches!(call("greatest", &[Value::Int(1), nan]).unwrap(), Value::Double(d) if d.is_nan())
        );
        assert_eq!(
            call("least", &[Value::Int(1), Value::text("a")]).unwrap_err(),
            "cannot compare TEXT with BIGINT"
        );
        assert!(matches!(
            call("coalesce", &[Value::Null, Value::Int(2)]).unwrap(),
            Value::Int(2)
        ));
        assert!(call("nullif", &[Value::Int(2), Value::Double(2.0)])
            .unwrap()
            .is_null());
        assert!(matches!(
            call("nullif", &[Value::Int(2), Value::Int(3)]).unwrap(),
            Value::Int(2)
        ));
        assert!(matches!(
            call("nullif", &[Value::Int(2), Value::Null]).unwrap(),
            Value::Int(2)
        ));
    }

    #[test]
    fn return_types() {
        let d = |p, s| {
            Some(DataType::Decimal {
                precision: p,
                scale: s,
            })
        };
        let rt = scalar_return_type;
        assert_eq!(
            rt("abs", &[Some(DataType::SmallInt)]),
            Some(DataType::BigInt)
        );
        assert_eq!(rt("abs", &[d(10, 3)]), Some(decimal_type(3)));
        assert_eq!(rt("round", &[d(10, 3)]), Some(decimal_type(0)));
        assert_eq!(
            rt("round", &[d(10, 3), Some(DataType::Integer)]),
            Some(decimal_type(3))
        );
        assert_eq!(
            rt("floor", &[Some(DataType::Double)]),
            Some(DataType::Double)
        );
        assert_eq!(rt("abs", &[None]), Some(DataType::Double));
        assert_eq!(
            rt("sqrt", &[Some(DataType::Integer)]),
            Some(DataType::Double)
        );
        assert_eq!(
            rt("mod", &[Some(DataType::Integer), Some(DataType::BigInt)]),
            Some(DataType::BigInt)
        );
        assert_eq!(
            rt("length", &[Some(DataType::Varchar(Some(3)))]),
            Some(DataType::BigInt)
        );
        assert_eq!(rt("upper", &[None]), Some(DataType::Varchar(None)));
        assert_eq!(
            rt("substr", &[Some(DataType::Varbinary(None)), None]),
            Some(DataType::Varbinary(None))
        );
        assert_eq!(
            rt(
                "greatest",
                &[Some(DataType::Integer), None, Some(DataType::Double)]
            ),
            Some(DataType::Double)
        );
        assert_eq!(
            rt("coalesce", &[Some(DataType::Integer), d(5, 2)]),
            Some(decimal_type(2))
        );
        assert_eq!(rt("coalesce", &[None, None]), Some(DataType::Varchar(None)));
        assert_eq!(
            rt(
                "coalesce",
                &[Some(DataType::Integer), Some(DataType::SmallInt)]
            ),
            Some(DataType::BigInt)
        );
        assert_eq!(rt("nope", &[]), None);
        assert_eq!(common_type(&[None]), None);
    }
}
