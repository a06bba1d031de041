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
/// its first symbol until [`ObjectDecoder::pop_block`] hands it out.
#[derive(Debug)]
pub struct ObjectDecoder {
    layout: Layout,
    blocks: Vec<Option<BlockDecoder>>,
    /// Blocks decoded (and possibly already handed out).
    decoded: BitVec,
    decoded_count: u32,
    next_out: u32,
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
        }
        Ok(outcome)
    }

    /// Adds one ALC payload: a 4-byte FEC Payload ID followed by the symbol.
    pub fn add_payload(&mut self, payload: &[u8]) -> Result<SymbolOutcome, SymbolError> {
        let id = PayloadId::decode(self.layout.scheme(), payload)?;
        self.add_symbol(id, &payload[PAYLOAD_ID_LEN..])
    }

    /// The next decoded block in SBN order, or `None` if the next block is
    /// not decoded yet. Its memory is released when handed out.
    pub fn pop_block(&mut self) -> Option<DecodedBlock> {
        let sbn = self.next_out;
        let index = sbn as usize;
        if index >= self.blocks.len() || !self.decoded[index] {
            return None;
        }
        let data = self.blocks[index].take()?.take_data()?;
        self.next_out += 1;
        Some(DecodedBlock {
            sbn,
            offset: self.layout.block_offset(sbn)?,
            data,
        })
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
    /// it is received again. Blocks already handed out cannot be reset.
    pub fn reset_block(&mut self, sbn: u32) -> bool {
        let index = sbn as usize;
        if index >= self.blocks.len() || sbn < self.next_out {
            return false;
        }
        if self.decoded.replace(index, false) {
            self.decoded_count -= 1;
        }
        self.blocks[index] = None;
        true
    }
}
