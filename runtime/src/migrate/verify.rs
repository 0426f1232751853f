//! Verification: for each table, the row count and an order-independent
//! checksum computed on both sides, each from its own data by its own
//! route. The source computes a canonical text of every value in SQL
//! (`translate::Column::verify_expr`: a timestamp as microseconds since
//! the epoch, a date as days, bytea as hex) and streams it out with COPY;
//! Ohm's rows come back as values through the protocol and are brought to
//! the same text here. So a conversion the loader got wrong (a shifted
//! time zone, a rounded decimal) shows as a difference, not as agreement
//! of one parser with itself.
//!
//! A row hashes to 64 bits (SHA-256 of its canonical fields); a table's
//! checksum is the wrapping sum of its rows' hashes, so row order does not
//! matter and a duplicated row does. Rows are also summed into
//! `BUCKETS` by their key's hash: when the sides differ, only the buckets
//! that differ are read again, to name the first differing keys.
//!
//! Owns: canonical forms, hashing, the comparison. Must not: write to
//! either side.

use super::translate::{ident, Canon, TablePlan};
use crate::driver::Client;
use crate::loader::records::{next_record, Format, Record};
use crate::proto::SqlResult;
use crate::types::Value;
use anyhow::Context;
use futures_util::StreamExt;
use rust_decimal::Decimal;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Buckets rows are summed into by their key's hash.
const BUCKETS: usize = 4096;
/// Rows read from Ohm by the first query (keyset pages, ordered by the
/// key); later pages hold about `PAGE_BYTES` of canonical text, at most
/// `PAGE_ROWS_MAX` rows (an answer must fit a frame, 40 MiB: a page of
/// wide rows is small).
const PAGE_ROWS_FIRST: usize = 100;
const PAGE_ROWS_MAX: usize = 100_000;
const PAGE_BYTES: usize = 8 << 20;
/// Differing buckets read again to name keys.
const DIFF_BUCKETS_MAX: usize = 8;
/// Rows held per side while naming differences.
const DIFF_ROWS_MAX: usize = 200_000;
/// Differing keys named per table.
pub const DIFF_KEYS_SHOWN: usize = 10;

/// One side's sums for a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sums {
    pub rows: u64,
    pub checksum: u64,
    buckets: Vec<(u64, u64)>,
}

impl Sums {
    fn new() -> Sums {
        Sums {
            rows: 0,
            checksum: 0,
            buckets: vec![(0, 0); BUCKETS],
        }
    }

    fn add(&mut self, key: u64, row: u64) {
        self.rows += 1;
        self.checksum = self.checksum.wrapping_add(row);
        let b = &mut self.buckets[(key % BUCKETS as u64) as usize];
        b.0 += 1;
        b.1 = b.1.wrapping_add(row);
    }
}

/// A table's verification.
#[derive(Debug, Clone)]
pub struct TableCheck {
    pub table: String,
    pub source: Sums,
    pub ohm: Sums,
    /// The first differing rows, by key: `missing in Ohm: (id)=(7)`.
    pub differences: Vec<String>,
}

impl TableCheck {
    pub fn equal(&self) -> bool {
        self.source.rows == self.ohm.rows && self.source.checksum == self.ohm.checksum
    }
}

/// A row's canonical fields (None: NULL).
type Canonical = Vec<Option<String>>;

fn hash(fields: &[Option<String>]) -> u64 {
    let mut h = Sha256::new();
    for f in fields {
        match f {
            None => h.update([0u8]),
            Some(s) => {
                h.update([1u8]);
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
        }
    }
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().unwrap_or([0; 8]))
}

fn float_bits(f: f64, four: bool) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if four {
        format!("{:08x}", (f as f32).to_bits())
    } else {
        format!("{:016x}", f.to_bits())
    }
}

/// The source's canonical text (a `verify_expr`'s output) made the one
/// this module compares.
pub fn canon_source(canon: Canon, text: &str) -> String {
    match canon {
        Canon::Float8 | Canon::Float4 => match text.parse::<f64>() {
            Ok(f) => float_bits(f, canon == Canon::Float4),
            Err(_) => text.to_string(),
        },
        // Exact: a value with more digits than a Decimal holds is not
        // rounded into agreeing with one Ohm rounded the same way.
        Canon::Decimal => match Decimal::from_str_exact(text) {
            Ok(d) => d.normalize().to_string(),
            Err(_) => text.to_string(),
        },
        _ => text.to_string(),
    }
}

/// An Ohm value's canonical text for a column compared as `canon`.
pub fn canon_ohm(canon: Canon, v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Double(f) => float_bits(*f, canon == Canon::Float4),
        Value::Decimal(d) => d.normalize().to_string(),
        Value::Text(s) => s.to_string(),
        Value::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Value::Timestamp(us) | Value::TimestampTz(us) | Value::Time(us) => us.to_string(),
        Value::Date(d) => d.to_string(),
        Value::Interval(i) => format!("{} {} {}", i.months, i.days, i.micros),
        Value::Uuid(u) => {
            let h: String = u.iter().map(|x| format!("{x:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            )
        }
    })
}

/// Rows of one side, as they stream: canonical fields and the key's
/// display (`(id)=(7)`).
trait Sink {
    fn row(&mut self, fields: Canonical, key_display: String) -> anyhow::Result<()>;
}

/// The key's positions among the columns (empty: the whole row is the key).
fn key_positions(t: &TablePlan) -> Vec<usize> {
    t.key
        .iter()
        .filter_map(|k| t.columns.iter().position(|c| c.name == *k))
        .collect()
}

fn key_of(fields: &Canonical, key: &[usize]) -> Canonical {
    if key.is_empty() {
        fields.clone()
    } else {
        key.iter().map(|&i| fields[i].clone()).collect()
    }
}

fn display_key(t: &TablePlan, shown: &[String]) -> String {
    let names: Vec<&str> = if t.key.is_empty() {
        t.columns.iter().map(|c| c.name.as_str()).collect()
    } else {
        t.key.iter().map(|s| s.as_str()).collect()
    };
    format!("({})=({})", names.join(", "), shown.join(", "))
}

/// Streams the source's canonical rows of `t` into `sink`.
async fn read_source(
    pg: &tokio_postgres::Client,
    schema: &str,
    t: &TablePlan,
    sink: &mut dyn Sink,
) -> anyhow::Result<()> {
    let key = key_positions(t);
    let shown_cols: Vec<usize> = if key.is_empty() {
        (0..t.columns.len()).collect()
    } else {
        key.clone()
    };
    let mut exprs: Vec<String> = t.columns.iter().map(|c| c.verify_expr.clone()).collect();
    exprs.extend(
        shown_cols
            .iter()
            .map(|&i| format!("{}::text", ident(&t.columns[i].name))),
    );
    let sql = format!(
        "COPY (SELECT {} FROM {}) TO STDOUT",
        exprs.join(", "),
        super::relation(schema, t)
    );
    let stream = pg
        .copy_out(sql.as_str())
        .await
        .with_context(|| format!("reading {} from the source", t.name))?;
    futures_util::pin_mut!(stream);
    let fmt = Format::Text {
        delimiter: b'\t',
        null: b"\\N".to_vec(),
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut at_end = false;
    let n = t.columns.len();
    let mut rec = Record::default();
    loop {
        // Records are read from `at` on; what they used is dropped once
        // the buffer has none left whole.
        let mut at = 0;
        loop {
            match next_record(&fmt, &buf[at..], at_end, &mut rec) {
                Ok(true) => at += rec.used,
                Ok(false) => break,
                Err((e, _)) => anyhow::bail!("the source's COPY of {}: {e}", t.name),
            }
            if rec.len() != n + shown_cols.len() {
                anyhow::bail!(
                    "the source's COPY of {}: {} fields, expected {}",
                    t.name,
                    rec.len(),
                    n + shown_cols.len()
                );
            }
            let text = |f: Option<&[u8]>| f.map(|b| String::from_utf8_lossy(b).into_owned());
            let fields: Canonical = t
                .columns
                .iter()
                .zip(rec.fields())
                .map(|(c, f)| text(f).map(|s| canon_source(c.canon, &s)))
                .collect();
            let shown: Vec<String> = rec
                .fields()
                .skip(n)
                .map(|f| text(f).unwrap_or_else(|| "NULL".into()))
                .collect();
            sink.row(fields, display_key(t, &shown))?;
        }
        buf.drain(..at);
        if at_end {
            return Ok(());
        }
        match stream.next().await {
            Some(chunk) => buf.extend_from_slice(
                &chunk.with_context(|| format!("reading {} from the source", t.name))?,
            ),
            None => at_end = true,
        }
    }
}

/// Streams Ohm's rows of `t` into `sink`: pages ordered by the key, each
/// after the last one's key (or by every column with OFFSET when the
/// table has no key).
async fn read_ohm(client: &Client, t: &TablePlan, sink: &mut dyn Sink) -> anyhow::Result<()> {
    let cols: Vec<String> = t.columns.iter().map(|c| ident(&c.name)).collect();
    let key = key_positions(t);
    let order: Vec<String> = if key.is_empty() {
        cols.clone()
    } else {
        key.iter().map(|&i| cols[i].clone()).collect()
    };
    let mut last: Option<Vec<Value>> = None;
    let mut offset = 0usize;
    let mut page = PAGE_ROWS_FIRST;
    loop {
        let mut params = Vec::new();
        let filter = match (&last, key.is_empty()) {
            (Some(prev), false) => {
                // (k1 > $1) OR (k1 = $1 AND k2 > $2) OR ...
                let mut ors = Vec::new();
                for i in 0..order.len() {
                    let mut ands: Vec<String> = (0..i)
                        .map(|j| format!("{} = ${}", order[j], j + 1))
                        .collect();
                    ands.push(format!("{} > ${}", order[i], i + 1));
                    ors.push(format!("({})", ands.join(" AND ")));
                }
                params = prev.clone();
                format!(" WHERE {}", ors.join(" OR "))
            }
            _ => String::new(),
        };
        let tail = if key.is_empty() {
            format!(" LIMIT {page} OFFSET {offset}")
        } else {
            format!(" LIMIT {page}")
        };
        let sql = format!(
            "SELECT {} FROM {}{filter} ORDER BY {}{tail}",
            cols.join(", "),
            ident(&t.name),
            order.join(", ")
        );
        let rows = match client
            .sql_with(&sql, params)
            .await
            .with_context(|| format!("reading {} from Ohm", t.name))?
            .pop()
        {
            Some(SqlResult::Rows(r)) => r.rows,
            other => anyhow::bail!("reading {} from Ohm: not rows: {other:?}", t.name),
        };
        let got = rows.len();
        let mut bytes = 0usize;
        for row in &rows {
            if row.len() != t.columns.len() {
                anyhow::bail!(
                    "reading {} from Ohm: a row of {} values, expected {}",
                    t.name,
                    row.len(),
                    t.columns.len()
                );
            }
            let fields: Canonical = t
                .columns
                .iter()
                .zip(row)
                .map(|(c, v)| canon_ohm(c.canon, v))
                .collect();
            bytes += fields
                .iter()
                .map(|f| f.as_ref().map_or(1, |s| s.len() + 1))
                .sum::<usize>();
            let shown_at: Vec<usize> = if key.is_empty() {
                (0..row.len()).collect()
            } else {
                key.clone()
            };
            let shown: Vec<String> = shown_at.iter().map(|&i| row[i].to_string()).collect();
            sink.row(fields, display_key(t, &shown))?;
        }
        if got < page {
            return Ok(());
        }
        offset += got;
        page = (PAGE_BYTES / (bytes / got.max(1)).max(1)).clamp(1, PAGE_ROWS_MAX);
        if let Some(r) = rows.last() {
            last = Some(key.iter().map(|&i| r[i].clone()).collect());
        }
    }
}

struct Summing<'a> {
    sums: Sums,
    key: &'a [usize],
}

impl Sink for Summing<'_> {
    fn row(&mut self, fields: Canonical, _: String) -> anyhow::Result<()> {
        let k = hash(&key_of(&fields, self.key));
        self.sums.add(k, hash(&fields));
        Ok(())
    }
}

/// Collects the rows of chosen buckets: key → (row hash, display).
struct Collecting<'a> {
    buckets: &'a BTreeSet<usize>,
    key: &'a [usize],
    rows: BTreeMap<Canonical, (u64, String, u32)>,
    overflow: bool,
}

impl Sink for Collecting<'_> {
    fn row(&mut self, fields: Canonical, shown: String) -> anyhow::Result<()> {
        let k = key_of(&fields, self.key);
        if !self
            .buckets
            .contains(&((hash(&k) % BUCKETS as u64) as usize))
        {
            return Ok(());
        }
        if self.rows.len() >= DIFF_ROWS_MAX {
            self.overflow = true;
            return Ok(());
        }
        let row = hash(&fields);
        let e = self.rows.entry(k).or_insert((row, shown, 0));
        e.2 += 1;
        Ok(())
    }
}

/// Verifies one table: sums on both sides, and when they differ, the
/// first differing keys.
pub async fn table(
    pg: &tokio_postgres::Client,
    client: &Client,
    schema: &str,
    t: &TablePlan,
) -> anyhow::Result<TableCheck> {
    let key = key_positions(t);
    let mut s = Summing {
        sums: Sums::new(),
        key: &key,
    };
    read_source(pg, schema, t, &mut s).await?;
    let source = s.sums;
    let mut o = Summing {
        sums: Sums::new(),
        key: &key,
    };
    read_ohm(client, t, &mut o).await?;
    let ohm = o.sums;
    let mut check = TableCheck {
        table: t.name.clone(),
        source,
        ohm,
        differences: Vec::new(),
    };
    if check.equal() {
        return Ok(check);
    }
    let differing: BTreeSet<usize> = (0..BUCKETS)
        .filter(|&b| check.source.buckets[b] != check.ohm.buckets[b])
        .take(DIFF_BUCKETS_MAX)
        .collect();
    let mut a = Collecting {
        buckets: &differing,
        key: &key,
        rows: BTreeMap::new(),
        overflow: false,
    };
    read_source(pg, schema, t, &mut a).await?;
    let mut b = Collecting {
        buckets: &differing,
        key: &key,
        rows: BTreeMap::new(),
        overflow: false,
    };
    read_ohm(client, t, &mut b).await?;
    let mut out = Vec::new();
    for (k, (h, shown, n)) in &a.rows {
        match b.rows.get(k) {
            None => out.push(format!("missing in Ohm: {shown}")),
            Some((h2, _, n2)) if h2 != h || n2 != n => out.push(format!("differs: {shown}")),
            Some(_) => {}
        }
    }
    for (k, (_, shown, _)) in &b.rows {
        if !a.rows.contains_key(k) {
            out.push(format!("not in the source: {shown}"));
        }
    }
    if out.is_empty() {
        out.push("the sums differ, but no differing key was found among the rows read again (the source changed while it was read?)".into());
    }
    if a.overflow || b.overflow {
        out.push(format!(
            "(more: only {DIFF_ROWS_MAX} rows per side were compared)"
        ));
    }
    out.truncate(DIFF_KEYS_SHOWN);
    check.differences = out;
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Interval;
    use std::str::FromStr;

    /// Each canonical form as the source's SQL writes it and as Ohm's
    /// value gives it: equal when the values are.
    #[test]
    fn both_routes_reach_one_canonical_text() {
        let pairs: Vec<(Canon, &str, Value)> = vec![
            (Canon::Int, "-42", Value::Int(-42)),
            (Canon::Float8, "0.1", Value::Double(0.1)),
            (Canon::Float8, "-Infinity", Value::Double(f64::NEG_INFINITY)),
            (Canon::Float4, "0.100000001", Value::Double(0.1)),
            (
                Canon::Decimal,
                "2.50",
                Value::Decimal(Decimal::from_str("2.5").unwrap()),
            ),
            (
                Canon::Decimal,
                "0.99",
                Value::Decimal(Decimal::from_str("0.990").unwrap()),
            ),
            (Canon::Text, "héllo", Value::Text("héllo".into())),
            (Canon::Bytes, "00ff", Value::Bytes(vec![0, 255].into())),
            (Canon::Bool, "t", Value::Bool(true)),
            (Canon::Date, "-1", Value::Date(-1)),
            (
                Canon::Timestamp,
                "1609459200000000",
                Value::Timestamp(1_609_459_200_000_000),
            ),
            (
                Canon::Interval,
                "14 3 3600000001",
                Value::Interval(Interval {
                    months: 14,
                    days: 3,
                    micros: 3_600_000_001,
                }),
            ),
            (
                Canon::Uuid,
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                Value::Uuid([
                    0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd,
                    0x38, 0x0a, 0x11,
                ]),
            ),
        ];
        for (canon, text, v) in pairs {
            assert_eq!(
                Some(canon_source(canon, text)),
                canon_ohm(canon, &v),
                "{canon:?} {text}"
            );
        }
        assert_ne!(
            canon_source(Canon::Decimal, "2.51"),
            canon_ohm(
                Canon::Decimal,
                &Value::Decimal(Decimal::from_str("2.5").unwrap())
            )
            .unwrap()
        );
        assert_ne!(
            canon_source(Canon::Float8, "0.100000001"),
            canon_ohm(Canon::Float8, &Value::Double(0.1)).unwrap()
        );
        assert_eq!(canon_ohm(Canon::Text, &Value::Null), None);
        // 30 digits: not rounded into agreeing with a value Ohm rounded.
        let long = "123456789012345678901234567.891";
        let rounded = Value::Decimal(Decimal::from_str("123456789012345678901234567.89").unwrap());
        assert_ne!(
            Some(canon_source(Canon::Decimal, long)),
            canon_ohm(Canon::Decimal, &rounded)
        );
    }

    /// Order does not change a table's sums; a duplicate, a changed value
    /// or a NULL for an empty string does.
    #[test]
    fn sums_ignore_order_and_see_every_change() {
        let rows: Vec<Canonical> = (0..100)
            .map(|i| vec![Some(i.to_string()), Some(format!("v{i}"))])
            .collect();
        let sum = |rows: &[Canonical]| {
            let mut s = Sums::new();
            for r in rows {
                s.add(hash(&r[..1]), hash(r));
            }
            s
        };
        let base = sum(&rows);
        let mut reversed = rows.clone();
        reversed.reverse();
        assert_eq!(sum(&reversed), base);
        let mut dup = rows.clone();
        dup.push(rows[3].clone());
        assert_ne!(sum(&dup).checksum, base.checksum);
        let mut changed = rows.clone();
        changed[7][1] = Some("v8".into());
        assert_ne!(sum(&changed).checksum, base.checksum);
        let mut empty = rows.clone();
        empty[9][1] = Some(String::new());
        let mut null = rows.clone();
        null[9][1] = None;
        assert_ne!(sum(&empty).checksum, sum(&null).checksum);
    }
}
