//! `dms publish`: uploads an object to an origin and prints its JSON; and
//! the small HTTPS client that `dms objects` shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;

/// How to reach an origin.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Origin URL.
    #[arg(long, default_value = "https://127.0.0.1:8443")]
    server: String,
    /// Bearer token (default: DATA/admin.token with --data).
    #[arg(long)]
    token: Option<String>,
    /// CA certificate (PEM) to trust (default: DATA/tls/cert.pem with --data).
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Data directory of a local origin, to take its token and certificate from.
    #[arg(long)]
    data: Option<PathBuf>,
}

/// A client of the management API.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    server: String,
    token: String,
}

fn tls_config(cacert: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let roots = super::receive::roots(cacert)?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

impl Client {
    /// A client from the command-line arguments.
    pub fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let token = match (&args.token, &args.data) {
            (Some(t), _) => t.clone(),
            (None, Some(data)) => std::fs::read_to_string(data.join("admin.token"))
                .with_context(|| format!("reading {}/admin.token", data.display()))?
                .trim()
                .to_owned(),
            (None, None) => bail!("give --token (or --data of a local origin)"),
        };
        let cacert = args
            .cacert
            .clone()
            .or_else(|| args.data.as_ref().map(|d| d.join("tls/cert.pem")));
        if args.server.starts_with("https://") && cacert.is_none() {
            bail!("give --cacert PEM (or --data of a local origin) to trust the server");
        }
        Self::connect(&args.server, token, cacert.as_deref())
    }

    /// A client of the origin at `server` with `token`, trusting the CA
    /// certificate `cacert` (PEM) for `https://`.
    pub fn connect(server: &str, token: String, cacert: Option<&Path>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config(cacert)?)
            .build()?;
        Ok(Self {
            http,
            server: server.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// A request to `path` on the server, with the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.server))
            .bearer_auth(&self.token)
    }

    /// Sends a request; returns the JSON body of a success, or fails with
    /// the server's error message.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<serde_json::Value> {
        let response = request.send().await.map_err(|e| {
            anyhow::anyhow!(
                "request to the origin {}: {}",
                self.server,
                dms_repair::client::cause::describe(&e)
            )
        })?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            bail!("{status}: {message}");
        }
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// Arguments of `dms publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The object to publish.
    file: PathBuf,
    /// Object name.
    #[arg(long)]
    name: String,
    /// Object version.
    #[arg(long)]
    version: String,
    /// Kind: firmware, os-patch, config, certificate, dm-command, app, other.
    #[arg(long, default_value = "other")]
    kind: String,
    /// Priority: critical, high, normal, low.
    #[arg(long, default_value = "normal")]
    priority: String,
    /// MIME type.
    #[arg(long, default_value = "application/octet-stream")]
    content_type: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// What an object is published as (`POST /v1/objects` query and type).
pub struct ObjectMeta<'a> {
    /// Object name.
    pub name: &'a str,
    /// Object version.
    pub version: &'a str,
    /// Kind (firmware, os-patch, …).
    pub kind: &'a str,
    /// Priority (critical, high, normal, low).
    pub priority: &'a str,
    /// MIME type.
    pub content_type: &'a str,
}

impl Client {
    /// Streams `file` to the origin as a new object; returns its JSON.
    pub async fn publish(
        &self,
        file: &Path,
        meta: &ObjectMeta<'_>,
    ) -> anyhow::Result<serde_json::Value> {
        let opened = tokio::fs::File::open(file)
            .await
            .with_context(|| format!("opening {}", file.display()))?;
        let len = opened.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(opened));
        let request = self
            .request(reqwest::Method::POST, "/v1/objects")
            .query(&[
                ("name", meta.name),
                ("version", meta.version),
                ("kind", meta.kind),
                ("priority", meta.priority),
            ])
            .header(reqwest::header::CONTENT_TYPE, meta.content_type)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body);
        self.send(request).await
    }
}

/// Runs `dms publish`: streams the file, prints the object JSON.
pub fn run_publish(args: PublishArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.server)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let meta = ObjectMeta {
        name: &args.name,
        version: &args.version,
        kind: &args.kind,
        priority: &args.priority,
        content_type: &args.content_type,
    };
    let value = runtime.block_on(client.publish(&args.file, &meta))?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
