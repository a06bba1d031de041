//! An owning block encoder: the block's bytes and its RaptorQ intermediate
//! symbols, computed once and then shared (behind an `Arc`) by any number
//! of threads making source or repair symbols.

use crate::encoder::{Code, RepairCoder};
use crate::error::SymbolError;
use crate::layout::Layout;
use crate::plan_cache::PlanCache;

/// One source block, ready to give any of its symbols without recomputing.
///
/// Holds the block's bytes (source symbols are slices of them) and, for
/// RaptorQ, raptorq's `SourceBlockEncoder` with its intermediate symbols, so
/// each repair symbol costs a few symbol XORs. It is `Send + Sync`: share it
/// with an `Arc`, or keep it in an [`EncoderCache`](crate::EncoderCache).
///
/// Memory: about three times the block for RaptorQ and Raptor (the bytes,
/// the coder's copy of the source symbols, the intermediate symbols), once
/// for Compact No-Code; [`PreparedBlock::memory_bytes`] gives the estimate.
pub struct PreparedBlock {
    data: Box<[u8]>,
    coder: RepairCoder,
    memory: usize,
    sub_blocks: u8,
}

impl std::fmt::Debug for PreparedBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedBlock")
            .field("sbn", &self.coder.sbn)
            .field("source_symbols", &self.coder.source_symbols)
            .field("symbol_size", &self.coder.symbol_size)
            .field("len", &self.data.len())
            .field("memory_bytes", &self.memory)
            .finish()
    }
}

impl PreparedBlock {
    /// Prepares block `sbn` of `layout`, taking its bytes `data` (exactly
    /// [`Layout::block_len`] bytes), with the process-wide plan cache.
    pub fn new(layout: &Layout, sbn: u32, data: Vec<u8>) -> Result<Self, SymbolError> {
        Self::with_plans(layout, sbn, data, PlanCache::global())
    }

    /// As [`PreparedBlock::new`], with an explicit plan cache.
    pub fn with_plans(
        layout: &Layout,
        sbn: u32,
        data: Vec<u8>,
        plans: &PlanCache,
    ) -> Result<Self, SymbolError> {
        let coder = RepairCoder::new(layout, sbn, &data, plans)?;
        let memory = estimate_memory(&coder, data.len());
        Ok(PreparedBlock {
            data: data.into_boxed_slice(),
            coder,
            memory,
            sub_blocks: layout.sub_blocks(),
        })
    }

    /// Source block number.
    pub fn sbn(&self) -> u32 {
        self.coder.sbn
    }

    /// Number of source symbols K.
    pub fn source_symbols(&self) -> u32 {
        self.coder.source_symbols
    }

    /// Symbol size T in bytes.
    pub fn symbol_size(&self) -> usize {
        self.coder.symbol_size
    }

    /// The block's bytes (not padded).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Whether this is block `sbn` of `layout` (same K, T and length), so a
    /// cached block is never used for another layout by mistake.
    pub fn fits(&self, layout: &Layout, sbn: u32) -> bool {
        self.coder.sbn == sbn
            && layout.source_symbols(sbn) == Some(self.coder.source_symbols)
            && usize::from(layout.symbol_size()) == self.coder.symbol_size
            && layout.block_len(sbn) == Some(self.data.len())
            && layout.scheme() == self.coder.scheme()
            && layout.sub_blocks() == self.sub_blocks
    }

    /// Estimated heap bytes held (what an [`EncoderCache`](crate::EncoderCache)
    /// charges against its budget).
    pub fn memory_bytes(&self) -> usize {
        self.memory
    }

    /// Source symbol `esi` as a slice of the block; the object's last
    /// symbol may be shorter than T. `None` for `esi >= K`.
    pub fn source_symbol(&self, esi: u32) -> Option<&[u8]> {
        self.coder.source_symbol(&self.data, esi)
    }

    /// Repair symbols with ESIs `first_esi .. first_esi + count` (each ≥ K),
    /// as `(esi, symbol)` pairs of T bytes each.
    pub fn repair_symbols(
        &self,
        first_esi: u32,
        count: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, SymbolError> {
        self.coder.repair_symbols(first_esi, count)
    }

    /// Writes repair symbols `first_esi .. first_esi + count` back to back
    /// into `out` (which must hold `count · T` bytes) and returns the bytes
    /// written.
    pub fn write_repair_symbols(
        &self,
        first_esi: u32,
        count: u32,
        out: &mut [u8],
    ) -> Result<usize, SymbolError> {
        self.coder.write_repair_symbols(first_esi, count, out)
    }
}

/// Heap bytes of a prepared block of `len` bytes. raptorq keeps the K
/// source symbols (one `Vec` each) and L = K' + S + H intermediate symbols;
/// S + H is below K'/16 + 64 for every K' of RFC 6330's table, which makes
/// this a slight overestimate.
fn estimate_memory(coder: &RepairCoder, len: usize) -> usize {
    const PER_ALLOCATION: usize = 48;
    let fixed = std::mem::size_of::<PreparedBlock>() + len;
    match &coder.code {
        Code::None => return fixed,
        Code::Raptor(raptor) => return fixed + raptor.memory_bytes(),
        Code::RaptorQ(_) => {}
    }
    let k = coder.source_symbols;
    let t = coder.symbol_size;
    let k_prime = raptorq::extended_source_block_symbols(k) as usize;
    let intermediate = k_prime + k_prime / 16 + 64;
    fixed + k as usize * (t + PER_ALLOCATION) + intermediate * t
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;
    use crate::{BlockEncoder, FecScheme, Oti};

    fn object(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 253) as u8).collect()
    }

    fn block(layout: &Layout, data: &[u8], sbn: u32) -> Vec<u8> {
        let r = layout.block_range(sbn).unwrap();
        data[r.start as usize..r.end as usize].to_vec()
    }

    #[test]
    fn prepared_block_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<PreparedBlock>();
    }

    #[test]
    fn prepared_symbols_equal_block_encoder_symbols() {
        // Three blocks, the last one short with a short last symbol.
        let data = object(10_000);
        let oti = Oti::for_object(
            FecScheme::RaptorQ,
            data.len() as u64,
            64,
            crate::BlockSize::Bytes(4096),
        )
        .unwrap();
        let layout = oti.layout();
        for sbn in 0..layout.block_count() {
            let bytes = block(&layout, &data, sbn);
            let borrowed = BlockEncoder::new(&layout, sbn, &bytes).unwrap();
            let prepared = PreparedBlock::new(&layout, sbn, bytes.clone()).unwrap();
            assert!(prepared.fits(&layout, sbn));
            let k = prepared.source_symbols();
            for esi in 0..=k {
                assert_eq!(prepared.source_symbol(esi), borrowed.source_symbol(esi));
            }
            for first in [k, k + 7, 1 << 20] {
                assert_eq!(
                    prepared.repair_symbols(first, 20).unwrap(),
                    borrowed.repair_symbols(first, 20).unwrap()
                );
                let mut a = vec![0u8; 20 * 64];
                let mut b = vec![0u8; 20 * 64];
                prepared.write_repair_symbols(first, 20, &mut a).unwrap();
                borrowed.write_repair_symbols(first, 20, &mut b).unwrap();
                assert_eq!(a, b);
            }
            assert!(prepared.repair_symbols(k - 1, 1).is_err());
            assert!(prepared.memory_bytes() > 2 * bytes.len());
        }
    }

    #[test]
    fn wrong_lengths_and_blocks_are_errors() {
        let layout = Oti::raptorq(1000, 10, 2, 1, 1).unwrap().layout();
        assert!(matches!(
            PreparedBlock::new(&layout, 0, vec![0; 3]),
            Err(SymbolError::BlockLength { .. })
        ));
        assert!(matches!(
            PreparedBlock::new(&layout, 2, vec![0; 500]),
            Err(SymbolError::SourceBlockNumber { .. })
        ));
        let prepared = PreparedBlock::new(&layout, 0, vec![1; 500]).unwrap();
        assert!(!prepared.fits(&layout, 1));
        let other = Oti::raptorq(1000, 20, 2, 1, 1).unwrap().layout();
        assert!(!prepared.fits(&other, 0));
    }

    #[test]
    fn no_code_blocks_give_source_symbols_only() {
        let layout = Oti::no_code(100, 10, 10).unwrap().layout();
        let data = object(100);
        let prepared = PreparedBlock::new(&layout, 0, data.clone()).unwrap();
        assert_eq!(prepared.source_symbol(3), Some(&data[30..40]));
        assert!(matches!(
            prepared.repair_symbols(10, 1),
            Err(SymbolError::NoRepairSymbols(FecScheme::NoCode))
        ));
        assert!(prepared.memory_bytes() >= 100);
    }
}
