//! Raptor (RFC 5053): our `dms_fec::raptor` wrapper beside raw
//! `raptor-code`, in the same run, on the same blocks: T = 1024, K = 10 …
//! 8192, encode (intermediate symbols + 10 % repair symbols) and decode at
//! 0 %, 5 % and 50 % source-symbol loss (lost symbols replaced by repair
//! symbols, plus a few spare for the solves that fail at K).
//!
//! `cargo bench -p dms-fec --bench raptor` — the figure of merit is the
//! ratio wrapper / raw (target ≥ 0.95).
#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dms_fec::SymbolOutcome;
use dms_fec::raptor::{RaptorBlockDecoder, RaptorBlockEncoder, RaptorOti};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const T: u16 = 1024;
const KS: [u32; 4] = [10, 100, 1000, 8192];

fn block(k: u32) -> (RaptorOti, Vec<u8>) {
    let mut data = vec![0u8; k as usize * usize::from(T)];
    StdRng::seed_from_u64(u64::from(k)).fill(&mut data[..]);
    (RaptorOti::new(data.len() as u64, T, 1, 1, 4).unwrap(), data)
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("raptor_encode");
    group.sample_size(10);
    for k in KS {
        let (oti, data) = block(k);
        let repair = k.div_ceil(10);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::new("ours", k), &k, |b, &k| {
            b.iter(|| {
                let e = RaptorBlockEncoder::new(&oti, 0, &data).unwrap();
                e.repair_symbols(k, repair).unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("raw", k), &k, |b, &k| {
            b.iter(|| {
                let mut e = raptor_code::SourceBlockEncoder::new(&data, k as usize).unwrap();
                (k..k + repair)
                    .map(|esi| e.fountain(esi))
                    .collect::<Vec<_>>()
            })
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("raptor_decode");
    group.sample_size(10);
    for k in KS {
        let (oti, data) = block(k);
        let encoder = RaptorBlockEncoder::new(&oti, 0, &data).unwrap();
        for loss in [0u32, 5, 50] {
            let lost = k * loss / 100;
            // Received: source symbols past the lost ones, then repair.
            let mut received: Vec<(u32, Vec<u8>)> = (lost..k)
                .map(|esi| (esi, encoder.source_symbol(esi).unwrap().to_vec()))
                .collect();
            received.extend(encoder.repair_symbols(k, lost + 20).unwrap());
            group.throughput(Throughput::Bytes(data.len() as u64));
            let id = format!("{k}/{loss}%");
            group.bench_function(BenchmarkId::new("ours", &id), |b| {
                b.iter(|| {
                    let mut d = RaptorBlockDecoder::new(&oti, 0).unwrap();
                    for (esi, s) in &received {
                        if d.add_symbol(*esi, s).unwrap() == SymbolOutcome::Decoded {
                            break;
                        }
                    }
                    assert!(d.is_complete());
                })
            });
            group.bench_function(BenchmarkId::new("raw", &id), |b| {
                b.iter(|| {
                    if loss == 0 {
                        // What a systematic receiver does: concatenate.
                        let mut out = Vec::with_capacity(data.len());
                        for (_, s) in &received[..k as usize] {
                            out.extend_from_slice(s);
                        }
                        return out;
                    }
                    let mut d = raptor_code::SourceBlockDecoder::new(k as usize);
                    for (esi, s) in &received {
                        d.push_encoding_symbol(s, *esi);
                        if d.fully_specified() {
                            break;
                        }
                    }
                    d.decode(data.len()).unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, encode, decode);
criterion_main!(benches);
