//! Result rows: what one statement of a batch produced, and what a
//! procedure may build and return to its caller.
//!
//! Owns: `Rows`, `Row`, and the ABI row-set and batch-response decoding
//! (bounded by the bytes actually present, so a hostile length cannot make
//! it allocate). Must not: run statements (that is `context`).

use std::fmt;
use std::sync::{Arc, OnceLock};

use crate::abi::{self, outcome_kind, DecodeError, Reader, Writer};
use crate::convert::FromValue;
use crate::error::{Error, Result};
use crate::value::Value;

/// One statement's outcome: named columns and rows for a query, an affected
/// count for INSERT/UPDATE/DELETE. Also a procedure result type: build one
/// with `Rows::new(columns)` and `push`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    columns: Columns,
    rows: Vec<Row>,
    affected: u64,
}

/// One row: its values, and its result's column names (for messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Columns,
    values: Vec<Value>,
}

impl Rows {
    /// An empty result with these column names, to `push` rows into.
    pub fn new<I, S>(columns: I) -> Rows
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Rows {
            columns: Columns::from_strings(
                columns
                    .into_iter()
                    .map(|c| c.as_ref().to_string())
                    .collect(),
            ),
            rows: Vec::new(),
            affected: 0,
        }
    }

    /// The outcome of a statement that changed `n` rows (no columns).
    pub fn affected_only(n: u64) -> Rows {
        Rows {
            columns: Columns::NONE,
            rows: Vec::new(),
            affected: n,
        }
    }

    /// Appends a row. Its length should equal the column count; a result
    /// with a row of another length fails to encode when the procedure
    /// returns it (the caller then sees CALL_ABORT naming the row).
    pub fn push(&mut self, values: Vec<Value>) {
        self.rows.push(Row {
            columns: self.columns.clone(),
            values,
        });
        self.affected += 1;
    }

    /// The column names (empty for an INSERT/UPDATE/DELETE outcome).
    pub fn columns(&self) -> &[String] {
        self.columns.strings()
    }

    /// The position of the column called `name` (ASCII case-insensitive).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.position(name)
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows (always true for an INSERT/UPDATE/DELETE
    /// outcome: look at `affected` there).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, in order.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Iterates over the rows.
    pub fn iter(&self) -> std::slice::Iter<'_, Row> {
        self.rows.iter()
    }

    /// Row `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&Row> {
        self.rows.get(i)
    }

    /// The first row, if any.
    pub fn first(&self) -> Option<&Row> {
        self.rows.first()
    }

    /// Rows an INSERT, UPDATE or DELETE changed. For a query it is the
    /// number of rows returned (so `affected() > 0` reads "something
    /// matched" either way).
    pub fn affected(&self) -> u64 {
        self.affected
    }

    /// The first column of the first row, converted: `SELECT COUNT(*)`.
    /// Fails if there is no row or no column, or the value does not convert.
    pub fn scalar<T: FromValue>(&self) -> Result<T> {
        match self.rows.first() {
            Some(row) => row.get(0),
            None => Err(Error::Type(format!(
                "expected a row for a scalar, the query returned none{}",
                self.columns
                    .strings()
                    .first()
                    .map(|c| format!(" (column {c:?})"))
                    .unwrap_or_default()
            ))),
        }
    }

    /// Appends the ABI row set (the layout in `abi`). Fails if a row's
    /// length differs from the column count, or a value does not encode.
    pub fn encode(&self, w: &mut Writer) -> Result<()> {
        self.columns.encode(w);
        w.len(self.rows.len());
        for (i, row) in self.rows.iter().enumerate() {
            if row.values.len() != self.columns.len() {
                return Err(Error::Type(format!(
                    "result row {i} has {} values; the result has {} columns",
                    row.values.len(),
                    self.columns.len()
                )));
            }
            for v in &row.values {
                v.encode(w)?;
            }
        }
        Ok(())
    }

    /// Reads one ABI row set. Counts are bounded by the bytes left, so no
    /// allocation exceeds the input's size.
    pub fn decode(r: &mut Reader<'_>) -> core::result::Result<Rows, DecodeError> {
        let columns = Columns::decode(r)?;
        let ncols = columns.len();
        let nrows = r.count(r.remaining() / ncols.max(1), "row count")?;
        let mut rows = Vec::with_capacity(nrows);
        for _ in 0..nrows {
            let mut values = Vec::with_capacity(ncols);
            for _ in 0..ncols {
                values.push(Value::from_raw(r.value()?));
            }
            rows.push(Row {
                columns: columns.clone(),
                values,
            });
        }
        Ok(Rows {
            columns,
            affected: nrows as u64,
            rows,
        })
    }
}

/// Decodes a batch response for `expected` statements into one `Rows` each.
pub(crate) fn decode_batch_response(bytes: &[u8], expected: usize) -> Result<Vec<Rows>> {
    decode_outcomes(bytes, expected)
        .map_err(|e| Error::Batch(format!("the host's batch response did not decode: {e}")))
}

fn decode_outcomes(bytes: &[u8], expected: usize) -> core::result::Result<Vec<Rows>, DecodeError> {
    let mut r = Reader::new(bytes);
    let at = r.offset();
    let n = r.count(abi::BATCH_STATEMENTS_MAX, "outcome count")?;
    if n != expected {
        return Err(DecodeError {
            offset: at,
            message: format!("{n} outcomes for {expected} statements"),
        });
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match r.u8("outcome kind")? {
            outcome_kind::ROWS => Rows::decode(&mut r)?,
            outcome_kind::AFFECTED => Rows::affected_only(r.u64("affected count")?),
            k => return Err(r.error(format!("unknown outcome kind {k}"))),
        });
    }
    r.finish()?;
    Ok(out)
}

/// Column names, shared by a result and its rows. Decoded names stay as
/// the wire carried them (one copy, no per-name `String`, no UTF-8 check)
/// until `strings()` is asked for: procedures mostly read columns by
/// position, so most results never need them.
#[derive(Clone)]
struct Columns(Option<Arc<ColumnNames>>);

struct ColumnNames {
    count: usize,
    /// The encoded names (`str` each), or empty when built from strings.
    wire: Box<[u8]>,
    /// The names as strings: given, or made from `wire` on first use.
    strings: OnceLock<Vec<String>>,
}

impl Columns {
    /// No columns (an INSERT/UPDATE/DELETE outcome); allocates nothing.
    const NONE: Columns = Columns(None);

    fn from_strings(names: Vec<String>) -> Columns {
        Columns(Some(Arc::new(ColumnNames {
            count: names.len(),
            wire: Box::default(),
            strings: OnceLock::from(names),
        })))
    }

    /// Reads a column count and that many names, checking only lengths.
    fn decode(r: &mut Reader<'_>) -> core::result::Result<Columns, DecodeError> {
        // A column name takes at least 4 bytes.
        let count = r.count(r.remaining() / 4, "column count")?;
        if count == 0 {
            return Ok(Columns::NONE);
        }
        let start = r.offset();
        for _ in 0..count {
            r.bytes("column name")?;
        }
        let wire = r.consumed_since(start).into();
        Ok(Columns(Some(Arc::new(ColumnNames {
            count,
            wire,
            strings: OnceLock::new(),
        }))))
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |c| c.count)
    }

    /// The encoded names, one `str` each.
    fn wire_names(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
        let mut r = Reader::new(wire);
        // `decode` checked every length, so this stops only at the end.
        std::iter::from_fn(move || r.bytes("column name").ok())
    }

    /// The names; a name that is not UTF-8 (a host bug) shows U+FFFD.
    fn strings(&self) -> &[String] {
        match &self.0 {
            None => &[],
            Some(c) => c.strings.get_or_init(|| {
                Columns::wire_names(&c.wire)
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect()
            }),
        }
    }

    /// The position of `name`, ASCII case-insensitive, without decoding.
    fn position(&self, name: &str) -> Option<usize> {
        let c = self.0.as_ref()?;
        match c.strings.get() {
            Some(s) => s.iter().position(|n| n.eq_ignore_ascii_case(name)),
            None => {
                Columns::wire_names(&c.wire).position(|n| n.eq_ignore_ascii_case(name.as_bytes()))
            }
        }
    }

    /// Appends the column count and names (the row-set layout).
    fn encode(&self, w: &mut Writer) {
        w.len(self.len());
        let Some(c) = &self.0 else { return };
        match c.strings.get() {
            Some(s) => s.iter().for_each(|n| w.str(n)),
            None => w.buf.extend_from_slice(&c.wire),
        }
    }
}

impl PartialEq for Columns {
    fn eq(&self, other: &Columns) -> bool {
        self.strings() == other.strings()
    }
}

impl fmt::Debug for Columns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.strings().fmt(f)
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = &'a Row;
    type IntoIter = std::slice::Iter<'a, Row>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.iter()
    }
}

impl IntoIterator for Rows {
    type Item = Row;
    type IntoIter = std::vec::IntoIter<Row>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.into_iter()
    }
}

impl Row {
    /// Column `i` converted to `T`. The error names the column (position and
    /// name), the type asked for and the type found.
    pub fn get<T: FromValue>(&self, i: usize) -> Result<T> {
        match self.values.get(i) {
            Some(v) => T::from_value(v)
                .map_err(|e| Error::Type(format!("column {i} ({}): {e}", self.column_name(i)))),
            None => Err(Error::Type(format!(
                "no column {i}: the row has {} columns",
                self.values.len()
            ))),
        }
    }

    /// Column `i` as a value, if there is one.
    pub fn value(&self, i: usize) -> Option<&Value> {
        self.values.get(i)
    }

    /// How many values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values, owned.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    fn column_name(&self, i: usize) -> String {
        match self.columns.strings().get(i) {
            Some(c) => format!("{c:?}"),
            None => "unnamed".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Rows {
        let mut rows = Rows::new(["n", "name"]);
        rows.push(vec![Value::Int(1), Value::Text("a".into())]);
        rows.push(vec![Value::Int(1 << 40), Value::Null]);
        rows
    }

    #[test]
    fn encode_decode_round_trip() {
        let rows = sample();
        let mut w = Writer::new();
        rows.encode(&mut w).unwrap();
        let mut r = Reader::new(&w.buf);
        assert_eq!(Rows::decode(&mut r).unwrap(), rows);
        r.finish().unwrap();
        for cut in 0..w.buf.len() {
            assert!(
                Rows::decode(&mut Reader::new(&w.buf[..cut])).is_err(),
                "{cut}"
            );
        }
    }

    #[test]
    fn decoded_column_names_are_read_lazily() {
        let mut w = Writer::new();
        sample().encode(&mut w).unwrap();
        let rows = Rows::decode(&mut Reader::new(&w.buf)).unwrap();
        assert_eq!(rows.column_index("NAME"), Some(1));
        assert_eq!(rows.column_index("x"), None);
        let mut again = Writer::new();
        rows.encode(&mut again).unwrap();
        assert_eq!(again.buf, w.buf, "wire names are re-encoded as they came");
        assert_eq!(rows.columns(), ["n", "name"]);
        // A name that is not UTF-8 (a host bug) does not fail the result.
        let mut w = Writer::new();
        w.u32(1);
        w.bytes(b"a\xffb");
        w.u32(0);
        let rows = Rows::decode(&mut Reader::new(&w.buf)).unwrap();
        assert_eq!(rows.columns(), ["a\u{fffd}b"]);
    }

    #[test]
    fn get_names_the_column() {
        let rows = sample();
        assert_eq!(rows.scalar::<i64>().unwrap(), 1);
        assert_eq!(rows.affected(), 2);
        let row = rows.get(1).unwrap();
        let e = row.get::<i32>(0).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("column 0 (\"n\"): 1099511627776 is out of range"),
            "{e}"
        );
        let e = row.get::<String>(1).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("column 1 (\"name\"): expected TEXT, found NULL"),
            "{e}"
        );
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert!(row
            .get::<i64>(2)
            .unwrap_err()
            .to_string()
            .contains("no column 2"));
        assert_eq!(rows.column_index("NAME"), Some(1));
        let e = Rows::new(["c"]).scalar::<i64>().unwrap_err();
        assert!(
            e.to_string().contains("returned none (column \"c\")"),
            "{e}"
        );
    }

    #[test]
    fn ragged_rows_do_not_encode() {
        let mut rows = Rows::new(["a", "b"]);
        rows.push(vec![Value::Int(1)]);
        let e = rows.encode(&mut Writer::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "result row 0 has 1 values; the result has 2 columns"
        );
    }

    #[test]
    fn batch_responses_decode_and_lies_are_errors() {
        let mut w = Writer::new();
        w.u32(2);
        w.u8(outcome_kind::AFFECTED);
        w.u64(3);
        w.u8(outcome_kind::ROWS);
        sample().encode(&mut w).unwrap();
        let out = decode_batch_response(&w.buf, 2).unwrap();
        assert_eq!((out[0].affected(), out[0].is_empty()), (3, true));
        assert_eq!(out[1], sample());
        let e = decode_batch_response(&w.buf, 3).unwrap_err();
        assert!(e.to_string().contains("2 outcomes for 3 statements"), "{e}");
        // A zero-column row set claiming 4 billion rows must not allocate them.
        let mut w = Writer::new();
        w.u32(1);
        w.u8(outcome_kind::ROWS);
        w.u32(0);
        w.u32(u32::MAX);
        assert!(decode_batch_response(&w.buf, 1).is_err());
    }
}
