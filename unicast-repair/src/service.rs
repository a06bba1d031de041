//! The public router: download, symbol repair and reception reports, with
//! the overload limits in front of them.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use tokio::sync::Semaphore;

use crate::limit::{Limiter, cap, rate_and_cap};
use crate::report::ReportStore;
use crate::source::ObjectSource;
use crate::state::{AppState, BlockCache, ServiceConfig};

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
        .route("/report", post(crate::report_http::post_report))
        .route_layer(from_fn_with_state(limiter, rate_and_cap));
    download
        .merge(repair)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
