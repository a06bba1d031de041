//! `dms serve`: everything the origin needs at start, wired together — the
//! data directory, the signing key, the admin token, TLS, the repository
//! and the API — then the HTTP(S) server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use dms_repair::{ObjectSource, RedbReports, ReportStore, ServiceConfig};
use sha2::Digest;

use crate::api::{self, AppState, Metrics, Tokens};
use crate::config::{Config, Scope};
use crate::fsutil::atomic_write;
use crate::pg::{AdminToken, PgCatalog, PgReports};
use crate::repo::{Limits, RepoError, Repository};
use crate::sessions::{SESSION_DIR, SessionRegistry, SessionStore};
use crate::storage::CatalogSpec;
use crate::urls::{Urls, host_of};

/// `DATA/base_url`: the public base URL the running origin gives out.
pub const BASE_URL_FILE: &str = "base_url";

/// How to run the origin.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The data directory.
    pub data: PathBuf,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The configuration (already read).
    pub config: Config,
    /// The operator's certificate and key (PEM); else a self-signed one.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve plain HTTP (behind a TLS-terminating proxy).
    pub insecure_http: bool,
    /// CoAP transports beside HTTPS (all off by default).
    pub coap: crate::coap::CoapServe,
}

/// An error starting the origin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// The repository could not open.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The key could not load.
    #[error(transparent)]
    Key(#[from] crate::keys::KeyError),
    /// TLS could not be prepared.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// I/O (listening, the token file).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A CoAP transport could not start.
    #[error(transparent)]
    Coap(#[from] crate::coap::CoapError),
}

/// `DATA/admin.token`: read, or generated (256 random bits in hex, mode 0600).
pub fn admin_token(data: &Path) -> std::io::Result<String> {
    let path = data.join("admin.token");
    if path.exists() {
        let token = std::fs::read_to_string(&path)?;
        let token = token.trim();
        if token.is_empty() {
            return Err(std::io::Error::other(format!(
                "{} is empty",
                path.display()
            )));
        }
        return Ok(token.to_owned());
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    atomic_write(&path, format!("{token}\n").as_bytes(), 0o600)?;
    Ok(token)
}

/// The setting of a shared catalog that holds the origins' public base
/// URL (what `DATA/base_url` holds for the embedded one).
pub const BASE_URL_SETTING: &str = "base_url";

/// `DATA/admin.token` if it is there.
fn read_admin_token(data: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(data.join("admin.token")) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The tokens of a shared catalog. The first instance on an empty
/// catalog stores its admin token there (the one already in
/// `DATA/admin.token`, else a new one, written there); every other
/// instance accepts that one and writes none.
fn shared_tokens(pg: &PgCatalog, data: &Path, tokens: &mut Tokens) -> Result<(), ServeError> {
    let local = read_admin_token(data)?;
    match pg
        .ensure_admin_token(local.clone())
        .map_err(RepoError::from)?
    {
        AdminToken::Created(token) => {
            if local.is_none() {
                atomic_write(
                    &data.join("admin.token"),
                    format!("{token}\n").as_bytes(),
                    0o600,
                )?;
            }
            tracing::info!("admin token stored in the shared catalog");
        }
        AdminToken::Existing => {}
    }
    let stored = pg.tokens().map_err(RepoError::from)?;
    for t in &stored {
        tokens.add_digest(t.sha256, t.scope, &t.name);
    }
    if let Some(local) = local {
        let digest: [u8; 32] = sha2::Sha256::digest(local.as_bytes()).into();
        if !tokens.has_digest(&digest) {
            tracing::warn!(
                "{} is not the shared catalog's admin token and is not accepted: use the \
                 first instance's",
                data.join("admin.token").display()
            );
        }
    }
    Ok(())
}

/// A started origin: the router and what it needs, before serving.
#[derive(Debug)]
pub struct Origin {
    /// The repository.
    pub repo: Arc<Repository>,
    /// The whole router: management API, sessions, public descriptor and
    /// manifest routes, and the repair service (downloads, symbol repair,
    /// reports).
    pub app: Router,
    /// The handlers' shared state.
    pub state: AppState,
    /// The accepted bearer tokens.
    pub tokens: Tokens,
    /// TLS configuration (None with `insecure_http`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The public base URL in use.
    pub base_url: String,
    /// The objects CoAP serves (the HTTPS download's source).
    pub coap_objects: Arc<dms_repair::coap::SourceObjects>,
    /// The certificate and key TLS uses (None with `insecure_http`).
    pub tls_files: Option<(PathBuf, PathBuf)>,
}

/// The validity of presigned download URLs when downloads are
/// redirected (`download_redirect`): refused without S3 blobs, or with a
/// validity SigV4 does not allow.
fn download_redirect(config: &Config) -> Result<Option<std::time::Duration>, ServeError> {
    if config.download_redirect != Some(true) {
        if config.download_redirect_expiry_secs.is_some() {
            return Err(ServeError::Config(
                "download_redirect_expiry_secs is set without --download-redirect".into(),
            ));
        }
        return Ok(None);
    }
    let spec =
        crate::storage::BlobsSpec::parse(config.blobs.as_deref()).map_err(ServeError::Config)?;
    if spec == crate::storage::BlobsSpec::Local {
        return Err(ServeError::Config(
            "--download-redirect needs blobs on S3 (--blobs s3://BUCKET[/PREFIX]): it redirects \
             downloads to presigned URLs of the bucket, and local blobs have none"
                .into(),
        ));
    }
    let expiry = config.download_redirect_expiry_secs.map_or(
        crate::s3::DEFAULT_REDIRECT_EXPIRY,
        std::time::Duration::from_secs,
    );
    if expiry.is_zero() || expiry > crate::s3::MAX_REDIRECT_EXPIRY {
        return Err(ServeError::Config(format!(
            "the download redirect expiry must be 1 to {} seconds",
            crate::s3::MAX_REDIRECT_EXPIRY.as_secs()
        )));
    }
    Ok(Some(expiry))
}

/// Prepares the data directory, key, token, TLS and repository.
pub fn prepare(opts: &ServeOptions) -> Result<Origin, ServeError> {
    let redirect_expiry = download_redirect(&opts.config)?;
    std::fs::create_dir_all(&opts.data)?;
    let scheme = if opts.insecure_http { "http" } else { "https" };
    let base = opts
        .config
        .base_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{}", opts.listen));
    let urls = Urls::new(&base)
        .and_then(|u| u.with_package_bases(opts.coap.package_bases(&base)?))
        .map_err(ServeError::Config)?;
    // Stand-alone repair servers read the base URL from here: objects'
    // Content-Locations (the repair requests' fileURI) are built from it.
    atomic_write(
        &opts.data.join(BASE_URL_FILE),
        format!("{base}\n").as_bytes(),
        0o644,
    )?;
    let key = match &opts.config.signing_key {
        Some(path) => crate::keys::load_file(path)?,
        None => crate::keys::load_or_generate(&opts.data)?,
    };
    let catalog_spec =
        CatalogSpec::parse(opts.config.catalog.as_deref()).map_err(ServeError::Config)?;
    let shared = match &catalog_spec {
        CatalogSpec::Embedded => None,
        CatalogSpec::Postgres(url) => {
            let pg = PgCatalog::connect(url).map_err(RepoError::from)?;
            pg.set_setting(BASE_URL_SETTING, &base)
                .map_err(RepoError::from)?;
            Some(pg)
        }
    };
    let mut tokens = Tokens::new();
    match &shared {
        None => tokens.add(&admin_token(&opts.data)?, Scope::ReadWrite, "admin"),
        Some(pg) => shared_tokens(pg, &opts.data, &mut tokens)?,
    }
    for t in &opts.config.tokens {
        tokens.add(&t.token, t.scope, &t.name);
    }
    let tls_files = if opts.insecure_http {
        None
    } else {
        Some(match &opts.tls {
            Some(pair) => pair.clone(),
            None => {
                let host = host_of(urls.base());
                crate::tls::ensure_self_signed(&opts.data, &host.into_iter().collect::<Vec<_>>())?
            }
        })
    };
    let tls = match &tls_files {
        Some((cert, key_path)) => Some(crate::tls::server_config(cert, key_path)?),
        None => None,
    };
    let mut limits = Limits::default();
    if let Some(q) = opts.config.quota_bytes {
        limits.quota_bytes = Some(q);
    }
    if let Some(m) = opts.config.min_free_bytes {
        limits.min_free_bytes = m;
    }
    if let Some(t) = opts.config.symbol_size {
        if t == 0 || !t.is_multiple_of(4) {
            return Err(ServeError::Config(
                "symbol_size must be a positive multiple of 4".into(),
            ));
        }
        limits.symbol_size = t;
    }
    if let Some(fec) = &opts.config.fec {
        limits.fec = match fec.parse::<dms_fec::FecScheme>() {
            Ok(s) if s.has_repair_symbols() => s,
            _ => {
                return Err(ServeError::Config(format!(
                    "fec must be raptorq or raptor, not {fec:?}"
                )));
            }
        };
    }
    let public_key = key.verifying_key();
    let blobs_spec = crate::storage::BlobsSpec::parse(opts.config.blobs.as_deref())
        .map_err(ServeError::Config)?;
    let bucket = blobs_spec.bucket()?;
    let blobs = blobs_spec.open(&opts.data, bucket.as_ref())?;
    blobs_spec.remember(&opts.data)?;
    catalog_spec.remember(&opts.data)?;
    let repo = Arc::new(match &shared {
        None => Repository::open_on(&opts.data, blobs, key, urls.clone(), limits)?,
        Some(pg) => {
            if bucket.is_none() {
                tracing::warn!(
                    "a shared catalog with local blobs: other instances cannot serve this one's \
                     objects (give every instance the same --blobs s3://…)"
                );
            }
            Repository::open_with(Arc::new(pg.clone()), blobs, key, urls.clone(), limits)?
        }
    });
    let mut delta_config = crate::deltas::DeltaConfig::default();
    if let Some(n) = opts.config.delta_bases {
        delta_config.bases = n;
    }
    if let Some(r) = opts.config.delta_max_ratio {
        if !(r > 0.0 && r <= 1.0) {
            return Err(ServeError::Config(
                "delta_max_ratio must be in (0, 1]".into(),
            ));
        }
        delta_config.max_ratio = r;
    }
    let deltas = Arc::new(crate::storage::open_deltas(
        &opts.data,
        bucket.as_ref(),
        delta_config,
    )?);
    // Deltas to versions deleted since the last start.
    deltas.prune(&repo)?;
    let state = AppState {
        deltas: deltas.clone(),
        repo: repo.clone(),
        public_key: Some(public_key),
        metrics: Arc::new(Metrics::default()),
        sessions: SessionRegistry::install_with_deltas(
            repo.clone(),
            Some(deltas.clone()),
            Some(SessionStore::open(&opts.data.join(SESSION_DIR))?),
        ),
    };
    // Sessions scheduled or running when the origin last stopped go on.
    let resumed = state.sessions.recover()?;
    if resumed > 0 {
        tracing::info!(resumed, "broadcast sessions resumed");
    }
    // Reception reports live in their own redb file: the catalog stays
    // behind its trait (a shared PostgreSQL catalog later has no redb
    // handle to lend), and a busy report stream never contends with
    // publishing for the catalog's single writer.
    // On a shared catalog they live in its database, so that every
    // instance takes reports and sums up all of them.
    let reports: Arc<dyn ReportStore> = match &shared {
        Some(pg) => Arc::new(PgReports::new(pg.clone())),
        None => Arc::new(RedbReports::new(Arc::new(
            redb::Database::create(opts.data.join("reports.redb")).map_err(|e| {
                ServeError::Config(format!(
                    "opening {}: {e}",
                    opts.data.join("reports.redb").display()
                ))
            })?,
        ))),
    };
    let source: Arc<dyn ObjectSource> =
        Arc::new(crate::deltas::DeltaSource::new(repo.clone(), deltas));
    let mut service = ServiceConfig::default();
    if let Some(bytes) = opts.config.repair_encoder_cache_bytes {
        service.encoder_cache_bytes = usize::try_from(bytes).map_err(|_| {
            ServeError::Config("repair_encoder_cache_bytes does not fit this machine".into())
        })?;
    }
    // Downloads redirected to the bucket (the flag is refused above
    // without one).
    let source: Arc<dyn ObjectSource> = match (redirect_expiry, &bucket) {
        (Some(expiry), Some(bucket)) => {
            tracing::info!(
                ?expiry,
                "downloads redirected to presigned URLs of the bucket"
            );
            Arc::new(crate::s3::RedirectSource::new(
                source,
                repo.clone(),
                bucket.clone(),
                expiry,
            ))
        }
        _ => source,
    };
    let app = api::router(
        state.clone(),
        tokens.clone(),
        dms_repair::reports_router(reports.clone()),
        dms_repair::router(source.clone(), Some(reports), service),
    );
    Ok(Origin {
        repo,
        app,
        state,
        tokens,
        tls,
        base_url: urls.base().to_owned(),
        coap_objects: Arc::new(dms_repair::coap::SourceObjects::new(source)),
        tls_files,
    })
}

/// Prepares and serves until `shutdown` resolves.
pub async fn run(
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let origin = tokio::task::spawn_blocking({
        let opts = opts.clone();
        move || prepare(&opts)
    })
    .await
    .map_err(|e| ServeError::Io(std::io::Error::other(e)))??;
    let limits = opts
        .config
        .http
        .limits()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    tracing::info!(
        listen = %listener.local_addr()?,
        base = %origin.base_url,
        tls = origin.tls.is_some(),
        "origin serving"
    );
    let http = crate::http::serve_with(
        listener,
        origin.app,
        origin.tls,
        limits,
        origin.state.metrics.http.clone(),
        shutdown,
    );
    crate::coap::serve_with_coap(http, &opts.coap, origin.coap_objects, origin.tls_files)
        .await
        .map_err(ServeError::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn hosts_come_out_of_base_urls() {
        assert_eq!(
            host_of("https://dms.example:8443/x").as_deref(),
            Some("dms.example")
        );
        assert_eq!(host_of("https://[::1]:8443").as_deref(), Some("::1"));
        assert_eq!(host_of("http://10.0.0.1").as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn admin_token_is_made_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let t = admin_token(dir.path()).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(admin_token(dir.path()).unwrap(), t);
        let mode = std::fs::metadata(dir.path().join("admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
