//! CoAP beside HTTPS in `dms serve` and `dms repair-serve`: which
//! transports listen where (`--coap`, `--coap-tcp`, `--coaps-tcp`,
//! `--coaps` with `--coaps-psk`; all
//! off by default), the public base of each (`--coap-base-url`, else the
//! listen address), and starting `dms_repair::coap` on the same object
//! source as the HTTPS download.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dms_repair::coap::dtls::DtlsError;
use dms_repair::coap::{CoapConfig, CoapListen, CoapServers, DtlsIdentity, SourceObjects};

/// A CoAP transport that could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoapError {
    /// Bad flags.
    #[error("configuration: {0}")]
    Config(String),
    /// The certificate could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The DTLS identity could not be made.
    #[error(transparent)]
    Dtls(#[from] DtlsError),
    /// Binding or serving failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// CoAP transports to serve.
#[derive(Clone, Debug, Default)]
pub struct CoapServe {
    /// `coap://` (RFC 7252, UDP).
    pub udp: Option<SocketAddr>,
    /// `coap+tcp://` (RFC 8323, plain TCP).
    pub tcp: Option<SocketAddr>,
    /// `coaps+tcp://` (RFC 8323, TLS with the origin's certificate).
    pub tls: Option<SocketAddr>,
    /// `coaps://` (RFC 7252 over DTLS 1.2).
    pub dtls: Option<SocketAddr>,
    /// Pre-shared keys for `coaps://` (`identity:hexkey` lines); without
    /// them DTLS uses the origin's certificate.
    pub dtls_psk: Option<PathBuf>,
    /// Public bases (`coap://host[:port]`, `coap+tcp://…`, `coaps+tcp://…`)
    /// given out in package URIs, one per scheme at most; a transport
    /// without one uses its listen address.
    pub base_urls: Vec<String>,
    /// Limits.
    pub config: CoapConfig,
}

/// The URI schemes of the transports, in the order above.
pub const SCHEMES: [&str; 4] = ["coap", "coap+tcp", "coaps+tcp", "coaps"];

impl CoapServe {
    /// True when any transport is on.
    pub fn enabled(&self) -> bool {
        self.udp.is_some() || self.tcp.is_some() || self.tls.is_some() || self.dtls.is_some()
    }

    /// The public base of each enabled transport, `(scheme, base)`: the
    /// configured one, else `scheme://listen` (an unspecified listen
    /// address, `0.0.0.0` or `::`, takes the host of `http_base`).
    pub fn package_bases(&self, http_base: &str) -> Result<Vec<(String, String)>, String> {
        for base in &self.base_urls {
            let scheme = base.split_once("://").map_or("", |(s, _)| s);
            if !SCHEMES.contains(&scheme) {
                return Err(format!(
                    "--coap-base-url {base:?}: the scheme must be one of {}",
                    SCHEMES.join(", ")
                ));
            }
        }
        let mut out = Vec::new();
        for (scheme, listen) in SCHEMES
            .iter()
            .zip([self.udp, self.tcp, self.tls, self.dtls])
        {
            let Some(listen) = listen else {
                if let Some(b) = self
                    .base_urls
                    .iter()
                    .find(|b| b.starts_with(&format!("{scheme}://")))
                {
                    return Err(format!(
                        "--coap-base-url {b:?}: {scheme} is not served (no listen address)"
                    ));
                }
                continue;
            };
            let prefix = format!("{scheme}://");
            let base = match self.base_urls.iter().find(|b| b.starts_with(&prefix)) {
                Some(b) => b.trim_end_matches('/').to_owned(),
                None if listen.ip().is_unspecified() => {
                    let host = crate::urls::host_of(http_base).ok_or_else(|| {
                        format!(
                            "no host in {http_base:?} for the {scheme} base: give --coap-base-url"
                        )
                    })?;
                    let host = if host.contains(':') {
                        format!("[{host}]")
                    } else {
                        host
                    };
                    format!("{prefix}{host}:{}", listen.port())
                }
                None => format!("{prefix}{listen}"),
            };
            out.push(((*scheme).to_owned(), base));
        }
        Ok(out)
    }

    /// Starts the enabled transports on `objects` (TLS with the certificate
    /// and key at `tls`, ALPN `coap`).
    pub async fn start(
        &self,
        objects: Arc<SourceObjects>,
        tls: Option<(&Path, &Path)>,
    ) -> Result<Option<CoapServers>, CoapError> {
        if !self.enabled() {
            return Ok(None);
        }
        let tls_files = tls;
        let tls = match self.tls {
            None => None,
            Some(addr) => {
                let (cert, key) = tls.ok_or_else(|| {
                    CoapError::Config(
                        "--coaps-tcp needs a certificate (not with --insecure-http)".into(),
                    )
                })?;
                Some((
                    addr,
                    crate::tls::server_config_alpn(cert, key, &[dms_repair::coap::net::ALPN])?,
                ))
            }
        };
        let dtls = match self.dtls {
            None => None,
            Some(addr) => Some((addr, self.dtls_identity(tls_files)?)),
        };
        let listen = CoapListen {
            udp: self.udp,
            tcp: self.tcp,
            tls,
            dtls,
        };
        let servers = dms_repair::coap::start(objects, listen, self.config.clone()).await?;
        Ok(Some(servers))
    }
}

impl CoapServe {
    /// The DTLS identity: the pre-shared keys of `--coaps-psk`, else the
    /// certificate and key at `tls`.
    fn dtls_identity(&self, tls: Option<(&Path, &Path)>) -> Result<DtlsIdentity, CoapError> {
        if let Some(path) = &self.dtls_psk {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CoapError::Config(format!("--coaps-psk {}: {e}", path.display())))?;
            let keys = dms_repair::coap::parse_psk_table(&text)
                .map_err(|e| CoapError::Config(format!("--coaps-psk {}: {e}", path.display())))?;
            return Ok(DtlsIdentity::psk(keys)?);
        }
        let (cert, key) = tls.ok_or_else(|| {
            CoapError::Config(
                "--coaps needs a certificate (not with --insecure-http) or --coaps-psk FILE".into(),
            )
        })?;
        let (chain, key) = crate::tls::load_pem(cert, key)?;
        Ok(DtlsIdentity::certificate(&chain, &key)?)
    }
}

/// Runs the CoAP transports of `coap` beside `http` (the HTTP(S) server,
/// a future that ends at shutdown) and stops them when it ends (both `dms
/// serve` and `dms repair-serve`).
pub(crate) async fn serve_with_coap(
    http: impl std::future::Future<Output = std::io::Result<()>>,
    coap: &CoapServe,
    objects: Arc<SourceObjects>,
    tls_files: Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<(), CoapError> {
    let files = tls_files.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
    let servers = coap.start(objects, files).await?;
    http.await?;
    if let Some(servers) = servers {
        tokio::task::spawn_blocking(move || servers.stop())
            .await
            .ok();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn bases_come_from_flags_or_listen_addresses() {
        let serve = CoapServe {
            udp: Some("0.0.0.0:5683".parse().unwrap()),
            tls: Some("127.0.0.1:5684".parse().unwrap()),
            ..CoapServe::default()
        };
        assert_eq!(
            serve.package_bases("https://dms.example:8443").unwrap(),
            [
                ("coap".to_owned(), "coap://dms.example:5683".to_owned()),
                (
                    "coaps+tcp".to_owned(),
                    "coaps+tcp://127.0.0.1:5684".to_owned()
                ),
            ]
        );
        let serve = CoapServe {
            base_urls: vec!["coap://fw.example/".into()],
            ..serve
        };
        assert_eq!(
            serve.package_bases("https://x").unwrap()[0].1,
            "coap://fw.example"
        );
        let bad = CoapServe {
            base_urls: vec!["http://x".into()],
            ..serve.clone()
        };
        assert!(
            bad.package_bases("https://x")
                .unwrap_err()
                .contains("scheme")
        );
        let unserved = CoapServe {
            base_urls: vec!["coap+tcp://x".into()],
            ..serve
        };
        assert!(
            unserved
                .package_bases("https://x")
                .unwrap_err()
                .contains("not served")
        );
    }
}
