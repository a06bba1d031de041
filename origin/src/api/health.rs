//! `GET /healthz` (liveness: the process answers) and `GET /readyz`
//! (readiness: the catalog and the blob store can be reached now), for
//! load balancers. Both are token-free and tiny; `/readyz` answers 503
//! with a JSON error and a `Retry-After` while a store is away, and 200
//! again as soon as it is back (nothing is restarted).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;

/// Liveness: always 200 `{"status":"ok"}` while the server runs.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is alive")))]
pub async fn healthz() -> Response {
    Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Readiness: 200 `{"status":"ready"}` when the catalog and the blob store
/// answer, else 503 with `Retry-After`.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "Catalog and blob store reachable"),
        (status = 503, description = "A store is unreachable", body = super::error::ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    let repo = state.repo.clone();
    tokio::task::spawn_blocking(move || repo.check_ready())
        .await?
        .map_err(ApiError::unavailable)?;
    Ok(Json(serde_json::json!({ "status": "ready" })).into_response())
}
