//! Layered Coding Transport header (RFC 5651 §5.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   V   | C |PSI|S| O |H|Res|A|B|   HDR_LEN     | Codepoint (CP)|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Congestion Control Information (CCI, 32·(C+1) bits)          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Transport Session Identifier (TSI, 32·S + 16·H bits)          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Transport Object Identifier (TOI, 32·O + 16·H bits)           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Header Extensions (if any, up to HDR_LEN·4 bytes in all)      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! V is 1. A closes the session, B closes the object (a receiver must not
//! take B as "object complete"). HDR_LEN counts 32-bit words of the whole
//! header, extensions included. The codepoint carries the FEC Encoding ID.
//! TSI and TOI are big-endian; with H set, each gets 16 more bits, so a
//! 16-bit TSI with a 16-bit TOI fits in one word.

mod ext;
mod extensions;
mod fti;

pub use ext::{
    ContentEncoding, ExtFdt, ExtTime, Extension, FluteVersion, HET_EXT_CENC, HET_EXT_FDT,
    HET_EXT_FTI, HET_EXT_TIME, NtpTimestamp, UnknownExtension,
};
pub use extensions::{ExtensionIter, Extensions};
pub use fti::{
    Fti, MAX_NO_CODE_TRANSFER_LENGTH, MAX_RAPTOR_TRANSFER_LENGTH, MAX_RAPTORQ_TRANSFER_LENGTH,
    NoCodeFti, RaptorFti, RaptorQFti,
};

/// Codepoint (FEC Encoding ID) of Compact No-Code FEC (RFC 5445).
pub const CODEPOINT_NO_CODE: u8 = 0;
/// Codepoint (FEC Encoding ID) of Raptor FEC (RFC 5053).
pub const CODEPOINT_RAPTOR: u8 = 1;
/// Codepoint (FEC Encoding ID) of RaptorQ FEC (RFC 6330).
pub const CODEPOINT_RAPTORQ: u8 = 6;

/// Errors of LCT header parsing and writing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LctError {
    /// The datagram ends before the header does.
    #[error("truncated LCT header: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the header needs.
        needed: usize,
        /// Bytes in the datagram.
        available: usize,
    },
    /// The version field V is not 1.
    #[error("unsupported LCT version {0}")]
    UnsupportedVersion(u8),
    /// HDR_LEN is smaller than the fixed fields (CCI, TSI, TOI) need.
    #[error("HDR_LEN of {hdr_len} bytes is shorter than the {minimum} bytes of fixed fields")]
    HeaderLengthTooShort {
        /// HDR_LEN in bytes.
        hdr_len: usize,
        /// Bytes of the fixed fields.
        minimum: usize,
    },
    /// A header extension with HET < 128 has HEL = 0.
    #[error("header extension {het} has length 0")]
    ZeroHeaderExtensionLength {
        /// The extension type.
        het: u8,
    },
    /// A header extension runs past HDR_LEN.
    #[error("header extension {het} does not fit in HDR_LEN")]
    ExtensionOverrun {
        /// The extension type.
        het: u8,
    },
    /// A known header extension has the wrong length.
    #[error("header extension {het} has invalid length {len} bytes")]
    InvalidExtensionLength {
        /// The extension type.
        het: u8,
        /// Its length in bytes.
        len: usize,
    },
    /// An extension value is not acceptable.
    #[error("invalid header extension: {reason}")]
    InvalidExtension {
        /// What is wrong.
        reason: &'static str,
    },
    /// EXT_FDT carries a FLUTE version other than 1 or 2.
    #[error("unsupported FLUTE version {0} in EXT_FDT")]
    UnsupportedFluteVersion(u8),
    /// EXT_CENC carries an undefined content encoding.
    #[error("unknown content encoding {0} in EXT_CENC")]
    UnknownContentEncoding(u8),
    /// EXT_FTI values are invalid.
    #[error("invalid FEC Object Transmission Information: {reason}")]
    InvalidFti {
        /// What is wrong.
        reason: &'static str,
    },
    /// An EXT_FTI layout does not match the header's codepoint.
    #[error("EXT_FTI layout does not match codepoint {codepoint}")]
    FtiCodepointMismatch {
        /// The header's codepoint.
        codepoint: u8,
    },
    /// A field value does not fit its wire size.
    #[error("{field} out of range")]
    FieldOutOfRange {
        /// The field.
        field: &'static str,
    },
    /// The output buffer is too small.
    #[error("buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

/// Congestion Control Information: a value of 32, 64, 96 or 128 bits.
///
/// Its size is a property of the session's congestion control, not picked
/// by the encoder, so it is kept with the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cci {
    value: u128,
    words: u8,
}

impl Default for Cci {
    fn default() -> Self {
        Cci { value: 0, words: 1 }
    }
}

impl Cci {
    /// A CCI of `words` 32-bit words (1 to 4) holding `value`.
    pub fn new(value: u128, words: u8) -> Result<Self, LctError> {
        if !(1..=4).contains(&words) || (words < 4 && value >> (32 * u32::from(words)) != 0) {
            return Err(LctError::FieldOutOfRange { field: "CCI" });
        }
        Ok(Cci { value, words })
    }

    /// The value.
    pub fn value(&self) -> u128 {
        self.value
    }

    /// The size in 32-bit words (C + 1).
    pub fn words(&self) -> u8 {
        self.words
    }
}

/// An LCT header, borrowing its extensions from the datagram it was read
/// from (or from the sender's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LctHeader<'a> {
    /// Congestion Control Information.
    pub cci: Cci,
    /// Protocol-Specific Indication (2 bits; ALC leaves it to the sender).
    pub psi: u8,
    /// Transport Session Identifier (up to 48 bits).
    pub tsi: u64,
    /// Transport Object Identifier (up to 112 bits); 0 is the FDT in FLUTE.
    pub toi: u128,
    /// A flag: the sender closes the session.
    pub close_session: bool,
    /// B flag: the sender sends no more packets of this object.
    pub close_object: bool,
    /// Codepoint: the FEC Encoding ID (0 no-code, 1 Raptor, 6 RaptorQ).
    pub codepoint: u8,
    /// Header extensions.
    pub extensions: Extensions<'a>,
}

/// The size of TSI and TOI fields: S, O and H.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IdLayout {
    s: u8,
    o: u8,
    h: bool,
}

impl IdLayout {
    fn tsi_len(self) -> usize {
        4 * usize::from(self.s) + if self.h { 2 } else { 0 }
    }

    fn toi_len(self) -> usize {
        4 * usize::from(self.o) + if self.h { 2 } else { 0 }
    }

    /// The shortest layout that fits both identifiers (without H on a tie).
    fn shortest(tsi: u64, toi: u128) -> Result<Self, LctError> {
        let tsi_bits = 64 - tsi.leading_zeros();
        let toi_bits = 128 - toi.leading_zeros();
        let mut best: Option<(u32, IdLayout)> = None;
        for h in [false, true] {
            let half = if h { 16 } else { 0 };
            let s = (0..=1u8).find(|s| 32 * u32::from(*s) + half >= tsi_bits);
            let o = (0..=3u8).find(|o| 32 * u32::from(*o) + half >= toi_bits);
            if let (Some(s), Some(o)) = (s, o) {
                let bits = 32 * u32::from(s + o) + 2 * half;
                if best.is_none_or(|(b, _)| bits < b) {
                    best = Some((bits, IdLayout { s, o, h }));
                }
            }
        }
        best.map(|(_, l)| l).ok_or(LctError::FieldOutOfRange {
            field: if tsi_bits > 48 { "TSI" } else { "TOI" },
        })
    }
}

fn read_be(bytes: &[u8]) -> u128 {
    bytes
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

fn write_be(value: u128, out: &mut [u8]) {
    let all = value.to_be_bytes();
    let n = out.len().min(16);
    let start = out.len() - n;
    out[start..].copy_from_slice(&all[16 - n..]);
}

impl<'a> LctHeader<'a> {
    /// The LCT version this crate speaks.
    pub const VERSION: u8 = 1;
    /// Largest TSI (48 bits).
    pub const MAX_TSI: u64 = (1 << 48) - 1;
    /// Largest TOI (112 bits).
    pub const MAX_TOI: u128 = (1 << 112) - 1;
    /// Largest header in bytes (HDR_LEN 255).
    pub const MAX_LEN: usize = 255 * 4;

    /// A header with a 32-bit zero CCI, PSI 0, no flags and no extensions.
    pub fn new(tsi: u64, toi: u128, codepoint: u8) -> Self {
        LctHeader {
            cci: Cci::default(),
            psi: 0,
            tsi,
            toi,
            close_session: false,
            close_object: false,
            codepoint,
            extensions: Extensions::none(),
        }
    }

    /// Parses the header at the start of `datagram`; returns it and its
    /// length in bytes (HDR_LEN·4). The payload follows at that offset.
    pub fn decode(datagram: &'a [u8]) -> Result<(Self, usize), LctError> {
        let [b0, b1, hdr_len, codepoint, ..] = *datagram else {
            return Err(LctError::Truncated {
                needed: 4,
                available: datagram.len(),
            });
        };
        let version = b0 >> 4;
        if version != Self::VERSION {
            return Err(LctError::UnsupportedVersion(version));
        }
        let cci_words = ((b0 >> 2) & 0b11) + 1;
        let psi = b0 & 0b11;
        let layout = IdLayout {
            s: b1 >> 7,
            o: (b1 >> 5) & 0b11,
            h: b1 & 0b1_0000 != 0,
        };
        let close_session = b1 & 0b10 != 0;
        let close_object = b1 & 0b1 != 0;

        let hdr_len = 4 * usize::from(hdr_len);
        let cci_end = 4 + 4 * usize::from(cci_words);
        let tsi_end = cci_end + layout.tsi_len();
        let toi_end = tsi_end + layout.toi_len();
        if hdr_len < toi_end {
            return Err(LctError::HeaderLengthTooShort {
                hdr_len,
                minimum: toi_end,
            });
        }
        let header = datagram.get(..hdr_len).ok_or(LctError::Truncated {
            needed: hdr_len,
            available: datagram.len(),
        })?;
        let cci = Cci {
            value: read_be(&header[4..cci_end]),
            words: cci_words,
        };
        // At most 48 bits: the cast cannot truncate.
        let tsi = read_be(&header[cci_end..tsi_end]) as u64;
        let toi = read_be(&header[tsi_end..toi_end]);
        let extensions = Extensions::parse(&header[toi_end..], codepoint)?;
        Ok((
            LctHeader {
                cci,
                psi,
                tsi,
                toi,
                close_session,
                close_object,
                codepoint,
                extensions,
            },
            hdr_len,
        ))
    }

    fn layout(&self) -> Result<(IdLayout, usize), LctError> {
        if self.psi > 3 {
            return Err(LctError::FieldOutOfRange { field: "PSI" });
        }
        let ids = IdLayout::shortest(self.tsi, self.toi)?;
        let len = 4
            + 4 * usize::from(self.cci.words)
            + ids.tsi_len()
            + ids.toi_len()
            + self.extensions.encoded_len();
        if len > Self::MAX_LEN {
            return Err(LctError::FieldOutOfRange { field: "HDR_LEN" });
        }
        Ok((ids, len))
    }

    /// The length in bytes that [`LctHeader::encode`] writes.
    pub fn encoded_len(&self) -> Result<usize, LctError> {
        self.layout().map(|(_, len)| len)
    }

    /// Writes the header into `out` with the shortest TSI/TOI encoding;
    /// returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, LctError> {
        let (ids, len) = self.layout()?;
        let available = out.len();
        let out = out.get_mut(..len).ok_or(LctError::BufferTooSmall {
            needed: len,
            available,
        })?;
        out[0] = (Self::VERSION << 4) | ((self.cci.words - 1) << 2) | self.psi;
        out[1] = (ids.s << 7)
            | (ids.o << 5)
            | (u8::from(ids.h) << 4)
            | (u8::from(self.close_session) << 1)
            | u8::from(self.close_object);
        // `layout` checked len ≤ 1020.
        out[2] = (len / 4) as u8;
        out[3] = self.codepoint;
        let cci_end = 4 + 4 * usize::from(self.cci.words);
        let tsi_end = cci_end + ids.tsi_len();
        let toi_end = tsi_end + ids.toi_len();
        write_be(self.cci.value, &mut out[4..cci_end]);
        write_be(u128::from(self.tsi), &mut out[cci_end..tsi_end]);
        write_be(self.toi, &mut out[tsi_end..toi_end]);
        self.extensions.write(self.codepoint, &mut out[toi_end..])?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests;
