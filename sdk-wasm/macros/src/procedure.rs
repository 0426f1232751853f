//! `#[procedure]`: keeps the function as written and declares, beside it,
//! the `Procedure` the module exports (`__OHM_PROC_<name>`).
//!
//! Owns: checking the attribute and the signature (clear compile errors,
//! pointed at the offending token), and generating the `invoke` glue that
//! decodes arguments, calls the function and maps its result. Must not:
//! decide encodings or statuses itself; the glue calls `ohm_sdk::__private`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, ItemFn, LitInt, LitStr, Pat, PathArguments, ReturnType, Type,
};

/// Mirrors `ohm_sdk::abi::PARAMS_MAX` (this crate cannot depend on ohm-sdk).
const PARAMS_MAX: usize = 64;
/// Mirrors `ohm_sdk::abi::NAME_BYTES_MAX`.
const NAME_BYTES_MAX: usize = 64;

/// What the attribute's arguments say.
#[derive(Default)]
struct Attr {
    partition: Option<LitStr>,
    parameter: Option<LitInt>,
}

/// A parameter after the context: its declared name and Rust type.
struct ProcArg {
    name: String,
    ty: Type,
}

const ATTR_USAGE: &str =
    "expected `#[procedure]` or `#[procedure(partition = \"table.column\", parameter = N)]`";

fn parse_attr(attr: TokenStream) -> syn::Result<Attr> {
    let mut a = Attr::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("partition") {
            a.partition = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("parameter") {
            a.parameter = Some(meta.value()?.parse()?);
        } else {
            return Err(meta.error(format!("unknown argument; {ATTR_USAGE}")));
        }
        Ok(())
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(a)
}

/// Expands the attribute; on error the function is still emitted, so the
/// only errors shown are the attribute's.
pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let e =
                syn::Error::new(e.span(), "#[procedure] goes on a free `fn`").to_compile_error();
            return quote!(#e #item);
        }
    };
    match parse_attr(attr).and_then(|a| generate(&a, &func)) {
        Ok(glue) => quote!(#func #glue),
        Err(e) => {
            let e = e.to_compile_error();
            quote!(#func #e)
        }
    }
}

fn check_shape(func: &ItemFn) -> syn::Result<()> {
    let sig = &func.sig;
    if let Some(t) = &sig.asyncness {
        return Err(syn::Error::new(t.span, "a procedure cannot be `async`"));
    }
    if let Some(t) = &sig.unsafety {
        return Err(syn::Error::new(t.span, "a procedure cannot be `unsafe`"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a procedure cannot be generic: its parameter types are declared to the host",
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new(v.span(), "a procedure cannot be variadic"));
    }
    let name = sig.ident.unraw().to_string();
    if name.len() > NAME_BYTES_MAX || !name.is_ascii() {
        return Err(syn::Error::new(
            sig.ident.span(),
            format!("a procedure name is ASCII and at most {NAME_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

/// Whether `ty` is `&mut Context` (any path ending in `Context`).
fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) if r.mutability.is_some() => match &*r.elem {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Context"),
            _ => false,
        },
        _ => false,
    }
}

/// The parameters after the leading `&mut Context`.
fn proc_args(func: &ItemFn) -> syn::Result<Vec<ProcArg>> {
    let context_first = syn::Error::new(
        func.sig.paren_token.span.join(),
        "a procedure's first parameter is `ctx: &mut Context`",
    );
    let mut inputs = func.sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Typed(t)) if is_context(&t.ty) => {}
        Some(other) => return Err(syn::Error::new(other.span(), context_first.to_string())),
        None => return Err(context_first),
    }
    let mut args = Vec::new();
    for input in inputs {
        let FnArg::Typed(t) = input else {
            return Err(syn::Error::new(input.span(), "a procedure takes no `self`"));
        };
        let name = match &*t.pat {
            Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => {
                p.ident.unraw().to_string()
            }
            other => {
                return Err(syn::Error::new(
                    other.span(),
                    "name this parameter with a plain identifier: the name is part of \
                     the procedure's declared signature",
                ))
            }
        };
        args.push(ProcArg {
            name,
            ty: (*t.ty).clone(),
        });
    }
    if args.len() > PARAMS_MAX {
        return Err(syn::Error::new(
            func.sig.inputs.span(),
            format!("a procedure takes at most {PARAMS_MAX} parameters besides the context"),
        ));
    }
    Ok(args)
}

/// `R` of a `-> Result<R>` (or `Result<R, E>`) return type.
fn result_type(func: &ItemFn) -> syn::Result<Type> {
    let usage = "a procedure returns `Result<T>`, T being (), Rows or a value type";
    let ReturnType::Type(_, ty) = &func.sig.output else {
        return Err(syn::Error::new(func.sig.ident.span(), usage));
    };
    if let Type::Path(p) = &**ty {
        if let Some(seg) = p.path.segments.last() {
            if seg.ident == "Result" {
                if let PathArguments::AngleBracketed(a) = &seg.arguments {
                    if let Some(GenericArgument::Type(r)) = a.args.first() {
                        return Ok(r.clone());
                    }
                }
            }
        }
    }
    Err(syn::Error::new(ty.span(), usage))
}

/// `partition = "table.column", parameter = N`, checked against the
/// procedure's parameters.
fn partition(attr: &Attr, args: &[ProcArg]) -> syn::Result<TokenStream> {
    let (lit, param) = match (&attr.partition, &attr.parameter) {
        (None, None) => return Ok(quote!(::core::option::Option::None)),
        (None, Some(p)) => {
            return Err(syn::Error::new(
                p.span(),
                "`parameter` needs `partition = \"table.column\"` too",
            ))
        }
        (Some(l), None) => {
            return Err(syn::Error::new(
                l.span(),
                "add `parameter = N`: which parameter (0 = the first after the context) \
                 carries the partition key",
            ))
        }
        (Some(l), Some(p)) => (l, p),
    };
    let text = lit.value();
    let (table, column) = match text.split_once('.') {
        Some((t, c)) if is_name(t) && is_name(c) => (t.to_string(), c.to_string()),
        _ => {
            return Err(syn::Error::new(
                lit.span(),
                format!("partition is \"table.column\" (one dot between two names), not {text:?}"),
            ))
        }
    };
    let index: usize = param.base10_parse()?;
    let Some(arg) = args.get(index) else {
        return Err(syn::Error::new(
            param.span(),
            format!(
                "parameter {index} is out of range: the procedure has {} parameters after the context",
                args.len()
            ),
        ));
    };
    let ty = &arg.ty;
    let index = index as u32;
    let check = quote_spanned! {ty.span()=>
        const _: () = ::core::assert!(
            <#ty as ::ohm_sdk::ProcParam>::TY & ::ohm_sdk::abi::ty::NULLABLE == 0,
            "the partition parameter cannot be an Option: every call needs a key",
        );
    };
    Ok(quote! {
        ::core::option::Option::Some({
            #check
            ::ohm_sdk::Partition { table: #table, column: #column, parameter: #index }
        })
    })
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn generate(attr: &Attr, func: &ItemFn) -> syn::Result<TokenStream> {
    check_shape(func)?;
    let args = proc_args(func)?;
    let ret = result_type(func)?;
    let partition = partition(attr, &args)?;
    let ident = &func.sig.ident;
    let vis = &func.vis;
    let name = ident.unraw().to_string();
    let konst = proc_const_name(ident);
    let params = args.iter().map(|a| {
        let (n, ty) = (&a.name, &a.ty);
        quote_spanned! {ty.span()=>
            ::ohm_sdk::Param { name: #n, ty: <#ty as ::ohm_sdk::ProcParam>::TY }
        }
    });
    let vars: Vec<Ident> = (0..args.len())
        .map(|i| format_ident!("__ohm_arg{}", i))
        .collect();
    let reads = args.iter().zip(&vars).map(|(a, v)| {
        let ty = &a.ty;
        quote! {
            let #v = match __ohm_args.read::<#ty>() {
                ::core::result::Result::Ok(v) => v,
                ::core::result::Result::Err(out) => return out,
            };
        }
    });
    let returns = quote_spanned! {ret.span()=> <#ret as ::ohm_sdk::ProcReturn>::TY };
    let doc =
        format!("The `{name}` procedure as its module exports it (generated by `#[procedure]`).");
    Ok(quote! {
        #[doc = #doc]
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        #vis const #konst: ::ohm_sdk::Procedure = {
            const __OHM_PARAMS: &[::ohm_sdk::Param] = &[#(#params),*];
            fn __ohm_invoke(
                __ohm_ctx: &mut ::ohm_sdk::Context<'_>,
                __ohm_bytes: &[u8],
            ) -> ::ohm_sdk::CallOutput {
                let mut __ohm_args = match ::ohm_sdk::__private::Args::new(__ohm_bytes, __OHM_PARAMS) {
                    ::core::result::Result::Ok(a) => a,
                    ::core::result::Result::Err(out) => return out,
                };
                #(#reads)*
                if let ::core::result::Result::Err(out) = __ohm_args.finish() {
                    return out;
                }
                ::ohm_sdk::__private::output(#ident(__ohm_ctx, #(#vars),*))
            }
            ::ohm_sdk::Procedure {
                name: #name,
                params: __OHM_PARAMS,
                returns: #returns,
                partition: #partition,
                invoke: __ohm_invoke,
            }
        };
    })
}

/// `__OHM_PROC_<name>`: where `export!` finds a procedure's declaration.
pub fn proc_const_name(ident: &Ident) -> Ident {
    format_ident!("__OHM_PROC_{}", ident.unraw(), span = ident.span())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expansion of `#[procedure(attr)] item`, as text.
    fn expand_str(attr: TokenStream, item: TokenStream) -> String {
        expand(attr, item).to_string()
    }

    fn vote() -> TokenStream {
        quote! {
            pub fn vote(ctx: &mut Context, phone: i64, contestant: i32) -> Result<i64> { Ok(0) }
        }
    }

    #[test]
    fn a_good_procedure_expands_without_errors() {
        let out = expand_str(quote!(partition = "votes.phone", parameter = 0), vote());
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("pub const __OHM_PROC_vote"), "{out}");
        assert!(
            out.contains("table : \"votes\" , column : \"phone\" , parameter : 0u32"),
            "{out}"
        );
        assert!(out.contains("name : \"contestant\""), "{out}");
        let out = expand_str(quote!(), vote());
        assert!(
            out.contains("partition : :: core :: option :: Option :: None"),
            "{out}"
        );
    }

    #[test]
    fn malformed_attributes_are_compile_errors() {
        for (attr, message) in [
            (
                quote!(partition = "votes", parameter = 0),
                "one dot between two names",
            ),
            (
                quote!(partition = "a.b.c", parameter = 0),
                "one dot between two names",
            ),
            (quote!(partition = "votes.phone"), "add `parameter = N`"),
            (quote!(parameter = 0), "`parameter` needs `partition"),
            (
                quote!(partition = "votes.phone", parameter = 2),
                "parameter 2 is out of range",
            ),
            (quote!(partiton = "votes.phone"), "unknown argument"),
        ] {
            let out = expand_str(attr, vote());
            assert!(
                out.contains("compile_error") && out.contains(message),
                "{message}: {out}"
            );
            // The function itself is still emitted, so no cascade of errors.
            assert!(out.contains("pub fn vote"), "{out}");
        }
    }

    #[test]
    fn malformed_signatures_are_compile_errors() {
        for (item, message) in [
            (
                quote!(
                    fn f(a: i64) -> Result<()> {}
                ),
                "first parameter is `ctx: &mut Context`",
            ),
            (
                quote!(
                    fn f() -> Result<()> {}
                ),
                "first parameter is `ctx: &mut Context`",
            ),
            (
                quote!(
                    fn f(ctx: &Context) -> Result<()> {}
                ),
                "first parameter is `ctx: &mut Context`",
            ),
            (
                quote!(
                    fn f(ctx: &mut Context) -> i64 {}
                ),
                "returns `Result<T>`",
            ),
            (
                quote!(
                    fn f(ctx: &mut Context) {}
                ),
                "returns `Result<T>`",
            ),
            (
                quote!(
                    fn f(ctx: &mut Context, (a, b): (i64, i64)) -> Result<()> {}
                ),
                "plain identifier",
            ),
            (
                quote!(
                    async fn f(ctx: &mut Context) -> Result<()> {}
                ),
                "cannot be `async`",
            ),
            (
                quote!(
                    fn f<T>(ctx: &mut Context) -> Result<()> {}
                ),
                "cannot be generic",
            ),
            (
                quote!(
                    struct S;
                ),
                "goes on a free `fn`",
            ),
        ] {
            let out = expand_str(quote!(), item);
            assert!(
                out.contains("compile_error") && out.contains(message),
                "{message}: {out}"
            );
        }
    }
}
