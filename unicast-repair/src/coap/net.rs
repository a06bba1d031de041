//! The sockets around the sans-IO CoAP endpoints: one thread on the UDP
//! socket (a datagram in, its answer out), and tokio tasks for TCP and TLS
//! connections (ALPN `coap`, RFC 8323 §4.2; the caller's rustls
//! configuration, so the origin's certificate), and DTLS associations
//! ([`super::dtls`]).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::CoapConfig;
use super::dtls::DtlsIdentity;
use super::resource::Objects;
use super::tcp::TcpSession;
use super::udp::UdpEndpoint;

/// The ALPN protocol id of CoAP over TLS (RFC 8323 §4.2).
pub const ALPN: &[u8] = b"coap";

/// How long a TLS client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to serve CoAP (each off when `None`).
#[derive(Clone, Debug, Default)]
pub struct CoapListen {
    /// `coap://`: RFC 7252 over UDP.
    pub udp: Option<SocketAddr>,
    /// `coap+tcp://`: RFC 8323 over plain TCP.
    pub tcp: Option<SocketAddr>,
    /// `coaps+tcp://`: RFC 8323 over TLS, with this rustls configuration
    /// (its ALPN list should hold [`ALPN`]).
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// `coaps://`: RFC 7252 over DTLS 1.2, with this identity.
    pub dtls: Option<(SocketAddr, DtlsIdentity)>,
}

/// Running CoAP servers; dropping this stops them.
#[derive(Debug)]
pub struct CoapServers {
    /// The UDP address bound, if serving.
    pub udp: Option<SocketAddr>,
    /// The plain TCP address bound, if serving.
    pub tcp: Option<SocketAddr>,
    /// The TLS address bound, if serving.
    pub tls: Option<SocketAddr>,
    /// The DTLS address bound, if serving.
    pub dtls: Option<SocketAddr>,
    stop_udp: Arc<AtomicBool>,
    stop_tcp: watch::Sender<bool>,
    udp_thread: Option<std::thread::JoinHandle<()>>,
}

impl CoapServers {
    /// Stops serving and waits for the UDP thread.
    pub fn stop(mut self) {
        self.signal();
        if let Some(t) = self.udp_thread.take() {
            let _ = t.join();
        }
    }

    fn signal(&self) {
        self.stop_udp.store(true, Ordering::Relaxed);
        let _ = self.stop_tcp.send(true);
    }
}

impl Drop for CoapServers {
    fn drop(&mut self) {
        self.signal();
    }
}

/// Binds what `listen` names and serves `objects` on it (call within a
/// tokio runtime: the TCP servers are tasks of it).
pub async fn start(
    objects: Arc<dyn Objects>,
    listen: CoapListen,
    config: CoapConfig,
) -> io::Result<CoapServers> {
    let (stop_tcp, stopped) = watch::channel(false);
    let stop_udp = Arc::new(AtomicBool::new(false));
    let config = Arc::new(config);
    let mut servers = CoapServers {
        udp: None,
        tcp: None,
        tls: None,
        dtls: None,
        stop_udp: stop_udp.clone(),
        stop_tcp,
        udp_thread: None,
    };
    if let Some(addr) = listen.udp {
        let socket = bind_udp(addr)?;
        servers.udp = Some(socket.local_addr()?);
        let (objects, config) = (objects.clone(), config.clone());
        servers.udp_thread = Some(
            std::thread::Builder::new()
                .name("coap-udp".into())
                .spawn(move || serve_udp(&socket, objects.as_ref(), &config, &stop_udp))?,
        );
        tracing::info!(listen = ?servers.udp, "CoAP over UDP");
    }
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    if let Some(addr) = listen.tcp {
        let listener = TcpListener::bind(addr).await?;
        servers.tcp = Some(listener.local_addr()?);
        tokio::spawn(accept_loop(
            listener,
            None,
            objects.clone(),
            config.clone(),
            connections.clone(),
            stopped.clone(),
        ));
        tracing::info!(listen = ?servers.tcp, "CoAP over TCP");
    }
    if let Some((addr, identity)) = listen.dtls {
        let bound = super::dtls::start(
            addr,
            identity,
            objects.clone(),
            config.clone(),
            connections.clone(),
            stopped.clone(),
        )
        .await?;
        servers.dtls = Some(bound);
        tracing::info!(listen = %bound, "CoAP over DTLS");
    }
    if let Some((addr, tls)) = listen.tls {
        let listener = TcpListener::bind(addr).await?;
        servers.tls = Some(listener.local_addr()?);
        tokio::spawn(accept_loop(
            listener,
            Some(TlsAcceptor::from(tls)),
            objects,
            config,
            connections,
            stopped,
        ));
        tracing::info!(listen = ?servers.tls, "CoAP over TLS");
    }
    Ok(servers)
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(addr)?;
    // Wakes up to see the stop flag.
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(socket)
}

fn serve_udp(socket: &UdpSocket, objects: &dyn Objects, config: &CoapConfig, stop: &AtomicBool) {
    let mut endpoint = UdpEndpoint::new(config);
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let (n, src) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // ICMP errors of earlier sends surface here: keep serving.
                tracing::debug!("CoAP UDP receive: {e}");
                continue;
            }
        };
        if let Some(answer) = endpoint.handle_datagram(Instant::now(), src, &buf[..n], objects)
            && let Err(e) = socket.send_to(&answer, src)
        {
            tracing::debug!(%src, "CoAP UDP send: {e}");
        }
    }
    let stats = endpoint.stats();
    tracing::info!(?stats, "CoAP over UDP stopped");
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    objects: Arc<dyn Objects>,
    config: Arc<CoapConfig>,
    connections: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("CoAP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "CoAP: too many connections; closing a new one");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (tls, objects, config, mut stopped) = (
            tls.clone(),
            objects.clone(),
            config.clone(),
            stopped.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let result =
                match tls {
                    None => {
                        tokio::select! {
                            r = connection(stream, objects, config) => r,
                            _ = stopped.changed() => Ok(()),
                        }
                    }
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, "CoAP TLS handshake: {e}");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "CoAP TLS handshake timed out");
                                    return;
                                }
                            };
                        tokio::select! {
                            r = connection(stream, objects, config) => r,
                            _ = stopped.changed() => Ok(()),
                        }
                    }
                };
            if let Err(e) = result {
                tracing::debug!(%peer, "CoAP connection: {e}");
            }
        });
    }
}

/// Runs one connection: our CSM, then bytes in, answers out. Answers are
/// made on the blocking pool (they read blobs and, once per object, the
/// catalog).
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    objects: Arc<dyn Objects>,
    config: Arc<CoapConfig>,
) -> io::Result<()> {
    let (mut session, greeting) = TcpSession::new(&config, Instant::now());
    stream.write_all(&greeting).await?;
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = match tokio::time::timeout(config.idle_timeout, stream.read(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()), // idle
        };
        if n == 0 {
            return Ok(());
        }
        let data = buf[..n].to_vec();
        let objects = objects.clone();
        let (back, out, result) = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let result = session.handle_bytes(Instant::now(), &data, objects.as_ref(), &mut out);
            (session, out, result)
        })
        .await
        .map_err(io::Error::other)?;
        session = back;
        if !out.is_empty() {
            stream.write_all(&out).await?;
        }
        if let Err(close) = result {
            tracing::debug!(?close, "CoAP connection closing");
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}
