//! `dms serve`: the origin (repository, management API, descriptors).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use dms_origin::config::Config;
use dms_origin::server::{ServeOptions, run};

/// Arguments of `dms serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory (catalog, blobs, keys, admin token, TLS certificate;
    /// with --catalog postgres:// and --blobs s3:// only the key, the
    /// token file, the certificate and the session state).
    #[arg(long)]
    data: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Configuration file (TOML: base_url, quota_bytes, min_free_bytes, symbol_size, fec, tokens).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Public base URL used in every URI given out (overrides the config file).
    #[arg(long)]
    base_url: Option<String>,
    /// Where blobs and deltas live: `s3://BUCKET[/PREFIX]` (endpoint and
    /// credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP), or `local`
    /// (DATA/blobs, the default). Overrides the config key `blobs`.
    #[arg(long, value_name = "URL")]
    blobs: Option<String>,
    /// The catalog: `postgres://USER@HOST[:PORT]/DB`, shared by every
    /// instance (and `dms repair-serve`) on it — objects, tokens, reports;
    /// or `redb` (DATA/catalog.redb, the default). Overrides the config
    /// key `catalog`.
    #[arg(long, value_name = "URL")]
    catalog: Option<String>,
    /// The manifest signing key (the PKCS#8 PEM `dms keygen` writes),
    /// the same file on every instance of a shared catalog; default
    /// DATA/origin.key, made at first start. Overrides `signing_key`.
    #[arg(long, value_name = "FILE")]
    signing_key: Option<PathBuf>,
    /// TLS certificate chain (PEM); default: a self-signed one in DATA/tls/.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Answer downloads (`GET /dl/…`) with a 307 redirect to a
    /// short-lived presigned URL of the blob in the S3 bucket, so the
    /// bytes flow from the store, not through the origin (needs
    /// `--blobs s3://…`). Overrides the config key `download_redirect`.
    #[arg(long)]
    download_redirect: bool,
    /// Seconds a presigned download URL is valid (default 300). Overrides
    /// the config key `download_redirect_expiry_secs`.
    #[arg(long, value_name = "SECS")]
    download_redirect_expiry: Option<u64>,
    /// Serve plain HTTP (only behind a TLS-terminating proxy).
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    insecure_http: bool,
    #[command(flatten)]
    coap: super::coap_args::CoapArgs,
    /// Public base of a CoAP transport in package URIs
    /// (`coap://host[:port]`, `coap+tcp://…`, `coaps+tcp://…`; once per
    /// scheme); default: its listen address.
    #[arg(long, value_name = "URL")]
    coap_base_url: Vec<String>,
}

/// Runs `dms serve` until Ctrl-C or SIGTERM.
pub fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).with_context(|| format!("reading {}", path.display()))?,
        None => Config::default(),
    };
    if let Some(base) = args.base_url {
        config.base_url = Some(base);
    }
    if let Some(blobs) = args.blobs {
        config.blobs = Some(blobs);
    }
    if let Some(catalog) = args.catalog {
        config.catalog = Some(catalog);
    }
    if let Some(key) = args.signing_key {
        config.signing_key = Some(key);
    }
    if args.download_redirect {
        config.download_redirect = Some(true);
    }
    if let Some(secs) = args.download_redirect_expiry {
        config.download_redirect_expiry_secs = Some(secs);
    }
    let opts = ServeOptions {
        data: args.data.clone(),
        listen: args.listen,
        config,
        tls: args.tls_cert.zip(args.tls_key),
        insecure_http: args.insecure_http,
        coap: args.coap.serve(args.coap_base_url)?,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        eprintln!(
            "dms serve: listening on {} (admin token in {})",
            opts.listen,
            opts.data.join("admin.token").display()
        );
        run(opts, shutdown_signal()).await
    })?;
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
