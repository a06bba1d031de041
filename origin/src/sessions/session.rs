//! One broadcast session: what was asked, its live counters and its state
//! (its JSON form is in [`super::view`]).

use std::sync::{Arc, Mutex, PoisonError};

use super::request::{SessionRequest, SessionSpec};
use super::store::{PersistedSession, SessionStore};
use super::view::{SessionObjectView, SessionState, SessionView};
use crate::model::Priority;
use crate::transmit::{LiveStats, StopHandle};

/// An object of a session, as planned at its start.
#[derive(Clone, Debug)]
pub struct SessionObject {
    /// Object id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Priority (the send order).
    pub priority: Priority,
    /// FDT Content-Location.
    pub content_location: String,
    /// Size in bytes.
    pub size: u64,
    /// The FEC layout it is sent in is the stored one (so unicast repair
    /// symbols fit).
    pub stored_layout: bool,
}

/// The mutable part of a session.
#[derive(Debug)]
pub(super) struct Status {
    pub(super) state: SessionState,
    pub(super) started_at: Option<u64>,
    pub(super) finished_at: Option<u64>,
    pub(super) error: Option<String>,
}

/// A broadcast session.
#[derive(Debug)]
pub struct Session {
    pub(super) id: String,
    pub(super) spec: SessionSpec,
    pub(super) created: u64,
    /// In send order (priority, then as asked).
    pub(super) objects: Vec<SessionObject>,
    pub(super) stop: StopHandle,
    pub(super) live: Arc<LiveStats>,
    pub(super) status: Mutex<Status>,
    /// The request as accepted (TSI and start time fixed), kept on disk.
    pub(super) request: SessionRequest,
    /// Times a restarted origin resumed it.
    pub(super) restarts: u32,
    /// Where it is kept across restarts (none: in memory only).
    pub(super) store: Option<Arc<SessionStore>>,
}

impl Session {
    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its state now.
    pub fn state(&self) -> SessionState {
        self.status().state
    }

    /// Whether it sends (or will send) object `id`.
    pub fn uses(&self, id: &str) -> bool {
        self.objects.iter().any(|o| o.id == id)
    }

    pub(super) fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks it to stop: a scheduled session never starts, a running one
    /// stops within a few milliseconds (the runner then sets `stopped`).
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// Writes its file (request and current view), if it has a store. A
    /// failed write is logged: the broadcast goes on.
    pub(super) fn save(&self) {
        let Some(store) = &self.store else { return };
        let persisted = PersistedSession {
            request: self.request.clone(),
            view: self.view(),
        };
        if let Err(e) = store.save(&persisted) {
            tracing::warn!(session = %self.id, error = %e, "session not saved");
        }
    }

    /// The JSON view.
    pub fn view(&self) -> SessionView {
        let (state, started_at, finished_at, error) = {
            let s = self.status();
            (s.state, s.started_at, s.finished_at, s.error.clone())
        };
        let progress = self.live.objects();
        let objects = self
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let p = progress.get(i);
                SessionObjectView {
                    id: o.id.clone(),
                    name: o.name.clone(),
                    version: o.version.clone(),
                    priority: o.priority,
                    content_location: o.content_location.clone(),
                    size: o.size,
                    stored_layout: o.stored_layout,
                    toi: p.map(|p| u64::try_from(p.toi()).unwrap_or(u64::MAX)),
                    packets_sent: p.map_or(0, |p| p.packets()),
                    bytes_sent: p.map_or(0, |p| p.bytes()),
                    expected_packets: p.map_or(0, |p| p.expected_packets()),
                }
            })
            .collect();
        SessionView {
            id: self.id.clone(),
            state,
            tsi: self.spec.tsi,
            group: self.spec.group.to_string(),
            iface: self.spec.iface_text.clone(),
            rate: self.spec.rate_bps as f64 / 1e6,
            fec: self.spec.fec,
            repair: self.spec.repair,
            symbol_size: self.spec.symbol_size,
            carousel: self.spec.carousel,
            start_at: self.spec.start_at,
            created: self.created,
            objects,
            packets_sent: self.live.packets(),
            bytes_sent: self.live.bytes(),
            fdt_packets_sent: self.live.fdt_packets(),
            started_at,
            finished_at,
            error,
            restarts: self.restarts,
            procedures: self.spec.procedures.clone(),
            sdp_uri: None,
            apd_uri: None,
            usd_uri: None,
        }
    }
}
