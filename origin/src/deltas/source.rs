//! The download and repair service's view of deltas: each delta is an
//! object of its own (by id and by Content-Location, so downloads and
//! symbol repair work for it like for any object), and the target's
//! download answers `?from=` with it.

use std::io;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use dms_repair::{BlobReader, DeltaBlob, ObjectInfo, ObjectSource, OpenDelta, SourceError};

use super::{DeltaRecord, DeltaStore};
use crate::repo::{RepoError, Repository};

/// An [`ObjectSource`] that adds the stored deltas to the repository.
pub struct DeltaSource {
    repo: Arc<Repository>,
    store: Arc<DeltaStore>,
}

impl std::fmt::Debug for DeltaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaSource")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

fn source_err(e: RepoError) -> SourceError {
    match e {
        RepoError::Io(e) => SourceError::Io(e),
        other => SourceError::Catalog(other.to_string()),
    }
}

impl DeltaSource {
    /// Wraps `repo`.
    pub fn new(repo: Arc<Repository>, store: Arc<DeltaStore>) -> Self {
        Self { repo, store }
    }

    /// The delta `id` as an object, when its target is served.
    fn delta_info(&self, id: &str) -> Result<Option<(ObjectInfo, DeltaRecord)>, RepoError> {
        let Some((rec, target)) = self.store.served(&self.repo, id)? else {
            return Ok(None);
        };
        let object = rec.as_object(&target, self.repo.urls());
        let oti = Repository::oti(&object)?;
        let hash = |h: &str| {
            super::parse_sha(h).ok_or_else(|| RepoError::Invalid(format!("bad hash {h}")))
        };
        let info = ObjectInfo {
            id: object.id.clone(),
            name: object.name.clone(),
            version: object.version.clone(),
            content_location: self.repo.urls().uri(&object),
            content_type: object.content_type.clone(),
            size: object.size,
            sha256: hash(&object.sha256)?,
            created: UNIX_EPOCH + Duration::from_secs(object.created),
            oti,
            block_sha256: object
                .block_sha256
                .iter()
                .map(|h| hash(h))
                .collect::<Result<_, _>>()?,
        };
        Ok(Some((info, rec)))
    }
}

impl ObjectSource for DeltaSource {
    fn object(&self, id: &str) -> Result<Option<ObjectInfo>, SourceError> {
        if let Some(info) = self.repo.object(id)? {
            return Ok(Some(info));
        }
        Ok(self.delta_info(id).map_err(source_err)?.map(|(i, _)| i))
    }

    fn object_by_location(
        &self,
        content_location: &str,
    ) -> Result<Option<ObjectInfo>, SourceError> {
        if let Some(info) = self.repo.object_by_location(content_location)? {
            return Ok(Some(info));
        }
        let Some(id) = self.repo.urls().id_of_location(content_location) else {
            return Ok(None);
        };
        Ok(self
            .object(id)?
            .filter(|info| info.content_location == content_location))
    }

    fn open(&self, object: &ObjectInfo) -> Result<Box<dyn BlobReader>, SourceError> {
        if let Some(rec) = self.store.record(&object.id).map_err(source_err)?
            && hex::encode(object.sha256) == rec.sha256
        {
            return self.store.open_delta(&rec).map_err(source_err);
        }
        self.repo.open(object)
    }

    fn delta_from(
        &self,
        object: &ObjectInfo,
        base_sha256: &[u8; 32],
    ) -> Result<Option<OpenDelta>, SourceError> {
        let Some(delta) = self.store.find(&object.sha256, base_sha256)? else {
            return Ok(None);
        };
        let reader = match self.store.open_stored(&delta) {
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
            reader,
        )))
    }
}
