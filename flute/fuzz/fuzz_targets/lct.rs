//! ALC/LCT packet parser on arbitrary datagrams, under both codepoints.
//!
//! The first byte picks what to do with the rest: parse it as is, or with
//! the codepoint forced to 0 (no-code) or 6 (RaptorQ) and the version to 1,
//! so that most inputs reach the extension and payload id parsers. Whatever
//! parses must encode again and parse back to the same packet.
#![no_main]

use dms_flute::{AlcPacket, LctHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut datagram = rest.to_vec();
    if mode & 1 == 1 && datagram.len() >= 4 {
        datagram[0] = 0x10 | (datagram[0] & 0x0f);
        datagram[3] = if mode & 2 == 0 { 0 } else { 6 };
    }
    let _ = LctHeader::decode(&datagram);
    if let Ok(packet) = AlcPacket::decode(&datagram) {
        let mut out = vec![0u8; datagram.len() + 64];
        let n = packet.encode(&mut out).expect("a parsed packet encodes");
        let again = AlcPacket::decode(&out[..n]).expect("an encoded packet parses");
        assert_eq!(again, packet);
    }
});
