//! [`Catalog`] on PostgreSQL: each method is one statement or one
//! transaction; the constraints (unique name and version, ids never
//! reused) hold across instances.

use tokio_postgres::error::SqlState;

use super::{PgCatalog, from_json, pg, signed, to_json, unsigned};
use crate::catalog::{Catalog, CatalogError, Filter, Notification, ScrubTotals, Stats};
use crate::model::{Damage, ObjectRecord, version_order};

const SCRUB_KEYS: [&str; 7] = [
    "scrub_runs",
    "scrub_last_at",
    "scrub_last_objects",
    "scrub_last_bytes",
    "scrub_last_damaged",
    "scrub_objects_total",
    "scrub_bytes_total",
];

/// Sets the damage of every object of blob `sha256` inside `tx`.
async fn damage_in(
    tx: &tokio_postgres::Transaction<'_>,
    sha256: &str,
    damage: Option<&Damage>,
) -> Result<Vec<String>, CatalogError> {
    let rows = tx
        .query(
            "SELECT id, record::text FROM dms_objects WHERE sha256 = $1 ORDER BY seq FOR UPDATE",
            &[&sha256],
        )
        .await
        .map_err(pg)?;
    let mut ids = Vec::new();
    for row in rows {
        let id: String = row.get(0);
        let mut record: ObjectRecord = from_json(row.get(1))?;
        if record.damaged.as_ref() == damage {
            continue;
        }
        record.damaged = damage.cloned();
        tx.execute(
            "UPDATE dms_objects SET record = $2::text::jsonb, rev = rev + 1 WHERE id = $1",
            &[&id, &to_json(&record)?],
        )
        .await
        .map_err(pg)?;
        ids.push(id);
    }
    Ok(ids)
}

impl Catalog for PgCatalog {
    fn insert(&self, record: ObjectRecord) -> Result<ObjectRecord, CatalogError> {
        self.run(move |mut client| async move {
            let mut record = record;
            let tx = client.transaction().await.map_err(pg)?;
            let fresh = tx
                .execute(
                    "INSERT INTO dms_object_ids (id) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[&record.id],
                )
                .await
                .map_err(pg)?;
            if fresh == 0 {
                return Err(CatalogError::IdUsed(record.id));
            }
            let existing = tx
                .query_opt(
                    "SELECT id FROM dms_objects WHERE name = $1 AND version = $2",
                    &[&record.name, &record.version],
                )
                .await
                .map_err(pg)?;
            if let Some(row) = existing {
                return Err(CatalogError::VersionExists {
                    name: record.name,
                    version: record.version,
                    id: row.get(0),
                });
            }
            let seq: i64 = tx
                .query_one("SELECT nextval('dms_object_seq')", &[])
                .await
                .map_err(pg)?
                .get(0);
            record.seq = unsigned(seq);
            tx.execute(
                "INSERT INTO dms_blobs (sha256, refs, size) VALUES ($1, 1, $2)
                 ON CONFLICT (sha256) DO UPDATE SET refs = dms_blobs.refs + 1",
                &[&record.sha256, &signed(record.size)],
            )
            .await
            .map_err(pg)?;
            let inserted = tx
                .execute(
                    "INSERT INTO dms_objects (id, seq, name, version, sha256, record)
                     VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)",
                    &[
                        &record.id,
                        &seq,
                        &record.name,
                        &record.version,
                        &record.sha256,
                        &to_json(&record)?,
                    ],
                )
                .await;
            match inserted {
                Ok(_) => {}
                // Another instance committed the same name and version
                // between the check above and this insert.
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    return Err(CatalogError::VersionExists {
                        name: record.name,
                        version: record.version,
                        id: "(committed concurrently)".into(),
                    });
                }
                Err(e) => return Err(pg(e)),
            }
            tx.commit().await.map_err(pg)?;
            Ok(record)
        })
    }

    fn get(&self, id: &str) -> Result<Option<ObjectRecord>, CatalogError> {
        let id = id.to_owned();
        self.run(move |client| async move {
            client
                .query_opt("SELECT record::text FROM dms_objects WHERE id = $1", &[&id])
                .await
                .map_err(pg)?
                .map(|row| from_json(row.get(0)))
                .transpose()
        })
    }

    fn list(&self, filter: &Filter) -> Result<Vec<ObjectRecord>, CatalogError> {
        let name = filter.name.clone();
        let records: Vec<ObjectRecord> = self.run(move |client| async move {
            let rows = client
                .query(
                    "SELECT record::text FROM dms_objects
                     WHERE $1::text IS NULL OR name = $1 ORDER BY seq",
                    &[&name],
                )
                .await
                .map_err(pg)?;
            rows.iter().map(|row| from_json(row.get(0))).collect()
        })?;
        Ok(records.into_iter().filter(|r| filter.matches(r)).collect())
    }

    fn history(&self, name: &str) -> Result<Vec<ObjectRecord>, CatalogError> {
        let mut out = self.list(&Filter {
            name: Some(name.to_owned()),
            ..Filter::default()
        })?;
        out.sort_by(version_order);
        Ok(out)
    }

    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut ObjectRecord),
    ) -> Result<Option<ObjectRecord>, CatalogError> {
        // The change is a closure of the caller's thread: read, change
        // here, and write back only if nobody wrote in between (the row's
        // `rev`), else read again.
        loop {
            let key = id.to_owned();
            let Some((rev, mut record)) = self.run(move |client| async move {
                client
                    .query_opt(
                        "SELECT rev, record::text FROM dms_objects WHERE id = $1",
                        &[&key],
                    )
                    .await
                    .map_err(pg)?
                    .map(|row| {
                        Ok::<_, CatalogError>((row.get::<_, i64>(0), from_json(row.get(1))?))
                    })
                    .transpose()
            })?
            else {
                return Ok(None);
            };
            change(&mut record);
            let key = id.to_owned();
            let text = to_json::<ObjectRecord>(&record)?;
            let written = self.run(move |client| async move {
                client
                    .execute(
                        "UPDATE dms_objects SET record = $3::text::jsonb, rev = rev + 1
                         WHERE id = $1 AND rev = $2",
                        &[&key, &rev, &text],
                    )
                    .await
                    .map_err(pg)
            })?;
            if written == 1 {
                return Ok(Some(record));
            }
        }
    }

    fn remove(&self, id: &str) -> Result<Option<(ObjectRecord, bool)>, CatalogError> {
        let id = id.to_owned();
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(pg)?;
            let Some(row) = tx
                .query_opt(
                    "DELETE FROM dms_objects WHERE id = $1 RETURNING record::text",
                    &[&id],
                )
                .await
                .map_err(pg)?
            else {
                return Ok(None);
            };
            let record: ObjectRecord = from_json(row.get(0))?;
            let refs: Option<i64> = tx
                .query_opt(
                    "UPDATE dms_blobs SET refs = refs - 1 WHERE sha256 = $1 RETURNING refs",
                    &[&record.sha256],
                )
                .await
                .map_err(pg)?
                .map(|row| row.get(0));
            let unreferenced = refs.is_none_or(|r| r <= 0);
            if unreferenced {
                tx.execute("DELETE FROM dms_blobs WHERE sha256 = $1", &[&record.sha256])
                    .await
                    .map_err(pg)?;
            }
            tx.execute("DELETE FROM dms_notifications WHERE object_id = $1", &[&id])
                .await
                .map_err(pg)?;
            tx.commit().await.map_err(pg)?;
            Ok(Some((record, unreferenced)))
        })
    }

    fn blob_referenced(&self, sha256: &str) -> Result<bool, CatalogError> {
        let sha256 = sha256.to_owned();
        self.run(move |client| async move {
            Ok(client
                .query_opt("SELECT 1 FROM dms_blobs WHERE sha256 = $1", &[&sha256])
                .await
                .map_err(pg)?
                .is_some())
        })
    }

    fn stats(&self) -> Result<Stats, CatalogError> {
        self.run(|client| async move {
            let row = client
                .query_one(
                    "SELECT (SELECT count(*) FROM dms_objects),
                            (SELECT coalesce(sum(size), 0)::bigint FROM dms_blobs)",
                    &[],
                )
                .await
                .map_err(pg)?;
            Ok(Stats {
                objects: unsigned(row.get(0)),
                stored_bytes: unsigned(row.get(1)),
            })
        })
    }

    fn record_notification(&self, id: &str, n: &Notification) -> Result<(), CatalogError> {
        let id = id.to_owned();
        let device = n.device.clone();
        let body = to_json(n)?;
        self.run(move |client| async move {
            client
                .execute(
                    "INSERT INTO dms_notifications (object_id, device, body)
                     VALUES ($1, $2, $3::text::jsonb)
                     ON CONFLICT (object_id, device) DO UPDATE SET body = EXCLUDED.body",
                    &[&id, &device, &body],
                )
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn notifications(&self, id: &str) -> Result<Vec<Notification>, CatalogError> {
        let id = id.to_owned();
        self.run(move |client| async move {
            client
                .query(
                    "SELECT body::text FROM dms_notifications WHERE object_id = $1
                     ORDER BY device",
                    &[&id],
                )
                .await
                .map_err(pg)?
                .iter()
                .map(|row| from_json(row.get(0)))
                .collect()
        })
    }

    fn set_damage(
        &self,
        sha256: &str,
        damage: Option<&Damage>,
    ) -> Result<Vec<String>, CatalogError> {
        let sha256 = sha256.to_owned();
        let damage = damage.cloned();
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(pg)?;
            let ids = damage_in(&tx, &sha256, damage.as_ref()).await?;
            tx.commit().await.map_err(pg)?;
            Ok(ids)
        })
    }

    fn record_scrub(
        &self,
        damaged: &[(String, Damage)],
        objects: u64,
        bytes: u64,
        at: u64,
    ) -> Result<(), CatalogError> {
        let damaged = damaged.to_vec();
        self.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(pg)?;
            for (sha, damage) in &damaged {
                damage_in(&tx, sha, Some(damage)).await?;
            }
            // (key, value, whether it adds to what is stored)
            let found = damaged.len() as u64;
            let values = [
                (SCRUB_KEYS[0], 1, true),
                (SCRUB_KEYS[1], at, false),
                (SCRUB_KEYS[2], objects, false),
                (SCRUB_KEYS[3], bytes, false),
                (SCRUB_KEYS[4], found, false),
                (SCRUB_KEYS[5], objects, true),
                (SCRUB_KEYS[6], bytes, true),
            ];
            for (key, value, adds) in values {
                let sql = if adds {
                    "INSERT INTO dms_counters (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = dms_counters.value + EXCLUDED.value"
                } else {
                    "INSERT INTO dms_counters (key, value) VALUES ($1, $2)
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                };
                tx.execute(sql, &[&key, &signed(value)]).await.map_err(pg)?;
            }
            tx.commit().await.map_err(pg)?;
            Ok(())
        })
    }

    fn scrub_totals(&self) -> Result<ScrubTotals, CatalogError> {
        let rows: Vec<(String, i64)> = self.run(|client| async move {
            Ok(client
                .query("SELECT key, value FROM dms_counters", &[])
                .await
                .map_err(pg)?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        })?;
        let value = |key: &str| {
            rows.iter()
                .find(|(k, _)| k == key)
                .map_or(0, |(_, v)| unsigned(*v))
        };
        Ok(ScrubTotals {
            runs: value(SCRUB_KEYS[0]),
            last_at: value(SCRUB_KEYS[1]),
            last_objects: value(SCRUB_KEYS[2]),
            last_bytes: value(SCRUB_KEYS[3]),
            last_damaged: value(SCRUB_KEYS[4]),
            objects_total: value(SCRUB_KEYS[5]),
            bytes_total: value(SCRUB_KEYS[6]),
        })
    }

    fn lock_blob(&self, sha256: &str) -> Result<Option<crate::catalog::BlobLock>, CatalogError> {
        Ok(Some(Box::new(super::PgBlobLock::acquire(self, sha256)?)))
    }

    fn take_session_lease(
        &self,
        session: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<crate::catalog::SessionLease>, CatalogError> {
        self.take_lease(session, holder, ttl)
    }

    fn renew_session_lease(
        &self,
        session: &str,
        holder: &str,
        ttl: std::time::Duration,
        fdt_instance: u32,
    ) -> Result<bool, CatalogError> {
        self.renew_lease(session, holder, ttl, fdt_instance)
    }

    fn release_session_lease(&self, session: &str, holder: &str) -> Result<(), CatalogError> {
        self.release_lease(session, holder)
    }
}
