//! A token bucket without a clock of its own: the caller passes `Instant`s.
//!
//! Tokens are counted exactly, in bit·nanoseconds (bits × 10⁹), so that
//! `elapsed_ns × rate` adds whole tokens and no rounding drifts the rate
//! over a long run: after any run of takes the bits sent never exceed
//! `rate × elapsed + burst`, and a sender that is always ready reaches
//! exactly `rate` on average.

use std::time::{Duration, Instant};

/// Nanoseconds per second: tokens are bits scaled by this.
const NANOS: i128 = 1_000_000_000;

/// A token bucket that meters bits at a fixed rate with a small burst.
///
/// ```
/// use std::time::{Duration, Instant};
/// use dms_origin::transmit::TokenBucket;
///
/// let start = Instant::now();
/// // 8 Mbit/s (1 MB/s), burst of 1500 bytes; the bucket starts empty.
/// let mut bucket = TokenBucket::new(8_000_000, 1500, start);
/// // 1000 bytes take 1 ms to earn.
/// assert_eq!(bucket.try_take(start, 1000), Err(start + Duration::from_millis(1)));
/// assert_eq!(bucket.try_take(start + Duration::from_millis(1), 1000), Ok(()));
/// ```
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Bits per second.
    rate: u64,
    /// Most tokens held (bit·ns).
    capacity: i128,
    /// Tokens held (bit·ns); negative after a take larger than the burst.
    tokens: i128,
    /// When tokens were last added.
    last: Instant,
}

impl TokenBucket {
    /// A bucket that earns `rate_bits_per_sec` (at least 1) and holds at
    /// most `burst_bytes` (at least one byte) of tokens. It starts empty at
    /// `now`, so no burst goes out at the start.
    pub fn new(rate_bits_per_sec: u64, burst_bytes: u64, now: Instant) -> Self {
        TokenBucket {
            rate: rate_bits_per_sec.max(1),
            capacity: i128::from(burst_bytes.max(1)) * 8 * NANOS,
            tokens: 0,
            last: now,
        }
    }

    /// The rate in bits per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The burst in bytes.
    pub fn burst_bytes(&self) -> u64 {
        u64::try_from(self.capacity / (8 * NANOS)).unwrap_or(u64::MAX)
    }

    /// Takes the tokens for `bytes` if the bucket holds them at `now`;
    /// otherwise takes nothing and returns the instant at which it will.
    ///
    /// A take larger than the burst is allowed once the bucket is full and
    /// leaves it in debt, so the long-run rate holds for any take size.
    /// Time only goes forward: an `now` earlier than a previous one adds
    /// nothing.
    pub fn try_take(&mut self, now: Instant, bytes: u64) -> Result<(), Instant> {
        self.refill(now);
        let need = i128::from(bytes) * 8 * NANOS;
        // What must be held before the take: all of it, or a full bucket
        // for a take larger than the bucket.
        let threshold = need.min(self.capacity);
        if self.tokens >= threshold {
            self.tokens -= need;
            return Ok(());
        }
        let deficit = threshold - self.tokens;
        let rate = i128::from(self.rate);
        let wait_ns = (deficit + rate - 1) / rate;
        let wait = Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(u64::MAX));
        Err(self.last.checked_add(wait).unwrap_or(self.last))
    }

    /// Adds the tokens earned between the last call and `now`.
    fn refill(&mut self, now: Instant) {
        if now <= self.last {
            return;
        }
        let elapsed = i128::try_from((now - self.last).as_nanos()).unwrap_or(i128::MAX);
        let earned = elapsed.saturating_mul(i128::from(self.rate));
        self.tokens = self.tokens.saturating_add(earned).min(self.capacity);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    /// A small deterministic generator (SplitMix64) for wake-up jitter.
    struct Jitter(u64);

    impl Jitter {
        fn next(&mut self, max_ns: u64) -> Duration {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            Duration::from_nanos((z ^ (z >> 31)) % max_ns.max(1))
        }
    }

    /// Runs an always-ready sender for `seconds` of synthetic time, each
    /// take of `take(i)` bytes, waking late by up to `jitter_ns` after each
    /// refusal. Returns (offset from start, bytes) of each take.
    fn simulate(
        rate: u64,
        burst: u64,
        seconds: u64,
        jitter_ns: u64,
        take: impl Fn(u64) -> u64,
    ) -> Vec<(Duration, u64)> {
        let start = Instant::now();
        let end = start + Duration::from_secs(seconds);
        let mut bucket = TokenBucket::new(rate, burst, start);
        let mut jitter = Jitter(rate ^ burst);
        let mut now = start;
        let mut sent = Vec::new();
        let mut i = 0;
        while now < end {
            let bytes = take(i);
            match bucket.try_take(now, bytes) {
                Ok(()) => {
                    sent.push((now - start, bytes));
                    i += 1;
                }
                Err(at) => {
                    assert!(at > now, "a refusal must name a later instant");
                    now = at + jitter.next(jitter_ns);
                }
            }
        }
        sent
    }

    /// Checks every 1 s window, sliding by 50 ms, against `rate` ± 2 %.
    fn assert_windows_within_2_percent(rate: u64, sent: &[(Duration, u64)], seconds: u64) {
        let step = Duration::from_millis(50);
        let mut from = Duration::ZERO;
        let mut windows = 0;
        while from + Duration::from_secs(1) <= Duration::from_secs(seconds) {
            let to = from + Duration::from_secs(1);
            let bits: u64 = sent
                .iter()
                .filter(|(t, _)| *t >= from && *t < to)
                .map(|(_, b)| b * 8)
                .sum();
            let error = (bits as f64 - rate as f64) / rate as f64;
            assert!(
                error.abs() <= 0.02,
                "window at {from:?}: {bits} bits against {rate} ({:+.3} %)",
                error * 100.0
            );
            windows += 1;
            from += step;
        }
        assert!(windows > 100);
    }

    #[test]
    fn every_second_of_a_long_run_is_within_2_percent_at_200_mbit() {
        let rate = 200_000_000;
        // Single 1472-byte datagrams, waking up to 100 µs late.
        let sent = simulate(rate, 25_000, 20, 100_000, |_| 1472);
        assert_windows_within_2_percent(rate, &sent, 20);
    }

    #[test]
    fn batches_of_mixed_sizes_keep_the_rate_at_1_gbit() {
        let rate = 1_000_000_000;
        // GSO-sized batches (up to 44 datagrams), some shorter, waking up
        // to 300 µs late.
        let sent = simulate(rate, 250_000, 12, 300_000, |i| match i % 5 {
            0 => 1472 * 44,
            1 => 1472 * 3 + 200,
            _ => 1472 * 20,
        });
        assert_windows_within_2_percent(rate, &sent, 12);
    }

    #[test]
    fn low_rates_hold_too() {
        let rate = 2_000_000;
        // The bucket holds two takes, as the transmitter sets it, so a late
        // wake-up (up to 1 ms here, 250 bytes of credit) loses nothing.
        let sent = simulate(rate, 2 * 1472, 30, 1_000_000, |_| 1472);
        assert_windows_within_2_percent(rate, &sent, 30);
    }

    #[test]
    fn a_take_larger_than_the_burst_waits_for_a_full_bucket_then_owes() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(8_000, 100, start); // 1000 B/s
        // 300 bytes > burst of 100: allowed once 100 bytes are held.
        let at = bucket.try_take(start, 300).unwrap_err();
        assert_eq!(at, start + Duration::from_millis(100));
        bucket.try_take(at, 300).unwrap();
        // Now 200 bytes in debt: the next byte needs 201 bytes earned.
        let next = bucket.try_take(at, 1).unwrap_err();
        assert_eq!(next, at + Duration::from_millis(201));
        assert_eq!(bucket.burst_bytes(), 100);
        assert_eq!(bucket.rate(), 8_000);
    }

    #[test]
    fn idle_time_earns_at_most_the_burst() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(8_000_000, 3000, start);
        let later = start + Duration::from_secs(10);
        bucket.try_take(later, 3000).unwrap();
        assert!(bucket.try_take(later, 1).is_err());
        // Time going backwards adds nothing and does not panic.
        assert!(bucket.try_take(start, 1).is_err());
    }
}
