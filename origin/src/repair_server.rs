//! `dms repair-serve`: the unicast download and symbol repair service
//! alone, read-only over a data directory that a `dms serve` may be
//! writing at the same time (the catalog is opened with a read-only redb
//! handle that follows the writer's commits). Repair capacity scales out
//! by running more of these behind a load balancer or CDN.
//!
//! It serves `/dl/…` and `/repair`; reception reports go to the origin
//! (the `report_uri` it hands out), so this server writes nothing.
//!
//! On a shared catalog (`--catalog postgres://…` with `--blobs s3://…`)
//! it needs no data directory at all: the objects come from the catalog,
//! the bytes from the bucket, and the origins' base URL from the
//! catalog's settings (or `--origin-base-url`); TLS then needs
//! `--tls-cert`/`--tls-key`, or `--insecure-http` behind a proxy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dms_repair::{ObjectSource, ServiceConfig};

use crate::pg::PgCatalog;
use crate::repo::{Limits, RepoError, Repository};
use crate::server::{BASE_URL_SETTING, ServeError};
use crate::storage::CatalogSpec;
use crate::urls::Urls;

/// How to run a stand-alone repair server.
#[derive(Clone, Debug)]
pub struct RepairServeOptions {
    /// The origin's data directory (opened read-only); none on a shared
    /// catalog with S3 blobs.
    pub data: Option<PathBuf>,
    /// The catalog (the origin's `--catalog`).
    pub catalog: crate::storage::CatalogSpec,
    /// Where the blobs and deltas are (the origin's `--blobs`).
    pub blobs: crate::storage::BlobsSpec,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The origin's public base URL, which objects' Content-Locations (the
    /// `fileURI` of repair requests) are built from; default: what the
    /// origin wrote to `DATA/base_url`.
    pub origin_base_url: Option<String>,
    /// Certificate and key (PEM); default: the origin's `DATA/tls/` pair.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve plain HTTP (behind a TLS-terminating proxy or CDN).
    pub insecure_http: bool,
    /// Caps of the repair service.
    pub service: ServiceConfig,
    /// CoAP transports beside HTTPS (all off by default).
    pub coap: crate::coap::CoapServe,
}

/// The router and TLS configuration of a repair server, before serving.
#[derive(Debug)]
pub struct RepairServer {
    /// The download and repair routes.
    pub app: axum::Router,
    /// TLS configuration (None with `insecure_http`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The objects CoAP serves (the HTTPS download's source).
    pub coap_objects: Arc<dms_repair::coap::SourceObjects>,
    /// The certificate and key TLS uses (None with `insecure_http`).
    pub tls_files: Option<(PathBuf, PathBuf)>,
}

/// Opens the data directory read-only and builds the repair router.
pub fn prepare_repair(opts: &RepairServeOptions) -> Result<RepairServer, ServeError> {
    let shared = match &opts.catalog {
        CatalogSpec::Postgres(url) => Some(PgCatalog::connect(url).map_err(RepoError::from)?),
        CatalogSpec::Embedded => None,
    };
    let data = match (&opts.data, &shared) {
        (Some(data), _) => Some(data.as_path()),
        (None, Some(_)) => None,
        (None, None) => {
            return Err(ServeError::Config(
                "--data is needed with the embedded catalog (or give --catalog postgres://… \
                 and --blobs s3://…)"
                    .into(),
            ));
        }
    };
    let base = match (&opts.origin_base_url, &shared, data) {
        (Some(base), _, _) => base.clone(),
        (None, Some(pg), _) => pg
            .setting(BASE_URL_SETTING)
            .map_err(RepoError::from)?
            .ok_or_else(|| {
                ServeError::Config(
                    "the catalog has no base URL yet: start `dms serve` on it once, or give \
                     --origin-base-url"
                        .into(),
                )
            })?,
        (None, None, data) => {
            // `data` is set: without a shared catalog it was required above.
            let path = data
                .unwrap_or(Path::new("."))
                .join(crate::server::BASE_URL_FILE);
            std::fs::read_to_string(&path)
                .map_err(|e| {
                    ServeError::Config(format!(
                        "reading the origin's base URL from {}: {e} (start `dms serve` on this \
                         data directory once, or give --origin-base-url)",
                        path.display()
                    ))
                })?
                .trim()
                .to_owned()
        }
    };
    let urls = Urls::new(&base).map_err(ServeError::Config)?;
    let tls_files = if opts.insecure_http {
        None
    } else {
        Some(match (&opts.tls, data) {
            (Some(pair), _) => pair.clone(),
            (None, None) => {
                return Err(ServeError::Config(
                    "without a data directory give --tls-cert/--tls-key, or --insecure-http \
                     behind a TLS proxy"
                        .into(),
                ));
            }
            (None, Some(data)) => {
                let dir = data.join("tls");
                let pair = (dir.join("cert.pem"), dir.join("key.pem"));
                if !pair.0.exists() || !pair.1.exists() {
                    return Err(ServeError::Config(format!(
                        "no certificate in {}: give --tls-cert/--tls-key, start `dms serve` on this \
                         data directory once, or use --insecure-http behind a TLS proxy",
                        dir.display()
                    )));
                }
                pair
            }
        })
    };
    let tls = match &tls_files {
        Some((cert, key)) => Some(crate::tls::server_config(cert, key)?),
        None => None,
    };
    let bucket = opts.blobs.bucket()?;
    // Without a data directory the blobs must be in a bucket (the local
    // store's directory is the only use of `data` below then).
    let data = match (data, &bucket) {
        (Some(data), _) => data,
        (None, Some(_)) => Path::new("."),
        (None, None) => {
            return Err(ServeError::Config(
                "without a data directory the blobs must be on S3: give --blobs s3://…".into(),
            ));
        }
    };
    let blobs = opts.blobs.open(data, bucket.as_ref())?;
    let repo = Arc::new(match shared {
        Some(pg) => Repository::new(Arc::new(pg), blobs, None, urls, Limits::default()),
        None => Repository::open_read_only_on(data, blobs, urls)?,
    });
    let deltas = crate::storage::open_deltas_read_only(data, bucket.as_ref());
    let source: Arc<dyn ObjectSource> =
        Arc::new(crate::deltas::DeltaSource::new(repo, Arc::new(deltas)));
    let app = dms_repair::router(source.clone(), None, opts.service.clone());
    Ok(RepairServer {
        app,
        tls,
        coap_objects: Arc::new(dms_repair::coap::SourceObjects::new(source)),
        tls_files,
    })
}

/// Serves the repair router until `shutdown` resolves.
pub async fn run_repair(
    opts: RepairServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let server = tokio::task::spawn_blocking({
        let opts = opts.clone();
        move || prepare_repair(&opts)
    })
    .await
    .map_err(|e| ServeError::Io(std::io::Error::other(e)))??;
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, tls = server.tls.is_some(), "repair server");
    let http = crate::http::serve(listener, server.app, server.tls, shutdown);
    crate::coap::serve_with_coap(http, &opts.coap, server.coap_objects, server.tls_files)
        .await
        .map_err(ServeError::from)
}
