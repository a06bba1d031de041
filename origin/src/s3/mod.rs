//! Object bytes in an S3-protocol object store (AWS S3, MinIO, Ceph RGW,
//! Garage…) through the `object_store` crate: `--blobs s3://BUCKET[/PREFIX]`.
//!
//! ```text
//! PREFIX/blobs/ab/abcd…           object bytes by SHA-256 (as DATA/blobs/)
//! PREFIX/tmp/upload-…             an upload completed, not yet copied to its hash
//! PREFIX/deltas/…                 the delta tree (as DATA/deltas/)
//! ```
//!
//! The stores' traits are blocking (the HTTP layer calls them from the
//! blocking pool, the transmitter from its own threads); `object_store`
//! is async. A bridge runs the requests on a small runtime of its own and
//! waits for each on a channel, so a caller on any thread — inside another
//! runtime or not — may use it.
//!
//! Endpoint and credentials come from the standard variables
//! (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ALLOW_HTTP`). An unreachable store, or one that
//! answers with a server error, gives [`dms_repair::StoreUnavailable`]
//! errors, which the HTTP layers answer with 503 and a `Retry-After`.

mod blobs;
mod presign;
mod tree;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as StorePath;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

pub use blobs::S3BlobStore;
pub use presign::{DEFAULT_REDIRECT_EXPIRY, MAX_REDIRECT_EXPIRY, RedirectSource};
pub use tree::S3Tree;

/// Where in which bucket: the parsed `s3://BUCKET[/PREFIX]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix (no leading or trailing `/`; empty for none).
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX]`; `None` when `url` is not an `s3://`
    /// URL, an error when it is a malformed one.
    pub fn parse(url: &str) -> Option<Result<Self, String>> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty()
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Some(Err(format!(
                "{url}: the bucket name must be lower-case letters, digits, '-' and '.'"
            )));
        }
        let prefix = prefix.trim_matches('/').to_owned();
        if prefix.split('/').any(|p| p == "." || p == "..") {
            return Some(Err(format!("{url}: the prefix may not hold . or ..")));
        }
        Some(Ok(Self {
            bucket: bucket.to_owned(),
            prefix,
        }))
    }

    /// The key `PREFIX/rest`.
    pub(crate) fn key(&self, rest: &str) -> StorePath {
        if self.prefix.is_empty() {
            StorePath::from(rest)
        } else {
            StorePath::from(format!("{}/{rest}", self.prefix))
        }
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

/// A connection to a bucket: the client and the runtime its requests run on.
#[derive(Clone, Debug)]
pub struct S3Bucket {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The same client, for presigning URLs.
    pub(crate) signer: Arc<AmazonS3>,
    pub(crate) location: S3Location,
    pub(crate) bridge: Arc<Bridge>,
}

impl S3Bucket {
    /// A client for `location` configured from the `AWS_*` variables.
    /// Nothing is sent yet (see [`S3Bucket::check`]).
    pub fn connect(location: &S3Location) -> io::Result<Self> {
        // Fail fast when the store is away: a few quick retries, not
        // object_store's default of ten over three minutes (requests wait
        // on them, and load balancers need a prompt 503).
        let retry = RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..RetryConfig::default()
        };
        let client = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(120));
        // The client options first: the AWS_* variables (AWS_ALLOW_HTTP
        // is one of them) are applied over them, as `from_env` would.
        let mut builder = AmazonS3Builder::new()
            .with_client_options(client)
            .with_retry(retry);
        for (key, value) in std::env::vars() {
            if key.starts_with("AWS_")
                && let Ok(config_key) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
            {
                builder = builder.with_config(config_key, value);
            }
        }
        let signer = Arc::new(
            builder
                .with_bucket_name(&location.bucket)
                .build()
                .map_err(|e| io::Error::other(format!("{location}: {e}")))?,
        );
        Ok(Self {
            store: signer.clone(),
            signer,
            location: location.clone(),
            bridge: Arc::new(Bridge::new("dms-s3")?),
        })
    }

    /// Lists one key under the prefix: fails when the bucket cannot be
    /// reached or does not exist (for start-up and `/readyz`).
    pub fn check(&self) -> io::Result<()> {
        let store = self.store.clone();
        let prefix = self.location.key("blobs");
        self.bridge.run(async move {
            use futures_util::StreamExt;
            let mut listing = store.list(Some(&prefix));
            match listing.next().await {
                Some(Err(e)) => Err(store_error(e)),
                _ => Ok(()),
            }
        })?
    }

    /// The location.
    pub fn location(&self) -> &S3Location {
        &self.location
    }
}

/// Runs `object_store` futures on a runtime of their own, for blocking
/// callers on any thread.
pub(crate) struct Bridge {
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}

impl Bridge {
    /// A runtime of two worker threads named `thread_name`.
    pub(crate) fn new(thread_name: &str) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(thread_name)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> io::Result<&tokio::runtime::Handle> {
        self.runtime
            .as_ref()
            .map(|r| r.handle())
            .ok_or_else(|| io::Error::other("the S3 runtime has stopped"))
    }

    /// Runs `future` to completion on the bridge's runtime and returns its
    /// output; blocks the calling thread meanwhile.
    pub(crate) fn run<F>(&self, future: F) -> io::Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle()?.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv()
            .map_err(|_| io::Error::other("an S3 request task ended without an answer"))
    }

    /// Starts `future` and does not wait (clean-up on drop).
    pub(crate) fn detach<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if let Ok(handle) = self.handle() {
            drop(handle.spawn(future));
        }
    }

    /// Enters the runtime's context (for `object_store` calls that spawn
    /// tasks without being awaited).
    pub(crate) fn enter(&self) -> io::Result<tokio::runtime::EnterGuard<'_>> {
        Ok(self.handle()?.enter())
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Dropping a runtime inside another one's context panics;
        // shutting it down in the background never does.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// An `object_store` error as an [`io::Error`]: `NotFound` keeps its kind;
/// every other failure (connection refused, time-out, 5xx, a refused
/// credential) is a [`dms_repair::StoreUnavailable`], answered with 503.
pub(crate) fn store_error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { path, .. } => {
            io::Error::new(io::ErrorKind::NotFound, format!("no object {path}"))
        }
        other => dms_repair::StoreUnavailable::io(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn s3_urls_parse_to_bucket_and_prefix() {
        let l = S3Location::parse("s3://dms-blobs/site/a/")
            .unwrap()
            .unwrap();
        assert_eq!(l.bucket, "dms-blobs");
        assert_eq!(l.prefix, "site/a");
        assert_eq!(l.key("blobs/ab").as_ref(), "site/a/blobs/ab");
        assert_eq!(l.to_string(), "s3://dms-blobs/site/a");
        let bare = S3Location::parse("s3://b").unwrap().unwrap();
        assert_eq!(bare.key("tmp/x").as_ref(), "tmp/x");
        assert!(S3Location::parse("/var/lib/dms").is_none());
        assert!(S3Location::parse("s3://").unwrap().is_err());
        assert!(S3Location::parse("s3://Upper/x").unwrap().is_err());
        assert!(S3Location::parse("s3://b/../x").unwrap().is_err());
    }
}
