//! The repository: catalog plus blob store, with the publish pipeline
//! (stream, hash, make durable, then commit) and deletion.
//!
//! Everything here is blocking; the HTTP layer calls it from
//! `spawn_blocking`.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dms_fec::{BlockSize, FecScheme, Oti};
use dms_repair::manifest::{ManifestBody, SignedManifest};
use dms_repair::{BlobReader, ObjectInfo, ObjectSource, SourceError};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::blob::{BlobStore, BlobWriter, LocalBlobStore};
use crate::catalog::{Catalog, CatalogError, Filter, RedbCatalog};
use crate::model::{FecInfo, Kind, ObjectRecord, Priority, State, validate_name, validate_version};
use crate::urls::Urls;

/// The default symbol size T.
pub const DEFAULT_SYMBOL_SIZE: u16 = 1400;

/// An error of the repository.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// No such object.
    #[error("no object {0}")]
    NotFound(String),
    /// Input refused.
    #[error("{0}")]
    Invalid(String),
    /// A conflicting object exists (same name and version).
    #[error("{0}")]
    Conflict(String),
    /// The object is in use (for example by a broadcast session).
    #[error("object in use: {0}")]
    InUse(String),
    /// The upload exceeds the storage quota.
    #[error("{0}")]
    TooLarge(String),
    /// The blob store's disk is full (or would be past its reserve).
    #[error("{0}")]
    NoSpace(String),
    /// A scrub found the object's stored bytes damaged: it is not served
    /// until its content is uploaded again.
    #[error("{0}")]
    Damaged(String),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The blob store failed.
    #[error("blob store: {0}")]
    Io(#[from] io::Error),
}

/// Storage limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// At most this many bytes of distinct blobs (None = no quota).
    pub quota_bytes: Option<u64>,
    /// Keep at least this many bytes free on the blob store's disk.
    ///
    /// Both limits are checked against what is stored when an upload
    /// starts: concurrent uploads may together pass them by at most their
    /// own sizes.
    pub min_free_bytes: u64,
    /// The symbol size T of the FEC layout.
    pub symbol_size: u16,
    /// Target source block size in bytes.
    pub block_bytes: u64,
    /// The FEC scheme objects are laid out in (RaptorQ by default; Raptor
    /// for an origin serving 3GPP MBMS download sessions). Unicast repair
    /// answers in this layout, so sessions that send it can be repaired.
    pub fec: FecScheme,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            quota_bytes: None,
            min_free_bytes: 64 << 20,
            symbol_size: DEFAULT_SYMBOL_SIZE,
            block_bytes: dms_fec::DEFAULT_BLOCK_BYTES,
            fec: FecScheme::RaptorQ,
        }
    }
}

/// Decides whether an object may be deleted: a broadcast session registry
/// implements it to refuse deleting objects it is sending.
pub trait DeleteVeto: Send + Sync + 'static {
    /// `Some(reason)` refuses the deletion of object `id`.
    fn veto(&self, id: &str) -> Option<String>;
}

/// What a publisher says about a new object.
#[derive(Clone, Debug)]
pub struct NewObject {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: Kind,
    /// Priority.
    pub priority: Priority,
    /// MIME type.
    pub content_type: String,
    /// Free metadata.
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// Changes to an object (`PATCH`).
#[derive(Clone, Debug, Default)]
pub struct ObjectPatch {
    /// New state.
    pub state: Option<State>,
    /// New priority.
    pub priority: Option<Priority>,
    /// Metadata to replace the current metadata.
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
}

/// The object repository.
pub struct Repository {
    catalog: Arc<dyn Catalog>,
    blobs: Arc<dyn BlobStore>,
    key: Option<SigningKey>,
    urls: Urls,
    limits: Limits,
    /// Serialises "blob commit + catalog insert" against "catalog remove +
    /// blob remove", so a deletion never removes a blob that a concurrent
    /// upload of the same content is about to reference.
    commit_lock: Mutex<()>,
    veto: RwLock<Option<Arc<dyn DeleteVeto>>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("urls", &self.urls)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The refusal of a damaged object.
fn damaged_error(record: &ObjectRecord, damage: &crate::model::Damage) -> RepoError {
    RepoError::Damaged(format!(
        "object {} ({} {}) is damaged in storage ({}); it is not served until it is uploaded again",
        record.id, record.name, record.version, damage.reason
    ))
}

fn sha_from_hex(s: &str) -> Result<[u8; 32], RepoError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| RepoError::Catalog(CatalogError::Corrupt(format!("bad hash {s}"))))?;
    Ok(out)
}

impl RepoError {
    /// True when another process (a running `dms serve`) holds the catalog.
    pub fn is_catalog_busy(&self) -> bool {
        matches!(
            self,
            RepoError::Catalog(CatalogError::Db(redb::Error::DatabaseAlreadyOpen))
        )
    }

    /// True when the blob store could not be reached (a
    /// [`dms_repair::StoreUnavailable`] anywhere in the source chain):
    /// answered with 503, the request may be retried.
    pub fn is_unavailable(&self) -> bool {
        if matches!(self, RepoError::Catalog(CatalogError::Unavailable(_))) {
            return true;
        }
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = current {
            if e.is::<dms_repair::StoreUnavailable>()
                || e.downcast_ref::<io::Error>()
                    .is_some_and(dms_repair::is_store_unavailable)
            {
                return true;
            }
            current = e.source();
        }
        false
    }

    /// True when the error comes from a full disk (ENOSPC, EDQUOT)
    /// anywhere in its source chain, or is [`RepoError::NoSpace`].
    pub fn is_no_space(&self) -> bool {
        if matches!(self, RepoError::NoSpace(_)) {
            return true;
        }
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = current {
            let io = match e.downcast_ref::<CatalogError>() {
                // redb's errors do not chain their sources.
                Some(CatalogError::Db(redb::Error::Io(io))) => Some(io),
                _ => e.downcast_ref::<io::Error>(),
            };
            if io.is_some_and(|io| {
                matches!(
                    io.kind(),
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                )
            }) {
                return true;
            }
            current = e.source();
        }
        false
    }
}

impl Repository {
    /// Opens the embedded default in `data`: `catalog.redb` and `blobs/`,
    /// cleaning what a crash left (partial uploads, blobs no object
    /// references).
    pub fn open(
        data: &Path,
        key: SigningKey,
        urls: Urls,
        limits: Limits,
    ) -> Result<Self, RepoError> {
        std::fs::create_dir_all(data)?;
        let blobs = Arc::new(LocalBlobStore::open(&data.join("blobs"))?);
        Self::open_on(data, blobs, key, urls, limits)
    }

    /// Opens the catalog in `data` over the blob store `blobs` (local or
    /// S3), cleaning what a crash left: partial uploads, and, when the
    /// store [sweeps on open](BlobStore::sweeps_on_open), blobs no object
    /// references.
    pub fn open_on(
        data: &Path,
        blobs: Arc<dyn BlobStore>,
        key: SigningKey,
        urls: Urls,
        limits: Limits,
    ) -> Result<Self, RepoError> {
        std::fs::create_dir_all(data)?;
        let catalog = Arc::new(RedbCatalog::open(&data.join("catalog.redb"))?);
        Self::open_with(catalog, blobs, key, urls, limits)
    }

    /// Opens a repository over any catalog (the shared PostgreSQL one) and
    /// blob store, with the same start-up clean-up as
    /// [`Repository::open_on`].
    pub fn open_with(
        catalog: Arc<dyn Catalog>,
        blobs: Arc<dyn BlobStore>,
        key: SigningKey,
        urls: Urls,
        limits: Limits,
    ) -> Result<Self, RepoError> {
        let repo = Self::new(catalog, blobs, Some(key), urls, limits);
        if repo.blobs.sweeps_on_open() {
            repo.recover()?;
        } else {
            repo.blobs.clean_partial()?;
        }
        Ok(repo)
    }

    /// Opens `data` for maintenance (`dms scrub`) while no server runs:
    /// the catalog for writing and the blobs, without a signing key and
    /// without the start-up clean-up. Fails with an error for which
    /// [`RepoError::is_catalog_busy`] is true when a server holds the catalog.
    pub fn open_maintenance(data: &Path) -> Result<Self, RepoError> {
        let blobs = Arc::new(LocalBlobStore::open(&data.join("blobs"))?);
        Self::open_maintenance_on(data, blobs)
    }

    /// [`Repository::open_maintenance`] over the blob store `blobs`.
    pub fn open_maintenance_on(data: &Path, blobs: Arc<dyn BlobStore>) -> Result<Self, RepoError> {
        let catalog = Arc::new(RedbCatalog::open(&data.join("catalog.redb"))?);
        let urls = Urls::new("http://localhost").map_err(RepoError::Invalid)?;
        Ok(Self::new(catalog, blobs, None, urls, Limits::default()))
    }

    /// Opens `data` read-only beside a running writer (for `dms repair-serve`).
    pub fn open_read_only(data: &Path, urls: Urls) -> Result<Self, RepoError> {
        let blobs = Arc::new(LocalBlobStore::open(&data.join("blobs"))?);
        Self::open_read_only_on(data, blobs, urls)
    }

    /// [`Repository::open_read_only`] over the blob store `blobs`.
    pub fn open_read_only_on(
        data: &Path,
        blobs: Arc<dyn BlobStore>,
        urls: Urls,
    ) -> Result<Self, RepoError> {
        let catalog = Arc::new(RedbCatalog::open_read_only(&data.join("catalog.redb"))?);
        Ok(Self::new(catalog, blobs, None, urls, Limits::default()))
    }

    /// A repository over any catalog and blob store.
    pub fn new(
        catalog: Arc<dyn Catalog>,
        blobs: Arc<dyn BlobStore>,
        key: Option<SigningKey>,
        urls: Urls,
        limits: Limits,
    ) -> Self {
        Self {
            catalog,
            blobs,
            key,
            urls,
            limits,
            commit_lock: Mutex::new(()),
            veto: RwLock::new(None),
        }
    }

    /// The URL builder.
    pub fn urls(&self) -> &Urls {
        &self.urls
    }

    /// The catalog.
    pub fn catalog(&self) -> &dyn Catalog {
        &*self.catalog
    }

    /// Installs the check that may refuse deletions (the session registry).
    pub fn set_delete_veto(&self, veto: Arc<dyn DeleteVeto>) {
        if let Ok(mut slot) = self.veto.write() {
            *slot = Some(veto);
        }
    }

    /// Removes partial uploads and blobs that no object references (left
    /// by a crash between the blob's rename and the catalog commit).
    pub fn recover(&self) -> Result<(), RepoError> {
        self.collect_garbage().map(|_| ())
    }

    /// [`Repository::recover`], saying how many unreferenced blobs went
    /// (`dms gc`).
    pub fn collect_garbage(&self) -> Result<usize, RepoError> {
        self.blobs.clean_partial()?;
        let _guard = self.commit_lock.lock();
        let mut removed = 0;
        for sha in self.blobs.list()? {
            // Another instance on a shared catalog may be committing this
            // very blob: decide only while it cannot.
            let _blob_lock = self.catalog.lock_blob(&hex::encode(sha))?;
            if !self.catalog.blob_referenced(&hex::encode(sha))? {
                tracing::info!(sha256 = %hex::encode(sha), "removing unreferenced blob");
                self.blobs.remove(&sha)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Fails when the catalog or the blob store cannot be reached now
    /// (`GET /readyz`).
    pub fn check_ready(&self) -> Result<(), RepoError> {
        self.catalog.stats()?;
        self.blobs.check()?;
        Ok(())
    }

    /// Checks a new object's fields before its bytes are read.
    pub fn check_new(&self, new: &NewObject) -> Result<(), RepoError> {
        validate_name(&new.name).map_err(RepoError::Invalid)?;
        validate_version(&new.version).map_err(RepoError::Invalid)?;
        self.urls
            .check_name_fits(&new.name)
            .map_err(RepoError::Invalid)?;
        if let Some(existing) = self
            .catalog
            .history(&new.name)?
            .into_iter()
            .find(|r| r.version == new.version)
            // A damaged object may be uploaded again (`Upload::finish`
            // checks that the content is the same).
            && existing.damaged.is_none()
        {
            return Err(RepoError::Conflict(format!(
                "{} {} already exists (object {})",
                new.name, new.version, existing.id
            )));
        }
        Ok(())
    }

    /// Refuses a new blob of `size` bytes that would take what is stored
    /// past the quota (content already stored costs nothing). Called with
    /// the commit lock held.
    fn check_quota_at_commit(&self, sha: &[u8; 32], size: u64) -> Result<(), RepoError> {
        let Some(quota) = self.limits.quota_bytes else {
            return Ok(());
        };
        if self.catalog.blob_referenced(&hex::encode(sha))? {
            return Ok(());
        }
        let stored = self.catalog.stats()?.stored_bytes;
        if stored.saturating_add(size) > quota {
            return Err(RepoError::TooLarge(format!(
                "upload exceeds the storage quota ({} bytes left after uploads that finished first)",
                quota.saturating_sub(stored)
            )));
        }
        Ok(())
    }

    /// Starts an upload: bytes are written to a temporary blob and hashed.
    pub fn begin_upload(&self) -> Result<Upload<'_>, RepoError> {
        let stored = self.catalog.stats()?.stored_bytes;
        let by_quota = self
            .limits
            .quota_bytes
            .map_or(u64::MAX, |q| q.saturating_sub(stored));
        let by_disk = self
            .blobs
            .available()?
            .saturating_sub(self.limits.min_free_bytes);
        Ok(Upload {
            repo: self,
            writer: Some(self.blobs.begin()?),
            hasher: Sha256::new(),
            size: 0,
            budget: by_quota.min(by_disk),
            quota_limited: by_quota <= by_disk,
            blocks: None,
        })
    }

    /// The object with this id.
    pub fn get(&self, id: &str) -> Result<ObjectRecord, RepoError> {
        self.catalog
            .get(id)?
            .ok_or_else(|| RepoError::NotFound(id.to_owned()))
    }

    /// The object with this id, unless withdrawn ([`RepoError::NotFound`])
    /// or damaged ([`RepoError::Damaged`]).
    pub fn get_served(&self, id: &str) -> Result<ObjectRecord, RepoError> {
        let record = self.get(id)?;
        if record.state == State::Withdrawn {
            return Err(RepoError::NotFound(id.to_owned()));
        }
        if let Some(damage) = &record.damaged {
            return Err(damaged_error(&record, damage));
        }
        Ok(record)
    }

    /// Objects matching `filter`, in publication order.
    pub fn list(&self, filter: &Filter) -> Result<Vec<ObjectRecord>, RepoError> {
        Ok(self.catalog.list(filter)?)
    }

    /// The versions of `name`, oldest first.
    pub fn history(&self, name: &str) -> Result<Vec<ObjectRecord>, RepoError> {
        Ok(self.catalog.history(name)?)
    }

    /// The latest active version of `name`.
    pub fn latest_active(&self, name: &str) -> Result<Option<ObjectRecord>, RepoError> {
        Ok(self
            .catalog
            .history(name)?
            .into_iter()
            .rev()
            .find(|r| r.state == State::Active))
    }

    /// Applies a patch.
    pub fn patch(&self, id: &str, patch: &ObjectPatch) -> Result<ObjectRecord, RepoError> {
        self.catalog
            .update(id, &mut |r| {
                if let Some(s) = patch.state {
                    r.state = s;
                }
                if let Some(p) = patch.priority {
                    r.priority = p;
                }
                if let Some(m) = &patch.metadata {
                    r.metadata = m.clone();
                }
            })?
            .ok_or_else(|| RepoError::NotFound(id.to_owned()))
    }

    /// Deletes an object (unless the delete veto refuses); its blob goes
    /// when no other object shares it. The id is never reused.
    pub fn delete(&self, id: &str) -> Result<ObjectRecord, RepoError> {
        let veto = self.veto.read().ok().and_then(|v| v.clone());
        if let Some(reason) = veto.and_then(|v| v.veto(id)) {
            return Err(RepoError::InUse(reason));
        }
        let _guard = self.commit_lock.lock();
        let sha256 = self.get(id)?.sha256;
        let _blob_lock = self.catalog.lock_blob(&sha256)?;
        let (record, unreferenced) = self
            .catalog
            .remove(id)?
            .ok_or_else(|| RepoError::NotFound(id.to_owned()))?;
        if unreferenced {
            self.blobs.remove(&sha_from_hex(&record.sha256)?)?;
        }
        Ok(record)
    }

    /// The FEC layout of an object of `size` bytes.
    fn plan(&self, size: u64) -> Result<Oti, RepoError> {
        Oti::for_object(
            self.limits.fec,
            size,
            self.limits.symbol_size,
            BlockSize::Bytes(self.limits.block_bytes),
        )
        .map_err(|e| RepoError::Invalid(format!("FEC layout: {e}")))
    }

    /// The FEC OTI of a record.
    pub fn oti(record: &ObjectRecord) -> Result<Oti, RepoError> {
        let scheme = FecScheme::from_encoding_id(record.fec.encoding_id)
            .map_err(|e| CatalogError::Corrupt(e.to_string()))?;
        let bytes =
            hex::decode(&record.fec.oti).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
        Ok(Oti::decode(scheme, &bytes).map_err(|e| CatalogError::Corrupt(e.to_string()))?)
    }

    /// The signed manifest of an object.
    pub fn manifest(&self, record: &ObjectRecord) -> Result<SignedManifest, RepoError> {
        self.sign(&self.manifest_body(record)?)
    }

    /// The unsigned manifest body of an object (no delta member).
    pub fn manifest_body(&self, record: &ObjectRecord) -> Result<ManifestBody, RepoError> {
        Ok(ManifestBody {
            id: record.id.clone(),
            name: record.name.clone(),
            version: record.version.clone(),
            size: record.size,
            sha256: sha_from_hex(&record.sha256)?,
            oti: Self::oti(record)?,
            block_sha256: record
                .block_sha256
                .iter()
                .map(|h| sha_from_hex(h))
                .collect::<Result<_, _>>()?,
            delta: None,
        })
    }

    /// Signs any manifest body with the origin's key.
    pub fn sign(&self, body: &ManifestBody) -> Result<SignedManifest, RepoError> {
        let key = self
            .key
            .as_ref()
            .ok_or_else(|| RepoError::Invalid("no signing key (read-only repository)".into()))?;
        body.sign(key)
            .map_err(|e| RepoError::Invalid(format!("signing: {e}")))
    }

    /// The FEC layout (stored form) and block hashes of `blob`, laid out
    /// like any object of its size.
    pub fn fec_of(&self, blob: &dyn BlobReader) -> Result<(FecInfo, Vec<String>), RepoError> {
        let oti = self.plan(blob.len())?;
        let blocks = block_hashes(blob, &oti)?;
        Ok((
            FecInfo {
                encoding_id: oti.scheme().encoding_id(),
                symbol_size: oti.symbol_size(),
                source_blocks: oti.source_blocks(),
                oti: hex::encode(&*oti.encode()),
            },
            blocks.iter().map(hex::encode).collect(),
        ))
    }

    /// Opens an object's bytes.
    pub fn open_blob(&self, record: &ObjectRecord) -> Result<Box<dyn BlobReader>, RepoError> {
        Ok(self.blobs.open(&sha_from_hex(&record.sha256)?)?)
    }

    fn info(&self, record: &ObjectRecord) -> Result<ObjectInfo, RepoError> {
        Ok(ObjectInfo {
            id: record.id.clone(),
            name: record.name.clone(),
            version: record.version.clone(),
            content_location: self.urls.uri(record),
            content_type: record.content_type.clone(),
            size: record.size,
            sha256: sha_from_hex(&record.sha256)?,
            created: UNIX_EPOCH + Duration::from_secs(record.created),
            oti: Self::oti(record)?,
            block_sha256: record
                .block_sha256
                .iter()
                .map(|h| sha_from_hex(h))
                .collect::<Result<_, _>>()?,
        })
    }
}

fn source_err(e: RepoError) -> SourceError {
    match e {
        RepoError::Io(e) => SourceError::Io(e),
        // The repair service answers these 503 with a Retry-After.
        RepoError::Catalog(CatalogError::Unavailable(m)) => {
            SourceError::Io(dms_repair::StoreUnavailable::io(format!("catalog: {m}")))
        }
        other => SourceError::Catalog(other.to_string()),
    }
}

impl ObjectSource for Repository {
    fn object(&self, id: &str) -> Result<Option<ObjectInfo>, SourceError> {
        match self.get_served(id) {
            Ok(r) => self.info(&r).map(Some).map_err(source_err),
            Err(RepoError::NotFound(_)) => Ok(None),
            Err(RepoError::Damaged(m)) => Err(SourceError::Damaged(m)),
            Err(e) => Err(source_err(e)),
        }
    }

    fn object_by_location(
        &self,
        content_location: &str,
    ) -> Result<Option<ObjectInfo>, SourceError> {
        let Some(id) = self.urls.id_of_location(content_location) else {
            return Ok(None);
        };
        Ok(self
            .object(id)?
            .filter(|info| info.content_location == content_location))
    }

    fn open(&self, object: &ObjectInfo) -> Result<Box<dyn BlobReader>, SourceError> {
        Ok(self.blobs.open(&object.sha256)?)
    }
}

/// An upload in progress: bytes are hashed as they are written to a
/// temporary blob. Dropped without [`Upload::finish`], it leaves nothing.
pub struct Upload<'a> {
    repo: &'a Repository,
    writer: Option<Box<dyn BlobWriter>>,
    hasher: Sha256,
    size: u64,
    budget: u64,
    quota_limited: bool,
    blocks: Option<BlockHasher>,
}

impl std::fmt::Debug for Upload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").field("size", &self.size).finish()
    }
}

impl Upload<'_> {
    /// The refusal of an upload of `size` bytes past the budget: 413 for
    /// the quota, 507 for the disk.
    fn over_budget(&self, size: u64) -> RepoError {
        if self.quota_limited {
            RepoError::TooLarge(format!(
                "{size} bytes exceed the storage quota ({} bytes left)",
                self.budget
            ))
        } else {
            RepoError::NoSpace(format!(
                "{size} bytes exceed the free disk space ({} bytes usable)",
                self.budget
            ))
        }
    }

    /// Appends bytes; fails once the quota or the free disk space is exceeded.
    pub fn write(&mut self, buf: &[u8]) -> Result<(), RepoError> {
        self.size += buf.len() as u64;
        if self.size > self.budget {
            return Err(self.over_budget(self.size));
        }
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| RepoError::Invalid("upload already finished".into()))?;
        writer.write(buf)?;
        self.hasher.update(buf);
        if let Some(blocks) = &mut self.blocks {
            blocks.update(buf)?;
        }
        Ok(())
    }

    /// Takes the size the client declared (Content-Length): refuses at
    /// once a size over the quota or the disk, and otherwise plans the FEC
    /// layout now, so block hashes are computed while the bytes are written
    /// (no second read of the blob).
    pub fn declare_size(&mut self, len: u64) -> Result<(), RepoError> {
        if len > self.budget {
            return Err(self.over_budget(len));
        }
        if len > 0 && self.size == 0 {
            let oti = self.repo.plan(len)?;
            self.blocks = Some(BlockHasher::new(oti));
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Computes the FEC layout and block hashes, makes the blob durable,
    /// then commits the catalog record.
    pub fn finish(mut self, new: NewObject) -> Result<ObjectRecord, RepoError> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| RepoError::Invalid("upload already finished".into()))?;
        if self.size == 0 {
            return Err(RepoError::Invalid("empty object".into()));
        }
        let sha: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        let (oti, block_sha256) = match self.blocks.take() {
            Some(blocks) => blocks.finish(self.size)?,
            None => {
                let oti = self.repo.plan(self.size)?;
                (oti, block_hashes(&*writer.reader()?, &oti)?)
            }
        };
        let record = ObjectRecord {
            id: hex::encode(rand::random::<[u8; 16]>()),
            name: new.name,
            version: new.version,
            kind: new.kind,
            content_type: new.content_type,
            size: self.size,
            sha256: hex::encode(sha),
            priority: new.priority,
            created: now_secs(),
            seq: 0,
            state: State::Active,
            metadata: new.metadata,
            fec: FecInfo {
                encoding_id: oti.scheme().encoding_id(),
                symbol_size: oti.symbol_size(),
                source_blocks: oti.source_blocks(),
                oti: hex::encode(&*oti.encode()),
            },
            block_sha256: block_sha256.iter().map(hex::encode).collect(),
            damaged: None,
        };
        let _guard = self.repo.commit_lock.lock();
        let hex_sha = hex::encode(sha);
        // Held until the row is committed: no other instance removes this
        // blob between its commit here and the catalog insert.
        let _blob_lock = self.repo.catalog.lock_blob(&hex_sha)?;
        let same_version = self
            .repo
            .catalog
            .history(&record.name)?
            .into_iter()
            .find(|r| r.version == record.version);
        if let Some(existing) = &same_version
            && (existing.damaged.is_none() || existing.sha256 != hex_sha)
        {
            return Err(RepoError::Conflict(format!(
                "{} {} already exists (object {}){}",
                existing.name,
                existing.version,
                existing.id,
                if existing.damaged.is_some() {
                    "; it is damaged, and only its own content may be uploaded again"
                } else {
                    ""
                }
            )));
        }
        let damaged_blob = self
            .repo
            .catalog
            .list(&Filter::default())?
            .iter()
            .any(|r| r.sha256 == hex_sha && r.damaged.is_some());
        if damaged_blob {
            // The bytes just hashed are the content the damaged objects
            // name: they replace the damaged blob, and those objects are
            // served again.
            writer.commit_replacing(&sha)?;
            let ids = self.repo.catalog.set_damage(&hex_sha, None)?;
            tracing::info!(sha256 = %hex_sha, objects = ?ids, "damaged blob uploaded again");
            if let Some(existing) = same_version {
                return self.repo.get(&existing.id);
            }
        } else {
            // Uploads that began together each saw the whole quota left: the
            // last word is here, where commits are serialised.
            self.repo.check_quota_at_commit(&sha, self.size)?;
            writer.commit(&sha)?;
        }
        match self.repo.catalog.insert(record) {
            Ok(record) => Ok(record),
            Err(e) => {
                if !self.repo.catalog.blob_referenced(&hex::encode(sha))? {
                    self.repo.blobs.remove(&sha)?;
                }
                Err(match e {
                    CatalogError::VersionExists { .. } => RepoError::Conflict(e.to_string()),
                    other => RepoError::Catalog(other),
                })
            }
        }
    }
}

/// Hashes source blocks as the bytes stream by, for a known size.
struct BlockHasher {
    oti: Oti,
    layout: dms_fec::Layout,
    sbn: u32,
    pos: u64,
    hasher: Sha256,
    done: Vec<[u8; 32]>,
}

impl BlockHasher {
    fn new(oti: Oti) -> Self {
        let layout = oti.layout();
        Self {
            oti,
            layout,
            sbn: 0,
            pos: 0,
            hasher: Sha256::new(),
            done: Vec::new(),
        }
    }

    fn update(&mut self, mut buf: &[u8]) -> Result<(), RepoError> {
        while !buf.is_empty() {
            let Some(range) = self.layout.block_range(self.sbn) else {
                return Err(RepoError::Invalid(
                    "body is longer than its Content-Length".into(),
                ));
            };
            let take = ((range.end - self.pos) as usize).min(buf.len());
            self.hasher.update(&buf[..take]);
            self.pos += take as u64;
            buf = &buf[take..];
            if self.pos == range.end {
                self.done
                    .push(std::mem::take(&mut self.hasher).finalize().into());
                self.sbn += 1;
            }
        }
        Ok(())
    }

    fn finish(self, size: u64) -> Result<(Oti, Vec<[u8; 32]>), RepoError> {
        if size != self.oti.transfer_length()
            || self.done.len() != self.layout.block_count() as usize
        {
            return Err(RepoError::Invalid(
                "body length differs from its Content-Length".into(),
            ));
        }
        Ok((self.oti, self.done))
    }
}

/// SHA-256 of each source block of `oti`'s layout, read from `blob`.
pub fn block_hashes(blob: &dyn BlobReader, oti: &Oti) -> Result<Vec<[u8; 32]>, RepoError> {
    let layout = oti.layout();
    let mut buf = vec![0u8; 256 << 10];
    let mut out = Vec::with_capacity(layout.block_count() as usize);
    for sbn in 0..layout.block_count() {
        let Some(range) = layout.block_range(sbn) else {
            break;
        };
        let mut hasher = Sha256::new();
        let mut pos = range.start;
        while pos < range.end {
            let n = ((range.end - pos) as usize).min(buf.len());
            blob.read_exact_at(&mut buf[..n], pos)?;
            hasher.update(&buf[..n]);
            pos += n as u64;
        }
        out.push(hasher.finalize().into());
    }
    Ok(out)
}
