//! The public (token-free) routes: the download descriptor, the signed
//! manifest, installNotifyURI, and a plain whole-object download.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, Path, Query};
use crate::catalog::Notification;
use crate::http::Peer;
use crate::model::{ObjectRecord, file_name};
use crate::repo::Repository;
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

/// `GET /dl/{id}/{file_name}`: the whole object, streamed (the repair
/// crate's router replaces this with Range support).
pub async fn download(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = served(&state, id).await?;
    if file_name(&record.name) != name {
        return Err(ApiError::not_found("no such object"));
    }
    let repo = state.repo.clone();
    let blob_record = record.clone();
    let body = BlobBody::spawn(repo, blob_record);
    let mut response = Response::new(Body::new(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(record.size));
    if let Ok(v) = HeaderValue::from_str(&record.content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", record.sha256)) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(response)
}

/// A response body fed by a blocking reader of the blob.
struct BlobBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    remaining: u64,
}

impl BlobBody {
    fn spawn(repo: Arc<Repository>, record: ObjectRecord) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let size = record.size;
        tokio::task::spawn_blocking(move || {
            let blob = match repo.open_blob(&record) {
                Ok(b) => b,
                Err(e) => {
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            };
            let mut offset = 0u64;
            while offset < size {
                let n = ((size - offset) as usize).min(256 << 10);
                let mut buf = vec![0u8; n];
                let result = blob
                    .read_exact_at(&mut buf, offset)
                    .map(|()| Bytes::from(buf));
                let failed = result.is_err();
                if tx.blocking_send(result).is_err() || failed {
                    return;
                }
                offset += n as u64;
            }
        });
        Self {
            rx,
            remaining: size,
        }
    }
}

impl hyper::body::Body for BlobBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) if self.remaining > 0 => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "blob ended early",
            )))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
