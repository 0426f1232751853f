//! From a PostgreSQL schema (`source::Source`) to Ohm's DDL: each column's
//! type, default and identity; keys, checks and foreign keys; indexes;
//! sequences; views; a partition column or replication for every table,
//! with the reason; and a report of everything changed or left behind.
//!
//! Nothing here guesses whether Ohm will take a statement: each piece is
//! tried on a scratch in-memory `sql::Engine` (the node's own SQL), and a
//! piece Ohm refuses is left out and reported with Ohm's message. The
//! composed script is then run whole on a fresh scratch engine, so the
//! plan that `--apply` runs is one Ohm has accepted.
//!
//! Owns: the translation and the partition proposal. Must not: do I/O
//! (sans-IO: unit-tested on hand-built sources).

use super::propose;
use super::source::{Source, SourceColumn, SourceTable, SourceType};
use crate::sql::Engine;
use std::collections::{BTreeMap, BTreeSet};

/// Tables with fewer rows than this are replicated unless told.
pub const REPLICATE_BELOW_DEFAULT: u64 = 1_000;
/// Ohm's DECIMAL precision.
const DECIMAL_DIGITS_MAX: u32 = 28;

/// How values of a column are compared between the two sides (`verify`):
/// each side is brought to one canonical text by its own route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canon {
    Int,
    Float8,
    /// REAL in the source: compared as the float4 it was.
    Float4,
    Decimal,
    Text,
    Bytes,
    Bool,
    Date,
    /// µs since the epoch (with or without time zone).
    Timestamp,
    Time,
    Interval,
    Uuid,
}

/// Where a table's rows live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Replicated,
    On(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// Ohm's type (`VARCHAR(160)`, `DECIMAL(10,2)`).
    pub ty: String,
    pub canon: Canon,
    /// What `COPY (SELECT ...)` reads from the source for it.
    pub copy_expr: String,
    /// The source's canonical text of it (`verify`).
    pub verify_expr: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TablePlan {
    pub name: String,
    pub columns: Vec<Column>,
    pub placement: Placement,
    /// Why it is placed so, in a sentence.
    pub why: String,
    pub rows: u64,
    pub rows_estimated: bool,
    /// Columns that name a row (the primary key, else a unique key of NOT
    /// NULL columns; empty: none).
    pub key: Vec<String>,
    /// The tables it references, loaded before it.
    pub parents: Vec<String>,
    /// Declaratively partitioned in the source (read without `ONLY`).
    pub source_partitioned: bool,
    /// `CREATE TABLE ...`.
    pub create: String,
    /// `CREATE INDEX ...`.
    pub indexes: Vec<String>,
    /// Foreign keys added once the data is in (`ALTER TABLE ... ADD`):
    /// one that references its own table or closes a cycle, which rows
    /// loaded in any order could fail.
    pub deferred: Vec<String>,
}

/// Something the translation changed, or could not carry over.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Note {
    /// `table album`, `column track.composer`, `function f(integer)`.
    pub object: String,
    pub what: String,
    /// Not carried at all (vs carried with a change).
    pub dropped: bool,
}

/// The translated schema, in the order `--apply` runs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub schema: String,
    pub sequences: Vec<String>,
    /// Parents before children.
    pub tables: Vec<TablePlan>,
    /// `PARTITION TABLE ...`, children before parents (a child may be
    /// partitioned while its parent is replicated, not the other way).
    pub partitions: Vec<String>,
    /// `ALTER SEQUENCE ... OWNED BY`.
    pub owned: Vec<String>,
    pub views: Vec<String>,
    /// Source sequence → Ohm sequence, set after the data is in.
    pub setvals: Vec<(String, String)>,
    pub notes: Vec<Note>,
}

/// What the proposal may be told.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub replicate_below: u64,
    /// table → partition column, overriding the proposal.
    pub partition: BTreeMap<String, String>,
    /// Tables to replicate whatever their size.
    pub replicate: BTreeSet<String>,
    /// `partition` and `replicate` are the placements a resumed
    /// migration's first run recorded (said so in the reasons).
    pub recorded: bool,
}

/// PostgreSQL's reserved words (and those reserved in some contexts):
/// a column so named must be quoted.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

fn is_keyword(s: &str) -> bool {
    RESERVED.contains(&s)
}

/// A name as Ohm's SQL must be given it: bare when it is a plain
/// lower-case identifier, else double-quoted.
pub fn ident(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !is_keyword(s) {
        s.to_string()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

fn idents(cols: &[String]) -> String {
    cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ")
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `numeric(10,2)` → (10, 2); `numeric` → None.
fn precision(base: &str) -> Option<(u32, u32)> {
    let inner = base.strip_prefix("numeric(")?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

/// `character varying(160)` → Some("160").
fn length_of<'a>(base: &'a str, prefix: &str) -> Option<&'a str> {
    base.strip_prefix(prefix)?
        .strip_prefix('(')?
        .strip_suffix(')')
}

/// The source's canonical text of a column (`verify`), from the column
/// itself (`c`, quoted).
fn verify_expr(canon: Canon, c: &str, copy: &str) -> String {
    match canon {
        Canon::Bytes => format!("encode({c}, 'hex')"),
        Canon::Date => format!(
            "CASE WHEN isfinite({c}) THEN ({c} - DATE '1970-01-01')::text ELSE {c}::text END"
        ),
        // Whole seconds of the epoch, then the microseconds within the
        // second: exact whether `extract` gives numeric (PostgreSQL 14+)
        // or float8.
        Canon::Timestamp => format!(
            "CASE WHEN isfinite({c}) THEN \
             (extract(epoch FROM date_trunc('second', {c}))::bigint * 1000000 \
             + extract(microseconds FROM {c})::bigint % 1000000)::text ELSE {c}::text END"
        ),
        Canon::Time => format!("round(extract(epoch FROM {c}) * 1000000)::bigint::text"),
        Canon::Interval => format!(
            "(extract(year FROM {c}) * 12 + extract(month FROM {c}))::bigint::text || ' ' || \
             extract(day FROM {c})::bigint::text || ' ' || \
             round(extract(hour FROM {c}) * 3600000000 + extract(minute FROM {c}) * 60000000 \
             + extract(microseconds FROM {c}))::bigint::text"
        ),
        Canon::Uuid => format!("{c}::text"),
        _ => copy.to_string(),
    }
}

/// Ohm's type for a source type, how its values compare, what COPY
/// reads, and what changed (for the report).
fn map_type(ty: &SourceType) -> (String, Canon, bool, Option<String>) {
    // (ohm type, canon, copy as ::text/::numeric, note)
    let base = ty.base.as_str();
    if ty.category == 'A' {
        return (
            "TEXT".into(),
            Canon::Text,
            true,
            Some(format!(
                "{base} becomes TEXT holding PostgreSQL's text form ({{1,2,3}}): Ohm has no \
                 arrays (a child table is the relational form)"
            )),
        );
    }
    if let Some(labels) = &ty.enum_labels {
        let declared = ty.declared.clone().unwrap_or_default();
        return (
            "TEXT".into(),
            Canon::Text,
            true,
            Some(format!(
                "enum {declared} becomes TEXT with a CHECK of its {} labels",
                labels.len()
            )),
        );
    }
    if matches!(ty.kind, 'c' | 'r' | 'm' | 'p') {
        return (
            "TEXT".into(),
            Canon::Text,
            true,
            Some(format!(
                "{base} (a composite or range type) becomes TEXT holding its text form"
            )),
        );
    }
    let plain = |t: &str, canon| (t.to_string(), canon, false, None);
    let ts_tz = base.starts_with("timestamp") && base.ends_with("with time zone");
    match base {
        "smallint" => plain("SMALLINT", Canon::Int),
        "integer" => plain("INTEGER", Canon::Int),
        "bigint" => plain("BIGINT", Canon::Int),
        "double precision" => plain("DOUBLE PRECISION", Canon::Float8),
        "real" => (
            "DOUBLE PRECISION".into(),
            Canon::Float4,
            false,
            Some("real becomes DOUBLE PRECISION (Ohm has one float type)".into()),
        ),
        "text" | "character varying" => plain("TEXT", Canon::Text),
        "boolean" => plain("BOOLEAN", Canon::Bool),
        "bytea" => plain("BYTEA", Canon::Bytes),
        "date" => plain("DATE", Canon::Date),
        "uuid" => plain("UUID", Canon::Uuid),
        "json" | "jsonb" => (
            "TEXT".into(),
            Canon::Text,
            true,
            Some(format!(
                "{base} becomes TEXT holding the document (Ohm has no JSON operators)"
            )),
        ),
        "money" => (
            "DECIMAL(28,2)".into(),
            Canon::Decimal,
            true,
            Some("money becomes DECIMAL(28,2)".into()),
        ),
        "numeric" => (
            "DECIMAL".into(),
            Canon::Decimal,
            false,
            Some(
                "numeric without a precision becomes DECIMAL (28 digits, 14 after the point): \
                 a value with more is rounded or refused, and verification names it"
                    .into(),
            ),
        ),
        _ if base.starts_with("numeric(") => match precision(base) {
            Some((p, s)) if p <= DECIMAL_DIGITS_MAX => {
                plain(&format!("DECIMAL({p},{s})"), Canon::Decimal)
            }
            Some((p, s)) => (
                format!(
                    "DECIMAL({DECIMAL_DIGITS_MAX},{})",
                    s.min(DECIMAL_DIGITS_MAX)
                ),
                Canon::Decimal,
                false,
                Some(format!(
                    "{base}: Ohm's DECIMAL has {DECIMAL_DIGITS_MAX} digits, not {p}: a value \
                     with more is refused (and named in the reject report)"
                )),
            ),
            None => plain("DECIMAL", Canon::Decimal),
        },
        _ if length_of(base, "character varying").is_some() => plain(
            &format!(
                "VARCHAR({})",
                length_of(base, "character varying").unwrap_or("")
            ),
            Canon::Text,
        ),
        _ if length_of(base, "character").is_some() => plain(
            &format!("CHAR({})", length_of(base, "character").unwrap_or("")),
            Canon::Text,
        ),
        "character" => plain("CHAR(1)", Canon::Text),
        _ if ts_tz => plain("TIMESTAMPTZ", Canon::Timestamp),
        _ if base.starts_with("timestamp") => plain("TIMESTAMP", Canon::Timestamp),
        _ if base.starts_with("time") && base.ends_with("without time zone") => {
            plain("TIME", Canon::Time)
        }
        _ if base.starts_with("interval") => plain("INTERVAL", Canon::Interval),
        _ => (
            "TEXT".into(),
            Canon::Text,
            true,
            Some(format!("{base} becomes TEXT holding its text form")),
        ),
    }
}

/// A domain check reads `VALUE`; on the column it reads the column.
fn domain_check(check: &str, column: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let mut in_quote = false;
    let flush = |word: &mut String, out: &mut String| {
        if word == "VALUE" {
            out.push_str(&ident(column));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for ch in check.chars() {
        if in_quote {
            out.push(ch);
            if ch == '\'' {
                in_quote = false;
            }
            continue;
        }
        if ch.is_ascii_alphanumeric() || ch == '_' {
            word.push(ch);
            continue;
        }
        flush(&mut word, &mut out);
        if ch == '\'' {
            in_quote = true;
        }
        out.push(ch);
    }
    flush(&mut word, &mut out);
    out
}

/// Casts to an enum or a domain (`'happy'::mood`, as PostgreSQL writes
/// them in views, defaults and checks) made casts to the type Ohm holds
/// the column as.
fn retype(expr: &str, types: &BTreeMap<String, String>) -> String {
    let mut out = expr.to_string();
    for (name, to) in types {
        let to = format!("::{to}");
        for from in [format!("::public.{name}"), format!("::{name}")] {
            let mut rebuilt = String::new();
            let mut rest = out.as_str();
            while let Some(at) = rest.find(&from) {
                let after = &rest[at + from.len()..];
                let boundary = !after
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
                rebuilt.push_str(&rest[..at]);
                rebuilt.push_str(if boundary { &to } else { &from });
                rest = after;
            }
            rebuilt.push_str(rest);
            out = rebuilt;
        }
    }
    out
}

/// The source's enums and domains by name, and the type each becomes.
fn user_types(src: &Source) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for t in &src.tables {
        for c in &t.columns {
            if let Some(declared) = &c.ty.declared {
                let (ty, ..) = map_type(&c.ty);
                let name = declared.strip_prefix("public.").unwrap_or(declared);
                out.insert(name.trim_matches('"').to_string(), ty.to_lowercase());
            }
        }
    }
    out
}

fn note(notes: &mut Vec<Note>, object: String, what: String, dropped: bool) {
    notes.push(Note {
        object,
        what,
        dropped,
    });
}

/// A table's columns as Ohm will have them, and the report's notes.
fn columns<'a>(t: &'a SourceTable, notes: &mut Vec<Note>) -> Vec<(Column, &'a SourceColumn)> {
    t.columns
        .iter()
        .map(|c| {
            let (ty, canon, as_text, changed) = map_type(&c.ty);
            let q = ident(&c.name);
            let copy_expr = match (as_text, ty.as_str()) {
                (true, "DECIMAL(28,2)") => format!("{q}::numeric"),
                (true, _) => format!("{q}::text"),
                (false, _) => q.clone(),
            };
            if let Some(what) = changed {
                note(notes, format!("column {}.{}", t.name, c.name), what, false);
            }
            if let Some(g) = &c.generated {
                note(
                    notes,
                    format!("column {}.{}", t.name, c.name),
                    format!(
                        "generated column (GENERATED ALWAYS AS ({g}) STORED) becomes a plain \
                         column holding the values copied; Ohm does not compute it"
                    ),
                    false,
                );
            }
            let verify = verify_expr(canon, &q, &copy_expr);
            (
                Column {
                    name: c.name.clone(),
                    ty,
                    canon,
                    copy_expr,
                    verify_expr: verify,
                },
                c,
            )
        })
        .collect()
}

/// A column's definition in CREATE TABLE: type, identity, NOT NULL and
/// the default Ohm took.
fn column_def(
    src: &Source,
    t: &SourceTable,
    c: &Column,
    sc: &SourceColumn,
    default: Option<&String>,
) -> String {
    let mut d = format!("{} {}", ident(&c.name), c.ty);
    if let Some(kind) = sc.identity {
        let seq = src.sequences.iter().find(|s| {
            s.identity
                && s.owned_by
                    .as_ref()
                    .is_some_and(|(tt, cc)| *tt == t.name && *cc == sc.name)
        });
        let opts = seq
            .map(|s| format!(" (START WITH {} INCREMENT BY {})", s.start, s.increment))
            .unwrap_or_default();
        let always = if kind == 'a' { "ALWAYS" } else { "BY DEFAULT" };
        d.push_str(&format!(" GENERATED {always} AS IDENTITY{opts}"));
    }
    if sc.not_null {
        d.push_str(" NOT NULL");
    }
    if let Some(def) = default {
        d.push_str(&format!(" DEFAULT {def}"));
    }
    d
}

/// The CHECKs a column brings with its type (enum labels, domain checks).
fn type_checks(t: &SourceTable, c: &SourceColumn) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(labels) = &c.ty.enum_labels {
        let list: Vec<String> = labels.iter().map(|l| quote_literal(l)).collect();
        out.push((
            format!("{}_{}_enum", t.name, c.name),
            format!("CHECK ({} IN ({}))", ident(&c.name), list.join(", ")),
        ));
    }
    for (n, check) in c.ty.domain_checks.iter().enumerate() {
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("{n}")
        };
        out.push((
            format!("{}_{}_domain{suffix}", t.name, c.name),
            domain_check(check, &c.name),
        ));
    }
    out
}

/// Translates the source and checks every piece on Ohm's own engine.
pub fn translate(src: &Source, settings: &Settings) -> anyhow::Result<Plan> {
    for name in settings.partition.keys().chain(&settings.replicate) {
        if !src.tables.iter().any(|t| t.name == *name) {
            anyhow::bail!(
                "--partition/--replicate name {name:?}, which is not a table of schema {}",
                src.schema
            );
        }
    }
    let mut tr = Translator {
        src,
        types: user_types(src),
        scratch: Engine::new(),
        notes: Vec::new(),
        plan: Plan {
            schema: src.schema.clone(),
            ..Plan::default()
        },
        carried: BTreeSet::new(),
    };
    tr.others();
    let tables = tr.checkable_foreign_keys();
    let (order, deferred) = propose::order(&tables);
    let placement = propose::propose(&tables, &order, &deferred, settings)?;
    tr.sequences();
    for &i in &order {
        let deferred_here: BTreeSet<&str> = deferred
            .iter()
            .filter(|(t, _)| *t == i)
            .map(|(_, fk)| fk.as_str())
            .collect();
        tr.table(&tables[i], placement[i].clone(), &deferred_here);
    }
    tr.partition(settings)?;
    tr.views();
    let Translator {
        mut plan,
        mut notes,
        mut scratch,
        ..
    } = tr;
    // Every deferred key, on tables that ended up replicated.
    for t in &plan.tables {
        for sql in &t.deferred {
            if let Some(e) = attempt(&mut scratch, sql) {
                anyhow::bail!("internal: a deferred foreign key Ohm refused: {sql}: {e}");
            }
        }
    }
    notes.sort();
    plan.notes = notes;
    // The composed script, whole, on a fresh engine.
    let mut fresh = Engine::new();
    for sql in plan.schema_script() {
        if let Some(e) = attempt(&mut fresh, &sql) {
            anyhow::bail!("internal: the translated schema does not run on Ohm: {sql}: {e}");
        }
    }
    Ok(plan)
}

/// The translation under way: the scratch engine every piece is tried on,
/// the plan so far and the report's notes.
struct Translator<'a> {
    src: &'a Source,
    /// Enums and domains → the type Ohm holds them as (`retype`).
    types: BTreeMap<String, String>,
    scratch: Engine,
    notes: Vec<Note>,
    plan: Plan,
    /// Tables created on the scratch engine.
    carried: BTreeSet<String>,
}

/// Tries `sql` on the scratch engine: None when Ohm takes it, else Ohm's
/// message.
fn attempt(e: &mut Engine, sql: &str) -> Option<String> {
    e.execute(sql).err().map(|err| err.to_string())
}

impl Translator<'_> {
    fn note(&mut self, object: String, what: String, dropped: bool) {
        note(&mut self.notes, object, what, dropped);
    }

    /// The objects that do not come, each with what to do instead.
    fn others(&mut self) {
        for (kind, name) in &self.src.others {
            let what = match kind.as_str() {
                "function" => "not carried: write it as a Wasm procedure (docs/ABI.md)",
                "trigger" => "not carried: do its work in the procedure that writes the table",
                "materialized view" => "not carried: a view or a table filled by a procedure",
                "rule" | "policy" => {
                    "not carried: Ohm has no rules or row policies; a tenant is the unit of \
                     separation"
                }
                "extension" => "not carried: Ohm has no extensions",
                _ => {
                    "not migrated: run ohm migrate --schema NAME for it (into another tenant, \
                     or after renaming)"
                }
            };
            self.note(format!("{kind} {name}"), what.into(), true);
        }
    }

    /// The tables with only the foreign keys Ohm can check (within the
    /// schema); actions and match kinds it lacks are reported and the key
    /// kept as a plain check.
    fn checkable_foreign_keys(&mut self) -> Vec<SourceTable> {
        let mut tables = self.src.tables.clone();
        for t in &mut tables {
            let mut kept = Vec::new();
            for fk in &t.foreign_keys {
                let object = format!("foreign key {}.{}", t.name, fk.name);
                if fk.parent_schema != self.src.schema {
                    let what = format!(
                        "not carried: its parent {}.{} is in another schema",
                        fk.parent_schema, fk.parent
                    );
                    self.note(object, what, true);
                    continue;
                }
                for (when, action) in [("DELETE", fk.on_delete), ("UPDATE", fk.on_update)] {
                    let name = match action {
                        'c' => "CASCADE",
                        'n' => "SET NULL",
                        'd' => "SET DEFAULT",
                        _ => continue,
                    };
                    let what = format!(
                        "ON {when} {name} is not carried: Ohm checks a foreign key and never \
                         acts on it, so a {} that {name} handled is refused",
                        when.to_lowercase()
                    );
                    self.note(object.clone(), what, false);
                }
                if fk.match_type == 'f' {
                    let what = "MATCH FULL becomes MATCH SIMPLE (a key with some NULL columns \
                                is not checked)";
                    self.note(object.clone(), what.into(), false);
                }
                if fk.deferrable {
                    let what = "DEFERRABLE is not carried: checked at the end of each statement";
                    self.note(object.clone(), what.into(), false);
                }
                kept.push(fk.clone());
            }
            t.foreign_keys = kept;
        }
        tables
    }

    /// Sequences first: defaults name them. An identity column's own
    /// sequence comes with its column.
    fn sequences(&mut self) {
        for s in &self.src.sequences {
            if s.identity {
                if let Some((t, c)) = &s.owned_by {
                    self.plan
                        .setvals
                        .push((s.name.clone(), format!("{t}_{c}_seq")));
                }
                continue;
            }
            let ty = match s.data_type.as_str() {
                "smallint" | "integer" | "bigint" => s.data_type.to_uppercase(),
                _ => "BIGINT".into(),
            };
            let sql = format!(
                "CREATE SEQUENCE {} AS {ty} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {}",
                ident(&s.name),
                s.increment,
                s.min,
                s.max,
                s.start
            );
            let object = format!("sequence {}", s.name);
            if s.cycle {
                let what = "CYCLE is not carried: Ohm's sequences stop at their end";
                self.note(object.clone(), what.into(), false);
            }
            if let Some(e) = attempt(&mut self.scratch, &sql) {
                self.note(object, format!("not carried: {e}"), true);
                continue;
            }
            self.plan.sequences.push(sql);
            self.plan.setvals.push((s.name.clone(), s.name.clone()));
            if let Some((t, c)) = &s.owned_by {
                self.plan.owned.push(format!(
                    "ALTER SEQUENCE {} OWNED BY {}.{}",
                    ident(&s.name),
                    ident(t),
                    ident(c)
                ));
            }
        }
    }

    /// One table: created on the scratch engine with its columns, then
    /// each default, key, check and foreign key added and kept if Ohm takes
    /// it (the table still replicated there, where Ohm lets constraints be
    /// added), then its indexes; composed as one CREATE TABLE.
    fn table(&mut self, t: &SourceTable, placed: (Placement, String), deferred: &BTreeSet<&str>) {
        let mut notes = Vec::new();
        let cols = columns(t, &mut notes);
        self.notes.extend(notes);
        if t.partitioned_in_source {
            let what = "declaratively partitioned in PostgreSQL: becomes one table (with its \
                        partitions' rows), spread by Ohm's own partitioning";
            self.note(format!("table {}", t.name), what.into(), false);
        }
        for (name, def) in &t.other_constraints {
            let what = format!("not carried: {def} (Ohm has no exclusion constraints)");
            self.note(format!("constraint {}.{name}", t.name), what, true);
        }
        let defs: Vec<String> = cols
            .iter()
            .map(|(c, sc)| column_def(self.src, t, c, sc, None))
            .collect();
        let create = format!("CREATE TABLE {} ({})", ident(&t.name), defs.join(", "));
        if let Some(e) = attempt(&mut self.scratch, &create) {
            self.note(
                format!("table {}", t.name),
                format!("not carried: {e}"),
                true,
            );
            return;
        }
        self.carried.insert(t.name.clone());
        let defaults = self.defaults(t, &cols);
        let (constraints, key, parents, deferred_sql) = self.constraints(t, &cols, deferred);
        let indexes = self.indexes(t);
        let mut defs: Vec<String> = cols
            .iter()
            .map(|(c, sc)| column_def(self.src, t, c, sc, defaults.get(&c.name)))
            .collect();
        defs.extend(constraints);
        let create = format!(
            "CREATE TABLE {} (\n    {}\n)",
            ident(&t.name),
            defs.join(",\n    ")
        );
        let (placement, why) = placed;
        self.plan.tables.push(TablePlan {
            name: t.name.clone(),
            columns: cols.into_iter().map(|(c, _)| c).collect(),
            placement,
            why,
            rows: t.rows,
            rows_estimated: t.rows_estimated,
            key,
            source_partitioned: t.partitioned_in_source,
            parents,
            create,
            indexes,
            deferred: deferred_sql,
        });
    }

    /// The defaults Ohm takes, by column.
    fn defaults(
        &mut self,
        t: &SourceTable,
        cols: &[(Column, &SourceColumn)],
    ) -> BTreeMap<String, String> {
        let mut kept = BTreeMap::new();
        for (c, sc) in cols {
            let Some(def) = sc.default.as_ref().map(|d| retype(d, &self.types)) else {
                continue;
            };
            if sc.identity.is_some() {
                continue;
            }
            let sql = format!(
                "ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {def}",
                ident(&t.name),
                ident(&c.name)
            );
            match attempt(&mut self.scratch, &sql) {
                None => {
                    kept.insert(c.name.clone(), def);
                }
                Some(e) => self.note(
                    format!("column {}.{}", t.name, c.name),
                    format!("DEFAULT {def} not carried: {e}"),
                    true,
                ),
            }
        }
        kept
    }

    /// Keys, checks (the table's and its types'), foreign keys: the
    /// clauses Ohm takes; the key that names a row in Ohm (the primary
    /// key, else a unique key of NOT NULL columns, when Ohm took it); the
    /// parents loaded before it; and the foreign keys added after the
    /// data.
    #[allow(clippy::type_complexity)]
    fn constraints(
        &mut self,
        t: &SourceTable,
        cols: &[(Column, &SourceColumn)],
        deferred: &BTreeSet<&str>,
    ) -> (Vec<String>, Vec<String>, Vec<String>, Vec<String>) {
        // (what, clause, the columns it makes a key of)
        let mut tried: Vec<(String, String, Option<&Vec<String>>)> = Vec::new();
        if let Some((name, k)) = &t.primary_key {
            let clause = format!("CONSTRAINT {} PRIMARY KEY ({})", ident(name), idents(k));
            tried.push((format!("primary key {name}"), clause, Some(k)));
        }
        for (name, k) in &t.uniques {
            let clause = format!("CONSTRAINT {} UNIQUE ({})", ident(name), idents(k));
            let not_null = k
                .iter()
                .all(|c| t.columns.iter().any(|sc| sc.name == *c && sc.not_null));
            tried.push((format!("unique {name}"), clause, not_null.then_some(k)));
        }
        for (_, sc) in cols {
            for (name, check) in type_checks(t, sc) {
                let clause = format!("CONSTRAINT {} {check}", ident(&name));
                tried.push((format!("check {name}"), clause, None));
            }
        }
        for (name, check) in &t.checks {
            let check = retype(check, &self.types);
            let clause = format!("CONSTRAINT {} {check}", ident(name));
            tried.push((format!("check {name}"), clause, None));
        }
        let mut parents = Vec::new();
        let mut deferred_sql = Vec::new();
        for fk in &t.foreign_keys {
            let clause = format!(
                "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
                ident(&fk.name),
                idents(&fk.columns),
                ident(&fk.parent),
                idents(&fk.parent_columns)
            );
            let object = format!("foreign key {}.{}", t.name, fk.name);
            if deferred.contains(fk.name.as_str()) {
                let what = "added after the data (it references its own table or closes a \
                            cycle, so rows loaded in any order could fail it)";
                self.note(object, what.into(), false);
                deferred_sql.push(format!("ALTER TABLE {} ADD {clause}", ident(&t.name)));
            } else if !self.carried.contains(&fk.parent) {
                self.note(
                    object,
                    format!("not carried: its parent {} was not", fk.parent),
                    true,
                );
            } else {
                if !parents.contains(&fk.parent) {
                    parents.push(fk.parent.clone());
                }
                tried.push((format!("foreign key {}", fk.name), clause, None));
            }
        }
        let mut kept = Vec::new();
        let mut key: Option<Vec<String>> = None;
        for (what, clause, makes_key) in tried {
            let alter = format!("ALTER TABLE {} ADD {clause}", ident(&t.name));
            match attempt(&mut self.scratch, &alter) {
                None => {
                    kept.push(clause);
                    if key.is_none() {
                        key = makes_key.cloned();
                    }
                }
                Some(e) => self.note(
                    format!("{what} of {}", t.name),
                    format!("not carried: {e}"),
                    true,
                ),
            }
        }
        (kept, key.unwrap_or_default(), parents, deferred_sql)
    }

    /// The indexes Ohm takes: columns only, btree or hash.
    fn indexes(&mut self, t: &SourceTable) -> Vec<String> {
        let mut out = Vec::new();
        for ix in &t.indexes {
            let object = format!("index {}", ix.name);
            if ix.has_expressions || ix.partial || ix.columns.is_empty() {
                let what = format!(
                    "not carried: {} (Ohm indexes columns, without expressions or WHERE)",
                    ix.definition
                );
                self.note(object, what, true);
                continue;
            }
            let using = match ix.method.as_str() {
                "btree" => "",
                "hash" => " USING HASH",
                other => {
                    self.note(
                        object.clone(),
                        format!("{other} index becomes a btree one"),
                        false,
                    );
                    ""
                }
            };
            if ix.has_include {
                let what = "INCLUDE columns are not carried (the key columns are)";
                self.note(object.clone(), what.into(), false);
            }
            let sql = format!(
                "CREATE {}INDEX {} ON {}{using} ({})",
                if ix.unique { "UNIQUE " } else { "" },
                ident(&ix.name),
                ident(&t.name),
                idents(&ix.columns)
            );
            match attempt(&mut self.scratch, &sql) {
                None => out.push(sql),
                Some(e) => self.note(object, format!("not carried: {e}"), true),
            }
        }
        out
    }

    /// Partitioning: children first, each tried; one Ohm refuses leaves
    /// the table replicated, with Ohm's reason (an error when the user
    /// asked for it).
    fn partition(&mut self, settings: &Settings) -> anyhow::Result<()> {
        for t in self.plan.tables.iter_mut().rev() {
            let Placement::On(c) = &t.placement else {
                continue;
            };
            let sql = format!("PARTITION TABLE {} ON COLUMN {}", t.name, c);
            let Some(e) = attempt(&mut self.scratch, &sql) else {
                self.plan.partitions.push(sql);
                continue;
            };
            if settings.partition.contains_key(&t.name) {
                anyhow::bail!("--partition {}={c}: Ohm refuses it: {e}", t.name);
            }
            note(
                &mut self.notes,
                format!("table {}", t.name),
                format!("proposed partitioned on {c}, left replicated: {e}"),
                false,
            );
            t.why = format!("replicated: Ohm refused partitioning it on {c}: {e}");
            t.placement = Placement::Replicated;
        }
        Ok(())
    }

    fn views(&mut self) {
        for (name, def) in &self.src.views {
            let def = retype(def.trim().trim_end_matches(';'), &self.types);
            let sql = format!("CREATE VIEW {} AS {def}", ident(name));
            match attempt(&mut self.scratch, &sql) {
                None => self.plan.views.push(sql),
                Some(e) => self.note(format!("view {name}"), format!("not carried: {e}"), true),
            }
        }
    }
}

impl Plan {
    /// The statements that make the schema, in order (before the data).
    pub fn schema_script(&self) -> Vec<String> {
        let mut out = self.sequences.clone();
        for t in &self.tables {
            out.push(t.create.clone());
        }
        out.extend(self.partitions.iter().cloned());
        for t in &self.tables {
            out.extend(t.indexes.iter().cloned());
        }
        out.extend(self.owned.iter().cloned());
        out.extend(self.views.iter().cloned());
        out
    }

    /// The plan as a file to review: the DDL with each table's placement
    /// and reason, then the report.
    pub fn render(&self, source: &str) -> String {
        let mut s = format!(
            "-- ohm migrate: the schema {} of {source}, translated for Ohm.\n\
             -- Review it, then run ohm migrate with --apply (the data is copied after the\n\
             -- schema; foreign keys marked \"after the data\" are added then).\n\n",
            self.schema
        );
        s.push_str("-- Placement\n");
        for t in &self.tables {
            let rows = if t.rows_estimated {
                format!("about {}", t.rows)
            } else {
                t.rows.to_string()
            };
            s.push_str(&format!(
                "--   {:<24} {:>12} rows  {}\n",
                t.name, rows, t.why
            ));
        }
        s.push('\n');
        for sql in &self.sequences {
            s.push_str(&format!("{sql};\n"));
        }
        if !self.sequences.is_empty() {
            s.push('\n');
        }
        for t in &self.tables {
            s.push_str(&format!("-- {}: {}\n{};\n", t.name, t.why, t.create));
            for ix in &t.indexes {
                s.push_str(&format!("{ix};\n"));
            }
            s.push('\n');
        }
        for sql in self.partitions.iter().chain(&self.owned).chain(&self.views) {
            s.push_str(&format!("{sql};\n"));
        }
        let deferred: Vec<&String> = self.tables.iter().flat_map(|t| &t.deferred).collect();
        if !deferred.is_empty() {
            s.push_str("\n-- After the data:\n");
            for sql in deferred {
                s.push_str(&format!("{sql};\n"));
            }
        }
        if !self.setvals.is_empty() {
            s.push_str("\n-- After the data, each sequence is set to the source's last value:\n");
            for (src, ohm) in &self.setvals {
                s.push_str(&format!("--   {src} -> {ohm}\n"));
            }
        }
        s.push_str(&format!("\n-- Report: {} notes\n", self.notes.len()));
        for n in &self.notes {
            s.push_str(&format!(
                "-- {} {}: {}\n",
                if n.dropped {
                    "NOT CARRIED"
                } else {
                    "changed    "
                },
                n.object,
                n.what
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::source::{ForeignKey, Index, Sequence};

    fn col(name: &str, base: &str, not_null: bool) -> SourceColumn {
        SourceColumn {
            name: name.into(),
            ty: SourceType {
                base: base.into(),
                declared: None,
                enum_labels: None,
                domain_checks: Vec::new(),
                kind: 'b',
                category: if base.ends_with("[]") { 'A' } else { 'N' },
            },
            not_null,
            default: None,
            identity: None,
            generated: None,
        }
    }

    fn table(name: &str, rows: u64, cols: Vec<SourceColumn>, pk: &[&str]) -> SourceTable {
        SourceTable {
            name: name.into(),
            columns: cols,
            primary_key: (!pk.is_empty()).then(|| {
                (
                    format!("{name}_pkey"),
                    pk.iter().map(|s| s.to_string()).collect(),
                )
            }),
            uniques: Vec::new(),
            foreign_keys: Vec::new(),
            checks: Vec::new(),
            other_constraints: Vec::new(),
            indexes: Vec::new(),
            rows,
            rows_estimated: false,
            partitioned_in_source: false,
        }
    }

    fn fk(name: &str, cols: &[&str], parent: &str, pcols: &[&str]) -> ForeignKey {
        ForeignKey {
            name: name.into(),
            columns: cols.iter().map(|s| s.to_string()).collect(),
            parent: parent.into(),
            parent_schema: "public".into(),
            parent_columns: pcols.iter().map(|s| s.to_string()).collect(),
            on_update: 'a',
            on_delete: 'a',
            match_type: 's',
            deferrable: false,
        }
    }

    fn settings() -> Settings {
        Settings {
            replicate_below: 100,
            ..Settings::default()
        }
    }

    fn placement<'a>(p: &'a Plan, t: &str) -> &'a Placement {
        &p.tables.iter().find(|x| x.name == t).unwrap().placement
    }

    /// A store: small lookups replicated; orders partitioned by customer
    /// with their customer; a line whose key does not hold the order's
    /// partition column forces the order's parent to be replicated.
    #[test]
    fn the_proposal_colocates_children_with_partitioned_parents() {
        let mut customer = table(
            "customer",
            5000,
            vec![col("id", "integer", true), col("name", "text", false)],
            &["id"],
        );
        customer.indexes.push(Index {
            name: "customer_name_idx".into(),
            unique: false,
            method: "btree".into(),
            columns: vec!["name".into()],
            has_expressions: false,
            partial: false,
            has_include: false,
            definition: String::new(),
        });
        let country = table(
            "country",
            10,
            vec![col("code", "character(2)", true)],
            &["code"],
        );
        let mut orders = table(
            "orders",
            90_000,
            vec![
                col("id", "bigint", true),
                col("customer_id", "integer", true),
                col("country", "character(2)", false),
            ],
            &["customer_id", "id"],
        );
        orders.foreign_keys.push(fk(
            "orders_customer_fkey",
            &["customer_id"],
            "customer",
            &["id"],
        ));
        orders.foreign_keys.push(fk(
            "orders_country_fkey",
            &["country"],
            "country",
            &["code"],
        ));
        let src = Source {
            schema: "public".into(),
            tables: vec![country, customer, orders],
            ..Source::default()
        };
        let plan = translate(&src, &settings()).unwrap();
        assert_eq!(placement(&plan, "country"), &Placement::Replicated);
        assert_eq!(placement(&plan, "customer"), &Placement::On("id".into()));
        assert_eq!(
            placement(&plan, "orders"),
            &Placement::On("customer_id".into())
        );
        let why = &plan.tables.iter().find(|t| t.name == "orders").unwrap().why;
        assert!(why.contains("orders_customer_fkey"), "{why}");
        // Children are partitioned before their parents.
        assert_eq!(
            plan.partitions,
            vec![
                "PARTITION TABLE orders ON COLUMN customer_id".to_string(),
                "PARTITION TABLE customer ON COLUMN id".to_string()
            ]
        );

        // A line keyed by its own id cannot sit with its order: the order
        // table becomes replicated, and so does its partitioned parent.
        let mut line = table(
            "line",
            500_000,
            vec![
                col("line_id", "bigint", true),
                col("order_id", "bigint", true),
                col("customer_id", "integer", true),
            ],
            &["line_id"],
        );
        let mut src2 = src.clone();
        src2.tables[2].uniques.push((
            "orders_id_key".into(),
            vec!["id".into(), "customer_id".into()],
        ));
        line.foreign_keys.push(fk(
            "line_order_fkey",
            &["order_id", "customer_id"],
            "orders",
            &["id", "customer_id"],
        ));
        src2.tables.push(line);
        let plan = translate(&src2, &settings()).unwrap();
        assert_eq!(placement(&plan, "line"), &Placement::On("line_id".into()));
        assert_eq!(placement(&plan, "orders"), &Placement::Replicated);
        assert_eq!(placement(&plan, "customer"), &Placement::Replicated);
        let why = &plan.tables.iter().find(|t| t.name == "orders").unwrap().why;
        assert!(why.contains("line") && why.contains("line_id"), "{why}");
    }

    /// Types, defaults, sequences, enums, domains, generated columns,
    /// cascades, self references, and what cannot come: each in the plan
    /// or the report, and the plan runs on Ohm.
    #[test]
    fn types_and_leftovers_are_translated_or_reported() {
        let mut mood = col("mood", "mood", false);
        mood.ty.kind = 'e';
        mood.ty.declared = Some("mood".into());
        mood.ty.enum_labels = Some(vec!["sad".into(), "it's ok".into()]);
        let mut score = col("score", "integer", false);
        score.ty.declared = Some("positive".into());
        score.ty.domain_checks = vec!["CHECK ((VALUE > 0))".into()];
        let mut id = col("id", "integer", true);
        id.default = Some("nextval('people_id_seq'::regclass)".into());
        let mut boss = col("boss", "integer", false);
        boss.default = Some("some_function()".into());
        let mut total = col("total", "numeric(40,2)", false);
        total.generated = Some("1 + 1".into());
        let mut people = table(
            "people",
            2,
            vec![
                id,
                col("name", "character varying(20)", true),
                mood,
                score,
                boss,
                col("tags", "text[]", false),
                col("doc", "jsonb", false),
                col("at", "timestamp(3) with time zone", false),
                col("born", "date", false),
                col("money", "money", false),
                col("ratio", "real", false),
                col("span", "interval", false),
                col("addr", "inet", false),
                total,
            ],
            &["id"],
        );
        people.checks.push((
            "people_name_check".into(),
            "CHECK ((length((name)::text) > 0))".into(),
        ));
        people
            .foreign_keys
            .push(fk("people_boss_fkey", &["boss"], "people", &["id"]));
        let mut cascade = fk("pets_owner_fkey", &["owner"], "people", &["id"]);
        cascade.on_delete = 'c';
        let mut pets = table(
            "pets",
            3,
            vec![
                col("pet_id", "bigint", true),
                col("owner", "integer", false),
            ],
            &["pet_id"],
        );
        pets.foreign_keys.push(cascade);
        pets.indexes.push(Index {
            name: "pets_lower_idx".into(),
            unique: false,
            method: "btree".into(),
            columns: Vec::new(),
            has_expressions: true,
            partial: false,
            has_include: false,
            definition: "CREATE INDEX pets_lower_idx ON public.pets USING btree (lower(owner))"
                .into(),
        });
        let src = Source {
            schema: "public".into(),
            tables: vec![people, pets],
            sequences: vec![Sequence {
                name: "people_id_seq".into(),
                data_type: "integer".into(),
                start: 1,
                min: 1,
                max: 2147483647,
                increment: 1,
                cycle: false,
                last_value: Some(2),
                owned_by: Some(("people".into(), "id".into())),
                identity: false,
            }],
            views: vec![
                (
                    "adults".into(),
                    " SELECT people.name\n   FROM people\n  WHERE people.score > 17;".into(),
                ),
                ("odd".into(), " SELECT generate_series(1, 3) AS g;".into()),
            ],
            others: vec![
                ("function".into(), "f(integer)".into()),
                ("trigger".into(), "t ON people".into()),
            ],
            ..Source::default()
        };
        let plan = translate(&src, &settings()).unwrap();
        let text = plan.render("postgres://x/db");
        let people = &plan.tables[0];
        assert_eq!(people.name, "people");
        let ty = |n: &str| {
            people
                .columns
                .iter()
                .find(|c| c.name == n)
                .unwrap()
                .ty
                .clone()
        };
        assert_eq!(ty("name"), "VARCHAR(20)");
        assert_eq!(ty("tags"), "TEXT");
        assert_eq!(ty("at"), "TIMESTAMPTZ");
        assert_eq!(ty("money"), "DECIMAL(28,2)");
        assert_eq!(ty("total"), "DECIMAL(28,2)");
        assert!(
            people
                .create
                .contains("DEFAULT nextval('people_id_seq'::regclass)"),
            "{}",
            people.create
        );
        assert!(
            people
                .create
                .contains("CHECK (mood IN ('sad', 'it''s ok'))"),
            "{}",
            people.create
        );
        assert!(
            people.create.contains("CHECK ((score > 0))"),
            "{}",
            people.create
        );
        assert!(
            people.create.contains("people_name_check"),
            "{}",
            people.create
        );
        // The self reference comes after the data; the table is replicated.
        assert!(!people.create.contains("people_boss_fkey"));
        assert_eq!(people.deferred.len(), 1);
        assert!(people.deferred[0].contains("people_boss_fkey"));
        assert_eq!(
            plan.owned,
            vec!["ALTER SEQUENCE people_id_seq OWNED BY people.id".to_string()]
        );
        assert_eq!(
            plan.setvals,
            vec![("people_id_seq".to_string(), "people_id_seq".to_string())]
        );
        assert_eq!(plan.views.len(), 1, "{text}");
        for want in [
            "NOT CARRIED column people.boss: DEFAULT some_function()",
            "NOT CARRIED function f(integer)",
            "NOT CARRIED trigger t ON people",
            "NOT CARRIED index pets_lower_idx",
            "NOT CARRIED view odd",
            "changed     foreign key pets.pets_owner_fkey: ON DELETE CASCADE",
            "changed     column people.tags: text[] becomes TEXT",
            "changed     column people.doc: jsonb becomes TEXT",
            "changed     column people.total: generated column",
            "changed     column people.addr: inet becomes TEXT",
            "changed     column people.mood: enum mood",
            "changed     column people.total: numeric(40,2)",
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
        // What --apply runs, run whole on Ohm's engine.
        let mut e = Engine::new();
        for sql in plan.schema_script() {
            e.execute(&sql).unwrap_or_else(|err| panic!("{sql}: {err}"));
        }
        e.execute("INSERT INTO people (name, mood) VALUES ('a', 'sad')")
            .unwrap();
        assert!(e
            .execute("INSERT INTO people (name, mood) VALUES ('b', 'glad')")
            .is_err());
    }

    /// Two large tables referencing each other: the key that closes the
    /// cycle waits for the data, on a replicated table, and so its parent
    /// is replicated too (a replicated table's parents must be on every
    /// partition); the plan runs on Ohm.
    #[test]
    fn a_cycle_of_large_tables_is_replicated_where_it_must_be() {
        let mut a = table(
            "a",
            5000,
            vec![col("id", "integer", true), col("b_id", "integer", false)],
            &["id"],
        );
        a.foreign_keys.push(fk("a_b_fkey", &["b_id"], "b", &["id"]));
        let mut b = table(
            "b",
            90_000,
            vec![col("id", "integer", true), col("a_id", "integer", false)],
            &["id"],
        );
        b.foreign_keys.push(fk("b_a_fkey", &["a_id"], "a", &["id"]));
        let c = table("c", 90_000, vec![col("id", "integer", true)], &["id"]);
        let src = Source {
            schema: "public".into(),
            tables: vec![a, b, c],
            ..Source::default()
        };
        let plan = translate(&src, &settings()).unwrap();
        assert_eq!(placement(&plan, "a"), &Placement::Replicated);
        assert_eq!(placement(&plan, "b"), &Placement::Replicated);
        assert_eq!(placement(&plan, "c"), &Placement::On("id".into()));
        let deferred: Vec<&String> = plan.tables.iter().flat_map(|t| &t.deferred).collect();
        assert_eq!(deferred.len(), 1, "{deferred:?}");
        // Told to partition a table that must be replicated: an error
        // naming why, not a silent override.
        let mut told = settings();
        told.partition.insert("b".into(), "id".into());
        let e = translate(&src, &told).unwrap_err().to_string();
        assert!(
            e.contains("--partition b=id") && e.contains("replicated"),
            "{e}"
        );
        told.partition.clear();
        told.replicate.insert("nope".into());
        let e = translate(&src, &told).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn names_are_quoted_only_when_they_must_be() {
        assert_eq!(ident("album_id"), "album_id");
        assert_eq!(ident("Album"), "\"Album\"");
        assert_eq!(ident("select"), "\"select\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            domain_check("CHECK ((VALUE ~ 'VALUE'))", "code"),
            "CHECK ((code ~ 'VALUE'))"
        );
        let types = BTreeMap::from([("mood".to_string(), "text".to_string())]);
        assert_eq!(
            retype("feeling = 'ok'::mood OR x::moods OR y::public.mood", &types),
            "feeling = 'ok'::text OR x::moods OR y::text"
        );
    }
}
