//! FOREIGN KEY constraints: declaring them (`CREATE TABLE ... REFERENCES`,
//! `ALTER TABLE ... ADD FOREIGN KEY`) and checking them at the end of each
//! statement (PostgreSQL's NO ACTION), over the rows the statement wrote.
//!
//! Owns: what a foreign key needs of its parent (a PRIMARY KEY or UNIQUE
//! index on exactly the referenced columns), where it can be enforced (a
//! replicated parent, or child and parent partitioned on the key: each
//! partition then holds every parent row its child rows need), and the
//! check. Must not: act on violations (no CASCADE): the statement fails.

use super::bind::{lower, object_name};
use super::error::SqlError;
use crate::storage::{Database, ForeignKey, Savepoint, TableId, TableSchema, WriteOp};
use crate::types::Value;
use sqlparser::ast;
use std::collections::HashSet;

/// Builds the foreign key `c` of `child` (the table being created or
/// altered), whose parent is `child` itself or a table of `db`.
pub fn declare(
    db: &Database,
    child: &TableSchema,
    c: &ast::ForeignKeyConstraint,
) -> Result<ForeignKey, SqlError> {
    let parent_name = object_name(&c.foreign_table)?;
    if super::sequence::is_internal(&parent_name) {
        // Ohm changes those rows outside any statement's key checks.
        return Err(SqlError::plan(format!(
            "a foreign key may not reference \"{parent_name}\", Ohm's own table"
        )));
    }
    let parent = if parent_name.eq_ignore_ascii_case(&child.name) {
        child
    } else {
        db.table_by_name(&parent_name)
            .map(|t| t.schema())
            .ok_or_else(|| SqlError::plan(format!("relation \"{parent_name}\" does not exist")))?
    };
    for (what, action) in [("DELETE", &c.on_delete), ("UPDATE", &c.on_update)] {
        match action {
            None | Some(ast::ReferentialAction::NoAction | ast::ReferentialAction::Restrict) => {}
            Some(other) => {
                return Err(SqlError::unsupported(format!(
                    "FOREIGN KEY ... ON {what} {other}: a foreign key is checked, never acted \
                     on; delete or update the referencing rows first"
                )))
            }
        }
    }
    let columns = positions(child, &c.columns)?;
    let parent_columns = if c.referred_columns.is_empty() {
        let pk = parent.primary_key.and_then(|i| parent.indexes.get(i));
        pk.map(|ix| ix.columns.clone()).ok_or_else(|| {
            SqlError::plan(format!(
                "there is no primary key for referenced table \"{parent_name}\""
            ))
        })?
    } else {
        positions(parent, &c.referred_columns)?
    };
    if columns.len() != parent_columns.len() {
        return Err(SqlError::plan(format!(
            "number of referencing and referenced columns for foreign key disagree \
             ({} and {})",
            columns.len(),
            parent_columns.len()
        )));
    }
    let fk = ForeignKey {
        name: c
            .name
            .as_ref()
            .map(lower)
            .unwrap_or_else(|| default_name(child, &columns)),
        columns,
        parent: parent_name,
        parent_columns,
    };
    if parent_index(parent, &fk).is_none() {
        return Err(SqlError::plan(format!(
            "there is no unique constraint matching given keys for referenced table \"{}\"",
            fk.parent
        )));
    }
    enforceable(child, &fk, parent)?;
    Ok(fk)
}

fn positions(t: &TableSchema, cols: &[ast::Ident]) -> Result<Vec<usize>, SqlError> {
    cols.iter()
        .map(|c| {
            let n = lower(c);
            t.column_index(&n).ok_or_else(|| {
                SqlError::plan(format!(
                    "column \"{n}\" referenced in foreign key constraint does not exist in \
                     \"{}\"",
                    t.name
                ))
            })
        })
        .collect()
}

fn default_name(child: &TableSchema, cols: &[usize]) -> String {
    let names: Vec<&str> = cols
        .iter()
        .map(|&c| child.columns[c].name.as_str())
        .collect();
    format!("{}_{}_fkey", child.name, names.join("_"))
}

/// The parent's unique index over exactly the referenced columns, and for
/// each of its key columns the position of the matching foreign key
/// column.
fn parent_index(parent: &TableSchema, fk: &ForeignKey) -> Option<(usize, Vec<usize>)> {
    parent.indexes.iter().enumerate().find_map(|(i, ix)| {
        if !ix.unique || ix.columns.len() != fk.parent_columns.len() {
            return None;
        }
        let order: Option<Vec<usize>> = ix
            .columns
            .iter()
            .map(|c| fk.parent_columns.iter().position(|p| p == c))
            .collect();
        order.map(|o| (i, o))
    })
}

/// Whether every partition holds the parent rows its child rows need: the
/// parent is replicated, or both are partitioned on a matching key column.
pub fn enforceable(
    child: &TableSchema,
    fk: &ForeignKey,
    parent: &TableSchema,
) -> Result<(), SqlError> {
    let Some(pp) = parent.partition_column else {
        return Ok(());
    };
    let matched = child.partition_column.is_some_and(|cp| {
        fk.columns
            .iter()
            .zip(&fk.parent_columns)
            .any(|(&c, &p)| c == cp && p == pp)
    });
    if matched {
        return Ok(());
    }
    Err(SqlError::unsupported(format!(
        "foreign key \"{}\" of \"{}\": its parent \"{}\" is partitioned on \"{}\", and \"{}\" is \
         not partitioned on the column that references it, so a child row and its parent \
         could be on different partitions. Ohm checks a foreign key within a partition: make \
         the parent replicated, or partition both on the key",
        fk.name, child.name, parent.name, parent.columns[pp].name, child.name
    )))
}

/// The foreign keys that name `table` as their parent, with their table.
pub fn referencing<'a>(
    db: &'a Database,
    table: &'a str,
) -> impl Iterator<Item = (&'a TableSchema, &'a ForeignKey)> + 'a {
    db.tables().flat_map(move |t| {
        let s = t.schema();
        s.foreign_keys
            .iter()
            .filter(move |fk| fk.parent.eq_ignore_ascii_case(table))
            .map(move |fk| (s, fk))
    })
}

/// Refuses to drop index `index` of `table` while a foreign key checks its
/// parent through it (PostgreSQL's "other objects depend on it").
pub fn index_unneeded(db: &Database, table: TableId, index: &str) -> Result<(), SqlError> {
    let Some(t) = db.table(table) else {
        return Ok(());
    };
    let s = t.schema();
    for (child, fk) in referencing(db, &s.name) {
        let used = parent_index(s, fk).map(|(i, _)| &s.indexes[i].name);
        if used.is_some_and(|n| n.eq_ignore_ascii_case(index)) {
            return Err(SqlError::plan(format!(
                "cannot drop index \"{index}\" because foreign key \"{}\" of table \"{}\" \
                 needs it: drop that foreign key first",
                fk.name, child.name
            )));
        }
    }
    Ok(())
}

/// Whether any table has a foreign key (else there is nothing to check).
pub fn any(db: &Database) -> bool {
    db.tables().any(|t| !t.schema().foreign_keys.is_empty())
}

fn key_of(row: &[Value], cols: &[usize]) -> Option<Vec<Value>> {
    let key: Vec<Value> = cols.iter().map(|&c| row[c].clone()).collect();
    (!key.iter().any(Value::is_null)).then_some(key)
}

/// A child row whose parent is missing, worded as PostgreSQL does.
fn violation(child: &TableSchema, fk: &ForeignKey, key: &[Value]) -> SqlError {
    let shown: Vec<String> = key.iter().map(Value::to_string).collect();
    SqlError::exec(format!(
        "insert or update on table \"{}\" violates foreign key constraint \"{}\": key \
         ({})=({}) is not present in table \"{}\"",
        child.name,
        fk.name,
        names(Some(child), &fk.columns),
        shown.join(", "),
        fk.parent
    ))
}

/// Whether the parent holds a row with `key` (in the foreign key's column
/// order) on the referenced columns.
fn parent_has(db: &Database, fk: &ForeignKey, key: &[Value]) -> Result<bool, SqlError> {
    let t = db
        .table_by_name(&fk.parent)
        .ok_or_else(|| SqlError::exec(format!("internal: parent \"{}\" is gone", fk.parent)))?;
    let (index, order) = parent_index(t.schema(), fk).ok_or_else(|| {
        SqlError::exec(format!(
            "internal: parent \"{}\" lost the index foreign key \"{}\" needs",
            fk.parent, fk.name
        ))
    })?;
    let probe: Vec<Value> = order.iter().map(|&k| key[k].clone()).collect();
    Ok(!t.index_lookup(index, &probe).is_empty())
}

/// Checks every foreign key the writes since `since` could break: each row
/// written to a child has its parent, and each parent key removed is no
/// longer referenced. The first violation is the error.
pub fn check(db: &Database, since: Savepoint) -> Result<(), SqlError> {
    let ops = db.ops_since(since);
    if ops.is_empty() {
        return Ok(());
    }
    // Parent keys deleted or changed, by (child table, fk).
    let mut gone: Vec<(String, ForeignKey, HashSet<Vec<Value>>)> = Vec::new();
    for op in ops {
        let (table, new, old) = match op {
            WriteOp::Insert { table, row } => (*table, Some(row), None),
            WriteOp::Update { table, old, new } => (*table, Some(new), Some(old)),
            WriteOp::Delete { table, row } => (*table, None, Some(row)),
        };
        let Some(t) = db.table(table) else { continue };
        let s = t.schema();
        if let Some(new) = new {
            for fk in &s.foreign_keys {
                let Some(key) = key_of(new, &fk.columns) else {
                    continue;
                };
                let unchanged = old.and_then(|o| key_of(o, &fk.columns)).as_ref() == Some(&key);
                if !unchanged && !parent_has(db, fk, &key)? {
                    return Err(violation(s, fk, &key));
                }
            }
        }
        if let Some(old) = old {
            for (child, fk) in referencing(db, &s.name) {
                let Some(key) = key_of(old, &fk.parent_columns) else {
                    continue;
                };
                if new.and_then(|n| key_of(n, &fk.parent_columns)).as_ref() == Some(&key) {
                    continue;
                }
                match gone
                    .iter_mut()
                    .find(|(c, f, _)| c == &child.name && f.name == fk.name)
                {
                    Some((_, _, keys)) => {
                        keys.insert(key);
                    }
                    None => gone.push((child.name.clone(), fk.clone(), HashSet::from([key]))),
                }
            }
        }
    }
    for (child, fk, keys) in gone {
        still_referenced(db, &child, &fk, keys)?;
    }
    Ok(())
}

/// Fails if a row of `child` still references one of the removed parent
/// `keys` (and the parent has no other row with that key now).
fn still_referenced(
    db: &Database,
    child: &str,
    fk: &ForeignKey,
    keys: HashSet<Vec<Value>>,
) -> Result<(), SqlError> {
    // Keys put back in the same statement (a delete and re-insert) are fine.
    let mut missing = HashSet::new();
    for key in keys {
        if !parent_has(db, fk, &key)? {
            missing.insert(key);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let Some(t) = db.table_by_name(child) else {
        return Ok(());
    };
    let mut rows = t.rows();
    while let Some((_, row)) = rows.next() {
        super::interrupt::tick()?;
        if let Some(key) = key_of(row, &fk.columns) {
            if missing.contains(&key) {
                let shown: Vec<String> = key.iter().map(Value::to_string).collect();
                return Err(SqlError::exec(format!(
                    "update or delete on table \"{}\" violates foreign key constraint \"{}\" on \
                     table \"{child}\": key ({})=({}) is still referenced from table \"{child}\"",
                    fk.parent,
                    fk.name,
                    names(
                        db.table_by_name(&fk.parent).map(|p| p.schema()),
                        &fk.parent_columns
                    ),
                    shown.join(", ")
                )));
            }
        }
    }
    Ok(())
}

fn names(s: Option<&TableSchema>, cols: &[usize]) -> String {
    cols.iter()
        .map(|&c| {
            s.and_then(|s| s.columns.get(c))
                .map_or_else(|| format!("#{c}"), |col| col.name.clone())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks every existing row of `child` against `fk` (ALTER TABLE ADD
/// FOREIGN KEY over data already loaded).
pub fn validate(db: &Database, child: &TableSchema, fk: &ForeignKey) -> Result<(), SqlError> {
    let Some(t) = db.table_by_name(&child.name) else {
        return Ok(());
    };
    let mut rows = t.rows();
    while let Some((_, row)) = rows.next() {
        super::interrupt::tick()?;
        if let Some(key) = key_of(row, &fk.columns) {
            if !parent_has(db, fk, &key)? {
                return Err(violation(child, fk, &key));
            }
        }
    }
    Ok(())
}
