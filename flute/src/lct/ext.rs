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

use super::fti::{NoCodeFti, RaptorFti, RaptorQFti};
use super::{CODEPOINT_NO_CODE, CODEPOINT_RAPTOR, CODEPOINT_RAPTORQ, Fti, LctError};

/// HET of EXT_TIME (RFC 5651 §5.2.2).
pub const HET_EXT_TIME: u8 = 2;
/// HET of EXT_FTI (RFC 5775 §4.1; layout given by the FEC Encoding ID).
pub const HET_EXT_FTI: u8 = 64;
/// HET of EXT_FDT (RFC 6726 §3.4.1).
pub const HET_EXT_FDT: u8 = 192;
/// HET of EXT_CENC (RFC 6726 §3.4.1).
pub const HET_EXT_CENC: u8 = 193;

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
        if !total.is_multiple_of(4) || total / 4 > 255 {
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
            total.is_multiple_of(4) && total / 4 <= 255
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
                    Fti::Raptor(f) => f.encode(),
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
                Extension::Fti(match codepoint {
                    CODEPOINT_RAPTORQ => Fti::RaptorQ(RaptorQFti::decode(body)?),
                    CODEPOINT_RAPTOR => Fti::Raptor(RaptorFti::decode(body)?),
                    _ => Fti::NoCode(NoCodeFti::decode(body)?),
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
    matches!(
        codepoint,
        CODEPOINT_NO_CODE | CODEPOINT_RAPTOR | CODEPOINT_RAPTORQ
    )
}

fn hel(len: usize) -> Result<u8, LctError> {
    u8::try_from(len / 4).map_err(|_| LctError::FieldOutOfRange { field: "HEL" })
}
