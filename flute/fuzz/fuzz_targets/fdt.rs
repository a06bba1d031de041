//! FDT-Instance parser on arbitrary bytes. Whatever parses must write back
//! to a document that parses to the same value.
#![no_main]

use dms_flute::FdtInstance;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(fdt) = FdtInstance::parse(data) {
        for file in &fdt.files {
            let _ = fdt.fti(file);
        }
        let xml = fdt.to_xml();
        if let Ok(again) = FdtInstance::parse(xml.as_bytes()) {
            assert_eq!(again, fdt);
        }
    }
});
