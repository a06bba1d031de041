//! Decoding a whole object: one [`BlockDecoder`] per block, created when the
//! block's first symbol arrives, and decoded blocks handed out in order.

use bitvec::prelude::{BitVec, bitvec};

use crate::block_decoder::{BlockDecoder, SymbolOutcome};
use crate::error::SymbolError;
use crate::layout::Layout;
use crate::oti::Oti;
use crate::payload::{PAYLOAD_ID_LEN, PayloadId};

/// A decoded block, ready to be written at `offset` of the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedBlock {
    /// Source block number.
    pub sbn: u32,
    /// Byte offset of the block in the object.
    pub offset: u64,
    /// The block's bytes (the last block is not padded).
    pub data: Vec<u8>,
}

/// The receiving state of one object.
///
/// Memory is bounded by the blocks in flight: a block's buffer exists from
/// its first symbol until [`ObjectDecoder::pop_block`] hands it out, or
/// [`ObjectDecoder::take_decoded`] takes it ahead of order (then
/// `pop_block` skips it).
#[derive(Debug)]
pub struct ObjectDecoder {
    layout: Layout,
    blocks: Vec<Option<BlockDecoder>>,
    /// Blocks decoded (and possibly already handed out).
    decoded: BitVec,
    decoded_count: u32,
    next_out: u32,
    /// Blocks taken ahead of order by [`Self::take_decoded`]: the in-order
    /// stream skips them.
    taken: BitVec,
    /// Bytes of decoded blocks not yet handed out.
    held_bytes: usize,
    /// Block buffers that solves left over, reused for new blocks.
    spare_buffers: Vec<Vec<u8>>,
}

impl ObjectDecoder {
    /// A decoder for the object `oti` describes.
    pub fn new(oti: &Oti) -> Self {
        Self::from_layout(oti.layout())
    }

    /// A decoder for `layout`.
    pub fn from_layout(layout: Layout) -> Self {
        let blocks = layout.block_count() as usize;
        ObjectDecoder {
            layout,
            blocks: std::iter::repeat_with(|| None).take(blocks).collect(),
            decoded: bitvec![0; blocks],
            decoded_count: 0,
            next_out: 0,
            taken: bitvec![0; blocks],
            held_bytes: 0,
            spare_buffers: Vec::new(),
        }
    }

    /// The object's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Adds one symbol. Bad SBNs, ESIs and lengths are errors that change
    /// nothing.
    pub fn add_symbol(
        &mut self,
        id: PayloadId,
        symbol: &[u8],
    ) -> Result<SymbolOutcome, SymbolError> {
        let sbn = id.sbn;
        let index = sbn as usize;
        if index >= self.blocks.len() {
            return Err(SymbolError::SourceBlockNumber {
                sbn,
                blocks: self.layout.block_count(),
            });
        }
        if self.decoded[index] {
            // Still validate, so a caller counting bad packets sees them.
            self.layout.check_symbol(sbn, id.esi, symbol.len())?;
            return Ok(SymbolOutcome::AlreadyDecoded);
        }
        let block = match &mut self.blocks[index] {
            Some(block) => block,
            slot @ None => {
                let buffer = self.spare_buffers.pop().unwrap_or_default();
                slot.insert(BlockDecoder::with_buffer(&self.layout, sbn, buffer)?)
            }
        };
        let outcome = block.add_symbol(id.esi, symbol)?;
        if outcome == SymbolOutcome::Decoded {
            // A few spares suffice: blocks are mostly received one after another.
            if let Some(spare) = block
                .take_spare_buffer()
                .filter(|_| self.spare_buffers.len() < 4)
            {
                self.spare_buffers.push(spare);
            }
            self.decoded.set(index, true);
            self.decoded_count += 1;
            self.held_bytes += self.layout.block_len(sbn).unwrap_or(0);
        }
        Ok(outcome)
    }

    /// Adds one ALC payload: a 4-byte FEC Payload ID followed by the symbol.
    pub fn add_payload(&mut self, payload: &[u8]) -> Result<SymbolOutcome, SymbolError> {
        let id = PayloadId::decode(self.layout.scheme(), payload)?;
        self.add_symbol(id, &payload[PAYLOAD_ID_LEN..])
    }

    /// The next decoded block in SBN order, or `None` if the next block is
    /// not decoded yet. Its memory is released when handed out. Blocks
    /// taken ahead of order ([`Self::take_decoded`]) are skipped.
    pub fn pop_block(&mut self) -> Option<DecodedBlock> {
        self.skip_taken();
        let sbn = self.next_out;
        let index = sbn as usize;
        if index >= self.blocks.len() || !self.decoded[index] {
            return None;
        }
        let data = self.blocks[index].take()?.take_data()?;
        self.held_bytes = self.held_bytes.saturating_sub(data.len());
        self.next_out += 1;
        self.skip_taken();
        Some(DecodedBlock {
            sbn,
            offset: self.layout.block_offset(sbn)?,
            data,
        })
    }

    /// Moves the in-order cursor past blocks already taken.
    fn skip_taken(&mut self) {
        while self
            .taken
            .get(self.next_out as usize)
            .is_some_and(|taken| *taken)
        {
            self.next_out += 1;
        }
    }

    /// Takes block `sbn` out of the decoder ahead of order, if it is
    /// decoded and not yet handed out: its byte offset and bytes. Its
    /// memory leaves with it and [`Self::pop_block`] will skip it, so the
    /// in-order stream no longer covers the whole object.
    pub fn take_decoded(&mut self, sbn: u32) -> Option<(u64, Vec<u8>)> {
        let index = sbn as usize;
        if sbn < self.next_out || !*self.decoded.get(index)? || self.taken[index] {
            return None;
        }
        let offset = self.layout.block_offset(sbn)?;
        let data = self.blocks[index].take()?.take_data()?;
        self.taken.set(index, true);
        self.held_bytes = self.held_bytes.saturating_sub(data.len());
        self.skip_taken();
        Some((offset, data))
    }

    /// Blocks handed out so far, in order or taken ahead of it, up to the
    /// first one that is not: the in-order cursor. Equals the block count
    /// once every block has left the decoder.
    pub fn blocks_out(&self) -> u32 {
        self.next_out
    }

    /// Bytes of decoded blocks still held: those waiting for an earlier
    /// block before [`Self::pop_block`] can hand them out.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Block `sbn` if it is decoded but not yet handed out by
    /// [`Self::pop_block`] (it waits for an earlier block): its byte offset
    /// and bytes. Lets a caller use blocks ahead of the in-order stream.
    pub fn peek_decoded(&self, sbn: u32) -> Option<(u64, &[u8])> {
        if sbn < self.next_out || !*self.decoded.get(sbn as usize)? {
            return None;
        }
        let data = self.blocks.get(sbn as usize)?.as_ref()?.data()?;
        Some((self.layout.block_offset(sbn)?, data))
    }

    /// Whether every block is decoded.
    pub fn is_complete(&self) -> bool {
        self.decoded_count == self.layout.block_count()
    }

    /// Number of decoded blocks.
    pub fn blocks_decoded(&self) -> u32 {
        self.decoded_count
    }

    /// The decoder of block `sbn`, if it has received symbols and not yet
    /// been handed out.
    pub fn block(&self, sbn: u32) -> Option<&BlockDecoder> {
        self.blocks.get(sbn as usize)?.as_ref()
    }

    /// Whether block `sbn` is decoded.
    pub fn is_block_decoded(&self, sbn: u32) -> bool {
        self.decoded.get(sbn as usize).is_some_and(|b| *b)
    }

    /// For every block not yet decoded, `(sbn, symbols still needed)`:
    /// what a repair request must ask for (before any safety margin).
    pub fn symbols_needed(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (0..self.layout.block_count())
            .filter(|&sbn| !self.is_block_decoded(sbn))
            .map(|sbn| {
                let needed = match self.block(sbn) {
                    Some(block) => block.symbols_needed(),
                    None => self.layout.source_symbols(sbn).unwrap_or(0),
                };
                (sbn, needed)
            })
    }

    /// Forgets block `sbn` (for one whose data failed verification) so that
    /// it is received again. Blocks already handed out (or taken) cannot be
    /// reset.
    pub fn reset_block(&mut self, sbn: u32) -> bool {
        let index = sbn as usize;
        if index >= self.blocks.len() || sbn < self.next_out || self.taken[index] {
            return false;
        }
        if self.decoded.replace(index, false) {
            self.decoded_count -= 1;
            let len = self.layout.block_len(sbn).unwrap_or(0);
            self.held_bytes = self.held_bytes.saturating_sub(len);
        }
        self.blocks[index] = None;
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use crate::{BlockEncoder, BlockSize, FecScheme};

    /// Feeds every source symbol of block `sbn` of `object`.
    fn feed_block(decoder: &mut ObjectDecoder, object: &[u8], sbn: u32) {
        let layout = *decoder.layout();
        let range = layout.block_range(sbn).unwrap();
        let data = &object[range.start as usize..range.end as usize];
        let encoder = BlockEncoder::new(&layout, sbn, data).unwrap();
        for esi in 0..encoder.source_symbols() {
            let symbol = encoder.source_symbol(esi).unwrap();
            decoder
                .add_symbol(PayloadId::new(sbn, esi), symbol)
                .unwrap();
        }
    }

    #[test]
    fn blocks_taken_ahead_free_their_memory_and_are_skipped_in_order() {
        let object: Vec<u8> = (0..40_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let oti = Oti::for_object(
            FecScheme::RaptorQ,
            object.len() as u64,
            64,
            BlockSize::Bytes(4096),
        )
        .unwrap();
        let layout = oti.layout();
        let blocks = layout.block_count();
        assert!(blocks >= 6, "{blocks} blocks");
        let mut decoder = ObjectDecoder::new(&oti);
        let mut out = vec![0u8; object.len()];
        // Blocks 1, 2 and 3 decode while block 0 has nothing.
        for sbn in 1..4 {
            feed_block(&mut decoder, &object, sbn);
        }
        let held: usize = (1..4).map(|sbn| layout.block_len(sbn).unwrap()).sum();
        assert_eq!(decoder.held_bytes(), held);
        assert!(decoder.pop_block().is_none());
        // Block 2 is taken ahead of order; 1 and 3 stay held.
        let (offset, data) = decoder.take_decoded(2).unwrap();
        out[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
        assert!(decoder.take_decoded(2).is_none(), "taken once");
        assert!(decoder.peek_decoded(2).is_none());
        assert!(!decoder.reset_block(2), "a taken block is out");
        assert_eq!(decoder.held_bytes(), held - data.len());
        assert!(decoder.is_block_decoded(2));
        // Block 0 completes: the in-order stream gives 0, 1 and 3, skipping 2.
        feed_block(&mut decoder, &object, 0);
        let mut popped = Vec::new();
        while let Some(block) = decoder.pop_block() {
            let end = block.offset as usize + block.data.len();
            out[block.offset as usize..end].copy_from_slice(&block.data);
            popped.push(block.sbn);
        }
        assert_eq!(popped, [0, 1, 3]);
        assert_eq!(decoder.blocks_out(), 4);
        assert_eq!(decoder.held_bytes(), 0);
        // The last block is taken at once; the cursor passes it when the
        // blocks before it are out.
        feed_block(&mut decoder, &object, blocks - 1);
        let (offset, data) = decoder.take_decoded(blocks - 1).unwrap();
        out[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
        for sbn in 4..blocks - 1 {
            feed_block(&mut decoder, &object, sbn);
            let block = decoder.pop_block().unwrap();
            assert_eq!(block.sbn, sbn);
            let end = block.offset as usize + block.data.len();
            out[block.offset as usize..end].copy_from_slice(&block.data);
        }
        assert!(decoder.pop_block().is_none());
        assert_eq!(decoder.blocks_out(), blocks);
        assert!(decoder.is_complete());
        assert_eq!(decoder.held_bytes(), 0);
        assert_eq!(out, object);
    }
}
