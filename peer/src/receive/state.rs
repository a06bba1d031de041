//! Reception state that survives a restart ([`ReceiveConfig::state`]):
//! per object, what it is, its partial file, the blocks that are on disk,
//! and the symbols received for blocks not yet decoded.
//!
//! ```text
//!   STATE/objects/<TSI>-<TOI>/
//!     meta.json    what the object is: TSI, TOI, its FDT description
//!                  (Content-Location, lengths, type, encoding, digests,
//!                  manifest URI), its FEC OTI, the verified manifest check
//!                  once given                  (written atomically)
//!     data         the partial file: decoded blocks at their offsets
//!     have.json    {"blocks": [[SBN, CRC-32 of the block], …]}: blocks whose
//!                  bytes in `data` were fsynced before this was written
//!                                              (written atomically)
//!     spool-<SBN>  symbols received for block SBN while it is not on disk:
//!                  records of  u32 LE payload length | u32 LE ESI |
//!                  u32 LE CRC-32 of (ESI LE ‖ payload) | payload
//! ```
//!
//! Every block is recoverable from `have.json` + `data` or from its spool:
//! a spool file is removed only once `have.json` lists its block. Spools are
//! appended without fsync (a killed process loses nothing the kernel has; a
//! power cut may lose a tail, which the CRC detects and the reload drops).
//! `have.json` is written only after the data it lists was fsynced (at the
//! writer's flush points), and each block is checked against its CRC (and
//! against the manifest's block hash, once known) before it is used again.
//!
//! [`ReceiveConfig::state`]: super::ReceiveConfig::state

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use dms_fec::{FecScheme, Oti, PayloadId};
use dms_flute::fdt::{FdtFile, FdtInstance};
use dms_flute::lct::Fti;
use dms_flute::receiver::FileDescription;
use serde::{Deserialize, Serialize};

use super::control::ManifestCheck;

/// The subdirectory of the state directory holding one directory per
/// object.
pub const OBJECTS_DIR: &str = "objects";
const META: &str = "meta.json";
const HAVE: &str = "have.json";
const DATA: &str = "data";
const SPOOL_PREFIX: &str = "spool-";
const FORMAT: u32 = 1;
/// Bytes of a spool record before its payload.
const RECORD_HEADER: usize = 12;
/// Longest payload a spool record may hold (a datagram's worth and more).
const MAX_RECORD: usize = 1 << 20;
/// Spool files kept open per object; more are closed and reopened.
const MAX_OPEN_SPOOLS: usize = 16;

/// Why a persisted object could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A state file does not parse or describes an impossible object.
    #[error("state file: {0}")]
    Invalid(String),
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> StateError {
    move |source| StateError::Io { what, source }
}

/// What `meta.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    format: u32,
    tsi: u64,
    /// Decimal (JSON numbers do not hold 128 bits everywhere).
    toi: String,
    content_location: String,
    content_length: Option<u64>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    /// Hex.
    content_md5: Option<String>,
    /// Hex.
    sha256: Option<String>,
    manifest: Option<String>,
    /// FEC Encoding ID.
    fec_encoding_id: u8,
    /// The encoded OTI, hex.
    oti: String,
    check: Option<CheckRecord>,
    /// The FDT's `dms:Delta-*` attributes, when the object is a delta
    /// (absent from state written before they were kept).
    #[serde(default)]
    delta: Option<DeltaAttributes>,
}

/// An [`FdtDelta`](dms_flute::FdtDelta) on disk (digests in hex).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeltaAttributes {
    base_sha256: String,
    target_sha256: String,
    target_manifest: Option<String>,
}

/// A [`ManifestCheck`] on disk (digests in hex).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckRecord {
    size: u64,
    sha256: String,
    block_sha256: Vec<String>,
}

/// What `have.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Have {
    /// (SBN, CRC-32 of the block's bytes).
    blocks: Vec<(u32, u32)>,
}

/// One block's spool.
#[derive(Debug, Default)]
struct Spool {
    writer: Option<BufWriter<File>>,
    /// Symbols in it.
    symbols: u64,
    /// Last use, to close the least recently used.
    used: u64,
}

/// One persisted object.
#[derive(Debug)]
pub struct Persisted {
    dir: PathBuf,
    meta: Meta,
    /// Session.
    pub tsi: u64,
    /// Object.
    pub toi: u128,
    /// Its FEC parameters.
    pub oti: Oti,
    /// Blocks on disk: SBN → CRC-32.
    have: BTreeMap<u32, u32>,
    /// Blocks written but maybe not yet on disk: (writer sequence, SBN, CRC).
    pending: Vec<(u64, u32, u32)>,
    spools: HashMap<u32, Spool>,
    uses: u64,
    /// When the partial file was last asked to flush.
    pub last_flush: Instant,
}

/// The directory of object `toi` of session `tsi`.
fn object_dir(root: &Path, tsi: u64, toi: u128) -> PathBuf {
    root.join(OBJECTS_DIR).join(format!("{tsi}-{toi}"))
}

/// The object directories under `root`.
pub fn object_dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join(OBJECTS_DIR)) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn hex32(s: &str) -> Result<[u8; 32], StateError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|e| StateError::Invalid(e.to_string()))?;
    Ok(out)
}

fn record_check(check: &ManifestCheck) -> CheckRecord {
    CheckRecord {
        size: check.size,
        sha256: hex::encode(check.sha256),
        block_sha256: check.block_sha256.iter().map(hex::encode).collect(),
    }
}

impl Persisted {
    /// Starts persisting object `toi` of session `tsi` under `root`
    /// (replacing any stale state of the same TSI and TOI).
    pub fn create(
        root: &Path,
        tsi: u64,
        toi: u128,
        file: &FileDescription,
        oti: Oti,
    ) -> Result<Self, StateError> {
        let dir = object_dir(root, tsi, toi);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io_err("remove stale state"))?;
        }
        std::fs::create_dir_all(&dir).map_err(io_err("create state directory"))?;
        let meta = Meta {
            format: FORMAT,
            tsi,
            toi: toi.to_string(),
            content_location: file.content_location.clone(),
            content_length: file.content_length,
            content_type: file.content_type.clone(),
            content_encoding: file.content_encoding.clone(),
            content_md5: file.content_md5.map(hex::encode),
            sha256: file.sha256.map(hex::encode),
            manifest: file.manifest.clone(),
            fec_encoding_id: oti.scheme().encoding_id(),
            oti: hex::encode(&*oti.encode()),
            check: None,
            delta: file.delta.as_ref().map(|d| DeltaAttributes {
                base_sha256: hex::encode(d.base_sha256),
                target_sha256: hex::encode(d.target_sha256),
                target_manifest: d.target_manifest.clone(),
            }),
        };
        let persisted = Persisted {
            dir,
            meta,
            tsi,
            toi,
            oti,
            have: BTreeMap::new(),
            pending: Vec::new(),
            spools: HashMap::new(),
            uses: 0,
            last_flush: Instant::now(),
        };
        persisted.write_meta()?;
        // The new directory's entry must survive too.
        sync_dir(&root.join(OBJECTS_DIR))?;
        Ok(persisted)
    }

    /// Loads the object persisted in `dir`. Spools are not read yet (see
    /// [`Persisted::read_spool`]).
    pub fn load(dir: &Path) -> Result<Self, StateError> {
        let meta: Meta = read_json(&dir.join(META))?;
        if meta.format != FORMAT {
            return Err(StateError::Invalid(format!("format {}", meta.format)));
        }
        let toi: u128 = meta
            .toi
            .parse()
            .map_err(|_| StateError::Invalid(format!("TOI {:?}", meta.toi)))?;
        let scheme = FecScheme::from_encoding_id(meta.fec_encoding_id)
            .map_err(|e| StateError::Invalid(e.to_string()))?;
        let oti_bytes = hex::decode(&meta.oti).map_err(|e| StateError::Invalid(e.to_string()))?;
        let oti =
            Oti::decode(scheme, &oti_bytes).map_err(|e| StateError::Invalid(e.to_string()))?;
        let have: Have = match read_json(&dir.join(HAVE)) {
            Ok(have) => have,
            Err(StateError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Have::default()
            }
            Err(e) => return Err(e),
        };
        let blocks = oti.layout().block_count();
        if let Some((sbn, _)) = have.blocks.iter().find(|(sbn, _)| *sbn >= blocks) {
            return Err(StateError::Invalid(format!("block {sbn} of {blocks}")));
        }
        if !dir.join(DATA).is_file() {
            return Err(StateError::Invalid("no partial file".into()));
        }
        Ok(Persisted {
            dir: dir.to_owned(),
            tsi: meta.tsi,
            toi,
            oti,
            meta,
            have: have.blocks.into_iter().collect(),
            pending: Vec::new(),
            spools: HashMap::new(),
            uses: 0,
            last_flush: Instant::now(),
        })
    }

    /// The partial file.
    pub fn data_path(&self) -> PathBuf {
        self.dir.join(DATA)
    }

    /// Its FDT description, as it was persisted.
    pub fn description(&self) -> Result<FileDescription, StateError> {
        let md5 = match &self.meta.content_md5 {
            Some(s) => {
                let mut out = [0u8; 16];
                hex::decode_to_slice(s, &mut out)
                    .map_err(|e| StateError::Invalid(e.to_string()))?;
                Some(out)
            }
            None => None,
        };
        Ok(FileDescription {
            content_location: self.meta.content_location.clone(),
            content_length: self.meta.content_length,
            content_type: self.meta.content_type.clone(),
            content_encoding: self.meta.content_encoding.clone(),
            content_md5: md5,
            sha256: self.meta.sha256.as_deref().map(hex32).transpose()?,
            manifest: self.meta.manifest.clone(),
            delta: match &self.meta.delta {
                Some(d) => Some(dms_flute::FdtDelta {
                    base_sha256: hex32(&d.base_sha256)?,
                    target_sha256: hex32(&d.target_sha256)?,
                    target_manifest: d.target_manifest.clone(),
                }),
                None => None,
            },
        })
    }

    /// An FDT Instance describing only this object, to teach a fresh FLUTE
    /// receiver its description and OTI.
    pub fn fdt_xml(&self) -> Result<String, StateError> {
        let d = self.description()?;
        let mut file = FdtFile::new(d.content_location, self.toi);
        file.content_length = d.content_length;
        file.content_type = d.content_type;
        file.content_encoding = d.content_encoding;
        file.content_md5 = d.content_md5;
        file.sha256 = d.sha256;
        file.manifest = d.manifest;
        file.delta = d.delta;
        let fti = Fti::from_oti(&self.oti).map_err(|e| StateError::Invalid(e.to_string()))?;
        file.set_fti(&fti);
        let mut fdt = FdtInstance::new(u32::MAX);
        fdt.files.push(file);
        Ok(fdt.to_xml())
    }

    /// The verified manifest check, once given.
    pub fn check(&self) -> Result<Option<ManifestCheck>, StateError> {
        let Some(c) = &self.meta.check else {
            return Ok(None);
        };
        Ok(Some(ManifestCheck {
            size: c.size,
            sha256: hex32(&c.sha256)?,
            block_sha256: c
                .block_sha256
                .iter()
                .map(|h| hex32(h))
                .collect::<Result<_, _>>()?,
        }))
    }

    /// Keeps the verified manifest check.
    pub fn set_check(&mut self, check: &ManifestCheck) -> Result<(), StateError> {
        self.meta.check = Some(record_check(check));
        self.write_meta()
    }

    /// The blocks on disk, in order, with their CRC-32.
    pub fn have(&self) -> Vec<(u32, u32)> {
        self.have.iter().map(|(s, c)| (*s, *c)).collect()
    }

    /// Whether block `sbn` is on disk.
    pub fn has(&self, sbn: u32) -> bool {
        self.have.contains_key(&sbn)
    }

    /// Block `sbn` turned out bad (or unverifiable): it is missing again.
    pub fn forget(&mut self, sbn: u32) -> Result<(), StateError> {
        if self.have.remove(&sbn).is_some() {
            self.write_have()?;
        }
        Ok(())
    }

    /// Block `sbn` (CRC-32 `crc`) was written as the writer's block
    /// `seq`; it counts once [`Persisted::promote`] says it is on disk.
    pub fn block_written(&mut self, seq: u64, sbn: u32, crc: u32) {
        if let Some(mut spool) = self.spools.remove(&sbn)
            && let Some(mut writer) = spool.writer.take()
        {
            // What it holds stays until the block is on disk.
            let _ = writer.flush();
        }
        self.pending.push((seq, sbn, crc));
    }

    /// Whether blocks are written but not yet known to be on disk.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Every block written up to writer sequence `durable` is on disk:
    /// lists them in `have.json`, then drops their spools.
    pub fn promote(&mut self, durable: u64) -> Result<(), StateError> {
        let (done, left): (Vec<_>, Vec<_>) =
            self.pending.iter().partition(|(seq, _, _)| *seq <= durable);
        if done.is_empty() {
            return Ok(());
        }
        self.pending = left;
        for (_, sbn, crc) in &done {
            self.have.insert(*sbn, *crc);
        }
        self.write_have()?;
        for (_, sbn, _) in done {
            self.spools.remove(&sbn);
            match std::fs::remove_file(self.spool_path(sbn)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(StateError::Io {
                        what: "remove spool",
                        source: e,
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Puts every block written to the partial file on disk and lists
    /// them all in `have.json`: for a state kept for a later run, which
    /// must hold all this run decoded (background flushes may lag).
    pub fn settle(&mut self) -> Result<(), StateError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // Blocks are written with pwrite: no bytes wait in user space, so
        // an fsync through any descriptor of the file covers them.
        std::fs::File::open(self.data_path())
            .and_then(|f| f.sync_data())
            .map_err(io_err("sync partial file"))?;
        self.promote(u64::MAX)
    }

    fn spool_path(&self, sbn: u32) -> PathBuf {
        self.dir.join(format!("{SPOOL_PREFIX}{sbn}"))
    }

    /// Keeps symbols received for block `id.sbn` (one or more consecutive
    /// ESIs) unless the block is written or its spool holds enough to
    /// decode it with a margin.
    pub fn spool(&mut self, id: PayloadId, payload: &[u8]) -> Result<(), StateError> {
        let layout = self.oti.layout();
        let Some(k) = layout.source_symbols(id.sbn) else {
            return Ok(());
        };
        if payload.is_empty()
            || payload.len() > MAX_RECORD
            || self.has(id.sbn)
            || self.pending.iter().any(|(_, sbn, _)| *sbn == id.sbn)
        {
            return Ok(());
        }
        let t = u64::from(layout.symbol_size()).max(1);
        let cap = u64::from(k) + u64::from(k) / 4 + 16;
        let open = self.spools.values().filter(|s| s.writer.is_some()).count();
        let is_open = self.spools.get(&id.sbn).is_some_and(|s| s.writer.is_some());
        if open >= MAX_OPEN_SPOOLS && !is_open {
            self.close_least_used();
        }
        self.uses += 1;
        let uses = self.uses;
        let path = self.spool_path(id.sbn);
        let spool = self.spools.entry(id.sbn).or_default();
        if spool.symbols >= cap {
            return Ok(());
        }
        spool.used = uses;
        let writer = match &mut spool.writer {
            Some(writer) => writer,
            slot @ None => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(io_err("open spool"))?;
                slot.insert(BufWriter::with_capacity(64 << 10, file))
            }
        };
        writer
            .write_all(&record(id.esi, payload))
            .map_err(io_err("append to spool"))?;
        spool.symbols += (payload.len() as u64).div_ceil(t);
        Ok(())
    }

    fn close_least_used(&mut self) {
        let oldest = self
            .spools
            .iter()
            .filter(|(_, s)| s.writer.is_some())
            .min_by_key(|(_, s)| s.used)
            .map(|(sbn, _)| *sbn);
        if let Some(spool) = oldest.and_then(|sbn| self.spools.get_mut(&sbn))
            && let Some(mut writer) = spool.writer.take()
        {
            let _ = writer.flush();
        }
    }

    /// Hands what the spools buffer to the kernel (no fsync).
    pub fn flush_spools(&mut self) -> Result<(), StateError> {
        for spool in self.spools.values_mut() {
            if let Some(writer) = &mut spool.writer {
                writer.flush().map_err(io_err("flush spool"))?;
            }
        }
        Ok(())
    }

    /// The blocks with a spool file.
    pub fn spooled_blocks(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut blocks: Vec<u32> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix(SPOOL_PREFIX)?
                    .parse()
                    .ok()
            })
            .collect();
        blocks.sort_unstable();
        blocks
    }

    /// The symbols spooled for block `sbn`: (ESI, payload). A torn or
    /// corrupt tail (a crash mid-append) is cut off, so appends continue
    /// after the last good record. A block already on disk has its spool
    /// removed instead.
    pub fn read_spool(&mut self, sbn: u32) -> Result<Vec<(u32, Vec<u8>)>, StateError> {
        let path = self.spool_path(sbn);
        if self.has(sbn) {
            std::fs::remove_file(&path).map_err(io_err("remove spool"))?;
            return Ok(Vec::new());
        }
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err("read spool"))?;
        let (records, good) = parse_records(&bytes);
        if good < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                dropped = bytes.len() - good,
                "spool ends in a torn or corrupt record: cut off"
            );
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(good as u64))
                .map_err(io_err("truncate spool"))?;
        }
        let t = u64::from(self.oti.symbol_size()).max(1);
        let symbols = records
            .iter()
            .map(|(_, p)| (p.len() as u64).div_ceil(t))
            .sum();
        self.spools.insert(
            sbn,
            Spool {
                writer: None,
                symbols,
                used: 0,
            },
        );
        Ok(records)
    }

    /// Removes everything persisted of the object.
    pub fn remove(self) -> Result<(), StateError> {
        drop(self.spools);
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StateError::Io {
                what: "remove state",
                source: e,
            }),
            _ => Ok(()),
        }
    }

    fn write_meta(&self) -> Result<(), StateError> {
        let json = serde_json::to_vec_pretty(&self.meta)
            .map_err(|e| StateError::Invalid(e.to_string()))?;
        write_atomic(&self.dir, META, &json)
    }

    fn write_have(&self) -> Result<(), StateError> {
        let have = Have {
            blocks: self.have(),
        };
        let json = serde_json::to_vec(&have).map_err(|e| StateError::Invalid(e.to_string()))?;
        write_atomic(&self.dir, HAVE, &json)
    }
}

/// A spool record.
fn record(esi: u32, payload: &[u8]) -> Vec<u8> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&esi.to_le_bytes());
    crc.update(payload);
    let mut out = Vec::with_capacity(RECORD_HEADER + payload.len());
    // `payload.len() <= MAX_RECORD` fits.
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&esi.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The good records at the start of `bytes`, and how many bytes they take.
fn parse_records(bytes: &[u8]) -> (Vec<(u32, Vec<u8>)>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + RECORD_HEADER) {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&header[i..i + 4]);
            u32::from_le_bytes(w)
        };
        let (len, esi, crc) = (word(0) as usize, word(4), word(8));
        if len == 0 || len > MAX_RECORD {
            break;
        }
        let Some(payload) = bytes.get(at + RECORD_HEADER..at + RECORD_HEADER + len) else {
            break;
        };
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&esi.to_le_bytes());
        hasher.update(payload);
        if hasher.finalize() != crc {
            break;
        }
        records.push((esi, payload.to_vec()));
        at += RECORD_HEADER + len;
    }
    (records, at)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, StateError> {
    let bytes = std::fs::read(path).map_err(io_err("read state file"))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| StateError::Invalid(format!("{}: {e}", path.display())))
}

/// Writes `dir/name` atomically and durably: temp file, fsync, rename,
/// fsync of the directory.
fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<(), StateError> {
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io_err("create state temp file"))?;
    temp.write_all(data).map_err(io_err("write state file"))?;
    temp.as_file()
        .sync_all()
        .map_err(io_err("sync state file"))?;
    temp.persist(dir.join(name)).map_err(|e| StateError::Io {
        what: "rename state file",
        source: e.error,
    })?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync state directory"))
}

/// CRC-32 of a block's bytes.
pub fn block_crc(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn a_resumed_delta_keeps_its_fdt_delta_attributes() {
        let root = tempfile::tempdir().unwrap();
        let oti = Oti::for_object(
            FecScheme::RaptorQ,
            5000,
            1000,
            dms_fec::BlockSize::Symbols(4),
        )
        .unwrap();
        let delta = dms_flute::FdtDelta {
            base_sha256: [3; 32],
            target_sha256: [4; 32],
            target_manifest: Some("https://o/manifest/ab12".into()),
        };
        let description = FileDescription {
            content_location: "https://o/dl/cd34/fw.bin.delta".into(),
            content_length: Some(5000),
            content_type: None,
            content_encoding: None,
            content_md5: None,
            sha256: Some([5; 32]),
            manifest: None,
            delta: Some(delta.clone()),
        };
        let persisted = Persisted::create(root.path(), 9, 7, &description, oti).unwrap();
        std::fs::write(persisted.dir.join(DATA), vec![0u8; 5000]).unwrap();
        let resumed = Persisted::load(&persisted.dir).unwrap();
        assert_eq!(resumed.description().unwrap().delta, Some(delta.clone()));
        // The one-file FDT that teaches a fresh receiver carries it too.
        let taught =
            dms_flute::fdt::FdtInstance::parse(resumed.fdt_xml().unwrap().as_bytes()).unwrap();
        assert_eq!(taught.files[0].delta, Some(delta));
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let mut bytes = record(7, b"first symbol");
        bytes.extend(record(8, b"second"));
        let whole = bytes.len();
        bytes.extend(&record(9, b"third, torn")[..10]);
        let (records, good) = parse_records(&bytes);
        assert_eq!(good, whole);
        assert_eq!(
            records,
            vec![(7, b"first symbol".to_vec()), (8, b"second".to_vec())]
        );
        // A flipped payload byte fails its CRC: that record and the rest go.
        let mut bad = record(1, b"abc");
        bad.extend(record(2, b"def"));
        bad[RECORD_HEADER] ^= 1;
        assert_eq!(parse_records(&bad), (Vec::new(), 0));
    }
}
