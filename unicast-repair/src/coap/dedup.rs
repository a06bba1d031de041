//! Deduplication of CoAP-over-UDP requests (RFC 7252 §4.5): the answer to
//! each (source, message id) is kept for EXCHANGE_LIFETIME so that a
//! retransmitted Confirmable request gets the same answer again without
//! being processed twice. Bounded in entries and bytes: the oldest go first.
//!
//! A retransmission is byte-identical; a different request that reuses a
//! message id (clients that wrap their 16-bit counter within the lifetime)
//! is recognised by a hash of its bytes and answered afresh.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Key = (SocketAddr, u16);

#[derive(Debug)]
struct Entry {
    request_hash: u64,
    expires: Instant,
    /// The answer sent (None: a Non-confirmable request, answered once).
    answer: Option<Arc<[u8]>>,
}

/// What a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Not seen (or seen longer ago than the lifetime).
    New,
    /// A retransmission: send this again.
    Again(Arc<[u8]>),
    /// A retransmission of a request answered with nothing to repeat.
    Ignore,
}

/// The bounded exchange cache.
#[derive(Debug)]
pub struct Dedup {
    entries: HashMap<Key, Entry>,
    order: VecDeque<(Key, Instant)>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    lifetime: Duration,
}

/// A hash of a request's bytes (not cryptographic: it tells a
/// retransmission from a new request with a reused id).
pub fn request_hash(datagram: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    datagram.hash(&mut h);
    h.finish()
}

impl Dedup {
    /// An empty cache.
    pub fn new(max_entries: usize, max_bytes: usize, lifetime: Duration) -> Self {
        Dedup {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes,
            lifetime,
        }
    }

    /// Looks a request up.
    pub fn check(&self, now: Instant, key: Key, request_hash: u64) -> Seen {
        match self.entries.get(&key) {
            Some(e) if e.expires > now && e.request_hash == request_hash => match &e.answer {
                Some(a) => Seen::Again(a.clone()),
                None => Seen::Ignore,
            },
            _ => Seen::New,
        }
    }

    /// Remembers the answer to a request.
    pub fn insert(&mut self, now: Instant, key: Key, request_hash: u64, answer: Option<Arc<[u8]>>) {
        self.expire(now);
        let size = answer.as_ref().map_or(0, |a| a.len());
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.answer.map_or(0, |a| a.len());
        }
        // Slots of replaced entries stay queued until popped: the queue is
        // bounded too.
        while !self.order.is_empty()
            && (self.entries.len() >= self.max_entries
                || self.bytes + size > self.max_bytes
                || self.order.len() >= 2 * self.max_entries)
        {
            self.pop_oldest();
        }
        let expires = now + self.lifetime;
        self.bytes += size;
        self.entries.insert(
            key,
            Entry {
                request_hash,
                expires,
                answer,
            },
        );
        self.order.push_back((key, expires));
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of answers held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(_, at)| *at <= now) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some((key, expires)) = self.order.pop_front() else {
            return;
        };
        // The key may have been replaced since (a newer entry, later in
        // the queue): only the entry this queue slot made goes.
        if self.entries.get(&key).is_some_and(|e| e.expires == expires)
            && let Some(e) = self.entries.remove(&key)
        {
            self.bytes -= e.answer.map_or(0, |a| a.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn retransmissions_get_the_same_answer_until_the_lifetime_ends() {
        let t0 = Instant::now();
        let mut d = Dedup::new(10, 1000, Duration::from_secs(247));
        let answer: Arc<[u8]> = Arc::from(&b"ack"[..]);
        assert_eq!(d.check(t0, (addr(1), 7), 42), Seen::New);
        d.insert(t0, (addr(1), 7), 42, Some(answer.clone()));
        assert_eq!(d.check(t0, (addr(1), 7), 42), Seen::Again(answer));
        // Same id, other bytes: a new request; other source: new.
        assert_eq!(d.check(t0, (addr(1), 7), 43), Seen::New);
        assert_eq!(d.check(t0, (addr(2), 7), 42), Seen::New);
        assert_eq!(
            d.check(t0 + Duration::from_secs(248), (addr(1), 7), 42),
            Seen::New
        );
        d.insert(t0, (addr(1), 8), 1, None);
        assert_eq!(d.check(t0, (addr(1), 8), 1), Seen::Ignore);
    }

    #[test]
    fn the_cache_is_bounded_in_entries_and_bytes() {
        let t0 = Instant::now();
        let mut d = Dedup::new(100, 1000, Duration::from_secs(247));
        for i in 0..10_000u16 {
            d.insert(t0, (addr(i), i), 0, Some(Arc::from(vec![0u8; 30])));
            assert!(d.len() <= 100 && d.bytes() <= 1000);
        }
        // The newest are kept.
        assert!(matches!(d.check(t0, (addr(9999), 9999), 0), Seen::Again(_)));
        assert_eq!(d.check(t0, (addr(0), 0), 0), Seen::New);
        // Replacing a key keeps the byte count right.
        let mut d = Dedup::new(100, 1000, Duration::from_secs(1));
        d.insert(t0, (addr(1), 1), 0, Some(Arc::from(vec![0u8; 100])));
        d.insert(t0, (addr(1), 1), 1, Some(Arc::from(vec![0u8; 50])));
        assert_eq!((d.len(), d.bytes()), (1, 50));
        d.insert(t0 + Duration::from_secs(2), (addr(2), 1), 0, None);
        assert_eq!((d.len(), d.bytes()), (1, 0));
    }
}
