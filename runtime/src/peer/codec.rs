//! The peer wire format: a 4-byte big-endian body length, then a body of
//! fixed-width big-endian fields (a kind byte first). Both ends run the same
//! version (ALPN `ohm-peer/2` pins it), so there are no optional fields;
//! trailing bytes, an unknown kind or a length past the end are errors.
//!
//! Encoding is by hand: a leader sends every accept through here.

use super::{Group, PeerMessage};
use crate::catalog::PartitionId;
use crate::consensus::{Message, MESSAGE_RECORD_BYTES_MAX, SNAPSHOT_CHUNK_BYTES};
use crate::durability::{LogRecord, SnapshotMeta, RECORD_BYTES_MAX};
use crate::types::{Ballot, NodeId, Slot, TenantId};
use std::sync::Arc;

/// Length of the frame prefix.
pub const PEER_PREFIX_BYTES: usize = 4;
/// Largest frame body: an accept carries records up to
/// `MESSAGE_RECORD_BYTES_MAX`, or a single record up to `RECORD_BYTES_MAX`;
/// a snapshot chunk is `SNAPSHOT_CHUNK_BYTES`.
pub const PEER_FRAME_BYTES_MAX: usize =
    RECORD_BYTES_MAX + MESSAGE_RECORD_BYTES_MAX + SNAPSHOT_CHUNK_BYTES;
/// Bytes of an encoded record besides its payload (slot, ballot, length).
const RECORD_HEAD_BYTES: usize = 8 + 12 + 4;
/// Slots and ballot rounds from a peer are below this: no log or election
/// history gets near it, and the consensus core may then add to them
/// without overflow (a value past it is a bug or an attack).
pub const VALUE_MAX: u64 = 1 << 62;
/// Records room is made for up front (more grow the vector as they come):
/// a record costs more in memory than its smallest encoding.
const RECORDS_PREALLOCATED_MAX: usize = 1024;
/// Longest principal name in a forwarded request.
pub const PRINCIPAL_BYTES_MAX: usize = 255;

const KIND_CONSENSUS: u8 = 1;
const KIND_HELLO: u8 = 2;
const KIND_FORWARD: u8 = 3;
const KIND_FORWARDED: u8 = 4;
const GROUP_META: u8 = 0;
const GROUP_PARTITION: u8 = 1;

const MSG_PRE_VOTE: u8 = 1;
const MSG_PRE_VOTE_REPLY: u8 = 2;
const MSG_ELECT: u8 = 3;
const MSG_PROMISE: u8 = 4;
const MSG_ACCEPT: u8 = 5;
const MSG_ACCEPTED: u8 = 6;
const MSG_SNAPSHOT: u8 = 7;
const MSG_SNAPSHOT_ACK: u8 = 8;
const MSG_REJECT: u8 = 9;
const MSG_TIMEOUT_NOW: u8 = 10;

/// A frame body that is not a valid peer message: what, and at which byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer frame, byte {offset}: {message}")]
pub struct PeerDecodeError {
    pub offset: usize,
    pub message: String,
}

/// Appends one whole frame (prefix and body) for `msg` to `out`. A message
/// over `PEER_FRAME_BYTES_MAX` is a bug in the sender (consensus bounds what
/// it puts in one message): it panics rather than send what no peer reads.
pub fn encode(msg: &PeerMessage, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; PEER_PREFIX_BYTES]);
    match msg {
        PeerMessage::Consensus { group, msg } => {
            out.push(KIND_CONSENSUS);
            match group {
                Group::Meta => out.push(GROUP_META),
                Group::Partition(p) => {
                    out.push(GROUP_PARTITION);
                    out.extend_from_slice(&p.0.to_be_bytes());
                }
            }
            encode_consensus(msg, out);
        }
        PeerMessage::Forward {
            id,
            tenant,
            principal,
            token_sha256,
            request,
        } => {
            Writer(out)
                .u8(KIND_FORWARD)
                .u64(*id)
                .u32(tenant.0)
                .raw(token_sha256)
                .bytes(principal.as_bytes())
                .bytes(request);
        }
        PeerMessage::Forwarded { id, response } => {
            Writer(out).u8(KIND_FORWARDED).u64(*id).bytes(response);
        }
    }
    let body = out.len() - start - PEER_PREFIX_BYTES;
    assert!(
        body <= PEER_FRAME_BYTES_MAX,
        "a peer message of {body} bytes is over PEER_FRAME_BYTES_MAX"
    );
    out[start..start + PEER_PREFIX_BYTES].copy_from_slice(&(body as u32).to_be_bytes());
}

/// Appends the frame that opens every stream: who is sending, as which run
/// of its process (`incarnation`; see docs/PEERS.md).
pub fn encode_hello(incarnation: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&9u32.to_be_bytes());
    Writer(out).u8(KIND_HELLO).u64(incarnation);
}

/// The incarnation in a stream's first frame body.
pub fn decode_hello(body: &[u8]) -> Result<u64, PeerDecodeError> {
    let mut r = Reader { body, at: 0 };
    match r.u8("message kind")? {
        KIND_HELLO => {}
        k => {
            return Err(r.error(format!(
                "a stream must open with a hello (kind {KIND_HELLO}), not kind {k}"
            )))
        }
    }
    let incarnation = r.u64("incarnation")?;
    if r.at != body.len() {
        return Err(r.error(format!("{} bytes after the hello", body.len() - r.at)));
    }
    Ok(incarnation)
}

/// Appends fixed-width big-endian fields.
struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn ballot(&mut self, b: &Ballot) -> &mut Self {
        self.u64(b.round).u32(b.node.0)
    }
    fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
}

fn encode_consensus(msg: &Message, out: &mut Vec<u8>) {
    let mut w = Writer(out);
    match msg {
        Message::PreVote {
            ballot,
            last_slot,
            last_ballot,
        } => w
            .u8(MSG_PRE_VOTE)
            .ballot(ballot)
            .u64(last_slot.0)
            .ballot(last_ballot),
        Message::Elect {
            ballot,
            last_slot,
            last_ballot,
            transfer_of,
        } => w
            .u8(MSG_ELECT)
            .ballot(ballot)
            .u64(last_slot.0)
            .ballot(last_ballot)
            .ballot(transfer_of),
        Message::TimeoutNow { ballot } => w.u8(MSG_TIMEOUT_NOW).ballot(ballot),
        Message::PreVoteReply {
            ballot,
            granted,
            promised,
        } => w
            .u8(MSG_PRE_VOTE_REPLY)
            .ballot(ballot)
            .u8(u8::from(*granted))
            .ballot(promised),
        Message::Promise { ballot } => w.u8(MSG_PROMISE).ballot(ballot),
        Message::Accept { .. } => encode_accept(msg, &mut w),
        Message::Accepted {
            ballot,
            matched,
            hint,
            sent_us,
        } => w
            .u8(MSG_ACCEPTED)
            .ballot(ballot)
            .u8(u8::from(matched.is_some()))
            .u64(matched.map_or(0, |m| m.0))
            .u64(hint.0)
            .u64(*sent_us),
        Message::Snapshot { .. } | Message::SnapshotAck { .. } => encode_snapshot(msg, &mut w),
        Message::Reject { promised } => w.u8(MSG_REJECT).ballot(promised),
    };
}

fn encode_accept<'w, 'a>(msg: &Message, w: &'w mut Writer<'a>) -> &'w mut Writer<'a> {
    let Message::Accept {
        ballot,
        prev_slot,
        prev_ballot,
        records,
        chosen,
        sent_us,
    } = msg
    else {
        unreachable!("encode_accept is called with an Accept");
    };
    w.u8(MSG_ACCEPT)
        .ballot(ballot)
        .u64(prev_slot.0)
        .ballot(prev_ballot)
        .u64(chosen.0)
        .u64(*sent_us)
        .u32(records.len() as u32);
    for r in records {
        w.u64(r.slot.0).ballot(&r.ballot).bytes(&r.payload);
    }
    w
}

/// A snapshot chunk, or its ack (the same head, no data).
fn encode_snapshot<'w, 'a>(msg: &Message, w: &'w mut Writer<'a>) -> &'w mut Writer<'a> {
    let (kind, ballot, meta, offset, done, sent_us, data) = match msg {
        Message::Snapshot {
            ballot,
            meta,
            offset,
            data,
            done,
            sent_us,
        } => (
            MSG_SNAPSHOT,
            ballot,
            meta,
            offset,
            done,
            sent_us,
            Some(data),
        ),
        Message::SnapshotAck {
            ballot,
            meta,
            offset,
            done,
            sent_us,
        } => (MSG_SNAPSHOT_ACK, ballot, meta, offset, done, sent_us, None),
        _ => unreachable!("encode_snapshot is called with a snapshot message"),
    };
    w.u8(kind)
        .ballot(ballot)
        .u64(meta.slot.0)
        .ballot(&meta.ballot)
        .u64(*offset)
        .u8(u8::from(*done))
        .u64(*sent_us);
    if let Some(data) = data {
        w.bytes(data);
    }
    w
}

/// Decodes one frame body (the prefix has been read and checked against
/// `PEER_FRAME_BYTES_MAX` by the transport).
pub fn decode(body: &[u8]) -> Result<PeerMessage, PeerDecodeError> {
    let mut r = Reader { body, at: 0 };
    let msg = match r.u8("message kind")? {
        KIND_CONSENSUS => {
            let group = match r.u8("group kind")? {
                GROUP_META => Group::Meta,
                GROUP_PARTITION => Group::Partition(PartitionId(r.u32("partition")?)),
                k => return Err(r.error(format!("unknown group kind {k}"))),
            };
            let msg = decode_consensus(&mut r)?;
            PeerMessage::Consensus { group, msg }
        }
        KIND_FORWARD => PeerMessage::Forward {
            id: r.u64("forward id")?,
            tenant: TenantId(r.u32("tenant")?),
            token_sha256: r.array("token hash")?,
            principal: r.text("principal", PRINCIPAL_BYTES_MAX)?,
            request: r.client_body("request")?,
        },
        KIND_FORWARDED => PeerMessage::Forwarded {
            id: r.u64("forward id")?,
            response: r.client_body("response")?,
        },
        k => return Err(r.error(format!("unknown message kind {k}"))),
    };
    if r.at != body.len() {
        return Err(r.error(format!("{} bytes after the message", body.len() - r.at)));
    }
    Ok(msg)
}

fn decode_consensus(r: &mut Reader) -> Result<Message, PeerDecodeError> {
    Ok(match r.u8("consensus message kind")? {
        k @ (MSG_PRE_VOTE | MSG_ELECT) => {
            let ballot = r.ballot("ballot")?;
            let last_slot = r.slot("last_slot")?;
            let last_ballot = r.ballot("last_ballot")?;
            if k == MSG_PRE_VOTE {
                Message::PreVote {
                    ballot,
                    last_slot,
                    last_ballot,
                }
            } else {
                Message::Elect {
                    ballot,
                    last_slot,
                    last_ballot,
                    transfer_of: r.ballot("transfer_of")?,
                }
            }
        }
        MSG_PRE_VOTE_REPLY => Message::PreVoteReply {
            ballot: r.ballot("ballot")?,
            granted: r.bool("granted")?,
            promised: r.ballot("promised")?,
        },
        MSG_PROMISE => Message::Promise {
            ballot: r.ballot("ballot")?,
        },
        MSG_ACCEPT => decode_accept(r)?,
        MSG_ACCEPTED => {
            let ballot = r.ballot("ballot")?;
            let has = r.bool("has matched")?;
            let matched = r.slot("matched")?;
            Message::Accepted {
                ballot,
                matched: has.then_some(matched),
                hint: r.slot("hint")?,
                sent_us: r.u64("sent_us")?,
            }
        }
        MSG_SNAPSHOT => Message::Snapshot {
            ballot: r.ballot("ballot")?,
            meta: r.meta()?,
            offset: r.u64("offset")?,
            done: r.bool("done")?,
            sent_us: r.u64("sent_us")?,
            data: r.bytes("snapshot data")?.to_vec(),
        },
        MSG_SNAPSHOT_ACK => Message::SnapshotAck {
            ballot: r.ballot("ballot")?,
            meta: r.meta()?,
            offset: r.u64("offset")?,
            done: r.bool("done")?,
            sent_us: r.u64("sent_us")?,
        },
        MSG_TIMEOUT_NOW => Message::TimeoutNow {
            ballot: r.ballot("ballot")?,
        },
        MSG_REJECT => Message::Reject {
            promised: r.ballot("promised")?,
        },
        k => return Err(r.error(format!("unknown consensus message kind {k}"))),
    })
}

fn decode_accept(r: &mut Reader) -> Result<Message, PeerDecodeError> {
    let ballot = r.ballot("ballot")?;
    let prev_slot = r.slot("prev_slot")?;
    let prev_ballot = r.ballot("prev_ballot")?;
    let chosen = r.slot("chosen")?;
    let sent_us = r.u64("sent_us")?;
    let count = r.u32("record count")? as usize;
    // Each record takes at least its head: a count the rest of the body
    // cannot hold is refused before anything is allocated.
    if count > r.remaining() / RECORD_HEAD_BYTES {
        return Err(r.error(format!(
            "{count} records do not fit in the {} bytes left",
            r.remaining()
        )));
    }
    let mut records = Vec::with_capacity(count.min(RECORDS_PREALLOCATED_MAX));
    for _ in 0..count {
        let slot = r.slot("record slot")?;
        let ballot = r.ballot("record ballot")?;
        let payload = r.bytes("record payload")?;
        records.push(LogRecord {
            slot,
            ballot,
            payload: Arc::from(payload),
        });
    }
    Ok(Message::Accept {
        ballot,
        prev_slot,
        prev_ballot,
        records,
        chosen,
        sent_us,
    })
}

struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, message: String) -> PeerDecodeError {
        PeerDecodeError {
            offset: self.at,
            message,
        }
    }

    fn remaining(&self) -> usize {
        self.body.len() - self.at
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], PeerDecodeError> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "{what}: needs {n} bytes, {} left",
                self.remaining()
            )));
        }
        let out = &self.body[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], PeerDecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    fn u8(&mut self, what: &str) -> Result<u8, PeerDecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn bool(&mut self, what: &str) -> Result<bool, PeerDecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            v => {
                self.at -= 1;
                Err(self.error(format!("{what}: {v} is not a boolean (0 or 1)")))
            }
        }
    }

    fn u32(&mut self, what: &str) -> Result<u32, PeerDecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, PeerDecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A ballot whose round is below `VALUE_MAX`.
    fn ballot(&mut self, what: &str) -> Result<Ballot, PeerDecodeError> {
        Ok(Ballot {
            round: self.bounded(what)?,
            node: NodeId(self.u32(what)?),
        })
    }

    /// A slot below `VALUE_MAX`.
    fn slot(&mut self, what: &str) -> Result<Slot, PeerDecodeError> {
        Ok(Slot(self.bounded(what)?))
    }

    fn bounded(&mut self, what: &str) -> Result<u64, PeerDecodeError> {
        let v = self.u64(what)?;
        if v >= VALUE_MAX {
            self.at -= 8;
            return Err(self.error(format!("{what}: {v} is not below {VALUE_MAX}")));
        }
        Ok(v)
    }

    fn meta(&mut self) -> Result<SnapshotMeta, PeerDecodeError> {
        Ok(SnapshotMeta {
            slot: self.slot("snapshot slot")?,
            ballot: self.ballot("snapshot ballot")?,
        })
    }

    /// A u32 length, then that many bytes.
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], PeerDecodeError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    /// `bytes` of UTF-8, at most `max` of them.
    fn text(&mut self, what: &str, max: usize) -> Result<String, PeerDecodeError> {
        let b = self.bytes(what)?;
        if b.len() > max {
            return Err(self.error(format!("{what}: {} bytes, over {max}", b.len())));
        }
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|e| self.error(format!("{what}: not UTF-8: {e}")))
    }

    /// `bytes` holding a client-protocol frame body (not decoded here).
    fn client_body(&mut self, what: &str) -> Result<Vec<u8>, PeerDecodeError> {
        let b = self.bytes(what)?;
        if b.len() > crate::proto::FRAME_BYTES_MAX {
            let max = crate::proto::FRAME_BYTES_MAX;
            return Err(self.error(format!("{what}: {} bytes, over {max}", b.len())));
        }
        Ok(b.to_vec())
    }
}
