//! Seeded packet loss injected at the receiver (tests and demos): i.i.d.
//! or Gilbert–Elliott bursts, so a loopback run sees a chosen loss pattern
//! on top of whatever the kernel drops.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A loss pattern.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossModel {
    /// Long-run fraction of datagrams dropped, in `[0, 1]`.
    pub rate: f64,
    /// Mean length of a burst of losses (Gilbert–Elliott); `None` or
    /// ≤ 1 for independent losses.
    pub mean_burst: Option<f64>,
    /// Seed of the generator, so a run can be repeated.
    pub seed: u64,
}

/// Decides, datagram by datagram, which ones are dropped.
#[derive(Debug)]
pub(super) struct Dropper {
    model: LossModel,
    rng: StdRng,
    in_burst: bool,
}

impl Dropper {
    pub fn new(model: LossModel) -> Self {
        Dropper {
            model,
            rng: StdRng::seed_from_u64(model.seed),
            in_burst: false,
        }
    }

    /// Whether the next datagram is lost.
    pub fn drop_next(&mut self) -> bool {
        let rate = self.model.rate.clamp(0.0, 1.0);
        match self.model.mean_burst.filter(|b| *b > 1.0) {
            None => self.rng.random::<f64>() < rate,
            Some(burst) => {
                // Two states: in a burst every datagram is lost. Leaving a
                // burst has probability 1/burst (mean length `burst`);
                // entering one p = r·rate/(1 − rate) keeps the long-run
                // loss at `rate`.
                let leave = 1.0 / burst;
                let enter = if rate >= 1.0 {
                    1.0
                } else {
                    (leave * rate / (1.0 - rate)).min(1.0)
                };
                let flip = if self.in_burst { leave } else { enter };
                if self.rng.random::<f64>() < flip {
                    self.in_burst = !self.in_burst;
                }
                self.in_burst
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(model: LossModel) -> (f64, f64) {
        let mut d = Dropper::new(model);
        let (mut lost, mut bursts, mut prev) = (0u32, 0u32, false);
        let n = 200_000;
        for _ in 0..n {
            let l = d.drop_next();
            if l {
                lost += 1;
                if !prev {
                    bursts += 1;
                }
            }
            prev = l;
        }
        (
            f64::from(lost) / f64::from(n),
            f64::from(lost) / f64::from(bursts.max(1)),
        )
    }

    #[test]
    fn iid_and_bursty_losses_have_the_asked_rate_and_burst_length() {
        let (rate, burst) = measure(LossModel {
            rate: 0.05,
            mean_burst: None,
            seed: 1,
        });
        assert!((rate - 0.05).abs() < 0.005, "{rate}");
        assert!(burst < 1.2, "{burst}");
        let (rate, burst) = measure(LossModel {
            rate: 0.3,
            mean_burst: Some(8.0),
            seed: 2,
        });
        assert!((rate - 0.3).abs() < 0.03, "{rate}");
        assert!((burst - 8.0).abs() < 1.0, "{burst}");
    }
}
