//! Proc macros of ohm-sdk: `#[procedure]` and `export!`. Use them through
//! `ohm_sdk` (its prelude re-exports both); the code they generate names
//! `::ohm_sdk` paths.
//!
//! Owns: syntax checks with compile errors a procedure author can act on,
//! and the glue code. Must not: encode anything or pick a status; the glue
//! calls `ohm_sdk::__private`, so the SDK alone defines the ABI.

mod export;
mod procedure;

use proc_macro::TokenStream;

/// Marks a stored procedure: `fn name(ctx: &mut Context, params..) ->
/// Result<T>`. Optional arguments: `partition = "table.column", parameter =
/// N` (N counts the parameters after the context, from 0); without them the
/// procedure is multi-partition. The function stays callable as written.
#[proc_macro_attribute]
pub fn procedure(attr: TokenStream, item: TokenStream) -> TokenStream {
    procedure::expand(attr.into(), item.into()).into()
}

/// `export!(statements = STATEMENTS, procedures = [a, b])`: declares the
/// crate's module. Generates `pub fn module() -> &'static Module` and, on
/// wasm32, the `ohm_describe` and `ohm_call` exports.
#[proc_macro]
pub fn export(input: TokenStream) -> TokenStream {
    match export::expand(input.into()) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
