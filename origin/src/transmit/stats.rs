//! What other threads see of a running transmission: the stop handle, the
//! live counters, and the final report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use dms_flute::Toi;
use dms_flute::sender::SenderStats;

/// Stops a running [`Transmitter`](super::Transmitter) from another thread.
/// Cloning shares the flag.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// Asks the transmitter to stop. It stops within one batch or one
    /// pacing sleep slice (a few milliseconds), without the close flags.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was asked.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Live counters of one object, updated after each batch is sent.
#[derive(Debug)]
pub struct ObjectProgress {
    toi: Toi,
    content_location: String,
    expected_packets: u64,
    packets: AtomicU64,
    bytes: AtomicU64,
}

impl ObjectProgress {
    pub(super) fn new(toi: Toi, content_location: String, expected_packets: u64) -> Self {
        ObjectProgress {
            toi,
            content_location,
            expected_packets,
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    pub(super) fn add(&self, packets: u64, bytes: u64) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The object's TOI.
    pub fn toi(&self) -> Toi {
        self.toi
    }

    /// The object's `Content-Location`.
    pub fn content_location(&self) -> &str {
        &self.content_location
    }

    /// Data packets the object will take in all carousel rounds (source
    /// and repair symbols).
    pub fn expected_packets(&self) -> u64 {
        self.expected_packets
    }

    /// Data packets sent so far.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Datagram bytes sent so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Fraction sent, 0.0 to 1.0.
    pub fn fraction(&self) -> f64 {
        if self.expected_packets == 0 {
            return 1.0;
        }
        (self.packets() as f64 / self.expected_packets as f64).min(1.0)
    }
}

/// Counters of a transmission, readable from any thread while it runs
/// (relaxed atomics, updated once per batch).
#[derive(Debug, Default)]
pub struct LiveStats {
    packets: AtomicU64,
    bytes: AtomicU64,
    fdt_packets: AtomicU64,
    send_calls: AtomicU64,
    objects: Mutex<Vec<Arc<ObjectProgress>>>,
}

impl LiveStats {
    pub(super) fn add(&self, packets: u64, bytes: u64, fdt_packets: u64) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.fdt_packets.fetch_add(fdt_packets, Ordering::Relaxed);
        self.send_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn push_object(&self, object: Arc<ObjectProgress>) {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(object);
    }

    /// Datagrams sent.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// UDP payload bytes sent.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// FDT datagrams sent.
    pub fn fdt_packets(&self) -> u64 {
        self.fdt_packets.load(Ordering::Relaxed)
    }

    /// Batches sent (one system call each while GSO works).
    pub fn send_calls(&self) -> u64 {
        self.send_calls.load(Ordering::Relaxed)
    }

    /// The objects' progress, in TOI order.
    pub fn objects(&self) -> Vec<Arc<ObjectProgress>> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What a finished (or stopped) transmission did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransmitReport {
    /// Datagrams sent.
    pub packets: u64,
    /// UDP payload bytes sent.
    pub bytes: u64,
    /// Batches sent (one system call each while GSO works).
    pub send_calls: u64,
    /// From the first send to the last.
    pub elapsed: Duration,
    /// Whether a [`StopHandle`] ended it before the sender finished.
    pub stopped: bool,
    /// Segments per GSO send in use at the end (1: no GSO).
    pub gso_segments: usize,
    /// The sans-IO sender's counters.
    pub sender: SenderStats,
}

impl TransmitReport {
    /// Achieved rate of UDP payload, in Mbit/s (10⁶ bit/s).
    pub fn mbit_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.bytes as f64 * 8.0 / secs / 1e6
    }

    /// Datagrams per second.
    pub fn packets_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.packets as f64 / secs
    }
}
