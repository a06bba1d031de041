//! The content-addressed blob store: object bytes keyed by their SHA-256.
//!
//! Behind a trait so that a later store (an S3-compatible one) can replace
//! the local directory; nothing outside this module assumes a local path.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use dms_repair::{BlobReader, FileBlob};

/// Where object bytes live, keyed by SHA-256.
pub trait BlobStore: Send + Sync + 'static {
    /// Starts writing a new blob (its key is known only at the end).
    fn begin(&self) -> io::Result<Box<dyn BlobWriter>>;
    /// Opens the blob with this hash.
    fn open(&self, sha256: &[u8; 32]) -> io::Result<Box<dyn BlobReader>>;
    /// Removes the blob with this hash (no error if it is absent).
    fn remove(&self, sha256: &[u8; 32]) -> io::Result<()>;
    /// Every stored blob's hash.
    fn list(&self) -> io::Result<Vec<[u8; 32]>>;
    /// Removes unfinished writes left by a crash.
    fn clean_partial(&self) -> io::Result<()>;
    /// Bytes still free for blobs on the underlying storage.
    fn available(&self) -> io::Result<u64>;
}

/// A blob being written. Dropping it without [`BlobWriter::commit`]
/// discards what was written.
pub trait BlobWriter: Send {
    /// Appends bytes.
    fn write(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Reads back what was written so far (for hashing after the fact).
    fn reader(&self) -> io::Result<Box<dyn BlobReader>>;
    /// Makes the blob durable under `sha256`. When a blob with that hash
    /// already exists, the new bytes are dropped (identical content is
    /// stored once).
    fn commit(self: Box<Self>, sha256: &[u8; 32]) -> io::Result<()>;
    /// Makes the blob durable under `sha256`, replacing a blob already
    /// stored under it (one a scrub found damaged). A store that cannot
    /// replace atomically says so (the default).
    fn commit_replacing(self: Box<Self>, sha256: &[u8; 32]) -> io::Result<()> {
        let _ = sha256;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this blob store cannot replace a damaged blob",
        ))
    }
}

/// Blobs in a local directory: `ROOT/ab/abcdef…` (the hex hash, fanned out
/// by its first byte), unfinished writes in `ROOT/tmp/`.
#[derive(Debug)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join("tmp"))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    fn path_of(&self, sha256: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(sha256);
        self.root.join(&hex[..2]).join(hex)
    }
}

/// Fsyncs a directory, so that a rename or a new entry in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl BlobStore for LocalBlobStore {
    fn begin(&self) -> io::Result<Box<dyn BlobWriter>> {
        let temp = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(self.root.join("tmp"))?;
        Ok(Box::new(LocalBlobWriter {
            temp,
            root: self.root.clone(),
            final_path: None,
        }))
    }

    fn open(&self, sha256: &[u8; 32]) -> io::Result<Box<dyn BlobReader>> {
        Ok(Box::new(FileBlob::open(&self.path_of(sha256))?))
    }

    fn remove(&self, sha256: &[u8; 32]) -> io::Result<()> {
        let path = self.path_of(sha256);
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn list(&self) -> io::Result<Vec<[u8; 32]>> {
        let mut out = Vec::new();
        for fan in fs::read_dir(&self.root)? {
            let fan = fan?;
            let fan_name = fan.file_name();
            let Some(fan_name) = fan_name.to_str() else {
                continue;
            };
            if fan_name.len() != 2 || !fan.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(fan.path())? {
                let entry = entry?;
                let mut sha = [0u8; 32];
                let name = entry.file_name();
                if let Some(name) = name.to_str()
                    && hex::decode_to_slice(name, &mut sha).is_ok()
                {
                    out.push(sha);
                }
            }
        }
        Ok(out)
    }

    fn clean_partial(&self) -> io::Result<()> {
        for entry in fs::read_dir(self.root.join("tmp"))? {
            let path = entry?.path();
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), "cannot remove partial upload: {e}");
            }
        }
        Ok(())
    }

    fn available(&self) -> io::Result<u64> {
        let stat = nix::sys::statvfs::statvfs(&self.root).map_err(io::Error::from)?;
        Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
    }
}

struct LocalBlobWriter {
    temp: tempfile::NamedTempFile,
    root: PathBuf,
    final_path: Option<PathBuf>,
}

impl BlobWriter for LocalBlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        self.temp.as_file_mut().write_all(buf)
    }

    fn reader(&self) -> io::Result<Box<dyn BlobReader>> {
        Ok(Box::new(FileBlob::open(self.temp.path())?))
    }

    fn commit(self: Box<Self>, sha256: &[u8; 32]) -> io::Result<()> {
        (*self).persist(sha256, false)
    }

    fn commit_replacing(self: Box<Self>, sha256: &[u8; 32]) -> io::Result<()> {
        (*self).persist(sha256, true)
    }
}

impl LocalBlobWriter {
    /// Renames the temp file to its hash (atomically over an existing one
    /// with `replace`), fsyncing the file and the directories.
    fn persist(mut self, sha256: &[u8; 32], replace: bool) -> io::Result<()> {
        let hex = hex::encode(sha256);
        let fan = self.root.join(&hex[..2]);
        let path = fan.join(&hex);
        self.final_path = Some(path.clone());
        if !replace && path.exists() {
            // Identical content is already durable; the temp file goes away on drop.
            return Ok(());
        }
        let new_fan = !fan.exists();
        fs::create_dir_all(&fan)?;
        if new_fan {
            sync_dir(&self.root)?;
        }
        self.temp.as_file_mut().sync_all()?;
        self.temp.persist(&path).map_err(|e| e.error)?;
        sync_dir(&fan)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn blobs_are_stored_once_by_hash_and_partial_writes_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let sha: [u8; 32] = Sha256::digest(b"hello").into();
        for _ in 0..2 {
            let mut w = store.begin().unwrap();
            w.write(b"hel").unwrap();
            w.write(b"lo").unwrap();
            w.commit(&sha).unwrap();
        }
        assert_eq!(store.list().unwrap(), vec![sha]);
        let r = store.open(&sha).unwrap();
        let mut buf = [0u8; 5];
        r.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello");
        // An abandoned write leaves nothing behind.
        let mut w = store.begin().unwrap();
        w.write(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        store.remove(&sha).unwrap();
        assert!(store.list().unwrap().is_empty());
        assert!(store.available().unwrap() > 0);
    }
}
