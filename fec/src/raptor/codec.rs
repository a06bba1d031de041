//! Encoding and decoding one Raptor source block, with sub-blocking.
//!
//! RFC 5053 §5.3.1.2: a block of K·T bytes is N sub-blocks, sub-block j
//! holding K contiguous sub-symbols of its size; encoding symbol `esi` is
//! the concatenation of sub-symbol `esi` of every sub-block. The code is
//! linear and byte-wise, so coding the concatenated (wire) symbols once is
//! coding every sub-block: only the byte order of the block changes.

use std::sync::Mutex;

use crate::error::SymbolError;
use crate::layout::{Layout, partition};

/// ESIs are 16 bits (RFC 5053 §3.1).
const ESI_LIMIT: u32 = 1 << 16;

/// Sub-symbol sizes in bytes of the N sub-blocks: `(TL, TS, NL, NS)` =
/// Partition[T/Al, N], the first NL of TL·Al bytes, the rest TS·Al. The
/// caller has validated 1 ≤ N ≤ T/Al and Al ≥ 1.
pub(crate) fn sub_symbol_sizes(t: u16, n: u8, al: u8) -> Vec<usize> {
    let al = usize::from(al.max(1));
    let (tl, ts, nl, ns) = partition((usize::from(t) / al) as u64, u64::from(n.max(1)));
    let mut sizes = vec![tl as usize * al; nl as usize];
    sizes.extend(std::iter::repeat_n(ts as usize * al, ns as usize));
    sizes
}

/// A block of `k` symbols (K·T bytes, padded) in wire-symbol order: symbol
/// m is sub-symbol m of every sub-block in turn. No copy when N = 1.
pub(crate) fn interleave(k: usize, sizes: &[usize], block: Vec<u8>) -> Vec<u8> {
    if sizes.len() <= 1 {
        return block;
    }
    let mut wire = Vec::with_capacity(block.len());
    for m in 0..k {
        let mut offset = 0;
        for &size in sizes {
            let start = offset + m * size;
            wire.extend_from_slice(&block[start..start + size]);
            offset += k * size;
        }
    }
    wire
}

/// The inverse of [`interleave`]: wire symbols of T bytes back into the
/// block's byte order. No copy when N = 1.
pub(crate) fn deinterleave(t: usize, sizes: &[usize], wire: Vec<u8>) -> Vec<u8> {
    if sizes.len() <= 1 {
        return wire;
    }
    let mut block = Vec::with_capacity(wire.len());
    let mut within = 0;
    for &size in sizes {
        for symbol in wire.chunks_exact(t) {
            block.extend_from_slice(&symbol[within..within + size]);
        }
        within += size;
    }
    block
}

/// The encoder of one Raptor source block: the intermediate symbols are
/// computed once; then any ESI's symbol is a few XORs. `Send + Sync`.
pub(crate) struct RaptorBlockEncoder {
    sbn: u32,
    k: u32,
    t: usize,
    /// With sub-blocks, the block in wire order, padded to K·T bytes:
    /// source symbols are slices of it. Empty without (the owner's bytes
    /// are the source symbols then).
    wire: Box<[u8]>,
    interleaved: bool,
    // `raptor_code`'s `fountain` takes `&mut self` though it reads only.
    coder: Mutex<raptor_code::SourceBlockEncoder>,
}

impl std::fmt::Debug for RaptorBlockEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaptorBlockEncoder")
            .field("sbn", &self.sbn)
            .field("source_symbols", &self.k)
            .field("symbol_size", &self.t)
            .finish()
    }
}

impl RaptorBlockEncoder {
    /// Prepares block `sbn` of a Raptor `layout` from its bytes (the
    /// block's real length: the object's last block is not padded).
    pub(crate) fn new(layout: &Layout, sbn: u32, data: &[u8]) -> Result<Self, SymbolError> {
        let (Some(k), Some(len)) = (layout.source_symbols(sbn), layout.block_len(sbn)) else {
            return Err(SymbolError::SourceBlockNumber {
                sbn,
                blocks: layout.block_count(),
            });
        };
        if data.len() != len {
            return Err(SymbolError::BlockLength {
                sbn,
                expected: len,
                actual: data.len(),
            });
        }
        let t = usize::from(layout.symbol_size());
        let mut padded = Vec::with_capacity(k as usize * t);
        padded.extend_from_slice(data);
        padded.resize(k as usize * t, 0);
        let sizes = layout.sub_symbol_sizes();
        let wire = interleave(k as usize, &sizes, padded);
        // A Raptor layout has 4 ≤ K ≤ 8192 (checked by its OTI), which the
        // crate accepts; J(K) makes the source matrix invertible for those.
        let coder = raptor_code::SourceBlockEncoder::new(&wire, k as usize).map_err(|_| {
            SymbolError::EncodingSymbolId {
                sbn,
                esi: k,
                limit: ESI_LIMIT,
            }
        })?;
        Ok(RaptorBlockEncoder {
            sbn,
            k,
            t,
            wire: if sizes.len() > 1 {
                wire.into_boxed_slice()
            } else {
                Box::default()
            },
            interleaved: sizes.len() > 1,
            coder: Mutex::new(coder),
        })
    }

    /// Whether the block has sub-blocks, so that source symbols are not
    /// slices of the block.
    pub(crate) fn is_interleaved(&self) -> bool {
        self.interleaved
    }

    /// Source symbol `esi` in wire order (T bytes), or `None` for
    /// `esi >= K` or a block without sub-blocks (whose source symbols are
    /// slices of the block).
    pub(crate) fn source_symbol(&self, esi: u32) -> Option<&[u8]> {
        let start = (esi < self.k).then_some(esi as usize * self.t)?;
        self.wire.get(start..start + self.t)
    }

    /// Heap bytes held: the wire copy, the crate's copy of the source
    /// symbols and its L intermediate symbols (L < K + K/10 + 60 for
    /// K ≤ 8192), one allocation each.
    pub(crate) fn memory_bytes(&self) -> usize {
        const PER_ALLOCATION: usize = 48;
        let k = self.k as usize;
        let l = k + k / 10 + 60;
        self.wire.len() + (k + l) * (self.t + PER_ALLOCATION)
    }

    fn check_range(&self, first_esi: u32, count: u32) -> Result<(), SymbolError> {
        let end = u64::from(first_esi) + u64::from(count);
        if first_esi < self.k || end > u64::from(ESI_LIMIT) {
            return Err(SymbolError::EncodingSymbolId {
                sbn: self.sbn,
                esi: if first_esi < self.k {
                    first_esi
                } else {
                    ESI_LIMIT
                },
                limit: ESI_LIMIT,
            });
        }
        Ok(())
    }

    /// Repair symbols `first_esi .. first_esi + count` (each ≥ K and below
    /// 2^16), as `(esi, symbol)` pairs of T bytes.
    pub(crate) fn repair_symbols(
        &self,
        first_esi: u32,
        count: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, SymbolError> {
        self.check_range(first_esi, count)?;
        let mut coder = self.coder.lock().unwrap_or_else(|e| e.into_inner());
        Ok((first_esi..first_esi + count)
            .map(|esi| {
                let mut symbol = coder.fountain(esi);
                symbol.resize(self.t, 0);
                (esi, symbol)
            })
            .collect())
    }

    /// Writes repair symbols `first_esi .. first_esi + count` back to back
    /// into `out` (at least `count · T` bytes); returns the bytes written.
    pub(crate) fn write_repair_symbols(
        &self,
        first_esi: u32,
        count: u32,
        out: &mut [u8],
    ) -> Result<usize, SymbolError> {
        self.check_range(first_esi, count)?;
        let needed = count as usize * self.t;
        let actual = out.len();
        let out = out
            .get_mut(..needed)
            .ok_or(SymbolError::BufferTooSmall { needed, actual })?;
        let mut coder = self.coder.lock().unwrap_or_else(|e| e.into_inner());
        for (esi, slot) in (first_esi..).zip(out.chunks_exact_mut(self.t)) {
            let symbol = coder.fountain(esi);
            // An intermediate symbol set with no index below L is empty:
            // the crate then returns no bytes, which is the zero symbol.
            let n = symbol.len().min(self.t);
            slot[..n].copy_from_slice(&symbol[..n]);
            slot[n..].fill(0);
        }
        Ok(needed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::{BlockDecoder, BlockEncoder, Oti, SymbolError, SymbolOutcome};

    fn object(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    /// Every block of `oti`: source symbols but every `lose_every`-th, then
    /// repair symbols until it decodes to the block's bytes.
    fn round_trip(oti: &Oti, data: &[u8], lose_every: u32) {
        let layout = oti.layout();
        for sbn in 0..layout.block_count() {
            let range = layout.block_range(sbn).unwrap();
            let block = &data[range.start as usize..range.end as usize];
            let encoder = BlockEncoder::new(&layout, sbn, block).unwrap();
            let k = encoder.source_symbols();
            let mut decoder = BlockDecoder::new(&layout, sbn).unwrap();
            for esi in (0..k).filter(|e| e % lose_every != 0) {
                decoder
                    .add_symbol(esi, encoder.source_symbol(esi).unwrap())
                    .unwrap();
            }
            let mut next = k;
            while !decoder.is_complete() {
                let (esi, symbol) = encoder.repair_symbols(next, 1).unwrap().remove(0);
                decoder.add_symbol(esi, &symbol).unwrap();
                next += 1;
                assert!(next < 2 * k + 40, "block {sbn} did not decode");
            }
            assert_eq!(decoder.data().unwrap(), block);
        }
    }

    #[test]
    fn blocks_decode_from_source_and_repair_symbols() {
        let data = object(100_003);
        for (n, lose) in [(1u8, 7u32), (1, 1), (3, 5), (8, 2), (8, 1000)] {
            let oti = Oti::raptor(data.len() as u64, 64, 3, n, 4).unwrap();
            round_trip(&oti, &data, lose);
        }
    }

    #[test]
    fn source_symbols_are_systematic_and_sub_blocks_interleave() {
        // K = 4, T = 8, N = 2 sub-symbols of 4 bytes: symbol m is bytes
        // 4m..4m+4 of sub-block 0 then of sub-block 1 (which starts at 16).
        let data: Vec<u8> = (0..32).collect();
        let layout = Oti::raptor(32, 8, 1, 2, 4).unwrap().layout();
        let encoder = BlockEncoder::new(&layout, 0, &data).unwrap();
        assert_eq!(
            encoder.source_symbol(1).unwrap(),
            &[4, 5, 6, 7, 20, 21, 22, 23]
        );
        assert_eq!(encoder.source_symbol(4), None);
        let wire = layout.wire_order(0, data.clone()).unwrap();
        assert_eq!(&wire[8..16], encoder.source_symbol(1).unwrap());
        let layout = Oti::raptor(32, 8, 1, 1, 4).unwrap().layout();
        let encoder = BlockEncoder::new(&layout, 0, &data).unwrap();
        assert_eq!(encoder.source_symbol(3).unwrap(), &data[24..]);
        assert_eq!(layout.wire_order(0, data.clone()), Some(data.clone()));
        assert!(encoder.repair_symbols(3, 1).is_err());
        assert!(encoder.repair_symbols(65_535, 2).is_err());
        assert!(encoder.repair_symbols(65_535, 1).is_ok());
    }

    #[test]
    fn one_coder_over_wire_symbols_equals_one_coder_per_sub_block() {
        // RFC 5053 §5.3.1.2 read literally: each sub-block encoded on its
        // own, a repair symbol the concatenation of their repair sub-symbols.
        let data = object(20 * 40 - 13);
        let oti = Oti::raptor(data.len() as u64, 40, 1, 3, 4).unwrap();
        let sizes = oti.raptor_oti().unwrap().sub_symbol_sizes();
        assert_eq!(sizes, vec![16, 12, 12]);
        let mut padded = data.clone();
        padded.resize(20 * 40, 0);
        let mut per_sub_block = Vec::new();
        let mut offset = 0;
        for &size in &sizes {
            let sub_block = &padded[offset..offset + 20 * size];
            per_sub_block.push(raptor_code::SourceBlockEncoder::new(sub_block, 20).unwrap());
            offset += 20 * size;
        }
        let layout = oti.layout();
        let ours = BlockEncoder::new(&layout, 0, &data).unwrap();
        for esi in [0u32, 7, 19] {
            let expected: Vec<u8> = per_sub_block
                .iter_mut()
                .flat_map(|e| e.fountain(esi))
                .collect();
            assert_eq!(ours.source_symbol(esi).unwrap(), &expected[..]);
        }
        let mut written = vec![0u8; 30 * 40];
        ours.write_repair_symbols(20, 30, &mut written).unwrap();
        for (esi, symbol) in ours.repair_symbols(20, 30).unwrap() {
            let expected: Vec<u8> = per_sub_block
                .iter_mut()
                .zip(&sizes)
                .flat_map(|(e, &size)| {
                    let mut s = e.fountain(esi);
                    s.resize(size, 0);
                    s
                })
                .collect();
            assert_eq!(symbol, expected, "ESI {esi}");
            let at = (esi as usize - 20) * 40;
            assert_eq!(&written[at..at + 40], &expected[..]);
        }
    }

    #[test]
    fn systematic_indices_make_the_source_matrix_invertible() {
        // RFC 5053 §5.7 chose J(K) so that the K LT rows of ESIs 0..K-1
        // with the S + H constraint rows are invertible for every K; a wrong
        // table entry shows as an encoder that cannot solve for the
        // intermediate symbols (any other set of K ESIs is singular about
        // 75 % of the time). Every K up to 300, then samples to 8192.
        let ks = (4..=300u32).chain((301..8192).step_by(997)).chain([8192]);
        for k in ks {
            let t = 4u16;
            let len = u64::from(k) * u64::from(t);
            let layout = Oti::raptor(len, t, 1, 1, 4).unwrap().layout();
            let data = object(len as usize);
            let encoder = BlockEncoder::new(&layout, 0, &data);
            assert!(encoder.is_ok(), "K = {k}: source matrix singular");
        }
    }

    #[test]
    fn wrong_input_is_an_error() {
        let layout = Oti::raptor(1000, 100, 1, 1, 4).unwrap().layout();
        let mut decoder = BlockDecoder::new(&layout, 0).unwrap();
        assert!(decoder.add_symbol(0, &[0; 99]).is_err());
        assert!(matches!(
            decoder.add_symbol(1 << 16, &[0; 100]),
            Err(SymbolError::EncodingSymbolId { .. })
        ));
        assert!(BlockDecoder::new(&layout, 1).is_err());
        assert!(BlockEncoder::new(&layout, 0, &[0; 999]).is_err());
        assert_eq!(decoder.add_symbol(0, &[1; 100]), Ok(SymbolOutcome::Stored));
        assert_eq!(
            decoder.add_symbol(0, &[1; 100]),
            Ok(SymbolOutcome::Duplicate)
        );
        // The last symbol may come short without sub-blocks, never with.
        let layout = Oti::raptor(1030, 100, 1, 1, 4).unwrap().layout();
        let mut decoder = BlockDecoder::new(&layout, 0).unwrap();
        assert_eq!(decoder.add_symbol(10, &[1; 30]), Ok(SymbolOutcome::Stored));
        let layout = Oti::raptor(1030, 100, 1, 2, 4).unwrap().layout();
        let mut decoder = BlockDecoder::new(&layout, 0).unwrap();
        assert!(decoder.add_symbol(10, &[1; 30]).is_err());
        assert_eq!(decoder.add_symbol(10, &[1; 100]), Ok(SymbolOutcome::Stored));
    }
}
