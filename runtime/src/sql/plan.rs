//! Checked, executable plans for queries and data changes.
//!
//! Owns: the plan data structures and their EXPLAIN rendering.
//! Must not: refer to names (everything is resolved to table ids, column
//! offsets and index positions) or to the SQL text.
//!
//! A SELECT's FROM items are laid side by side in one "combined row" (each
//! source at a fixed `offset`); `levels` say in which order sources are
//! visited (nested loops, outermost first) and how each is accessed.

pub use super::constraint::BoundCheck;
use super::expr::Expr;
use super::ColumnInfo;
use crate::storage::TableId;
use crate::types::DataType;
use std::fmt::Write;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    pub node: QueryNode,
    /// The visible output columns; rows produced by `node` may carry extra
    /// hidden sort keys after them.
    pub columns: Vec<ColumnInfo>,
    pub order_by: Vec<SortKey>,
    pub limit: Option<Expr>,
    pub offset: Option<Expr>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SortKey {
    /// Offset in the produced row.
    pub index: usize,
    pub desc: bool,
    pub nulls_first: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    Union,
    Intersect,
    Except,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueryNode {
    Select(Box<SelectPlan>),
    SetOp {
        op: SetOp,
        all: bool,
        left: Box<QueryPlan>,
        right: Box<QueryPlan>,
    },
    Values(Vec<Vec<Expr>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct SelectPlan {
    pub sources: Vec<Source>,
    /// Width of the combined row.
    pub width: usize,
    /// Visit order: `levels[0]` is the outermost loop.
    pub levels: Vec<Level>,
    /// Conjuncts that read no source (constants, parameters, outer rows):
    /// checked once before any row is read.
    pub pre_filter: Vec<Expr>,
    pub aggregate: Option<AggPlan>,
    /// Over the group row when aggregating.
    pub having: Option<Expr>,
    /// Over the combined row, or the group row when aggregating; visible
    /// columns first, then hidden sort keys.
    pub projection: Vec<Expr>,
    /// DISTINCT applies to the first `visible` projected values.
    pub distinct: bool,
    pub visible: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    Table {
        id: TableId,
        name: String,
    },
    /// A subquery or view in FROM, materialized once per execution.
    Derived {
        plan: Arc<QueryPlan>,
        name: String,
    },
    /// `FROM` omitted: one empty row.
    Unit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub kind: SourceKind,
    pub offset: usize,
    pub width: usize,
    /// LEFT JOIN: produce a NULL-extended row when nothing matches.
    pub outer: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub source: usize,
    pub access: Access,
    /// Predicates on this source alone, over its own row (offset 0).
    pub local_filter: Vec<Expr>,
    /// Predicates over the combined row once this source is placed; for an
    /// outer source these decide whether a row matches (the ON clause).
    pub join_filter: Vec<Expr>,
    /// Outer sources only: WHERE predicates checked after NULL extension.
    pub post_filter: Vec<Expr>,
    /// Positions in `local_filter` that the access path answers exactly when
    /// its keys and bounds evaluate to integers (an integer index probed with
    /// integers): those need no re-check per row. Any other probe value
    /// re-checks them, so type errors and numeric subtleties still surface.
    /// For a hash join these are what its `from` access (an index range)
    /// answers while the table is built; every other local filter is
    /// applied while building, and none is evaluated per probe.
    pub exact_filters: Vec<usize>,
    /// Positions in `join_filter` the access answers exactly under the same
    /// rule: the equalities an index lookup or a (not kept) hash join takes
    /// its keys from.
    pub exact_join: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    Scan,
    /// Equality on every column of an index (keys over the combined row;
    /// they read only earlier levels, parameters and constants).
    IndexEq {
        index: usize,
        name: String,
        keys: Vec<Expr>,
    },
    /// `col IN (list)` on a single-column index.
    IndexIn {
        index: usize,
        name: String,
        values: Vec<Expr>,
    },
    /// A range on the first column of an ordered index.
    IndexRange {
        index: usize,
        name: String,
        lower: Option<(Expr, bool)>,
        upper: Option<(Expr, bool)>,
    },
    /// Build a hash table over this source (keys over its own row) from the
    /// rows `from` yields, probe with keys over the combined row.
    HashJoin {
        build: Vec<Expr>,
        probe: Vec<Expr>,
        from: Box<Access>,
        /// Keyed by the enclosing query's row (a correlated subquery's
        /// `t.k = outer.k`): built once per statement and kept for every
        /// outer row, from the rows that pass the local filters not in
        /// `recheck`.
        kept: bool,
        /// Positions in `local_filter` checked per row found, not when
        /// building: those that read the enclosing row.
        recheck: Vec<usize>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    CountStar,
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Total,
    GroupConcat,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggCall {
    pub func: AggFunc,
    /// Over the combined row; None for COUNT(*).
    pub arg: Option<Expr>,
    /// GROUP_CONCAT's separator.
    pub separator: Option<Expr>,
    pub distinct: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggPlan {
    /// Over the combined row. The group row is keys, then aggregate results.
    pub keys: Vec<Expr>,
    pub calls: Vec<AggCall>,
}

/// A planned INSERT / UPDATE / DELETE.
#[derive(Debug, Clone, PartialEq)]
pub enum DmlPlan {
    Insert(InsertPlan),
    Update(UpdatePlan),
    Delete(DeletePlan),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Fail the statement on a unique violation.
    Error,
    /// `ON CONFLICT DO NOTHING` / `INSERT OR IGNORE`.
    Ignore,
    /// `INSERT OR REPLACE` / `REPLACE` / `UPSERT`: remove conflicting rows first.
    Replace,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InsertPlan {
    pub table: TableId,
    pub table_name: String,
    /// Produces rows in the order of `targets`.
    pub source: Box<QueryPlan>,
    /// Table column receiving each source column.
    pub targets: Vec<usize>,
    /// `targets` is every column in table order (the source row is the row).
    pub all_columns_in_order: bool,
    /// The full row template: defaults (or NULL) for columns not targeted.
    pub defaults: Vec<Expr>,
    pub column_types: Vec<DataType>,
    pub conflict: Conflict,
    /// `ON CONFLICT (cols) DO UPDATE SET ...`: the arbiter index and the
    /// assignments over the row [existing columns..., excluded columns...].
    pub do_update: Option<DoUpdatePlan>,
    /// The table's CHECKs, over its row.
    pub checks: Vec<BoundCheck>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DoUpdatePlan {
    pub index: usize,
    pub assignments: Vec<(usize, Expr)>,
    pub filter: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdatePlan {
    pub table: TableId,
    /// Finds the rows (a single-source select over the table).
    pub scan: Box<SelectPlan>,
    pub assignments: Vec<(usize, Expr)>,
    pub column_types: Vec<DataType>,
    /// The table's CHECKs, over its row.
    pub checks: Vec<BoundCheck>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeletePlan {
    pub table: TableId,
    pub scan: Box<SelectPlan>,
}

impl QueryPlan {
    /// A readable rendering of the plan for EXPLAIN, one operator a line.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        self.explain_into(&mut out, 0);
        out
    }

    fn explain_into(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        if self.limit.is_some() || self.offset.is_some() {
            let _ = writeln!(out, "{pad}Limit");
        }
        if !self.order_by.is_empty() {
            let keys: Vec<String> = self
                .order_by
                .iter()
                .map(|k| format!("#{}{}", k.index + 1, if k.desc { " DESC" } else { "" }))
                .collect();
            let _ = writeln!(out, "{pad}Sort {}", keys.join(", "));
        }
        match &self.node {
            QueryNode::Select(s) => s.explain_into(out, depth),
            QueryNode::Values(rows) => {
                let _ = writeln!(out, "{pad}Values ({} rows)", rows.len());
            }
            QueryNode::SetOp {
                op,
                all,
                left,
                right,
            } => {
                let _ = writeln!(out, "{pad}{:?}{}", op, if *all { " ALL" } else { "" });
                left.explain_into(out, depth + 1);
                right.explain_into(out, depth + 1);
            }
        }
    }
}

impl SelectPlan {
    pub fn explain_into(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        if self.distinct {
            let _ = writeln!(out, "{pad}Distinct");
        }
        if let Some(a) = &self.aggregate {
            let what = if a.keys.is_empty() {
                "Aggregate"
            } else {
                "HashAggregate"
            };
            let _ = writeln!(
                out,
                "{pad}{what} ({} keys, {} aggregates)",
                a.keys.len(),
                a.calls.len()
            );
        }
        for (n, level) in self.levels.iter().enumerate() {
            let src = &self.sources[level.source];
            let name = match &src.kind {
                SourceKind::Table { name, .. } => name.clone(),
                SourceKind::Derived { name, .. } => format!("{name} (subquery)"),
                SourceKind::Unit => "(no table)".into(),
            };
            let join = if n == 0 {
                ""
            } else if src.outer {
                "Left join "
            } else {
                "Join "
            };
            let access = match &level.access {
                Access::Scan => format!("Scan {name}"),
                Access::IndexEq { name: ix, .. } => format!("Index lookup {name} using {ix}"),
                Access::IndexIn {
                    name: ix, values, ..
                } => {
                    format!("Index lookup {name} using {ix} ({} values)", values.len())
                }
                Access::IndexRange { name: ix, .. } => {
                    format!("Index range scan {name} using {ix}")
                }
                Access::HashJoin {
                    build, from, kept, ..
                } => {
                    let src = match from.as_ref() {
                        Access::IndexRange { name: ix, .. } => {
                            format!(", built from range on {ix}")
                        }
                        Access::IndexIn { name: ix, .. } | Access::IndexEq { name: ix, .. } => {
                            format!(", built from lookup on {ix}")
                        }
                        _ => String::new(),
                    };
                    let kept = if *kept {
                        ", kept across outer rows"
                    } else {
                        ""
                    };
                    format!("Hash join {name} on {} keys{src}{kept}", build.len())
                }
            };
            let filt = level.local_filter.len() + level.join_filter.len() + level.post_filter.len();
            let filt = if filt > 0 {
                format!(" (filter: {filt})")
            } else {
                String::new()
            };
            let _ = writeln!(out, "{pad}{}{join}{access}{filt}", "  ".repeat(n));
            if let SourceKind::Derived { plan, .. } = &src.kind {
                plan.explain_into(out, depth + n + 1);
            }
        }
        // Subqueries in filters, HAVING and the select list, each once,
        // after all levels (not those inside aggregate arguments).
        let mut subs: Vec<(Arc<QueryPlan>, bool)> = Vec::new();
        let exprs = self
            .pre_filter
            .iter()
            .chain(self.levels.iter().flat_map(|l| {
                l.local_filter
                    .iter()
                    .chain(&l.join_filter)
                    .chain(&l.post_filter)
            }))
            .chain(self.having.iter())
            .chain(&self.projection);
        for e in exprs {
            e.subqueries(&mut |s| {
                if !subs.iter().any(|(p, _)| Arc::ptr_eq(p, &s.plan)) {
                    subs.push((s.plan.clone(), s.correlated));
                }
            });
        }
        for (plan, correlated) in subs {
            let kind = if correlated {
                "Subquery, per outer row"
            } else {
                "Subquery, once"
            };
            let _ = writeln!(out, "{pad}{kind}");
            plan.explain_into(out, depth + 1);
        }
    }
}
