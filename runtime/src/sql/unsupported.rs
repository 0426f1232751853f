//! What to say about PostgreSQL statements and types Ohm does not have:
//! one line naming the construct and what to do instead, rather than a
//! parser's "Expected: ..., found: ..." (a pg_dump holds many of them).
//!
//! Owns: recognizing them from the statement's first words (or a type's
//! name) and the advice. Must not: accept anything; every answer here is
//! an error.

use super::error::SqlError;
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Words of a statement looked at to recognize it.
const HEAD_WORDS: usize = 8;

/// The first words of `sql`, lower-cased (keywords and names alike).
fn head(sql: &str) -> Vec<String> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Vec::new();
    };
    tokens
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w.value.to_ascii_lowercase()),
            _ => None,
        })
        .take(HEAD_WORDS)
        .collect()
}

/// The advice for `sql` if it is a statement Ohm does not run, as an
/// error; None otherwise (the caller's own error stands).
pub fn statement(sql: &str) -> Option<SqlError> {
    let w = head(sql);
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    // CREATE [OR REPLACE] [CONSTRAINT|EVENT] <kind> ...
    let kind: &[&str] = match w.as_slice() {
        ["create", "or", "replace", rest @ ..] | ["create", rest @ ..] => rest,
        _ => &[],
    };
    let say = |what: &str, todo: &str| Some(SqlError::unsupported(format!("{what}: {todo}")));
    match kind {
        ["function" | "procedure", ..] => say(
            "CREATE FUNCTION",
            "Ohm runs no SQL or PL/pgSQL functions; its stored logic is Wasm procedures \
             (docs/ABI.md): write it as a procedure, or compute the value in the statement",
        ),
        ["aggregate", ..] => say(
            "CREATE AGGREGATE",
            "user-defined aggregates are not supported; use the built-in ones (docs/SQL.md)",
        ),
        ["trigger", ..] | ["constraint", "trigger", ..] | ["event", "trigger", ..] => say(
            "CREATE TRIGGER",
            "Ohm has no triggers; do the trigger's work in the procedure that writes the table",
        ),
        ["type", ..] if w.contains(&"enum") => say(
            "CREATE TYPE ... AS ENUM",
            "Ohm has no enum types; declare the columns TEXT with CHECK (col IN ('a', 'b', ...))",
        ),
        ["type", ..] => say(
            "CREATE TYPE",
            "Ohm has no user-defined types; declare the columns with built-in types",
        ),
        ["domain", ..] => say(
            "CREATE DOMAIN",
            "Ohm has no domains; declare the columns with the domain's base type and its CHECK",
        ),
        ["materialized", "view", ..] => say(
            "CREATE MATERIALIZED VIEW",
            "use a view, or a table you fill with INSERT ... SELECT",
        ),
        ["extension", ..] => say("CREATE EXTENSION", "Ohm loads no extensions"),
        ["rule", ..] => say("CREATE RULE", "Ohm has no rules; use a view or a procedure"),
        ["policy", ..] => say(
            "CREATE POLICY",
            "Ohm has no row-level security; a tenant is its unit of separation",
        ),
        ["text", "search", ..] => say("CREATE TEXT SEARCH", "full-text search is not supported"),
        _ => partitioning(&w, sql),
    }
}

/// PostgreSQL's declarative partitioning (`PARTITION BY`, `ATTACH
/// PARTITION`, `PARTITION OF`).
fn partitioning(w: &[&str], sql: &str) -> Option<SqlError> {
    let upper = sql.to_ascii_uppercase();
    let declarative = matches!(w, ["create", "table", ..])
        && (upper.contains("PARTITION BY") || upper.contains("PARTITION OF"))
        || matches!(w, ["alter", "table", ..])
            && (upper.contains("ATTACH PARTITION") || upper.contains("DETACH PARTITION"));
    if declarative {
        return Some(SqlError::unsupported(
            "PostgreSQL's declarative partitioning (PARTITION BY/OF, ATTACH PARTITION): create \
             one table, spread it over the partitions with PARTITION TABLE t ON COLUMN c, and \
             load every partition's rows into it",
        ));
    }
    if matches!(w, ["create", "table", ..]) && upper.contains("[]") {
        return Some(SqlError::unsupported(
            "array types (type[]): store the values in a child table, or as TEXT",
        ));
    }
    None
}

/// Advice for a column type Ohm does not have (None: no advice beyond
/// naming it); `custom`: a name that is not one of SQL's types.
pub fn type_advice(name: &str, custom: bool) -> Option<&'static str> {
    let n = name.to_ascii_lowercase();
    let n = n.strip_prefix("public.").unwrap_or(&n);
    Some(match n {
        "tsvector" | "tsquery" => "full-text search is not supported; drop the column",
        "json" | "jsonb" | "xml" => "store it as TEXT",
        "money" => "use DECIMAL(19,2)",
        "inet" | "cidr" | "macaddr" => "store it as TEXT",
        "bit" | "varbit" | "bit varying" => "use VARBINARY or BIGINT",
        "point" | "line" | "lseg" | "box" | "path" | "polygon" | "circle" => {
            "geometric types are not supported; store the coordinates as DOUBLE columns"
        }
        "int4range" | "int8range" | "numrange" | "tsrange" | "tstzrange" | "daterange" => {
            "range types are not supported; store the bounds as two columns"
        }
        // Not a built-in name: an enum or domain of the dump's.
        _ if custom => {
            "Ohm has no user-defined types (enums, domains); declare the column with the base \
             type (an enum's as TEXT)"
        }
        _ => return None,
    })
}
