//! `dms serve --download-redirect`: downloads answered with a redirect to
//! a short-lived presigned GET URL of the blob in the bucket (SigV4 query
//! signing, done locally by `object_store`: no request to the store), so
//! object bytes flow from the store and not through the origin. The
//! client sends its `Range` to that URL again; what it gets is still
//! checked against the signed manifest.
//!
//! Only stored objects are redirected (their bytes are at
//! `PREFIX/blobs/ab/abcd…`); deltas, served under ids of their own, are
//! served by the origin as before.

use std::sync::Arc;
use std::time::Duration;

use dms_repair::{BlobReader, ObjectInfo, ObjectSource, OpenDelta, SourceError};
use object_store::signer::Signer;

use super::S3Bucket;
use super::blobs::blob_key;
use crate::repo::Repository;

/// How long a presigned URL is valid by default.
pub const DEFAULT_REDIRECT_EXPIRY: Duration = Duration::from_secs(300);

/// The longest validity SigV4 allows a presigned URL (7 days).
pub const MAX_REDIRECT_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// An [`ObjectSource`] that is `inner` but for
/// [`ObjectSource::download_redirect`]: a presigned URL of the object's
/// blob in `bucket`, valid for `expiry`.
pub struct RedirectSource {
    inner: Arc<dyn ObjectSource>,
    repo: Arc<Repository>,
    bucket: S3Bucket,
    expiry: Duration,
}

impl std::fmt::Debug for RedirectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedirectSource")
            .field("bucket", &self.bucket.location)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

impl RedirectSource {
    /// Redirects downloads of `repo`'s objects to `bucket`, the rest as
    /// `inner` does.
    pub fn new(
        inner: Arc<dyn ObjectSource>,
        repo: Arc<Repository>,
        bucket: S3Bucket,
        expiry: Duration,
    ) -> Self {
        Self {
            inner,
            repo,
            bucket,
            expiry,
        }
    }
}

impl ObjectSource for RedirectSource {
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
        self.inner.delta_from(object, base_sha256)
    }

    fn download_redirect(&self, object: &ObjectInfo) -> Result<Option<String>, SourceError> {
        // A stored object (not a delta's id) with these bytes.
        match self.repo.object(&object.id)? {
            Some(stored) if stored.sha256 == object.sha256 => {}
            _ => return Ok(None),
        }
        let signer = self.bucket.signer.clone();
        let key = blob_key(&self.bucket, &object.sha256);
        let expiry = self.expiry;
        let url = self
            .bucket
            .bridge
            .run(async move {
                signer
                    .signed_url(axum::http::Method::GET, &key, expiry)
                    .await
            })?
            .map_err(super::store_error)?;
        Ok(Some(url.to_string()))
    }
}
