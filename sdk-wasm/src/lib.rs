//! ohm-sdk: write Ohm stored procedures in Rust.
//!
//! CONTRACT SKELETON (being filled in): the items below are the interface the
//! runtime relies on; keep their signatures.

pub mod abi;
mod context;
mod convert;
mod error;
mod invoke;
mod proc_types;
mod rows;
mod value;

pub use context::{Context, Rng, SPARE_BUFFER_BYTES_MAX};
pub use convert::{FromValue, IntoValue, Params};
pub use error::{abort, Error, Result};
pub use invoke::{encode_args, Reply};
pub use proc_types::{ProcParam, ProcReturn};
pub use rows::{Row, Rows};
pub use value::{Decimal, Timestamp, Value};

use abi::ErrorCode;

/// A statement failed inside a batch; the batch changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    pub code: ErrorCode,
    /// Position of the failing statement within the batch (0-based).
    pub statement: u32,
    pub message: String,
}

/// The host as a procedure sees it. In Wasm it is the `ohm` import module;
/// natively (unit tests, `ohm bench proc`) the runtime implements it over
/// the same host logic.
pub trait Backend {
    /// Runs one encoded batch request (`abi` layout); on success `response`
    /// holds the encoded batch response (cleared first).
    fn batch(
        &mut self,
        request: &[u8],
        response: &mut Vec<u8>,
    ) -> core::result::Result<(), BatchError>;
    /// The transaction's timestamp, microseconds since the epoch.
    fn now(&self) -> i64;
    /// The transaction's random seed.
    fn seed(&self) -> u64;
}

/// A statement a module declares: `index` is its position in the module's
/// statement list (what a batch request names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    pub index: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// What one call produced: an `abi::status` code and its payload, exactly
/// as `ohm_call` returns them and `ohm.result` carries them in Wasm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOutput {
    pub status: i32,
    pub payload: Vec<u8>,
}

/// A procedure parameter as declared: its name and `abi::ty` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub ty: u8,
}

/// `partition on table.column, parameter n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub table: &'static str,
    pub column: &'static str,
    pub parameter: u32,
}

/// One procedure of a module, as the `#[procedure]` attribute declares it.
#[derive(Clone, Copy)]
pub struct Procedure {
    pub name: &'static str,
    pub params: &'static [Param],
    /// An `abi::ty` code: a parameter type, `ty::UNIT` or `ty::ROWS`.
    pub returns: u8,
    pub partition: Option<Partition>,
    /// Decodes the arguments, runs the procedure, encodes what it produced.
    pub invoke: fn(&mut Context<'_>, &[u8]) -> CallOutput,
}

/// A module: its statements and procedures (what `export!` declares).
#[derive(Clone, Copy)]
pub struct Module {
    pub statements: &'static [Statement],
    pub procedures: &'static [Procedure],
}

impl Module {
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

/// Support for the code the macros generate; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::invoke::{output, Args};
}
