//! The origin's HTTP API: management routes behind bearer tokens, public
//! routes for devices, metrics and the OpenAPI document.
//!
//! Seams for the pieces written elsewhere:
//! - `public_extra`: a router served without tokens beside the DD, manifest
//!   and notify routes — the unicast-repair router (`/dl`, `/repair`,
//!   `/report`, which `server::prepare` passes in);
//! - `management_extra`: routes served behind the token layer, such as
//!   the repair crate's `/v1/reports`;
//! - [`crate::repo::DeleteVeto`]: the session registry refuses deletions.

pub mod auth;
pub mod deltas;
pub mod describe;
pub mod error;
pub mod health;
pub mod metrics;
pub mod objects;
pub mod openapi;
pub mod public;
pub mod scrub;
pub mod sessions;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ed25519_dalek::VerifyingKey;

use crate::repo::Repository;
use crate::sessions::SessionRegistry;
pub use auth::Tokens;
pub use error::ApiError;
pub use metrics::Metrics;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The repository.
    pub repo: Arc<Repository>,
    /// The manifest signing key's public half.
    pub public_key: Option<VerifyingKey>,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// The broadcast sessions (also the repository's delete veto).
    pub sessions: Arc<SessionRegistry>,
    /// The stored deltas between versions.
    pub deltas: Arc<crate::deltas::DeltaStore>,
}

/// The management routes (without the token layer).
fn management(state: AppState) -> Router {
    Router::new()
        .route("/v1/objects", post(objects::create).get(objects::list))
        .route(
            "/v1/objects/{id}",
            get(objects::show)
                .patch(objects::patch)
                .delete(objects::delete),
        )
        .route("/v1/objects/{id}/deltas", get(deltas::list_route))
        .route(
            "/v1/objects/{id}/notifications",
            get(objects::notifications),
        )
        .route("/v1/names/{name}", get(objects::name_history))
        .route("/v1/sessions", post(sessions::create).get(sessions::list))
        .route(
            "/v1/sessions/{id}",
            get(sessions::show).delete(sessions::stop),
        )
        .route("/v1/keys", get(objects::keys))
        .route("/v1/scrub", post(scrub::run))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

/// The whole API: management routes (plus `management_extra`) behind
/// `tokens`, public routes (plus `public_extra`), metrics on everything,
/// JSON 404 for anything else.
pub fn router(
    state: AppState,
    tokens: Tokens,
    management_extra: Router,
    public_extra: Router,
) -> Router {
    let managed = management(state.clone()).merge(management_extra).layer(
        axum::middleware::from_fn_with_state(Arc::new(tokens), auth::require_token),
    );
    let public = Router::new()
        .route("/dd/{id}", get(public::dd))
        .route("/manifest/{id}", get(public::manifest))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/sdp/{id}", get(describe::sdp_route))
        .route("/apd/{id}", get(describe::apd_route))
        .route("/usd/{id}", get(describe::usd_route))
        .route(
            "/notify/{id}",
            post(public::notify).layer(DefaultBodyLimit::max(4096)),
        )
        .with_state(state.clone())
        .merge(public_extra);
    Router::new()
        .merge(managed)
        .merge(public)
        .fallback(no_route)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::record,
        ))
}

/// The fallback's message (the OpenAPI test tells it from "no such object").
pub const NO_ROUTE: &str = "no such route";

async fn no_route() -> ApiError {
    ApiError::not_found(NO_ROUTE)
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")),
    security(("bearer" = []))
)]
pub async fn metrics_text(State(state): State<AppState>) -> Result<Response, ApiError> {
    let repo = state.repo.clone();
    let (stats, scrub, damaged) = tokio::task::spawn_blocking(move || {
        let catalog = repo.catalog();
        let damaged = catalog
            .list(&crate::catalog::Filter::default())?
            .iter()
            .filter(|r| r.damaged.is_some())
            .count();
        Ok::<_, crate::catalog::CatalogError>((catalog.stats()?, catalog.scrub_totals()?, damaged))
    })
    .await?
    .map_err(ApiError::internal)?;
    let mut text = state.metrics.render(stats.objects, stats.stored_bytes);
    text.push_str(&metrics::render_scrub(&scrub, damaged as u64));
    text.push_str(&metrics::render_sessions(&state.sessions.counts()));
    text.push_str(&state.metrics.http.render());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
