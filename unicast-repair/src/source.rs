//! The object-source seam between the repository (the origin) and the
//! unicast download and repair service.
//!
//! Everything here is blocking: implementations read a catalog and files.
//! An async server calls them from a blocking thread pool.

use std::io;
use std::time::SystemTime;

use dms_fec::Oti;

/// What the download and repair service needs to know of one stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's id, as it appears in its unicast `uri`
    /// (`{base}/dl/{id}/{file_name}`). Ids are never reused, so that URL
    /// names immutable bytes and caches may keep it for ever.
    pub id: String,
    /// The object's name (as published).
    pub name: String,
    /// The object's version (as published).
    pub version: String,
    /// The FDT Content-Location the object has in broadcast sessions; the
    /// `fileURI` of a repair request names the object by it.
    pub content_location: String,
    /// MIME type served as `Content-Type`.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the whole object (the `ETag` is made from it).
    pub sha256: [u8; 32],
    /// When the object was stored (served as `Last-Modified`).
    pub created: SystemTime,
    /// The FEC layout the object is broadcast with; symbol repair answers in
    /// this layout, so the symbols fit what receivers already hold.
    pub oti: Oti,
    /// SHA-256 of each source block, in SBN order (the signed manifest's
    /// block hashes); empty when the source does not know them.
    pub block_sha256: Vec<[u8; 32]>,
}

/// Positional reads of one object's bytes.
///
/// Positional (not a cursor) so that one open object can serve many
/// concurrent range and symbol requests without locking.
pub trait BlobReader: Send + Sync {
    /// The object's length in bytes.
    fn len(&self) -> u64;

    /// True for an empty object.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were
    /// read (0 at or past the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Fills `buf` from `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A [`BlobReader`] over a local file.
#[derive(Debug)]
pub struct FileBlob {
    file: std::fs::File,
    len: u64,
}

impl FileBlob {
    /// Opens `path` read-only.
    pub fn open(path: &std::path::Path) -> io::Result<Self> {
        Self::from_file(std::fs::File::open(path)?)
    }

    /// Reads an open file (an unnamed temporary file, say); its length is
    /// taken now.
    pub fn from_file(file: std::fs::File) -> io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(Self { file, len })
    }
}

impl BlobReader for FileBlob {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(&self.file, buf, offset)
    }
}

/// The error inside an [`io::Error`] of a remote store (S3) that could
/// not be reached or answered with a server error: the service answers
/// 503 with a `Retry-After` rather than 500, since the same request works
/// once the store is back.
#[derive(Debug, thiserror::Error)]
#[error("object store unavailable: {0}")]
pub struct StoreUnavailable(pub String);

impl StoreUnavailable {
    /// An [`io::Error`] carrying this marker.
    pub fn io(message: impl Into<String>) -> io::Error {
        io::Error::other(StoreUnavailable(message.into()))
    }
}

/// True when `e` (or the error it wraps) is a [`StoreUnavailable`].
pub fn is_store_unavailable(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<StoreUnavailable>())
}

/// An error of an [`ObjectSource`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Reading the blob store failed.
    #[error("object store I/O: {0}")]
    Io(#[from] io::Error),
    /// The catalog could not be read.
    #[error("catalog: {0}")]
    Catalog(String),
    /// The object's stored bytes are damaged (a scrub found them so): it
    /// is refused until it is uploaded again.
    #[error("{0}")]
    Damaged(String),
}

/// Where the download and repair service finds objects. The origin
/// implements it over its catalog and blob store.
///
/// Objects that must not be served (withdrawn, or not yet durable) are
/// simply not found.
pub trait ObjectSource: Send + Sync + 'static {
    /// The object with this id.
    fn object(&self, id: &str) -> Result<Option<ObjectInfo>, SourceError>;

    /// The object whose broadcast Content-Location is `content_location`.
    fn object_by_location(&self, content_location: &str)
    -> Result<Option<ObjectInfo>, SourceError>;

    /// Opens the object's bytes.
    fn open(&self, object: &ObjectInfo) -> Result<Box<dyn BlobReader>, SourceError>;

    /// A stored delta that turns the version whose SHA-256 is
    /// `base_sha256` into `object`, with its bytes open; `None` (the
    /// default) when there is none, and then the full object is served.
    fn delta_from(
        &self,
        object: &ObjectInfo,
        base_sha256: &[u8; 32],
    ) -> Result<Option<OpenDelta>, SourceError> {
        let _ = (object, base_sha256);
        Ok(None)
    }

    /// Where a client may GET `object`'s bytes straight from the blob
    /// store (a short-lived presigned URL) instead of through this
    /// service: the download is then answered with a redirect there.
    /// `None` (the default) serves the bytes here.
    fn download_redirect(&self, object: &ObjectInfo) -> Result<Option<String>, SourceError> {
        let _ = object;
        Ok(None)
    }
}

/// A stored delta and its bytes, opened.
pub type OpenDelta = (DeltaBlob, Box<dyn BlobReader>);

/// A stored delta between two versions of an object (see
/// [`ObjectSource::delta_from`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaBlob {
    /// SHA-256 of the version the delta applies to.
    pub base_sha256: [u8; 32],
    /// Size of the delta in bytes.
    pub size: u64,
    /// SHA-256 of the delta's bytes.
    pub sha256: [u8; 32],
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use std::io::Write;

    #[test]
    fn file_blob_reads_at_offsets_and_reports_eof() {
        let dir = std::env::temp_dir().join(format!("dms-repair-blob-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("blob");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(b"0123456789")
            .unwrap();
        let blob = FileBlob::open(&path).unwrap();
        assert_eq!(blob.len(), 10);
        let mut buf = [0u8; 4];
        blob.read_exact_at(&mut buf, 3).unwrap();
        assert_eq!(&buf, b"3456");
        let err = blob.read_exact_at(&mut buf, 8).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
