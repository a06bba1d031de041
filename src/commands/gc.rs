//! `dms gc --data DIR [--blobs s3://…]`: removes what a crash left in the
//! blob store — blobs whose catalog row never committed, unfinished
//! uploads — and deltas of deleted versions. Run while no `dms serve`
//! holds the catalog (from cron, or after a crash before the restart);
//! on a shared PostgreSQL catalog it may run while instances serve (each
//! blob is decided under its commit lock).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dms_origin::blob::BlobStore;
use dms_origin::storage::{BlobsSpec, CatalogSpec};

/// Arguments of `dms gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Data directory of the origin (its catalog). Not needed with
    /// --catalog postgres://… and --blobs s3://….
    #[arg(long, required_unless_present = "catalog")]
    data: Option<PathBuf>,
    /// The catalog: `postgres://…` (shared; gc may run while instances
    /// serve) or `redb`; default: what DATA/catalog_url says.
    #[arg(long, value_name = "URL")]
    catalog: Option<String>,
    /// The origin's blob store: `s3://BUCKET[/PREFIX]` or `local`
    /// (default: what DATA/blobs_url says, which `dms serve` writes).
    #[arg(long, value_name = "URL")]
    blobs: Option<String>,
    /// Leave unfinished S3 uploads younger than this many seconds (another
    /// instance may still be writing them).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    min_age: u64,
}

/// Runs `dms gc`.
pub fn run(args: GcArgs) -> anyhow::Result<()> {
    let catalog = CatalogSpec::given_or_remembered(args.catalog.as_deref(), args.data.as_deref())
        .map_err(anyhow::Error::msg)?;
    let spec = match &args.data {
        Some(data) => BlobsSpec::given_or_remembered(args.blobs.as_deref(), data),
        None => BlobsSpec::parse(args.blobs.as_deref()),
    }
    .map_err(anyhow::Error::msg)?;
    let data = match (&args.data, &spec) {
        (Some(data), _) => data.clone(),
        // Only the local blob store and the redb catalog live in DATA.
        (None, BlobsSpec::S3(_)) => PathBuf::from("."),
        (None, BlobsSpec::Local) => {
            anyhow::bail!("without --data the blobs must be on S3: give --blobs s3://…")
        }
    };
    let bucket = spec.bucket().context("opening the blob store")?;
    let blobs: Arc<dyn BlobStore> = match &bucket {
        Some(bucket) => Arc::new(
            dms_origin::s3::S3BlobStore::new(bucket.clone())
                .with_partial_grace(Duration::from_secs(args.min_age)),
        ),
        None => spec.open(&data, None)?,
    };
    let repo = match catalog.open_maintenance(&data, blobs) {
        Ok(repo) => repo,
        Err(e) if e.is_catalog_busy() => anyhow::bail!(
            "a running dms serve holds {}: stop it first (gc needs the catalog to itself)",
            data.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("opening the catalog {catalog}")),
    };
    let removed = repo.collect_garbage().context("collecting garbage")?;
    let deltas = dms_origin::storage::open_deltas(&data, bucket.as_ref(), Default::default())
        .context("opening the delta store")?
        .prune(&repo)
        .context("pruning deltas")?;
    println!(
        "gc: {removed} unreferenced blobs removed, deltas of {deltas} deleted versions removed"
    );
    Ok(())
}
