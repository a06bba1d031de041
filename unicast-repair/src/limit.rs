//! Overload protection: a token bucket per client IP and a global cap on
//! requests in progress. A repair storm gets 429 (this client is too fast)
//! or 503 (the server is full), both with `Retry-After`; memory stays
//! bounded because the table of clients is bounded and excess requests are
//! refused before any work.
//!
//! The client IP comes from axum's `ConnectInfo<SocketAddr>`: serve the
//! router with `into_make_service_with_connect_info::<SocketAddr>()`.
//! Without it only the global cap applies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Overload limits.
#[derive(Clone, Debug)]
pub struct LimitConfig {
    /// Sustained requests per second per client IP (repair and reports).
    pub per_client_rate: f64,
    /// Requests a client may make at once before the rate applies.
    pub per_client_burst: f64,
    /// Most client IPs tracked at once; new clients beyond it get 503.
    pub max_clients: usize,
    /// Most requests in progress at once (all routes).
    pub max_concurrent: usize,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            per_client_rate: 10.0,
            per_client_burst: 20.0,
            max_clients: 100_000,
            max_concurrent: 256,
        }
    }
}

/// A token bucket (sans-IO: the caller passes the time).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = self.at.max(now);
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, now: Instant, rate: f64, burst: f64) -> Result<(), Duration> {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if rate > 0.0 {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        } else {
            Err(Duration::from_secs(3600))
        }
    }

    /// True when the bucket has refilled completely (the client is idle).
    fn is_full(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        self.refill(now, rate, burst);
        self.tokens >= burst
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The client is over its rate: 429 after this wait.
    TooFast(Duration),
    /// The server is full: 503.
    Busy,
}

/// Token buckets of clients by key (an IP, a source address), bounded in
/// number: when full, idle clients (full buckets) are forgotten, and a new
/// client that still finds no room is refused as [`Refusal::Busy`].
#[derive(Debug)]
pub struct BucketTable<K> {
    rate: f64,
    burst: f64,
    max_clients: usize,
    buckets: HashMap<K, Bucket>,
}

impl<K: std::hash::Hash + Eq + Copy> BucketTable<K> {
    /// An empty table: `rate` requests per second, `burst` at once, at most
    /// `max_clients` tracked.
    pub fn new(rate: f64, burst: f64, max_clients: usize) -> Self {
        BucketTable {
            rate,
            burst,
            max_clients,
            buckets: HashMap::new(),
        }
    }

    /// Charges one request of `client` at `now`.
    pub fn check(&mut self, client: K, now: Instant) -> Result<(), Refusal> {
        let (rate, burst) = (self.rate, self.burst);
        if !self.buckets.contains_key(&client) && self.buckets.len() >= self.max_clients {
            // Forget idle clients: a full bucket is the same as no bucket.
            self.buckets.retain(|_, b| !b.is_full(now, rate, burst));
            if self.buckets.len() >= self.max_clients {
                return Err(Refusal::Busy);
            }
        }
        self.buckets
            .entry(client)
            .or_insert_with(|| Bucket::full(burst, now))
            .take(now, rate, burst)
            .map_err(Refusal::TooFast)
    }

    /// Clients tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no client is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// The shared limiter state.
#[derive(Debug)]
pub struct Limiter {
    buckets: Mutex<BucketTable<IpAddr>>,
    permits: Arc<Semaphore>,
}

impl Limiter {
    /// A limiter with these limits.
    pub fn new(config: LimitConfig) -> Self {
        let permits = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
        Limiter {
            buckets: Mutex::new(BucketTable::new(
                config.per_client_rate,
                config.per_client_burst,
                config.max_clients,
            )),
            permits,
        }
    }

    /// Charges one request of `ip` at `now`.
    pub fn check_client(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        self.buckets
            .lock()
            .map_err(|_| Refusal::Busy)?
            .check(ip, now)
    }

    fn refuse(refusal: Refusal) -> Response {
        match refusal {
            Refusal::TooFast(wait) => {
                let secs = u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX);
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests from this client",
                )
                .retry_after(secs)
                .into_response()
            }
            Refusal::Busy => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server busy")
                .retry_after(1)
                .into_response(),
        }
    }
}

/// Middleware: the per-client rate, then the global cap.
pub(crate) async fn rate_and_cap(
    State(limiter): State<Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip
        && let Err(refusal) = limiter.check_client(ip, Instant::now())
    {
        return Limiter::refuse(refusal);
    }
    cap(State(limiter), request, next).await
}

/// Middleware: the global cap on requests in progress. The permit is held
/// until the response body has been sent (or dropped), so slow downloads
/// count too.
pub(crate) async fn cap(
    State(limiter): State<Arc<Limiter>>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(permit) = limiter.permits.clone().try_acquire_owned() else {
        return Limiter::refuse(Refusal::Busy);
    };
    next.run(request).await.map(|body| {
        Body::new(PermitBody {
            inner: body,
            _permit: permit,
        })
    })
}

/// A body that holds a concurrency permit until it is dropped.
struct PermitBody {
    inner: Body,
    _permit: OwnedSemaphorePermit,
}

impl http_body::Body for PermitBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(2.0, t0);
        assert_eq!(b.take(t0, 1.0, 2.0), Ok(()));
        assert_eq!(b.take(t0, 1.0, 2.0), Ok(()));
        let wait = b.take(t0, 1.0, 2.0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert_eq!(b.take(t0 + Duration::from_secs(1), 1.0, 2.0), Ok(()));
        // Never more than the burst however long the client was idle.
        let later = t0 + Duration::from_secs(100);
        assert!(b.is_full(later, 1.0, 2.0));
        assert_eq!(b.take(later, 1.0, 2.0), Ok(()));
        assert_eq!(b.take(later, 1.0, 2.0), Ok(()));
        assert!(b.take(later, 1.0, 2.0).is_err());
    }

    #[test]
    fn the_client_table_is_bounded() {
        let limiter = Limiter::new(LimitConfig {
            per_client_rate: 1.0,
            per_client_burst: 1.0,
            max_clients: 2,
            max_concurrent: 1,
        });
        let t0 = Instant::now();
        let ip = |n: u8| IpAddr::from([127, 0, 0, n]);
        assert_eq!(limiter.check_client(ip(1), t0), Ok(()));
        assert_eq!(limiter.check_client(ip(2), t0), Ok(()));
        assert!(matches!(
            limiter.check_client(ip(1), t0),
            Err(Refusal::TooFast(_))
        ));
        assert_eq!(limiter.check_client(ip(3), t0), Err(Refusal::Busy));
        // Once idle clients refill they are forgotten and room is made.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(limiter.check_client(ip(3), later), Ok(()));
        assert!(
            limiter
                .buckets
                .lock()
                .map(|b| b.len() <= 2)
                .unwrap_or(false)
        );
    }
}
