//! What the receiver reports: events, object descriptions, drop reasons and
//! counters.

use dms_fec::{FecScheme, Oti, OtiError, SymbolError};

use crate::alc::AlcError;
use crate::fdt::{FdtError, FdtFile, FdtInstance};
use crate::lct::ContentEncoding;

/// What the receiver knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Bytes transported (the FEC transfer length).
    pub transfer_length: u64,
    /// The FEC scheme.
    pub fec: FecScheme,
    /// The FDT's description; `None` while the object is known only from
    /// EXT_FTI.
    pub file: Option<FileDescription>,
}

impl ObjectInfo {
    pub(super) fn new(file: Option<&FileDescription>, oti: &Oti) -> Self {
        ObjectInfo {
            transfer_length: oti.transfer_length(),
            fec: oti.scheme(),
            file: file.cloned(),
        }
    }

    /// The `Content-Location`, once the FDT has described the object.
    pub fn content_location(&self) -> Option<&str> {
        Some(self.file.as_ref()?.content_location.as_str())
    }

    /// The `Content-Encoding`, if the FDT gives one.
    pub fn content_encoding(&self) -> Option<&str> {
        self.file.as_ref()?.content_encoding.as_deref()
    }

    /// Whether the transported bytes are the content itself (no content
    /// encoding, or `identity`).
    pub fn is_identity_encoded(&self) -> bool {
        matches!(self.content_encoding(), None | Some("") | Some("identity"))
    }
}

/// An object as an FDT `File` element describes it (instance defaults
/// applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDescription {
    /// `Content-Location`.
    pub content_location: String,
    /// `Content-Length`: bytes after content decoding.
    pub content_length: Option<u64>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding` (`gzip`, `deflate`, …): the I/O layer decodes.
    pub content_encoding: Option<String>,
    /// `Content-MD5` of the transported object.
    pub content_md5: Option<[u8; 16]>,
    /// `dms:SHA-256` of the object after content decoding.
    pub sha256: Option<[u8; 32]>,
    /// `dms:Manifest`: URI of the object's signed manifest.
    pub manifest: Option<String>,
    /// `dms:Delta-*`: set when the object is a delta (its base and target
    /// SHA-256, the target's manifest URI).
    pub delta: Option<crate::fdt::FdtDelta>,
}

impl FileDescription {
    pub(super) fn from_fdt(fdt: &FdtInstance, file: &FdtFile) -> Self {
        FileDescription {
            content_location: file.content_location.clone(),
            content_length: file.content_length,
            content_type: fdt.file_content_type(file).map(str::to_owned),
            content_encoding: fdt.file_content_encoding(file).map(str::to_owned),
            content_md5: file.content_md5,
            sha256: file.sha256,
            manifest: file.manifest.clone(),
            delta: file.delta.clone(),
        }
    }
}

/// How a digest was checked when an object completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The digest was given and matches.
    Verified,
    /// No digest was given (or the FDT arrived too late to give it).
    NotGiven,
    /// The digest was given but not checked: a SHA-256 of the same bytes
    /// was (see `ReceiverConfig::md5_with_sha256`).
    NotChecked,
    /// The digest applies to the content after decoding its
    /// Content-Encoding, which the I/O layer does: it must check it
    /// against the object's [`FileDescription::sha256`].
    AfterContentDecoding,
    /// The digest was given but could not be computed as the blocks left
    /// in order: blocks decoded ahead of a gap were released to bound
    /// memory (see
    /// [`ReceiverConfig::max_ahead_bytes`](super::ReceiverConfig::max_ahead_bytes)),
    /// each handed out once as [`Event::BlockDecodedAhead`]. The I/O layer
    /// must compute it over the object it wrote and check it against the
    /// [`FileDescription`] before using the object.
    NotComputed,
}

/// Why an object failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FailureReason {
    /// The transported bytes do not match `Content-MD5`.
    #[error("Content-MD5 mismatch")]
    Md5Mismatch {
        /// From the FDT.
        expected: [u8; 16],
        /// Of the bytes received.
        actual: [u8; 16],
    },
    /// The bytes do not match `dms:SHA-256`.
    #[error("SHA-256 mismatch")]
    Sha256Mismatch {
        /// From the FDT.
        expected: [u8; 32],
        /// Of the bytes received.
        actual: [u8; 32],
    },
}

/// Symbols still needed by one source block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Source block number.
    pub sbn: u32,
    /// Further symbols (any ESI) the block needs before it can decode.
    pub symbols_needed: u32,
}

/// An output of the receiver, in the order things happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An FDT Instance was received and applied.
    FdtReceived {
        /// Session.
        tsi: u64,
        /// FDT Instance ID.
        instance_id: u32,
        /// Number of `File` elements.
        files: usize,
        /// The instance's `Complete` attribute.
        complete: Option<bool>,
    },
    /// An FDT Instance arrived content-encoded (EXT_CENC): the I/O layer
    /// decodes it and hands the XML back with
    /// [`Receiver::handle_fdt`](super::Receiver::handle_fdt).
    FdtEncoded {
        /// Session.
        tsi: u64,
        /// FDT Instance ID.
        instance_id: u32,
        /// The encoding.
        encoding: ContentEncoding,
        /// The encoded instance.
        data: Vec<u8>,
    },
    /// An object's FEC parameters are known: blocks will follow.
    ObjectStarted {
        /// Session.
        tsi: u64,
        /// Object.
        toi: u128,
        /// What is known of it.
        info: ObjectInfo,
    },
    /// The FDT described an object that had started from EXT_FTI alone.
    ObjectDescribed {
        /// Session.
        tsi: u64,
        /// Object.
        toi: u128,
        /// What is now known of it.
        info: ObjectInfo,
    },
    /// A decoded block, in order: write `data` at `offset`. Blocks of an
    /// object whose blocks were released (see
    /// [`Event::BlockDecodedAhead`]) that left as `BlockDecodedAhead` are
    /// skipped.
    BlockDecoded {
        /// Session.
        tsi: u64,
        /// Object.
        toi: u128,
        /// Source block number.
        sbn: u32,
        /// Byte offset in the object.
        offset: u64,
        /// The block's bytes.
        data: Vec<u8>,
    },
    /// A block decoded while an earlier block is still incomplete (only
    /// with [`ReceiverConfig::blocks_ahead`](super::ReceiverConfig)): a
    /// copy to write at `offset` now. The same block comes again as
    /// [`Event::BlockDecoded`] when the blocks before it are out — unless
    /// the object's blocks were released (more than
    /// [`ReceiverConfig::max_ahead_bytes`](super::ReceiverConfig::max_ahead_bytes)
    /// were held): then this is the only time the block is handed out,
    /// and the object completes with digests
    /// [`Verification::NotComputed`].
    BlockDecodedAhead {
        /// Session.
        tsi: u64,
        /// Object.
        toi: u128,
        /// Source block number.
        sbn: u32,
        /// Byte offset in the object.
        offset: u64,
        /// The block's bytes.
        data: Vec<u8>,
    },
    /// Every block was handed out and the digests that could be checked
    /// match.
    ObjectComplete {
        /// Session.
        tsi: u64,
        /// Object.
        toi: u128,
        /// What is known of it (Content-Location, length, encoding…).
        info: ObjectInfo,
        /// The Content-MD5 check.
        md5: Verification,
        /// The `dms:SHA-256` check.
        sha256: Verification,
    },
    /// Every block was handed out but a digest does not match: discard
    /// what was written.
    ObjectFailed {
        /// Session.
        tsi: u64,
        /// Object.
        toi: u128,
        /// What is known of it.
        info: ObjectInfo,
        /// Why.
        reason: FailureReason,
    },
    /// The sender closed the object (B flag). This does not mean it is
    /// complete: see [`Receiver::gaps`](super::Receiver::gaps).
    ObjectClosed {
        /// Session.
        tsi: u64,
        /// Object.
        toi: u128,
    },
    /// The sender closed the session (A flag).
    SessionClosed {
        /// Session.
        tsi: u64,
    },
    /// No packet arrived for the configured idle timeout; packets still
    /// waiting for an OTI were dropped.
    SessionIdle {
        /// Session.
        tsi: u64,
    },
}

/// Why a packet (or part of it) was dropped. Each is also counted in
/// [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// The datagram is not a valid ALC packet (including unknown codepoints).
    #[error(transparent)]
    Malformed(#[from] AlcError),
    /// The session is not the one configured.
    #[error("TSI {0} is not received")]
    TsiFiltered(u64),
    /// Too many sessions.
    #[error("session limit reached")]
    SessionLimit,
    /// Too many objects in the session.
    #[error("object limit reached")]
    ObjectLimit,
    /// Too many objects decoding at once in the session.
    #[error("decoding object limit reached")]
    DecoderLimit,
    /// The FEC OTI (EXT_FTI or FDT) is not one we can decode.
    #[error("invalid FEC OTI: {0}")]
    BadOti(#[from] OtiError),
    /// The OTI describes more source blocks than
    /// [`ReceiverConfig::max_source_blocks`](super::ReceiverConfig::max_source_blocks).
    #[error("{0} source blocks exceed the limit")]
    TooManyBlocks(u32),
    /// The packet's codepoint is not the object's FEC scheme.
    #[error("codepoint {codepoint} does not match the object's FEC Encoding ID {expected}")]
    CodepointMismatch {
        /// In the packet.
        codepoint: u8,
        /// Of the object.
        expected: u8,
    },
    /// A symbol was rejected (SBN, ESI or length out of range).
    #[error(transparent)]
    Symbol(#[from] SymbolError),
    /// A FEC Payload ID with no symbol.
    #[error("packet carries no symbol")]
    EmptyPayload,
    /// The buffer of packets waiting for an OTI is full.
    #[error("pending buffer full")]
    PendingFull,
    /// A TOI 0 packet without EXT_FDT.
    #[error("TOI 0 packet without EXT_FDT")]
    MissingExtFdt,
    /// The first packet of an FDT Instance without EXT_FTI.
    #[error("FDT packet without EXT_FTI")]
    MissingFti,
    /// An FDT Instance larger than the configured limit.
    #[error("FDT Instance of {0} bytes exceeds the limit")]
    FdtTooLarge(u64),
    /// Too many FDT Instances being received at once.
    #[error("FDT Instance limit reached")]
    FdtLimit,
    /// The FDT Instance does not parse.
    #[error(transparent)]
    Fdt(#[from] FdtError),
    /// A repair symbol for an object that is not decoding.
    #[error("object is not decoding")]
    UnknownObject,
}

/// Counters of what the receiver did with its input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams handed to [`Receiver::handle_datagram`](super::Receiver::handle_datagram).
    pub datagrams: u64,
    /// Datagrams that are not valid ALC packets.
    pub malformed: u64,
    /// Of those, packets with a codepoint we do not implement.
    pub unknown_codepoint: u64,
    /// Packets of sessions not received.
    pub tsi_filtered: u64,
    /// Packets dropped because of a session, object or decoder limit.
    pub limits: u64,
    /// Invalid FEC OTIs (or over the block limit).
    pub bad_oti: u64,
    /// Packets whose codepoint is not their object's scheme.
    pub codepoint_mismatch: u64,
    /// Symbols rejected by the decoder.
    pub bad_symbols: u64,
    /// Packets with a payload id and no symbol.
    pub empty_payload: u64,
    /// Packets dropped because the pending buffer was full.
    pub pending_full: u64,
    /// Packets kept until their object's OTI was known.
    pub pending_stored: u64,
    /// Of those, replayed into a decoder.
    pub pending_replayed: u64,
    /// Pending packets dropped when their session went idle or was removed.
    pub pending_expired: u64,
    /// FDT packets without EXT_FDT or (first packet) EXT_FTI, or too large.
    pub fdt_malformed: u64,
    /// FDT Instances that did not parse.
    pub fdt_invalid: u64,
    /// FDT Instances applied.
    pub fdt_instances: u64,
    /// FDT packets of instances already received.
    pub fdt_repeats: u64,
    /// FDT `File` elements whose FEC OTI is invalid.
    pub fdt_bad_files: u64,
    /// OTIs that disagree with the one an object already has (ignored).
    pub oti_conflicts: u64,
    /// Symbols the decoder already had.
    pub duplicates: u64,
    /// Symbols for blocks already decoded or objects already complete.
    pub after_decoded: u64,
    /// Blocks decoded ahead of order that were handed out and released
    /// at once (not held for the in-order stream): see
    /// [`ReceiverConfig::max_ahead_bytes`](super::ReceiverConfig::max_ahead_bytes).
    pub blocks_released: u64,
    /// Objects whose blocks were released, so whose digests are left to
    /// the caller ([`Verification::NotComputed`]).
    pub digests_deferred: u64,
    /// Objects completed and verified.
    pub objects_complete: u64,
    /// Objects that failed verification.
    pub objects_failed: u64,
}

impl Stats {
    /// Counts a dropped packet.
    pub(super) fn record(&mut self, error: &PacketError) {
        let counter = match error {
            PacketError::Malformed(e) => {
                if matches!(e, AlcError::UnknownCodepoint(_)) {
                    self.unknown_codepoint += 1;
                }
                &mut self.malformed
            }
            PacketError::TsiFiltered(_) => &mut self.tsi_filtered,
            PacketError::SessionLimit | PacketError::ObjectLimit | PacketError::DecoderLimit => {
                &mut self.limits
            }
            PacketError::BadOti(_) | PacketError::TooManyBlocks(_) => &mut self.bad_oti,
            PacketError::CodepointMismatch { .. } => &mut self.codepoint_mismatch,
            PacketError::Symbol(_) | PacketError::UnknownObject => &mut self.bad_symbols,
            PacketError::EmptyPayload => &mut self.empty_payload,
            PacketError::PendingFull => &mut self.pending_full,
            PacketError::MissingExtFdt
            | PacketError::MissingFti
            | PacketError::FdtTooLarge(_)
            | PacketError::FdtLimit => &mut self.fdt_malformed,
            PacketError::Fdt(_) => &mut self.fdt_invalid,
        };
        *counter += 1;
    }
}
