//! What a [`MulticastReceiver`](super::MulticastReceiver) tells its caller.

use std::path::PathBuf;

/// Where an object stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectState {
    /// Blocks are arriving.
    Receiving,
    /// Complete, its digests (where given) verified, and renamed to `path`.
    Complete {
        /// The final file.
        path: PathBuf,
        /// Bytes in the file (after content decoding).
        size: u64,
        /// Whether at least one digest (Content-MD5, `dms:SHA-256`) was
        /// given and checked; objects from senders that give none are
        /// complete but unverified.
        verified: bool,
    },
    /// Failed; nothing was left in the output directory.
    Failed {
        /// Why.
        reason: String,
    },
}

/// An object's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectProgress {
    /// Session.
    pub tsi: u64,
    /// Object.
    pub toi: u128,
    /// The file name it is (or will be) written under: from its
    /// Content-Location, or `toi-<TOI>` while that is unknown or unusable.
    pub name: String,
    /// Its `Content-Location`, once the FDT described it.
    pub content_location: Option<String>,
    /// The URI of its signed manifest (`dms:Manifest` in the FDT), if given.
    pub manifest: Option<String>,
    /// When the FDT says it is a delta: its base and target SHA-256.
    pub delta: Option<Box<dms_flute::FdtDelta>>,
    /// Transported bytes decoded and written so far.
    pub bytes_decoded: u64,
    /// Transported bytes in all (the FEC transfer length).
    pub total_bytes: u64,
    /// Where it stands.
    pub state: ObjectState,
    /// The file its decoded blocks are written into, at their offsets,
    /// while it is received (a hidden temp file, or the partial file in the
    /// state directory); `None` before its first block and once finished.
    pub partial: Option<PathBuf>,
    /// The block whose decoding (and writing into `partial`) this event
    /// reports, if any: from now on its bytes can be read there.
    pub decoded_block: Option<u32>,
}

/// An event of a receiver, in the order things happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiveEvent {
    /// An object started, progressed, completed or failed.
    Object(ObjectProgress),
    /// The sender closed session `tsi` (objects still incomplete will not
    /// be completed by this session).
    SessionClosed {
        /// Session.
        tsi: u64,
    },
    /// Session `tsi` sent nothing for the idle timeout.
    SessionIdle {
        /// Session.
        tsi: u64,
    },
}
