//! A blob's commit lock across instances: a session-level advisory lock
//! held on a pooled connection of its own while one instance commits an
//! upload of that content (or removes it, or `dms gc` decides whether it
//! is referenced). Without it, instance A could delete the blob whose
//! last object it removed just as instance B, uploading the same
//! content, found the blob there and committed a row pointing at it.
//! The lock goes when the guard drops, or with the connection if the
//! process dies.

use std::sync::Arc;

use deadpool_postgres::Object;

use super::{PgCatalog, pg};
use crate::catalog::CatalogError;
use crate::s3::Bridge;

/// The first key of the two-key advisory locks of blobs ("dms" in ASCII).
const BLOB_LOCK_SPACE: i32 = 0x0064_6d73;

/// A held blob lock; dropping it releases the lock.
pub struct PgBlobLock {
    client: Option<Object>,
    key: i32,
    bridge: Arc<Bridge>,
}

impl std::fmt::Debug for PgBlobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBlobLock")
            .field("key", &self.key)
            .finish()
    }
}

/// The lock's second key: the first four bytes of the hash (a collision
/// only makes two uploads wait for each other).
fn key_of(sha256: &str) -> i32 {
    let mut bytes = [0u8; 4];
    if hex::decode_to_slice(sha256.get(..8).unwrap_or("00000000"), &mut bytes).is_err() {
        bytes = [0; 4];
    }
    i32::from_be_bytes(bytes)
}

impl PgBlobLock {
    /// Waits for the lock of blob `sha256` (hex).
    pub fn acquire(catalog: &PgCatalog, sha256: &str) -> Result<Self, CatalogError> {
        let key = key_of(sha256);
        let client = catalog.run(move |client| async move {
            client
                .execute("SELECT pg_advisory_lock($1, $2)", &[&BLOB_LOCK_SPACE, &key])
                .await
                .map_err(pg)?;
            Ok(client)
        })?;
        Ok(Self {
            client: Some(client),
            key,
            bridge: catalog.bridge.clone(),
        })
    }
}

impl Drop for PgBlobLock {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let key = self.key;
        self.bridge.detach(async move {
            let unlocked = client
                .execute(
                    "SELECT pg_advisory_unlock($1, $2)",
                    &[&BLOB_LOCK_SPACE, &key],
                )
                .await;
            if unlocked.is_err() {
                // The connection may still hold the lock: close it rather
                // than give it back to the pool.
                drop(Object::take(client));
            }
        });
    }
}
