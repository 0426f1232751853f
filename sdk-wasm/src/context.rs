//! What a procedure runs its statements through: queue, then execute the
//! whole batch in one host crossing (VoltDB's `voltQueueSQL` /
//! `voltExecuteSQL`).
//!
//! Owns: the batch request being built, the response buffer (both reused
//! across batches, and across calls through a one-slot spare), the
//! transaction's clock and seed. Must not: panic on anything a procedure or
//! the host does; a bad queue is reported by the next `execute`.
//!
//! ```text
//!   queue(stmt, params) --encode--> request  [count][index nparams values]..
//!   execute() --Backend::batch(request, response)--> Vec<Rows> | Error::Sql
//! ```

use std::cell::Cell;

use crate::abi::{self, Writer};
use crate::convert::Params;
use crate::datetime::Timestamp;
use crate::error::{Error, Result};
use crate::rows::{decode_batch_response, Rows};
use crate::{Backend, Statement};

/// Request and response buffers up to this capacity are kept for the next
/// call; larger ones are freed so one huge batch does not pin memory.
pub const SPARE_BUFFER_BYTES_MAX: usize = 1 << 20;

/// Bytes of the statement-count header at the start of a request.
const HEADER_BYTES: usize = 4;

thread_local! {
    /// Buffers of the last finished call (one call runs at a time in Wasm).
    static SPARE: Cell<(Vec<u8>, Vec<u8>)> = const { Cell::new((Vec::new(), Vec::new())) };
}

/// A procedure's handle on its transaction.
pub struct Context<'a> {
    backend: &'a mut dyn Backend,
    /// The batch being queued: header, then the statements.
    request: Writer,
    response: Vec<u8>,
    queued: usize,
    /// Why the batch being queued cannot be sent; reported by `execute`.
    refused: Option<Error>,
}

impl<'a> Context<'a> {
    /// A context running statements on `backend`.
    pub fn new(backend: &'a mut dyn Backend) -> Context<'a> {
        let (request, response) = SPARE.with(Cell::take);
        let mut c = Context {
            backend,
            request: Writer::with_buf(request),
            response,
            queued: 0,
            refused: None,
        };
        c.reset();
        c
    }

    /// Adds a statement and its parameters to the next batch (encoded now).
    /// Past `abi::BATCH_STATEMENTS_MAX` statements, or with a parameter
    /// that cannot be sent, nothing more is queued and the next `execute`
    /// fails with the reason, running nothing.
    pub fn queue<P: Params>(&mut self, stmt: &Statement, params: P) {
        if self.refused.is_some() {
            return;
        }
        if let Err(e) = self.encode(stmt, &params) {
            self.refused = Some(e);
        }
    }

    fn encode<P: Params>(&mut self, stmt: &Statement, params: &P) -> Result<()> {
        if self.queued >= abi::BATCH_STATEMENTS_MAX {
            return Err(Error::Batch(format!(
                "more than {} statements queued in one batch (at {}); execute before queueing more",
                abi::BATCH_STATEMENTS_MAX,
                stmt.name
            )));
        }
        let n = params.count();
        if n > abi::STATEMENT_PARAMS_MAX {
            return Err(Error::Batch(format!(
                "statement {} was given {n} parameters, over the limit of {}",
                stmt.name,
                abi::STATEMENT_PARAMS_MAX
            )));
        }
        self.request.u32(stmt.index);
        self.request.len(n);
        params
            .encode(&mut self.request)
            .map_err(|e| Error::Type(format!("a parameter of {}: {e}", stmt.name)))?;
        self.queued += 1;
        Ok(())
    }

    /// Runs every queued statement as one batch, in one host crossing, and
    /// returns one `Rows` per statement, in queue order. With nothing queued
    /// it returns an empty list without crossing. A failed statement fails
    /// the whole batch (`Error::Sql`), which then changed nothing.
    pub fn execute(&mut self) -> Result<Vec<Rows>> {
        let queued = self.queued;
        let refused = self.refused.take();
        if let Some(e) = refused {
            self.reset();
            return Err(e);
        }
        if queued == 0 {
            return Ok(Vec::new());
        }
        let count = u32::try_from(queued).expect("queued is at most BATCH_STATEMENTS_MAX");
        self.request.buf[..HEADER_BYTES].copy_from_slice(&count.to_le_bytes());
        let sent = self.backend.batch(&self.request.buf, &mut self.response);
        self.reset();
        sent?;
        decode_batch_response(&self.response, queued)
    }

    /// Queues `stmt` behind anything already queued, executes the batch and
    /// returns the outcome of `stmt` (the earlier statements' outcomes are
    /// dropped).
    pub fn execute_one<P: Params>(&mut self, stmt: &Statement, params: P) -> Result<Rows> {
        self.queue(stmt, params);
        self.execute()?
            .pop()
            .ok_or_else(|| Error::Batch("the batch returned no outcome".into()))
    }

    /// The transaction's timestamp: the same for every call of it, and on
    /// every replica.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.backend.now())
    }

    /// The transaction's random seed.
    pub fn seed(&self) -> u64 {
        self.backend.seed()
    }

    /// A deterministic random number generator seeded with `seed()`. Every
    /// call starts the same sequence: keep one and draw from it.
    pub fn rng(&self) -> Rng {
        Rng::new(self.seed())
    }

    /// Empties the request down to its header.
    fn reset(&mut self) {
        self.request.buf.clear();
        self.request.buf.extend_from_slice(&[0; HEADER_BYTES]);
        self.queued = 0;
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        let keep = |b: &mut Vec<u8>| {
            if b.capacity() <= SPARE_BUFFER_BYTES_MAX {
                std::mem::take(b)
            } else {
                Vec::new()
            }
        };
        let spare = (keep(&mut self.request.buf), keep(&mut self.response));
        // The thread may be exiting (a native runner's thread): no spare then.
        let _ = SPARE.try_with(|s| s.set(spare));
    }
}

/// A small deterministic PRNG (xoshiro256**, seeded through splitmix64).
/// Not for secrets; for choices that must replay the same on every replica.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        Rng {
            s: [
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
                splitmix64(&mut x),
            ],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// A uniform integer in `range` (`start` for an empty range), without
    /// modulo bias (Lemire's method).
    pub fn range(&mut self, range: std::ops::Range<i64>) -> i64 {
        let span = range.end.wrapping_sub(range.start) as u64;
        if range.end <= range.start {
            return range.start;
        }
        let threshold = span.wrapping_neg() % span;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(span);
            if (m as u64) >= threshold {
                return range.start.wrapping_add((m >> 64) as i64);
            }
        }
    }

    /// A uniform `f64` in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{outcome_kind, Reader};
    use crate::BatchError;

    /// Answers each batch with one AFFECTED outcome per statement (the
    /// affected count = the statement index), or fails if told to.
    #[derive(Default)]
    struct Echo {
        batches: Vec<Vec<(u32, usize)>>,
        fail: Option<BatchError>,
    }

    impl Backend for Echo {
        fn batch(
            &mut self,
            req: &[u8],
            resp: &mut Vec<u8>,
        ) -> core::result::Result<(), BatchError> {
            let mut r = Reader::new(req);
            let n = r.count(abi::BATCH_STATEMENTS_MAX, "count").unwrap();
            let mut seen = Vec::new();
            let mut w = Writer::with_buf(std::mem::take(resp));
            w.buf.clear();
            w.u32(n as u32);
            for _ in 0..n {
                let index = r.u32("index").unwrap();
                let params = r.count(abi::STATEMENT_PARAMS_MAX, "params").unwrap();
                for _ in 0..params {
                    r.value().unwrap();
                }
                seen.push((index, params));
                w.u8(outcome_kind::AFFECTED);
                w.u64(index.into());
            }
            r.finish().unwrap();
            *resp = w.buf;
            self.batches.push(seen);
            self.fail.clone().map_or(Ok(()), Err)
        }
        fn now(&self) -> i64 {
            42
        }
        fn seed(&self) -> u64 {
            7
        }
    }

    const A: Statement = Statement {
        index: 0,
        name: "A",
        sql: "SELECT 1",
    };
    const B: Statement = Statement {
        index: 1,
        name: "B",
        sql: "SELECT ?",
    };

    #[test]
    fn queue_then_execute_is_one_batch_in_order() {
        let mut host = Echo::default();
        let mut ctx = Context::new(&mut host);
        assert!(ctx.execute().unwrap().is_empty());
        ctx.queue(&B, (1i64,));
        ctx.queue(&A, ());
        let out = ctx.execute().unwrap();
        assert_eq!(out.iter().map(Rows::affected).collect::<Vec<_>>(), [1, 0]);
        assert_eq!(ctx.execute_one(&B, [5i32, 6]).unwrap().affected(), 1);
        assert_eq!((ctx.now(), ctx.seed()), (Timestamp(42), 7));
        drop(ctx);
        assert_eq!(host.batches, [vec![(1, 1), (0, 0)], vec![(1, 2)]]);
    }

    #[test]
    fn too_many_statements_is_an_error_not_a_panic() {
        let mut host = Echo::default();
        let mut ctx = Context::new(&mut host);
        for _ in 0..=abi::BATCH_STATEMENTS_MAX {
            ctx.queue(&A, ());
        }
        let e = ctx.execute().unwrap_err();
        assert!(
            matches!(&e, Error::Batch(m) if m.contains("more than 1000 statements")),
            "{e}"
        );
        // The refused batch is gone; the next one runs.
        ctx.queue(&A, ());
        assert_eq!(ctx.execute().unwrap().len(), 1);
        drop(ctx);
        assert_eq!(host.batches.len(), 1);
    }

    #[test]
    fn a_failed_batch_is_an_sql_error() {
        let mut host = Echo {
            fail: Some(BatchError {
                code: abi::ErrorCode::Unique,
                statement: 1,
                message: "dup".into(),
            }),
            ..Echo::default()
        };
        let mut ctx = Context::new(&mut host);
        ctx.queue(&A, ());
        ctx.queue(&B, ("x",));
        let e = ctx.execute().unwrap_err();
        assert_eq!(e.sql_code(), Some(abi::ErrorCode::Unique));
        assert!(matches!(e, Error::Sql { statement: 1, .. }));
    }

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(1);
        let mut b = Rng::new(1);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(Rng::new(2).next_u64(), Rng::new(1).next_u64());
        let mut seen = [false; 6];
        for _ in 0..1000 {
            let x = a.range(-3..3);
            assert!((-3..3).contains(&x));
            seen[(x + 3) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(a.range(5..5), 5);
        assert!((i64::MIN..i64::MAX).contains(&a.range(i64::MIN..i64::MAX)));
        let f = a.next_f64();
        assert!((0.0..1.0).contains(&f));
    }
}
