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
use crate::http::Peer;
use crate::model::ObjectRecord;
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
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let mut media = BytesStart::new("media");
    media.push_attribute(("xmlns", DD_NAMESPACE));
    w.write_event(Event::Start(media))?;
    text_element(&mut w, "DDVersion", "1.0")?;
    text_element(&mut w, "name", &format!("{} {}", r.name, r.version))?;
    text_element(&mut w, "type", &r.content_type)?;
    text_element(&mut w, "size", &r.size.to_string())?;
    text_element(&mut w, "objectURI", &urls.uri(r))?;
    text_element(&mut w, "installNotifyURI", &urls.notify_uri(&r.id))?;
    let kind = serde_json::to_value(r.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    text_element(
        &mut w,
        "description",
        &format!("{kind}: {} {}", r.name, r.version),
    )?;
    w.write_event(Event::End(BytesEnd::new("media")))?;
    Ok(w.into_inner())
}

async fn served(state: &AppState, id: String) -> Result<ObjectRecord, ApiError> {
    let repo = state.repo.clone();
    Ok(tokio::task::spawn_blocking(move || repo.get_served(&id)).await??)
}

/// `GET /dd/{id}`: the download descriptor.
#[utoipa::path(
    get,
    path = "/dd/{id}",
    params(("id" = String, Path, description = "Object id")),
    responses(
        (status = 200, description = "OMA DL-OTA 1.0 download descriptor", content_type = "application/vnd.oma.dd+xml", body = String),
        (status = 404, description = "Unknown or withdrawn object", body = super::objects::ErrorBody),
    )
)]
pub async fn dd(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = served(&state, id).await?;
    let xml = download_descriptor(&record, state.repo.urls()).map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, DD_CONTENT_TYPE)], xml).into_response())
}

/// `GET /manifest/{id}`: the signed manifest (JSON; see
/// `dms_repair::manifest` for what is signed).
#[utoipa::path(
    get,
    path = "/manifest/{id}",
    params(("id" = String, Path, description = "Object id")),
    responses(
        (status = 200, description = "Signed manifest", content_type = "application/json", body = String),
        (status = 404, description = "Unknown or withdrawn object", body = super::objects::ErrorBody),
    )
)]
pub async fn manifest(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let repo = state.repo.clone();
    let manifest = tokio::task::spawn_blocking(move || {
        let record = repo.get_served(&id)?;
        repo.manifest(&record)
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

/// `POST /notify/{id}`: a device's 9xx install status line.
#[utoipa::path(
    post,
    path = "/notify/{id}",
    params(
        ("id" = String, Path, description = "Object id"),
        ("device" = Option<String>, Query, description = "Device id (else X-Device-Id, else the peer address)"),
    ),
    request_body(content = String, content_type = "text/plain", description = "A status line such as `900 Success`"),
    responses(
        (status = 200, description = "Recorded"),
        (status = 400, description = "Not a 9xx status line", body = super::objects::ErrorBody),
        (status = 404, description = "Unknown object", body = super::objects::ErrorBody),
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
    let line = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("status line is not UTF-8"))?
        .lines()
        .next()
        .unwrap_or("")
        .trim();
    let code: u16 = line
        .get(..3)
        .and_then(|c| c.parse().ok())
        .filter(|c| (900..=999).contains(c))
        .ok_or_else(|| {
            ApiError::bad_request("expected a 9xx status line such as \"900 Success\"")
        })?;
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
        text: line.chars().take(200).collect(),
        at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let repo = state.repo.clone();
    tokio::task::spawn_blocking(move || {
        repo.get(&id)?;
        Ok::<_, crate::repo::RepoError>(repo.catalog().record_notification(&id, &notification)?)
    })
    .await??;
    Ok(StatusCode::OK)
}
