//! The UE agent: multicast reception, per-block gap tracking, repair from
//! peers (libp2p) and then from the repair service, verification against the
//! signed manifest, and atomic delivery of the finished object.
//!
//! Built so far: [`receive`], multicast reception of FLUTE sessions into
//! files (socket thread, decode thread, atomic verified output).
#![deny(missing_docs)]

pub mod p2p;
pub mod receive;
