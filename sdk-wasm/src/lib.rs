//! ohm-sdk: write Ohm stored procedures in Rust.
//!
//! CONTRACT SKELETON (being filled in): the items below are the interface the
//! runtime relies on; keep their signatures.

// Lets `::ohm_sdk::` paths in macro output resolve inside this crate's own tests.
extern crate self as ohm_sdk;

pub mod abi;
mod context;
mod convert;
mod error;
mod invoke;
mod module;
mod proc_types;
mod rows;
mod statements;
mod value;

pub use context::{Context, Rng, SPARE_BUFFER_BYTES_MAX};
pub use convert::{FromValue, IntoValue, Params};
pub use error::{abort, Error, Result};
pub use invoke::{encode_args, Reply};
pub use module::{Backend, BatchError, CallOutput, Module, Param, Partition, Procedure, Statement};
pub use proc_types::{ProcParam, ProcReturn};
pub use rows::{Row, Rows};
pub use value::{Decimal, Timestamp, Value};

/// Support for the code the macros generate; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::invoke::{output, Args};
    pub use crate::statements::check_statements;
}
