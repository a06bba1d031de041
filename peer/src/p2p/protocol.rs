//! The wire protocol `/dms/symbols/2`: one CBOR request, one CBOR answer.
//!
//! Symbols and manifests travel as CBOR byte strings (not arrays of
//! integers), so an answer costs about its payload on the wire.

use dms_fec::Oti;
use serde::{Deserialize, Serialize};

/// The protocol name (version 2: byte-string symbols, per-block have-maps,
/// object listings, busy answers).
pub const PROTOCOL: &str = "/dms/symbols/2";

/// Most symbols one answer carries (also capped by
/// [`PeerLimits::max_response_bytes`](super::PeerLimits::max_response_bytes)).
pub const MAX_SYMBOLS: u32 = 4096;

/// A question to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Which blocks of the object at this Content-Location do you have?
    HaveMap {
        /// The object's Content-Location.
        content_location: String,
    },
    /// `count` symbols of block `sbn`, ESIs from `first_esi`, skipping
    /// those in `not`.
    Symbols {
        /// The object's Content-Location.
        content_location: String,
        /// Source block number.
        sbn: u32,
        /// How many symbols.
        count: u32,
        /// First ESI to make (RaptorQ: raised to K, so only repair symbols
        /// are made; Compact No-Code: source symbols from here).
        first_esi: u32,
        /// ESIs the asker already has.
        not: Vec<u32>,
    },
    /// Which objects do you know (their FDT facts and signed manifests)?
    Objects,
}

/// A peer's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// One flag per block: decoded (and written) here.
    HaveMap {
        /// The flags, in block order (empty: object unknown).
        blocks: Vec<bool>,
    },
    /// `(esi, symbol)` pairs of T bytes (the last source symbol of a
    /// Compact No-Code block may be shorter).
    Symbols {
        /// The symbols.
        #[serde(with = "symbol_list")]
        symbols: Vec<(u32, Vec<u8>)>,
    },
    /// The object or the block asked for is not held here (yet).
    DontHave,
    /// The objects this peer knows.
    Objects {
        /// One entry per object.
        objects: Vec<ObjectAnnouncement>,
    },
    /// Over this peer's limits for the asker: ask again later or elsewhere.
    Busy {
        /// A hint: milliseconds until the asker's budget is back.
        retry_after_ms: u64,
    },
    /// The question could not be answered.
    Error {
        /// Why.
        reason: String,
    },
}

/// What a node tells peers about an object it knows: the FDT entry's facts
/// and the origin's signed manifest, so a UE that missed the broadcast (or
/// joined after it) can fetch and verify the object from peers.
///
/// p2p neither parses nor verifies `manifest`: the agent verifies it with
/// the origin's key before trusting any of these facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAnnouncement {
    /// The FDT's Content-Location (the key of every other request).
    pub content_location: String,
    /// The object's size in bytes (FDT Content-Length).
    pub content_length: u64,
    /// FDT Content-Type.
    pub content_type: Option<String>,
    /// FDT Content-Encoding.
    pub content_encoding: Option<String>,
    /// FEC parameters; on the wire the FEC Encoding ID and the OTI's wire
    /// form (12 bytes for RaptorQ), checked when decoded.
    #[serde(with = "oti_wire")]
    pub oti: Oti,
    /// SHA-256 of the object, when known.
    pub sha256: Option<[u8; 32]>,
    /// Where the signed manifest is served by the origin.
    pub manifest_uri: Option<String>,
    /// The signed manifest's bytes as the origin served them (opaque here).
    #[serde(with = "serde_bytes")]
    pub manifest: Vec<u8>,
}

/// `Vec<(u32, Vec<u8>)>` with the symbols as CBOR byte strings.
mod symbol_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(symbols: &[(u32, Vec<u8>)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            symbols
                .iter()
                .map(|(esi, symbol)| (esi, serde_bytes::Bytes::new(symbol))),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(u32, Vec<u8>)>, D::Error> {
        let symbols: Vec<(u32, serde_bytes::ByteBuf)> = Deserialize::deserialize(d)?;
        Ok(symbols
            .into_iter()
            .map(|(esi, symbol)| (esi, symbol.into_vec()))
            .collect())
    }
}

/// An [`Oti`] as its FEC Encoding ID and wire form, validated on decode.
mod oti_wire {
    use dms_fec::{FecScheme, Oti};
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wire {
        fec_encoding_id: u8,
        #[serde(with = "serde_bytes")]
        oti: Vec<u8>,
    }

    pub fn serialize<S: Serializer>(oti: &Oti, s: S) -> Result<S::Ok, S::Error> {
        Wire {
            fec_encoding_id: oti.scheme().encoding_id(),
            oti: oti.encode().to_vec(),
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Oti, D::Error> {
        let wire = Wire::deserialize(d)?;
        let scheme = FecScheme::from_encoding_id(wire.fec_encoding_id).map_err(D::Error::custom)?;
        Oti::decode(scheme, &wire.oti).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use dms_fec::{BlockSize, FecScheme};

    use super::*;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned>(value: &T) -> (T, usize) {
        let bytes = cbor4ii::serde::to_vec(Vec::new(), value).unwrap();
        (cbor4ii::serde::from_slice(&bytes).unwrap(), bytes.len())
    }

    #[test]
    fn symbols_travel_as_byte_strings() {
        let response = Response::Symbols {
            symbols: (0..10u32)
                .map(|i| (i + 100, vec![i as u8 | 0x80; 1000]))
                .collect(),
        };
        let (back, len) = round_trip(&response);
        assert_eq!(back, response);
        // Payload plus a few bytes per symbol (an array of integers would
        // take two bytes per byte above 23).
        assert!(len < 10_000 + 10 * 8 + 32, "{len} bytes");
    }

    #[test]
    fn announcements_round_trip_and_bad_otis_are_refused() {
        let oti = Oti::for_object(FecScheme::RaptorQ, 5000, 64, BlockSize::Bytes(4096)).unwrap();
        let announcement = ObjectAnnouncement {
            content_location: "/a".into(),
            content_length: 5000,
            content_type: Some("text/plain".into()),
            content_encoding: None,
            oti,
            sha256: Some([1; 32]),
            manifest_uri: Some("https://o/m.json".into()),
            manifest: b"{}".to_vec(),
        };
        let response = Response::Objects {
            objects: vec![announcement.clone()],
        };
        assert_eq!(round_trip(&response).0, response);

        // The same with FEC Encoding ID 6 turned into 7: refused, no panic.
        let mut bytes = cbor4ii::serde::to_vec(Vec::new(), &announcement).unwrap();
        let id = b"fec_encoding_id";
        let at = bytes.windows(id.len()).position(|w| w == id).unwrap() + id.len();
        assert_eq!(bytes[at], 6);
        bytes[at] = 7;
        assert!(cbor4ii::serde::from_slice::<ObjectAnnouncement>(&bytes).is_err());
        // A truncated announcement is refused too.
        let short = cbor4ii::serde::to_vec(Vec::new(), &announcement).unwrap();
        let cut = short.len() - 1;
        assert!(cbor4ii::serde::from_slice::<ObjectAnnouncement>(&short[..cut]).is_err());
    }

    #[test]
    fn requests_round_trip() {
        for request in [
            Request::Objects,
            Request::HaveMap {
                content_location: "/x".into(),
            },
            Request::Symbols {
                content_location: "/x".into(),
                sbn: 3,
                count: 9,
                first_esi: 70_000,
                not: vec![70_001, 70_003],
            },
        ] {
            assert_eq!(round_trip(&request).0, request);
        }
        for response in [
            Response::DontHave,
            Response::Busy {
                retry_after_ms: 1500,
            },
            Response::HaveMap {
                blocks: vec![true, false],
            },
        ] {
            assert_eq!(round_trip(&response).0, response);
        }
    }
}
