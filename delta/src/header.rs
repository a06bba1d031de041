//! The self-describing delta header: what a delta was made from and what
//! it must produce.
//!
//! Layout (all integers little-endian), [`HEADER_LEN`] bytes:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | magic `DMSDELTA` |
//! | 8 | 1 | format version (1) |
//! | 9 | 1 | method ([`Method`]) |
//! | 10 | 2 | reserved, zero |
//! | 12 | 8 | base size |
//! | 20 | 32 | base SHA-256 |
//! | 52 | 8 | target size |
//! | 60 | 32 | target SHA-256 |
//!
//! The body (the method's own encoding) follows the header to the end of
//! the delta.

use crate::error::HeaderError;

/// The eight bytes every delta starts with.
pub const MAGIC: [u8; 8] = *b"DMSDELTA";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the encoded header in bytes.
pub const HEADER_LEN: usize = 92;

/// How the body of a delta is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// A zstd frame compressed with the base as reference prefix
    /// (`zstd --patch-from` style, long-distance matching).
    ZstdRef,
    /// A bsdiff-family diff (bsdiff's controls, byte-wise differences
    /// and literals, found with a hash index of the base) whose three
    /// streams are zstd frames: dms's own format, see the crate docs.
    BsdiffZstd,
}

impl Method {
    /// The method's code in the header.
    pub fn code(self) -> u8 {
        match self {
            Method::ZstdRef => 1,
            Method::BsdiffZstd => 3,
        }
    }

    /// The method with this header code, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Method::ZstdRef),
            3 => Some(Method::BsdiffZstd),
            _ => None,
        }
    }

    /// A short lowercase name (`zstd-ref`, `bsdiff-zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Method::ZstdRef => "zstd-ref",
            Method::BsdiffZstd => "bsdiff-zstd",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed delta header. Every value of this type is one this crate can
/// apply (known version and method).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// How the body is encoded.
    pub method: Method,
    /// Size in bytes of the version the delta applies to.
    pub base_size: u64,
    /// SHA-256 of the version the delta applies to.
    pub base_sha256: [u8; 32],
    /// Size in bytes of the version the delta produces.
    pub target_size: u64,
    /// SHA-256 of the version the delta produces.
    pub target_sha256: [u8; 32],
}

impl Header {
    /// The header's wire form.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8] = FORMAT_VERSION;
        out[9] = self.method.code();
        out[12..20].copy_from_slice(&self.base_size.to_le_bytes());
        out[20..52].copy_from_slice(&self.base_sha256);
        out[52..60].copy_from_slice(&self.target_size.to_le_bytes());
        out[60..92].copy_from_slice(&self.target_sha256);
        out
    }

    /// Parses the header at the start of `bytes` (which may hold more: the
    /// body). Never panics.
    pub fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        let Some(bytes) = bytes.get(..HEADER_LEN) else {
            return Err(HeaderError::Truncated);
        };
        if bytes[0..8] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if bytes[8] != FORMAT_VERSION {
            return Err(HeaderError::UnsupportedVersion(bytes[8]));
        }
        let method = Method::from_code(bytes[9]).ok_or(HeaderError::UnknownMethod(bytes[9]))?;
        if bytes[10..12] != [0, 0] {
            return Err(HeaderError::Reserved);
        }
        Ok(Header {
            method,
            base_size: u64_at(bytes, 12),
            base_sha256: sha_at(bytes, 20),
            target_size: u64_at(bytes, 52),
            target_sha256: sha_at(bytes, 60),
        })
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

fn sha_at(bytes: &[u8], at: usize) -> [u8; 32] {
    let mut b = [0u8; 32];
    b.copy_from_slice(&bytes[at..at + 32]);
    b
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn sample() -> Header {
        Header {
            method: Method::BsdiffZstd,
            base_size: 12345,
            base_sha256: [7; 32],
            target_size: u64::MAX,
            target_sha256: [9; 32],
        }
    }

    #[test]
    fn round_trips() {
        let h = sample();
        let mut bytes = h.encode().to_vec();
        bytes.extend_from_slice(b"body");
        assert_eq!(Header::parse(&bytes).unwrap(), h);
    }

    #[test]
    fn rejects_each_bad_field() {
        let good = sample().encode();
        assert_eq!(
            Header::parse(&good[..HEADER_LEN - 1]),
            Err(HeaderError::Truncated)
        );
        let mut b = good;
        b[0] = b'X';
        assert_eq!(Header::parse(&b), Err(HeaderError::BadMagic));
        let mut b = good;
        b[8] = 2;
        assert_eq!(Header::parse(&b), Err(HeaderError::UnsupportedVersion(2)));
        let mut b = good;
        b[9] = 0;
        assert_eq!(Header::parse(&b), Err(HeaderError::UnknownMethod(0)));
        // Code 2 was bsdiff 4.x (qbsdiff) before the bsdiff-zstd method.
        let mut b = good;
        b[9] = 2;
        assert_eq!(Header::parse(&b), Err(HeaderError::UnknownMethod(2)));
        let mut b = good;
        b[11] = 1;
        assert_eq!(Header::parse(&b), Err(HeaderError::Reserved));
    }
}
