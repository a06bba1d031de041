//! Which blob store an instance runs on: the local directory `DATA/blobs`
//! (the default) or an S3 bucket (`--blobs s3://BUCKET[/PREFIX]`, config
//! key `blobs`).

use std::path::Path;
use std::sync::Arc;

use crate::blob::{BlobStore, LocalBlobStore};
use crate::deltas::{DELTA_DIR, DeltaConfig, DeltaStore, DeltaTree, LocalTree};
use crate::s3::{S3BlobStore, S3Bucket, S3Location, S3Tree};

/// Where blobs live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BlobsSpec {
    /// `DATA/blobs` (the embedded default).
    #[default]
    Local,
    /// An S3 bucket and key prefix.
    S3(S3Location),
}

/// `DATA/blobs_url`: where the origin that last ran on `DATA` kept its
/// blobs (`local` or `s3://…`); `dms gc`, `dms scrub` and `dms
/// repair-serve` default to it, so they never take an S3 origin's data
/// directory for one whose blobs are local.
pub const BLOBS_URL_FILE: &str = "blobs_url";

impl std::fmt::Display for BlobsSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::S3(location) => location.fmt(f),
        }
    }
}

impl BlobsSpec {
    /// `given` when set, else what `DATA/blobs_url` says, else local.
    pub fn given_or_remembered(given: Option<&str>, data: &Path) -> Result<Self, String> {
        if given.is_some() {
            return Self::parse(given);
        }
        match std::fs::read_to_string(data.join(BLOBS_URL_FILE)) {
            Ok(text) => Self::parse(Some(text.trim())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::Local),
            Err(e) => Err(format!(
                "reading {}: {e}",
                data.join(BLOBS_URL_FILE).display()
            )),
        }
    }

    /// Writes `DATA/blobs_url` (atomically).
    pub fn remember(&self, data: &Path) -> std::io::Result<()> {
        crate::fsutil::atomic_write(
            &data.join(BLOBS_URL_FILE),
            format!("{self}\n").as_bytes(),
            0o644,
        )
    }

    /// Parses the `--blobs` value: `s3://BUCKET[/PREFIX]`, or `local`
    /// (or nothing) for `DATA/blobs`.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("") | Some("local") => Ok(Self::Local),
            Some(v) => match S3Location::parse(v) {
                Some(location) => location.map(Self::S3),
                None => Err(format!(
                    "--blobs {v}: expected s3://BUCKET[/PREFIX] or local"
                )),
            },
        }
    }

    /// The S3 bucket, connected (`None` for local blobs); fails when the
    /// bucket cannot be reached.
    pub fn bucket(&self) -> std::io::Result<Option<S3Bucket>> {
        match self {
            Self::Local => Ok(None),
            Self::S3(location) => {
                let bucket = S3Bucket::connect(location)?;
                bucket
                    .check()
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{location}: {e}")))?;
                Ok(Some(bucket))
            }
        }
    }

    /// Opens the blob store: `DATA/blobs`, or the bucket's `blobs/`.
    pub fn open(
        &self,
        data: &Path,
        bucket: Option<&S3Bucket>,
    ) -> std::io::Result<Arc<dyn BlobStore>> {
        Ok(match bucket {
            Some(bucket) => Arc::new(S3BlobStore::new(bucket.clone())),
            None => Arc::new(LocalBlobStore::open(&data.join("blobs"))?),
        })
    }
}

/// The delta store beside the blobs: `DATA/deltas`, or the bucket's
/// `deltas/`.
pub fn open_deltas(
    data: &Path,
    bucket: Option<&S3Bucket>,
    config: DeltaConfig,
) -> std::io::Result<DeltaStore> {
    match bucket {
        Some(bucket) => DeltaStore::on(Arc::new(S3Tree::new(bucket.clone())), config),
        None => DeltaStore::open(&data.join(DELTA_DIR), config),
    }
}

/// The delta store beside the blobs, read-only (`dms repair-serve`).
pub fn open_deltas_read_only(data: &Path, bucket: Option<&S3Bucket>) -> DeltaStore {
    let tree: Arc<dyn DeltaTree> = match bucket {
        Some(bucket) => Arc::new(S3Tree::new(bucket.clone())),
        None => Arc::new(LocalTree::at(&data.join(DELTA_DIR))),
    };
    DeltaStore::on_read_only(tree)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn blobs_values_parse() {
        assert_eq!(BlobsSpec::parse(None).unwrap(), BlobsSpec::Local);
        assert_eq!(BlobsSpec::parse(Some("local")).unwrap(), BlobsSpec::Local);
        assert!(matches!(
            BlobsSpec::parse(Some("s3://bucket/p")).unwrap(),
            BlobsSpec::S3(l) if l.bucket == "bucket" && l.prefix == "p"
        ));
        assert!(BlobsSpec::parse(Some("/srv/blobs")).is_err());
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            BlobsSpec::given_or_remembered(None, dir.path()).unwrap(),
            BlobsSpec::Local
        );
        BlobsSpec::parse(Some("s3://b-1/x"))
            .unwrap()
            .remember(dir.path())
            .unwrap();
        let remembered = BlobsSpec::given_or_remembered(None, dir.path()).unwrap();
        assert_eq!(remembered.to_string(), "s3://b-1/x");
        assert_eq!(
            BlobsSpec::given_or_remembered(Some("local"), dir.path()).unwrap(),
            BlobsSpec::Local
        );
    }
}
