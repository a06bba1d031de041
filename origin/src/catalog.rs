//! The catalog: object records, name history, blob reference counts and
//! install notifications. Behind a trait so that PostgreSQL can replace the
//! embedded default ([`RedbCatalog`], one file `DATA/catalog.redb`).

use std::path::Path;

use redb::{
    Builder, ConcurrencyMode, Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase,
    ReadableTable, TableDefinition, TableError,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{Damage, Kind, ObjectRecord, State, version_order};

/// An error of the catalog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The database failed.
    #[error("catalog database: {0}")]
    Db(#[from] redb::Error),
    /// A stored record does not parse.
    #[error("corrupt catalog record: {0}")]
    Corrupt(String),
    /// The name already has this version.
    #[error("{name} {version} already exists (object {id})")]
    VersionExists {
        /// The name.
        name: String,
        /// The version.
        version: String,
        /// The object that has it.
        id: String,
    },
    /// The id is (or was) taken.
    #[error("id {0} already used")]
    IdUsed(String),
    /// A write on a read-only catalog.
    #[error("catalog opened read-only")]
    ReadOnly,
    /// A shared catalog (PostgreSQL) cannot be reached now: answered 503
    /// with a `Retry-After`; the same call works once it is back.
    #[error("catalog unavailable: {0}")]
    Unavailable(String),
    /// PostgreSQL refused a statement.
    #[error("catalog database: {0}")]
    Pg(String),
    /// The catalog's URL or schema is not usable.
    #[error("catalog: {0}")]
    Config(String),
}

/// A held blob lock (see [`Catalog::lock_blob`]); dropping it releases it.
pub type BlobLock = Box<dyn std::any::Any + Send>;

fn db<E: Into<redb::Error>>(e: E) -> CatalogError {
    CatalogError::Db(e.into())
}

/// Filters of a listing.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only this name.
    pub name: Option<String>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Only this state.
    pub state: Option<State>,
}

impl Filter {
    /// Whether `r` passes the filter.
    pub fn matches(&self, r: &ObjectRecord) -> bool {
        self.name.as_ref().is_none_or(|n| *n == r.name)
            && self.kind.is_none_or(|k| k == r.kind)
            && self.state.is_none_or(|s| s == r.state)
    }
}

/// What a device last posted to an object's installNotifyURI: a DL-OTA
/// 9xx status line or an LwM2M Object 5 report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    /// Who posted it (the `device` query parameter, else the peer address).
    pub device: String,
    /// The 9xx status code (0 for an LwM2M report).
    pub code: u16,
    /// The status text as sent (a summary for an LwM2M report).
    pub text: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The LwM2M Firmware Update results (`/5/0/5`, `/5/0/3`), when the
    /// device reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lwm2m: Option<crate::lwm2m::Lwm2mUpdate>,
    /// Where the device's update stands (absent in records kept before
    /// outcomes were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<crate::lwm2m::Outcome>,
}

/// Totals kept by the catalog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Objects in the catalog.
    pub objects: u64,
    /// Bytes of distinct blobs referenced (identical content counted once).
    pub stored_bytes: u64,
}

/// What the scrubs have checked, kept in the catalog so that an offline
/// `dms scrub` shows in the server's metrics too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrubTotals {
    /// Scrubs run (all of the store each).
    pub runs: u64,
    /// Seconds since the Unix epoch when the last one ended (0: never).
    pub last_at: u64,
    /// Objects checked by the last scrub.
    pub last_objects: u64,
    /// Bytes re-hashed by the last scrub.
    pub last_bytes: u64,
    /// Damaged objects the last scrub found.
    pub last_damaged: u64,
    /// Objects checked by every scrub.
    pub objects_total: u64,
    /// Bytes re-hashed by every scrub.
    pub bytes_total: u64,
}

/// A broadcast session's lease: which instance runs it. On a shared
/// catalog exactly one instance holds each session's lease at a time; it
/// renews it while it sends, and another instance takes it over once it
/// has expired (its holder died), going on with the same TSI and TOIs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionLease {
    /// The instance holding it.
    pub holder: String,
    /// How many times the lease changed hands (1 for the first holder):
    /// a new holder starts its FDT instance ids past
    /// [`SessionLease::fdt_instance`], so receivers see them increase.
    pub generation: u64,
    /// The last FDT instance id the previous holder recorded.
    pub fdt_instance: u32,
}

/// What the repository needs of a catalog.
pub trait Catalog: Send + Sync + 'static {
    /// Adds `record`, assigning its `seq`; counts a reference to its blob.
    /// Fails when the id was ever used or the name already has the version.
    fn insert(&self, record: ObjectRecord) -> Result<ObjectRecord, CatalogError>;
    /// The object with this id.
    fn get(&self, id: &str) -> Result<Option<ObjectRecord>, CatalogError>;
    /// Objects matching `filter`, in publication order.
    fn list(&self, filter: &Filter) -> Result<Vec<ObjectRecord>, CatalogError>;
    /// The versions of `name`, oldest first (see [`version_order`]).
    fn history(&self, name: &str) -> Result<Vec<ObjectRecord>, CatalogError>;
    /// Applies `change` to the object and stores it; `None` if absent.
    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut ObjectRecord),
    ) -> Result<Option<ObjectRecord>, CatalogError>;
    /// Removes the object (its id stays retired). Returns the record and
    /// whether its blob is no longer referenced by any object.
    fn remove(&self, id: &str) -> Result<Option<(ObjectRecord, bool)>, CatalogError>;
    /// Whether any object references the blob with this hex hash.
    fn blob_referenced(&self, sha256: &str) -> Result<bool, CatalogError>;
    /// Totals.
    fn stats(&self) -> Result<Stats, CatalogError>;
    /// Records (replacing) a device's latest notification for an object.
    fn record_notification(&self, id: &str, n: &Notification) -> Result<(), CatalogError>;
    /// The notifications recorded for an object, by device.
    fn notifications(&self, id: &str) -> Result<Vec<Notification>, CatalogError>;
    /// Sets (or with `None` clears) the damage of every object whose blob
    /// has this hex hash, in one transaction; returns their ids.
    fn set_damage(
        &self,
        sha256: &str,
        damage: Option<&Damage>,
    ) -> Result<Vec<String>, CatalogError>;
    /// Records a scrub in one transaction: the damage it found (blob hex
    /// hash and what is wrong) and its counts.
    fn record_scrub(
        &self,
        damaged: &[(String, Damage)],
        objects: u64,
        bytes: u64,
        at: u64,
    ) -> Result<(), CatalogError>;
    /// What the scrubs have checked.
    fn scrub_totals(&self) -> Result<ScrubTotals, CatalogError>;
    /// Waits until no other instance on this catalog is committing or
    /// removing the blob `sha256` (hex), and holds them off until the
    /// guard drops. `None`: one process owns the catalog (redb), whose
    /// repository lock is enough.
    fn lock_blob(&self, sha256: &str) -> Result<Option<BlobLock>, CatalogError> {
        let _ = sha256;
        Ok(None)
    }
    /// Takes (or, by its holder, refreshes) the lease of `session` for
    /// `ttl`: granted when nobody holds it, when its lease expired, or
    /// when `holder` already holds it; `None` while another instance
    /// holds it. The default (one process owns the catalog, redb): the
    /// local instance always holds it.
    fn take_session_lease(
        &self,
        session: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<SessionLease>, CatalogError> {
        let _ = (session, ttl);
        Ok(Some(SessionLease {
            holder: holder.to_owned(),
            generation: 1,
            fdt_instance: 0,
        }))
    }
    /// Extends `holder`'s lease of `session` by `ttl` from now and records
    /// the last FDT instance id it sent; `false` when `holder` no longer
    /// holds it (it expired and another instance took it: stop sending).
    fn renew_session_lease(
        &self,
        session: &str,
        holder: &str,
        ttl: std::time::Duration,
        fdt_instance: u32,
    ) -> Result<bool, CatalogError> {
        let _ = (session, holder, ttl, fdt_instance);
        Ok(true)
    }
    /// Gives up `holder`'s lease of `session` (the session ended, or the
    /// instance stops): another instance may take it at once.
    fn release_session_lease(&self, session: &str, holder: &str) -> Result<(), CatalogError> {
        let _ = (session, holder);
        Ok(())
    }
}

const OBJECTS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("objects");
/// `name \0 id` → seq.
const NAMES: TableDefinition<'_, &str, u64> = TableDefinition::new("names");
/// `name \0 version` → id.
const NAME_VERSIONS: TableDefinition<'_, &str, &str> = TableDefinition::new("name_versions");
/// hex sha256 → number of objects referencing it.
const BLOBS: TableDefinition<'_, &str, u64> = TableDefinition::new("blobs");
/// Every id ever used → seq (ids are never reused).
const IDS: TableDefinition<'_, &str, u64> = TableDefinition::new("ids");
/// Counters: "seq", "stored_bytes".
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// `id \0 device` → JSON [`Notification`].
const NOTIFY: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("notifications");

enum Handle {
    Writer(Database),
    Reader(ReadOnlyDatabase),
}

/// The embedded catalog in one redb file.
///
/// The writer opens the file in [`ConcurrencyMode::SingleWriter`], so that
/// other processes (a `dms repair-serve`) can open the same file read-only
/// with [`RedbCatalog::open_read_only`] and follow its commits.
pub struct RedbCatalog {
    handle: Handle,
}

impl std::fmt::Debug for RedbCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.handle {
            Handle::Writer(_) => "writer",
            Handle::Reader(_) => "read-only",
        };
        f.debug_struct("RedbCatalog").field("mode", &mode).finish()
    }
}

fn parse(bytes: &[u8]) -> Result<ObjectRecord, CatalogError> {
    serde_json::from_slice(bytes).map_err(|e| CatalogError::Corrupt(e.to_string()))
}

fn encode(record: &ObjectRecord) -> Result<Vec<u8>, CatalogError> {
    serde_json::to_vec(record).map_err(|e| CatalogError::Corrupt(e.to_string()))
}

impl RedbCatalog {
    /// Opens (creating) the catalog for writing.
    pub fn open(path: &Path) -> Result<Self, CatalogError> {
        let database = Builder::new()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .create(path)
            .map_err(db)?;
        let txn = database.begin_write().map_err(db)?;
        {
            txn.open_table(OBJECTS).map_err(db)?;
            txn.open_table(NAMES).map_err(db)?;
            txn.open_table(NAME_VERSIONS).map_err(db)?;
            txn.open_table(BLOBS).map_err(db)?;
            txn.open_table(IDS).map_err(db)?;
            txn.open_table(META).map_err(db)?;
            txn.open_table(NOTIFY).map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(Self {
            handle: Handle::Writer(database),
        })
    }

    /// Opens an existing catalog read-only, beside a writer in another process.
    pub fn open_read_only(path: &Path) -> Result<Self, CatalogError> {
        let database = Builder::new()
            .set_concurrency_mode(ConcurrencyMode::SingleWriter)
            .open_read_only(path)
            .map_err(db)?;
        Ok(Self {
            handle: Handle::Reader(database),
        })
    }

    fn read(&self) -> Result<ReadTransaction, CatalogError> {
        match &self.handle {
            Handle::Writer(d) => d.begin_read().map_err(db),
            Handle::Reader(d) => d.begin_read().map_err(db),
        }
    }

    fn writer(&self) -> Result<&Database, CatalogError> {
        match &self.handle {
            Handle::Writer(d) => Ok(d),
            Handle::Reader(_) => Err(CatalogError::ReadOnly),
        }
    }

    fn scan(
        &self,
        mut keep: impl FnMut(&ObjectRecord) -> bool,
    ) -> Result<Vec<ObjectRecord>, CatalogError> {
        let txn = self.read()?;
        let table = match txn.open_table(OBJECTS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(db)? {
            let (_, value) = entry.map_err(db)?;
            let record = parse(value.value())?;
            if keep(&record) {
                out.push(record);
            }
        }
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }
}

fn meta(table: &redb::Table<'_, &str, u64>, key: &str) -> Result<u64, CatalogError> {
    Ok(table.get(key).map_err(db)?.map(|v| v.value()).unwrap_or(0))
}

/// Sets the damage of every object of blob `sha256` inside `txn`.
fn damage_in(
    txn: &redb::WriteTransaction,
    sha256: &str,
    damage: Option<&Damage>,
) -> Result<Vec<String>, CatalogError> {
    let mut table = txn.open_table(OBJECTS).map_err(db)?;
    let mut hit = Vec::new();
    for entry in table.iter().map_err(db)? {
        let (key, value) = entry.map_err(db)?;
        let record = parse(value.value())?;
        if record.sha256 == sha256 && record.damaged.as_ref() != damage {
            hit.push((key.value().to_owned(), record));
        }
    }
    let mut ids = Vec::with_capacity(hit.len());
    for (key, mut record) in hit {
        record.damaged = damage.cloned();
        table
            .insert(key.as_str(), encode(&record)?.as_slice())
            .map_err(db)?;
        ids.push(key);
    }
    Ok(ids)
}

const SCRUB_KEYS: [&str; 7] = [
    "scrub_runs",
    "scrub_last_at",
    "scrub_last_objects",
    "scrub_last_bytes",
    "scrub_last_damaged",
    "scrub_objects_total",
    "scrub_bytes_total",
];

impl Catalog for RedbCatalog {
    fn insert(&self, mut record: ObjectRecord) -> Result<ObjectRecord, CatalogError> {
        let txn = self.writer()?.begin_write().map_err(db)?;
        {
            let mut ids = txn.open_table(IDS).map_err(db)?;
            if ids.get(record.id.as_str()).map_err(db)?.is_some() {
                return Err(CatalogError::IdUsed(record.id));
            }
            let mut versions = txn.open_table(NAME_VERSIONS).map_err(db)?;
            let nv = format!("{}\0{}", record.name, record.version);
            if let Some(id) = versions.get(nv.as_str()).map_err(db)? {
                return Err(CatalogError::VersionExists {
                    name: record.name,
                    version: record.version,
                    id: id.value().to_owned(),
                });
            }
            let mut meta_table = txn.open_table(META).map_err(db)?;
            record.seq = meta(&meta_table, "seq")? + 1;
            meta_table.insert("seq", record.seq).map_err(db)?;
            let mut blobs = txn.open_table(BLOBS).map_err(db)?;
            let refs = blobs
                .get(record.sha256.as_str())
                .map_err(db)?
                .map(|v| v.value())
                .unwrap_or(0);
            if refs == 0 {
                let stored = meta(&meta_table, "stored_bytes")? + record.size;
                meta_table.insert("stored_bytes", stored).map_err(db)?;
            }
            blobs.insert(record.sha256.as_str(), refs + 1).map_err(db)?;
            ids.insert(record.id.as_str(), record.seq).map_err(db)?;
            versions
                .insert(nv.as_str(), record.id.as_str())
                .map_err(db)?;
            txn.open_table(NAMES)
                .map_err(db)?
                .insert(
                    format!("{}\0{}", record.name, record.id).as_str(),
                    record.seq,
                )
                .map_err(db)?;
            txn.open_table(OBJECTS)
                .map_err(db)?
                .insert(record.id.as_str(), encode(&record)?.as_slice())
                .map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(record)
    }

    fn get(&self, id: &str) -> Result<Option<ObjectRecord>, CatalogError> {
        let txn = self.read()?;
        let table = match txn.open_table(OBJECTS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db(e)),
        };
        match table.get(id).map_err(db)? {
            Some(v) => parse(v.value()).map(Some),
            None => Ok(None),
        }
    }

    fn list(&self, filter: &Filter) -> Result<Vec<ObjectRecord>, CatalogError> {
        self.scan(|r| filter.matches(r))
    }

    fn history(&self, name: &str) -> Result<Vec<ObjectRecord>, CatalogError> {
        let ids: Vec<String> = {
            let txn = self.read()?;
            let table = match txn.open_table(NAMES) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(db(e)),
            };
            let start = format!("{name}\0");
            let end = format!("{name}\u{1}");
            let mut ids = Vec::new();
            for entry in table.range(start.as_str()..end.as_str()).map_err(db)? {
                let (key, _) = entry.map_err(db)?;
                if let Some((_, id)) = key.value().split_once('\0') {
                    ids.push(id.to_owned());
                }
            }
            ids
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.get(&id)? {
                out.push(r);
            }
        }
        out.sort_by(version_order);
        Ok(out)
    }

    fn update(
        &self,
        id: &str,
        change: &mut dyn FnMut(&mut ObjectRecord),
    ) -> Result<Option<ObjectRecord>, CatalogError> {
        let txn = self.writer()?.begin_write().map_err(db)?;
        let record = {
            let mut table = txn.open_table(OBJECTS).map_err(db)?;
            let Some(mut record) = table
                .get(id)
                .map_err(db)?
                .map(|v| parse(v.value()))
                .transpose()?
            else {
                return Ok(None);
            };
            change(&mut record);
            table.insert(id, encode(&record)?.as_slice()).map_err(db)?;
            record
        };
        txn.commit().map_err(db)?;
        Ok(Some(record))
    }

    fn remove(&self, id: &str) -> Result<Option<(ObjectRecord, bool)>, CatalogError> {
        let txn = self.writer()?.begin_write().map_err(db)?;
        let result = {
            let mut table = txn.open_table(OBJECTS).map_err(db)?;
            let Some(record) = table
                .remove(id)
                .map_err(db)?
                .map(|v| parse(v.value()))
                .transpose()?
            else {
                return Ok(None);
            };
            txn.open_table(NAMES)
                .map_err(db)?
                .remove(format!("{}\0{}", record.name, record.id).as_str())
                .map_err(db)?;
            txn.open_table(NAME_VERSIONS)
                .map_err(db)?
                .remove(format!("{}\0{}", record.name, record.version).as_str())
                .map_err(db)?;
            let mut blobs = txn.open_table(BLOBS).map_err(db)?;
            let refs = blobs
                .get(record.sha256.as_str())
                .map_err(db)?
                .map(|v| v.value())
                .unwrap_or(0);
            let unreferenced = refs <= 1;
            if unreferenced {
                blobs.remove(record.sha256.as_str()).map_err(db)?;
                let mut meta_table = txn.open_table(META).map_err(db)?;
                let stored = meta(&meta_table, "stored_bytes")?.saturating_sub(record.size);
                meta_table.insert("stored_bytes", stored).map_err(db)?;
            } else {
                blobs.insert(record.sha256.as_str(), refs - 1).map_err(db)?;
            }
            let mut notify = txn.open_table(NOTIFY).map_err(db)?;
            let start = format!("{id}\0");
            let end = format!("{id}\u{1}");
            let keys: Vec<String> = notify
                .range(start.as_str()..end.as_str())
                .map_err(db)?
                .filter_map(|e| e.ok().map(|(k, _)| k.value().to_owned()))
                .collect();
            for key in keys {
                notify.remove(key.as_str()).map_err(db)?;
            }
            (record, unreferenced)
        };
        txn.commit().map_err(db)?;
        Ok(Some(result))
    }

    fn blob_referenced(&self, sha256: &str) -> Result<bool, CatalogError> {
        let txn = self.read()?;
        let table = match txn.open_table(BLOBS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(db(e)),
        };
        Ok(table.get(sha256).map_err(db)?.is_some())
    }

    fn stats(&self) -> Result<Stats, CatalogError> {
        let txn = self.read()?;
        let objects = match txn.open_table(OBJECTS) {
            Ok(t) => redb::ReadableTableMetadata::len(&t).map_err(db)?,
            Err(TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(db(e)),
        };
        let stored_bytes = match txn.open_table(META) {
            Ok(t) => t
                .get("stored_bytes")
                .map_err(db)?
                .map(|v| v.value())
                .unwrap_or(0),
            Err(TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(db(e)),
        };
        Ok(Stats {
            objects,
            stored_bytes,
        })
    }

    fn record_notification(&self, id: &str, n: &Notification) -> Result<(), CatalogError> {
        let txn = self.writer()?.begin_write().map_err(db)?;
        {
            let bytes = serde_json::to_vec(n).map_err(|e| CatalogError::Corrupt(e.to_string()))?;
            txn.open_table(NOTIFY)
                .map_err(db)?
                .insert(format!("{id}\0{}", n.device).as_str(), bytes.as_slice())
                .map_err(db)?;
        }
        txn.commit().map_err(db)?;
        Ok(())
    }

    fn notifications(&self, id: &str) -> Result<Vec<Notification>, CatalogError> {
        let txn = self.read()?;
        let table = match txn.open_table(NOTIFY) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db(e)),
        };
        let start = format!("{id}\0");
        let end = format!("{id}\u{1}");
        let mut out = Vec::new();
        for entry in table.range(start.as_str()..end.as_str()).map_err(db)? {
            let (_, v) = entry.map_err(db)?;
            out.push(
                serde_json::from_slice(v.value())
                    .map_err(|e| CatalogError::Corrupt(e.to_string()))?,
            );
        }
        Ok(out)
    }

    fn set_damage(
        &self,
        sha256: &str,
        damage: Option<&Damage>,
    ) -> Result<Vec<String>, CatalogError> {
        let txn = self.writer()?.begin_write().map_err(db)?;
        let ids = damage_in(&txn, sha256, damage)?;
        txn.commit().map_err(db)?;
        Ok(ids)
    }

    fn record_scrub(
        &self,
        damaged: &[(String, Damage)],
        objects: u64,
        bytes: u64,
        at: u64,
    ) -> Result<(), CatalogError> {
        let txn = self.writer()?.begin_write().map_err(db)?;
        let mut found = 0u64;
        for (sha, damage) in damaged {
            damage_in(&txn, sha, Some(damage))?;
            found += 1;
        }
        {
            let mut m = txn.open_table(META).map_err(db)?;
            let runs = meta(&m, "scrub_runs")? + 1;
            let objects_total = meta(&m, "scrub_objects_total")? + objects;
            let bytes_total = meta(&m, "scrub_bytes_total")? + bytes;
            let values = [runs, at, objects, bytes, found, objects_total, bytes_total];
            for (key, value) in SCRUB_KEYS.iter().zip(values) {
                m.insert(*key, value).map_err(db)?;
            }
        }
        txn.commit().map_err(db)?;
        Ok(())
    }

    fn scrub_totals(&self) -> Result<ScrubTotals, CatalogError> {
        let txn = self.read()?;
        let table = match txn.open_table(META) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(ScrubTotals::default()),
            Err(e) => return Err(db(e)),
        };
        let mut v = [0u64; 7];
        for (slot, key) in v.iter_mut().zip(SCRUB_KEYS) {
            *slot = table.get(key).map_err(db)?.map(|x| x.value()).unwrap_or(0);
        }
        Ok(ScrubTotals {
            runs: v[0],
            last_at: v[1],
            last_objects: v[2],
            last_bytes: v[3],
            last_damaged: v[4],
            objects_total: v[5],
            bytes_total: v[6],
        })
    }
}
