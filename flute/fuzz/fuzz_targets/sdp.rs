//! SDP parser on arbitrary bytes. Whatever parses must write back to a
//! description that parses to the same value.
#![no_main]

use dms_flute::mbms::SessionDescription;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sdp) = SessionDescription::parse(data) {
        let again = SessionDescription::parse(sdp.to_sdp().as_bytes());
        assert_eq!(again, Ok(sdp));
    }
});
