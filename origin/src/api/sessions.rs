//! `/v1/sessions…`: broadcast sessions (see [`crate::sessions`]).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::describe::with_uris;
use super::error::ErrorBody;
use super::error::{ApiError, Json, Path};
use crate::sessions::{SessionError, SessionList, SessionRequest, SessionView};

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::UnknownObject(_) => ApiError::not_found(e.to_string()),
            SessionError::Invalid(_) => ApiError::bad_request(e.to_string()),
            SessionError::Busy(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            SessionError::Repo(e) => e.into(),
        }
    }
}

/// Schedules a broadcast session of stored objects.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    request_body = SessionRequest,
    responses(
        (status = 201, description = "Scheduled (it starts at `start_at`, or now)", body = SessionView),
        (status = 400, description = "Bad body (group, rate, FEC, symbol size, …)", body = ErrorBody),
        (status = 404, description = "An object is unknown or withdrawn", body = ErrorBody),
        (status = 503, description = "Too many sessions at once", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<SessionRequest>,
) -> Result<Response, ApiError> {
    let spec = body.validate().map_err(ApiError::bad_request)?;
    let sessions = state.sessions.clone();
    let session = tokio::task::spawn_blocking(move || sessions.start(&body, spec)).await??;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/v1/sessions/{}", session.id()))],
        axum::Json(with_uris(session.view(), state.repo.urls())),
    )
        .into_response())
}

/// Lists the sessions (oldest first; ended ones are kept for a while).
#[utoipa::path(
    get,
    path = "/v1/sessions",
    responses((status = 200, description = "Sessions", body = SessionList)),
    security(("bearer" = []))
)]
pub async fn list(State(state): State<AppState>) -> axum::Json<SessionList> {
    axum::Json(SessionList {
        sessions: state
            .sessions
            .views()
            .into_iter()
            .map(|v| with_uris(v, state.repo.urls()))
            .collect(),
    })
}

/// One session: state, packets and bytes sent, per-object progress.
#[utoipa::path(
    get,
    path = "/v1/sessions/{id}",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 404, description = "Unknown id", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<SessionView>, ApiError> {
    let view = state
        .sessions
        .view(&id)
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))?;
    Ok(axum::Json(with_uris(view, state.repo.urls())))
}

/// Stops a session (a scheduled one never starts); answers its view. An
/// ended session is left as it is.
#[utoipa::path(
    delete,
    path = "/v1/sessions/{id}",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "Stop asked; the state turns `stopped` within moments", body = SessionView),
        (status = 404, description = "Unknown id", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<SessionView>, ApiError> {
    let view = state
        .sessions
        .stop(&id)
        .ok_or_else(|| ApiError::not_found(format!("no session {id}")))?;
    Ok(axum::Json(with_uris(view, state.repo.urls())))
}
