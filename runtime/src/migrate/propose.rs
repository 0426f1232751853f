//! The partition proposal: for each table, replicated or a partition
//! column, and why; and the order tables are created and loaded in
//! (parents first), with the foreign keys that must wait for the data.
//!
//! Owns: the rules of the proposal (below, at `propose`). Must not: decide
//! what Ohm accepts (`translate` tries each `PARTITION TABLE` on Ohm's own
//! engine, and a table Ohm refuses stays replicated).

use super::source::{ForeignKey, SourceColumn, SourceTable};
use super::translate::{Placement, Settings};
use std::collections::{BTreeMap, BTreeSet};

/// Parents before children (by foreign keys within the schema); a foreign
/// key that references its own table or closes a cycle is returned
/// apart: it is added after the data.
pub(super) fn order(tables: &[SourceTable]) -> (Vec<usize>, BTreeSet<(usize, String)>) {
    let index: BTreeMap<&str, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let mut done = vec![false; tables.len()];
    let mut out = Vec::new();
    let mut deferred = BTreeSet::new();
    while out.len() < tables.len() {
        let ready = (0..tables.len()).find(|&i| {
            !done[i]
                && tables[i].foreign_keys.iter().all(|fk| {
                    fk.parent == tables[i].name
                        || deferred.contains(&(i, fk.name.clone()))
                        || index.get(fk.parent.as_str()).is_none_or(|&p| done[p])
                })
        });
        match ready {
            Some(i) => {
                for fk in &tables[i].foreign_keys {
                    if fk.parent == tables[i].name {
                        deferred.insert((i, fk.name.clone()));
                    }
                }
                done[i] = true;
                out.push(i);
            }
            None => {
                // A cycle: the first table left waits for no one; its
                // foreign keys to tables not yet placed are added later.
                let Some(i) = (0..tables.len()).find(|&i| !done[i]) else {
                    break;
                };
                for fk in &tables[i].foreign_keys {
                    if index.get(fk.parent.as_str()).is_some_and(|&p| !done[p]) {
                        deferred.insert((i, fk.name.clone()));
                    }
                }
            }
        }
    }
    (out, deferred)
}

/// The keys (primary, unique constraints, unique indexes) of a table.
fn keys(t: &SourceTable) -> Vec<Vec<String>> {
    let mut keys: Vec<Vec<String>> = Vec::new();
    if let Some((_, k)) = &t.primary_key {
        keys.push(k.clone());
    }
    keys.extend(t.uniques.iter().map(|(_, k)| k.clone()));
    keys.extend(
        t.indexes
            .iter()
            .filter(|i| i.unique && !i.columns.is_empty() && !i.partial)
            .map(|i| i.columns.clone()),
    );
    keys
}

/// The proposal: for each table (in `order`), replicated or a partition
/// column, and why. Replicated: small tables, tables told so, tables with
/// a deferred foreign key, and any parent a replicated table (or a child
/// that cannot sit with it) references. Partitioned: on a column that is
/// in each of its keys, preferring the one that puts its rows with their
/// partitioned parents', then its primary key's first.
pub(super) fn propose(
    tables: &[SourceTable],
    order: &[usize],
    deferred: &BTreeSet<(usize, String)>,
    settings: &Settings,
) -> anyhow::Result<Vec<(Placement, String)>> {
    let index: BTreeMap<&str, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let mut forced: BTreeMap<usize, String> = BTreeMap::new();
    for (i, t) in tables.iter().enumerate() {
        if settings.replicate.contains(&t.name) {
            let why = if settings.recorded {
                "replicated: as placed when this migration began"
            } else {
                "replicated: as told (--replicate)"
            };
            forced.insert(i, why.into());
        } else if settings.partition.contains_key(&t.name) {
            // told where
        } else if t.rows < settings.replicate_below {
            forced.insert(
                i,
                format!(
                    "replicated: {} rows, under --replicate-below {}; a small table is read \
                     on every partition without crossing to another",
                    t.rows, settings.replicate_below
                ),
            );
        }
    }
    for (i, fk) in deferred {
        let why = format!(
            "replicated: its foreign key {} is added after the data is in (it references its \
             own table or closes a cycle), which Ohm does only on a replicated table",
            fk
        );
        forced.entry(*i).or_insert(why);
        // Its parent too: a replicated table's parents must be on every
        // partition.
        let parent = tables[*i]
            .foreign_keys
            .iter()
            .find(|f| f.name == *fk)
            .and_then(|f| index.get(f.parent.as_str()));
        if let Some(&p) = parent {
            let why = format!(
                "replicated: {} references it by {fk}, added after the data on a replicated \
                 table, and a replicated table's parents must be on every partition",
                tables[*i].name
            );
            forced.entry(p).or_insert(why);
        }
    }
    // Each pass either places every table or replicates one more; at most
    // one pass per table.
    for _pass in 0..=tables.len() {
        let mut placed: Vec<Option<(Placement, String)>> = vec![None; tables.len()];
        let mut again = false;
        for &i in order {
            let t = &tables[i];
            if let Some(why) = forced.get(&i) {
                if let Some(c) = settings.partition.get(&t.name) {
                    anyhow::bail!("--partition {}={c} cannot be: it must be {why}", t.name);
                }
                // A replicated table's parents must be on every partition too.
                let partitioned_parent = tables[i].foreign_keys.iter().find_map(|fk| {
                    let p = *index.get(fk.parent.as_str())?;
                    matches!(placed[p], Some((Placement::On(_), _))).then_some((p, fk))
                });
                if let Some((p, fk)) = partitioned_parent {
                    forced.insert(
                        p,
                        format!(
                            "replicated: the replicated table {} references it ({}), and a \
                             replicated table's parents must be on every partition",
                            t.name, fk.name
                        ),
                    );
                    again = true;
                    break;
                }
                placed[i] = Some((Placement::Replicated, why.clone()));
                continue;
            }
            let keys = keys(t);
            let mut candidates: Vec<&SourceColumn> = t
                .columns
                .iter()
                .filter(|c| keys.iter().all(|k| k.contains(&c.name)))
                .collect();
            // Key columns first, in the primary key's order.
            if let Some((_, pk)) = &t.primary_key {
                candidates
                    .sort_by_key(|c| pk.iter().position(|k| *k == c.name).unwrap_or(usize::MAX));
            }
            if let Some(told) = settings.partition.get(&t.name) {
                if !t.columns.iter().any(|c| c.name == *told) {
                    anyhow::bail!(
                        "--partition {}={told}: {} has no column {told:?}",
                        t.name,
                        t.name
                    );
                }
                if !candidates.iter().any(|c| c.name == *told) {
                    anyhow::bail!(
                        "--partition {}={told}: {told} is not in each of {}'s keys ({}); Ohm \
                         checks a key within a partition, so the partition column must be in \
                         every key",
                        t.name,
                        t.name,
                        keys.iter()
                            .map(|k| format!("({})", k.join(", ")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                candidates.retain(|c| c.name == *told);
            }
            if candidates.is_empty() {
                forced.insert(
                    i,
                    format!(
                        "replicated: its keys ({}) share no column, and Ohm checks a key within \
                         a partition, so a partition column must be in every key",
                        keys.iter()
                            .map(|k| k.join(", "))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                );
                again = true;
                break;
            }
            // Partitioned parents, and the column of this table each needs.
            let parents: Vec<(usize, &ForeignKey, Option<&str>)> = tables[i]
                .foreign_keys
                .iter()
                .filter_map(|fk| {
                    let p = *index.get(fk.parent.as_str())?;
                    let Some((Placement::On(pc), _)) = &placed[p] else {
                        return None;
                    };
                    let need = fk
                        .columns
                        .iter()
                        .zip(&fk.parent_columns)
                        .find(|(_, pcol)| *pcol == pc)
                        .map(|(c, _)| c.as_str());
                    Some((p, fk, need))
                })
                .collect();
            let score = |c: &str| -> u64 {
                parents
                    .iter()
                    .filter(|(_, _, need)| *need == Some(c))
                    .map(|(p, _, _)| tables[*p].rows + 1)
                    .sum()
            };
            let best = candidates
                .iter()
                .enumerate()
                .max_by_key(|(pos, c)| (score(&c.name), c.not_null, std::cmp::Reverse(*pos)))
                .map(|(_, c)| c.name.clone())
                .unwrap_or_default();
            if let Some((p, fk, _)) = parents.iter().find(|(_, _, need)| *need != Some(&best)) {
                forced.insert(
                    *p,
                    format!(
                        "replicated: {} ({} rows) references it ({}) but is partitioned on {}, \
                         so its rows could not sit with their parent on one partition",
                        t.name, t.rows, fk.name, best
                    ),
                );
                again = true;
                break;
            }
            let pk_first = t.primary_key.as_ref().and_then(|(_, k)| k.first()) == Some(&best);
            let with_parent = parents.iter().find(|(_, _, need)| *need == Some(&best));
            let why = match (settings.partition.contains_key(&t.name), with_parent) {
                (true, _) if settings.recorded => {
                    format!("partitioned on {best}: as placed when this migration began")
                }
                (true, _) => format!("partitioned on {best}: as told (--partition)"),
                (false, Some((p, fk, _))) => format!(
                    "partitioned on {best} ({} rows): its foreign key {} to {} (partitioned on \
                     the key), so each row sits on its parent's partition",
                    t.rows, fk.name, tables[*p].name
                ),
                (false, None) if pk_first => format!(
                    "partitioned on {best} ({} rows): its primary key, so a row is found on one \
                     partition by its key",
                    t.rows
                ),
                (false, None) if keys.is_empty() => format!(
                    "partitioned on {best} ({} rows): it has no key; its first NOT NULL column \
                     (or its first column, when none is NOT NULL)",
                    t.rows
                ),
                (false, None) => format!(
                    "partitioned on {best} ({} rows): a column of each of its keys",
                    t.rows
                ),
            };
            placed[i] = Some((Placement::On(best), why));
        }
        if !again {
            return Ok(placed
                .into_iter()
                .map(|p| p.unwrap_or((Placement::Replicated, String::new())))
                .collect());
        }
    }
    anyhow::bail!("internal: the partition proposal did not settle")
}
