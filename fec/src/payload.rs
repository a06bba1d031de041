//! FEC Payload ID: which symbol of which block an ALC packet carries.
//!
//! ```text
//! RaptorQ (RFC 6330 §3.2):      | SBN (8) |          ESI (24)          |
//! Compact No-Code (RFC 5445):   |      SBN (16)     |     ESI (16)     |
//! Raptor (RFC 5053 §3.1):        |      SBN (16)     |     ESI (16)     |
//! ```

use crate::FecScheme;
use crate::error::SymbolError;

/// Bytes of the FEC Payload ID for every scheme.
pub const PAYLOAD_ID_LEN: usize = 4;

/// A source block number and encoding symbol id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayloadId {
    /// Source block number (SBN).
    pub sbn: u32,
    /// Encoding symbol id (ESI): below K a source symbol, from K a repair symbol.
    pub esi: u32,
}

impl PayloadId {
    /// A payload id.
    pub const fn new(sbn: u32, esi: u32) -> Self {
        PayloadId { sbn, esi }
    }

    /// Reads the payload id from the first four bytes of `bytes`.
    pub fn decode(scheme: FecScheme, bytes: &[u8]) -> Result<Self, SymbolError> {
        let b: [u8; PAYLOAD_ID_LEN] = bytes
            .get(..PAYLOAD_ID_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(SymbolError::PayloadIdLength(bytes.len()))?;
        Ok(match scheme {
            FecScheme::RaptorQ => {
                PayloadId::new(u32::from(b[0]), u32::from_be_bytes([0, b[1], b[2], b[3]]))
            }
            FecScheme::NoCode | FecScheme::Raptor => PayloadId::new(
                u32::from(u16::from_be_bytes([b[0], b[1]])),
                u32::from(u16::from_be_bytes([b[2], b[3]])),
            ),
        })
    }

    /// The wire form; fails if SBN or ESI do not fit the scheme's fields.
    pub fn encode(self, scheme: FecScheme) -> Result<[u8; PAYLOAD_ID_LEN], SymbolError> {
        let esi_limit = scheme.esi_limit();
        // The SBN field's width, whatever Z allows (RaptorQ's Z ≤ 255 and
        // Raptor's Z ≤ 65535 leave one value of the field unused).
        let sbn_limit = match scheme {
            FecScheme::RaptorQ => 1 << 8,
            FecScheme::NoCode | FecScheme::Raptor => 1 << 16,
        };
        if self.sbn >= sbn_limit {
            return Err(SymbolError::SourceBlockNumber {
                sbn: self.sbn,
                blocks: sbn_limit,
            });
        }
        if self.esi >= esi_limit {
            return Err(SymbolError::EncodingSymbolId {
                sbn: self.sbn,
                esi: self.esi,
                limit: esi_limit,
            });
        }
        Ok(match scheme {
            FecScheme::RaptorQ => {
                let esi = self.esi.to_be_bytes();
                [self.sbn as u8, esi[1], esi[2], esi[3]]
            }
            FecScheme::NoCode | FecScheme::Raptor => {
                let sbn = (self.sbn as u16).to_be_bytes();
                let esi = (self.esi as u16).to_be_bytes();
                [sbn[0], sbn[1], esi[0], esi[1]]
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn byte_layouts() {
        let id = PayloadId::new(0x12, 0x03_4567);
        assert_eq!(
            id.encode(FecScheme::RaptorQ).unwrap(),
            [0x12, 0x03, 0x45, 0x67]
        );
        let id = PayloadId::new(0x1234, 0x5678);
        assert_eq!(
            id.encode(FecScheme::NoCode).unwrap(),
            [0x12, 0x34, 0x56, 0x78]
        );
        assert_eq!(
            id.encode(FecScheme::Raptor).unwrap(),
            [0x12, 0x34, 0x56, 0x78]
        );
        assert!(
            PayloadId::new(1 << 16, 0)
                .encode(FecScheme::Raptor)
                .is_err()
        );
        assert!(
            PayloadId::new(0, 1 << 16)
                .encode(FecScheme::Raptor)
                .is_err()
        );
        assert!(PayloadId::new(256, 0).encode(FecScheme::RaptorQ).is_err());
        assert!(
            PayloadId::new(0, 1 << 24)
                .encode(FecScheme::RaptorQ)
                .is_err()
        );
        assert!(
            PayloadId::new(0, 1 << 16)
                .encode(FecScheme::NoCode)
                .is_err()
        );
        assert_eq!(
            PayloadId::decode(FecScheme::NoCode, &[1, 2, 3]),
            Err(SymbolError::PayloadIdLength(3))
        );
    }

    proptest! {
        #[test]
        fn round_trip(bytes in any::<[u8; 4]>()) {
            for scheme in [FecScheme::RaptorQ, FecScheme::NoCode, FecScheme::Raptor] {
                let id = PayloadId::decode(scheme, &bytes).unwrap();
                prop_assert_eq!(id.encode(scheme).unwrap(), bytes);
            }
        }
    }
}
