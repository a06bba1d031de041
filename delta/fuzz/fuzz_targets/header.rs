//! The delta header alone on arbitrary bytes: never a panic, and a parsed
//! header encodes back to the bytes it was parsed from.
#![no_main]

use dms_delta::{HEADER_LEN, Header};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = Header::parse(data) {
        assert_eq!(&header.encode()[..], &data[..HEADER_LEN]);
        assert_eq!(Header::parse(&header.encode()).ok(), Some(header));
    }
});
