//! FEC Object Transmission Information carried in EXT_FTI (HET 64, HEL 4).
//!
//! The layout depends on the FEC Encoding ID in the LCT codepoint; values
//! are validated on construction so a parsed FTI is always usable.

use super::{CODEPOINT_NO_CODE, CODEPOINT_RAPTOR, CODEPOINT_RAPTORQ, LctError};

/// Largest value of the 40-bit RaptorQ transfer length F.
pub const MAX_RAPTORQ_TRANSFER_LENGTH: u64 = (1 << 40) - 1;
/// Largest value of the 48-bit Raptor transfer length F.
pub const MAX_RAPTOR_TRANSFER_LENGTH: u64 = (1 << 48) - 1;
/// Largest value of the 48-bit no-code transfer length.
pub const MAX_NO_CODE_TRANSFER_LENGTH: u64 = (1 << 48) - 1;

/// `value` unless a validation found a `reason` to reject it.
fn fti_or_error<T>(reason: Option<&'static str>, value: T) -> Result<T, LctError> {
    match reason {
        Some(reason) => Err(LctError::InvalidFti { reason }),
        None => Ok(value),
    }
}

/// FEC Object Transmission Information for RaptorQ (RFC 6330 §3.3).
///
/// In EXT_FTI (HET 64, HEL 4):
///
/// ```text
///  0               8               16              24              31
/// +---------------+---------------+---------------+---------------+
/// |    HET = 64   |    HEL = 4    |     Transfer Length F (40)    |
/// +---------------+---------------+                               +
/// |                                               |   reserved    |
/// +---------------+---------------+---------------+---------------+
/// |     Symbol Size T (16)        |      Z (8)    |    N (16) ... |
/// +---------------+---------------+---------------+---------------+
/// |  ... N        |    Al (8)     |         padding (0)           |
/// +---------------+---------------+---------------+---------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RaptorQFti {
    transfer_length: u64,
    symbol_size: u16,
    source_blocks: u8,
    sub_blocks: u16,
    alignment: u8,
}

impl RaptorQFti {
    /// Validated RaptorQ FTI: F < 2⁴⁰, T ≥ 1, Z ≥ 1, N ≥ 1, Al ≥ 1 and
    /// T a multiple of Al.
    pub fn new(
        transfer_length: u64,
        symbol_size: u16,
        source_blocks: u8,
        sub_blocks: u16,
        alignment: u8,
    ) -> Result<Self, LctError> {
        let reason = if transfer_length > MAX_RAPTORQ_TRANSFER_LENGTH {
            Some("transfer length exceeds 40 bits")
        } else if symbol_size == 0 {
            Some("symbol size T is 0")
        } else if source_blocks == 0 {
            Some("number of source blocks Z is 0")
        } else if sub_blocks == 0 {
            Some("number of sub-blocks N is 0")
        } else if alignment == 0 {
            Some("alignment Al is 0")
        } else if !symbol_size.is_multiple_of(u16::from(alignment)) {
            Some("symbol size T is not a multiple of Al")
        } else {
            None
        };
        fti_or_error(
            reason,
            RaptorQFti {
                transfer_length,
                symbol_size,
                source_blocks,
                sub_blocks,
                alignment,
            },
        )
    }

    /// Transfer length F in bytes (40 bits).
    pub fn transfer_length(&self) -> u64 {
        self.transfer_length
    }
    /// Symbol size T in bytes.
    pub fn symbol_size(&self) -> u16 {
        self.symbol_size
    }
    /// Number of source blocks Z.
    pub fn source_blocks(&self) -> u8 {
        self.source_blocks
    }
    /// Number of sub-blocks N.
    pub fn sub_blocks(&self) -> u16 {
        self.sub_blocks
    }
    /// Symbol alignment Al.
    pub fn alignment(&self) -> u8 {
        self.alignment
    }

    pub(super) fn decode(b: &[u8; 14]) -> Result<Self, LctError> {
        let f = u64::from_be_bytes([0, 0, 0, b[0], b[1], b[2], b[3], b[4]]);
        let t = u16::from_be_bytes([b[6], b[7]]);
        let n = u16::from_be_bytes([b[9], b[10]]);
        Self::new(f, t, b[8], n, b[11])
    }

    pub(super) fn encode(&self) -> [u8; 14] {
        let mut b = [0u8; 14];
        b[0..5].copy_from_slice(&self.transfer_length.to_be_bytes()[3..8]);
        b[6..8].copy_from_slice(&self.symbol_size.to_be_bytes());
        b[8] = self.source_blocks;
        b[9..11].copy_from_slice(&self.sub_blocks.to_be_bytes());
        b[11] = self.alignment;
        b
    }
}

/// FEC Object Transmission Information for Compact No-Code (RFC 5445 §2.1).
///
/// In EXT_FTI (HET 64, HEL 4):
///
/// ```text
///  0               8               16              24              31
/// +---------------+---------------+---------------+---------------+
/// |    HET = 64   |    HEL = 4    |                               |
/// +---------------+---------------+    Transfer Length (48)       +
/// |                                                               |
/// +---------------+---------------+---------------+---------------+
/// |        reserved (0)           |  Encoding Symbol Length (16)  |
/// +---------------+---------------+---------------+---------------+
/// |              Maximum Source Block Length (32)                 |
/// +---------------+---------------+---------------+---------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NoCodeFti {
    transfer_length: u64,
    symbol_length: u16,
    max_source_block_length: u32,
}

impl NoCodeFti {
    /// Validated no-code FTI: transfer length < 2⁴⁸, symbol length ≥ 1,
    /// maximum source block length ≥ 1 (in symbols).
    pub fn new(
        transfer_length: u64,
        symbol_length: u16,
        max_source_block_length: u32,
    ) -> Result<Self, LctError> {
        let reason = if transfer_length > MAX_NO_CODE_TRANSFER_LENGTH {
            Some("transfer length exceeds 48 bits")
        } else if symbol_length == 0 {
            Some("encoding symbol length is 0")
        } else if max_source_block_length == 0 {
            Some("maximum source block length is 0")
        } else {
            None
        };
        fti_or_error(
            reason,
            NoCodeFti {
                transfer_length,
                symbol_length,
                max_source_block_length,
            },
        )
    }

    /// Transfer length in bytes (48 bits).
    pub fn transfer_length(&self) -> u64 {
        self.transfer_length
    }
    /// Encoding symbol length in bytes.
    pub fn symbol_length(&self) -> u16 {
        self.symbol_length
    }
    /// Maximum source block length in symbols.
    pub fn max_source_block_length(&self) -> u32 {
        self.max_source_block_length
    }

    pub(super) fn decode(b: &[u8; 14]) -> Result<Self, LctError> {
        let f = u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]);
        let e = u16::from_be_bytes([b[8], b[9]]);
        let m = u32::from_be_bytes([b[10], b[11], b[12], b[13]]);
        Self::new(f, e, m)
    }

    pub(super) fn encode(&self) -> [u8; 14] {
        let mut b = [0u8; 14];
        b[0..6].copy_from_slice(&self.transfer_length.to_be_bytes()[2..8]);
        b[8..10].copy_from_slice(&self.symbol_length.to_be_bytes());
        b[10..14].copy_from_slice(&self.max_source_block_length.to_be_bytes());
        b
    }
}

/// FEC Object Transmission Information for Raptor (RFC 5053 §3.2).
///
/// In EXT_FTI (HET 64, HEL 4): the common elements F (48 bits), 16
/// reserved bits and T (16 bits), then the scheme-specific Z (16), N (8)
/// and Al (8):
///
/// ```text
///  0               8               16              24              31
/// +---------------+---------------+---------------+---------------+
/// |    HET = 64   |    HEL = 4    |                               |
/// +---------------+---------------+    Transfer Length F (48)     +
/// |                                                               |
/// +---------------+---------------+---------------+---------------+
/// |         reserved (0)          |     Symbol Size T (16)        |
/// +---------------+---------------+---------------+---------------+
/// |             Z (16)            |     N (8)     |    Al (8)     |
/// +---------------+---------------+---------------+---------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RaptorFti {
    transfer_length: u64,
    symbol_size: u16,
    source_blocks: u16,
    sub_blocks: u8,
    alignment: u8,
}

impl RaptorFti {
    /// Validated Raptor FTI: F < 2⁴⁸, T ≥ 1, Z ≥ 1, N ≥ 1, Al ≥ 1 and T a
    /// multiple of Al (the block limits, 4 ≤ K ≤ 8192, are the fec
    /// crate's to check).
    pub fn new(
        transfer_length: u64,
        symbol_size: u16,
        source_blocks: u16,
        sub_blocks: u8,
        alignment: u8,
    ) -> Result<Self, LctError> {
        let reason = if transfer_length > MAX_RAPTOR_TRANSFER_LENGTH {
            Some("transfer length exceeds 48 bits")
        } else if symbol_size == 0 {
            Some("symbol size T is 0")
        } else if source_blocks == 0 {
            Some("number of source blocks Z is 0")
        } else if sub_blocks == 0 {
            Some("number of sub-blocks N is 0")
        } else if alignment == 0 {
            Some("alignment Al is 0")
        } else if !symbol_size.is_multiple_of(u16::from(alignment)) {
            Some("symbol size T is not a multiple of Al")
        } else {
            None
        };
        fti_or_error(
            reason,
            RaptorFti {
                transfer_length,
                symbol_size,
                source_blocks,
                sub_blocks,
                alignment,
            },
        )
    }

    /// Transfer length F in bytes (48 bits).
    pub fn transfer_length(&self) -> u64 {
        self.transfer_length
    }
    /// Symbol size T in bytes.
    pub fn symbol_size(&self) -> u16 {
        self.symbol_size
    }
    /// Number of source blocks Z.
    pub fn source_blocks(&self) -> u16 {
        self.source_blocks
    }
    /// Number of sub-blocks N.
    pub fn sub_blocks(&self) -> u8 {
        self.sub_blocks
    }
    /// Symbol alignment Al.
    pub fn alignment(&self) -> u8 {
        self.alignment
    }

    pub(super) fn decode(b: &[u8; 14]) -> Result<Self, LctError> {
        let f = u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]);
        let t = u16::from_be_bytes([b[8], b[9]]);
        let z = u16::from_be_bytes([b[10], b[11]]);
        Self::new(f, t, z, b[12], b[13])
    }

    pub(super) fn encode(&self) -> [u8; 14] {
        let mut b = [0u8; 14];
        b[0..6].copy_from_slice(&self.transfer_length.to_be_bytes()[2..8]);
        b[8..10].copy_from_slice(&self.symbol_size.to_be_bytes());
        b[10..12].copy_from_slice(&self.source_blocks.to_be_bytes());
        b[12] = self.sub_blocks;
        b[13] = self.alignment;
        b
    }
}

/// EXT_FTI contents; which layout applies follows from the codepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fti {
    /// RaptorQ layout (codepoint 6).
    RaptorQ(RaptorQFti),
    /// Compact No-Code layout (codepoint 0).
    NoCode(NoCodeFti),
    /// Raptor layout (codepoint 1).
    Raptor(RaptorFti),
}

impl Fti {
    /// The codepoint (FEC Encoding ID) this layout belongs to.
    pub fn codepoint(&self) -> u8 {
        match self {
            Fti::RaptorQ(_) => CODEPOINT_RAPTORQ,
            Fti::NoCode(_) => CODEPOINT_NO_CODE,
            Fti::Raptor(_) => CODEPOINT_RAPTOR,
        }
    }

    /// The transfer length in bytes.
    pub fn transfer_length(&self) -> u64 {
        match self {
            Fti::RaptorQ(f) => f.transfer_length(),
            Fti::NoCode(f) => f.transfer_length(),
            Fti::Raptor(f) => f.transfer_length(),
        }
    }

    /// The FEC OTI these fields describe, checked against the fec crate's
    /// limits (which are stricter than the wire format's: RaptorQ's
    /// K ≤ 56403 and N = 1, Raptor's 4 ≤ K ≤ 8192 and N ≤ T/Al).
    pub fn to_oti(&self) -> Result<dms_fec::Oti, dms_fec::OtiError> {
        match self {
            Fti::RaptorQ(f) => dms_fec::Oti::raptorq(
                f.transfer_length(),
                f.symbol_size(),
                u32::from(f.source_blocks()),
                f.sub_blocks(),
                f.alignment(),
            ),
            Fti::NoCode(f) => dms_fec::Oti::no_code(
                f.transfer_length(),
                f.symbol_length(),
                f.max_source_block_length(),
            ),
            Fti::Raptor(f) => dms_fec::Oti::raptor(
                f.transfer_length(),
                f.symbol_size(),
                u32::from(f.source_blocks()),
                f.sub_blocks(),
                f.alignment(),
            ),
        }
    }

    /// The EXT_FTI fields of an object laid out by `oti`.
    pub fn from_oti(oti: &dms_fec::Oti) -> Result<Self, LctError> {
        match oti.scheme() {
            dms_fec::FecScheme::RaptorQ => {
                let z =
                    u8::try_from(oti.source_blocks()).map_err(|_| LctError::FieldOutOfRange {
                        field: "number of source blocks Z",
                    })?;
                let al = oti.alignment().unwrap_or(dms_fec::DEFAULT_ALIGNMENT);
                RaptorQFti::new(
                    oti.transfer_length(),
                    oti.symbol_size(),
                    z,
                    oti.sub_blocks(),
                    al,
                )
                .map(Fti::RaptorQ)
            }
            dms_fec::FecScheme::Raptor => {
                let out_of_range = |field| LctError::FieldOutOfRange { field };
                RaptorFti::new(
                    oti.transfer_length(),
                    oti.symbol_size(),
                    u16::try_from(oti.source_blocks())
                        .map_err(|_| out_of_range("number of source blocks Z"))?,
                    u8::try_from(oti.sub_blocks())
                        .map_err(|_| out_of_range("number of sub-blocks N"))?,
                    oti.alignment().unwrap_or(dms_fec::DEFAULT_ALIGNMENT),
                )
                .map(Fti::Raptor)
            }
            dms_fec::FecScheme::NoCode => NoCodeFti::new(
                oti.transfer_length(),
                oti.symbol_size(),
                oti.max_source_block_length(),
            )
            .map(Fti::NoCode),
        }
    }
}
