//! Arbitrary bytes as a reception report, in both forms the service takes:
//! the 3GPP `receptionReport` XML and our JSON. Nothing may panic, and a
//! parsed XML report names only non-empty file URIs.
#![no_main]

use dms_repair::report::JsonReport;
use dms_repair::report::xml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(report) = xml::parse(text)
    {
        for file in &report.files {
            assert!(!file.file_uri.is_empty());
        }
    }
    let _ = serde_json::from_slice::<JsonReport>(data);
});
