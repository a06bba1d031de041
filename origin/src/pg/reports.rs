//! Reception reports in the PostgreSQL catalog (`dms_reports`), so that
//! any instance behind the load balancer takes a device's report and
//! every instance's summary counts all of them.

use dms_repair::{Report, ReportError, ReportStore};

use super::{PgCatalog, from_json, to_json};
use crate::catalog::CatalogError;

/// A [`ReportStore`] on the catalog's database.
#[derive(Clone, Debug)]
pub struct PgReports {
    catalog: PgCatalog,
}

impl PgReports {
    /// Reports kept in `catalog`'s database.
    pub fn new(catalog: PgCatalog) -> Self {
        Self { catalog }
    }
}

fn report_error(e: CatalogError) -> ReportError {
    match e {
        CatalogError::Unavailable(m) => ReportError::Unavailable(m),
        other => ReportError::Backend(other.to_string()),
    }
}

impl ReportStore for PgReports {
    fn put(&self, report: &Report) -> Result<(), ReportError> {
        let body = to_json(report).map_err(report_error)?;
        let (object, device) = (report.object.clone(), report.device.clone());
        self.catalog
            .run(move |client| async move {
                client
                    .execute(
                        "INSERT INTO dms_reports (object_id, device, body)
                         VALUES ($1, $2, $3::text::jsonb)
                         ON CONFLICT (object_id, device) DO UPDATE SET body = EXCLUDED.body",
                        &[&object, &device, &body],
                    )
                    .await
                    .map_err(super::pg)?;
                Ok(())
            })
            .map_err(report_error)
    }

    fn reports(&self, object: &str) -> Result<Vec<Report>, ReportError> {
        let object = object.to_owned();
        self.catalog
            .run(move |client| async move {
                client
                    .query(
                        "SELECT body::text FROM dms_reports WHERE object_id = $1 ORDER BY device",
                        &[&object],
                    )
                    .await
                    .map_err(super::pg)?
                    .iter()
                    .map(|row| from_json(row.get(0)))
                    .collect()
            })
            .map_err(report_error)
    }
}
