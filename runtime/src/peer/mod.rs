//! What nodes of one cluster say to each other (docs/PEERS.md documents it
//! for strangers): typed messages and their binary framing.
//!
//! Owns: `PeerMessage`, which group a message is for (`Group`), encoding
//! and decoding frames with every length checked. Must not: do I/O (the
//! transport in `net::peer` moves frames), trust a length it reads, or know
//! what a consensus message means (that is `consensus`'s business).
//!
//! Who sent a message is not in it: the transport knows the sender from the
//! certificate the cluster CA signed for it.

mod codec;
#[cfg(test)]
mod tests;

pub use codec::{
    decode, decode_hello, encode, encode_hello, PeerDecodeError, PEER_FRAME_BYTES_MAX,
    PEER_PREFIX_BYTES, VALUE_MAX,
};

use crate::catalog::PartitionId;
use crate::consensus::Message;

/// The replica group a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// The cluster's metadata group (tenants, schemas, modules, the map).
    Meta,
    /// One data partition's group.
    Partition(PartitionId),
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Group::Meta => write!(f, "meta"),
            Group::Partition(p) => write!(f, "partition {}", p.0),
        }
    }
}

/// One message from a node to a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerMessage {
    /// A consensus message for one replica group.
    Consensus { group: Group, msg: Message },
}

impl PeerMessage {
    /// Roughly the bytes it takes queued (for per-peer queue bounds).
    pub fn weight_bytes(&self) -> usize {
        match self {
            PeerMessage::Consensus { msg, .. } => match msg {
                Message::Accept { records, .. } => {
                    64 + records.iter().map(|r| r.payload.len() + 24).sum::<usize>()
                }
                Message::Snapshot { data, .. } => 64 + data.len(),
                _ => 64,
            },
        }
    }
}
