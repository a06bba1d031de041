//! An origin on a loopback port over real TLS, and a client that trusts its
//! generated certificate.

#![allow(dead_code)] // each test file uses part of this

use std::sync::Arc;

use dms_origin::config::Config;
use dms_origin::server::{ServeOptions, prepare};

pub struct TestServer {
    pub base: String,
    pub data: tempfile::TempDir,
    pub client: reqwest::Client,
    pub token: String,
    pub repo: Arc<dms_origin::Repository>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub fn client_trusting(cert_pem: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(cert_pem).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .unwrap()
}

pub async fn start(config: Config) -> TestServer {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ServeOptions {
        data: data.path().to_path_buf(),
        listen: addr,
        config,
        tls: None,
        insecure_http: false,
        coap: Default::default(),
    };
    let origin = tokio::task::spawn_blocking(move || prepare(&opts).unwrap())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(dms_origin::http::serve(
        listener,
        origin.app,
        origin.tls,
        async move {
            let _ = rx.await;
        },
    ));
    let token = std::fs::read_to_string(data.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    TestServer {
        base: format!("https://{addr}"),
        client: client_trusting(&data.path().join("tls/cert.pem")),
        data,
        token,
        repo: origin.repo,
        _shutdown: tx,
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(&self.token)
    }

    pub async fn publish(
        &self,
        query: &str,
        body: Vec<u8>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let response = self
            .client
            .post(self.url(&format!("/v1/objects?{query}")))
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }
}

pub async fn json_of(response: reqwest::Response) -> (reqwest::StatusCode, serde_json::Value) {
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    let value = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, value)
}

pub fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
