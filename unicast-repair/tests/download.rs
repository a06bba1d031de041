//! The download route on a real server: ranges, multipart, validators.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{TestSource, bytes, get, request, serve};
use dms_repair::{ServiceConfig, router};

async fn setup() -> (
    std::sync::Arc<TestSource>,
    String,
    Vec<u8>,
    dms_repair::ObjectInfo,
) {
    let source = TestSource::new();
    // More than one body chunk, not a multiple of it.
    let data = bytes(700_001, 1);
    let info = source.add("obj1", "fw.bin", &data, 1280, 100);
    let base = serve(router(source.clone(), None, ServiceConfig::default())).await;
    (source, base, data, info)
}

#[tokio::test]
async fn full_download_with_validators() {
    let (_source, base, data, info) = setup().await;
    let url = format!("{base}/dl/obj1/fw.bin");
    let a = get(&url, &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.as_ref(), data.as_slice());
    assert_eq!(a.header("accept-ranges"), Some("bytes"));
    assert_eq!(a.header("content-length"), Some("700001"));
    assert_eq!(
        a.header("etag").unwrap(),
        format!("\"{}\"", hex::encode(info.sha256))
    );
    assert_eq!(
        a.header("last-modified"),
        Some("Tue, 14 Nov 2023 22:13:20 GMT")
    );
    assert!(a.header("cache-control").unwrap().contains("immutable"));

    let head = request("HEAD", &url, &[], b"").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("700001"));

    let etag = a.header("etag").unwrap().to_owned();
    let cached = get(&url, &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
}

#[tokio::test]
async fn unknown_objects_and_names_are_404_json() {
    let (_source, base, _, _) = setup().await;
    for path in ["/dl/nope/fw.bin", "/dl/obj1/other.bin"] {
        let a = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(a.status, 404);
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert!(v["error"].is_string());
    }
}

#[tokio::test]
async fn single_ranges_match_the_file() {
    let (_source, base, data, _) = setup().await;
    let url = format!("{base}/dl/obj1/fw.bin");
    let len = data.len();
    for (spec, start, end) in [
        ("0-0", 0, 1),
        ("10-262200", 10, 262_201),
        ("699990-", 699_990, len),
        ("-100", len - 100, len),
        ("5-99999999", 5, len),
    ] {
        let a = get(&url, &[("range", &format!("bytes={spec}"))]).await;
        assert_eq!(a.status, 206, "{spec}");
        assert_eq!(a.body.as_ref(), &data[start..end], "{spec}");
        assert_eq!(
            a.header("content-range").unwrap(),
            format!("bytes {start}-{}/{len}", end - 1)
        );
    }
}

#[tokio::test]
async fn unsatisfiable_ranges_are_416() {
    let (_source, base, data, _) = setup().await;
    let a = get(
        &format!("{base}/dl/obj1/fw.bin"),
        &[("range", &format!("bytes={}-", data.len()))],
    )
    .await;
    assert_eq!(a.status, 416);
    assert_eq!(
        a.header("content-range").unwrap(),
        format!("bytes */{}", data.len())
    );
}

#[tokio::test]
async fn if_range_mismatch_serves_the_whole_object() {
    let (_source, base, data, info) = setup().await;
    let url = format!("{base}/dl/obj1/fw.bin");
    let a = get(&url, &[("range", "bytes=0-9"), ("if-range", "\"other\"")]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body.as_ref(), data.as_slice());
    let etag = format!("\"{}\"", hex::encode(info.sha256));
    let a = get(&url, &[("range", "bytes=0-9"), ("if-range", &etag)]).await;
    assert_eq!(a.status, 206);
    assert_eq!(a.body.as_ref(), &data[..10]);
    let a = get(
        &url,
        &[
            ("range", "bytes=0-9"),
            ("if-range", "Tue, 14 Nov 2023 22:13:20 GMT"),
        ],
    )
    .await;
    assert_eq!(a.status, 206);
    let a = get(
        &url,
        &[
            ("range", "bytes=0-9"),
            ("if-range", "Tue, 14 Nov 2023 22:13:21 GMT"),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
}

/// Splits a multipart/byteranges body into (Content-Range, bytes) parts.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    loop {
        let at = find(rest, delimiter.as_bytes()).unwrap();
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            return parts;
        }
        let head_end = find(rest, b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&rest[..head_end]).unwrap();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .unwrap()
            .to_owned();
        let content = &rest[head_end + 4..];
        let (_, span) = range.split_once(' ').unwrap();
        let (span, _) = span.split_once('/').unwrap();
        let (a, b) = span.split_once('-').unwrap();
        let n = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        parts.push((range, content[..n].to_vec()));
        rest = &content[n..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn multiple_ranges_are_multipart() {
    let (_source, base, data, _) = setup().await;
    let a = get(
        &format!("{base}/dl/obj1/fw.bin"),
        &[("range", "bytes=0-99, 300000-600000, -10")],
    )
    .await;
    assert_eq!(a.status, 206);
    assert_eq!(
        a.header("content-length").unwrap(),
        a.body.len().to_string()
    );
    let ct = a.header("content-type").unwrap();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    let parts = parse_multipart(&a.body, boundary);
    let len = data.len();
    let want = [(0, 100), (300_000, 600_001), (len - 10, len)];
    assert_eq!(parts.len(), 3);
    for ((range, content), (s, e)) in parts.iter().zip(want) {
        assert_eq!(range, &format!("bytes {s}-{}/{len}", e - 1));
        assert_eq!(content.as_slice(), &data[s..e]);
    }
}

#[tokio::test]
async fn curl_range_matches_the_file() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("curl not installed: skipped");
        return;
    }
    let (_source, base, data, _) = setup().await;
    let url = format!("{base}/dl/obj1/fw.bin");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-s", "--max-time", "60", "--range", "1000-299999", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.as_slice(), &data[1000..300_000]);
}
