//! The session thread: Content-MD5 of each object (while a helper thread
//! encodes the first blocks ahead), the wait for `start_at`, then the
//! paced transmitter, on a dedicated OS thread (never on the async
//! workers: pacing sleeps and encoding take a core).

use std::sync::Arc;
use std::time::Duration;

use dms_fec::{BlockSize, Oti};
use dms_flute::ObjectSpec;

use super::blob_source::BlobCursor;
use super::request::unix_now;
use super::session::Session;
use super::view::SessionState;
use crate::transmit::Transmitter;

/// Longest sleep while waiting for `start_at`, so a stop is seen soon.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// What a session thread starts with.
pub(super) struct Prepared {
    pub(super) transmitter: Transmitter,
    /// Objects in send order.
    pub(super) objects: Vec<PlannedObject>,
}

/// Starts the session's thread.
pub(super) fn spawn(session: Arc<Session>, prepared: Prepared) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!(
            "dms-session-{}",
            &session.id[..8.min(session.id.len())]
        ))
        .spawn(move || run(&session, prepared))
        .map(|_| ())
}

/// How a run ended.
struct Outcome {
    state: SessionState,
    error: Option<String>,
}

fn run(session: &Session, prepared: Prepared) {
    let outcome = match run_inner(session, prepared) {
        Ok(o) => o,
        Err(e) => Outcome {
            state: SessionState::Failed,
            error: Some(e),
        },
    };
    tracing::info!(
        session = %session.id,
        state = outcome.state.as_str(),
        packets = session.live.packets(),
        bytes = session.live.bytes(),
        error = outcome.error.as_deref().unwrap_or(""),
        "broadcast session ended"
    );
    {
        let mut status = session.status();
        status.state = outcome.state;
        status.error = outcome.error;
        status.finished_at = Some(unix_now());
    }
    session.save();
}

fn stopped() -> Result<Outcome, String> {
    Ok(Outcome {
        state: SessionState::Stopped,
        error: None,
    })
}

fn run_inner(session: &Session, prepared: Prepared) -> Result<Outcome, String> {
    let Prepared {
        mut transmitter,
        objects,
    } = prepared;
    let keep_going = || !session.stop.is_stopped();
    // Objects go in first, without their Content-MD5, so a helper thread
    // can encode their first blocks while the MD5 is computed (the FDT
    // goes out only after that, with it).
    let mut to_hash = Vec::with_capacity(objects.len());
    for object in objects {
        let cursor = object.cursor.clone();
        let (location, sha256) = (object.content_location.clone(), object.sha256);
        let toi = transmitter
            .add_object(object.into_spec(None))
            .map_err(|e| format!("adding {location}: {e}"))?;
        transmitter.encode_ahead_from(toi, cursor.clone());
        to_hash.push((toi, cursor, location, sha256));
    }
    // Not for a session scheduled later: encoded blocks would wait in
    // memory until then.
    if session.spec.start_at.is_none_or(|at| at <= unix_now() + 1) {
        transmitter
            .start_encoding_ahead()
            .map_err(|e| e.to_string())?;
    }
    for (toi, cursor, location, sha256) in to_hash {
        // Streams the blob once.
        let md5 = cursor
            .md5(keep_going)
            .map_err(|e| format!("reading {location}: {e}"))?;
        let Some(md5) = md5 else { return stopped() };
        transmitter
            .set_digests(toi, Some(md5), Some(sha256))
            .map_err(|e| format!("describing {location}: {e}"))?;
    }
    if let Some(at) = session.spec.start_at {
        while unix_now() < at {
            if session.stop.is_stopped() {
                return stopped();
            }
            std::thread::sleep(WAIT_SLICE);
        }
    }
    if session.stop.is_stopped() {
        return stopped();
    }
    {
        let mut status = session.status();
        status.state = SessionState::Running;
        status.started_at = Some(unix_now());
    }
    session.save();
    tracing::info!(session = %session.id, "broadcast session running");
    let report = transmitter.run().map_err(|e| e.to_string())?;
    let failed: Vec<String> = session
        .live
        .objects()
        .iter()
        .zip(&report.sender.objects)
        .filter(|(_, s)| s.failed)
        .map(|(p, _)| p.content_location().to_owned())
        .collect();
    if report.stopped {
        return stopped();
    }
    if !failed.is_empty() {
        return Ok(Outcome {
            state: SessionState::Failed,
            error: Some(format!("could not read: {}", failed.join(", "))),
        });
    }
    Ok(Outcome {
        state: SessionState::Finished,
        error: None,
    })
}

/// An object ready to send but for its Content-MD5.
pub(super) struct PlannedObject {
    pub(super) cursor: BlobCursor,
    pub(super) content_location: String,
    pub(super) oti: Oti,
    pub(super) repair_percent: u32,
    pub(super) priority: u8,
    pub(super) content_type: String,
    pub(super) size: u64,
    pub(super) sha256: [u8; 32],
    pub(super) manifest: String,
    pub(super) delta: Option<dms_flute::fdt::FdtDelta>,
}

impl PlannedObject {
    /// The sender's object, in exactly the layout `oti`.
    fn into_spec(self, md5: Option<[u8; 16]>) -> ObjectSpec {
        let mut spec = ObjectSpec::new(self.content_location, self.cursor);
        spec.fec = self.oti.scheme();
        spec.symbol_size = self.oti.symbol_size();
        // The same layout as `oti` (so the transmitter's progress estimate
        // matches); `oti` is what the sender uses.
        spec.block_size = BlockSize::Symbols(self.oti.max_source_block_length());
        spec.oti = Some(self.oti);
        spec.repair_percent = self.repair_percent;
        spec.priority = self.priority;
        spec.content_type = Some(self.content_type);
        spec.content_length = Some(self.size);
        spec.sha256 = Some(self.sha256);
        spec.manifest = Some(self.manifest);
        spec.delta = self.delta;
        spec.content_md5 = md5;
        spec
    }
}
