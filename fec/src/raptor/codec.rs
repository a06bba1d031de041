//! Encoding and decoding one Raptor source block, with sub-blocking.
//!
//! RFC 5053 §5.3.1.2: a block of K·T bytes is N sub-blocks, sub-block j
//! holding K contiguous sub-symbols of its size; encoding symbol `esi` is
//! the concatenation of sub-symbol `esi` of every sub-block. The code is
//! linear and byte-wise, so coding the concatenated (wire) symbols once is
//! coding every sub-block: only the byte order of the block changes.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::SymbolOutcome;
use crate::error::SymbolError;
use crate::raptor::oti::RaptorOti;

/// ESIs are 16 bits (RFC 5053 §3.2.1).
const ESI_LIMIT: u32 = 1 << 16;

struct BlockShape {
    sbn: u32,
    k: u32,
    t: usize,
    len: usize,
    sub_sizes: Vec<usize>,
}

impl BlockShape {
    fn new(oti: &RaptorOti, sbn: u32) -> Result<Self, SymbolError> {
        let Some(k) = oti.source_symbols(sbn) else {
            return Err(SymbolError::SourceBlockNumber {
                sbn,
                blocks: u32::from(oti.source_blocks()),
            });
        };
        let (kl, _, zl, _) = oti.block_partition();
        let t = usize::from(oti.symbol_size());
        let before = u64::from(sbn.min(zl)) * u64::from(kl)
            + u64::from(sbn.saturating_sub(zl)) * u64::from(k);
        let offset = before * t as u64;
        let padded = k as usize * t;
        let len = (oti.transfer_length() - offset).min(padded as u64) as usize;
        Ok(BlockShape {
            sbn,
            k,
            t,
            len,
            sub_sizes: oti.sub_symbol_sizes(),
        })
    }

    /// The block (K·T bytes, padded) in wire-symbol order.
    fn interleave(&self, block: &[u8]) -> Vec<u8> {
        if self.sub_sizes.len() == 1 {
            return block.to_vec();
        }
        let k = self.k as usize;
        let mut wire = Vec::with_capacity(block.len());
        for m in 0..k {
            let mut offset = 0;
            for &size in &self.sub_sizes {
                let start = offset + m * size;
                wire.extend_from_slice(&block[start..start + size]);
                offset += k * size;
            }
        }
        wire
    }

    /// The inverse of [`BlockShape::interleave`].
    fn deinterleave(&self, wire: Vec<u8>) -> Vec<u8> {
        if self.sub_sizes.len() == 1 {
            return wire;
        }
        let mut block = Vec::with_capacity(wire.len());
        let mut within = 0;
        for &size in &self.sub_sizes {
            for symbol in wire.chunks_exact(self.t) {
                block.extend_from_slice(&symbol[within..within + size]);
            }
            within += size;
        }
        block
    }
}

/// The encoder of one Raptor source block: the intermediate symbols are
/// computed once; then any ESI's symbol is a few XORs. `Send + Sync`.
pub struct RaptorBlockEncoder {
    shape: BlockShape,
    wire: Box<[u8]>,
    // `raptor_code`'s `fountain` takes `&mut self` though it reads only.
    coder: Mutex<raptor_code::SourceBlockEncoder>,
}

impl std::fmt::Debug for RaptorBlockEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaptorBlockEncoder")
            .field("sbn", &self.shape.sbn)
            .field("source_symbols", &self.shape.k)
            .field("symbol_size", &self.shape.t)
            .finish()
    }
}

impl RaptorBlockEncoder {
    /// Prepares block `sbn` of `oti` from its bytes (the block's real
    /// length: the object's last block is not padded).
    pub fn new(oti: &RaptorOti, sbn: u32, data: &[u8]) -> Result<Self, SymbolError> {
        let shape = BlockShape::new(oti, sbn)?;
        if data.len() != shape.len {
            return Err(SymbolError::BlockLength {
                sbn,
                expected: shape.len,
                actual: data.len(),
            });
        }
        let mut padded = data.to_vec();
        padded.resize(shape.k as usize * shape.t, 0);
        let wire = shape.interleave(&padded);
        // K is 4..=8192 for a validated OTI: the crate accepts it.
        let coder =
            raptor_code::SourceBlockEncoder::new(&wire, shape.k as usize).map_err(|_| {
                SymbolError::EncodingSymbolId {
                    sbn,
                    esi: shape.k,
                    limit: ESI_LIMIT,
                }
            })?;
        Ok(RaptorBlockEncoder {
            shape,
            wire: wire.into_boxed_slice(),
            coder: Mutex::new(coder),
        })
    }

    /// Number of source symbols K.
    pub fn source_symbols(&self) -> u32 {
        self.shape.k
    }

    /// Source symbol `esi` (T bytes, the last one padded), or `None` for
    /// `esi >= K`.
    pub fn source_symbol(&self, esi: u32) -> Option<&[u8]> {
        let t = self.shape.t;
        let start = (esi < self.shape.k).then_some(esi as usize * t)?;
        self.wire.get(start..start + t)
    }

    /// Repair symbols `first_esi .. first_esi + count` (each ≥ K and below
    /// 2^16), as `(esi, symbol)` pairs of T bytes.
    pub fn repair_symbols(
        &self,
        first_esi: u32,
        count: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, SymbolError> {
        let end = u64::from(first_esi) + u64::from(count);
        if first_esi < self.shape.k || end > u64::from(ESI_LIMIT) {
            return Err(SymbolError::EncodingSymbolId {
                sbn: self.shape.sbn,
                esi: first_esi.max(end.min(u64::from(u32::MAX)) as u32),
                limit: ESI_LIMIT,
            });
        }
        let mut coder = self.coder.lock().unwrap_or_else(|e| e.into_inner());
        Ok((first_esi..first_esi + count)
            .map(|esi| {
                let mut symbol = coder.fountain(esi);
                symbol.resize(self.shape.t, 0);
                (esi, symbol)
            })
            .collect())
    }
}

/// The receiving state of one Raptor source block: symbols in any order,
/// assembly by copy when every source symbol arrives, otherwise the solver
/// from K symbols on, once per new symbol until it solves.
pub struct RaptorBlockDecoder {
    shape: BlockShape,
    last_block: bool,
    /// Source symbols by ESI, T bytes each, in wire order.
    source: Vec<u8>,
    have_source: Vec<bool>,
    source_count: u32,
    repair_esis: HashSet<u32>,
    repair: Vec<(u32, Vec<u8>)>,
    solver: Option<raptor_code::SourceBlockDecoder>,
    decoded: Option<Vec<u8>>,
}

impl std::fmt::Debug for RaptorBlockDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaptorBlockDecoder")
            .field("sbn", &self.shape.sbn)
            .field("source_symbols", &self.shape.k)
            .field("received", &self.received())
            .field("decoded", &self.decoded.is_some())
            .finish()
    }
}

impl RaptorBlockDecoder {
    /// An empty decoder for block `sbn` of `oti`.
    pub fn new(oti: &RaptorOti, sbn: u32) -> Result<Self, SymbolError> {
        let shape = BlockShape::new(oti, sbn)?;
        let k = shape.k as usize;
        Ok(RaptorBlockDecoder {
            last_block: sbn + 1 == u32::from(oti.source_blocks()),
            source: vec![0; k * shape.t],
            have_source: vec![false; k],
            shape,
            source_count: 0,
            repair_esis: HashSet::new(),
            repair: Vec::new(),
            solver: None,
            decoded: None,
        })
    }

    /// Distinct symbols received.
    pub fn received(&self) -> u32 {
        self.source_count + self.repair_esis.len() as u32
    }

    /// Whether the block is decoded.
    pub fn is_complete(&self) -> bool {
        self.decoded.is_some()
    }

    /// The decoded block (its real length), once complete.
    pub fn data(&self) -> Option<&[u8]> {
        self.decoded.as_deref()
    }

    /// Adds symbol `esi`. A wrong ESI or length is an error and changes
    /// nothing. The object's last source symbol may come without padding
    /// (N = 1 only: with sub-blocks every symbol is T bytes).
    pub fn add_symbol(&mut self, esi: u32, symbol: &[u8]) -> Result<SymbolOutcome, SymbolError> {
        let (k, t) = (self.shape.k, self.shape.t);
        if esi >= ESI_LIMIT {
            return Err(SymbolError::EncodingSymbolId {
                sbn: self.shape.sbn,
                esi,
                limit: ESI_LIMIT,
            });
        }
        let short_ok = self.last_block
            && self.shape.sub_sizes.len() == 1
            && esi + 1 == k
            && symbol.len() == self.shape.len - (k as usize - 1) * t;
        if symbol.len() != t && !short_ok {
            return Err(SymbolError::SymbolLength {
                sbn: self.shape.sbn,
                esi,
                expected: t,
                actual: symbol.len(),
            });
        }
        if self.decoded.is_some() {
            return Ok(SymbolOutcome::AlreadyDecoded);
        }
        let mut owned = symbol.to_vec();
        owned.resize(t, 0);
        if esi < k {
            if std::mem::replace(&mut self.have_source[esi as usize], true) {
                return Ok(SymbolOutcome::Duplicate);
            }
            self.source_count += 1;
            let start = esi as usize * t;
            self.source[start..start + t].copy_from_slice(&owned);
            if self.source_count == k {
                let wire = std::mem::take(&mut self.source);
                return Ok(self.finish(wire));
            }
        } else {
            if !self.repair_esis.insert(esi) {
                return Ok(SymbolOutcome::Duplicate);
            }
            if self.solver.is_none() {
                self.repair.push((esi, owned.clone()));
            }
        }
        if let Some(solver) = &mut self.solver {
            solver.push_encoding_symbol(&owned, esi);
        } else if self.received() >= k {
            let mut solver = raptor_code::SourceBlockDecoder::new(k as usize);
            for (i, _) in self.have_source.iter().enumerate().filter(|(_, h)| **h) {
                solver.push_encoding_symbol(&self.source[i * t..(i + 1) * t], i as u32);
            }
            for (esi, symbol) in self.repair.drain(..) {
                solver.push_encoding_symbol(&symbol, esi);
            }
            self.solver = Some(solver);
        }
        let solved = match &mut self.solver {
            Some(solver) if solver.fully_specified() => solver.decode(k as usize * t),
            _ => None,
        };
        Ok(match solved {
            Some(wire) => self.finish(wire),
            None => SymbolOutcome::Stored,
        })
    }

    fn finish(&mut self, wire: Vec<u8>) -> SymbolOutcome {
        let mut block = self.shape.deinterleave(wire);
        block.truncate(self.shape.len);
        self.decoded = Some(block);
        self.solver = None;
        self.source = Vec::new();
        self.repair = Vec::new();
        SymbolOutcome::Decoded
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn object(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
    }

    fn round_trip(oti: &RaptorOti, data: &[u8], lose_every: u32) {
        let mut offset = 0;
        for sbn in 0..u32::from(oti.source_blocks()) {
            let shape = BlockShape::new(oti, sbn).unwrap();
            let block = &data[offset..offset + shape.len];
            offset += shape.len;
            let encoder = RaptorBlockEncoder::new(oti, sbn, block).unwrap();
            let k = encoder.source_symbols();
            let mut decoder = RaptorBlockDecoder::new(oti, sbn).unwrap();
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
        assert_eq!(offset, data.len());
    }

    #[test]
    fn blocks_decode_from_source_and_repair_symbols() {
        let data = object(100_003);
        for (n, lose) in [(1u8, 7u32), (1, 1), (3, 5), (8, 2)] {
            let oti = RaptorOti::new(data.len() as u64, 64, 3, n, 4).unwrap();
            round_trip(&oti, &data, lose);
        }
    }

    #[test]
    fn source_symbols_are_systematic_and_sub_blocks_interleave() {
        // K = 4, T = 8, N = 2 sub-symbols of 4 bytes: symbol m is bytes
        // 4m..4m+4 of sub-block 0 then of sub-block 1 (which starts at 16).
        let data: Vec<u8> = (0..32).collect();
        let oti = RaptorOti::new(32, 8, 1, 2, 4).unwrap();
        let encoder = RaptorBlockEncoder::new(&oti, 0, &data).unwrap();
        assert_eq!(
            encoder.source_symbol(1).unwrap(),
            &[4, 5, 6, 7, 20, 21, 22, 23]
        );
        assert_eq!(encoder.source_symbol(4), None);
        let oti = RaptorOti::new(32, 8, 1, 1, 4).unwrap();
        let encoder = RaptorBlockEncoder::new(&oti, 0, &data).unwrap();
        assert_eq!(encoder.source_symbol(3).unwrap(), &data[24..]);
        assert!(encoder.repair_symbols(3, 1).is_err());
        assert!(encoder.repair_symbols(65_535, 2).is_err());
    }

    #[test]
    fn one_coder_over_wire_symbols_equals_one_coder_per_sub_block() {
        // RFC 5053 §5.3.1.2 read literally: each sub-block encoded on its
        // own, a repair symbol the concatenation of their repair sub-symbols.
        let data = object(20 * 40 - 13);
        let oti = RaptorOti::new(data.len() as u64, 40, 1, 3, 4).unwrap();
        let sizes = oti.sub_symbol_sizes();
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
        let ours = RaptorBlockEncoder::new(&oti, 0, &data).unwrap();
        for esi in [0u32, 7, 19] {
            let expected: Vec<u8> = per_sub_block
                .iter_mut()
                .flat_map(|e| e.fountain(esi))
                .collect();
            assert_eq!(ours.source_symbol(esi).unwrap(), &expected[..]);
        }
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
        }
    }

    #[test]
    fn systematic_indices_make_the_source_matrix_invertible() {
        // RFC 5053 §5.7 chose J(K) so that the K LT rows of ESIs 0..K-1
        // with the S + H constraint rows are invertible for every K; a wrong
        // table entry shows as an encoder that cannot solve for the
        // intermediate symbols (any other set of K ESIs is singular about
        // 75 % of the time: see tests/raptor_overhead.rs). Every K up to
        // 300, then samples to 8192.
        let ks = (4..=300u32).chain((301..8192).step_by(997)).chain([8192]);
        for k in ks {
            let t = 4u16;
            let len = u64::from(k) * u64::from(t);
            let oti = RaptorOti::new(len, t, 1, 1, 4).unwrap();
            let data = object(len as usize);
            let encoder = RaptorBlockEncoder::new(&oti, 0, &data);
            assert!(encoder.is_ok(), "K = {k}: source matrix singular");
        }
    }

    #[test]
    fn wrong_input_is_an_error() {
        let oti = RaptorOti::new(1000, 100, 1, 1, 4).unwrap();
        let mut decoder = RaptorBlockDecoder::new(&oti, 0).unwrap();
        assert!(decoder.add_symbol(0, &[0; 99]).is_err());
        assert!(decoder.add_symbol(1 << 16, &[0; 100]).is_err());
        assert!(RaptorBlockDecoder::new(&oti, 1).is_err());
        assert!(RaptorBlockEncoder::new(&oti, 0, &[0; 999]).is_err());
        assert_eq!(decoder.add_symbol(0, &[1; 100]), Ok(SymbolOutcome::Stored));
        assert_eq!(
            decoder.add_symbol(0, &[1; 100]),
            Ok(SymbolOutcome::Duplicate)
        );
    }
}
