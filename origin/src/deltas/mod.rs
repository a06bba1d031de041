//! Differential updates: deltas from earlier versions of a name to a new
//! one, made in the background after each publish, and served to devices
//! that say which version they have (`?from=` on the download URI).
//!
//! A delta is an object of its own: content-addressed bytes, its own
//! SHA-256, FEC layout and per-block hashes, its own signed manifest (a
//! version 2 manifest naming base, target and the target's id), its own
//! download URI, which is also its FDT Content-Location and the `fileURI`
//! of symbol repair. It does not sit among the objects of the catalog (so
//! listings by name show only versions): the delta directory is its table,
//! keyed to the target.
//!
//! ```text
//! DATA/deltas/{target sha256}/{base sha256}-{delta sha256}   the bytes
//! DATA/deltas/records/{delta id}.json                        its record
//! ```
//!
//! The delta's id is derived from the target object's id, the base and
//! the delta's hash ([`delta_id`]), so remaking a delta gives the same id
//! and ids never name other bytes. Both files are written atomically
//! (temporary file, fsync, rename); a crash mid-write leaves only a
//! temporary file that [`DeltaStore::open`] removes. A read-only `dms
//! repair-serve` reads the same files.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dms_repair::BlobReader;
use dms_repair::manifest::{ManifestBody, ManifestDelta, SignedManifest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{FecInfo, ObjectRecord, State as ObjectState};
use crate::repo::{RepoError, Repository};
use crate::urls::Urls;

mod source;

pub use source::DeltaSource;

/// Content type of a delta (its download, its FDT entry, its DD `type`).
pub const DELTA_CONTENT_TYPE: &str = dms_repair::download::DELTA_CONTENT_TYPE;

/// The directory of delta records below the delta directory.
const RECORD_DIR: &str = "records";

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
    writable: bool,
}

pub(crate) fn parse_sha(s: &str) -> Option<[u8; 32]> {
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
            writable: true,
        })
    }

    /// Opens the directory read-only (no clean-up; for `dms repair-serve`).
    pub fn open_read_only(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            config: DeltaConfig::default(),
            writable: false,
        }
    }

    /// Removes the deltas whose target no object references any more
    /// (deleted versions) and the records of deleted targets; returns how
    /// many target directories went.
    pub fn prune(&self, repo: &Repository) -> Result<usize, RepoError> {
        for rec in self.all_records()? {
            let target_gone = matches!(repo.get(&rec.target_id), Err(RepoError::NotFound(_)));
            if target_gone || !self.blob_path(&rec)?.exists() {
                remove_if_present(&self.record_path(&rec.id))?;
            }
        }
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
            if let Some(existing) = self.find(&target_sha, &base_sha)? {
                // Made before (or for another object with the same bytes):
                // this target still needs its record.
                self.ensure_record(repo, record, &existing)?;
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
            let delta = StoredDelta {
                base_sha256: base_sha,
                target_sha256: target_sha,
                sha256: info.delta_sha256,
                size: info.delta_size,
                path,
            };
            let made = self.ensure_record(repo, record, &delta)?;
            tracing::info!(target = %record.id, base = %base.id, delta = %made.id, method = %info.header.method, size = info.delta_size, full = record.size, "delta stored");
            stored.push(delta);
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
}

fn read_all(blob: &dyn BlobReader) -> io::Result<Vec<u8>> {
    let len = usize::try_from(blob.len()).map_err(io::Error::other)?;
    let mut buf = vec![0u8; len];
    blob.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The id of the delta from `base_sha256` to the object `target_id` whose
/// bytes hash to `delta_sha256`: 128 bits of SHA-256 over the three, in
/// hex (the length of an object id).
pub fn delta_id(target_id: &str, base_sha256: &[u8; 32], delta_sha256: &[u8; 32]) -> String {
    let mut h = Sha256::new();
    h.update(b"dms-delta\0");
    h.update(target_id.as_bytes());
    h.update(b"\0");
    h.update(base_sha256);
    h.update(delta_sha256);
    hex::encode(&h.finalize()[..16])
}

/// The name a delta to an object named `target_name` is served under:
/// `{target_name}.delta`, or `update.delta` when that would not fit the
/// 255-character URI limit.
pub fn delta_name(urls: &Urls, target_name: &str) -> String {
    let name = format!("{target_name}.delta");
    if urls.check_name_fits(&name).is_ok() {
        name
    } else {
        "update.delta".to_owned()
    }
}

/// A delta's record: what makes it a catalog object of its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaRecord {
    /// The delta's id ([`delta_id`]).
    pub id: String,
    /// Id of the target object (the version the delta produces).
    pub target_id: String,
    /// Hex SHA-256 of the target.
    pub target_sha256: String,
    /// Hex SHA-256 of the base (the version the delta applies to).
    pub base_sha256: String,
    /// Hex SHA-256 of the delta's bytes.
    pub sha256: String,
    /// Size of the delta in bytes.
    pub size: u64,
    /// Seconds since the Unix epoch when the record was made.
    pub created: u64,
    /// The delta's FEC layout (like any object of its size).
    pub fec: FecInfo,
    /// Hex SHA-256 of each source block of the delta.
    pub block_sha256: Vec<String>,
}

impl DeltaRecord {
    /// The SHA-256 of the base, as bytes.
    pub fn base(&self) -> Result<[u8; 32], RepoError> {
        parse_sha(&self.base_sha256)
            .ok_or_else(|| RepoError::Invalid(format!("bad hash {}", self.base_sha256)))
    }

    /// The record as an object record (for the FEC layout helpers and the
    /// sessions): name and version are the target's, with the delta name.
    pub fn as_object(&self, target: &ObjectRecord, urls: &Urls) -> ObjectRecord {
        ObjectRecord {
            id: self.id.clone(),
            name: delta_name(urls, &target.name),
            version: target.version.clone(),
            kind: target.kind,
            content_type: DELTA_CONTENT_TYPE.to_owned(),
            size: self.size,
            sha256: self.sha256.clone(),
            priority: target.priority,
            created: self.created,
            seq: target.seq,
            state: target.state,
            metadata: Default::default(),
            fec: self.fec.clone(),
            block_sha256: self.block_sha256.clone(),
            damaged: None,
        }
    }
}

impl DeltaStore {
    fn record_dir(&self) -> PathBuf {
        self.dir.join(RECORD_DIR)
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.record_dir().join(format!("{id}.json"))
    }

    /// Where the bytes of `rec` are stored.
    pub fn blob_path(&self, rec: &DeltaRecord) -> Result<PathBuf, RepoError> {
        Ok(self
            .dir
            .join(&rec.target_sha256)
            .join(format!("{}-{}", rec.base_sha256, rec.sha256)))
    }

    /// The delta with this id, if recorded.
    pub fn record(&self, id: &str) -> Result<Option<DeltaRecord>, RepoError> {
        if id.len() != crate::urls::ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let bytes = match std::fs::read(self.record_path(id)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RepoError::Invalid(format!("delta record {id}: {e}")))
    }

    fn all_records(&self) -> Result<Vec<DeltaRecord>, RepoError> {
        let entries = match std::fs::read_dir(self.record_dir()) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json"))
                && let Some(rec) = self.record(id)?
            {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// The record of `delta` to `target`, made (block hashes computed,
    /// written atomically) when missing.
    pub fn ensure_record(
        &self,
        repo: &Repository,
        target: &ObjectRecord,
        delta: &StoredDelta,
    ) -> Result<DeltaRecord, RepoError> {
        let id = delta_id(&target.id, &delta.base_sha256, &delta.sha256);
        if let Some(rec) = self.record(&id)? {
            return Ok(rec);
        }
        let blob = dms_repair::FileBlob::open(&delta.path)?;
        let (fec, block_sha256) = repo.fec_of(&blob)?;
        let rec = DeltaRecord {
            id: id.clone(),
            target_id: target.id.clone(),
            target_sha256: target.sha256.clone(),
            base_sha256: hex::encode(delta.base_sha256),
            sha256: hex::encode(delta.sha256),
            size: blob.len(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            fec,
            block_sha256,
        };
        let dir = self.record_dir();
        std::fs::create_dir_all(&dir)?;
        let mut temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&dir)?;
        let json = serde_json::to_vec(&rec)
            .map_err(|e| RepoError::Invalid(format!("delta record: {e}")))?;
        io::Write::write_all(&mut temp, &json)?;
        temp.as_file().sync_all()?;
        temp.persist(self.record_path(&id)).map_err(|e| e.error)?;
        crate::blob::sync_dir(&dir)?;
        Ok(rec)
    }

    /// The recorded deltas to `target`, by base SHA-256 (records that are
    /// missing are made when the store is writable).
    pub fn records_for(
        &self,
        repo: &Repository,
        target: &ObjectRecord,
    ) -> Result<Vec<DeltaRecord>, RepoError> {
        let mut out = Vec::new();
        for delta in self.list(&sha_of(target)?)? {
            let id = delta_id(&target.id, &delta.base_sha256, &delta.sha256);
            match self.record(&id)? {
                Some(rec) => out.push(rec),
                None if self.writable => out.push(self.ensure_record(repo, target, &delta)?),
                None => {}
            }
        }
        Ok(out)
    }

    /// The recorded delta to `target` from the version `base`, if any.
    pub fn record_from(
        &self,
        repo: &Repository,
        target: &ObjectRecord,
        base: &[u8; 32],
    ) -> Result<Option<DeltaRecord>, RepoError> {
        let base = hex::encode(base);
        Ok(self
            .records_for(repo, target)?
            .into_iter()
            .find(|r| r.base_sha256 == base))
    }

    /// A delta record and its served target, when the target is served.
    pub fn served(
        &self,
        repo: &Repository,
        id: &str,
    ) -> Result<Option<(DeltaRecord, ObjectRecord)>, RepoError> {
        let Some(rec) = self.record(id)? else {
            return Ok(None);
        };
        match repo.get_served(&rec.target_id) {
            Ok(target) => Ok(Some((rec, target))),
            Err(RepoError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The signed manifest of the delta `id` (a version 2 manifest), or
    /// `None` when there is no such delta or its target is not served.
    pub fn manifest(
        &self,
        repo: &Repository,
        id: &str,
    ) -> Result<Option<SignedManifest>, RepoError> {
        let Some((rec, target)) = self.served(repo, id)? else {
            return Ok(None);
        };
        let object = rec.as_object(&target, repo.urls());
        let mut body: ManifestBody = repo.manifest_body(&object)?;
        body.delta = Some(ManifestDelta {
            base_sha256: rec.base()?,
            target_sha256: sha_of(&target)?,
            target_id: target.id.clone(),
        });
        repo.sign(&body).map(Some)
    }
}
