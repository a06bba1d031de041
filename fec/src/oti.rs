//! FEC Object Transmission Information: the parameters a receiver needs to
//! decode an object, as carried in EXT_FTI and the FDT.
//!
//! RaptorQ (RFC 6330 §3.3.2–3.3.3), 12 bytes:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Transfer Length (F)                      |
//! +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               |    Reserved   |        Symbol Size (T)        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |       Z       |              N                |       Al      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Compact No-Code (RFC 5445 §3.2.2), 14 bytes:
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      Transfer Length (48)                     |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |        Reserved (16)          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    Encoding Symbol Length     |  Max Source Block Length (32) |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::FecScheme;
use crate::error::OtiError;
use crate::layout::Layout;
use crate::raptor::{RAPTOR_OTI_LEN, RaptorOti};

/// Bytes of an encoded RaptorQ OTI.
pub const RAPTORQ_OTI_LEN: usize = 12;
/// Bytes of an encoded Compact No-Code OTI.
pub const NO_CODE_OTI_LEN: usize = 14;
/// The default target size of a source block: about 1 MiB.
pub const DEFAULT_BLOCK_BYTES: u64 = 1 << 20;
/// The default symbol alignment (Al) for RaptorQ.
pub const DEFAULT_ALIGNMENT: u8 = 4;

/// How large source blocks should be when planning an object's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockSize {
    /// At most this many bytes per block (rounded down to whole symbols).
    Bytes(u64),
    /// At most this many source symbols per block.
    Symbols(u32),
}

impl Default for BlockSize {
    fn default() -> Self {
        BlockSize::Bytes(DEFAULT_BLOCK_BYTES)
    }
}

/// Validated FEC Object Transmission Information.
///
/// Every constructor checks the parameters against the scheme's limits, so
/// an `Oti` always describes a decodable object and [`Oti::layout`] cannot
/// fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Oti {
    transfer_length: u64,
    symbol_size: u16,
    params: SchemeParams,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SchemeParams {
    RaptorQ {
        source_blocks: u8,
        alignment: u8,
    },
    NoCode {
        max_source_block_length: u32,
    },
    Raptor {
        source_blocks: u16,
        sub_blocks: u8,
        alignment: u8,
    },
}

/// An encoded OTI: up to 14 bytes, without allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OtiBytes {
    buf: [u8; NO_CODE_OTI_LEN],
    len: u8,
}

impl std::ops::Deref for OtiBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

fn check_common(
    scheme: FecScheme,
    transfer_length: u64,
    symbol_size: u16,
) -> Result<u64, OtiError> {
    if transfer_length == 0 {
        return Err(OtiError::EmptyObject);
    }
    if transfer_length > scheme.max_transfer_length() {
        return Err(OtiError::TransferLengthTooLarge {
            length: transfer_length,
            max: scheme.max_transfer_length(),
        });
    }
    if symbol_size == 0 {
        return Err(OtiError::ZeroSymbolSize);
    }
    Ok(transfer_length.div_ceil(u64::from(symbol_size)))
}

fn check_blocks(scheme: FecScheme, total_symbols: u64, blocks: u64) -> Result<(), OtiError> {
    let max_blocks = scheme.max_source_blocks();
    if blocks == 0 || blocks > u64::from(max_blocks) {
        return Err(OtiError::SourceBlocks {
            blocks: blocks.min(u64::from(u32::MAX)) as u32,
            max: max_blocks,
        });
    }
    if blocks > total_symbols {
        return Err(OtiError::EmptyBlock {
            blocks: blocks as u32,
            symbols: total_symbols,
        });
    }
    let largest = total_symbols.div_ceil(blocks);
    if largest > u64::from(scheme.max_source_symbols()) {
        return Err(OtiError::BlockTooLarge {
            symbols: largest,
            max: scheme.max_source_symbols(),
        });
    }
    Ok(())
}

impl Oti {
    /// RaptorQ OTI from its fields. `sub_blocks` (N) must be 1: dms neither
    /// sends nor decodes sub-blocked objects.
    pub fn raptorq(
        transfer_length: u64,
        symbol_size: u16,
        source_blocks: u32,
        sub_blocks: u16,
        alignment: u8,
    ) -> Result<Self, OtiError> {
        let scheme = FecScheme::RaptorQ;
        let total_symbols = check_common(scheme, transfer_length, symbol_size)?;
        if alignment == 0 {
            return Err(OtiError::ZeroAlignment);
        }
        if !symbol_size.is_multiple_of(u16::from(alignment)) {
            return Err(OtiError::Misaligned {
                symbol_size,
                alignment,
            });
        }
        check_blocks(scheme, total_symbols, u64::from(source_blocks))?;
        if sub_blocks != 1 {
            return Err(OtiError::SubBlocks(sub_blocks));
        }
        Ok(Oti {
            transfer_length,
            symbol_size,
            // check_blocks bounded it to 1..=255.
            params: SchemeParams::RaptorQ {
                source_blocks: source_blocks as u8,
                alignment,
            },
        })
    }

    /// Raptor (RFC 5053) OTI from its fields: every block must hold 4 to
    /// 8192 source symbols, T be a multiple of Al and 1 ≤ N ≤ T/Al.
    pub fn raptor(
        transfer_length: u64,
        symbol_size: u16,
        source_blocks: u32,
        sub_blocks: u8,
        alignment: u8,
    ) -> Result<Self, OtiError> {
        let z = u16::try_from(source_blocks).map_err(|_| OtiError::SourceBlocks {
            blocks: source_blocks,
            max: FecScheme::Raptor.max_source_blocks(),
        })?;
        RaptorOti::new(transfer_length, symbol_size, z, sub_blocks, alignment).map(Oti::from)
    }

    /// The Raptor OTI, or `None` for the other schemes.
    pub fn raptor_oti(&self) -> Option<RaptorOti> {
        match self.params {
            SchemeParams::Raptor {
                source_blocks,
                sub_blocks,
                alignment,
            } => Some(RaptorOti::from_validated(
                self.transfer_length,
                self.symbol_size,
                source_blocks,
                sub_blocks,
                alignment,
            )),
            _ => None,
        }
    }

    /// Compact No-Code OTI from its fields.
    pub fn no_code(
        transfer_length: u64,
        symbol_size: u16,
        max_source_block_length: u32,
    ) -> Result<Self, OtiError> {
        let scheme = FecScheme::NoCode;
        let total_symbols = check_common(scheme, transfer_length, symbol_size)?;
        if max_source_block_length == 0 {
            return Err(OtiError::ZeroBlockLength);
        }
        let blocks = total_symbols.div_ceil(u64::from(max_source_block_length));
        check_blocks(scheme, total_symbols, blocks)?;
        Ok(Oti {
            transfer_length,
            symbol_size,
            params: SchemeParams::NoCode {
                max_source_block_length,
            },
        })
    }

    /// Plans an object: the fewest blocks of at most `block_size`, N = 1 and
    /// Al = 4. When the object is too large for RaptorQ's 255 blocks at that
    /// size, blocks grow (up to K = 56403 symbols) rather than failing.
    /// Raptor blocks hold 4 to 8192 symbols; an object of fewer than four
    /// symbols gets a smaller T (RFC 5053 §4.2), and one of 12 bytes or
    /// less (fewer than four symbols of Al = 4 bytes) cannot be Raptor-coded.
    pub fn for_object(
        scheme: FecScheme,
        transfer_length: u64,
        symbol_size: u16,
        block_size: BlockSize,
    ) -> Result<Self, OtiError> {
        let total_symbols = check_common(scheme, transfer_length, symbol_size)?;
        let wanted = match block_size {
            BlockSize::Bytes(bytes) => bytes / u64::from(symbol_size),
            BlockSize::Symbols(symbols) => u64::from(symbols),
        };
        let max_k = wanted.clamp(1, u64::from(scheme.max_source_symbols()));
        match scheme {
            FecScheme::Raptor => RaptorOti::for_object(
                transfer_length,
                symbol_size,
                max_k as u32,
                DEFAULT_ALIGNMENT,
            )
            .map(Oti::from),
            FecScheme::RaptorQ => {
                let blocks = total_symbols
                    .div_ceil(max_k)
                    .min(u64::from(scheme.max_source_blocks()));
                Oti::raptorq(
                    transfer_length,
                    symbol_size,
                    blocks as u32,
                    1,
                    DEFAULT_ALIGNMENT,
                )
            }
            FecScheme::NoCode => {
                // Balance the blocks as RaptorQ does: B = ceil(Kt / Z).
                let blocks = total_symbols.div_ceil(max_k);
                let balanced = total_symbols.div_ceil(blocks.max(1));
                Oti::no_code(
                    transfer_length,
                    symbol_size,
                    balanced.min(u64::from(u32::MAX)) as u32,
                )
            }
        }
    }

    /// Decodes the OTI of `scheme` from exactly its encoded bytes.
    pub fn decode(scheme: FecScheme, bytes: &[u8]) -> Result<Self, OtiError> {
        match scheme {
            FecScheme::Raptor => RaptorOti::decode(bytes).map(Oti::from),
            FecScheme::RaptorQ => {
                let b: &[u8; RAPTORQ_OTI_LEN] = bytes.try_into().map_err(|_| OtiError::Length {
                    expected: RAPTORQ_OTI_LEN,
                    actual: bytes.len(),
                })?;
                let f = u64::from_be_bytes([0, 0, 0, b[0], b[1], b[2], b[3], b[4]]);
                let t = u16::from_be_bytes([b[6], b[7]]);
                let n = u16::from_be_bytes([b[9], b[10]]);
                Oti::raptorq(f, t, u32::from(b[8]), n, b[11])
            }
            FecScheme::NoCode => {
                let b: &[u8; NO_CODE_OTI_LEN] = bytes.try_into().map_err(|_| OtiError::Length {
                    expected: NO_CODE_OTI_LEN,
                    actual: bytes.len(),
                })?;
                let f = u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]);
                let t = u16::from_be_bytes([b[8], b[9]]);
                let max_k = u32::from_be_bytes([b[10], b[11], b[12], b[13]]);
                Oti::no_code(f, t, max_k)
            }
        }
    }

    /// The encoded OTI (12 bytes for RaptorQ, 14 for no-code and Raptor).
    pub fn encode(&self) -> OtiBytes {
        let mut buf = [0u8; NO_CODE_OTI_LEN];
        let f = self.transfer_length.to_be_bytes();
        let t = self.symbol_size.to_be_bytes();
        let len = match self.params {
            SchemeParams::RaptorQ {
                source_blocks,
                alignment,
            } => {
                buf[..5].copy_from_slice(&f[3..]);
                buf[6..8].copy_from_slice(&t);
                buf[8] = source_blocks;
                buf[9..11].copy_from_slice(&1u16.to_be_bytes());
                buf[11] = alignment;
                RAPTORQ_OTI_LEN
            }
            SchemeParams::NoCode {
                max_source_block_length,
            } => {
                buf[..6].copy_from_slice(&f[2..]);
                buf[8..10].copy_from_slice(&t);
                buf[10..14].copy_from_slice(&max_source_block_length.to_be_bytes());
                NO_CODE_OTI_LEN
            }
            SchemeParams::Raptor { .. } => {
                let raptor = self.raptor_oti().map(|o| o.encode()).unwrap_or_default();
                buf.copy_from_slice(&raptor);
                RAPTOR_OTI_LEN
            }
        };
        OtiBytes {
            buf,
            len: len as u8,
        }
    }

    /// The FEC scheme.
    pub fn scheme(&self) -> FecScheme {
        match self.params {
            SchemeParams::RaptorQ { .. } => FecScheme::RaptorQ,
            SchemeParams::NoCode { .. } => FecScheme::NoCode,
            SchemeParams::Raptor { .. } => FecScheme::Raptor,
        }
    }

    /// Transfer length F in bytes.
    pub fn transfer_length(&self) -> u64 {
        self.transfer_length
    }

    /// Symbol size T in bytes.
    pub fn symbol_size(&self) -> u16 {
        self.symbol_size
    }

    /// Number of source blocks Z.
    pub fn source_blocks(&self) -> u32 {
        self.layout().block_count()
    }

    /// Number of sub-blocks N (1 except for sub-blocked Raptor objects).
    pub fn sub_blocks(&self) -> u16 {
        match self.params {
            SchemeParams::Raptor { sub_blocks, .. } => u16::from(sub_blocks),
            _ => 1,
        }
    }

    /// Symbol alignment Al (RaptorQ, Raptor), or `None` for no-code.
    pub fn alignment(&self) -> Option<u8> {
        match self.params {
            SchemeParams::RaptorQ { alignment, .. } | SchemeParams::Raptor { alignment, .. } => {
                Some(alignment)
            }
            SchemeParams::NoCode { .. } => None,
        }
    }

    /// Maximum source block length in symbols: the FDT's
    /// `FEC-OTI-Maximum-Source-Block-Length`.
    pub fn max_source_block_length(&self) -> u32 {
        match self.params {
            SchemeParams::RaptorQ { .. } | SchemeParams::Raptor { .. } => {
                self.layout().max_block_symbols()
            }
            SchemeParams::NoCode {
                max_source_block_length,
            } => max_source_block_length,
        }
    }

    /// The FDT's `FEC-OTI-Scheme-Specific-Info` bytes (before base64):
    /// Z(8) N(16) Al(8) for RaptorQ, Z(16) N(8) Al(8) for Raptor, `None`
    /// for no-code.
    pub fn scheme_specific_info(&self) -> Option<[u8; 4]> {
        match self.params {
            SchemeParams::RaptorQ {
                source_blocks,
                alignment,
            } => Some([source_blocks, 0, 1, alignment]),
            SchemeParams::Raptor { .. } => self.raptor_oti().map(|o| o.scheme_specific_info()),
            SchemeParams::NoCode { .. } => None,
        }
    }

    /// The block structure this OTI describes.
    pub fn layout(&self) -> Layout {
        if let Some(raptor) = self.raptor_oti() {
            return raptor.layout();
        }
        let blocks = match self.params {
            SchemeParams::Raptor { source_blocks, .. } => u32::from(source_blocks),
            SchemeParams::RaptorQ { source_blocks, .. } => u32::from(source_blocks),
            SchemeParams::NoCode {
                max_source_block_length,
            } => {
                let total = self.transfer_length.div_ceil(u64::from(self.symbol_size));
                // Validated: at most 2^16 blocks.
                total.div_ceil(u64::from(max_source_block_length)) as u32
            }
        };
        Layout::new(
            self.scheme(),
            self.transfer_length,
            self.symbol_size,
            blocks,
        )
    }
}

impl From<RaptorOti> for Oti {
    fn from(oti: RaptorOti) -> Self {
        Oti {
            transfer_length: oti.transfer_length(),
            symbol_size: oti.symbol_size(),
            params: SchemeParams::Raptor {
                source_blocks: oti.source_blocks(),
                sub_blocks: oti.sub_blocks(),
                alignment: oti.alignment(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn raptorq_bytes_match_rfc_layout() {
        let oti = Oti::raptorq(0x00_0010_0405, 1280, 17, 1, 4).unwrap();
        assert_eq!(
            &*oti.encode(),
            &[0, 0, 0x10, 4, 5, 0, 0x05, 0x00, 17, 0, 1, 4]
        );
        assert_eq!(Oti::decode(FecScheme::RaptorQ, &oti.encode()).unwrap(), oti);
        assert_eq!(oti.scheme_specific_info(), Some([17, 0, 1, 4]));
    }

    #[test]
    fn raptor_bytes_match_rfc_5053_layout() {
        let oti = Oti::raptor(0x0000_1000_0405, 1280, 0x0102, 2, 4).unwrap();
        assert_eq!(
            &*oti.encode(),
            &[0, 0, 0x10, 0, 4, 5, 0, 0, 0x05, 0x00, 0x01, 0x02, 2, 4]
        );
        assert_eq!(Oti::decode(FecScheme::Raptor, &oti.encode()).unwrap(), oti);
        assert_eq!(oti.scheme_specific_info(), Some([0x01, 0x02, 2, 4]));
        assert_eq!((oti.sub_blocks(), oti.alignment()), (2, Some(4)));
        assert_eq!(oti.source_blocks(), 0x0102);
        assert_eq!(oti.layout().sub_blocks(), 2);
        assert!(Oti::raptor(1 << 30, 1024, 1 << 16, 1, 4).is_err());
        // Planned: N = 1, Al = 4, blocks of at most 8192 symbols, at least 4.
        let oti =
            Oti::for_object(FecScheme::Raptor, 1 << 30, 1024, BlockSize::Symbols(60_000)).unwrap();
        assert_eq!(oti.layout().max_block_symbols(), 8192);
        assert_eq!(oti.source_blocks(), 128);
        let oti =
            Oti::for_object(FecScheme::Raptor, 5 * 1024, 1024, BlockSize::Symbols(4)).unwrap();
        assert_eq!(oti.source_blocks(), 1);
        let oti = Oti::for_object(FecScheme::Raptor, 100, 1024, BlockSize::default()).unwrap();
        assert_eq!(oti.symbol_size(), 24);
        assert!(Oti::for_object(FecScheme::Raptor, 12, 1024, BlockSize::default()).is_err());
        assert_eq!(
            Oti::for_object(FecScheme::Raptor, 13, 1024, BlockSize::default())
                .unwrap()
                .symbol_size(),
            4
        );
    }

    #[test]
    fn no_code_bytes_match_rfc_layout() {
        let oti = Oti::no_code(0x0102_0304_0506, 1400, 0x0000_0100).unwrap_err();
        assert!(matches!(oti, OtiError::SourceBlocks { .. }));
        let oti = Oti::no_code(1_000_000, 1400, 64).unwrap();
        let bytes = oti.encode();
        assert_eq!(bytes.len(), NO_CODE_OTI_LEN);
        assert_eq!(&bytes[..6], &1_000_000u64.to_be_bytes()[2..]);
        assert_eq!(&bytes[8..10], &1400u16.to_be_bytes());
        assert_eq!(&bytes[10..], &64u32.to_be_bytes());
        assert_eq!(Oti::decode(FecScheme::NoCode, &bytes).unwrap(), oti);
        assert_eq!(oti.layout().block_count(), 12);
    }

    #[test]
    fn reserved_bits_are_ignored_on_input() {
        let oti = Oti::raptorq(100_000, 1280, 2, 1, 4).unwrap();
        let mut bytes = oti.encode().to_vec();
        bytes[5] = 0xFF;
        assert_eq!(Oti::decode(FecScheme::RaptorQ, &bytes).unwrap(), oti);
        let oti = Oti::no_code(100_000, 1280, 100).unwrap();
        let mut bytes = oti.encode().to_vec();
        bytes[6] = 0xAB;
        assert_eq!(Oti::decode(FecScheme::NoCode, &bytes).unwrap(), oti);
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        use OtiError::*;
        assert_eq!(Oti::raptorq(0, 1280, 1, 1, 4), Err(EmptyObject));
        assert_eq!(Oti::raptorq(100, 0, 1, 1, 4), Err(ZeroSymbolSize));
        assert_eq!(Oti::raptorq(100, 1280, 1, 1, 0), Err(ZeroAlignment));
        assert_eq!(
            Oti::raptorq(100, 1282, 1, 1, 4),
            Err(Misaligned {
                symbol_size: 1282,
                alignment: 4
            })
        );
        assert!(matches!(
            Oti::raptorq(100, 1280, 0, 1, 4),
            Err(SourceBlocks { .. })
        ));
        assert!(matches!(
            Oti::raptorq(1 << 30, 1280, 256, 1, 4),
            Err(SourceBlocks { .. })
        ));
        assert!(matches!(
            Oti::raptorq(100, 4, 26, 1, 4),
            Err(EmptyBlock { .. })
        ));
        assert!(matches!(
            Oti::raptorq(56_404 * 4, 4, 1, 1, 4),
            Err(BlockTooLarge { .. })
        ));
        assert!(Oti::raptorq(56_403 * 4, 4, 1, 1, 4).is_ok());
        assert_eq!(Oti::raptorq(100, 1280, 1, 2, 4), Err(SubBlocks(2)));
        assert!(matches!(
            Oti::raptorq(1 << 40, 1280, 1, 1, 4),
            Err(TransferLengthTooLarge { .. })
        ));
        assert_eq!(Oti::no_code(100, 10, 0), Err(ZeroBlockLength));
        assert!(matches!(
            Oti::no_code(1 << 48, 10, 1),
            Err(TransferLengthTooLarge { .. })
        ));
        assert!(matches!(
            Oti::decode(FecScheme::RaptorQ, &[0; 11]),
            Err(Length { .. })
        ));
    }

    #[test]
    fn planning_targets_one_mebibyte_blocks() {
        let oti =
            Oti::for_object(FecScheme::RaptorQ, 16 << 20, 1280, BlockSize::default()).unwrap();
        let layout = oti.layout();
        assert_eq!(layout.block_count(), 17); // 13108 symbols / 819 per block
        assert!(layout.max_block_symbols() <= 819);
        // A 1 GiB object needs more than 255 blocks of 1 MiB: blocks grow.
        let oti = Oti::for_object(FecScheme::RaptorQ, 1 << 30, 1280, BlockSize::default()).unwrap();
        assert_eq!(oti.source_blocks(), 255);
        assert!(oti.layout().max_block_symbols() <= 56_403);
        // Beyond K'max · 255 symbols it cannot be done.
        assert!(Oti::for_object(FecScheme::RaptorQ, 20 << 30, 1280, BlockSize::default()).is_err());
        let oti = Oti::for_object(FecScheme::NoCode, 1 << 30, 1024, BlockSize::default()).unwrap();
        assert_eq!(oti.layout().block_count(), 1024);
    }

    proptest! {
        #[test]
        fn decode_never_panics(scheme in prop_oneof![Just(FecScheme::RaptorQ), Just(FecScheme::NoCode), Just(FecScheme::Raptor)],
                               bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(oti) = Oti::decode(scheme, &bytes) {
                // Reserved bits are ignored on input: values round-trip, not bytes.
                prop_assert_eq!(Oti::decode(scheme, &oti.encode()).unwrap(), oti);
                let layout = oti.layout();
                prop_assert_eq!(layout.block_range(layout.block_count() - 1).unwrap().end, oti.transfer_length());
            }
        }

        #[test]
        fn planned_layouts_are_valid(scheme in prop_oneof![Just(FecScheme::RaptorQ), Just(FecScheme::NoCode), Just(FecScheme::Raptor)],
                                     f in 1u64..(1 << 34), t in 1u16..=2048, block in 1u64..(8 << 20)) {
            let t = if scheme == FecScheme::NoCode { t } else { t.div_ceil(4) * 4 };
            if let Ok(oti) = Oti::for_object(scheme, f, t, BlockSize::Bytes(block)) {
                prop_assert_eq!(Oti::decode(scheme, &oti.encode()).unwrap(), oti);
                let layout = oti.layout();
                let mut end = 0;
                for sbn in 0..layout.block_count() {
                    let k = layout.source_symbols(sbn).unwrap();
                    prop_assert!(k >= scheme.min_source_symbols() && k <= scheme.max_source_symbols());
                    let range = layout.block_range(sbn).unwrap();
                    prop_assert_eq!(range.start, end);
                    prop_assert!(range.end > range.start);
                    end = range.end;
                }
                prop_assert_eq!(end, f);
            }
        }
    }
}
