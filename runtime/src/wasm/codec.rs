//! Runtime values ⇄ the ABI encoding (`ohm_sdk::abi`), and the typed edges
//! of a call: arguments checked against the declared parameter types, and
//! the procedure result checked against the declared result type.
//!
//! Owns: the mapping between `types::Value` and `abi::RawValue`, row-set
//! encoding, argument encoding, result decoding.
//! Must not: execute SQL or touch guest memory; every byte layout comes
//! from `abi` (this file only chooses which layout to read or write).

use super::ProcOutput;
use crate::sql::{ColumnInfo, RowSet};
use crate::types::{DataType, Interval, Value};
use ohm_sdk::abi::{self, ty, DecodeError, ParamDesc, RawValue, Reader, Writer};
use rust_decimal::Decimal;
use std::sync::Arc;

/// Columns a row set from a guest may have: NULLs decode to values far
/// larger than their one byte, so a wide row set would amplify memory.
pub const ROW_SET_COLUMNS_MAX: usize = 4096;

/// Appends one value in its ABI encoding.
pub fn write_value(w: &mut Writer, v: &Value) {
    match v {
        Value::Null => w.null(),
        Value::Bool(b) => w.bool_value(*b),
        Value::Int(i) => w.int_value(*i),
        Value::Double(d) => w.double_value(*d),
        // rust_decimal keeps scale <= 28 and a 96-bit mantissa: both fit.
        Value::Decimal(d) => w.decimal_value(d.mantissa(), d.scale() as u8),
        Value::Text(s) => w.text_value(s),
        Value::Bytes(b) => w.bytes_value(b),
        Value::Timestamp(t) => w.timestamp_value(*t),
        Value::TimestampTz(t) => w.timestamptz_value(*t),
        Value::Date(d) => w.date_value(*d),
        // The SQL layer keeps TIME in 0..=24:00:00, the range the ABI allows.
        Value::Time(t) => w.time_value(*t),
        Value::Interval(i) => w.interval_value(i.months, i.days, i.micros),
        Value::Uuid(u) => w.uuid_value(u),
    }
}

/// A decoded value as a runtime value (copies text and bytes).
pub fn from_raw(raw: RawValue<'_>) -> Result<Value, String> {
    Ok(match raw {
        RawValue::Null => Value::Null,
        RawValue::Bool(b) => Value::Bool(b),
        RawValue::Int(i) => Value::Int(i),
        RawValue::Double(d) => Value::Double(d),
        RawValue::Decimal { mantissa, scale } => Value::Decimal(
            Decimal::try_from_i128_with_scale(mantissa, scale.into())
                .map_err(|_| format!("decimal mantissa {mantissa} does not fit in 96 bits"))?,
        ),
        RawValue::Text(s) => Value::text(s),
        RawValue::Bytes(b) => Value::Bytes(Arc::from(b)),
        RawValue::Timestamp(t) => Value::Timestamp(t),
        RawValue::TimestampTz(t) => Value::TimestampTz(t),
        RawValue::Date(d) => Value::Date(d),
        RawValue::Time(t) => Value::Time(t),
        RawValue::Interval {
            months,
            days,
            micros,
        } => Value::Interval(Interval::new(months, days, micros)),
        RawValue::Uuid(u) => Value::Uuid(u),
    })
}

/// Reads one value from untrusted bytes.
pub fn read_value(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
    let at = r.offset();
    let raw = r.value()?;
    from_raw(raw).map_err(|message| DecodeError {
        offset: at,
        message,
    })
}

/// Appends a row set's header: column count and names.
pub fn write_columns(w: &mut Writer, columns: &[ColumnInfo]) {
    w.len(columns.len());
    for c in columns {
        w.str(&c.name);
    }
}

/// Appends a whole row set (header, row count, rows).
pub fn write_row_set(w: &mut Writer, rows: &RowSet) {
    write_columns(w, &rows.columns);
    w.len(rows.rows.len());
    for row in &rows.rows {
        for v in row {
            write_value(w, v);
        }
    }
}

/// Reads a row set of at most `rows_max` rows; each column is typed by its
/// first non-NULL value (a procedure's rows carry no declared types).
pub fn read_row_set(r: &mut Reader<'_>, rows_max: u64) -> Result<RowSet, DecodeError> {
    // Every name takes at least its 4-byte length.
    let ncols = r.count((r.remaining() / 4).min(ROW_SET_COLUMNS_MAX), "column count")?;
    let mut names = Vec::with_capacity(ncols);
    for _ in 0..ncols {
        names.push(r.str("column name")?.to_string());
    }
    // Every value takes at least one byte, so rows are bounded by what is
    // left unless a row has no columns.
    let per_row_bound = r.remaining().checked_div(ncols).unwrap_or(usize::MAX);
    let rows_bound = usize::try_from(rows_max)
        .unwrap_or(usize::MAX)
        .min(per_row_bound);
    let nrows = r.count(rows_bound, "row count")?;
    let mut rows = Vec::with_capacity(nrows);
    for _ in 0..nrows {
        let mut row = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            row.push(read_value(r)?);
        }
        rows.push(row);
    }
    let columns = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| ColumnInfo {
            name,
            ty: rows
                .iter()
                .filter_map(|row| row.get(i))
                .find(|v| !v.is_null())
                .and_then(value_type),
        })
        .collect::<Vec<_>>();
    Ok(RowSet {
        columns: columns.into(),
        rows,
    })
}

/// The column type a value most naturally has.
fn value_type(v: &Value) -> Option<DataType> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(_) => DataType::Boolean,
        Value::Int(_) => DataType::BigInt,
        Value::Double(_) => DataType::Double,
        Value::Decimal(d) => DataType::Decimal {
            precision: 28,
            scale: d.scale() as u8,
        },
        Value::Text(_) => DataType::Varchar(None),
        Value::Bytes(_) => DataType::Varbinary(None),
        Value::Timestamp(_) => DataType::Timestamp,
        Value::TimestampTz(_) => DataType::TimestampTz,
        Value::Date(_) => DataType::Date,
        Value::Time(_) => DataType::Time,
        Value::Interval(_) => DataType::Interval,
        Value::Uuid(_) => DataType::Uuid,
    })
}

/// Encodes call arguments (`u32` count, then the values) after checking
/// each against its parameter's declared type. Integers widen to DOUBLE
/// (when exact) and DECIMAL; nothing else converts (a DATE is not a
/// TIMESTAMP, nor a TIMESTAMP a TIMESTAMPTZ: the caller retypes wire values
/// by the declared types first).
pub fn encode_args(params: &[ParamDesc], args: &[Value], w: &mut Writer) -> Result<(), String> {
    if args.len() != params.len() {
        return Err(format!(
            "takes {} arguments, {} given",
            params.len(),
            args.len()
        ));
    }
    w.len(args.len());
    for (p, v) in params.iter().zip(args) {
        write_typed(w, p.ty, v).map_err(|m| format!("argument {}: {m}", p.name))?;
    }
    Ok(())
}

fn write_typed(w: &mut Writer, t: u8, v: &Value) -> Result<(), String> {
    let mismatch = || format!("expected {}, got {}", ty::name(t), v.kind());
    match (ty::base(t), v) {
        (_, Value::Null) if t & ty::NULLABLE != 0 => w.null(),
        (_, Value::Null) => return Err(format!("expected {}, got NULL", ty::name(t))),
        (ty::I64 | ty::I32 | ty::I16, Value::Int(i)) => {
            check_int_range(t, *i)?;
            w.int_value(*i)
        }
        (ty::F64, Value::Double(d)) => w.double_value(*d),
        (ty::F64, Value::Int(i)) if (*i as f64) as i64 == *i && i.unsigned_abs() <= 1 << 53 => {
            w.double_value(*i as f64)
        }
        (ty::DECIMAL, Value::Int(i)) => write_value(w, &Value::Decimal(Decimal::from(*i))),
        (ty::TIME, Value::Time(us)) => {
            if !(0..=abi::TIME_MICROS_MAX).contains(us) {
                return Err(format!(
                    "TIME of {us} microseconds is outside 00:00:00..=24:00:00"
                ));
            }
            w.time_value(*us)
        }
        (base, v) if same_type(base, v) => write_value(w, v),
        _ => return Err(mismatch()),
    }
    Ok(())
}

fn check_int_range(t: u8, i: i64) -> Result<(), String> {
    let (lo, hi) = match ty::base(t) {
        ty::I32 => (i32::MIN as i64, i32::MAX as i64),
        ty::I16 => (i16::MIN as i64, i16::MAX as i64),
        _ => return Ok(()),
    };
    if (lo..=hi).contains(&i) {
        Ok(())
    } else {
        Err(format!("{i} is out of range for {}", ty::name(t)))
    }
}

/// Whether `v` is exactly of declared type `t` (results are not converted).
fn value_has_type(t: u8, v: &Value) -> bool {
    match (ty::base(t), v) {
        (_, Value::Null) => t & ty::NULLABLE != 0 || t == ty::UNIT,
        (ty::I64 | ty::I32 | ty::I16, Value::Int(i)) => check_int_range(t, *i).is_ok(),
        (base, v) => same_type(base, v),
    }
}

/// Whether a non-integer, non-NULL `v` is of the type base code `base`
/// names: one type code per value variant, no conversions.
fn same_type(base: u8, v: &Value) -> bool {
    matches!(
        (base, v),
        (ty::BOOL, Value::Bool(_))
            | (ty::F64, Value::Double(_))
            | (ty::DECIMAL, Value::Decimal(_))
            | (ty::TEXT, Value::Text(_))
            | (ty::BYTES, Value::Bytes(_))
            | (ty::TIMESTAMP, Value::Timestamp(_))
            | (ty::TIMESTAMPTZ, Value::TimestampTz(_))
            | (ty::DATE, Value::Date(_))
            | (ty::TIME, Value::Time(_))
            | (ty::INTERVAL, Value::Interval(_))
            | (ty::UUID, Value::Uuid(_))
    )
}

/// Decodes a `CALL_OK` payload and checks it against the declared result
/// type `returns`. A row-set result may have at most `rows_max` rows.
pub fn decode_result(returns: u8, payload: &[u8], rows_max: u64) -> Result<ProcOutput, String> {
    let mut r = Reader::new(payload);
    let fail = |e: DecodeError| format!("result does not decode: {e}");
    let out = match r.u8("result kind").map_err(fail)? {
        abi::result_kind::VALUE => {
            let v = read_value(&mut r).map_err(fail)?;
            if returns == ty::ROWS || !value_has_type(returns, &v) {
                return Err(format!(
                    "result is {} but the procedure declares {}",
                    kind_name(&v),
                    ty::name(returns)
                ));
            }
            ProcOutput::Value(v)
        }
        abi::result_kind::ROWS => {
            if returns != ty::ROWS {
                return Err(format!(
                    "result is a row set but the procedure declares {}",
                    ty::name(returns)
                ));
            }
            ProcOutput::Rows(read_row_set(&mut r, rows_max).map_err(fail)?)
        }
        k => return Err(format!("result kind is {k}, not VALUE (0) or ROWS (1)")),
    };
    r.finish().map_err(fail)?;
    Ok(out)
}

fn kind_name(v: &Value) -> String {
    match v {
        Value::Int(i) => format!("INTEGER {i}"),
        other => other.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(t: u8) -> ParamDesc {
        ParamDesc {
            name: "p".into(),
            ty: t,
        }
    }

    fn round_trip(v: Value) -> Value {
        let mut w = Writer::new();
        write_value(&mut w, &v);
        let mut r = Reader::new(&w.buf);
        let back = read_value(&mut r).unwrap();
        r.finish().unwrap();
        back
    }

    #[test]
    fn values_round_trip() {
        for v in [
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Double(-0.5),
            Value::Decimal(Decimal::new(-12345, 3)),
            Value::text("héllo wörld, longer than twenty-three bytes"),
            Value::Bytes(Arc::from(&[0u8, 1, 255][..])),
            Value::Timestamp(1_700_000_000_000_000),
            Value::TimestampTz(-1),
            Value::Date(i32::MIN),
            Value::Time(0),
            Value::Time(abi::TIME_MICROS_MAX),
            Value::Interval(Interval::new(-14, 3, i64::MAX)),
            Value::Uuid(*b"0123456789abcdef"),
        ] {
            assert_eq!(round_trip(v.clone()), v);
        }
    }

    #[test]
    fn dates_and_times_are_typed_exactly() {
        let mut w = Writer::new();
        let e = encode_args(&[param(ty::TIMESTAMP)], &[Value::Date(1)], &mut w).unwrap_err();
        assert_eq!(e, "argument p: expected TIMESTAMP, got DATE");
        let e = encode_args(&[param(ty::TIMESTAMPTZ)], &[Value::Timestamp(1)], &mut w).unwrap_err();
        assert_eq!(e, "argument p: expected TIMESTAMPTZ, got TIMESTAMP");
        let e = encode_args(&[param(ty::UUID)], &[Value::text("x")], &mut w).unwrap_err();
        assert_eq!(e, "argument p: expected UUID, got TEXT");
        let e = encode_args(&[param(ty::TIME)], &[Value::Time(-1)], &mut w).unwrap_err();
        assert_eq!(
            e,
            "argument p: TIME of -1 microseconds is outside 00:00:00..=24:00:00"
        );
        let params = [
            param(ty::TIMESTAMPTZ),
            param(ty::DATE),
            param(ty::TIME | ty::NULLABLE),
            param(ty::INTERVAL),
            param(ty::UUID),
        ];
        let args = [
            Value::TimestampTz(5),
            Value::Date(-3),
            Value::Null,
            Value::Interval(Interval::new(1, 2, 3)),
            Value::Uuid([7; 16]),
        ];
        let mut w = Writer::new();
        encode_args(&params, &args, &mut w).unwrap();
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u32("n").unwrap(), 5);
        for a in &args {
            assert_eq!(read_value(&mut r).unwrap(), *a);
        }
        r.finish().unwrap();
        let mut w = Writer::new();
        w.u8(abi::result_kind::VALUE);
        w.date_value(7);
        let out = decode_result(ty::DATE | ty::NULLABLE, &w.buf, 10);
        assert_eq!(out, Ok(ProcOutput::Value(Value::Date(7))));
        let e = decode_result(ty::TIMESTAMP, &w.buf, 10).unwrap_err();
        assert_eq!(e, "result is DATE but the procedure declares TIMESTAMP");
        let mut w = Writer::new();
        w.u8(abi::result_kind::VALUE);
        w.time_value(abi::TIME_MICROS_MAX + 1);
        let e = decode_result(ty::TIME, &w.buf, 10).unwrap_err();
        assert!(e.contains("outside 0..=86400000000 (at byte 2)"), "{e}");
    }

    #[test]
    fn decimal_over_96_bits_is_an_error() {
        let mut w = Writer::new();
        w.decimal_value(i128::MAX, 0);
        let e = read_value(&mut Reader::new(&w.buf)).unwrap_err();
        assert!(e.message.contains("does not fit in 96 bits"), "{e}");
    }

    #[test]
    fn args_are_checked_against_declared_types() {
        let mut w = Writer::new();
        let e = encode_args(&[param(ty::I32)], &[Value::Int(1 << 40)], &mut w).unwrap_err();
        assert_eq!(e, "argument p: 1099511627776 is out of range for INTEGER");
        let e = encode_args(&[param(ty::TEXT)], &[Value::Null], &mut w).unwrap_err();
        assert_eq!(e, "argument p: expected TEXT, got NULL");
        let e = encode_args(&[param(ty::TEXT)], &[Value::Int(1)], &mut w).unwrap_err();
        assert_eq!(e, "argument p: expected TEXT, got BIGINT");
        let e = encode_args(&[param(ty::TEXT)], &[], &mut w).unwrap_err();
        assert_eq!(e, "takes 1 arguments, 0 given");
        let mut w = Writer::new();
        let params = [
            param(ty::F64),
            param(ty::I16 | ty::NULLABLE),
            param(ty::DECIMAL),
        ];
        encode_args(
            &params,
            &[Value::Int(3), Value::Null, Value::Int(7)],
            &mut w,
        )
        .unwrap();
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u32("n").unwrap(), 3);
        assert_eq!(read_value(&mut r).unwrap(), Value::Double(3.0));
        assert_eq!(read_value(&mut r).unwrap(), Value::Null);
        assert_eq!(
            read_value(&mut r).unwrap(),
            Value::Decimal(Decimal::from(7))
        );
    }

    #[test]
    fn results_must_match_the_declared_type() {
        let mut w = Writer::new();
        w.u8(abi::result_kind::VALUE);
        w.int_value(5);
        assert_eq!(
            decode_result(ty::I64, &w.buf, 10),
            Ok(ProcOutput::Value(Value::Int(5)))
        );
        let e = decode_result(ty::TEXT, &w.buf, 10).unwrap_err();
        assert_eq!(e, "result is INTEGER 5 but the procedure declares TEXT");
        let e = decode_result(ty::ROWS, &w.buf, 10).unwrap_err();
        assert!(e.contains("declares ROWS"), "{e}");
        let unit = [abi::result_kind::VALUE, abi::tag::NULL];
        assert_eq!(
            decode_result(ty::UNIT, &unit, 10),
            Ok(ProcOutput::Value(Value::Null))
        );
        assert!(decode_result(ty::I64, &unit, 10).is_err());
        assert!(decode_result(ty::UNIT, &[], 10).is_err());
    }

    #[test]
    fn row_sets_round_trip_and_are_bounded() {
        let rows = RowSet {
            columns: vec![
                ColumnInfo {
                    name: "a".into(),
                    ty: Some(DataType::BigInt),
                },
                ColumnInfo {
                    name: "b".into(),
                    ty: Some(DataType::Varchar(None)),
                },
                ColumnInfo {
                    name: "c".into(),
                    ty: Some(DataType::Uuid),
                },
            ]
            .into(),
            rows: vec![
                vec![Value::Int(1), Value::Null, Value::Uuid([1; 16])],
                vec![Value::Int(2), Value::text("x"), Value::Null],
            ],
        };
        let mut w = Writer::new();
        w.u8(abi::result_kind::ROWS);
        write_row_set(&mut w, &rows);
        assert_eq!(
            decode_result(ty::ROWS, &w.buf, 10),
            Ok(ProcOutput::Rows(rows))
        );
        let e = decode_result(ty::ROWS, &w.buf, 1).unwrap_err();
        assert!(e.contains("row count is 2, over the limit of 1"), "{e}");
        // A zero-column row set claiming 4 billion rows is refused up front.
        let hostile = [abi::result_kind::ROWS, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        assert!(decode_result(ty::ROWS, &hostile, 100).is_err());
    }
}
