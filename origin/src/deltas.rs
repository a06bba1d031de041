//! Differential updates: deltas from earlier versions of a name to a new
//! one, made in the background after each publish, and served to devices
//! that say which version they have (`?from=` on the download URI).
//!
//! Deltas live in `DATA/deltas/{target sha256}/{base sha256}-{delta
//! sha256}`: content-addressed like blobs, and the file name carries all
//! the catalog needs (the delta's own header repeats base and target
//! identity, so a device can check it too). Nothing else records them, so
//! a read-only `dms repair-serve` finds them by listing the directory, and
//! a crash mid-write leaves only a temporary file that [`DeltaStore::open`]
//! removes.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use dms_repair::{
    BlobReader, DeltaBlob, FileBlob, ObjectInfo, ObjectSource, OpenDelta, SourceError,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::objects::ErrorBody;
use crate::api::{ApiError, AppState};
use crate::model::{ObjectRecord, State as ObjectState};
use crate::repo::{RepoError, Repository};

/// The delta directory below the data directory.
pub const DELTA_DIR: &str = "deltas";

/// Prefix of temporary files in the delta directory.
const TEMP_PREFIX: &str = ".tmp-";

/// When and how deltas are made.
#[derive(Clone, Debug, PartialEq)]
pub struct DeltaConfig {
    /// Make deltas from this many previous active versions (0 = none).
    pub bases: usize,
    /// Keep a delta only when it is at most this fraction of the full size.
    pub max_ratio: f64,
    /// The delta encoder's options.
    pub make: dms_delta::MakeOptions,
}

impl Default for DeltaConfig {
    fn default() -> Self {
        Self {
            bases: 2,
            max_ratio: 0.6,
            make: dms_delta::MakeOptions::default(),
        }
    }
}

/// A stored delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredDelta {
    /// SHA-256 of the version it applies to.
    pub base_sha256: [u8; 32],
    /// SHA-256 of the version it produces.
    pub target_sha256: [u8; 32],
    /// SHA-256 of the delta itself.
    pub sha256: [u8; 32],
    /// Size of the delta in bytes.
    pub size: u64,
    /// Where it is stored.
    pub path: PathBuf,
}

/// The delta directory.
#[derive(Debug)]
pub struct DeltaStore {
    dir: PathBuf,
    config: DeltaConfig,
}

fn parse_sha(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

fn sha_of(record: &ObjectRecord) -> Result<[u8; 32], RepoError> {
    parse_sha(&record.sha256)
        .ok_or_else(|| RepoError::Invalid(format!("bad hash {}", record.sha256)))
}

impl DeltaStore {
    /// Opens (creating) the delta directory `dir`, removing temporary
    /// files a crash left.
    pub fn open(dir: &Path, config: DeltaConfig) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for target in std::fs::read_dir(dir)? {
            let target = target?;
            if !target.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(target.path())? {
                let entry = entry?;
                if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// Opens the directory read-only (no clean-up; for `dms repair-serve`).
    pub fn open_read_only(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            config: DeltaConfig::default(),
        }
    }

    /// Removes the deltas whose target no object references any more
    /// (deleted versions); returns how many target directories went.
    pub fn prune(&self, repo: &Repository) -> Result<usize, RepoError> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(target) = name.to_str().filter(|n| parse_sha(n).is_some()) else {
                continue;
            };
            if !repo.catalog().blob_referenced(target)? {
                std::fs::remove_dir_all(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The deltas stored for the version with SHA-256 `target`.
    pub fn list(&self, target: &[u8; 32]) -> io::Result<Vec<StoredDelta>> {
        let dir = self.dir.join(hex::encode(target));
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some((base, sha)) = name.to_str().and_then(|n| n.split_once('-')) else {
                continue;
            };
            let (Some(base_sha256), Some(sha256)) = (parse_sha(base), parse_sha(sha)) else {
                continue;
            };
            out.push(StoredDelta {
                base_sha256,
                target_sha256: *target,
                sha256,
                size: entry.metadata()?.len(),
                path: entry.path(),
            });
        }
        out.sort_by_key(|d| d.base_sha256);
        Ok(out)
    }

    /// The delta from `base` to `target`, if stored.
    pub fn find(&self, target: &[u8; 32], base: &[u8; 32]) -> io::Result<Option<StoredDelta>> {
        Ok(self
            .list(target)?
            .into_iter()
            .find(|d| d.base_sha256 == *base))
    }

    /// The earlier active versions of `record`'s name to make deltas
    /// from: the latest `bases` published before it, other content only.
    pub fn bases_for(
        &self,
        repo: &Repository,
        record: &ObjectRecord,
    ) -> Result<Vec<ObjectRecord>, RepoError> {
        let mut earlier: Vec<ObjectRecord> = repo
            .history(&record.name)?
            .into_iter()
            .filter(|r| {
                r.seq < record.seq && r.state == ObjectState::Active && r.sha256 != record.sha256
            })
            .collect();
        earlier.sort_by_key(|r| std::cmp::Reverse(r.seq));
        let mut seen = std::collections::HashSet::new();
        earlier.retain(|r| seen.insert(r.sha256.clone()));
        earlier.truncate(self.config.bases);
        Ok(earlier)
    }

    /// Makes and stores the deltas to `record` from its bases (blocking):
    /// each kept only when at most `max_ratio` of the full size. Returns
    /// the deltas stored.
    pub fn make_for(
        &self,
        repo: &Repository,
        record: &ObjectRecord,
    ) -> Result<Vec<StoredDelta>, RepoError> {
        let bases = self.bases_for(repo, record)?;
        if bases.is_empty() {
            return Ok(Vec::new());
        }
        let target_sha = sha_of(record)?;
        let target = read_all(&*repo.open_blob(record)?)?;
        let dir = self.dir.join(&record.sha256);
        std::fs::create_dir_all(&dir)?;
        let mut stored = Vec::new();
        for base in bases {
            let base_sha = sha_of(&base)?;
            if self.find(&target_sha, &base_sha)?.is_some() {
                continue;
            }
            let base_bytes = read_all(&*repo.open_blob(&base)?)?;
            let (delta, info) = dms_delta::make_bytes(&base_bytes, &target, &self.config.make)
                .map_err(|e| RepoError::Invalid(format!("making a delta: {e}")))?;
            let limit = record.size as f64 * self.config.max_ratio;
            if info.delta_size as f64 > limit {
                tracing::info!(target = %record.id, base = %base.id, size = info.delta_size, full = record.size, "delta not kept: too large");
                continue;
            }
            let path = dir.join(format!(
                "{}-{}",
                base.sha256,
                hex::encode(info.delta_sha256)
            ));
            let mut temp = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .tempfile_in(&dir)?;
            io::Write::write_all(&mut temp, &delta)?;
            temp.as_file().sync_all()?;
            temp.persist(&path).map_err(|e| e.error)?;
            crate::blob::sync_dir(&dir)?;
            tracing::info!(target = %record.id, base = %base.id, method = %info.header.method, size = info.delta_size, full = record.size, "delta stored");
            stored.push(StoredDelta {
                base_sha256: base_sha,
                target_sha256: target_sha,
                sha256: info.delta_sha256,
                size: info.delta_size,
                path,
            });
        }
        Ok(stored)
    }

    /// Makes the deltas to `record` on the blocking pool (or a thread when
    /// no runtime runs); failures are logged.
    pub fn spawn_for(self: &Arc<Self>, repo: Arc<Repository>, record: ObjectRecord) {
        if self.config.bases == 0 {
            return;
        }
        let store = self.clone();
        let job = move || {
            if let Err(e) = store.make_for(&repo, &record) {
                tracing::warn!(id = %record.id, error = %e, "making deltas failed");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(job)),
            Err(_) => drop(std::thread::spawn(job)),
        }
    }

    /// The deltas of `record` as the API shows them (base versions looked
    /// up among the name's versions).
    pub fn views(
        &self,
        repo: &Repository,
        record: &ObjectRecord,
    ) -> Result<Vec<DeltaView>, RepoError> {
        let deltas = self.list(&sha_of(record)?)?;
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        let history = repo.history(&record.name)?;
        let uri = repo.urls().uri(record);
        Ok(deltas
            .into_iter()
            .map(|d| {
                let base_hex = hex::encode(d.base_sha256);
                let base = history.iter().rev().find(|r| r.sha256 == base_hex);
                DeltaView {
                    base_version: base.map(|b| b.version.clone()),
                    base_id: base.map(|b| b.id.clone()),
                    uri: format!("{uri}?from={base_hex}"),
                    base_sha256: base_hex,
                    size: d.size,
                    sha256: hex::encode(d.sha256),
                }
            })
            .collect())
    }
}

fn read_all(blob: &dyn BlobReader) -> io::Result<Vec<u8>> {
    let len = usize::try_from(blob.len()).map_err(io::Error::other)?;
    let mut buf = vec![0u8; len];
    blob.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

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
    /// Download URI of the delta (the object's `uri` with `?from=`).
    pub uri: String,
}

/// The deltas stored for an object.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DeltaList {
    /// Id of the object (the target).
    pub id: String,
    /// The deltas, by base SHA-256.
    pub deltas: Vec<DeltaView>,
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
        let deltas = store.views(&repo, &record)?;
        Ok::<_, RepoError>(DeltaList { id, deltas })
    })
    .await??;
    Ok(axum::Json(list))
}

/// An [`ObjectSource`] that adds the stored deltas to another source (the
/// repository): `?from=` downloads find them here.
pub struct DeltaSource {
    inner: Arc<dyn ObjectSource>,
    store: Arc<DeltaStore>,
}

impl std::fmt::Debug for DeltaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaSource")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl DeltaSource {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectSource>, store: Arc<DeltaStore>) -> Self {
        Self { inner, store }
    }
}

impl ObjectSource for DeltaSource {
    fn object(&self, id: &str) -> Result<Option<ObjectInfo>, SourceError> {
        self.inner.object(id)
    }

    fn object_by_location(
        &self,
        content_location: &str,
    ) -> Result<Option<ObjectInfo>, SourceError> {
        self.inner.object_by_location(content_location)
    }

    fn open(&self, object: &ObjectInfo) -> Result<Box<dyn BlobReader>, SourceError> {
        self.inner.open(object)
    }

    fn delta_from(
        &self,
        object: &ObjectInfo,
        base_sha256: &[u8; 32],
    ) -> Result<Option<OpenDelta>, SourceError> {
        let Some(delta) = self.store.find(&object.sha256, base_sha256)? else {
            return Ok(None);
        };
        let reader = match FileBlob::open(&delta.path) {
            Ok(r) => r,
            // Removed since listed: serve the full object.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(Some((
            DeltaBlob {
                base_sha256: delta.base_sha256,
                size: reader.len(),
                sha256: delta.sha256,
            },
            Box::new(reader),
        )))
    }
}
