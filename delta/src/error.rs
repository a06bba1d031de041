//! The crate's typed errors.

use std::path::PathBuf;

/// Why a delta header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Fewer bytes than a header.
    #[error("delta truncated: shorter than its header")]
    Truncated,
    /// The delta does not start with `DMSDELTA`.
    #[error("not a dms delta (bad magic)")]
    BadMagic,
    /// A format version this crate does not know.
    #[error("unsupported delta format version {0}")]
    UnsupportedVersion(u8),
    /// A method code this crate does not know.
    #[error("unknown delta method {0}")]
    UnknownMethod(u8),
    /// The reserved bytes are not zero.
    #[error("delta header reserved bytes are not zero")]
    Reserved,
}

/// Errors of [`make`](crate::make) and [`apply`](crate::apply).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// The delta's header is malformed.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The base given is not the version the delta was made from.
    #[error(
        "wrong base: the delta applies to {expected_size} bytes with SHA-256 {expected}, the base given has {actual_size} bytes with SHA-256 {actual}"
    )]
    WrongBase {
        /// SHA-256 (hex) the delta was made from.
        expected: String,
        /// Size the delta was made from.
        expected_size: u64,
        /// SHA-256 (hex) of the base given.
        actual: String,
        /// Size of the base given.
        actual_size: u64,
    },
    /// The body could not be decoded (corrupt or truncated delta).
    #[error("corrupt delta: {0}")]
    Corrupt(String),
    /// The body decoded to something other than the target the header names.
    #[error(
        "delta result mismatch: expected {expected_size} bytes with SHA-256 {expected}, got {actual_size} bytes with SHA-256 {actual}"
    )]
    TargetMismatch {
        /// SHA-256 (hex) the header names.
        expected: String,
        /// Size the header names.
        expected_size: u64,
        /// SHA-256 (hex) of what was decoded (of the first bytes only when
        /// decoding overran the size).
        actual: String,
        /// Bytes decoded (stopped one past the expected size on overrun).
        actual_size: u64,
    },
    /// The versions are too large for the reference window (base + target
    /// past 2 GiB), or do not fit in memory on this platform.
    #[error("input too large for a delta: {0} bytes")]
    TooLarge(u64),
    /// The output path names the base: applying must never modify the base.
    #[error("output {0} is the base file itself")]
    OutputIsBase(PathBuf),
    /// Reading an input or writing the output failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An encoder failed (in memory; not expected in practice).
    #[error("encoding failed: {0}")]
    Encode(std::io::Error),
}
