//! FDT-Instance documents (RFC 6726 §3.4.2, RFC 3926 §3.4.2).
//!
//! An FDT Instance is an XML document in the namespace
//! `urn:IETF:metadata:2005:FLUTE:FDT`, sent as TOI 0 with EXT_FDT:
//!
//! ```xml
//! <FDT-Instance xmlns="urn:IETF:metadata:2005:FLUTE:FDT"
//!               xmlns:dms="urn:dms:fdt:2026"
//!               Expires="3913056000" Complete="true"
//!               FEC-OTI-FEC-Encoding-ID="6">
//!   <File Content-Location="fw/modem-2.4.1.bin" TOI="1"
//!         Content-Length="1048576" Transfer-Length="1048576"
//!         Content-MD5="..." FEC-OTI-Encoding-Symbol-Length="1280"
//!         FEC-OTI-Scheme-Specific-Info="AQABBA=="
//!         dms:SHA-256="9f86d0…" dms:Manifest="https://dms.example/m/1"/>
//! </FDT-Instance>
//! ```
//!
//! `FEC-OTI-*` attributes on the instance are defaults that a `File`'s own
//! attributes override ([`FdtInstance::file_fec_oti`]); so are
//! `Content-Type` and `Content-Encoding`.
//!
//! # FLUTE versions
//!
//! The document has the same namespace and attributes in FLUTE v1
//! (RFC 3926, the 3GPP MBMS profile) and v2 (RFC 6726); the version is
//! signalled in EXT_FDT ([`crate::lct::FluteVersion`]), not in the XML. What
//! differs is handled here for both: RFC 3926 has no
//! `FEC-OTI-Scheme-Specific-Info` in its schema but 3GPP adds it (RaptorQ
//! needs it), so it is read and written in both; `FEC-OTI-FEC-Instance-ID`
//! (meaningful for FEC Encoding IDs ≥ 128 under RFC 3926) is kept; and when
//! `Transfer-Length` is absent the transfer length is `Content-Length`
//! unless a `Content-Encoding` applies ([`FdtInstance::transfer_length`]).
//! A v1 sender may also carry the FEC OTI only in EXT_FTI, so every
//! `FEC-OTI-*` attribute is optional.
//!
//! # Tolerance
//!
//! Unknown attributes and elements are ignored wherever they appear, in any
//! namespace: the 3GPP ones (`urn:3GPP:metadata:2005:MBMS:FLUTE:FDT` and the
//! 2007/2008/2009/2012/2015 extensions) and any other.
//!
//! The profiled FDT schema of 3GPP TS 26.346 clause L.6.1 puts the same
//! `FDT-Instance` and `File` in the namespace
//! `urn:3GPP:metadata:2022:FLUTE:FDT` (the `flute` crate's
//! `FdtXmlProfile::Ts26346L6` sends it); it is read like RFC 6726's.
//!
//! # Our attributes
//!
//! In the namespace [`DMS_NAMESPACE`] (prefix `dms`), on `File`:
//! `dms:SHA-256`, the SHA-256 of the object (after content decoding) as 64
//! **hexadecimal** digits (written lowercase, read in either case; hex
//! because that is how digests are printed by tools and in our manifests),
//! and `dms:Manifest`, the URI of the object's signed manifest.
//!
//! A file that is a delta between two versions of another object carries
//! `dms:Delta-Base` and `dms:Delta-Target` (the hex SHA-256 of the version
//! it applies to and of the version it produces) and optionally
//! `dms:Target-Manifest` (the URI of the target's signed manifest), so a
//! receiver that has the base can pick it and one that has not can skip
//! it ([`FdtDelta`]). A file with only one of the two hashes is read as no
//! delta.

mod parse;
mod write;

#[cfg(test)]
mod tests;

use crate::lct::{Fti, LctError, NoCodeFti, RaptorFti, RaptorQFti};

/// The FDT namespace of RFC 3926 and RFC 6726.
pub const FDT_NAMESPACE: &str = "urn:IETF:metadata:2005:FLUTE:FDT";
/// The namespace of dms's own attributes (prefix `dms`).
pub const DMS_NAMESPACE: &str = "urn:dms:fdt:2026";
/// Default limit on the size of an FDT Instance accepted by
/// [`FdtInstance::parse`] (1 MiB).
pub const DEFAULT_MAX_FDT_SIZE: usize = 1 << 20;

/// Errors of FDT parsing and interpretation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FdtError {
    /// The document is larger than the limit.
    #[error("FDT Instance of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The document is not UTF-8.
    #[error("FDT Instance is not UTF-8")]
    NotUtf8,
    /// The XML is not well-formed.
    #[error("malformed XML at byte {position}: {message}")]
    Xml {
        /// Byte offset of the error.
        position: u64,
        /// The XML parser's message.
        message: String,
    },
    /// There is no root element, or the document ends inside it.
    #[error("FDT-Instance element missing or not closed")]
    MissingRoot,
    /// The root element is not an FDT-Instance.
    #[error("unexpected root element {0:?}")]
    UnexpectedRoot(String),
    /// A required attribute is missing.
    #[error("{element} lacks the required attribute {attribute}")]
    MissingAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
    },
    /// An attribute value cannot be parsed.
    #[error("invalid {attribute} on {element}: {value:?}")]
    InvalidAttribute {
        /// The element.
        element: &'static str,
        /// The attribute.
        attribute: &'static str,
        /// Its value (cut to 64 characters).
        value: String,
    },
    /// The FEC OTI of a file names a FEC scheme this crate lacks.
    #[error("unsupported FEC Encoding ID {0}")]
    UnsupportedFecEncodingId(u8),
    /// The FEC OTI of a file is incomplete or invalid.
    #[error("invalid FEC OTI: {0}")]
    InvalidFecOti(#[from] LctError),
}

/// The `FEC-OTI-*` attributes of an FDT-Instance or a File, all optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FecOti {
    /// `FEC-OTI-FEC-Encoding-ID`.
    pub fec_encoding_id: Option<u8>,
    /// `FEC-OTI-FEC-Instance-ID` (for FEC Encoding IDs ≥ 128).
    pub fec_instance_id: Option<u16>,
    /// `FEC-OTI-Maximum-Source-Block-Length`, in symbols.
    pub maximum_source_block_length: Option<u32>,
    /// `FEC-OTI-Encoding-Symbol-Length`, in bytes.
    pub encoding_symbol_length: Option<u16>,
    /// `FEC-OTI-Max-Number-of-Encoding-Symbols`.
    pub max_number_of_encoding_symbols: Option<u32>,
    /// `FEC-OTI-Scheme-Specific-Info`, base64-decoded.
    pub scheme_specific_info: Option<Vec<u8>>,
}

impl FecOti {
    /// These values, with `defaults` filling the ones that are absent.
    pub fn or(&self, defaults: &FecOti) -> FecOti {
        FecOti {
            fec_encoding_id: self.fec_encoding_id.or(defaults.fec_encoding_id),
            fec_instance_id: self.fec_instance_id.or(defaults.fec_instance_id),
            maximum_source_block_length: self
                .maximum_source_block_length
                .or(defaults.maximum_source_block_length),
            encoding_symbol_length: self
                .encoding_symbol_length
                .or(defaults.encoding_symbol_length),
            max_number_of_encoding_symbols: self
                .max_number_of_encoding_symbols
                .or(defaults.max_number_of_encoding_symbols),
            scheme_specific_info: self
                .scheme_specific_info
                .clone()
                .or_else(|| defaults.scheme_specific_info.clone()),
        }
    }

    /// The attributes describing `fti`.
    ///
    /// For RaptorQ and Raptor, Maximum-Source-Block-Length is set to the
    /// number of source symbols of the largest source block (other
    /// receivers, such as the `flute` crate, require it even though both
    /// schemes derive it from Z).
    pub fn from_fti(fti: &Fti) -> FecOti {
        match fti {
            Fti::Raptor(f) => {
                let t = u64::from(f.symbol_size());
                let symbols = f.transfer_length().div_ceil(t);
                let largest = symbols.div_ceil(u64::from(f.source_blocks()));
                FecOti {
                    fec_encoding_id: Some(fti.codepoint()),
                    maximum_source_block_length: Some(
                        u32::try_from(largest.max(1)).unwrap_or(u32::MAX),
                    ),
                    encoding_symbol_length: Some(f.symbol_size()),
                    scheme_specific_info: Some(
                        RaptorSchemeInfo {
                            source_blocks: f.source_blocks(),
                            sub_blocks: f.sub_blocks(),
                            alignment: f.alignment(),
                        }
                        .to_bytes()
                        .to_vec(),
                    ),
                    ..FecOti::default()
                }
            }
            Fti::RaptorQ(f) => {
                let t = u64::from(f.symbol_size());
                let symbols = f.transfer_length().div_ceil(t);
                let largest = symbols.div_ceil(u64::from(f.source_blocks()));
                FecOti {
                    fec_encoding_id: Some(fti.codepoint()),
                    maximum_source_block_length: Some(
                        u32::try_from(largest.max(1)).unwrap_or(u32::MAX),
                    ),
                    encoding_symbol_length: Some(f.symbol_size()),
                    scheme_specific_info: Some(
                        RaptorQSchemeInfo {
                            source_blocks: f.source_blocks(),
                            sub_blocks: f.sub_blocks(),
                            alignment: f.alignment(),
                        }
                        .to_bytes()
                        .to_vec(),
                    ),
                    ..FecOti::default()
                }
            }
            Fti::NoCode(f) => FecOti {
                fec_encoding_id: Some(fti.codepoint()),
                maximum_source_block_length: Some(f.max_source_block_length()),
                encoding_symbol_length: Some(f.symbol_length()),
                ..FecOti::default()
            },
        }
    }

    /// The FTI these attributes describe for an object of `transfer_length`
    /// bytes, or `None` if no FEC Encoding ID is given.
    pub fn fti(&self, transfer_length: u64) -> Result<Option<Fti>, FdtError> {
        let missing = |reason| FdtError::InvalidFecOti(LctError::InvalidFti { reason });
        let Some(id) = self.fec_encoding_id else {
            return Ok(None);
        };
        let symbol_length = self
            .encoding_symbol_length
            .ok_or(missing("Encoding-Symbol-Length is missing"))?;
        match id {
            crate::lct::CODEPOINT_RAPTORQ => {
                let ssi = self
                    .scheme_specific_info
                    .as_deref()
                    .ok_or(missing("Scheme-Specific-Info is missing"))?;
                let info = RaptorQSchemeInfo::from_bytes(ssi)
                    .ok_or(missing("Scheme-Specific-Info is not 4 bytes"))?;
                Ok(Some(Fti::RaptorQ(RaptorQFti::new(
                    transfer_length,
                    symbol_length,
                    info.source_blocks,
                    info.sub_blocks,
                    info.alignment,
                )?)))
            }
            crate::lct::CODEPOINT_RAPTOR => {
                let ssi = self
                    .scheme_specific_info
                    .as_deref()
                    .ok_or(missing("Scheme-Specific-Info is missing"))?;
                let info = RaptorSchemeInfo::from_bytes(ssi)
                    .ok_or(missing("Scheme-Specific-Info is not 4 bytes"))?;
                Ok(Some(Fti::Raptor(RaptorFti::new(
                    transfer_length,
                    symbol_length,
                    info.source_blocks,
                    info.sub_blocks,
                    info.alignment,
                )?)))
            }
            crate::lct::CODEPOINT_NO_CODE => {
                let max_block = self
                    .maximum_source_block_length
                    .ok_or(missing("Maximum-Source-Block-Length is missing"))?;
                Ok(Some(Fti::NoCode(NoCodeFti::new(
                    transfer_length,
                    symbol_length,
                    max_block,
                )?)))
            }
            other => Err(FdtError::UnsupportedFecEncodingId(other)),
        }
    }
}

/// RaptorQ's `FEC-OTI-Scheme-Specific-Info`: Z(8) | N(16) | Al(8),
/// carried base64-encoded (RFC 6330 §3.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RaptorQSchemeInfo {
    /// Number of source blocks Z.
    pub source_blocks: u8,
    /// Number of sub-blocks N.
    pub sub_blocks: u16,
    /// Symbol alignment Al.
    pub alignment: u8,
}

impl RaptorQSchemeInfo {
    /// Reads the 4 bytes; `None` if there are not exactly 4.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let [z, n0, n1, al] = *bytes else {
            return None;
        };
        Some(RaptorQSchemeInfo {
            source_blocks: z,
            sub_blocks: u16::from_be_bytes([n0, n1]),
            alignment: al,
        })
    }

    /// The 4 bytes.
    pub fn to_bytes(&self) -> [u8; 4] {
        let n = self.sub_blocks.to_be_bytes();
        [self.source_blocks, n[0], n[1], self.alignment]
    }
}

/// Raptor's `FEC-OTI-Scheme-Specific-Info`: Z(16) | N(8) | Al(8),
/// carried base64-encoded (RFC 5053 §3.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RaptorSchemeInfo {
    /// Number of source blocks Z.
    pub source_blocks: u16,
    /// Number of sub-blocks N.
    pub sub_blocks: u8,
    /// Symbol alignment Al.
    pub alignment: u8,
}

impl RaptorSchemeInfo {
    /// Reads the 4 bytes; `None` if there are not exactly 4.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let [z0, z1, n, al] = *bytes else {
            return None;
        };
        Some(RaptorSchemeInfo {
            source_blocks: u16::from_be_bytes([z0, z1]),
            sub_blocks: n,
            alignment: al,
        })
    }

    /// The 4 bytes.
    pub fn to_bytes(&self) -> [u8; 4] {
        let z = self.source_blocks.to_be_bytes();
        [z[0], z[1], self.sub_blocks, self.alignment]
    }
}

/// The `dms:Delta-*` attributes of a file that is a delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdtDelta {
    /// `dms:Delta-Base`: SHA-256 of the version the delta applies to.
    pub base_sha256: [u8; 32],
    /// `dms:Delta-Target`: SHA-256 of the version it produces.
    pub target_sha256: [u8; 32],
    /// `dms:Target-Manifest`: URI of the target's signed manifest.
    pub target_manifest: Option<String>,
}

/// One `File` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdtFile {
    /// `Content-Location` (a URI; required).
    pub content_location: String,
    /// `TOI` (required, not 0).
    pub toi: u128,
    /// `Content-Length`: size of the object before content encoding.
    pub content_length: Option<u64>,
    /// `Transfer-Length`: size of the transported object.
    pub transfer_length: Option<u64>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding` (e.g. `gzip`).
    pub content_encoding: Option<String>,
    /// `Content-MD5`, base64-decoded.
    pub content_md5: Option<[u8; 16]>,
    /// `FEC-OTI-*` attributes of this file (override the instance's).
    pub fec_oti: FecOti,
    /// `dms:SHA-256`: the object's SHA-256 (hex on the wire).
    pub sha256: Option<[u8; 32]>,
    /// `dms:Manifest`: URI of the object's signed manifest.
    pub manifest: Option<String>,
    /// `dms:Delta-Base`, `dms:Delta-Target`, `dms:Target-Manifest`: set
    /// when the file is a delta.
    pub delta: Option<FdtDelta>,
}

impl FdtFile {
    /// A file with only the required attributes.
    pub fn new(content_location: impl Into<String>, toi: u128) -> Self {
        FdtFile {
            content_location: content_location.into(),
            toi,
            content_length: None,
            transfer_length: None,
            content_type: None,
            content_encoding: None,
            content_md5: None,
            fec_oti: FecOti::default(),
            sha256: None,
            manifest: None,
            delta: None,
        }
    }

    /// Sets the transfer length and the FEC OTI attributes from `fti`.
    pub fn set_fti(&mut self, fti: &Fti) {
        self.transfer_length = Some(fti.transfer_length());
        self.fec_oti = FecOti::from_fti(fti);
    }
}

/// An FDT-Instance document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdtInstance {
    /// `Expires`: NTP time in seconds (upper 32 bits of an NTP timestamp).
    pub expires: u32,
    /// `Complete`: no further FDT Instance will add files to the session.
    pub complete: Option<bool>,
    /// Default `Content-Type` for files.
    pub content_type: Option<String>,
    /// Default `Content-Encoding` for files.
    pub content_encoding: Option<String>,
    /// Default `FEC-OTI-*` attributes for files.
    pub fec_oti: FecOti,
    /// The files, in document order.
    pub files: Vec<FdtFile>,
}

impl FdtInstance {
    /// An instance with no files and no defaults.
    pub fn new(expires: u32) -> Self {
        FdtInstance {
            expires,
            complete: None,
            content_type: None,
            content_encoding: None,
            fec_oti: FecOti::default(),
            files: Vec::new(),
        }
    }

    /// Parses a document of at most [`DEFAULT_MAX_FDT_SIZE`] bytes.
    pub fn parse(xml: &[u8]) -> Result<Self, FdtError> {
        Self::parse_with_limit(xml, DEFAULT_MAX_FDT_SIZE)
    }

    /// Parses a document of at most `max_len` bytes.
    pub fn parse_with_limit(xml: &[u8], max_len: usize) -> Result<Self, FdtError> {
        parse::parse(xml, max_len)
    }

    /// The XML document (UTF-8, with an XML declaration).
    pub fn to_xml(&self) -> String {
        write::write(self)
    }

    /// The file with this TOI, if listed.
    pub fn file(&self, toi: u128) -> Option<&FdtFile> {
        self.files.iter().find(|f| f.toi == toi)
    }

    /// The FEC OTI of `file`: its own attributes over the instance's.
    pub fn file_fec_oti(&self, file: &FdtFile) -> FecOti {
        file.fec_oti.or(&self.fec_oti)
    }

    /// The content type of `file`, or the instance's default.
    pub fn file_content_type<'s>(&'s self, file: &'s FdtFile) -> Option<&'s str> {
        file.content_type
            .as_deref()
            .or(self.content_type.as_deref())
    }

    /// The content encoding of `file`, or the instance's default.
    pub fn file_content_encoding<'s>(&'s self, file: &'s FdtFile) -> Option<&'s str> {
        file.content_encoding
            .as_deref()
            .or(self.content_encoding.as_deref())
    }

    /// The transfer length of `file`: `Transfer-Length`, or else
    /// `Content-Length` when no content encoding applies.
    pub fn transfer_length(&self, file: &FdtFile) -> Option<u64> {
        file.transfer_length
            .or_else(|| match self.file_content_encoding(file) {
                None | Some("") | Some("identity") => file.content_length,
                Some(_) => None,
            })
    }

    /// The FTI of `file` from the FDT alone: `None` if the FDT gives no FEC
    /// Encoding ID or no transfer length for it (a v1 sender may put the
    /// FTI in EXT_FTI instead).
    pub fn fti(&self, file: &FdtFile) -> Result<Option<Fti>, FdtError> {
        let Some(len) = self.transfer_length(file) else {
            return Ok(None);
        };
        self.file_fec_oti(file).fti(len)
    }
}
