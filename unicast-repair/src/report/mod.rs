//! Reception reports: what devices say about a delivery.
//!
//! Devices POST either the 3GPP `receptionReport` XML ([`xml`]) or our JSON
//! form ([`JsonReport`]) with bytes by source and time to complete. Reports
//! are kept per (object, device), the latest one winning, in a
//! [`ReportStore`] ([`RedbReports`] is the redb one); [`summarize`] turns an
//! object's reports into the figures `GET /v1/reports?object=ID` shows.

mod store;
pub mod xml;

pub use store::RedbReports;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bytes a device received, by where they came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BytesBySource {
    /// From the multicast/broadcast session.
    #[serde(default)]
    pub broadcast: u64,
    /// From peers.
    #[serde(default)]
    pub peers: u64,
    /// From the unicast repair service (symbols or ranges).
    #[serde(default)]
    pub repair: u64,
}

impl BytesBySource {
    fn add(&mut self, other: &BytesBySource) {
        self.broadcast = self.broadcast.saturating_add(other.broadcast);
        self.peers = self.peers.saturating_add(other.peers);
        self.repair = self.repair.saturating_add(other.repair);
    }
}

/// A repair server that failed a device's request, and the one that
/// answered it instead: the UE's failover, as its report says it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairFailover {
    /// The repair service URL that failed.
    pub failed: String,
    /// Why: `connect`, `timeout`, `http_NNN` (an error status) or
    /// `bad_answer` (the client's `failover::Failure` tokens).
    pub reason: String,
    /// The error as the device saw it (JSON reports only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The repair service URL that then answered the same request; none
    /// when no server did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

/// Most failovers one report of one object carries (a UE's circuits keep
/// a dead server from failing each block; past this the rest are left out).
pub const MAX_FAILOVERS: usize = 16;

/// The kind of report a device sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// 3GPP reception acknowledgement (RAck): the file was received.
    Rack,
    /// 3GPP statistical report (StaR / StaR-all).
    Star,
    /// Our JSON form.
    Json,
}

/// One stored report: one device about one object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The object id.
    pub object: String,
    /// The reporting device.
    pub device: String,
    /// Whether the device received the object whole and verified.
    pub success: bool,
    /// Bytes by source (zeros when the report does not say).
    pub bytes: BytesBySource,
    /// Seconds from the start of the delivery to a complete object.
    pub seconds_to_complete: Option<f64>,
    /// The form the report came in.
    pub kind: ReportKind,
    /// When it was received (Unix seconds).
    pub received_at: u64,
    /// The repair servers that failed the device, and which served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repair_failovers: Vec<RepairFailover>,
}

/// Our JSON report form, as a device POSTs it to `report_uri`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JsonReport {
    /// The object id (or give `file_uri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The object's Content-Location (when `object` is not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_uri: Option<String>,
    /// The device's id.
    pub device: String,
    /// Whether the object was received whole and verified.
    pub success: bool,
    /// Bytes by source.
    #[serde(default)]
    pub bytes: BytesBySource,
    /// Seconds to complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_to_complete: Option<f64>,
    /// The repair servers that failed (at most [`MAX_FAILOVERS`]), why,
    /// and which one served instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repair_failovers: Vec<RepairFailover>,
}

/// Errors of report handling and storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The store failed.
    #[error("report store: {0}")]
    Store(#[from] redb::Error),
    /// A stored or posted JSON report is malformed.
    #[error("JSON report: {0}")]
    Json(#[from] serde_json::Error),
    /// A posted XML report is malformed.
    #[error("XML report: {0}")]
    Xml(String),
    /// A shared store (the PostgreSQL catalog) cannot be reached now:
    /// answered 503 with a `Retry-After`.
    #[error("report store unavailable: {0}")]
    Unavailable(String),
    /// Another failure of a store that is not redb.
    #[error("report store: {0}")]
    Backend(String),
}

/// Where reports are kept.
pub trait ReportStore: Send + Sync + 'static {
    /// Stores `report`, replacing the same device's earlier report on the
    /// same object.
    fn put(&self, report: &Report) -> Result<(), ReportError>;

    /// Every report on `object`.
    fn reports(&self, object: &str) -> Result<Vec<Report>, ReportError>;
}

/// What the reports on one object add up to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    /// The object id.
    pub object: String,
    /// Devices that reported.
    pub devices: u64,
    /// Devices that reported success.
    pub succeeded: u64,
    /// `succeeded / devices` (0 with no reports).
    pub success_ratio: f64,
    /// Bytes by source, summed over devices.
    pub bytes: BytesBySource,
    /// Mean seconds to complete over the reports that give it.
    pub mean_seconds_to_complete: Option<f64>,
    /// Devices whose report names a repair failover.
    pub failed_over: u64,
    /// Per repair server URL that failed a device: how often, by reason
    /// (`connect`, `timeout`, `http_503`…).
    pub failed_repair_servers: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per repair server URL that answered after another failed: how often.
    pub failover_served_by: BTreeMap<String, u64>,
}

/// Sums up the reports on `object`.
pub fn summarize(object: &str, reports: &[Report]) -> ReportSummary {
    let mut bytes = BytesBySource::default();
    let mut succeeded = 0;
    let (mut seconds, mut timed) = (0.0, 0u64);
    let mut failed_over = 0;
    let mut failed_repair_servers: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut failover_served_by: BTreeMap<String, u64> = BTreeMap::new();
    for r in reports {
        failed_over += u64::from(!r.repair_failovers.is_empty());
        for f in &r.repair_failovers {
            *failed_repair_servers
                .entry(f.failed.clone())
                .or_default()
                .entry(f.reason.clone())
                .or_default() += 1;
            if let Some(served) = &f.served_by {
                *failover_served_by.entry(served.clone()).or_default() += 1;
            }
        }
        bytes.add(&r.bytes);
        succeeded += u64::from(r.success);
        if let Some(s) = r.seconds_to_complete.filter(|s| s.is_finite() && *s >= 0.0) {
            seconds += s;
            timed += 1;
        }
    }
    let devices = reports.len() as u64;
    ReportSummary {
        object: object.to_owned(),
        devices,
        succeeded,
        success_ratio: if devices == 0 {
            0.0
        } else {
            succeeded as f64 / devices as f64
        },
        bytes,
        mean_seconds_to_complete: (timed > 0).then(|| seconds / timed as f64),
        failed_over,
        failed_repair_servers,
        failover_served_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(device: &str, success: bool, broadcast: u64, secs: Option<f64>) -> Report {
        Report {
            object: "o".into(),
            device: device.into(),
            success,
            bytes: BytesBySource {
                broadcast,
                peers: 1,
                repair: 2,
            },
            seconds_to_complete: secs,
            kind: ReportKind::Json,
            received_at: 0,
            repair_failovers: Vec::new(),
        }
    }

    #[test]
    fn summaries_add_up() {
        let s = summarize(
            "o",
            &[
                report("a", true, 100, Some(2.0)),
                report("b", false, 50, None),
                report("c", true, 10, Some(4.0)),
                report("d", true, 0, Some(f64::NAN)),
            ],
        );
        assert_eq!(s.devices, 4);
        assert_eq!(s.succeeded, 3);
        assert_eq!(s.success_ratio, 0.75);
        assert_eq!(
            s.bytes,
            BytesBySource {
                broadcast: 160,
                peers: 4,
                repair: 8
            }
        );
        assert_eq!(s.mean_seconds_to_complete, Some(3.0));
        assert_eq!(s.failed_over, 0);
        assert_eq!(summarize("x", &[]).success_ratio, 0.0);
    }

    #[test]
    fn failovers_add_up_by_server_and_reason() {
        let failover = |failed: &str, reason: &str, served: Option<&str>| RepairFailover {
            failed: failed.into(),
            reason: reason.into(),
            detail: String::new(),
            served_by: served.map(str::to_owned),
        };
        let mut a = report("a", true, 0, None);
        a.repair_failovers = vec![
            failover("http://r1/repair", "timeout", Some("http://r3/repair")),
            failover("http://r2/repair", "http_503", Some("http://r3/repair")),
        ];
        let mut b = report("b", true, 0, None);
        b.repair_failovers = vec![failover("http://r1/repair", "connect", None)];
        let s = summarize("o", &[a, b, report("c", true, 0, None)]);
        assert_eq!(s.failed_over, 2);
        assert_eq!(
            s.failed_repair_servers["http://r1/repair"],
            BTreeMap::from([("connect".to_owned(), 1), ("timeout".to_owned(), 1)])
        );
        assert_eq!(s.failed_repair_servers["http://r2/repair"]["http_503"], 1);
        assert_eq!(
            s.failover_served_by,
            BTreeMap::from([("http://r3/repair".to_owned(), 2)])
        );
    }
}
