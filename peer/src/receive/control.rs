//! Talking to a running receiver's decode thread: the gaps of an object,
//! symbols obtained by repair, the signed manifest that gates its output,
//! giving an object up (e.g. once downloaded whole), and adopting an
//! object the broadcast never carried here (learned from peers).

use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use dms_fec::{Oti, PayloadId};
use dms_flute::receiver::Gap;

/// Longest wait for the decode thread to answer.
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// What an object still needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectGaps {
    /// Its FEC parameters.
    pub oti: Oti,
    /// The blocks not yet decoded and how many symbols each needs; empty
    /// once every block is decoded.
    pub gaps: Vec<Gap>,
    /// The object failed (a block or the whole object does not match its
    /// manifest or digest, e.g. because of bad repair symbols): the
    /// receiver dropped it, and it must be fetched again whole.
    pub failed: bool,
}

/// What a verified signed manifest says an object must be. With
/// [`ReceiveConfig::require_manifest`](super::ReceiveConfig::require_manifest),
/// an object reaches its final path only once its check is given and
/// everything matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestCheck {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the whole object.
    pub sha256: [u8; 32],
    /// SHA-256 of each source block, in block order.
    pub block_sha256: Vec<[u8; 32]>,
}

/// A symbol obtained by repair.
pub type RepairSymbol = (PayloadId, Vec<u8>);

/// The session under which adopted objects are kept by default: LCT TSIs
/// are at most 48 bits, so no broadcast session ever has this one.
pub const ADOPTED_TSI: u64 = 1 << 48;

/// The first TOI for adopted objects: LCT TOIs are at most 112 bits, so
/// TOIs from here on never collide with a broadcast object's, even in a
/// broadcast session (e.g. when the receiver is filtered to one TSI).
pub const ADOPTED_TOI_BASE: u128 = 1 << 112;

/// The facts of an object the receiver never saw on the broadcast (e.g.
/// from a peer's announcement), from which [`Control::adopt`] describes
/// it to the FLUTE receiver as a one-file FDT would.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdoptedObject {
    /// Its Content-Location (names the output file).
    pub content_location: String,
    /// Its size in bytes (FDT Content-Length: once any content encoding
    /// is undone).
    pub content_length: u64,
    /// Its FEC parameters.
    pub oti: Oti,
    /// SHA-256 of the whole object: checked on completion when given.
    pub sha256: Option<[u8; 32]>,
    /// Where its signed manifest is served.
    pub manifest_uri: Option<String>,
    /// Its Content-Type.
    pub content_type: Option<String>,
    /// Its Content-Encoding (undone on completion, as for the broadcast).
    pub content_encoding: Option<String>,
}

impl AdoptedObject {
    /// An object at `content_location` of `content_length` bytes with FEC
    /// parameters `oti`, nothing else known.
    pub fn new(content_location: impl Into<String>, content_length: u64, oti: Oti) -> Self {
        AdoptedObject {
            content_location: content_location.into(),
            content_length,
            oti,
            sha256: None,
            manifest_uri: None,
            content_type: None,
            content_encoding: None,
        }
    }
}

/// Why [`Control::adopt`] did not adopt an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdoptError {
    /// The receiver stopped (or did not answer).
    #[error("the receiver is not running")]
    Stopped,
    /// The receiver already knows an object under this TSI and TOI.
    #[error("TSI {tsi}, TOI {toi} is already in use")]
    InUse {
        /// The session.
        tsi: u64,
        /// The object.
        toi: u128,
    },
    /// The receiver refused the description (TSI filtered out, session
    /// limit, FEC parameters beyond its limits).
    #[error("refused: {0}")]
    Refused(String),
}

pub(super) enum Command {
    Gaps {
        tsi: u64,
        toi: u128,
        reply: Sender<Option<ObjectGaps>>,
    },
    Repair {
        tsi: u64,
        toi: u128,
        symbols: Vec<RepairSymbol>,
        reply: Sender<Option<ObjectGaps>>,
    },
    Manifest {
        tsi: u64,
        toi: u128,
        check: ManifestCheck,
    },
    Abandon {
        tsi: u64,
        toi: u128,
    },
    Adopt {
        tsi: u64,
        toi: u128,
        object: AdoptedObject,
        reply: Sender<Result<ObjectGaps, AdoptError>>,
    },
}

/// A handle on a running receiver's decode thread (cheap to clone). Calls
/// after the receiver stopped answer `None` or do nothing.
#[derive(Debug, Clone)]
pub struct Control {
    pub(super) tx: Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl Control {
    /// What object `toi` of session `tsi` still needs; `None` if its FEC
    /// parameters are not known (or the receiver stopped).
    pub fn gaps(&self, tsi: u64, toi: u128) -> Option<ObjectGaps> {
        let (reply, answer) = channel();
        self.tx.send(Command::Gaps { tsi, toi, reply }).ok()?;
        answer.recv_timeout(ANSWER_WAIT).ok().flatten()
    }

    /// Feeds repair symbols to object `toi` (decoding blocks that now have
    /// enough) and returns what it still needs.
    pub fn repair(&self, tsi: u64, toi: u128, symbols: Vec<RepairSymbol>) -> Option<ObjectGaps> {
        let (reply, answer) = channel();
        self.tx
            .send(Command::Repair {
                tsi,
                toi,
                symbols,
                reply,
            })
            .ok()?;
        answer.recv_timeout(ANSWER_WAIT).ok().flatten()
    }

    /// Gives the verified manifest of object `toi`.
    pub fn set_manifest(&self, tsi: u64, toi: u128, check: ManifestCheck) {
        let _ = self.tx.send(Command::Manifest { tsi, toi, check });
    }

    /// Stops receiving object `toi` and removes what was written of it.
    pub fn abandon(&self, tsi: u64, toi: u128) {
        let _ = self.tx.send(Command::Abandon { tsi, toi });
    }

    /// Makes the receiver know `object`, which it never saw on the
    /// broadcast, as object `toi` of session `tsi` (see [`ADOPTED_TSI`]
    /// and [`ADOPTED_TOI_BASE`] for numbers no broadcast uses). It is
    /// then reported [`ObjectState::Receiving`](super::ObjectState) like
    /// any other, [`Control::gaps`] answers every block as needed,
    /// [`Control::repair`] feeds it, and once whole it is verified (its
    /// SHA-256 if given, the manifest check of [`Control::set_manifest`])
    /// and renamed to the name from its Content-Location. Returns what it
    /// needs.
    pub fn adopt(
        &self,
        tsi: u64,
        toi: u128,
        object: AdoptedObject,
    ) -> Result<ObjectGaps, AdoptError> {
        let (reply, answer) = channel();
        self.tx
            .send(Command::Adopt {
                tsi,
                toi,
                object,
                reply,
            })
            .map_err(|_| AdoptError::Stopped)?;
        answer
            .recv_timeout(ANSWER_WAIT)
            .map_err(|_| AdoptError::Stopped)?
    }
}
