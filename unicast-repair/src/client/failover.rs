//! Which repair server to ask next, sans-IO (no sockets, no clock: the
//! caller passes `now`).
//!
//! TS 26.346 §9.3.4: pick a `serviceURI` at random, another on failure.
//! [`RepairServers`] does that for every request of a run and keeps a
//! circuit per server: a server that failed (refused the connection,
//! timed out, answered 5xx or 429, or sent a malformed answer) is left
//! out of the next requests for a cool-down that doubles with each
//! failure in a row, so a dead server is not asked again for every
//! block. Once its cool-down ends it is tried again (half-open): an
//! answer closes its circuit, another failure opens it for longer.
//! A 404 fails over without opening the circuit (that server lacks this
//! object, not every object). When every circuit is open the request
//! waits for the first to close ([`Plan::Wait`]).

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Why a try of one server failed, for the reception report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The connection could not be made (refused, reset, TLS).
    Connect,
    /// No answer within the client's time-out.
    Timeout,
    /// An HTTP error status (5xx, 429, 404).
    Status(u16),
    /// An answer that is not the symbols asked for.
    BadAnswer,
}

impl Failure {
    /// True when the failure says nothing of the server's other objects:
    /// a 404 (this server does not hold the object).
    fn keeps_circuit_closed(self) -> bool {
        self == Failure::Status(404)
    }

    /// True for the statuses of a busy server (429, 503): a pause may
    /// help where another server does not.
    pub fn is_overload(self) -> bool {
        matches!(self, Failure::Status(429 | 503))
    }
}

impl std::fmt::Display for Failure {
    /// `connect`, `timeout`, `http_503`, `bad_answer`: the token reports
    /// carry.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connect => f.write_str("connect"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Status(code) => write!(f, "http_{code}"),
            Failure::BadAnswer => f.write_str("bad_answer"),
        }
    }
}

impl std::str::FromStr for Failure {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "connect" => Ok(Failure::Connect),
            "timeout" => Ok(Failure::Timeout),
            "bad_answer" => Ok(Failure::BadAnswer),
            other => other
                .strip_prefix("http_")
                .and_then(|code| code.parse::<u16>().ok())
                .filter(|code| (100..=599).contains(code))
                .map(Failure::Status)
                .ok_or_else(|| format!("unknown failure {other:?}")),
        }
    }
}

/// The circuits' cool-downs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CircuitConfig {
    /// How long a server is left out after its first failure.
    pub cooldown: Duration,
    /// The longest cool-down (it doubles with each failure in a row).
    pub max_cooldown: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            cooldown: Duration::from_secs(2),
            max_cooldown: Duration::from_secs(60),
        }
    }
}

/// One server's circuit.
#[derive(Clone, Copy, Debug, Default)]
struct Circuit {
    /// Failures in a row.
    failures: u32,
    /// Left out until then.
    open_until: Option<Instant>,
    /// The last failure.
    last: Option<Failure>,
}

/// What to do for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Try these servers (indices), in this order, the next on a failure.
    Try(Vec<usize>),
    /// Every circuit is open: the first closes at this time. `overload`
    /// when every server's last failure was a busy status (429, 503).
    Wait {
        /// When a server may be tried again.
        until: Instant,
        /// Every server was only busy.
        overload: bool,
    },
    /// There are no servers.
    Nothing,
}

/// The repair servers of a run and their circuits.
#[derive(Clone, Debug)]
pub struct RepairServers {
    circuits: Vec<Circuit>,
    config: CircuitConfig,
    rng: StdRng,
}

impl RepairServers {
    /// `count` servers, all circuits closed; the order of tries is drawn
    /// from `seed` (the same seed gives the same orders for the same
    /// failures).
    pub fn new(count: usize, seed: u64) -> Self {
        Self::with_config(count, seed, CircuitConfig::default())
    }

    /// As [`RepairServers::new`] with these cool-downs.
    pub fn with_config(count: usize, seed: u64, config: CircuitConfig) -> Self {
        RepairServers {
            circuits: vec![Circuit::default(); count],
            config,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// How many servers there are.
    pub fn len(&self) -> usize {
        self.circuits.len()
    }

    /// True with no servers.
    pub fn is_empty(&self) -> bool {
        self.circuits.is_empty()
    }

    /// The servers to try for a request made at `now`: those whose
    /// circuit is closed or whose cool-down is over, in a random order.
    pub fn plan(&mut self, now: Instant) -> Plan {
        if self.circuits.is_empty() {
            return Plan::Nothing;
        }
        let mut order: Vec<usize> = (0..self.circuits.len())
            .filter(|&i| self.circuits[i].open_until.is_none_or(|t| t <= now))
            .collect();
        if order.is_empty() {
            let until = self
                .circuits
                .iter()
                .filter_map(|c| c.open_until)
                .min()
                .unwrap_or(now);
            let overload = self
                .circuits
                .iter()
                .all(|c| c.last.is_some_and(Failure::is_overload));
            return Plan::Wait { until, overload };
        }
        order.shuffle(&mut self.rng);
        Plan::Try(order)
    }

    /// Server `i` answered: its circuit closes.
    pub fn succeeded(&mut self, i: usize) {
        if let Some(c) = self.circuits.get_mut(i) {
            *c = Circuit::default();
        }
    }

    /// Server `i` failed at `now` with `failure`: its circuit opens for
    /// the cool-down, doubled for each failure in a row before this one
    /// (at most the longest), unless the failure is a 404.
    pub fn failed(&mut self, i: usize, failure: Failure, now: Instant) {
        let config = self.config;
        let Some(c) = self.circuits.get_mut(i) else {
            return;
        };
        c.last = Some(failure);
        if failure.keeps_circuit_closed() {
            return;
        }
        let doublings = c.failures.min(16);
        c.failures = c.failures.saturating_add(1);
        let cooldown = config
            .cooldown
            .saturating_mul(1 << doublings)
            .min(config.max_cooldown);
        c.open_until = Some(now + cooldown);
    }

    /// True while server `i` is left out at `now`.
    pub fn is_open(&self, i: usize, now: Instant) -> bool {
        self.circuits
            .get(i)
            .and_then(|c| c.open_until)
            .is_some_and(|t| t > now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;

    fn tried(plan: Plan) -> Vec<usize> {
        match plan {
            Plan::Try(order) => order,
            other => panic!("expected tries, got {other:?}"),
        }
    }

    #[test]
    fn orders_are_random_permutations_and_repeat_with_the_seed() {
        let now = Instant::now();
        let mut firsts = [0u32; 3];
        let mut a = RepairServers::new(3, 7);
        let mut b = RepairServers::new(3, 7);
        for _ in 0..300 {
            let order = tried(a.plan(now));
            assert_eq!(tried(b.plan(now)), order);
            firsts[order[0]] += 1;
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2]);
        }
        assert!(firsts.iter().all(|&n| n > 50), "{firsts:?}");
        assert_eq!(RepairServers::new(0, 1).plan(now), Plan::Nothing);
    }

    #[test]
    fn a_failed_server_is_left_out_until_its_cooldown_ends_and_it_doubles() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut servers = RepairServers::new(2, 1);
        servers.failed(0, Failure::Connect, t0);
        // Left out of every request during the cool-down (2 s).
        for _ in 0..50 {
            assert_eq!(tried(servers.plan(t0 + s(1))), vec![1]);
        }
        assert!(servers.is_open(0, t0 + s(1)));
        // Half-open after it: tried again; failing again doubles it.
        assert_eq!(tried(servers.plan(t0 + s(2))).len(), 2);
        servers.failed(0, Failure::Timeout, t0 + s(2));
        assert_eq!(tried(servers.plan(t0 + s(5))), vec![1]);
        assert_eq!(tried(servers.plan(t0 + s(6))).len(), 2);
        // An answer closes it for good.
        servers.succeeded(0);
        servers.failed(0, Failure::Status(500), t0 + s(6));
        assert_eq!(tried(servers.plan(t0 + s(8))).len(), 2);
    }

    #[test]
    fn cooldowns_stop_growing_at_the_longest() {
        let t0 = Instant::now();
        let mut servers = RepairServers::new(1, 1);
        let mut now = t0;
        for _ in 0..40 {
            servers.failed(0, Failure::Connect, now);
            match servers.plan(now) {
                Plan::Wait { until, overload } => {
                    assert!(!overload);
                    assert!(until - now <= Duration::from_secs(60));
                    now = until;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(servers.plan(now), Plan::Try(vec![0]));
    }

    #[test]
    fn a_404_fails_over_without_opening_the_circuit() {
        let t0 = Instant::now();
        let mut servers = RepairServers::new(2, 3);
        servers.failed(1, Failure::Status(404), t0);
        assert_eq!(tried(servers.plan(t0)).len(), 2);
        assert!(!servers.is_open(1, t0));
    }

    #[test]
    fn all_open_waits_for_the_first_and_says_whether_only_busy() {
        let t0 = Instant::now();
        let mut servers = RepairServers::new(2, 3);
        servers.failed(0, Failure::Status(503), t0);
        servers.failed(1, Failure::Status(429), t0 + Duration::from_secs(1));
        assert_eq!(
            servers.plan(t0),
            Plan::Wait {
                until: t0 + Duration::from_secs(2),
                overload: true
            }
        );
        servers.failed(0, Failure::Connect, t0 + Duration::from_secs(2));
        assert!(matches!(
            servers.plan(t0 + Duration::from_secs(2)),
            Plan::Wait {
                overload: false,
                ..
            }
        ));
    }

    #[test]
    fn failure_tokens_round_trip() {
        for f in [
            Failure::Connect,
            Failure::Timeout,
            Failure::Status(503),
            Failure::BadAnswer,
        ] {
            assert_eq!(f.to_string().parse::<Failure>().unwrap(), f);
        }
        assert_eq!(Failure::Status(503).to_string(), "http_503");
        assert!("http_99".parse::<Failure>().is_err());
        assert!("http_x".parse::<Failure>().is_err());
        assert!("reset".parse::<Failure>().is_err());
    }
}
