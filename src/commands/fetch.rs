//! `dms fetch URI --out FILE`: what a device does with the Package URI its
//! DM server wrote (LwM2M `/5/0/1`): download it over `https://` (the
//! agent's resumable download: Range and If-Range) or `coap://`,
//! `coap+tcp://`, `coaps+tcp://` (block-wise, BERT over TCP), resume a cut
//! transfer from the last block, verify it against the origin's signed
//! manifest (`--origin-key`), and put it in place atomically (a `.part`
//! file, fsync, rename).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use dms_repair::coap::client::{CoapClientConfig, download as coap_download};
use dms_repair::manifest::{ManifestBody, SignedManifest, public_key_from_pem};
use dms_repair::{ClientConfig, DownloadTarget, RepairClient};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Arguments of `dms fetch`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The Package URI: `https://…/dl/ID/NAME`, `coap://…`, `coap+tcp://…`
    /// or `coaps+tcp://…`.
    uri: String,
    /// Where the object goes (written as FILE.part until it is whole and
    /// verified; a FILE.part left by a cut run is resumed).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The origin's public key (PEM, `DATA/origin.pub`): the object must
    /// match the manifest it signed (size, SHA-256, block hashes).
    #[arg(long, value_name = "PEM")]
    origin_key: Option<PathBuf>,
    /// The object's signed manifest: an `https://` URL or a file. Default
    /// for an `https://` URI: `{base}/manifest/{id}` beside it; a CoAP URI
    /// verified with `--origin-key` needs it (the object's `manifest_uri`).
    #[arg(long, value_name = "URL|FILE")]
    manifest: Option<String>,
    /// Trusted CA certificate (PEM) for `https://` and `coaps+tcp://`.
    #[arg(long, value_name = "PEM")]
    cacert: Option<PathBuf>,
    /// CoAP block size (16, 32, …, 1024).
    #[arg(long, default_value_t = 1024, value_name = "BYTES")]
    block_size: usize,
    /// Over coap+tcp and coaps+tcp, ask 1024-byte blocks even when the
    /// server offers BERT (several KiB per message).
    #[arg(long)]
    no_bert: bool,
    /// Seconds to wait for an answer (over UDP, across retransmissions).
    #[arg(long, default_value_t = 45.0, value_name = "SECS")]
    timeout: f64,
    /// Consecutive failures (timeouts, cut connections) to resume after.
    #[arg(long, default_value_t = 5)]
    attempts: u32,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Runs `dms fetch`.
pub fn run(args: FetchArgs) -> anyhow::Result<()> {
    if !args.block_size.is_power_of_two() || !(16..=1024).contains(&args.block_size) {
        bail!("--block-size must be a power of two from 16 to 1024");
    }
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--timeout must be a positive number of seconds")?;
    let roots = super::receive::roots(args.cacert.as_deref())?;
    let scheme = args
        .uri
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .with_context(|| format!("{}: not a URI", args.uri))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let http = RepairClient::new(ClientConfig {
        roots: roots.clone(),
        timeout,
        download_attempts: args.attempts.max(1),
    })?;
    let manifest = runtime.block_on(manifest(&args, &scheme, &http))?;
    let target = manifest.as_ref().map(|m| DownloadTarget {
        uri: args.uri.clone(),
        size: m.size,
        sha256: m.sha256,
        blocks: Some((m.oti.layout(), m.block_sha256.clone())),
    });
    let bar = progress_bar(args.quiet, target.as_ref().map(|t| t.size));
    let summary = match scheme.as_str() {
        "https" | "http" => {
            let target = match target {
                Some(t) => t,
                None => runtime.block_on(unverified_target(&args.uri, &http))?,
            };
            bar.set_length(target.size);
            let stats = runtime.block_on(async {
                let watch = watch_part(&args.out, bar.clone());
                let result = http.download(&target, &args.out).await;
                watch.abort();
                result
            })?;
            format!(
                "{} requests, {} bytes received, {} resumed",
                stats.requests, stats.bytes_received, stats.bytes_resumed
            )
        }
        "coap" | "coap+tcp" | "coaps+tcp" => {
            let config = CoapClientConfig {
                roots,
                timeout,
                attempts: args.attempts,
                block_size: args.block_size,
                bert: !args.no_bert,
            };
            let progress = {
                let bar = bar.clone();
                move |done: u64, total: Option<u64>| {
                    if let Some(total) = total {
                        bar.set_length(total);
                    }
                    bar.set_position(done);
                }
            };
            let stats = runtime
                .block_on(coap_download(
                    &args.uri,
                    &args.out,
                    target.as_ref(),
                    &config,
                    &progress,
                ))
                .with_context(|| format!("fetching {}", args.uri))?;
            format!(
                "{} requests{}, {} bytes received, {} resumed, {} connection(s)",
                stats.requests,
                if stats.bert { " (BERT)" } else { "" },
                stats.bytes_received,
                stats.bytes_resumed,
                stats.connections
            )
        }
        other => bail!("{other}: dms fetch takes https, coap, coap+tcp and coaps+tcp URIs"),
    };
    bar.finish_and_clear();
    let size = std::fs::metadata(&args.out)?.len();
    let verified = if manifest.is_some() {
        "verified against the signed manifest"
    } else if scheme.starts_with("http") {
        "checked against the unsigned manifest's SHA-256 (no --origin-key)"
    } else {
        "NOT verified (no --origin-key)"
    };
    eprintln!(
        "dms fetch: {} ({size} bytes, {verified}) in {:.1} s: {summary}",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The verified manifest body, with `--origin-key`.
async fn manifest(
    args: &FetchArgs,
    scheme: &str,
    http: &RepairClient,
) -> anyhow::Result<Option<ManifestBody>> {
    let Some(key_path) = &args.origin_key else {
        return Ok(None);
    };
    let pem = std::fs::read_to_string(key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let key = public_key_from_pem(&pem).with_context(|| format!("{}", key_path.display()))?;
    let location = match (&args.manifest, scheme) {
        (Some(m), _) => m.clone(),
        (None, "https" | "http") => manifest_uri(&args.uri)?,
        (None, _) => bail!(
            "--origin-key with a CoAP URI needs --manifest (the object's manifest_uri, or a file)"
        ),
    };
    let bytes = read_manifest(&location, http).await?;
    let body = SignedManifest::from_json(&bytes)
        .and_then(|m| m.verify(&key))
        .with_context(|| {
            format!(
                "the manifest {location} does not verify with {}",
                key_path.display()
            )
        })?;
    if let Some(id) = id_of(&args.uri)
        && id != body.id
    {
        bail!(
            "the manifest is of object {}, the URI names object {id}",
            body.id
        );
    }
    Ok(Some(body))
}

async fn read_manifest(location: &str, http: &RepairClient) -> anyhow::Result<Vec<u8>> {
    if location.starts_with("https://") || location.starts_with("http://") {
        Ok(http
            .fetch(location, 1 << 20)
            .await
            .with_context(|| format!("fetching the manifest {location}"))?
            .to_vec())
    } else {
        std::fs::read(location).with_context(|| format!("reading the manifest {location}"))
    }
}

/// The object id in `…/dl/{id}/{name}`.
fn id_of(uri: &str) -> Option<&str> {
    let path = uri.split_once("://")?.1.split(['?', '#']).next()?;
    let (_, rest) = path.split_once("/dl/")?;
    rest.split('/').next().filter(|id| !id.is_empty())
}

/// `{base}/manifest/{id}` for `{base}/dl/{id}/{name}`.
fn manifest_uri(uri: &str) -> anyhow::Result<String> {
    let (base, _) = uri.rsplit_once("/dl/").with_context(|| {
        format!("{uri} is not a download URI ({{base}}/dl/{{id}}/{{name}}): give --manifest")
    })?;
    let id = id_of(uri).with_context(|| format!("no object id in {uri}"))?;
    Ok(format!("{base}/manifest/{id}"))
}

/// Without `--origin-key`: the size and SHA-256 from the (unverified)
/// manifest beside the URI, so the download is still checked end to end.
async fn unverified_target(uri: &str, http: &RepairClient) -> anyhow::Result<DownloadTarget> {
    let location = manifest_uri(uri)?;
    let bytes = read_manifest(&location, http).await?;
    let body = SignedManifest::from_json(&bytes)
        .and_then(|m| m.body())
        .with_context(|| format!("the manifest {location} does not parse"))?;
    Ok(DownloadTarget {
        uri: uri.to_owned(),
        size: body.size,
        sha256: body.sha256,
        blocks: Some((body.oti.layout(), body.block_sha256)),
    })
}

fn progress_bar(quiet: bool, total: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::new(total.unwrap_or(0));
    if quiet {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    } else if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// The HTTPS download writes `FILE.part`: its length is the progress.
fn watch_part(out: &Path, bar: ProgressBar) -> tokio::task::JoinHandle<()> {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    let part = out.with_file_name(name);
    tokio::spawn(async move {
        loop {
            if let Ok(m) = tokio::fs::metadata(&part).await {
                bar.set_position(m.len());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_sit_beside_download_uris() {
        assert_eq!(
            manifest_uri("https://h:1/x/dl/abc/fw.bin").ok().as_deref(),
            Some("https://h:1/x/manifest/abc")
        );
        assert_eq!(id_of("coap://h/dl/abc/fw.bin?from=1"), Some("abc"));
        assert!(manifest_uri("https://h/other").is_err());
    }
}
