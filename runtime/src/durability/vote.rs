//! The vote file: the highest ballot this replica promised, which must
//! survive every crash (forgetting a promise breaks Paxos safety).
//!
//! Owns: the file's format and its atomic replacement. Must not: decide
//! what to promise (the consensus core does) or let a vote go back.
//!
//! ```text
//!   set_vote --> vote.tmp (write, fsync) --rename--> vote --fsync dir--> durable
//!   open     --> vote (checked) | none: the default vote
//! ```
//!
//! Layout (little-endian, 28 bytes): `magic "OHMVOTE\0" | version u32 (1) |
//! ballot round u64 | ballot node u32 | crc u32 (CRC-32 of the bytes before it)`.

use super::fs::Fs;
use super::log_storage::replace_file;
use super::record::Reader;
use super::storage::Vote;
use super::{io_err, DurabilityError};
use crate::types::{Ballot, NodeId};

pub(super) const VOTE_FILE: &str = "vote";
/// `replace_file`'s temporary name for it.
pub(super) const VOTE_TMP: &str = "vote.tmp";
const MAGIC: &[u8; 8] = b"OHMVOTE\0";
const VERSION: u32 = 1;
const VOTE_FILE_BYTES: usize = 28;

fn encode(vote: Vote) -> Vec<u8> {
    let mut out = Vec::with_capacity(VOTE_FILE_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&vote.promised.round.to_le_bytes());
    out.extend_from_slice(&vote.promised.node.0.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn corrupt(offset: usize, what: String) -> DurabilityError {
    DurabilityError::Corrupt {
        file: VOTE_FILE.to_string(),
        offset: offset as u64,
        what,
    }
}

fn decode(bytes: &[u8]) -> Result<Vote, DurabilityError> {
    if bytes.len() != VOTE_FILE_BYTES {
        let what = format!("{} bytes, expected {VOTE_FILE_BYTES}", bytes.len());
        return Err(corrupt(0, what));
    }
    let mut r = Reader::new(bytes);
    let field = |w: String| corrupt(0, w);
    let magic = r.take(8, "magic").map_err(field)?;
    let version = r.u32("version").map_err(field)?;
    if magic != MAGIC || version != VERSION {
        return Err(corrupt(0, "bad vote header (magic or version)".into()));
    }
    let round = r.u64("ballot round").map_err(field)?;
    let node = r.u32("ballot node").map_err(field)?;
    let at = r.pos();
    let crc = r.u32("crc").map_err(field)?;
    if crc32fast::hash(&bytes[..at]) != crc {
        return Err(corrupt(at, "vote CRC mismatch".into()));
    }
    Ok(Vote {
        promised: Ballot {
            round,
            node: NodeId(node),
        },
    })
}

/// Reads the vote file (which exists).
pub(super) fn read<F: Fs>(fs: &F) -> Result<Vote, DurabilityError> {
    let len = fs.len(VOTE_FILE).map_err(io_err(VOTE_FILE, "stat"))?;
    if len != VOTE_FILE_BYTES as u64 {
        return Err(corrupt(
            0,
            format!("{len} bytes, expected {VOTE_FILE_BYTES}"),
        ));
    }
    decode(&fs.read(VOTE_FILE).map_err(io_err(VOTE_FILE, "read"))?)
}

/// Replaces the vote file atomically and durably.
pub(super) fn write<F: Fs>(fs: &F, vote: Vote) -> Result<(), DurabilityError> {
    replace_file(fs, VOTE_FILE, &encode(vote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_every_flipped_byte_is_refused() {
        let vote = Vote {
            promised: Ballot {
                round: 77,
                node: NodeId(3),
            },
        };
        let bytes = encode(vote);
        assert_eq!(bytes.len(), VOTE_FILE_BYTES);
        assert_eq!(decode(&bytes).expect("decodes"), vote);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            let err = decode(&bad).expect_err("a flipped byte is refused");
            assert!(err.to_string().contains("corrupt vote"), "{err}");
        }
        assert!(decode(&bytes[..27]).is_err());
    }
}
