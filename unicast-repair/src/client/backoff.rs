//! When and where to ask for repair (TS 26.346 §9.3.4), sans-IO: wait
//! `offsetTime` plus a uniform random time in `randomTimePeriod` after the
//! session ends (so a whole fleet does not ask at once), then try the
//! repair servers in a random order, the next one on failure.

use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::SliceRandom;

/// The back-off parameters of an associated delivery procedure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Fixed wait after the end of the session (`offsetTime`).
    pub offset: Duration,
    /// Width of the uniform random wait added to it (`randomTimePeriod`).
    pub random_period: Duration,
}

impl Backoff {
    /// The wait for a uniform draw `unit` in `[0, 1)` (clamped into it).
    pub fn delay_for(&self, unit: f64) -> Duration {
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.offset + self.random_period.mul_f64(unit)
    }

    /// A random wait drawn with `rng`.
    pub fn delay<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        self.delay_for(rng.random::<f64>())
    }

    /// When to send the first repair request after a session ended at
    /// `session_end`.
    pub fn first_request_at<R: Rng + ?Sized>(&self, session_end: Instant, rng: &mut R) -> Instant {
        session_end + self.delay(rng)
    }
}

/// The order in which to try `servers` repair servers: a uniform random
/// permutation of their indices.
pub fn server_order<R: Rng + ?Sized>(servers: usize, rng: &mut R) -> Vec<usize> {
    let mut order: Vec<usize> = (0..servers).collect();
    order.shuffle(rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn delays_stay_in_the_window_and_spread() {
        let b = Backoff {
            offset: Duration::from_secs(10),
            random_period: Duration::from_secs(60),
        };
        assert_eq!(b.delay_for(0.0), Duration::from_secs(10));
        assert_eq!(b.delay_for(0.5), Duration::from_secs(40));
        assert_eq!(b.delay_for(7.0), Duration::from_secs(70));
        assert_eq!(b.delay_for(f64::NAN), Duration::from_secs(10));
        let mut rng = StdRng::seed_from_u64(1);
        let mut buckets = [0u32; 6];
        for _ in 0..6000 {
            let d = b.delay(&mut rng);
            assert!(d >= b.offset && d < b.offset + b.random_period);
            buckets[((d - b.offset).as_secs() / 10) as usize] += 1;
        }
        // Uniform: each 10 s slice gets about 1000 of 6000 draws.
        assert!(
            buckets.iter().all(|&n| (800..1200).contains(&n)),
            "{buckets:?}"
        );
        let end = Instant::now();
        assert!(b.first_request_at(end, &mut rng) >= end + b.offset);
    }

    #[test]
    fn server_orders_are_permutations_and_vary() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut firsts = [0u32; 3];
        for _ in 0..300 {
            let mut order = server_order(3, &mut rng);
            firsts[order[0]] += 1;
            order.sort_unstable();
            assert_eq!(order, vec![0, 1, 2]);
        }
        assert!(firsts.iter().all(|&n| n > 50), "{firsts:?}");
        assert!(server_order(0, &mut rng).is_empty());
    }
}
