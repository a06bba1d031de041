//! How a session looks from outside: its state and the JSON views the API
//! answers and the session store keeps.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::request::{SessionFec, SessionProcedures};
use crate::model::Priority;

/// Where a session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// Accepted; waiting for `start_at` (or preparing: Content-MD5).
    Scheduled,
    /// Sending.
    Running,
    /// Every carousel round was sent.
    Finished,
    /// Stopped by `DELETE` before the end.
    Stopped,
    /// Could not run, or an object could not be read.
    Failed,
}

impl SessionState {
    /// Scheduled or running: its objects may not be deleted.
    pub fn is_active(self) -> bool {
        matches!(self, SessionState::Scheduled | SessionState::Running)
    }

    /// All states, for the metrics gauge.
    pub const ALL: [SessionState; 5] = [
        SessionState::Scheduled,
        SessionState::Running,
        SessionState::Finished,
        SessionState::Stopped,
        SessionState::Failed,
    ];

    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Scheduled => "scheduled",
            SessionState::Running => "running",
            SessionState::Finished => "finished",
            SessionState::Stopped => "stopped",
            SessionState::Failed => "failed",
        }
    }
}

/// A session as the API answers it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// Session id.
    pub id: String,
    /// `scheduled`, `running`, `finished`, `stopped` or `failed`.
    pub state: SessionState,
    /// Transport Session Identifier.
    pub tsi: u64,
    /// Multicast group and port.
    pub group: String,
    /// Sending interface, as given.
    pub iface: String,
    /// Rate of UDP payload, Mbit/s.
    pub rate: f64,
    /// FEC.
    pub fec: SessionFec,
    /// Repair overhead, percent of K.
    pub repair: u32,
    /// Symbol size asked for (none: each object's stored layout).
    pub symbol_size: Option<u16>,
    /// Carousel rounds.
    pub carousel: u32,
    /// Scheduled start, Unix seconds (none: at once).
    pub start_at: Option<u64>,
    /// When it was created, Unix seconds.
    pub created: u64,
    /// The objects in send order, with their progress.
    pub objects: Vec<SessionObjectView>,
    /// Datagrams sent (FDT and data).
    pub packets_sent: u64,
    /// UDP payload bytes sent.
    pub bytes_sent: u64,
    /// FDT datagrams sent.
    pub fdt_packets_sent: u64,
    /// When sending began, Unix seconds.
    pub started_at: Option<u64>,
    /// When it ended, Unix seconds.
    pub finished_at: Option<u64>,
    /// Why it failed (or which objects could not be read).
    pub error: Option<String>,
    /// Times a restarted origin resumed it (from the start of its object
    /// list: receivers keep what they already have).
    #[serde(default)]
    pub restarts: u32,
    /// What its Associated Procedure Description announces (files of
    /// older origins have none: the defaults).
    #[serde(default)]
    pub procedures: SessionProcedures,
    /// `{base}/sdp/{id}`: the session's SDP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_uri: Option<String>,
    /// `{base}/apd/{id}`: its Associated Procedure Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apd_uri: Option<String>,
    /// `{base}/usd/{id}`: its User Service Bundle Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_uri: Option<String>,
}

/// One object of a session, with its progress.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionObjectView {
    /// Object id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Priority.
    pub priority: Priority,
    /// FDT Content-Location (the object's `content_location`).
    pub content_location: String,
    /// Size in bytes.
    pub size: u64,
    /// Sent in its stored FEC layout (unicast repair symbols fit).
    pub stored_layout: bool,
    /// Its TOI in the session.
    pub toi: Option<u64>,
    /// Data packets sent.
    pub packets_sent: u64,
    /// Datagram bytes sent.
    pub bytes_sent: u64,
    /// Data packets it takes in all rounds.
    pub expected_packets: u64,
}

/// The list answer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    /// Sessions, oldest first.
    pub sessions: Vec<SessionView>,
}
