//! Deploy-time checks of a module description, engine-free: first on its
//! own (`check_desc`: names, types, parameter indexes), then against one
//! partition's schema (`prepare_module`: every statement prepares and is a
//! query or DML; every partition declaration names a table partitioned on
//! that very column, with a parameter of a matching type).
//!
//! Owns: the deploy rules and their messages — each names the module, the
//! procedure or statement, and the problem.
//! Must not: touch wasmtime or change the schema.

use super::error::DeployError;
use crate::sql::{Engine, Prepared, StatementKind};
use crate::types::DataType;
use ohm_sdk::abi::{self, ty, ModuleDesc, PartitionDesc, ProcedureDesc};
use std::collections::BTreeSet;

fn proc_err(module: &str, procedure: &str, message: String) -> DeployError {
    DeployError::Procedure {
        module: module.to_string(),
        procedure: procedure.to_string(),
        message,
    }
}

fn stmt_err(module: &str, statement: &str, message: String) -> DeployError {
    DeployError::Statement {
        module: module.to_string(),
        statement: statement.to_string(),
        message,
    }
}

/// Checks what can be checked without a schema.
pub fn check_desc(module: &str, desc: &ModuleDesc) -> Result<(), DeployError> {
    let mut seen = BTreeSet::new();
    for s in &desc.statements {
        if !abi::valid_name(&s.name) {
            return Err(stmt_err(module, &s.name, bad_name("statement")));
        }
        if !seen.insert(s.name.as_str()) {
            return Err(stmt_err(module, &s.name, "is declared twice".into()));
        }
        if s.sql.len() > abi::SQL_BYTES_MAX {
            let n = s.sql.len();
            let msg = format!("SQL is {n} bytes, over the limit of {}", abi::SQL_BYTES_MAX);
            return Err(stmt_err(module, &s.name, msg));
        }
    }
    let mut seen = BTreeSet::new();
    for p in &desc.procedures {
        if !abi::valid_name(&p.name) {
            return Err(proc_err(module, &p.name, bad_name("procedure")));
        }
        if !seen.insert(p.name.as_str()) {
            return Err(proc_err(module, &p.name, "is declared twice".into()));
        }
        check_procedure(p).map_err(|m| proc_err(module, &p.name, m))?;
    }
    Ok(())
}

fn bad_name(what: &str) -> String {
    format!(
        "is not a valid {what} name: use letters, digits and _ (at most {} bytes, not starting with a digit)",
        abi::NAME_BYTES_MAX
    )
}

fn check_procedure(p: &ProcedureDesc) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (i, a) in p.params.iter().enumerate() {
        if !abi::valid_name(&a.name) {
            return Err(format!("parameter {i} has an invalid name {:?}", a.name));
        }
        if !seen.insert(a.name.as_str()) {
            return Err(format!("parameter {} is declared twice", a.name));
        }
        if !ty::is_param(a.ty) {
            return Err(format!(
                "parameter {} has unknown type code {}",
                a.name, a.ty
            ));
        }
    }
    if !ty::is_result(p.returns) {
        return Err(format!("result has unknown type code {}", p.returns));
    }
    if let Some(part) = &p.partition {
        let Some(a) = p.params.get(part.parameter as usize) else {
            return Err(format!(
                "partition parameter {} does not exist ({} takes {} parameters)",
                part.parameter,
                p.name,
                p.params.len()
            ));
        };
        if a.ty & ty::NULLABLE != 0 {
            return Err(format!(
                "partition parameter {} ({}) is {}; a partition key cannot be NULL",
                part.parameter,
                a.name,
                ty::name(a.ty)
            ));
        }
    }
    Ok(())
}

/// Checks `desc` against `engine`'s schema and prepares its statements, in
/// declaration order (a batch names a statement by that index).
pub fn prepare_module(
    engine: &mut Engine,
    module: &str,
    desc: &ModuleDesc,
) -> Result<Vec<Prepared>, DeployError> {
    check_desc(module, desc)?;
    let mut prepared = Vec::with_capacity(desc.statements.len());
    for s in &desc.statements {
        let p = engine
            .prepare(&s.sql)
            .map_err(|e| stmt_err(module, &s.name, format!("does not prepare: {e}")))?;
        if p.kind() == StatementKind::Other {
            return Err(stmt_err(
                module,
                &s.name,
                "is not a query or DML: a procedure may run only SELECT, INSERT, UPDATE and DELETE"
                    .into(),
            ));
        }
        prepared.push(p);
    }
    for p in &desc.procedures {
        if let Some(part) = &p.partition {
            check_partition(engine, p, part).map_err(|m| proc_err(module, &p.name, m))?;
        }
    }
    Ok(prepared)
}

/// What a deploy warns of (it deploys anyway): when every procedure of the
/// module runs on one partition, each statement that writes a replicated
/// table (a call that writes a row with it fails with `wrong_partition`)
/// or sets the column its table is partitioned on (a call that moves a row
/// to another partition with it fails). With a multi-partition procedure
/// in the module such a statement may be its, and nothing is said.
pub fn partition_warnings(
    engine: &Engine,
    module: &str,
    desc: &ModuleDesc,
    prepared: &[Prepared],
) -> Vec<String> {
    let single = |p: &ProcedureDesc| p.partition.is_some();
    if desc.procedures.is_empty() || !desc.procedures.iter().all(single) {
        return Vec::new();
    }
    let db = engine.database();
    let mut warnings = Vec::new();
    for (s, p) in desc.statements.iter().zip(prepared) {
        let Some((table, sets)) = p.written() else {
            continue;
        };
        let Some(schema) = db.table(table).map(|t| t.schema()) else {
            continue;
        };
        let why = match schema.partition_column {
            None => format!(
                "writes {}, a replicated table: a call that writes a row with it",
                schema.name
            ),
            Some(col) if sets.contains(&col) => {
                let column = schema.columns.get(col).map_or("?", |c| c.name.as_str());
                format!(
                    "sets {}.{column}, the column {} is partitioned on: a call that moves a row \
                     to another partition with it",
                    schema.name, schema.name
                )
            }
            Some(_) => continue,
        };
        warnings.push(format!(
            "module {module}: statement {} {why} fails with wrong_partition, since every \
             procedure of the module runs on one partition (write that from a multi-partition \
             procedure)",
            s.name
        ));
    }
    warnings
}

fn check_partition(engine: &Engine, p: &ProcedureDesc, part: &PartitionDesc) -> Result<(), String> {
    let (t, c) = (&part.table, &part.column);
    let table = engine
        .database()
        .table_by_name(t)
        .ok_or_else(|| format!("partition table {t} does not exist"))?;
    let schema = table.schema();
    let col = schema
        .column_index(c)
        .ok_or_else(|| format!("partition column {c} does not exist in table {t}"))?;
    match schema.partition_column {
        Some(pc) if pc == col => {}
        Some(pc) => {
            let on = schema.columns.get(pc).map_or("?", |d| d.name.as_str());
            return Err(format!("table {t} is partitioned on column {on}, not {c}"));
        }
        None => {
            return Err(format!(
                "table {t} is not partitioned (it is replicated to every partition); \
                 declare PARTITION TABLE {t} ON COLUMN {c}, or make the procedure multi-partition"
            ))
        }
    }
    // check_desc made sure the parameter exists.
    let Some(param) = p.params.get(part.parameter as usize) else {
        return Err(format!(
            "partition parameter {} does not exist",
            part.parameter
        ));
    };
    let col_ty = schema.columns.get(col).map(|d| d.ty);
    match col_ty {
        Some(ct) if type_fits(param.ty, ct) => Ok(()),
        _ => Err(format!(
            "partition parameter {} ({}) is {} but column {t}.{c} is {}",
            part.parameter,
            param.name,
            ty::name(param.ty),
            col_ty.map_or("unknown".to_string(), |t| t.to_string())
        )),
    }
}

/// Whether a parameter of type `t` can hold the values of a column of type `col`.
fn type_fits(t: u8, col: DataType) -> bool {
    match ty::base(t) {
        ty::I64 | ty::I32 | ty::I16 => col.is_integer(),
        ty::TEXT => matches!(col, DataType::Varchar(_)),
        ty::BYTES => matches!(col, DataType::Varbinary(_)),
        ty::BOOL => col == DataType::Boolean,
        ty::F64 => col == DataType::Double,
        ty::DECIMAL => matches!(col, DataType::Decimal { .. }),
        ty::TIMESTAMP => col == DataType::Timestamp,
        ty::TIMESTAMPTZ => col == DataType::TimestampTz,
        ty::DATE => col == DataType::Date,
        ty::TIME => col == DataType::Time,
        ty::INTERVAL => col == DataType::Interval,
        ty::UUID => col == DataType::Uuid,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_and_time_parameters_match_only_their_own_columns() {
        let cases = [
            (ty::TIMESTAMPTZ, DataType::TimestampTz),
            (ty::DATE, DataType::Date),
            (ty::TIME, DataType::Time),
            (ty::INTERVAL, DataType::Interval),
            (ty::UUID, DataType::Uuid),
            (ty::TIMESTAMP, DataType::Timestamp),
        ];
        for (t, col) in cases {
            for (other, other_col) in cases {
                assert_eq!(type_fits(t, other_col), t == other, "{t} on {col}");
            }
            assert!(!type_fits(t, DataType::BigInt) && !type_fits(t, DataType::Varchar(None)));
        }
        assert!(!type_fits(ty::TEXT, DataType::Uuid) && !type_fits(ty::I64, DataType::Date));
    }
}
