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
    PEER_PREFIX_BYTES, PRINCIPAL_BYTES_MAX, VALUE_MAX,
};

use crate::catalog::PartitionId;
use crate::consensus::Message;
use crate::types::TenantId;

/// The replica group a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// Reserved for a metadata group of its own; unused: a cluster's
    /// tenants are logged by partition 0's group (schemas and modules by
    /// every partition's), and the map is `cluster.conf`.
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
    /// A client's request, passed by the node it reached to the node that
    /// coordinates (see `node::forward`): who asked, and the request as
    /// the client sent it (a client-protocol frame body, docs/PROTOCOL.md).
    Forward {
        id: u64,
        tenant: TenantId,
        principal: String,
        /// The SHA-256 of the token the client authenticated with: the
        /// node that coordinates runs the request as that token's
        /// principal, never as another of the same name.
        token_sha256: [u8; 32],
        request: Vec<u8>,
    },
    /// The answer to `Forward` `id`: a client-protocol response body.
    Forwarded { id: u64, response: Vec<u8> },
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
            PeerMessage::Forward { request, .. } => 64 + request.len(),
            PeerMessage::Forwarded { response, .. } => 64 + response.len(),
        }
    }
}
