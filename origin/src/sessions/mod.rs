//! Broadcast sessions: `POST /v1/sessions` schedules a FLUTE session of
//! stored objects on a multicast group; the origin runs it with the paced
//! [`Transmitter`](crate::transmit::Transmitter) on a thread of its own.
//!
//! ```text
//!  POST /v1/sessions ─> SessionRequest::validate ─> SessionRegistry::start
//!     (objects looked up, blobs opened, socket opened, under the gate)
//!        └─> thread: Content-MD5 of each blob ─> wait for start_at
//!                    ─> Transmitter::run (objects critical first) ─> state
//!  GET /v1/sessions/{id} <── Session::view (LiveStats, per-object progress)
//!  DELETE /v1/sessions/{id} ─> StopHandle
//!  DELETE /v1/objects/{id} ─> SessionRegistry::delete_object (veto: 409)
//! ```
//!
//! Each object is read from the blob store block by block (never whole in
//! memory), its FDT Content-Location is its `content_location` (the
//! unicast URI, which repair requests name), and the FDT carries its
//! Content-MD5, `dms:SHA-256` and manifest URI. With `fec = raptorq` and
//! the object's stored symbol size (the default), it goes out in exactly
//! its stored FEC layout, so the symbols unicast repair serves later fit
//! what receivers hold.
//!
//! Each session is also kept in `DATA/sessions/{id}.json` (see
//! [`store`]): a restarted origin lists the ended ones and resumes the
//! scheduled and running ones (same id and TSI; a running one starts its
//! object list again, a scheduled one still waits for `start_at`).

mod blob_source;
mod registry;
mod request;
mod runner;
mod session;
pub mod store;
mod view;

pub use blob_source::BlobCursor;
pub use registry::{SessionError, SessionRegistry};
pub use request::{
    SessionFec, SessionProcedures, SessionReportType, SessionRequest, SessionSpec, StartAt,
    parse_start_at,
};
pub use session::{Session, SessionObject};
pub use store::{SESSION_DIR, SessionStore};
pub use view::{SessionList, SessionObjectView, SessionState, SessionView};
