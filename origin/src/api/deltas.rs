//! How deltas look in the management API: the `deltas` list of an object
//! and `GET /v1/objects/{id}/deltas`.

use axum::extract::{Path as UrlPath, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::deltas::{DELTA_CONTENT_TYPE, DeltaRecord, DeltaStore};
use crate::model::{FecInfo, ObjectRecord};
use crate::repo::{RepoError, Repository};

/// A delta as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DeltaView {
    /// Version of the base, if that version is still in the catalog.
    pub base_version: Option<String>,
    /// Id of the base object, if still in the catalog.
    pub base_id: Option<String>,
    /// Hex SHA-256 of the base.
    pub base_sha256: String,
    /// Size of the delta in bytes.
    pub size: u64,
    /// Hex SHA-256 of the delta.
    pub sha256: String,
    /// Download URI of the delta in the target's URL (the object's `uri`
    /// with `?from=`): what a device that names its version gets.
    pub uri: String,
    /// The delta's own id (a delta is an object of its own).
    pub id: String,
    /// Id of the target object (the version the delta produces).
    pub target_id: String,
    /// Hex SHA-256 of the target.
    pub target_sha256: String,
    /// MIME type of the delta (`application/vnd.dms.delta`).
    pub content_type: String,
    /// The delta's own immutable download URI
    /// (`{base}/dl/{delta id}/{name}.delta`), also its FDT
    /// Content-Location in broadcast sessions and the `fileURI` of symbol
    /// repair.
    pub content_location: String,
    /// The delta's signed manifest (a version 2 manifest naming base,
    /// target and target id).
    pub manifest_uri: String,
    /// Symbol repair service URL.
    pub repair_uri: String,
    /// The delta's FEC layout.
    pub fec: FecInfo,
}

/// The deltas stored for an object.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeltaList {
    /// Id of the object (the target).
    pub id: String,
    /// The deltas, by base SHA-256.
    pub deltas: Vec<DeltaView>,
}

/// The view of one delta record to `target` (`history`: the name's
/// versions, to find the base's).
pub fn view(
    repo: &Repository,
    target: &ObjectRecord,
    rec: &DeltaRecord,
    history: &[ObjectRecord],
) -> DeltaView {
    let urls = repo.urls();
    let base = history.iter().rev().find(|r| r.sha256 == rec.base_sha256);
    let object = rec.as_object(target, urls);
    DeltaView {
        base_version: base.map(|b| b.version.clone()),
        base_id: base.map(|b| b.id.clone()),
        uri: format!("{}?from={}", urls.uri(target), rec.base_sha256),
        base_sha256: rec.base_sha256.clone(),
        size: rec.size,
        sha256: rec.sha256.clone(),
        id: rec.id.clone(),
        target_id: target.id.clone(),
        target_sha256: target.sha256.clone(),
        content_type: DELTA_CONTENT_TYPE.to_owned(),
        content_location: urls.uri(&object),
        manifest_uri: urls.manifest_uri(&rec.id),
        repair_uri: urls.repair_uri(),
        fec: rec.fec.clone(),
    }
}

/// The deltas of `record` as the API shows them (base versions looked
/// up among the name's versions).
pub fn views(
    store: &DeltaStore,
    repo: &Repository,
    record: &ObjectRecord,
) -> Result<Vec<DeltaView>, RepoError> {
    let records = store.records_for(repo, record)?;
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let history = repo.history(&record.name)?;
    Ok(records
        .iter()
        .map(|rec| view(repo, record, rec, &history))
        .collect())
}

/// `GET /v1/objects/{id}/deltas`: the deltas to an object.
#[utoipa::path(
    get,
    path = "/v1/objects/{id}/deltas",
    params(("id" = String, Path, description = "Object id")),
    responses(
        (status = 200, description = "The deltas to this object", body = DeltaList),
        (status = 404, description = "Unknown id", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_route(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Result<axum::Json<DeltaList>, ApiError> {
    let repo = state.repo.clone();
    let store = state.deltas.clone();
    let list = tokio::task::spawn_blocking(move || {
        let record = repo.get(&id)?;
        let deltas = views(&store, &repo, &record)?;
        Ok::<_, RepoError>(DeltaList { id, deltas })
    })
    .await??;
    Ok(axum::Json(list))
}
