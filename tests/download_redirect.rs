//! `dms serve --blobs s3://… --download-redirect` on a real S3-protocol
//! server (the one `.ci/setup.d/60-s3.sh` starts: DMS_TEST_S3_ENDPOINT,
//! DMS_TEST_S3_BUCKET): downloads are answered 307 to a presigned URL of
//! the bucket; curl -L gets the whole object and a Range from the store;
//! `dms fetch` and a `dms receive` whose symbol repair fails follow the
//! redirect and verify the signed manifest. Without S3 blobs the flag is
//! refused at start.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use binary::{Kill, dms, free_port, json, receive, start_session, wait_until};

/// The S3 server from the environment, or `None` after saying why.
fn s3_from_env(test: &str) -> Option<(String, String)> {
    let endpoint = std::env::var("DMS_TEST_S3_ENDPOINT").ok();
    let bucket = std::env::var("DMS_TEST_S3_BUCKET").ok();
    let found = endpoint.zip(bucket);
    if found.is_none() {
        if std::env::var("DMS_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{test}: DMS_TEST_S3_ENDPOINT unset and DMS_TEST_REQUIRE_SERVICES=1");
        }
        eprintln!("{test}: skipped: DMS_TEST_S3_ENDPOINT unset (source .ci/setup.d/60-s3.sh)");
    }
    found
}

fn s3_envs(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", "dms-test".into()),
        ("AWS_SECRET_ACCESS_KEY", "dms-test-secret".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

/// curl with the origin's CA: (status, headers, body).
fn curl(data: &Path, extra: &[&str], url: &str) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            data.join("tls/cert.pem").to_str().unwrap(),
        ])
        .args(["-D", headers.to_str().unwrap(), "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
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
    let headers = std::fs::read_to_string(&headers).unwrap_or_default();
    (status, headers, body)
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn downloads_redirect_to_presigned_s3_urls_and_clients_follow() {
    let Some((endpoint, bucket)) = s3_from_env("download-redirect") else {
        return;
    };
    const GROUP: &str = "239.255.77.9:47721";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let port = free_port();
    let blobs = format!("s3://{bucket}/redirect-{}", std::process::id());
    let _origin = Kill(
        Command::new(env!("CARGO_BIN_EXE_dms"))
            .args([
                "serve",
                "--data",
                data_s,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--blobs", &blobs, "--download-redirect"])
            .args(["--download-redirect-expiry", "120"])
            .envs(s3_envs(&endpoint))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let server = format!("https://127.0.0.1:{port}");
    wait_until("dms serve --download-redirect", || {
        dms(&["session", "list", "--server", &server, "--data", data_s])
            .status
            .success()
    });
    let client = ["--server", server.as_str(), "--data", data_s];
    let bytes: Vec<u8> = (0..1_600_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 12) as u8)
        .collect();
    let file = dir.path().join("fw.bin");
    std::fs::write(&file, &bytes).unwrap();
    let published = json(&dms(&[
        &[
            "publish",
            file.to_str().unwrap(),
            "--name",
            "fw.bin",
            "--version",
            "1",
        ][..],
        &client[..],
    ]
    .concat()));
    let uri = published["uri"].as_str().unwrap().to_owned();
    let id = published["id"].as_str().unwrap().to_owned();

    // A 307 to a presigned GET URL of the bucket, never cached.
    let (status, headers, _) = curl(&data, &[], &uri);
    assert_eq!(status, 307, "{headers}");
    let location = header(&headers, "location").unwrap_or_else(|| panic!("{headers}"));
    assert!(location.starts_with(&endpoint), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    assert!(location.contains("X-Amz-Expires=120"), "{location}");
    assert_eq!(
        header(&headers, "cache-control"),
        Some("no-store"),
        "{headers}"
    );
    // The bytes come from the store: whole and by Range.
    let (status, _, body) = curl(&data, &["-L"], &uri);
    assert_eq!(status, 200);
    assert!(body == bytes, "whole download through the redirect differs");
    let (status, _, body) = curl(&data, &["-L", "-r", "1000-1999"], &uri);
    assert_eq!(status, 206);
    assert!(body == bytes[1000..2000]);
    let (status, _, body) = curl(&data, &[], location);
    assert_eq!(status, 200);
    assert!(body == bytes, "the presigned URL alone gives the object");
    // HEAD is answered by the origin (a presigned URL is for GET only).
    let (status, headers, _) = curl(&data, &["-I"], &uri);
    assert_eq!(status, 200, "{headers}");
    assert_eq!(
        header(&headers, "content-length"),
        Some("1600000"),
        "{headers}"
    );

    // `dms fetch` follows it and checks the signed manifest.
    let key = data.join("origin.pub");
    let cacert = data.join("tls/cert.pem");
    let fetched = dir.path().join("fetched.bin");
    let out = dms(&[
        "fetch",
        &uri,
        "--out",
        fetched.to_str().unwrap(),
        "--origin-key",
        key.to_str().unwrap(),
        "--cacert",
        cacert.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&fetched).unwrap() == bytes);

    // A UE whose only repair server is dead downloads the object whole:
    // through the redirect, verified against the manifest.
    let dead = format!("http://127.0.0.1:{}/repair", free_port());
    let out_dir = dir.path().join("out");
    let ue = receive(
        GROUP,
        &out_dir,
        &[
            "--count",
            "1",
            "--timeout",
            "120",
            "--idle",
            "2",
            "--drop",
            "30",
        ],
    )
    .args(["--repair", &dead, "--report", &format!("{server}/report")])
    .args(["--origin-key", key.to_str().unwrap()])
    .args(["--cacert", cacert.to_str().unwrap()])
    .env("RUST_LOG", "warn,dms_repair::client=debug")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    start_session(&client, &id, GROUP, &["--rate", "20", "--repair", "0"]);
    let output = ue.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "dms receive: {log}");
    assert!(log.contains("download redirected"), "{log}");
    assert!(std::fs::read(out_dir.join("fw.bin")).unwrap() == bytes);
}

#[test]
fn download_redirect_without_s3_blobs_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["serve", "--data", dir.path().to_str().unwrap()])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--download-redirect",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--download-redirect needs blobs on S3"),
        "{stderr}"
    );
    // Nothing was set up in the data directory.
    assert!(!dir.path().join("admin.token").exists());
}
