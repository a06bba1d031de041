//! Raptor (RFC 5053, FEC Encoding ID 1): the FEC OTI and block coding.
//!
//! The code itself is the `raptor-code` crate's (evaluated against the RFC
//! in `docs/raptor.md`); this module adds what RFC 5053 defines around it
//! and dms needs: the 14-byte OTI with its limits (K = 4…8192 per block),
//! the source block and sub-block partition of §5.3.1.2, and encoders and
//! decoders that check every input before the crate (which panics on
//! K > 8192) sees it.
//!
//! [`FecScheme::Raptor`](crate::FecScheme::Raptor) is coded through the
//! common types ([`Oti`](crate::Oti), [`BlockEncoder`](crate::BlockEncoder),
//! [`BlockDecoder`](crate::BlockDecoder), …); this module holds what is
//! Raptor's own: [`RaptorOti`] and the sub-block interleaving.

mod codec;
mod oti;

pub(crate) use codec::{RaptorBlockEncoder, deinterleave, interleave, sub_symbol_sizes};
pub use oti::{RAPTOR_MAX_SOURCE_SYMBOLS, RAPTOR_MIN_SOURCE_SYMBOLS, RAPTOR_OTI_LEN, RaptorOti};
