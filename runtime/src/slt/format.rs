//! Rendering result values the way SQLite's C sqllogictest runner does, so
//! that the corpus's expected answers (written by that runner) compare
//! byte for byte.
//!
//! Owns: the per-type-letter formatting (`I`, `R`, `T`), the sort modes and
//! the "N values hashing to H" digest. Must not: know about records, files
//! or engines.

use crate::types::Value;
use md5::{Digest, Md5};
use rust_decimal::prelude::ToPrimitive;

/// Renders one value for a column declared with `letter` (`I`, `R` or `T`).
/// Returns `None` for a letter the C runner does not know.
pub fn format_value(value: &Value, letter: char) -> Option<String> {
    if value.is_null() {
        return Some("NULL".to_string());
    }
    let text = match letter {
        'I' => as_i64(value).to_string(),
        'R' => format_real(as_f64(value)),
        'T' => as_text(value),
        _ => return None,
    };
    Some(printable(text))
}

/// The C runner replaces every byte outside printable ASCII with `@`.
fn printable(text: String) -> String {
    if text.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return text;
    }
    text.bytes()
        .map(|b| {
            if (0x20..=0x7e).contains(&b) {
                b as char
            } else {
                '@'
            }
        })
        .collect()
}

/// Like `sqlite3_column_int64`: doubles truncate toward zero and saturate,
/// text takes its leading integer.
fn as_i64(value: &Value) -> i64 {
    match value {
        Value::Null => 0,
        Value::Bool(b) => i64::from(*b),
        Value::Int(i) => *i,
        // `as` truncates toward zero, saturates, and maps NaN to 0.
        Value::Double(d) => *d as i64,
        Value::Decimal(d) => d.trunc().to_i64().unwrap_or(if d.is_sign_negative() {
            i64::MIN
        } else {
            i64::MAX
        }),
        Value::Text(s) => leading_int(s),
        Value::Bytes(b) => leading_int(&String::from_utf8_lossy(b)),
        Value::Timestamp(t) => *t,
        // As SQLite would read their text.
        other => leading_int(&other.to_string()),
    }
}

/// Like `sqlite3_column_double`.
fn as_f64(value: &Value) -> f64 {
    match value {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Int(i) => *i as f64,
        Value::Double(d) => *d,
        Value::Decimal(d) => d.to_f64().unwrap_or(0.0),
        Value::Text(s) => leading_float(s),
        Value::Bytes(b) => leading_float(&String::from_utf8_lossy(b)),
        Value::Timestamp(t) => *t as f64,
        other => leading_float(&other.to_string()),
    }
}

fn as_text(value: &Value) -> String {
    match value {
        Value::Text(s) if s.is_empty() => "(empty)".to_string(),
        Value::Text(s) => s.to_string(),
        Value::Bytes(b) if b.is_empty() => "(empty)".to_string(),
        // SQLite hands a blob's bytes back as text unchanged.
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::Double(d) => format_double_g15(*d),
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        other => other.to_string(),
    }
}

/// SQLite's `sqlite3_snprintf("%.3f")`, which the C runner uses: like C's,
/// except that at most 16 significant digits are produced (the rest are
/// zeros), so -2^63 prints as `-9223372036854776000.000`.
fn format_real(d: f64) -> String {
    const DIGITS_MAX: i32 = 16;
    const DECIMALS: i32 = 3;
    if d.is_nan() {
        return "NaN".to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Inf" } else { "-Inf" }.to_string();
    }
    let sci = format!("{:.*e}", (DIGITS_MAX - 1) as usize, d);
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("`{:e}` output always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    if exp + 1 + DECIMALS <= DIGITS_MAX {
        return format!("{d:.3}");
    }
    let sign = if mantissa.starts_with('-') { "-" } else { "" };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let int_len = (exp + 1) as usize;
    let mut all = digits;
    let width = int_len + DECIMALS as usize;
    all = format!("{all:0<width$}");
    format!("{sign}{}.{}", &all[..int_len], &all[int_len..])
}

/// SQLite's `"%!.15g"`: 15 significant digits, trailing zeros dropped, but
/// always a decimal point (`3.0`, `1.0e+20`).
pub fn format_double_g15(d: f64) -> String {
    const PRECISION: i32 = 15;
    if d.is_nan() {
        return "NaN".to_string();
    }
    if d.is_infinite() {
        return if d > 0.0 { "Inf" } else { "-Inf" }.to_string();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // Rust rounds the exact binary value to 15 significant digits.
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, d);
    let (mantissa, exp) = sci
        .split_once('e')
        .expect("`{:e}` output always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let sign = if negative { "-" } else { "" };
    if !(-4..PRECISION).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}.{rest}e{esign}{:02}", exp.abs());
    }
    let (int_part, frac_part) = if exp >= 0 {
        let point = (exp + 1) as usize;
        if digits.len() <= point {
            (format!("{digits:0<point$}"), String::new())
        } else {
            (digits[..point].to_string(), digits[point..].to_string())
        }
    } else {
        let zeros = (-exp - 1) as usize;
        ("0".to_string(), format!("{}{digits}", "0".repeat(zeros)))
    };
    let frac_part = if frac_part.is_empty() {
        "0".to_string()
    } else {
        frac_part
    };
    format!("{sign}{int_part}.{frac_part}")
}

/// SQLite's text-to-integer: optional whitespace, sign, digits; anything
/// else ends the number; no digits gives 0; overflow saturates.
pub fn leading_int(s: &str) -> i64 {
    let t = s.trim_start();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut acc: i128 = 0;
    for b in t.bytes().take_while(u8::is_ascii_digit) {
        acc = (acc * 10 + i128::from(b - b'0')).min(i128::from(u64::MAX));
    }
    let acc = if negative { -acc } else { acc };
    acc.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// SQLite's text-to-real: the longest prefix that reads as a number.
pub fn leading_float(s: &str) -> f64 {
    let t = s.trim_start().as_bytes();
    let mut i = 0;
    if matches!(t.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let int_start = i;
    while t.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut digits = i - int_start;
    if t.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        let mut j = frac_start;
        while t.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        digits += j - frac_start;
        if digits > 0 {
            i = j;
        }
    }
    if digits == 0 {
        return 0.0;
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(t.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let exp_start = j;
        while t.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    std::str::from_utf8(&t[..i])
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0)
}

/// How a query's results are ordered before comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    No,
    Rows,
    Values,
}

/// Sorts formatted rows per the mode (byte-wise, like `strcmp`) and
/// flattens them into one list of values.
pub fn sort_and_flatten(mut rows: Vec<Vec<String>>, sort: Sort) -> Vec<String> {
    if sort == Sort::Rows {
        rows.sort();
    }
    let mut values: Vec<String> = rows.into_iter().flatten().collect();
    if sort == Sort::Values {
        values.sort();
    }
    values
}

/// The C runner's digest: MD5 over each value followed by a newline.
pub fn hash_values(values: &[String]) -> String {
    let mut md5 = Md5::new();
    for v in values {
        md5.update(v.as_bytes());
        md5.update(b"\n");
    }
    md5.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses an expected "N values hashing to H" line.
pub fn parse_hash_line(line: &str) -> Option<(usize, &str)> {
    let mut words = line.split_whitespace();
    let n = words.next()?.parse().ok()?;
    let tail: Vec<&str> = words.collect();
    match tail.as_slice() {
        ["values", "hashing", "to", h] => Some((n, h)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn f(v: Value, letter: char) -> String {
        format_value(&v, letter).unwrap()
    }

    #[test]
    fn integers_follow_sqlite_column_int64() {
        assert_eq!(f(Value::Double(-2.9), 'I'), "-2");
        assert_eq!(f(Value::Double(1e30), 'I'), i64::MAX.to_string());
        assert_eq!(f(Value::Decimal(Decimal::new(-759, 2)), 'I'), "-7");
        assert_eq!(f(Value::text("  42abc"), 'I'), "42");
        assert_eq!(f(Value::text("abc"), 'I'), "0");
        assert_eq!(f(Value::Bool(true), 'I'), "1");
        assert_eq!(f(Value::Null, 'I'), "NULL");
    }

    #[test]
    fn reals_have_three_decimals() {
        assert_eq!(f(Value::Int(3), 'R'), "3.000");
        assert_eq!(f(Value::Double(-0.0004), 'R'), "-0.000");
        assert_eq!(f(Value::text("2.5e1x"), 'R'), "25.000");
        assert_eq!(f(Value::text(".5"), 'R'), "0.500");
        assert_eq!(f(Value::text("x"), 'R'), "0.000");
        assert_eq!(f(Value::Int(i64::MIN), 'R'), "-9223372036854776000.000");
        assert_eq!(
            f(Value::Double(-18446744073709551616.0), 'R'),
            "-18446744073709550000.000"
        );
        assert_eq!(
            f(Value::Double(1234567890123.4567), 'R'),
            "1234567890123.457"
        );
        assert_eq!(
            f(Value::Double(12345678901234.567), 'R'),
            "12345678901234.570"
        );
    }

    #[test]
    fn text_follows_the_c_runner() {
        assert_eq!(f(Value::text(""), 'T'), "(empty)");
        assert_eq!(f(Value::text("a\tb\u{e9}"), 'T'), "a@b@@");
        assert_eq!(f(Value::Int(-7), 'T'), "-7");
        assert_eq!(f(Value::Double(1.5), 'T'), "1.5");
        assert_eq!(f(Value::Double(3.0), 'T'), "3.0");
        assert_eq!(f(Value::Double(1e20), 'T'), "1.0e+20");
        assert_eq!(f(Value::Double(0.1 + 0.2), 'T'), "0.3");
        assert_eq!(f(Value::Double(1.0 / 3.0), 'T'), "0.333333333333333");
        assert_eq!(f(Value::Double(-1.25e-7), 'T'), "-1.25e-07");
        assert_eq!(
            f(Value::Double(123456789012345.0), 'T'),
            "123456789012345.0"
        );
        assert_eq!(f(Value::Double(0.0001), 'T'), "0.0001");
        assert_eq!(format_value(&Value::Int(1), 'X'), None);
    }

    #[test]
    fn sorting_and_hashing() {
        let rows = vec![
            vec!["b".to_string(), "1".into()],
            vec!["a".into(), "2".into()],
        ];
        assert_eq!(
            sort_and_flatten(rows.clone(), Sort::No),
            ["b", "1", "a", "2"]
        );
        assert_eq!(
            sort_and_flatten(rows.clone(), Sort::Rows),
            ["a", "2", "b", "1"]
        );
        assert_eq!(sort_and_flatten(rows, Sort::Values), ["1", "2", "a", "b"]);
        // md5("1\n2\n")
        assert_eq!(
            hash_values(&["1".into(), "2".into()]),
            "6ddb4095eb719e2a9f0a3f95677d24e0"
        );
        assert_eq!(
            parse_hash_line("30 values hashing to abc"),
            Some((30, "abc"))
        );
        assert_eq!(parse_hash_line("30"), None);
    }
}
