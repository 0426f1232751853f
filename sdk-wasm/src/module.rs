//! The contract between a module and whoever runs it: the `Backend` a
//! procedure talks to, the statements and procedures a module declares, and
//! `Module::call`, the one entry point both `ohm_call` (Wasm) and native
//! runners use.
//!
//! Owns: these plain types and the dispatch from a procedure number to its
//! generated `invoke`. Must not: encode or decode anything itself (`invoke`,
//! `rows` and `abi` do), or touch Wasm.

use crate::abi::{self, ErrorCode};
use crate::context::Context;

/// A statement failed inside a batch; the batch changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// Why it failed.
    pub code: ErrorCode,
    /// Position of the failing statement within the batch (0-based).
    pub statement: u32,
    /// The host's message.
    pub message: String,
}

/// The host as a procedure sees it. In Wasm it is the `ohm` import module;
/// natively (unit tests, `ohm bench proc`) the runtime implements it over
/// the same host logic.
pub trait Backend {
    /// Runs one encoded batch request (`abi` layout); on success `response`
    /// holds the encoded batch response (cleared first).
    fn batch(&mut self, request: &[u8], response: &mut Vec<u8>) -> Result<(), BatchError>;
    /// The transaction's timestamp, microseconds since the epoch.
    fn now(&self) -> i64;
    /// The transaction's random seed.
    fn seed(&self) -> u64;
}

/// A statement a module declares: `index` is its position in the module's
/// statement list (what a batch request names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    /// Position in the module's statement list.
    pub index: u32,
    /// The name it was declared with (`INSERT_VOTE`).
    pub name: &'static str,
    /// The SQL text, with `?` placeholders.
    pub sql: &'static str,
}

/// What one call produced: an `abi::status` code and its payload, exactly
/// as `ohm_call` returns them and `ohm.result` carries them in Wasm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutput {
    /// An `abi::status` code.
    pub status: i32,
    /// What the status says it carries.
    pub payload: Vec<u8>,
}

/// A procedure parameter as declared: its name and `abi::ty` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// The Rust parameter's name.
    pub name: &'static str,
    /// An `abi::ty` code, possibly with `ty::NULLABLE`.
    pub ty: u8,
}

/// `partition on table.column, parameter n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// The partitioned table.
    pub table: &'static str,
    /// Its partition column.
    pub column: &'static str,
    /// 0-based index into the procedure's parameters (the context excluded).
    pub parameter: u32,
}

/// One procedure of a module, as the `#[procedure]` attribute declares it.
#[derive(Debug, Clone, Copy)]
pub struct Procedure {
    /// The function's name.
    pub name: &'static str,
    /// Its parameters after the context, in order.
    pub params: &'static [Param],
    /// An `abi::ty` code: a parameter type, `ty::UNIT` or `ty::ROWS`.
    pub returns: u8,
    /// None: multi-partition.
    pub partition: Option<Partition>,
    /// Decodes the arguments, runs the procedure, encodes what it produced.
    pub invoke: fn(&mut Context<'_>, &[u8]) -> CallOutput,
}

/// A module: its statements and procedures (what `export!` declares).
#[derive(Debug, Clone, Copy)]
pub struct Module {
    /// Every statement, `statements[i].index == i`.
    pub statements: &'static [Statement],
    /// Every procedure; `ohm_call` names one by its position here.
    pub procedures: &'static [Procedure],
}

impl Module {
    /// The number `call` takes for the procedure called `name`.
    pub fn procedure_number(&self, name: &str) -> Option<u32> {
        let i = self.procedures.iter().position(|p| p.name == name)?;
        u32::try_from(i).ok()
    }

    /// The description `ohm_describe` returns, as a value.
    pub fn desc(&self) -> abi::ModuleDesc {
        abi::ModuleDesc {
            statements: self
                .statements
                .iter()
                .map(|s| abi::StatementDesc {
                    name: s.name.into(),
                    sql: s.sql.into(),
                })
                .collect(),
            procedures: self
                .procedures
                .iter()
                .map(|p| abi::ProcedureDesc {
                    name: p.name.into(),
                    params: p
                        .params
                        .iter()
                        .map(|a| abi::ParamDesc {
                            name: a.name.into(),
                            ty: a.ty,
                        })
                        .collect(),
                    returns: p.returns,
                    partition: p.partition.map(|x| abi::PartitionDesc {
                        table: x.table.into(),
                        column: x.column.into(),
                        parameter: x.parameter,
                    }),
                })
                .collect(),
        }
    }

    /// Runs procedure number `procedure` (its index in `procedures`) with
    /// encoded `args` against `backend`: what `ohm_call` does in Wasm.
    pub fn call(&self, backend: &mut dyn Backend, procedure: u32, args: &[u8]) -> CallOutput {
        match self.procedures.get(procedure as usize) {
            Some(p) => (p.invoke)(&mut Context::new(backend), args),
            None => CallOutput {
                status: abi::status::CALL_BAD_ARGS,
                payload: format!("no procedure number {procedure}").into_bytes(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoke::{output, Reply};

    struct NoHost;

    impl Backend for NoHost {
        fn batch(&mut self, _: &[u8], _: &mut Vec<u8>) -> Result<(), BatchError> {
            unreachable!("these procedures run no SQL")
        }
        fn now(&self) -> i64 {
            0
        }
        fn seed(&self) -> u64 {
            0
        }
    }

    fn ping(_: &mut Context<'_>, args: &[u8]) -> CallOutput {
        output::<i64, crate::Error>(Ok(args.len() as i64))
    }

    const MODULE: Module = Module {
        statements: &[],
        procedures: &[Procedure {
            name: "ping",
            params: &[],
            returns: abi::ty::I64,
            partition: None,
            invoke: ping,
        }],
    };

    #[test]
    fn call_dispatches_by_number() {
        assert_eq!(MODULE.procedure_number("ping"), Some(0));
        assert_eq!(MODULE.procedure_number("pong"), None);
        let out = MODULE.call(&mut NoHost, 0, &[1, 2]);
        assert_eq!(out.reply().unwrap(), Reply::Value(crate::Value::Int(2)));
        let out = MODULE.call(&mut NoHost, 1, &[]);
        assert_eq!(
            out.reply().unwrap(),
            Reply::BadArgs("no procedure number 1".into())
        );
        let desc = abi::ModuleDesc::decode(&MODULE.desc().encode()).unwrap();
        assert_eq!(
            (desc.procedures[0].name.as_str(), desc.procedures[0].returns),
            ("ping", abi::ty::I64)
        );
    }
}
