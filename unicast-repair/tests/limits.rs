//! Overload on a real server: 429 and 503 with Retry-After.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{TestSource, bytes, get, serve};
use dms_repair::{LimitConfig, ServiceConfig, router};

#[tokio::test]
async fn a_fast_client_gets_429() {
    let source = TestSource::new();
    let info = source.add("o", "f.bin", &bytes(10_000, 3), 64, 50);
    let config = ServiceConfig {
        limits: LimitConfig {
            per_client_rate: 0.001,
            per_client_burst: 3.0,
            ..LimitConfig::default()
        },
        ..ServiceConfig::default()
    };
    let base = serve(router(source, None, config)).await;
    let url = format!(
        "{base}/repair?fileURI={}&SBN=0;ESI=0",
        info.content_location
            .replace(':', "%3A")
            .replace('/', "%2F")
    );
    for _ in 0..3 {
        assert_eq!(get(&url, &[]).await.status, 200);
    }
    let a = get(&url, &[]).await;
    assert_eq!(a.status, 429);
    assert!(a.header("retry-after").unwrap().parse::<u32>().unwrap() >= 1);
    let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
    assert!(v["error"].is_string());
    // Downloads are not rate limited per client (a CDN is one client).
    assert_eq!(get(&format!("{base}/dl/o/f.bin"), &[]).await.status, 200);
}

#[tokio::test]
async fn a_full_server_answers_503() {
    let source = TestSource::new();
    let info = source.add("o", "f.bin", &bytes(10_000, 4), 64, 50);
    let config = ServiceConfig {
        limits: LimitConfig {
            max_concurrent: 1,
            ..LimitConfig::default()
        },
        ..ServiceConfig::default()
    };
    let base = serve(router(source.clone(), None, config)).await;
    let url = format!(
        "{base}/repair?fileURI={}&SBN=0;ESI=0",
        info.content_location
            .replace(':', "%3A")
            .replace('/', "%2F")
    );
    let (release, gate) = std::sync::mpsc::channel();
    *source.gate.lock().unwrap() = Some(gate);
    let held = tokio::spawn({
        let url = url.clone();
        async move { get(&url, &[]).await.status }
    });
    // Wait (bounded) until the first request holds the only slot.
    let deadline = Instant::now() + Duration::from_secs(60);
    while source.lookups.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "first request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a = get(&url, &[]).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.header("retry-after"), Some("1"));
    let b = get(&format!("{base}/dl/o/f.bin"), &[]).await;
    assert_eq!(b.status, 503);
    release.send(()).unwrap();
    assert_eq!(held.await.unwrap(), 200);
    assert_eq!(get(&url, &[]).await.status, 200);
}
