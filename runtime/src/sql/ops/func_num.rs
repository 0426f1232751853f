//! Numeric scalar functions. Arguments arrive non-NULL with arity checked.
//!
//! Integers stay integers where the result is integral (abs, sign, round,
//! floor, ceil, trunc), decimals stay exact, and the transcendental
//! functions (sqrt, power, exp, ln, log) compute in DOUBLE.

use super::func::no_such_signature;
use super::{bigint_range, double_range, to_f64, SqlError};
use crate::types::Value;
use rust_decimal::{Decimal, RoundingStrategy};

/// Runs numeric function `name`, or returns None if it is not one.
pub(super) fn call(name: &str, args: &[Value]) -> Result<Option<Value>, SqlError> {
    let bad = || no_such_signature(name, args);
    let x = &args[0];
    let v = match name {
        "abs" => abs(x).ok_or_else(bad)??,
        "sign" => sign(x).ok_or_else(bad)?,
        "round" | "trunc" => {
            let digits = match args.get(1) {
                None => 0,
                Some(Value::Int(n)) => *n,
                Some(_) => return Err(bad()),
            };
            let away = name == "round";
            round_to(x, digits, away).ok_or_else(bad)??
        }
        "floor" | "ceil" | "ceiling" => floor_ceil(x, name == "floor").ok_or_else(bad)?,
        "sqrt" | "exp" | "ln" | "log" | "power" | "pow" => {
            if !args.iter().all(super::is_number) {
                return Err(bad());
            }
            let a = to_f64(x)?;
            let b = args.get(1).map(to_f64).transpose()?;
            Value::Double(float_fn(name, a, b)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

fn abs(x: &Value) -> Option<Result<Value, SqlError>> {
    Some(match x {
        Value::Int(i) => i.checked_abs().map(Value::Int).ok_or_else(bigint_range),
        Value::Double(d) => Ok(Value::Double(d.abs())),
        Value::Decimal(d) => Ok(Value::Decimal(d.abs())),
        _ => return None,
    })
}

fn sign(x: &Value) -> Option<Value> {
    Some(match x {
        Value::Int(i) => Value::Int(i.signum()),
        Value::Double(d) if d.is_nan() => Value::Double(*d),
        Value::Double(d) if *d == 0.0 => Value::Double(0.0),
        Value::Double(d) => Value::Double(d.signum()),
        Value::Decimal(d) if d.is_zero() => Value::Decimal(Decimal::ZERO),
        Value::Decimal(d) if d.is_sign_negative() => Value::Decimal(Decimal::NEGATIVE_ONE),
        Value::Decimal(_) => Value::Decimal(Decimal::ONE),
        _ => return None,
    })
}

fn floor_ceil(x: &Value, floor: bool) -> Option<Value> {
    Some(match x {
        Value::Int(i) => Value::Int(*i),
        Value::Double(d) => Value::Double(if floor { d.floor() } else { d.ceil() }),
        Value::Decimal(d) => Value::Decimal(if floor { d.floor() } else { d.ceil() }),
        _ => return None,
    })
}

/// round (half away from zero) or trunc (toward zero) to `digits` decimal
/// places; negative digits round to tens, hundreds, ...
fn round_to(x: &Value, digits: i64, away: bool) -> Option<Result<Value, SqlError>> {
    Some(match x {
        Value::Int(i) => round_int(*i, digits, away).map(Value::Int),
        Value::Double(d) => Ok(Value::Double(round_double(*d, digits, away))),
        Value::Decimal(d) => Ok(Value::Decimal(round_decimal(*d, digits, away))),
        _ => return None,
    })
}

fn round_int(i: i64, digits: i64, away: bool) -> Result<i64, SqlError> {
    if digits >= 0 {
        return Ok(i);
    }
    if digits < -19 {
        return Ok(0);
    }
    let m = 10i128.pow(digits.unsigned_abs() as u32);
    let v = i128::from(i);
    let q = v / m;
    let r = v % m;
    let q = if away && 2 * r.abs() >= m {
        q + r.signum()
    } else {
        q
    };
    i64::try_from(q * m).map_err(|_| bigint_range())
}

fn round_double(d: f64, digits: i64, away: bool) -> f64 {
    let op = |v: f64| if away { v.round() } else { v.trunc() };
    if !d.is_finite() {
        return d;
    }
    if digits >= 0 {
        let m = 10f64.powi(digits.min(400) as i32);
        let scaled = d * m;
        if !scaled.is_finite() || !m.is_finite() {
            return d;
        }
        // Dividing by the integral power keeps e.g. round(1.005e1, 1) exact
        // when m is representable; fall back to d if precision is exhausted.
        let r = op(scaled) / m;
        if r.is_finite() {
            r
        } else {
            d
        }
    } else {
        let m = 10f64.powi(digits.unsigned_abs().min(400) as i32);
        if !m.is_finite() {
            return 0.0 * d.signum();
        }
        op(d / m) * m
    }
}

fn round_decimal(d: Decimal, digits: i64, away: bool) -> Decimal {
    let strategy = if away {
        RoundingStrategy::MidpointAwayFromZero
    } else {
        RoundingStrategy::ToZero
    };
    if digits >= 0 {
        return d.round_dp_with_strategy(digits.min(28) as u32, strategy);
    }
    let k = digits.unsigned_abs();
    if k > 28 {
        return Decimal::ZERO;
    }
    let m = Decimal::from_i128_with_scale(10i128.pow(k as u32), 0);
    match d.checked_div(m) {
        Some(q) => q
            .round_dp_with_strategy(0, strategy)
            .checked_mul(m)
            .unwrap_or(d),
        None => d,
    }
}

fn float_fn(name: &str, a: f64, b: Option<f64>) -> Result<f64, SqlError> {
    let r = match (name, b) {
        ("sqrt", _) if a < 0.0 => {
            return Err(SqlError::exec(
                "cannot take square root of a negative number",
            ))
        }
        ("sqrt", _) => a.sqrt(),
        ("exp", _) => a.exp(),
        ("ln", _) => log_checked(a)?.ln(),
        ("log", None) => log_checked(a)?.log10(),
        ("log", Some(x)) => {
            let (base, x) = (log_checked(a)?, log_checked(x)?);
            let denom = base.ln();
            if denom == 0.0 {
                return Err(super::division_by_zero());
            }
            x.ln() / denom
        }
        (_, Some(e)) => power(a, e)?,
        _ => return Err(SqlError::exec(format!("function {name} needs 2 arguments"))),
    };
    if r.is_infinite() && a.is_finite() && b.is_none_or(f64::is_finite) {
        return Err(double_range());
    }
    Ok(r)
}

fn log_checked(x: f64) -> Result<f64, SqlError> {
    if x == 0.0 {
        return Err(SqlError::exec("cannot take logarithm of zero"));
    }
    if x < 0.0 {
        return Err(SqlError::exec("cannot take logarithm of a negative number"));
    }
    Ok(x)
}

fn power(a: f64, e: f64) -> Result<f64, SqlError> {
    if a == 0.0 && e < 0.0 {
        return Err(SqlError::exec(
            "zero raised to a negative power is undefined",
        ));
    }
    if a < 0.0 && e.fract() != 0.0 && e.is_finite() {
        return Err(SqlError::exec(
            "a negative number raised to a non-integer power yields a complex result",
        ));
    }
    Ok(a.powf(e))
}

#[cfg(test)]
mod tests {
    use super::super::call_scalar;
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Value {
        Value::Decimal(Decimal::from_str(s).unwrap())
    }

    fn call(name: &str, args: &[Value]) -> Result<Value, String> {
        match call_scalar(name, args) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err("unknown".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn same(a: Value, b: Value) {
        assert_eq!(a.kind(), b.kind(), "{a:?} vs {b:?}");
        assert_eq!(a, b);
        assert_eq!(a.to_string(), b.to_string(), "{a:?} vs {b:?}");
    }

    fn ok(name: &str, args: &[Value]) -> Value {
        call(name, args).unwrap()
    }

    #[test]
    fn abs_and_sign() {
        same(ok("abs", &[Value::Int(-5)]), Value::Int(5));
        assert_eq!(
            call("abs", &[Value::Int(i64::MIN)]).unwrap_err(),
            "bigint out of range"
        );
        same(ok("abs", &[Value::Double(-1.5)]), Value::Double(1.5));
        same(ok("abs", &[dec("-1.50")]), dec("1.50"));
        assert_eq!(
            call("abs", &[Value::text("x")]).unwrap_err(),
            "function abs(TEXT) does not exist"
        );
        same(ok("sign", &[Value::Int(-9)]), Value::Int(-1));
        same(ok("sign", &[Value::Double(0.0)]), Value::Double(0.0));
        same(ok("sign", &[Value::Double(2.5)]), Value::Double(1.0));
        same(ok("sign", &[dec("-0.1")]), dec("-1"));
        same(ok("sign", &[dec("0.0")]), dec("0"));
    }

    #[test]
    fn rounding() {
        same(ok("round", &[Value::Double(2.5)]), Value::Double(3.0));
        same(ok("round", &[Value::Double(-2.5)]), Value::Double(-3.0));
        same(
            ok("round", &[Value::Double(1.2345), Value::Int(2)]),
            Value::Double(1.23),
        );
        same(
            ok("round", &[Value::Double(1234.5), Value::Int(-2)]),
            Value::Double(1200.0),
        );
        same(ok("round", &[Value::Int(7)]), Value::Int(7));
        same(ok("round", &[Value::Int(7), Value::Int(2)]), Value::Int(7));
        same(
            ok("round", &[Value::Int(1250), Value::Int(-2)]),
            Value::Int(1300),
        );
        same(
            ok("round", &[Value::Int(-1250), Value::Int(-2)]),
            Value::Int(-1300),
        );
        same(
            ok("round", &[Value::Int(5), Value::Int(-30)]),
            Value::Int(0),
        );
        assert_eq!(
            call("round", &[Value::Int(i64::MAX), Value::Int(-1)]).unwrap_err(),
            "bigint out of range"
        );
        same(ok("round", &[dec("2.345"), Value::Int(2)]), dec("2.35"));
        same(ok("round", &[dec("-2.5")]), dec("-3"));
        same(ok("round", &[dec("1250"), Value::Int(-2)]), dec("1300"));
        same(
            ok("round", &[Value::Double(1e300), Value::Int(10)]),
            Value::Double(1e300),
        );
        assert_eq!(
            call("round", &[Value::Double(1.0), Value::text("a")]).unwrap_err(),
            "function round(DOUBLE, TEXT) does not exist"
        );
        same(ok("trunc", &[Value::Double(-2.7)]), Value::Double(-2.0));
        same(ok("trunc", &[dec("2.789"), Value::Int(1)]), dec("2.7"));
        same(
            ok("trunc", &[Value::Int(1299), Value::Int(-2)]),
            Value::Int(1200),
        );
        same(ok("floor", &[Value::Double(-2.5)]), Value::Double(-3.0));
        same(ok("ceil", &[Value::Double(-2.5)]), Value::Double(-2.0));
        same(ok("ceiling", &[dec("2.1")]), dec("3"));
        same(ok("floor", &[Value::Int(4)]), Value::Int(4));
        assert_eq!(
            call("floor", &[Value::Bool(true)]).unwrap_err(),
            "function floor(BOOLEAN) does not exist"
        );
    }

    #[test]
    fn transcendental() {
        same(ok("sqrt", &[Value::Int(16)]), Value::Double(4.0));
        same(ok("sqrt", &[dec("2.25")]), Value::Double(1.5));
        assert_eq!(
            call("sqrt", &[Value::Double(-1.0)]).unwrap_err(),
            "cannot take square root of a negative number"
        );
        same(
            ok("power", &[Value::Int(2), Value::Int(10)]),
            Value::Double(1024.0),
        );
        same(
            ok("pow", &[Value::Double(-2.0), Value::Int(3)]),
            Value::Double(-8.0),
        );
        assert_eq!(
            call("power", &[Value::Int(0), Value::Int(-1)]).unwrap_err(),
            "zero raised to a negative power is undefined"
        );
        assert_eq!(
            call("power", &[Value::Int(-8), Value::Double(0.5)]).unwrap_err(),
            "a negative number raised to a non-integer power yields a complex result"
        );
        assert_eq!(
            call("power", &[Value::Int(10), Value::Int(400)]).unwrap_err(),
            "double precision out of range"
        );
        same(ok("exp", &[Value::Int(0)]), Value::Double(1.0));
        assert_eq!(
            call("exp", &[Value::Int(1000)]).unwrap_err(),
            "double precision out of range"
        );
        same(ok("ln", &[Value::Int(1)]), Value::Double(0.0));
        assert_eq!(
            call("ln", &[Value::Int(0)]).unwrap_err(),
            "cannot take logarithm of zero"
        );
        assert_eq!(
            call("ln", &[Value::Int(-1)]).unwrap_err(),
            "cannot take logarithm of a negative number"
        );
        same(ok("log", &[Value::Int(1000)]), Value::Double(3.0));
        same(
            ok("log", &[Value::Int(2), Value::Int(8)]),
            Value::Double(3.0),
        );
        assert_eq!(
            call("log", &[Value::Int(1), Value::Int(8)]).unwrap_err(),
            "division by zero"
        );
        assert_eq!(
            call("power", &[Value::text("2"), Value::Int(1)]).unwrap_err(),
            "function power(TEXT, BIGINT) does not exist"
        );
    }

    #[test]
    fn modulo() {
        same(ok("mod", &[Value::Int(-7), Value::Int(3)]), Value::Int(-1));
        same(ok("mod", &[dec("7.5"), Value::Int(2)]), dec("1.5"));
        assert_eq!(
            call("mod", &[Value::Int(1), Value::Int(0)]).unwrap_err(),
            "division by zero"
        );
        assert_eq!(
            call("mod", &[Value::Double(1.0), Value::Int(0)]).unwrap_err(),
            "division by zero"
        );
    }
}
