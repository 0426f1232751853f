//! Procedures that misbehave on purpose: each must end in a typed error and
//! a full rollback, and the next call must succeed. The sandbox tests in
//! `tests/tests/procedures.rs` run them as Wasm.

use ohm_sdk::prelude::*;
use std::hint::black_box;

/// The schema the procedures expect.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE t (k BIGINT PRIMARY KEY, v TEXT)",
    "PARTITION TABLE t ON COLUMN k",
];

ohm_sdk::statements! {
    pub INSERT = "INSERT INTO t (k, v) VALUES (?, ?)";
    pub COUNT = "SELECT COUNT(*) FROM t";
    pub ALL = "SELECT k, v FROM t";
}

/// Inserts a row: the well-behaved call that must work after each failure.
#[procedure(partition = "t.k", parameter = 0)]
pub fn put(ctx: &mut Context, k: i64, v: String) -> Result<i64> {
    ctx.execute_one(&INSERT, (k, v))?;
    ctx.execute_one(&COUNT, ())?.scalar()
}

/// Writes, then never stops: only fuel ends it.
#[procedure(partition = "t.k", parameter = 0)]
pub fn spin(ctx: &mut Context, k: i64) -> Result<i64> {
    ctx.execute_one(&INSERT, (k, "spin"))?;
    let mut x = 1u64;
    loop {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        if x == 0 {
            return Ok(0);
        }
    }
}

/// Writes, then allocates `bytes` in 16 MiB pieces, keeping them all.
#[procedure(partition = "t.k", parameter = 0)]
pub fn grab(ctx: &mut Context, k: i64, bytes: i64) -> Result<i64> {
    ctx.execute_one(&INSERT, (k, "grab"))?;
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut total = 0i64;
    while total < bytes {
        // Reserve without filling: the point is memory, not fuel.
        let mut piece = Vec::<u8>::with_capacity(16 << 20);
        piece.push(1);
        total += piece.capacity() as i64;
        held.push(black_box(piece));
    }
    Ok(held.len() as i64)
}

fn depth(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    // black_box keeps the call from becoming a loop.
    black_box(depth(black_box(n - 1))) + 1
}

/// Writes, then recurses `levels` deep.
#[procedure(partition = "t.k", parameter = 0)]
pub fn recurse(ctx: &mut Context, k: i64, levels: i64) -> Result<i64> {
    ctx.execute_one(&INSERT, (k, "recurse"))?;
    Ok(depth(levels as u64) as i64)
}

/// Writes two rows, then aborts.
#[procedure(partition = "t.k", parameter = 0)]
pub fn write_then_abort(ctx: &mut Context, k: i64) -> Result<i64> {
    ctx.queue(&INSERT, (k, "first"));
    ctx.queue(&INSERT, (k + 1, "second"));
    ctx.execute()?;
    Err(abort(format!("changed my mind about {k}")))
}

/// Writes, then panics.
#[procedure(partition = "t.k", parameter = 0)]
pub fn write_then_panic(ctx: &mut Context, k: i64) -> Result<i64> {
    ctx.execute_one(&INSERT, (k, "panic"))?;
    let v: Vec<i64> = black_box(Vec::new());
    Ok(v[k as usize])
}

/// Writes, then runs `n` statements one batch at a time.
#[procedure(partition = "t.k", parameter = 0)]
pub fn many_statements(ctx: &mut Context, k: i64, n: i64) -> Result<i64> {
    ctx.execute_one(&INSERT, (k, "many"))?;
    let mut seen = 0;
    for _ in 0..n {
        seen += ctx.execute_one(&COUNT, ())?.scalar::<i64>()?;
    }
    Ok(seen)
}

/// Writes, then reads the whole table `n` times in one batch.
#[procedure(partition = "t.k", parameter = 0)]
pub fn read_all(ctx: &mut Context, k: i64, n: i64) -> Result<i64> {
    ctx.execute_one(&INSERT, (k, "read"))?;
    for _ in 0..n {
        ctx.queue(&ALL, ());
    }
    Ok(ctx.execute()?.iter().map(|r| r.len() as i64).sum())
}

/// Writes, then calls `ohm.batch` with a request pointer past the end of
/// memory (Wasm only; natively there is no guest memory to escape).
#[procedure(partition = "t.k", parameter = 0)]
pub fn wild_pointer(ctx: &mut Context, k: i64) -> Result<i64> {
    ctx.execute_one(&INSERT, (k, "wild"))?;
    #[cfg(target_arch = "wasm32")]
    {
        #[link(wasm_import_module = "ohm")]
        extern "C" {
            fn batch(req_ptr: i32, req_len: i32, out_ptr: i32, out_cap: i32) -> i64;
        }
        // SAFETY: the host checks every pointer; this one is deliberately bad.
        let ret = unsafe { batch(i32::MAX - 8, 64, 0, 0) };
        Ok(ret)
    }
    #[cfg(not(target_arch = "wasm32"))]
    Err(abort("wild_pointer only means something in Wasm"))
}

ohm_sdk::export!(
    statements = STATEMENTS,
    procedures = [
        put,
        spin,
        grab,
        recurse,
        write_then_abort,
        write_then_panic,
        many_statements,
        read_all,
        wild_pointer
    ]
);
