//! ohm-sdk: write Ohm stored procedures in Rust.
//!
//! A procedure is a plain function marked `#[procedure]`, taking a
//! `&mut Context` and typed parameters and returning `Result<T>`. It queues
//! statements declared once with `statements!`, executes them as one batch
//! (one host crossing), reads typed rows, and returns a value, rows, or an
//! error (`abort("reason")` rolls the transaction back). `export!` turns a
//! crate into a module: `ohm_describe`/`ohm_call` in Wasm, `module()`
//! everywhere (for native tests and benchmarks).
//!
//! Owns: the author-facing API and the contract the runtime calls
//! (`Module`, `Procedure`, `Backend`, `Context::new`). Must not: depend on
//! anything but `std` and its own macros (it is compiled into every module),
//! read a clock or draw randomness except through the host.
//!
//! ```text
//!   host --ohm_call / Module::call--> Procedure::invoke --> user fn
//!                                                      <-- ctx.execute()
//!   Backend::batch <-- one encoded batch of queued statements
//! ```
//!
//! ```
//! use ohm_sdk::prelude::*;
//!
//! ohm_sdk::statements! {
//!     GET = "SELECT balance FROM accounts WHERE id = ?";
//! }
//!
//! #[procedure(partition = "accounts.id", parameter = 0)]
//! pub fn balance(ctx: &mut Context, id: i64) -> Result<Option<i64>> {
//!     let rows = ctx.execute_one(&GET, (id,))?;
//!     match rows.first() {
//!         Some(row) => Ok(Some(row.get(0)?)),
//!         None => Ok(None),
//!     }
//! }
//!
//! ohm_sdk::export!(statements = STATEMENTS, procedures = [balance]);
//! # fn main() { assert_eq!(module().procedures[0].name, "balance"); }
//! ```

// Lets the macros' `::ohm_sdk::` paths resolve inside this crate's own tests.
extern crate self as ohm_sdk;

pub mod abi;
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod alloc;
mod context;
mod convert;
mod datetime;
mod error;
mod invoke;
mod module;
mod proc_types;
mod rows;
mod statements;
mod value;
mod wasm;

/// The guest's allocator: see `alloc`. Turn off the `guest-alloc` feature
/// to keep the standard one (or to install your own).
#[cfg(all(
    target_arch = "wasm32",
    not(target_feature = "atomics"),
    feature = "guest-alloc"
))]
#[global_allocator]
static GUEST_ALLOC: alloc::GuestAlloc = alloc::GuestAlloc::new();

pub use context::{Context, Rng, SPARE_BUFFER_BYTES_MAX};
pub use convert::{FromValue, IntoValue, Params};
pub use datetime::{Date, Interval, Time, Timestamp, TimestampTz, Uuid};
pub use error::{abort, Error, Result};
pub use invoke::{encode_args, Reply};
pub use module::{Backend, BatchError, CallOutput, Module, Param, Partition, Procedure, Statement};
pub use ohm_sdk_macros::{export, procedure};
pub use proc_types::{ProcParam, ProcReturn};
pub use rows::{Row, Rows};
pub use value::{Decimal, Value};

/// What a procedure file needs: `use ohm_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::abi::ErrorCode;
    pub use crate::{
        abort, export, procedure, statements, Context, Date, Decimal, Error, FromValue, Interval,
        IntoValue, Result, Rng, Row, Rows, Statement, Time, Timestamp, TimestampTz, Uuid, Value,
    };
}

/// Support for the code the macros generate; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::invoke::{output, Args};
    pub use crate::statements::check_statements;
    #[cfg(target_arch = "wasm32")]
    pub use crate::wasm::{call as wasm_call, describe as wasm_describe};
}

/// The README's examples compile as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
