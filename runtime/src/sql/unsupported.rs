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

/// Words of a statement looked at to tell what it is.
const HEAD_WORDS: usize = 8;
/// Tokens of the first statement looked at, at most (a longer one gets
/// no advice, only its own error).
const STATEMENT_TOKENS_MAX: usize = 16_384;

/// The first statement's tokens, without whitespace and comments (so
/// nothing inside a string or a comment is mistaken for syntax).
fn tokens(sql: &str) -> Vec<Token> {
    let Ok(all) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Vec::new();
    };
    all.into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .take_while(|t| *t != Token::SemiColon)
        .take(STATEMENT_TOKENS_MAX)
        .collect()
}

fn word(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) => Some(w.value.to_ascii_lowercase()),
        _ => None,
    }
}

/// The advice for `sql` if it is a statement Ohm does not run, as an
/// error; None otherwise (the caller's own error stands).
pub fn statement(sql: &str) -> Option<SqlError> {
    let toks = tokens(sql);
    let w: Vec<String> = toks.iter().filter_map(word).take(HEAD_WORDS).collect();
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
        _ => partitioning(&w, &toks),
    }
}

/// PostgreSQL's declarative partitioning (`PARTITION BY`/`OF` outside any
/// parentheses, where a window's `PARTITION BY` never is; `ATTACH` or
/// `DETACH PARTITION`), and array columns (`type[]`).
fn partitioning(w: &[&str], toks: &[Token]) -> Option<SqlError> {
    let create = matches!(w, ["create", "table", ..]);
    let alter = matches!(w, ["alter", "table", ..]);
    let mut depth = 0i32;
    let (mut declarative, mut array) = (false, false);
    for pair in toks.windows(2) {
        match &pair[0] {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::LBracket if pair[1] == Token::RBracket => array = true,
            t => {
                let (a, b) = (word(t), word(&pair[1]));
                let (a, b) = (a.as_deref(), b.as_deref());
                declarative |= create
                    && depth == 0
                    && a == Some("partition")
                    && matches!(b, Some("by" | "of"));
                declarative |=
                    alter && matches!(a, Some("attach" | "detach")) && b == Some("partition");
            }
        }
    }
    if declarative {
        return Some(SqlError::unsupported(
            "PostgreSQL's declarative partitioning (PARTITION BY/OF, ATTACH PARTITION): create \
             one table, spread it over the partitions with PARTITION TABLE t ON COLUMN c, and \
             load every partition's rows into it",
        ));
    }
    if create && array {
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
