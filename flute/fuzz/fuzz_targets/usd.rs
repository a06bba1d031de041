//! User Service Bundle Description parser on arbitrary bytes. Whatever
//! parses must write back to a document that parses to the same value.
#![no_main]

use dms_flute::mbms::UserServiceBundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(usd) = UserServiceBundle::parse(data) {
        let again = UserServiceBundle::parse(usd.to_xml().as_bytes());
        assert_eq!(again, Ok(usd));
    }
});
