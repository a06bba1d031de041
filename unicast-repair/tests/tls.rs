//! The client over TLS (rustls, ring) with configured roots, HTTP/2 by ALPN.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use common::{TestSource, bytes};
use dms_repair::{ClientConfig, ClientError, DownloadTarget, RepairClient, ServiceConfig, router};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A TLS listener for axum::serve (handshakes one at a time: a test).
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[tokio::test]
async fn downloads_over_tls_with_configured_roots_and_http2() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der: CertificateDer<'static> = cert.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let source = TestSource::new();
    let data = bytes(300_000, 8);
    let info = source.add("t1", "t.bin", &data, 1280, 100);
    let h2 = Arc::new(AtomicUsize::new(0));
    let seen = h2.clone();
    let app = router(source, None, ServiceConfig::default()).layer(from_fn(
        move |req: Request, next: Next| {
            let seen = seen.clone();
            async move {
                if req.version() == axum::http::Version::HTTP_2 {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                next.run(req).await
            }
        },
    ));
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(server)),
    };
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let target = DownloadTarget {
        uri: format!("https://localhost:{port}/dl/t1/t.bin"),
        size: info.size,
        sha256: info.sha256,
        blocks: None,
    };
    let out = tempfile::tempdir().unwrap();

    // Without the root the server is not trusted.
    let untrusting = RepairClient::new(ClientConfig::default()).unwrap();
    let err = untrusting
        .download(&target, &out.path().join("a"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Request(_)), "{err}");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let client = RepairClient::new(ClientConfig {
        roots,
        ..ClientConfig::default()
    })
    .unwrap();
    let dest = out.path().join("b");
    client.download(&target, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(h2.load(Ordering::SeqCst) >= 1, "HTTP/2 was negotiated");
}
