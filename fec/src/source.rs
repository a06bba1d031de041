//! Reading an object block by block, so a multi-GiB object is never held
//! in memory: only the block being encoded is.

use std::io::{Read, Seek, SeekFrom};

use crate::error::{FecError, SymbolError};
use crate::layout::Layout;

/// Reads the source blocks of an object, in order, into one reused buffer.
#[derive(Debug)]
pub struct BlockReader<R> {
    reader: R,
    layout: Layout,
    next_sbn: u32,
    buf: Vec<u8>,
}

impl<R: Read> BlockReader<R> {
    /// Reads `layout`'s blocks from `reader`, which must yield exactly
    /// `layout.transfer_length()` bytes.
    pub fn new(reader: R, layout: Layout) -> Self {
        BlockReader {
            reader,
            layout,
            next_sbn: 0,
            buf: Vec::new(),
        }
    }

    /// The next block as `(sbn, bytes)`, or `None` after the last. A reader
    /// that ends early is an [`std::io::ErrorKind::UnexpectedEof`] error.
    pub fn next_block(&mut self) -> Result<Option<(u32, &[u8])>, FecError> {
        let sbn = self.next_sbn;
        let Some(len) = self.layout.block_len(sbn) else {
            return Ok(None);
        };
        self.buf.resize(len, 0);
        self.reader.read_exact(&mut self.buf)?;
        self.next_sbn += 1;
        Ok(Some((sbn, &self.buf)))
    }

    /// The layout being read.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Gives back the reader.
    pub fn into_inner(self) -> R {
        self.reader
    }
}

/// Reads block `sbn` of an object from a seekable source into `buf`
/// (resized to the block's length): random access for repair servers.
pub fn read_block<R: Read + Seek>(
    reader: &mut R,
    layout: &Layout,
    sbn: u32,
    buf: &mut Vec<u8>,
) -> Result<(), FecError> {
    let (Some(offset), Some(len)) = (layout.block_offset(sbn), layout.block_len(sbn)) else {
        return Err(SymbolError::SourceBlockNumber {
            sbn,
            blocks: layout.block_count(),
        }
        .into());
    };
    reader.seek(SeekFrom::Start(offset))?;
    buf.resize(len, 0);
    reader.read_exact(buf)?;
    Ok(())
}
