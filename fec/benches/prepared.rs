//! What a repair server pays per request for 50 fresh repair symbols of a
//! ~1 MiB block (T = 1280): preparing the block each time (`BlockEncoder`,
//! the intermediate symbols recomputed) against a block prepared once and
//! taken from an [`EncoderCache`]. `prepared_ratio` times both back to back
//! and prints the ratio.
//!
//! `cargo bench -p dms-fec --bench prepared`
#![allow(clippy::unwrap_used)] // bench code: a panic is a failed bench

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dms_fec::{BlockEncoder, BlockSize, EncoderCache, FecScheme, Layout, Oti, PreparedBlock};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const T: u16 = 1280;
const COUNT: u32 = 50;

struct Fixture {
    block: Vec<u8>,
    layout: Layout,
    cache: EncoderCache<u32>,
    out: Vec<u8>,
}

fn fixture() -> Fixture {
    // One ~1 MiB block, as dms broadcasts them.
    let len = 819 * usize::from(T);
    let mut block = vec![0u8; len];
    StdRng::seed_from_u64(3).fill(&mut block[..]);
    let oti = Oti::for_object(FecScheme::RaptorQ, len as u64, T, BlockSize::Symbols(819)).unwrap();
    let layout = oti.layout();
    assert_eq!(layout.block_count(), 1);
    Fixture {
        block,
        layout,
        cache: EncoderCache::default(),
        out: vec![0u8; COUNT as usize * usize::from(T)],
    }
}

impl Fixture {
    /// 50 repair symbols from `first`, the block prepared for this call.
    fn cold(&mut self, first: u32) {
        let encoder = BlockEncoder::new(&self.layout, 0, &self.block).unwrap();
        encoder
            .write_repair_symbols(first, COUNT, &mut self.out)
            .unwrap();
        black_box(&self.out);
    }

    /// 50 repair symbols from `first`, the block from the cache.
    fn warm(&mut self, first: u32) {
        let block = self
            .cache
            .get_or_build(0, || {
                PreparedBlock::new(&self.layout, 0, self.block.clone())
            })
            .unwrap();
        block
            .write_repair_symbols(first, COUNT, &mut self.out)
            .unwrap();
        black_box(&self.out);
    }
}

fn fresh_symbols(c: &mut Criterion) {
    let mut f = fixture();
    let mut rng = StdRng::seed_from_u64(4);
    let mut g = c.benchmark_group("fresh_50_repair_symbols");
    g.throughput(Throughput::Elements(u64::from(COUNT)));
    g.bench_function("block_encoder_per_request", |b| {
        b.iter(|| f.cold(rng.random_range(819..1 << 20)))
    });
    g.bench_function("cached_prepared_block", |b| {
        b.iter(|| f.warm(rng.random_range(819..1 << 20)))
    });
    g.finish();
}

fn prepared_ratio(_: &mut Criterion) {
    const REQUESTS: u32 = 300;
    let mut f = fixture();
    let mut time = |warm: bool| {
        let mut rng = StdRng::seed_from_u64(5);
        let start = Instant::now();
        for _ in 0..REQUESTS {
            let first = rng.random_range(819..1 << 20);
            if warm { f.warm(first) } else { f.cold(first) }
        }
        f64::from(REQUESTS * COUNT) / start.elapsed().as_secs_f64()
    };
    let cold = time(false);
    let warm = time(true);
    println!(
        "prepared_ratio: 50 fresh repair symbols of a 1 MiB block: per-request encoder {cold:.0} symbols/s, cached {warm:.0} symbols/s, {:.1}x",
        warm / cold
    );
}

criterion_group!(benches, fresh_symbols, prepared_ratio);
criterion_main!(benches);
