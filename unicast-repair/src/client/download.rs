//! The resumable download: `Range` + `If-Range` onto a partial file beside
//! the destination, verified against the object's SHA-256 (and its block
//! hashes when given) before it is renamed into place.
//!
//! Redirects (301, 302, 303, 307, 308: an origin with
//! `--download-redirect` sends 307 to a presigned URL of its object store)
//! are followed, at most [`MAX_REDIRECTS`] in a row, with the same `Range`;
//! `If-Range` goes to the origin only (the store's ETag is not ours, and
//! the bytes are checked against the SHA-256 at the end anyway).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use dms_fec::Layout;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::header;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{ClientError, RepairClient, status_error};
use crate::download::etag;

/// Redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;

/// Where a redirect answer to a request for `from` points: its
/// `Location`, resolved against `from`.
fn redirect_target(
    from: &str,
    location: Option<&header::HeaderValue>,
) -> Result<String, ClientError> {
    let location = location
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ClientError::Redirect("no Location".into()))?;
    let base = url::Url::parse(from).map_err(|e| ClientError::Url(format!("{from}: {e}")))?;
    let target = base
        .join(location)
        .map_err(|e| ClientError::Redirect(format!("Location {location}: {e}")))?;
    match target.scheme() {
        "http" | "https" => Ok(target.to_string()),
        other => Err(ClientError::Redirect(format!("to a {other}: URL"))),
    }
}

/// What to download and what it must be.
#[derive(Clone, Debug)]
pub struct DownloadTarget {
    /// The object's `uri`.
    pub uri: String,
    /// Its size.
    pub size: u64,
    /// Its SHA-256 (from the signed manifest).
    pub sha256: [u8; 32],
    /// Its block layout and block hashes, when known: a mismatch then
    /// names the bad block.
    pub blocks: Option<(Layout, Vec<[u8; 32]>)>,
}

/// How a download went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DownloadStats {
    /// Requests made.
    pub requests: u32,
    /// Bytes received over the network (not counting what was already in
    /// the partial file).
    pub bytes_received: u64,
    /// Bytes that were already there from an earlier, cut download.
    pub bytes_resumed: u64,
}

/// Opens (creating) `dest` + `.part`; returns its path, the file and the
/// bytes already in it.
pub(crate) async fn open_partial(dest: &Path) -> std::io::Result<(PathBuf, tokio::fs::File, u64)> {
    let part = partial_path(dest);
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&part)
        .await?;
    let have = file.metadata().await?.len();
    Ok((part, file, have))
}

/// `dest` + `.part`: where a download is written until it is verified.
pub(crate) fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

impl RepairClient {
    /// Downloads `target` to `dest`: resumes a partial file left by an
    /// earlier attempt (`dest` + `.part`) with `Range` and `If-Range`,
    /// retries a cut transfer from where it stopped, verifies the whole
    /// object, then renames it into place (after fsync). A partial file
    /// that fails verification is removed.
    pub async fn download(
        &self,
        target: &DownloadTarget,
        dest: &Path,
    ) -> Result<DownloadStats, ClientError> {
        let (part, mut file, mut have) = open_partial(dest).await?;
        let mut stats = DownloadStats::default();
        if have > target.size {
            file.set_len(0).await?;
            have = 0;
        }
        stats.bytes_resumed = have;
        let mut last = None;
        while have < target.size {
            if stats.requests >= self.config.download_attempts.max(1) {
                return Err(last.unwrap_or(ClientError::Timeout));
            }
            stats.requests += 1;
            match self.fetch_from(target, &mut file, have, &mut stats).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => {
                    tracing::debug!(error = %e, "download cut; resuming");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
            file.flush().await?;
            have = file.metadata().await?.len();
        }
        file.sync_all().await?;
        if let Err(e) = verify(&mut file, target).await {
            drop(file);
            tokio::fs::remove_file(&part).await?;
            return Err(e);
        }
        drop(file);
        tokio::fs::rename(&part, dest).await?;
        if let Some(dir) = dest.parent() {
            // Make the rename durable.
            if let Ok(dir) = tokio::fs::File::open(dir).await {
                dir.sync_all().await?;
            }
        }
        Ok(stats)
    }

    async fn fetch_from(
        &self,
        target: &DownloadTarget,
        file: &mut tokio::fs::File,
        have: u64,
        stats: &mut DownloadStats,
    ) -> Result<(), ClientError> {
        let mut uri = target.uri.clone();
        let mut hops = 0;
        let response = loop {
            let mut request = hyper::Request::builder().method("GET").uri(&uri);
            if have > 0 {
                request = request.header(header::RANGE, format!("bytes={have}-"));
                if hops == 0 {
                    request = request.header(header::IF_RANGE, etag(&target.sha256));
                }
            }
            let request = request
                .body(Full::new(Bytes::new()))
                .map_err(|e| ClientError::Url(e.to_string()))?;
            let response = self.send(request).await?;
            if !response.status().is_redirection() || response.status() == StatusCode::NOT_MODIFIED
            {
                break response;
            }
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(ClientError::Redirect(format!(
                    "more than {MAX_REDIRECTS} in a row from {}",
                    target.uri
                )));
            }
            uri = redirect_target(&uri, response.headers().get(header::LOCATION))?;
            tracing::debug!(%uri, "download redirected");
        };
        let status = response.status();
        let start = match status {
            StatusCode::OK => 0,
            StatusCode::PARTIAL_CONTENT => {
                let range = response
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let want = format!("bytes {have}-{}/{}", target.size - 1, target.size);
                if range != want {
                    return Err(ClientError::BadRange(range.to_owned()));
                }
                have
            }
            _ => {
                let body = self.read_body(response.into_body(), 4096).await?;
                return Err(status_error(status, &body));
            }
        };
        // 200: the server sent the whole object (the validator changed or
        // it ignored Range): start again from 0.
        file.set_len(start).await?;
        file.seek(std::io::SeekFrom::Start(start)).await?;
        let mut body = response.into_body();
        let mut written = start;
        loop {
            let frame = tokio::time::timeout(self.config.timeout, body.frame())
                .await
                .map_err(|_| ClientError::Timeout)?;
            let Some(frame) = frame else { break };
            let frame = frame?;
            if let Ok(data) = frame.into_data() {
                if written + data.len() as u64 > target.size {
                    return Err(ClientError::BadRange("body longer than the object".into()));
                }
                file.write_all(&data).await?;
                written += data.len() as u64;
                stats.bytes_received += data.len() as u64;
            }
        }
        Ok(())
    }
}

/// Hashes the file (streamed) against the target's SHA-256 and block hashes.
pub(crate) async fn verify(
    file: &mut tokio::fs::File,
    target: &DownloadTarget,
) -> Result<(), ClientError> {
    file.seek(std::io::SeekFrom::Start(0)).await?;
    let mut whole = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let blocks = target.blocks.as_ref();
    let mut block = Sha256::new();
    let mut sbn = 0u32;
    let mut pos = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        whole.update(&buf[..n]);
        if let Some((layout, hashes)) = blocks {
            let mut chunk = &buf[..n];
            while !chunk.is_empty() {
                let end = layout.block_range(sbn).map_or(u64::MAX, |r| r.end);
                let take = ((end - pos) as usize).min(chunk.len());
                block.update(&chunk[..take]);
                pos += take as u64;
                chunk = &chunk[take..];
                if pos == end {
                    let got: [u8; 32] = std::mem::take(&mut block).finalize().into();
                    if hashes.get(sbn as usize).is_some_and(|h| *h != got) {
                        return Err(ClientError::BlockHashMismatch(sbn));
                    }
                    sbn += 1;
                }
            }
        }
    }
    let got: [u8; 32] = whole.finalize().into();
    if got != target.sha256 {
        return Err(ClientError::HashMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    #[test]
    fn redirect_locations_resolve_against_the_request() {
        let v = |s: &str| header::HeaderValue::from_str(s).unwrap();
        let from = "https://o.example:8443/dl/ab/fw.bin";
        assert_eq!(
            redirect_target(
                from,
                Some(&v(
                    "http://127.0.0.1:9000/b/blobs/ab/abcd?X-Amz-Signature=1"
                ))
            )
            .unwrap(),
            "http://127.0.0.1:9000/b/blobs/ab/abcd?X-Amz-Signature=1"
        );
        assert_eq!(
            redirect_target(from, Some(&v("/other/fw.bin"))).unwrap(),
            "https://o.example:8443/other/fw.bin"
        );
        assert!(redirect_target(from, None).is_err());
        assert!(redirect_target(from, Some(&v("file:///etc/passwd"))).is_err());
    }
}
