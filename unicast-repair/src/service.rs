//! The public router: download, symbol repair and reception reports, with
//! the overload limits in front of them.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use dms_fec::DEFAULT_ENCODER_CACHE_BYTES;
use tokio::sync::Semaphore;

use crate::limit::{LimitConfig, Limiter, cap, rate_and_cap};
use crate::repair::BlockCache;
use crate::report::ReportStore;
use crate::source::ObjectSource;

/// Settings of the download and repair service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Most symbols one repair request may ask for.
    pub max_symbols_per_request: u32,
    /// Most bytes of symbols one repair answer may carry (bounds memory per
    /// request together with the concurrency cap).
    pub max_answer_bytes: usize,
    /// Largest request body accepted (POST /repair, POST /report).
    pub max_body_bytes: usize,
    /// Most repair-symbol encodings running at once (each holds a source
    /// block and its intermediate symbols); other requests queue for one.
    /// Requests answered from cached blocks do not count.
    pub max_parallel_encodes: usize,
    /// Bytes of prepared blocks (block bytes and RaptorQ intermediate
    /// symbols, about three times the block) kept between repair requests,
    /// least recently used first out; 0 turns the cache off. The default,
    /// [`DEFAULT_ENCODER_CACHE_BYTES`] (64 MiB), holds about twenty 1 MiB
    /// blocks.
    pub encoder_cache_bytes: usize,
    /// Overload limits.
    pub limits: LimitConfig,
}

/// The default cap on symbols one repair request may ask for (a client
/// asking more splits its request).
pub const MAX_SYMBOLS_PER_REQUEST: u32 = 4096;

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_symbols_per_request: MAX_SYMBOLS_PER_REQUEST,
            max_answer_bytes: 8 << 20,
            max_body_bytes: 64 << 10,
            max_parallel_encodes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            encoder_cache_bytes: DEFAULT_ENCODER_CACHE_BYTES,
            limits: LimitConfig::default(),
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) source: Arc<dyn ObjectSource>,
    pub(crate) config: Arc<ServiceConfig>,
    pub(crate) reports: Option<Arc<dyn ReportStore>>,
    pub(crate) encoders: Arc<Semaphore>,
    pub(crate) blocks: Arc<BlockCache>,
}

/// The download and repair service's public routes:
/// `GET|HEAD /dl/{id}/{file_name}`, `GET|POST /repair` and, when `reports`
/// is given, `POST /report`.
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so
/// the per-client limits (and XML reports without a `clientId`) see the
/// client's address.
pub fn router(
    source: Arc<dyn ObjectSource>,
    reports: Option<Arc<dyn ReportStore>>,
    config: ServiceConfig,
) -> Router {
    let body_limit = config.max_body_bytes;
    let limiter = Arc::new(Limiter::new(config.limits.clone()));
    let encoders = Arc::new(Semaphore::new(config.max_parallel_encodes.max(1)));
    let blocks = Arc::new(BlockCache::new(config.encoder_cache_bytes));
    let state = AppState {
        blocks,
        source,
        config: Arc::new(config),
        reports,
        encoders,
    };
    let download = Router::new()
        .route("/dl/{id}/{file_name}", get(crate::download::download))
        .route_layer(from_fn_with_state(limiter.clone(), cap));
    let repair = Router::new()
        .route(
            "/repair",
            get(crate::repair::repair_get).post(crate::repair::repair_post),
        )
        .route("/report", post(crate::report::post_report))
        .route_layer(from_fn_with_state(limiter, rate_and_cap));
    download
        .merge(repair)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
