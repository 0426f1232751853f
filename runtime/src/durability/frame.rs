//! The record frame around a payload, both versions (layout in the module
//! doc of `durability`): what makes a record self-checking on disk.
//!
//! Owns: `put_record` (version 2, the only one written) and `frame` (both
//! versions read). Must not: do I/O or look inside the payload.
//!
//! ```text
//!   (slot, ballot, payload) --put_record--> len | crc | slot | ballot | payload
//!   bytes --frame(version)--> Ok { slot, ballot, payload, len } | Partial | BadLength | BadCrc
//! ```

use super::record::{put_u32, Reader, RECORD_BYTES_MAX};
use crate::types::{Ballot, NodeId, Slot};

/// The fields a version-2 record's `len` counts before the payload: slot
/// u64, ballot round u64, ballot node u32.
pub(super) const RECORD_FIELDS_BYTES: usize = 20;
/// Version 1 had only the slot (then called lsn).
const RECORD_FIELDS_BYTES_V1: usize = 8;
/// Bytes of a version-2 record before its payload: len u32, crc u32, fields.
pub(super) const RECORD_HEADER_BYTES: usize = 8 + RECORD_FIELDS_BYTES;

/// Appends a version-2 record framing `payload` (at most
/// `PAYLOAD_BYTES_MAX`, which the caller checked) onto `out`.
pub(super) fn put_record(out: &mut Vec<u8>, slot: Slot, ballot: Ballot, payload: &[u8]) {
    let mut fields = [0u8; RECORD_FIELDS_BYTES];
    fields[..8].copy_from_slice(&slot.0.to_le_bytes());
    fields[8..16].copy_from_slice(&ballot.round.to_le_bytes());
    fields[16..].copy_from_slice(&ballot.node.0.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&fields);
    crc.update(payload);
    let len = u32::try_from(RECORD_FIELDS_BYTES + payload.len())
        .expect("payloads are checked against PAYLOAD_BYTES_MAX");
    out.reserve(RECORD_HEADER_BYTES + payload.len());
    put_u32(out, len);
    put_u32(out, crc.finalize());
    out.extend_from_slice(&fields);
    out.extend_from_slice(payload);
}

/// What a well-framed record at the start of `buf` holds.
pub(super) enum Framed<'a> {
    /// A whole record whose CRC matches: its slot, ballot, payload and
    /// total length.
    Ok {
        slot: Slot,
        ballot: Ballot,
        payload: &'a [u8],
        len: usize,
    },
    /// Fewer bytes than the record header or its length field says.
    Partial,
    /// A length over `RECORD_BYTES_MAX` or under the fields the version has.
    BadLength(u32),
    BadCrc,
}

/// Frames the record of segment format `version` (1: no ballot, read as
/// `Ballot::default()`; 2) starting at `buf[0]`, without decoding the payload.
pub(super) fn frame(buf: &[u8], version: u32) -> Framed<'_> {
    let fields = if version == 1 {
        RECORD_FIELDS_BYTES_V1
    } else {
        RECORD_FIELDS_BYTES
    };
    let Some(head) = buf.get(..8) else {
        return Framed::Partial;
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if (len as usize) < fields || len as usize > RECORD_BYTES_MAX {
        return Framed::BadLength(len);
    }
    let Some(body) = buf.get(8..8 + len as usize) else {
        return Framed::Partial;
    };
    if crc32fast::hash(body) != crc {
        return Framed::BadCrc;
    }
    let (head, payload) = body.split_at(fields);
    let mut r = Reader::new(head);
    let field = "the record's own fields, whose length was checked";
    let slot = Slot(r.u64("slot").expect(field));
    let ballot = if version == 1 {
        Ballot::default()
    } else {
        Ballot {
            round: r.u64("round").expect(field),
            node: NodeId(r.u32("node").expect(field)),
        }
    };
    Framed::Ok {
        slot,
        ballot,
        payload,
        len: 8 + len as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_both_versions_and_empty_payloads() {
        // Version 1, as the old code wrote it: len = 8 + payload, no ballot.
        let mut v1 = Vec::new();
        let body = [&9u64.to_le_bytes()[..], b"abc"].concat();
        put_u32(&mut v1, body.len() as u32);
        put_u32(&mut v1, crc32fast::hash(&body));
        v1.extend_from_slice(&body);
        match frame(&v1, 1) {
            Framed::Ok {
                slot,
                ballot,
                payload,
                len,
            } => {
                assert_eq!(
                    (slot, ballot, payload, len),
                    (Slot(9), Ballot::default(), &b"abc"[..], v1.len())
                );
            }
            _ => panic!("v1 record does not frame"),
        }
        // Too short to hold a version-2 record's fields.
        assert!(matches!(frame(&v1, 2), Framed::BadLength(11)));
        // An empty payload (a consensus no-op) is a record like any other.
        let b = Ballot {
            round: u64::MAX,
            node: NodeId(u32::MAX),
        };
        let mut v2 = Vec::new();
        put_record(&mut v2, Slot(1), b, &[]);
        assert_eq!(v2.len(), RECORD_HEADER_BYTES);
        assert!(matches!(
            frame(&v2, 2),
            Framed::Ok { slot: Slot(1), ballot, payload: [], len: RECORD_HEADER_BYTES } if ballot == b
        ));
        for cut in 0..v2.len() {
            assert!(
                matches!(frame(&v2[..cut], 2), Framed::Partial),
                "cut at {cut}"
            );
        }
        v2[RECORD_HEADER_BYTES - 1] ^= 1;
        assert!(matches!(frame(&v2, 2), Framed::BadCrc));
    }
}
