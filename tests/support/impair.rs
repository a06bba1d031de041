//! Seeded application-level impairment of a packet stream: i.i.d. loss
//! and reordering within a window.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Drops and reorders datagrams before they reach a receiver.
#[derive(Debug)]
pub struct Impairment {
    rng: StdRng,
    drop_ratio: f64,
    window: usize,
    held: Vec<Vec<u8>>,
    /// Datagrams dropped so far.
    pub dropped: u64,
}

impl Impairment {
    /// No impairment: every datagram passes at once, in order.
    pub fn none() -> Self {
        Self::new(0, 0.0, 1)
    }

    /// Drops each datagram with probability `drop_ratio`, then shuffles the
    /// survivors in consecutive windows of `window` datagrams.
    pub fn new(seed: u64, drop_ratio: f64, window: usize) -> Self {
        Impairment {
            rng: StdRng::seed_from_u64(seed),
            drop_ratio,
            window: window.max(1),
            held: Vec::new(),
            dropped: 0,
        }
    }

    /// Takes one datagram; hands on those that are due.
    pub fn push(&mut self, datagram: &[u8], out: &mut impl FnMut(&[u8])) {
        if self.drop_ratio > 0.0 && self.rng.random_bool(self.drop_ratio) {
            self.dropped += 1;
            return;
        }
        self.held.push(datagram.to_vec());
        if self.held.len() >= self.window {
            self.flush(out);
        }
    }

    /// Hands on every held datagram, shuffled (when the stream pauses, so
    /// nothing waits for a window that never fills).
    pub fn flush(&mut self, out: &mut impl FnMut(&[u8])) {
        self.held.shuffle(&mut self.rng);
        for datagram in self.held.drain(..) {
            out(&datagram);
        }
    }
}
