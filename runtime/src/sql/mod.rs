//! SQL: sqlparser AST -> checked plan -> execution over `storage`.
//!
//! Owns: the `Engine` (a `storage::Database` plus prepared-statement
//! bookkeeping), planning, and execution. Must not: do I/O, spawn, or use
//! async; it runs inside a partition executor thread.
//!
//! ```text
//!   text --sqlparser--> AST --plan--> Plan --execute(params)--> QueryResult
//!                                      ^ cached in `Prepared`; no parsing on
//!                                        the execute path
//! ```

mod access;
mod bind;
mod constraint;
mod ddl;
mod dml;
pub mod error;
mod exec;
pub mod expr;
mod fk;
pub mod interrupt;
pub mod load;
pub mod ops;
pub mod plan;
mod select;
mod sequence;
mod unsupported;

pub use ddl::TABLE_COLUMNS_MAX;
pub use error::SqlError;
pub use sequence::is_internal as is_sequence_table;

use crate::storage::{Database, Savepoint, WriteSet};
use crate::types::{DataType, Value};
use bind::Binder;
use expr::{Ctx, SubqueryCache};
use plan::{DmlPlan, QueryPlan};
use sqlparser::ast;
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Statements one `execute` call may carry.
pub const STATEMENTS_PER_CALL_MAX: usize = 10_000;
/// Longest SQL text accepted.
pub const SQL_BYTES_MAX: usize = 16 << 20;
/// How deep the parser may recurse (hostile nesting is an error, not a crash).
const PARSER_RECURSION_MAX: usize = 200;

/// A result column: its name as the client sees it and its type (None when
/// the type is unknown, e.g. a bare NULL).
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    pub ty: Option<DataType>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowSet {
    /// Shared with the plan, so returning a result does not copy names.
    pub columns: Arc<[ColumnInfo]>,
    pub rows: Vec<Vec<Value>>,
}

/// What one statement produced.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    Rows(RowSet),
    /// INSERT / UPDATE / DELETE: rows affected.
    Affected(u64),
    /// DDL and transaction control; the tag names what was done ("CREATE TABLE").
    Done(&'static str),
}

/// A view: its defining query, planned afresh wherever it is used.
#[derive(Debug, Clone)]
pub struct View {
    pub name: String,
    pub query: ast::Query,
    pub columns: Vec<String>,
}

/// What the planner may look names up in.
pub struct Catalog<'a> {
    pub db: &'a Database,
    pub views: &'a BTreeMap<String, View>,
}

/// A planned statement.
#[derive(Debug)]
enum StmtPlan {
    Query(QueryPlan, Arc<[ColumnInfo]>),
    Dml(DmlPlan),
    /// DDL, transaction control, EXPLAIN: run from the AST each time.
    Other(ast::Statement),
}

/// A statement parsed and planned once, executed many times.
pub struct Prepared {
    stmt: ast::Statement,
    plan: RefCell<PlanCache>,
    params: usize,
}

/// A prepared statement's current plan and what it was planned against.
struct PlanCache {
    schema_version: u64,
    /// Total rows in all tables when planned: join order and access paths
    /// depend on table sizes, so a plan made on empty tables is redone once
    /// the data has grown (or shrunk) a lot.
    rows_planned: usize,
    /// Executions since the sizes were last compared.
    since_size_check: u32,
    plan: Arc<StmtPlan>,
}

/// How often (in executions) a prepared statement compares table sizes with
/// those it was planned for: counting rows visits every table, too much to
/// do on every call of a point query.
const SIZE_CHECK_EVERY: u32 = 64;

impl PlanCache {
    fn new(schema_version: u64, rows_planned: usize, plan: StmtPlan) -> PlanCache {
        PlanCache {
            schema_version,
            rows_planned,
            // The first execution compares: statements are often prepared
            // before the data is loaded.
            since_size_check: SIZE_CHECK_EVERY - 1,
            plan: Arc::new(plan),
        }
    }

    /// Whether to re-plan; `rows_now` is asked for only now and then.
    fn stale(&mut self, schema_version: u64, rows_now: impl FnOnce() -> usize) -> Option<usize> {
        if self.schema_version != schema_version {
            return Some(rows_now());
        }
        self.since_size_check += 1;
        if self.since_size_check < SIZE_CHECK_EVERY {
            return None;
        }
        self.since_size_check = 0;
        let (then, now) = (self.rows_planned, rows_now());
        (now > then.saturating_mul(4) + 64 || then > now.saturating_mul(4) + 64).then_some(now)
    }
}

/// What a prepared statement does, as far as its caller must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// SELECT (or VALUES): returns rows, changes nothing.
    Query,
    /// INSERT, UPDATE, DELETE: returns a count of rows affected.
    Dml,
    /// DDL, transaction control, EXPLAIN.
    Other,
}

impl Prepared {
    /// How many parameters (`?` or `$n`) the statement takes.
    pub fn param_count(&self) -> usize {
        self.params
    }

    /// For INSERT, UPDATE and DELETE: the table written, and the columns
    /// set in rows already there (UPDATE's, and those of INSERT's `ON
    /// CONFLICT DO UPDATE`).
    pub fn written(&self) -> Option<(crate::storage::TableId, Vec<usize>)> {
        let sets = |a: &[(usize, expr::Expr)]| a.iter().map(|(c, _)| *c).collect();
        match &*self.plan.borrow().plan {
            StmtPlan::Dml(plan::DmlPlan::Insert(i)) => {
                let set = i
                    .do_update
                    .as_ref()
                    .map_or(Vec::new(), |d| sets(&d.assignments));
                Some((i.table, set))
            }
            StmtPlan::Dml(plan::DmlPlan::Update(u)) => Some((u.table, sets(&u.assignments))),
            StmtPlan::Dml(plan::DmlPlan::Delete(d)) => Some((d.table, Vec::new())),
            StmtPlan::Query(..) | StmtPlan::Other(_) => None,
        }
    }

    /// Whether the statement reads, writes, or does something else.
    pub fn kind(&self) -> StatementKind {
        match &*self.plan.borrow().plan {
            StmtPlan::Query(..) => StatementKind::Query,
            StmtPlan::Dml(_) => StatementKind::Dml,
            StmtPlan::Other(_) => StatementKind::Other,
        }
    }
}

/// One partition's SQL engine.
pub struct Engine {
    db: Database,
    views: BTreeMap<String, View>,
    /// Bumped by every DDL statement; prepared plans of an older version re-plan.
    schema_version: u64,
    /// An explicit BEGIN is open.
    explicit_txn: bool,
    /// The running transaction's timestamp, µs since the epoch (UTC):
    /// `now()` and `current_date` read it. Set by the caller (`set_now`).
    now_us: i64,
}

impl Default for Engine {
    fn default() -> Self {
        Self::new()
    }
}

fn parse(sql: &str) -> Result<Vec<ast::Statement>, SqlError> {
    if sql.len() > SQL_BYTES_MAX {
        return Err(SqlError::Parse(format!(
            "statement text is {} bytes, over the {SQL_BYTES_MAX} limit",
            sql.len()
        )));
    }
    let dialect = SQLiteDialect {};
    let strip = |e: String| SqlError::Parse(e.trim_start_matches("sql parser error: ").to_string());
    let mut tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| strip(e.to_string()))?;
    number_placeholders(&mut tokens);
    let stmts = Parser::new(&dialect)
        .with_recursion_limit(PARSER_RECURSION_MAX)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| strip(e.to_string()))?;
    if stmts.len() > STATEMENTS_PER_CALL_MAX {
        return Err(SqlError::Parse(format!(
            "more than {STATEMENTS_PER_CALL_MAX} statements in one call"
        )));
    }
    Ok(stmts)
}

/// Gives each bare `?` its position in the statement's text (`$1`, `$2`, ...):
/// the binder meets expressions in its own order (an UPDATE's WHERE before
/// its SET), but parameters are numbered as written. Numbering restarts
/// after each `;`, as each statement is bound on its own.
fn number_placeholders(tokens: &mut [TokenWithSpan]) {
    let mut next = 0usize;
    for t in tokens {
        match &mut t.token {
            Token::Placeholder(p) if p == "?" => {
                next += 1;
                *p = format!("${next}");
            }
            Token::SemiColon => next = 0,
            _ => {}
        }
    }
}

/// `UPSERT INTO` (VoltDB) is `INSERT OR REPLACE INTO`.
fn rewrite_upsert(sql: &str) -> Option<String> {
    let t = sql.trim_start();
    // `get` rather than slicing: byte 6 may fall inside a multi-byte character.
    let (head, rest) = (t.get(..6)?, t.get(6..)?);
    if head.eq_ignore_ascii_case("upsert") && rest.starts_with(char::is_whitespace) {
        Some(format!("INSERT OR REPLACE{rest}"))
    } else {
        None
    }
}

impl Engine {
    pub fn new() -> Engine {
        Engine {
            db: Database::new(),
            views: BTreeMap::new(),
            schema_version: 0,
            explicit_txn: false,
            now_us: 0,
        }
    }

    /// Sets the timestamp `now()`, `current_timestamp` and `current_date`
    /// give until it is set again: the transaction's, so that a procedure's
    /// statements see the value its `ctx.now()` does, and a replica the
    /// same as the leader. The engine never reads a clock itself.
    pub fn set_now(&mut self, now_us: i64) {
        self.now_us = now_us;
    }

    /// Which partition this engine's database is (see `Placement`):
    /// where `nextval()` takes its values from.
    pub fn set_placement(&mut self, placement: crate::storage::Placement) {
        self.db.set_placement(placement);
    }

    /// The timestamp `now()` gives (see `set_now`).
    pub fn now(&self) -> i64 {
        self.now_us
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The storage under this engine, for replaying logged writes and
    /// rebuilding tables from a snapshot. DDL made through it is not seen by
    /// prepared plans (they track the engine's own schema version), so use it
    /// for DDL only on an engine that has none yet.
    pub fn database_mut(&mut self) -> &mut Database {
        &mut self.db
    }

    /// The views, by (lower-cased unless quoted) name.
    pub fn views(&self) -> &BTreeMap<String, View> {
        &self.views
    }

    fn total_rows(&self) -> usize {
        self.db.tables().map(|t| t.len()).sum()
    }

    fn catalog(&self) -> Catalog<'_> {
        Catalog {
            db: &self.db,
            views: &self.views,
        }
    }

    /// Runs every statement in `sql` (separated by `;`) in order, each in its
    /// own transaction unless one is open; returns the last one's result.
    pub fn execute(&mut self, sql: &str) -> Result<QueryResult, SqlError> {
        self.execute_with(sql, &[])
    }

    /// Runs the statements in `sql` with parameter values.
    pub fn execute_with(&mut self, sql: &str, params: &[Value]) -> Result<QueryResult, SqlError> {
        if let Some(p) = ddl::parse_partition(sql) {
            let (t, c) = p?;
            self.ddl_guard("PARTITION TABLE")?;
            ddl::partition(self, &t, &c)?;
            self.schema_version += 1;
            return Ok(QueryResult::Done("PARTITION TABLE"));
        }
        if let Some(o) = sequence::parse_owned_by(sql) {
            let (name, owner) = o?;
            self.ddl_guard("ALTER SEQUENCE")?;
            ddl::sequence_owned_by(self, &name, owner)?;
            self.schema_version += 1;
            return Ok(QueryResult::Done("ALTER SEQUENCE"));
        }
        let parsed = match rewrite_upsert(sql) {
            Some(s) => parse(&s),
            None => parse(sql),
        };
        // A PostgreSQL statement Ohm does not have: say what to do, not
        // where the parser stopped.
        let stmts = parsed.map_err(|e| unsupported::statement(sql).unwrap_or(e))?;
        let mut last = QueryResult::Done("EMPTY");
        for st in &stmts {
            interrupt::check()?;
            let plan = self.plan(st)?;
            last = self.run(&plan, params)?;
        }
        Ok(last)
    }

    /// Parses and plans one statement.
    pub fn prepare(&mut self, sql: &str) -> Result<Prepared, SqlError> {
        let sql = rewrite_upsert(sql).unwrap_or_else(|| sql.to_string());
        let mut stmts = parse(&sql)?;
        if stmts.len() != 1 {
            return Err(SqlError::Parse(format!(
                "prepare takes exactly one statement, got {}",
                stmts.len()
            )));
        }
        let stmt = stmts.remove(0);
        let (plan, params) = self.plan_counted(&stmt)?;
        let cache = PlanCache::new(self.schema_version, self.total_rows(), plan);
        Ok(Prepared {
            stmt,
            plan: RefCell::new(cache),
            params,
        })
    }

    /// Executes a prepared statement; re-plans transparently if the schema
    /// changed since it was prepared.
    pub fn execute_prepared(
        &mut self,
        stmt: &Prepared,
        params: &[Value],
    ) -> Result<QueryResult, SqlError> {
        interrupt::check()?;
        if params.len() != stmt.params {
            return Err(SqlError::exec(format!(
                "statement takes {} parameters but {} were given",
                stmt.params,
                params.len()
            )));
        }
        let stale = stmt
            .plan
            .borrow_mut()
            .stale(self.schema_version, || self.total_rows());
        if let Some(rows_now) = stale {
            let (plan, _) = self.plan_counted(&stmt.stmt)?;
            *stmt.plan.borrow_mut() = PlanCache::new(self.schema_version, rows_now, plan);
        }
        let plan = stmt.plan.borrow().plan.clone();
        self.run(&plan, params)
    }

    /// Opens a transaction: statements until `commit` or `rollback` form one unit.
    pub fn begin(&mut self) -> Result<(), SqlError> {
        if self.explicit_txn || self.db.in_txn() {
            return Err(SqlError::exec("a transaction is already in progress"));
        }
        self.db.begin()?;
        self.explicit_txn = true;
        Ok(())
    }

    /// Commits the open transaction and returns what it wrote.
    pub fn commit(&mut self) -> Result<WriteSet, SqlError> {
        if !self.explicit_txn {
            return Err(SqlError::exec("there is no transaction in progress"));
        }
        self.explicit_txn = false;
        Ok(self.db.commit()?)
    }

    /// Whether `begin` has opened a transaction that is not yet finished.
    pub fn in_txn(&self) -> bool {
        self.explicit_txn
    }

    /// The current position in the open transaction, for `rollback_to`: a
    /// procedure's statement batch is all-or-nothing inside its transaction.
    pub fn savepoint(&self) -> Savepoint {
        self.db.savepoint()
    }

    /// Undoes everything the open transaction did after `sp`.
    pub fn rollback_to(&mut self, sp: Savepoint) {
        self.db.rollback_to(sp)
    }

    /// Undoes everything since `begin`.
    pub fn rollback(&mut self) -> Result<(), SqlError> {
        if !self.explicit_txn {
            return Err(SqlError::exec("there is no transaction in progress"));
        }
        self.explicit_txn = false;
        Ok(self.db.rollback()?)
    }

    fn plan(&self, st: &ast::Statement) -> Result<StmtPlan, SqlError> {
        Ok(self.plan_counted(st)?.0)
    }

    fn plan_counted(&self, st: &ast::Statement) -> Result<(StmtPlan, usize), SqlError> {
        let catalog = self.catalog();
        let mut b = Binder::new(&catalog);
        let plan = match st {
            ast::Statement::Query(q) => {
                let plan = select::plan_query(&mut b, q)?;
                let columns = plan.columns.clone().into();
                StmtPlan::Query(plan, columns)
            }
            ast::Statement::Insert(i) => StmtPlan::Dml(dml::plan_insert(&mut b, i)?),
            ast::Statement::Update(u) => StmtPlan::Dml(dml::plan_update(&mut b, u)?),
            ast::Statement::Delete(d) => StmtPlan::Dml(dml::plan_delete(&mut b, d)?),
            other => StmtPlan::Other(other.clone()),
        };
        Ok((plan, b.param_count()))
    }

    fn run(&mut self, plan: &StmtPlan, params: &[Value]) -> Result<QueryResult, SqlError> {
        // Sequence values a failed statement took are not kept.
        self.db.sequence_cursor().borrow_mut().last.clear();
        match plan {
            StmtPlan::Query(q, columns) => {
                let rows = {
                    let cache = RefCell::new(SubqueryCache::default());
                    let ctx = Ctx::new(&self.db, params, self.now_us, &cache);
                    exec::run_query(q, &ctx, None)?
                };
                // `SELECT nextval(...)`: the values it took are a write.
                if !self.db.sequence_cursor().borrow().last.is_empty() {
                    self.write(|_| Ok(0))?;
                }
                Ok(QueryResult::Rows(RowSet {
                    columns: columns.clone(),
                    rows,
                }))
            }
            StmtPlan::Dml(d) => Ok(QueryResult::Affected({
                let now_us = self.now_us;
                self.write(|db| dml::apply(db, d, params, now_us))?
            })),
            StmtPlan::Other(st) => self.run_other(st),
        }
    }

    /// Runs `f` as one statement: in its own transaction, or under a
    /// savepoint of the open one, so a failure leaves no trace.
    fn write(
        &mut self,
        f: impl FnOnce(&mut Database) -> Result<u64, SqlError>,
    ) -> Result<u64, SqlError> {
        let auto = !self.db.in_txn();
        if auto {
            self.db.begin()?;
        }
        let sp = self.db.savepoint();
        // Foreign keys are checked once the statement's rows are all
        // written (a row may reference one inserted after it).
        let checked = f(&mut self.db).and_then(|n| {
            sequence::flush(&mut self.db)?;
            if fk::any(&self.db) {
                fk::check(&self.db, sp)?;
            }
            Ok(n)
        });
        match checked {
            Ok(n) => {
                if auto {
                    // Nothing consumes autocommit write-sets yet; the node's log will.
                    self.db.commit()?;
                }
                Ok(n)
            }
            Err(e) => {
                if auto {
                    self.db.rollback()?;
                } else {
                    self.db.rollback_to(sp);
                }
                Err(e)
            }
        }
    }

    fn ddl_guard(&self, what: &str) -> Result<(), SqlError> {
        if self.db.in_txn() {
            return Err(SqlError::exec(format!(
                "{what} cannot run inside a transaction block"
            )));
        }
        Ok(())
    }

    fn run_other(&mut self, st: &ast::Statement) -> Result<QueryResult, SqlError> {
        use ast::Statement as S;
        let tag = match st {
            S::CreateTable(ct) => {
                self.ddl_guard("CREATE TABLE")?;
                ddl::create_table(self, ct)?;
                "CREATE TABLE"
            }
            S::CreateIndex(ci) => {
                self.ddl_guard("CREATE INDEX")?;
                ddl::create_index(self, ci)?;
                "CREATE INDEX"
            }
            S::CreateView(cv) => {
                self.ddl_guard("CREATE VIEW")?;
                ddl::create_view(self, cv)?;
                "CREATE VIEW"
            }
            S::CreateSchema {
                schema_name,
                if_not_exists,
                ..
            } => {
                ddl::create_schema(schema_name, *if_not_exists)?;
                return Ok(QueryResult::Done("CREATE SCHEMA"));
            }
            S::CreateSequence {
                temporary,
                if_not_exists,
                name,
                sequence_options,
            } => {
                self.ddl_guard("CREATE SEQUENCE")?;
                if *temporary {
                    return Err(SqlError::unsupported(
                        "CREATE TEMPORARY SEQUENCE: sequences are shared by every session",
                    ));
                }
                sequence::create_statement(&mut self.db, name, sequence_options, *if_not_exists)?;
                "CREATE SEQUENCE"
            }
            S::AlterTable(at) => {
                self.ddl_guard("ALTER TABLE")?;
                ddl::alter_table(self, at)?;
                "ALTER TABLE"
            }
            S::Drop {
                object_type,
                if_exists,
                names,
                ..
            } => {
                self.ddl_guard("DROP")?;
                ddl::drop(self, object_type, *if_exists, names)?;
                "DROP"
            }
            S::StartTransaction { .. } => {
                self.begin()?;
                "BEGIN"
            }
            S::Commit { .. } => {
                self.commit()?;
                "COMMIT"
            }
            S::Rollback {
                savepoint: None, ..
            } => {
                self.rollback()?;
                "ROLLBACK"
            }
            S::Explain {
                statement,
                analyze: false,
                ..
            } => return self.explain(statement),
            other => {
                let text = other.to_string();
                if let Some(e) = unsupported::statement(&text) {
                    return Err(e);
                }
                let head: String = text
                    .split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ");
                return Err(SqlError::unsupported(format!("statement {head} ...")));
            }
        };
        self.schema_version += 1;
        Ok(QueryResult::Done(tag))
    }

    fn explain(&self, st: &ast::Statement) -> Result<QueryResult, SqlError> {
        let text = match self.plan(st)? {
            StmtPlan::Query(q, _) => q.explain(),
            StmtPlan::Dml(DmlPlan::Insert(i)) => {
                format!("Insert into {}\n{}", i.table_name, i.source.explain())
            }
            StmtPlan::Dml(DmlPlan::Update(u)) => {
                let mut s = "Update\n".to_string();
                u.scan.explain_into(&mut s, 1);
                s
            }
            StmtPlan::Dml(DmlPlan::Delete(d)) => {
                let mut s = "Delete\n".to_string();
                d.scan.explain_into(&mut s, 1);
                s
            }
            StmtPlan::Other(_) => return Err(SqlError::unsupported("EXPLAIN of this statement")),
        };
        let rows = text.lines().map(|l| vec![Value::text(l)]).collect();
        Ok(QueryResult::Rows(RowSet {
            columns: vec![ColumnInfo {
                name: "QUERY PLAN".into(),
                ty: Some(DataType::Varchar(None)),
            }]
            .into(),
            rows,
        }))
    }
}

#[cfg(test)]
mod tests;
