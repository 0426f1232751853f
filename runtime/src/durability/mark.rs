//! The durable mark: a slot the log is known to hold durably, kept beside
//! it, so damage at the end of the log that cuts durable records is told
//! from a torn write (issue 12: a deleted newest segment, a truncated or
//! zeroed tail after a clean stop each started "fine" and lost
//! acknowledged writes).
//!
//! Owns: the file's format and its atomic replacement. `Log` writes it at
//! each open (the slot it recovered, `clean` false), before a truncation
//! takes the log below it, and at a clean close (the last slot, `clean`
//! true); `Log::open` refuses a log that ends before it, or, after a clean
//! close, one with any torn tail. Between those points a crash can only
//! tear what followed the mark, and such a tail is cut as before.
//! Must not: be written on the append path but once, at the first append
//! after a clean close (it costs two fsyncs).
//!
//! Layout (little-endian, 25 bytes): `magic "OHMMARK\0" | version u32 (1)
//! | slot u64 | clean u8 (0 or 1) | crc u32 (CRC-32 of the bytes before
//! it)`.

use super::fs::Fs;
use super::log_storage::{read_sealed, replace_file, seal, unseal};
use super::DurabilityError;
use crate::types::Slot;

pub(super) const MARK_FILE: &str = "durable";
/// `replace_file`'s temporary name for it.
pub(super) const MARK_TMP: &str = "durable.tmp";
const MAGIC: &[u8; 8] = b"OHMMARK\0";
const VERSION: u32 = 1;
const MARK_FILE_BYTES: usize = 25;
/// Slot u64 and clean u8.
const MARK_BODY_BYTES: usize = 9;

/// What the mark says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// Every record up to this slot was durable when the mark was written.
    pub slot: Slot,
    /// Written by a clean close: nothing was appended after it.
    pub clean: bool,
}

fn encode(mark: Mark) -> Vec<u8> {
    let mut body = Vec::with_capacity(MARK_BODY_BYTES);
    body.extend_from_slice(&mark.slot.0.to_le_bytes());
    body.push(u8::from(mark.clean));
    seal(MAGIC, VERSION, &body)
}

fn decode(bytes: &[u8]) -> Result<Mark, DurabilityError> {
    let body = unseal(MARK_FILE, bytes, (MAGIC, VERSION), MARK_BODY_BYTES)?;
    let (slot, clean) = body.split_at(8);
    let clean = match clean {
        [0] => false,
        [1] => true,
        _ => {
            return Err(DurabilityError::Corrupt {
                file: MARK_FILE.to_string(),
                offset: 20,
                what: "the clean flag is neither 0 nor 1".into(),
            })
        }
    };
    Ok(Mark {
        slot: Slot(u64::from_le_bytes(slot.try_into().expect("8 bytes"))),
        clean,
    })
}

/// Reads the mark file (which exists).
pub(super) fn read<F: Fs>(fs: &F) -> Result<Mark, DurabilityError> {
    decode(&read_sealed(fs, MARK_FILE, MARK_FILE_BYTES)?)
}

/// Replaces the mark file atomically and durably.
pub(super) fn write<F: Fs>(fs: &F, mark: Mark) -> Result<(), DurabilityError> {
    replace_file(fs, MARK_FILE, &encode(mark))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_every_flipped_byte_is_refused() {
        for clean in [false, true] {
            let mark = Mark {
                slot: Slot(1_234_567),
                clean,
            };
            let bytes = encode(mark);
            assert_eq!(bytes.len(), MARK_FILE_BYTES);
            assert_eq!(decode(&bytes).expect("decodes"), mark);
            for i in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[i] ^= 0x40;
                let err = decode(&bad).expect_err("a flipped byte is refused");
                assert!(err.to_string().contains("corrupt durable"), "{err}");
            }
            assert!(decode(&bytes[..MARK_FILE_BYTES - 1]).is_err());
        }
    }
}
