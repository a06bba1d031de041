//! Management API read throughput: `GET /v1/objects/{id}` and
//! `GET /dd/{id}` under a closed-loop load generator on loopback, over TLS
//! (HTTP/1.1 and HTTP/2) and plain HTTP. Prints requests per second.
//!
//! Server and load generator share this process (and the machine's cores),
//! so the figures are a floor for the server alone.
//!
//! ```text
//! cargo bench -p dms-origin --bench api_read            # full run
//! cargo bench -p dms-origin --bench api_read -- --quick # smoke run
//! ```
#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed run

use std::sync::Arc;
use std::time::Instant;

use dms_origin::config::Config;
use dms_origin::server::{ServeOptions, prepare};

const CONCURRENCY: usize = 32;

fn tls_config(cert: Option<&std::path::Path>, h2: bool) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(cert) = cert {
        let pem = std::fs::read(cert).unwrap();
        for c in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(c.unwrap()).unwrap();
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = if h2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    config
}

async fn start(tls: bool) -> (String, tempfile::TempDir, tokio::sync::oneshot::Sender<()>) {
    let data = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ServeOptions {
        data: data.path().to_path_buf(),
        listen: addr,
        config: Config::default(),
        tls: None,
        insecure_http: !tls,
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
    let scheme = if tls { "https" } else { "http" };
    (format!("{scheme}://{addr}"), data, tx)
}

/// Runs `total` GETs of `url` from `CONCURRENCY` workers; returns req/s.
async fn load(clients: &[reqwest::Client], url: &str, token: &str, total: usize) -> f64 {
    let per_worker = total / CONCURRENCY;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let client = clients[w % clients.len()].clone();
        let url = url.to_owned();
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                let r = client.get(&url).bearer_auth(&token).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (per_worker * CONCURRENCY) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick" || a == "--test");
    let total = if quick { 320 } else { 40_000 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for (label, tls, h2) in [
            ("https h1", true, false),
            ("https h2", true, true),
            ("http  h1", false, false),
        ] {
            let (base, data, _stop) = start(tls).await;
            let token = std::fs::read_to_string(data.path().join("admin.token")).unwrap();
            let token = token.trim().to_owned();
            let cert = data.path().join("tls/cert.pem");
            // HTTP/1.1: one connection per worker; HTTP/2: a few shared connections.
            let n_clients = if h2 { 4 } else { CONCURRENCY };
            let clients: Vec<reqwest::Client> = (0..n_clients)
                .map(|_| {
                    let b = reqwest::Client::builder()
                        .use_preconfigured_tls(tls_config(tls.then_some(cert.as_path()), h2))
                        .pool_max_idle_per_host(CONCURRENCY);
                    if h2 { b.http2_prior_knowledge() } else { b.http1_only() }
                        .build()
                        .unwrap()
                })
                .collect();
            let obj: serde_json::Value = clients[0]
                .post(format!("{base}/v1/objects?name=fw.bin&version=1"))
                .bearer_auth(&token)
                .body(vec![7u8; 1 << 20])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = obj["id"].as_str().unwrap();
            let object = load(&clients, &format!("{base}/v1/objects/{id}"), &token, total).await;
            let dd = load(&clients, &format!("{base}/dd/{id}"), &token, total).await;
            println!(
                "{label}: GET /v1/objects/{{id}} {object:>8.0} req/s   GET /dd/{{id}} {dd:>8.0} req/s   ({CONCURRENCY} concurrent)"
            );
        }
    });
}
