//! TLS for the HTTPS server: a self-signed certificate made at first start
//! (or the operator's own), loaded into a rustls server configuration with
//! the ring provider and ALPN for HTTP/2 and HTTP/1.1.

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsutil::atomic_write;

/// An error preparing TLS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// The certificate or key is unusable.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// `DATA/tls/cert.pem` and `DATA/tls/key.pem`: generates a self-signed
/// certificate for `names` (plus `localhost`, `127.0.0.1` and `::1`) when
/// they are absent, and returns their paths.
pub fn ensure_self_signed(data: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data.join("tls");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(&dir).map_err(|source| TlsError::Io {
        path: dir.clone(),
        source,
    })?;
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for n in names {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let certified = rcgen::generate_simple_self_signed(sans)?;
    atomic_write(
        &key_path,
        certified.signing_key.serialize_pem().as_bytes(),
        0o600,
    )
    .map_err(|source| TlsError::Io {
        path: key_path.clone(),
        source,
    })?;
    atomic_write(&cert_path, certified.cert.pem().as_bytes(), 0o644).map_err(|source| {
        TlsError::Io {
            path: cert_path.clone(),
            source,
        }
    })?;
    Ok((cert_path, key_path))
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>, TlsError> {
    std::fs::File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// A rustls server configuration (ring provider; ALPN h2 and http/1.1)
/// from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    server_config_alpn(cert, key, &[b"h2", b"http/1.1"])
}

/// The certificate chain and private key in PEM files.
pub fn load_pem(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = rustls_pemfile::certs(&mut open(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Io {
            path: cert.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Config(format!(
            "{}: no certificate",
            cert.display()
        )));
    }
    let key_der = rustls_pemfile::private_key(&mut open(key)?)
        .map_err(|source| TlsError::Io {
            path: key.to_path_buf(),
            source,
        })?
        .ok_or_else(|| TlsError::Config(format!("{}: no private key", key.display())))?;
    Ok((certs, key_der))
}

/// A rustls server configuration from PEM files offering the ALPN
/// protocols `alpn` (`coap` for CoAP over TLS, RFC 8323 §4.2).
pub fn server_config_alpn(
    cert: &Path,
    key: &Path,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (certs, key_der) = load_pem(cert, key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Config(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key_der)
    .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn self_signed_certificate_is_made_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ensure_self_signed(dir.path(), &["dms.example".into()]).unwrap();
        let first = std::fs::read(&cert).unwrap();
        ensure_self_signed(dir.path(), &[]).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), first);
        let config = server_config(&cert, &key).unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");
        assert!(server_config(&key, &key).is_err());
    }
}
