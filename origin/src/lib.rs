//! The DMS origin server: the object repository (redb catalog and a
//! content-addressed blob store), the management API that DM servers use,
//! download descriptors (OMA DD, FDT), signed manifests, and broadcast
//! sessions (the paced UDP transmitter that drives the FLUTE sender).
//!
//! ```text
//!   DM server ──HTTPS──> api (axum) ──> Repository ──> Catalog (redb)
//!                          │                      └──> BlobStore (DATA/blobs or S3)
//!   UEs ──GET dl/dd/manifest, POST notify──┘
//! ```
//!
//! # The data directory
//!
//! ```text
//! DATA/catalog.redb      the catalog (redb, single-writer mode: a read-only
//!                        `dms repair-serve` may open it beside `dms serve`)
//! DATA/blobs/ab/abcd…    object bytes by SHA-256; DATA/blobs/tmp/ uploads in flight
//! DATA/deltas/T/B-D      delta from base SHA-256 B to target T, itself of SHA-256 D
//!                        (made after each publish; see [`deltas`])
//! DATA/deltas/records/I.json  the record of delta id I (its target, FEC layout,
//!                        block hashes): a delta is an object of its own
//! DATA/blobs_url        `local` or `s3://BUCKET/PREFIX`: where blobs and deltas
//!                        are (with S3, DATA holds no blobs/ or deltas/; see [`s3`])
//! DATA/origin.key        Ed25519 manifest signing key, PKCS#8 PEM, mode 0600
//! DATA/origin.pub        its public key, PEM SubjectPublicKeyInfo (give it to UEs)
//! DATA/admin.token       the admin bearer token (read-write), mode 0600
//! DATA/tls/cert.pem      self-signed certificate made at first start (unless
//! DATA/tls/key.pem       --tls-cert/--tls-key), key mode 0600
//! ```
//!
//! # Publishing, and what a crash leaves
//!
//! An upload streams into `blobs/tmp/` while it is hashed; the FEC layout
//! (RaptorQ, T = 1400, ~1 MiB blocks) and each block's SHA-256 are computed
//! from the written file; the file is fsynced, renamed to its hash and the
//! directory fsynced; only then is the catalog row committed. A crash
//! before the commit leaves a file no row references: the next start
//! removes it ([`Repository::recover`]), and nothing is ever listed or
//! served that is not whole and durable.
//!
//! # Broadcast
//!
//! [`transmit`] is the paced, batched UDP transmitter that sends a FLUTE
//! session (`dms send` and the broadcast sessions use it); [`sessions`]
//! runs the broadcast sessions of `POST /v1/sessions`.

#![deny(missing_docs)]

pub mod api;
pub mod blob;
pub mod catalog;
pub mod coap;
pub mod config;
pub mod deltas;
pub mod fsutil;
pub mod http;
pub mod keys;
pub mod lwm2m;
pub mod model;
pub mod pg;
pub mod repair_server;
pub mod repo;
pub mod s3;
pub mod scrub;
pub mod server;
pub mod sessions;
pub mod storage;
pub mod tls;
pub mod transmit;
pub mod urls;

pub use catalog::{Catalog, CatalogError, Filter, Notification, RedbCatalog};
pub use model::{Kind, ObjectRecord, Priority, State};
pub use repo::{DeleteVeto, Limits, NewObject, ObjectPatch, RepoError, Repository, Upload};
pub use urls::Urls;
