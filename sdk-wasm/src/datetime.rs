//! Dates, times, intervals and UUIDs as a procedure holds them:
//! `Timestamp`, `TimestampTz`, `Date`, `Time`, `Interval` and `Uuid`, each
//! the plain number (or bytes) the ABI carries.
//!
//! Owns: their constructors, calendar arithmetic (proleptic Gregorian, no
//! time zones: a `TimestampTz` is an instant, shown in UTC) and their text
//! as PostgreSQL prints it (`DateStyle = ISO`, `TimeZone = UTC`,
//! `IntervalStyle = postgres`). Must not: parse dates or times (the host's
//! SQL does that), depend on anything but `std`, or read a clock.

use std::fmt;
use std::str::FromStr;

use crate::abi::{self, Writer};
use crate::error::{Error, Result};

/// Microseconds in a second, an hour and a day.
const SECOND_MICROS: i64 = 1_000_000;
const HOUR_MICROS: i64 = 3_600 * SECOND_MICROS;
const DAY_MICROS: i64 = 24 * HOUR_MICROS;

/// A point in time without a zone: microseconds since 1970-01-01 00:00:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since the epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// From whole seconds since the epoch, or None if out of range.
    pub const fn from_secs(secs: i64) -> Option<Timestamp> {
        match secs.checked_mul(SECOND_MICROS) {
            Some(m) => Some(Timestamp(m)),
            None => None,
        }
    }
}

impl fmt::Display for Timestamp {
    /// `YYYY-MM-DD HH:MM:SS`, with the fraction when there are microseconds
    /// (`.5`, `.000006`: trailing zeros trimmed, as PostgreSQL prints it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d) = civil_from_days(self.0.div_euclid(DAY_MICROS));
        write!(f, "{y:04}-{mo:02}-{d:02} ")?;
        write_clock(f, self.0.rem_euclid(DAY_MICROS))
    }
}

/// A point in time, TIMESTAMP WITH TIME ZONE: microseconds since
/// 1970-01-01 00:00:00 UTC. It carries no zone; it prints in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimestampTz(pub i64);

impl TimestampTz {
    /// From microseconds since the epoch (UTC).
    pub const fn from_micros(micros: i64) -> TimestampTz {
        TimestampTz(micros)
    }

    /// Microseconds since the epoch (UTC).
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// From whole seconds since the epoch, or None if out of range.
    pub const fn from_secs(secs: i64) -> Option<TimestampTz> {
        match secs.checked_mul(SECOND_MICROS) {
            Some(m) => Some(TimestampTz(m)),
            None => None,
        }
    }
}

impl fmt::Display for TimestampTz {
    /// `YYYY-MM-DD HH:MM:SS[.f]+00`, ` BC` last before year 1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bc = write_date(f, self.0.div_euclid(DAY_MICROS))?;
        f.write_str(" ")?;
        write_clock(f, self.0.rem_euclid(DAY_MICROS))?;
        f.write_str("+00")?;
        if bc {
            f.write_str(" BC")?;
        }
        Ok(())
    }
}

/// A calendar date: days since 1970-01-01 (negative before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub i32);

impl Date {
    /// The date `year-month-day` (proleptic Gregorian; year 0 is 1 BC), or
    /// None if there is no such day or it is too far from 1970 for `i32` days.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year.into(), month) {
            return None;
        }
        let days = days_from_civil(year.into(), month.into(), day.into());
        i32::try_from(days).ok().map(Date)
    }

    /// From days since 1970-01-01.
    pub const fn from_days(days: i32) -> Date {
        Date(days)
    }

    /// Days since 1970-01-01.
    pub const fn days(self) -> i32 {
        self.0
    }

    /// (year, month, day); year 0 is 1 BC.
    pub fn ymd(self) -> (i32, u32, u32) {
        let (y, m, d) = civil_from_days(self.0.into());
        // Years of an i32 day count fit an i32; months and days are small.
        (y as i32, m as u32, d as u32)
    }
}

impl fmt::Display for Date {
    /// `YYYY-MM-DD`, ` BC` last before year 1.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if write_date(f, self.0.into())? {
            f.write_str(" BC")?;
        }
        Ok(())
    }
}

/// A time of day: microseconds since midnight, 0..=24:00:00 (24:00:00 is
/// a time, as in PostgreSQL). Only times in that range can be sent to the
/// host; the constructors make no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub i64);

impl Time {
    /// From microseconds since midnight, or None outside 0..=24:00:00.
    pub const fn from_micros(micros: i64) -> Option<Time> {
        if micros >= 0 && micros <= abi::TIME_MICROS_MAX {
            Some(Time(micros))
        } else {
            None
        }
    }

    /// `hour:minute:second`, or None if not a time of day (24:00:00 is one).
    pub fn from_hms(hour: u32, minute: u32, second: u32) -> Option<Time> {
        if minute > 59 || second > 59 {
            return None;
        }
        let secs = (i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second);
        Time::from_micros(secs * SECOND_MICROS)
    }

    /// Microseconds since midnight.
    pub const fn micros(self) -> i64 {
        self.0
    }

    pub(crate) fn encode(&self, w: &mut Writer) -> Result<()> {
        if Time::from_micros(self.0).is_none() {
            return Err(Error::Type(format!(
                "time of {} microseconds is outside 00:00:00..=24:00:00 (0..={})",
                self.0,
                abi::TIME_MICROS_MAX
            )));
        }
        w.time_value(self.0);
        Ok(())
    }
}

impl fmt::Display for Time {
    /// `HH:MM:SS`, with the fraction when there are microseconds (`.5`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_clock(f, self.0)
    }
}

/// A span of time as PostgreSQL keeps it: months, days and microseconds
/// apart, because a month is not a fixed number of days. Equality is
/// structural: 1 month and 30 days differ here (SQL finds them equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

impl Interval {
    /// `months` months, `days` days and `micros` microseconds.
    pub const fn new(months: i32, days: i32, micros: i64) -> Interval {
        Interval {
            months,
            days,
            micros,
        }
    }
}

impl fmt::Display for Interval {
    /// PostgreSQL's `IntervalStyle = postgres`: `1 year 2 mons -3 days
    /// +04:05:06.5`, `00:00:00` for zero. A field is signed when it differs
    /// in sign from the one before it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let months = i64::from(self.months);
        let fields = [
            (months / 12, "year"),
            (months % 12, "mon"),
            (i64::from(self.days), "day"),
        ];
        let (mut empty, mut after_negative) = (true, false);
        for (value, unit) in fields {
            if value == 0 {
                continue;
            }
            let sep = if empty { "" } else { " " };
            let plus = if after_negative && value > 0 { "+" } else { "" };
            let s = if value == 1 { "" } else { "s" };
            write!(f, "{sep}{plus}{value} {unit}{s}")?;
            (empty, after_negative) = (false, value < 0);
        }
        if !empty && self.micros == 0 {
            return Ok(());
        }
        if !empty {
            f.write_str(" ")?;
        }
        if self.micros < 0 {
            f.write_str("-")?;
        } else if after_negative {
            f.write_str("+")?;
        }
        let a = self.micros.unsigned_abs();
        let (hour, second) = (HOUR_MICROS as u64, SECOND_MICROS as u64);
        let (h, m, s) = (a / hour, a / (60 * second) % 60, a / second % 60);
        write!(f, "{h:02}:{m:02}:{s:02}")?;
        write_fraction(f, a % second)
    }
}

/// A UUID: 16 bytes, in the order its canonical text prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// From its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Uuid {
        Uuid(bytes)
    }

    /// Its 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Reads a UUID as PostgreSQL does: 32 hex digits in either case,
    /// optionally in braces, with a hyphen allowed after any group of four
    /// (`a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`); None if it is not one.
    pub fn parse(s: &str) -> Option<Uuid> {
        let t = s.trim();
        let t = match t.strip_prefix('{') {
            Some(inner) => inner.strip_suffix('}')?,
            None => t,
        };
        let mut out = [0u8; 16];
        let (mut n, mut after_hyphen) = (0usize, true);
        for c in t.chars() {
            if c == '-' {
                // Only after a whole group of four, never twice, never last.
                if after_hyphen || n % 4 != 0 || n == 32 {
                    return None;
                }
                after_hyphen = true;
                continue;
            }
            let digit = c.to_digit(16)? as u8;
            let byte = out.get_mut(n / 2)?;
            *byte |= if n % 2 == 0 { digit << 4 } else { digit };
            n += 1;
            after_hyphen = false;
        }
        (n == 32 && !after_hyphen).then_some(Uuid(out))
    }
}

impl FromStr for Uuid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Uuid> {
        Uuid::parse(s).ok_or_else(|| Error::Type(format!("{s:?} is not a UUID")))
    }
}

impl fmt::Display for Uuid {
    /// Lower-case `8-4-4-4-12` hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// (year, month, day) of a day number counted from 1970-01-01
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The day number, counted from 1970-01-01, of a valid civil date (the
/// inverse of `civil_from_days`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let leap = year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Writes `YYYY-MM-DD` as PostgreSQL does, the year counted from 1 BC
/// backwards before year 1; true if the caller must append ` BC`.
fn write_date(f: &mut fmt::Formatter<'_>, days: i64) -> core::result::Result<bool, fmt::Error> {
    let (y, m, d) = civil_from_days(days);
    let (year, bc) = if y <= 0 { (1 - y, true) } else { (y, false) };
    write!(f, "{year:04}-{m:02}-{d:02}")?;
    Ok(bc)
}

/// Writes `HH:MM:SS[.f]` of microseconds since midnight.
fn write_clock(f: &mut fmt::Formatter<'_>, micros: i64) -> fmt::Result {
    let secs = micros / SECOND_MICROS;
    write!(
        f,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )?;
    write_fraction(f, (micros % SECOND_MICROS).unsigned_abs())
}

/// Writes `.ffffff` with trailing zeros trimmed; nothing for zero.
fn write_fraction(f: &mut fmt::Formatter<'_>, micros: u64) -> fmt::Result {
    if micros == 0 {
        return Ok(());
    }
    let (mut digits, mut width) = (micros, 6);
    while digits % 10 == 0 {
        digits /= 10;
        width -= 1;
    }
    write!(f, ".{digits:0width$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_display() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01 00:00:00");
        assert_eq!(
            Timestamp(1_700_000_000_000_006).to_string(),
            "2023-11-14 22:13:20.000006"
        );
        assert_eq!(Timestamp(500_000).to_string(), "1970-01-01 00:00:00.5");
        assert_eq!(Timestamp(120_000).to_string(), "1970-01-01 00:00:00.12");
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31 23:59:59.999999");
        assert_eq!(
            Timestamp::from_secs(951_782_400).unwrap().to_string(),
            "2000-02-29 00:00:00"
        );
        assert_eq!(Timestamp::from_secs(i64::MAX), None);
        // The extremes must not overflow.
        let _ = (
            Timestamp(i64::MIN).to_string(),
            Timestamp(i64::MAX).to_string(),
        );
    }

    #[test]
    fn timestamptz_display() {
        let t = TimestampTz::from_secs(1_704_164_645).unwrap();
        assert_eq!(t.to_string(), "2024-01-02 03:04:05+00");
        assert_eq!(
            TimestampTz(t.micros() + 250_000).to_string(),
            "2024-01-02 03:04:05.25+00"
        );
        assert_eq!(TimestampTz(-1).to_string(), "1969-12-31 23:59:59.999999+00");
        let bc = -62_135_596_800_000_000 - DAY_MICROS; // 0001-01-01 minus a day
        assert_eq!(TimestampTz(bc).to_string(), "0001-12-31 00:00:00+00 BC");
        let _ = (
            TimestampTz(i64::MIN).to_string(),
            TimestampTz(i64::MAX).to_string(),
        );
    }

    #[test]
    fn dates_from_and_to_the_calendar() {
        let d = Date::from_ymd(2024, 1, 2).unwrap();
        assert_eq!((d.days(), d.to_string()), (19_724, "2024-01-02".into()));
        assert_eq!(d.ymd(), (2024, 1, 2));
        assert_eq!(Date::from_ymd(1970, 1, 1), Some(Date(0)));
        assert_eq!(Date::from_ymd(1969, 12, 31), Some(Date(-1)));
        assert_eq!(
            Date::from_ymd(2000, 2, 29).unwrap().to_string(),
            "2000-02-29"
        );
        for (y, m, d) in [
            (1900, 2, 29),
            (2023, 2, 29),
            (2024, 13, 1),
            (2024, 4, 31),
            (2024, 0, 1),
        ] {
            assert_eq!(Date::from_ymd(y, m, d), None, "{y}-{m}-{d}");
        }
        assert_eq!(
            Date::from_ymd(i32::MAX, 1, 1),
            None,
            "too many days for i32"
        );
        // Every day of 400 years (one Gregorian cycle) and back.
        for days in -73_000..73_000 {
            let (y, m, d) = Date(days).ymd();
            assert_eq!(Date::from_ymd(y, m, d), Some(Date(days)));
        }
        // Year 0 is 1 BC; 44 BC is year -43.
        assert_eq!(
            Date::from_ymd(0, 12, 31).unwrap().to_string(),
            "0001-12-31 BC"
        );
        assert_eq!(
            Date::from_ymd(-43, 3, 15).unwrap().to_string(),
            "0044-03-15 BC"
        );
        let _ = (Date(i32::MIN).to_string(), Date(i32::MAX).to_string());
    }

    #[test]
    fn times_of_day() {
        let t = Time::from_hms(3, 4, 5).unwrap();
        assert_eq!(t.to_string(), "03:04:05");
        assert_eq!(Time(t.micros() + 500_000).to_string(), "03:04:05.5");
        assert_eq!(Time(1).to_string(), "00:00:00.000001");
        assert_eq!(Time::from_hms(24, 0, 0).unwrap().to_string(), "24:00:00");
        assert_eq!(Time::from_hms(24, 0, 1), None);
        assert_eq!(Time::from_hms(1, 60, 0), None);
        assert_eq!(Time::from_micros(-1), None);
        assert_eq!(
            Time::from_micros(abi::TIME_MICROS_MAX),
            Some(Time(86_400_000_000))
        );
        let mut w = Writer::new();
        let e = Time(-1).encode(&mut w).unwrap_err();
        assert_eq!(
            e.to_string(),
            "time of -1 microseconds is outside 00:00:00..=24:00:00 (0..=86400000000)"
        );
        assert!(w.buf.is_empty(), "nothing written for a bad time");
    }

    #[test]
    fn interval_display_as_postgres() {
        let hms = |h: i64, m: i64, s: i64| ((h * 60 + m) * 60 + s) * SECOND_MICROS;
        for (iv, text) in [
            (Interval::default(), "00:00:00"),
            (
                Interval::new(14, 3, hms(4, 5, 6)),
                "1 year 2 mons 3 days 04:05:06",
            ),
            (
                Interval::new(14, -3, hms(4, 5, 6)),
                "1 year 2 mons -3 days +04:05:06",
            ),
            (Interval::new(-14, 0, 0), "-1 years -2 mons"),
            (Interval::new(0, 1, 0), "1 day"),
            (Interval::new(0, -1, hms(-1, 0, 0)), "-1 days -01:00:00"),
            (Interval::new(1, 0, 1_500_000), "1 mon 00:00:01.5"),
            (Interval::new(0, 0, -hms(100, 0, 0)), "-100:00:00"),
            (Interval::new(12, 0, 0), "1 year"),
        ] {
            assert_eq!(iv.to_string(), text, "{iv:?}");
        }
        let extreme = Interval::new(i32::MIN, i32::MIN, i64::MIN).to_string();
        assert!(extreme.ends_with("-2562047788:00:54.775808"), "{extreme}");
    }

    #[test]
    fn uuids_parse_and_print_canonically() {
        let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        let u = Uuid::parse(canonical).unwrap();
        assert_eq!(u.as_bytes()[..3], [0xa0, 0xee, 0xbc]);
        assert_eq!(u.as_bytes()[15], 0x11);
        assert_eq!(u.to_string(), canonical);
        for same in [
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}",
            "a0eebc999c0b4ef8bb6d6bb9bd380a11",
            "a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11",
            " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 ",
        ] {
            assert_eq!(same.parse::<Uuid>().unwrap(), u, "{same}");
        }
        for bad in [
            "",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111",
            "a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11",
            "-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
            "a0eeb-c99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ] {
            assert_eq!(Uuid::parse(bad), None, "{bad:?}");
        }
        let e = "x".parse::<Uuid>().unwrap_err();
        assert_eq!(e.to_string(), "\"x\" is not a UUID");
        assert_eq!(
            Uuid([0; 16]).to_string(),
            "00000000-0000-0000-0000-000000000000"
        );
    }
}
