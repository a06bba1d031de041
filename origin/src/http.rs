//! The HTTP(S) serving loop shared by `dms serve` and `dms repair-serve`:
//! a TCP listener, optional TLS (tokio-rustls), HTTP/1.1 and HTTP/2 on the
//! same port (hyper-util's auto builder), any axum [`Router`].
//!
//! Each request carries the peer address as an
//! `axum::extract::ConnectInfo<SocketAddr>` extension.
//!
//! What keeps slow and hostile clients from taking the server
//! ([`HttpLimits`], the `[http]` table of the configuration):
//!
//! ```text
//! accept ──> Connections::admit   at max_connections (or max_connections_per_ip)
//!   │                             the longest-idle connection is shed; all busy: refused
//!   ├─ TLS handshake              within handshake_timeout
//!   ├─ request headers            within header_timeout (HTTP/1.1; also before the first request)
//!   ├─ request body               no gap longer than body_timeout (exchange.rs)
//!   ├─ early answers              the unread body is kept until the answer is out, then
//!   │                             drained up to drain_bytes / drain_time (exchange.rs)
//!   └─ no request in flight       closed after idle_timeout (HTTP/2: GOAWAY first)
//! ```

mod connections;
mod exchange;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

pub use connections::HttpStats;
pub use exchange::BodyTimedOut;

use connections::{Activity, Connections, Shed};
use exchange::BodyPolicy;

/// How long a connection being closed may take to finish what it is
/// doing (an answer being written) before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Time-outs and caps of the serving loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// A client must finish the TLS handshake within this.
    pub handshake_timeout: Duration,
    /// A client must send a request's headers within this (from the
    /// connection's start, or from the end of its previous answer).
    pub header_timeout: Duration,
    /// A request body may pause at most this long between two reads.
    pub body_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Most connections open at once (also held under the process's
    /// open-file limit).
    pub max_connections: usize,
    /// Most connections of one client address (0: no per-address cap;
    /// devices behind carrier NAT share addresses).
    pub max_connections_per_ip: usize,
    /// After an early answer (401, 413…), read at most this many bytes of
    /// the request body the handler left…
    pub drain_bytes: u64,
    /// …for at most this long, so the client can finish sending and read
    /// the answer.
    pub drain_time: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 16_384,
            max_connections_per_ip: 0,
            drain_bytes: 64 << 20,
            drain_time: Duration::from_secs(10),
        }
    }
}

impl HttpLimits {
    /// The connection cap, lowered to fit the open-file limit (with room
    /// for the files the server opens itself).
    fn effective_max_connections(&self) -> usize {
        const RESERVED_FILES: u64 = 512;
        match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
            Ok((soft, _)) => {
                let fit = usize::try_from(soft.saturating_sub(RESERVED_FILES).max(16))
                    .unwrap_or(usize::MAX);
                if fit < self.max_connections {
                    tracing::warn!(
                        max_connections = self.max_connections,
                        open_file_limit = soft,
                        "connection cap lowered to {fit} to fit the open-file limit"
                    );
                }
                self.max_connections.min(fit)
            }
            Err(_) => self.max_connections,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves: over TLS with
/// `tls`, else plain HTTP, with the default [`HttpLimits`]. Connections
/// already open are left to finish on their own tasks.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    serve_with(
        listener,
        app,
        tls,
        HttpLimits::default(),
        Arc::new(HttpStats::default()),
        shutdown,
    )
    .await
}

/// [`serve`] with these limits, counting into `stats`.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: HttpLimits,
    stats: Arc<HttpStats>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let connections = Connections::new(
        limits.effective_max_connections(),
        limits.max_connections_per_ip,
        stats.clone(),
    );
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let Some(slot) = connections.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: at the connection cap, none idle");
            continue;
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let activity = slot.activity().clone();
            let conn = Conn {
                peer,
                limits,
                activity: &activity,
                stats: &stats,
            };
            match acceptor {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream));
                    let tls = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, "TLS handshake: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                stats.count(Shed::HandshakeTimeout);
                                return;
                            }
                        },
                        () = activity.shed.notified() => return,
                    };
                    conn.run(TokioIo::new(tls), app).await;
                }
                None => conn.run(TokioIo::new(stream), app).await,
            }
            drop(slot);
        });
    }
}

/// One connection being served.
struct Conn<'a> {
    peer: SocketAddr,
    limits: HttpLimits,
    activity: &'a Arc<Activity>,
    stats: &'a Arc<HttpStats>,
}

impl Conn<'_> {
    async fn run<I>(self, io: TokioIo<I>, app: Router)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let policy = BodyPolicy {
            idle_timeout: self.limits.body_timeout,
            drain_bytes: self.limits.drain_bytes,
            drain_time: self.limits.drain_time,
        };
        let activity = self.activity.clone();
        let stats = self.stats.clone();
        let service = tower::service_fn(move |req: Request<Incoming>| {
            let (mut req, answer) = exchange::wrap(req, policy, activity.clone(), stats.clone());
            req.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = app.oneshot(req).await?;
                Ok::<_, std::convert::Infallible>(answer.watch(response))
            }
        });
        let service = TowerToHyperService::new(service);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            // Pings find peers that vanished without closing.
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(20));
        let connection = builder.serve_connection_with_upgrades(io, service);
        let mut connection = std::pin::pin!(connection);
        let idle_check = tokio::time::sleep(self.idle_limit());
        let mut idle_check = std::pin::pin!(idle_check);
        let result = loop {
            tokio::select! {
                result = connection.as_mut() => break Some(result),
                () = self.activity.shed.notified() => break None,
                () = idle_check.as_mut() => {
                    let limit = self.idle_limit();
                    match self.activity.idle_for() {
                        Some(idle) if idle >= limit => {
                            self.stats.count(Shed::Idle);
                            break None;
                        }
                        Some(idle) => idle_check.as_mut().reset(tokio::time::Instant::now() + (limit - idle)),
                        None => idle_check.as_mut().reset(tokio::time::Instant::now() + limit),
                    }
                }
            }
        };
        let result = match result {
            Some(result) => result,
            None => {
                // HTTP/2 gets a GOAWAY, HTTP/1.1 closes between requests;
                // whatever is still there after the grace is dropped.
                connection.as_mut().graceful_shutdown();
                match tokio::time::timeout(CLOSE_GRACE, connection.as_mut()).await {
                    Ok(result) => result,
                    Err(_) => Ok(()),
                }
            }
        };
        if let Err(e) = result {
            if e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
            {
                self.stats.count(Shed::HeaderTimeout);
            }
            tracing::debug!(%peer, "connection: {e}");
        }
    }

    /// How long the connection may stay without a request in flight: the
    /// header time-out until its first request, the idle time-out after.
    fn idle_limit(&self) -> Duration {
        if self.activity.has_had_requests() {
            self.limits.idle_timeout
        } else {
            self.limits.header_timeout
        }
    }
}

/// The peer address type put in each request's extensions.
pub type Peer = ConnectInfo<SocketAddr>;
