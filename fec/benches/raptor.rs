//! Raptor (RFC 5053) in one run beside RaptorQ and beside raw
//! `raptor-code`, on the same blocks: T = 1024, K = 10 … 8192; encode
//! (intermediate symbols + 10 % repair symbols) and decode at 0 %, 5 % and
//! 50 % source-symbol loss (lost symbols replaced by repair symbols, with a
//! few spare for the solves that fail at K). Then Raptor's reception
//! overhead: P(decode) at K, K+1 and K+2 received symbols.
//!
//! `cargo bench -p dms-fec --bench raptor` prints two Markdown tables.
//! `ours` is `FecScheme::Raptor` through `BlockEncoder` / `BlockDecoder`
//! (what the FLUTE sender, receiver and repair server run); `raw` is
//! `raptor-code` called directly; `raptorq` is `FecScheme::RaptorQ`
//! through the same types. The figures of merit are ours / raw (target
//! ≥ 0.95) and Raptor beside RaptorQ. Gbit/s are of source data, one core.
//!
//! Each case runs the three sides in turn (each round starting with the
//! next side), round after round, and keeps each side's fastest round, so
//! a burst of load on the machine hits the sides alike. `DMS_BENCH_TRIALS` sets the overhead trials per K (default
//! 10 000); `DMS_BENCH_QUICK=1` runs one round of everything (a smoke run).
#![allow(clippy::unwrap_used)] // bench code: a panic is a failed run

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dms_fec::overhead::{OverheadExperiment, OverheadTally};
use dms_fec::{BlockDecoder, BlockEncoder, FecScheme, Layout, Oti, SymbolOutcome};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const T: u16 = 1024;
const KS: [u32; 6] = [10, 100, 1000, 2048, 4096, 8192];
const LOSSES: [u32; 3] = [0, 5, 50];
const OVERHEAD_KS: [u32; 3] = [10, 100, 1000];

/// One round of everything: set by `DMS_BENCH_QUICK=1`, or when run as a
/// test (`cargo test --benches` passes no `--bench`).
static QUICK: AtomicBool = AtomicBool::new(false);

fn quick() -> bool {
    QUICK.load(Ordering::Relaxed)
}

fn layout(scheme: FecScheme, len: usize) -> Layout {
    let oti = match scheme {
        FecScheme::Raptor => Oti::raptor(len as u64, T, 1, 1, 4),
        _ => Oti::raptorq(len as u64, T, 1, 1, 4),
    };
    oti.unwrap().layout()
}

/// Symbols received after losing `loss` % of the source symbols: the
/// others, then enough repair symbols (and 20 spare).
fn received(layout: &Layout, data: &[u8], loss: u32) -> Vec<(u32, Vec<u8>)> {
    let encoder = BlockEncoder::new(layout, 0, data).unwrap();
    let k = encoder.source_symbols();
    let lost = k * loss / 100;
    let mut symbols: Vec<(u32, Vec<u8>)> = (lost..k)
        .map(|esi| (esi, encoder.source_symbol(esi).unwrap().to_vec()))
        .collect();
    if lost > 0 {
        symbols.extend(encoder.repair_symbols(k, lost + 20).unwrap());
    }
    symbols
}

fn decode_ours(layout: &Layout, symbols: &[(u32, Vec<u8>)]) -> usize {
    let mut d = BlockDecoder::new(layout, 0).unwrap();
    for (esi, s) in symbols {
        if d.add_symbol(*esi, s).unwrap() == SymbolOutcome::Decoded {
            break;
        }
    }
    d.take_data().unwrap().len()
}

/// What an application calling `raptor-code` itself does: concatenate when
/// every source symbol is there, else push symbols until the solver says
/// full rank, then solve.
fn decode_raw(k: u32, len: usize, symbols: &[(u32, Vec<u8>)]) -> usize {
    if symbols.len() >= k as usize && symbols[..k as usize].iter().all(|(esi, _)| *esi < k) {
        let mut out = Vec::with_capacity(len);
        for (_, s) in &symbols[..k as usize] {
            out.extend_from_slice(s);
        }
        return out.len();
    }
    let mut d = raptor_code::SourceBlockDecoder::new(k as usize);
    for (esi, s) in symbols {
        d.push_encoding_symbol(s, *esi);
        if d.fully_specified() {
            break;
        }
    }
    d.decode(len).unwrap().len()
}

/// Runs each side in turn until `budget` has passed (at least `min_rounds`
/// rounds) and returns each side's fastest round.
fn race(budget: Duration, min_rounds: u32, sides: &mut [&mut dyn FnMut()]) -> Vec<Duration> {
    let mut best = vec![Duration::MAX; sides.len()];
    let start = Instant::now();
    let mut rounds = 0;
    let n = sides.len();
    while rounds < min_rounds || (start.elapsed() < budget && !quick()) {
        // Each round starts with the next side, so none always runs on the
        // caches another just warmed.
        for i in (0..n).map(|i| (i + rounds as usize) % n) {
            let t0 = Instant::now();
            sides[i]();
            best[i] = best[i].min(t0.elapsed());
        }
        rounds += 1;
        if quick() {
            break;
        }
    }
    best
}

fn gbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.as_secs_f64() / 1e9
}

fn speed() {
    println!(
        "| K | case | Raptor ours Gbit/s | raw raptor-code Gbit/s | ours / raw | RaptorQ Gbit/s | Raptor / RaptorQ |"
    );
    println!("|---|---|---|---|---|---|---|");
    // A smoke run (often a debug build) keeps to small blocks.
    for k in KS.into_iter().filter(|&k| !quick() || k <= 100) {
        let mut data = vec![0u8; k as usize * usize::from(T)];
        StdRng::seed_from_u64(u64::from(k)).fill(&mut data[..]);
        let raptor = layout(FecScheme::Raptor, data.len());
        let raptorq = layout(FecScheme::RaptorQ, data.len());
        // Large blocks take long per round: fewer rounds, same budget.
        let (budget, min_rounds) = if k >= 4096 {
            (Duration::from_secs(6), 3)
        } else {
            (Duration::from_secs(3), 5)
        };
        let repair = k.div_ceil(10);
        let times = race(
            budget,
            min_rounds,
            &mut [
                &mut || {
                    let e = BlockEncoder::new(&raptor, 0, &data).unwrap();
                    black_box(e.repair_symbols(k, repair).unwrap());
                },
                &mut || {
                    let mut e = raptor_code::SourceBlockEncoder::new(&data, k as usize).unwrap();
                    black_box(
                        (k..k + repair)
                            .map(|esi| e.fountain(esi))
                            .collect::<Vec<_>>(),
                    );
                },
                &mut || {
                    let e = BlockEncoder::new(&raptorq, 0, &data).unwrap();
                    black_box(e.repair_symbols(k, repair).unwrap());
                },
            ],
        );
        row(k, "encode + 10 % repair", data.len(), &times);
        for loss in LOSSES {
            let ours_in = received(&raptor, &data, loss);
            let q_in = received(&raptorq, &data, loss);
            let times = race(
                budget,
                min_rounds,
                &mut [
                    &mut || {
                        black_box(decode_ours(&raptor, &ours_in));
                    },
                    &mut || {
                        black_box(decode_raw(k, data.len(), &ours_in));
                    },
                    &mut || {
                        black_box(decode_ours(&raptorq, &q_in));
                    },
                ],
            );
            row(k, &format!("decode, {loss} % loss"), data.len(), &times);
        }
    }
}

fn row(k: u32, case: &str, bytes: usize, times: &[Duration]) {
    let [ours, raw, q] = [times[0], times[1], times[2]].map(|d| gbps(bytes, d));
    println!(
        "| {k} | {case} | {ours:.3} | {raw:.3} | {:.2} | {q:.3} | {:.2} |",
        ours / raw,
        ours / q
    );
}

fn overhead() {
    let trials: u64 = std::env::var("DMS_BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick() { 100 } else { 10_000 });
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    println!();
    println!("| K | trials | P(decode) at K | at K+1 | at K+2 |");
    println!("|---|---|---|---|---|");
    for k in OVERHEAD_KS.into_iter().filter(|&k| !quick() || k <= 100) {
        let experiment =
            OverheadExperiment::with_scheme(FecScheme::Raptor, k, u64::from(k)).unwrap();
        let tally = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|w| {
                    let experiment = &experiment;
                    scope.spawn(move || {
                        let mut tally = OverheadTally::default();
                        for trial in (w..trials).step_by(threads as usize) {
                            tally.record(experiment.run_trial(trial).unwrap());
                        }
                        tally
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap())
                .fold(OverheadTally::default(), OverheadTally::merge)
        });
        println!(
            "| {k} | {} | {:.4} | {:.4} | {:.4} |",
            tally.trials,
            tally.fraction(0),
            tally.fraction(1),
            tally.fraction(2)
        );
    }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let asked = std::env::var_os("DMS_BENCH_QUICK").is_some_and(|v| v != "0");
    QUICK.store(asked || !benching, Ordering::Relaxed);
    speed();
    overhead();
}
