//! Raptor (RFC 5053) reception overhead, measured as RaptorQ's is: one
//! block encoded once, each trial a fresh random order of its 2K + 16
//! symbols fed to a decoder until it decodes; the decoded bytes checked.
//! Prints P(decode) at K, K+1, K+2 (run with `--nocapture` to see them).
#![allow(clippy::unwrap_used)]

use dms_fec::SymbolOutcome;
use dms_fec::raptor::{RaptorBlockDecoder, RaptorBlockEncoder, RaptorOti};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const T: u16 = 16;

/// Returns how many trials decoded at K, K+1 and K+2 symbols.
fn measure(k: u32, trials: u32, seed: u64) -> [u32; 3] {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut block = vec![0u8; k as usize * usize::from(T)];
    rng.fill(&mut block[..]);
    let oti = RaptorOti::new(block.len() as u64, T, 1, 1, 4).unwrap();
    let encoder = RaptorBlockEncoder::new(&oti, 0, &block).unwrap();
    let mut symbols: Vec<(u32, Vec<u8>)> = (0..k)
        .map(|esi| (esi, encoder.source_symbol(esi).unwrap().to_vec()))
        .collect();
    symbols.extend(encoder.repair_symbols(k, k + 16).unwrap());
    let mut counts = [0u32; 3];
    for _ in 0..trials {
        symbols.shuffle(&mut rng);
        let mut decoder = RaptorBlockDecoder::new(&oti, 0).unwrap();
        let mut used = 0u32;
        for (esi, symbol) in &symbols {
            used += 1;
            if decoder.add_symbol(*esi, symbol).unwrap() == SymbolOutcome::Decoded {
                break;
            }
        }
        assert_eq!(decoder.data(), Some(&block[..]), "K = {k}: never decoded");
        if let Some(slot) = counts.get_mut((used - k) as usize) {
            *slot += 1;
        }
    }
    counts
}

#[test]
fn raptor_decodes_with_few_symbols_past_k() {
    for (k, trials) in [(10u32, 2000u32), (100, 1000), (1000, 100)] {
        let [at_k, at_k1, at_k2] = measure(k, trials, u64::from(k));
        let p = |n: u32| f64::from(n) / f64::from(trials);
        let (p0, p1, p2) = (p(at_k), p(at_k + at_k1), p(at_k + at_k1 + at_k2));
        println!(
            "Raptor K = {k}: P(decode) at K {p0:.4}, K+1 {p1:.4}, K+2 {p2:.4} ({trials} trials)"
        );
        // Every trial decoded (asserted in `measure`); more symbols never
        // decode less often.
        assert!(p0 <= p1 && p1 <= p2);
    }
}
