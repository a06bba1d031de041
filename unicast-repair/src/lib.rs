//! Unicast delivery and repair: HTTP(S) download with Range and resume,
//! 3GPP TS 26.346 symbol-based file repair, reception reports, and the
//! client that UEs use.
//!
//! This crate defines the seam it reads objects through, [`ObjectSource`]:
//! the origin implements it over its catalog and blob store, so a repair
//! server can also run alone (`dms repair-serve`) against a shared,
//! read-only data directory, and a later blob store (an S3-compatible one)
//! only has to implement [`BlobReader`].
#![deny(missing_docs)]

pub mod client;
pub mod container;
pub mod download;
pub mod error;
pub mod limit;
pub mod query;
pub mod range;
pub mod repair;
pub mod report;
mod service;
pub mod source;

pub use client::{ClientConfig, ClientError, DownloadStats, DownloadTarget, RepairClient};
pub use error::ApiError;
pub use limit::LimitConfig;
pub use report::{RedbReports, ReportStore, reports_router};
pub use service::{ServiceConfig, router};
pub use source::{BlobReader, FileBlob, ObjectInfo, ObjectSource, SourceError};
