//! Atomic output of one object: decoded blocks are written at their offsets
//! into a hidden temp file in the output directory (or, for an object
//! whose reception state is kept, a partial file in the state directory);
//! only a complete, verified object is renamed (after fsync) to its final
//! name. A failed or abandoned object's temp file is removed (on drop), so
//! nothing partial or unverified ever appears under a final name.

use std::fs::{File, Permissions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use dms_flute::receiver::ObjectInfo;
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

/// Prefix of the hidden temp files in the output directory.
pub const TEMP_PREFIX: &str = ".dms-recv-";

/// Why an object could not be written out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// Writing, syncing or renaming failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The FDT names a `Content-Encoding` we cannot decode.
    #[error("unsupported Content-Encoding {0:?}")]
    UnsupportedEncoding(String),
    /// The decoded content does not match `dms:SHA-256`.
    #[error("SHA-256 mismatch after content decoding")]
    Sha256Mismatch,
    /// The decoded content is not `Content-Length` bytes long.
    #[error("decoded length {actual} differs from Content-Length {expected}")]
    LengthMismatch {
        /// From the FDT.
        expected: u64,
        /// Decoded (capped at one more than expected).
        actual: u64,
    },
    /// The object does not match its signed manifest (size, SHA-256 or a
    /// block hash).
    #[error("object does not match its signed manifest")]
    Manifest,
    /// The object, read back once written, does not match the digest its
    /// FDT gives (`dms:SHA-256` or `Content-MD5`).
    #[error("{0} mismatch (object read back)")]
    DigestMismatch(&'static str),
}

impl OutputError {
    /// True when the output's disk is full (ENOSPC, EDQUOT): the
    /// reception state is kept, so a run with room resumes it.
    pub fn is_no_space(&self) -> bool {
        matches!(
            self,
            OutputError::Io { source, .. }
                if matches!(
                    source.kind(),
                    io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                )
        )
    }
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> OutputError {
    move |source| OutputError::Io { what, source }
}

/// The content encodings we undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Zlib,
    /// RFC 3926 calls raw DEFLATE "deflate"; HTTP means zlib by it. The
    /// stream's first two bytes tell which.
    Deflate,
}

impl Encoding {
    fn of(info: &ObjectInfo) -> Result<Self, OutputError> {
        if info.is_identity_encoded() {
            return Ok(Encoding::Identity);
        }
        let token = info.content_encoding().unwrap_or_default();
        match token.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Ok(Encoding::Gzip),
            "zlib" => Ok(Encoding::Zlib),
            "deflate" => Ok(Encoding::Deflate),
            _ => Err(OutputError::UnsupportedEncoding(token.to_owned())),
        }
    }
}

/// Where an object's bytes are written before its final rename.
#[derive(Debug)]
enum Backing {
    /// A hidden temp file in the output directory, removed on drop.
    Temp(NamedTempFile),
    /// A file that outlives the writer (the partial file of a persisted
    /// object, in the state directory): removed only by its owner.
    Kept {
        /// The open file.
        file: File,
        /// Its path.
        path: PathBuf,
    },
}

impl Backing {
    fn file(&self) -> &File {
        match self {
            Backing::Temp(temp) => temp.as_file(),
            Backing::Kept { file, .. } => file,
        }
    }
}

/// An object being written: its partial file and how much went in.
#[derive(Debug)]
pub struct ObjectWriter {
    backing: Backing,
    written: u64,
    /// Bytes written when the last background flush started.
    flushed_at: u64,
    /// A background `fdatasync` of the partial file, so that the final
    /// fsync (before the rename) has only the tail left to write; with the
    /// [`ObjectWriter::seq`] it started at.
    flushing: Option<(std::thread::JoinHandle<io::Result<()>>, u64)>,
    /// Blocks written so far (a sequence number for [`Self::durable_seq`]).
    seq: u64,
    /// Every block up to this sequence number is on disk (fsynced).
    durable: u64,
}

/// Digests of a partial file read back ([`ObjectWriter::digests`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigests {
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Its MD5, if asked for.
    pub md5: Option<[u8; 16]>,
}

/// Start a background flush after this many more bytes are written.
const FLUSH_EVERY: u64 = 32 << 20;

/// Where a finished object went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Its final path.
    pub path: PathBuf,
    /// Bytes in the final file.
    pub size: u64,
    /// Whether its SHA-256 was checked here (after content decoding).
    pub sha256_checked: bool,
}

impl ObjectWriter {
    /// A new hidden temp file in `dir`.
    pub fn create(dir: &Path) -> Result<Self, OutputError> {
        Ok(Self::with(Backing::Temp(temp_file(dir)?)))
    }

    /// The partial file at `path`, created if missing and kept as it is
    /// otherwise (a resumed object); it is not removed when the writer is
    /// dropped.
    pub fn open_kept(path: &Path) -> Result<Self, OutputError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o666)
            .open(path)
            .map_err(io_err("open partial file"))?;
        Ok(Self::with(Backing::Kept {
            file,
            path: path.to_owned(),
        }))
    }

    fn with(backing: Backing) -> Self {
        ObjectWriter {
            backing,
            written: 0,
            flushed_at: 0,
            flushing: None,
            seq: 0,
            durable: 0,
        }
    }

    /// The partial file (to read blocks back from).
    pub fn file(&self) -> &File {
        self.backing.file()
    }

    /// SHA-256 of the bytes written so far (read back from the partial
    /// file).
    pub fn sha256(&self) -> Result<[u8; 32], OutputError> {
        let mut file = match &self.backing {
            Backing::Temp(temp) => temp.reopen(),
            Backing::Kept { path, .. } => File::open(path),
        }
        .map_err(io_err("reopen temp file"))?;
        let mut hasher = Sha256::new();
        io::copy(&mut file, &mut hasher).map_err(io_err("hash temp file"))?;
        Ok(hasher.finalize().into())
    }

    /// SHA-256 (and MD5, if `with_md5`) of the bytes written so far, read back
    /// from the partial file in one pass: for an object whose blocks the
    /// FLUTE receiver could not hash in order.
    pub fn digests(&self, with_md5: bool) -> Result<FileDigests, OutputError> {
        let mut file = match &self.backing {
            Backing::Temp(temp) => temp.reopen(),
            Backing::Kept { path, .. } => File::open(path),
        }
        .map_err(io_err("reopen temp file"))?;
        let mut sha256 = Sha256::new();
        let mut md5 = with_md5.then(md5::Md5::new);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err("hash temp file")(e)),
            };
            sha256.update(&buf[..n]);
            if let Some(md5) = &mut md5 {
                md5.update(&buf[..n]);
            }
        }
        Ok(FileDigests {
            sha256: sha256.finalize().into(),
            md5: md5.map(|m| m.finalize().into()),
        })
    }

    /// The file blocks are written into.
    pub fn path(&self) -> &Path {
        match &self.backing {
            Backing::Temp(temp) => temp.path(),
            Backing::Kept { path, .. } => path,
        }
    }

    /// Writes a decoded block at `offset`; returns its sequence number
    /// (see [`Self::durable_seq`]).
    pub fn write_block(&mut self, offset: u64, data: &[u8]) -> Result<u64, OutputError> {
        self.backing
            .file()
            .write_all_at(data, offset)
            .map_err(io_err("write block"))?;
        self.written += data.len() as u64;
        self.seq += 1;
        if self.written - self.flushed_at >= FLUSH_EVERY
            && self.flushing.as_ref().is_none_or(|(t, _)| t.is_finished())
        {
            self.start_flush()?;
        }
        Ok(self.seq)
    }

    /// Starts a background flush of what was written, unless one runs.
    pub fn start_flush(&mut self) -> Result<(), OutputError> {
        if self
            .flushing
            .as_ref()
            .is_some_and(|(t, _)| !t.is_finished())
        {
            return Ok(());
        }
        self.join_flush()?;
        let file = self
            .backing
            .file()
            .try_clone()
            .map_err(io_err("clone temp file"))?;
        self.flushed_at = self.written;
        self.flushing = Some((std::thread::spawn(move || file.sync_data()), self.seq));
        Ok(())
    }

    /// The sequence number up to which every block written is on disk
    /// (a finished background flush is collected first).
    pub fn durable_seq(&mut self) -> Result<u64, OutputError> {
        if self.flushing.as_ref().is_some_and(|(t, _)| t.is_finished()) {
            self.join_flush()?;
        }
        Ok(self.durable)
    }

    /// Whether blocks were written since the last flush started.
    pub fn unflushed(&self) -> bool {
        self.flushing.as_ref().map_or(self.durable, |(_, seq)| *seq) < self.seq
    }

    /// Flushes everything now (waiting); returns [`Self::durable_seq`].
    pub fn sync(&mut self) -> Result<u64, OutputError> {
        self.join_flush()?;
        self.backing
            .file()
            .sync_data()
            .map_err(io_err("sync partial file"))?;
        self.durable = self.seq;
        Ok(self.durable)
    }

    /// Waits for the background flush, if one runs.
    fn join_flush(&mut self) -> Result<(), OutputError> {
        if let Some((flush, seq)) = self.flushing.take() {
            flush
                .join()
                .map_err(|_| OutputError::Io {
                    what: "background flush",
                    source: io::Error::other("flush thread panicked"),
                })?
                .map_err(io_err("background flush"))?;
            self.durable = self.durable.max(seq);
        }
        Ok(())
    }

    /// The object is complete and its transported bytes verified: undo its
    /// content encoding (checking `dms:SHA-256` and `Content-Length` on the
    /// result), fsync, and rename it to `dir/name`. On error the temp
    /// files are removed (a kept partial file is left to its owner).
    pub fn finish(
        mut self,
        dir: &Path,
        name: &str,
        info: &ObjectInfo,
    ) -> Result<Finished, OutputError> {
        self.join_flush()?;
        let encoding = Encoding::of(info)?;
        let target = dir.join(name);
        let size;
        let mut sha256_checked = false;
        match (encoding, self.backing) {
            (Encoding::Identity, Backing::Temp(temp)) => {
                temp.as_file()
                    .sync_all()
                    .map_err(io_err("sync temp file"))?;
                size = self.written;
                persist(temp, &target)?;
            }
            (Encoding::Identity, Backing::Kept { file, path }) => {
                file.sync_all().map_err(io_err("sync partial file"))?;
                size = file.metadata().map_err(io_err("stat partial file"))?.len();
                match std::fs::rename(&path, &target) {
                    Ok(()) => {}
                    // The state directory is on another file system: copy
                    // into a temp file beside the target, then rename.
                    Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
                        let copy = temp_file(dir)?;
                        let mut from = &file;
                        from.seek(SeekFrom::Start(0))
                            .map_err(io_err("rewind partial file"))?;
                        io::copy(&mut from, &mut copy.as_file())
                            .map_err(io_err("copy partial file"))?;
                        copy.as_file()
                            .sync_all()
                            .map_err(io_err("sync temp file"))?;
                        persist(copy, &target)?;
                    }
                    Err(source) => {
                        return Err(OutputError::Io {
                            what: "rename to final name",
                            source,
                        });
                    }
                }
            }
            (encoding, mut backing) => {
                let file = match &mut backing {
                    Backing::Temp(temp) => temp.as_file_mut(),
                    Backing::Kept { file, .. } => file,
                };
                file.seek(SeekFrom::Start(0))
                    .map_err(io_err("rewind temp file"))?;
                let (decoded, decoded_size, checked) = decode_into(dir, file, encoding, info)?;
                size = decoded_size;
                sha256_checked = checked;
                persist(decoded, &target)?;
                // A temp `backing` (the encoded bytes) is removed when dropped.
            }
        }
        // Make the rename itself durable.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync output directory"))?;
        Ok(Finished {
            path: target,
            size,
            sha256_checked,
        })
    }
}

/// Renames a synced temp file to `target`.
fn persist(temp: NamedTempFile, target: &Path) -> Result<(), OutputError> {
    temp.persist(target).map_err(|e| OutputError::Io {
        what: "rename to final name",
        source: e.error,
    })?;
    Ok(())
}

/// Decodes `encoded` into a new synced temp file in `dir`; returns it, its
/// size and whether its SHA-256 was checked.
fn decode_into(
    dir: &Path,
    encoded: &mut File,
    encoding: Encoding,
    info: &ObjectInfo,
) -> Result<(NamedTempFile, u64, bool), OutputError> {
    let file = info.file.as_ref();
    let expected_len = file.and_then(|f| f.content_length);
    let expected_sha = file.and_then(|f| f.sha256);
    let reader = io::BufReader::new(encoded);
    let mut reader: Box<dyn Read + '_> = match encoding {
        Encoding::Gzip => Box::new(MultiGzDecoder::new(reader)),
        Encoding::Zlib => Box::new(ZlibDecoder::new(reader)),
        Encoding::Deflate => {
            let mut reader = reader;
            let head = io::BufRead::fill_buf(&mut reader).map_err(io_err("read temp file"))?;
            if looks_like_zlib(head) {
                Box::new(ZlibDecoder::new(reader))
            } else {
                Box::new(DeflateDecoder::new(reader))
            }
        }
        Encoding::Identity => Box::new(reader),
    };
    // A Content-Length bounds the output (no decompression bomb fills the
    // disk); one byte more tells a longer stream apart.
    if let Some(len) = expected_len {
        reader = Box::new(reader.take(len.saturating_add(1)));
    }
    let out = temp_file(dir)?;
    let (size, hasher) = {
        let mut writer = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, out.as_file()),
            hasher: Sha256::new(),
        };
        let size = io::copy(&mut reader, &mut writer).map_err(io_err("decode content"))?;
        let HashingWriter { inner, hasher } = writer;
        inner
            .into_inner()
            .map_err(|e| OutputError::Io {
                what: "write decoded content",
                source: e.into_error(),
            })?
            .sync_all()
            .map_err(io_err("sync decoded file"))?;
        (size, hasher)
    };
    if let Some(expected) = expected_len
        && size != expected
    {
        return Err(OutputError::LengthMismatch {
            expected,
            actual: size,
        });
    }
    let checked = match expected_sha {
        Some(expected) => {
            let actual: [u8; 32] = hasher.finalize().into();
            if actual != expected {
                return Err(OutputError::Sha256Mismatch);
            }
            true
        }
        None => false,
    };
    Ok((out, size, checked))
}

/// A hidden temp file in `dir`, created with the mode an ordinary file
/// gets (0666 less the umask), which the final file keeps.
fn temp_file(dir: &Path) -> Result<NamedTempFile, OutputError> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(".part")
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(io_err("create temp file"))
}

/// A zlib header: method 8 (deflate), window ≤ 32 KiB, check bits valid.
fn looks_like_zlib(head: &[u8]) -> bool {
    match head {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Hashes what it writes.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use std::io::Write;

    use dms_fec::FecScheme;
    use dms_flute::receiver::FileDescription;

    use super::*;

    fn info(encoding: Option<&str>, length: Option<u64>, sha256: Option<[u8; 32]>) -> ObjectInfo {
        ObjectInfo {
            transfer_length: 0,
            fec: FecScheme::RaptorQ,
            file: Some(FileDescription {
                content_location: "file:///x".into(),
                content_length: length,
                content_type: None,
                content_encoding: encoding.map(str::to_owned),
                content_md5: None,
                sha256,
                manifest: None,
                delta: None,
            }),
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn write(dir: &Path, data: &[u8]) -> ObjectWriter {
        let mut writer = ObjectWriter::create(dir).unwrap();
        // Second half first: blocks land at their offsets whatever the order.
        let mid = data.len() / 2;
        writer.write_block(mid as u64, &data[mid..]).unwrap();
        writer.write_block(0, &data[..mid]).unwrap();
        writer
    }

    #[test]
    fn identity_object_is_renamed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let finished = write(dir.path(), &data)
            .finish(dir.path(), "obj", &info(None, None, None))
            .unwrap();
        assert_eq!(finished.path, dir.path().join("obj"));
        assert_eq!(finished.size, data.len() as u64);
        assert_eq!(std::fs::read(&finished.path).unwrap(), data);
        assert_eq!(entries(dir.path()), ["obj"]);
    }

    #[test]
    fn a_kept_partial_file_is_resumed_and_moved_even_across_file_systems() {
        // /dev/shm is usually another file system than the temp dir: the
        // rename fails with EXDEV and the file is copied, then renamed.
        let shm = Path::new("/dev/shm");
        let state = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let out = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
        let partial = state.path().join("data");
        let mut writer = ObjectWriter::open_kept(&partial).unwrap();
        writer.write_block(0, &data[..20_000]).unwrap();
        assert_eq!(writer.sync().unwrap(), 1);
        drop(writer);
        // Kept on drop, and taken up again where it was.
        let mut writer = ObjectWriter::open_kept(&partial).unwrap();
        writer.write_block(20_000, &data[20_000..]).unwrap();
        let finished = writer
            .finish(out.path(), "obj", &info(None, None, None))
            .unwrap();
        assert_eq!(finished.size, data.len() as u64);
        assert_eq!(std::fs::read(&finished.path).unwrap(), data);
        assert_eq!(entries(out.path()), ["obj"]);
    }

    #[test]
    fn http_style_deflate_with_a_zlib_wrapper_is_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"zlib-wrapped deflate, as HTTP means it ".repeat(100);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&content).unwrap();
        let sha: [u8; 32] = Sha256::digest(&content).into();
        let finished = write(dir.path(), &z.finish().unwrap())
            .finish(
                dir.path(),
                "z",
                &info(Some("deflate"), Some(content.len() as u64), Some(sha)),
            )
            .unwrap();
        assert!(finished.sha256_checked);
        assert_eq!(std::fs::read(&finished.path).unwrap(), content);
        assert_eq!(entries(dir.path()), ["z"]);
    }

    #[test]
    fn failures_leave_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[5u8; 5_000]).unwrap();
        let encoded = gz.finish().unwrap();

        let err = write(dir.path(), &encoded)
            .finish(dir.path(), "a", &info(Some("br"), None, None))
            .unwrap_err();
        assert!(matches!(err, OutputError::UnsupportedEncoding(_)), "{err}");

        let err = write(dir.path(), &encoded)
            .finish(dir.path(), "b", &info(Some("gzip"), Some(4_999), None))
            .unwrap_err();
        assert!(
            matches!(
                err,
                OutputError::LengthMismatch {
                    expected: 4_999,
                    actual: 5_000
                }
            ),
            "{err}"
        );

        let err = write(dir.path(), &encoded[..encoded.len() / 2])
            .finish(dir.path(), "c", &info(Some("gzip"), None, None))
            .unwrap_err();
        assert!(matches!(err, OutputError::Io { .. }), "{err}");
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    }

    #[test]
    fn digests_are_read_back_from_the_blocks_written_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| ((i * 13) >> 3) as u8).collect();
        let writer = write(dir.path(), &data);
        let digests = writer.digests(true).unwrap();
        assert_eq!(digests.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(digests.md5, Some(<[u8; 16]>::from(md5::Md5::digest(&data))));
        assert_eq!(writer.digests(false).unwrap().md5, None);
        assert_eq!(writer.sha256().unwrap(), digests.sha256);
    }

    #[test]
    fn zlib_headers_are_told_from_raw_deflate() {
        assert!(looks_like_zlib(&[0x78, 0x9c]));
        assert!(looks_like_zlib(&[0x78, 0x01]));
        assert!(!looks_like_zlib(&[0x78, 0x00]));
        assert!(!looks_like_zlib(&[0xed, 0xc1]));
        assert!(!looks_like_zlib(&[0x78]));
    }
}
