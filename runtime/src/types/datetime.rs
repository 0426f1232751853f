//! Dates, times, timestamps, intervals and UUIDs: their text forms, as
//! PostgreSQL reads and prints them with `DateStyle = ISO`, `TimeZone =
//! UTC` and `IntervalStyle = postgres`, and the calendar arithmetic on them.
//!
//! Owns: the representations (`days` since 1970-01-01 for a DATE,
//! microseconds since midnight for a TIME, microseconds since 1970-01-01
//! 00:00:00 UTC for both timestamps, `Interval` as PostgreSQL keeps it) and
//! their ranges. Must not: know about SQL expressions; errors say only why
//! text is not a value (`DateTimeError`): callers name the type and value.
//!
//! Ohm keeps no time-zone database: a session's zone is always UTC, and a
//! zone in input must be a UTC offset (`+02`, `-05:30`, `Z`, `UTC`).

use std::fmt;

pub const USECS_PER_SEC: i64 = 1_000_000;
pub const USECS_PER_MINUTE: i64 = 60 * USECS_PER_SEC;
pub const USECS_PER_HOUR: i64 = 60 * USECS_PER_MINUTE;
pub const USECS_PER_DAY: i64 = 24 * USECS_PER_HOUR;
/// What a month counts as where an interval must become one number
/// (comparison, `EXTRACT(EPOCH ...)`): PostgreSQL's 30 days.
pub const DAYS_PER_MONTH: i64 = 30;

/// PostgreSQL's range: 4714-11-24 BC (Julian day 0) ..= 5874897-12-31.
pub const DATE_MIN_DAYS: i64 = -2_440_588;
pub const DATE_MAX_DAYS: i64 = 2_145_042_905;
/// Timestamps: 4714-11-24 00:00:00 BC ..= 294247-01-10 04:00:54.775807,
/// the last microsecond since 1970 a signed 64-bit number holds
/// (PostgreSQL, counting from 2000, reaches 294276).
pub const TIMESTAMP_MIN_US: i64 = DATE_MIN_DAYS * USECS_PER_DAY;
pub const TIMESTAMP_MAX_US: i64 = i64::MAX;

/// Whether `days` is a date PostgreSQL can hold.
pub fn date_in_range(days: i64) -> bool {
    (DATE_MIN_DAYS..=DATE_MAX_DAYS).contains(&days)
}

/// Whether `us` is a timestamp PostgreSQL can hold.
pub fn timestamp_in_range(us: i64) -> bool {
    (TIMESTAMP_MIN_US..=TIMESTAMP_MAX_US).contains(&us)
}

/// A span of time as PostgreSQL keeps it: months, days and microseconds
/// apart, because a month is not a fixed number of days nor (across a
/// daylight-saving change elsewhere) a day a fixed number of hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    pub const ZERO: Interval = Interval {
        months: 0,
        days: 0,
        micros: 0,
    };

    pub fn new(months: i32, days: i32, micros: i64) -> Interval {
        Interval {
            months,
            days,
            micros,
        }
    }

    /// The single number intervals are ordered, compared and hashed by:
    /// a month is 30 days and a day 24 hours (so `'1 month' = '30 days'`,
    /// as in PostgreSQL).
    pub fn span(self) -> i128 {
        (i128::from(self.months) * i128::from(DAYS_PER_MONTH) + i128::from(self.days))
            * i128::from(USECS_PER_DAY)
            + i128::from(self.micros)
    }

    pub fn checked_add(self, o: Interval) -> Option<Interval> {
        Some(Interval {
            months: self.months.checked_add(o.months)?,
            days: self.days.checked_add(o.days)?,
            micros: self.micros.checked_add(o.micros)?,
        })
    }

    pub fn checked_neg(self) -> Option<Interval> {
        Some(Interval {
            months: self.months.checked_neg()?,
            days: self.days.checked_neg()?,
            micros: self.micros.checked_neg()?,
        })
    }

    /// `self * factor`, spilling fractions of months into days and of days
    /// into time as PostgreSQL's `interval_mul` does.
    pub fn scaled_by(self, factor: f64) -> Option<Interval> {
        let round6 = |x: f64| (x * 1e6).round() / 1e6;
        let months_f = f64::from(self.months) * factor;
        let days_f = f64::from(self.days) * factor;
        if !months_f.is_finite() || !days_f.is_finite() {
            return None;
        }
        if months_f.abs() >= 2_147_483_648.0 || days_f.abs() >= 2_147_483_648.0 {
            return None;
        }
        let months = months_f.trunc();
        let mut days = days_f.trunc();
        let month_rem_days = round6((months_f - months) * DAYS_PER_MONTH as f64);
        let mut sec_rem =
            round6((days_f - days + month_rem_days - month_rem_days.trunc()) * 86_400.0);
        if sec_rem.abs() >= 86_400.0 {
            days += (sec_rem / 86_400.0).trunc();
            sec_rem -= (sec_rem / 86_400.0).trunc() * 86_400.0;
        }
        days += month_rem_days.trunc();
        let micros = (self.micros as f64 * factor + sec_rem * 1e6).round_ties_even();
        if !micros.is_finite() || micros.abs() >= 9.2e18 || days.abs() >= 2_147_483_648.0 {
            return None;
        }
        Some(Interval {
            months: months as i32,
            days: days as i32,
            micros: micros as i64,
        })
    }
}

impl fmt::Display for Interval {
    /// PostgreSQL's `IntervalStyle = postgres`: `1 year 2 mons -3 days
    /// +04:05:06.5`, `00:00:00` for zero.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let mut is_zero = true;
        let mut is_before = false;
        let mut part = |out: &mut String, value: i64, unit: &str| {
            if value == 0 {
                return;
            }
            if !is_zero {
                out.push(' ');
            }
            if is_before && value > 0 {
                out.push('+');
            }
            let s = if value != 1 { "s" } else { "" };
            out.push_str(&format!("{value} {unit}{s}"));
            is_before = value < 0;
            is_zero = false;
        };
        let months = i64::from(self.months);
        part(&mut out, months / 12, "year");
        part(&mut out, months % 12, "mon");
        part(&mut out, i64::from(self.days), "day");
        if is_zero || self.micros != 0 {
            let minus = self.micros < 0;
            let a = self.micros.unsigned_abs();
            let hours = a / USECS_PER_HOUR as u64;
            let mins = (a / USECS_PER_MINUTE as u64) % 60;
            let secs = (a / USECS_PER_SEC as u64) % 60;
            let frac = a % USECS_PER_SEC as u64;
            if !is_zero {
                out.push(' ');
            }
            if minus {
                out.push('-');
            } else if is_before {
                out.push('+');
            }
            out.push_str(&format!("{hours:02}:{mins:02}:{secs:02}"));
            push_fraction(&mut out, frac);
        }
        f.write_str(&out)
    }
}

/// Appends `.ffffff` with trailing zeros trimmed, nothing for zero.
fn push_fraction(out: &mut String, frac: u64) {
    if frac != 0 {
        let s = format!("{frac:06}");
        out.push('.');
        out.push_str(s.trim_end_matches('0'));
    }
}

/// Formats days since 1970-01-01 as `YYYY-MM-DD` (`... BC` before year 1).
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    let (year, bc) = if y <= 0 { (1 - y, " BC") } else { (y, "") };
    format!("{year:04}-{m:02}-{d:02}{bc}")
}

/// Formats microseconds since midnight as `HH:MM:SS[.ffffff]`.
pub fn format_time(us: i64) -> String {
    let mut s = format!(
        "{:02}:{:02}:{:02}",
        us / USECS_PER_HOUR,
        (us / USECS_PER_MINUTE) % 60,
        (us / USECS_PER_SEC) % 60
    );
    push_fraction(&mut s, (us % USECS_PER_SEC) as u64);
    s
}

/// Formats microseconds since the epoch as `YYYY-MM-DD HH:MM:SS[.ffffff]`,
/// with `+00` after the time when `zoned` (a TIMESTAMP WITH TIME ZONE,
/// shown in UTC) and ` BC` last before year 1.
pub fn format_timestamp_as(us: i64, zoned: bool) -> String {
    let days = us.div_euclid(USECS_PER_DAY);
    let tod = us.rem_euclid(USECS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let (year, bc) = if y <= 0 { (1 - y, " BC") } else { (y, "") };
    let zone = if zoned { "+00" } else { "" };
    format!("{year:04}-{m:02}-{d:02} {}{zone}{bc}", format_time(tod))
}

/// Formats a UUID in its canonical lower-case 8-4-4-4-12 form.
pub fn format_uuid(b: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// Parses a UUID as PostgreSQL does: 32 hex digits in either case,
/// optionally in braces, with a hyphen allowed after any group of four.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let t = s.trim();
    let t = match t.strip_prefix('{') {
        Some(inner) => inner.strip_suffix('}')?,
        None => t,
    };
    let mut out = [0u8; 16];
    let mut n = 0usize;
    let mut prev_hyphen = true;
    for c in t.chars() {
        if c == '-' {
            // Only after a complete group of four, never twice in a row.
            if prev_hyphen || !n.is_multiple_of(4) || n == 32 {
                return None;
            }
            prev_hyphen = true;
            continue;
        }
        let d = c.to_digit(16)? as u8;
        if n >= 32 {
            return None;
        }
        out[n / 2] |= if n.is_multiple_of(2) { d << 4 } else { d };
        n += 1;
        prev_hyphen = false;
    }
    (n == 32 && !prev_hyphen).then_some(out)
}

/// A date, time and zone read from text; any part may be absent.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Parsed {
    days: Option<i64>,
    time_us: Option<i64>,
    offset_us: Option<i64>,
}

/// Why text is not a date or time: not one at all, or a zone Ohm does not
/// know (named zones need a zone database Ohm does not keep).
#[derive(Debug, Clone, PartialEq)]
pub enum DateTimeError {
    Syntax,
    OutOfRange,
    UnknownZone(String),
}

impl DateTimeError {
    /// The error as PostgreSQL words it, for type `ty` and input `s`.
    pub fn message(&self, ty: &str, s: &str) -> String {
        match self {
            DateTimeError::Syntax => format!("invalid input syntax for type {ty}: \"{s}\""),
            DateTimeError::OutOfRange => {
                format!("date/time field value out of range for type {ty}: \"{s}\"")
            }
            DateTimeError::UnknownZone(z) => format!(
                "time zone \"{z}\" not recognized in \"{s}\": Ohm keeps no time-zone database; \
                 give a UTC offset such as +02:00, or UTC"
            ),
        }
    }
}

/// Reads `[date][ T][time][zone][ BC|AD]`: date `Y-M-D`, time
/// `H:M[:S[.f]]`, zone `Z`, `UTC`, `GMT` or `[+-]HH[:MM]`/`[+-]HHMM`.
/// `epoch` is 1970-01-01 00:00:00 UTC.
fn parse_parts(s: &str) -> Result<Parsed, DateTimeError> {
    let t = s.trim();
    // Every form is ASCII; checking once makes the slicing below safe.
    if !t.is_ascii() {
        return Err(DateTimeError::Syntax);
    }
    let lower = t.to_ascii_lowercase();
    if lower == "epoch" {
        return Ok(Parsed {
            days: Some(0),
            time_us: Some(0),
            offset_us: Some(0),
        });
    }
    if matches!(
        lower.as_str(),
        "now" | "today" | "tomorrow" | "yesterday" | "infinity" | "-infinity" | "allballs"
    ) {
        return Err(DateTimeError::Syntax);
    }
    let (body, bc) = if let Some(b) = strip_suffix_ci(t, " bc") {
        (b.trim_end(), true)
    } else if let Some(b) = strip_suffix_ci(t, " ad") {
        (b.trim_end(), false)
    } else {
        (t, false)
    };
    let mut p = Parsed::default();
    let mut rest = body;
    // A date starts with digits and a '-' before any ':'.
    let dash = rest.find('-');
    let colon = rest.find(':');
    if dash.is_some_and(|d| d > 0 && colon.is_none_or(|c| d < c)) {
        let end = rest.find([' ', 'T', 't']).unwrap_or(rest.len());
        let mut parts = rest[..end].splitn(3, '-');
        let y: i64 = digits(parts.next().ok_or(DateTimeError::Syntax)?)?;
        let m: i64 = digits(parts.next().ok_or(DateTimeError::Syntax)?)?;
        let d: i64 = digits(parts.next().ok_or(DateTimeError::Syntax)?)?;
        if y == 0 && bc {
            return Err(DateTimeError::Syntax);
        }
        let year = if bc { 1 - y } else { y };
        if !(1..=12).contains(&m) || d < 1 || d > i64::from(days_in_month(year, m as u32)) {
            return Err(DateTimeError::OutOfRange);
        }
        if year > 6_000_000 {
            return Err(DateTimeError::OutOfRange);
        }
        p.days = Some(days_from_civil(year, m as u32, d as u32));
        rest = rest[end..].trim_start_matches([' ', 'T', 't']);
    } else if bc {
        return Err(DateTimeError::Syntax);
    }
    if !rest.is_empty() {
        // The time runs to the first zone sign or letter.
        let end = rest
            .char_indices()
            .skip(1)
            .find(|&(_, c)| c == '+' || c == '-' || c == ' ' || c.is_ascii_alphabetic())
            .map_or(rest.len(), |(i, _)| i);
        if rest.as_bytes()[0].is_ascii_digit() {
            p.time_us = Some(parse_clock(&rest[..end])?);
            rest = rest[end..].trim_start();
        }
        if p.days.is_none() && p.time_us.is_none() {
            return Err(DateTimeError::Syntax);
        }
        if !rest.is_empty() {
            p.offset_us = Some(parse_zone(rest)?);
        }
    }
    if p.days.is_none() && p.time_us.is_none() {
        return Err(DateTimeError::Syntax);
    }
    Ok(p)
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    let tail = s.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &s[..cut])
}

fn digits(s: &str) -> Result<i64, DateTimeError> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateTimeError::Syntax);
    }
    s.parse().map_err(|_| DateTimeError::Syntax)
}

/// `H:M[:S[.f]]` as microseconds since midnight; `24:00:00` is allowed.
fn parse_clock(s: &str) -> Result<i64, DateTimeError> {
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let mut it = hms.splitn(3, ':');
    let h = digits(it.next().ok_or(DateTimeError::Syntax)?)?;
    let m = digits(it.next().ok_or(DateTimeError::Syntax)?)?;
    let sec = match it.next() {
        Some(x) => digits(x)?,
        None if frac.is_empty() => 0,
        None => return Err(DateTimeError::Syntax),
    };
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return Err(DateTimeError::Syntax);
    }
    // More than six places round to the microsecond, as PostgreSQL does.
    let frac_us = if frac.is_empty() {
        0
    } else {
        let padded = format!("{frac:0<9}");
        let ns: i64 = padded.parse().map_err(|_| DateTimeError::Syntax)?;
        (ns + 500) / 1000
    };
    if m > 59 || sec > 60 || h > 24 {
        return Err(DateTimeError::OutOfRange);
    }
    let us = ((h * 60 + m) * 60 + sec) * USECS_PER_SEC + frac_us;
    if us > USECS_PER_DAY {
        return Err(DateTimeError::OutOfRange);
    }
    Ok(us)
}

/// Zone names that are UTC (lower case).
const UTC_NAMES: [&str; 5] = ["z", "utc", "gmt", "zulu", "ut"];

/// The zone of `AT TIME ZONE 'z'` as microseconds east of UTC: `UTC`,
/// `GMT`, `Z`, `Zulu` or `UT`, or a POSIX zone, as PostgreSQL reads one: an
/// optional name of three or more letters, then an offset `[+-]h[h[h]]
/// [:mm[:ss]]` (hours up to 167) counted *west* of UTC, so `'+05'`,
/// `'UTC+5'` and `'EST5'` are five hours behind UTC. Nothing is trimmed;
/// a zone abbreviation alone (`EST`) or a named zone needs a zone database
/// Ohm does not keep.
pub fn posix_zone_east(z: &str) -> Result<i64, DateTimeError> {
    const HOURS_MAX: i64 = 167;
    let unknown = || DateTimeError::UnknownZone(z.to_string());
    if UTC_NAMES.iter().any(|n| z.eq_ignore_ascii_case(n)) {
        return Ok(0);
    }
    let name = z.bytes().take_while(u8::is_ascii_alphabetic).count();
    if name != 0 && name < 3 {
        return Err(unknown());
    }
    let offset = &z[name..];
    let (west, body) = match offset.as_bytes().first() {
        Some(b'+') => (1, &offset[1..]),
        Some(b'-') => (-1, &offset[1..]),
        Some(d) if d.is_ascii_digit() && name != 0 => (1, offset),
        _ => return Err(unknown()),
    };
    let mut secs = 0;
    for (i, part) in body.split(':').enumerate() {
        // (digits at most, value at most, seconds per unit)
        let (max_len, max, unit) = match i {
            0 => (3, HOURS_MAX, 3600),
            1 => (2, 59, 60),
            2 => (2, 59, 1),
            _ => return Err(unknown()),
        };
        let n = digits(part).map_err(|_| unknown())?;
        if part.len() > max_len || n > max {
            return Err(unknown());
        }
        secs += n * unit;
    }
    Ok(-west * secs * USECS_PER_SEC)
}

/// A zone as microseconds east of UTC.
fn parse_zone(z: &str) -> Result<i64, DateTimeError> {
    let t = z.trim();
    if !t.is_ascii() {
        return Err(DateTimeError::UnknownZone(t.to_string()));
    }
    if UTC_NAMES.contains(&t.to_ascii_lowercase().as_str()) {
        return Ok(0);
    }
    let (sign, body) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(DateTimeError::UnknownZone(t.to_string())),
    };
    let (h, m, s) = if body.contains(':') {
        let mut it = body.splitn(3, ':');
        let h = digits(it.next().unwrap_or(""))?;
        let m = digits(it.next().unwrap_or(""))?;
        let s = it.next().map(digits).transpose()?.unwrap_or(0);
        (h, m, s)
    } else {
        match body.len() {
            1 | 2 => (digits(body)?, 0, 0),
            4 => (digits(&body[..2])?, digits(&body[2..])?, 0),
            6 => (
                digits(&body[..2])?,
                digits(&body[2..4])?,
                digits(&body[4..])?,
            ),
            _ => return Err(DateTimeError::Syntax),
        }
    };
    if h > 15 || m > 59 || s > 59 {
        return Err(DateTimeError::OutOfRange);
    }
    Ok(sign * ((h * 60 + m) * 60 + s) * USECS_PER_SEC)
}

/// Parses a DATE: a date, optionally followed by a time and zone (ignored).
pub fn parse_date(s: &str) -> Result<i64, DateTimeError> {
    let p = parse_parts(s)?;
    let days = p.days.ok_or(DateTimeError::Syntax)?;
    if !date_in_range(days) {
        return Err(DateTimeError::OutOfRange);
    }
    Ok(days)
}

/// Parses a TIME: a clock time, optionally after a date (ignored); a zone
/// is ignored as PostgreSQL's `time without time zone` ignores it.
pub fn parse_time(s: &str) -> Result<i64, DateTimeError> {
    let p = parse_parts(s)?;
    p.time_us.ok_or(DateTimeError::Syntax)
}

/// Parses a TIMESTAMP (without time zone): a zone given is ignored, as in
/// PostgreSQL.
pub fn parse_timestamp_text(s: &str) -> Result<i64, DateTimeError> {
    timestamp_of(parse_parts(s)?, false)
}

/// Parses a TIMESTAMP WITH TIME ZONE to UTC microseconds: without a zone
/// the time is the session's, UTC.
pub fn parse_timestamptz(s: &str) -> Result<i64, DateTimeError> {
    timestamp_of(parse_parts(s)?, true)
}

/// The microseconds a parsed date and time name, moved to UTC by their
/// zone when `zoned`; a date is required.
fn timestamp_of(p: Parsed, zoned: bool) -> Result<i64, DateTimeError> {
    let days = p.days.ok_or(DateTimeError::Syntax)?;
    let offset = if zoned { p.offset_us.unwrap_or(0) } else { 0 };
    days.checked_mul(USECS_PER_DAY)
        .and_then(|d| d.checked_add(p.time_us.unwrap_or(0)))
        .and_then(|t| t.checked_sub(offset))
        .filter(|us| timestamp_in_range(*us))
        .ok_or(DateTimeError::OutOfRange)
}

/// The unit of an interval field, as in `INTERVAL '3' MONTH` or
/// `'3 months'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalUnit {
    // One bit each in `parse_interval`'s set of fields given: at most 16.
    Millennium,
    Century,
    Decade,
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
    Microsecond,
}

const _: () = assert!(
    (IntervalUnit::Microsecond as u16) < 16,
    "a unit per bit of a u16"
);

impl IntervalUnit {
    /// Reads a unit name in any of PostgreSQL's spellings.
    pub fn parse(word: &str) -> Option<IntervalUnit> {
        use IntervalUnit as U;
        Some(match word.to_ascii_lowercase().as_str() {
            "millennium" | "millennia" | "millenniums" | "mil" | "mils" => U::Millennium,
            "century" | "centuries" | "c" | "cent" => U::Century,
            "decade" | "decades" | "dec" | "decs" => U::Decade,
            "year" | "years" | "y" | "yr" | "yrs" => U::Year,
            "month" | "months" | "mon" | "mons" => U::Month,
            "week" | "weeks" | "w" => U::Week,
            "day" | "days" | "d" => U::Day,
            "hour" | "hours" | "h" | "hr" | "hrs" => U::Hour,
            "minute" | "minutes" | "m" | "min" | "mins" => U::Minute,
            "second" | "seconds" | "s" | "sec" | "secs" => U::Second,
            "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" => U::Millisecond,
            "microsecond" | "microseconds" | "us" | "usec" | "usecs" => U::Microsecond,
            _ => return None,
        })
    }
}

/// An interval being added up field by field, in wide integers so that
/// overflow is found once at the end.
#[derive(Default)]
struct Acc {
    months: i128,
    days: i128,
    micros: i128,
}

impl Acc {
    /// Adds `value` (with its fraction) of `unit`, spilling fractions of
    /// larger units into smaller ones as PostgreSQL does.
    fn add(&mut self, unit: IntervalUnit, value: f64) {
        use IntervalUnit as U;
        let whole = value.trunc();
        let frac = value - whole;
        let w = whole as i128;
        let days_frac = |acc: &mut Acc, f: f64, per: f64| {
            let extra = f * per;
            acc.days += extra.trunc() as i128;
            acc.micros += ((extra - extra.trunc()) * USECS_PER_DAY as f64).round() as i128;
        };
        let secs_frac = |acc: &mut Acc, f: f64, per_us: i64| {
            acc.micros += (f * per_us as f64).round() as i128;
        };
        match unit {
            U::Millennium => self.months += w * 12_000 + (frac * 12_000.0).round() as i128,
            U::Century => self.months += w * 1_200 + (frac * 1_200.0).round() as i128,
            U::Decade => self.months += w * 120 + (frac * 120.0).round() as i128,
            U::Year => self.months += w * 12 + (frac * 12.0).round() as i128,
            U::Month => {
                self.months += w;
                days_frac(self, frac, DAYS_PER_MONTH as f64);
            }
            U::Week => {
                self.days += w * 7;
                days_frac(self, frac, 7.0);
            }
            U::Day => {
                self.days += w;
                secs_frac(self, frac, USECS_PER_DAY);
            }
            U::Hour => {
                self.micros += w * i128::from(USECS_PER_HOUR);
                secs_frac(self, frac, USECS_PER_HOUR);
            }
            U::Minute => {
                self.micros += w * i128::from(USECS_PER_MINUTE);
                secs_frac(self, frac, USECS_PER_MINUTE);
            }
            U::Second => {
                self.micros += w * i128::from(USECS_PER_SEC);
                secs_frac(self, frac, USECS_PER_SEC);
            }
            U::Millisecond => self.micros += (value * 1_000.0).round() as i128,
            U::Microsecond => self.micros += value.round() as i128,
        }
    }

    fn finish(self, negate: bool) -> Result<Interval, DateTimeError> {
        let sign = if negate { -1 } else { 1 };
        let r = || -> Option<Interval> {
            Some(Interval {
                months: i32::try_from(self.months * sign).ok()?,
                days: i32::try_from(self.days * sign).ok()?,
                micros: i64::try_from(self.micros * sign).ok()?,
            })
        };
        r().ok_or(DateTimeError::OutOfRange)
    }
}

/// Parses an INTERVAL in PostgreSQL's forms: `1 year 2 mons 3 days
/// 04:05:06`, `-1 day +02:00`, `@ 3 days ago`, `P1Y2M3DT4H5M6S`, and a
/// bare number, which counts `bare` units (seconds when the SQL names no
/// field; `INTERVAL '3' MONTH` is 3 months). `year_month`: the SQL said
/// `YEAR TO MONTH`, where `1-2` is 1 year 2 months.
pub fn parse_interval(
    s: &str,
    bare: Option<IntervalUnit>,
    year_month: bool,
) -> Result<Interval, DateTimeError> {
    let t = s.trim();
    // Every form is ASCII; checking once makes the slicing below safe.
    if t.is_empty() || !t.is_ascii() {
        return Err(DateTimeError::Syntax);
    }
    if let Some(iso) = t.strip_prefix(['P', 'p']) {
        return parse_iso_interval(iso);
    }
    let t = t.strip_prefix('@').unwrap_or(t).trim_start();
    let mut acc = Acc::default();
    let mut words: Vec<&str> = t.split_ascii_whitespace().collect();
    let ago = words.last().is_some_and(|w| w.eq_ignore_ascii_case("ago"));
    if ago {
        words.pop();
    }
    if words.is_empty() {
        return Err(DateTimeError::Syntax);
    }
    // Each field may be given once (`1 day 2 days` is an error, as in
    // PostgreSQL): a bit per unit, hours to seconds for a clock part.
    let mut seen = 0u16;
    let mut once = |bits: u16| {
        let repeated = seen & bits != 0;
        seen |= bits;
        if repeated {
            Err(DateTimeError::Syntax)
        } else {
            Ok(())
        }
    };
    let bit = |u: IntervalUnit| 1u16 << (u as u16);
    // A clock, or seconds with a fraction, fills every field below a minute.
    let seconds =
        bit(IntervalUnit::Second) | bit(IntervalUnit::Millisecond) | bit(IntervalUnit::Microsecond);
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if w.contains(':') {
            let (neg, body) = match w.as_bytes()[0] {
                b'-' => (true, &w[1..]),
                b'+' => (false, &w[1..]),
                _ => (false, w),
            };
            once(bit(IntervalUnit::Hour) | bit(IntervalUnit::Minute) | seconds)?;
            let us = parse_interval_clock(body)?;
            acc.micros += if neg { -us } else { us };
            i += 1;
            continue;
        }
        if year_month && w.len() > 1 && w[1..].contains('-') {
            let (neg, body) = match w.as_bytes()[0] {
                b'-' => (true, &w[1..]),
                b'+' => (false, &w[1..]),
                _ => (false, w),
            };
            let (y, m) = body.split_once('-').ok_or(DateTimeError::Syntax)?;
            // PostgreSQL counts `1-2` as the month field alone.
            once(bit(IntervalUnit::Month))?;
            let months = digits(y)? as i128 * 12 + digits(m)? as i128;
            acc.months += if neg { -months } else { months };
            i += 1;
            continue;
        }
        // A number, its unit either attached (`3days`) or the next word.
        let split = w
            .char_indices()
            .find(|&(k, c)| k > 0 && c.is_ascii_alphabetic())
            .map_or(w.len(), |(k, _)| k);
        let (num, attached) = w.split_at(split);
        let value = parse_number(num)?;
        let unit = if !attached.is_empty() {
            IntervalUnit::parse(attached).ok_or(DateTimeError::Syntax)?
        } else if let Some(u) = words.get(i + 1).and_then(|n| IntervalUnit::parse(n)) {
            i += 1;
            u
        } else if words.get(i + 1).is_some_and(|n| n.contains(':')) {
            // `5 02:00:00` is 5 days and a clock (SQL standard style).
            IntervalUnit::Day
        } else {
            bare.unwrap_or(IntervalUnit::Second)
        };
        once(match unit {
            IntervalUnit::Second if value.fract() != 0.0 => seconds,
            u => bit(u),
        })?;
        acc.add(unit, value);
        i += 1;
    }
    acc.finish(ago)
}

fn parse_number(s: &str) -> Result<f64, DateTimeError> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(DateTimeError::Syntax);
    }
    let v: f64 = s.parse().map_err(|_| DateTimeError::Syntax)?;
    if !v.is_finite() || v.abs() > 1e15 {
        return Err(DateTimeError::OutOfRange);
    }
    Ok(v)
}

/// `H:M[:S[.f]]` in an interval, where hours may exceed 24.
fn parse_interval_clock(s: &str) -> Result<i128, DateTimeError> {
    let (hms, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    let mut it = hms.splitn(3, ':');
    let h = digits(it.next().unwrap_or(""))?;
    let m = digits(it.next().unwrap_or(""))?;
    let sec = it.next().map(digits).transpose()?.unwrap_or(0);
    if m > 59 || sec > 59 || !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return Err(DateTimeError::OutOfRange);
    }
    let frac_us = if frac.is_empty() {
        0
    } else {
        let ns: i128 = format!("{frac:0<9}")
            .parse()
            .map_err(|_| DateTimeError::Syntax)?;
        (ns + 500) / 1000
    };
    Ok(((i128::from(h) * 60 + i128::from(m)) * 60 + i128::from(sec)) * 1_000_000 + frac_us)
}

/// ISO 8601 durations after the `P`: `1Y2M3W4DT5H6M7.5S`.
fn parse_iso_interval(s: &str) -> Result<Interval, DateTimeError> {
    use IntervalUnit as U;
    let mut acc = Acc::default();
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for c in s.chars() {
        match c {
            'T' | 't' if num.is_empty() && !in_time => in_time = true,
            '0'..='9' | '.' | '-' | '+' => num.push(c),
            _ => {
                let v = parse_number(&num)?;
                num.clear();
                let unit = match (c.to_ascii_uppercase(), in_time) {
                    ('Y', false) => U::Year,
                    ('M', false) => U::Month,
                    ('W', false) => U::Week,
                    ('D', false) => U::Day,
                    ('H', true) => U::Hour,
                    ('M', true) => U::Minute,
                    ('S', true) => U::Second,
                    _ => return Err(DateTimeError::Syntax),
                };
                acc.add(unit, v);
                any = true;
            }
        }
    }
    if !num.is_empty() || !any {
        return Err(DateTimeError::Syntax);
    }
    acc.finish(false)
}

/// `ts + iv` for microseconds since the epoch, PostgreSQL's way: months
/// first (the day clamped to the new month's length), then days, then
/// time. `None` when out of range.
pub fn timestamp_add(us: i64, iv: Interval) -> Option<i64> {
    let mut t = us;
    if iv.months != 0 {
        let days = t.div_euclid(USECS_PER_DAY);
        let tod = t.rem_euclid(USECS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        let total = y.checked_mul(12)? + i64::from(m) - 1 + i64::from(iv.months);
        let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
        if !(-1_000_000..=1_000_000).contains(&ny) {
            return None;
        }
        let nd = d.min(days_in_month(ny, nm));
        t = days_from_civil(ny, nm, nd)
            .checked_mul(USECS_PER_DAY)?
            .checked_add(tod)?;
    }
    t = t.checked_add(i64::from(iv.days).checked_mul(USECS_PER_DAY)?)?;
    t = t.checked_add(iv.micros)?;
    timestamp_in_range(t).then_some(t)
}

/// `a - b` for two timestamps: whole days and the rest, both with the
/// difference's sign (PostgreSQL's `timestamp_mi`, justified to hours).
pub fn timestamp_diff(a: i64, b: i64) -> Option<Interval> {
    let d = a.checked_sub(b)?;
    Some(Interval {
        months: 0,
        days: i32::try_from(d / USECS_PER_DAY).ok()?,
        micros: d % USECS_PER_DAY,
    })
}

/// The day of the week, 0 = Sunday.
pub fn weekday(days: i64) -> i64 {
    (days + 4).rem_euclid(7)
}

/// The ISO 8601 year and week of a date.
pub fn iso_week(days: i64) -> (i64, i64) {
    // The Thursday of this date's week decides its year.
    let iso_dow = (weekday(days) + 6) % 7; // 0 = Monday
    let thursday = days - iso_dow + 3;
    let (y, _, _) = civil_from_days(thursday);
    let jan1 = days_from_civil(y, 1, 1);
    (y, (thursday - jan1) / 7 + 1)
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

// Howard Hinnant's civil-date algorithms (proleptic Gregorian; year 0 is
// 1 BC).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(s: &str) -> String {
        parse_interval(s, None, false).unwrap().to_string()
    }

    #[test]
    fn ranges_are_postgresqls() {
        assert_eq!(format_date(DATE_MIN_DAYS), "4714-11-24 BC");
        assert_eq!(format_date(DATE_MAX_DAYS), "5874897-12-31");
        assert_eq!(
            format_timestamp_as(TIMESTAMP_MAX_US, false),
            "294247-01-10 04:00:54.775807"
        );
        assert_eq!(
            format_timestamp_as(TIMESTAMP_MIN_US, true),
            "4714-11-24 00:00:00+00 BC"
        );
    }

    #[test]
    fn dates_and_times_read_and_print_as_postgresql_does() {
        let d = parse_date("1998-12-01").unwrap();
        assert_eq!(format_date(d), "1998-12-01");
        assert_eq!(
            parse_date(" 2024-02-29 13:00 ").map(format_date).unwrap(),
            "2024-02-29"
        );
        assert_eq!(
            parse_date("0044-03-15 BC").map(format_date).unwrap(),
            "0044-03-15 BC"
        );
        assert_eq!(parse_date("2023-02-29"), Err(DateTimeError::OutOfRange));
        assert_eq!(parse_date("12:00"), Err(DateTimeError::Syntax));
        assert_eq!(parse_date("today"), Err(DateTimeError::Syntax));
        assert_eq!(parse_time("24:00:00").map(format_time).unwrap(), "24:00:00");
        assert_eq!(
            parse_time("04:05:06.5").map(format_time).unwrap(),
            "04:05:06.5"
        );
        assert_eq!(parse_time("04:05").map(format_time).unwrap(), "04:05:00");
        assert_eq!(parse_time("25:00"), Err(DateTimeError::OutOfRange));
        let t = parse_timestamp_text("2020-01-01 10:00:00+05").unwrap();
        assert_eq!(format_timestamp_as(t, false), "2020-01-01 10:00:00");
    }

    #[test]
    fn zoned_timestamps_are_stored_in_utc() {
        let cases = [
            ("2020-01-01 10:00:00+05", "2020-01-01 05:00:00+00"),
            ("2020-01-01T10:00:00Z", "2020-01-01 10:00:00+00"),
            ("2020-01-01 10:00:00-05:30", "2020-01-01 15:30:00+00"),
            ("2020-01-01 00:30:00+0100", "2019-12-31 23:30:00+00"),
            ("2020-01-01 10:00 UTC", "2020-01-01 10:00:00+00"),
            ("2020-01-01", "2020-01-01 00:00:00+00"),
            (
                "2020-01-01 10:00:00.123456789",
                "2020-01-01 10:00:00.123457+00",
            ),
        ];
        for (input, want) in cases {
            let t = parse_timestamptz(input).unwrap_or_else(|e| panic!("{input}: {e:?}"));
            assert_eq!(format_timestamp_as(t, true), want, "{input}");
        }
        assert_eq!(
            parse_timestamptz("2020-01-01 10:00 Europe/Paris"),
            Err(DateTimeError::UnknownZone("Europe/Paris".into()))
        );
    }

    #[test]
    fn at_time_zone_reads_numeric_zones_as_posix_does() {
        let h = USECS_PER_HOUR;
        let (m, sec) = (USECS_PER_MINUTE, USECS_PER_SEC);
        // Each as PostgreSQL 15 shifts it.
        for (zone, east) in [
            ("UTC", 0),
            ("zulu", 0),
            ("+05", -5 * h),
            ("UTC+5", -5 * h),
            ("EST5", -5 * h),
            ("gmt-3", 3 * h),
            ("-03:30", 3 * h + 30 * m),
            ("+5:3", -5 * h - 3 * m),
            ("+1:2:3", -h - 2 * m - 3 * sec),
            ("UTC+16", -16 * h),
            ("+167", -167 * h),
        ] {
            assert_eq!(posix_zone_east(zone), Ok(east), "{zone}");
        }
        // Each refused by PostgreSQL 15 too.
        for zone in [
            "Europe/Paris",
            "EST",
            " z ",
            "+0530",
            "UTC+168",
            "-05:60",
            "+1:2:3:4",
            "ES5",
            "+",
            "",
        ] {
            assert_eq!(
                posix_zone_east(zone),
                Err(DateTimeError::UnknownZone(zone.into())),
                "{zone}"
            );
        }
    }

    #[test]
    fn an_interval_field_given_twice_is_an_error() {
        for bad in [
            "1 day 2 days",
            "1 hour 02:00:00",
            "02:00 03:00",
            "1 year 1 mon 2 years",
            "1 minute 3 min",
            "02:00:00 5 ms",
            "1.5 seconds 3 ms",
        ] {
            assert_eq!(
                parse_interval(bad, None, false),
                Err(DateTimeError::Syntax),
                "{bad}"
            );
        }
        // Distinct fields add up, as in PostgreSQL.
        for (ok, days, us) in [
            ("1 week 2 days", 9, 0),
            ("1 day 1 week", 8, 0),
            ("1 second 2 ms", 0, 1_002_000),
            ("1 day 5", 1, 5_000_000),
            ("5 02:00:00", 5, 7_200_000_000),
            ("1 2:03", 1, 7_380_000_000),
            ("-5 -02:00", -5, -7_200_000_000),
        ] {
            let iv = parse_interval(ok, None, false).unwrap();
            assert_eq!((iv.days, iv.micros), (days, us), "{ok}");
        }
        let iv = parse_interval("1 decade 2 years", None, false).unwrap();
        assert_eq!(iv.months, 144);
        let iv = parse_interval("1 year 1-2", None, true).unwrap();
        assert_eq!(iv.months, 26);
    }

    #[test]
    fn intervals_read_and_print_as_postgresql_does() {
        assert_eq!(
            iv("1 year 2 months 3 days 04:05:06"),
            "1 year 2 mons 3 days 04:05:06"
        );
        assert_eq!(iv("-1 day 2 hours"), "-1 days +02:00:00");
        assert_eq!(iv("1 day -02:00"), "1 day -02:00:00");
        assert_eq!(iv("@ 3 days ago"), "-3 days");
        assert_eq!(iv("1.5 months"), "1 mon 15 days");
        assert_eq!(iv("1.5 years"), "1 year 6 mons");
        assert_eq!(iv("1.5 days"), "1 day 12:00:00");
        assert_eq!(iv("0"), "00:00:00");
        assert_eq!(iv("90"), "00:01:30");
        assert_eq!(iv("P1Y2M3DT4H5M6.5S"), "1 year 2 mons 3 days 04:05:06.5");
        assert_eq!(iv("100 hours"), "100:00:00");
        assert_eq!(iv("2 weeks"), "14 days");
        assert_eq!(iv("1 mon"), "1 mon");
        assert_eq!(
            parse_interval("3", Some(IntervalUnit::Month), false).unwrap(),
            Interval::new(3, 0, 0)
        );
        assert_eq!(
            parse_interval("1-2", Some(IntervalUnit::Year), true).unwrap(),
            Interval::new(14, 0, 0)
        );
        assert!(parse_interval("3 fortnights", None, false).is_err());
        assert!(parse_interval("é", Some(IntervalUnit::Year), true).is_err());
        assert!(parse_interval("1-é", Some(IntervalUnit::Year), true).is_err());
        assert!(parse_timestamptz("2020-01-01 10:00+1é1").is_err());
        assert!(parse_date("2020-01-0é").is_err());
        assert!(parse_interval("", None, false).is_err());
        assert_eq!(
            parse_interval("300000000 years", None, false),
            Err(DateTimeError::OutOfRange)
        );
    }

    #[test]
    fn interval_arithmetic_follows_the_calendar() {
        let d = |s: &str| parse_timestamp_text(s).unwrap();
        let show = |t: i64| format_timestamp_as(t, false);
        assert_eq!(
            show(timestamp_add(d("2020-01-31"), Interval::new(1, 0, 0)).unwrap()),
            "2020-02-29 00:00:00"
        );
        assert_eq!(
            show(timestamp_add(d("1998-12-01"), Interval::new(0, -90, 0)).unwrap()),
            "1998-09-02 00:00:00"
        );
        assert_eq!(
            timestamp_diff(d("2020-03-01 05:00"), d("2020-01-01"))
                .unwrap()
                .to_string(),
            "60 days 05:00:00"
        );
        assert_eq!(
            Interval::new(1, 0, 0).span(),
            Interval::new(0, 30, 0).span()
        );
        assert_eq!(
            Interval::new(1, 1, 0).scaled_by(1.5).unwrap().to_string(),
            "1 mon 16 days 12:00:00"
        );
        assert_eq!(Interval::new(0, 0, 3).scaled_by(0.5).unwrap().micros, 2);
    }

    #[test]
    fn uuids_read_in_postgresql_forms_and_print_canonically() {
        let want = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        for s in [
            want,
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
        ] {
            assert_eq!(
                parse_uuid(s).map(|b| format_uuid(&b)).as_deref(),
                Some(want),
                "{s}"
            );
        }
        for bad in [
            "a0eebc99",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
            "-a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11-",
            "a0e-ebc999c0b4ef8bb6d6bb9bd380a11",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad}");
        }
    }

    #[test]
    fn iso_weeks_and_weekdays() {
        let d = |s: &str| parse_date(s).unwrap();
        assert_eq!(weekday(d("2024-01-07")), 0);
        assert_eq!(iso_week(d("2021-01-03")), (2020, 53));
        assert_eq!(iso_week(d("2024-12-30")), (2025, 1));
    }
}
