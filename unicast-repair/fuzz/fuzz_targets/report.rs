//! Arbitrary bytes as a reception report, in both forms the service takes:
//! the 3GPP `receptionReport` XML and our JSON. Nothing may panic, a
//! parsed XML report names only non-empty file URIs, and what the writer
//! makes of a parsed report parses back to the same report (the same files, grouped by kind).
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
        let written = report.to_xml();
        let again = xml::parse(&written).expect("a written report parses");
        // The writer groups acknowledgements before statistics.
        let key = |r: &xml::ReceptionReport| {
            let mut files: Vec<_> = r
                .files
                .iter()
                .map(|f| (f.file_uri.clone(), f.success, format!("{:?}", f.kind)))
                .collect();
            files.sort();
            files
        };
        assert_eq!(key(&again), key(&report), "{written}");
    }
    let _ = serde_json::from_slice::<JsonReport>(data);
});
