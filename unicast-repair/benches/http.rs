//! The download and repair service over plain HTTP on loopback, beside
//! nginx serving the same bytes when one is given (same client, same run):
//!
//! - 1 MiB random range requests and whole 64 MiB downloads (bytes/s);
//! - symbol repair: requests of 50 random source ESIs of a random block, and
//!   of 50 fresh repair symbols (`more=`), on a 64 MiB object (symbols/s).
//!
//! The client is hyper's, one request at a time on one kept-alive
//! connection. `benches/nginx_compare.sh` starts nginx and runs this with
//! `DMS_BENCH_NGINX_URL` (the URL of `bench.bin`) and `DMS_BENCH_NGINX_DIR`
//! (nginx's root, where the bench writes `bench.bin`).
#![allow(clippy::unwrap_used)] // bench code: a panic is a failed bench

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dms_repair::query::{EsiRange, RepairItem, RepairQuery, format_query};
use dms_repair::{LimitConfig, ServiceConfig, router};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

const LEN: usize = 64 << 20;
const RANGE: u64 = 1 << 20;
const T: u16 = 1280;

struct Fixture {
    rt: tokio::runtime::Runtime,
    client: Client<HttpConnector, Empty<Bytes>>,
    dms_url: String,
    nginx_url: Option<String>,
    repair_url: String,
    info: dms_repair::ObjectInfo,
    _source: Arc<common::TestSource>,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = common::bytes(LEN, 42);
    if let Ok(dir) = std::env::var("DMS_BENCH_NGINX_DIR") {
        std::fs::write(std::path::Path::new(&dir).join("bench.bin"), &data).unwrap();
    }
    let source = common::TestSource::new();
    // ~1 MiB blocks as dms broadcasts them.
    let info = source.add("bench", "bench.bin", &data, T, 819);
    drop(data);
    let config = ServiceConfig {
        limits: LimitConfig {
            per_client_rate: 1e9,
            per_client_burst: 1e9,
            ..LimitConfig::default()
        },
        ..ServiceConfig::default()
    };
    let app = router(source.clone(), None, config);
    let base = rt.block_on(common::serve(app));
    let client = Client::builder(TokioExecutor::new()).build_http();
    Fixture {
        dms_url: format!("{base}/dl/bench/bench.bin"),
        repair_url: format!("{base}/repair"),
        nginx_url: std::env::var("DMS_BENCH_NGINX_URL").ok(),
        info,
        rt,
        client,
        _source: source,
    }
}

impl Fixture {
    /// GETs `url` with an optional Range and returns the body length.
    fn get(&self, url: &str, range: Option<(u64, u64)>) -> usize {
        self.rt.block_on(async {
            let mut req = hyper::Request::get(url);
            if let Some((a, b)) = range {
                req = req.header("range", format!("bytes={a}-{b}"));
            }
            let res = self
                .client
                .request(req.body(Empty::new()).unwrap())
                .await
                .unwrap();
            assert!(res.status().is_success(), "{}", res.status());
            let mut body = res.into_body();
            let mut n = 0;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    n += data.len();
                }
            }
            n
        })
    }
}

fn downloads(c: &mut Criterion) {
    let f = fixture();
    let mut targets = vec![("dms", f.dms_url.clone())];
    if let Some(url) = &f.nginx_url {
        targets.push(("nginx", url.clone()));
    }
    let mut rng = StdRng::seed_from_u64(7);
    let mut g = c.benchmark_group("range_1mib");
    g.throughput(Throughput::Bytes(RANGE));
    for (name, url) in &targets {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let start = rng.random_range(0..LEN as u64 - RANGE);
                assert_eq!(f.get(url, Some((start, start + RANGE - 1))), RANGE as usize);
            })
        });
    }
    g.finish();
    let mut g = c.benchmark_group("whole_64mib");
    g.throughput(Throughput::Bytes(LEN as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for (name, url) in &targets {
        g.bench_function(*name, |b| b.iter(|| assert_eq!(f.get(url, None), LEN)));
    }
    g.finish();
}

fn repair(c: &mut Criterion) {
    let f = fixture();
    let layout = f.info.oti.layout();
    let mut rng = StdRng::seed_from_u64(8);
    let mut g = c.benchmark_group("repair_symbols");
    g.throughput(Throughput::Elements(50));
    g.bench_function("50_random_source_esis", |b| {
        b.iter(|| {
            let sbn = rng.random_range(0..layout.block_count());
            let k = layout.source_symbols(sbn).unwrap();
            let mut esis: Vec<u32> = sample(&mut rng, k as usize, 50)
                .into_iter()
                .map(|e| e as u32)
                .collect();
            esis.sort_unstable();
            let query = RepairQuery {
                file_uri: f.info.content_location.clone(),
                items: vec![RepairItem::Symbols {
                    sbn,
                    esis: esis
                        .iter()
                        .map(|&e| EsiRange { first: e, last: e })
                        .collect(),
                }],
            };
            let url = format!("{}?{}", f.repair_url, format_query(&query));
            assert!(f.get(&url, None) >= 50 * usize::from(T));
        })
    });
    g.bench_function("50_fresh_repair_symbols", |b| {
        b.iter(|| {
            let sbn = rng.random_range(0..layout.block_count());
            let query = RepairQuery {
                file_uri: f.info.content_location.clone(),
                items: vec![RepairItem::More {
                    sbn,
                    count: 50,
                    first_esi: None,
                }],
            };
            let url = format!("{}?{}", f.repair_url, format_query(&query));
            assert_eq!(f.get(&url, None), 6 + 50 * usize::from(T));
        })
    });
    g.finish();
}

criterion_group!(benches, downloads, repair);
criterion_main!(benches);
