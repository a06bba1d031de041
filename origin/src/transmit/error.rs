//! Errors of the transmitter.

use std::io;

use dms_flute::SenderError;

/// Why a transmission could not start or went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransmitError {
    /// The configuration is unusable.
    #[error("invalid transmit configuration: {0}")]
    InvalidConfig(String),
    /// Opening or configuring the socket failed.
    #[error("opening the sender socket for {group}: {source}")]
    Socket {
        /// The destination.
        group: std::net::SocketAddr,
        /// The socket error.
        source: io::Error,
    },
    /// Sending failed.
    #[error("sending to {group}: {source}")]
    Send {
        /// The destination.
        group: std::net::SocketAddr,
        /// The socket error.
        source: io::Error,
    },
    /// The encode-ahead thread could not be started.
    #[error("starting the encode-ahead thread: {0}")]
    Thread(io::Error),
    /// The FLUTE sender failed (an object could not be added, read or
    /// encoded).
    #[error(transparent)]
    Sender(#[from] SenderError),
}
