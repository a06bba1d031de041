//! A real HTTP cache in front of an origin: nginx with `proxy_cache`
//! (DMS_TEST_NGINX, from `.ci/setup.d/55-nginx.sh`) proxies the download
//! URLs of a `dms serve`. The first whole download fills the cache; a
//! second whole download and a Range request are then served by nginx
//! alone, which the origin's own request counters prove.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::path::Path;
use std::process::{Command, Stdio};

use binary::{Kill, free_port, publish_pattern, start_origin, wait_until};

/// curl: (status, lower-cased headers, body); `cacert` trusts the origin.
fn curl(cacert: Option<&Path>, extra: &[&str], url: &str) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let mut command = Command::new("curl");
    command.args([
        "-sS",
        "-D",
        headers.to_str().unwrap(),
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(ca) = cacert {
        command.arg("--cacert").arg(ca);
    }
    let out = command.args(extra).arg(url).output().unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut body = out.stdout;
    let split = body.iter().rposition(|&b| b == b'\n').unwrap();
    let status = std::str::from_utf8(&body[split + 1..])
        .unwrap()
        .parse()
        .unwrap();
    body.truncate(split);
    let headers = std::fs::read_to_string(&headers)
        .unwrap()
        .to_ascii_lowercase();
    (status, headers, body)
}

/// The origin's count of answers with `status` (its /metrics).
fn answered(data: &Path, origin: &str, status: u16) -> u64 {
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let (code, _, body) = curl(
        Some(&data.join("tls/cert.pem")),
        &["-H", &format!("Authorization: Bearer {}", token.trim())],
        &format!("{origin}/metrics"),
    );
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    let prefix = format!("dms_http_requests_total{{status=\"{status}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// nginx caching everything it proxies to `origin`, on `port`: one
/// process (no master), so killing it when the test ends leaves nothing.
fn start_nginx(nginx: &str, dir: &Path, port: u16, origin: &str) -> Kill {
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            r#"daemon off;
master_process off;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=dms:10m max_size=1g inactive=7d use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {origin};
            proxy_ssl_verify off;
            proxy_http_version 1.1;
            proxy_cache dms;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"#
        ),
    )
    .unwrap();
    let child = Command::new(nginx)
        .args(["-p", dir.to_str().unwrap(), "-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Kill(child);
    wait_until("nginx", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    server
}

#[test]
fn nginx_serves_the_second_download_and_ranges_without_the_origin() {
    let Ok(nginx) = std::env::var("DMS_TEST_NGINX") else {
        if std::env::var("DMS_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("DMS_TEST_NGINX unset and DMS_TEST_REQUIRE_SERVICES=1");
        }
        eprintln!("skipped: DMS_TEST_NGINX unset (source .ci/setup.d/55-nginx.sh to run it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (_origin, origin) = start_origin(&data);
    let client = ["--server", origin.as_str(), "--data", data_s];
    let (bytes, id) = publish_pattern(dir.path(), &client, "fw.bin", "1.0.0", 3_000_000, 11);
    let cache_dir = dir.path().join("nginx");
    std::fs::create_dir_all(&cache_dir).unwrap();
    let port = free_port();
    let _nginx = start_nginx(&nginx, &cache_dir, port, &origin);
    let cached = format!("http://127.0.0.1:{port}/dl/{id}/fw.bin");

    // A /metrics call may count itself: measure what one costs.
    let m0 = answered(&data, &origin, 200);
    let per_call = answered(&data, &origin, 200) - m0;
    let ranges_before = answered(&data, &origin, 206);

    // First download: a miss, fetched from the origin once.
    let before = answered(&data, &origin, 200);
    let (status, headers, body) = curl(None, &[], &cached);
    assert_eq!(status, 200);
    assert!(body == bytes, "first download differs");
    assert!(headers.contains("x-cache-status: miss"), "{headers}");
    // The immutable download URL says so: caches may keep it for ever.
    assert!(
        headers.contains("cache-control: public, max-age=31536000, immutable"),
        "{headers}"
    );
    assert!(headers.contains("etag: "), "{headers}");
    let after_first = answered(&data, &origin, 200);
    assert_eq!(
        after_first - before,
        per_call + 1,
        "the miss reached the origin once"
    );

    // Second whole download and a Range request: hits, no origin request.
    let (status, headers, body) = curl(None, &[], &cached);
    assert_eq!(status, 200);
    assert!(body == bytes, "second download differs");
    assert!(headers.contains("x-cache-status: hit"), "{headers}");
    let (status, headers, body) = curl(None, &["-r", "1048576-2097151"], &cached);
    assert_eq!(status, 206, "{headers}");
    assert!(body == bytes[1_048_576..2_097_152], "range differs");
    assert!(headers.contains("x-cache-status: hit"), "{headers}");
    assert!(
        headers.contains("content-range: bytes 1048576-2097151/3000000"),
        "{headers}"
    );
    let after_hits = answered(&data, &origin, 200);
    assert_eq!(
        after_hits - after_first,
        per_call,
        "a cached download reached the origin"
    );
    assert_eq!(
        answered(&data, &origin, 206),
        ranges_before,
        "the Range request reached the origin"
    );
}
