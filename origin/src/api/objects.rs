//! `/v1/objects…`, `/v1/names/{name}` and `/v1/keys`: the management API
//! of the repository.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody, Json, Path, Query};
use crate::catalog::{Filter, Notification};
use crate::model::{FecInfo, Kind, ObjectRecord, Priority, State as ObjectState};
use crate::repo::{NewObject, ObjectPatch};
use crate::sessions::SessionView;
use crate::urls::Urls;

/// An object as the API answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ObjectView {
    /// Id (128-bit hex), never reused.
    pub id: String,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: Kind,
    /// Priority.
    pub priority: Priority,
    /// State.
    pub state: ObjectState,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256.
    pub sha256: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Free metadata.
    pub metadata: BTreeMap<String, String>,
    /// Unicast download URL.
    pub uri: String,
    /// The Package URI (LwM2M `/5/0/1`, ≤ 255 characters) of each enabled
    /// transport, keyed by scheme: `https` always, `coap`, `coap+tcp` and
    /// `coaps+tcp`, `coaps` when the origin serves them.
    pub package_uris: BTreeMap<String, String>,
    /// OMA download descriptor URL.
    pub dd_uri: String,
    /// Signed manifest URL.
    pub manifest_uri: String,
    /// FDT Content-Location in broadcast sessions (same as `uri`).
    pub content_location: String,
    /// Symbol repair service URL.
    pub repair_uri: String,
    /// Reception report URL.
    pub report_uri: String,
    /// installNotifyURI of the download descriptor.
    pub notify_uri: String,
    /// FEC layout.
    pub fec: FecInfo,
    /// Deltas to this version from earlier ones (in `GET /v1/objects/{id}`
    /// and `/v1/objects/{id}/deltas`; absent when there are none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<super::deltas::DeltaView>,
    /// Present when a scrub found the stored bytes damaged: the object is
    /// refused (410) until its content is uploaded again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<crate::model::Damage>,
    /// The broadcast sessions (scheduled or running) that carry it, each
    /// with its `sdp_uri`, `apd_uri` and `usd_uri`: a DM server hands a
    /// device either `uri` or a session to join.
    #[serde(default)]
    pub sessions: Vec<super::describe::CarryingSession>,
}

impl ObjectView {
    /// The view of a record.
    pub fn new(r: &ObjectRecord, urls: &Urls) -> Self {
        let uri = urls.uri(r);
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            version: r.version.clone(),
            kind: r.kind,
            priority: r.priority,
            state: r.state,
            content_type: r.content_type.clone(),
            size: r.size,
            sha256: r.sha256.clone(),
            created: r.created,
            metadata: r.metadata.clone(),
            content_location: uri.clone(),
            package_uris: urls.package_uris(&r.id, &r.name),
            uri,
            dd_uri: urls.dd_uri(&r.id),
            manifest_uri: urls.manifest_uri(&r.id),
            repair_uri: urls.repair_uri(),
            report_uri: urls.report_uri(),
            notify_uri: urls.notify_uri(&r.id),
            fec: r.fec.clone(),
            deltas: Vec::new(),
            damaged: r.damaged.clone(),
            sessions: Vec::new(),
        }
    }

    /// The view of a record, with the sessions of `live` that carry it.
    pub fn with_sessions(r: &ObjectRecord, urls: &Urls, live: &[SessionView]) -> Self {
        let mut view = ObjectView::new(r, urls);
        view.sessions = super::describe::carrying(live, &r.id, urls);
        view
    }
}

/// Query of `POST /v1/objects`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    /// Name: 1–128 of `[A-Za-z0-9._+@-]`, not starting with a dot.
    pub name: String,
    /// Version (ordered as semver when it parses, else by publication).
    pub version: String,
    /// Kind (default `other`).
    pub kind: Option<Kind>,
    /// Priority (default `normal`).
    pub priority: Option<Priority>,
}

/// Publishes an object: the body is the raw object, streamed.
#[utoipa::path(
    post,
    path = "/v1/objects",
    params(CreateParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored", body = ObjectView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 408, description = "The body stalled past the body time-out", body = ErrorBody),
        (status = 409, description = "Name and version exist", body = ErrorBody),
        (status = 413, description = "Over quota", body = ErrorBody),
        (status = 507, description = "The storage is full", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Query(params): Query<CreateParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let content_type = match headers.get(header::CONTENT_TYPE) {
        None => "application/octet-stream".to_owned(),
        Some(v) => v
            .to_str()
            .ok()
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= 127
                    && s.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
            })
            .ok_or_else(|| ApiError::bad_request("bad Content-Type"))?
            .to_owned(),
    };
    let new = NewObject {
        name: params.name,
        version: params.version,
        kind: params.kind.unwrap_or(Kind::Other),
        priority: params.priority.unwrap_or(Priority::Normal),
        content_type,
        metadata: BTreeMap::new(),
    };
    let declared: Option<u64> = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let repo = state.repo.clone();
    // The body goes to a blocking writer through a small channel; `None`
    // marks the end. A channel closed without it (client gone, body error)
    // abandons the upload, so a truncated body is never stored.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<Bytes>>(8);
    // The body is read only once the upload may start: a refusal that
    // needs no byte of it (name taken, over quota or disk by the declared
    // length) is answered before a client that sent `Expect:
    // 100-continue` is told to send.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::task::spawn_blocking(move || {
        repo.check_new(&new)?;
        let mut upload = repo.begin_upload()?;
        if let Some(len) = declared {
            upload.declare_size(len)?;
        }
        let _ = ready_tx.send(());
        loop {
            match rx.blocking_recv() {
                Some(Some(chunk)) => upload.write(&chunk)?,
                Some(None) => break,
                None => {
                    return Err(crate::repo::RepoError::Invalid(
                        "request body ended early".into(),
                    ));
                }
            }
        }
        upload.finish(new)
    });
    if ready_rx.await.is_err() {
        // The writer stopped before the first byte: its error is the answer.
        drop(tx);
        writer.await??;
        return Err(ApiError::internal("upload writer ended without an answer"));
    }
    let mut body = body;
    let mut complete = true;
    let mut stalled = false;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!("upload body: {e}");
                stalled = crate::http::BodyTimedOut::is(&e);
                complete = false;
                break;
            }
        };
        if let Ok(data) = frame.into_data()
            && tx.send(Some(data)).await.is_err()
        {
            // The writer stopped (quota, bad input): its error is the answer.
            break;
        }
    }
    if complete {
        let _ = tx.send(None).await;
    }
    drop(tx);
    let written = writer.await?;
    if stalled {
        // The temporary blob is gone with the writer; say why.
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body stalled: no bytes within the body time-out",
        ));
    }
    let record = written?;
    tracing::info!(id = %record.id, name = %record.name, version = %record.version, size = record.size, "published");
    state.deltas.spawn_for(state.repo.clone(), record.clone());
    let view = ObjectView::new(&record, state.repo.urls());
    let location = format!("/v1/objects/{}", record.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(view),
    )
        .into_response())
}

/// Query of `GET /v1/objects`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this name.
    pub name: Option<String>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Only this state.
    pub state: Option<ObjectState>,
    /// Skip this many (default 0).
    pub offset: Option<usize>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<usize>,
}

/// A page of objects.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ObjectList {
    /// The objects, in publication order.
    pub objects: Vec<ObjectView>,
    /// How many match in all.
    pub total: usize,
    /// The `offset` of the next page, if any.
    pub next_offset: Option<usize>,
}

/// Lists objects.
#[utoipa::path(
    get,
    path = "/v1/objects",
    params(ListParams),
    responses(
        (status = 200, description = "A page of objects", body = ObjectList),
        (status = 400, description = "Bad query", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ObjectList>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be 1 to 1000"));
    }
    let offset = params.offset.unwrap_or(0);
    let filter = Filter {
        name: params.name,
        kind: params.kind,
        state: params.state,
    };
    let repo = state.repo.clone();
    let all = tokio::task::spawn_blocking(move || repo.list(&filter)).await??;
    let total = all.len();
    let live = state.sessions.views();
    let objects: Vec<ObjectView> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| ObjectView::with_sessions(r, state.repo.urls(), &live))
        .collect();
    let end = offset.saturating_add(objects.len());
    Ok(axum::Json(ObjectList {
        objects,
        total,
        next_offset: (end < total).then_some(end),
    }))
}

/// One object.
#[utoipa::path(
    get,
    path = "/v1/objects/{id}",
    params(("id" = String, Path, description = "Object id")),
    responses(
        (status = 200, description = "The object", body = ObjectView),
        (status = 404, description = "Unknown id", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<ObjectView>, ApiError> {
    let repo = state.repo.clone();
    let store = state.deltas.clone();
    let (record, deltas) = tokio::task::spawn_blocking(move || {
        let record = repo.get(&id)?;
        let deltas = super::deltas::views(&store, &repo, &record)?;
        Ok::<_, crate::repo::RepoError>((record, deltas))
    })
    .await??;
    let mut view = ObjectView::with_sessions(&record, state.repo.urls(), &state.sessions.views());
    view.deltas = deltas;
    Ok(axum::Json(view))
}

/// Body of `PATCH /v1/objects/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    /// New state.
    pub state: Option<ObjectState>,
    /// New priority.
    pub priority: Option<Priority>,
    /// Replaces the metadata.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Changes state, priority or metadata.
#[utoipa::path(
    patch,
    path = "/v1/objects/{id}",
    params(("id" = String, Path, description = "Object id")),
    request_body = PatchBody,
    responses(
        (status = 200, description = "The changed object", body = ObjectView),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 404, description = "Unknown id", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<PatchBody>,
) -> Result<axum::Json<ObjectView>, ApiError> {
    if let Some(m) = &body.metadata
        && (m.len() > 64 || m.iter().any(|(k, v)| k.len() > 128 || v.len() > 1024))
    {
        return Err(ApiError::bad_request(
            "metadata: at most 64 entries, keys ≤ 128 and values ≤ 1024 bytes",
        ));
    }
    let patch = ObjectPatch {
        state: body.state,
        priority: body.priority,
        metadata: body.metadata,
    };
    let repo = state.repo.clone();
    let record = tokio::task::spawn_blocking(move || repo.patch(&id, &patch)).await??;
    Ok(axum::Json(ObjectView::with_sessions(
        &record,
        state.repo.urls(),
        &state.sessions.views(),
    )))
}

/// Deletes an object (refused while a broadcast session uses it).
#[utoipa::path(
    delete,
    path = "/v1/objects/{id}",
    params(("id" = String, Path, description = "Object id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Unknown id", body = ErrorBody),
        (status = 409, description = "In use by a session", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Through the session registry: no session can start on the object
    // while it is being deleted.
    let sessions = state.sessions.clone();
    tokio::task::spawn_blocking(move || sessions.delete_object(&id)).await??;
    Ok(StatusCode::NO_CONTENT)
}

/// The install notifications recorded for an object.
#[utoipa::path(
    get,
    path = "/v1/objects/{id}/notifications",
    params(("id" = String, Path, description = "Object id")),
    responses(
        (status = 200, description = "Latest status per device", body = Vec<Notification>),
        (status = 404, description = "Unknown id", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn notifications(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<Notification>>, ApiError> {
    let repo = state.repo.clone();
    let list = tokio::task::spawn_blocking(move || {
        repo.get(&id)?;
        Ok::<_, crate::repo::RepoError>(repo.catalog().notifications(&id)?)
    })
    .await??;
    Ok(axum::Json(list))
}

/// The history of a name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NameHistory {
    /// The name.
    pub name: String,
    /// The latest active version, if any.
    pub latest: Option<ObjectView>,
    /// Every version, oldest first.
    pub versions: Vec<ObjectView>,
}

/// The versions of a name and its latest active one.
#[utoipa::path(
    get,
    path = "/v1/names/{name}",
    params(("name" = String, Path, description = "Object name")),
    responses(
        (status = 200, description = "History", body = NameHistory),
        (status = 404, description = "No object has this name", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn name_history(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<NameHistory>, ApiError> {
    let repo = state.repo.clone();
    let lookup = name.clone();
    let (versions, latest) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::repo::RepoError>((repo.history(&lookup)?, repo.latest_active(&lookup)?))
    })
    .await??;
    if versions.is_empty() {
        return Err(ApiError::not_found(format!("no object named {name:?}")));
    }
    let urls = state.repo.urls();
    let live = state.sessions.views();
    Ok(axum::Json(NameHistory {
        name,
        latest: latest
            .as_ref()
            .map(|r| ObjectView::with_sessions(r, urls, &live)),
        versions: versions
            .iter()
            .map(|r| ObjectView::with_sessions(r, urls, &live))
            .collect(),
    }))
}

/// A public key that signs manifests.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyView {
    /// Short id (as in the manifests' `key_id`).
    pub id: String,
    /// Always `Ed25519`.
    pub algorithm: String,
    /// Hex of the 32-byte public key.
    pub public_key: String,
    /// PEM SubjectPublicKeyInfo (the content of `DATA/origin.pub`).
    pub pem: String,
}

/// The keys that sign manifests.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    /// The keys.
    pub keys: Vec<KeyView>,
}

/// The manifest signing keys.
#[utoipa::path(
    get,
    path = "/v1/keys",
    responses((status = 200, description = "Signing keys", body = KeyList)),
    security(("bearer" = []))
)]
pub async fn keys(State(state): State<AppState>) -> Result<axum::Json<KeyList>, ApiError> {
    let Some(key) = &state.public_key else {
        return Ok(axum::Json(KeyList { keys: Vec::new() }));
    };
    Ok(axum::Json(KeyList {
        keys: vec![KeyView {
            id: dms_repair::manifest::key_id(key),
            algorithm: "Ed25519".into(),
            public_key: hex::encode(key.as_bytes()),
            pem: dms_repair::manifest::public_key_to_pem(key).map_err(ApiError::internal)?,
        }],
    }))
}
