//! Typed errors of the fec crate.

/// Why an OTI (or the parameters for one) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtiError {
    /// The FEC Encoding ID is not one dms implements.
    #[error("unknown FEC encoding id {0} (dms speaks 0 = no-code, 1 = Raptor and 6 = RaptorQ)")]
    UnknownScheme(u8),
    /// The scheme name is not one dms implements.
    #[error("unknown FEC scheme {0:?} (expected raptorq, raptor or nocode)")]
    UnknownSchemeName(String),
    /// The encoded OTI has the wrong length.
    #[error("OTI must be {expected} bytes, got {actual}")]
    Length {
        /// Bytes this scheme's OTI has.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The object is empty: there is nothing to protect.
    #[error("transfer length is 0")]
    EmptyObject,
    /// The object is larger than the scheme can carry.
    #[error("transfer length {length} exceeds the scheme's limit of {max} bytes")]
    TransferLengthTooLarge {
        /// The transfer length asked for.
        length: u64,
        /// The largest the scheme allows.
        max: u64,
    },
    /// The symbol size is 0.
    #[error("symbol size T is 0")]
    ZeroSymbolSize,
    /// The symbol alignment is 0.
    #[error("symbol alignment Al is 0")]
    ZeroAlignment,
    /// The symbol size is not a multiple of the alignment.
    #[error("symbol size T = {symbol_size} is not a multiple of the alignment Al = {alignment}")]
    Misaligned {
        /// T.
        symbol_size: u16,
        /// Al.
        alignment: u8,
    },
    /// The number of source blocks is out of range.
    #[error("number of source blocks Z = {blocks} is outside 1..={max}")]
    SourceBlocks {
        /// Z.
        blocks: u32,
        /// The scheme's limit.
        max: u32,
    },
    /// More source blocks than source symbols: some block would be empty.
    #[error("Z = {blocks} source blocks for only {symbols} source symbols")]
    EmptyBlock {
        /// Z.
        blocks: u32,
        /// ceil(F / T).
        symbols: u64,
    },
    /// A source block would hold more symbols than the scheme allows.
    #[error("a source block would hold {symbols} symbols, more than the scheme's {max}")]
    BlockTooLarge {
        /// Symbols in the largest block.
        symbols: u64,
        /// The scheme's limit.
        max: u32,
    },
    /// The number of sub-blocks is out of range.
    #[error(
        "number of sub-blocks N = {0} is not supported (RaptorQ: dms uses N = 1; Raptor: 1 ≤ N ≤ T/Al)"
    )]
    SubBlocks(u16),
    /// The maximum source block length is 0.
    #[error("maximum source block length is 0")]
    ZeroBlockLength,
}

/// Why a symbol or payload id was rejected, or a block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SymbolError {
    /// The source block number is outside the object's layout.
    #[error("source block number {sbn} out of range (object has {blocks} blocks)")]
    SourceBlockNumber {
        /// The SBN received.
        sbn: u32,
        /// Z.
        blocks: u32,
    },
    /// The encoding symbol id is outside what the scheme allows for the block.
    #[error("encoding symbol id {esi} out of range for block {sbn} (limit {limit})")]
    EncodingSymbolId {
        /// The block.
        sbn: u32,
        /// The ESI received.
        esi: u32,
        /// One past the largest valid ESI.
        limit: u32,
    },
    /// The symbol has the wrong length.
    #[error("symbol {esi} of block {sbn} is {actual} bytes, expected {expected}")]
    SymbolLength {
        /// The block.
        sbn: u32,
        /// The ESI.
        esi: u32,
        /// Bytes expected.
        expected: usize,
        /// Bytes received.
        actual: usize,
    },
    /// The payload id bytes are too short.
    #[error("FEC payload id needs 4 bytes, got {0}")]
    PayloadIdLength(usize),
    /// The scheme cannot make repair symbols.
    #[error("the {0} scheme has no repair symbols")]
    NoRepairSymbols(crate::FecScheme),
    /// The caller's buffer is too small.
    #[error("buffer of {actual} bytes is too small, {needed} needed")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The block data handed to an encoder has the wrong length.
    #[error("block {sbn} holds {expected} bytes, got {actual}")]
    BlockLength {
        /// The block.
        sbn: u32,
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
}

/// Any error of the fec crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FecError {
    /// An OTI problem.
    #[error(transparent)]
    Oti(#[from] OtiError),
    /// A symbol problem.
    #[error(transparent)]
    Symbol(#[from] SymbolError),
    /// Reading the object failed.
    #[error("reading the object: {0}")]
    Io(#[from] std::io::Error),
}
