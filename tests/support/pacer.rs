//! A sending pace: the `flute` crate's receiver (and a busy loopback)
//! lose packets when a sender runs unpaced.

use std::time::{Duration, Instant};

/// Keeps a sender at a constant bit rate by sleeping when it is ahead.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    bytes_per_second: f64,
    sent: u64,
}

impl Pacer {
    /// A pacer at `mbit` Mbit/s, starting now.
    pub fn new(mbit: f64) -> Self {
        Pacer {
            start: Instant::now(),
            bytes_per_second: mbit * 1e6 / 8.0,
            sent: 0,
        }
    }

    /// Accounts for a datagram of `bytes` about to be sent, sleeping first
    /// if the sender is more than a millisecond ahead of its rate.
    pub fn wait(&mut self, bytes: usize) {
        let due = self.start + Duration::from_secs_f64(self.sent as f64 / self.bytes_per_second);
        self.sent += bytes as u64;
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        }
    }
}
