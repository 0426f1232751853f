//! Query execution over an immutable `Database`.
//!
//! Owns: running a `QueryPlan` to a vector of rows — nested-loop levels with
//! index, range and hash access, aggregation, DISTINCT, sorting, LIMIT and
//! set operations — and finding the rows a DML statement targets.
//! Must not: change the database (DML applies its changes in `dml`).

use super::error::SqlError;
use super::expr::{Ctx, Expr};
use super::interrupt;
use super::ops::{self, ArithOp};
use super::plan::*;
use crate::storage::{RowId, Table};
use crate::types::{Value, ValueKind};
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

/// The hash map of a statement's hash-join, GROUP BY and INTERSECT/EXCEPT
/// tables, whose keys are the tenant's data and may come from anyone.
/// foldhash seeds each table differently (from a per-process secret), so a
/// list of keys made to collide in one table does not collide in the next;
/// it is not proof against an attacker who learns the secret, and what
/// bounds a statement's work is its deadline (`interrupt::tick`). Nothing
/// iterates these maps, so no result depends on the seed.
type SeededMap<K, V> = foldhash::HashMap<K, V>;

/// Rows a query may produce before it is stopped: bounds memory on hostile
/// input such as a 64-way cross join.
pub const QUERY_ROWS_MAX: usize = 50_000_000;

/// NULL sorts as the largest value (PostgreSQL): last ascending, first descending.
const NULLS_ARE_LARGEST: bool = true;

/// Runs a query; `limit_hint` lets EXISTS and scalar subqueries stop early.
pub fn run_query(
    plan: &QueryPlan,
    ctx: &Ctx,
    limit_hint: Option<usize>,
) -> Result<Vec<Vec<Value>>, SqlError> {
    let (limit, offset) = limit_offset(plan, ctx)?;
    let early = if plan.order_by.is_empty() {
        match (limit, limit_hint) {
            (Some(l), Some(h)) => Some((l + offset).min(h + offset)),
            (Some(l), None) => Some(l + offset),
            (None, Some(h)) => Some(h + offset),
            (None, None) => None,
        }
    } else {
        None
    };
    let mut rows = match &plan.node {
        QueryNode::Select(s) => run_select(s, ctx, early)?,
        QueryNode::Values(list) => list
            .iter()
            .map(|r| {
                r.iter()
                    .map(|e| e.eval(ctx, &[]))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?,
        QueryNode::SetOp {
            op,
            all,
            left,
            right,
        } => set_op(
            *op,
            *all,
            run_query(left, ctx, None)?,
            run_query(right, ctx, None)?,
        )?,
    };
    if !plan.order_by.is_empty() {
        sort_rows(&mut rows, &plan.order_by);
    }
    let visible = plan.columns.len();
    for r in rows.iter_mut() {
        r.truncate(visible);
    }
    if offset > 0 {
        rows.drain(..offset.min(rows.len()));
    }
    if let Some(l) = limit {
        rows.truncate(l);
    }
    Ok(rows)
}

fn limit_offset(plan: &QueryPlan, ctx: &Ctx) -> Result<(Option<usize>, usize), SqlError> {
    let eval = |e: &Option<Expr>, what: &str| -> Result<Option<usize>, SqlError> {
        let Some(e) = e else { return Ok(None) };
        match e.eval(ctx, &[])? {
            Value::Null => Ok(None),
            Value::Int(n) if n >= 0 => Ok(Some(n as usize)),
            Value::Int(_) => Err(SqlError::exec(format!("{what} must not be negative"))),
            other => Err(SqlError::exec(format!(
                "argument of {what} must be an integer, not {}",
                other.kind()
            ))),
        }
    };
    Ok((
        eval(&plan.limit, "LIMIT")?,
        eval(&plan.offset, "OFFSET")?.unwrap_or(0),
    ))
}

pub fn compare_rows(a: &[Value], b: &[Value], keys: &[SortKey]) -> Ordering {
    for k in keys {
        let (x, y) = (&a[k.index], &b[k.index]);
        let ord = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if k.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if k.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            _ => {
                let o = x.total_cmp(y);
                if k.desc {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

/// The default NULL placement for a sort direction.
pub fn default_nulls_first(desc: bool) -> bool {
    NULLS_ARE_LARGEST == desc
}

fn sort_rows(rows: &mut [Vec<Value>], keys: &[SortKey]) {
    rows.sort_by(|a, b| compare_rows(a, b, keys));
}

/// UNION, INTERSECT and EXCEPT of two row lists; the deadline is checked
/// as rows are hashed.
fn set_op(
    op: SetOp,
    all: bool,
    left: Vec<Vec<Value>>,
    right: Vec<Vec<Value>>,
) -> Result<Vec<Vec<Value>>, SqlError> {
    Ok(match (op, all) {
        (SetOp::Union, true) => {
            let mut out = left;
            out.extend(right);
            out
        }
        (SetOp::Union, false) => {
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for r in left.into_iter().chain(right) {
                interrupt::tick()?;
                if seen.insert(r.clone()) {
                    out.push(r);
                }
            }
            out
        }
        (SetOp::Intersect, _) | (SetOp::Except, _) => {
            let mut counts: SeededMap<Vec<Value>, usize> = SeededMap::default();
            for r in right {
                interrupt::tick()?;
                *counts.entry(r).or_default() += 1;
            }
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for r in left {
                interrupt::tick()?;
                let in_right = match counts.get_mut(&r) {
                    Some(c) if *c > 0 => {
                        if all {
                            *c -= 1;
                        }
                        true
                    }
                    _ => false,
                };
                let keep = (op == SetOp::Intersect) == in_right;
                if keep && (all || seen.insert(r.clone())) {
                    out.push(r);
                }
            }
            out
        }
    })
}

/// Per-execution state: materialized derived tables and hash-join tables
/// (which hold row numbers: RowIds for tables, positions for derived rows).
struct State {
    derived: Vec<Vec<Vec<Value>>>,
    hash: Vec<Option<Arc<HashTable>>>,
    /// A buffer of row ids per level, for index probes.
    ids: RefCell<Vec<Vec<RowId>>>,
}

/// The values of an index or hash key: one without allocating, or several.
enum Key {
    One(Value),
    Many(Vec<Value>),
}

impl Key {
    fn eval(exprs: &[Expr], ctx: &Ctx, row: &[Value]) -> Result<Key, SqlError> {
        Ok(match exprs {
            [k] => Key::One(k.eval(ctx, row)?),
            _ => Key::Many(
                exprs
                    .iter()
                    .map(|k| k.eval(ctx, row))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        })
    }

    fn values(&self) -> &[Value] {
        match self {
            Key::One(v) => std::slice::from_ref(v),
            Key::Many(v) => v,
        }
    }
}

/// Where a level's candidate rows come from (`Runner::probe`).
enum Probe<'s> {
    /// Nothing can match (a NULL key, a key not in the hash table).
    Nothing,
    /// Every row of the source.
    Scan,
    /// The rows whose ids the probe wrote to the level's buffer.
    Ids,
    /// The rows a hash table holds for the key.
    Hashed(&'s [u32]),
    /// Every row a hash table holds: the key is not of the kind hashed
    /// (`HashTable::hashable`); the level's filters decide.
    EveryHashed(&'s HashTable),
}

/// A hash join's table: key values to the row numbers holding them (in
/// `rows`, in the order keys were first seen, which is the order a probe
/// that must try every row reads them), and the kind of each key column's
/// values as built.
#[derive(Default)]
pub struct HashTable {
    map: SeededMap<Vec<Value>, usize>,
    rows: Vec<Vec<u32>>,
    kinds: Vec<Option<ValueKind>>,
}

impl HashTable {
    /// Whether `key` can be looked up by hashing: `=` between text and a
    /// date, time, interval or uuid parses the text, which hashing cannot,
    /// so such a key is matched against every row instead.
    fn hashable(&self, key: &[Value]) -> bool {
        key.iter().zip(&self.kinds).all(|(v, built)| match built {
            Some(b) => {
                let k = v.kind();
                !((k == ValueKind::Text && b.parses_from_text())
                    || (*b == ValueKind::Text && k.parses_from_text()))
            }
            None => true,
        })
    }
}

struct Runner<'p, 'c, 'a> {
    plan: &'p SelectPlan,
    ctx: &'c Ctx<'a>,
}

impl<'p, 'c, 'a> Runner<'p, 'c, 'a> {
    fn table(&self, src: &Source) -> Result<Option<&'a Table>, SqlError> {
        match &src.kind {
            SourceKind::Table { id, name } => self.ctx.db.table(*id).map(Some).ok_or_else(|| {
                SqlError::exec(format!(
                    "table \"{name}\" was dropped while the statement ran"
                ))
            }),
            _ => Ok(None),
        }
    }

    fn build_state(&self) -> Result<State, SqlError> {
        let mut st = State {
            derived: Vec::with_capacity(self.plan.sources.len()),
            hash: Vec::new(),
            ids: RefCell::new(vec![Vec::new(); self.plan.levels.len()]),
        };
        for src in &self.plan.sources {
            st.derived.push(match &src.kind {
                SourceKind::Derived { plan, .. } => run_query(plan, self.ctx, None)?,
                _ => Vec::new(),
            });
        }
        for level in &self.plan.levels {
            let Access::HashJoin {
                build,
                from,
                kept,
                recheck,
                ..
            } = &level.access
            else {
                st.hash.push(None);
                continue;
            };
            let key = level as *const Level as usize;
            if *kept {
                if let Some(map) = self.ctx.cache.borrow().kept.get(&key) {
                    st.hash.push(Some(map.clone()));
                    continue;
                }
            }
            let mut table = HashTable {
                kinds: vec![None; build.len()],
                ..HashTable::default()
            };
            let mut ids = Vec::new();
            // `from` is never a hash join: no level's table is looked up.
            let (probe, skip) = self.probe(&st, (usize::MAX, level.source, from), &[], &mut ids)?;
            self.each_row(&st, level.source, &probe, &ids, None, &mut |id, row| {
                interrupt::tick()?;
                for (i, f) in level.local_filter.iter().enumerate() {
                    if recheck.contains(&i) || (skip && level.exact_filters.contains(&i)) {
                        continue;
                    }
                    if !f.eval_pred(self.ctx, row)? {
                        return Ok(true);
                    }
                }
                let key = Key::eval(build, self.ctx, row)?;
                let key = key.values();
                if key.iter().any(Value::is_null) {
                    return Ok(true);
                }
                for (kind, v) in table.kinds.iter_mut().zip(key) {
                    kind.get_or_insert(v.kind());
                }
                // Most rows join a key already seen: no key is copied then.
                match table.map.get(key) {
                    Some(&at) => table.rows[at].push(id),
                    None => {
                        table.map.insert(key.to_vec(), table.rows.len());
                        table.rows.push(vec![id]);
                    }
                }
                Ok(true)
            })?;
            let map = Arc::new(table);
            if *kept {
                self.ctx.cache.borrow_mut().kept.insert(key, map.clone());
            }
            st.hash.push(Some(map));
        }
        Ok(st)
    }

    /// Where the candidate rows of source `source` read by `access` (level
    /// `lvl`'s, or a hash table's `from`) come from, given the combined row
    /// so far: index results are written into `ids` (a buffer kept per level,
    /// so probing allocates nothing once it has grown). Each key is
    /// evaluated once, here. The flag returned is true when an index
    /// lookup's keys, a range's bounds or a (not kept) hash probe's keys are
    /// all integers and rows were looked up by them: then the level's exact
    /// positions need no re-check.
    fn probe<'s>(
        &self,
        st: &'s State,
        (lvl, source, access): (usize, usize, &Access),
        buf: &[Value],
        ids: &mut Vec<RowId>,
    ) -> Result<(Probe<'s>, bool), SqlError> {
        let src = &self.plan.sources[source];
        let ctx = self.ctx;
        match access {
            Access::Scan => Ok((Probe::Scan, false)),
            Access::IndexEq { index, keys, .. } => {
                let Some(t) = self.table(src)? else {
                    return Ok((Probe::Nothing, false));
                };
                let key = Key::eval(keys, ctx, buf)?;
                let key = key.values();
                if key.iter().any(Value::is_null) {
                    return Ok((Probe::Nothing, false));
                }
                let unique = t
                    .schema()
                    .indexes
                    .get(*index)
                    .is_some_and(|ix| ix.unique && ix.columns.len() == key.len());
                if unique {
                    ids.extend(t.index_get(*index, key));
                } else {
                    t.index_lookup_into(*index, key, ids);
                }
                Ok((Probe::Ids, all_int(key)))
            }
            Access::IndexIn { index, values, .. } => {
                let Some(t) = self.table(src)? else {
                    return Ok((Probe::Nothing, false));
                };
                for v in values {
                    let v = v.eval(ctx, buf)?;
                    if !v.is_null() {
                        t.index_lookup_into(*index, std::slice::from_ref(&v), ids);
                    }
                }
                ids.sort_unstable();
                ids.dedup();
                Ok((Probe::Ids, false))
            }
            Access::IndexRange {
                index,
                lower,
                upper,
                ..
            } => {
                let Some(t) = self.table(src)? else {
                    return Ok((Probe::Nothing, false));
                };
                let bound = |b: &Option<(Expr, bool)>| -> Result<Option<Bound<Value>>, SqlError> {
                    Ok(match b {
                        None => Some(Bound::Unbounded),
                        Some((e, incl)) => match e.eval(ctx, buf)? {
                            Value::Null => None,
                            v if *incl => Some(Bound::Included(v)),
                            v => Some(Bound::Excluded(v)),
                        },
                    })
                };
                let (Some(lo), Some(hi)) = (bound(lower)?, bound(upper)?) else {
                    return Ok((Probe::Nothing, false));
                };
                let bound_int = |b: &Bound<Value>| match b {
                    Bound::Included(v) | Bound::Excluded(v) => matches!(v, Value::Int(_)),
                    Bound::Unbounded => true,
                };
                t.index_range_into(*index, one_value_bound(&lo), one_value_bound(&hi), ids);
                Ok((Probe::Ids, bound_int(&lo) && bound_int(&hi)))
            }
            Access::HashJoin { probe, kept, .. } => {
                let key = Key::eval(probe, ctx, buf)?;
                let key = key.values();
                if key.iter().any(Value::is_null) {
                    return Ok((Probe::Nothing, false));
                }
                let table = st
                    .hash
                    .get(lvl)
                    .and_then(|h| h.as_ref())
                    .ok_or_else(|| SqlError::exec("internal: hash table not built"))?;
                if !table.hashable(key) {
                    return Ok((Probe::EveryHashed(table), false));
                }
                // A kept table's key equalities are local filters, re-checked.
                Ok(match table.map.get(key) {
                    Some(&at) => (Probe::Hashed(&table.rows[at]), !kept && all_int(key)),
                    None => (Probe::Nothing, false),
                })
            }
        }
    }

    /// Calls `each` on every candidate row of `probe`, decoded from the
    /// table into one buffer (only the columns `cols` marks, if given) or
    /// read in place from the derived rows; stops when `each` returns
    /// false, and returns false then.
    fn each_row(
        &self,
        st: &State,
        source: usize,
        probe: &Probe<'_>,
        ids: &[RowId],
        cols: Option<&[bool]>,
        each: &mut EachRow<'_>,
    ) -> Result<bool, SqlError> {
        let src = &self.plan.sources[source];
        let table = self.table(src)?;
        // A table's rows are decoded into `buf`; derived rows are read in place.
        let mut buf = Vec::new();
        let mut at = |id: u32, each: &mut EachRow<'_>| -> Result<bool, SqlError> {
            match table {
                Some(t) if t.read_cols(RowId(id), cols, &mut buf) => each(id, &buf),
                Some(_) => Ok(true),
                None => match st.derived[source].get(id as usize) {
                    Some(r) => each(id, r),
                    None => Ok(true),
                },
            }
        };
        match probe {
            Probe::Nothing => {}
            Probe::Scan => match (&src.kind, table) {
                (SourceKind::Table { .. }, Some(t)) => {
                    let mut rows = t.rows_cols(cols);
                    while let Some((id, row)) = rows.next() {
                        if !each(id.0, row)? {
                            return Ok(false);
                        }
                    }
                }
                (SourceKind::Derived { .. }, _) => {
                    for (i, row) in st.derived[source].iter().enumerate() {
                        if !each(i as u32, row)? {
                            return Ok(false);
                        }
                    }
                }
                (SourceKind::Unit, _) => return each(0, &[]),
                (SourceKind::Table { .. }, None) => {}
            },
            Probe::Ids => {
                for id in ids {
                    if !at(id.0, each)? {
                        return Ok(false);
                    }
                }
            }
            Probe::EveryHashed(table) => {
                for &id in table.rows.iter().flatten() {
                    if !at(id, each)? {
                        return Ok(false);
                    }
                }
            }
            Probe::Hashed(found) => {
                for &id in found.iter() {
                    if !at(id, each)? {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }

    fn visit(
        &self,
        st: &State,
        lvl: usize,
        buf: &mut Vec<Value>,
        sink: &mut dyn FnMut(&[Value]) -> Result<bool, SqlError>,
    ) -> Result<bool, SqlError> {
        if lvl == self.plan.levels.len() {
            return sink(buf);
        }
        let level = &self.plan.levels[lvl];
        let src = &self.plan.sources[level.source];
        // Hash tables were built from rows that passed the local filter,
        // but for those that read the enclosing row.
        let recheck = match &level.access {
            Access::HashJoin { recheck, .. } => Some(recheck),
            _ => None,
        };
        let mut matched = false;
        let mut ids = std::mem::take(&mut st.ids.borrow_mut()[lvl]);
        ids.clear();
        let (probe, skip) = self.probe(st, (lvl, level.source, &level.access), buf, &mut ids)?;
        // One candidate row: false when the sink wants no more rows.
        let mut each = |_: u32, row: &[Value]| -> Result<bool, SqlError> {
            // Also where a join finds nothing: it can still run for long.
            interrupt::tick()?;
            let pass = match recheck {
                Some(recheck) => {
                    let mut ok = true;
                    for &i in recheck {
                        if !level.local_filter[i].eval_pred(self.ctx, row)? {
                            ok = false;
                            break;
                        }
                    }
                    ok
                }
                None => self.local_ok(level, skip, row)?,
            };
            if !pass {
                return Ok(true);
            }
            buf[src.offset..src.offset + src.width].clone_from_slice(row);
            for (i, f) in level.join_filter.iter().enumerate() {
                if skip && level.exact_join.contains(&i) {
                    continue;
                }
                if !f.eval_pred(self.ctx, buf)? {
                    return Ok(true);
                }
            }
            matched = true;
            if !self.post_ok(level, buf)? {
                return Ok(true);
            }
            self.visit(st, lvl + 1, buf, sink)
        };
        let more = self.each_row(st, level.source, &probe, &ids, None, &mut each);
        st.ids.borrow_mut()[lvl] = ids;
        if !more? {
            return Ok(false);
        }
        if src.outer && !matched {
            for v in &mut buf[src.offset..src.offset + src.width] {
                *v = Value::Null;
            }
            if self.post_ok(level, buf)? {
                return self.visit(st, lvl + 1, buf, sink);
            }
        }
        Ok(true)
    }

    /// The level's own predicates on a candidate row, minus those the index
    /// already guarantees (`skip`).
    fn local_ok(&self, level: &Level, skip: bool, row: &[Value]) -> Result<bool, SqlError> {
        for (i, f) in level.local_filter.iter().enumerate() {
            if skip && level.exact_filters.contains(&i) {
                continue;
            }
            if !f.eval_pred(self.ctx, row)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn post_ok(&self, level: &Level, buf: &[Value]) -> Result<bool, SqlError> {
        for f in &level.post_filter {
            if !f.eval_pred(self.ctx, buf)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Calls `sink` with every combined row that satisfies the plan's
    /// filters; `sink` returns false to stop.
    fn for_each(
        &self,
        sink: &mut dyn FnMut(&[Value]) -> Result<bool, SqlError>,
    ) -> Result<(), SqlError> {
        for f in &self.plan.pre_filter {
            if !f.eval_pred(self.ctx, &[])? {
                return Ok(());
            }
        }
        if let Some(done) = self.single_table(sink)? {
            return Ok(done);
        }
        let st = self.build_state()?;
        let mut buf = vec![Value::Null; self.plan.width];
        self.visit(&st, 0, &mut buf, sink)?;
        Ok(())
    }

    /// One base table that fills the whole combined row: evaluate on each
    /// stored row as decoded, only the columns the plan reads
    /// (`columns_read`), with no combined row built. Returns None when the
    /// plan is not of that shape.
    fn single_table(
        &self,
        sink: &mut dyn FnMut(&[Value]) -> Result<bool, SqlError>,
    ) -> Result<Option<()>, SqlError> {
        let [level] = self.plan.levels.as_slice() else {
            return Ok(None);
        };
        let src = &self.plan.sources[level.source];
        if src.outer || src.offset != 0 || src.width != self.plan.width {
            return Ok(None);
        }
        let Some(t) = self.table(src)? else {
            return Ok(None);
        };
        if matches!(level.access, Access::HashJoin { .. }) {
            return Ok(None);
        }
        let cols = columns_read(self.plan, level);
        let pass = |row: &[Value], skip: bool| -> Result<bool, SqlError> {
            interrupt::tick()?;
            if !self.local_ok(level, skip, row)? {
                return Ok(false);
            }
            for f in level.join_filter.iter().chain(&level.post_filter) {
                if !f.eval_pred(self.ctx, row)? {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        if let Access::IndexEq { index, keys, .. } = &level.access {
            let unique = t
                .schema()
                .indexes
                .get(*index)
                .is_some_and(|ix| ix.unique && ix.columns.len() == keys.len());
            if unique {
                let key = Key::eval(keys, self.ctx, &[])?;
                let key = key.values();
                if key.iter().any(Value::is_null) {
                    return Ok(Some(()));
                }
                // Same rule as `probe`'s flag.
                let skip = all_int(key);
                let mut row = Vec::new();
                if t.index_get(*index, key)
                    .is_some_and(|id| t.read_cols(id, cols.as_deref(), &mut row))
                    && pass(&row, skip)?
                {
                    sink(&row)?;
                }
                return Ok(Some(()));
            }
        }
        let st = State {
            derived: Vec::new(),
            hash: Vec::new(),
            ids: RefCell::new(Vec::new()),
        };
        let mut ids = Vec::new();
        let (probe, skip) = self.probe(&st, (0, level.source, &level.access), &[], &mut ids)?;
        self.each_row(
            &st,
            level.source,
            &probe,
            &ids,
            cols.as_deref(),
            &mut |_, row| Ok(!pass(row, skip)? || sink(row)?),
        )?;
        Ok(Some(()))
    }
}

/// The columns of a one-table plan's row that its filters, aggregate and
/// projection read (the rest need not be decoded), or None when every
/// column must be: a subquery may read the row through its own plan.
fn columns_read(plan: &SelectPlan, level: &Level) -> Option<Vec<bool>> {
    // Marks the columns `e` reads; false if it holds a subquery.
    fn mark(e: &Expr, cols: &mut [bool]) -> bool {
        match e {
            Expr::ScalarSubquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                return false
            }
            Expr::Column(c) => match cols.get_mut(*c) {
                Some(flag) => *flag = true,
                None => return false,
            },
            _ => {}
        }
        let mut ok = true;
        e.children(&mut |c| ok = ok && mark(c, cols));
        ok
    }
    let mut cols = vec![false; plan.width];
    let filters = level.local_filter.iter().chain(&level.join_filter);
    let row_exprs = filters.chain(&level.post_filter).chain(&plan.pre_filter);
    let mut ok = row_exprs.into_iter().all(|e| mark(e, &mut cols));
    match &plan.aggregate {
        Some(agg) => {
            ok = ok
                && agg.keys.iter().all(|e| mark(e, &mut cols))
                && agg
                    .calls
                    .iter()
                    .flat_map(|c| c.arg.iter().chain(&c.separator))
                    .all(|e| mark(e, &mut cols));
            // Over the group row: they read no stored column, but may hold
            // a subquery.
            let mut group_row = vec![false; plan.width.max(agg.keys.len() + agg.calls.len())];
            ok = ok
                && plan
                    .having
                    .iter()
                    .chain(&plan.projection)
                    .all(|e| mark(e, &mut group_row));
        }
        None => ok = ok && plan.projection.iter().all(|e| mark(e, &mut cols)),
    }
    ok.then_some(cols)
}

/// What `each_row` calls with each candidate row (its id, its values);
/// false stops the walk.
type EachRow<'a> = dyn FnMut(u32, &[Value]) -> Result<bool, SqlError> + 'a;

/// The RowIds of a single-table plan's matching rows (UPDATE / DELETE).
pub fn matching_row_ids(
    plan: &SelectPlan,
    ctx: &Ctx,
) -> Result<Vec<(RowId, Vec<Value>)>, SqlError> {
    let runner = Runner { plan, ctx };
    for f in &plan.pre_filter {
        if !f.eval_pred(ctx, &[])? {
            return Ok(Vec::new());
        }
    }
    let st = runner.build_state()?;
    let level = &plan.levels[0];
    let mut out = Vec::new();
    let mut ids = Vec::new();
    // UPDATE and DELETE re-check every filter.
    let (probe, _) = runner.probe(&st, (0, level.source, &level.access), &[], &mut ids)?;
    runner.each_row(&st, level.source, &probe, &ids, None, &mut |id, row| {
        interrupt::tick()?;
        for f in level.local_filter.iter().chain(&level.join_filter) {
            if !f.eval_pred(ctx, row)? {
                return Ok(true);
            }
        }
        out.push((RowId(id), row.to_vec()));
        Ok(true)
    })?;
    Ok(out)
}

/// Whether every value of a key is an integer: then an integer index or
/// hash table found exactly the rows `=` would (`Level::exact_filters`).
fn all_int(key: &[Value]) -> bool {
    key.iter().all(|v| matches!(v, Value::Int(_)))
}

/// A bound on one value as a bound on a one-value key.
fn one_value_bound(b: &Bound<Value>) -> Bound<&[Value]> {
    match b {
        Bound::Included(v) => Bound::Included(std::slice::from_ref(v)),
        Bound::Excluded(v) => Bound::Excluded(std::slice::from_ref(v)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn project(exprs: &[Expr], ctx: &Ctx, row: &[Value]) -> Result<Vec<Value>, SqlError> {
    let mut out = Vec::with_capacity(exprs.len());
    for e in exprs {
        out.push(e.eval(ctx, row)?);
    }
    Ok(out)
}

fn run_select(
    plan: &SelectPlan,
    ctx: &Ctx,
    early: Option<usize>,
) -> Result<Vec<Vec<Value>>, SqlError> {
    let runner = Runner { plan, ctx };
    let mut out: Vec<Vec<Value>> = Vec::new();
    // Built only for DISTINCT: a std HashSet seeds its hasher on creation.
    let mut seen: Option<HashSet<Vec<Value>>> = None;
    let mut emit = |row: Vec<Value>, out: &mut Vec<Vec<Value>>| -> Result<bool, SqlError> {
        if plan.distinct
            && !seen
                .get_or_insert_with(HashSet::new)
                .insert(row[..plan.visible].to_vec())
        {
            return Ok(true);
        }
        out.push(row);
        if out.len() > QUERY_ROWS_MAX {
            return Err(SqlError::exec(format!(
                "query produced more than {QUERY_ROWS_MAX} rows"
            )));
        }
        Ok(early.is_none_or(|n| out.len() < n))
    };
    match &plan.aggregate {
        None => {
            if early == Some(0) {
                return Ok(out);
            }
            runner.for_each(&mut |row| {
                let r = project(&plan.projection, ctx, row)?;
                emit(r, &mut out)
            })?;
        }
        Some(agg) => {
            let mut groups = Groups::new(agg);
            let mut visited: u64 = 0;
            runner.for_each(&mut |row| {
                visited += 1;
                if visited > QUERY_ROWS_MAX as u64 * 4 {
                    return Err(SqlError::exec("aggregate input exceeds the row limit"));
                }
                groups.add(agg, ctx, row)?;
                Ok(true)
            })?;
            for grow in groups.finish(agg)? {
                if let Some(h) = &plan.having {
                    if !h.eval_pred(ctx, &grow)? {
                        continue;
                    }
                }
                let r = project(&plan.projection, ctx, &grow)?;
                if !emit(r, &mut out)? {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// One aggregate's running state.
#[derive(Debug, Clone)]
enum Acc {
    Count(i64),
    Sum(Option<Value>),
    Avg { sum: Option<Value>, count: i64 },
    MinMax(Option<Value>),
    Total(f64),
    Concat(Option<String>),
}

struct Groups {
    index: SeededMap<Vec<Value>, usize>,
    keys: Vec<Vec<Value>>,
    accs: Vec<Vec<Acc>>,
    distinct: Vec<Vec<HashSet<Value>>>,
    /// The key of the row being added, reused from row to row.
    key: Vec<Value>,
}

impl Groups {
    fn new(agg: &AggPlan) -> Groups {
        let mut g = Groups {
            index: SeededMap::default(),
            keys: Vec::new(),
            accs: Vec::new(),
            distinct: Vec::new(),
            key: Vec::new(),
        };
        if agg.keys.is_empty() {
            // Without GROUP BY there is exactly one group, even over no rows.
            g.group(agg, &[]);
        }
        g
    }

    fn group(&mut self, agg: &AggPlan, key: &[Value]) -> usize {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let i = self.keys.len();
        self.index.insert(key.to_vec(), i);
        self.keys.push(key.to_vec());
        self.accs
            .push(agg.calls.iter().map(|c| initial(c.func)).collect());
        self.distinct
            .push(agg.calls.iter().map(|_| HashSet::new()).collect());
        i
    }

    fn add(&mut self, agg: &AggPlan, ctx: &Ctx, row: &[Value]) -> Result<(), SqlError> {
        // Without GROUP BY every row is in group 0: no key to build or hash
        // (a procedure's `SELECT COUNT(*) ... WHERE k = ?` is this case).
        let g = if agg.keys.is_empty() {
            0
        } else {
            // Evaluated into a kept buffer: a row of a group already seen
            // allocates nothing for its key.
            let mut key = std::mem::take(&mut self.key);
            key.clear();
            for e in &agg.keys {
                key.push(e.eval(ctx, row)?);
            }
            let g = self.group(agg, &key);
            self.key = key;
            g
        };
        for (j, call) in agg.calls.iter().enumerate() {
            let v = match &call.arg {
                None => Value::Int(1),
                Some(e) => e.eval(ctx, row)?,
            };
            if call.func != AggFunc::CountStar && v.is_null() {
                continue;
            }
            if call.distinct && !self.distinct[g][j].insert(v.clone()) {
                continue;
            }
            let sep = match (&call.separator, call.func) {
                (Some(e), AggFunc::GroupConcat) => Some(e.eval(ctx, row)?),
                _ => None,
            };
            accumulate(&mut self.accs[g][j], call.func, v, sep)?;
        }
        Ok(())
    }

    fn finish(self, agg: &AggPlan) -> Result<Vec<Vec<Value>>, SqlError> {
        let mut out = Vec::with_capacity(self.keys.len());
        for (key, accs) in self.keys.into_iter().zip(self.accs) {
            let mut row = key;
            row.reserve(agg.calls.len());
            for acc in accs {
                row.push(finalize(acc)?);
            }
            out.push(row);
        }
        Ok(out)
    }
}

fn initial(f: AggFunc) -> Acc {
    match f {
        AggFunc::CountStar | AggFunc::Count => Acc::Count(0),
        AggFunc::Sum => Acc::Sum(None),
        AggFunc::Avg => Acc::Avg {
            sum: None,
            count: 0,
        },
        AggFunc::Min | AggFunc::Max => Acc::MinMax(None),
        AggFunc::Total => Acc::Total(0.0),
        AggFunc::GroupConcat => Acc::Concat(None),
    }
}

fn add_values(acc: Option<Value>, v: Value, what: &str) -> Result<Value, SqlError> {
    match acc {
        None => match v {
            Value::Int(_) | Value::Double(_) | Value::Decimal(_) | Value::Interval(_) => Ok(v),
            other => Err(SqlError::exec(format!(
                "function {what}({}) does not exist",
                other.kind()
            ))),
        },
        Some(a) => ops::arith(ArithOp::Add, &a, &v),
    }
}

fn accumulate(acc: &mut Acc, f: AggFunc, v: Value, sep: Option<Value>) -> Result<(), SqlError> {
    match acc {
        Acc::Count(n) => *n += 1,
        Acc::Sum(s) => *s = Some(add_values(s.take(), v, "sum")?),
        Acc::Avg { sum, count } => {
            // Integers are averaged as doubles (SQLite's and the corpus's answer).
            let v = match v {
                Value::Int(i) => Value::Double(i as f64),
                other => other,
            };
            *sum = Some(add_values(sum.take(), v, "avg")?);
            *count += 1;
        }
        Acc::MinMax(cur) => {
            let replace = match cur {
                None => true,
                Some(c) => {
                    let ord = ops::compare(&v, c)?.unwrap_or(Ordering::Equal);
                    if f == AggFunc::Min {
                        ord == Ordering::Less
                    } else {
                        ord == Ordering::Greater
                    }
                }
            };
            if replace {
                *cur = Some(v);
            }
        }
        Acc::Total(t) => match ops::cast(&v, crate::types::DataType::Double)? {
            Value::Double(d) => *t += d,
            _ => return Err(SqlError::exec("total() needs numeric input")),
        },
        Acc::Concat(s) => {
            let text = ops::cast(&v, crate::types::DataType::Varchar(None))?.to_string();
            match s {
                None => *s = Some(text),
                Some(existing) => {
                    let sep = match sep {
                        Some(Value::Null) => String::new(),
                        Some(x) => x.to_string(),
                        None => ",".to_string(),
                    };
                    existing.push_str(&sep);
                    existing.push_str(&text);
                }
            }
        }
    }
    Ok(())
}

fn finalize(acc: Acc) -> Result<Value, SqlError> {
    Ok(match acc {
        Acc::Count(n) => Value::Int(n),
        Acc::Sum(s) => s.unwrap_or(Value::Null),
        Acc::Avg { sum: None, .. } => Value::Null,
        Acc::Avg {
            sum: Some(s),
            count,
        } => ops::arith(ArithOp::Div, &s, &Value::Int(count))?,
        Acc::MinMax(v) => v.unwrap_or(Value::Null),
        Acc::Total(t) => Value::Double(t),
        Acc::Concat(s) => s.map(|x| Value::text(&x)).unwrap_or(Value::Null),
    })
}
