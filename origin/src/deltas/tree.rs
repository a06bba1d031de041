//! Where the delta store keeps its files: a [`DeltaTree`] of small records
//! and delta bytes under relative keys (`T/B-D`, `records/I.json`), either
//! the local directory `DATA/deltas` ([`LocalTree`], the default) or the
//! `deltas/` prefix of the blob bucket (`S3Tree` of the `s3` module).

use std::io;
use std::path::{Path, PathBuf};

use dms_repair::{BlobReader, FileBlob};

/// Prefix of temporary files in a local tree.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// One stored file of a tree directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    /// Its name in the directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where it is: the file's path in a local tree, the object's key in a
    /// bucket.
    pub location: PathBuf,
}

/// Files under relative keys, written whole and atomically.
pub trait DeltaTree: Send + Sync + std::fmt::Debug + 'static {
    /// Removes what an interrupted write left (temporary files).
    fn clean_temp(&self) -> io::Result<()>;
    /// The whole file at `key`, or `None`.
    fn read(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Writes `bytes` at `key` atomically and durably (replacing a file there).
    fn write(&self, key: &str, bytes: &[u8]) -> io::Result<()>;
    /// Opens the file at `key` for positional reads.
    fn open(&self, key: &str) -> io::Result<Box<dyn BlobReader>>;
    /// True when a file is at `key`.
    fn exists(&self, key: &str) -> io::Result<bool>;
    /// The files directly in `dir` (empty when there is no such directory).
    fn list(&self, dir: &str) -> io::Result<Vec<TreeEntry>>;
    /// The names of the top-level directories.
    fn dirs(&self) -> io::Result<Vec<String>>;
    /// Removes the file at `key` (no error when absent).
    fn remove(&self, key: &str) -> io::Result<()>;
    /// Removes the directory `dir` and everything in it.
    fn remove_dir(&self, dir: &str) -> io::Result<()>;
    /// Where `key` is (see [`TreeEntry::location`]).
    fn location(&self, key: &str) -> PathBuf;
}

/// A tree in a local directory (`DATA/deltas`): writes go to a temporary
/// file, fsync, rename, fsync of the directory.
#[derive(Debug)]
pub struct LocalTree {
    root: PathBuf,
}

impl LocalTree {
    /// The tree at `root` (created when missing).
    pub fn open(root: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self::at(root))
    }

    /// The tree at `root`, read-only: nothing is created.
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

fn not_found_is<T>(r: io::Result<T>, absent: T) -> io::Result<T> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(absent),
        other => other,
    }
}

impl DeltaTree for LocalTree {
    fn clean_temp(&self) -> io::Result<()> {
        for target in std::fs::read_dir(&self.root)? {
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
        Ok(())
    }

    fn read(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        not_found_is(std::fs::read(self.path(key)).map(Some), None)
    }

    fn write(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.path(key);
        let dir = path
            .parent()
            .ok_or_else(|| io::Error::other(format!("no directory for {key}")))?;
        std::fs::create_dir_all(dir)?;
        let mut temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)?;
        io::Write::write_all(&mut temp, bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(&path).map_err(|e| e.error)?;
        crate::blob::sync_dir(dir)
    }

    fn open(&self, key: &str) -> io::Result<Box<dyn BlobReader>> {
        Ok(Box::new(FileBlob::open(&self.path(key))?))
    }

    fn exists(&self, key: &str) -> io::Result<bool> {
        Ok(self.path(key).exists())
    }

    fn list(&self, dir: &str) -> io::Result<Vec<TreeEntry>> {
        let entries = match std::fs::read_dir(self.path(dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            out.push(TreeEntry {
                name,
                size: entry.metadata()?.len(),
                location: entry.path(),
            });
        }
        Ok(out)
    }

    fn dirs(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in not_found_is(std::fs::read_dir(&self.root).map(Some), None)?
            .into_iter()
            .flatten()
        {
            let entry = entry?;
            if entry.file_type()?.is_dir()
                && let Some(name) = entry.file_name().to_str()
            {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    fn remove(&self, key: &str) -> io::Result<()> {
        not_found_is(std::fs::remove_file(self.path(key)), ())
    }

    fn remove_dir(&self, dir: &str) -> io::Result<()> {
        not_found_is(std::fs::remove_dir_all(self.path(dir)), ())
    }

    fn location(&self, key: &str) -> PathBuf {
        self.path(key)
    }
}
