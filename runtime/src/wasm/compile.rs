//! Deploy-time checks of a compiled module against the ABI: its imports,
//! its exports, and its description (read by running `ohm_describe` once
//! in a throwaway, fuel-bounded instance).
//!
//! Owns: the rules "import only known `ohm` functions with their exact
//! signatures" and "export `memory`, `ohm_describe`, `ohm_call` with their
//! exact types".
//! Must not: look at a schema (that is `deploy`'s job, per partition).

use super::error::DeployError;
use super::imports::{HostState, HOST_FUNCTIONS};
use super::instance::classify;
use super::limits::RuntimeConfig;
use ohm_sdk::abi::{self, ModuleDesc};
use wasmtime::{ExternType, FuncType, InstancePre, Module, Store, ValType};

/// A signature as text, for messages: `(i32, i32) -> i64`.
fn render(params: impl Iterator<Item = ValType>, results: impl Iterator<Item = ValType>) -> String {
    let p: Vec<String> = params.map(|t| t.to_string()).collect();
    let r: Vec<String> = results.map(|t| t.to_string()).collect();
    if r.is_empty() {
        format!("({})", p.join(", "))
    } else {
        format!("({}) -> {}", p.join(", "), r.join(", "))
    }
}

/// Renders a signature given as i64 flags (see `HOST_FUNCTIONS`).
fn render_flags(params: &[bool], results: &[bool]) -> String {
    let ty = |&b: &bool| if b { ValType::I64 } else { ValType::I32 };
    render(params.iter().map(ty), results.iter().map(ty))
}

fn same_sig(ft: &FuncType, params: &[bool], results: &[bool]) -> bool {
    let is =
        |t: ValType, wide: bool| matches!((t, wide), (ValType::I64, true) | (ValType::I32, false));
    ft.params().len() == params.len()
        && ft.results().len() == results.len()
        && ft.params().zip(params).all(|(t, &w)| is(t, w))
        && ft.results().zip(results).all(|(t, &w)| is(t, w))
}

/// Every import must be a known function of module `ohm`, with its exact signature.
pub fn check_imports(name: &str, module: &Module) -> Result<(), DeployError> {
    for import in module.imports() {
        let full = format!("{}.{}", import.module(), import.name());
        let err = |message: String| DeployError::Import {
            module: name.to_string(),
            import: full.clone(),
            message,
        };
        if import.module() != abi::IMPORT_MODULE {
            return Err(err(format!(
                "a procedure may import only from module \"{}\", not \"{}\"",
                abi::IMPORT_MODULE,
                import.module()
            )));
        }
        let Some((_, params, results)) = HOST_FUNCTIONS.iter().find(|f| f.0 == import.name())
        else {
            let known: Vec<_> = HOST_FUNCTIONS.iter().map(|f| f.0).collect();
            return Err(err(format!(
                "the host has no such function (it has {})",
                known.join(", ")
            )));
        };
        let ExternType::Func(ft) = import.ty() else {
            return Err(err("must be a function".into()));
        };
        if !same_sig(&ft, params, results) {
            return Err(err(format!(
                "signature is {} but the host function is {}",
                render(ft.params(), ft.results()),
                render_flags(params, results)
            )));
        }
    }
    Ok(())
}

/// The module must export its memory (32-bit, unshared) and both entry points.
pub fn check_exports(name: &str, module: &Module) -> Result<(), DeployError> {
    let err = |export: &str, message: String| DeployError::Export {
        module: name.to_string(),
        export: export.to_string(),
        message,
    };
    match module.get_export(abi::EXPORT_MEMORY) {
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        Some(ExternType::Memory(_)) => {
            return Err(err(
                abi::EXPORT_MEMORY,
                "must be a 32-bit, unshared memory".into(),
            ))
        }
        Some(_) => return Err(err(abi::EXPORT_MEMORY, "must be a memory".into())),
        None => return Err(err(abi::EXPORT_MEMORY, "missing".into())),
    }
    let funcs: [(&str, &[bool], &[bool]); 2] = [
        (abi::EXPORT_DESCRIBE, &[], &[true]),
        (abi::EXPORT_CALL, &[false, false], &[false]),
    ];
    for (export, params, results) in funcs {
        let want = render_flags(params, results);
        match module.get_export(export) {
            Some(ExternType::Func(ft)) if same_sig(&ft, params, results) => {}
            Some(ExternType::Func(ft)) => {
                let got = render(ft.params(), ft.results());
                return Err(err(export, format!("signature is {got}, must be {want}")));
            }
            Some(_) => return Err(err(export, format!("must be a function {want}"))),
            None => return Err(err(export, format!("missing (a function {want})"))),
        }
    }
    Ok(())
}

/// Instantiates the module once with fuel and reads its description.
pub fn describe(
    name: &str,
    pre: &InstancePre<HostState>,
    config: &RuntimeConfig,
) -> Result<ModuleDesc, DeployError> {
    let desc_err = |message: String| DeployError::Description {
        module: name.to_string(),
        message,
    };
    let mut store = Store::new(
        pre.module().engine(),
        HostState::new(config.memory_bytes_max),
    );
    store.limiter(|s| &mut s.limiter);
    let wasm_err = |e: wasmtime::Error| desc_err(format!("{e:#}"));
    store.set_fuel(config.describe_fuel).map_err(wasm_err)?;
    let instance = pre
        .instantiate(&mut store)
        .map_err(|e| DeployError::Instantiate {
            module: name.to_string(),
            message: classify(&e, store.data_mut(), config.describe_fuel).to_string(),
        })?;
    let f = instance
        .get_typed_func::<(), i64>(&mut store, abi::EXPORT_DESCRIBE)
        .map_err(wasm_err)?;
    let packed = f.call(&mut store, ()).map_err(|e| {
        let fault = classify(&e, store.data_mut(), config.describe_fuel);
        desc_err(format!("{} failed: {fault}", abi::EXPORT_DESCRIBE))
    })?;
    // (ptr << 32) | len, both u32.
    let (ptr, len) = ((packed as u64 >> 32) as usize, packed as u32 as usize);
    if len > abi::DESCRIBE_BYTES_MAX {
        return Err(desc_err(format!(
            "{len} bytes, over the limit of {}",
            abi::DESCRIBE_BYTES_MAX
        )));
    }
    let memory = instance
        .get_memory(&mut store, abi::EXPORT_MEMORY)
        .ok_or_else(|| desc_err("the memory export is not a memory".into()))?;
    let data = memory.data(&store);
    let bytes = data.get(ptr..ptr + len).ok_or_else(|| {
        desc_err(format!(
            "{} returned ptr {ptr:#x}, len {len}: outside guest memory ({} bytes)",
            abi::EXPORT_DESCRIBE,
            data.len()
        ))
    })?;
    ModuleDesc::decode(bytes).map_err(|e| desc_err(e.to_string()))
}
