//! FLUTE/ALC for dms: LCT headers and extensions (RFC 5651), ALC packets
//! (RFC 5775), FDT-Instance XML (RFC 6726 and RFC 3926), and sans-IO sender
//! and receiver state machines that turn objects into packets and packets
//! into events. No sockets and no clocks: the caller passes the time in.
//!
//! The wire layer parses without allocating: an [`AlcPacket`] borrows its
//! header extensions and symbols from the datagram, and writing goes into a
//! buffer the caller owns.
//!
//! The [`receiver`] turns datagrams into events (objects learned, blocks
//! decoded in order, objects verified or failed, sessions closed) for an
//! I/O layer to act on; see its module documentation for the contract.
//!
//! ```text
//!   datagram ──AlcPacket::decode──> AlcPacket { LctHeader, Option<PayloadId>, &symbols }
//!   AlcPacket ──encode(&mut buf)──> length written
//!   FDT XML  ──FdtInstance::parse──> FdtInstance { files, FEC OTI defaults }
//!   objects  ──Sender::poll_transmit──> FDT and data datagrams (see [`sender`])
//! ```
//!
//! ```
//! use dms_flute::{AlcPacket, LctHeader, PayloadId};
//!
//! let packet = AlcPacket {
//!     header: LctHeader::new(7, 1, 6),
//!     payload_id: Some(PayloadId::RaptorQ { sbn: 0, esi: 42 }),
//!     symbols: b"symbol bytes",
//! };
//! let mut buf = [0u8; 1500];
//! let n = packet.encode(&mut buf)?;
//! assert_eq!(AlcPacket::decode(&buf[..n])?, packet);
//! # Ok::<(), dms_flute::Error>(())
//! ```
#![deny(missing_docs)]

pub mod alc;
pub mod fdt;
pub mod lct;
pub mod mbms;
#[cfg(feature = "net")]
pub mod net;
pub mod receiver;
pub mod sender;

pub use alc::{AlcError, AlcPacket, FecEncodingId, PayloadId};
pub use fdt::{FdtDelta, FdtError, FdtFile, FdtInstance};
pub use lct::{Extension, Extensions, LctError, LctHeader};
pub use receiver::{Receiver, ReceiverConfig};
pub use sender::{ObjectSpec, Sender, SenderConfig, SenderError, Toi, Transmit, TransmitKind};

/// Any error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An LCT header error.
    #[error(transparent)]
    Lct(#[from] LctError),
    /// An ALC packet error.
    #[error(transparent)]
    Alc(#[from] AlcError),
    /// An FDT-Instance error.
    #[error(transparent)]
    Fdt(#[from] FdtError),
}
