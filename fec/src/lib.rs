//! Forward error correction for dms: RaptorQ (RFC 6330, FEC Encoding ID 6)
//! and Compact No-Code (RFC 5445, FEC Encoding ID 0) behind one interface.
//!
//! The crate is blocking and does no I/O of its own beyond reading an
//! object through [`BlockReader`]. It provides:
//!
//! - [`Oti`]: validated FEC Object Transmission Information, its wire form,
//!   and [`Oti::for_object`] to plan an object's blocks;
//! - [`Layout`]: the RFC 6330 / RFC 5052 partition of an object into source
//!   blocks and symbols;
//! - [`PayloadId`]: the FEC Payload ID of each scheme;
//! - [`BlockEncoder`]: source symbols as slices of the object, repair
//!   symbols for any ESI range, with cached RaptorQ plans ([`PlanCache`]);
//! - [`PreparedBlock`] and [`EncoderCache`]: the owning, shareable form of
//!   a block encoder and a byte-bounded LRU cache of them, so a repair
//!   server computes a block's intermediate symbols once for many requests;
//! - [`BlockDecoder`] and [`ObjectDecoder`]: per-block symbol bitmaps with
//!   duplicate detection, assembly by copy when all source symbols arrive,
//!   and the RaptorQ solve only at K, K+1, … symbols.
//!
//! Nothing here panics on input from the network: SBN, ESI and lengths are
//! checked before raptorq (which asserts on bad input) sees them.
//!
//! ```
//! use dms_fec::{BlockSize, FecScheme, ObjectDecoder, Oti, BlockEncoder, PayloadId};
//!
//! let object: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
//! let oti = Oti::for_object(FecScheme::RaptorQ, object.len() as u64, 64, BlockSize::Bytes(4096))?;
//! let layout = oti.layout();
//! let mut decoder = ObjectDecoder::new(&oti);
//! for sbn in 0..layout.block_count() {
//!     let range = layout.block_range(sbn).unwrap();
//!     let encoder = BlockEncoder::new(&layout, sbn, &object[range.start as usize..range.end as usize])?;
//!     // Lose every source symbol but the first; send repair symbols instead.
//!     let k = encoder.source_symbols();
//!     decoder.add_symbol(PayloadId::new(sbn, 0), encoder.source_symbol(0).unwrap())?;
//!     for (esi, symbol) in encoder.repair_symbols(k, k + 1)? {
//!         decoder.add_symbol(PayloadId::new(sbn, esi), &symbol)?;
//!     }
//! }
//! assert!(decoder.is_complete());
//! let mut received = Vec::new();
//! while let Some(block) = decoder.pop_block() {
//!     received.extend_from_slice(&block.data);
//! }
//! assert_eq!(received, object);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod block_decoder;
mod encoder;
mod encoder_cache;
mod error;
mod layout;
mod object_decoder;
mod oti;
pub mod overhead;
mod payload;
mod plan_cache;
mod prepared;
pub mod raptor;
mod scheme;
mod source;

pub use block_decoder::{BlockDecoder, SymbolOutcome};
pub use encoder::BlockEncoder;
pub use encoder_cache::{DEFAULT_ENCODER_CACHE_BYTES, EncoderCache, EncoderCacheStats};
pub use error::{FecError, OtiError, SymbolError};
pub use layout::Layout;
pub use object_decoder::{DecodedBlock, ObjectDecoder};
pub use oti::{
    BlockSize, DEFAULT_ALIGNMENT, DEFAULT_BLOCK_BYTES, NO_CODE_OTI_LEN, Oti, OtiBytes,
    RAPTORQ_OTI_LEN,
};
pub use payload::{PAYLOAD_ID_LEN, PayloadId};
pub use plan_cache::PlanCache;
pub use prepared::PreparedBlock;
pub use scheme::FecScheme;
pub use source::{BlockReader, read_block};
