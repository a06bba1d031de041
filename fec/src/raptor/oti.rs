//! The RFC 5053 §3.2.3 FEC OTI and the §5.3.1.2 partition.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Transfer Length (F)                      |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |           Reserved            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    Encoding Symbol Length (T) |   Source blocks (Z)           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Sub-blocks N |   Al          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::FecScheme;
use crate::error::OtiError;
use crate::layout::{Layout, partition};

/// Bytes of an encoded Raptor OTI (common 10 + scheme-specific 4).
pub const RAPTOR_OTI_LEN: usize = 14;
/// Fewest source symbols in a block: J(K) starts at K = 4 (RFC 5053 §5.7).
pub const RAPTOR_MIN_SOURCE_SYMBOLS: u32 = 4;
/// Most source symbols in a block: J(K) ends at K = 8192 (RFC 5053 §5.7).
pub const RAPTOR_MAX_SOURCE_SYMBOLS: u32 = 8192;

/// A validated Raptor OTI: every block has 4…8192 source symbols, T is a
/// multiple of Al and 1 ≤ N ≤ T/Al.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RaptorOti {
    transfer_length: u64,
    symbol_size: u16,
    source_blocks: u16,
    sub_blocks: u8,
    alignment: u8,
}

impl RaptorOti {
    /// The OTI from its fields, checked against RFC 5053's limits.
    pub fn new(
        transfer_length: u64,
        symbol_size: u16,
        source_blocks: u16,
        sub_blocks: u8,
        alignment: u8,
    ) -> Result<Self, OtiError> {
        if transfer_length == 0 {
            return Err(OtiError::EmptyObject);
        }
        // F is a 48-bit field.
        let max = (1u64 << 48) - 1;
        if transfer_length > max {
            return Err(OtiError::TransferLengthTooLarge {
                length: transfer_length,
                max,
            });
        }
        if symbol_size == 0 {
            return Err(OtiError::ZeroSymbolSize);
        }
        if alignment == 0 {
            return Err(OtiError::ZeroAlignment);
        }
        if !symbol_size.is_multiple_of(u16::from(alignment)) {
            return Err(OtiError::Misaligned {
                symbol_size,
                alignment,
            });
        }
        if sub_blocks == 0 || u16::from(sub_blocks) > symbol_size / u16::from(alignment) {
            return Err(OtiError::SubBlocks(u16::from(sub_blocks)));
        }
        let total = transfer_length.div_ceil(u64::from(symbol_size));
        let z = u64::from(source_blocks);
        if z == 0 {
            return Err(OtiError::SourceBlocks {
                blocks: 0,
                max: u32::from(u16::MAX),
            });
        }
        let (kl, ks, _, _) = partition(total, z);
        if kl > u64::from(RAPTOR_MAX_SOURCE_SYMBOLS) {
            return Err(OtiError::BlockTooLarge {
                symbols: kl,
                max: RAPTOR_MAX_SOURCE_SYMBOLS,
            });
        }
        if ks < u64::from(RAPTOR_MIN_SOURCE_SYMBOLS) {
            return Err(OtiError::EmptyBlock {
                blocks: u32::from(source_blocks),
                symbols: total,
            });
        }
        Ok(RaptorOti {
            transfer_length,
            symbol_size,
            source_blocks,
            sub_blocks,
            alignment,
        })
    }

    /// A value whose fields were validated by [`RaptorOti::new`] before.
    pub(crate) fn from_validated(
        transfer_length: u64,
        symbol_size: u16,
        source_blocks: u16,
        sub_blocks: u8,
        alignment: u8,
    ) -> Self {
        RaptorOti {
            transfer_length,
            symbol_size,
            source_blocks,
            sub_blocks,
            alignment,
        }
    }

    /// Plans an object: N = 1, Al = `alignment`, the fewest blocks of at
    /// most `max_block_symbols` (clamped to 4…8192) symbols of `symbol_size`
    /// bytes; T shrinks (in steps of Al) when the object has fewer than four
    /// symbols of that size.
    pub fn for_object(
        transfer_length: u64,
        symbol_size: u16,
        max_block_symbols: u32,
        alignment: u8,
    ) -> Result<Self, OtiError> {
        let al = u64::from(alignment.max(1));
        let mut t = u64::from(symbol_size);
        if transfer_length.div_ceil(t.max(1)) < u64::from(RAPTOR_MIN_SOURCE_SYMBOLS) {
            t = (transfer_length / u64::from(RAPTOR_MIN_SOURCE_SYMBOLS)) / al * al;
        }
        let t = u16::try_from(t.max(al)).map_err(|_| OtiError::ZeroSymbolSize)?;
        let total = transfer_length.div_ceil(u64::from(t));
        let max_k = u64::from(
            max_block_symbols.clamp(RAPTOR_MIN_SOURCE_SYMBOLS, RAPTOR_MAX_SOURCE_SYMBOLS),
        );
        // At most Kt/4 blocks, so every block keeps K ≥ 4 (blocks then
        // grow past `max_block_symbols`, which happens only below 8).
        let z = total
            .div_ceil(max_k)
            .min(total / u64::from(RAPTOR_MIN_SOURCE_SYMBOLS))
            .max(1);
        let z = u16::try_from(z).map_err(|_| OtiError::SourceBlocks {
            blocks: z.min(u64::from(u32::MAX)) as u32,
            max: u32::from(u16::MAX),
        })?;
        RaptorOti::new(transfer_length, t, z, 1, alignment)
    }

    /// Decodes the 14-byte OTI (reserved bits ignored).
    pub fn decode(bytes: &[u8]) -> Result<Self, OtiError> {
        let b: &[u8; RAPTOR_OTI_LEN] = bytes.try_into().map_err(|_| OtiError::Length {
            expected: RAPTOR_OTI_LEN,
            actual: bytes.len(),
        })?;
        let f = u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]);
        let t = u16::from_be_bytes([b[8], b[9]]);
        let z = u16::from_be_bytes([b[10], b[11]]);
        RaptorOti::new(f, t, z, b[12], b[13])
    }

    /// The 14-byte wire form (EXT_FTI body and FDT attributes).
    pub fn encode(&self) -> [u8; RAPTOR_OTI_LEN] {
        let mut buf = [0u8; RAPTOR_OTI_LEN];
        buf[..6].copy_from_slice(&self.transfer_length.to_be_bytes()[2..]);
        buf[8..10].copy_from_slice(&self.symbol_size.to_be_bytes());
        buf[10..].copy_from_slice(&self.scheme_specific_info());
        buf
    }

    /// The FDT's `FEC-OTI-Scheme-Specific-Info` bytes: Z(16) N(8) Al(8).
    pub fn scheme_specific_info(&self) -> [u8; 4] {
        let z = self.source_blocks.to_be_bytes();
        [z[0], z[1], self.sub_blocks, self.alignment]
    }

    /// Transfer length F.
    pub fn transfer_length(&self) -> u64 {
        self.transfer_length
    }

    /// Encoding symbol length T.
    pub fn symbol_size(&self) -> u16 {
        self.symbol_size
    }

    /// Number of source blocks Z.
    pub fn source_blocks(&self) -> u16 {
        self.source_blocks
    }

    /// Number of sub-blocks N.
    pub fn sub_blocks(&self) -> u8 {
        self.sub_blocks
    }

    /// Symbol alignment Al.
    pub fn alignment(&self) -> u8 {
        self.alignment
    }

    /// `(KL, KS, ZL, ZS)` = Partition[ceil(F/T), Z]: the first ZL blocks
    /// have KL source symbols, the other ZS have KS.
    pub fn block_partition(&self) -> (u32, u32, u32, u32) {
        let total = self.transfer_length.div_ceil(u64::from(self.symbol_size));
        let (kl, ks, zl, zs) = partition(total, u64::from(self.source_blocks));
        // Validated: K ≤ 8192, Z ≤ 65535.
        (kl as u32, ks as u32, zl as u32, zs as u32)
    }

    /// Source symbols K of block `sbn`, or `None` past the last block.
    pub fn source_symbols(&self, sbn: u32) -> Option<u32> {
        let (kl, ks, zl, _) = self.block_partition();
        if sbn >= u32::from(self.source_blocks) {
            None
        } else if sbn < zl {
            Some(kl)
        } else {
            Some(ks)
        }
    }

    /// Sub-symbol sizes in bytes of the N sub-blocks: `(TL, TS, NL, NS)` =
    /// Partition[T/Al, N], the first NL of TL·Al bytes, the rest TS·Al.
    pub fn sub_symbol_sizes(&self) -> Vec<usize> {
        super::codec::sub_symbol_sizes(self.symbol_size, self.sub_blocks, self.alignment)
    }

    /// The block structure: Partition[Kt, Z] of §5.3.1.2 (the partition
    /// every scheme of this crate uses) with N sub-blocks of alignment Al.
    pub fn layout(&self) -> Layout {
        Layout::new(
            FecScheme::Raptor,
            self.transfer_length,
            self.symbol_size,
            u32::from(self.source_blocks),
        )
        .with_sub_blocks(self.sub_blocks, self.alignment)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bytes_match_rfc_5053_layout() {
        let oti = RaptorOti::new(0x0102_0304_0506, 1024, u16::MAX, 1, 4);
        // 0x0102_0304_0506 / 1024 symbols over 65535 blocks is > 8192 each.
        assert!(matches!(oti, Err(OtiError::BlockTooLarge { .. })));
        let oti = RaptorOti::new(1_000_000, 1024, 3, 2, 4).unwrap();
        let bytes = oti.encode();
        assert_eq!(&bytes[..6], &1_000_000u64.to_be_bytes()[2..]);
        assert_eq!(&bytes[6..8], &[0, 0]);
        assert_eq!(&bytes[8..10], &1024u16.to_be_bytes());
        assert_eq!(&bytes[10..], &[0, 3, 2, 4]);
        assert_eq!(RaptorOti::decode(&bytes).unwrap(), oti);
        let mut reserved = bytes;
        reserved[6] = 0xFF;
        assert_eq!(RaptorOti::decode(&reserved).unwrap(), oti);
    }

    #[test]
    fn partition_follows_section_5_3_1_2() {
        // Kt = ceil(1_000_000 / 1024) = 977 over Z = 3: 326, 326, 325.
        let oti = RaptorOti::new(1_000_000, 1024, 3, 3, 4).unwrap();
        assert_eq!(oti.block_partition(), (326, 325, 2, 1));
        assert_eq!(oti.source_symbols(2), Some(325));
        assert_eq!(oti.source_symbols(3), None);
        // T/Al = 256 units over N = 3: 86, 85, 85 units of 4 bytes.
        assert_eq!(oti.sub_symbol_sizes(), vec![344, 340, 340]);
        assert_eq!(oti.sub_symbol_sizes().iter().sum::<usize>(), 1024);
    }

    #[test]
    fn limits_are_rfc_5053s() {
        assert!(matches!(
            RaptorOti::new(3 * 1024, 1024, 1, 1, 4),
            Err(OtiError::EmptyBlock { .. })
        ));
        assert!(RaptorOti::new(4 * 1024, 1024, 1, 1, 4).is_ok());
        assert!(RaptorOti::new(8192 * 4, 4, 1, 1, 4).is_ok());
        assert!(matches!(
            RaptorOti::new(8193 * 4, 4, 1, 1, 4),
            Err(OtiError::BlockTooLarge { .. })
        ));
        assert_eq!(
            RaptorOti::new(100, 10, 1, 1, 4),
            Err(OtiError::Misaligned {
                symbol_size: 10,
                alignment: 4
            })
        );
        assert_eq!(RaptorOti::new(100, 8, 1, 3, 4), Err(OtiError::SubBlocks(3)));
        assert!(matches!(
            RaptorOti::decode(&[0; 12]),
            Err(OtiError::Length { .. })
        ));
        // A 10-byte object is cut into symbols of 2 bytes (Al = 1).
        let oti = RaptorOti::for_object(10, 1024, 8192, 1).unwrap();
        assert_eq!(oti.symbol_size(), 2);
        assert!(RaptorOti::for_object(3, 1024, 8192, 1).is_err());
        let oti = RaptorOti::for_object(64 << 20, 1024, 1024, 4).unwrap();
        assert_eq!(oti.source_blocks(), 64);
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(oti) = RaptorOti::decode(&bytes) {
                prop_assert_eq!(RaptorOti::decode(&oti.encode()).unwrap(), oti);
                let (kl, ks, zl, zs) = oti.block_partition();
                prop_assert!((4..=8192).contains(&ks) && kl <= 8192);
                prop_assert_eq!(u64::from(kl) * u64::from(zl) + u64::from(ks) * u64::from(zs),
                                oti.transfer_length().div_ceil(u64::from(oti.symbol_size())));
            }
        }
    }
}
