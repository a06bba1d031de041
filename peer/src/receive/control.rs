//! Talking to a running receiver's decode thread: the gaps of an object,
//! symbols obtained by repair, the signed manifest that gates its output,
//! and giving an object up (e.g. once downloaded whole).

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
}
