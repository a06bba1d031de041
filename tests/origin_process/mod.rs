//! A `dms serve` process for the end-to-end tests that start, kill and
//! restart one (origin_crash, chaos_kill9, scrub, full_disk): a free port,
//! the process, a client trusting its certificate, and the wait until it
//! answers.
#![allow(dead_code)] // each test uses what it needs

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `dms serve` on DATA at 127.0.0.1:PORT, quiet.
pub fn spawn_server(data: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["serve", "--data"])
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// An HTTPS client trusting the origin's self-signed certificate.
pub fn client(data: &Path) -> reqwest::Client {
    let pem = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Waits (bounded) until the server answers; returns a client and the token.
pub async fn wait_ready(data: &Path, base: &str) -> (reqwest::Client, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "server did not start");
        if data.join("tls/cert.pem").exists() && data.join("admin.token").exists() {
            let token = std::fs::read_to_string(data.join("admin.token"))
                .unwrap()
                .trim()
                .to_owned();
            let client = client(data);
            if let Ok(r) = client
                .get(format!("{base}/v1/objects"))
                .bearer_auth(&token)
                .send()
                .await
                && r.status().is_success()
            {
                return (client, token);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
