//! Date and time functions: `EXTRACT` (and `date_part`), `date_trunc`,
//! `make_date`, `to_timestamp`, `age`, `timezone` (`AT TIME ZONE`).
//! PostgreSQL's definitions, with the session's zone fixed at UTC. `now()`
//! and its kin are not here: they read the transaction's timestamp, which
//! the expression evaluator holds.

use super::func::no_such_signature;
use super::{cast::date_from_days, cast::date_micros, SqlError};
use crate::types::datetime::{
    self as dt, civil_from_days, days_from_civil, Interval, USECS_PER_DAY, USECS_PER_HOUR,
    USECS_PER_MINUTE, USECS_PER_SEC,
};
use crate::types::{DataType, Value};
use rust_decimal::Decimal;

/// Argument counts of the functions here, or None if `name` is not one.
pub fn arity(name: &str) -> Option<(usize, Option<usize>)> {
    Some(match name {
        "extract" | "date_part" | "date_trunc" => (2, Some(2)),
        "make_date" => (3, Some(3)),
        "to_timestamp" => (1, Some(1)),
        "age" | "timezone" => (2, Some(2)),
        _ => return None,
    })
}

/// Result types, or None if `name` is not one of these functions.
pub fn return_type(name: &str, args: &[Option<DataType>]) -> Option<DataType> {
    Some(match name {
        "extract" => super::decimal_type(6),
        "date_part" => DataType::Double,
        "date_trunc" => match args.get(1).copied().flatten() {
            Some(DataType::Timestamp) => DataType::Timestamp,
            Some(DataType::Interval) => DataType::Interval,
            _ => DataType::TimestampTz,
        },
        "make_date" => DataType::Date,
        "to_timestamp" => DataType::TimestampTz,
        "age" => DataType::Interval,
        "timezone" => match args.get(1).copied().flatten() {
            Some(DataType::Timestamp) => DataType::TimestampTz,
            _ => DataType::Timestamp,
        },
        _ => return None,
    })
}

/// Calls one of these functions on non-NULL arguments; `Ok(None)` if the
/// name is not one.
pub fn call(name: &str, args: &[Value]) -> Result<Option<Value>, SqlError> {
    let v = match name {
        "extract" => extract(field_of(name, &args[0])?, &args[1], name)?,
        "date_part" => {
            let d = extract(field_of(name, &args[0])?, &args[1], name)?;
            match d {
                Value::Decimal(d) => Value::Double(
                    rust_decimal::prelude::ToPrimitive::to_f64(&d).unwrap_or(f64::NAN),
                ),
                other => other,
            }
        }
        "date_trunc" => date_trunc(field_of(name, &args[0])?, &args[1])?,
        "make_date" => make_date(args)?,
        "to_timestamp" => to_timestamp(&args[0])?,
        "age" => age(&args[0], &args[1])?,
        "timezone" => at_time_zone(&args[0], &args[1])?,
        _ => return Ok(None),
    };
    Ok(Some(v))
}

fn field_of<'a>(name: &str, v: &'a Value) -> Result<&'a str, SqlError> {
    match v {
        Value::Text(s) => Ok(s.as_str()),
        _ => Err(SqlError::exec(format!(
            "function {name}: the field must be text such as 'year', not {}",
            v.kind()
        ))),
    }
}

fn unit_error(field: &str, ty: &str) -> SqlError {
    SqlError::exec(format!("unit \"{field}\" not supported for type {ty}"))
}

fn int(n: i64) -> Value {
    Value::Decimal(Decimal::from(n))
}

/// `micros / 10^(6 - scale)` as a decimal with `scale` places.
fn scaled(micros: i128, scale: u32) -> Result<Value, SqlError> {
    let d = Decimal::from_i128_with_scale(micros, 6);
    let mut d = d.round_dp(scale);
    d.rescale(scale);
    Ok(Value::Decimal(d))
}

/// PostgreSQL's year of a civil year (0 is 1 BC, which it calls -1).
fn pg_year(y: i64) -> i64 {
    if y <= 0 {
        y - 1
    } else {
        y
    }
}

fn extract(field: &str, v: &Value, name: &str) -> Result<Value, SqlError> {
    let f = field.to_ascii_lowercase();
    match v {
        Value::Date(d) => {
            if matches!(
                f.as_str(),
                "hour" | "minute" | "second" | "milliseconds" | "microseconds" | "timezone"
            ) {
                return Err(unit_error(field, "date"));
            }
            if f == "epoch" {
                return Ok(int(i64::from(*d) * 86_400));
            }
            extract_point(&f, field, date_micros(*d)?, "date")
        }
        Value::Timestamp(t) => extract_point(&f, field, *t, "timestamp without time zone"),
        Value::TimestampTz(t) => match f.as_str() {
            "timezone" | "timezone_hour" | "timezone_minute" => Ok(int(0)),
            _ => extract_point(&f, field, *t, "timestamp with time zone"),
        },
        Value::Time(t) => extract_time(&f, field, *t),
        Value::Interval(i) => extract_interval(&f, field, *i),
        other => Err(no_such_signature(
            name,
            &[Value::text(field), other.clone()],
        )),
    }
}

fn extract_point(f: &str, field: &str, us: i64, ty: &str) -> Result<Value, SqlError> {
    let days = us.div_euclid(USECS_PER_DAY);
    let tod = us.rem_euclid(USECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let year = pg_year(y);
    Ok(match f {
        "year" => int(year),
        "month" => int(i64::from(m)),
        "day" => int(i64::from(d)),
        "quarter" => int((i64::from(m) - 1) / 3 + 1),
        "dow" => int(dt::weekday(days)),
        "isodow" => int((dt::weekday(days) + 6) % 7 + 1),
        "doy" => int(days - days_from_civil(y, 1, 1) + 1),
        "week" => int(dt::iso_week(days).1),
        "isoyear" => int(pg_year(dt::iso_week(days).0)),
        // These count from the astronomical year (1 BC is year 0), as
        // PostgreSQL's do; only `year` itself skips 0.
        "decade" => int(if y >= 0 {
            y / 10
        } else {
            -((8 - (y - 1)) / 10)
        }),
        "century" => int(if y > 0 {
            (y + 99) / 100
        } else {
            -((99 - (y - 1)) / 100)
        }),
        "millennium" => int(if y > 0 {
            (y + 999) / 1000
        } else {
            -((999 - (y - 1)) / 1000)
        }),
        "epoch" => scaled(i128::from(us), 6)?,
        "julian" => {
            let jd = i128::from(days + 2_440_588) * i128::from(USECS_PER_DAY) + i128::from(tod);
            // Days with the fraction of the day, as PostgreSQL prints it.
            let d = Decimal::from_i128_with_scale(jd, 0) / Decimal::from(USECS_PER_DAY);
            Value::Decimal(d.normalize())
        }
        _ => return extract_clock(f, field, tod, ty),
    })
}

/// Fields of the time of day, shared by timestamps and TIME.
fn extract_clock(f: &str, field: &str, tod: i64, ty: &str) -> Result<Value, SqlError> {
    let sec_us = i128::from(tod % USECS_PER_MINUTE);
    Ok(match f {
        "hour" => int(tod / USECS_PER_HOUR),
        "minute" => int((tod / USECS_PER_MINUTE) % 60),
        "second" => scaled(sec_us, 6)?,
        "milliseconds" => Value::Decimal(Decimal::from_i128_with_scale(sec_us, 3)),
        "microseconds" => int(sec_us as i64),
        _ => return Err(unit_error(field, ty)),
    })
}

fn extract_time(f: &str, field: &str, t: i64) -> Result<Value, SqlError> {
    match f {
        "epoch" => scaled(i128::from(t), 6),
        _ => extract_clock(f, field, t, "time without time zone"),
    }
}

fn extract_interval(f: &str, field: &str, i: Interval) -> Result<Value, SqlError> {
    let years = i64::from(i.months / 12);
    Ok(match f {
        "year" => int(years),
        "month" => int(i64::from(i.months % 12)),
        "day" => int(i64::from(i.days)),
        "quarter" => int(i64::from(i.months % 12) / 3 + 1),
        "decade" => int(years / 10),
        "century" => int(years / 100),
        "millennium" => int(years / 1000),
        "hour" => int(i.micros / USECS_PER_HOUR),
        "minute" => int((i.micros / USECS_PER_MINUTE) % 60),
        "epoch" => {
            // A year is 365.25 days, a month 30 (PostgreSQL's reckoning).
            let secs_us = i128::from(years) * 36_525 * 864 * i128::from(USECS_PER_SEC)
                + i128::from(i.months % 12) * 30 * i128::from(USECS_PER_DAY)
                + i128::from(i.days) * i128::from(USECS_PER_DAY)
                + i128::from(i.micros);
            scaled(secs_us, 6)?
        }
        "second" | "milliseconds" | "microseconds" => {
            let sec_us = i128::from(i.micros % USECS_PER_MINUTE);
            match f {
                "second" => scaled(sec_us, 6)?,
                "milliseconds" => Value::Decimal(Decimal::from_i128_with_scale(sec_us, 3)),
                _ => int(sec_us as i64),
            }
        }
        _ => return Err(unit_error(field, "interval")),
    })
}

fn date_trunc(field: &str, v: &Value) -> Result<Value, SqlError> {
    let f = field.to_ascii_lowercase();
    match v {
        Value::Timestamp(t) => trunc_point(&f, field, *t).map(Value::Timestamp),
        Value::TimestampTz(t) => trunc_point(&f, field, *t).map(Value::TimestampTz),
        // PostgreSQL takes a date as a timestamp with time zone here.
        Value::Date(d) => trunc_point(&f, field, date_micros(*d)?).map(Value::TimestampTz),
        Value::Interval(i) => trunc_interval(&f, field, *i).map(Value::Interval),
        other => Err(no_such_signature(
            "date_trunc",
            &[Value::text(field), other.clone()],
        )),
    }
}

fn trunc_point(f: &str, field: &str, us: i64) -> Result<i64, SqlError> {
    let days = us.div_euclid(USECS_PER_DAY);
    let tod = us.rem_euclid(USECS_PER_DAY);
    let (y, m, _) = civil_from_days(days);
    let floor = |unit: i64| i128::from(tod - tod.rem_euclid(unit));
    // Wide: the start of a far year may lie before what a timestamp holds.
    let day_start = |d: i64| i128::from(d) * i128::from(USECS_PER_DAY);
    let year_start = |y: i64| day_start(days_from_civil(y, 1, 1));
    // Decades, centuries and millennia from the astronomical year (1 BC
    // is 0), as PostgreSQL's date_trunc counts them.
    let t: i128 = match f {
        "microseconds" => i128::from(us),
        "milliseconds" => day_start(days) + floor(1000),
        "second" => day_start(days) + floor(USECS_PER_SEC),
        "minute" => day_start(days) + floor(USECS_PER_MINUTE),
        "hour" => day_start(days) + floor(USECS_PER_HOUR),
        "day" => day_start(days),
        "week" => day_start(days - (dt::weekday(days) + 6) % 7),
        "month" => day_start(days_from_civil(y, m, 1)),
        "quarter" => day_start(days_from_civil(y, (m - 1) / 3 * 3 + 1, 1)),
        "year" => year_start(y),
        "decade" => year_start(if y > 0 {
            y / 10 * 10
        } else {
            -((8 - (y - 1)) / 10) * 10
        }),
        "century" => year_start(if y > 0 {
            (y + 99) / 100 * 100 - 99
        } else {
            -((99 - (y - 1)) / 100) * 100 + 1
        }),
        "millennium" => year_start(if y > 0 {
            (y + 999) / 1000 * 1000 - 999
        } else {
            -((999 - (y - 1)) / 1000) * 1000 + 1
        }),
        _ => return Err(unit_error(field, "timestamp")),
    };
    i64::try_from(t)
        .ok()
        .filter(|t| dt::timestamp_in_range(*t))
        .ok_or_else(|| SqlError::OutOfRange("timestamp out of range".into()))
}

fn trunc_interval(f: &str, field: &str, i: Interval) -> Result<Interval, SqlError> {
    let keep_time = |unit: i64| i.micros - i.micros % unit;
    Ok(match f {
        "microseconds" => i,
        "milliseconds" => Interval::new(i.months, i.days, keep_time(1000)),
        "second" => Interval::new(i.months, i.days, keep_time(USECS_PER_SEC)),
        "minute" => Interval::new(i.months, i.days, keep_time(USECS_PER_MINUTE)),
        "hour" => Interval::new(i.months, i.days, keep_time(USECS_PER_HOUR)),
        "day" => Interval::new(i.months, i.days, 0),
        "month" => Interval::new(i.months, 0, 0),
        "quarter" => Interval::new(i.months - i.months % 3, 0, 0),
        "year" => Interval::new(i.months - i.months % 12, 0, 0),
        "decade" => Interval::new(i.months - i.months % 120, 0, 0),
        "century" => Interval::new(i.months - i.months % 1200, 0, 0),
        "millennium" => Interval::new(i.months - i.months % 12000, 0, 0),
        _ => return Err(unit_error(field, "interval")),
    })
}

fn make_date(args: &[Value]) -> Result<Value, SqlError> {
    let part = |v: &Value| match v {
        Value::Int(i) => Ok(*i),
        other => Err(no_such_signature("make_date", std::slice::from_ref(other))),
    };
    let (y, m, d) = (part(&args[0])?, part(&args[1])?, part(&args[2])?);
    let bad = || SqlError::OutOfRange(format!("date field value out of range: {y}-{m:02}-{d:02}"));
    if y == 0 || !(1..=12).contains(&m) || d < 1 || y.unsigned_abs() > 5_874_897 {
        return Err(bad());
    }
    // Negative years are BC: -1 is 1 BC, civil year 0.
    let cy = if y < 0 { y + 1 } else { y };
    if d > i64::from(dt::days_in_month(cy, m as u32)) {
        return Err(bad());
    }
    date_from_days(days_from_civil(cy, m as u32, d as u32)).map(Value::Date)
}

fn to_timestamp(v: &Value) -> Result<Value, SqlError> {
    let secs = match v {
        Value::Int(i) => *i as f64,
        Value::Double(d) => *d,
        Value::Decimal(d) => rust_decimal::prelude::ToPrimitive::to_f64(d).unwrap_or(f64::NAN),
        other => {
            return Err(no_such_signature(
                "to_timestamp",
                std::slice::from_ref(other),
            ))
        }
    };
    let us = (secs * 1e6).round();
    if !us.is_finite() || us.abs() >= 9.2e18 || !dt::timestamp_in_range(us as i64) {
        return Err(SqlError::OutOfRange(format!(
            "timestamp out of range: \"{}\"",
            super::format_double(secs)
        )));
    }
    Ok(Value::TimestampTz(us as i64))
}

/// `ts AT TIME ZONE zone` (`timezone(zone, ts)`): a TIMESTAMP read as local
/// time in `zone` becomes the instant (TIMESTAMPTZ); an instant (or a DATE,
/// midnight UTC) becomes the local time in `zone`. The zone is UTC, a POSIX
/// zone (`'+05'` is five hours *west*, as PostgreSQL reads it:
/// `dt::posix_zone_east`) or an INTERVAL east of UTC, whole seconds of it
/// (PostgreSQL drops the fraction); named zones need a zone database Ohm
/// does not keep.
fn at_time_zone(zone: &Value, ts: &Value) -> Result<Value, SqlError> {
    let east = match zone {
        Value::Text(z) => dt::posix_zone_east(z).map_err(|_| {
            SqlError::exec(format!(
                "time zone \"{z}\" not recognized: Ohm keeps no time-zone database; \
                 give 'UTC', INTERVAL '+05:00' (hours east of UTC) or a POSIX zone \
                 such as 'UTC+5' (which, as in PostgreSQL, is five hours west)"
            ))
        })?,
        Value::Interval(iv) if iv.months == 0 && iv.days == 0 => {
            iv.micros / USECS_PER_SEC * USECS_PER_SEC
        }
        Value::Interval(_) => {
            return Err(SqlError::exec(format!(
                "interval time zone \"{zone}\" must not include months or days"
            )))
        }
        other => return Err(no_such_signature("timezone", &[other.clone(), ts.clone()])),
    };
    let in_range = |us: Option<i64>| {
        us.filter(|t| dt::timestamp_in_range(*t))
            .ok_or_else(|| SqlError::OutOfRange("timestamp out of range".into()))
    };
    match ts {
        Value::Timestamp(local) => in_range(local.checked_sub(east)).map(Value::TimestampTz),
        Value::TimestampTz(utc) => in_range(utc.checked_add(east)).map(Value::Timestamp),
        Value::Date(d) => in_range(date_micros(*d)?.checked_add(east)).map(Value::Timestamp),
        other => Err(no_such_signature(
            "timezone",
            &[zone.clone(), other.clone()],
        )),
    }
}

/// `age(a, b)`: `a - b` in years, months and days as a calendar counts
/// them (PostgreSQL's symbolic difference), then the time.
fn age(a: &Value, b: &Value) -> Result<Value, SqlError> {
    let point = |v: &Value| match v {
        Value::Timestamp(t) | Value::TimestampTz(t) => Ok(*t),
        Value::Date(d) => date_micros(*d),
        other => Err(no_such_signature("age", std::slice::from_ref(other))),
    };
    let (x, y) = (point(a)?, point(b)?);
    let (neg, hi, lo) = if x < y { (true, y, x) } else { (false, x, y) };
    let split = |t: i64| {
        let (yy, mm, dd) = civil_from_days(t.div_euclid(USECS_PER_DAY));
        (
            yy,
            i64::from(mm),
            i64::from(dd),
            t.rem_euclid(USECS_PER_DAY),
        )
    };
    let (y1, m1, d1, t1) = split(hi);
    let (y0, m0, d0, t0) = split(lo);
    let mut micros = t1 - t0;
    let mut days = d1 - d0;
    let mut months = (y1 - y0) * 12 + (m1 - m0);
    if micros < 0 {
        micros += USECS_PER_DAY;
        days -= 1;
    }
    // Borrow the earlier date's month length, as PostgreSQL does (at most
    // twice: a day count is never below -31).
    while days < 0 {
        days += i64::from(dt::days_in_month(y0, m0 as u32));
        months -= 1;
    }
    let iv = Interval::new(
        i32::try_from(months).map_err(|_| SqlError::OutOfRange("interval out of range".into()))?,
        days as i32,
        micros,
    );
    let iv = if neg {
        iv.checked_neg()
            .ok_or_else(|| SqlError::OutOfRange("interval out of range".into()))?
    } else {
        iv
    };
    Ok(Value::Interval(iv))
}
