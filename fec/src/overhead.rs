//! Measuring a code's reception overhead (RaptorQ's, Raptor's): with how
//! many received symbols
//! (K, K+1, K+2, …) a block decodes under random loss.
//!
//! Whether a block decodes depends on which ESIs arrived, not on the data,
//! so an experiment encodes one block once and every trial draws a fresh
//! random order of its symbols (equivalently, a random loss pattern over the
//! `2K + 16` symbols sent) and feeds them to a [`BlockDecoder`] until it
//! decodes. Each decoded block is checked against the original bytes.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::FecScheme;
use crate::block_decoder::{BlockDecoder, SymbolOutcome};
use crate::encoder::BlockEncoder;
use crate::error::FecError;
use crate::layout::Layout;
use crate::oti::{BlockSize, Oti};

/// Symbol size used by the experiment: decodability does not depend on T,
/// and small symbols make trials fast.
const SYMBOL_SIZE: u16 = 16;
/// Trials give up after this many symbols past K.
pub const MAX_EXTRA_SYMBOLS: u32 = 2;

/// One block, encoded once, to run trials against.
#[derive(Debug)]
pub struct OverheadExperiment {
    layout: Layout,
    block: Vec<u8>,
    /// Every symbol sent, source then repair, indexed by ESI.
    symbols: Vec<Vec<u8>>,
}

/// Outcome of one trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrialOutcome {
    /// Decoded with K + this many symbols (0, 1 or 2).
    Decoded {
        /// Symbols received beyond K.
        extra: u32,
    },
    /// Not decoded with K + [`MAX_EXTRA_SYMBOLS`] symbols.
    NotDecoded,
}

impl OverheadExperiment {
    /// Encodes a random RaptorQ block of `k` source symbols (1 ≤ k ≤ 56403).
    pub fn new(k: u32, seed: u64) -> Result<Self, FecError> {
        Self::with_scheme(FecScheme::RaptorQ, k, seed)
    }

    /// Encodes a random block of `k` source symbols of `scheme` (one with
    /// repair symbols; Raptor's K is 4…8192).
    pub fn with_scheme(scheme: FecScheme, k: u32, seed: u64) -> Result<Self, FecError> {
        if !scheme.has_repair_symbols() {
            return Err(crate::SymbolError::NoRepairSymbols(scheme).into());
        }
        let oti = Oti::for_object(
            scheme,
            u64::from(k) * u64::from(SYMBOL_SIZE),
            SYMBOL_SIZE,
            BlockSize::Symbols(k),
        )?;
        let layout = oti.layout();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut block = vec![0u8; k as usize * usize::from(SYMBOL_SIZE)];
        rng.fill(&mut block[..]);
        let encoder = BlockEncoder::new(&layout, 0, &block)?;
        let mut symbols: Vec<Vec<u8>> = (0..k)
            .filter_map(|esi| encoder.source_symbol(esi))
            .map(<[u8]>::to_vec)
            .collect();
        symbols.extend(
            encoder
                .repair_symbols(k, k + 16)?
                .into_iter()
                .map(|(_, s)| s),
        );
        Ok(OverheadExperiment {
            layout,
            block,
            symbols,
        })
    }

    /// The scheme measured.
    pub fn scheme(&self) -> FecScheme {
        self.layout.scheme()
    }

    /// Source symbols per block.
    pub fn k(&self) -> u32 {
        self.layout.max_block_symbols()
    }

    /// Runs one trial with its own seed.
    pub fn run_trial(&self, seed: u64) -> Result<TrialOutcome, FecError> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut order: Vec<u32> = (0..self.symbols.len() as u32).collect();
        order.shuffle(&mut rng);
        let mut decoder = BlockDecoder::new(&self.layout, 0)?;
        let k = self.k();
        for (received, &esi) in order
            .iter()
            .enumerate()
            .take((k + MAX_EXTRA_SYMBOLS) as usize)
        {
            if decoder.add_symbol(esi, &self.symbols[esi as usize])? == SymbolOutcome::Decoded {
                if decoder.data() != Some(&self.block[..]) {
                    return Ok(TrialOutcome::NotDecoded);
                }
                return Ok(TrialOutcome::Decoded {
                    extra: received as u32 + 1 - k,
                });
            }
        }
        Ok(TrialOutcome::NotDecoded)
    }
}

/// Tally of trials for one K: how many decoded with at most K, K+1 and K+2
/// symbols (cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverheadTally {
    /// Trials run.
    pub trials: u64,
    /// Trials decoded with ≤ K + i symbols, for i = 0, 1, 2.
    pub decoded_within: [u64; 3],
}

impl OverheadTally {
    /// Counts one trial.
    pub fn record(&mut self, outcome: TrialOutcome) {
        self.trials += 1;
        if let TrialOutcome::Decoded { extra } = outcome {
            for (i, count) in self.decoded_within.iter_mut().enumerate() {
                if extra <= i as u32 {
                    *count += 1;
                }
            }
        }
    }

    /// Adds another tally's counts.
    pub fn merge(mut self, other: OverheadTally) -> Self {
        self.trials += other.trials;
        for (a, b) in self.decoded_within.iter_mut().zip(other.decoded_within) {
            *a += b;
        }
        self
    }

    /// Fraction of trials decoded with ≤ K + `extra` symbols.
    pub fn fraction(&self, extra: usize) -> f64 {
        if self.trials == 0 {
            return 0.0;
        }
        self.decoded_within
            .get(extra)
            .map_or(0.0, |&n| n as f64 / self.trials as f64)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn most_trials_decode_at_k_and_all_by_k_plus_two() {
        let experiment = OverheadExperiment::new(50, 7).unwrap();
        let mut tally = OverheadTally::default();
        for trial in 0..200 {
            tally.record(experiment.run_trial(trial).unwrap());
        }
        assert_eq!(tally.trials, 200);
        // RFC 6330: failure at K is at most 1 %, at K+2 at most 1e-6.
        assert!(tally.decoded_within[0] >= 190, "{tally:?}");
        assert!(tally.decoded_within[0] <= tally.decoded_within[1]);
        assert_eq!(tally.decoded_within[2], 200, "{tally:?}");
    }

    #[test]
    fn raptor_trials_decode_and_more_symbols_help() {
        let experiment = OverheadExperiment::with_scheme(FecScheme::Raptor, 50, 7).unwrap();
        assert_eq!(
            (experiment.k(), experiment.scheme()),
            (50, FecScheme::Raptor)
        );
        let mut tally = OverheadTally::default();
        for trial in 0..200 {
            tally.record(experiment.run_trial(trial).unwrap());
        }
        // A GF(2) code: a random square binary matrix is invertible with
        // probability 0.29, 0.58 with one row more, 0.77 with two.
        assert!(
            tally.decoded_within[0] < tally.decoded_within[2],
            "{tally:?}"
        );
        assert!(tally.decoded_within[2] >= 100, "{tally:?}");
        assert!(OverheadExperiment::with_scheme(FecScheme::NoCode, 50, 7).is_err());
    }
}
