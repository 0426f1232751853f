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
use super::log_storage::{read_sealed, replace_file, seal, unseal};
use super::storage::Vote;
use super::DurabilityError;
use crate::types::{Ballot, NodeId};

pub(super) const VOTE_FILE: &str = "vote";
/// `replace_file`'s temporary name for it.
pub(super) const VOTE_TMP: &str = "vote.tmp";
const MAGIC: &[u8; 8] = b"OHMVOTE\0";
const VERSION: u32 = 1;
const VOTE_FILE_BYTES: usize = 28;
/// Ballot round u64 and node u32.
const VOTE_BODY_BYTES: usize = 12;

fn encode(vote: Vote) -> Vec<u8> {
    let mut body = Vec::with_capacity(VOTE_BODY_BYTES);
    body.extend_from_slice(&vote.promised.round.to_le_bytes());
    body.extend_from_slice(&vote.promised.node.0.to_le_bytes());
    seal(MAGIC, VERSION, &body)
}

fn decode(bytes: &[u8]) -> Result<Vote, DurabilityError> {
    let body = unseal(VOTE_FILE, bytes, (MAGIC, VERSION), VOTE_BODY_BYTES)?;
    let (round, node) = body.split_at(8);
    Ok(Vote {
        promised: Ballot {
            round: u64::from_le_bytes(round.try_into().expect("8 bytes")),
            node: NodeId(u32::from_le_bytes(node.try_into().expect("4 bytes"))),
        },
    })
}

/// Reads the vote file (which exists).
pub(super) fn read<F: Fs>(fs: &F) -> Result<Vote, DurabilityError> {
    decode(&read_sealed(fs, VOTE_FILE, VOTE_FILE_BYTES)?)
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
