//! `POST /v1/sessions`: the request body and its validation into a
//! [`SessionSpec`].

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dms_fec::FecScheme;
use dms_flute::net::Interface;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most objects in one session.
pub const MAX_OBJECTS: usize = 256;
/// Highest accepted rate, Mbit/s.
pub const MAX_RATE_MBIT: f64 = 100_000.0;
/// Highest repair overhead, percent of K.
pub const MAX_REPAIR_PERCENT: u32 = 1000;
/// Most carousel rounds.
pub const MAX_CAROUSEL: u32 = 1000;
/// Largest symbol size the field check accepts: the datagram size (1472
/// bytes). Whether a symbol fits beside the LCT header and its extensions
/// is the FLUTE sender's exact check, made when the session is created.
pub const MAX_SYMBOL_SIZE: u16 = 1472;
/// How far ahead a session may be scheduled.
pub const MAX_SCHEDULE_AHEAD: Duration = Duration::from_secs(366 * 24 * 3600);
/// Most bases in `delta_from`.
pub const MAX_DELTA_BASES: usize = 16;
/// Largest TSI (48 bits).
pub const MAX_TSI: u64 = (1 << 48) - 1;

/// The FEC of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionFec {
    /// RaptorQ (RFC 6330), FEC Encoding ID 6.
    Raptorq,
    /// Raptor (RFC 5053), FEC Encoding ID 1: the 3GPP MBMS download code.
    Raptor,
    /// Compact No-Code (RFC 5445), FEC Encoding ID 0: no repair symbols.
    Nocode,
}

impl SessionFec {
    /// Its FEC scheme (a new scheme is one arm here).
    pub fn scheme(self) -> FecScheme {
        match self {
            SessionFec::Raptorq => FecScheme::RaptorQ,
            SessionFec::Raptor => FecScheme::Raptor,
            SessionFec::Nocode => FecScheme::NoCode,
        }
    }
}

/// Which deltas a session sends beside each object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionDeltas {
    /// None (the default).
    None,
    /// The delta from the object's previous active version (the one most
    /// of a fleet runs when it rolls forward), when one is stored.
    Previous,
}

/// `report_type` of a session: which reception reports devices send
/// (TS 26.346 `reportType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum SessionReportType {
    /// Reception acknowledgements of received files, no statistics.
    #[serde(rename = "RAck")]
    RAck,
    /// Statistical reports of received files.
    #[serde(rename = "StaR")]
    StaR,
    /// Statistical reports of every file, received or not (today's
    /// behaviour of `dms receive`: the default).
    #[serde(rename = "StaR-all")]
    #[default]
    StaRAll,
}

impl SessionReportType {
    /// The APD value.
    pub fn apd(self) -> dms_flute::mbms::ReportType {
        match self {
            SessionReportType::RAck => dms_flute::mbms::ReportType::RAck,
            SessionReportType::StaR => dms_flute::mbms::ReportType::StaR,
            SessionReportType::StaRAll => dms_flute::mbms::ReportType::StaRAll,
        }
    }
}

/// The associated delivery procedures of a session, as its APD announces
/// them: repair servers, back-off and reporting. The defaults are what a
/// `dms receive` does without flags (the origin's own repair service, no
/// offset, a 1 s random window, every device reports everything).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionProcedures {
    /// Repair servers (`serviceURI`s); empty: the origin's `{base}/repair`.
    #[serde(default)]
    pub repair_servers: Vec<String>,
    /// `offsetTime`, seconds.
    #[serde(default)]
    pub backoff_offset: u64,
    /// `randomTimePeriod`, seconds.
    #[serde(default = "one")]
    pub backoff_window: u64,
    /// `samplePercentage`: share of devices that report, 0 to 100.
    #[serde(default = "hundred")]
    pub report_sample: f64,
    /// `reportType`.
    #[serde(default)]
    pub report_type: SessionReportType,
}

fn one() -> u64 {
    1
}

fn hundred() -> f64 {
    100.0
}

impl Default for SessionProcedures {
    fn default() -> Self {
        SessionProcedures {
            repair_servers: Vec::new(),
            backoff_offset: 0,
            backoff_window: 1,
            report_sample: 100.0,
            report_type: SessionReportType::StaRAll,
        }
    }
}

/// Most repair servers one session names.
pub const MAX_REPAIR_SERVERS: usize = 16;

/// `start_at`: RFC 3339 text or Unix seconds.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StartAt {
    /// Seconds since the Unix epoch.
    Unix(u64),
    /// RFC 3339, e.g. `2026-11-24T22:30:00Z`.
    Rfc3339(String),
}

/// Body of `POST /v1/sessions`.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRequest {
    /// Object ids to send (sent in priority order, critical first).
    pub objects: Vec<String>,
    /// Multicast group and port, e.g. `239.255.1.1:5000`.
    pub group: String,
    /// Interface to send on: an IPv4 address (`127.0.0.1`), a name, an
    /// index, or `any`.
    pub iface: String,
    /// Rate of UDP payload in Mbit/s (> 0).
    pub rate: f64,
    /// `raptorq` or `nocode`.
    pub fec: SessionFec,
    /// Repair symbols per source block, percent of K (RaptorQ).
    pub repair: u32,
    /// Symbol size T; default each object's stored layout (RaptorQ
    /// objects are then sent in exactly the layout that unicast repair
    /// serves).
    #[serde(default)]
    pub symbol_size: Option<u16>,
    /// How many times the object list is sent (default 1).
    #[serde(default)]
    pub carousel: Option<u32>,
    /// When to start (RFC 3339 or Unix seconds); default now.
    #[serde(default)]
    pub start_at: Option<StartAt>,
    /// Transport Session Identifier (up to 48 bits); default random.
    #[serde(default)]
    pub tsi: Option<u64>,
    /// Deltas to send beside each object: `"previous"` adds the stored
    /// delta from the object's previous active version. Each delta is a
    /// file of its own in the FDT, marked with `dms:Delta-Base`,
    /// `dms:Delta-Target` and `dms:Target-Manifest`.
    #[serde(default)]
    pub deltas: Option<SessionDeltas>,
    /// Also send, beside each object, the stored delta from each of these
    /// versions (hex SHA-256 of the installed version); bases without a
    /// stored delta are skipped.
    #[serde(default)]
    pub delta_from: Vec<String>,
    /// Repair servers the APD names (`{base}/repair` URLs); default the
    /// origin's own.
    #[serde(default)]
    pub repair_servers: Vec<String>,
    /// APD `offsetTime` of repair and reports, seconds (default 0).
    #[serde(default)]
    pub backoff_offset: Option<u64>,
    /// APD `randomTimePeriod`, seconds (default 1).
    #[serde(default)]
    pub backoff_window: Option<u64>,
    /// APD `samplePercentage`, 0 to 100 (default 100).
    #[serde(default)]
    pub report_sample: Option<f64>,
    /// APD `reportType`: `RAck`, `StaR` or `StaR-all` (default).
    #[serde(default)]
    pub report_type: Option<SessionReportType>,
}

/// A validated request (objects not yet looked up).
#[derive(Clone, Debug)]
pub struct SessionSpec {
    /// Object ids, as asked, without duplicates.
    pub objects: Vec<String>,
    /// Destination.
    pub group: SocketAddr,
    /// Sending interface.
    pub iface: Interface,
    /// The interface as given.
    pub iface_text: String,
    /// Rate, bits per second.
    pub rate_bps: u64,
    /// FEC.
    pub fec: SessionFec,
    /// Repair percent (0 with no-code).
    pub repair: u32,
    /// Symbol size override.
    pub symbol_size: Option<u16>,
    /// Carousel rounds (≥ 1).
    pub carousel: u32,
    /// Start time (Unix seconds); None = now.
    pub start_at: Option<u64>,
    /// TSI.
    pub tsi: u64,
    /// Send the delta from each object's previous active version.
    pub delta_previous: bool,
    /// Send the deltas from these bases.
    pub delta_from: Vec<[u8; 32]>,
    /// What its APD announces.
    pub procedures: SessionProcedures,
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses `start_at` into Unix seconds.
pub fn parse_start_at(start: &StartAt) -> Result<u64, String> {
    match start {
        StartAt::Unix(secs) => Ok(*secs),
        StartAt::Rfc3339(text) => {
            let t =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| format!("start_at {text:?}: not RFC 3339 ({e})"))?;
            u64::try_from(t.unix_timestamp())
                .map_err(|_| format!("start_at {text:?} is before 1970"))
        }
    }
}

impl SessionRequest {
    /// Checks every field; the objects themselves are looked up when the
    /// session starts.
    pub fn validate(&self) -> Result<SessionSpec, String> {
        if self.objects.is_empty() {
            return Err("objects: name at least one object id".into());
        }
        if self.objects.len() > MAX_OBJECTS {
            return Err(format!("objects: at most {MAX_OBJECTS}"));
        }
        let mut objects: Vec<String> = Vec::with_capacity(self.objects.len());
        for id in &self.objects {
            if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("objects: {id:?} is not an object id"));
            }
            if objects.contains(id) {
                return Err(format!("objects: {id} is named twice"));
            }
            objects.push(id.clone());
        }
        let group: SocketAddr = self
            .group
            .parse()
            .map_err(|_| format!("group {:?}: not ADDRESS:PORT", self.group))?;
        if !group.ip().is_multicast() {
            return Err(format!("group {group}: not a multicast address"));
        }
        if group.port() == 0 {
            return Err(format!("group {group}: port 0"));
        }
        let iface: Interface = self
            .iface
            .parse()
            .map_err(|e: std::io::Error| format!("iface: {e}"))?;
        if !self.rate.is_finite() || self.rate <= 0.0 || self.rate > MAX_RATE_MBIT {
            return Err(format!(
                "rate: a number of Mbit/s above 0 and at most {MAX_RATE_MBIT} (sessions are always paced)"
            ));
        }
        let rate_bps = (self.rate * 1e6).round() as u64;
        if rate_bps < 8_000 {
            return Err("rate: at least 0.008 Mbit/s".into());
        }
        if self.repair > MAX_REPAIR_PERCENT {
            return Err(format!("repair: at most {MAX_REPAIR_PERCENT} percent"));
        }
        if let Some(t) = self.symbol_size {
            if t == 0 || t > MAX_SYMBOL_SIZE {
                return Err(format!("symbol_size: 1 to {MAX_SYMBOL_SIZE} bytes"));
            }
            if self.fec != SessionFec::Nocode && !t.is_multiple_of(4) {
                return Err("symbol_size: a multiple of 4 with RaptorQ and Raptor".into());
            }
        }
        let carousel = self.carousel.unwrap_or(1);
        if carousel == 0 || carousel > MAX_CAROUSEL {
            return Err(format!("carousel: 1 to {MAX_CAROUSEL} rounds"));
        }
        let start_at = match &self.start_at {
            None => None,
            Some(s) => {
                let at = parse_start_at(s)?;
                if at > unix_now().saturating_add(MAX_SCHEDULE_AHEAD.as_secs()) {
                    return Err("start_at: at most a year ahead".into());
                }
                Some(at)
            }
        };
        if self.delta_from.len() > MAX_DELTA_BASES {
            return Err(format!("delta_from: at most {MAX_DELTA_BASES} versions"));
        }
        let mut delta_from = Vec::with_capacity(self.delta_from.len());
        for base in &self.delta_from {
            let mut sha = [0u8; 32];
            hex::decode_to_slice(base, &mut sha)
                .map_err(|_| format!("delta_from: {base:?} is not a hex SHA-256"))?;
            if !delta_from.contains(&sha) {
                delta_from.push(sha);
            }
        }
        if self.repair_servers.len() > MAX_REPAIR_SERVERS {
            return Err(format!("repair_servers: at most {MAX_REPAIR_SERVERS}"));
        }
        for url in &self.repair_servers {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 1024 {
                return Err(format!("repair_servers: {url:?} is not an http(s) URL"));
            }
        }
        let mut procedures = SessionProcedures {
            repair_servers: self.repair_servers.clone(),
            ..SessionProcedures::default()
        };
        if let Some(s) = self.backoff_offset {
            procedures.backoff_offset = s;
        }
        if let Some(s) = self.backoff_window {
            procedures.backoff_window = s;
        }
        if procedures.backoff_offset > 86_400 || procedures.backoff_window > 86_400 {
            return Err("backoff_offset, backoff_window: at most a day".into());
        }
        if let Some(p) = self.report_sample {
            if !(0.0..=100.0).contains(&p) {
                return Err("report_sample: a percentage, 0 to 100".into());
            }
            procedures.report_sample = p;
        }
        if let Some(t) = self.report_type {
            procedures.report_type = t;
        }
        let tsi = match self.tsi {
            Some(t) if t > MAX_TSI => return Err("tsi: at most 48 bits".into()),
            Some(t) => t,
            None => u64::from(rand::random::<u32>() & 0xFFFF_FFFE) + 1,
        };
        Ok(SessionSpec {
            objects,
            group,
            iface,
            iface_text: self.iface.clone(),
            rate_bps,
            fec: self.fec,
            repair: if self.fec == SessionFec::Nocode {
                0
            } else {
                self.repair
            },
            symbol_size: self.symbol_size,
            carousel,
            start_at,
            tsi,
            delta_previous: self.deltas == Some(SessionDeltas::Previous),
            delta_from,
            procedures,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn request(json: serde_json::Value) -> Result<SessionSpec, String> {
        serde_json::from_value::<SessionRequest>(json)
            .map_err(|e| e.to_string())?
            .validate()
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "objects": ["ab12"], "group": "239.255.1.1:5000", "iface": "127.0.0.1",
            "rate": 10, "fec": "raptorq", "repair": 20
        })
    }

    #[test]
    fn a_good_request_validates_with_defaults() {
        let spec = request(good()).unwrap();
        assert_eq!(spec.rate_bps, 10_000_000);
        assert_eq!(spec.carousel, 1);
        assert_eq!(spec.repair, 20);
        assert!(spec.tsi >= 1 && spec.tsi <= u64::from(u32::MAX));
        assert_eq!(spec.start_at, None);
        assert!(!spec.delta_previous);
        assert!(spec.delta_from.is_empty());
        assert_eq!(spec.procedures, SessionProcedures::default());
    }

    #[test]
    fn procedures_parse() {
        let mut j = good();
        j["repair_servers"] = serde_json::json!(["https://r1/repair", "http://r2/repair"]);
        j["backoff_offset"] = serde_json::json!(5);
        j["backoff_window"] = serde_json::json!(10);
        j["report_sample"] = serde_json::json!(12.5);
        j["report_type"] = serde_json::json!("RAck");
        let p = request(j).unwrap().procedures;
        assert_eq!(p.repair_servers.len(), 2);
        assert_eq!((p.backoff_offset, p.backoff_window), (5, 10));
        assert_eq!(p.report_sample, 12.5);
        assert_eq!(p.report_type, SessionReportType::RAck);
    }

    #[test]
    fn delta_options_parse() {
        let mut j = good();
        j["deltas"] = serde_json::json!("previous");
        j["delta_from"] = serde_json::json!(["ab".repeat(32), "AB".repeat(32), "cd".repeat(32)]);
        let spec = request(j).unwrap();
        assert!(spec.delta_previous);
        assert_eq!(spec.delta_from, vec![[0xab; 32], [0xcd; 32]]);
    }

    #[test]
    fn start_at_takes_rfc3339_and_unix_seconds() {
        assert_eq!(
            parse_start_at(&StartAt::Rfc3339("2026-11-24T22:30:00Z".into())).unwrap(),
            1_795_559_400
        );
        assert_eq!(
            parse_start_at(&StartAt::Rfc3339("2026-11-24T23:30:00+01:00".into())).unwrap(),
            1_795_559_400
        );
        assert_eq!(parse_start_at(&StartAt::Unix(12)).unwrap(), 12);
        assert!(parse_start_at(&StartAt::Rfc3339("tomorrow".into())).is_err());
        let mut j = good();
        j["start_at"] = serde_json::json!(1_795_559_400u64);
        assert_eq!(request(j).unwrap().start_at, Some(1_795_559_400));
    }

    #[test]
    fn bad_fields_are_refused() {
        for (field, value) in [
            ("objects", serde_json::json!([])),
            ("objects", serde_json::json!(["a/b"])),
            ("objects", serde_json::json!(["ab", "ab"])),
            ("group", serde_json::json!("10.0.0.1:5000")),
            ("group", serde_json::json!("239.255.1.1")),
            ("group", serde_json::json!("239.255.1.1:0")),
            ("iface", serde_json::json!("no-such-interface-x")),
            ("rate", serde_json::json!(0)),
            ("rate", serde_json::json!(-1)),
            ("fec", serde_json::json!("reed-solomon")),
            ("repair", serde_json::json!(1001)),
            ("symbol_size", serde_json::json!(1402)),
            ("symbol_size", serde_json::json!(0)),
            ("symbol_size", serde_json::json!(9000)),
            ("carousel", serde_json::json!(0)),
            ("start_at", serde_json::json!("yesterday-ish")),
            ("start_at", serde_json::json!(u64::MAX)),
            ("tsi", serde_json::json!(1u64 << 48)),
            ("deltas", serde_json::json!("all")),
            ("delta_from", serde_json::json!(["abc"])),
            ("delta_from", serde_json::json!("ab".repeat(32))),
            ("extra", serde_json::json!(1)),
            ("repair_servers", serde_json::json!(["ftp://x/repair"])),
            ("report_sample", serde_json::json!(101)),
            ("report_type", serde_json::json!("All")),
            ("backoff_window", serde_json::json!(-1)),
        ] {
            let mut j = good();
            j[field] = value.clone();
            assert!(request(j).is_err(), "{field} = {value} accepted");
        }
    }
}
