//! `dms repair-serve`: the download and symbol repair service alone,
//! read-only against an origin's data directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use dms_origin::repair_server::{RepairServeOptions, run_repair};
use dms_repair::ServiceConfig;

use super::serve::shutdown_signal;

/// Arguments of `dms repair-serve`.
#[derive(Debug, Args)]
pub struct RepairServeArgs {
    /// The origin's data directory (read-only; `dms serve` may be running
    /// on it). Not needed with --catalog postgres://… and --blobs s3://….
    #[arg(long)]
    data: Option<PathBuf>,
    /// The origins' shared catalog (`postgres://USER@HOST[:PORT]/DB`), or
    /// `redb` (DATA/catalog.redb); default: what DATA/catalog_url says.
    #[arg(long, value_name = "URL")]
    catalog: Option<String>,
    /// Where the origin keeps blobs and deltas: `s3://BUCKET[/PREFIX]`
    /// (the AWS_* variables as for `dms serve`), or `local` (DATA/blobs);
    /// default: what DATA/blobs_url says, which `dms serve` writes.
    #[arg(long, value_name = "URL")]
    blobs: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8444")]
    listen: SocketAddr,
    /// The origin's public base URL (objects' Content-Locations are built
    /// from it); default: read from DATA/base_url, which `dms serve` writes.
    #[arg(long)]
    origin_base_url: Option<String>,
    /// TLS certificate chain (PEM); default: the origin's DATA/tls/cert.pem.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); default: the origin's DATA/tls/key.pem.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP (only behind a TLS-terminating proxy or CDN).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    insecure_http: bool,
    /// Most symbols one repair request may ask for.
    #[arg(long)]
    max_symbols: Option<u32>,
    /// Memory for prepared block encoders shared by repair requests, in
    /// bytes (`64MiB`, `1GiB`; 0 turns the cache off). A block holds about
    /// 3 × its size: 3.3 × the objects being repaired keeps all of them.
    #[arg(long, value_name = "SIZE", value_parser = super::units::parse_size)]
    encoder_cache: Option<u64>,
    #[command(flatten)]
    coap: super::coap_args::CoapArgs,
}

/// Runs `dms repair-serve` until Ctrl-C or SIGTERM.
pub fn run(args: RepairServeArgs) -> anyhow::Result<()> {
    let mut service = ServiceConfig::default();
    if let Some(max) = args.max_symbols {
        service.max_symbols_per_request = max;
    }
    if let Some(bytes) = args.encoder_cache {
        service.encoder_cache_bytes = usize::try_from(bytes)?;
    }
    let catalog = dms_origin::storage::CatalogSpec::given_or_remembered(
        args.catalog.as_deref(),
        args.data.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let blobs = match &args.data {
        Some(data) => {
            dms_origin::storage::BlobsSpec::given_or_remembered(args.blobs.as_deref(), data)
        }
        None => dms_origin::storage::BlobsSpec::parse(args.blobs.as_deref()),
    }
    .map_err(anyhow::Error::msg)?;
    let opts = RepairServeOptions {
        data: args.data,
        catalog,
        blobs,
        listen: args.listen,
        origin_base_url: args.origin_base_url,
        tls: args.tls_cert.zip(args.tls_key),
        insecure_http: args.insecure_http,
        service,
        coap: args.coap.serve(Vec::new())?,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        eprintln!("dms repair-serve: listening on {}", opts.listen);
        run_repair(opts, shutdown_signal()).await
    })?;
    Ok(())
}
