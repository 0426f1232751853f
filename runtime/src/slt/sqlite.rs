//! `SltDb` over SQLite (rusqlite, bundled). The corpus's answers are
//! SQLite's, so running it here checks the runner itself: formatting,
//! sorting, hashing and conditions. Not a product feature.

use super::{SltDb, SltOutput};
use crate::types::Value;
use rusqlite::types::ValueRef;

/// An in-memory SQLite database.
pub struct SqliteDb {
    conn: rusqlite::Connection,
}

impl SqliteDb {
    pub fn open() -> Result<SqliteDb, String> {
        let conn = rusqlite::Connection::open_in_memory()
            .map_err(|e| format!("cannot open SQLite: {e}"))?;
        Ok(SqliteDb { conn })
    }
}

impl SltDb for SqliteDb {
    fn run(&mut self, sql: &str) -> Result<SltOutput, String> {
        let mut stmt = match self.conn.prepare(sql) {
            Ok(stmt) => stmt,
            Err(rusqlite::Error::MultipleStatement) => {
                self.conn.execute_batch(sql).map_err(|e| e.to_string())?;
                return Ok(SltOutput::Done);
            }
            Err(e) => return Err(e.to_string()),
        };
        let columns = stmt.column_count();
        if columns == 0 {
            let affected = stmt.raw_execute().map_err(|e| e.to_string())?;
            return Ok(SltOutput::Affected(affected as u64));
        }
        let mut rows = Vec::new();
        let mut cursor = stmt.raw_query();
        // Like the C runner's SQLite driver (slt_sqlite.c), an error while
        // stepping ends the rows rather than failing the query; the corpus's
        // answers depend on it (sum() overflow in slt_lang_aggfunc.test).
        while let Ok(Some(row)) = cursor.next() {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                let v = row.get_ref(i).map_err(|e| e.to_string())?;
                values.push(match v {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(i) => Value::Int(i),
                    ValueRef::Real(d) => Value::Double(d),
                    ValueRef::Text(t) => Value::text(&String::from_utf8_lossy(t)),
                    ValueRef::Blob(b) => Value::Bytes(b.into()),
                });
            }
            rows.push(values);
        }
        Ok(SltOutput::Rows { columns, rows })
    }
}
