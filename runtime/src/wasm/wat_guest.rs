//! Guest modules written by hand in WAT, speaking the ABI without the SDK:
//! a builder that lays out memory, embeds the description as a data
//! segment and dispatches `ohm_call` to one WAT function per procedure.
//! The host's tests use it for well-behaved and hostile guests, and `ohm
//! bench isolation` for the modules a hostile tenant floods and bombs the
//! node with.

use ohm_sdk::abi::{self, ModuleDesc, ParamDesc, PartitionDesc, ProcedureDesc, StatementDesc};

/// Guest memory layout (two 64 KiB pages).
pub const DESC: u32 = 1024;
pub const ARGS: u32 = 0x8000;
pub const REQ: u32 = 0xA000;
pub const OUT: u32 = 0xC000;
pub const OUT_CAP: u32 = 0x4000;
/// Constant payloads (`Guest::constant`) start here.
const CONST: u32 = 0x10000;

/// A module under construction.
#[derive(Default)]
pub struct Guest {
    pub desc: ModuleDesc,
    bodies: Vec<String>,
    /// Extra module fields (helper functions).
    pub extra: String,
    constants: Vec<u8>,
    /// Replaces the whole import list when set.
    pub imports: Option<String>,
}

/// WAT string literal of raw bytes.
pub fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

pub fn param(name: &str, ty: u8) -> ParamDesc {
    ParamDesc {
        name: name.into(),
        ty,
    }
}

pub fn on(table: &str, column: &str, parameter: u32) -> Option<PartitionDesc> {
    Some(PartitionDesc {
        table: table.into(),
        column: column.into(),
        parameter,
    })
}

impl Guest {
    pub fn new() -> Guest {
        Guest::default()
    }

    pub fn statement(&mut self, name: &str, sql: &str) -> &mut Self {
        self.desc.statements.push(StatementDesc {
            name: name.into(),
            sql: sql.into(),
        });
        self
    }

    /// Adds a procedure whose body is WAT: a function `(param $len i32)
    /// (result i32)` with a scratch local `$r i64`, returning the status.
    pub fn procedure(
        &mut self,
        name: &str,
        params: Vec<ParamDesc>,
        returns: u8,
        partition: Option<PartitionDesc>,
        body: &str,
    ) -> &mut Self {
        self.desc.procedures.push(ProcedureDesc {
            name: name.into(),
            params,
            returns,
            partition,
        });
        self.bodies.push(body.to_string());
        self
    }

    /// Places `bytes` in memory; returns (ptr, len) for the WAT.
    pub fn constant(&mut self, bytes: &[u8]) -> (u32, u32) {
        let ptr = CONST + self.constants.len() as u32;
        self.constants.extend_from_slice(bytes);
        (ptr, bytes.len() as u32)
    }

    /// The module as WAT text.
    pub fn wat(&self) -> String {
        let desc = self.desc.encode();
        let imports = self.imports.clone().unwrap_or_else(|| {
            r#"(import "ohm" "batch" (func $batch (param i32 i32 i32 i32) (result i64)))
  (import "ohm" "take" (func $take (param i32 i32) (result i32)))
  (import "ohm" "result" (func $result (param i32 i32)))
  (import "ohm" "panic" (func $panic (param i32 i32)))
  (import "ohm" "now" (func $now (result i64)))
  (import "ohm" "seed" (func $seed (result i64)))"#
                .to_string()
        });
        let mut funcs = String::new();
        let mut dispatch = String::new();
        for (i, body) in self.bodies.iter().enumerate() {
            funcs.push_str(&format!(
                "  (func $p{i} (param $len i32) (result i32) (local $r i64)\n    {body})\n"
            ));
            dispatch.push_str(&format!(
                "    (if (i32.eq (local.get $proc) (i32.const {i})) (then (return (call $p{i} (local.get $len)))))\n"
            ));
        }
        let packed = ((DESC as u64) << 32) | desc.len() as u64;
        format!(
            r#"(module
  {imports}
  (memory (export "memory") 2)
  (data (i32.const {DESC}) "{desc}")
  (data (i32.const {CONST}) "{consts}")
  (func (export "ohm_describe") (result i64) (i64.const {packed}))
{funcs}
  (func (export "ohm_call") (param $proc i32) (param $len i32) (result i32)
{dispatch}    (i32.const {bad_args}))
  {extra}
)"#,
            desc = wat_bytes(&desc),
            consts = wat_bytes(&self.constants),
            extra = self.extra,
            bad_args = abi::status::CALL_BAD_ARGS,
        )
    }

    /// The module as Wasm bytes.
    pub fn wasm(&self) -> Vec<u8> {
        let wat = self.wat();
        match wat::parse_str(&wat) {
            Ok(b) => b,
            Err(e) => panic!("a guest's WAT does not assemble (a bug in its builder): {e}\n{wat}"),
        }
    }
}

/// WAT: copy the arguments into `ARGS`.
pub fn take_args() -> String {
    format!("(drop (call $take (i32.const {ARGS}) (local.get $len)))")
}

/// WAT: run statement `stmt` with the call's arguments as its parameters,
/// with an output buffer of `out_cap` bytes; the packed return goes to `$r`.
/// A statement error is passed on as `CALL_SQL_ERROR`.
pub fn batch_with_args(stmt: u32, out_cap: u32) -> String {
    format!(
        "{take}
    (i32.store (i32.const {REQ}) (i32.const 1))
    (i32.store (i32.const {req4}) (i32.const {stmt}))
    (i32.store (i32.const {req8}) (i32.load (i32.const {ARGS})))
    (memory.copy (i32.const {req12}) (i32.const {args4}) (i32.sub (local.get $len) (i32.const 4)))
    (local.set $r (call $batch (i32.const {REQ}) (i32.add (local.get $len) (i32.const 8))
                               (i32.const {OUT}) (i32.const {out_cap})))
    (if (i64.ne (i64.shr_u (local.get $r) (i64.const 32)) (i64.const 0))
      (then
        (i32.store (i32.const {OUT}) (i32.wrap_i64 (i64.shr_u (local.get $r) (i64.const 32))))
        (call $result (i32.const {OUT}) (i32.wrap_i64 (local.get $r)))
        (return (i32.const {sql_error}))))",
        take = take_args(),
        req4 = REQ + 4,
        req8 = REQ + 8,
        req12 = REQ + 12,
        args4 = ARGS + 4,
        sql_error = abi::status::CALL_SQL_ERROR,
    )
}

/// WAT: return the row set of the single query whose response is at `OUT`
/// (`u32` count, outcome byte, row set) as the procedure result.
pub fn return_response_rows() -> String {
    format!(
        "(i32.store8 (i32.const {o4}) (i32.const {rows}))
    (call $result (i32.const {o4}) (i32.sub (i32.wrap_i64 (local.get $r)) (i32.const 4)))
    (i32.const 0)",
        o4 = OUT + 4,
        rows = abi::result_kind::ROWS,
    )
}

/// WAT: return the constant at (ptr, len) with `status`.
pub fn return_const((ptr, len): (u32, u32), status: i32) -> String {
    format!("(call $result (i32.const {ptr}) (i32.const {len})) (i32.const {status})")
}

/// The encoded unit result.
pub const UNIT: [u8; 2] = [abi::result_kind::VALUE, abi::tag::NULL];

/// An encoded integer result.
pub fn int_result(v: i64) -> Vec<u8> {
    let mut b = vec![abi::result_kind::VALUE, abi::tag::INT];
    b.extend_from_slice(&v.to_le_bytes());
    b
}

/// WAT: return `(result_kind VALUE, tag, i64 from expr)`.
pub fn return_i64(tag: u8, expr: &str) -> String {
    format!(
        "(i32.store8 (i32.const {OUT}) (i32.const 0))
    (i32.store8 (i32.const {o1}) (i32.const {tag}))
    (i64.store (i32.const {o2}) {expr})
    (call $result (i32.const {OUT}) (i32.const 10))
    (i32.const 0)",
        o1 = OUT + 1,
        o2 = OUT + 2,
    )
}
