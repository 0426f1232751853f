//! Multi-partition work, run by the coordinator while it holds every
//! partition (their cores lent it their states): a cross-partition read or
//! write is run on a scratch
//! engine holding the rows it needs (gathered from every partition), and
//! the writes it makes are routed back to the partitions that own them.
//!
//! This is correct for any statement or procedure the engine can run, at a
//! cost proportional to the tables it mentions. A distributed planner that
//! sends fragments to partitions instead of gathering rows replaces it in a
//! later issue; single-partition calls never come here.

use super::sqltext;
use super::TxnError;
use crate::catalog::{partition_for, PartitionId, Quota};
use crate::durability::{self, LoggedOp, LoggedWrites};
use crate::partition::PartitionState;
use crate::sql::Engine;
use crate::storage::Row;
use crate::types::TenantId;
use std::collections::BTreeSet;

/// Every partition's state, lent by its core for the transaction, in
/// partition order.
pub type Guards = [Box<PartitionState>];

fn internal(e: impl std::fmt::Display) -> TxnError {
    TxnError::Internal(e.to_string())
}

/// Lowercase names of the tenant's tables and views.
pub fn known_names(g: &Guards, tenant: TenantId) -> BTreeSet<String> {
    let Some(p0) = g[0].tenant_ref(tenant) else {
        return BTreeSet::new();
    };
    let tables = p0
        .engine
        .database()
        .tables()
        .map(|t| t.schema().name.to_ascii_lowercase());
    let views = p0.engine.views().keys().map(|v| v.to_ascii_lowercase());
    tables.chain(views).collect()
}

/// The tables and views `words` mention, with the names inside mentioned
/// views' queries (transitively).
pub fn needed(g: &Guards, tenant: TenantId, words: &[String]) -> BTreeSet<String> {
    let known = known_names(g, tenant);
    let mut need = sqltext::mentioned(words, &known);
    let Some(p0) = g[0].tenant_ref(tenant) else {
        return need;
    };
    let mut todo: Vec<String> = need.iter().cloned().collect();
    while let Some(n) = todo.pop() {
        // A foreign key is checked against its parent and children: they
        // come along (and theirs, so a chain is checked whole).
        for t in p0.engine.database().tables() {
            let s = t.schema();
            let linked = s
                .foreign_keys
                .iter()
                .any(|fk| fk.parent.eq_ignore_ascii_case(&n))
                || (s.name.eq_ignore_ascii_case(&n) && !s.foreign_keys.is_empty());
            if !linked {
                continue;
            }
            let mut names: Vec<String> =
                s.foreign_keys.iter().map(|fk| fk.parent.clone()).collect();
            names.push(s.name.to_ascii_lowercase());
            for m in names {
                if need.insert(m.clone()) {
                    todo.push(m);
                }
            }
        }
        if let Some(v) = p0
            .engine
            .views()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&n))
        {
            for m in sqltext::mentioned(&sqltext::words(&v.1.query.to_string()), &known) {
                if need.insert(m.clone()) {
                    todo.push(m);
                }
            }
        }
    }
    need
}

/// Whether every table in `names` is replicated (so partition 0 has all
/// of their rows).
pub fn all_replicated(g: &Guards, tenant: TenantId, names: &BTreeSet<String>) -> bool {
    let Some(p0) = g[0].tenant_ref(tenant) else {
        return true;
    };
    p0.engine
        .database()
        .tables()
        .filter(|t| names.contains(&t.schema().name.to_ascii_lowercase()))
        .all(|t| t.schema().partition_column.is_none())
}

/// An engine holding the tables (schema, indexes and, unless `empty`, every
/// row from every partition) and views named in `names`.
pub fn scratch(
    g: &Guards,
    tenant: TenantId,
    names: &BTreeSet<String>,
    empty: bool,
) -> Result<Engine, TxnError> {
    let mut s = Engine::new();
    // It holds every partition: nextval() takes turns among them.
    s.set_placement(crate::storage::Placement {
        partition: None,
        partitions: g.len() as u32,
    });
    let Some(p0) = g[0].tenant_ref(tenant) else {
        return Ok(s);
    };
    // A foreign key is checked against the rows there: they must be there.
    let empty = empty
        && !p0.engine.database().tables().any(|t| {
            names.contains(&t.schema().name.to_ascii_lowercase())
                && !t.schema().foreign_keys.is_empty()
        });
    for table in p0.engine.database().tables() {
        let schema = table.schema();
        // Sequences come along, rows and all: any write may take a value.
        let sequences = crate::sql::is_sequence_table(&schema.name);
        if !names.contains(&schema.name.to_ascii_lowercase()) && !sequences {
            continue;
        }
        let db = s.database_mut();
        let id = db.create_table(schema.clone()).map_err(internal)?;
        if empty && !sequences {
            continue;
        }
        db.begin().map_err(internal)?;
        let sources: &Guards = if schema.partition_column.is_some() {
            g
        } else {
            &g[..1]
        };
        for src in sources {
            let Some(t) = src
                .tenant_ref(tenant)
                .and_then(|p| p.engine.database().table_by_name(&schema.name))
            else {
                continue;
            };
            for (_, row) in t.scan() {
                db.insert(id, Row::from(row)).map_err(internal)?;
            }
        }
        db.commit().map_err(internal)?;
    }
    for (name, view) in p0.engine.views() {
        if names.contains(&name.to_ascii_lowercase()) {
            let cols = view.columns.join(", ");
            let sql = format!("CREATE VIEW {name} ({cols}) AS {}", view.query);
            s.execute(&sql)
                .map_err(|e| internal(format!("{sql}: {e}")))?;
        }
    }
    Ok(s)
}

/// Splits writes made on a scratch engine by the partition owning each row.
/// A replicated table's change goes to every partition; an update that
/// moves a row's partition value becomes a delete and an insert.
pub fn split(scratch: &Engine, writes: LoggedWrites, n: u32) -> Vec<LoggedWrites> {
    let mut out: Vec<LoggedWrites> = (0..n).map(|_| LoggedWrites { ops: Vec::new() }).collect();
    let owner = |table: &str, row: &Row| -> Option<usize> {
        let schema = scratch.database().table_by_name(table)?.schema();
        let c = schema.partition_column?;
        Some(partition_for(row.get(c)?, n).0 as usize)
    };
    for op in writes.ops {
        let (table, row) = match &op {
            LoggedOp::Insert { table, row } | LoggedOp::Delete { table, row } => (table, row),
            LoggedOp::Update { table, old, .. } => (table, old),
        };
        match (owner(table, row), &op) {
            (None, _) => out.iter_mut().for_each(|w| w.ops.push(op.clone())),
            (Some(p), LoggedOp::Update { table, old, new }) => match owner(table, new) {
                Some(q) if q != p => {
                    out[p].ops.push(LoggedOp::Delete {
                        table: table.clone(),
                        row: old.clone(),
                    });
                    out[q].ops.push(LoggedOp::Insert {
                        table: table.clone(),
                        row: new.clone(),
                    });
                }
                _ => out[p].ops.push(op),
            },
            (Some(p), _) => out[p].ops.push(op),
        }
    }
    out
}

/// Refuses shares whose log records would be over the limit, before
/// anything is applied.
pub fn check_size(shares: &[LoggedWrites]) -> Result<(), TxnError> {
    let mut buf = Vec::new();
    shares
        .iter()
        .try_for_each(|share| check_share_size(share, &mut buf))
}

/// `check_size` for one share, measured in `scratch`.
pub fn check_share_size(share: &LoggedWrites, scratch: &mut Vec<u8>) -> Result<(), TxnError> {
    let bytes = durability::multi_writes_bytes(share, scratch)
        .map_err(|e| TxnError::TooLarge(e.to_string()))?;
    // Room for an idempotency key and its answer (partition 0's share may
    // carry them), so the commit cannot fail to encode.
    let bytes = bytes + crate::partition::kept::KEPT_RECORD_BYTES_MAX;
    if bytes > durability::PAYLOAD_BYTES_MAX {
        return Err(TxnError::TooLarge(
            durability::RecordTooLarge { bytes }.to_string(),
        ));
    }
    Ok(())
}

/// Whether each partition's share keeps the tenant within its rows quota
/// there (`quota` is the node's default, the tenant's own is over it).
pub fn check_rows(
    g: &Guards,
    tenant: TenantId,
    quota: &Quota,
    shares: &[LoggedWrites],
) -> Result<(), TxnError> {
    rows_fit(g, (tenant, quota), shares, false)
}

/// `check_rows` for shares the states hold already.
pub fn check_rows_applied(
    g: &Guards,
    tenant: TenantId,
    quota: &Quota,
    shares: &[LoggedWrites],
) -> Result<(), TxnError> {
    rows_fit(g, (tenant, quota), shares, true)
}

fn rows_fit(
    g: &Guards,
    (tenant, quota): (TenantId, &Quota),
    shares: &[LoggedWrites],
    applied: bool,
) -> Result<(), TxnError> {
    for (i, share) in shares.iter().enumerate() {
        let added = share.rows_added();
        if added <= 0 {
            continue;
        }
        let rows = g[i].tenant_ref(tenant).map_or(0, |p| p.rows());
        let q = g[i].quota_of(tenant, quota);
        let at = PartitionId(i as u32);
        let fits = if applied {
            q.check_rows_applied(at, rows, added)
        } else {
            q.check_rows(at, rows, added)
        };
        fits.map_err(TxnError::Quota)?;
    }
    Ok(())
}

/// Applies each partition's share, all or nothing: if one partition refuses
/// (a unique key that exists there), the shares already applied are undone.
pub fn apply_all(
    g: &mut Guards,
    tenant: TenantId,
    shares: &[LoggedWrites],
) -> Result<(), TxnError> {
    for i in 0..shares.len() {
        if shares[i].ops.is_empty() {
            continue;
        }
        if let Err(e) = durability::apply(&mut g[i].tenant(tenant).engine, &shares[i]) {
            for j in (0..i).rev() {
                if shares[j].ops.is_empty() {
                    continue;
                }
                durability::apply(&mut g[j].tenant(tenant).engine, &shares[j].inverse())
                    .expect("undoing writes just applied under the same lock cannot fail");
            }
            return Err(TxnError::Sql(e.to_string()));
        }
    }
    Ok(())
}
