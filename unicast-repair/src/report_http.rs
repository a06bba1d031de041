//! The reception report routes: `POST /report` (public) and
//! `GET /v1/reports?object=ID` (management), over a [`ReportStore`](crate::ReportStore).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::{ApiError, blocking};
use crate::report::{JsonReport, Report, ReportError, ReportKind, ReportStore, summarize, xml};
use crate::state::AppState;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 503 while the report store is away, else 500.
fn report_error(e: ReportError) -> ApiError {
    match e {
        ReportError::Unavailable(_) => crate::error::unavailable(e),
        other => ApiError::internal(other),
    }
}

/// Longest device id or object reference kept.
const MAX_ID: usize = 256;

pub(crate) async fn post_report(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let Some(store) = state.reports.clone() else {
        return Err(ApiError::not_found("reports are not kept here"));
    };
    let connect = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .cloned();
    let headers = request.headers().clone();
    let body = axum::body::to_bytes(request.into_body(), state.config.max_body_bytes)
        .await
        .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "report too large"))?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("report is not UTF-8"))?;
    let peer = connect.map(|c| format!("ip:{}", c.0.ip()));
    let source = state.source.clone();
    let stored = blocking(move || {
        let reports = if is_json || text.trim_start().starts_with('{') {
            from_json(&text, source.as_ref())?
        } else {
            from_xml(&text, peer, source.as_ref())?
        };
        for r in &reports {
            store.put(r).map_err(report_error)?;
        }
        Ok(reports.len())
    })
    .await?;
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({ "stored": stored })),
    )
        .into_response())
}

fn object_of(source: &dyn crate::ObjectSource, file_uri: &str) -> Result<Option<String>, ApiError> {
    Ok(source
        .object_by_location(file_uri)
        .map_err(crate::error::source_error)?
        .map(|o| o.id))
}

fn from_json(text: &str, source: &dyn crate::ObjectSource) -> Result<Vec<Report>, ApiError> {
    let r: JsonReport = serde_json::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("JSON report: {e}")))?;
    if r.device.is_empty() || r.device.len() > MAX_ID {
        return Err(ApiError::bad_request("device must be 1 to 256 bytes"));
    }
    let object = match (r.object, r.file_uri) {
        (Some(id), _) => {
            if source
                .object(&id)
                .map_err(crate::error::source_error)?
                .is_none()
            {
                return Err(ApiError::not_found(format!("no object {id}")));
            }
            id
        }
        (None, Some(uri)) => object_of(source, &uri)?
            .ok_or_else(|| ApiError::not_found(format!("no object at {uri}")))?,
        (None, None) => return Err(ApiError::bad_request("object or file_uri is required")),
    };
    Ok(vec![Report {
        object,
        device: r.device,
        success: r.success,
        bytes: r.bytes,
        seconds_to_complete: r.seconds_to_complete,
        kind: ReportKind::Json,
        received_at: now(),
        repair_failovers: bounded_failovers(r.repair_failovers),
    }])
}

/// Longest URL, reason and detail of a failover kept.
const MAX_URL: usize = 2048;
const MAX_REASON: usize = 32;
const MAX_DETAIL: usize = 512;

/// What a device says of its failovers, bounded: at most
/// [`MAX_FAILOVERS`](crate::report::MAX_FAILOVERS), each string cut
/// short (at a character boundary), entries without a URL dropped.
fn bounded_failovers(
    failovers: Vec<crate::report::RepairFailover>,
) -> Vec<crate::report::RepairFailover> {
    fn cut(mut s: String, max: usize) -> String {
        if s.len() > max {
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
        s
    }
    failovers
        .into_iter()
        .filter(|f| !f.failed.is_empty())
        .take(crate::report::MAX_FAILOVERS)
        .map(|f| crate::report::RepairFailover {
            failed: cut(f.failed, MAX_URL),
            reason: cut(f.reason, MAX_REASON),
            detail: cut(f.detail, MAX_DETAIL),
            served_by: f.served_by.map(|s| cut(s, MAX_URL)),
        })
        .collect()
}

fn from_xml(
    text: &str,
    peer: Option<String>,
    source: &dyn crate::ObjectSource,
) -> Result<Vec<Report>, ApiError> {
    let parsed = xml::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let device = parsed
        .client_id
        .filter(|id| !id.is_empty() && id.len() <= MAX_ID)
        .or(peer)
        .unwrap_or_else(|| "unknown".to_owned());
    let mut out = Vec::new();
    for file in parsed.files {
        // Files this service does not hold are not ours to count.
        if let Some(object) = object_of(source, &file.file_uri)? {
            let stats = file.statistics.unwrap_or_default();
            out.push(Report {
                object,
                device: device.clone(),
                success: file.success,
                bytes: stats.bytes,
                seconds_to_complete: stats.seconds_to_complete,
                kind: file.kind,
                received_at: now(),
                repair_failovers: bounded_failovers(file.failovers),
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct SummaryQuery {
    object: Option<String>,
}

async fn summary(
    State(store): State<Arc<dyn ReportStore>>,
    Query(query): Query<SummaryQuery>,
) -> Result<Response, ApiError> {
    let object = query
        .object
        .filter(|o| !o.is_empty())
        .ok_or_else(|| ApiError::bad_request("the object parameter is required"))?;
    let summary = blocking(move || {
        let reports = store.reports(&object).map_err(report_error)?;
        Ok(summarize(&object, &reports))
    })
    .await?;
    Ok(Json(summary).into_response())
}

/// The management route `GET /v1/reports?object=ID` (a JSON
/// [`ReportSummary`](crate::report::ReportSummary)). The origin mounts it behind its
/// token layer.
pub fn reports_router(store: Arc<dyn ReportStore>) -> Router {
    Router::new()
        .route("/v1/reports", get(summary))
        .with_state(store)
}
