//! Which partition owns a value of a partition column.
//!
//! The hash is fixed (FNV-1a over a canonical encoding of the value), not
//! std's `DefaultHasher`, whose algorithm may change between Rust releases:
//! a row's partition is on disk, so the function is part of the data format.
//! Values that compare equal across kinds (an INTEGER 7 argument and a
//! BIGINT 7 column, a DECIMAL 7.0 and an INTEGER 7) hash alike.

use crate::types::Value;

/// A partition's number on this node: 0..partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId(pub u32);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(tag: u8, bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in std::iter::once(&tag).chain(bytes) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // FNV's low bits mix poorly for small integers; finish with a
    // multiply-xorshift (from SplitMix64) before taking the remainder.
    h ^= h >> 31;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 29)
}

fn hash_value(v: &Value) -> u64 {
    match v {
        Value::Null => fnv(0, &[]),
        Value::Bool(b) => fnv(1, &i64::from(*b).to_le_bytes()),
        Value::Int(i) | Value::Timestamp(i) | Value::TimestampTz(i) => fnv(1, &i.to_le_bytes()),
        Value::Date(d) => fnv(6, &i64::from(*d).to_le_bytes()),
        Value::Time(t) => fnv(7, &t.to_le_bytes()),
        Value::Interval(i) => fnv(8, &i.span().to_le_bytes()),
        Value::Uuid(u) => fnv(9, u),
        Value::Double(d) => {
            if d.fract() == 0.0 && d.abs() < 9.0e15 {
                fnv(1, &(*d as i64).to_le_bytes())
            } else {
                fnv(2, &d.to_bits().to_le_bytes())
            }
        }
        Value::Decimal(d) => {
            let n = d.normalize();
            match i64::try_from(n) {
                Ok(i) if n.fract().is_zero() => fnv(1, &i.to_le_bytes()),
                _ => fnv(3, n.to_string().as_bytes()),
            }
        }
        Value::Text(s) => fnv(4, s.as_bytes()),
        Value::Bytes(b) => fnv(5, b),
    }
}

/// The partition that owns rows whose partition column holds `v`.
pub fn partition_for(v: &Value, partitions: u32) -> PartitionId {
    assert!(partitions > 0, "a node has at least one partition");
    PartitionId((hash_value(v) % u64::from(partitions)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    #[test]
    fn equal_values_of_different_kinds_agree() {
        for n in [1u32, 2, 3, 8, 13] {
            for i in [-5i64, 0, 7, 1 << 40] {
                let p = partition_for(&Value::Int(i), n);
                assert_eq!(p, partition_for(&Value::Decimal(Decimal::from(i)), n));
                assert_eq!(p, partition_for(&Value::Double(i as f64), n));
            }
        }
    }

    #[test]
    fn spreads_phone_numbers_evenly() {
        let mut counts = [0u32; 4];
        for i in 0..40_000i64 {
            let phone = 212 * 10_000_000 + i * 7919 % 10_000_000;
            counts[partition_for(&Value::Int(phone), 4).0 as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven: {counts:?}");
        }
    }

    #[test]
    fn the_function_is_fixed() {
        // Rows on disk were placed by this function: it must never change.
        let got: Vec<u32> = [0i64, 1, 2, 42, 2_125_551_234]
            .iter()
            .map(|i| partition_for(&Value::Int(*i), 16).0)
            .collect();
        let text = partition_for(&Value::text("alice"), 16).0;
        assert_eq!((got, text), (GOLDEN_INTS.to_vec(), GOLDEN_TEXT));
    }

    const GOLDEN_INTS: [u32; 5] = [8, 1, 10, 2, 6];
    const GOLDEN_TEXT: u32 = 8;
}
