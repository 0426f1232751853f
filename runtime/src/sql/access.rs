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
    let any_outer = sources.iter().any(|s| s.outer);
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
        level.exact_filters = exact_filters(b, &sources[si], &level.access, &local);
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
/// table sizes and predicate shapes; each source is tried as the outermost,
/// the rest added greedily by cheapest next step, and the cheapest whole
/// order wins.
fn join_order(b: &Binder, sources: &[Source], preds: &[Pred]) -> Vec<usize> {
    let n = sources.len();
    if n <= 1 {
        return (0..n).collect();
    }
    let est = Estimator::new(b, sources, preds);
    // Trying every start is quadratic; past a few sources, try the smallest.
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

/// Start tables the join planner tries.
const JOIN_START_CANDIDATES: usize = 8;

struct Estimator<'p> {
    sources: &'p [Source],
    preds: &'p [Pred],
    /// Rows of each source after its own predicates.
    local: Vec<f64>,
    /// For each source: (column within source, unique) of each index's first column.
    index_cols: Vec<Vec<(usize, bool)>>,
}

impl<'p> Estimator<'p> {
    fn new(b: &Binder, sources: &'p [Source], preds: &'p [Pred]) -> Self {
        let mut local = Vec::with_capacity(sources.len());
        let mut index_cols = Vec::with_capacity(sources.len());
        for (i, s) in sources.iter().enumerate() {
            let (rows, ixs) = match &s.kind {
                SourceKind::Table { id, .. } => match b.catalog.db.table(*id) {
                    Some(t) => (
                        t.len() as f64,
                        t.schema()
                            .indexes
                            .iter()
                            .filter_map(|ix| {
                                ix.columns
                                    .first()
                                    .map(|c| (*c, ix.unique && ix.columns.len() == 1))
                            })
                            .collect(),
                    ),
                    None => (0.0, Vec::new()),
                },
                SourceKind::Derived { .. } => (1000.0, Vec::new()),
                SourceKind::Unit => (1.0, Vec::new()),
            };
            let mut r = rows.max(1.0);
            for p in preds.iter().filter(|p| p.srcs == [i]) {
                r *= match eq_column(&p.expr, sources, i) {
                    Some((c, _, CmpOp::Eq)) if ixs.iter().any(|(ic, u)| *ic == c && *u) => 1.0 / r,
                    Some((_, _, CmpOp::Eq)) => 0.1,
                    Some(_) => 0.3,
                    None if matches!(p.expr, Expr::Between { .. }) => 0.1,
                    None => 0.5,
                };
            }
            local.push(r.max(1.0));
            index_cols.push(ixs);
        }
        Estimator {
            sources,
            preds,
            local,
            index_cols,
        }
    }

    /// Cost of adding `t` after `placed` with `rows` rows so far, and the
    /// rows after it.
    fn step(&self, placed: &[usize], rows: f64, t: usize) -> (f64, f64) {
        let mut lookup: Option<bool> = None; // Some(unique) when an index serves the join
        let mut hashable = false;
        for p in self.preds {
            if !p.srcs.contains(&t)
                || p.srcs.len() < 2
                || !p.srcs.iter().all(|x| *x == t || placed.contains(x))
            {
                continue;
            }
            if let Some((c, _, CmpOp::Eq)) = eq_column(&p.expr, self.sources, t) {
                match self.index_cols[t].iter().find(|(ic, _)| *ic == c) {
                    Some((_, u)) => lookup = Some(lookup.unwrap_or(false) || *u),
                    None => hashable = true,
                }
            }
        }
        let local = self.local[t];
        match (lookup, hashable) {
            (Some(true), _) => (rows * 2.0, rows),
            (Some(false), _) => (rows * 4.0, rows * (local / 10.0).max(1.0)),
            (None, true) => (local + rows, rows * (local / 10.0).max(1.0)),
            (None, false) => (rows * local, rows * local),
        }
    }

    fn greedy_from(&self, first: usize) -> (f64, Vec<usize>) {
        let n = self.sources.len();
        let mut placed = vec![first];
        let mut rows = self.local[first];
        let mut cost = rows;
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
        if ls == [si] && !rs.contains(&si) && !rs.is_empty() {
            build.push((**l).clone());
            probe.push((**r).clone());
        } else if rs == [si] && !ls.contains(&si) && !ls.is_empty() {
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
        })
    }
}

/// Which local predicates the chosen index access answers by itself for
/// integer probes: `col = key` for each key of an index lookup, and the
/// bounds of a range, on integer columns.
fn exact_filters(b: &Binder, src: &Source, access: &Access, local: &[Expr]) -> Vec<usize> {
    let SourceKind::Table { id, .. } = &src.kind else {
        return Vec::new();
    };
    let Some(table) = b.catalog.db.table(*id) else {
        return Vec::new();
    };
    let schema = table.schema();
    let int_col = |c: usize| schema.columns.get(c).is_some_and(|col| col.ty.is_integer());
    let col = |c: usize| Expr::Column(src.offset + c);
    let is_cmp = |e: &Expr, op: CmpOp, c: usize, k: &Expr| match e {
        Expr::Cmp(o, l, r) => {
            (*o == op && **l == col(c) && **r == *k)
                || (o.flip() == op && **r == col(c) && **l == *k)
        }
        _ => false,
    };
    let mut out = Vec::new();
    match access {
        Access::IndexEq { index, keys, .. } => {
            let Some(ix) = schema.indexes.get(*index) else {
                return out;
            };
            for (c, k) in ix.columns.iter().zip(keys) {
                if !int_col(*c) {
                    continue;
                }
                if let Some(i) = local.iter().position(|e| is_cmp(e, CmpOp::Eq, *c, k)) {
                    out.push(i);
                }
            }
        }
        Access::IndexRange {
            index,
            lower,
            upper,
            ..
        } => {
            let Some(&c) = schema.indexes.get(*index).and_then(|ix| ix.columns.first()) else {
                return out;
            };
            if !int_col(c) {
                return out;
            }
            for (i, e) in local.iter().enumerate() {
                let exact = match e {
                    Expr::Between {
                        expr,
                        low,
                        high,
                        negated: false,
                    } => {
                        **expr == col(c)
                            && lower.as_ref().is_some_and(|(x, incl)| *incl && *x == **low)
                            && upper
                                .as_ref()
                                .is_some_and(|(x, incl)| *incl && *x == **high)
                    }
                    _ => {
                        let lo = lower.as_ref().is_some_and(|(x, incl)| {
                            is_cmp(e, if *incl { CmpOp::GtEq } else { CmpOp::Gt }, c, x)
                        });
                        let hi = upper.as_ref().is_some_and(|(x, incl)| {
                            is_cmp(e, if *incl { CmpOp::LtEq } else { CmpOp::Lt }, c, x)
                        });
                        lo || hi
                    }
                };
                if exact {
                    out.push(i);
                }
            }
        }
        _ => {}
    }
    out
}
