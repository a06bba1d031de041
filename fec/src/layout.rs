//! How an object is cut into source blocks and symbols.
//!
//! Every scheme uses the same partition (RFC 6330 §4.4.1.2 `Partition[]`,
//! which is also RFC 5053 §5.3.1.2's and RFC 5052 §9.1's): the object's
//! `Kt = ceil(F / T)` source symbols are split into `Z` blocks, the first
//! `ZL` of `KL = ceil(Kt / Z)` symbols and the remaining `ZS` of
//! `KS = floor(Kt / Z)` symbols. Only the last symbol of the object may be
//! short; encoders and decoders pad it with zeros.
//!
//! ```text
//!  offset 0                                                          F
//!  |<-- block 0: KL·T -->|<-- block 1: KL·T -->| ... |<-- KS·T -->|..|
//!  | sym 0 | sym 1 | ... |                                 last symbol
//!                                                          may be short
//! ```

use crate::FecScheme;
use crate::error::SymbolError;

/// The block structure of one object: computed from an [`Oti`](crate::Oti),
/// so every value in it is valid for its scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    pub(crate) scheme: FecScheme,
    pub(crate) transfer_length: u64,
    pub(crate) symbol_size: u16,
    pub(crate) blocks: u32,
    pub(crate) large_block_symbols: u32,
    pub(crate) small_block_symbols: u32,
    pub(crate) large_blocks: u32,
    /// Raptor's sub-blocks N (RFC 5053 §5.3.1.2); 1 for the other schemes.
    pub(crate) sub_blocks: u8,
    /// Raptor's symbol alignment Al; 1 for the other schemes (RaptorQ's Al
    /// does not change how its blocks are coded when N = 1).
    pub(crate) alignment: u8,
}

/// `Partition[I, J]` of RFC 6330 §4.4.1.2: `(IL, IS, JL, JS)`.
pub(crate) fn partition(i: u64, j: u64) -> (u64, u64, u64, u64) {
    let il = i.div_ceil(j);
    let is = i / j;
    let jl = i - is * j;
    (il, is, jl, j - jl)
}

impl Layout {
    /// Builds the layout for `blocks` blocks; the caller has validated that
    /// `1 <= blocks <= ceil(F / T)` and that the block sizes fit the scheme.
    pub(crate) fn new(
        scheme: FecScheme,
        transfer_length: u64,
        symbol_size: u16,
        blocks: u32,
    ) -> Self {
        let total_symbols = transfer_length.div_ceil(u64::from(symbol_size));
        let (large, small, large_blocks, _) = partition(total_symbols, u64::from(blocks));
        // The validated bounds make these fit: K <= 2^16, Z <= 2^16.
        Layout {
            scheme,
            transfer_length,
            symbol_size,
            blocks,
            large_block_symbols: large as u32,
            small_block_symbols: small as u32,
            large_blocks: large_blocks as u32,
            sub_blocks: 1,
            alignment: 1,
        }
    }

    /// The same layout with Raptor's sub-blocking: N sub-blocks of
    /// alignment Al, validated by the caller (1 ≤ N ≤ T/Al).
    pub(crate) fn with_sub_blocks(mut self, sub_blocks: u8, alignment: u8) -> Self {
        self.sub_blocks = sub_blocks;
        self.alignment = alignment;
        self
    }

    /// Number of sub-blocks N of each block (only Raptor's can exceed 1).
    /// With N > 1 an encoding symbol is not a slice of the block but one
    /// sub-symbol of each sub-block (RFC 5053 §5.3.1.2), and every symbol
    /// on the wire is T bytes.
    pub fn sub_blocks(&self) -> u8 {
        self.sub_blocks
    }

    /// The sizes of the N sub-symbols in an encoding symbol.
    pub(crate) fn sub_symbol_sizes(&self) -> Vec<usize> {
        crate::raptor::sub_symbol_sizes(self.symbol_size, self.sub_blocks, self.alignment)
    }

    /// Block `sbn`, padded to K·T bytes, in the order its source symbols go
    /// on the wire: unchanged (no copy) unless the block has sub-blocks.
    /// `None` if `sbn` is past the end or `padded` is not K·T bytes.
    pub fn wire_order(&self, sbn: u32, padded: Vec<u8>) -> Option<Vec<u8>> {
        let k = self.source_symbols(sbn)? as usize;
        if padded.len() != k * usize::from(self.symbol_size) {
            return None;
        }
        Some(crate::raptor::interleave(
            k,
            &self.sub_symbol_sizes(),
            padded,
        ))
    }

    /// The FEC scheme.
    pub fn scheme(&self) -> FecScheme {
        self.scheme
    }

    /// Object size in bytes (F).
    pub fn transfer_length(&self) -> u64 {
        self.transfer_length
    }

    /// Symbol size in bytes (T).
    pub fn symbol_size(&self) -> u16 {
        self.symbol_size
    }

    /// Number of source blocks (Z).
    pub fn block_count(&self) -> u32 {
        self.blocks
    }

    /// Total number of source symbols in the object (Kt).
    pub fn total_source_symbols(&self) -> u64 {
        self.transfer_length.div_ceil(u64::from(self.symbol_size))
    }

    /// Largest number of source symbols in any block (KL).
    pub fn max_block_symbols(&self) -> u32 {
        self.large_block_symbols
    }

    /// Number of source symbols (K) of block `sbn`, or `None` past the end.
    pub fn source_symbols(&self, sbn: u32) -> Option<u32> {
        if sbn >= self.blocks {
            None
        } else if sbn < self.large_blocks {
            Some(self.large_block_symbols)
        } else {
            Some(self.small_block_symbols)
        }
    }

    /// Byte offset of block `sbn` in the object, or `None` past the end.
    pub fn block_offset(&self, sbn: u32) -> Option<u64> {
        if sbn >= self.blocks {
            return None;
        }
        let t = u64::from(self.symbol_size);
        let large = u64::from(sbn.min(self.large_blocks));
        let small = u64::from(sbn.saturating_sub(self.large_blocks));
        Some(
            (large * u64::from(self.large_block_symbols)
                + small * u64::from(self.small_block_symbols))
                * t,
        )
    }

    /// Bytes of object data in block `sbn` (the last block may end with a
    /// short symbol), or `None` past the end.
    pub fn block_len(&self, sbn: u32) -> Option<usize> {
        let offset = self.block_offset(sbn)?;
        let k = u64::from(self.source_symbols(sbn)?);
        let padded = k * u64::from(self.symbol_size);
        Some(padded.min(self.transfer_length - offset) as usize)
    }

    /// Bytes of block `sbn` once padded to whole symbols (K·T).
    pub fn padded_block_len(&self, sbn: u32) -> Option<usize> {
        Some(self.source_symbols(sbn)? as usize * usize::from(self.symbol_size))
    }

    /// The byte range of the object that block `sbn` covers.
    pub fn block_range(&self, sbn: u32) -> Option<std::ops::Range<u64>> {
        let offset = self.block_offset(sbn)?;
        Some(offset..offset + self.block_len(sbn)? as u64)
    }

    /// Length of source symbol `esi` of block `sbn`: `T`, except for the
    /// object's last symbol, which holds only the bytes left (always `T`
    /// with Raptor sub-blocks, whose last symbol is not the object's end).
    pub fn source_symbol_len(&self, sbn: u32, esi: u32) -> Option<usize> {
        let k = self.source_symbols(sbn)?;
        if esi >= k {
            return None;
        }
        let t = usize::from(self.symbol_size);
        if self.sub_blocks > 1 {
            return Some(t);
        }
        let block_len = self.block_len(sbn)?;
        Some(t.min(block_len - esi as usize * t))
    }

    /// Checks that a symbol with this SBN, ESI and length can belong to the
    /// object: the SBN is in range, the ESI is valid for the scheme (no-code
    /// has only source symbols), and the length is T — or, for the object's
    /// last source symbol, its real (short) length or T when padded.
    pub fn check_symbol(&self, sbn: u32, esi: u32, len: usize) -> Result<(), SymbolError> {
        let Some(k) = self.source_symbols(sbn) else {
            return Err(SymbolError::SourceBlockNumber {
                sbn,
                blocks: self.blocks,
            });
        };
        let limit = match self.scheme {
            FecScheme::NoCode => k,
            FecScheme::Raptor | FecScheme::RaptorQ => self.scheme.esi_limit(),
        };
        if esi >= limit {
            return Err(SymbolError::EncodingSymbolId { sbn, esi, limit });
        }
        let t = usize::from(self.symbol_size);
        let valid = len == t || (esi < k && Some(len) == self.source_symbol_len(sbn, esi));
        if valid {
            Ok(())
        } else {
            Err(SymbolError::SymbolLength {
                sbn,
                esi,
                expected: t,
                actual: len,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_rfc_definition() {
        assert_eq!(partition(10, 3), (4, 3, 1, 2));
        assert_eq!(partition(9, 3), (3, 3, 0, 3));
        assert_eq!(partition(1, 1), (1, 1, 0, 1));
    }

    #[test]
    fn blocks_tile_the_object_exactly() {
        let layout = Layout::new(FecScheme::RaptorQ, 10 * 1280 + 7, 1280, 3);
        assert_eq!(layout.total_source_symbols(), 11);
        assert_eq!(layout.source_symbols(0), Some(4));
        assert_eq!(layout.source_symbols(1), Some(4));
        assert_eq!(layout.source_symbols(2), Some(3));
        assert_eq!(layout.source_symbols(3), None);
        let mut next = 0;
        for sbn in 0..3 {
            let range = layout.block_range(sbn).unwrap();
            assert_eq!(range.start, next);
            next = range.end;
        }
        assert_eq!(next, layout.transfer_length());
        assert_eq!(layout.block_len(2), Some(2 * 1280 + 7));
        assert_eq!(layout.padded_block_len(2), Some(3 * 1280));
        assert_eq!(layout.source_symbol_len(2, 2), Some(7));
        assert_eq!(layout.source_symbol_len(2, 1), Some(1280));
        assert_eq!(layout.source_symbol_len(2, 3), None);
    }
}
