//! The shared catalog on PostgreSQL: `--catalog postgres://USER@HOST[:PORT]/DB`
//! (config key `catalog`). Several origins and stateless repair servers
//! run on one database: objects, names and versions, blob reference
//! counts, notifications, scrub results, bearer tokens (SHA-256 digests
//! only), reception reports and the origin's public base URL.
//!
//! ```text
//! dms_schema_migrations  version → when it was applied (see [`schema`])
//! dms_objects            id, seq, name, version, sha256, rev, record (jsonb ObjectRecord)
//! dms_object_ids         every id ever used (ids are never reused)
//! dms_blobs              sha256 → refs, size (the objects referencing it)
//! dms_notifications      (object, device) → jsonb Notification
//! dms_counters           scrub totals by key
//! dms_tokens             sha256 of the token → name, scope
//! dms_settings           base_url (for repair servers without a data directory)
//! dms_reports            (object, device) → jsonb reception report
//! dms_session_leases     session → holder, generation, fdt_instance, expires_at
//! ```
//!
//! The [`Catalog`](crate::Catalog) trait is blocking; the driver
//! (`tokio-postgres`, pooled by `deadpool-postgres`) is async. As for S3,
//! the requests run on a small runtime of their own and the caller waits
//! for each ([`crate::s3`]'s bridge). Every wait is bounded (connect, pool
//! wait and statement time-outs), and a connection that broke is dropped
//! from the pool, so when the server is away calls fail promptly with
//! [`CatalogError::Unavailable`] (answered 503 with a `Retry-After`) and
//! succeed again, without a restart, once it is back.

mod catalog;
mod leases;
mod lock;
mod reports;
pub mod schema;
mod tokens;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

pub use lock::PgBlobLock;
pub use reports::PgReports;
pub use tokens::{AdminToken, StoredToken};

use crate::catalog::CatalogError;
use crate::s3::Bridge;

/// Longest wait for a connection to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait for a pooled connection (all busy, or being made).
const POOL_WAIT: Duration = Duration::from_secs(5);
/// Longest one catalog operation may take once it has a connection.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections per instance.
const POOL_SIZE: usize = 16;

/// A catalog on PostgreSQL.
#[derive(Clone)]
pub struct PgCatalog {
    pool: Pool,
    bridge: Arc<Bridge>,
    url: String,
}

impl std::fmt::Debug for PgCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCatalog")
            .field("url", &redacted(&self.url))
            .finish_non_exhaustive()
    }
}

/// `url` with any password replaced by `***` (for logs and errors).
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Whether `value` is a PostgreSQL URL.
pub fn is_postgres_url(value: &str) -> bool {
    value.starts_with("postgres://") || value.starts_with("postgresql://")
}

impl PgCatalog {
    /// Connects to `url` and brings the schema up to date (under an
    /// advisory lock, so instances starting together migrate once).
    /// Fails when the server cannot be reached.
    pub fn connect(url: &str) -> Result<Self, CatalogError> {
        let catalog = Self::connect_lazy(url)?;
        catalog.migrate()?;
        Ok(catalog)
    }

    /// Brings the schema up to date (see [`schema::migrate`]); returns
    /// how many migrations this call applied (0 when another instance
    /// already had).
    pub fn migrate(&self) -> Result<usize, CatalogError> {
        self.run(|mut client| async move { schema::migrate(&mut client).await })
    }

    /// A pool for `url`; nothing is sent yet, and the schema is not
    /// checked (for tests of the migrations).
    pub fn connect_lazy(url: &str) -> Result<Self, CatalogError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| CatalogError::Config(format!("{}: {e}", redacted(url))))?;
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("dms");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // Fast: a connection whose socket closed (the server
                // restarted) is dropped when it comes back to the pool.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| CatalogError::Config(e.to_string()))?;
        let bridge = Bridge::new("dms-pg").map_err(|e| CatalogError::Config(e.to_string()))?;
        Ok(Self {
            pool,
            bridge: Arc::new(bridge),
            url: url.to_owned(),
        })
    }

    /// The URL it was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `op` with a pooled connection on the catalog's runtime and
    /// waits for it (bounded by the pool's and the statement time-out).
    pub(crate) fn run<T, F, Fut>(&self, op: F) -> Result<T, CatalogError>
    where
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, CatalogError>> + Send,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        self.bridge
            .run(async move {
                let client = pool.get().await.map_err(pool_error)?;
                match tokio::time::timeout(STATEMENT_TIMEOUT, op(client)).await {
                    Ok(result) => result,
                    Err(_) => Err(CatalogError::Unavailable(format!(
                        "no answer from PostgreSQL within {} s",
                        STATEMENT_TIMEOUT.as_secs()
                    ))),
                }
            })
            .map_err(|e| CatalogError::Unavailable(e.to_string()))?
    }
}

/// A driver error as a catalog error: a lost or refused connection, or a
/// server shutting down or overloaded, is [`CatalogError::Unavailable`];
/// anything else (an SQL error) is [`CatalogError::Pg`].
pub(crate) fn pg(e: tokio_postgres::Error) -> CatalogError {
    let unavailable = match e.code() {
        None => true,
        Some(code) => {
            let class = &code.code()[..2];
            // 08: connection exception; 53: insufficient resources;
            // 57P0x: operator intervention (shutdown, cannot connect now).
            class == "08"
                || class == "53"
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
    };
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    if unavailable {
        CatalogError::Unavailable(format!("PostgreSQL: {message}"))
    } else {
        CatalogError::Pg(message)
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> CatalogError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg(e),
        other => CatalogError::Unavailable(format!("PostgreSQL: {other}")),
    }
}

/// A record (or any JSON value) from its stored text.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, CatalogError> {
    serde_json::from_str(text).map_err(|e| CatalogError::Corrupt(e.to_string()))
}

/// A record (or any JSON value) as text to store.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<String, CatalogError> {
    serde_json::to_string(value).map_err(|e| CatalogError::Corrupt(e.to_string()))
}

/// A stored `bigint` as the `u64` it was written from.
pub(crate) fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A `u64` as a `bigint` (values past `i64::MAX` saturate).
pub(crate) fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("postgres://dms:secret@db:5432/dms"),
            "postgres://dms:***@db:5432/dms"
        );
        assert_eq!(redacted("postgres://dms@db/dms"), "postgres://dms@db/dms");
        assert!(is_postgres_url("postgresql://x@y/z"));
        assert!(!is_postgres_url("redb"));
    }
}
