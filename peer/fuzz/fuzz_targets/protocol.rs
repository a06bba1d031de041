//! Arbitrary bytes as a peer's CBOR message (`/dms/symbols/2`), decoded the
//! way libp2p's CBOR codec decodes it (`cbor4ii::serde::from_slice`): as a
//! request, an answer and an object announcement. Nothing may panic; a
//! decoded message encodes and decodes back to itself, and every OTI that
//! got through is one `dms-fec` accepts.
#![no_main]

// The protocol module alone: it needs only dms-fec, serde and cbor4ii, so
// the target does not build libp2p and the rest of the agent.
#[allow(dead_code)]
#[path = "../../src/p2p/protocol.rs"]
mod protocol;

use libfuzzer_sys::fuzz_target;
use protocol::{ObjectAnnouncement, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    data: &[u8],
) -> Option<T> {
    let value: T = cbor4ii::serde::from_slice(data).ok()?;
    let bytes = cbor4ii::serde::to_vec(Vec::new(), &value).expect("a decoded message encodes");
    let back: T = cbor4ii::serde::from_slice(&bytes).expect("an encoded message decodes");
    assert_eq!(back, value);
    Some(value)
}

fn check_announcement(a: &ObjectAnnouncement) {
    // The OTI was validated on decode: its layout must be usable as is.
    let layout = a.oti.layout();
    assert!(layout.block_count() >= 1);
    assert_eq!(
        dms_fec::Oti::decode(a.oti.scheme(), &a.oti.encode()).as_ref(),
        Ok(&a.oti)
    );
}

fuzz_target!(|data: &[u8]| {
    let _ = round_trips::<Request>(data);
    if let Some(Response::Objects { objects }) = round_trips::<Response>(data) {
        objects.iter().for_each(check_announcement);
    }
    if let Some(a) = round_trips::<ObjectAnnouncement>(data) {
        check_announcement(&a);
    }
});
