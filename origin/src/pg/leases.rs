//! Broadcast session leases in `dms_session_leases`: one row per
//! session naming the instance that runs it until `expires_at`. Expiry
//! is decided by the database's clock (`now()`), so the instances'
//! clocks need not agree. A lease is never deleted: its `generation`
//! counts the hand-overs and its `fdt_instance` the last FDT instance id
//! recorded, so a new holder goes on past it.

use std::time::Duration;

use super::{PgCatalog, pg, signed, unsigned};
use crate::catalog::{CatalogError, SessionLease};

impl PgCatalog {
    /// See [`Catalog::take_session_lease`](crate::Catalog::take_session_lease).
    pub(crate) fn take_lease(
        &self,
        session: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<SessionLease>, CatalogError> {
        let (session, holder) = (session.to_owned(), holder.to_owned());
        let secs = ttl.as_secs_f64();
        self.run(move |client| async move {
            // Granted when absent, expired, or already ours; the
            // generation goes up when the holder changes. One statement:
            // two instances taking at once cannot both win.
            let row = client
                .query_opt(
                    "INSERT INTO dms_session_leases AS l
                         (session, holder, generation, fdt_instance, expires_at)
                     VALUES ($1, $2, 1, 0, now() + make_interval(secs => $3))
                     ON CONFLICT (session) DO UPDATE SET
                         holder = EXCLUDED.holder,
                         generation = l.generation
                             + CASE WHEN l.holder = EXCLUDED.holder THEN 0 ELSE 1 END,
                         expires_at = EXCLUDED.expires_at
                     WHERE l.holder = EXCLUDED.holder OR l.expires_at < now()
                     RETURNING holder, generation, fdt_instance",
                    &[&session, &holder, &secs],
                )
                .await
                .map_err(pg)?;
            Ok(row.map(|row| SessionLease {
                holder: row.get(0),
                generation: unsigned(row.get(1)),
                fdt_instance: u32::try_from(row.get::<_, i64>(2)).unwrap_or(0),
            }))
        })
    }

    /// See [`Catalog::renew_session_lease`](crate::Catalog::renew_session_lease).
    pub(crate) fn renew_lease(
        &self,
        session: &str,
        holder: &str,
        ttl: Duration,
        fdt_instance: u32,
    ) -> Result<bool, CatalogError> {
        let (session, holder) = (session.to_owned(), holder.to_owned());
        let secs = ttl.as_secs_f64();
        let fdt = signed(u64::from(fdt_instance));
        self.run(move |client| async move {
            // Only while still ours and not expired: an expired lease may
            // already be another instance's.
            let updated = client
                .execute(
                    "UPDATE dms_session_leases
                     SET expires_at = now() + make_interval(secs => $3), fdt_instance = $4
                     WHERE session = $1 AND holder = $2 AND expires_at >= now()",
                    &[&session, &holder, &secs, &fdt],
                )
                .await
                .map_err(pg)?;
            Ok(updated == 1)
        })
    }

    /// See [`Catalog::release_session_lease`](crate::Catalog::release_session_lease).
    pub(crate) fn release_lease(&self, session: &str, holder: &str) -> Result<(), CatalogError> {
        let (session, holder) = (session.to_owned(), holder.to_owned());
        self.run(move |client| async move {
            client
                .execute(
                    "UPDATE dms_session_leases SET expires_at = now() - interval '1 millisecond'
                     WHERE session = $1 AND holder = $2",
                    &[&session, &holder],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
    }
}
