//! Arbitrary bytes as a served signed manifest (what a device fetches):
//! parsing, the signed fields and their canonical encoding must never
//! panic, and a body that parses encodes to bytes that name its version.
#![no_main]

use std::sync::OnceLock;

use dms_repair::manifest::SignedManifest;
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(signed) = SignedManifest::from_json(data) else { return };
    let Ok(body) = signed.body() else { return };
    if let Ok(bytes) = body.canonical_bytes() {
        assert!(bytes.starts_with(b"DMS-MANIFEST"));
    }
    // Checking a fuzzed signature must not panic either.
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    let key = KEY.get_or_init(dms_repair::manifest::generate_key);
    let _ = signed.verify(&key.verifying_key());
});
