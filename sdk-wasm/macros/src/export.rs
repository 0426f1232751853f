//! `export!(statements = S, procedures = [a, b])`: turns a crate into an Ohm
//! module.
//!
//! Owns: the `module()` function (for native runners and tests) and, on
//! wasm32 only, the `ohm_describe` / `ohm_call` exports. Must not: hold any
//! logic of its own; the exports call `ohm_sdk::__private`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{bracketed, Expr, Ident, Path, Token};

use crate::procedure::proc_const_name;

/// Mirrors `ohm_sdk::abi::PROCEDURES_MAX`.
const PROCEDURES_MAX: usize = 256;

const USAGE: &str = "expected `export!(statements = STATEMENTS, procedures = [proc_a, proc_b])`";

/// The macro's input.
struct Input {
    statements: Expr,
    procedures: Vec<Path>,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Input> {
        let (mut statements, mut procedures) = (None, None);
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            if key == "statements" && statements.is_none() {
                statements = Some(input.parse::<Expr>()?);
            } else if key == "procedures" && procedures.is_none() {
                let list;
                bracketed!(list in input);
                let paths = Punctuated::<Path, Token![,]>::parse_terminated(&list)?;
                procedures = Some(paths.into_iter().collect::<Vec<_>>());
            } else {
                return Err(syn::Error::new(
                    key.span(),
                    format!("unexpected or repeated `{key}`; {USAGE}"),
                ));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        match (statements, procedures) {
            (Some(statements), Some(procedures)) => Ok(Input {
                statements,
                procedures,
            }),
            _ => Err(input.error(USAGE)),
        }
    }
}

/// The path of the `Procedure` constant `#[procedure]` put beside `path`.
fn proc_const_path(path: &Path) -> syn::Result<(String, Path)> {
    let mut p = path.clone();
    let Some(last) = p.segments.last_mut() else {
        return Err(syn::Error::new_spanned(path, "expected a procedure's name"));
    };
    if !last.arguments.is_none() {
        return Err(syn::Error::new_spanned(
            path,
            "a procedure is named without generic arguments",
        ));
    }
    let name = last.ident.to_string();
    last.ident = proc_const_name(&last.ident);
    Ok((name, p))
}

pub fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let input: Input = syn::parse2(input)?;
    if input.procedures.len() > PROCEDURES_MAX {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            format!("a module may export at most {PROCEDURES_MAX} procedures"),
        ));
    }
    let mut names = Vec::new();
    let mut consts = Vec::new();
    for path in &input.procedures {
        let (name, konst) = proc_const_path(path)?;
        if names.contains(&name) {
            return Err(syn::Error::new_spanned(
                path,
                format!("procedure `{name}` is listed twice"),
            ));
        }
        names.push(name);
        consts.push(konst);
    }
    let statements = &input.statements;
    Ok(quote! {
        /// This crate's Ohm module: its statements and procedures (generated
        /// by `export!`). Run a procedure natively with `module().call(..)`.
        pub fn module() -> &'static ::ohm_sdk::Module {
            static MODULE: ::ohm_sdk::Module = ::ohm_sdk::Module {
                statements: #statements,
                procedures: &[#(#consts),*],
            };
            &MODULE
        }

        const _: () = ::ohm_sdk::__private::check_statements(#statements);

        /// `ohm_describe`: where the module's description is (ABI v1).
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn ohm_describe() -> i64 {
            ::ohm_sdk::__private::wasm_describe(module())
        }

        /// `ohm_call`: runs one procedure with the host's pending arguments.
        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn ohm_call(procedure: i32, args_len: i32) -> i32 {
            ::ohm_sdk::__private::wasm_call(module(), procedure, args_len)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(input: TokenStream) -> String {
        expand(input)
            .map(|t| t.to_string())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn generates_module_and_wasm_exports() {
        let out = expand(quote!(
            statements = STATEMENTS,
            procedures = [vote, admin::results,]
        ))
        .unwrap()
        .to_string();
        assert!(
            out.contains("procedures : & [__OHM_PROC_vote , admin :: __OHM_PROC_results]"),
            "{out}"
        );
        assert!(
            out.contains("pub extern \"C\" fn ohm_describe () -> i64"),
            "{out}"
        );
        assert!(
            out.contains("pub extern \"C\" fn ohm_call (procedure : i32 , args_len : i32) -> i32"),
            "{out}"
        );
        assert_eq!(
            out.matches("cfg (target_arch = \"wasm32\")").count(),
            2,
            "{out}"
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        for (input, message) in [
            (quote!(procedures = [a]), "expected `export!(statements"),
            (quote!(statements = S), "expected `export!(statements"),
            (
                quote!(statements = S, statements = S, procedures = []),
                "unexpected or repeated `statements`",
            ),
            (
                quote!(statements = S, procedures = [a, m::a]),
                "procedure `a` is listed twice",
            ),
            (
                quote!(statements = S, procedures = [a::<i64>]),
                "without generic arguments",
            ),
        ] {
            let e = error_of(input);
            assert!(e.contains(message), "{message}: {e}");
        }
    }
}
