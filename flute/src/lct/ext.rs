//! LCT header extensions (RFC 5651 §5) used by ALC and FLUTE.
//!
//! Every extension starts with its Header Extension Type (HET). Types 0–127
//! carry a length byte (HEL, in 32-bit words, counting the HET and HEL bytes
//! themselves); types 128–255 are exactly one 32-bit word:
//!
//! ```text
//!  HET 0..=127                          HET 128..=255
//!  0       8       16              31   0       8                       31
//! +-------+-------+----------------+    +-------+------------------------+
//! |  HET  |  HEL  |   content ...  |    |  HET  |   content (24 bits)    |
//! +-------+-------+----------------+    +-------+------------------------+
//! |       ... (4·HEL − 2 bytes of content in all)
//! ```
//!
//! Known extensions are parsed into typed values ([`ExtFdt`],
//! [`ContentEncoding`], [`ExtTime`], [`Fti`]); any other is kept as an
//! [`UnknownExtension`] borrowing its bytes, so nothing is allocated.

use super::LctError;

/// HET of EXT_TIME (RFC 5651 §5.2.2).
pub const HET_EXT_TIME: u8 = 2;
/// HET of EXT_FTI (RFC 5775 §4.1; layout given by the FEC Encoding ID).
pub const HET_EXT_FTI: u8 = 64;
/// HET of EXT_FDT (RFC 6726 §3.4.1).
pub const HET_EXT_FDT: u8 = 192;
/// HET of EXT_CENC (RFC 6726 §3.4.1).
pub const HET_EXT_CENC: u8 = 193;

/// Codepoint (FEC Encoding ID) of Compact No-Code FEC (RFC 5445).
pub const CODEPOINT_NO_CODE: u8 = 0;
/// Codepoint (FEC Encoding ID) of RaptorQ FEC (RFC 6330).
pub const CODEPOINT_RAPTORQ: u8 = 6;

/// Largest value of the 40-bit RaptorQ transfer length F.
pub const MAX_RAPTORQ_TRANSFER_LENGTH: u64 = (1 << 40) - 1;
/// Largest value of the 48-bit no-code transfer length.
pub const MAX_NO_CODE_TRANSFER_LENGTH: u64 = (1 << 48) - 1;

/// The FLUTE version carried in EXT_FDT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FluteVersion {
    /// FLUTE version 1, RFC 3926 (used by 3GPP MBMS, TS 26.346).
    V1,
    /// FLUTE version 2, RFC 6726.
    V2,
}

impl FluteVersion {
    /// The 4-bit value written in EXT_FDT.
    pub const fn number(self) -> u8 {
        match self {
            FluteVersion::V1 => 1,
            FluteVersion::V2 => 2,
        }
    }

    /// The version with this EXT_FDT number, if it is one we speak.
    pub const fn from_number(v: u8) -> Option<Self> {
        match v {
            1 => Some(FluteVersion::V1),
            2 => Some(FluteVersion::V2),
            _ => None,
        }
    }
}

/// EXT_FDT (HET 192): marks a packet of an FDT Instance (TOI 0).
///
/// ```text
///  0               8       12                                      31
/// +---------------+-------+----------------------------------------+
/// |   HET = 192   |   V   |         FDT Instance ID (20 bits)      |
/// +---------------+-------+----------------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtFdt {
    version: FluteVersion,
    instance_id: u32,
}

impl ExtFdt {
    /// Largest FDT Instance ID (20 bits).
    pub const MAX_INSTANCE_ID: u32 = (1 << 20) - 1;

    /// An EXT_FDT; fails if `instance_id` does not fit in 20 bits.
    pub fn new(version: FluteVersion, instance_id: u32) -> Result<Self, LctError> {
        if instance_id > Self::MAX_INSTANCE_ID {
            return Err(LctError::FieldOutOfRange {
                field: "FDT Instance ID",
            });
        }
        Ok(ExtFdt {
            version,
            instance_id,
        })
    }

    /// The FLUTE version.
    pub fn version(&self) -> FluteVersion {
        self.version
    }

    /// The FDT Instance ID (20 bits).
    pub fn instance_id(&self) -> u32 {
        self.instance_id
    }
}

/// EXT_CENC (HET 193): the content encoding of an FDT Instance.
///
/// ```text
///  0               8               16                              31
/// +---------------+---------------+--------------------------------+
/// |   HET = 193   |     CENC      |          padding (0)           |
/// +---------------+---------------+--------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentEncoding {
    /// 0: not encoded.
    Null,
    /// 1: ZLIB (RFC 1950).
    Zlib,
    /// 2: DEFLATE (RFC 1951).
    Deflate,
    /// 3: GZIP (RFC 1952).
    Gzip,
}

impl ContentEncoding {
    /// The value in the CENC byte.
    pub const fn code(self) -> u8 {
        match self {
            ContentEncoding::Null => 0,
            ContentEncoding::Zlib => 1,
            ContentEncoding::Deflate => 2,
            ContentEncoding::Gzip => 3,
        }
    }

    /// The encoding with this CENC byte, if defined.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(ContentEncoding::Null),
            1 => Some(ContentEncoding::Zlib),
            2 => Some(ContentEncoding::Deflate),
            3 => Some(ContentEncoding::Gzip),
            _ => None,
        }
    }
}

/// A 64-bit NTP timestamp split into seconds and fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NtpTimestamp {
    /// Seconds since 1900-01-01 (upper 32 bits).
    pub seconds: u32,
    /// Fraction of a second in units of 2⁻³² s (lower 32 bits).
    pub fraction: u32,
}

/// EXT_TIME (HET 2, variable length): times from the sender.
///
/// The payload (everything after HET and HEL) is kept as borrowed bytes:
///
/// ```text
///  0               8               16                              31
/// +---------------+---------------+-+-+-+-+-------+----------------+
/// |    HET = 2    |      HEL      |S|S|E|S| Resvd |  PI-specific   |
/// |               |               |H|L|R|L|       |   use (8)      |
/// +---------------+---------------+-+-+-+-+-------+----------------+
/// |         Sender Current Time, high 32 bits (if SH)              |
/// |         Sender Current Time, low 32 bits (if SL)               |
/// |         Expected Residual Time (if ER)                         |
/// |         Session Last Changed (if SL_C)                         |
/// +----------------------------------------------------------------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtTime<'a> {
    payload: &'a [u8],
}

const TIME_SCT_HIGH: u16 = 1 << 15;
const TIME_SCT_LOW: u16 = 1 << 14;
const TIME_ERT: u16 = 1 << 13;
const TIME_SLC: u16 = 1 << 12;

impl<'a> ExtTime<'a> {
    /// Wraps an EXT_TIME payload (the bytes after HET and HEL). It must be
    /// 2 + 4·k bytes long (so the extension is whole words, at most 255) and
    /// hold every field its flags announce.
    pub fn new(payload: &'a [u8]) -> Result<Self, LctError> {
        let total = payload.len() + 2;
        if total % 4 != 0 || total / 4 > 255 {
            return Err(LctError::InvalidExtensionLength {
                het: HET_EXT_TIME,
                len: total,
            });
        }
        let t = ExtTime { payload };
        if t.field_offset(4).is_some_and(|end| end > payload.len()) {
            return Err(LctError::InvalidExtensionLength {
                het: HET_EXT_TIME,
                len: total,
            });
        }
        Ok(t)
    }

    /// A payload announcing only the Sender Current Time (SCT-High and
    /// SCT-Low), for [`ExtTime::new`].
    pub fn sender_current_time_payload(now: NtpTimestamp) -> [u8; 10] {
        let mut p = [0u8; 10];
        p[0..2].copy_from_slice(&(TIME_SCT_HIGH | TIME_SCT_LOW).to_be_bytes());
        p[2..6].copy_from_slice(&now.seconds.to_be_bytes());
        p[6..10].copy_from_slice(&now.fraction.to_be_bytes());
        p
    }

    /// The raw payload (after HET and HEL), starting with the 16-bit Use field.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The 16-bit Use field (flags and PI-specific bits).
    pub fn use_flags(&self) -> u16 {
        match self.payload {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 0,
        }
    }

    /// Byte offset of the end of the first `n` flagged fields (n ≤ 4), or
    /// `None` if no flag is set among them.
    fn field_offset(&self, n: usize) -> Option<usize> {
        let flags = self.use_flags();
        let count = [TIME_SCT_HIGH, TIME_SCT_LOW, TIME_ERT, TIME_SLC]
            .iter()
            .take(n)
            .filter(|f| flags & **f != 0)
            .count();
        (count > 0).then_some(2 + 4 * count)
    }

    /// The 32-bit field selected by `flag` (the `index`-th in order), if present.
    fn field(&self, index: usize, flag: u16) -> Option<u32> {
        if self.use_flags() & flag == 0 {
            return None;
        }
        let end = self.field_offset(index + 1)?;
        let bytes = self.payload.get(end - 4..end)?;
        let mut w = [0u8; 4];
        w.copy_from_slice(bytes);
        Some(u32::from_be_bytes(w))
    }

    /// The Sender Current Time, if SCT-High is present (the fraction is 0
    /// when SCT-Low is absent).
    pub fn sender_current_time(&self) -> Option<NtpTimestamp> {
        let seconds = self.field(0, TIME_SCT_HIGH)?;
        let fraction = self.field(1, TIME_SCT_LOW).unwrap_or(0);
        Some(NtpTimestamp { seconds, fraction })
    }

    /// The Expected Residual Time in milliseconds, if present.
    pub fn expected_residual_time(&self) -> Option<u32> {
        self.field(2, TIME_ERT)
    }

    /// The Session Last Changed time (NTP seconds), if present.
    pub fn session_last_changed(&self) -> Option<u32> {
        self.field(3, TIME_SLC)
    }
}

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
        } else if symbol_size % u16::from(alignment) != 0 {
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

    fn decode(b: &[u8; 14]) -> Result<Self, LctError> {
        let f = u64::from_be_bytes([0, 0, 0, b[0], b[1], b[2], b[3], b[4]]);
        let t = u16::from_be_bytes([b[6], b[7]]);
        let n = u16::from_be_bytes([b[9], b[10]]);
        Self::new(f, t, b[8], n, b[11])
    }

    fn encode(&self) -> [u8; 14] {
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

    fn decode(b: &[u8; 14]) -> Result<Self, LctError> {
        let f = u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]]);
        let e = u16::from_be_bytes([b[8], b[9]]);
        let m = u32::from_be_bytes([b[10], b[11], b[12], b[13]]);
        Self::new(f, e, m)
    }

    fn encode(&self) -> [u8; 14] {
        let mut b = [0u8; 14];
        b[0..6].copy_from_slice(&self.transfer_length.to_be_bytes()[2..8]);
        b[8..10].copy_from_slice(&self.symbol_length.to_be_bytes());
        b[10..14].copy_from_slice(&self.max_source_block_length.to_be_bytes());
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
}

impl Fti {
    /// The codepoint (FEC Encoding ID) this layout belongs to.
    pub fn codepoint(&self) -> u8 {
        match self {
            Fti::RaptorQ(_) => CODEPOINT_RAPTORQ,
            Fti::NoCode(_) => CODEPOINT_NO_CODE,
        }
    }

    /// The transfer length in bytes.
    pub fn transfer_length(&self) -> u64 {
        match self {
            Fti::RaptorQ(f) => f.transfer_length(),
            Fti::NoCode(f) => f.transfer_length(),
        }
    }
}

/// An extension we do not interpret, kept as borrowed bytes.
///
/// `body` is the content after the HET byte (HET ≥ 128: 3 bytes) or after
/// the HET and HEL bytes (HET < 128: 4·HEL − 2 bytes). EXT_FTI (HET 64)
/// appears here when the codepoint has no FTI layout we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnknownExtension<'a> {
    het: u8,
    body: &'a [u8],
}

impl<'a> UnknownExtension<'a> {
    /// An extension of type `het` with this body. Fails for the types this
    /// crate parses itself (2, 192, 193) and for bodies of a wrong length.
    pub fn new(het: u8, body: &'a [u8]) -> Result<Self, LctError> {
        if matches!(het, HET_EXT_TIME | HET_EXT_FDT | HET_EXT_CENC) {
            return Err(LctError::InvalidExtension {
                reason: "this header extension type has a typed form",
            });
        }
        let ok = if het >= 128 {
            body.len() == 3
        } else {
            let total = body.len() + 2;
            total % 4 == 0 && total / 4 <= 255
        };
        if !ok {
            return Err(LctError::InvalidExtensionLength {
                het,
                len: body.len() + if het >= 128 { 1 } else { 2 },
            });
        }
        Ok(UnknownExtension { het, body })
    }

    /// The Header Extension Type.
    pub fn het(&self) -> u8 {
        self.het
    }

    /// The content after HET (and HEL for HET < 128).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// One header extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Extension<'a> {
    /// EXT_FDT (HET 192).
    Fdt(ExtFdt),
    /// EXT_CENC (HET 193).
    Cenc(ContentEncoding),
    /// EXT_TIME (HET 2).
    Time(ExtTime<'a>),
    /// EXT_FTI (HET 64) for a known codepoint.
    Fti(Fti),
    /// Any other extension.
    Unknown(UnknownExtension<'a>),
}

impl Extension<'_> {
    /// The Header Extension Type.
    pub fn het(&self) -> u8 {
        match self {
            Extension::Fdt(_) => HET_EXT_FDT,
            Extension::Cenc(_) => HET_EXT_CENC,
            Extension::Time(_) => HET_EXT_TIME,
            Extension::Fti(_) => HET_EXT_FTI,
            Extension::Unknown(u) => u.het,
        }
    }

    /// Length on the wire in bytes (a multiple of 4).
    pub fn encoded_len(&self) -> usize {
        match self {
            Extension::Fdt(_) | Extension::Cenc(_) => 4,
            Extension::Fti(_) => 16,
            Extension::Time(t) => 2 + t.payload.len(),
            Extension::Unknown(u) if u.het >= 128 => 4,
            Extension::Unknown(u) => 2 + u.body.len(),
        }
    }

    /// Writes this extension at the start of `out`, checking it agrees with
    /// the header's `codepoint`; returns its length.
    pub(crate) fn write(&self, codepoint: u8, out: &mut [u8]) -> Result<usize, LctError> {
        let len = self.encoded_len();
        let available = out.len();
        let out = out.get_mut(..len).ok_or(LctError::BufferTooSmall {
            needed: len,
            available,
        })?;
        out[0] = self.het();
        match self {
            Extension::Fdt(f) => {
                let w = (u32::from(f.version.number()) << 20) | f.instance_id;
                out[1..4].copy_from_slice(&w.to_be_bytes()[1..4]);
            }
            Extension::Cenc(c) => {
                out[1] = c.code();
                out[2] = 0;
                out[3] = 0;
            }
            Extension::Time(t) => {
                out[1] = hel(len)?;
                out[2..].copy_from_slice(t.payload);
            }
            Extension::Fti(fti) => {
                if fti.codepoint() != codepoint {
                    return Err(LctError::FtiCodepointMismatch { codepoint });
                }
                out[1] = 4;
                let body = match fti {
                    Fti::RaptorQ(f) => f.encode(),
                    Fti::NoCode(f) => f.encode(),
                };
                out[2..].copy_from_slice(&body);
            }
            Extension::Unknown(u) => {
                if u.het == HET_EXT_FTI && fti_layout_known(codepoint) {
                    return Err(LctError::FtiCodepointMismatch { codepoint });
                }
                if u.het >= 128 {
                    out[1..].copy_from_slice(u.body);
                } else {
                    out[1] = hel(len)?;
                    out[2..].copy_from_slice(u.body);
                }
            }
        }
        Ok(len)
    }

    /// Parses the extension at the start of `buf`; returns it and its length.
    pub(crate) fn read(buf: &[u8], codepoint: u8) -> Result<(Extension<'_>, usize), LctError> {
        let Some(&het) = buf.first() else {
            return Err(LctError::ExtensionOverrun { het: 0 });
        };
        let len = if het >= 128 {
            4
        } else {
            let hel = *buf.get(1).ok_or(LctError::ExtensionOverrun { het })?;
            if hel == 0 {
                return Err(LctError::ZeroHeaderExtensionLength { het });
            }
            4 * usize::from(hel)
        };
        let ext = buf.get(..len).ok_or(LctError::ExtensionOverrun { het })?;
        let parsed = match het {
            HET_EXT_FDT => {
                let version = ext[1] >> 4;
                let version = FluteVersion::from_number(version)
                    .ok_or(LctError::UnsupportedFluteVersion(version))?;
                let id = u32::from_be_bytes([0, ext[1] & 0x0f, ext[2], ext[3]]);
                Extension::Fdt(ExtFdt {
                    version,
                    instance_id: id,
                })
            }
            HET_EXT_CENC => Extension::Cenc(
                ContentEncoding::from_code(ext[1])
                    .ok_or(LctError::UnknownContentEncoding(ext[1]))?,
            ),
            HET_EXT_TIME => Extension::Time(ExtTime::new(&ext[2..])?),
            HET_EXT_FTI if fti_layout_known(codepoint) => {
                let body: &[u8; 14] =
                    ext[2..]
                        .try_into()
                        .map_err(|_| LctError::InvalidExtensionLength {
                            het,
                            len: ext.len(),
                        })?;
                Extension::Fti(if codepoint == CODEPOINT_RAPTORQ {
                    Fti::RaptorQ(RaptorQFti::decode(body)?)
                } else {
                    Fti::NoCode(NoCodeFti::decode(body)?)
                })
            }
            _ if het >= 128 => Extension::Unknown(UnknownExtension {
                het,
                body: &ext[1..],
            }),
            _ => Extension::Unknown(UnknownExtension {
                het,
                body: &ext[2..],
            }),
        };
        Ok((parsed, len))
    }
}

fn fti_layout_known(codepoint: u8) -> bool {
    matches!(codepoint, CODEPOINT_NO_CODE | CODEPOINT_RAPTORQ)
}

fn hel(len: usize) -> Result<u8, LctError> {
    u8::try_from(len / 4).map_err(|_| LctError::FieldOutOfRange { field: "HEL" })
}

/// The header extensions of an LCT header.
///
/// Either a validated wire area borrowed from a received datagram, or a
/// list built by a sender ([`Extensions::from_list`]). Both iterate as
/// [`Extension`] values and compare equal when they hold the same sequence.
#[derive(Debug, Clone, Copy)]
pub struct Extensions<'a>(Repr<'a>);

#[derive(Debug, Clone, Copy)]
enum Repr<'a> {
    Wire { raw: &'a [u8], codepoint: u8 },
    List(&'a [Extension<'a>]),
}

impl Default for Extensions<'_> {
    fn default() -> Self {
        Self::none()
    }
}

impl PartialEq for Extensions<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Extensions<'_> {}

impl<'a> Extensions<'a> {
    /// No extensions.
    pub const fn none() -> Self {
        Extensions(Repr::List(&[]))
    }

    /// Extensions to send, in this order.
    pub const fn from_list(list: &'a [Extension<'a>]) -> Self {
        Extensions(Repr::List(list))
    }

    /// Validates a received extension area (exactly the bytes between the
    /// fixed header and HDR_LEN).
    pub(crate) fn parse(raw: &'a [u8], codepoint: u8) -> Result<Self, LctError> {
        let mut rest = raw;
        while !rest.is_empty() {
            let (_, len) = Extension::read(rest, codepoint)?;
            rest = &rest[len..];
        }
        Ok(Extensions(Repr::Wire { raw, codepoint }))
    }

    /// Iterates over the extensions in order.
    pub fn iter(&self) -> ExtensionIter<'a> {
        match self.0 {
            Repr::Wire { raw, codepoint } => ExtensionIter(IterRepr::Wire { raw, codepoint }),
            Repr::List(list) => ExtensionIter(IterRepr::List(list.iter())),
        }
    }

    /// True if there is no extension.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The first EXT_FDT, if any.
    pub fn fdt(&self) -> Option<ExtFdt> {
        self.iter().find_map(|e| match e {
            Extension::Fdt(f) => Some(f),
            _ => None,
        })
    }

    /// The first EXT_CENC, if any.
    pub fn cenc(&self) -> Option<ContentEncoding> {
        self.iter().find_map(|e| match e {
            Extension::Cenc(c) => Some(c),
            _ => None,
        })
    }

    /// The first EXT_TIME, if any.
    pub fn time(&self) -> Option<ExtTime<'a>> {
        self.iter().find_map(|e| match e {
            Extension::Time(t) => Some(t),
            _ => None,
        })
    }

    /// The first EXT_FTI of a known layout, if any.
    pub fn fti(&self) -> Option<Fti> {
        self.iter().find_map(|e| match e {
            Extension::Fti(f) => Some(f),
            _ => None,
        })
    }

    /// How many extensions are of a type this crate does not interpret.
    pub fn unknown_count(&self) -> usize {
        self.iter()
            .filter(|e| matches!(e, Extension::Unknown(_)))
            .count()
    }

    /// Length on the wire in bytes.
    pub fn encoded_len(&self) -> usize {
        match self.0 {
            Repr::Wire { raw, .. } => raw.len(),
            Repr::List(list) => list.iter().map(Extension::encoded_len).sum(),
        }
    }

    /// Writes all extensions into `out` for a header with `codepoint`.
    pub(crate) fn write(&self, codepoint: u8, out: &mut [u8]) -> Result<usize, LctError> {
        let mut at = 0;
        for ext in self.iter() {
            let rest = out.get_mut(at..).unwrap_or_default();
            at += ext.write(codepoint, rest)?;
        }
        Ok(at)
    }
}

impl<'a> IntoIterator for &Extensions<'a> {
    type Item = Extension<'a>;
    type IntoIter = ExtensionIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`Extensions`]; allocation-free.
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a>(IterRepr<'a>);

#[derive(Debug, Clone)]
enum IterRepr<'a> {
    Wire { raw: &'a [u8], codepoint: u8 },
    List(core::slice::Iter<'a, Extension<'a>>),
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = Extension<'a>;

    fn next(&mut self) -> Option<Extension<'a>> {
        match &mut self.0 {
            IterRepr::List(it) => it.next().copied(),
            IterRepr::Wire { raw, codepoint } => {
                if raw.is_empty() {
                    return None;
                }
                // The area was validated by `Extensions::parse`; should it
                // fail anyway, stop rather than loop or panic.
                match Extension::read(raw, *codepoint) {
                    Ok((ext, len)) => {
                        *raw = raw.get(len..).unwrap_or_default();
                        Some(ext)
                    }
                    Err(_) => {
                        *raw = &[];
                        None
                    }
                }
            }
        }
    }
}
