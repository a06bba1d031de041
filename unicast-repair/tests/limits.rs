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

#[tokio::test]
async fn a_download_in_progress_holds_its_slot() {
    use http_body_util::BodyExt;
    let source = TestSource::new();
    // Far more than the socket buffers hold: the body cannot finish unread.
    let data = bytes(32 << 20, 5);
    source.add("big", "b.bin", &data, 1280, 800);
    let config = ServiceConfig {
        limits: LimitConfig {
            max_concurrent: 1,
            ..LimitConfig::default()
        },
        ..ServiceConfig::default()
    };
    let base = serve(router(source, None, config)).await;
    let url = format!("{base}/dl/big/b.bin");
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    // Headers are in, the body is not read: the slot is still taken.
    assert_eq!(get(&url, &[]).await.status, 503);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), data.len());
    // Once the body is done the slot is free again (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = get(&format!("{base}/dl/nothing/x"), &[]).await;
        if a.status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
