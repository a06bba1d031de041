//! Bearer tokens and settings shared by the instances on one catalog.
//!
//! Only each token's SHA-256 is stored. The admin token is made by the
//! first instance that starts on an empty catalog, under an advisory
//! lock, so instances starting together make one; the others (and an
//! instance with an empty data directory on an existing catalog) accept
//! it without writing a token of their own.

use sha2::{Digest, Sha256};

use super::{PgCatalog, pg};
use crate::catalog::CatalogError;
use crate::config::Scope;

/// The advisory lock key of the admin token's creation ("dms-tokn").
const TOKEN_LOCK: i64 = 0x646d_732d_746f_6b6e;

/// A token as the catalog keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredToken {
    /// SHA-256 of the secret.
    pub sha256: [u8; 32],
    /// Its name (for logs): `admin` for the admin token.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
}

/// What [`PgCatalog::ensure_admin_token`] found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminToken {
    /// The catalog had no admin token: this one (the caller's, or a new
    /// one) is now stored.
    Created(String),
    /// The catalog already had one.
    Existing,
}

fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::ReadOnly => "read-only",
        Scope::ReadWrite => "read-write",
    }
}

fn parse_scope(s: &str) -> Result<Scope, CatalogError> {
    match s {
        "read-only" => Ok(Scope::ReadOnly),
        "read-write" => Ok(Scope::ReadWrite),
        other => Err(CatalogError::Corrupt(format!("token scope {other:?}"))),
    }
}

impl PgCatalog {
    /// Stores an admin token unless the catalog has one: `proposed` (a
    /// token already in the data directory) or a new random one.
    pub fn ensure_admin_token(&self, proposed: Option<String>) -> Result<AdminToken, CatalogError> {
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(pg)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&TOKEN_LOCK])
                .await
                .map_err(pg)?;
            let existing = tx
                .query_opt("SELECT 1 FROM dms_tokens WHERE name = 'admin'", &[])
                .await
                .map_err(pg)?;
            if existing.is_some() {
                return Ok(AdminToken::Existing);
            }
            let token = proposed.unwrap_or_else(|| hex::encode(rand::random::<[u8; 32]>()));
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            tx.execute(
                "INSERT INTO dms_tokens (sha256, name, scope, created_at)
                 VALUES ($1, 'admin', $2, extract(epoch from now())::bigint)",
                &[&digest.as_slice(), &scope_name(Scope::ReadWrite)],
            )
            .await
            .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(AdminToken::Created(token))
        })
    }

    /// Every stored token.
    pub fn tokens(&self) -> Result<Vec<StoredToken>, CatalogError> {
        let rows: Vec<(Vec<u8>, String, String)> = self.run(|client| async move {
            Ok(client
                .query(
                    "SELECT sha256, name, scope FROM dms_tokens ORDER BY name",
                    &[],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect())
        })?;
        rows.into_iter()
            .map(|(sha, name, scope)| {
                let sha256 = <[u8; 32]>::try_from(sha.as_slice())
                    .map_err(|_| CatalogError::Corrupt(format!("token {name}: digest length")))?;
                Ok(StoredToken {
                    sha256,
                    name,
                    scope: parse_scope(&scope)?,
                })
            })
            .collect()
    }

    /// A setting (`base_url`…), if set.
    pub fn setting(&self, key: &str) -> Result<Option<String>, CatalogError> {
        let key = key.to_owned();
        self.run(move |client| async move {
            Ok(client
                .query_opt("SELECT value FROM dms_settings WHERE key = $1", &[&key])
                .await
                .map_err(pg)?
                .map(|row| row.get(0)))
        })
    }

    /// Sets a setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), CatalogError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.run(move |client| async move {
            client
                .execute(
                    "INSERT INTO dms_settings (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[&key, &value],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
    }
}
