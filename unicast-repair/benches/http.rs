//! The download and repair service over plain HTTP on loopback, beside
//! nginx serving the same bytes when one is given (same client, same run):
//!
//! - 1 MiB random range requests and whole 64 MiB downloads (bytes/s);
//! - symbol repair: requests of 50 random source ESIs of a random block, and
//!   of 50 fresh repair symbols (`more=`), on a 64 MiB object (symbols/s),
//!   against three servers: the default prepared-block cache (64 MiB, about
//!   a third of the object's 64 blocks), the cache off (every request reads
//!   and prepares its block: the server before the cache) and a cache that
//!   holds every block (all warm). `repair_ratio` then times the same
//!   requests back to back and prints warm / cold.
//!
//! The client is hyper's, one request at a time on one kept-alive
//! connection. `benches/nginx_compare.sh` starts nginx and runs this with
//! `DMS_BENCH_NGINX_URL` (the URL of `bench.bin`) and `DMS_BENCH_NGINX_DIR`
//! (nginx's root, where the bench writes `bench.bin`).
#![allow(clippy::unwrap_used)] // bench code: a panic is a failed bench

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Limits that never refuse the bench client.
fn config(encoder_cache_bytes: usize) -> ServiceConfig {
    ServiceConfig {
        limits: LimitConfig {
            per_client_rate: 1e9,
            per_client_burst: 1e9,
            ..LimitConfig::default()
        },
        encoder_cache_bytes,
        ..ServiceConfig::default()
    }
}

/// Cache off: each repair request reads and prepares its block.
const CACHE_OFF: usize = 0;
/// Room for every prepared block of the object (~3.2 MiB each).
const CACHE_ALL: usize = 512 << 20;

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
    let app = router(
        source.clone(),
        None,
        config(dms_fec::DEFAULT_ENCODER_CACHE_BYTES),
    );
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
    /// The `/repair` URL of another server over the same object, with a
    /// prepared-block cache of `encoder_cache_bytes`.
    fn repair_server(&self, encoder_cache_bytes: usize) -> String {
        let app = router(self._source.clone(), None, config(encoder_cache_bytes));
        let base = self.rt.block_on(common::serve(app));
        format!("{base}/repair")
    }

    /// A request for 50 random source ESIs of a random block.
    fn source_query(&self, rng: &mut StdRng) -> String {
        let layout = self.info.oti.layout();
        let sbn = rng.random_range(0..layout.block_count());
        let k = layout.source_symbols(sbn).unwrap();
        let mut esis: Vec<u32> = sample(rng, k as usize, 50)
            .into_iter()
            .map(|e| e as u32)
            .collect();
        esis.sort_unstable();
        format_query(&RepairQuery {
            file_uri: self.info.content_location.clone(),
            items: vec![RepairItem::Symbols {
                sbn,
                esis: esis
                    .iter()
                    .map(|&e| EsiRange { first: e, last: e })
                    .collect(),
            }],
        })
    }

    /// A request for 50 fresh repair symbols of a random block.
    fn more_query(&self, rng: &mut StdRng) -> String {
        let layout = self.info.oti.layout();
        self.more_query_of(rng.random_range(0..layout.block_count()))
    }

    fn more_query_of(&self, sbn: u32) -> String {
        format_query(&RepairQuery {
            file_uri: self.info.content_location.clone(),
            items: vec![RepairItem::More {
                sbn,
                count: 50,
                first_esi: None,
            }],
        })
    }

    /// Asks `url` for 50 source symbols.
    fn source(&self, url: &str, rng: &mut StdRng) {
        let url = format!("{url}?{}", self.source_query(rng));
        assert!(self.get(&url, None) >= 50 * usize::from(T));
    }

    /// Asks `url` for 50 fresh repair symbols.
    fn more(&self, url: &str, rng: &mut StdRng) {
        let url = format!("{url}?{}", self.more_query(rng));
        assert_eq!(self.get(&url, None), 6 + 50 * usize::from(T));
    }

    /// Prepares every block on the server at `url`.
    fn warm(&self, url: &str) {
        for sbn in 0..self.info.oti.layout().block_count() {
            let url = format!("{url}?{}", self.more_query_of(sbn));
            assert_eq!(self.get(&url, None), 6 + 50 * usize::from(T));
        }
    }

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
    let off = f.repair_server(CACHE_OFF);
    let all = f.repair_server(CACHE_ALL);
    f.warm(&all);
    let mut rng = StdRng::seed_from_u64(8);
    let mut g = c.benchmark_group("repair_symbols");
    g.throughput(Throughput::Elements(50));
    let servers = [
        ("", f.repair_url.as_str()),
        ("_cache_off", off.as_str()),
        ("_all_cached", all.as_str()),
    ];
    for (suffix, url) in servers {
        g.bench_function(format!("50_random_source_esis{suffix}"), |b| {
            b.iter(|| f.source(url, &mut rng))
        });
        g.bench_function(format!("50_fresh_repair_symbols{suffix}"), |b| {
            b.iter(|| f.more(url, &mut rng))
        });
    }
    g.finish();
}

/// Times the same random requests against the server without and with
/// every block cached, back to back, and prints symbols/s and the ratio.
fn repair_ratio(_: &mut Criterion) {
    const REQUESTS: u32 = 400;
    let f = fixture();
    let off = f.repair_server(CACHE_OFF);
    let all = f.repair_server(CACHE_ALL);
    f.warm(&all);
    let rate = |url: &str, more: bool| {
        let mut rng = StdRng::seed_from_u64(9);
        let start = Instant::now();
        for _ in 0..REQUESTS {
            if more {
                f.more(url, &mut rng);
            } else {
                f.source(url, &mut rng);
            }
        }
        f64::from(REQUESTS * 50) / start.elapsed().as_secs_f64()
    };
    for (name, more) in [
        ("50 fresh repair symbols", true),
        ("50 random source ESIs", false),
    ] {
        let cold = rate(&off, more);
        let warm = rate(&all, more);
        println!(
            "repair_ratio: {name}: cache off {cold:.0} symbols/s, all cached {warm:.0} symbols/s, warm/cold {:.1}x",
            warm / cold
        );
    }
}

criterion_group!(benches, downloads, repair, repair_ratio);
criterion_main!(benches);
