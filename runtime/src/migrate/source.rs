//! Reading a PostgreSQL schema: tables, columns (with enums and domains
//! resolved to their base type), keys, foreign keys, checks, indexes,
//! sequences, and the objects Ohm will not carry over (views are tried;
//! functions, triggers, rules, policies, extensions, other schemas are
//! listed). One read, from the catalog tables; what to make of it is
//! `translate`'s business.
//!
//! Owns: the catalog queries. Must not: change the source (every query is
//! a read, in one REPEATABLE READ READ ONLY transaction).

use anyhow::Context;
use std::collections::BTreeMap;
use tokio_postgres::Client as PgClient;

/// Tables whose `reltuples` estimate is at least this are not counted
/// exactly (a `count(*)` of a big table takes a while): the plan says
/// "about".
const COUNT_EXACT_BELOW: f64 = 1_000_000.0;

/// A column's type as read: the base type's name as `format_type` writes
/// it (`character varying(160)`, `numeric(10,2)`, `integer[]`), and what
/// stood between the column and it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceType {
    /// `format_type` of the base type (after domains).
    pub base: String,
    /// The column's declared type, when it is a domain or an enum.
    pub declared: Option<String>,
    /// An enum's labels, in order.
    pub enum_labels: Option<Vec<String>>,
    /// A domain's CHECK constraints (`CHECK ((VALUE > 0))`).
    pub domain_checks: Vec<String>,
    /// `pg_type.typtype` of the base: b(ase), e(num), c(omposite),
    /// r(ange), m(ultirange), p(seudo).
    pub kind: char,
    /// `pg_type.typcategory` of the base (A for arrays).
    pub category: char,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceColumn {
    pub name: String,
    pub ty: SourceType,
    pub not_null: bool,
    /// `pg_get_expr` of the default.
    pub default: Option<String>,
    /// `a` (ALWAYS) or `d` (BY DEFAULT) for an identity column.
    pub identity: Option<char>,
    /// A stored generated column's expression.
    pub generated: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub parent: String,
    /// The parent's schema (another schema than the one migrated cannot be
    /// carried).
    pub parent_schema: String,
    pub parent_columns: Vec<String>,
    /// `confupdtype`/`confdeltype`: a (no action), r (restrict), c
    /// (cascade), n (set null), d (set default).
    pub on_update: char,
    pub on_delete: char,
    /// `confmatchtype`: s (simple), f (full), p (partial).
    pub match_type: char,
    pub deferrable: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    /// `btree`, `hash`, `gin`, ...
    pub method: String,
    /// Key columns by name; empty when any key is an expression.
    pub columns: Vec<String>,
    pub has_expressions: bool,
    pub partial: bool,
    pub has_include: bool,
    /// `pg_get_indexdef`, for the report.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceTable {
    pub name: String,
    pub columns: Vec<SourceColumn>,
    /// (name, columns)
    pub primary_key: Option<(String, Vec<String>)>,
    pub uniques: Vec<(String, Vec<String>)>,
    pub foreign_keys: Vec<ForeignKey>,
    /// (name, `pg_get_constraintdef`: `CHECK ((x > 0))`)
    pub checks: Vec<(String, String)>,
    /// Constraints that cannot be carried at all (exclusion), for the
    /// report: (name, definition).
    pub other_constraints: Vec<(String, String)>,
    /// Indexes that do not back a constraint.
    pub indexes: Vec<Index>,
    pub rows: u64,
    /// `rows` is the planner's estimate, not a count.
    pub rows_estimated: bool,
    /// A declaratively partitioned table (`PARTITION BY`).
    pub partitioned_in_source: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub name: String,
    pub data_type: String,
    pub start: i64,
    pub min: i64,
    pub max: i64,
    pub increment: i64,
    pub cycle: bool,
    /// The last value given (None: never read from).
    pub last_value: Option<i64>,
    /// The column that owns it: (table, column); `identity` when it is an
    /// identity column's own.
    pub owned_by: Option<(String, String)>,
    pub identity: bool,
}

/// Everything read from the source schema.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Source {
    pub schema: String,
    pub server_version: String,
    pub tables: Vec<SourceTable>,
    pub sequences: Vec<Sequence>,
    /// (name, definition)
    pub views: Vec<(String, String)>,
    /// Objects that are not carried over: (kind, name).
    pub others: Vec<(String, String)>,
}

/// `format_type` names of the types a column may hold, resolved: what the
/// columns query needs to know about one type.
struct TypeInfo {
    base: String,
    kind: char,
    category: char,
    is_domain: bool,
    is_enum: bool,
    declared: String,
    base_oid: u32,
}

fn ch(s: &str) -> char {
    s.chars().next().unwrap_or(' ')
}

/// Reads the schema `schema` of the database `pg` is connected to, in one
/// read-only snapshot.
pub async fn read(pg: &mut PgClient, schema: &str) -> anyhow::Result<Source> {
    let tx = pg
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .context("starting a read-only transaction on the source")?;
    let server_version: String = tx
        .query_one("SHOW server_version", &[])
        .await
        .context("reading the source's version")?
        .get(0);
    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .context("looking up the schema")?;
    if exists.is_none() {
        anyhow::bail!("the source database has no schema named {schema:?}");
    }
    let mut tables = read_tables(&tx, schema).await?;
    read_columns(&tx, schema, &mut tables).await?;
    read_constraints(&tx, schema, &mut tables).await?;
    read_indexes(&tx, schema, &mut tables).await?;
    for t in tables.values_mut() {
        count_rows(&tx, schema, t).await?;
    }
    let sequences = read_sequences(&tx, schema).await?;
    let views = tx
        .query(
            "SELECT viewname::text, definition FROM pg_views WHERE schemaname = $1 \
             ORDER BY viewname",
            &[&schema],
        )
        .await
        .context("reading views")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let others = read_others(&tx, schema).await?;
    tx.commit().await.context("ending the read")?;
    Ok(Source {
        schema: schema.to_string(),
        server_version,
        tables: tables.into_values().collect(),
        sequences,
        views,
        others,
    })
}

async fn read_tables(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
) -> anyhow::Result<BTreeMap<String, SourceTable>> {
    let rows = tx
        .query(
            "SELECT c.relname::text, c.relkind::text, c.reltuples::float8 \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
             ORDER BY c.relname",
            &[&schema],
        )
        .await
        .context("reading the tables")?;
    Ok(rows
        .iter()
        .map(|r| {
            let name: String = r.get(0);
            let kind: String = r.get(1);
            let estimate: f64 = r.get(2);
            (
                name.clone(),
                SourceTable {
                    name,
                    columns: Vec::new(),
                    primary_key: None,
                    uniques: Vec::new(),
                    foreign_keys: Vec::new(),
                    checks: Vec::new(),
                    other_constraints: Vec::new(),
                    indexes: Vec::new(),
                    rows: estimate.max(0.0) as u64,
                    rows_estimated: estimate >= COUNT_EXACT_BELOW,
                    partitioned_in_source: kind == "p",
                },
            )
        })
        .collect())
}

async fn type_info(
    tx: &tokio_postgres::Transaction<'_>,
    oid: u32,
    typmod: i32,
) -> anyhow::Result<TypeInfo> {
    let r = tx
        .query_one(
            "SELECT format_type(t.oid, $2), t.typtype::text, t.typcategory::text, \
                    t.typbasetype, format_type(t.typbasetype, t.typtypmod) \
             FROM pg_type t WHERE t.oid = $1",
            &[&oid, &typmod],
        )
        .await
        .context("reading a column's type")?;
    let declared: String = r.get(0);
    let kind = ch(&r.get::<_, String>(1));
    Ok(TypeInfo {
        base: if kind == 'd' {
            r.get(4)
        } else {
            declared.clone()
        },
        kind,
        category: ch(&r.get::<_, String>(2)),
        is_domain: kind == 'd',
        is_enum: kind == 'e',
        declared,
        base_oid: r.get(3),
    })
}

/// A column's type with its domains (nested ones too) and enum resolved.
async fn resolve_type(
    tx: &tokio_postgres::Transaction<'_>,
    oid: u32,
    typmod: i32,
) -> anyhow::Result<SourceType> {
    /// Domains over domains, at most this deep (the catalog allows any
    /// depth; a loop cannot exist, but a bound costs nothing).
    const DOMAIN_DEPTH_MAX: usize = 16;
    let first = type_info(tx, oid, typmod).await?;
    let declared = first.declared.clone();
    let mut domain_checks = Vec::new();
    let mut info = first;
    let mut oid = oid;
    let mut depth = 0;
    while info.is_domain {
        depth += 1;
        if depth > DOMAIN_DEPTH_MAX {
            anyhow::bail!("type {declared}: domains nested more than {DOMAIN_DEPTH_MAX} deep");
        }
        for r in tx
            .query(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE contypid = $1 AND contype = 'c' ORDER BY conname",
                &[&oid],
            )
            .await
            .context("reading a domain's checks")?
        {
            domain_checks.push(r.get(0));
        }
        oid = info.base_oid;
        // The domain's base with the domain's own typmod (a `varchar(10)`
        // domain) is `info.base`; the next level says what kind it is.
        let base_name = info.base.clone();
        info = type_info(tx, oid, -1).await?;
        if !info.is_domain {
            info.base = base_name;
        }
    }
    let enum_labels = if info.is_enum {
        Some(
            tx.query(
                "SELECT enumlabel::text FROM pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder",
                &[&oid],
            )
            .await
            .context("reading an enum's labels")?
            .iter()
            .map(|r| r.get(0))
            .collect(),
        )
    } else {
        None
    };
    let changed = declared != info.base || enum_labels.is_some();
    Ok(SourceType {
        base: info.base,
        declared: changed.then_some(declared),
        enum_labels,
        domain_checks,
        kind: info.kind,
        category: info.category,
    })
}

async fn read_columns(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    tables: &mut BTreeMap<String, SourceTable>,
) -> anyhow::Result<()> {
    let rows = tx
        .query(
            "SELECT c.relname::text, a.attname::text, a.atttypid, a.atttypmod, a.attnotnull, \
                    pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text \
             FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY c.relname, a.attnum",
            &[&schema],
        )
        .await
        .context("reading the columns")?;
    let mut types: BTreeMap<(u32, i32), SourceType> = BTreeMap::new();
    for r in rows {
        let table: String = r.get(0);
        let oid: u32 = r.get(2);
        let typmod: i32 = r.get(3);
        if let std::collections::btree_map::Entry::Vacant(e) = types.entry((oid, typmod)) {
            e.insert(resolve_type(tx, oid, typmod).await?);
        }
        let identity = ch(&r.get::<_, String>(6));
        let generated = ch(&r.get::<_, String>(7));
        let default: Option<String> = r.get(5);
        let col = SourceColumn {
            name: r.get(1),
            ty: types[&(oid, typmod)].clone(),
            not_null: r.get(4),
            default: if generated == 's' {
                None
            } else {
                default.clone()
            },
            identity: matches!(identity, 'a' | 'd').then_some(identity),
            generated: if generated == 's' { default } else { None },
        };
        if let Some(t) = tables.get_mut(&table) {
            t.columns.push(col);
        }
    }
    Ok(())
}

/// Column names by attribute number.
fn names(nums: &[i16], attnames: &BTreeMap<i16, String>) -> Vec<String> {
    nums.iter()
        .map(|n| attnames.get(n).cloned().unwrap_or_else(|| format!("#{n}")))
        .collect()
}

async fn attnames(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    table: &str,
) -> anyhow::Result<BTreeMap<i16, String>> {
    Ok(tx
        .query(
            "SELECT a.attnum, a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0",
            &[&schema, &table],
        )
        .await
        .context("reading column numbers")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

async fn read_constraints(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    tables: &mut BTreeMap<String, SourceTable>,
) -> anyhow::Result<()> {
    let rows = tx
        .query(
            "SELECT c.relname::text, con.conname::text, con.contype::text, con.conkey, \
                    pc.relname::text, pn.nspname::text, con.confkey, \
                    pg_get_constraintdef(con.oid), con.confupdtype::text, \
                    con.confdeltype::text, con.confmatchtype::text, con.condeferrable \
             FROM pg_constraint con \
             JOIN pg_class c ON c.oid = con.conrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_class pc ON pc.oid = con.confrelid \
             LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND con.contype IN ('p', 'u', 'f', 'c', 'x') \
             ORDER BY c.relname, con.conname",
            &[&schema],
        )
        .await
        .context("reading the constraints")?;
    let mut parent_names: BTreeMap<(String, String), BTreeMap<i16, String>> = BTreeMap::new();
    for r in rows {
        let table: String = r.get(0);
        let name: String = r.get(1);
        let kind = ch(&r.get::<_, String>(2));
        let key: Vec<i16> = r.get::<_, Option<Vec<i16>>>(3).unwrap_or_default();
        let definition: String = r.get(7);
        let own = attnames(tx, schema, &table).await?;
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        let cols = names(&key, &own);
        match kind {
            'p' => t.primary_key = Some((name, cols)),
            'u' => t.uniques.push((name, cols)),
            'c' => t.checks.push((name, definition)),
            'f' => {
                let parent: String = r.get(4);
                let parent_schema: String = r.get(5);
                let pkey: Vec<i16> = r.get::<_, Option<Vec<i16>>>(6).unwrap_or_default();
                let key = (parent_schema.clone(), parent.clone());
                if !parent_names.contains_key(&key) {
                    let m = attnames(tx, &parent_schema, &parent).await?;
                    parent_names.insert(key.clone(), m);
                }
                let parent_columns = names(&pkey, &parent_names[&key]);
                t.foreign_keys.push(ForeignKey {
                    name,
                    columns: cols,
                    parent,
                    parent_schema,
                    parent_columns,
                    on_update: ch(&r.get::<_, String>(8)),
                    on_delete: ch(&r.get::<_, String>(9)),
                    match_type: ch(&r.get::<_, String>(10)),
                    deferrable: r.get(11),
                });
            }
            _ => t.other_constraints.push((name, definition)),
        }
    }
    Ok(())
}

async fn read_indexes(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    tables: &mut BTreeMap<String, SourceTable>,
) -> anyhow::Result<()> {
    let rows = tx
        .query(
            "SELECT c.relname::text, ic.relname::text, i.indisunique, am.amname::text, \
                    i.indkey::int2[], i.indexprs IS NOT NULL, i.indpred IS NOT NULL, \
                    i.indnkeyatts < i.indnatts, pg_get_indexdef(i.indexrelid), i.indnkeyatts \
             FROM pg_index i \
             JOIN pg_class ic ON ic.oid = i.indexrelid \
             JOIN pg_am am ON am.oid = ic.relam \
             JOIN pg_class c ON c.oid = i.indrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid \
                               AND con.conrelid = i.indrelid) \
             ORDER BY c.relname, ic.relname",
            &[&schema],
        )
        .await
        .context("reading the indexes")?;
    for r in rows {
        let table: String = r.get(0);
        let own = attnames(tx, schema, &table).await?;
        let Some(t) = tables.get_mut(&table) else {
            continue;
        };
        let key: Vec<i16> = r.get(4);
        let nkey = r.get::<_, i16>(9).max(0) as usize;
        let has_expressions: bool = r.get(5);
        let key: Vec<i16> = key.into_iter().take(nkey).collect();
        let columns = if key.contains(&0) {
            Vec::new()
        } else {
            names(&key, &own)
        };
        t.indexes.push(Index {
            name: r.get(1),
            unique: r.get(2),
            method: r.get(3),
            columns,
            has_expressions: has_expressions || key.contains(&0),
            partial: r.get(6),
            has_include: r.get(7),
            definition: r.get(8),
        });
    }
    Ok(())
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

async fn count_rows(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    t: &mut SourceTable,
) -> anyhow::Result<()> {
    if t.rows_estimated {
        return Ok(());
    }
    let sql = format!(
        "SELECT count(*) FROM {}.{}",
        quote_ident(schema),
        quote_ident(&t.name)
    );
    let n: i64 = tx
        .query_one(&sql, &[])
        .await
        .with_context(|| format!("counting the rows of {}", t.name))?
        .get(0);
    t.rows = n.max(0) as u64;
    Ok(())
}

async fn read_sequences(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
) -> anyhow::Result<Vec<Sequence>> {
    let rows = tx
        .query(
            "SELECT s.sequencename::text, s.data_type::text, s.start_value, s.min_value, \
                    s.max_value, s.increment_by, s.cycle, s.last_value, \
                    t.relname::text, a.attname::text, d.deptype::text \
             FROM pg_sequences s \
             JOIN pg_namespace n ON n.nspname = s.schemaname \
             JOIN pg_class c ON c.relname = s.sequencename AND c.relnamespace = n.oid \
             LEFT JOIN pg_depend d ON d.objid = c.oid \
                  AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
                  AND d.deptype IN ('a', 'i') \
             LEFT JOIN pg_class t ON t.oid = d.refobjid \
             LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE s.schemaname = $1 ORDER BY s.sequencename",
            &[&schema],
        )
        .await
        .context("reading the sequences")?;
    Ok(rows
        .iter()
        .map(|r| {
            let table: Option<String> = r.get(8);
            let column: Option<String> = r.get(9);
            let dep: Option<String> = r.get(10);
            Sequence {
                name: r.get(0),
                data_type: r.get(1),
                start: r.get(2),
                min: r.get(3),
                max: r.get(4),
                increment: r.get(5),
                cycle: r.get(6),
                last_value: r.get(7),
                owned_by: table.zip(column),
                identity: dep.as_deref() == Some("i"),
            }
        })
        .collect())
}

/// The last value of each sequence now (`pg_sequences.last_value`), for
/// setting Ohm's after the data is in.
pub async fn sequence_values(
    pg: &PgClient,
    schema: &str,
) -> anyhow::Result<BTreeMap<String, Option<i64>>> {
    Ok(pg
        .query(
            "SELECT sequencename::text, last_value FROM pg_sequences WHERE schemaname = $1",
            &[&schema],
        )
        .await
        .context("reading the sequences' values")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Objects Ohm does not carry over, by kind.
async fn read_others(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let queries: [(&str, &str); 7] = [
        (
            "materialized view",
            "SELECT matviewname::text FROM pg_matviews WHERE schemaname = $1",
        ),
        (
            "function",
            "SELECT p.proname::text || '(' || pg_get_function_identity_arguments(p.oid) || ')' \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = $1 AND NOT EXISTS (SELECT 1 FROM pg_depend d \
                 WHERE d.objid = p.oid AND d.deptype = 'e')",
        ),
        (
            "trigger",
            "SELECT t.tgname::text || ' ON ' || c.relname::text FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND NOT t.tgisinternal",
        ),
        (
            "rule",
            "SELECT rulename::text || ' ON ' || tablename::text FROM pg_rules \
             WHERE schemaname = $1",
        ),
        (
            "policy",
            "SELECT policyname::text || ' ON ' || tablename::text FROM pg_policies \
             WHERE schemaname = $1",
        ),
        (
            "extension",
            "SELECT e.extname::text FROM pg_extension e JOIN pg_namespace n \
             ON n.oid = e.extnamespace WHERE n.nspname = $1",
        ),
        (
            "other schema's tables",
            "SELECT n.nspname::text || ' (' || count(*) || ' tables)' FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname <> $1 \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_%' GROUP BY n.nspname",
        ),
    ];
    let mut out = Vec::new();
    for (kind, sql) in queries {
        for r in tx
            .query(sql, &[&schema])
            .await
            .with_context(|| format!("listing each {kind}"))?
        {
            out.push((kind.to_string(), r.get(0)));
        }
    }
    out.sort();
    Ok(out)
}
