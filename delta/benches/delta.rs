//! make/apply throughput on synthetic versions: a 4 MiB binary-like base
//! and a new version with changed, inserted and removed regions and
//! shifted pointer-like words (what a recompile does). Throughput is per
//! byte of target. Real releases are measured by `benches/delta_releases.sh`.
//!
//! `cargo bench -p dms-delta` — targets (issue 8): making ≥ 20 MB/s,
//! applying ≥ 200 MB/s.
#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dms_delta::MakeOptions;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const LEN: usize = 4 << 20;

fn binary_like(len: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        if rng.random_bool(0.3) {
            let n = rng.random_range(16..512);
            out.extend((0..n).map(|_| rng.random::<u8>()));
        } else {
            let base: u32 = rng.random();
            for i in 0..rng.random_range(4..64u32) {
                out.extend_from_slice(&base.wrapping_add(i * 16).to_le_bytes());
                out.extend_from_slice(b"\x48\x89\xe5\x41");
            }
        }
    }
    out.truncate(len);
    out
}

fn edited(old: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut new = old.to_vec();
    for _ in 0..64 {
        let at = rng.random_range(0..new.len() - 4096);
        match rng.random_range(0..3) {
            0 => new[at..at + 256].iter_mut().for_each(|b| *b = rng.random()),
            1 => {
                let ins: Vec<u8> = (0..rng.random_range(1..4096))
                    .map(|_| rng.random())
                    .collect();
                new.splice(at..at, ins);
            }
            _ => drop(new.drain(at..at + rng.random_range(1..4096))),
        }
    }
    for chunk in new.chunks_mut(4096) {
        let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]).wrapping_add(0x40);
        chunk[..4].copy_from_slice(&w.to_le_bytes());
    }
    new
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(8);
    let old = binary_like(LEN, &mut rng);
    let new = edited(&old, &mut rng);
    let mut group = c.benchmark_group("delta");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(new.len() as u64));
    for (label, opts) in [
        (
            "make zstd-19",
            MakeOptions {
                bsdiff: false,
                ..MakeOptions::default()
            },
        ),
        (
            "make zstd-9",
            MakeOptions {
                zstd_level: 9,
                bsdiff: false,
                ..MakeOptions::default()
            },
        ),
        (
            "make default (bsdiff-zstd + zstd-3 probe, zstd-19 when it may win)",
            MakeOptions::default(),
        ),
    ] {
        let (_, info) = dms_delta::make_bytes(&old, &new, &opts).unwrap();
        eprintln!(
            "{label}: {} -> {} bytes ({:.4}), {:?}",
            new.len(),
            info.delta_size,
            info.ratio(),
            info.candidates
        );
        group.bench_function(label, |b| {
            b.iter(|| dms_delta::make_bytes(&old, &new, &opts).unwrap())
        });
    }
    for (label, opts) in [
        (
            "apply zstd",
            MakeOptions {
                bsdiff: false,
                ..MakeOptions::default()
            },
        ),
        (
            "apply bsdiff-zstd",
            MakeOptions {
                zstd_level: 1,
                ..MakeOptions::default()
            },
        ),
    ] {
        let (delta, info) = dms_delta::make_bytes(&old, &new, &opts).unwrap();
        eprintln!("{label}: method {}", info.header.method);
        group.bench_function(label, |b| {
            b.iter(|| dms_delta::apply_bytes(&old, &delta).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
