//! Versioned schema migrations of the PostgreSQL catalog.
//!
//! Each migration runs once, in the transaction that records it in
//! `dms_schema_migrations`; the whole pass holds a transaction-scoped
//! advisory lock, so instances that start together wait for each other
//! and the later ones find every version applied. A migration is never
//! edited once released: a change of schema is a new version.

use tokio_postgres::Client;

use super::pg;
use crate::catalog::CatalogError;

/// The advisory lock key of the migrations ("dms-migr" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x646d_732d_6d69_6772;

/// The migrations, by version, oldest first.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r"
CREATE TABLE dms_objects (
    id text PRIMARY KEY,
    seq bigint NOT NULL UNIQUE,
    name text NOT NULL,
    version text NOT NULL,
    sha256 text NOT NULL,
    rev bigint NOT NULL DEFAULT 0,
    record jsonb NOT NULL,
    CONSTRAINT dms_objects_name_version UNIQUE (name, version)
);
CREATE INDEX dms_objects_sha256 ON dms_objects (sha256);
CREATE SEQUENCE dms_object_seq;
CREATE TABLE dms_object_ids (id text PRIMARY KEY);
CREATE TABLE dms_blobs (
    sha256 text PRIMARY KEY,
    refs bigint NOT NULL,
    size bigint NOT NULL
);
CREATE TABLE dms_notifications (
    object_id text NOT NULL,
    device text NOT NULL,
    body jsonb NOT NULL,
    PRIMARY KEY (object_id, device)
);
CREATE TABLE dms_counters (key text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE dms_tokens (
    sha256 bytea PRIMARY KEY,
    name text NOT NULL UNIQUE,
    scope text NOT NULL,
    created_at bigint NOT NULL
);
CREATE TABLE dms_settings (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE dms_reports (
    object_id text NOT NULL,
    device text NOT NULL,
    body jsonb NOT NULL,
    PRIMARY KEY (object_id, device)
);
",
    ),
    (
        2,
        r"
CREATE TABLE dms_session_leases (
    session text PRIMARY KEY,
    holder text NOT NULL,
    generation bigint NOT NULL,
    fdt_instance bigint NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL
);
",
    ),
];

/// Applies the migrations not yet applied; returns how many it applied.
pub async fn migrate(client: &mut Client) -> Result<usize, CatalogError> {
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS dms_schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(pg)?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM dms_schema_migrations", &[])
        .await
        .map_err(pg)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if let Some(newer) = applied.iter().find(|v| **v > latest()) {
        return Err(CatalogError::Config(format!(
            "the catalog's schema is at version {newer}, newer than this dms knows ({}): \
             upgrade dms",
            latest()
        )));
    }
    let mut count = 0;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO dms_schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(pg)?;
        tracing::info!(version, "catalog schema migrated");
        count += 1;
    }
    tx.commit().await.map_err(pg)?;
    Ok(count)
}

/// The newest schema version this build knows.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}
