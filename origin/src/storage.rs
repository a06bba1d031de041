//! Which blob store an instance runs on: the local directory `DATA/blobs`
//! (the default) or an S3 bucket (`--blobs s3://BUCKET[/PREFIX]`, config
//! key `blobs`).

use std::path::Path;
use std::sync::Arc;

use crate::blob::{BlobStore, LocalBlobStore};
use crate::deltas::{DELTA_DIR, DeltaConfig, DeltaStore, DeltaTree, LocalTree};
use crate::repo::{Limits, RepoError, Repository};
use crate::s3::{S3BlobStore, S3Bucket, S3Location, S3Tree};
use crate::urls::Urls;

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

/// Which catalog an instance runs on: the embedded redb file
/// `DATA/catalog.redb` (the default) or a shared PostgreSQL database
/// (`--catalog postgres://USER@HOST[:PORT]/DB`, config key `catalog`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CatalogSpec {
    /// `DATA/catalog.redb`.
    #[default]
    Embedded,
    /// A PostgreSQL URL.
    Postgres(String),
}

/// `DATA/catalog_url`: the catalog of the origin that last ran on `DATA`
/// (`redb`, or its `postgres://…` URL; mode 0600, as the URL may hold a
/// password); `dms gc`, `dms scrub` and `dms repair-serve` default to it.
pub const CATALOG_URL_FILE: &str = "catalog_url";

impl std::fmt::Display for CatalogSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded => f.write_str("redb"),
            Self::Postgres(url) => f.write_str(&crate::pg::redacted(url)),
        }
    }
}

impl CatalogSpec {
    /// Parses the `--catalog` value: `postgres://…` (or `postgresql://…`),
    /// or `redb` (or nothing) for `DATA/catalog.redb`.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("") | Some("redb") => Ok(Self::Embedded),
            Some(v) if crate::pg::is_postgres_url(v) => Ok(Self::Postgres(v.to_owned())),
            Some(v) => Err(format!(
                "--catalog {}: expected postgres://USER@HOST[:PORT]/DB or redb",
                crate::pg::redacted(v)
            )),
        }
    }

    /// `given` when set, else what `DATA/catalog_url` says, else redb.
    pub fn given_or_remembered(given: Option<&str>, data: Option<&Path>) -> Result<Self, String> {
        if given.is_some() {
            return Self::parse(given);
        }
        let Some(data) = data else {
            return Ok(Self::Embedded);
        };
        let path = data.join(CATALOG_URL_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(Some(text.trim())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::Embedded),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    /// Opens the repository for maintenance (`dms gc`, `dms scrub`): the
    /// redb catalog in `data` (which fails while a server holds it, see
    /// [`RepoError::is_catalog_busy`]), or the shared catalog, which
    /// serving instances may go on using meanwhile.
    pub fn open_maintenance(
        &self,
        data: &Path,
        blobs: Arc<dyn BlobStore>,
    ) -> Result<Repository, RepoError> {
        match self {
            Self::Embedded => Repository::open_maintenance_on(data, blobs),
            Self::Postgres(url) => {
                let catalog = Arc::new(crate::pg::PgCatalog::connect(url)?);
                let urls = Urls::new("http://localhost").map_err(RepoError::Invalid)?;
                Ok(Repository::new(
                    catalog,
                    blobs,
                    None,
                    urls,
                    Limits::default(),
                ))
            }
        }
    }

    /// Writes `DATA/catalog_url` (atomically, mode 0600).
    pub fn remember(&self, data: &Path) -> std::io::Result<()> {
        let text = match self {
            Self::Embedded => "redb".to_owned(),
            Self::Postgres(url) => url.clone(),
        };
        crate::fsutil::atomic_write(
            &data.join(CATALOG_URL_FILE),
            format!("{text}\n").as_bytes(),
            0o600,
        )
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

    #[test]
    fn catalog_values_parse_and_are_remembered() {
        assert_eq!(CatalogSpec::parse(None).unwrap(), CatalogSpec::Embedded);
        assert_eq!(
            CatalogSpec::parse(Some("redb")).unwrap(),
            CatalogSpec::Embedded
        );
        assert!(CatalogSpec::parse(Some("mysql://x@y/z")).is_err());
        let url = "postgres://dms:pw@db:5432/dms";
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            CatalogSpec::given_or_remembered(None, Some(dir.path())).unwrap(),
            CatalogSpec::Embedded
        );
        CatalogSpec::parse(Some(url))
            .unwrap()
            .remember(dir.path())
            .unwrap();
        let remembered = CatalogSpec::given_or_remembered(None, Some(dir.path())).unwrap();
        assert_eq!(remembered, CatalogSpec::Postgres(url.into()));
        assert_eq!(remembered.to_string(), "postgres://dms:***@db:5432/dms");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(CATALOG_URL_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
