//! Asking for a delta: `HEAD uri?from=<SHA-256 of the installed version>`.
//! The server answers the delta's headers when it holds one from exactly
//! that base (marked by [`DELTA_BASE_HEADER`]), else the full object's. The
//! answer is not trusted beyond choosing what to fetch: the delta names its
//! own base and target, and the caller checks the result against the
//! target's signed SHA-256.

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use hyper::header;

use super::{ClientError, RepairClient, status_error};
use crate::download::DELTA_BASE_HEADER;

/// A delta the server holds from the installed version to an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaOffer {
    /// Where to GET it (`uri?from=…`; resumable like any download).
    pub uri: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256 (the strong `ETag`), which the download is checked
    /// against.
    pub sha256: [u8; 32],
}

/// `uri` with `from=<hex base>` added to its query.
pub fn delta_uri(uri: &str, base_sha256: &[u8; 32]) -> String {
    let separator = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{separator}from={}", hex::encode(base_sha256))
}

/// Parses a strong `ETag` of 64 hex digits (our downloads' validator).
fn parse_etag(value: &str) -> Option<[u8; 32]> {
    let hex = value.strip_prefix('"')?.strip_suffix('"')?;
    let mut sha = [0u8; 32];
    hex::decode_to_slice(hex, &mut sha).ok()?;
    Some(sha)
}

impl RepairClient {
    /// Asks whether `uri` (an object's download URI) has a delta from the
    /// version whose SHA-256 is `base_sha256`. `None` when the server
    /// would send the full object (no delta from that base, or a server
    /// that does not know deltas).
    pub async fn delta_offer(
        &self,
        uri: &str,
        base_sha256: &[u8; 32],
    ) -> Result<Option<DeltaOffer>, ClientError> {
        let uri = delta_uri(uri, base_sha256);
        let request = hyper::Request::builder()
            .method("HEAD")
            .uri(&uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::Url(e.to_string()))?;
        let response = self.send(request).await?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(status_error(status, &[]));
        }
        let headers = response.headers();
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let base_matches = text(DELTA_BASE_HEADER)
            .is_some_and(|b| b.eq_ignore_ascii_case(&hex::encode(base_sha256)));
        if !base_matches {
            return Ok(None);
        }
        let size = text(header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse().ok());
        let sha256 = text(header::ETAG.as_str()).and_then(parse_etag);
        match (size, sha256) {
            (Some(size), Some(sha256)) => Ok(Some(DeltaOffer { uri, size, sha256 })),
            _ => Err(ClientError::BadDeltaOffer),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn the_base_goes_in_the_query() {
        let base = [0xab; 32];
        let hex = "ab".repeat(32);
        assert_eq!(
            delta_uri("https://o/dl/1/fw.bin", &base),
            format!("https://o/dl/1/fw.bin?from={hex}")
        );
        assert_eq!(
            delta_uri("https://o/dl/1/fw.bin?x=1", &base),
            format!("https://o/dl/1/fw.bin?x=1&from={hex}")
        );
    }

    #[test]
    fn only_a_strong_sha256_etag_parses() {
        let hex = "0f".repeat(32);
        assert_eq!(parse_etag(&format!("\"{hex}\"")), Some([0x0f; 32]));
        assert_eq!(parse_etag(&hex), None);
        assert_eq!(parse_etag(&format!("W/\"{hex}\"")), None);
        assert_eq!(parse_etag("\"0f\""), None);
    }
}
