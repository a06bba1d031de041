//! `dms scrub --data DIR`: re-hashes every stored blob against its
//! object's SHA-256 and block hashes; damaged objects are marked in the
//! catalog (refused with 410 until uploaded again), named, and make the
//! exit status non-zero.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use dms_origin::scrub::{ScrubReport, scrub};

use super::publish::Client;

/// Arguments of `dms scrub`.
#[derive(Debug, Args)]
pub struct ScrubArgs {
    /// Data directory of the origin.
    #[arg(long)]
    data: PathBuf,
    /// The running origin to ask (`POST /v1/scrub`) when it holds the
    /// catalog (default: the URL in DATA/base_url).
    #[arg(long)]
    server: Option<String>,
    /// CA certificate (PEM) of that origin (default: DATA/tls/cert.pem).
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Read at most this many MB/s (default: as fast as the disk goes;
    /// offline only).
    #[arg(long, value_name = "MB/s")]
    rate: Option<f64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The origin's blob store (`s3://BUCKET[/PREFIX]` or `local`;
    /// default: what DATA/blobs_url says, which `dms serve` writes).
    #[arg(long, value_name = "URL")]
    blobs: Option<String>,
    /// The origin's catalog (`postgres://…` or `redb`; default: what
    /// DATA/catalog_url says, which `dms serve` writes).
    #[arg(long, value_name = "URL")]
    catalog: Option<String>,
}

/// Runs `dms scrub`: offline when no server holds the catalog, else
/// through the running server.
pub fn run(args: ScrubArgs) -> anyhow::Result<()> {
    let rate = args.rate.map(|mb| (mb * 1e6) as u64);
    let spec =
        dms_origin::storage::BlobsSpec::given_or_remembered(args.blobs.as_deref(), &args.data)
            .map_err(anyhow::Error::msg)?;
    let bucket = spec.bucket().context("opening the blob store")?;
    let blobs = spec.open(&args.data, bucket.as_ref())?;
    let catalog = dms_origin::storage::CatalogSpec::given_or_remembered(
        args.catalog.as_deref(),
        Some(&args.data),
    )
    .map_err(anyhow::Error::msg)?;
    let report = match catalog.open_maintenance(&args.data, blobs) {
        Ok(repo) => scrub(&repo, rate).context("scrubbing")?,
        Err(e) if e.is_catalog_busy() => ask_server(&args)?,
        Err(e) => {
            return Err(e).with_context(|| format!("opening {}", args.data.display()));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "scrub: {} objects ({} blobs, {} bytes) checked, {} damaged",
            report.objects,
            report.blobs,
            report.bytes,
            report.damaged.len()
        );
        for d in &report.damaged {
            println!("damaged: {} {} {}: {}", d.id, d.name, d.version, d.reason);
        }
    }
    if !report.damaged.is_empty() {
        let names: Vec<String> = report
            .damaged
            .iter()
            .map(|d| format!("{} ({} {})", d.id, d.name, d.version))
            .collect();
        bail!(
            "{} damaged object(s), refused until uploaded again: {}",
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}

/// Asks the server that holds the catalog to scrub.
fn ask_server(args: &ScrubArgs) -> anyhow::Result<ScrubReport> {
    let server = match &args.server {
        Some(s) => s.clone(),
        None => {
            let path = args.data.join(dms_origin::server::BASE_URL_FILE);
            std::fs::read_to_string(&path)
                .with_context(|| {
                    format!(
                        "a server holds {}/catalog.redb; reading its URL from {}",
                        args.data.display(),
                        path.display()
                    )
                })?
                .trim()
                .to_owned()
        }
    };
    let token = std::fs::read_to_string(args.data.join("admin.token"))
        .with_context(|| format!("reading {}/admin.token", args.data.display()))?
        .trim()
        .to_owned();
    let cacert = args
        .cacert
        .clone()
        .unwrap_or_else(|| args.data.join("tls/cert.pem"));
    let client = Client::connect(&server, token, Some(&cacert))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let value =
        runtime.block_on(client.send(client.request(reqwest::Method::POST, "/v1/scrub")))?;
    Ok(serde_json::from_value(value)?)
}
