//! Access paths and join order: for each FROM item, which predicates filter
//! it, in which nesting order the items are visited, and how each is read
//! (index lookup, IN-list lookups, index range, hash join, or scan).
//!
//! Owns: `plan_levels` and the row estimates behind the join order.
//! Must not: bind names (predicates arrive bound) or execute anything.
//!
//! ```text
//!   bound WHERE/ON conjuncts + sources --plan_levels--> Vec<Level> (+ constant pre-filter)
//! ```

use super::bind::{self, Binder};
use super::error::SqlError;
use super::expr::{CmpOp, Expr};
use super::plan::*;
use crate::storage::IndexKind;
use crate::types::DataType;

/// Which sources a predicate reads; a correlated subquery counts as all,
/// and so does `nextval()` (evaluated per row, never once as a key).
pub fn sources_of(e: &Expr, sources: &[Source]) -> Vec<usize> {
    if bind::expr_has_correlated_sub(e) || e.uses_sequence() {
        return (0..sources.len()).collect();
    }
    let mut cols = Vec::new();
    e.columns_used(&mut cols);
    let mut out: Vec<usize> = cols
        .into_iter()
        .filter_map(|c| {
            sources
                .iter()
                .position(|s| c >= s.offset && c < s.offset + s.width)
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Branches of one OR, and conjuncts of one branch, the OR rewrites look
/// at; a larger OR is left as written.
const OR_TERMS_MAX: usize = 64;

/// Rewrites each OR among the WHERE conjuncts so joins and filters can use
/// its parts (TPC-H Q19 is the model):
/// - a conjunct every branch has is pulled out of the OR:
///   `(a AND b) OR (a AND c)` is `a AND (b OR c)`, and `a OR (a AND b)` is
///   `a` (both hold in SQL's three-valued logic), so a join condition
///   inside every branch becomes a join condition;
/// - for each source, when every remaining branch has conjuncts reading only
///   that source, the OR of those is added as a filter on it, beside the
///   OR itself (as PostgreSQL's `extract_restriction_or_clauses`): the OR
///   being true makes some branch, and so that filter, true.
///
/// An OR that takes values from a sequence is left alone: its evaluations
/// are its effects.
fn rewrite_ors(where_conj: Vec<Expr>, sources: &[Source]) -> Vec<Expr> {
    let mut out = Vec::with_capacity(where_conj.len());
    for e in where_conj {
        if !matches!(e, Expr::Or(..)) || e.uses_sequence() {
            out.push(e);
            continue;
        }
        let mut ors = Vec::new();
        e.clone().into_disjuncts(&mut ors);
        let mut branches: Vec<Vec<Expr>> = ors
            .into_iter()
            .map(|d| {
                let mut parts = Vec::new();
                d.into_conjuncts(&mut parts);
                parts
            })
            .collect();
        if branches.len() > OR_TERMS_MAX || branches.iter().any(|b| b.len() > OR_TERMS_MAX) {
            out.push(e);
            continue;
        }
        let has = |list: &[Expr], e: &Expr| list.iter().any(|x| same_expr(x, e));
        let mut common: Vec<Expr> = Vec::new();
        for part in &branches[0] {
            if !has(&common, part) && branches[1..].iter().all(|b| has(b, part)) {
                common.push(part.clone());
            }
        }
        for b in &mut branches {
            b.retain(|part| !has(&common, part));
        }
        out.extend(common);
        if branches.iter().any(Vec::is_empty) {
            continue;
        }
        let mut read: Vec<usize> = Vec::new();
        for part in branches.iter().flatten() {
            read.extend(sources_of(part, sources));
        }
        read.sort_unstable();
        read.dedup();
        if read.len() > 1 {
            for &si in &read {
                let restriction: Option<Vec<Expr>> = branches
                    .iter()
                    .map(|b| {
                        let own: Vec<Expr> = b
                            .iter()
                            .filter(|part| sources_of(part, sources) == [si])
                            .cloned()
                            .collect();
                        (!own.is_empty()).then(|| Expr::and_all(own))
                    })
                    .collect();
                if let Some(restriction) = restriction {
                    out.push(Expr::or_all(restriction));
                }
            }
        }
        out.push(Expr::or_all(
            branches.into_iter().map(Expr::and_all).collect(),
        ));
    }
    out
}

/// Columns in one class of equal columns the planner closes over; a
/// larger class is left as written.
const EQUAL_COLUMNS_MAX: usize = 16;

/// Adds `a = c` where the WHERE says `a = b` and `b = c` for columns of
/// other sources (inner joins only), so a join order need not follow the
/// chain as written: TPC-H Q9 equates `ps_partkey` and `p_partkey` only
/// through `lineitem`, and Q5 `c_nationkey` and `n_nationkey` only through
/// `supplier`. Only columns of one type family are joined into a class, so
/// the implied equality compares as the written ones do; an implied
/// equality is true whenever the written ones are, so it filters nothing
/// more.
fn implied_equalities(b: &Binder, sources: &[Source], conj: &mut Vec<Expr>) {
    let source_of = |col: usize| {
        sources
            .iter()
            .position(|s| col >= s.offset && col < s.offset + s.width)
    };
    let family = |col: usize| -> Option<DataType> {
        let si = source_of(col)?;
        let c = col - sources[si].offset;
        let ty = match &sources[si].kind {
            SourceKind::Table { id, .. } => b.catalog.db.table(*id)?.schema().columns.get(c)?.ty,
            SourceKind::Derived { plan, .. } => plan.columns.get(c)?.ty?,
            SourceKind::Unit => return None,
        };
        Some(match ty {
            DataType::SmallInt | DataType::Integer | DataType::BigInt => DataType::BigInt,
            DataType::Varchar(_) => DataType::Varchar(None),
            other => other,
        })
    };
    let mut classes: Vec<Vec<usize>> = Vec::new();
    let mut written: Vec<(usize, usize)> = Vec::new();
    for e in conj.iter() {
        let Expr::Cmp(CmpOp::Eq, l, r) = e else {
            continue;
        };
        let (Expr::Column(x), Expr::Column(y)) = (l.as_ref(), r.as_ref()) else {
            continue;
        };
        let (x, y) = (*x, *y);
        if x == y || family(x).is_none() || family(x) != family(y) {
            continue;
        }
        written.push((x.min(y), x.max(y)));
        let cx = classes.iter().position(|c| c.contains(&x));
        let cy = classes.iter().position(|c| c.contains(&y));
        match (cx, cy) {
            (Some(a), Some(b)) if a != b => {
                let moved = classes.swap_remove(a.max(b));
                classes[a.min(b)].extend(moved);
            }
            (Some(_), Some(_)) => {}
            (Some(a), None) => classes[a].push(y),
            (None, Some(b)) => classes[b].push(x),
            (None, None) => classes.push(vec![x, y]),
        }
    }
    for class in classes.iter().filter(|c| c.len() <= EQUAL_COLUMNS_MAX) {
        for (i, &x) in class.iter().enumerate() {
            for &y in &class[i + 1..] {
                let pair = (x.min(y), x.max(y));
                if source_of(x) != source_of(y) && !written.contains(&pair) {
                    conj.push(Expr::Cmp(
                        CmpOp::Eq,
                        Box::new(Expr::Column(pair.0)),
                        Box::new(Expr::Column(pair.1)),
                    ));
                }
            }
        }
    }
}

/// The same expression, constants of the same kind and form: `Expr`'s own
/// equality takes `2` and `2.0` as one value, but `a/2` and `a/2.0` differ.
fn same_expr(a: &Expr, b: &Expr) -> bool {
    a == b && format!("{a:?}") == format!("{b:?}")
}

struct Pred {
    expr: Expr,
    srcs: Vec<usize>,
    used: bool,
}

pub fn plan_levels(
    b: &Binder,
    sources: &[Source],
    where_conj: Vec<Expr>,
    on_conj: Vec<Vec<Expr>>,
) -> Result<(Vec<Level>, Vec<Expr>), SqlError> {
    let mut pre = Vec::new();
    let mut preds = Vec::new();
    let mut where_conj = rewrite_ors(where_conj, sources);
    let any_outer = sources.iter().any(|s| s.outer);
    if !any_outer {
        implied_equalities(b, sources, &mut where_conj);
    }
    for e in where_conj {
        let srcs = sources_of(&e, sources);
        if srcs.is_empty() {
            pre.push(e);
        } else {
            preds.push(Pred {
                expr: e,
                srcs,
                used: false,
            });
        }
    }
    let order: Vec<usize> = if any_outer {
        (0..sources.len()).collect()
    } else {
        join_order(b, sources, &preds)
    };
    let mut placed: Vec<usize> = Vec::new();
    let mut levels = Vec::with_capacity(sources.len());
    for &si in &order {
        placed.push(si);
        let src = &sources[si];
        let mut level = Level {
            source: si,
            access: Access::Scan,
            local_filter: Vec::new(),
            join_filter: Vec::new(),
            post_filter: Vec::new(),
            exact_filters: Vec::new(),
            exact_join: Vec::new(),
        };
        // ON conjuncts of an outer source decide matching.
        let mut on_local = Vec::new();
        let mut on_join = Vec::new();
        for e in on_conj[si].iter().cloned() {
            let s = sources_of(&e, sources);
            if s.iter().all(|x| *x == si) && !s.is_empty() {
                on_local.push(e);
            } else {
                on_join.push(e);
            }
        }
        let mut local = on_local;
        let mut join = on_join;
        let mut post = Vec::new();
        for p in preds
            .iter_mut()
            .filter(|p| !p.used && p.srcs.iter().all(|x| placed.contains(x)))
        {
            p.used = true;
            // On an outer source a WHERE predicate must see the NULL-extended
            // row, so it runs after matching; elsewhere it filters candidates.
            if src.outer {
                post.push(p.expr.clone());
            } else if p.srcs == [si] {
                local.push(p.expr.clone());
            } else {
                join.push(p.expr.clone());
            }
        }
        level.access = choose_access(b, sources, si, &placed, &local, &join);
        let exact = exact_filters(b, &sources[si], &level.access, &local, &join);
        (level.exact_filters, level.exact_join) = (exact.local, exact.join);
        let off = src.offset;
        level.local_filter = local
            .into_iter()
            .map(|mut e| {
                e.remap_columns(&|c| c - off);
                e
            })
            .collect();
        if let Access::HashJoin { build, .. } = &mut level.access {
            for e in build.iter_mut() {
                e.remap_columns(&|c| c - off);
            }
        }
        level.join_filter = join;
        level.post_filter = post;
        levels.push(level);
    }
    Ok((levels, pre))
}

/// Join order for inner joins. Without statistics, rows are estimated from
/// table sizes, keys and predicate shapes (`Estimator`). Up to
/// `JOIN_EXHAUSTIVE_MAX` sources every order is costed (dynamic programming
/// over subsets, as System R); past that, each of the smallest few sources
/// starts a greedy order and the cheapest wins.
fn join_order(b: &Binder, sources: &[Source], preds: &[Pred]) -> Vec<usize> {
    let n = sources.len();
    if n <= 1 {
        return (0..n).collect();
    }
    let est = Estimator::new(b, sources, preds);
    if n <= JOIN_EXHAUSTIVE_MAX {
        return est.best_order();
    }
    let mut starts: Vec<usize> = (0..n).collect();
    starts.sort_by(|x, y| est.local[*x].total_cmp(&est.local[*y]));
    starts.truncate(JOIN_START_CANDIDATES);
    let mut best: Option<(f64, Vec<usize>)> = None;
    for &first in &starts {
        let (cost, order) = est.greedy_from(first);
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, order));
        }
    }
    best.map(|(_, o)| o).unwrap_or_else(|| (0..n).collect())
}

/// Sources ordered by costing every order (2^n subsets, n steps each).
const JOIN_EXHAUSTIVE_MAX: usize = 10;
/// Start tables the greedy join planner tries past that.
const JOIN_START_CANDIDATES: usize = 8;
/// Rows one value of a key that is not unique is taken to match: with no
/// statistics, the same guess as SQLite's before ANALYZE.
const ROWS_PER_KEY: f64 = 10.0;
/// Share of rows an equality on a column passes, and any other predicate.
const EQ_SELECTIVITY: f64 = 0.1;
const OTHER_SELECTIVITY: f64 = 0.5;
const RANGE_SELECTIVITY: f64 = 0.3;

/// What the estimator knows of one index: its columns (within the source),
/// whether it is unique, and whether it is ordered (a prefix can probe it).
struct IndexShape {
    columns: Vec<usize>,
    unique: bool,
    ordered: bool,
}

struct Estimator<'p> {
    sources: &'p [Source],
    preds: &'p [Pred],
    /// Rows of each source.
    total: Vec<f64>,
    /// Rows of each source after its own predicates.
    local: Vec<f64>,
    /// What reading a source alone costs: its rows, or fewer when an index
    /// serves one of its own equalities.
    first_cost: Vec<f64>,
    indexes: Vec<Vec<IndexShape>>,
}

impl<'p> Estimator<'p> {
    fn new(b: &Binder, sources: &'p [Source], preds: &'p [Pred]) -> Self {
        let n = sources.len();
        let (mut total, mut local, mut first_cost, mut indexes) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (i, s) in sources.iter().enumerate() {
            let (rows, shapes) = match &s.kind {
                SourceKind::Table { id, .. } => match b.catalog.db.table(*id) {
                    Some(t) => (
                        t.len() as f64,
                        t.schema()
                            .indexes
                            .iter()
                            .map(|ix| IndexShape {
                                columns: ix.columns.clone(),
                                unique: ix.unique,
                                ordered: ix.kind == IndexKind::Ordered,
                            })
                            .collect(),
                    ),
                    None => (0.0, Vec::new()),
                },
                SourceKind::Derived { .. } => (1000.0, Vec::new()),
                SourceKind::Unit => (1.0, Vec::new()),
            };
            let rows = rows.max(1.0);
            let mut r = rows;
            let mut indexed_eq = false;
            for p in preds.iter().filter(|p| p.srcs == [i]) {
                r *= match eq_column(&p.expr, sources, i) {
                    Some((c, _, CmpOp::Eq)) => {
                        let key = |ix: &&IndexShape| ix.columns.first() == Some(&c);
                        indexed_eq |= shapes.iter().any(|ix| key(&ix));
                        if shapes.iter().any(|ix| ix.unique && ix.columns == [c]) {
                            1.0 / rows
                        } else {
                            EQ_SELECTIVITY
                        }
                    }
                    Some(_) => RANGE_SELECTIVITY,
                    None if matches!(p.expr, Expr::Between { .. }) => EQ_SELECTIVITY,
                    None => OTHER_SELECTIVITY,
                };
            }
            let r = r.max(1.0);
            total.push(rows);
            local.push(r);
            first_cost.push(if indexed_eq { r } else { rows });
            indexes.push(shapes);
        }
        Estimator {
            sources,
            preds,
            total,
            local,
            first_cost,
            indexes,
        }
    }

    /// Cost of adding `t` after `placed` with `rows` rows so far, and the
    /// rows after it. The cost counts index probes, rows read and rows
    /// produced, so an order that multiplies rows early pays for them.
    fn step(&self, placed: &[usize], rows: f64, t: usize) -> (f64, f64) {
        let mut eq_cols: Vec<usize> = Vec::new();
        // Columns of placed sources `t`'s columns are equated to.
        let mut equated: Vec<(usize, usize)> = Vec::new();
        let mut other = 1.0;
        for p in self.preds {
            if !p.srcs.contains(&t)
                || p.srcs.len() < 2
                || !p.srcs.iter().all(|x| *x == t || placed.contains(x))
            {
                continue;
            }
            match eq_column(&p.expr, self.sources, t) {
                Some((c, e, CmpOp::Eq)) => {
                    eq_cols.push(c);
                    if let Expr::Column(x) = e {
                        if let Some(si) = self
                            .sources
                            .iter()
                            .position(|s| x >= s.offset && x < s.offset + s.width)
                        {
                            equated.push((si, x - self.sources[si].offset));
                        }
                    }
                }
                Some(_) => other *= RANGE_SELECTIVITY,
                None => other *= OTHER_SELECTIVITY,
            }
        }
        eq_cols.sort_unstable();
        eq_cols.dedup();
        let (total, local) = (self.total[t], self.local[t]);
        let share = local / total;
        let covers = |ix: &IndexShape| ix.columns.iter().all(|c| eq_cols.contains(c));
        let unique_key = self.indexes[t].iter().any(|ix| ix.unique && covers(ix));
        let probe_index = self.indexes[t]
            .iter()
            .any(|ix| covers(ix) || (ix.ordered && eq_cols.contains(&ix.columns[0])));
        // Equalities past the one key the access path uses narrow further.
        let extra = |used: usize| EQ_SELECTIVITY.powi(eq_cols.len().saturating_sub(used) as i32);
        // Equated to a unique key of a placed source, as a foreign key to
        // the row it references: its rows spread over that source's keys.
        let mut referenced: Option<f64> = None;
        for &(p, _) in &equated {
            let cols: Vec<usize> = equated
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, c)| *c)
                .collect();
            if self.indexes[p]
                .iter()
                .any(|ix| ix.unique && ix.columns.iter().all(|c| cols.contains(c)))
            {
                let spread = total / self.total[p];
                referenced = Some(referenced.map_or(spread, |r: f64| r.min(spread)));
            }
        }
        let per_key = (referenced.unwrap_or(ROWS_PER_KEY) * share).min(local);
        let (read, fanout) = if eq_cols.is_empty() {
            // Nested loop: the whole source for each row so far.
            (rows * total, local)
        } else if unique_key {
            (rows, share)
        } else if probe_index {
            (rows * (1.0 + ROWS_PER_KEY), per_key * extra(1))
        } else {
            // Hash join on every equality: built once, probed per row.
            (total + rows, per_key)
        };
        let out = (rows * fanout * other).max(1.0);
        (read + out, out)
    }

    /// The cheapest order by costing every subset of sources once.
    fn best_order(&self) -> Vec<usize> {
        let n = self.sources.len();
        // For each subset (bit i = source i placed): cost, rows, order.
        let mut best: Vec<Option<(f64, f64, Vec<usize>)>> = vec![None; 1 << n];
        for i in 0..n {
            best[1 << i] = Some((self.first_cost[i], self.local[i], vec![i]));
        }
        for mask in 1..(1usize << n) {
            let Some((cost, rows, order)) = best[mask].clone() else {
                continue;
            };
            for t in (0..n).filter(|t| mask & (1 << t) == 0) {
                let (c, r) = self.step(&order, rows, t);
                let next = mask | (1 << t);
                if best[next].as_ref().is_none_or(|(bc, _, _)| cost + c < *bc) {
                    let mut o = order.clone();
                    o.push(t);
                    best[next] = Some((cost + c, r, o));
                }
            }
        }
        best[(1 << n) - 1]
            .take()
            .map(|(_, _, o)| o)
            .unwrap_or_else(|| (0..n).collect())
    }

    fn greedy_from(&self, first: usize) -> (f64, Vec<usize>) {
        let n = self.sources.len();
        let mut placed = vec![first];
        let mut rows = self.local[first];
        let mut cost = self.first_cost[first];
        while placed.len() < n {
            let mut best: Option<(f64, f64, usize)> = None;
            for t in (0..n).filter(|t| !placed.contains(t)) {
                let (c, r) = self.step(&placed, rows, t);
                if best.is_none_or(|(bc, _, _)| c < bc) {
                    best = Some((c, r, t));
                }
            }
            let Some((c, r, t)) = best else { break };
            cost += c;
            rows = r.min(1e18);
            placed.push(t);
        }
        (cost, placed)
    }
}

/// `col = other` where `col` is a plain column of source `si` and `other`
/// does not read `si`: returns (column within source, other side, op).
fn eq_column(e: &Expr, sources: &[Source], si: usize) -> Option<(usize, Expr, CmpOp)> {
    let Expr::Cmp(op, l, r) = e else { return None };
    let src = &sources[si];
    let own =
        |x: &Expr| matches!(x, Expr::Column(c) if *c >= src.offset && *c < src.offset + src.width);
    let reads_si = |x: &Expr| sources_of(x, sources).contains(&si);
    if own(l) && !reads_si(r) {
        if let Expr::Column(c) = l.as_ref() {
            return Some((c - src.offset, (**r).clone(), *op));
        }
    }
    if own(r) && !reads_si(l) {
        if let Expr::Column(c) = r.as_ref() {
            return Some((c - src.offset, (**l).clone(), op.flip()));
        }
    }
    None
}

fn choose_access(
    b: &Binder,
    sources: &[Source],
    si: usize,
    placed: &[usize],
    local: &[Expr],
    join: &[Expr],
) -> Access {
    let SourceKind::Table { id, .. } = &sources[si].kind else {
        return hash_join(sources, si, join).unwrap_or(Access::Scan);
    };
    let Some(table) = b.catalog.db.table(*id) else {
        return Access::Scan;
    };
    let indexes = &table.schema().indexes;
    let earlier = |x: &Expr| {
        sources_of(x, sources)
            .iter()
            .all(|s| placed.contains(s) && *s != si)
    };
    // Equalities usable as index keys: column -> key expression.
    let mut eqs: Vec<(usize, Expr)> = Vec::new();
    for e in local.iter().chain(join) {
        if let Some((c, other, CmpOp::Eq)) = eq_column(e, sources, si) {
            if earlier(&other) && !bind::expr_has_correlated_sub(&other) {
                eqs.push((c, other));
            }
        }
    }
    let mut best: Option<(usize, usize, bool)> = None; // (index, columns, unique)
    for (i, ix) in indexes.iter().enumerate() {
        let covered = ix
            .columns
            .iter()
            .take_while(|c| eqs.iter().any(|(ec, _)| ec == *c))
            .count();
        let full = covered == ix.columns.len();
        let usable = full || (ix.kind == IndexKind::Ordered && covered > 0);
        if !usable {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, n, u)) => (ix.unique && full && !u) || (covered > n && (!u || ix.unique)),
        };
        if better {
            best = Some((i, covered, ix.unique && full));
        }
    }
    if let Some((i, covered, _)) = best {
        let ix = &indexes[i];
        let keys = ix.columns[..covered]
            .iter()
            .map(|c| {
                eqs.iter()
                    .find(|(ec, _)| ec == c)
                    .map(|(_, e)| e.clone())
                    .unwrap_or(Expr::Const(crate::types::Value::Null))
            })
            .collect();
        return Access::IndexEq {
            index: i,
            name: ix.name.clone(),
            keys,
        };
    }
    if let Some(kept) = kept_hash(sources, si, indexes, local) {
        return kept;
    }
    // Joined to earlier levels by equality but not through an index: hash
    // join, building from this table's own best access path.
    if placed.len() > 1 {
        if let Some(Access::HashJoin { build, probe, .. }) = hash_join(sources, si, join) {
            let from = local_access(sources, si, indexes, local, &[], &|x| {
                sources_of(x, sources).is_empty()
            });
            return Access::HashJoin {
                build,
                probe,
                from: Box::new(from),
                kept: false,
                recheck: Vec::new(),
            };
        }
    }
    local_access(sources, si, indexes, local, join, &earlier)
}

/// IN-list, range or scan access to source `si` from predicates whose other
/// side satisfies `earlier`.
fn local_access(
    sources: &[Source],
    si: usize,
    indexes: &[crate::storage::IndexDef],
    local: &[Expr],
    join: &[Expr],
    earlier: &dyn Fn(&Expr) -> bool,
) -> Access {
    let first_col = |c: usize| {
        indexes
            .iter()
            .position(|ix| ix.columns.first() == Some(&c) && ix.kind == IndexKind::Ordered)
    };
    // IN (constant list) on an indexed column.
    for e in local {
        if let Expr::InList {
            expr,
            list,
            negated: false,
        } = e
        {
            if let Expr::Column(c) = expr.as_ref() {
                let c = c - sources[si].offset;
                if let Some(i) = indexes.iter().position(|ix| ix.columns == [c]) {
                    if list.iter().all(|x| x.is_row_independent()) {
                        return Access::IndexIn {
                            index: i,
                            name: indexes[i].name.clone(),
                            values: list.clone(),
                        };
                    }
                }
            }
        }
    }
    // A range on the first column of an ordered index.
    for e in local.iter().chain(join) {
        let (c, lower, upper) = match e {
            Expr::Between {
                expr,
                low,
                high,
                negated: false,
            } => match expr.as_ref() {
                Expr::Column(c) if earlier(low) && earlier(high) => (
                    *c,
                    Some(((**low).clone(), true)),
                    Some(((**high).clone(), true)),
                ),
                _ => continue,
            },
            _ => match eq_column(e, sources, si) {
                Some((c, other, op)) if earlier(&other) => {
                    let c = c + sources[si].offset;
                    match op {
                        CmpOp::Gt => (c, Some((other, false)), None),
                        CmpOp::GtEq => (c, Some((other, true)), None),
                        CmpOp::Lt => (c, None, Some((other, false))),
                        CmpOp::LtEq => (c, None, Some((other, true))),
                        _ => continue,
                    }
                }
                _ => continue,
            },
        };
        if c < sources[si].offset || c >= sources[si].offset + sources[si].width {
            continue;
        }
        let c = c - sources[si].offset;
        if let Some(i) = first_col(c) {
            let (mut lower, mut upper) = (lower, upper);
            // Combine with the opposite bound from another predicate.
            for other in local.iter().chain(join) {
                if let Some((oc, ox, op)) = eq_column(other, sources, si) {
                    if oc == c && earlier(&ox) {
                        match op {
                            CmpOp::Gt | CmpOp::GtEq if lower.is_none() => {
                                lower = Some((ox, op == CmpOp::GtEq))
                            }
                            CmpOp::Lt | CmpOp::LtEq if upper.is_none() => {
                                upper = Some((ox, op == CmpOp::LtEq))
                            }
                            _ => {}
                        }
                    }
                }
            }
            return Access::IndexRange {
                index: i,
                name: indexes[i].name.clone(),
                lower,
                upper,
            };
        }
    }
    Access::Scan
}

/// A correlated subquery's table equated to the enclosing row with no index
/// to serve it (`lineitem.l_partkey = part.p_partkey` in TPC-H Q17): a hash
/// table on those columns, built once per statement from the rows that pass
/// the filters not reading the enclosing row, and probed for each outer
/// row, instead of a scan of the table for each.
fn kept_hash(
    sources: &[Source],
    si: usize,
    indexes: &[crate::storage::IndexDef],
    local: &[Expr],
) -> Option<Access> {
    // A filter taking values from a sequence runs once per row it is asked
    // of: never once for all outer rows.
    if local.iter().any(Expr::uses_sequence) {
        return None;
    }
    let reads_outer = |e: &Expr| e.reads_outer() || bind::expr_has_correlated_sub(e);
    let mut build = Vec::new();
    let mut probe = Vec::new();
    for e in local {
        if let Some((c, other, CmpOp::Eq)) = eq_column(e, sources, si) {
            if other.reads_outer() && !bind::expr_has_correlated_sub(&other) {
                build.push(Expr::Column(c + sources[si].offset));
                probe.push(other);
            }
        }
    }
    if build.is_empty() {
        return None;
    }
    let from = local_access(sources, si, indexes, local, &[], &|x| {
        sources_of(x, sources).is_empty() && !reads_outer(x)
    });
    let recheck = (0..local.len())
        .filter(|&i| reads_outer(&local[i]))
        .collect();
    Some(Access::HashJoin {
        build,
        probe,
        from: Box::new(from),
        kept: true,
        recheck,
    })
}

fn hash_join(sources: &[Source], si: usize, join: &[Expr]) -> Option<Access> {
    let mut build = Vec::new();
    let mut probe = Vec::new();
    for e in join {
        let Expr::Cmp(CmpOp::Eq, l, r) = e else {
            continue;
        };
        let (ls, rs) = (sources_of(l, sources), sources_of(r, sources));
        if bind::expr_has_correlated_sub(e) {
            continue;
        }
        // A column equated to two earlier ones (as implied equalities
        // make it) is one key: the other equality stays a filter.
        if ls == [si] && !rs.contains(&si) && !rs.is_empty() && !build.contains(&**l) {
            build.push((**l).clone());
            probe.push((**r).clone());
        } else if rs == [si] && !ls.contains(&si) && !ls.is_empty() && !build.contains(&**r) {
            build.push((**r).clone());
            probe.push((**l).clone());
        }
    }
    if build.is_empty() {
        None
    } else {
        Some(Access::HashJoin {
            build,
            probe,
            from: Box::new(Access::Scan),
            kept: false,
            recheck: Vec::new(),
        })
    }
}

/// The predicates an access answers by itself when probed with integers
/// (`Level::exact_filters`, `Level::exact_join`): positions in the level's
/// local and join predicates.
#[derive(Default)]
struct Exact {
    local: Vec<usize>,
    join: Vec<usize>,
}

/// Which predicates the chosen access answers by itself for integer probes
/// of integer columns: `col = key` for each key of an index lookup (in
/// `local`, or in `join` when the key reads earlier levels), the bounds of a
/// range, and a hash join's key equalities (in `join`). For a hash join the
/// local positions are those its `from` access answers while the table is
/// built.
fn exact_filters(
    b: &Binder,
    src: &Source,
    access: &Access,
    local: &[Expr],
    join: &[Expr],
) -> Exact {
    let SourceKind::Table { id, .. } = &src.kind else {
        return Exact::default();
    };
    let Some(table) = b.catalog.db.table(*id) else {
        return Exact::default();
    };
    let schema = table.schema();
    let int_col = |c: usize| schema.columns.get(c).is_some_and(|col| col.ty.is_integer());
    let cmp = ColumnCmp { offset: src.offset };
    match access {
        Access::IndexEq { index, keys, .. } => {
            let mut exact = Exact::default();
            let columns = schema.indexes.get(*index).map_or(&[][..], |ix| &ix.columns);
            for (&c, k) in columns.iter().zip(keys).filter(|(c, _)| int_col(**c)) {
                let is_key = |e: &Expr| cmp.is(e, CmpOp::Eq, c, k);
                if let Some(i) = local.iter().position(is_key) {
                    exact.local.push(i);
                } else if let Some(i) = join.iter().position(is_key) {
                    exact.join.push(i);
                }
            }
            exact
        }
        Access::HashJoin {
            build, probe, from, ..
        } => {
            let mut exact = exact_filters(b, src, from, local, &[]);
            for (k, p) in build.iter().zip(probe) {
                // Build keys still read the combined row here.
                let Expr::Column(c) = k else { continue };
                let Some(c) = c.checked_sub(src.offset).filter(|c| int_col(*c)) else {
                    continue;
                };
                if let Some(i) = join.iter().position(|e| cmp.is(e, CmpOp::Eq, c, p)) {
                    exact.join.push(i);
                }
            }
            exact
        }
        Access::IndexRange {
            index,
            lower,
            upper,
            ..
        } => match schema.indexes.get(*index).and_then(|ix| ix.columns.first()) {
            Some(&c) if int_col(c) => Exact {
                local: answered_by_range(&cmp, c, lower.as_ref(), upper.as_ref(), local),
                join: Vec::new(),
            },
            _ => Exact::default(),
        },
        _ => Exact::default(),
    }
}

/// Comparisons of a column of the source at `offset` with a key, as
/// written (either side) and with the key the same expression exactly.
struct ColumnCmp {
    offset: usize,
}

impl ColumnCmp {
    fn is(&self, e: &Expr, op: CmpOp, c: usize, k: &Expr) -> bool {
        let col = Expr::Column(self.offset + c);
        match e {
            Expr::Cmp(o, l, r) => {
                (*o == op && **l == col && same_expr(r, k))
                    || (o.flip() == op && **r == col && same_expr(l, k))
            }
            _ => false,
        }
    }
}

/// Positions in `local` of the predicates an integer range on column `c`
/// answers: `c BETWEEN lower AND upper` (both inclusive) and `c >= lower`,
/// `c > lower`, `c <= upper`, `c < upper` as the range reads them.
fn answered_by_range(
    cmp: &ColumnCmp,
    c: usize,
    lower: Option<&(Expr, bool)>,
    upper: Option<&(Expr, bool)>,
    local: &[Expr],
) -> Vec<usize> {
    let answered = |e: &Expr| match e {
        Expr::Between {
            expr,
            low,
            high,
            negated: false,
        } => {
            **expr == Expr::Column(cmp.offset + c)
                && lower.is_some_and(|(x, incl)| *incl && same_expr(x, low))
                && upper.is_some_and(|(x, incl)| *incl && same_expr(x, high))
        }
        _ => {
            let lo = lower.is_some_and(|(x, incl)| {
                cmp.is(e, if *incl { CmpOp::GtEq } else { CmpOp::Gt }, c, x)
            });
            let hi = upper.is_some_and(|(x, incl)| {
                cmp.is(e, if *incl { CmpOp::LtEq } else { CmpOp::Lt }, c, x)
            });
            lo || hi
        }
    };
    (0..local.len()).filter(|&i| answered(&local[i])).collect()
}
