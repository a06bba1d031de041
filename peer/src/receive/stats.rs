//! Counters of a [`MulticastReceiver`](super::MulticastReceiver), shared
//! between its threads and the caller.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use dms_flute::receiver::Stats as FluteStats;

/// A snapshot of a receiver's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiveStats {
    /// Datagrams taken from the socket.
    pub datagrams: u64,
    /// Their bytes (UDP payload).
    pub bytes: u64,
    /// Datagrams dropped by the injected loss ([`LossModel`](super::LossModel)).
    pub dropped_injected: u64,
    /// Bytes of the datagrams handed to the FLUTE receiver (those not
    /// dropped): the bytes received from the broadcast.
    pub bytes_kept: u64,
    /// Datagrams dropped because the decode thread lagged and every
    /// buffer was in flight (the socket was drained all the same).
    pub dropped_lagging: u64,
    /// Of the datagrams, those that came in a UDP GRO train (several
    /// datagrams in one receive buffer).
    pub coalesced: u64,
    /// Receive calls that failed (other than "nothing to read").
    pub receive_errors: u64,
    /// Objects complete, verified and renamed to their final name.
    pub objects_complete: u64,
    /// Objects that failed (digest mismatch, decoding or writing error).
    pub objects_failed: u64,
    /// The FLUTE receiver's own counters (malformed packets, duplicates…),
    /// as of the last batch it handled.
    pub flute: FluteStats,
}

/// The live counters.
#[derive(Debug, Default)]
pub(super) struct SharedStats {
    pub datagrams: AtomicU64,
    pub bytes: AtomicU64,
    pub dropped_lagging: AtomicU64,
    pub dropped_injected: AtomicU64,
    pub bytes_kept: AtomicU64,
    pub coalesced: AtomicU64,
    pub receive_errors: AtomicU64,
    pub objects_complete: AtomicU64,
    pub objects_failed: AtomicU64,
    pub flute: Mutex<FluteStats>,
}

impl SharedStats {
    pub fn snapshot(&self) -> ReceiveStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReceiveStats {
            datagrams: load(&self.datagrams),
            bytes: load(&self.bytes),
            dropped_lagging: load(&self.dropped_lagging),
            dropped_injected: load(&self.dropped_injected),
            bytes_kept: load(&self.bytes_kept),
            coalesced: load(&self.coalesced),
            receive_errors: load(&self.receive_errors),
            objects_complete: load(&self.objects_complete),
            objects_failed: load(&self.objects_failed),
            flute: self.flute.lock().map(|s| s.clone()).unwrap_or_default(),
        }
    }
}
