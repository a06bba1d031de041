//! What the caller configures: the session ([`SenderConfig`]) and each
//! object ([`ObjectSpec`]).

use std::io::{Read, Seek};
use std::time::Duration;

use dms_fec::{BlockSize, FecScheme, Oti};

use crate::lct::{ContentEncoding, FluteVersion};

/// Default largest datagram: a 1500-byte Ethernet MTU minus the IPv4 (20)
/// and UDP (8) headers.
pub const DEFAULT_MAX_DATAGRAM_SIZE: usize = 1472;
/// Default budget for repair symbols kept across carousel rounds: 64 MiB.
pub const DEFAULT_REPAIR_CACHE_BYTES: u64 = 64 << 20;
/// Default symbol size T: fits a [`DEFAULT_MAX_DATAGRAM_SIZE`] datagram
/// with EXT_FTI and EXT_CENC, and is a multiple of RaptorQ's alignment 4.
pub const DEFAULT_SYMBOL_SIZE: u16 = 1400;
/// Smallest accepted `max_datagram_size`: room for a full LCT header with
/// its extensions and a useful FDT symbol.
pub const MIN_DATAGRAM_SIZE: usize = 128;

/// Configuration of one FLUTE session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SenderConfig {
    /// Transport Session Identifier (up to 48 bits).
    pub tsi: u64,
    /// FLUTE version written in EXT_FDT: [`FluteVersion::V2`] (RFC 6726,
    /// the default) or [`FluteVersion::V1`] (RFC 3926, 3GPP MBMS).
    pub flute_version: FluteVersion,
    /// Interval between the starts of two FDT transmissions (default 1 s).
    pub fdt_interval: Duration,
    /// The FDT's `Expires`: NTP seconds (upper 32 bits of an NTP
    /// timestamp). The sender has no clock; the driver computes it from its
    /// own, e.g. session start plus the session's lifetime.
    pub fdt_expires: u32,
    /// How many times the whole object list is sent (default 1).
    pub carousel_rounds: u32,
    /// Put EXT_FTI on every data packet (default on). Off, the FEC OTI is
    /// only in the FDT, as in the 3GPP profile. FDT packets always carry it.
    pub inband_fti: bool,
    /// Set the B flag (close object) on each object's last packet
    /// (default on).
    pub close_object: bool,
    /// Set the A flag (close session) on the session's last packet
    /// (default on). After that packet, [`Sender::add_object`] fails.
    ///
    /// [`Sender::add_object`]: super::Sender::add_object
    pub close_session: bool,
    /// Largest datagram the sender writes, in bytes (default
    /// [`DEFAULT_MAX_DATAGRAM_SIZE`]). FDT symbols fill it; an object whose
    /// symbol does not fit is refused.
    pub max_datagram_size: usize,
    /// Bytes of repair symbols kept between carousel rounds so that each
    /// block is encoded once (default [`DEFAULT_REPAIR_CACHE_BYTES`]). Only
    /// used when `carousel_rounds > 1`; an object whose repair symbols
    /// would exceed what is left of it is refused.
    pub repair_cache_bytes: u64,
}

impl SenderConfig {
    /// A configuration with the defaults and this TSI and FDT `Expires`.
    pub fn new(tsi: u64, fdt_expires: u32) -> Self {
        SenderConfig {
            tsi,
            flute_version: FluteVersion::V2,
            fdt_interval: Duration::from_secs(1),
            fdt_expires,
            carousel_rounds: 1,
            inband_fti: true,
            close_object: true,
            close_session: true,
            max_datagram_size: DEFAULT_MAX_DATAGRAM_SIZE,
            repair_cache_bytes: DEFAULT_REPAIR_CACHE_BYTES,
        }
    }
}

/// A readable, seekable object source (a file, a cursor over bytes).
///
/// The sender reads one source block at a time with a seek to its offset,
/// so sources are never read whole into memory, and later carousel rounds
/// read their blocks again.
pub trait ObjectSource: Read + Seek + Send {}

impl<T: Read + Seek + Send + ?Sized> ObjectSource for T {}

/// One object to send.
#[non_exhaustive]
pub struct ObjectSpec {
    /// `Content-Location` in the FDT (a URI).
    pub content_location: String,
    /// `Content-Type` in the FDT.
    pub content_type: Option<String>,
    /// The content encoding the source's bytes already have (the sender
    /// does not compress). Signalled in EXT_CENC on every data packet and as
    /// `Content-Encoding` in the FDT (`zlib`, `deflate` or `gzip`: the names
    /// of RFC 3926's EXT_CENC table, lowercase). `None` or
    /// [`ContentEncoding::Null`]: not encoded.
    pub content_encoding: Option<ContentEncoding>,
    /// `Content-Length`: the size after content decoding. Without a content
    /// encoding it defaults to the source's length.
    pub content_length: Option<u64>,
    /// Higher first. Objects of equal priority share the channel, their
    /// blocks interleaved round-robin.
    pub priority: u8,
    /// FEC scheme (default RaptorQ).
    pub fec: FecScheme,
    /// Symbol size T in bytes (default [`DEFAULT_SYMBOL_SIZE`]); a multiple
    /// of 4 for RaptorQ and Raptor.
    pub symbol_size: u16,
    /// Largest source block (default about 1 MiB).
    pub block_size: BlockSize,
    /// An exact FEC layout to use instead of the one `fec`, `symbol_size`
    /// and `block_size` would plan (default `None`): an origin sends an
    /// object in the layout it stored, so repair symbols served later fit
    /// what receivers hold. Its transfer length must be the source's.
    pub oti: Option<Oti>,
    /// Repair symbols per block as a percentage of K, rounded up: each
    /// block gets ⌈K·pct/100⌉ repair symbols with ESIs K, K+1, … (RaptorQ
    /// and Raptor; ignored for no-code). Default 10.
    pub repair_percent: u32,
    /// `dms:SHA-256` in the FDT.
    pub sha256: Option<[u8; 32]>,
    /// `dms:Manifest` in the FDT.
    pub manifest: Option<String>,
    /// `dms:Delta-Base`, `dms:Delta-Target` and `dms:Target-Manifest` in
    /// the FDT, for an object that is a delta between two versions.
    pub delta: Option<crate::fdt::FdtDelta>,
    /// `Content-MD5` in the FDT. Supplied by the caller (the origin stores
    /// it with the blob): the FDT is sent before the object is read, so an
    /// MD5 computed while sending would come too late for it.
    pub content_md5: Option<[u8; 16]>,
    /// The object's bytes, as transported (after content encoding).
    pub source: Box<dyn ObjectSource>,
}

impl ObjectSpec {
    /// An object with the defaults, read from `source`.
    pub fn new(content_location: impl Into<String>, source: impl ObjectSource + 'static) -> Self {
        ObjectSpec {
            content_location: content_location.into(),
            content_type: None,
            content_encoding: None,
            content_length: None,
            priority: 0,
            fec: FecScheme::RaptorQ,
            symbol_size: DEFAULT_SYMBOL_SIZE,
            block_size: BlockSize::default(),
            oti: None,
            repair_percent: 10,
            sha256: None,
            manifest: None,
            delta: None,
            content_md5: None,
            source: Box::new(source),
        }
    }
}

impl std::fmt::Debug for ObjectSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectSpec")
            .field("content_location", &self.content_location)
            .field("content_type", &self.content_type)
            .field("content_encoding", &self.content_encoding)
            .field("priority", &self.priority)
            .field("fec", &self.fec)
            .field("symbol_size", &self.symbol_size)
            .field("block_size", &self.block_size)
            .field("oti", &self.oti)
            .field("repair_percent", &self.repair_percent)
            .finish_non_exhaustive()
    }
}

/// The FDT `Content-Encoding` token of an EXT_CENC value.
pub(crate) fn content_encoding_token(cenc: ContentEncoding) -> Option<&'static str> {
    match cenc {
        ContentEncoding::Null => None,
        ContentEncoding::Zlib => Some("zlib"),
        ContentEncoding::Deflate => Some("deflate"),
        ContentEncoding::Gzip => Some("gzip"),
    }
}
