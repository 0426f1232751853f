//! Cutting a byte stream into records and fields: CSV (RFC 4180 as
//! PostgreSQL's `COPY ... CSV` reads it: a delimiter, a quote, an escape
//! inside quotes, an unquoted NULL string) and PostgreSQL's COPY text
//! format (tab-delimited, `\N` for NULL, backslash escapes).
//!
//! Sans-IO: `next_record` takes the bytes buffered so far and says how many
//! a whole record used, or that it needs more. Fields come back as byte
//! strings (None for NULL); the caller checks the encoding. A `Record` is
//! filled again for each record (its fields' bytes in one buffer), so
//! reading allocates nothing per record once the buffers have grown.

/// Which format, and its characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Csv {
        delimiter: u8,
        quote: u8,
        /// Escapes a quote inside a quoted field (default: the quote
        /// itself, so `""` is one `"`).
        escape: u8,
        /// An unquoted field equal to this is NULL (default: empty).
        null: Vec<u8>,
    },
    /// COPY text: `delimiter` between fields, `null` (default `\N`) for
    /// NULL, backslash escapes.
    Text { delimiter: u8, null: Vec<u8> },
}

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The input ended inside a quoted field.
    UnterminatedQuote,
    /// A character after a closing quote that is not a delimiter or the
    /// end of the line.
    AfterQuote(u8),
    /// A record over `RECORD_BYTES_MAX`.
    TooLong,
    /// COPY text: a field ends in a backslash that escapes nothing.
    LoneBackslash,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordError::UnterminatedQuote => write!(f, "a quoted field is never closed"),
            RecordError::AfterQuote(c) => write!(
                f,
                "{:?} after a closing quote (expected the delimiter or the end of the line)",
                *c as char
            ),
            RecordError::TooLong => write!(f, "a record over {RECORD_BYTES_MAX} bytes"),
            RecordError::LoneBackslash => write!(f, "a field ends in a lone backslash"),
        }
    }
}

/// The longest record read: a quote left open must not buffer the whole
/// file.
pub const RECORD_BYTES_MAX: usize = 16 << 20;

/// One record: its fields, and the bytes it used (newline included).
#[derive(Debug, Default)]
pub struct Record {
    /// Every field's bytes, one after another.
    data: Vec<u8>,
    /// Where each field's bytes are in `data` (None: NULL).
    fields: Vec<Option<(usize, usize)>>,
    pub used: usize,
    /// Newlines inside it (a quoted field may span lines).
    pub newlines: u64,
}

impl Record {
    /// How many fields it has.
    pub fn len(&self) -> usize {
        self.fields.len()
    }
    /// Whether it has no fields (it always has one once read).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
    /// Its fields in order: their bytes, or None for NULL.
    pub fn fields(&self) -> impl ExactSizeIterator<Item = Option<&[u8]>> + '_ {
        self.fields.iter().map(|f| f.map(|(a, b)| &self.data[a..b]))
    }
    fn clear(&mut self) {
        self.data.clear();
        self.fields.clear();
        self.used = 0;
        self.newlines = 0;
    }
    /// Ends the field begun at `start` in `data`: NULL when `null` says so.
    fn end_field(&mut self, start: usize, null: bool) {
        if null {
            self.data.truncate(start);
            self.fields.push(None);
        } else {
            self.fields.push(Some((start, self.data.len())));
        }
    }
}

/// The next record in `buf`, read into `rec`. `at_end`: no more bytes will
/// come (a last line without a newline is a record). `Ok(false)`: more
/// bytes are needed (or `buf` is empty at the end). An error consumes the
/// record's bytes up to the end of its line (`Err((error, used))`), so
/// reading goes on.
pub fn next_record(
    fmt: &Format,
    buf: &[u8],
    at_end: bool,
    rec: &mut Record,
) -> Result<bool, (RecordError, usize)> {
    rec.clear();
    if buf.is_empty() {
        return Ok(false);
    }
    let r = match fmt {
        Format::Csv {
            delimiter,
            quote,
            escape,
            null,
        } => csv(buf, at_end, (*delimiter, *quote, *escape), null, rec),
        Format::Text { delimiter, null } => text(buf, at_end, *delimiter, null, rec),
    };
    match r {
        Ok(false) if buf.len() > RECORD_BYTES_MAX => {
            let used = line_end(buf).unwrap_or(buf.len());
            Err((RecordError::TooLong, used))
        }
        other => other,
    }
}

/// Bytes up to and including the first newline.
fn line_end(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n').map(|i| i + 1)
}

/// Strips one `\r` before a line's newline from the field begun at `start`.
fn trim_cr(data: &mut Vec<u8>, start: usize) {
    if data.len() > start && data.last() == Some(&b'\r') {
        data.pop();
    }
}

fn csv(
    buf: &[u8],
    at_end: bool,
    (delim, quote, escape): (u8, u8, u8),
    null: &[u8],
    rec: &mut Record,
) -> Result<bool, (RecordError, usize)> {
    let mut start = 0;
    let mut quoted = false;
    let mut i = 0;
    let mut newlines = 0;
    let is_null = |rec: &Record, start: usize, quoted: bool| !quoted && rec.data[start..] == *null;
    loop {
        // Unquoted part of a field: its plain bytes are copied in runs.
        while i < buf.len() {
            let run = buf[i..]
                .iter()
                .position(|&b| b == delim || b == b'\n' || b == quote)
                .unwrap_or(buf.len() - i);
            rec.data.extend_from_slice(&buf[i..i + run]);
            i += run;
            let Some(&b) = buf.get(i) else {
                break;
            };
            if b == delim {
                rec.end_field(start, is_null(rec, start, quoted));
                start = rec.data.len();
                quoted = false;
                i += 1;
            } else if b == b'\n' {
                // A quoted field's own CR is data; its line's CR was
                // taken after the closing quote.
                if !quoted {
                    trim_cr(&mut rec.data, start);
                }
                rec.end_field(start, is_null(rec, start, quoted));
                rec.used = i + 1;
                rec.newlines = newlines + 1;
                return Ok(true);
            } else if rec.data.len() == start && !quoted {
                quoted = true;
                i += 1;
                break;
            } else {
                // A quote inside an unquoted field is data.
                rec.data.push(b);
                i += 1;
            }
        }
        if i >= buf.len() {
            if !at_end {
                return Ok(false);
            }
            if !quoted {
                trim_cr(&mut rec.data, start);
            }
            rec.end_field(start, is_null(rec, start, quoted));
            rec.used = buf.len();
            rec.newlines = newlines;
            return Ok(true);
        }
        // Inside quotes, up to the closing quote.
        loop {
            let Some(&b) = buf.get(i) else {
                if at_end {
                    return Err((RecordError::UnterminatedQuote, buf.len()));
                }
                return Ok(false);
            };
            if b == escape
                && escape != quote
                && buf.get(i + 1).is_some_and(|&n| n == quote || n == escape)
            {
                rec.data.push(buf[i + 1]);
                i += 2;
            } else if b == quote {
                if escape == quote && buf.get(i + 1) == Some(&quote) {
                    rec.data.push(quote);
                    i += 2;
                } else if escape == quote && i + 1 == buf.len() && !at_end {
                    // A doubled quote may be cut at the buffer's end.
                    return Ok(false);
                } else {
                    i += 1;
                    break;
                }
            } else {
                if b == b'\n' {
                    newlines += 1;
                }
                rec.data.push(b);
                i += 1;
            }
        }
        // After the closing quote: a delimiter, the line's end, or the end.
        match buf.get(i) {
            None if !at_end => return Ok(false),
            None => {}
            Some(&b) if b == delim || b == b'\n' => {}
            Some(b'\r') if buf.get(i + 1) == Some(&b'\n') => i += 1,
            Some(b'\r') if i + 1 == buf.len() && !at_end => return Ok(false),
            Some(&b) => {
                // The record is skipped to its line's end: wait for it.
                return match line_end(&buf[i..]) {
                    Some(n) => Err((RecordError::AfterQuote(b), i + n)),
                    None if at_end => Err((RecordError::AfterQuote(b), buf.len())),
                    None => Ok(false),
                };
            }
        }
    }
}

fn text(
    buf: &[u8],
    at_end: bool,
    delim: u8,
    null: &[u8],
    rec: &mut Record,
) -> Result<bool, (RecordError, usize)> {
    let Some(len) = line_end(buf).or(at_end.then_some(buf.len())) else {
        return Ok(false);
    };
    let mut line = &buf[..len];
    if line.last() == Some(&b'\n') {
        line = &line[..line.len() - 1];
    }
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    // Split on the delimiter first (PostgreSQL writes a delimiter in data
    // as an escape such as \t, not as a backslash before a raw one), then read
    // each field's escapes; the NULL marker is matched before them.
    for raw in line.split(|&b| b == delim) {
        let start = rec.data.len();
        if raw == null {
            rec.end_field(start, true);
            continue;
        }
        if let Err(e) = unescape_copy_into(raw, &mut rec.data) {
            return Err((e, len));
        }
        rec.end_field(start, false);
    }
    rec.used = len;
    rec.newlines = u64::from(buf[..len].last() == Some(&b'\n'));
    Ok(true)
}

/// A COPY text field's bytes with its backslash escapes read, as
/// PostgreSQL writes them: `\b \f \n \r \t \v`, `\123` (octal, up to
/// three digits), `\x4F` (hex, up to two), and `\` before anything else
/// is that character.
pub fn unescape_copy(raw: &[u8]) -> Result<Vec<u8>, RecordError> {
    let mut f = Vec::with_capacity(raw.len());
    unescape_copy_into(raw, &mut f)?;
    Ok(f)
}

/// `unescape_copy` onto the end of `f`.
fn unescape_copy_into(raw: &[u8], f: &mut Vec<u8>) -> Result<(), RecordError> {
    f.reserve(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            f.push(raw[i]);
            i += 1;
            continue;
        }
        let Some(&c) = raw.get(i + 1) else {
            return Err(RecordError::LoneBackslash);
        };
        i += 2;
        match c {
            b'b' => f.push(8),
            b'f' => f.push(12),
            b'n' => f.push(b'\n'),
            b'r' => f.push(b'\r'),
            b't' => f.push(b'\t'),
            b'v' => f.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                f.push((v & 0xff) as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                f.push(v as u8);
            }
            other => f.push(other),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv_fmt() -> Format {
        Format::Csv {
            delimiter: b',',
            quote: b'"',
            escape: b'"',
            null: Vec::new(),
        }
    }

    type Field = Option<Vec<u8>>;

    fn all(fmt: &Format, input: &[u8]) -> Vec<Result<Vec<Field>, RecordError>> {
        let mut out = Vec::new();
        let mut at = 0;
        // Fed one byte more at a time, as a reader's buffer fills: the
        // records must not depend on where the buffer is cut. One record
        // is filled again each time, as the loader does.
        let mut end = 0;
        let mut r = Record::default();
        while at < input.len() {
            end = (end + 1).min(input.len());
            match next_record(fmt, &input[at..end], end == input.len(), &mut r) {
                Ok(true) => {
                    at += r.used;
                    out.push(Ok(r.fields().map(|f| f.map(<[u8]>::to_vec)).collect()));
                }
                Ok(false) => {}
                Err((e, used)) => {
                    at += used;
                    out.push(Err(e));
                }
            }
            end = end.max(at);
        }
        out
    }

    fn s(v: &str) -> Field {
        Some(v.as_bytes().to_vec())
    }

    #[test]
    fn csv_quotes_escapes_nulls_and_line_ends() {
        let got = all(
            &csv_fmt(),
            b"1,\"a,b\",,\"\"\r\n2,\"say \"\"hi\"\"\",x\n3,\"two\nlines\",\"\"\"\"\n4,last",
        );
        assert_eq!(
            got,
            vec![
                Ok(vec![s("1"), s("a,b"), None, s("")]),
                Ok(vec![s("2"), s("say \"hi\""), s("x")]),
                Ok(vec![s("3"), s("two\nlines"), s("\"")]),
                Ok(vec![s("4"), s("last")]),
            ]
        );
    }

    #[test]
    fn a_carriage_return_inside_quotes_is_data() {
        let got = all(&csv_fmt(), b"\"a\r\"\r\nb\r\n");
        assert_eq!(got, vec![Ok(vec![s("a\r")]), Ok(vec![s("b")])]);
    }

    /// A quote inside an unquoted field is data; a line's CR is taken
    /// from its last field only, never from the quoted field before it.
    #[test]
    fn a_quote_inside_a_field_and_a_cr_before_an_empty_last_field() {
        let got = all(&csv_fmt(), b"ab\"c,d\n\"a\r\",\r\n\"x\r\",\n");
        assert_eq!(
            got,
            vec![
                Ok(vec![s("ab\"c"), s("d")]),
                Ok(vec![s("a\r"), None]),
                Ok(vec![s("x\r"), None]),
            ]
        );
    }

    #[test]
    fn csv_errors_skip_to_the_next_line() {
        let got = all(&csv_fmt(), b"1,\"a\"b,c\n2,ok\n3,\"open");
        assert_eq!(
            got,
            vec![
                Err(RecordError::AfterQuote(b'b')),
                Ok(vec![s("2"), s("ok")]),
                Err(RecordError::UnterminatedQuote),
            ]
        );
    }

    #[test]
    fn csv_with_a_backslash_escape_and_a_null_string() {
        let fmt = Format::Csv {
            delimiter: b';',
            quote: b'\'',
            escape: b'\\',
            null: b"NULL".to_vec(),
        };
        let got = all(&fmt, b"'it\\'s';NULL;'NULL'\n");
        assert_eq!(got, vec![Ok(vec![s("it's"), None, s("NULL")])]);
    }

    #[test]
    fn copy_text_escapes_and_nulls() {
        let fmt = Format::Text {
            delimiter: b'\t',
            null: b"\\N".to_vec(),
        };
        let got = all(&fmt, b"1\t\\N\ta\\tb\\\\c\\n\t\\101\\x42\n2\t\t\\N\n");
        assert_eq!(
            got,
            vec![
                Ok(vec![s("1"), None, s("a\tb\\c\n"), s("AB")]),
                Ok(vec![s("2"), s(""), None]),
            ]
        );
    }
}
