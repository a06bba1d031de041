//! The table of open connections: a cap on all of them and on those of one
//! client address, each connection's activity (requests in flight, when
//! it last did something), and the shedding of idle connections to make
//! room — so a flood of idle or slow connections cannot keep the server
//! from answering anyone else.

use std::collections::HashMap;
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Counters of the HTTP serving loop (rendered in `/metrics`).
#[derive(Debug, Default)]
pub struct HttpStats {
    open: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    shed_idle: AtomicU64,
    shed_for_room: AtomicU64,
    handshake_timeouts: AtomicU64,
    header_timeouts: AtomicU64,
    body_timeouts: AtomicU64,
}

/// Why the server closed a connection or refused one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shed {
    /// Idle past the idle time-out (or, before its first request, past
    /// the header time-out).
    Idle,
    /// Closed to make room for a new connection at a cap.
    ForRoom,
    /// Did not finish the TLS handshake in time.
    HandshakeTimeout,
    /// Did not finish a request's headers in time (HTTP/1.1).
    HeaderTimeout,
}

impl HttpStats {
    pub(crate) fn count(&self, shed: Shed) {
        let counter = match shed {
            Shed::Idle => &self.shed_idle,
            Shed::ForRoom => &self.shed_for_room,
            Shed::HandshakeTimeout => &self.handshake_timeouts,
            Shed::HeaderTimeout => &self.header_timeouts,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request body that timed out.
    pub fn count_body_timeout(&self) {
        self.body_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// The Prometheus text of these counters.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP dms_http_connections Connections open now.\n# TYPE dms_http_connections gauge\ndms_http_connections {}",
            get(&self.open)
        );
        let _ = writeln!(
            out,
            "# HELP dms_http_connections_accepted_total Connections accepted.\n# TYPE dms_http_connections_accepted_total counter\ndms_http_connections_accepted_total {}",
            get(&self.accepted)
        );
        let _ = writeln!(
            out,
            "# HELP dms_http_connections_closed_total Connections the server closed or refused, by reason.\n# TYPE dms_http_connections_closed_total counter"
        );
        for (reason, counter) in [
            ("refused", &self.refused),
            ("idle", &self.shed_idle),
            ("for_room", &self.shed_for_room),
            ("handshake_timeout", &self.handshake_timeouts),
            ("header_timeout", &self.header_timeouts),
            ("body_timeout", &self.body_timeouts),
        ] {
            let _ = writeln!(
                out,
                "dms_http_connections_closed_total{{reason=\"{reason}\"}} {}",
                get(counter)
            );
        }
        out
    }
}

/// What one connection is doing, shared by its task, its requests and
/// the table.
#[derive(Debug)]
pub(crate) struct Activity {
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds since `opened` of the last request start or end.
    last_active_ms: AtomicU64,
    opened: Instant,
    /// Told when the table sheds the connection.
    pub(crate) shed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_active_ms: AtomicU64::new(0),
            opened: Instant::now(),
            shed: Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(ms, Ordering::Relaxed);
    }

    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    pub(crate) fn request_done(&self) {
        self.touch();
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether the connection ever started a request.
    pub(crate) fn has_had_requests(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > 0
    }

    /// How long the connection has had no request in flight (None while
    /// one is).
    pub(crate) fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed));
        Some(self.opened.elapsed().saturating_sub(last))
    }

    /// When it became idle, comparable across connections (None while busy).
    fn idle_since(&self) -> Option<Instant> {
        self.idle_for().map(|d| Instant::now() - d)
    }
}

struct Entry {
    ip: IpAddr,
    activity: Arc<Activity>,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Entry>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.conns.remove(&id)?;
        if let Some(n) = self.per_ip.get_mut(&entry.ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&entry.ip);
            }
        }
        Some(entry)
    }

    /// The connection idle the longest (of `ip` only, when given).
    fn longest_idle(&self, ip: Option<IpAddr>) -> Option<u64> {
        self.conns
            .iter()
            .filter(|(_, e)| ip.is_none_or(|ip| e.ip == ip))
            .filter_map(|(id, e)| e.activity.idle_since().map(|since| (since, *id)))
            .min()
            .map(|(_, id)| id)
    }
}

/// The open connections and their caps.
pub(crate) struct Connections {
    max: usize,
    max_per_ip: usize,
    table: Mutex<Table>,
    next_id: AtomicU64,
    stats: Arc<HttpStats>,
}

impl Connections {
    /// A table with at most `max` connections, `max_per_ip` of one client
    /// address (0: no per-address cap).
    pub(crate) fn new(max: usize, max_per_ip: usize, stats: Arc<HttpStats>) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            max_per_ip,
            table: Mutex::new(Table::default()),
            next_id: AtomicU64::new(0),
            stats,
        })
    }

    /// Admits a new connection from `ip`: at a cap, the connection idle
    /// the longest under that cap is shed to make room; when every one is
    /// busy, the new connection is refused (None).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut table = self.table.lock().ok()?;
        let ip_full =
            self.max_per_ip > 0 && table.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip;
        for (full, scope) in [(ip_full, Some(ip)), (table.conns.len() >= self.max, None)] {
            if !full {
                continue;
            }
            let Some(victim) = table.longest_idle(scope) else {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            if let Some(entry) = table.remove(victim) {
                self.stats.count(Shed::ForRoom);
                entry.activity.shed.notify_one();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new());
        table.conns.insert(
            id,
            Entry {
                ip,
                activity: activity.clone(),
            },
        );
        *table.per_ip.entry(ip).or_default() += 1;
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            id,
            activity,
            connections: self.clone(),
        })
    }
}

/// A connection's place in the table, given back when dropped.
pub(crate) struct Slot {
    id: u64,
    activity: Arc<Activity>,
    connections: Arc<Connections>,
}

impl Slot {
    pub(crate) fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut table) = self.connections.table.lock() {
            table.remove(self.id);
        }
        self.connections.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let stats = Arc::new(HttpStats::default());
        let table = Connections::new(2, 0, stats.clone());
        let first = table.admit(ip(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = table.admit(ip(1)).unwrap();
        // Busy connections are never shed.
        second.activity().request_started();
        let third = table.admit(ip(2)).unwrap();
        assert_eq!(stats.open(), 3, "the shed one closes on its own task");
        drop(first);
        assert_eq!(stats.shed_for_room.load(Ordering::Relaxed), 1);
        // Now both are busy: a fourth is refused.
        third.activity().request_started();
        assert!(table.admit(ip(3)).is_none());
        assert_eq!(stats.refused.load(Ordering::Relaxed), 1);
        second.activity().request_done();
        assert!(table.admit(ip(3)).is_some());
    }

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let stats = Arc::new(HttpStats::default());
        let table = Connections::new(100, 2, stats.clone());
        let a = table.admit(ip(1)).unwrap();
        let b = table.admit(ip(1)).unwrap();
        a.activity().request_started();
        b.activity().request_started();
        assert!(
            table.admit(ip(1)).is_none(),
            "both of its connections are busy"
        );
        assert!(table.admit(ip(2)).is_some(), "others still get in");
        b.activity().request_done();
        let _c = table.admit(ip(1)).unwrap();
        assert_eq!(stats.shed_for_room.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn idle_time_counts_from_the_last_request() {
        let activity = Activity::new();
        assert!(!activity.has_had_requests());
        activity.request_started();
        assert_eq!(activity.idle_for(), None);
        activity.request_done();
        assert!(activity.has_had_requests());
        assert!(activity.idle_for().unwrap() < Duration::from_secs(60));
    }
}
