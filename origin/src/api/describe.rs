//! The public session descriptions a 3GPP MBMS client bootstraps from
//! (see [`dms_flute::mbms`]): `{base}/sdp/{id}` (`application/sdp`),
//! `{base}/apd/{id}` (the Associated Procedure Description) and
//! `{base}/usd/{id}` (the User Service Bundle Description naming both),
//! each made from the session's state.

use std::net::{IpAddr, SocketAddr};

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dms_flute::mbms::usd::{DeliveryMethod, Schedule};
use dms_flute::mbms::{
    AssociatedProcedures, FileRepair, ReceptionReporting, SessionDescription, UserServiceBundle,
    UserServiceDescription, apd, usd,
};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorBody, Path};
use crate::sessions::{SessionState, SessionView};
use crate::urls::Urls;

/// The SDP MIME type.
pub const SDP_CONTENT_TYPE: &str = "application/sdp";

/// `view` with its `sdp_uri`, `apd_uri` and `usd_uri` set.
pub fn with_uris(mut view: SessionView, urls: &Urls) -> SessionView {
    let base = urls.base();
    view.sdp_uri = Some(format!("{base}/sdp/{}", view.id));
    view.apd_uri = Some(format!("{base}/apd/{}", view.id));
    view.usd_uri = Some(format!("{base}/usd/{}", view.id));
    view
}

/// A session that carries an object, as the object's JSON lists it
/// (under `sessions`): what a DM server hands a device that should join
/// the broadcast instead of downloading.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CarryingSession {
    /// Session id.
    pub id: String,
    /// `scheduled` or `running`.
    pub state: SessionState,
    /// Scheduled start, Unix seconds (none: at once).
    pub start_at: Option<u64>,
    /// `{base}/sdp/{id}`.
    pub sdp_uri: String,
    /// `{base}/apd/{id}`.
    pub apd_uri: String,
    /// `{base}/usd/{id}`.
    pub usd_uri: String,
}

/// The sessions of `views` that still carry object `id` (scheduled or
/// running: an ended session can no longer be joined).
pub fn carrying(views: &[SessionView], id: &str, urls: &Urls) -> Vec<CarryingSession> {
    views
        .iter()
        .filter(|v| matches!(v.state, SessionState::Scheduled | SessionState::Running))
        .filter(|v| v.objects.iter().any(|o| o.id == id))
        .map(|v| {
            let v = with_uris(v.clone(), urls);
            CarryingSession {
                state: v.state,
                start_at: v.start_at,
                sdp_uri: v.sdp_uri.unwrap_or_default(),
                apd_uri: v.apd_uri.unwrap_or_default(),
                usd_uri: v.usd_uri.unwrap_or_default(),
                id: v.id,
            }
        })
        .collect()
}

/// When a session starts (or started), Unix seconds.
fn start_of(view: &SessionView) -> u64 {
    view.start_at.or(view.started_at).unwrap_or(view.created)
}

/// The SDP of a session.
pub fn sdp(view: &SessionView) -> Result<SessionDescription, String> {
    let group: SocketAddr = view
        .group
        .parse()
        .map_err(|_| format!("group {:?} is not ADDRESS:PORT", view.group))?;
    let IpAddr::V4(group_ip) = group.ip() else {
        return Err(format!("group {group}: SDP for IPv6 groups is not made"));
    };
    // The source filter names the sending interface when it is an address.
    let source = view.iface.parse::<std::net::Ipv4Addr>().ok();
    Ok(SessionDescription {
        session_id: view.tsi,
        session_version: view.created,
        origin: source.map_or_else(|| "0.0.0.0".to_string(), |s| s.to_string()),
        name: format!("dms session {}", view.id),
        group: group_ip,
        ttl: 1,
        port: group.port(),
        sources: source.into_iter().collect(),
        tsi: view.tsi,
        channels: 1,
        fec: view.fec.scheme(),
        fec_instance_id: None,
        bandwidth_kbps: Some((view.rate * 1000.0).ceil() as u64),
        start: Some(start_of(view)),
        // Open-ended while it runs (a carousel's end is not known ahead);
        // an ended session says when it ended, so a late UE knows.
        stop: view.finished_at,
    })
}

/// The Associated Procedure Description of a session.
pub fn apd(view: &SessionView, urls: &Urls) -> AssociatedProcedures {
    let p = &view.procedures;
    let repair = if p.repair_servers.is_empty() {
        vec![urls.repair_uri()]
    } else {
        p.repair_servers.clone()
    };
    AssociatedProcedures {
        file_repair: Some(FileRepair {
            offset_time: p.backoff_offset,
            random_time_period: p.backoff_window,
            service_uris: repair,
        }),
        reception_report: Some(ReceptionReporting {
            offset_time: p.backoff_offset,
            random_time_period: p.backoff_window,
            sample_percentage: p.report_sample,
            report_type: p.report_type.apd(),
            service_uris: vec![urls.report_uri()],
        }),
    }
}

/// The User Service Bundle Description of a session.
pub fn usd(view: &SessionView, urls: &Urls) -> UserServiceBundle {
    let view = with_uris(view.clone(), urls);
    UserServiceBundle {
        services: vec![UserServiceDescription {
            service_id: format!("urn:dms:session:{}", view.id),
            name: Some(format!("dms session {}", view.id)),
            delivery_methods: vec![DeliveryMethod {
                session_description_uri: view.sdp_uri.clone().unwrap_or_default(),
                associated_procedure_description_uri: view.apd_uri.clone(),
            }],
            schedule: Some(Schedule {
                start: start_of(&view),
                stop: view.finished_at,
            }),
        }],
    }
}

fn session(state: &AppState, id: &str) -> Result<SessionView, ApiError> {
    state
        .sessions
        .view(id)
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))
}

/// The SDP of a session (RFC 4566, RFC 4570, TS 26.346 §7.3).
#[utoipa::path(
    get,
    path = "/sdp/{id}",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session's SDP", content_type = "application/sdp", body = String),
        (status = 400, description = "The session has no SDP (an IPv6 or unparsable group)", body = ErrorBody),
        (status = 404, description = "Unknown session", body = ErrorBody),
    )
)]
pub async fn sdp_route(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = session(&state, &id)?;
    let text = sdp(&view).map_err(ApiError::bad_request)?.to_sdp();
    Ok(([(header::CONTENT_TYPE, SDP_CONTENT_TYPE)], text).into_response())
}

/// The Associated Procedure Description of a session (TS 26.346 §9.5):
/// repair servers, back-off, reception reporting.
#[utoipa::path(
    get,
    path = "/apd/{id}",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The APD", content_type = "application/mbms-associated-procedure-description+xml", body = String),
        (status = 404, description = "Unknown session", body = ErrorBody),
    )
)]
pub async fn apd_route(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = session(&state, &id)?;
    let xml = apd(&view, state.repo.urls()).to_xml();
    Ok(([(header::CONTENT_TYPE, apd::CONTENT_TYPE)], xml).into_response())
}

/// The User Service Bundle Description of a session (TS 26.346 §5.2.2):
/// its SDP and APD URIs and its schedule.
#[utoipa::path(
    get,
    path = "/usd/{id}",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The USBD", content_type = "application/mbms-user-service-description+xml", body = String),
        (status = 404, description = "Unknown session", body = ErrorBody),
    )
)]
pub async fn usd_route(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = session(&state, &id)?;
    let xml = usd(&view, state.repo.urls()).to_xml();
    Ok(([(header::CONTENT_TYPE, usd::CONTENT_TYPE)], xml).into_response())
}
