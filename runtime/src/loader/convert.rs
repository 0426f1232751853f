//! A field's bytes as the value a `load` sends for its column: integers,
//! floats and dates/times converted here (so a bad one is refused with its
//! line before it travels), everything else as text, which the node reads
//! as PostgreSQL reads it (DECIMAL, BOOLEAN, UUID, BYTEA ...).

use crate::types::datetime as dt;
use crate::types::Value;

/// How a column's text is converted before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Double,
    Timestamp,
    TimestampTz,
    Date,
    Time,
    /// Sent as text; the node converts it.
    Text,
}

impl Kind {
    /// From a SQL type name as the catalog gives it (`BIGINT`,
    /// `DECIMAL(10,2)`, `TIMESTAMP WITH TIME ZONE` ...).
    pub fn of(type_name: &str) -> Kind {
        let t = type_name.to_ascii_uppercase();
        let base = t.split('(').next().unwrap_or("").trim();
        match base {
            "SMALLINT" | "INTEGER" | "INT" | "BIGINT" | "TINYINT" => Kind::Int,
            "DOUBLE" | "DOUBLE PRECISION" | "FLOAT" | "REAL" => Kind::Double,
            "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => Kind::Timestamp,
            "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => Kind::TimestampTz,
            "DATE" => Kind::Date,
            "TIME" | "TIME WITHOUT TIME ZONE" => Kind::Time,
            _ => Kind::Text,
        }
    }
}

/// Text encodings a file may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// ISO 8859-1: every byte is the character of that code.
    Latin1,
}

impl Encoding {
    pub fn parse(s: &str) -> Result<Encoding, String> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "utf8" => Ok(Encoding::Utf8),
            "latin1" | "iso88591" => Ok(Encoding::Latin1),
            _ => Err(format!(
                "encoding {s:?} is not supported (utf8 or latin1; convert others with iconv)"
            )),
        }
    }

    /// The field's text; an error says where the first bad byte is.
    pub fn decode(self, bytes: &[u8]) -> Result<std::borrow::Cow<'_, str>, String> {
        match self {
            Encoding::Utf8 => std::str::from_utf8(bytes).map(Into::into).map_err(|e| {
                format!(
                    "not valid UTF-8 (byte {} of the field); give --encoding if the file is \
                     in another",
                    e.valid_up_to() + 1
                )
            }),
            Encoding::Latin1 => Ok(bytes.iter().map(|&b| b as char).collect::<String>().into()),
        }
    }
}

/// A `strftime`-like format for dates and timestamps: `%Y`, `%m`, `%d`,
/// `%H`, `%M`, `%S`, `%f` (a fraction of a second, 1 to 6 digits), `%%`;
/// anything else must match itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat(String);

impl DateFormat {
    pub fn new(f: &str) -> Result<DateFormat, String> {
        let mut chars = f.chars();
        while let Some(c) = chars.next() {
            if c == '%' {
                match chars.next() {
                    Some('Y' | 'm' | 'd' | 'H' | 'M' | 'S' | 'f' | '%') => {}
                    other => {
                        return Err(format!(
                            "format {f:?}: %{} is not one of %Y %m %d %H %M %S %f %%",
                            other.map_or(String::new(), String::from)
                        ))
                    }
                }
            }
        }
        Ok(DateFormat(f.to_string()))
    }

    /// (days since 1970-01-01, microseconds into the day).
    fn read(&self, s: &str) -> Option<(i64, i64)> {
        let (mut y, mut mo, mut d, mut h, mut mi, mut sec, mut us) = (1970, 1, 1, 0, 0, 0, 0);
        let b = s.trim().as_bytes();
        let mut i = 0;
        let mut f = self.0.chars();
        let digits = |i: &mut usize, max: usize| -> Option<(i64, usize)> {
            let start = *i;
            while *i < b.len() && *i - start < max && b[*i].is_ascii_digit() {
                *i += 1;
            }
            let n = *i - start;
            if n == 0 {
                return None;
            }
            let v = std::str::from_utf8(&b[start..*i]).ok()?.parse().ok()?;
            Some((v, n))
        };
        while let Some(c) = f.next() {
            if c != '%' {
                let mut buf = [0; 4];
                let want = c.encode_utf8(&mut buf).as_bytes();
                if !b[i..].starts_with(want) {
                    return None;
                }
                i += want.len();
                continue;
            }
            match f.next()? {
                'Y' => y = digits(&mut i, 4)?.0,
                'm' => mo = digits(&mut i, 2)?.0,
                'd' => d = digits(&mut i, 2)?.0,
                'H' => h = digits(&mut i, 2)?.0,
                'M' => mi = digits(&mut i, 2)?.0,
                'S' => sec = digits(&mut i, 2)?.0,
                'f' => {
                    let (v, n) = digits(&mut i, 6)?;
                    us = v * 10i64.pow(6 - n as u32);
                }
                _ => {
                    if b.get(i) != Some(&b'%') {
                        return None;
                    }
                    i += 1;
                }
            }
        }
        let valid = i == b.len()
            && (1..=12).contains(&mo)
            && (1..=dt::days_in_month(y, mo as u32) as i64).contains(&d)
            && h < 24
            && mi < 60
            && sec < 60;
        valid.then(|| {
            (
                dt::days_from_civil(y, mo as u32, d as u32),
                ((h * 60 + mi) * 60 + sec) * 1_000_000 + us,
            )
        })
    }
}

/// Formats given for dates and timestamps (None: as PostgreSQL reads them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Formats {
    pub date: Option<DateFormat>,
    pub timestamp: Option<DateFormat>,
}

/// The value sent for `text` in a column of `kind`.
pub fn convert(kind: Kind, text: &str, formats: &Formats) -> Result<Value, String> {
    let s = text.trim();
    let bad = |what: &str| format!("{text:?} is not {what}");
    Ok(match kind {
        Kind::Text => Value::text(text),
        Kind::Int => Value::Int(s.parse().map_err(|_| bad("an integer"))?),
        Kind::Double => Value::Double(s.parse().map_err(|_| bad("a number"))?),
        Kind::Date => match &formats.date {
            Some(f) => Value::Int(
                f.read(s)
                    .ok_or_else(|| bad(&format!("a date in format {:?}", f.0)))?
                    .0,
            ),
            None => Value::Int(dt::parse_date(s).map_err(|e| e.message("date", s))?),
        },
        Kind::Timestamp | Kind::TimestampTz => match &formats.timestamp {
            Some(f) => {
                let (days, us) = f
                    .read(s)
                    .ok_or_else(|| bad(&format!("a timestamp in format {:?}", f.0)))?;
                Value::Int(days * 86_400_000_000 + us)
            }
            None if kind == Kind::Timestamp => {
                Value::Int(dt::parse_timestamp_text(s).map_err(|e| e.message("timestamp", s))?)
            }
            None => Value::Int(
                dt::parse_timestamptz(s).map_err(|e| e.message("timestamp with time zone", s))?,
            ),
        },
        Kind::Time => Value::Int(dt::parse_time(s).map_err(|e| e.message("time", s))?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_catalog_type_names() {
        assert_eq!(Kind::of("BIGINT"), Kind::Int);
        assert_eq!(Kind::of("DECIMAL(10,2)"), Kind::Text);
        assert_eq!(Kind::of("VARCHAR(20)"), Kind::Text);
        assert_eq!(Kind::of("TIMESTAMP"), Kind::Timestamp);
        assert_eq!(Kind::of("TIMESTAMPTZ"), Kind::TimestampTz);
        assert_eq!(Kind::of("double"), Kind::Double);
    }

    #[test]
    fn dates_and_timestamps_in_a_given_format() {
        let f = Formats {
            date: Some(DateFormat::new("%d/%m/%Y").unwrap()),
            timestamp: Some(DateFormat::new("%d.%m.%Y %H:%M:%S.%f").unwrap()),
        };
        assert_eq!(convert(Kind::Date, "02/01/1970", &f), Ok(Value::Int(1)));
        assert_eq!(
            convert(Kind::Timestamp, "01.01.1970 00:00:01.5", &f),
            Ok(Value::Int(1_500_000))
        );
        let e = convert(Kind::Date, "31/02/2024", &f).unwrap_err();
        assert!(e.contains("not a date in format \"%d/%m/%Y\""), "{e}");
        assert!(DateFormat::new("%Q").is_err());
        // Without a format, as PostgreSQL reads them.
        let none = Formats::default();
        assert_eq!(
            convert(Kind::Timestamp, "1970-01-01 00:00:02", &none),
            Ok(Value::Int(2_000_000))
        );
        assert!(convert(Kind::Int, "12x", &none)
            .unwrap_err()
            .contains("not an integer"));
        assert_eq!(convert(Kind::Int, " 42 ", &none), Ok(Value::Int(42)));
    }

    #[test]
    fn encodings() {
        assert_eq!(Encoding::Latin1.decode(&[0xe9]).as_deref(), Ok("é"));
        let e = Encoding::Utf8.decode(&[b'a', 0xe9]).unwrap_err();
        assert!(e.contains("byte 2"), "{e}");
        assert!(Encoding::parse("UTF-8").is_ok() && Encoding::parse("koi8").is_err());
    }
}
