//! Arbitrary OTI bytes, then arbitrary packets, into the object decoder.
//!
//! Input layout: byte 0 picks the scheme (even: RaptorQ, odd: no-code); the
//! next 12 or 14 bytes are the OTI; the rest is a sequence of packets, each
//! a 2-byte big-endian length followed by that many bytes (a FEC Payload ID
//! and a symbol). Nothing may panic; valid symbols must keep the decoder's
//! accounting consistent.
#![no_main]

use dms_fec::{FecScheme, NO_CODE_OTI_LEN, ObjectDecoder, Oti, RAPTORQ_OTI_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let (scheme, oti_len) = if selector % 2 == 0 {
        (FecScheme::RaptorQ, RAPTORQ_OTI_LEN)
    } else {
        (FecScheme::NoCode, NO_CODE_OTI_LEN)
    };
    if rest.len() < oti_len {
        return;
    }
    let (oti_bytes, mut packets) = rest.split_at(oti_len);
    let Ok(oti) = Oti::decode(scheme, oti_bytes) else { return };
    // Reserved bits are ignored on input, so compare values, not bytes.
    assert_eq!(Oti::decode(scheme, &oti.encode()), Ok(oti));
    // Keep allocations bounded: a huge block is valid but slow to fuzz.
    if oti.layout().padded_block_len(0).unwrap_or(0) > 1 << 22 {
        return;
    }
    let mut decoder = ObjectDecoder::new(&oti);
    while packets.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([packets[0], packets[1]]));
        let end = (2 + len).min(packets.len());
        let _ = decoder.add_payload(&packets[2..end]);
        packets = &packets[end..];
        while decoder.pop_block().is_some() {}
    }
    for (sbn, needed) in decoder.symbols_needed() {
        assert!(needed > 0, "block {sbn} reported as needing nothing");
    }
});
