//! The DMS origin server: the object repository (redb catalog and a
//! content-addressed blob store), the management API that DM servers use,
//! download descriptors (OMA DD, FDT), signed manifests, and broadcast
//! sessions (the paced UDP transmitter that drives the FLUTE sender).
//!
//! ```text
//!   DM server ──HTTPS──> api (axum) ──> Repository ──> Catalog (redb)
//!                          │                      └──> BlobStore (DATA/blobs)
//!   UEs ──GET dl/dd/manifest, POST notify──┘
//! ```

#![deny(missing_docs)]

pub mod api;
pub mod blob;
pub mod catalog;
pub mod config;
pub mod fsutil;
pub mod http;
pub mod keys;
pub mod model;
pub mod repo;
pub mod server;
pub mod tls;
pub mod urls;

pub use catalog::{Catalog, CatalogError, Filter, Notification, RedbCatalog};
pub use model::{Kind, ObjectRecord, Priority, State};
pub use repo::{DeleteVeto, Limits, NewObject, ObjectPatch, RepoError, Repository, Upload};
pub use urls::Urls;
