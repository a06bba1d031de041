//! The demo's origin: `dms serve` in this process, on a temporary data
//! directory and a free loopback port, driven through its real HTTPS
//! management API as a DM server would drive it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use dms_origin::config::Config;
use dms_origin::server::{ServeOptions, prepare};
use rand::{RngCore, SeedableRng};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::commands::publish::{Client, ObjectMeta};

/// A running origin.
pub struct DemoOrigin {
    /// Its base URL (`https://127.0.0.1:PORT`).
    pub base_url: String,
    /// Its data directory.
    pub data: PathBuf,
    /// The management API client (admin token).
    pub client: Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl DemoOrigin {
    /// Starts an origin on `data` (created), listening on a free loopback
    /// port, on `runtime`.
    pub fn start(runtime: &tokio::runtime::Runtime, data: &Path) -> anyhow::Result<Self> {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .context("binding the origin's port")?;
        let listen: SocketAddr = listener.local_addr()?;
        let opts = ServeOptions {
            data: data.to_owned(),
            listen,
            config: Config::default(),
            tls: None,
            insecure_http: false,
            coap: Default::default(),
        };
        let origin = prepare(&opts).context("preparing the origin")?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = runtime.spawn(dms_origin::http::serve(
            listener,
            origin.app,
            origin.tls,
            async move {
                let _ = stopped.await;
            },
        ));
        let token = dms_origin::server::admin_token(data)?;
        let client = Client::connect(
            &origin.base_url,
            token,
            Some(&data.join("tls").join("cert.pem")),
        )?;
        Ok(DemoOrigin {
            base_url: origin.base_url,
            data: data.to_owned(),
            client,
            shutdown: Some(shutdown),
            server: Some(server),
        })
    }

    /// The origin's public key (PEM), as a UE is provisioned with it.
    pub fn public_key_pem(&self) -> anyhow::Result<String> {
        let path = self.data.join("origin.pub");
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    /// The CA certificate UEs trust (PEM file).
    pub fn cacert(&self) -> PathBuf {
        self.data.join("tls").join("cert.pem")
    }

    /// Publishes `file` as critical firmware `name` `version` (streamed to
    /// POST /v1/objects, as `dms publish` does); returns the object JSON.
    pub async fn publish(&self, file: &Path, name: &str, version: &str) -> anyhow::Result<Value> {
        let meta = ObjectMeta {
            name,
            version,
            kind: "firmware",
            priority: "critical",
            content_type: "application/octet-stream",
        };
        self.client.publish(file, &meta).await
    }

    /// Starts a broadcast session (POST /v1/sessions); returns its JSON.
    pub async fn start_session(&self, request: &Value) -> anyhow::Result<Value> {
        let post = self
            .client
            .request(Method::POST, "/v1/sessions")
            .json(request);
        self.client.send(post).await
    }

    /// A session's JSON (GET /v1/sessions/{id}).
    pub async fn session(&self, id: &str) -> anyhow::Result<Value> {
        let get = self
            .client
            .request(Method::GET, &format!("/v1/sessions/{id}"));
        self.client.send(get).await
    }

    /// The reception report summary of an object (GET /v1/reports).
    pub async fn reports(&self, object: &str) -> anyhow::Result<Value> {
        let get = self
            .client
            .request(Method::GET, "/v1/reports")
            .query(&[("object", object)]);
        self.client.send(get).await
    }

    /// Stops the server and waits (at most 10 s) for its connections to
    /// close.
    pub fn stop(self, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
        let DemoOrigin {
            client,
            shutdown,
            server,
            ..
        } = self;
        // Our own keep-alive connection would hold a graceful shutdown open.
        drop(client);
        if let Some(shutdown) = shutdown {
            let _ = shutdown.send(());
        }
        if let Some(server) = server {
            let wait =
                async { tokio::time::timeout(std::time::Duration::from_secs(10), server).await };
            match runtime.block_on(wait) {
                Ok(joined) => joined
                    .context("origin server task")?
                    .context("origin server")?,
                Err(_) => tracing::warn!("origin still had open connections after 10 s"),
            }
        }
        Ok(())
    }
}

/// Writes `size` bytes of a stand-in firmware image to `path`: seeded
/// random bytes (a real image is compressed, so it does not compress
/// further), streamed in 1 MiB chunks.
pub fn write_firmware(path: &Path, size: u64, seed: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        rng.fill_bytes(&mut chunk[..n]);
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    Ok(())
}

/// The session request for `object` on `group` at `rate` Mbit/s with
/// `overhead` % repair symbols.
pub fn session_request(object: &str, group: SocketAddr, rate: f64, overhead: u32) -> Value {
    json!({
        "objects": [object],
        "group": group.to_string(),
        "iface": "127.0.0.1",
        "rate": rate,
        "fec": "raptorq",
        "repair": overhead,
    })
}

/// Waits until session `id` has ended (sent, stopped or failed); returns
/// its last JSON.
pub async fn wait_session_end(origin: &DemoOrigin, id: &str) -> anyhow::Result<Value> {
    for _ in 0..36_000 {
        let view = origin.session(id).await?;
        match view["state"].as_str() {
            Some("scheduled" | "running") => {}
            Some("failed") => bail!("session {id} failed: {}", view["error"]),
            _ => return Ok(view),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    bail!("session {id} did not end within an hour")
}
