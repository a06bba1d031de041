//! Errors of the sender.

use dms_fec::{FecError, OtiError, SymbolError};

use crate::alc::AlcError;
use crate::lct::LctError;

/// An error of [`Sender`](super::Sender).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SenderError {
    /// The configuration cannot work.
    #[error("invalid sender configuration: {0}")]
    InvalidConfig(&'static str),
    /// The object's FEC parameters are invalid (empty object, bad T, …).
    #[error("object {content_location:?}: {source}")]
    Oti {
        /// The object's `Content-Location`.
        content_location: String,
        /// What is wrong.
        source: OtiError,
    },
    /// The object's exact OTI ([`ObjectSpec::oti`](super::ObjectSpec::oti))
    /// describes another length than the source's.
    #[error(
        "object {content_location:?}: the OTI is for {oti} bytes, the source has {source_length}"
    )]
    OtiLength {
        /// The object's `Content-Location`.
        content_location: String,
        /// The OTI's transfer length.
        oti: u64,
        /// The source's length.
        source_length: u64,
    },
    /// Seeking the source to learn its length failed.
    #[error("object {content_location:?}: measuring the source: {source}")]
    SourceLength {
        /// The object's `Content-Location`.
        content_location: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The object's symbols do not fit in `max_datagram_size`.
    #[error("a symbol of {symbol_size} bytes does not fit: at most {max} bytes per packet")]
    SymbolTooLarge {
        /// The object's symbol size T.
        symbol_size: u16,
        /// The largest symbol that fits with this object's headers.
        max: usize,
    },
    /// Keeping the object's repair symbols across carousel rounds would
    /// exceed `repair_cache_bytes`.
    #[error(
        "repair symbols need {needed} bytes across rounds; {available} of the cache budget left"
    )]
    RepairCacheBudget {
        /// Bytes of repair symbols of the object.
        needed: u64,
        /// Budget left.
        available: u64,
    },
    /// No TOI is left (TOIs are not reused within a session).
    #[error("no TOI left in this session")]
    ToiExhausted,
    /// No object of the session has this TOI.
    #[error("no object with TOI {0} in this session")]
    UnknownObject(u128),
    /// The session was closed (A flag sent); no object can be added.
    #[error("the session is closed")]
    SessionClosed,
    /// Reading a block of an object failed; the object is abandoned (it
    /// leaves the FDT and sends nothing more) and the session goes on.
    #[error("reading object TOI {toi}: {source}")]
    Read {
        /// The object's TOI.
        toi: u128,
        /// The read error (I/O, or a source shorter than it was).
        source: FecError,
    },
    /// Encoding a block failed.
    #[error("encoding object TOI {toi}: {source}")]
    Encode {
        /// The object's TOI.
        toi: u128,
        /// The FEC error.
        source: SymbolError,
    },
    /// Writing the packet failed (e.g. the caller's buffer is too small).
    #[error(transparent)]
    Alc(#[from] AlcError),
    /// An LCT field is out of range (e.g. the TSI exceeds 48 bits).
    #[error(transparent)]
    Lct(#[from] LctError),
    /// An internal invariant did not hold (a bug; reported, not panicked).
    #[error("internal error: {0}")]
    Internal(&'static str),
}
