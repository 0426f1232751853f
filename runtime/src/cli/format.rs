//! How results look on a terminal, psql-style: aligned tables with a
//! centred header, numbers right-aligned, NULL as an empty cell, a
//! `(N rows)` footer; command tags (`INSERT 1`, `CREATE TABLE`); errors as
//! `ERROR (code): message`. Pure functions from values to text; no I/O.

use crate::proto::{ErrorReply, Rows, SqlResult};
use crate::types::Value;

/// A table of already-rendered cells; `right[i]` right-aligns column `i`.
#[derive(Debug, Clone, Default)]
pub struct TextTable {
    pub header: Vec<String>,
    pub right: Vec<bool>,
    pub rows: Vec<Vec<String>>,
}

/// The text of one cell: psql shows NULL as nothing.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn is_numeric(value: &Value) -> bool {
    matches!(value, Value::Int(_) | Value::Double(_) | Value::Decimal(_))
}

fn is_numeric_type(ty: &str) -> bool {
    let base = ty
        .split('(')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase();
    matches!(
        base.as_str(),
        "INTEGER"
            | "INT"
            | "BIGINT"
            | "SMALLINT"
            | "TINYINT"
            | "DOUBLE"
            | "FLOAT"
            | "REAL"
            | "DECIMAL"
            | "NUMERIC"
    )
}

impl TextTable {
    /// A table from a result: a column is right-aligned when its SQL type
    /// is numeric, or (type unknown) when its first non-NULL value is.
    pub fn from_rows(rows: &Rows) -> TextTable {
        let right = (0..rows.columns.len())
            .map(|i| match &rows.columns[i].ty {
                Some(ty) => is_numeric_type(ty),
                None => rows
                    .rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .find(|v| !matches!(v, Value::Null))
                    .is_some_and(is_numeric),
            })
            .collect();
        TextTable {
            header: rows.columns.iter().map(|c| c.name.clone()).collect(),
            right,
            rows: rows
                .rows
                .iter()
                .map(|r| r.iter().map(cell).collect())
                .collect(),
        }
    }

    /// Renders the table and its `(N rows)` footer, newline-terminated.
    pub fn render(&self) -> String {
        let widths = self.widths();
        let mut out = String::new();
        let header: Vec<String> = self
            .header
            .iter()
            .zip(&widths)
            .map(|(h, w)| centre(h, *w))
            .collect();
        push_line(&mut out, &header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        out.push_str(&rule.join("+"));
        out.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let text = row.get(i).map(String::as_str).unwrap_or("");
                    pad(text, *w, self.right.get(i).copied().unwrap_or(false))
                })
                .collect();
            push_line(&mut out, &cells);
        }
        out.push_str(&row_count(self.rows.len()));
        out.push('\n');
        out
    }

    fn widths(&self) -> Vec<usize> {
        (0..self.header.len())
            .map(|i| {
                let cells = self.rows.iter().filter_map(|r| r.get(i));
                cells
                    .map(|c| width(c))
                    .chain(std::iter::once(width(&self.header[i])))
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }
}

fn push_line(out: &mut String, cells: &[String]) {
    let line: Vec<String> = cells.iter().map(|c| format!(" {c} ")).collect();
    out.push_str(line.join("|").trim_end());
    out.push('\n');
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize, right: bool) -> String {
    let fill = " ".repeat(w.saturating_sub(width(s)));
    if right {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

fn centre(s: &str, w: usize) -> String {
    let total = w.saturating_sub(width(s));
    let left = total / 2;
    format!("{}{s}{}", " ".repeat(left), " ".repeat(total - left))
}

/// `(1 row)` / `(N rows)`.
pub fn row_count(n: usize) -> String {
    if n == 1 {
        "(1 row)".to_string()
    } else {
        format!("({n} rows)")
    }
}

/// The first keyword of a statement, upper-cased (`INSERT`, `UPDATE`, ...).
pub fn statement_verb(sql: &str) -> String {
    sql.split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches(';')
        .to_ascii_uppercase()
}

/// A statement's result as the shell prints it. `sql` is the statement,
/// used to name an affected-row count (`INSERT 3`, `DELETE 0`).
pub fn render_result(sql: &str, result: &SqlResult) -> String {
    match result {
        SqlResult::Rows(rows) => TextTable::from_rows(rows).render(),
        SqlResult::Affected(n) => {
            let verb = statement_verb(sql);
            let verb = if verb.is_empty() { "OK".into() } else { verb };
            format!("{verb} {n}\n")
        }
        SqlResult::Done(tag) => format!("{tag}\n"),
    }
}

/// `ERROR (code): message`.
pub fn render_error(err: &ErrorReply) -> String {
    format!("ERROR ({}): {}", err.code, err.message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Column, ErrorCode};

    fn col(name: &str, ty: Option<&str>) -> Column {
        Column {
            name: name.into(),
            ty: ty.map(str::to_string),
        }
    }

    #[test]
    fn table_aligns_like_psql() {
        let rows = Rows {
            columns: vec![
                col("name", Some("VARCHAR(50)")),
                col("votes", Some("BIGINT")),
            ],
            rows: vec![
                vec![Value::text("Edwina Burnam"), Value::Int(12)],
                vec![Value::Null, Value::Int(3456)],
            ],
        };
        let expected = concat!(
            "     name      | votes\n",
            "---------------+-------\n",
            " Edwina Burnam |    12\n",
            "               |  3456\n",
            "(2 rows)\n",
        );
        assert_eq!(TextTable::from_rows(&rows).render(), expected);
    }

    #[test]
    fn untyped_columns_align_by_value_and_one_row_is_singular() {
        let rows = Rows {
            columns: vec![col("x", None), col("y", None)],
            rows: vec![vec![Value::Null, Value::text("ab")]],
        };
        let t = TextTable::from_rows(&rows);
        assert_eq!(t.right, vec![false, false]);
        assert_eq!(t.render(), " x | y\n---+----\n   | ab\n(1 row)\n");
        let rows = Rows {
            columns: vec![col("n", None)],
            rows: vec![vec![Value::Null], vec![Value::Double(1.5)]],
        };
        assert_eq!(TextTable::from_rows(&rows).right, vec![true]);
    }

    #[test]
    fn empty_result_keeps_header() {
        let rows = Rows {
            columns: vec![col("id", Some("INTEGER"))],
            rows: vec![],
        };
        assert_eq!(
            TextTable::from_rows(&rows).render(),
            " id\n----\n(0 rows)\n"
        );
    }

    #[test]
    fn tags_and_errors() {
        let r = render_result("insert into t values (1)", &SqlResult::Affected(1));
        assert_eq!(r, "INSERT 1\n");
        let r = render_result("  DELETE FROM t", &SqlResult::Affected(0));
        assert_eq!(r, "DELETE 0\n");
        let r = render_result(
            "create table t (a int)",
            &SqlResult::Done("CREATE TABLE".into()),
        );
        assert_eq!(r, "CREATE TABLE\n");
        let e = ErrorReply::new(ErrorCode::Sql, "no such table: t");
        assert_eq!(render_error(&e), "ERROR (sql): no such table: t");
    }

    #[test]
    fn wide_characters_count_as_one() {
        assert_eq!(pad("é", 3, false), "é  ");
        assert_eq!(pad("7", 3, true), "  7");
        assert_eq!(centre("ab", 5), " ab  ");
    }
}
