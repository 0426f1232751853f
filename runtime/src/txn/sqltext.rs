//! Looking at ad-hoc SQL text before planning it: splitting a script into
//! statements, classifying each, and listing the names it mentions (to know
//! which tables a cross-partition statement needs).

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::collections::BTreeSet;

/// Statements one ad-hoc request may carry.
pub const STATEMENTS_PER_REQUEST_MAX: usize = 10_000;

/// What the coordinator does with a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SELECT, VALUES, WITH ... SELECT, EXPLAIN, SHOW: reads.
    Query,
    /// INSERT (no SELECT in it): the target's existing rows are not needed.
    InsertValues,
    /// INSERT ... SELECT, UPDATE, DELETE.
    Write,
    /// BEGIN, COMMIT, ROLLBACK, SAVEPOINT: ad-hoc statements are each their
    /// own transaction.
    TxnControl,
    /// Everything else (CREATE, DROP, ALTER, PARTITION TABLE): every
    /// partition runs it.
    Ddl,
}

/// Splits `sql` at top-level `;` (not inside quotes or comments) into
/// trimmed, non-empty statements.
pub fn split(sql: &str) -> Result<Vec<&str>, String> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                if i >= b.len() {
                    return Err(format!("unterminated {} quote", q as char));
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // Comments nest, as in PostgreSQL.
                let mut depth = 1;
                i += 2;
                while depth > 0 {
                    if i + 1 >= b.len() {
                        return Err("unterminated /* comment".to_string());
                    }
                    if b[i] == b'*' && b[i + 1] == b'/' {
                        depth -= 1;
                        i += 1;
                    } else if b[i] == b'/' && b[i + 1] == b'*' {
                        depth += 1;
                        i += 1;
                    }
                    i += 1;
                }
                continue;
            }
            b'$' => {
                // `$tag$ ... $tag$` (or `$$`): a body whose `;` are its own.
                if let Some(tag) = dollar_tag(&b[i..]) {
                    match sql[i + tag.len()..].find(tag.as_str()) {
                        Some(end) => i += tag.len() + end + tag.len() - 1,
                        None => return Err(format!("unterminated {tag} quote")),
                    }
                }
            }
            b';' => {
                push(&mut out, &sql[start..i])?;
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push(&mut out, &sql[start.min(sql.len())..])?;
    Ok(out)
}

/// `$tag$` (or `$$`) at the start of `b`, if it opens a dollar quote (a
/// `$1` parameter does not: a tag starts with a letter or `_`).
pub fn dollar_tag(b: &[u8]) -> Option<String> {
    let end = b.get(1..)?.iter().position(|&c| c == b'$')? + 1;
    let tag = &b[1..end];
    let ok = tag
        .iter()
        .enumerate()
        .all(|(k, &c)| c == b'_' || c.is_ascii_alphabetic() || (k > 0 && c.is_ascii_digit()));
    ok.then(|| String::from_utf8_lossy(&b[..=end]).into_owned())
}

fn push<'a>(out: &mut Vec<&'a str>, s: &'a str) -> Result<(), String> {
    let s = s.trim();
    if !s.is_empty() && !only_comments(s) {
        if out.len() >= STATEMENTS_PER_REQUEST_MAX {
            return Err(format!(
                "more than {STATEMENTS_PER_REQUEST_MAX} statements in one request"
            ));
        }
        out.push(s);
    }
    Ok(())
}

fn only_comments(s: &str) -> bool {
    words(s).is_empty()
}

/// The words of a statement, lowercased (keywords and names alike; quoted
/// names keep their case folded too, as the engine folds table names).
pub fn words(sql: &str) -> Vec<String> {
    let dialect = GenericDialect {};
    match Tokenizer::new(&dialect, sql).tokenize() {
        Ok(tokens) => tokens
            .into_iter()
            .filter_map(|t| match t {
                Token::Word(w) => Some(w.value.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        // The engine reports the syntax error properly; fall back to a
        // rough split so classification still works.
        Err(_) => sql
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_lowercase)
            .collect(),
    }
}

pub fn classify(words: &[String]) -> Kind {
    let first = words.first().map(String::as_str).unwrap_or("");
    // nextval()/setval() change a sequence: a query that calls one writes.
    let takes_values = || words.iter().any(|w| w == "nextval" || w == "setval");
    match first {
        "select" | "values" | "with" | "table" if takes_values() => Kind::Write,
        "select" | "values" | "with" | "explain" | "show" | "table" => Kind::Query,
        "insert" | "replace" if !words.iter().any(|w| w == "select") => Kind::InsertValues,
        "insert" | "replace" | "update" | "delete" => Kind::Write,
        "begin" | "start" | "commit" | "rollback" | "end" | "savepoint" | "release" => {
            Kind::TxnControl
        }
        _ => Kind::Ddl,
    }
}

/// The names among `words` that are in `known` (lowercase).
pub fn mentioned(words: &[String], known: &BTreeSet<String>) -> BTreeSet<String> {
    words
        .iter()
        .filter(|w| known.contains(*w))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let s = "CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('x;y'); -- c;\n/* ; */ SELECT \";\" FROM t;";
        let parts = split(s).unwrap();
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert_eq!(parts[1], "INSERT INTO t VALUES ('x;y')");
        assert!(split("SELECT 'open").is_err());
        assert!(split("  ;; -- nothing\n").unwrap().is_empty());
        let parts =
            split("SELECT $$a;b$$; SELECT $t$ $$; $t$, $1; /* a /* b; */ ; */ SELECT 3").unwrap();
        assert_eq!(
            parts,
            vec![
                "SELECT $$a;b$$",
                "SELECT $t$ $$; $t$, $1",
                "/* a /* b; */ ; */ SELECT 3"
            ]
        );
        assert!(split("SELECT $$open").is_err());
        assert!(split("SELECT 1 /* open /* */").is_err());
    }

    #[test]
    fn classifies() {
        let k = |s: &str| classify(&words(s));
        assert_eq!(k("select 1"), Kind::Query);
        assert_eq!(k("INSERT INTO t VALUES (1)"), Kind::InsertValues);
        assert_eq!(k("INSERT INTO t SELECT * FROM u"), Kind::Write);
        assert_eq!(k("update t set a = 1"), Kind::Write);
        assert_eq!(k("BEGIN"), Kind::TxnControl);
        assert_eq!(k("PARTITION TABLE t ON COLUMN a"), Kind::Ddl);
        assert_eq!(k("SELECT nextval('s')"), Kind::Write);
        assert_eq!(
            k("SELECT pg_catalog.setval('public.s', 200, true)"),
            Kind::Write
        );
        assert_eq!(k("EXPLAIN SELECT nextval('s')"), Kind::Query);
        let known: BTreeSet<String> = ["votes".to_string(), "t".to_string()].into();
        let m = mentioned(&words("SELECT COUNT(*) FROM Votes"), &known);
        assert_eq!(m.into_iter().collect::<Vec<_>>(), vec!["votes".to_string()]);
    }
}
