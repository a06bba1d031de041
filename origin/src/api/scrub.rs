//! `POST /v1/scrub`: a scrub of the whole store run by the server (what
//! `dms scrub --data DIR` asks for while `dms serve` holds the catalog).

use axum::extract::State;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::scrub::{ScrubReport, scrub};

/// Re-hashes every blob against its SHA-256 and block hashes, marks the
/// damaged objects (refused with 410 until uploaded again) and answers
/// what it found; 200 whether or not anything is damaged.
#[utoipa::path(
    post,
    path = "/v1/scrub",
    responses(
        (status = 200, description = "The scrub ran; `damaged` lists what it found", body = ScrubReport),
        (status = 500, description = "The store could not be read", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn run(State(state): State<AppState>) -> Result<axum::Json<ScrubReport>, ApiError> {
    let repo = state.repo.clone();
    let report = tokio::task::spawn_blocking(move || scrub(&repo, None)).await??;
    Ok(axum::Json(report))
}
