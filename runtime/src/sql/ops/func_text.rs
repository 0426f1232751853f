//! String scalar functions. Arguments arrive non-NULL (except for concat)
//! with arity checked. Positions and lengths count Unicode characters, or
//! bytes for VARBINARY arguments.
//!
//! String arguments accept text and, leniently (as SQLite does), numbers,
//! booleans and timestamps rendered as CAST(.. AS TEXT) would. Counts and
//! positions must be integers.

use super::cast::render_text;
use super::func::no_such_signature;
use super::SqlError;
use crate::types::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// The largest string repeat/lpad/rpad may build.
const TEXT_RESULT_BYTES_MAX: usize = 64 << 20;

fn text_arg(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Text(s) => Some(Cow::Borrowed(s)),
        Value::Bytes(_) | Value::Null => None,
        other => Some(Cow::Owned(render_text(other))),
    }
}

fn int_arg(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn too_large() -> SqlError {
    SqlError::exec("requested length too large")
}

/// Runs string function `name`; an unknown name is reported as an error
/// since `func::arity` already vouched for it.
pub(super) fn call(name: &str, args: &[Value]) -> Result<Value, SqlError> {
    let bad = || no_such_signature(name, args);
    if let Some(v) = bytes_fn(name, args) {
        return v;
    }
    let s = text_arg(&args[0]).ok_or_else(bad)?;
    let out: String = match name {
        "length" | "char_length" | "character_length" => {
            return Ok(Value::Int(s.chars().count() as i64))
        }
        "octet_length" => return Ok(Value::Int(s.len() as i64)),
        "position" | "strpos" => {
            let sub = text_arg(&args[1]).ok_or_else(bad)?;
            return Ok(Value::Int(position(&s, &sub)));
        }
        "upper" => s.to_uppercase(),
        "lower" => s.to_lowercase(),
        "reverse" => s.chars().rev().collect(),
        "substr" | "substring" => {
            let ints: Option<Vec<i64>> = args[1..].iter().map(int_arg).collect();
            let ints = ints.ok_or_else(bad)?;
            let chars: Vec<char> = s.chars().collect();
            let (a, b) = substr_range(chars.len(), ints[0], ints.get(1).copied())?;
            chars[a..b].iter().collect()
        }
        "trim" | "btrim" | "ltrim" | "rtrim" => {
            let set: Vec<char> = match args.get(1) {
                Some(c) => text_arg(c).ok_or_else(bad)?.chars().collect(),
                None => vec![' '],
            };
            trim(&s, &set, name != "rtrim", name != "ltrim").to_string()
        }
        "replace" => {
            let from = text_arg(&args[1]).ok_or_else(bad)?;
            let to = text_arg(&args[2]).ok_or_else(bad)?;
            if from.is_empty() {
                s.into_owned()
            } else {
                s.replace(from.as_ref(), &to)
            }
        }
        "left" | "right" => {
            let n = int_arg(&args[1]).ok_or_else(bad)?;
            left_right(&s, n, name == "left")
        }
        "repeat" => {
            let n = int_arg(&args[1]).ok_or_else(bad)?;
            let n = usize::try_from(n).unwrap_or(0);
            if s.len().saturating_mul(n) > TEXT_RESULT_BYTES_MAX {
                return Err(too_large());
            }
            s.repeat(n)
        }
        "lpad" | "rpad" => {
            let n = int_arg(&args[1]).ok_or_else(bad)?;
            let fill = match args.get(2) {
                Some(f) => text_arg(f).ok_or_else(bad)?,
                None => Cow::Borrowed(" "),
            };
            pad(&s, n, &fill, name == "lpad")?
        }
        _ => {
            return Err(SqlError::exec(format!(
                "function {name} is not implemented"
            )))
        }
    };
    Ok(Value::Text(smol_str::SmolStr::from(out)))
}

/// The VARBINARY forms of length, octet_length and substr.
fn bytes_fn(name: &str, args: &[Value]) -> Option<Result<Value, SqlError>> {
    let Value::Bytes(b) = &args[0] else {
        return None;
    };
    Some(match name {
        "length" | "octet_length" => Ok(Value::Int(b.len() as i64)),
        "substr" | "substring" => {
            let ints: Option<Vec<i64>> = args[1..].iter().map(int_arg).collect();
            match ints {
                Some(ints) => substr_range(b.len(), ints[0], ints.get(1).copied())
                    .map(|(x, y)| Value::Bytes(Arc::from(&b[x..y]))),
                None => Err(no_such_signature(name, args)),
            }
        }
        _ => Err(no_such_signature(name, args)),
    })
}

/// PostgreSQL substring: 1-based `start`, `len` counted from `start` even
/// when it is before the first character; returns a clamped index range.
fn substr_range(n: usize, start: i64, len: Option<i64>) -> Result<(usize, usize), SqlError> {
    let end = match len {
        Some(l) if l < 0 => return Err(SqlError::exec("negative substring length not allowed")),
        Some(l) => i128::from(start) + i128::from(l),
        None => i128::MAX,
    };
    let clamp = |p: i128| (p.max(1) - 1).min(n as i128) as usize;
    let (a, b) = (clamp(i128::from(start)), clamp(end));
    Ok((a, b.max(a)))
}

/// 1-based character position of `sub` in `s`, 0 if absent (1 if empty).
fn position(s: &str, sub: &str) -> i64 {
    match s.find(sub) {
        Some(byte) => s[..byte].chars().count() as i64 + 1,
        None => 0,
    }
}

fn trim<'a>(s: &'a str, set: &[char], left: bool, right: bool) -> &'a str {
    let mut t = s;
    if left {
        t = t.trim_start_matches(|c| set.contains(&c));
    }
    if right {
        t = t.trim_end_matches(|c| set.contains(&c));
    }
    t
}

/// left(s, n): first n chars, or all but the last -n; right mirrors it.
fn left_right(s: &str, n: i64, left: bool) -> String {
    let count = s.chars().count();
    let k = if n >= 0 {
        (n as u64).min(count as u64) as usize
    } else {
        count.saturating_sub(n.unsigned_abs().min(count as u64) as usize)
    };
    if left {
        s.chars().take(k).collect()
    } else {
        s.chars().skip(count - k).collect()
    }
}

/// lpad/rpad to exactly `n` characters: longer input is truncated, an empty
/// fill leaves short input as is.
fn pad(s: &str, n: i64, fill: &str, left: bool) -> Result<String, SqlError> {
    let n = usize::try_from(n).unwrap_or(0);
    if n.saturating_mul(4) > TEXT_RESULT_BYTES_MAX {
        return Err(too_large());
    }
    let count = s.chars().count();
    if count >= n {
        return Ok(s.chars().take(n).collect());
    }
    if fill.is_empty() {
        return Ok(s.to_string());
    }
    let padding: String = fill.chars().cycle().take(n - count).collect();
    Ok(if left {
        padding + s
    } else {
        format!("{s}{padding}")
    })
}

/// concat: renders every non-NULL argument and joins them.
pub(super) fn concat(args: &[Value]) -> Value {
    let mut out = String::new();
    for a in args.iter().filter(|a| !a.is_null()) {
        out.push_str(&render_text(a));
    }
    Value::Text(smol_str::SmolStr::from(out))
}

#[cfg(test)]
mod tests {
    use super::super::call_scalar;
    use super::*;

    fn call(name: &str, args: &[Value]) -> Result<Value, String> {
        match call_scalar(name, args) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err("unknown".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn t(s: &str) -> Value {
        Value::text(s)
    }

    fn i(n: i64) -> Value {
        Value::Int(n)
    }

    fn text(name: &str, args: &[Value]) -> String {
        match call(name, args).unwrap() {
            Value::Text(s) => s.to_string(),
            other => panic!("{name}: expected text, got {other:?}"),
        }
    }

    fn int(name: &str, args: &[Value]) -> i64 {
        match call(name, args).unwrap() {
            Value::Int(n) => n,
            other => panic!("{name}: expected int, got {other:?}"),
        }
    }

    #[test]
    fn lengths_and_case() {
        assert_eq!(int("length", &[t("héllo")]), 5);
        assert_eq!(int("char_length", &[t("")]), 0);
        assert_eq!(int("character_length", &[t("日本")]), 2);
        assert_eq!(int("octet_length", &[t("日本")]), 6);
        let b = Value::Bytes(Arc::from(&[1u8, 2, 3][..]));
        assert_eq!(int("length", std::slice::from_ref(&b)), 3);
        assert_eq!(int("octet_length", std::slice::from_ref(&b)), 3);
        assert_eq!(int("length", &[i(12345)]), 5);
        assert_eq!(text("upper", &[t("straße")]), "STRASSE");
        assert_eq!(text("lower", &[t("ÀB")]), "àb");
        assert_eq!(text("reverse", &[t("abc日")]), "日cba");
        assert_eq!(
            call("upper", &[b]).unwrap_err(),
            "function upper(VARBINARY) does not exist"
        );
    }

    #[test]
    fn substrings() {
        assert_eq!(text("substr", &[t("hello"), i(2)]), "ello");
        assert_eq!(text("substr", &[t("hello"), i(2), i(3)]), "ell");
        assert_eq!(text("substring", &[t("hello"), i(0), i(3)]), "he");
        assert_eq!(text("substring", &[t("hello"), i(-5), i(3)]), "");
        assert_eq!(text("substr", &[t("hello"), i(10)]), "");
        assert_eq!(text("substr", &[t("hello"), i(3), i(100)]), "llo");
        assert_eq!(text("substr", &[t("héllo"), i(2), i(1)]), "é");
        assert_eq!(text("substr", &[t("abc"), i(i64::MIN), i(i64::MAX)]), "");
        assert_eq!(text("substr", &[t("abc"), i(2), i(i64::MAX)]), "bc");
        assert_eq!(
            call("substr", &[t("hello"), i(1), i(-1)]).unwrap_err(),
            "negative substring length not allowed"
        );
        assert_eq!(
            call("substr", &[t("hello"), t("x")]).unwrap_err(),
            "function substr(TEXT, TEXT) does not exist"
        );
        let b = Value::Bytes(Arc::from(&b"abcd"[..]));
        assert_eq!(
            call("substr", &[b, i(2), i(2)]).unwrap(),
            Value::Bytes(Arc::from(&b"bc"[..]))
        );
    }

    #[test]
    fn trims_and_replace() {
        assert_eq!(text("trim", &[t("  a b  ")]), "a b");
        assert_eq!(text("btrim", &[t("xxaxx"), t("x")]), "a");
        assert_eq!(text("ltrim", &[t("  a  ")]), "a  ");
        assert_eq!(text("rtrim", &[t("  a  ")]), "  a");
        assert_eq!(text("ltrim", &[t("zyxa"), t("xyz")]), "a");
        assert_eq!(text("trim", &[t("\ta ")]), "\ta");
        assert_eq!(text("replace", &[t("abcabc"), t("b"), t("XY")]), "aXYcaXYc");
        assert_eq!(text("replace", &[t("abc"), t(""), t("X")]), "abc");
        assert_eq!(text("replace", &[t("aaa"), t("aa"), t("b")]), "ba");
    }

    #[test]
    fn left_right_repeat_position() {
        assert_eq!(text("left", &[t("hello"), i(2)]), "he");
        assert_eq!(text("left", &[t("hello"), i(-2)]), "hel");
        assert_eq!(text("left", &[t("hello"), i(-10)]), "");
        assert_eq!(text("right", &[t("hello"), i(2)]), "lo");
        assert_eq!(text("right", &[t("hello"), i(-2)]), "llo");
        assert_eq!(text("right", &[t("hello"), i(99)]), "hello");
        assert_eq!(text("repeat", &[t("ab"), i(3)]), "ababab");
        assert_eq!(text("repeat", &[t("ab"), i(-1)]), "");
        assert_eq!(
            call("repeat", &[t("ab"), i(i64::MAX)]).unwrap_err(),
            "requested length too large"
        );
        assert_eq!(int("position", &[t("hello"), t("ll")]), 3);
        assert_eq!(int("strpos", &[t("日本語"), t("語")]), 3);
        assert_eq!(int("strpos", &[t("hello"), t("z")]), 0);
        assert_eq!(int("strpos", &[t("hello"), t("")]), 1);
    }

    #[test]
    fn padding_and_concat() {
        assert_eq!(text("lpad", &[t("hi"), i(5)]), "   hi");
        assert_eq!(text("lpad", &[t("hi"), i(5), t("xy")]), "xyxhi");
        assert_eq!(text("rpad", &[t("hi"), i(5), t("xy")]), "hixyx");
        assert_eq!(text("lpad", &[t("hello"), i(2)]), "he");
        assert_eq!(text("rpad", &[t("hi"), i(-1)]), "");
        assert_eq!(text("rpad", &[t("hi"), i(4), t("")]), "hi");
        assert_eq!(
            call("lpad", &[t("a"), i(i64::MAX)]).unwrap_err(),
            "requested length too large"
        );
        let args = [
            t("a"),
            Value::Null,
            i(1),
            Value::Double(2.0),
            Value::Bool(true),
        ];
        assert_eq!(text("concat", &args), "a12true");
        assert_eq!(text("concat", &[Value::Null]), "");
    }
}
