//! A resumable CoAP download to a file (`dms fetch coap://…`): the
//! sans-IO [`BlockFetch`] driven over UDP (Confirmable requests,
//! retransmitted with RFC 7252's exponential back-off) or over TCP / TLS
//! (RFC 8323: CSM first, BERT when the server offers it). A cut transfer
//! resumes from the last block received (in this run, after a reconnect,
//! or in a later run from `dest.part`); the file is verified against the
//! manifest's SHA-256 and block hashes when given, fsynced and renamed
//! into place.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use coap_lite::{MessageClass, MessageType, Packet};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::block::szx_of_size;
use super::code;
use super::fetch::{
    BlockFetch, CoapUri, FetchError, Transport, client_csm, expected_etag, parse_uri,
};
use super::frame;
use crate::client::download::{open_partial, verify};
use crate::client::{ClientError, DownloadTarget};

/// Settings of a CoAP download.
#[derive(Clone, Debug)]
pub struct CoapClientConfig {
    /// Trusted roots for `coaps+tcp://`.
    pub roots: rustls::RootCertStore,
    /// Longest wait for one answer (UDP: across its retransmissions).
    pub timeout: Duration,
    /// Consecutive failures (timeouts, cut connections) tolerated; each
    /// is followed by a reconnect that resumes where the transfer stopped.
    pub attempts: u32,
    /// Block size over UDP, and over TCP when BERT is off: 16 to 1024.
    pub block_size: usize,
    /// Ask for BERT over TCP when the server offers it.
    pub bert: bool,
}

impl Default for CoapClientConfig {
    fn default() -> Self {
        CoapClientConfig {
            roots: rustls::RootCertStore::empty(),
            timeout: Duration::from_secs(45),
            attempts: 5,
            block_size: 1024,
            bert: true,
        }
    }
}

/// Why a CoAP download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoapClientError {
    /// The server's answer ended the download (4.04, ETag changed…).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// No answer in time, after every retransmission and reconnect.
    #[error("timed out: no answer from {0}")]
    Timeout(String),
    /// The connection failed or was cut, after every reconnect.
    #[error("connection to {0}: {1}")]
    Connection(String, String),
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// File I/O, or verification against the manifest.
    #[error(transparent)]
    Local(#[from] ClientError),
}

impl From<std::io::Error> for CoapClientError {
    fn from(e: std::io::Error) -> Self {
        CoapClientError::Local(ClientError::Io(e))
    }
}

impl CoapClientError {
    fn is_transient(&self) -> bool {
        matches!(
            self,
            CoapClientError::Timeout(_) | CoapClientError::Connection(..)
        )
    }
}

/// How a download went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoapDownloadStats {
    /// Requests answered.
    pub requests: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Bytes already in the partial file from an earlier run.
    pub bytes_resumed: u64,
    /// Connections made (1 + reconnects).
    pub connections: u32,
    /// Whether BERT was used.
    pub bert: bool,
}

/// RFC 7252 §4.8: ACK_TIMEOUT.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// Downloads `uri` to `dest`. With `expected` (from a verified manifest)
/// the first block's ETag must be the object's and the file must match its
/// SHA-256 and block hashes before it is renamed into place. `progress` is
/// told the bytes on disk and the total when known.
pub async fn download(
    uri: &str,
    dest: &Path,
    expected: Option<&DownloadTarget>,
    config: &CoapClientConfig,
    progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<CoapDownloadStats, CoapClientError> {
    let uri = parse_uri(uri)?;
    let (part, mut file, mut have) = open_partial(dest).await?;
    if expected.is_some_and(|t| have > t.size) {
        file.set_len(0).await?;
        have = 0;
    }
    let mut stats = CoapDownloadStats::default();
    let etag = expected.map(|t| expected_etag(&t.sha256));
    let mut fetch: Option<BlockFetch> = None;
    let mut total = expected.map(|t| t.size);
    let mut failures = 0u32;
    let mut busy = 0u32;
    'connections: loop {
        let mut conn = match Conn::open(&uri, config).await {
            Ok(c) => c,
            Err(e) if e.is_transient() && failures < config.attempts => {
                failures += 1;
                tracing::debug!(error = %e, "CoAP connect failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(failures))).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        stats.connections += 1;
        let fetch = fetch.get_or_insert_with(|| {
            let szx = if conn.bert() && config.bert {
                stats.bert = true;
                super::block::SZX_BERT
            } else {
                szx_of_size(config.block_size)
            };
            let f = BlockFetch::new(&uri, szx, have, etag.clone());
            stats.bytes_resumed = f.offset();
            f
        });
        progress(fetch.offset(), total);
        loop {
            let response = match conn.exchange(fetch, config.timeout).await {
                Ok(r) => r,
                Err(e) if e.is_transient() && failures < config.attempts => {
                    failures += 1;
                    tracing::debug!(error = %e, offset = fetch.offset(), "CoAP transfer cut; resuming");
                    continue 'connections;
                }
                Err(e) => return Err(e),
            };
            let chunk = match fetch.handle(&response) {
                Ok(c) => c,
                Err(FetchError::Busy(secs)) if busy < 10 * config.attempts.max(1) => {
                    busy += 1;
                    tokio::time::sleep(Duration::from_secs(u64::from(secs.min(60)))).await;
                    continue;
                }
                Err(e @ FetchError::EtagChanged { .. }) => {
                    // The partial bytes belong to another representation.
                    drop(file);
                    let _ = tokio::fs::remove_file(&part).await;
                    return Err(e.into());
                }
                Err(e) => return Err(e.into()),
            };
            failures = 0;
            stats.requests += 1;
            stats.bytes_received += chunk.data.len() as u64;
            if let Some(size) = chunk.size {
                if expected.is_some_and(|t| t.size != size) {
                    return Err(FetchError::Protocol(format!(
                        "Size2 {size} is not the manifest's size"
                    ))
                    .into());
                }
                total = Some(size);
            }
            file.seek(std::io::SeekFrom::Start(chunk.offset)).await?;
            file.write_all(&chunk.data).await?;
            progress(chunk.offset + chunk.data.len() as u64, total);
            if chunk.done {
                break 'connections;
            }
        }
    }
    let end = fetch.as_ref().map_or(0, BlockFetch::offset);
    file.set_len(end).await?;
    file.flush().await?;
    file.sync_all().await?;
    if let Some(target) = expected
        && let Err(e) = verify(&mut file, target).await
    {
        drop(file);
        tokio::fs::remove_file(&part).await?;
        return Err(e.into());
    }
    drop(file);
    tokio::fs::rename(&part, dest).await?;
    if let Some(dir) = dest.parent()
        && let Ok(dir) = tokio::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .await
    {
        dir.sync_all().await?;
    }
    Ok(stats)
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Conn {
    Udp {
        socket: UdpSocket,
        peer: String,
        message_id: u16,
    },
    Stream {
        stream: Box<dyn Stream>,
        peer: String,
        rx: Vec<u8>,
        bert: bool,
    },
}

async fn resolve(uri: &CoapUri) -> Result<SocketAddr, CoapClientError> {
    let peer = format!("{}:{}", uri.host, uri.port);
    tokio::net::lookup_host((uri.host.as_str(), uri.port))
        .await
        .map_err(|e| CoapClientError::Connection(peer.clone(), e.to_string()))?
        .next()
        .ok_or_else(|| CoapClientError::Connection(peer, "no address".into()))
}

impl Conn {
    async fn open(uri: &CoapUri, config: &CoapClientConfig) -> Result<Conn, CoapClientError> {
        let addr = resolve(uri).await?;
        let peer = addr.to_string();
        let cut = |e: std::io::Error| CoapClientError::Connection(addr.to_string(), e.to_string());
        if uri.transport == Transport::Udp {
            let local: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let socket = UdpSocket::bind(local).await.map_err(cut)?;
            socket.connect(addr).await.map_err(cut)?;
            return Ok(Conn::Udp {
                socket,
                peer,
                message_id: rand::random(),
            });
        }
        let tcp = tokio::time::timeout(config.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| CoapClientError::Timeout(peer.clone()))?
            .map_err(cut)?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = if uri.transport == Transport::Tls {
            let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(config.roots.clone())
            .with_no_client_auth();
            tls.alpn_protocols = vec![super::net::ALPN.to_vec()];
            let name = rustls::pki_types::ServerName::try_from(uri.host.clone())
                .map_err(|e| CoapClientError::Connection(peer.clone(), e.to_string()))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
            let tls = tokio::time::timeout(config.timeout, connector.connect(name, tcp))
                .await
                .map_err(|_| CoapClientError::Timeout(peer.clone()))?
                .map_err(cut)?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut conn = Conn::Stream {
            stream,
            peer: peer.clone(),
            rx: Vec::new(),
            bert: false,
        };
        // Our CSM, then the server's (its first message, RFC 8323 §5.3).
        let mut out = Vec::new();
        frame::encode(&client_csm(), &mut out);
        conn.write(&out).await?;
        let csm = tokio::time::timeout(config.timeout, conn.read_frame())
            .await
            .map_err(|_| CoapClientError::Timeout(peer.clone()))??;
        if u8::from(csm.header.code) != code::CSM {
            return Err(CoapClientError::Connection(
                peer,
                "the server's first message is not a CSM".into(),
            ));
        }
        if let Conn::Stream { bert, .. } = &mut conn {
            *bert = csm
                .get_first_option(coap_lite::CoapOption::Unknown(
                    super::option::CSM_BLOCK_WISE_TRANSFER,
                ))
                .is_some();
        }
        Ok(conn)
    }

    fn bert(&self) -> bool {
        matches!(self, Conn::Stream { bert: true, .. })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), CoapClientError> {
        if let Conn::Stream { stream, peer, .. } = self {
            stream
                .write_all(bytes)
                .await
                .map_err(|e| CoapClientError::Connection(peer.clone(), e.to_string()))?;
        }
        Ok(())
    }

    /// The next frame of a TCP/TLS connection.
    async fn read_frame(&mut self) -> Result<Packet, CoapClientError> {
        let Conn::Stream {
            stream, peer, rx, ..
        } = self
        else {
            return Err(CoapClientError::Connection(
                String::new(),
                "not a stream".into(),
            ));
        };
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match frame::decode(rx, super::fetch::CLIENT_MAX_MESSAGE_SIZE as usize) {
                Ok(Some((p, n))) => {
                    rx.drain(..n);
                    return Ok(p);
                }
                Ok(None) => {}
                Err(e) => return Err(CoapClientError::Connection(peer.clone(), e.to_string())),
            }
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| CoapClientError::Connection(peer.clone(), e.to_string()))?;
            if n == 0 {
                return Err(CoapClientError::Connection(
                    peer.clone(),
                    "closed by the server".into(),
                ));
            }
            rx.extend_from_slice(&buf[..n]);
        }
    }

    /// Sends the next request of `fetch` and waits for its answer.
    async fn exchange(
        &mut self,
        fetch: &mut BlockFetch,
        timeout: Duration,
    ) -> Result<Packet, CoapClientError> {
        let mut request = fetch.next_request();
        match self {
            Conn::Udp {
                socket,
                peer,
                message_id,
            } => {
                *message_id = message_id.wrapping_add(1);
                request.header.set_type(MessageType::Confirmable);
                request.header.message_id = *message_id;
                let bytes = request
                    .to_bytes()
                    .map_err(|e| CoapClientError::Connection(peer.clone(), e.to_string()))?;
                udp_exchange(socket, peer, &bytes, *message_id, fetch, timeout).await
            }
            Conn::Stream { peer, .. } => {
                let peer = peer.clone();
                let mut out = Vec::new();
                frame::encode(&request, &mut out);
                self.write(&out).await?;
                tokio::time::timeout(timeout, async {
                    loop {
                        let p = self.read_frame().await?;
                        match u8::from(p.header.code) {
                            code::PING => {
                                let mut pong = Vec::new();
                                frame::encode(
                                    &frame::message(code::PONG, p.get_token()),
                                    &mut pong,
                                );
                                self.write(&pong).await?;
                            }
                            code::ABORT | code::RELEASE => {
                                return Err(CoapClientError::Connection(
                                    peer.clone(),
                                    format!(
                                        "the server ended the connection: {}",
                                        String::from_utf8_lossy(&p.payload)
                                    ),
                                ));
                            }
                            _ if fetch.matches(&p) => return Ok(p),
                            _ => {} // CSM updates, Pong, stale answers
                        }
                    }
                })
                .await
                .map_err(|_| CoapClientError::Timeout(peer.clone()))?
            }
        }
    }
}

/// One Confirmable exchange: retransmitted at ACK_TIMEOUT × 2^n (randomised
/// by up to 1.5, RFC 7252 §4.8) until answered or `timeout` passes; a
/// separate response (empty ACK first) is waited for and acknowledged.
async fn udp_exchange(
    socket: &UdpSocket,
    peer: &str,
    request: &[u8],
    message_id: u16,
    fetch: &BlockFetch,
    timeout: Duration,
) -> Result<Packet, CoapClientError> {
    let cut = |e: std::io::Error| CoapClientError::Connection(peer.to_owned(), e.to_string());
    let deadline = tokio::time::Instant::now() + timeout;
    let mut wait = ACK_TIMEOUT.mul_f64(1.0 + rand::random::<f64>() * 0.5);
    let mut acked = false;
    let mut buf = vec![0u8; 65_536];
    socket.send(request).await.map_err(cut)?;
    let mut resend_at = tokio::time::Instant::now() + wait;
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(CoapClientError::Timeout(peer.to_owned()));
        }
        let until = if acked {
            deadline
        } else {
            resend_at.min(deadline)
        };
        match tokio::time::timeout_at(until, socket.recv(&mut buf)).await {
            Err(_) => {
                if !acked && tokio::time::Instant::now() < deadline {
                    socket.send(request).await.map_err(cut)?;
                    wait *= 2;
                    resend_at = tokio::time::Instant::now() + wait;
                }
            }
            // ICMP port unreachable of a server that is down: wait on.
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                tokio::time::sleep_until(until).await;
            }
            Ok(Err(e)) => return Err(cut(e)),
            Ok(Ok(n)) => {
                let Ok(p) = Packet::from_bytes(&buf[..n]) else {
                    continue;
                };
                let kind = p.header.get_type();
                match kind {
                    MessageType::Reset if p.header.message_id == message_id => {
                        return Err(CoapClientError::Connection(
                            peer.to_owned(),
                            "the server reset the request".into(),
                        ));
                    }
                    MessageType::Acknowledgement if p.header.message_id == message_id => {
                        if p.header.code == MessageClass::Empty {
                            acked = true; // a separate response follows
                        } else if fetch.matches(&p) {
                            return Ok(p);
                        }
                    }
                    MessageType::Confirmable | MessageType::NonConfirmable if fetch.matches(&p) => {
                        if kind == MessageType::Confirmable {
                            let id = p.header.message_id.to_be_bytes();
                            socket.send(&[0x60, 0, id[0], id[1]]).await.map_err(cut)?;
                        }
                        return Ok(p);
                    }
                    _ => {} // stale answers to earlier requests
                }
            }
        }
    }
}
