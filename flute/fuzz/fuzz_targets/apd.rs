//! Associated Procedure Description parser on arbitrary bytes. Whatever
//! parses must write back to a document that parses to the same value.
#![no_main]

use dms_flute::mbms::AssociatedProcedures;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(apd) = AssociatedProcedures::parse(data) {
        let again = AssociatedProcedures::parse(apd.to_xml().as_bytes());
        assert_eq!(again, Ok(apd));
    }
});
