//! Arbitrary bytes as a simpleSymbolContainer: nothing may panic, and every
//! symbol read is T bytes.
#![no_main]

use dms_fec::FecScheme;
use dms_repair::container::ContainerReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Some((&t, rest)) = rest.split_first() else { return };
    let scheme = if selector % 2 == 0 { FecScheme::RaptorQ } else { FecScheme::NoCode };
    for item in ContainerReader::new(rest, scheme, u16::from(t)) {
        match item {
            Ok((_, symbol)) => assert_eq!(symbol.len(), usize::from(t)),
            Err(_) => break,
        }
    }
});
