//! The Wasm side of the ABI: the `ohm` imports, `WasmBackend` over them, and
//! the bodies of the `ohm_describe` / `ohm_call` exports that `export!`
//! generates.
//!
//! Owns: every raw pointer handed to the host, and the panic hook that
//! tells the host why the guest is about to trap. Must not: read a clock
//! or draw randomness (only `ohm.now` / `ohm.seed`), or hold on to a
//! pointer the host gave (the host only ever writes into our buffers).
//!
//! ```text
//!   ohm_call(proc, args_len) -> ohm.take(args)  -> Module::call
//!        WasmBackend::batch  -> ohm.batch(req, out, cap) [-> ohm.take(rest)]
//!                            -> ohm.result(payload) -> status
//! ```
//!
//! `ohm.take(dst, len) -> i32` copies the pending bytes (the arguments, or
//! a batch payload too big for the buffer `ohm.batch` was given) to `dst`
//! and returns how many it copied.

use crate::abi::ErrorCode;
use crate::module::BatchError;

/// Reads a batch error payload: `u32` index of the failing statement, then
/// the message. `code` is the nonzero status `ohm.batch` returned.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn batch_error(code: u32, payload: &[u8]) -> BatchError {
    let (statement, message) = match payload.split_first_chunk::<4>() {
        Some((index, rest)) => (
            u32::from_le_bytes(*index),
            String::from_utf8_lossy(rest).into_owned(),
        ),
        None => (
            0,
            format!("(the host sent a {}-byte error payload)", payload.len()),
        ),
    };
    match ErrorCode::from_u32(code) {
        Some(code) => BatchError {
            code,
            statement,
            message,
        },
        None => BatchError {
            code: ErrorCode::Exec,
            statement,
            message: format!("unknown error code {code}: {message}"),
        },
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(target_arch = "wasm32")]
pub use guest::{call, describe};

#[cfg(target_arch = "wasm32")]
mod guest {
    use std::cell::Cell;
    use std::sync::{Once, OnceLock};

    use super::{batch_error, truncate};
    use crate::abi::{self, status, ErrorCode};
    use crate::context::SPARE_BUFFER_BYTES_MAX;
    use crate::module::{Backend, BatchError, CallOutput, Module};

    /// Longest panic message sent to the host; the rest is cut.
    const PANIC_MESSAGE_BYTES_MAX: usize = 4096;
    /// Capacity the batch response buffer starts with: most outcomes fit, so
    /// most batches need no `take`.
    const RESPONSE_BYTES_INITIAL: usize = 4096;

    #[link(wasm_import_module = "ohm")]
    unsafe extern "C" {
        #[link_name = "batch"]
        fn host_batch(req_ptr: i32, req_len: i32, out_ptr: i32, out_cap: i32) -> i64;
        #[link_name = "take"]
        fn host_take(dst_ptr: i32, dst_len: i32) -> i32;
        #[link_name = "result"]
        fn host_result(ptr: i32, len: i32);
        #[link_name = "panic"]
        fn host_panic(ptr: i32, len: i32);
        #[link_name = "now"]
        fn host_now() -> i64;
        #[link_name = "seed"]
        fn host_seed() -> i64;
    }

    thread_local! {
        /// The arguments buffer of the last call, reused by the next.
        static ARGS: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    }

    /// A pointer or length as the host's `i32` (wasm32 addresses are 32-bit).
    fn i32_of(n: usize) -> i32 {
        n as i32
    }

    /// Fetches `len` pending bytes into `buf` (replacing its contents).
    fn take_pending(buf: &mut Vec<u8>, len: usize) -> Result<(), String> {
        buf.clear();
        buf.reserve(len);
        // SAFETY: `buf` has room for `len` bytes; the host writes at most
        // `len` bytes there and we keep only as many as it says it wrote.
        let n = unsafe { host_take(i32_of(buf.as_mut_ptr() as usize), i32_of(len)) };
        if usize::try_from(n).ok() != Some(len) {
            return Err(format!("ohm.take returned {n} for {len} pending bytes"));
        }
        // SAFETY: the host initialised exactly `len` bytes (checked above).
        unsafe { buf.set_len(len) };
        Ok(())
    }

    /// The host, through the `ohm` imports.
    pub struct WasmBackend;

    impl Backend for WasmBackend {
        fn batch(&mut self, request: &[u8], response: &mut Vec<u8>) -> Result<(), BatchError> {
            response.clear();
            response.reserve(RESPONSE_BYTES_INITIAL);
            let cap = response.capacity().min(i32::MAX as usize);
            // SAFETY: the request is read-only to the host; the host writes
            // at most `cap` bytes into `response`'s spare capacity.
            let ret = unsafe {
                host_batch(
                    i32_of(request.as_ptr() as usize),
                    i32_of(request.len()),
                    i32_of(response.as_mut_ptr() as usize),
                    i32_of(cap),
                )
            };
            let (code, len) = abi::unpack_batch_return(ret);
            let len = len as usize;
            let host_fault = |message: String| BatchError {
                code: ErrorCode::Exec,
                statement: 0,
                message,
            };
            // Response or error, the payload is in `response` if it fit,
            // else pending for `take`.
            if len <= cap {
                // SAFETY: `len <= cap`: the host wrote `len` bytes there.
                unsafe { response.set_len(len) };
            } else {
                take_pending(response, len).map_err(host_fault)?;
            }
            if code != 0 {
                let e = batch_error(code, response);
                response.clear();
                return Err(e);
            }
            Ok(())
        }

        fn now(&self) -> i64 {
            // SAFETY: no arguments, no memory touched.
            unsafe { host_now() }
        }

        fn seed(&self) -> u64 {
            // SAFETY: no arguments, no memory touched.
            unsafe { host_seed() as u64 }
        }
    }

    /// Sends every panic's message (with its location) to `ohm.panic`
    /// before the trap, so the caller learns more than "unreachable".
    fn install_panic_hook() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let message = info.to_string();
                let m = truncate(&message, PANIC_MESSAGE_BYTES_MAX);
                // SAFETY: `m` is valid for reads of `m.len()` bytes.
                unsafe { host_panic(i32_of(m.as_ptr() as usize), i32_of(m.len())) };
            }));
        });
    }

    /// The body of `ohm_describe`: the description, encoded once and kept
    /// for the module's lifetime so the pointer stays valid.
    pub fn describe(module: &Module) -> i64 {
        install_panic_hook();
        static DESC: OnceLock<Vec<u8>> = OnceLock::new();
        let d = DESC.get_or_init(|| module.desc().encode());
        ((d.as_ptr() as usize as i64) << 32) | d.len() as i64
    }

    /// The body of `ohm_call`: fetch the arguments, run the procedure,
    /// hand the payload to `ohm.result`, return the status.
    pub fn call(module: &Module, procedure: i32, args_len: i32) -> i32 {
        install_panic_hook();
        let mut args = ARGS.with(Cell::take);
        let out = match usize::try_from(args_len) {
            Err(_) => bad_args(format!("argument length {args_len} is negative")),
            Ok(len) => match take_pending(&mut args, len) {
                Err(e) => bad_args(e),
                Ok(()) => {
                    let procedure = u32::try_from(procedure).unwrap_or(u32::MAX);
                    module.call(&mut WasmBackend, procedure, &args)
                }
            },
        };
        if args.capacity() <= SPARE_BUFFER_BYTES_MAX {
            ARGS.with(|a| a.set(args));
        }
        // SAFETY: the payload is valid for reads of its length.
        unsafe {
            host_result(
                i32_of(out.payload.as_ptr() as usize),
                i32_of(out.payload.len()),
            )
        };
        out.status
    }

    fn bad_args(message: String) -> CallOutput {
        CallOutput {
            status: status::CALL_BAD_ARGS,
            payload: message.into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_error_payloads() {
        let mut p = 2u32.to_le_bytes().to_vec();
        p.extend_from_slice(b"duplicate key");
        assert_eq!(
            batch_error(3, &p),
            BatchError {
                code: ErrorCode::Unique,
                statement: 2,
                message: "duplicate key".into()
            }
        );
        let e = batch_error(99, &p);
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::Exec, "unknown error code 99: duplicate key")
        );
        let e = batch_error(1, &[1]);
        assert_eq!(
            (e.statement, e.message.as_str()),
            (0, "(the host sent a 1-byte error payload)")
        );
    }

    #[test]
    fn truncation_keeps_whole_chars() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("hi", 10), "hi");
    }
}
