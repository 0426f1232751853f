//! Fuzz target `frame`: arbitrary bytes as a request body and as a response
//! body. Decoding must not panic; whatever decodes must encode to a frame
//! that decodes to the same value again.
//!
//! An `Err` is a fine answer; a panic, abort or hang is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ohm::proto::codec::{self, PREFIX_BYTES};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = codec::decode_request(data) {
        let mut out = Vec::new();
        if codec::encode_request(&frame, &mut out).is_ok() {
            let again = codec::decode_request(&out[PREFIX_BYTES..]).expect("re-encoded request decodes");
            assert_eq!(again, frame);
        }
    }
    if let Ok(frame) = codec::decode_response(data) {
        let mut out = Vec::new();
        if codec::encode_response(&frame, &mut out).is_ok() {
            let again = codec::decode_response(&out[PREFIX_BYTES..]).expect("re-encoded response decodes");
            assert_eq!(again, frame);
        }
    }
});
