//! The CoAP flags shared by `dms serve` and `dms repair-serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use dms_origin::coap::CoapServe;
use dms_repair::coap::CoapConfig;

/// CoAP transports beside HTTPS, each off unless given an address.
#[derive(Debug, Args)]
pub struct CoapArgs {
    /// Serve CoAP over UDP (RFC 7252, `coap://`) here, e.g. 0.0.0.0:5683.
    #[arg(long, value_name = "ADDR")]
    coap: Option<SocketAddr>,
    /// Serve CoAP over plain TCP (RFC 8323, `coap+tcp://`) here.
    #[arg(long, value_name = "ADDR")]
    coap_tcp: Option<SocketAddr>,
    /// Serve CoAP over TLS (RFC 8323, `coaps+tcp://`, ALPN coap) here, on
    /// the HTTPS certificate, e.g. 0.0.0.0:5684.
    #[arg(long, value_name = "ADDR")]
    coaps_tcp: Option<SocketAddr>,
    /// Serve CoAP over DTLS 1.2 (RFC 7252 §9, `coaps://`) here, on the
    /// HTTPS certificate (ECDSA P-256 or Ed25519) unless --coaps-psk is
    /// given, e.g. 0.0.0.0:5684.
    #[arg(long, value_name = "ADDR")]
    coaps: Option<SocketAddr>,
    /// Authenticate `coaps://` clients by pre-shared key instead: a file
    /// of `identity:hexkey` lines (LwM2M's PSK mode).
    #[arg(long, value_name = "FILE", requires = "coaps")]
    coaps_psk: Option<PathBuf>,
    /// CoAP requests per second each client (a UDP source address, a TCP
    /// connection) may make; past it the answer is 5.03 with Max-Age.
    #[arg(long, value_name = "N", default_value_t = CoapConfig::default().per_client_rate)]
    coap_rate: f64,
}

impl CoapArgs {
    /// The transports to serve, with the public bases given.
    pub fn serve(&self, base_urls: Vec<String>) -> anyhow::Result<CoapServe> {
        anyhow::ensure!(
            self.coap_rate > 0.0,
            "--coap-rate must be a positive number of requests per second"
        );
        Ok(CoapServe {
            udp: self.coap,
            tcp: self.coap_tcp,
            tls: self.coaps_tcp,
            dtls: self.coaps,
            dtls_psk: self.coaps_psk.clone(),
            base_urls,
            config: CoapConfig {
                per_client_rate: self.coap_rate,
                per_client_burst: self.coap_rate.max(1.0),
                ..CoapConfig::default()
            },
        })
    }
}
