//! Ad-hoc SQL on the coordinator: each statement is its own transaction
//! over every held partition. A query or write that names one partitioned
//! table and pins its partition column runs on that partition alone;
//! anything else runs on a scratch engine (`txn::scratch`); DDL runs on
//! every partition.

use super::coordinator::Coordinator;
use super::hold::Held;
use super::reply;
use crate::catalog::PartitionId;
use crate::durability::{self, LoggedWrites, MultiBody};
use crate::proto::{ErrorCode, ErrorReply, SqlResult};
use crate::sql::interrupt;
use crate::txn::{
    self, route, scratch,
    sqltext::{self, Kind},
};
use crate::types::{TenantId, Value};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

impl Coordinator {
    /// Runs `sql`'s statements in order, each under its own time limit;
    /// all stop once `client` is set (the client is gone). `read_only`:
    /// queries alone, checked before any statement runs.
    pub(super) fn sql(
        &self,
        tenant: TenantId,
        sql: &str,
        params: &[Value],
        (limit_ms, client, read_only): (u64, Option<Arc<AtomicBool>>, bool),
    ) -> Result<Vec<SqlResult>, ErrorReply> {
        let stmts = sqltext::split(sql).map_err(|m| ErrorReply::new(ErrorCode::Sql, m))?;
        if read_only {
            // The query path never keeps a write (a `WITH ... DELETE` runs
            // on a scratch copy or is refused as not a query).
            let writes = stmts
                .iter()
                .position(|s| sqltext::classify(&sqltext::words(s)) != Kind::Query);
            if let Some(i) = writes {
                return Err(ErrorReply::new(
                    ErrorCode::Forbidden,
                    format!(
                        "statement {} of {} is not a query, and this principal's role (reader) \
                         may only query (nothing was done)",
                        i + 1,
                        stmts.len()
                    ),
                ));
            }
        }
        let many = stmts.len() > 1;
        if many && !params.is_empty() {
            return Err(ErrorReply::new(
                ErrorCode::BadArguments,
                format!(
                    "params go with exactly one statement; this sql has {} (nothing was done)",
                    stmts.len()
                ),
            ));
        }
        let mut results = Vec::with_capacity(stmts.len());
        for (i, stmt) in stmts.iter().enumerate() {
            match self.statement(tenant, stmt, params, (limit_ms, &client)) {
                Ok(r) => results.push(r),
                Err(mut e) if many => {
                    e.message = format!(
                        "statement {} of {}: {} ({} earlier statement(s) committed)",
                        i + 1,
                        stmts.len(),
                        e.message,
                        i
                    );
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(results)
    }

    /// One statement, under its time limit unless it is DDL: DDL is
    /// applied partition by partition and must reach them all once begun
    /// (stopping it half-way would stop the node).
    fn statement(
        &self,
        tenant: TenantId,
        stmt: &str,
        params: &[Value],
        (limit_ms, client): (u64, &Option<Arc<AtomicBool>>),
    ) -> Result<SqlResult, ErrorReply> {
        let words = sqltext::words(stmt);
        let kind = sqltext::classify(&words);
        // One timestamp per statement, its transaction's: what now() gives
        // on every partition it touches.
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let _work =
            (kind != Kind::Ddl).then(|| interrupt::Work::begin(Some(limit_ms), client.clone()));
        match kind {
            Kind::TxnControl => Err(ErrorReply::new(
                ErrorCode::NotSupported,
                "each ad-hoc statement is its own transaction: BEGIN/COMMIT/ROLLBACK are not \
                 supported over the protocol; put statements that must commit together in a \
                 procedure",
            )),
            Kind::Query => self.query(tenant, (stmt, now_us), params, &words),
            Kind::InsertValues => self.write(tenant, (stmt, now_us), params, &words, true),
            Kind::Write => self.write(tenant, (stmt, now_us), params, &words, false),
            Kind::Ddl if !params.is_empty() => Err(ErrorReply::new(
                ErrorCode::BadArguments,
                "DDL takes no params (nothing was done)",
            )),
            Kind::Ddl => self.ddl(tenant, stmt, now_us),
        }
    }

    fn query(
        &self,
        tenant: TenantId,
        (stmt, now_us): (&str, i64),
        params: &[Value],
        words: &[String],
    ) -> Result<SqlResult, ErrorReply> {
        let mut g = self.hold(Some(tenant))?;
        let names = scratch::needed(&g, tenant, words);
        let one = if scratch::all_replicated(&g, tenant, &names) {
            Some(0)
        } else {
            route::single_partition(&g, tenant, stmt, params, words, &names).map(|p| p.0 as usize)
        };
        let n = g.len() as u32;
        let result = if let Some(p) = one {
            let engine = &mut g[p].tenant(tenant).engine;
            engine.set_now(now_us);
            engine.set_placement(crate::storage::Placement {
                partition: Some(p as u32),
                partitions: n,
            });
            let prepared = engine.prepare(stmt).map_err(|e| reply::sql_error(&e))?;
            if prepared.kind() != crate::sql::StatementKind::Query
                && words.first().is_none_or(|w| w != "explain")
            {
                return Err(ErrorReply::new(
                    ErrorCode::Sql,
                    "this statement is not a query",
                ));
            }
            engine.execute_with(stmt, params)
        } else {
            let mut s =
                scratch::scratch(&g, tenant, &names, false).map_err(|e| reply::txn_error(&e))?;
            s.set_now(now_us);
            s.execute_with(stmt, params)
        };
        let r = result.map_err(|e| reply::sql_error(&e))?;
        // Answered once everything the query saw is chosen.
        g.finish(None)?;
        Ok(reply::sql_result(r))
    }

    fn write(
        &self,
        tenant: TenantId,
        (stmt, now_us): (&str, i64),
        params: &[Value],
        words: &[String],
        empty: bool,
    ) -> Result<SqlResult, ErrorReply> {
        let mut g = self.hold(Some(tenant))?;
        let names = scratch::needed(&g, tenant, words);
        if let Some(p) = route::single_partition(&g, tenant, stmt, params, words, &names) {
            let on = (p.0 as usize, stmt, params, now_us);
            if let Some((r, bodies)) = self.write_on(&mut g, tenant, on)? {
                self.commit(g, tenant, bodies)?;
                return Ok(r);
            }
        }
        let mut s =
            scratch::scratch(&g, tenant, &names, empty).map_err(|e| reply::txn_error(&e))?;
        s.set_now(now_us);
        s.begin().map_err(|e| reply::sql_error(&e))?;
        let r = match s.execute_with(stmt, params) {
            Ok(r) => r,
            Err(e) => {
                let _ = s.rollback();
                return Err(reply::sql_error(&e));
            }
        };
        let ws = s.commit().map_err(|e| reply::sql_error(&e))?;
        let shares = txn::route_writes(&mut g, tenant, &self.quota, &s, &ws)
            .map_err(|e| reply::txn_error(&e))?;
        self.commit_shares(g, tenant, shares, None)?;
        Ok(reply::sql_result(r))
    }

    /// Runs a write pinned to partition `p` there alone: its result and
    /// every partition's entry body. None (and nothing changed) when it
    /// moved a row to another partition: the caller then takes the general
    /// path.
    fn write_on(
        &self,
        g: &mut Held<'_>,
        tenant: TenantId,
        (p, stmt, params, now_us): (usize, &str, &[Value], i64),
    ) -> Result<Option<(SqlResult, Vec<MultiBody>)>, ErrorReply> {
        let n = g.len();
        let engine = &mut g[p].tenant(tenant).engine;
        engine.set_now(now_us);
        engine.set_placement(crate::storage::Placement {
            partition: Some(p as u32),
            partitions: n as u32,
        });
        engine.begin().map_err(|e| reply::sql_error(&e))?;
        let r = match engine.execute_with(stmt, params) {
            Ok(r) => r,
            Err(e) => {
                let _ = engine.rollback();
                return Err(reply::sql_error(&e));
            }
        };
        let ws = engine.commit().map_err(|e| reply::sql_error(&e))?;
        let logged = LoggedWrites::from_write_set(engine.database(), &ws);
        let shares = scratch::split(engine, logged.clone(), n as u32);
        let stays = shares
            .iter()
            .enumerate()
            .all(|(i, s)| i == p || s.ops.is_empty());
        let fits = scratch::check_size(std::slice::from_ref(&logged)).and_then(|()| {
            // Rows that move to other partitions: the general path checks
            // them against the quota where they land.
            if !stays {
                return Ok(());
            }
            let (rows, added) = (g[p].tenant(tenant).rows(), logged.rows_added());
            let quota = g[p].quota_of(tenant, &self.quota).check_rows_applied(
                PartitionId(p as u32),
                rows,
                added,
            );
            quota.map_err(txn::TxnError::Quota)
        });
        if !stays || fits.is_err() {
            let engine = &mut g[p].tenant(tenant).engine;
            durability::apply(engine, &logged.inverse())
                .expect("undoing writes just made on a held partition cannot fail");
            fits.map_err(|e| reply::txn_error(&e))?;
            return Ok(None);
        }
        let mut logged = Some(logged);
        let bodies = (0..n)
            .map(|i| {
                let w = if i == p { logged.take() } else { None };
                MultiBody::Writes(w.unwrap_or(LoggedWrites { ops: Vec::new() }))
            })
            .collect();
        Ok(Some((reply::sql_result(r), bodies)))
    }

    fn ddl(&self, tenant: TenantId, stmt: &str, now_us: i64) -> Result<SqlResult, ErrorReply> {
        let mut g = self.hold(Some(tenant))?;
        for i in 0..g.len() {
            g[i].tenant(tenant).engine.set_now(now_us);
        }
        let first = g[0]
            .tenant(tenant)
            .engine
            .execute(stmt)
            .map_err(|e| reply::sql_error(&e))?;
        for i in 1..g.len() {
            if let Err(e) = g[i].tenant(tenant).engine.execute(stmt) {
                // Same schema, same statement: this cannot differ. Stop
                // rather than serve partitions whose schemas disagree.
                return Err(self.broken(
                    g,
                    format!(
                        "DDL {stmt:?} succeeded on partition 0 and failed on partition {i}: {e}"
                    ),
                ));
            }
        }
        let n = g.len();
        let bodies = (0..n).map(|_| MultiBody::Ddl(stmt.to_string())).collect();
        self.commit(g, tenant, bodies)?;
        Ok(reply::sql_result(first))
    }
}
