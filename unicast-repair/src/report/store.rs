//! [`ReportStore`] in redb: one table of its own in the database the origin
//! shares, keyed by (object, device), values the report as JSON.

use std::sync::Arc;

use redb::{ReadableDatabase, TableDefinition};

use super::{Report, ReportError, ReportStore};

const REPORTS: TableDefinition<'static, (&str, &str), &[u8]> =
    TableDefinition::new("dms_repair_reports");

/// Reports in a redb database.
#[derive(Clone)]
pub struct RedbReports {
    db: Arc<redb::Database>,
}

impl std::fmt::Debug for RedbReports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbReports").finish_non_exhaustive()
    }
}

impl RedbReports {
    /// Reports kept in `db` (in the table `dms_repair_reports`).
    pub fn new(db: Arc<redb::Database>) -> Self {
        RedbReports { db }
    }
}

impl ReportStore for RedbReports {
    fn put(&self, report: &Report) -> Result<(), ReportError> {
        let value = serde_json::to_vec(report)?;
        let tx = self.db.begin_write().map_err(redb::Error::from)?;
        {
            let mut table = tx.open_table(REPORTS).map_err(redb::Error::from)?;
            table
                .insert(
                    (report.object.as_str(), report.device.as_str()),
                    value.as_slice(),
                )
                .map_err(redb::Error::from)?;
        }
        tx.commit().map_err(redb::Error::from)?;
        Ok(())
    }

    fn reports(&self, object: &str) -> Result<Vec<Report>, ReportError> {
        let tx = self.db.begin_read().map_err(redb::Error::from)?;
        let table = match tx.open_table(REPORTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(redb::Error::from(e).into()),
        };
        let mut out = Vec::new();
        for item in table.range((object, "")..).map_err(redb::Error::from)? {
            let (key, value) = item.map_err(redb::Error::from)?;
            if key.value().0 != object {
                break;
            }
            out.push(serde_json::from_slice(value.value())?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;
    use crate::report::{BytesBySource, ReportKind};

    fn report(object: &str, device: &str, success: bool) -> Report {
        Report {
            object: object.into(),
            device: device.into(),
            success,
            bytes: BytesBySource::default(),
            seconds_to_complete: None,
            kind: ReportKind::Json,
            received_at: 1,
            repair_failovers: Vec::new(),
        }
    }

    #[test]
    fn latest_report_per_device_wins() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("db")).unwrap());
        let store = RedbReports::new(db);
        assert!(store.reports("a").unwrap().is_empty());
        store.put(&report("a", "d1", false)).unwrap();
        store.put(&report("a", "d1", true)).unwrap();
        store.put(&report("a", "d2", false)).unwrap();
        store.put(&report("ab", "d1", true)).unwrap();
        store.put(&report("", "d1", true)).unwrap();
        let got = store.reports("a").unwrap();
        assert_eq!(got, vec![report("a", "d1", true), report("a", "d2", false)]);
        assert_eq!(store.reports("ab").unwrap().len(), 1);
    }
}
