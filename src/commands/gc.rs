//! `dms gc --data DIR [--blobs s3://…]`: removes what a crash left in the
//! blob store — blobs whose catalog row never committed, unfinished
//! uploads — and deltas of deleted versions. Run while no `dms serve`
//! holds the catalog (from cron, or after a crash before the restart).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use dms_origin::Repository;
use dms_origin::blob::BlobStore;
use dms_origin::storage::BlobsSpec;

/// Arguments of `dms gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Data directory of the origin (its catalog).
    #[arg(long)]
    data: PathBuf,
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
    let spec = BlobsSpec::given_or_remembered(args.blobs.as_deref(), &args.data)
        .map_err(anyhow::Error::msg)?;
    let bucket = spec.bucket().context("opening the blob store")?;
    let blobs: Arc<dyn BlobStore> = match &bucket {
        Some(bucket) => Arc::new(
            dms_origin::s3::S3BlobStore::new(bucket.clone())
                .with_partial_grace(Duration::from_secs(args.min_age)),
        ),
        None => spec.open(&args.data, None)?,
    };
    let repo = match Repository::open_maintenance_on(&args.data, blobs) {
        Ok(repo) => repo,
        Err(e) if e.is_catalog_busy() => anyhow::bail!(
            "a running dms serve holds {}: stop it first (gc needs the catalog to itself)",
            args.data.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("opening {}", args.data.display())),
    };
    let removed = repo.collect_garbage().context("collecting garbage")?;
    let deltas = dms_origin::storage::open_deltas(&args.data, bucket.as_ref(), Default::default())
        .context("opening the delta store")?
        .prune(&repo)
        .context("pruning deltas")?;
    println!(
        "gc: {removed} unreferenced blobs removed, deltas of {deltas} deleted versions removed"
    );
    Ok(())
}
