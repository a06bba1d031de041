//! Header parsing and apply on arbitrary input: never a panic, and a
//! success only with a result whose size and SHA-256 match the header.
//!
//! Input: first byte = base length (0–255), then the base, then the delta.
//! A header that claims a large target is skipped (it could only test the
//! fuzzer's memory). Since a random header almost never names the base,
//! the delta's bytes are also tried as the body behind a valid header for
//! this base (target = base), with each method, to reach the decoders.
//! Seeds (`seeds/apply`, pass it after the corpus directory): a
//! bsdiff-zstd delta, and a bsdiff-zstd body of a base onto itself.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n).min(rest.len());
    let (base, delta) = rest.split_at(n);
    body_behind_valid_header(base, delta);
    let Ok(header) = dms_delta::Header::parse(delta) else {
        return;
    };
    assert_eq!(dms_delta::Header::parse(&header.encode()), Ok(header));
    if header.target_size > 1 << 20 {
        return;
    }
    if let Ok(out) = dms_delta::apply_bytes(base, delta) {
        assert_eq!(out.len() as u64, header.target_size);
    }
});

fn body_behind_valid_header(base: &[u8], body: &[u8]) {
    let opts = dms_delta::MakeOptions {
        zstd_level: 1,
        bsdiff: false,
        ..Default::default()
    };
    let Ok((valid, _)) = dms_delta::make_bytes(base, base, &opts) else {
        return;
    };
    // 1: zstd-ref, 3: bsdiff-zstd (2, the retired bsdiff 4.x, is refused).
    for method in [1u8, 2, 3] {
        let mut delta = valid[..dms_delta::HEADER_LEN].to_vec();
        delta[9] = method;
        delta.extend_from_slice(body);
        if let Ok(out) = dms_delta::apply_bytes(base, &delta) {
            assert_eq!(out, base);
        }
    }
}
