//! Encoding one source block: source symbols are slices of the caller's
//! data, repair symbols are made on demand for any ESI range.

use std::borrow::Cow;

use raptorq::{ObjectTransmissionInformation, SourceBlockEncoder};

use crate::FecScheme;
use crate::error::SymbolError;
use crate::layout::Layout;
use crate::plan_cache::PlanCache;
use crate::raptor::RaptorBlockEncoder;

/// The encoder of one source block.
///
/// For RaptorQ, construction computes the block's intermediate symbols with
/// a cached plan (the costly step, done once however many carousel rounds
/// send the block); repair symbols are then cheap to make for any ESI.
/// It borrows the block's bytes; [`PreparedBlock`](crate::PreparedBlock)
/// is the owning form that can be shared and cached.
pub struct BlockEncoder<'a> {
    data: &'a [u8],
    coder: RepairCoder,
}

impl std::fmt::Debug for BlockEncoder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockEncoder")
            .field("sbn", &self.coder.sbn)
            .field("source_symbols", &self.coder.source_symbols)
            .field("symbol_size", &self.coder.symbol_size)
            .field("scheme", &self.coder.scheme())
            .finish()
    }
}

/// The raptorq configuration for blocks of symbol size `t`. Only T, N = 1
/// and Al are read by raptorq's block coders; Al = 1 keeps any T valid.
pub(crate) fn raptorq_block_config(t: u16, k: u32) -> ObjectTransmissionInformation {
    ObjectTransmissionInformation::new(u64::from(k) * u64::from(t), t, 1, 1, 1)
}

impl<'a> BlockEncoder<'a> {
    /// Prepares block `sbn` of `layout`, whose bytes are `data` (exactly
    /// [`Layout::block_len`] bytes: the last block is not padded), using the
    /// process-wide plan cache.
    pub fn new(layout: &Layout, sbn: u32, data: &'a [u8]) -> Result<Self, SymbolError> {
        Self::with_plans(layout, sbn, data, PlanCache::global())
    }

    /// As [`BlockEncoder::new`], with an explicit plan cache.
    pub fn with_plans(
        layout: &Layout,
        sbn: u32,
        data: &'a [u8],
        plans: &PlanCache,
    ) -> Result<Self, SymbolError> {
        let coder = RepairCoder::new(layout, sbn, data, plans)?;
        Ok(BlockEncoder { data, coder })
    }

    /// Source block number.
    pub fn sbn(&self) -> u32 {
        self.coder.sbn
    }

    /// Number of source symbols K.
    pub fn source_symbols(&self) -> u32 {
        self.coder.source_symbols
    }

    /// Source symbol `esi` as a slice of the block (no copy). The object's
    /// last symbol may be shorter than T; senders pad it as their scheme
    /// requires. With Raptor sub-blocks (N > 1) it is the interleaved wire
    /// symbol, T bytes. `None` for `esi >= K`.
    pub fn source_symbol(&self, esi: u32) -> Option<&[u8]> {
        self.coder.source_symbol(self.data, esi)
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

/// What [`BlockEncoder`] and [`PreparedBlock`](crate::PreparedBlock) share:
/// the block's shape and, for RaptorQ and Raptor, its intermediate
/// symbols. It does not hold the block's bytes; each owner passes them in
/// (Raptor's coder keeps its own copy in wire order).
pub(crate) struct RepairCoder {
    pub(crate) sbn: u32,
    pub(crate) source_symbols: u32,
    pub(crate) symbol_size: usize,
    pub(crate) code: Code,
}

/// The scheme's coder of one block.
pub(crate) enum Code {
    /// Compact No-Code: source symbols only.
    None,
    /// RaptorQ: raptorq's encoder with its intermediate symbols.
    RaptorQ(SourceBlockEncoder),
    /// Raptor: `raptor-code`'s encoder behind RFC 5053's sub-blocking.
    Raptor(RaptorBlockEncoder),
}

impl RepairCoder {
    /// Checks `data` against block `sbn` of `layout` and, for RaptorQ,
    /// computes its intermediate symbols.
    pub(crate) fn new(
        layout: &Layout,
        sbn: u32,
        data: &[u8],
        plans: &PlanCache,
    ) -> Result<Self, SymbolError> {
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
        let t = layout.symbol_size();
        let code = match layout.scheme() {
            FecScheme::NoCode => Code::None,
            FecScheme::Raptor => Code::Raptor(RaptorBlockEncoder::new(layout, sbn, data)?),
            FecScheme::RaptorQ => {
                let padded_len = k as usize * usize::from(t);
                let padded: Cow<'_, [u8]> = if data.len() == padded_len {
                    Cow::Borrowed(data)
                } else {
                    let mut v = Vec::with_capacity(padded_len);
                    v.extend_from_slice(data);
                    v.resize(padded_len, 0);
                    Cow::Owned(v)
                };
                // K <= 56403 for a valid layout, so it fits u16.
                let plan = plans.plan(k as u16);
                let config = raptorq_block_config(t, k);
                // RaptorQ SBNs are 8 bits; a valid layout has Z <= 255.
                Code::RaptorQ(SourceBlockEncoder::with_encoding_plan(
                    sbn as u8, &config, &padded, &plan,
                ))
            }
        };
        Ok(RepairCoder {
            sbn,
            source_symbols: k,
            symbol_size: usize::from(t),
            code,
        })
    }

    /// The scheme this coder codes.
    pub(crate) fn scheme(&self) -> FecScheme {
        match self.code {
            Code::None => FecScheme::NoCode,
            Code::RaptorQ(_) => FecScheme::RaptorQ,
            Code::Raptor(_) => FecScheme::Raptor,
        }
    }

    /// Source symbol `esi` of the block whose bytes are `data`.
    pub(crate) fn source_symbol<'d>(&'d self, data: &'d [u8], esi: u32) -> Option<&'d [u8]> {
        if esi >= self.source_symbols {
            return None;
        }
        if let Code::Raptor(raptor) = &self.code
            && raptor.is_interleaved()
        {
            return raptor.source_symbol(esi);
        }
        let start = esi as usize * self.symbol_size;
        let end = (start + self.symbol_size).min(data.len());
        data.get(start..end)
    }

    pub(crate) fn repair_symbols(
        &self,
        first_esi: u32,
        count: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, SymbolError> {
        if let Code::Raptor(raptor) = &self.code {
            return raptor.repair_symbols(first_esi, count);
        }
        let encoder = self.repair_encoder(first_esi, count)?;
        Ok(encoder
            .repair_packets(first_esi - self.source_symbols, count)
            .into_iter()
            .map(|p| {
                let (id, data) = p.split();
                (id.encoding_symbol_id(), data)
            })
            .collect())
    }

    pub(crate) fn write_repair_symbols(
        &self,
        first_esi: u32,
        count: u32,
        out: &mut [u8],
    ) -> Result<usize, SymbolError> {
        if let Code::Raptor(raptor) = &self.code {
            return raptor.write_repair_symbols(first_esi, count, out);
        }
        let needed = count as usize * self.symbol_size;
        if out.len() < needed {
            return Err(SymbolError::BufferTooSmall {
                needed,
                actual: out.len(),
            });
        }
        let encoder = self.repair_encoder(first_esi, count)?;
        for (packet, slot) in encoder
            .repair_packets(first_esi - self.source_symbols, count)
            .iter()
            .zip(out.chunks_exact_mut(self.symbol_size))
        {
            slot.copy_from_slice(packet.data());
        }
        Ok(needed)
    }

    fn repair_encoder(
        &self,
        first_esi: u32,
        count: u32,
    ) -> Result<&SourceBlockEncoder, SymbolError> {
        let Code::RaptorQ(encoder) = &self.code else {
            return Err(SymbolError::NoRepairSymbols(self.scheme()));
        };
        let limit = FecScheme::RaptorQ.esi_limit();
        let end = u64::from(first_esi) + u64::from(count);
        if first_esi < self.source_symbols || end > u64::from(limit) {
            let esi = if first_esi < self.source_symbols {
                first_esi
            } else {
                limit
            };
            return Err(SymbolError::EncodingSymbolId {
                sbn: self.sbn,
                esi,
                limit,
            });
        }
        Ok(encoder)
    }
}
