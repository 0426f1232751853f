use super::*;
use crate::durability::{LogRecord, SnapshotMeta};
use crate::types::{Ballot, NodeId, Slot};
use std::sync::Arc;

fn b(round: u64, node: u32) -> Ballot {
    Ballot {
        round,
        node: NodeId(node),
    }
}

/// One of every message, with every field away from its default.
fn every_message() -> Vec<PeerMessage> {
    let meta = SnapshotMeta {
        slot: Slot(90),
        ballot: b(3, 2),
    };
    let msgs = vec![
        Message::PreVote {
            ballot: b(7, 1),
            last_slot: Slot(12),
            last_ballot: b(6, 3),
        },
        Message::PreVoteReply {
            ballot: b(7, 1),
            granted: true,
            promised: b(6, 3),
        },
        Message::Elect {
            ballot: b(8, 2),
            last_slot: Slot(VALUE_MAX - 1),
            last_ballot: b(VALUE_MAX - 1, u32::MAX),
            transfer_of: b(7, 1),
        },
        Message::Promise { ballot: b(8, 2) },
        Message::Accept {
            ballot: b(8, 2),
            prev_slot: Slot(11),
            prev_ballot: b(7, 1),
            records: vec![
                LogRecord {
                    slot: Slot(12),
                    ballot: b(8, 2),
                    payload: Arc::from(&b"write-set"[..]),
                },
                LogRecord {
                    slot: Slot(13),
                    ballot: b(8, 2),
                    payload: Arc::from(&[][..]),
                },
            ],
            chosen: Slot(10),
            sent_us: 123_456,
        },
        Message::Accept {
            ballot: b(8, 2),
            prev_slot: Slot(13),
            prev_ballot: b(8, 2),
            records: vec![],
            chosen: Slot(13),
            sent_us: 9,
        },
        Message::Accepted {
            ballot: b(8, 2),
            matched: Some(Slot(13)),
            hint: Slot(13),
            sent_us: 123_456,
        },
        Message::Accepted {
            ballot: b(8, 2),
            matched: None,
            hint: Slot(4),
            sent_us: 1,
        },
        Message::Snapshot {
            ballot: b(8, 2),
            meta,
            offset: 1 << 20,
            data: vec![0xAB; 1000],
            done: false,
            sent_us: 77,
        },
        Message::SnapshotAck {
            ballot: b(8, 2),
            meta,
            offset: 1 << 20,
            done: true,
            sent_us: 77,
        },
        Message::TimeoutNow { ballot: b(7, 1) },
        Message::Reject { promised: b(9, 3) },
    ];
    let groups = [Group::Meta, Group::Partition(PartitionId(41))];
    let mut all: Vec<PeerMessage> = msgs
        .into_iter()
        .enumerate()
        .map(|(i, msg)| PeerMessage::Consensus {
            group: groups[i % 2],
            msg,
        })
        .collect();
    all.push(PeerMessage::Forward {
        id: u64::MAX,
        tenant: crate::types::TenantId(7),
        principal: "owner".into(),
        token_sha256: [0xab; 32],
        request: b"a client request body".to_vec(),
    });
    all.push(PeerMessage::Forwarded {
        id: 3,
        response: Vec::new(),
    });
    all
}

fn frame(msg: &PeerMessage) -> Vec<u8> {
    let mut out = Vec::new();
    encode(msg, &mut out);
    let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
    assert_eq!(
        len,
        out.len() - PEER_PREFIX_BYTES,
        "the prefix is the body length"
    );
    out.split_off(PEER_PREFIX_BYTES)
}

#[test]
fn every_message_comes_back_as_sent() {
    for msg in every_message() {
        let body = frame(&msg);
        assert_eq!(decode(&body).as_ref(), Ok(&msg));
    }
}

#[test]
fn frames_appended_one_after_another_stay_apart() {
    let msgs = every_message();
    let mut out = Vec::new();
    for m in &msgs {
        encode(m, &mut out);
    }
    let mut at = 0;
    for m in &msgs {
        let len = u32::from_be_bytes(out[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        assert_eq!(decode(&out[at..at + len]).as_ref(), Ok(m));
        at += len;
    }
    assert_eq!(at, out.len());
}

/// Cut anywhere, a body is refused with the offset where it ran out.
#[test]
fn a_body_cut_at_any_byte_is_refused() {
    for msg in every_message() {
        let body = frame(&msg);
        for cut in 0..body.len() {
            let e = decode(&body[..cut]).expect_err("a cut body");
            assert!(e.offset <= cut, "{e} (cut at {cut})");
            assert!(
                e.message.contains("needs") || e.message.contains("do not fit"),
                "{e}"
            );
        }
    }
}

#[test]
fn trailing_bytes_unknown_kinds_and_bad_booleans_are_named() {
    let msg = &every_message()[3];
    let mut body = frame(msg);
    body.push(0);
    let e = decode(&body).unwrap_err();
    assert!(e.message.contains("1 bytes after the message"), "{e}");

    let e = decode(&[9]).unwrap_err();
    assert_eq!(
        (e.offset, e.message.as_str()),
        (1, "unknown message kind 9")
    );
    let e = decode(&[1, 7]).unwrap_err();
    assert!(e.message.contains("unknown group kind 7"), "{e}");
    let e = decode(&[1, 0, 200]).unwrap_err();
    assert!(
        e.message.contains("unknown consensus message kind 200"),
        "{e}"
    );

    // PreVoteReply: kind, group, msg kind, ballot (12 bytes), then granted.
    let reply = &every_message()[1];
    let mut body = frame(reply);
    let granted_at = 1 + 1 + 4 + 1 + 12;
    body[granted_at] = 2;
    let e = decode(&body).unwrap_err();
    assert_eq!(e.offset, granted_at);
    assert!(e.message.contains("not a boolean"), "{e}");
}

/// A record count or a length that the body cannot hold is refused before
/// anything is allocated for it.
#[test]
fn hostile_counts_and_lengths_are_refused_without_allocating() {
    let accept = PeerMessage::Consensus {
        group: Group::Meta,
        msg: Message::Accept {
            ballot: b(1, 1),
            prev_slot: Slot(0),
            prev_ballot: b(0, 0),
            records: vec![],
            chosen: Slot(0),
            sent_us: 0,
        },
    };
    let mut body = frame(&accept);
    let count_at = body.len() - 4;
    body[count_at..].copy_from_slice(&u32::MAX.to_be_bytes());
    let e = decode(&body).unwrap_err();
    assert!(e.message.contains("records do not fit"), "{e}");

    let snap = &every_message()[8];
    let mut body = frame(snap);
    let len_at = body.len() - 1000 - 4;
    body[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let e = decode(&body).unwrap_err();
    assert!(
        e.message.contains("snapshot data: needs 4294967295 bytes"),
        "{e}"
    );
}

/// Slots and rounds at or past `VALUE_MAX` are refused, naming the field:
/// the consensus core may then add to what it gets without overflow.
#[test]
fn slots_and_rounds_past_the_bound_are_refused() {
    let elect = |slot: u64, round: u64| PeerMessage::Consensus {
        group: Group::Meta,
        msg: Message::Elect {
            ballot: b(round, 1),
            last_slot: Slot(slot),
            last_ballot: b(0, 0),
            transfer_of: b(0, 0),
        },
    };
    let mut out = Vec::new();
    encode(&elect(VALUE_MAX, 1), &mut out);
    let e = decode(&out[PEER_PREFIX_BYTES..]).unwrap_err();
    assert!(
        e.message
            .starts_with("last_slot: 4611686018427387904 is not below"),
        "{e}"
    );
    out.clear();
    encode(&elect(1, u64::MAX), &mut out);
    let e = decode(&out[PEER_PREFIX_BYTES..]).unwrap_err();
    assert_eq!(e.offset, 3, "{e}");
    assert!(e.message.starts_with("ballot: 18446744073709551615"), "{e}");
}

/// Every byte string decodes to a message or an error, never a panic.
#[test]
fn random_bodies_never_panic() {
    let mut rng = crate::rng::Rng::new(7);
    let seeds: Vec<Vec<u8>> = every_message().iter().map(frame).collect();
    for i in 0..20_000 {
        let mut body = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            if body.is_empty() {
                break;
            }
            let at = rng.below(body.len() as u64) as usize;
            body[at] = rng.below(256) as u8;
        }
        let _ = decode(&body);
    }
}

#[test]
fn a_stream_opens_with_a_hello_and_nothing_else_will_do() {
    let mut out = Vec::new();
    encode_hello(0x0102_0304_0506_0708, &mut out);
    let body = &out[PEER_PREFIX_BYTES..];
    assert_eq!(
        u32::from_be_bytes(out[..PEER_PREFIX_BYTES].try_into().unwrap()) as usize,
        body.len()
    );
    assert_eq!(decode_hello(body).unwrap(), 0x0102_0304_0506_0708);
    // Cut short, or with bytes after it.
    for cut in 0..body.len() {
        assert!(decode_hello(&body[..cut]).is_err(), "cut at {cut}");
    }
    let mut long = body.to_vec();
    long.push(0);
    let e = decode_hello(&long).unwrap_err();
    assert!(e.message.contains("after the hello"), "{e}");
    // A message where the hello belongs.
    let msg = frame(&every_message()[0]);
    let e = decode_hello(&msg).unwrap_err();
    assert!(e.message.contains("must open with a hello"), "{e}");
    // And a hello is not a message.
    assert!(decode(body).is_err());
}

/// A forwarded request's principal must be short UTF-8, after its token's
/// 32-byte hash; the client bodies inside are not read here.
#[test]
fn a_forward_with_a_bad_principal_or_a_short_hash_is_refused() {
    let forward = |principal: &str| PeerMessage::Forward {
        id: 1,
        tenant: crate::types::TenantId(2),
        principal: principal.into(),
        token_sha256: [7; 32],
        request: vec![1, 2, 3],
    };
    // kind, id, tenant, then the token's hash.
    let hash_at = 1 + 8 + 4;
    let body = frame(&forward("p"));
    assert!(decode(&body[..hash_at + 20]).is_err(), "a hash cut short");

    let mut body = frame(&forward("p"));
    body[hash_at + 32 + 4] = 0xff;
    let e = decode(&body).unwrap_err();
    assert!(e.message.contains("principal: not UTF-8"), "{e}");

    let long = "x".repeat(PRINCIPAL_BYTES_MAX + 1);
    let e = decode(&frame(&forward(&long))).unwrap_err();
    assert!(e.message.contains("principal: 256 bytes, over 255"), "{e}");
}
