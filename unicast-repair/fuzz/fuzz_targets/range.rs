//! Arbitrary `Range` header values against arbitrary lengths: nothing may
//! panic and every range served must lie inside the representation.
#![no_main]

use dms_repair::range::{MAX_RANGES, RangeRequest, parse_range};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len_bytes, rest)) = data.split_at_checked(8) else { return };
    let mut len = [0u8; 8];
    len.copy_from_slice(len_bytes);
    let len = u64::from_le_bytes(len);
    let Ok(value) = std::str::from_utf8(rest) else { return };
    if let RangeRequest::Ranges(ranges) = parse_range(value, len) {
        assert!(!ranges.is_empty() && ranges.len() <= MAX_RANGES);
        for r in ranges {
            assert!(r.start < r.end && r.end <= len);
        }
    }
});
