//! Unicast delivery and repair: HTTP(S) download with Range and resume,
//! 3GPP TS 26.346 symbol-based file repair, reception reports, and the
//! client that UEs use.
//!
//! This crate defines the seam it reads objects through, [`ObjectSource`]:
//! the origin implements it over its catalog and blob store, so a repair
//! server can also run alone (`dms repair-serve`) against a shared,
//! read-only data directory, and a later blob store (an S3-compatible one)
//! only has to implement [`BlobReader`].
//!
//! ```text
//!            public (router)                          management (reports_router)
//!  GET|HEAD /dl/{id}/{file_name}   download.rs        GET /v1/reports?object=ID
//!  GET|POST /repair?fileURI=…      query.rs → repair.rs → container.rs
//!  POST     /report                report/ (XML or JSON) → ReportStore (redb)
//!  CoAP GET /dl/{id}/{file_name}   coap/ (UDP, TCP, TLS; Block2, BERT)
//!        │  limit.rs: per-IP token bucket (repair, report) + global cap (all)
//!        ▼
//!  ObjectSource ──open──> BlobReader (positional reads, blocking pool)
//! ```
//!
//! Serving it:
//!
//! ```no_run
//! # async fn serve(source: std::sync::Arc<dyn dms_repair::ObjectSource>) -> std::io::Result<()> {
//! use std::net::SocketAddr;
//! let app = dms_repair::router(source, None, dms_repair::ServiceConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! // Client addresses feed the per-client limits.
//! axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! # }
//! ```
//!
//! The client side ([`RepairClient`], [`client::backoff`]) is what a UE
//! uses: back-off before the first repair request, servers in a random
//! order with failover, checked symbol answers, and a resumable download
//! verified against the manifest's hashes.
#![deny(missing_docs)]

pub mod client;
pub mod coap;
pub mod container;
pub mod download;
pub mod error;
pub mod limit;
pub mod manifest;
pub mod query;
pub mod range;
pub mod repair;
pub mod report;
mod report_http;
mod service;
pub mod source;
mod state;

pub use client::{
    ClientConfig, ClientError, DeltaOffer, DownloadStats, DownloadTarget, FailedTry, RepairAttempt,
    RepairClient,
};
pub use error::ApiError;
pub use limit::LimitConfig;
pub use report::{RedbReports, Report, ReportError, ReportStore};
pub use report_http::reports_router;
pub use service::router;
pub use source::{
    BlobReader, DeltaBlob, FileBlob, ObjectInfo, ObjectSource, OpenDelta, SourceError,
    StoreUnavailable, is_store_unavailable,
};
pub use state::{MAX_SYMBOLS_PER_REQUEST, ServiceConfig};
