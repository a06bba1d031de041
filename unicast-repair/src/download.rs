//! `GET|HEAD /dl/{id}/{file_name}`: the object download, with ranges,
//! validators and immutable caching. Bodies stream from the blob in bounded
//! chunks read on the blocking pool, so no object is ever held whole.
//!
//! `?from=<hex SHA-256 of the installed version>` asks for a delta: when
//! the source holds one from that base, the delta is served instead (same
//! ranges and validators, its own ETag and length, content type
//! [`DELTA_CONTENT_TYPE`], header [`DELTA_BASE_HEADER`] naming the base);
//! otherwise the full object.
//!
//! When the source gives a presigned URL of the blob store
//! ([`ObjectSource::download_redirect`](crate::ObjectSource::download_redirect),
//! `dms serve --download-redirect`), a GET without `from` is answered
//! `307 Temporary Redirect` to it (never cached: the URL expires), so the
//! bytes flow from the store; the client sends its `Range` there again.
//! HEAD, conditional hits (304) and deltas are still answered here.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use crate::error::{ApiError, blocking};
use crate::range::{RangeRequest, parse_range};
use crate::source::{BlobReader, ObjectInfo};
use crate::state::AppState;

/// Content type of a delta served for `?from=`.
pub const DELTA_CONTENT_TYPE: &str = "application/vnd.dms.delta";

/// Response header marking a delta: the hex SHA-256 of its base.
pub const DELTA_BASE_HEADER: &str = "x-dms-delta-base";

/// Query of a download.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct DownloadQuery {
    /// Hex SHA-256 of the version the client has.
    from: Option<String>,
}

/// Parses the `from` parameter: 64 hex digits.
fn parse_from(from: Option<&str>) -> Result<Option<[u8; 32]>, ApiError> {
    let Some(from) = from else {
        return Ok(None);
    };
    let mut sha = [0u8; 32];
    hex::decode_to_slice(from, &mut sha)
        .map_err(|_| ApiError::bad_request("from must be a hex SHA-256 (64 digits)"))?;
    Ok(Some(sha))
}

/// Bytes read from the blob per body chunk.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// `Cache-Control` of downloads: ids are never reused, so a URL names the
/// same bytes for ever and any cache may keep them.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// The file name an object is served under in its URL: the object's name
/// with every character outside `[A-Za-z0-9._-]` replaced by `_`, at most
/// 64 bytes, never empty nor only dots (then `object`).
pub fn file_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.bytes().all(|b| b == b'.') {
        out = "object".to_owned();
    }
    out
}

/// The strong `ETag` of an object: its SHA-256 in hex, quoted.
pub fn etag(sha256: &[u8; 32]) -> String {
    format!("\"{}\"", hex::encode(sha256))
}

/// The path of an object's download URL below the base URL:
/// `/dl/{id}/{file_name}`.
pub fn download_path(object: &ObjectInfo) -> String {
    format!("/dl/{}/{}", object.id, file_name(&object.name))
}

pub(crate) async fn download(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    Query(query): Query<DownloadQuery>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let source = state.source.clone();
    let with_body = method != Method::HEAD;
    let from = parse_from(query.from.as_deref())?;
    // One trip to the blocking pool: look up, plan, open and read the first
    // chunk (small ranges then need no second trip).
    let answer = blocking(move || {
        let object = source
            .object(&id)
            .map_err(crate::error::source_error)?
            .ok_or_else(|| ApiError::not_found(format!("no object {id}")))?;
        if file_name(&object.name) != name {
            return Err(ApiError::not_found(format!("no file {name} in object")));
        }
        let not_modified = headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| if_none_match_hits(v, &object));
        if from.is_none()
            && with_body
            && !not_modified
            && let Some(url) = source
                .download_redirect(&object)
                .map_err(crate::error::source_error)?
        {
            return Ok(Answer::Redirect(url));
        }
        let delta = match &from {
            Some(base) => source
                .delta_from(&object, base)
                .map_err(crate::error::source_error)?,
            None => None,
        };
        // A delta is served like the object, as its own representation.
        let (object, opened, delta_base) = match delta {
            Some((delta, reader)) => (
                ObjectInfo {
                    size: delta.size,
                    sha256: delta.sha256,
                    content_type: DELTA_CONTENT_TYPE.to_owned(),
                    ..object
                },
                Some(reader),
                Some(delta.base_sha256),
            ),
            None => (object, None, None),
        };
        let mut plan = plan_response(&object, &headers);
        if plan.parts.is_empty() || !with_body {
            return Ok(Answer::Here(Box::new((object, plan, None, delta_base))));
        }
        let reader = match opened {
            Some(reader) => reader,
            None => source.open(&object).map_err(crate::error::source_error)?,
        };
        let blob: Arc<dyn BlobReader> = Arc::from(reader);
        prefetch(&mut plan.parts, blob.as_ref()).map_err(crate::error::io_error)?;
        Ok(Answer::Here(Box::new((
            object,
            plan,
            Some(blob),
            delta_base,
        ))))
    })
    .await?;
    let (object, plan, blob, delta_base) = match answer {
        Answer::Here(served) => *served,
        Answer::Redirect(url) => {
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header(header::LOCATION, url)
                .header(header::CACHE_CONTROL, "no-store")
                .body(Body::empty())
                .map_err(ApiError::internal);
        }
    };
    let mut builder = Response::builder()
        .status(plan.status)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, etag(&object.sha256))
        .header(header::LAST_MODIFIED, http_date(object.created))
        .header(header::CACHE_CONTROL, CACHE_CONTROL);
    for (name, value) in &plan.headers {
        builder = builder.header(name, value);
    }
    if let Some(base) = delta_base {
        builder = builder.header(DELTA_BASE_HEADER, hex::encode(base));
    }
    let body = match blob {
        Some(blob) => stream_parts(blob, plan.parts),
        None => Body::empty(),
    };
    builder.body(body).map_err(ApiError::internal)
}

/// What is served from here: what, how, its open bytes, the delta's base.
type Served = (
    ObjectInfo,
    Plan,
    Option<Arc<dyn BlobReader>>,
    Option<[u8; 32]>,
);

/// What a download is answered with.
enum Answer {
    /// The object (or delta) from here: what, how, its open bytes, the
    /// delta's base (boxed: the common answer, and much larger).
    Here(Box<Served>),
    /// A redirect to the blob store.
    Redirect(String),
}

/// Reads the first chunk of the first blob part now, turning it into a
/// literal part.
fn prefetch(parts: &mut Vec<Part>, blob: &dyn BlobReader) -> std::io::Result<()> {
    let Some(i) = parts.iter().position(|p| matches!(p, Part::Blob(_))) else {
        return Ok(());
    };
    let Part::Blob(range) = parts[i].clone() else {
        return Ok(());
    };
    let n = (range.end - range.start).min(CHUNK_BYTES as u64);
    let mut buf = vec![0u8; n as usize];
    blob.read_exact_at(&mut buf, range.start)?;
    parts[i] = Part::Literal(Bytes::from(buf));
    if range.start + n < range.end {
        parts.insert(i + 1, Part::Blob(range.start + n..range.end));
    }
    Ok(())
}

/// One piece of a response body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Bytes),
    Blob(Range<u64>),
}

#[derive(Debug)]
struct Plan {
    status: StatusCode,
    headers: Vec<(header::HeaderName, String)>,
    parts: Vec<Part>,
}

fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// True when `If-Range` holds (the range may be served): a strong ETag
/// match, or an HTTP date equal to `Last-Modified`.
fn if_range_holds(value: &HeaderValue, object: &ObjectInfo) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') {
        return value == etag(&object.sha256);
    }
    match httpdate::parse_http_date(value) {
        Ok(date) => http_date(date) == http_date(object.created),
        Err(_) => false,
    }
}

fn if_none_match_hits(value: &HeaderValue, object: &ObjectInfo) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let ours = etag(&object.sha256);
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

fn plan_response(object: &ObjectInfo, headers: &HeaderMap) -> Plan {
    let len = object.size;
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| if_none_match_hits(v, object))
    {
        return Plan {
            status: StatusCode::NOT_MODIFIED,
            headers: vec![],
            parts: vec![],
        };
    }
    let range_allowed = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| if_range_holds(v, object));
    let request = match headers.get(header::RANGE).map(HeaderValue::to_str) {
        Some(Ok(value)) if range_allowed => parse_range(value, len),
        _ => RangeRequest::Full,
    };
    match request {
        RangeRequest::Full => Plan {
            status: StatusCode::OK,
            headers: vec![
                (header::CONTENT_TYPE, object.content_type.clone()),
                (header::CONTENT_LENGTH, len.to_string()),
            ],
            parts: if len == 0 {
                vec![]
            } else {
                vec![Part::Blob(0..len)]
            },
        },
        RangeRequest::Unsatisfiable => Plan {
            status: StatusCode::RANGE_NOT_SATISFIABLE,
            headers: vec![
                (header::CONTENT_RANGE, format!("bytes */{len}")),
                (header::CONTENT_LENGTH, "0".to_owned()),
            ],
            parts: vec![],
        },
        RangeRequest::Ranges(ranges) if ranges.len() == 1 => {
            let r = ranges[0].clone();
            Plan {
                status: StatusCode::PARTIAL_CONTENT,
                headers: vec![
                    (header::CONTENT_TYPE, object.content_type.clone()),
                    (header::CONTENT_LENGTH, (r.end - r.start).to_string()),
                    (
                        header::CONTENT_RANGE,
                        format!("bytes {}-{}/{len}", r.start, r.end - 1),
                    ),
                ],
                parts: vec![Part::Blob(r)],
            }
        }
        RangeRequest::Ranges(ranges) => multipart(object, ranges),
    }
}

/// A `multipart/byteranges` body (RFC 9110 §14.6) with an exact length.
fn multipart(object: &ObjectInfo, ranges: Vec<Range<u64>>) -> Plan {
    let boundary = format!("dms-{:016x}", rand::random::<u64>());
    let len = object.size;
    let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut total = 0u64;
    for (i, r) in ranges.into_iter().enumerate() {
        let head = format!(
            "{}--{boundary}\r\nContent-Type: {}\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
            if i == 0 { "" } else { "\r\n" },
            object.content_type,
            r.start,
            r.end - 1
        );
        total += head.len() as u64 + (r.end - r.start);
        parts.push(Part::Literal(Bytes::from(head)));
        parts.push(Part::Blob(r));
    }
    let tail = format!("\r\n--{boundary}--\r\n");
    total += tail.len() as u64;
    parts.push(Part::Literal(Bytes::from(tail)));
    Plan {
        status: StatusCode::PARTIAL_CONTENT,
        headers: vec![
            (
                header::CONTENT_TYPE,
                format!("multipart/byteranges; boundary={boundary}"),
            ),
            (header::CONTENT_LENGTH, total.to_string()),
        ],
        parts,
    }
}

/// A body that yields the parts in order, reading blob ranges in chunks of
/// at most [`CHUNK_BYTES`] on the blocking pool: memory per response is one
/// chunk, however large the object.
fn stream_parts(blob: Arc<dyn BlobReader>, parts: Vec<Part>) -> Body {
    let queue: VecDeque<Part> = parts.into();
    let stream = futures_util::stream::unfold((blob, queue), |(blob, mut queue)| async move {
        let part = queue.pop_front()?;
        let chunk = match part {
            Part::Literal(bytes) => Ok(bytes),
            Part::Blob(range) => {
                let n = (range.end - range.start).min(CHUNK_BYTES as u64);
                if range.start + n < range.end {
                    queue.push_front(Part::Blob(range.start + n..range.end));
                }
                let reader = blob.clone();
                let offset = range.start;
                match tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; n as usize];
                    reader.read_exact_at(&mut buf, offset).map(|()| buf)
                })
                .await
                {
                    Ok(Ok(buf)) => Ok(Bytes::from(buf)),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(std::io::Error::other(e)),
                }
            }
        };
        match chunk {
            Ok(bytes) => Some((Ok::<Bytes, std::io::Error>(bytes), (blob, queue))),
            Err(e) => {
                tracing::warn!(error = %e, "download body read failed; cutting the response");
                // Ends the stream after the error: the client sees a cut body.
                queue.clear();
                Some((Err(e), (blob, queue)))
            }
        }
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_sanitized() {
        assert_eq!(file_name("fw v1.2/x.bin"), "fw_v1.2_x.bin");
        assert_eq!(file_name(".."), "object");
        assert_eq!(file_name(""), "object");
        assert_eq!(file_name("é"), "_");
        assert_eq!(file_name(&"a".repeat(100)).len(), 64);
    }
}
