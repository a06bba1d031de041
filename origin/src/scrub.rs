//! Scrubbing: every stored blob re-hashed against its object's SHA-256 and
//! source block hashes; what differs is marked damaged in the catalog (one
//! redb transaction with the scrub's counts), so that downloads, sessions
//! and symbol repair refuse it (410 Gone) until its content is uploaded
//! again.
//!
//! Blocking, like the rest of the repository: `dms scrub` calls it offline,
//! `POST /v1/scrub` from the blocking pool, `dms serve --scrub-rate` from a
//! thread of its own.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::catalog::Filter;
use crate::model::{Damage, ObjectRecord};
use crate::repo::{RepoError, Repository};

/// An object a scrub found damaged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DamagedObject {
    /// Object id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Hex SHA-256 the object should have.
    pub sha256: String,
    /// What differs.
    pub reason: String,
}

/// What one scrub checked and found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScrubReport {
    /// Objects checked.
    pub objects: u64,
    /// Distinct blobs re-hashed.
    pub blobs: u64,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// The damaged objects (empty: everything is intact).
    pub damaged: Vec<DamagedObject>,
}

/// Holds the reading to `bytes_per_second` (None: as fast as the disk goes).
#[derive(Debug)]
struct Pace {
    rate: Option<u64>,
    start: Instant,
    done: u64,
}

impl Pace {
    fn account(&mut self, n: usize) {
        self.done += n as u64;
        let Some(rate) = self.rate.filter(|r| *r > 0) else {
            return;
        };
        let due = Duration::from_secs_f64(self.done as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// Re-hashes the blob of `record` (shared by every object of that
/// content); `Ok(None)` when intact, else what differs.
fn check_blob(
    repo: &Repository,
    record: &ObjectRecord,
    pace: &mut Pace,
) -> Result<Option<String>, RepoError> {
    let blob = match repo.open_blob(record) {
        Ok(b) => b,
        Err(RepoError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some("its blob is missing".into()));
        }
        Err(e) => return Err(e),
    };
    if blob.len() != record.size {
        return Ok(Some(format!(
            "its blob has {} bytes, not {}",
            blob.len(),
            record.size
        )));
    }
    let layout = Repository::oti(record)?.layout();
    let mut whole = Sha256::new();
    let mut bad_blocks = Vec::new();
    let mut buf = vec![0u8; 256 << 10];
    for sbn in 0..layout.block_count() {
        let Some(range) = layout.block_range(sbn) else {
            break;
        };
        let mut block = Sha256::new();
        let mut pos = range.start;
        while pos < range.end {
            let n = ((range.end - pos) as usize).min(buf.len());
            if let Err(e) = blob.read_exact_at(&mut buf[..n], pos) {
                return Ok(Some(format!("reading its blob at byte {pos}: {e}")));
            }
            block.update(&buf[..n]);
            whole.update(&buf[..n]);
            pos += n as u64;
            pace.account(n);
        }
        let got = hex::encode(block.finalize());
        if record
            .block_sha256
            .get(sbn as usize)
            .is_some_and(|want| *want != got)
        {
            bad_blocks.push(sbn);
        }
    }
    let sha_ok = hex::encode(whole.finalize()) == record.sha256;
    if sha_ok && bad_blocks.is_empty() {
        return Ok(None);
    }
    let mut reason = String::new();
    if !sha_ok {
        reason.push_str("SHA-256 differs");
    }
    if !bad_blocks.is_empty() {
        if !reason.is_empty() {
            reason.push_str("; ");
        }
        let shown: Vec<String> = bad_blocks.iter().take(16).map(u32::to_string).collect();
        reason.push_str(&format!(
            "source block{} {}{} of {} differ{}",
            if bad_blocks.len() == 1 { "" } else { "s" },
            shown.join(", "),
            if bad_blocks.len() > 16 { ", …" } else { "" },
            layout.block_count(),
            if bad_blocks.len() == 1 { "s" } else { "" },
        ));
    }
    Ok(Some(reason))
}

/// Scrubs every object of `repo` (reading at most `bytes_per_second` when
/// given), marks what is damaged in the catalog and records the counts
/// there. Objects already marked stay marked (an upload of their content
/// clears them) and are reported again.
pub fn scrub(repo: &Repository, bytes_per_second: Option<u64>) -> Result<ScrubReport, RepoError> {
    let records = repo.list(&Filter::default())?;
    let mut by_blob: BTreeMap<&str, Vec<&ObjectRecord>> = BTreeMap::new();
    for r in &records {
        by_blob.entry(r.sha256.as_str()).or_default().push(r);
    }
    let mut pace = Pace {
        rate: bytes_per_second,
        start: Instant::now(),
        done: 0,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut report = ScrubReport::default();
    let mut marks = Vec::new();
    for (sha, objects) in &by_blob {
        let Some(first) = objects.first() else {
            continue;
        };
        report.blobs += 1;
        let before = pace.done;
        let found = check_blob(repo, first, &mut pace)?;
        report.bytes += pace.done - before;
        report.objects += objects.len() as u64;
        let damage = match found {
            Some(reason) => {
                tracing::warn!(sha256 = %sha, %reason, "scrub: damaged blob");
                let damage = Damage { found: now, reason };
                marks.push(((*sha).to_owned(), damage.clone()));
                Some(damage)
            }
            None => None,
        };
        for r in objects {
            if let Some(d) = damage.as_ref().or(r.damaged.as_ref()) {
                report.damaged.push(DamagedObject {
                    id: r.id.clone(),
                    name: r.name.clone(),
                    version: r.version.clone(),
                    sha256: r.sha256.clone(),
                    reason: d.reason.clone(),
                });
            }
        }
    }
    repo.catalog()
        .record_scrub(&marks, report.objects, report.bytes, now)?;
    Ok(report)
}
