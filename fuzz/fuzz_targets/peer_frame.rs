//! Fuzz target `peer_frame`: arbitrary bytes as a peer frame body. Decoding
//! must not panic or allocate past what the body holds; whatever decodes
//! must encode to a frame that decodes to the same message again.
//!
//! An `Err` is a fine answer; a panic, abort or hang is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ohm::peer::{decode, encode, PEER_PREFIX_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = decode(data) {
        let mut out = Vec::new();
        encode(&msg, &mut out);
        let again = decode(&out[PEER_PREFIX_BYTES..]).expect("re-encoded peer message decodes");
        assert_eq!(again, msg);
    }
});
