//! Arbitrary bytes as a Raptor (RFC 5053) OTI, then as symbols for the first
//! block's decoder.
//!
//! Input layout: 14 OTI bytes, then packets, each a 2-byte big-endian ESI,
//! a 2-byte length and that many symbol bytes. Nothing may panic; a valid
//! OTI must round-trip by value.
#![no_main]

use dms_fec::raptor::RAPTOR_OTI_LEN;
use dms_fec::{BlockDecoder, FecScheme, Oti};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < RAPTOR_OTI_LEN {
        return;
    }
    let (oti_bytes, mut packets) = data.split_at(RAPTOR_OTI_LEN);
    let Ok(oti) = Oti::decode(FecScheme::Raptor, oti_bytes) else { return };
    assert_eq!(Oti::decode(FecScheme::Raptor, &oti.encode()), Ok(oti));
    let layout = oti.layout();
    // Keep allocations bounded: a huge block is valid but slow to fuzz.
    let k = u64::from(layout.source_symbols(0).unwrap_or(0));
    if k * u64::from(oti.symbol_size()) > 1 << 22 {
        return;
    }
    let Ok(mut decoder) = BlockDecoder::new(&layout, 0) else { return };
    while packets.len() >= 4 {
        let esi = u32::from(u16::from_be_bytes([packets[0], packets[1]]));
        let len = usize::from(u16::from_be_bytes([packets[2], packets[3]]));
        let end = (4 + len).min(packets.len());
        let _ = decoder.add_symbol(esi, &packets[4..end]);
        packets = &packets[end..];
    }
});
