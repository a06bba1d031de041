//! In-memory tests of the receiver: packets are built with the wire layer
//! and `dms_fec::BlockEncoder`; no socket, no sleep.
#![allow(clippy::unwrap_used)]

mod ahead;
mod harness;
mod properties;
mod scenarios;
