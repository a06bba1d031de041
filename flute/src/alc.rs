//! ALC packets (RFC 5775): an LCT header, a FEC Payload ID and encoding
//! symbols.
//!
//! ```text
//! +---------------------------------------------+
//! | LCT header (HDR_LEN·4 bytes, see crate::lct) |
//! +---------------------------------------------+
//! | FEC Payload ID (4 bytes, layout per codepoint)
//! +---------------------------------------------+
//! | encoding symbol(s) (the rest of the datagram)
//! +---------------------------------------------+
//!
//! FEC Payload ID, RaptorQ (RFC 6330 §3.2):   Compact No-Code (RFC 5445 §2.2):
//!  0       8                       31         0               16              31
//! +-------+------------------------+         +---------------+---------------+
//! | SBN 8 |        ESI 24          |         |    SBN 16     |    ESI 16     |
//! +-------+------------------------+         +---------------+---------------+
//! ```
//!
//! Only the codepoints this crate implements are accepted; any other is
//! rejected with [`AlcError::UnknownCodepoint`].
//!
//! A packet with the A (close session) or B (close object) flag may end
//! right after its LCT header, with no FEC Payload ID and no symbols
//! (RFC 5775 §4.2 lets such packets carry no payload; the `flute` crate
//! sends them). Those parse with `payload_id: None`, whatever their
//! codepoint, since they carry nothing the codepoint would describe.

use crate::lct::{CODEPOINT_NO_CODE, CODEPOINT_RAPTOR, CODEPOINT_RAPTORQ, LctError, LctHeader};

/// Errors of ALC packet parsing and writing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlcError {
    /// The LCT header is invalid.
    #[error(transparent)]
    Lct(#[from] LctError),
    /// The codepoint is not a FEC Encoding ID we implement.
    #[error("unknown codepoint (FEC Encoding ID) {0}")]
    UnknownCodepoint(u8),
    /// The datagram ends inside the FEC Payload ID.
    #[error("truncated FEC Payload ID")]
    TruncatedPayloadId,
    /// The FEC Payload ID layout does not match the header's codepoint.
    #[error("FEC Payload ID does not match codepoint {codepoint}")]
    PayloadIdMismatch {
        /// The header's codepoint.
        codepoint: u8,
    },
    /// A packet without a FEC Payload ID that closes neither the session
    /// nor the object (only close packets may be header-only).
    #[error("only close packets (A or B flag) may omit the FEC Payload ID")]
    MissingPayloadId,
    /// The ESI does not fit its wire size.
    #[error("ESI {0} exceeds 24 bits")]
    EsiOutOfRange(u32),
    /// The output buffer is too small.
    #[error("buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

/// The FEC schemes this crate carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FecEncodingId {
    /// Compact No-Code (FEC Encoding ID 0, RFC 5445).
    NoCode,
    /// Raptor (FEC Encoding ID 1, RFC 5053).
    Raptor,
    /// RaptorQ (FEC Encoding ID 6, RFC 6330).
    RaptorQ,
}

impl FecEncodingId {
    /// The FEC Encoding ID (the LCT codepoint).
    pub const fn id(self) -> u8 {
        match self {
            FecEncodingId::NoCode => CODEPOINT_NO_CODE,
            FecEncodingId::Raptor => CODEPOINT_RAPTOR,
            FecEncodingId::RaptorQ => CODEPOINT_RAPTORQ,
        }
    }
}

impl TryFrom<u8> for FecEncodingId {
    type Error = AlcError;

    fn try_from(id: u8) -> Result<Self, AlcError> {
        match id {
            CODEPOINT_NO_CODE => Ok(FecEncodingId::NoCode),
            CODEPOINT_RAPTOR => Ok(FecEncodingId::Raptor),
            CODEPOINT_RAPTORQ => Ok(FecEncodingId::RaptorQ),
            other => Err(AlcError::UnknownCodepoint(other)),
        }
    }
}

/// A FEC Payload ID: which block and symbol a packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadId {
    /// RaptorQ: SBN(8) | ESI(24).
    RaptorQ {
        /// Source block number.
        sbn: u8,
        /// Encoding symbol ID (24 bits).
        esi: u32,
    },
    /// Compact No-Code: SBN(16) | ESI(16).
    NoCode {
        /// Source block number.
        sbn: u16,
        /// Encoding symbol ID.
        esi: u16,
    },
    /// Raptor (RFC 5053 §3.1): SBN(16) | ESI(16).
    Raptor {
        /// Source block number.
        sbn: u16,
        /// Encoding symbol ID.
        esi: u16,
    },
}

impl PayloadId {
    /// Length on the wire (both layouts are 4 bytes).
    pub const LEN: usize = 4;
    /// Largest RaptorQ ESI (24 bits).
    pub const MAX_RAPTORQ_ESI: u32 = (1 << 24) - 1;

    /// The scheme of this layout.
    pub fn fec_encoding_id(&self) -> FecEncodingId {
        match self {
            PayloadId::RaptorQ { .. } => FecEncodingId::RaptorQ,
            PayloadId::NoCode { .. } => FecEncodingId::NoCode,
            PayloadId::Raptor { .. } => FecEncodingId::Raptor,
        }
    }

    /// The source block number.
    pub fn sbn(&self) -> u32 {
        match *self {
            PayloadId::RaptorQ { sbn, .. } => u32::from(sbn),
            PayloadId::NoCode { sbn, .. } | PayloadId::Raptor { sbn, .. } => u32::from(sbn),
        }
    }

    /// The encoding symbol ID.
    pub fn esi(&self) -> u32 {
        match *self {
            PayloadId::RaptorQ { esi, .. } => esi,
            PayloadId::NoCode { esi, .. } | PayloadId::Raptor { esi, .. } => u32::from(esi),
        }
    }

    /// Reads the 4-byte payload id of scheme `fec` at the start of `bytes`.
    pub fn decode(fec: FecEncodingId, bytes: &[u8]) -> Result<Self, AlcError> {
        let [a, b, c, d, ..] = *bytes else {
            return Err(AlcError::TruncatedPayloadId);
        };
        Ok(match fec {
            FecEncodingId::RaptorQ => PayloadId::RaptorQ {
                sbn: a,
                esi: u32::from_be_bytes([0, b, c, d]),
            },
            FecEncodingId::NoCode => PayloadId::NoCode {
                sbn: u16::from_be_bytes([a, b]),
                esi: u16::from_be_bytes([c, d]),
            },
            FecEncodingId::Raptor => PayloadId::Raptor {
                sbn: u16::from_be_bytes([a, b]),
                esi: u16::from_be_bytes([c, d]),
            },
        })
    }

    /// The 4 bytes on the wire.
    pub fn to_bytes(&self) -> Result<[u8; 4], AlcError> {
        match *self {
            PayloadId::RaptorQ { sbn, esi } => {
                if esi > Self::MAX_RAPTORQ_ESI {
                    return Err(AlcError::EsiOutOfRange(esi));
                }
                let e = esi.to_be_bytes();
                Ok([sbn, e[1], e[2], e[3]])
            }
            PayloadId::NoCode { sbn, esi } | PayloadId::Raptor { sbn, esi } => {
                let s = sbn.to_be_bytes();
                let e = esi.to_be_bytes();
                Ok([s[0], s[1], e[0], e[1]])
            }
        }
    }
}

/// A parsed ALC packet borrowing from its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlcPacket<'a> {
    /// The LCT header.
    pub header: LctHeader<'a>,
    /// The FEC Payload ID; `None` only in a header-only close packet
    /// (A or B flag set, nothing after the LCT header).
    pub payload_id: Option<PayloadId>,
    /// The encoding symbol bytes (may hold several symbols, or none).
    pub symbols: &'a [u8],
}

impl<'a> AlcPacket<'a> {
    /// Parses a datagram. Fails on an invalid header, a codepoint other
    /// than 0 or 6, or a missing FEC Payload ID. A close packet (A or B
    /// flag) that ends with its header parses with no payload id and no
    /// symbols, and its codepoint is not checked.
    pub fn decode(datagram: &'a [u8]) -> Result<Self, AlcError> {
        let (header, hdr_len) = LctHeader::decode(datagram)?;
        let rest = datagram.get(hdr_len..).unwrap_or_default();
        if rest.is_empty() && (header.close_session || header.close_object) {
            return Ok(AlcPacket {
                header,
                payload_id: None,
                symbols: &[],
            });
        }
        let fec = FecEncodingId::try_from(header.codepoint)?;
        let payload_id = PayloadId::decode(fec, rest)?;
        Ok(AlcPacket {
            header,
            payload_id: Some(payload_id),
            symbols: rest.get(PayloadId::LEN..).unwrap_or_default(),
        })
    }

    /// Whether this is a header-only close packet (no FEC Payload ID).
    pub fn is_header_only(&self) -> bool {
        self.payload_id.is_none()
    }

    /// The FEC scheme, from the header's codepoint.
    pub fn fec_encoding_id(&self) -> Result<FecEncodingId, AlcError> {
        FecEncodingId::try_from(self.header.codepoint)
    }

    /// The length in bytes that [`AlcPacket::encode`] writes.
    pub fn encoded_len(&self) -> Result<usize, AlcError> {
        let pid = if self.payload_id.is_some() {
            PayloadId::LEN
        } else {
            0
        };
        Ok(self.header.encoded_len()? + pid + self.symbols.len())
    }

    /// Writes the packet into `out`; returns its length. A packet without
    /// a payload id must close the session or the object and carry no
    /// symbols.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, AlcError> {
        let pid = match self.payload_id {
            Some(payload_id) => {
                let fec = self.fec_encoding_id()?;
                if fec != payload_id.fec_encoding_id() {
                    return Err(AlcError::PayloadIdMismatch {
                        codepoint: self.header.codepoint,
                    });
                }
                Some(payload_id.to_bytes()?)
            }
            None if (self.header.close_session || self.header.close_object)
                && self.symbols.is_empty() =>
            {
                None
            }
            None => return Err(AlcError::MissingPayloadId),
        };
        let needed = self.encoded_len()?;
        let available = out.len();
        let out = out
            .get_mut(..needed)
            .ok_or(AlcError::BufferTooSmall { needed, available })?;
        let mut at = self.header.encode(out)?;
        if let Some(pid) = pid {
            out[at..at + PayloadId::LEN].copy_from_slice(&pid);
            at += PayloadId::LEN;
        }
        out[at..].copy_from_slice(self.symbols);
        Ok(needed)
    }
}

impl From<PayloadId> for dms_fec::PayloadId {
    fn from(id: PayloadId) -> Self {
        dms_fec::PayloadId::new(id.sbn(), id.esi())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::lct::{Extension, Extensions, Fti, RaptorQFti};
    use proptest::prelude::*;

    #[test]
    fn raptorq_packet_bytes() {
        let fti = [Extension::Fti(Fti::RaptorQ(
            RaptorQFti::new(1_000_000, 1280, 1, 1, 4).unwrap(),
        ))];
        let mut header = LctHeader::new(1, 2, 6);
        header.extensions = Extensions::from_list(&fti);
        let pkt = AlcPacket {
            header,
            payload_id: Some(PayloadId::RaptorQ {
                sbn: 3,
                esi: 0x01_0203,
            }),
            symbols: b"abcd",
        };
        let mut buf = [0u8; 64];
        let n = pkt.encode(&mut buf).unwrap();
        let expected: &[u8] = &[
            0x10, 0x10, 7, 6, // V=1, H=1, HDR_LEN 7, CP 6
            0, 0, 0, 0, // CCI
            0, 1, 0, 2, // TSI 16 | TOI 16
            64, 4, 0x00, 0x00, 0x0f, 0x42, 0x40, 0, // F = 1e6, reserved
            0x05, 0x00, 1, 0, 1, 4, 0, 0, // T=1280 Z=1 N=1 Al=4 pad
            3, 1, 2, 3, // SBN 3, ESI 0x010203
            b'a', b'b', b'c', b'd',
        ];
        assert_eq!(&buf[..n], expected);
        assert_eq!(AlcPacket::decode(expected).unwrap(), pkt);
    }

    #[test]
    fn no_code_payload_id_bytes() {
        let pkt = AlcPacket {
            header: LctHeader::new(0, 0, 0),
            payload_id: Some(PayloadId::NoCode {
                sbn: 0x0102,
                esi: 0x0304,
            }),
            symbols: &[],
        };
        let mut buf = [0u8; 16];
        let n = pkt.encode(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[0x10, 0, 2, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(AlcPacket::decode(&buf[..n]).unwrap(), pkt);
    }

    #[test]
    fn rejects_unknown_codepoint_and_short_payload_id() {
        let bytes = [0x10, 0, 2, 2, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(
            AlcPacket::decode(&bytes),
            Err(AlcError::UnknownCodepoint(2))
        );
        let bytes = [0x10, 0, 2, 6, 0, 0, 0, 0, 1, 2, 3];
        assert_eq!(AlcPacket::decode(&bytes), Err(AlcError::TruncatedPayloadId));
    }

    #[test]
    fn encode_checks_payload_id() {
        let mut pkt = AlcPacket {
            header: LctHeader::new(0, 0, 6),
            payload_id: Some(PayloadId::NoCode { sbn: 0, esi: 0 }),
            symbols: &[],
        };
        let mut buf = [0u8; 16];
        assert_eq!(
            pkt.encode(&mut buf),
            Err(AlcError::PayloadIdMismatch { codepoint: 6 })
        );
        pkt.payload_id = Some(PayloadId::RaptorQ {
            sbn: 0,
            esi: 1 << 24,
        });
        assert_eq!(pkt.encode(&mut buf), Err(AlcError::EsiOutOfRange(1 << 24)));
        pkt.payload_id = Some(PayloadId::RaptorQ { sbn: 0, esi: 0 });
        assert!(matches!(
            pkt.encode(&mut buf[..11]),
            Err(AlcError::BufferTooSmall { needed: 12, .. })
        ));
        pkt.payload_id = None;
        assert_eq!(pkt.encode(&mut buf), Err(AlcError::MissingPayloadId));
        pkt.header.close_object = true;
        pkt.symbols = b"x";
        assert_eq!(pkt.encode(&mut buf), Err(AlcError::MissingPayloadId));
    }

    #[test]
    fn header_only_close_packets() {
        for (a, b, cp) in [(true, false, 6), (false, true, 0), (true, true, 1)] {
            let mut header = LctHeader::new(9, 3, cp);
            header.close_session = a;
            header.close_object = b;
            let pkt = AlcPacket {
                header,
                payload_id: None,
                symbols: &[],
            };
            let mut buf = [0u8; 16];
            let n = pkt.encode(&mut buf).unwrap();
            assert_eq!(n, 12);
            let parsed = AlcPacket::decode(&buf[..n]).unwrap();
            assert!(parsed.is_header_only());
            assert_eq!(parsed, pkt);
        }
        // Without a close flag, a header-only packet is still truncated.
        let bytes = [0x10, 0, 2, 6, 0, 0, 0, 0];
        assert_eq!(AlcPacket::decode(&bytes), Err(AlcError::TruncatedPayloadId));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = AlcPacket::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_plausible_headers(
            cp in prop_oneof![Just(0u8), Just(6u8)],
            b1 in any::<u8>(),
            hdr_len in 0u8..16,
            mut rest in proptest::collection::vec(any::<u8>(), 0..96),
        ) {
            rest.splice(0..0, [0x10, b1, hdr_len, cp]);
            if let Ok(pkt) = AlcPacket::decode(&rest) {
                // Whatever parses, writes again.
                let mut out = vec![0u8; rest.len() + 64];
                let n = pkt.encode(&mut out).unwrap();
                prop_assert_eq!(AlcPacket::decode(&out[..n]).unwrap(), pkt);
            }
        }

        #[test]
        fn round_trip(
            raptorq in any::<bool>(),
            sbn in any::<u16>(),
            esi in any::<u32>(),
            tsi in 0u64..=LctHeader::MAX_TSI,
            toi in any::<u128>(),
            symbols in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let payload_id = if raptorq {
                PayloadId::RaptorQ { sbn: sbn as u8, esi: esi & PayloadId::MAX_RAPTORQ_ESI }
            } else {
                PayloadId::NoCode { sbn, esi: esi as u16 }
            };
            let pkt = AlcPacket {
                header: LctHeader::new(tsi, toi & LctHeader::MAX_TOI, payload_id.fec_encoding_id().id()),
                payload_id: Some(payload_id),
                symbols: &symbols,
            };
            let mut out = vec![0u8; pkt.encoded_len().unwrap()];
            let n = pkt.encode(&mut out).unwrap();
            prop_assert_eq!(n, out.len());
            prop_assert_eq!(AlcPacket::decode(&out).unwrap(), pkt);
        }
    }
}
