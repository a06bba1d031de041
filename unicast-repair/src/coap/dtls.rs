//! CoAP over DTLS 1.2 (`coaps://`, RFC 7252 §9), the secure transport of
//! LwM2M devices that speak UDP: webrtc-dtls does the record layer and the
//! handshake (rustls has no DTLS), and every decrypted datagram goes to the
//! same sans-IO [`UdpEndpoint`] as plain `coap://` (deduplication, rate
//! limits, Block2), whose answer goes back encrypted.
//!
//! Two ways to authenticate, as LwM2M defines them: the origin's
//! certificate (an ECDSA P-256 or Ed25519 key;
//! `TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8`, LwM2M's mandatory suite, first), or
//! pre-shared keys by identity (`TLS_PSK_WITH_AES_128_CCM_8` first). DTLS
//! 1.2 allows one or the other per listener.
//!
//! Each handshake runs in its own task with a time-out, so a client that
//! stalls mid-handshake holds one connection slot, never the listener.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{Semaphore, watch};
use webrtc_dtls::cipher_suite::CipherSuiteId;
use webrtc_dtls::config::{Config, ExtendedMasterSecretType};
use webrtc_dtls::conn::DTLSConn;
use webrtc_dtls::crypto::Certificate;
use webrtc_util::conn::Listener;
use webrtc_util::conn::conn_udp_listener::ListenConfig;

use super::CoapConfig;
use super::resource::Objects;
use super::udp::UdpEndpoint;

/// How long a DTLS client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first byte of a DTLS handshake record (content type 22): only these
/// open a connection; anything else from an unknown address is dropped.
const HANDSHAKE: u8 = 22;

/// DTLS credentials that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DtlsError {
    /// The key is not one DTLS here can sign with.
    #[error(
        "coaps (DTLS) needs an ECDSA P-256 or Ed25519 private key in PKCS#8 \
         (the self-signed certificate dms makes has one): {0}"
    )]
    Key(String),
    /// A pre-shared key table that cannot be used.
    #[error("coaps pre-shared keys: {0}")]
    Psk(String),
}

/// How the `coaps://` listener authenticates itself (and its clients).
#[derive(Clone)]
pub struct DtlsIdentity(Config);

impl std::fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = if self.0.psk.is_some() {
            "psk"
        } else {
            "certificate"
        };
        f.debug_tuple("DtlsIdentity").field(&mode).finish()
    }
}

impl DtlsIdentity {
    /// Authenticates with a certificate chain and its private key (PKCS#8,
    /// ECDSA P-256 or Ed25519).
    pub fn certificate(
        chain: &[CertificateDer<'_>],
        key: &PrivateKeyDer<'_>,
    ) -> Result<Self, DtlsError> {
        let PrivateKeyDer::Pkcs8(pkcs8) = key else {
            return Err(DtlsError::Key("the key is not PKCS#8".into()));
        };
        // webrtc-dtls takes its certificate as PEM with a PRIVATE_KEY block
        // first: build that from the DER we hold.
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut pem = format!(
            "-----BEGIN PRIVATE_KEY-----\n{}\n-----END PRIVATE_KEY-----\n",
            b64.encode(pkcs8.secret_pkcs8_der())
        );
        for cert in chain {
            pem.push_str(&format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                b64.encode(cert.as_ref())
            ));
        }
        let certificate = Certificate::from_pem(&pem).map_err(|e| DtlsError::Key(e.to_string()))?;
        let config = Config {
            certificates: vec![certificate],
            cipher_suites: vec![
                CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8,
                CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256,
                CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm,
            ],
            extended_master_secret: ExtendedMasterSecretType::Request,
            ..Config::default()
        };
        Self::checked(config).map_err(DtlsError::Key)
    }

    /// Authenticates clients (and itself) by pre-shared keys: `keys` maps
    /// an identity to its key. An unknown identity fails the handshake.
    pub fn psk(keys: HashMap<Vec<u8>, Vec<u8>>) -> Result<Self, DtlsError> {
        if keys.is_empty() {
            return Err(DtlsError::Psk("no keys".into()));
        }
        if let Some((id, _)) = keys.iter().find(|(_, k)| k.is_empty()) {
            return Err(DtlsError::Psk(format!(
                "identity {:?} has an empty key",
                String::from_utf8_lossy(id)
            )));
        }
        let keys = Arc::new(keys);
        let config = Config {
            psk: Some(Arc::new(move |identity: &[u8]| {
                keys.get(identity).cloned().ok_or_else(|| {
                    webrtc_dtls::Error::Other(format!(
                        "unknown PSK identity {:?}",
                        String::from_utf8_lossy(identity)
                    ))
                })
            })),
            psk_identity_hint: Some(b"dms".to_vec()),
            cipher_suites: vec![
                CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8,
                CipherSuiteId::Tls_Psk_With_Aes_128_Gcm_Sha256,
                CipherSuiteId::Tls_Psk_With_Aes_128_Ccm,
            ],
            extended_master_secret: ExtendedMasterSecretType::Request,
            ..Config::default()
        };
        Self::checked(config).map_err(DtlsError::Psk)
    }

    /// Refuses, now rather than at the first handshake, a configuration
    /// webrtc-dtls would refuse.
    fn checked(config: Config) -> Result<Self, String> {
        if let Some(cert) = config.certificates.first() {
            use webrtc_dtls::crypto::CryptoPrivateKeyKind as Kind;
            if !matches!(cert.private_key.kind, Kind::Ecdsa256(_) | Kind::Ed25519(_)) {
                return Err("an RSA key cannot sign DTLS handshakes here".into());
            }
        }
        Ok(DtlsIdentity(config))
    }
}

/// Parses a pre-shared key table: one `identity:key` per line, the key in
/// hex (`0x` optional); blank lines and `#` comments are skipped.
pub fn parse_psk_table(text: &str) -> Result<HashMap<Vec<u8>, Vec<u8>>, DtlsError> {
    let mut keys = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| DtlsError::Psk(format!("line {}: {why}", n + 1));
        let (identity, key) = line
            .rsplit_once(':')
            .ok_or_else(|| bad("expected identity:hexkey"))?;
        if identity.is_empty() {
            return Err(bad("empty identity"));
        }
        let key = key.trim();
        let key = key.strip_prefix("0x").unwrap_or(key);
        let key = hex::decode(key).map_err(|e| bad(&format!("the key is not hex: {e}")))?;
        if key.is_empty() {
            return Err(bad("empty key"));
        }
        if keys.insert(identity.as_bytes().to_vec(), key).is_some() {
            return Err(bad("identity given twice"));
        }
    }
    if keys.is_empty() {
        return Err(DtlsError::Psk("no identity:key lines".into()));
    }
    Ok(keys)
}

/// Binds `addr` for DTLS; returns the address bound and the task serving
/// it until `stopped` changes.
pub(super) async fn start(
    addr: SocketAddr,
    identity: DtlsIdentity,
    objects: Arc<dyn Objects>,
    config: Arc<CoapConfig>,
    connections: Arc<Semaphore>,
    stopped: watch::Receiver<bool>,
) -> io::Result<SocketAddr> {
    let mut listen = ListenConfig {
        accept_filter: Some(Box::new(|packet: &[u8]| {
            let handshake = packet.first() == Some(&HANDSHAKE);
            Box::pin(async move { handshake })
        })),
        ..ListenConfig::default()
    };
    let listener: Arc<dyn Listener + Send + Sync> =
        Arc::new(listen.listen(addr).await.map_err(io::Error::other)?);
    let bound = listener.addr().await.map_err(io::Error::other)?;
    let endpoint = Arc::new(Mutex::new(UdpEndpoint::new(&config)));
    tokio::spawn(accept_loop(
        listener,
        identity,
        endpoint,
        objects,
        config,
        connections,
        stopped,
    ));
    Ok(bound)
}

async fn accept_loop(
    listener: Arc<dyn Listener + Send + Sync>,
    identity: DtlsIdentity,
    endpoint: Arc<Mutex<UdpEndpoint>>,
    objects: Arc<dyn Objects>,
    config: Arc<CoapConfig>,
    connections: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (conn, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // The listener is closed or broken: nothing more comes.
                    tracing::warn!("CoAP DTLS accept: {e}");
                    return;
                }
            },
            _ = stopped.changed() => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "CoAP DTLS: too many connections; dropping a new one");
            let _ = conn.close().await;
            continue;
        };
        let (identity, endpoint, objects, config, mut stopped) = (
            identity.0.clone(),
            endpoint.clone(),
            objects.clone(),
            config.clone(),
            stopped.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let handshake = DTLSConn::new(conn.clone(), identity, false, None);
            let dtls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(dtls)) => dtls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "CoAP DTLS handshake: {e}");
                    let _ = conn.close().await;
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "CoAP DTLS handshake timed out");
                    let _ = conn.close().await;
                    return;
                }
            };
            tokio::select! {
                r = session(&dtls, peer, endpoint, objects, &config) => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, "CoAP DTLS session: {e}");
                    }
                }
                _ = stopped.changed() => {}
            }
            let _ = dtls.close().await;
        });
    }
    let _ = listener.close().await;
}

/// Serves one DTLS association: decrypted datagrams in, answers out, until
/// the client closes it or stays silent for the idle time-out.
async fn session(
    dtls: &DTLSConn,
    peer: SocketAddr,
    endpoint: Arc<Mutex<UdpEndpoint>>,
    objects: Arc<dyn Objects>,
    config: &CoapConfig,
) -> io::Result<()> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = match tokio::time::timeout(config.idle_timeout, dtls.read(&mut buf, None)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(io::Error::other(e)),
            Err(_) => return Ok(()), // idle
        };
        let datagram = buf[..n].to_vec();
        let (endpoint, objects) = (endpoint.clone(), objects.clone());
        // Answers read blobs (and, once per object, the catalog).
        let answer = tokio::task::spawn_blocking(move || {
            endpoint
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .handle_datagram(Instant::now(), peer, &datagram, objects.as_ref())
        })
        .await
        .map_err(io::Error::other)?;
        if let Some(answer) = answer {
            dtls.write(&answer, None).await.map_err(io::Error::other)?;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn psk_tables_parse_and_bad_lines_are_named() {
        let keys = parse_psk_table("# devices\nsensor-1:00112233\n\nsensor-2:0xaabb\n").unwrap();
        assert_eq!(keys[&b"sensor-1".to_vec()], [0x00, 0x11, 0x22, 0x33]);
        assert_eq!(keys[&b"sensor-2".to_vec()], [0xaa, 0xbb]);
        for (text, why) in [
            ("a:00\nnocolon\n", "line 2"),
            ("a:zz\n", "not hex"),
            (":00\n", "empty identity"),
            ("a:\n", "empty key"),
            ("a:00\na:01\n", "twice"),
            ("# nothing\n", "no identity"),
        ] {
            let err = parse_psk_table(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn identities_are_checked_when_made() {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        assert!(DtlsIdentity::certificate(&[certified.cert.der().clone()], &key).is_ok());
        let garbage = PrivateKeyDer::Pkcs8(vec![1, 2, 3].into());
        assert!(DtlsIdentity::certificate(&[certified.cert.der().clone()], &garbage).is_err());
        assert!(DtlsIdentity::psk(HashMap::new()).is_err());
        let one = HashMap::from([(b"id".to_vec(), b"secret".to_vec())]);
        assert!(DtlsIdentity::psk(one).is_ok());
    }
}
