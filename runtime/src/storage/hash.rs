//! A fixed, fast, non-cryptographic hasher for index keys.
//!
//! Owns: `FxHasher` (the rustc "Fx" multiply-rotate scheme) and the
//! `FxHashMap` alias. Must not: be used where an adversary picks keys to
//! force collisions across a network boundary without a bound on work; index
//! keys are bounded by table size, and a fixed hasher keeps iteration and
//! simulation replay deterministic.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplier from rustc's FxHasher (derived from the golden ratio).
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Word-at-a-time hasher: `hash = (hash.rotl(5) ^ word) * SEED`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown takes the bucket from the low bits and the tag from the
        // top 7; the multiply leaves the low bits weak, so fold high into low.
        self.hash ^ (self.hash >> 32)
    }
}

/// A `HashMap` with the fixed `FxHasher`.
pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Value;
    use std::hash::Hash;

    fn h<T: Hash + ?Sized>(v: &T) -> u64 {
        let mut s = FxHasher::default();
        v.hash(&mut s);
        s.finish()
    }

    #[test]
    fn equal_values_hash_alike_and_neighbours_differ() {
        assert_eq!(h(&[Value::Int(3)][..]), h(&[Value::Double(3.0)][..]));
        assert_ne!(h(&[Value::Int(3)][..]), h(&[Value::Int(4)][..]));
        assert_ne!(h(&[Value::text("ab")][..]), h(&[Value::text("ab\0")][..]));
        // The low 10 bits (bucket choice in a small table) spread over
        // sequential keys.
        let mut buckets = std::collections::HashSet::new();
        for i in 0..1024 {
            buckets.insert(h(&[Value::Int(i)][..]) & 1023);
        }
        assert!(
            buckets.len() > 600,
            "only {} distinct buckets",
            buckets.len()
        );
    }
}
