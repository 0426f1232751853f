//! Calls kept for their idempotency keys: per tenant on each partition,
//! the key of every recent call that came with one and wrote, with its
//! answer, so that a retry of the call is answered instead of run again.
//!
//! Deterministic: a key is kept when its call's record is applied (on the
//! leader, when the call runs), so every replica keeps the same keys in the
//! same order and evicts the same oldest ones; snapshots carry them. The
//! window is a count and a byte bound, not a time: what a replica keeps
//! must not depend on its clock.
//!
//! Owns: `KeptCalls`, `answer_to_keep`. Must not: decide what a key means
//! to a client (the node's protocol does) or keep a call that changed
//! nothing (a read, or a call that failed: running it again is harmless).

use crate::durability::output_bytes;
use crate::wasm::ProcOutput;
use std::collections::{HashMap, VecDeque};

/// Longest idempotency key (bytes of UTF-8).
pub const KEY_BYTES_MAX: usize = 128;
/// Calls a tenant keeps per partition; the oldest goes first.
pub const KEPT_CALLS_MAX: usize = 8192;
/// Bytes (keys and encoded answers) a tenant keeps per partition; the
/// oldest goes first.
pub const KEPT_BYTES_MAX: usize = 1 << 20;
/// A bigger answer is not kept: a retry learns that the call was applied,
/// not what it answered.
pub const KEPT_ANSWER_BYTES_MAX: usize = 4 << 10;
/// The most a kept call adds to a record (a key's length field and bytes,
/// and an answer).
pub const KEPT_RECORD_BYTES_MAX: usize = 4 + KEY_BYTES_MAX + KEPT_ANSWER_BYTES_MAX;

/// One tenant's kept calls on one partition, oldest first.
#[derive(Default)]
pub struct KeptCalls {
    order: VecDeque<String>,
    /// Key -> (answer, None when it was too big; bytes counted).
    by_key: HashMap<String, (Option<ProcOutput>, usize)>,
    bytes: usize,
}

impl KeptCalls {
    /// A kept call's answer (`Some(None)`: applied, answer not kept).
    pub fn get(&self, key: &str) -> Option<Option<&ProcOutput>> {
        self.by_key.get(key).map(|(o, _)| o.as_ref())
    }

    /// Keeps `key`'s answer, evicting the oldest beyond the bounds. A key
    /// already kept keeps its first answer.
    pub fn keep(&mut self, key: String, output: Option<ProcOutput>) {
        if self.by_key.contains_key(&key) {
            return;
        }
        let bytes = key.len() + encoded_len(output.as_ref());
        self.bytes += bytes;
        self.order.push_back(key.clone());
        self.by_key.insert(key, (output, bytes));
        while self.order.len() > KEPT_CALLS_MAX || self.bytes > KEPT_BYTES_MAX {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some((_, b)) = self.by_key.remove(&old) {
                self.bytes -= b;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Every kept call, oldest first (for a snapshot).
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&ProcOutput>)> + '_ {
        self.order.iter().filter_map(|k| {
            let (o, _) = self.by_key.get(k)?;
            Some((k.as_str(), o.as_ref()))
        })
    }
}

/// The answer as it is kept: None when its encoding takes more than
/// `KEPT_ANSWER_BYTES_MAX`.
pub fn answer_to_keep(output: &ProcOutput) -> Option<ProcOutput> {
    (encoded_len(Some(output)) <= KEPT_ANSWER_BYTES_MAX).then(|| output.clone())
}

fn encoded_len(output: Option<&ProcOutput>) -> usize {
    output_bytes(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Value;

    fn int(i: i64) -> Option<ProcOutput> {
        Some(ProcOutput::Value(Value::Int(i)))
    }

    #[test]
    fn the_oldest_keys_go_first_and_a_key_keeps_its_first_answer() {
        let mut k = KeptCalls::default();
        k.keep("a".into(), int(1));
        k.keep("a".into(), int(2));
        assert_eq!(k.get("a"), Some(int(1).as_ref()));
        for i in 0..KEPT_CALLS_MAX {
            k.keep(format!("k{i}"), int(i as i64));
        }
        assert_eq!(k.len(), KEPT_CALLS_MAX);
        assert_eq!(k.get("a"), None, "the oldest was evicted");
        assert_eq!(k.get("k0"), Some(int(0).as_ref()));
        let first = k.iter().next().map(|(key, _)| key.to_string());
        assert_eq!(first.as_deref(), Some("k0"));
    }

    #[test]
    fn big_answers_are_not_kept_and_bytes_are_bounded() {
        let big = ProcOutput::Value(Value::Text("x".repeat(KEPT_ANSWER_BYTES_MAX).into()));
        assert_eq!(answer_to_keep(&big), None);
        let fits = ProcOutput::Value(Value::Text("x".repeat(KEPT_ANSWER_BYTES_MAX - 64).into()));
        assert_eq!(answer_to_keep(&fits).as_ref(), Some(&fits));
        let mut k = KeptCalls::default();
        let n = KEPT_BYTES_MAX / KEPT_ANSWER_BYTES_MAX * 2;
        for i in 0..n {
            k.keep(format!("k{i}"), answer_to_keep(&fits));
        }
        assert!(k.bytes <= KEPT_BYTES_MAX, "{} bytes kept", k.bytes);
        assert!(k.len() < n && !k.is_empty());
        assert_eq!(k.get(&format!("k{}", n - 1)), Some(Some(&fits)));
        k.keep("too-big".into(), answer_to_keep(&big));
        assert_eq!(k.get("too-big"), Some(None), "applied, answer not kept");
    }
}
