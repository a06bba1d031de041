//! Per-peer accounting of what this node serves: requests in flight and
//! bytes per time window.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::config::PeerLimits;

/// Requests in flight and bytes served, per asking peer.
#[derive(Debug)]
pub(crate) struct Limiter<K> {
    limits: PeerLimits,
    peers: HashMap<K, Usage>,
}

#[derive(Debug)]
struct Usage {
    inflight: u32,
    window_start: Instant,
    bytes: u64,
}

impl Usage {
    fn roll(&mut self, window: Duration, now: Instant) {
        if now.saturating_duration_since(self.window_start) >= window {
            self.window_start = now;
            self.bytes = 0;
        }
    }
}

impl<K: Hash + Eq> Limiter<K> {
    pub(crate) fn new(limits: PeerLimits) -> Self {
        Limiter {
            limits,
            peers: HashMap::new(),
        }
    }

    /// Starts a request of `peer`, or says how long until it may ask again.
    pub(crate) fn admit(&mut self, peer: K, now: Instant) -> Result<(), Duration> {
        let window = self.limits.window;
        let usage = self.peers.entry(peer).or_insert(Usage {
            inflight: 0,
            window_start: now,
            bytes: 0,
        });
        usage.roll(window, now);
        if usage.bytes >= self.limits.max_bytes_per_window {
            return Err((usage.window_start + window).saturating_duration_since(now));
        }
        if usage.inflight >= self.limits.max_inflight_per_peer {
            return Err(Duration::from_millis(100));
        }
        usage.inflight += 1;
        Ok(())
    }

    /// Ends an admitted request of `peer` that served `bytes`.
    pub(crate) fn finish(&mut self, peer: &K, bytes: u64, now: Instant) {
        if let Some(usage) = self.peers.get_mut(peer) {
            usage.inflight = usage.inflight.saturating_sub(1);
            usage.roll(self.limits.window, now);
            usage.bytes = usage.bytes.saturating_add(bytes);
        }
    }

    /// Drops the accounting of peers with nothing in flight and an
    /// expired window (called now and then so the map stays small).
    pub(crate) fn prune(&mut self, now: Instant) {
        let window = self.limits.window;
        self.peers.retain(|_, u| {
            u.inflight > 0 || now.saturating_duration_since(u.window_start) < window
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    fn limits() -> PeerLimits {
        PeerLimits {
            max_inflight_per_peer: 2,
            max_bytes_per_window: 1000,
            window: Duration::from_secs(10),
            ..PeerLimits::default()
        }
    }

    #[test]
    fn inflight_requests_are_capped_per_peer() {
        let mut l = Limiter::new(limits());
        let t = Instant::now();
        assert!(l.admit(1, t).is_ok());
        assert!(l.admit(1, t).is_ok());
        assert!(l.admit(1, t).is_err());
        // Another peer has its own budget.
        assert!(l.admit(2, t).is_ok());
        l.finish(&1, 10, t);
        assert!(l.admit(1, t).is_ok());
    }

    #[test]
    fn bytes_are_capped_per_window() {
        let mut l = Limiter::new(limits());
        let t = Instant::now();
        l.admit(1, t).unwrap();
        l.finish(&1, 1000, t);
        let wait = l.admit(1, t + Duration::from_secs(4)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        // The next window starts afresh.
        assert!(l.admit(1, t + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn prune_keeps_busy_peers() {
        let mut l = Limiter::new(limits());
        let t = Instant::now();
        l.admit(1, t).unwrap();
        l.admit(2, t).unwrap();
        l.finish(&2, 5, t);
        l.prune(t + Duration::from_secs(20));
        assert_eq!(l.peers.len(), 1);
        assert!(l.peers.contains_key(&1));
    }
}
