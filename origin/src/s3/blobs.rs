//! The blob store on S3: `PREFIX/blobs/ab/abcd…`, uploads as multipart
//! uploads to `PREFIX/tmp/`, copied to their hash on commit.
//!
//! An upload is streamed in parts of [`PART_BYTES`], at most
//! [`PARTS_IN_FLIGHT`] of them on the wire at once: memory per upload is
//! bounded by a few parts whatever the object's size. A multipart upload
//! is invisible until it is completed; a completed one sits under `tmp/`
//! (never listed as a blob) until the commit copies it to its hash, and
//! the catalog row is committed only after that copy.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use dms_repair::BlobReader;

use super::{Bridge, S3Bucket, store_error};
use crate::blob::{BlobStore, BlobWriter};

/// Bytes per multipart part (S3 wants at least 5 MiB but for the last).
pub const PART_BYTES: usize = 8 << 20;

/// Parts being sent at once per upload.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Unfinished uploads younger than this are left alone by
/// [`BlobStore::clean_partial`]: another instance may be writing them.
pub const PARTIAL_GRACE: Duration = Duration::from_secs(3600);

/// Blobs in an S3 bucket.
#[derive(Debug)]
pub struct S3BlobStore {
    bucket: S3Bucket,
    partial_grace: Duration,
}

impl S3BlobStore {
    /// The blob store in `bucket`.
    pub fn new(bucket: S3Bucket) -> Self {
        Self {
            bucket,
            partial_grace: PARTIAL_GRACE,
        }
    }

    /// Changes how old an unfinished upload must be before
    /// [`BlobStore::clean_partial`] removes it (`dms gc --min-age`).
    pub fn with_partial_grace(mut self, grace: Duration) -> Self {
        self.partial_grace = grace;
        self
    }

    fn key_of(&self, sha256: &[u8; 32]) -> StorePath {
        blob_key(&self.bucket, sha256)
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        self.bucket.store.clone()
    }
}

/// The key of the blob whose SHA-256 is `sha256`: `PREFIX/blobs/ab/abcd…`.
pub(crate) fn blob_key(bucket: &S3Bucket, sha256: &[u8; 32]) -> StorePath {
    let hex = hex::encode(sha256);
    bucket.location.key(&format!("blobs/{}/{hex}", &hex[..2]))
}

/// True when the object at `key` exists.
pub(crate) fn exists(bucket: &S3Bucket, key: &StorePath) -> io::Result<bool> {
    let store = bucket.store.clone();
    let key = key.clone();
    bucket.bridge.run(async move {
        match store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(store_error(e)),
        }
    })?
}

/// Opens the object at `key` for range reads (its length read now).
pub(crate) fn open_reader(bucket: &S3Bucket, key: StorePath) -> io::Result<S3Reader> {
    let store = bucket.store.clone();
    let head_key = key.clone();
    let len = bucket
        .bridge
        .run(async move { store.head(&head_key).await.map_err(store_error) })??
        .size;
    Ok(S3Reader {
        store: bucket.store.clone(),
        bridge: bucket.bridge.clone(),
        key,
        len,
    })
}

/// Removes the object at `key` (no error when absent).
pub(crate) fn delete(bucket: &S3Bucket, key: StorePath) -> io::Result<()> {
    let store = bucket.store.clone();
    bucket.bridge.run(async move {
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    })?
}

/// Every object under `prefix`, with its size and age.
pub(crate) fn list(
    bucket: &S3Bucket,
    prefix: StorePath,
) -> io::Result<Vec<object_store::ObjectMeta>> {
    let store = bucket.store.clone();
    bucket.bridge.run(async move {
        let mut out = Vec::new();
        let mut listing = store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            out.push(meta.map_err(store_error)?);
        }
        Ok(out)
    })?
}

impl BlobStore for S3BlobStore {
    fn begin(&self) -> io::Result<Box<dyn BlobWriter>> {
        let tmp = self.bucket.location.key(&format!(
            "tmp/upload-{}",
            hex::encode(rand::random::<[u8; 16]>())
        ));
        let store = self.store();
        let key = tmp.clone();
        let upload = self
            .bucket
            .bridge
            .run(async move { store.put_multipart(&key).await.map_err(store_error) })??;
        Ok(Box::new(S3BlobWriter {
            bucket: self.bucket.clone(),
            tmp,
            state: Mutex::new(WriterState::Writing {
                upload: WriteMultipart::new_with_chunk_size(upload, PART_BYTES),
                since_wait: 0,
            }),
        }))
    }

    fn open(&self, sha256: &[u8; 32]) -> io::Result<Box<dyn BlobReader>> {
        Ok(Box::new(open_reader(&self.bucket, self.key_of(sha256))?))
    }

    fn remove(&self, sha256: &[u8; 32]) -> io::Result<()> {
        delete(&self.bucket, self.key_of(sha256))
    }

    fn list(&self) -> io::Result<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        for meta in list(&self.bucket, self.bucket.location.key("blobs"))? {
            let mut sha = [0u8; 32];
            if let Some(name) = meta.location.filename()
                && hex::decode_to_slice(name, &mut sha).is_ok()
            {
                out.push(sha);
            }
        }
        Ok(out)
    }

    fn clean_partial(&self) -> io::Result<()> {
        let now = SystemTime::now();
        for meta in list(&self.bucket, self.bucket.location.key("tmp"))? {
            let modified = SystemTime::from(meta.last_modified);
            let age = now.duration_since(modified).unwrap_or_default();
            if age >= self.partial_grace {
                tracing::info!(key = %meta.location, "removing an unfinished upload");
                delete(&self.bucket, meta.location)?;
            }
        }
        Ok(())
    }

    fn available(&self) -> io::Result<u64> {
        // An object store has no disk to fill; the quota still applies.
        Ok(u64::MAX)
    }

    fn check(&self) -> io::Result<()> {
        self.bucket.check()
    }

    fn sweeps_on_open(&self) -> bool {
        false
    }
}

/// Range reads of one S3 object: each `read_at` is one ranged GET.
pub(crate) struct S3Reader {
    store: Arc<dyn ObjectStore>,
    bridge: Arc<Bridge>,
    key: StorePath,
    len: u64,
}

impl std::fmt::Debug for S3Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Reader")
            .field("key", &self.key)
            .field("len", &self.len)
            .finish()
    }
}

impl BlobReader for S3Reader {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let end = self.len.min(offset + buf.len() as u64);
        let store = self.store.clone();
        let key = self.key.clone();
        let bytes = self.bridge.run(async move {
            store
                .get_range(&key, offset..end)
                .await
                .map_err(store_error)
        })??;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }
}

enum WriterState {
    /// Parts are being sent.
    Writing {
        upload: WriteMultipart,
        /// Bytes buffered since the last wait for a free part slot.
        since_wait: usize,
    },
    /// The multipart upload is complete: the bytes sit at the temp key.
    Completed,
    /// Failed or taken.
    Gone,
}

struct S3BlobWriter {
    bucket: S3Bucket,
    tmp: StorePath,
    state: Mutex<WriterState>,
}

impl S3BlobWriter {
    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, WriterState>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("S3 upload state poisoned"))
    }

    /// Completes the multipart upload (once): the bytes become the temp
    /// object, which readers can then range-read.
    fn complete(&self) -> io::Result<()> {
        let mut state = self.lock()?;
        match std::mem::replace(&mut *state, WriterState::Gone) {
            WriterState::Writing { upload, .. } => {
                self.bucket
                    .bridge
                    .run(async move { upload.finish().await.map_err(store_error) })??;
                *state = WriterState::Completed;
                Ok(())
            }
            WriterState::Completed => {
                *state = WriterState::Completed;
                Ok(())
            }
            WriterState::Gone => Err(io::Error::other("the upload failed earlier")),
        }
    }

    fn key_of(&self, sha256: &[u8; 32]) -> StorePath {
        blob_key(&self.bucket, sha256)
    }

    /// Completes the upload and copies it to its hash (unless a blob of
    /// that hash exists and `replace` is false), then removes the temp object.
    fn persist(&self, sha256: &[u8; 32], replace: bool) -> io::Result<()> {
        self.complete()?;
        let target = self.key_of(sha256);
        if replace || !exists(&self.bucket, &target)? {
            let store = self.bucket.store.clone();
            let from = self.tmp.clone();
            let to = target.clone();
            self.bucket
                .bridge
                .run(async move { store.copy(&from, &to).await.map_err(store_error) })??;
        }
        if let Ok(mut state) = self.lock() {
            *state = WriterState::Gone;
        }
        if let Err(e) = delete(&self.bucket, self.tmp.clone()) {
            // Harmless: a later clean-up removes it.
            tracing::warn!(key = %self.tmp, "cannot remove the upload's temp object: {e}");
        }
        Ok(())
    }
}

impl BlobWriter for S3BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        let bridge = self.bucket.bridge.clone();
        let mut state = self.lock()?;
        let WriterState::Writing { upload, since_wait } = &mut *state else {
            return Err(io::Error::other("the upload is no longer being written"));
        };
        {
            // Filling a part starts its upload as a task of the bridge's runtime.
            let _context = bridge.enter()?;
            upload.write(buf);
        }
        *since_wait += buf.len();
        if *since_wait < PART_BYTES {
            return Ok(());
        }
        *since_wait = 0;
        // Back-pressure: wait until fewer than PARTS_IN_FLIGHT parts are
        // on the wire, so memory stays a few parts whatever the size.
        let WriterState::Writing { mut upload, .. } =
            std::mem::replace(&mut *state, WriterState::Gone)
        else {
            return Err(io::Error::other("the upload is no longer being written"));
        };
        let (upload, result) = bridge.run(async move {
            let result = upload.wait_for_capacity(PARTS_IN_FLIGHT).await;
            (upload, result)
        })?;
        match result {
            Ok(()) => {
                *state = WriterState::Writing {
                    upload,
                    since_wait: 0,
                };
                Ok(())
            }
            Err(e) => {
                bridge.detach(async move {
                    let _ = upload.abort().await;
                });
                Err(store_error(e))
            }
        }
    }

    fn reader(&self) -> io::Result<Box<dyn BlobReader>> {
        self.complete()?;
        Ok(Box::new(open_reader(&self.bucket, self.tmp.clone())?))
    }

    fn commit(self: Box<Self>, sha256: &[u8; 32]) -> io::Result<()> {
        self.persist(sha256, false)
    }

    fn commit_replacing(self: Box<Self>, sha256: &[u8; 32]) -> io::Result<()> {
        self.persist(sha256, true)
    }
}

impl Drop for S3BlobWriter {
    fn drop(&mut self) {
        // Not committed: abort the multipart upload, or remove the
        // completed temp object; nothing of it stays visible.
        let state = match self.state.get_mut() {
            Ok(state) => std::mem::replace(state, WriterState::Gone),
            Err(_) => return,
        };
        match state {
            WriterState::Writing { upload, .. } => self.bucket.bridge.detach(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!("cannot abort an S3 multipart upload: {e}");
                }
            }),
            WriterState::Completed => {
                let store = self.bucket.store.clone();
                let tmp = self.tmp.clone();
                self.bucket.bridge.detach(async move {
                    let _ = store.delete(&tmp).await;
                });
            }
            WriterState::Gone => {}
        }
    }
}
