//! The public (token-free) routes: the download descriptor, the signed
//! manifest and installNotifyURI. (Downloads, symbol repair and reception
//! reports are the `dms_repair` router, mounted beside these.)

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, Path, Query};
use crate::catalog::Notification;
use crate::deltas::{DELTA_CONTENT_TYPE, DeltaRecord};
use crate::http::Peer;
use crate::model::ObjectRecord;
use crate::repo::RepoError;
use crate::urls::Urls;

/// The OMA download descriptor MIME type.
pub const DD_CONTENT_TYPE: &str = "application/vnd.oma.dd+xml";
/// The OMA download descriptor namespace.
pub const DD_NAMESPACE: &str = "http://www.openmobilealliance.org/xmlns/dd";

fn text_element(w: &mut Writer<Vec<u8>>, name: &str, value: &str) -> Result<(), std::io::Error> {
    w.write_event(Event::Start(BytesStart::new(name)))?;
    w.write_event(Event::Text(BytesText::new(value)))?;
    w.write_event(Event::End(BytesEnd::new(name)))?;
    Ok(())
}

/// An OMA DL-OTA 1.0 download descriptor for `r`.
pub fn download_descriptor(r: &ObjectRecord, urls: &Urls) -> Result<Vec<u8>, std::io::Error> {
    descriptor(r, urls, None)
}

/// The download descriptor of `target` for a device that has the version
/// `delta` applies to: `type`, `size` and `objectURI` name the delta (its
/// own download URI); the name, installNotifyURI and description stay the
/// target's (installing the delta installs the target).
pub fn delta_descriptor(
    target: &ObjectRecord,
    delta: &DeltaRecord,
    urls: &Urls,
) -> Result<Vec<u8>, std::io::Error> {
    descriptor(target, urls, Some(delta))
}

fn descriptor(
    r: &ObjectRecord,
    urls: &Urls,
    delta: Option<&DeltaRecord>,
) -> Result<Vec<u8>, std::io::Error> {
    let (content_type, size, object_uri) = match delta {
        Some(d) => (
            DELTA_CONTENT_TYPE.to_owned(),
            d.size,
            urls.uri(&d.as_object(r, urls)),
        ),
        None => (r.content_type.clone(), r.size, urls.uri(r)),
    };
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut media = BytesStart::new("media");
    media.push_attribute(("xmlns", DD_NAMESPACE));
    w.write_event(Event::Start(media))?;
    text_element(&mut w, "DDVersion", "1.0")?;
    text_element(&mut w, "name", &format!("{} {}", r.name, r.version))?;
    text_element(&mut w, "type", &content_type)?;
    text_element(&mut w, "size", &size.to_string())?;
    text_element(&mut w, "objectURI", &object_uri)?;
    text_element(&mut w, "installNotifyURI", &urls.notify_uri(&r.id))?;
    let kind = serde_json::to_value(r.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let description = match delta {
        Some(d) => format!(
            "{kind}: {} {} (delta from {})",
            r.name, r.version, d.base_sha256
        ),
        None => format!("{kind}: {} {}", r.name, r.version),
    };
    text_element(&mut w, "description", &description)?;
    w.write_event(Event::End(BytesEnd::new("media")))?;
    Ok(w.into_inner())
}

async fn served(state: &AppState, id: String) -> Result<ObjectRecord, ApiError> {
    let repo = state.repo.clone();
    Ok(tokio::task::spawn_blocking(move || repo.get_served(&id)).await??)
}

/// Query of the descriptor route.
#[derive(Debug, Deserialize)]
pub struct DdParams {
    /// Hex SHA-256 of the version the device has installed.
    pub from: Option<String>,
}

/// `GET /dd/{id}[?from=<sha256>]`: the download descriptor; with `from`,
/// the delta from that version when one is stored (never one from another
/// base), else the full object.
#[utoipa::path(
    get,
    path = "/dd/{id}",
    params(
        ("id" = String, Path, description = "Object id"),
        ("from" = Option<String>, Query, description = "Hex SHA-256 of the installed version: the descriptor then names the delta from it when one exists"),
    ),
    responses(
        (status = 200, description = "OMA DL-OTA 1.0 download descriptor", content_type = "application/vnd.oma.dd+xml", body = String),
        (status = 404, description = "Unknown or withdrawn object", body = super::error::ErrorBody),
    )
)]
pub async fn dd(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<DdParams>,
) -> Result<Response, ApiError> {
    let from = match params.from.as_deref() {
        None => None,
        Some(f) => {
            let mut sha = [0u8; 32];
            hex::decode_to_slice(f, &mut sha)
                .map_err(|_| ApiError::bad_request("from must be a hex SHA-256 (64 digits)"))?;
            Some(sha)
        }
    };
    let record = served(&state, id).await?;
    let delta = match from {
        Some(base) => {
            let (repo, store, target) = (state.repo.clone(), state.deltas.clone(), record.clone());
            tokio::task::spawn_blocking(move || store.record_from(&repo, &target, &base)).await??
        }
        None => None,
    };
    let urls = state.repo.urls();
    let xml = match &delta {
        Some(d) => delta_descriptor(&record, d, urls),
        None => download_descriptor(&record, urls),
    }
    .map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, DD_CONTENT_TYPE)], xml).into_response())
}

/// `GET /manifest/{id}`: the signed manifest (JSON; see
/// `dms_repair::manifest` for what is signed).
#[utoipa::path(
    get,
    path = "/manifest/{id}",
    params(("id" = String, Path, description = "Object id (or a delta's id)")),
    responses(
        (status = 200, description = "Signed manifest", content_type = "application/json", body = String),
        (status = 404, description = "Unknown or withdrawn object", body = super::error::ErrorBody),
    )
)]
pub async fn manifest(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let repo = state.repo.clone();
    let store = state.deltas.clone();
    let manifest = tokio::task::spawn_blocking(move || match repo.get_served(&id) {
        Ok(record) => repo.manifest(&record),
        // A delta is an object of its own, with its own manifest.
        Err(RepoError::NotFound(_)) => store.manifest(&repo, &id)?.ok_or(RepoError::NotFound(id)),
        Err(e) => Err(e),
    })
    .await??;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        manifest.to_json(),
    )
        .into_response())
}

/// Query of the notify route.
#[derive(Debug, Deserialize)]
pub struct NotifyParams {
    /// Who reports (else the `X-Device-Id` header, else the peer address).
    pub device: Option<String>,
}

/// `POST /notify/{id}`: a device's 9xx install status line, or its LwM2M
/// Firmware Update results (Object 5: `/5/0/5` Update Result, `/5/0/3`
/// State) as SenML JSON or `PATH=VALUE` lines.
#[utoipa::path(
    post,
    path = "/notify/{id}",
    params(
        ("id" = String, Path, description = "Object id"),
        ("device" = Option<String>, Query, description = "Device id (else X-Device-Id, else the peer address)"),
    ),
    request_body(content = String, content_type = "text/plain", description = "A status line such as `900 Success`; or an LwM2M Object 5 report: SenML JSON such as `[{\"bn\":\"/5/0/\",\"n\":\"5\",\"v\":1}]` or lines such as `/5/0/5=1`"),
    responses(
        (status = 200, description = "Recorded"),
        (status = 400, description = "Neither a 9xx status line nor an Object 5 report", body = super::error::ErrorBody),
        (status = 404, description = "Unknown object", body = super::error::ErrorBody),
    )
)]
pub async fn notify(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<NotifyParams>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let body = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("status line is not UTF-8"))?;
    let (code, text, lwm2m, outcome) = if crate::lwm2m::is_report(body) {
        let report = crate::lwm2m::parse_report(body)
            .map_err(|e| ApiError::bad_request(format!("LwM2M Object 5 report: {e}")))?;
        let outcome = report.outcome();
        (0, report.summary(), Some(report), outcome)
    } else {
        let line = body.lines().next().unwrap_or("").trim();
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .filter(|c| (900..=999).contains(c))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "expected a 9xx status line such as \"900 Success\" or an LwM2M Object 5 report such as \"/5/0/5=1\"",
                )
            })?;
        let text = line.chars().take(200).collect();
        (code, text, None, crate::lwm2m::outcome_of_status(code))
    };
    let device = params
        .device
        .or_else(|| {
            headers
                .get("x-device-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .or_else(|| peer.map(|p| p.0.0.ip().to_string()))
        .unwrap_or_else(|| "unknown".into());
    if device.is_empty()
        || device.len() > 128
        || device.contains('\0')
        || device.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "device id must be 1 to 128 printable characters",
        ));
    }
    let notification = Notification {
        device,
        code,
        text,
        at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        lwm2m,
        outcome: Some(outcome),
    };
    let repo = state.repo.clone();
    tokio::task::spawn_blocking(move || {
        repo.get(&id)?;
        Ok::<_, crate::repo::RepoError>(repo.catalog().record_notification(&id, &notification)?)
    })
    .await??;
    Ok(StatusCode::OK)
}
