//! The client UEs use: symbol repair with back-off and failover, and a
//! resumable, verified download.
//!
//! HTTP/1.1 and HTTP/2 (ALPN) over rustls with the ring provider; the trust
//! roots are the caller's ([`ClientConfig::roots`]), so a fleet can pin its
//! operator's CA. `http://` URLs work too (tests, private networks).

pub mod backoff;
pub mod cause;
mod delta;
pub(crate) mod download;
pub mod failover;

pub use delta::{DeltaOffer, delta_uri};
pub use download::{DownloadStats, DownloadTarget};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dms_fec::{Oti, PayloadId};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use self::failover::{Failure, Plan, RepairServers};
use crate::container::{ContainerError, ContainerReader};
use crate::query::{RepairQuery, format_query};
use crate::repair::{PlanError, plan_answer};

/// Queries longer than this go in a POST body rather than the URL.
const MAX_GET_QUERY: usize = 2000;

/// Largest repair answer the client accepts.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Settings of the client.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Trusted roots for `https://` servers.
    pub roots: rustls::RootCertStore,
    /// Time allowed for a response's headers, and between body chunks.
    pub timeout: Duration,
    /// Attempts of a download (each resuming where the last stopped).
    pub download_attempts: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            roots: rustls::RootCertStore::empty(),
            timeout: Duration::from_secs(30),
            download_attempts: 5,
        }
    }
}

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// TLS setup failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A URL could not be used.
    #[error("bad URL {0}")]
    Url(String),
    /// Connecting or sending failed (the message names the whole cause,
    /// and for a refused server certificate what to do).
    #[error("request failed: {}", cause::describe(.0))]
    Request(#[from] hyper_util::client::legacy::Error),
    /// Reading a body failed.
    #[error("response body: {}", cause::describe(.0))]
    Body(#[from] hyper::Error),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The server answered with an error status.
    #[error("server answered {status}: {message}")]
    Status {
        /// The status.
        status: StatusCode,
        /// The body (the JSON error), cut short.
        message: String,
    },
    /// The repair answer is malformed.
    #[error("repair answer: {0}")]
    Container(#[from] ContainerError),
    /// The repair answer holds a symbol that was not asked for.
    #[error("unexpected symbol {0:?} in the repair answer")]
    UnexpectedSymbol(PayloadId),
    /// The repair answer lacks symbols that were asked for.
    #[error("repair answer lacks {0} symbols")]
    MissingSymbols(usize),
    /// The request does not fit the object.
    #[error("request: {0}")]
    Plan(#[from] PlanError),
    /// No repair server was given.
    #[error("no repair server")]
    NoServers,
    /// Local file I/O.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The downloaded object's SHA-256 is wrong.
    #[error("downloaded object does not match its SHA-256")]
    HashMismatch,
    /// A downloaded block's SHA-256 is wrong.
    #[error("block {0} does not match its SHA-256")]
    BlockHashMismatch(u32),
    /// The server answered a range other than the one asked.
    #[error("unexpected range answer: {0}")]
    BadRange(String),
    /// The server marked a delta but did not say its size or SHA-256.
    #[error("a delta answer without Content-Length or a SHA-256 ETag")]
    BadDeltaOffer,
    /// Every repair server failed recently and is left out until its
    /// cool-down ends.
    #[error("every repair server failed recently; one may be asked again in {retry_in:?}")]
    Resting {
        /// Until the first may be asked again.
        retry_in: Duration,
        /// Every server's last failure was a busy status (429, 503).
        overload: bool,
    },
    /// Too many redirects, or one without a usable `Location`.
    #[error("redirect: {0}")]
    Redirect(String),
}

impl ClientError {
    /// True when every server turned the request away as overloaded (429
    /// or 503): the same request may succeed after a pause.
    pub fn is_overload(&self) -> bool {
        match self {
            ClientError::Resting { overload, .. } => *overload,
            other => other.failure().is_some_and(Failure::is_overload),
        }
    }

    /// What this error says of the server that gave it, when another
    /// server (or a later attempt) may do better: a connection that
    /// failed, a time-out, a 5xx, 429 or 404, a malformed answer. `None`
    /// for errors no other server would fix (a bad request, local I/O).
    pub fn failure(&self) -> Option<Failure> {
        match self {
            ClientError::Status { status, .. }
                if status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::NOT_FOUND =>
            {
                Some(Failure::Status(status.as_u16()))
            }
            ClientError::Request(_) | ClientError::Body(_) => Some(Failure::Connect),
            ClientError::Timeout => Some(Failure::Timeout),
            ClientError::Container(_)
            | ClientError::UnexpectedSymbol(_)
            | ClientError::MissingSymbols(_) => Some(Failure::BadAnswer),
            _ => None,
        }
    }

    /// True when another server (or a later attempt) may do better.
    fn is_transient(&self) -> bool {
        self.failure().is_some()
    }
}

/// One failed try of a repair server during a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedTry {
    /// The server's index in the list.
    pub server: usize,
    /// Why it failed.
    pub failure: Failure,
    /// The error, for a person.
    pub error: String,
}

/// How a symbol request over several servers went.
#[derive(Debug)]
pub struct RepairAttempt {
    /// The symbols and the index of the server that sent them, or the
    /// error of the last server tried.
    pub result: Result<(usize, Vec<Symbol>), ClientError>,
    /// The servers that failed before (or instead of) an answer, in the
    /// order they were tried.
    pub failed: Vec<FailedTry>,
}

/// A repair symbol received: its id and T bytes.
pub type Symbol = (PayloadId, Vec<u8>);

/// The repair and download client.
#[derive(Clone, Debug)]
pub struct RepairClient {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    config: Arc<ClientConfig>,
}

impl RepairClient {
    /// A client with these settings.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(config.roots.clone())
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(RepairClient {
            http,
            config: Arc::new(config),
        })
    }

    /// Sends `request`, waiting at most the timeout for the headers.
    async fn send(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        tokio::time::timeout(self.config.timeout, self.http.request(request))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(ClientError::from)
    }

    /// Reads a whole (bounded) body.
    async fn read_body(
        &self,
        body: hyper::body::Incoming,
        limit: usize,
    ) -> Result<Bytes, ClientError> {
        let limited = http_body_util::Limited::new(body, limit);
        match tokio::time::timeout(self.config.timeout, limited.collect()).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) => match e.downcast::<hyper::Error>() {
                Ok(e) => Err(ClientError::Body(*e)),
                Err(e) => Err(ClientError::Status {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: e.to_string(),
                }),
            },
        }
    }

    /// Asks the repair servers `repair_uris` (tried in a random order, the
    /// next on a transient failure) for the symbols `query` names of an
    /// object broadcast with `oti`. Every symbol answered is checked to be
    /// one that was asked, and all must be there. Each call starts with
    /// every server's circuit closed; a UE that makes many requests keeps
    /// a [`RepairServers`] and calls [`RepairClient::symbols_failover`].
    pub async fn symbols(
        &self,
        repair_uris: &[String],
        query: &RepairQuery,
        oti: &Oti,
    ) -> Result<Vec<Symbol>, ClientError> {
        let mut servers = RepairServers::new(repair_uris.len(), rand::random());
        self.symbols_failover(repair_uris, &mut servers, query, oti)
            .await
            .result
            .map(|(_, symbols)| symbols)
    }

    /// As [`RepairClient::symbols`], with the order of tries and each
    /// server's circuit kept in `servers` (one per run, `servers.len() ==
    /// repair_uris.len()`): servers that failed recently are left out,
    /// each failure (why, by which server) is returned for the report.
    pub async fn symbols_failover(
        &self,
        repair_uris: &[String],
        servers: &mut RepairServers,
        query: &RepairQuery,
        oti: &Oti,
    ) -> RepairAttempt {
        let mut failed = Vec::new();
        let layout = oti.layout();
        let runs = match plan_answer(&query.items, &layout, u32::MAX) {
            Ok(runs) => runs,
            Err(e) => {
                return RepairAttempt {
                    result: Err(e.into()),
                    failed,
                };
            }
        };
        let mut expected = HashSet::new();
        for run in &runs {
            for i in 0..u32::from(run.count) {
                expected.insert(PayloadId::new(run.sbn, run.first_esi + i));
            }
        }
        let order = match servers.plan(Instant::now()) {
            Plan::Try(order) => order,
            Plan::Nothing => {
                return RepairAttempt {
                    result: Err(ClientError::NoServers),
                    failed,
                };
            }
            Plan::Wait { until, overload } => {
                return RepairAttempt {
                    result: Err(ClientError::Resting {
                        retry_in: until.saturating_duration_since(Instant::now()),
                        overload,
                    }),
                    failed,
                };
            }
        };
        let mut last = ClientError::NoServers;
        for i in order {
            let Some(uri) = repair_uris.get(i) else {
                continue;
            };
            match self.symbols_from(uri, query, oti, &expected).await {
                Ok(symbols) => {
                    servers.succeeded(i);
                    return RepairAttempt {
                        result: Ok((i, symbols)),
                        failed,
                    };
                }
                Err(e) => match e.failure() {
                    Some(failure) => {
                        tracing::info!(server = %uri, %failure, error = %e, "repair server failed; trying the next");
                        servers.failed(i, failure, Instant::now());
                        failed.push(FailedTry {
                            server: i,
                            failure,
                            error: e.to_string(),
                        });
                        last = e;
                    }
                    None => {
                        return RepairAttempt {
                            result: Err(e),
                            failed,
                        };
                    }
                },
            }
        }
        RepairAttempt {
            result: Err(last),
            failed,
        }
    }

    async fn symbols_from(
        &self,
        repair_uri: &str,
        query: &RepairQuery,
        oti: &Oti,
        expected: &HashSet<PayloadId>,
    ) -> Result<Vec<Symbol>, ClientError> {
        let q = format_query(query);
        let builder = hyper::Request::builder();
        let request = if q.len() <= MAX_GET_QUERY {
            builder
                .method("GET")
                .uri(format!("{repair_uri}?{q}"))
                .body(Full::new(Bytes::new()))
        } else {
            builder
                .method("POST")
                .uri(repair_uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(q)))
        }
        .map_err(|e| ClientError::Url(e.to_string()))?;
        let response = self.send(request).await?;
        let status = response.status();
        let body = self
            .read_body(response.into_body(), MAX_ANSWER_BYTES)
            .await?;
        if status != StatusCode::OK {
            return Err(status_error(status, &body));
        }
        let mut seen = HashSet::with_capacity(expected.len());
        let mut out = Vec::with_capacity(expected.len());
        for item in ContainerReader::new(&body, oti.scheme(), oti.symbol_size()) {
            let (id, symbol) = item?;
            if !expected.contains(&id) {
                return Err(ClientError::UnexpectedSymbol(id));
            }
            if seen.insert(id) {
                out.push((id, symbol.to_vec()));
            }
        }
        if seen.len() != expected.len() {
            return Err(ClientError::MissingSymbols(expected.len() - seen.len()));
        }
        Ok(out)
    }
}

impl RepairClient {
    /// GETs `uri` and returns its body (at most `limit` bytes): a signed
    /// manifest, a descriptor. Any status but 200 is an error.
    pub async fn fetch(&self, uri: &str, limit: usize) -> Result<Bytes, ClientError> {
        let request = hyper::Request::builder()
            .method("GET")
            .uri(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Url(e.to_string()))?;
        let response = self.send(request).await?;
        let status = response.status();
        let body = self.read_body(response.into_body(), limit).await?;
        if status != StatusCode::OK {
            return Err(status_error(status, &body));
        }
        Ok(body)
    }

    /// POSTs `body` as `content_type` to `uri` (a reception report). Any
    /// status but 2xx is an error.
    pub async fn post(
        &self,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(), ClientError> {
        let request = hyper::Request::builder()
            .method("POST")
            .uri(uri)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Url(e.to_string()))?;
        let response = self.send(request).await?;
        let status = response.status();
        let answer = self.read_body(response.into_body(), 64 << 10).await?;
        if !status.is_success() {
            return Err(status_error(status, &answer));
        }
        Ok(())
    }
}

fn status_error(status: StatusCode, body: &[u8]) -> ClientError {
    ClientError::Status {
        status,
        message: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
    }
}
