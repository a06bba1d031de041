//! The UE agent: multicast reception, per-block gap tracking, repair from
//! peers (libp2p) and then from the repair service, verification against the
//! signed manifest, and atomic delivery of the finished object.
//!
//! - [`receive`]: multicast reception of FLUTE sessions into files (socket
//!   thread, decode thread, atomic verified output).
//! - [`p2p`]: the libp2p node that trades symbols with other UEs.
//! - [`agent`]: both driven to the end: reception, then repair from peers
//!   and the repair service, verification, reception reports.
#![deny(missing_docs)]

pub mod agent;
pub mod p2p;
pub mod receive;
