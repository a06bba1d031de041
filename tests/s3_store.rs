//! `dms serve --blobs s3://…` on a real S3-protocol server (the one
//! `.ci/setup.d/60-s3.sh` starts: DMS_TEST_S3_ENDPOINT, DMS_TEST_S3_BUCKET,
//! DMS_TEST_S3_SERVER). Publish, whole and Range downloads, a stand-alone
//! repair server, a broadcast session read from the bucket with symbol
//! repair and a delta, SIGKILL during an upload, `dms gc`, and the store
//! going away and coming back under a running origin.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use binary::{Kill, dms, free_port, json, receive, start_session, wait_until};
use futures_util::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;

/// The S3 server the tests use.
struct S3 {
    endpoint: String,
    bucket: String,
    /// A key prefix of this test's own.
    prefix: String,
}

impl S3 {
    /// The server from the environment; `None` (after saying why) when
    /// there is none and services are not required.
    fn from_env(test: &str) -> Option<Self> {
        let endpoint = std::env::var("DMS_TEST_S3_ENDPOINT").ok();
        let bucket = std::env::var("DMS_TEST_S3_BUCKET").ok();
        match endpoint.zip(bucket) {
            Some((endpoint, bucket)) => Some(Self {
                endpoint,
                bucket,
                prefix: format!("{test}-{}", std::process::id()),
            }),
            None => {
                skip_or_fail(test, "DMS_TEST_S3_ENDPOINT/DMS_TEST_S3_BUCKET");
                None
            }
        }
    }

    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// The AWS_* variables a dms process needs to reach the server.
    fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "dms-test".into()),
            ("AWS_SECRET_ACCESS_KEY", "dms-test-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// A client of our own for looking into the bucket.
    fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_bucket_name(&self.bucket)
                .with_access_key_id("dms-test")
                .with_secret_access_key("dms-test-secret")
                .with_region("us-east-1")
                .with_allow_http(true)
                .build()
                .unwrap(),
        )
    }

    /// Every key under this test's prefix, relative to it.
    fn keys(&self) -> BTreeSet<String> {
        let store = self.store();
        let prefix = StorePath::from(self.prefix.as_str());
        let strip = format!("{}/", self.prefix);
        runtime().block_on(async move {
            let mut out = BTreeSet::new();
            let mut listing = store.list(Some(&prefix));
            while let Some(meta) = listing.next().await {
                let key = meta.unwrap().location.to_string();
                out.insert(key.strip_prefix(&strip).unwrap().to_owned());
            }
            out
        })
    }

    /// Writes an object under this test's prefix.
    fn put(&self, key: &str, bytes: Vec<u8>) {
        let store = self.store();
        let key = StorePath::from(format!("{}/{key}", self.prefix));
        runtime().block_on(async move {
            object_store::ObjectStoreExt::put(&*store, &key, bytes.into())
                .await
                .unwrap();
        });
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn skip_or_fail(test: &str, what: &str) {
    if std::env::var("DMS_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{test}: {what} unset and DMS_TEST_REQUIRE_SERVICES=1 (run .ci/setup.d/60-s3.sh)");
    }
    eprintln!("{test}: skipped: {what} unset (source .ci/setup.d/60-s3.sh to run it)");
}

/// `dms ARGS` with the S3 variables, in the background.
fn spawn_with(s3: &S3, args: &[&str]) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(args)
            .envs(s3.envs())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `dms serve --blobs s3://…` on a free port over TLS, once it answers.
fn start_origin(s3: &S3, data: &Path) -> (Kill, String) {
    let port = free_port();
    let data_s = data.to_str().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let blobs = s3.url();
    let server = spawn_with(
        s3,
        &[
            "serve", "--data", data_s, "--listen", &listen, "--blobs", &blobs,
        ],
    );
    let url = format!("https://127.0.0.1:{port}");
    wait_until("dms serve --blobs", || {
        dms(&["session", "list", "--server", &url, "--data", data_s])
            .status
            .success()
    });
    (server, url)
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
    let headers = std::fs::read_to_string(&headers)
        .unwrap_or_default()
        .to_ascii_lowercase();
    (status, headers, body)
}

fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn publish(dir: &Path, client: &[&str], name: &str, version: &str, data: &[u8]) -> String {
    let file = dir.join(format!("{name}-{version}"));
    std::fs::write(&file, data).unwrap();
    let args = ["publish", file.to_str().unwrap(), "--name", name];
    let out = json(&dms(&[&args[..], &["--version", version], client].concat()));
    out["id"].as_str().unwrap().to_owned()
}

fn show(client: &[&str], id: &str) -> serde_json::Value {
    json(&dms(&[&["objects", "show", id][..], client].concat()))
}

fn sha_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The blob keys (`blobs/ab/abcd…`) among `keys`, as hashes.
fn blob_hashes(keys: &BTreeSet<String>) -> BTreeSet<String> {
    keys.iter()
        .filter_map(|k| k.strip_prefix("blobs/"))
        .filter_map(|k| k.split('/').nth(1))
        .map(str::to_owned)
        .collect()
}

#[test]
fn objects_on_s3_download_broadcast_repair_and_make_deltas() {
    let Some(s3) = S3::from_env("s3-e2e") else {
        return;
    };
    const GROUP: &str = "239.255.76.1:47601";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_origin, server) = start_origin(&s3, &data);
    let data_s = data.to_str().unwrap();
    let client = ["--server", server.as_str(), "--data", data_s];

    // Two versions (v2 a few edits of v1: a delta is kept), 1.6 MB each:
    // two source blocks.
    let v1 = bytes(1_600_000, 1);
    let mut v2 = v1.clone();
    v2[200_000..203_000].copy_from_slice(&bytes(3000, 9));
    v2.splice(1_100_000..1_100_000, bytes(2000, 7));
    let id1 = publish(dir.path(), &client, "fw.bin", "1.0.0", &v1);
    let id2 = publish(dir.path(), &client, "fw.bin", "1.1.0", &v2);
    let o2 = show(&client, &id2);
    assert_eq!(o2["sha256"], sha_hex(&v2));

    // The bytes are in the bucket by hash, nothing on the local disk.
    let keys = s3.keys();
    assert_eq!(
        blob_hashes(&keys),
        BTreeSet::from([sha_hex(&v1), sha_hex(&v2)]),
        "{keys:?}"
    );
    assert!(!data.join("blobs").exists());
    assert!(keys.iter().all(|k| !k.starts_with("tmp/")), "{keys:?}");

    // Whole and Range downloads, byte-identical, immutable.
    let uri = o2["uri"].as_str().unwrap();
    let (status, headers, body) = curl(&data, &[], uri);
    assert_eq!(status, 200);
    assert!(body == v2, "whole download differs");
    assert!(
        headers.contains("cache-control: public, max-age=31536000, immutable"),
        "{headers}"
    );
    let (status, _, body) = curl(&data, &["-r", "1000000-1999999"], uri);
    assert_eq!(status, 206);
    assert!(body == v2[1_000_000..]);
    let (status, _, body) = curl(&data, &["-r", "5-14,1601990-"], uri);
    assert_eq!(status, 206);
    assert!(body.windows(10).any(|w| w == &v2[5..15]));

    // The delta is made from the bucket and stored in it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let delta = loop {
        if let Some(d) = show(&client, &id2)["deltas"]
            .as_array()
            .and_then(|d| d.first())
        {
            break d.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no delta to {id2}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let keys = s3.keys();
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("deltas/{}/", sha_hex(&v2)))),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("deltas/records/")));
    assert!(!data.join("deltas").exists());
    let (status, headers, body) = curl(&data, &[], &format!("{uri}?from={}", sha_hex(&v1)));
    assert_eq!(status, 200);
    assert_eq!(
        body.len() as u64,
        delta["size"].as_u64().unwrap(),
        "{headers}"
    );
    let delta_file = dir.path().join("fw.delta");
    std::fs::write(&delta_file, &body).unwrap();
    let rebuilt = dir.path().join("rebuilt");
    let base = dir.path().join("fw.bin-1.0.0");
    let out = dms(&[
        "delta",
        "apply",
        base.to_str().unwrap(),
        delta_file.to_str().unwrap(),
        rebuilt.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&rebuilt).unwrap() == v2);

    // A stand-alone repair server on the same catalog and bucket.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let blobs = s3.url();
    let _repair = spawn_with(
        &s3,
        &[
            "repair-serve",
            "--data",
            data_s,
            "--listen",
            &listen,
            "--blobs",
            &blobs,
        ],
    );
    let repair_uri = uri.replace(&server, &format!("https://127.0.0.1:{port}"));
    wait_until("dms repair-serve --blobs", || {
        Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "--cacert"])
            .arg(data.join("tls/cert.pem"))
            .arg(&repair_uri)
            .status()
            .unwrap()
            .success()
    });
    let (status, _, body) = curl(&data, &["-r", "1500000-"], &repair_uri);
    assert_eq!(status, 206);
    assert!(body == v2[1_500_000..]);

    // A session broadcast from the bucket: one device drops 30 % and
    // repairs symbols from the origin, one holding 1.0.0 gets the delta.
    let key = data.join("origin.pub");
    let cacert = data.join("tls/cert.pem");
    let device = |out: &Path, extra: &[&str]| {
        receive(
            GROUP,
            out,
            &[
                "--count",
                "1",
                "--timeout",
                "90",
                "--idle",
                "2",
                "--drop",
                "30",
            ],
        )
        .args(extra)
        .args(["--origin-key", key.to_str().unwrap()])
        .args(["--cacert", cacert.to_str().unwrap()])
        .env("RUST_LOG", "warn,dms_peer::agent=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let repair_service = format!("{server}/repair");
    let out_repair = dir.path().join("out-repair");
    let out_delta = dir.path().join("out-delta");
    let by_symbols = device(&out_repair, &["--repair", &repair_service]);
    let by_delta = device(
        &out_delta,
        &[
            "--base",
            base.to_str().unwrap(),
            "--repair",
            &format!("{server}/no-such-service/repair"),
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    start_session(&client, &id2, GROUP, &["--rate", "20", "--repair", "0"]);
    let output = by_symbols.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "dms receive: {log}");
    assert!(std::fs::read(out_repair.join("fw.bin")).unwrap() == v2);
    let repaired: u64 = log
        .lines()
        .find_map(|l| {
            l.split_once("bytes by source: ")?
                .1
                .split(" repair ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no bytes line: {log}"));
    // Symbols, not the whole object again.
    assert!(repaired > 0 && repaired < v2.len() as u64, "{log}");
    let output = by_delta.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "dms receive --base: {log}");
    assert!(log.contains("delta applied (unicast)"), "{log}");
    assert!(std::fs::read(out_delta.join("fw.bin")).unwrap() == v2);
    let _ = id1;
}

#[test]
fn sigkill_during_an_s3_upload_leaves_catalog_and_bucket_consistent_and_gc_cleans() {
    let Some(s3) = S3::from_env("s3-kill") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let kept = bytes(300_000, 3);
    let big = bytes(40_000_000, 4);
    let big_file = dir.path().join("big");
    std::fs::write(&big_file, &big).unwrap();
    let kept_id;
    {
        let (origin, server) = start_origin(&s3, &data);
        let client = ["--server", server.as_str(), "--data", data_s];
        kept_id = publish(dir.path(), &client, "kept.bin", "1", &kept);
        // 40 MB at 4 MB/s: parts reach the bucket, the upload is far
        // from done when the origin is killed.
        let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
        let upload = Command::new("curl")
            .args(["-sS", "--limit-rate", "4M", "--cacert"])
            .arg(data.join("tls/cert.pem"))
            .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
            .args(["--data-binary", &format!("@{}", big_file.display())])
            .arg(format!("{server}/v1/objects?name=big.bin&version=1"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until the origin has sent at least one part to the store.
        std::thread::sleep(Duration::from_secs(4));
        drop(origin); // SIGKILL
        let out = upload.wait_with_output().unwrap();
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("\"id\""),
            "the upload finished before the kill"
        );
    }
    // What a crash between the copy to the hash and the catalog commit
    // leaves: a blob no row references.
    let orphan = bytes(1000, 5);
    let orphan_sha = sha_hex(&orphan);
    s3.put(&format!("blobs/{}/{orphan_sha}", &orphan_sha[..2]), orphan);

    // The cut upload left nothing visible: only the kept blob and the orphan.
    let keys = s3.keys();
    assert_eq!(
        blob_hashes(&keys),
        BTreeSet::from([sha_hex(&kept), orphan_sha.clone()]),
        "{keys:?}"
    );
    assert!(!blob_hashes(&keys).contains(&sha_hex(&big)));

    let blobs = s3.url();
    let out = Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["gc", "--data", data_s, "--blobs", &blobs, "--min-age", "0"])
        .envs(s3.envs())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("1 unreferenced blobs removed"), "{said}");
    let keys = s3.keys();
    assert_eq!(
        blob_hashes(&keys),
        BTreeSet::from([sha_hex(&kept)]),
        "{keys:?}"
    );
    assert!(keys.iter().all(|k| !k.starts_with("tmp/")), "{keys:?}");

    // An offline scrub (no --blobs: DATA/blobs_url names the bucket)
    // re-hashes the kept object from the bucket and finds it whole.
    let out = Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["scrub", "--data", data_s])
        .envs(s3.envs())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("1 objects") && said.contains("0 damaged"),
        "{said}"
    );

    // Restarted: the catalog lists the kept object only, and serves it.
    let (_origin, server) = start_origin(&s3, &data);
    let client = ["--server", server.as_str(), "--data", data_s];
    let list = json(&dms(&[&["objects", "list"][..], &client].concat()));
    let names: Vec<&str> = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["kept.bin"]);
    let (status, _, body) = curl(&data, &[], show(&client, &kept_id)["uri"].as_str().unwrap());
    assert_eq!(status, 200);
    assert!(body == kept);
}

/// Our own S3 server process on `port`, with the bucket made.
fn start_s3_server(command: &str, port: u16, bucket: &str) -> Kill {
    let server = Kill(
        Command::new(command)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/{bucket}");
    wait_until("the S3 server", || {
        Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "-X", "PUT", &url])
            .status()
            .unwrap()
            .success()
    });
    server
}

#[test]
fn s3_going_away_answers_503_and_the_origin_recovers_when_it_returns() {
    let Ok(command) = std::env::var("DMS_TEST_S3_SERVER") else {
        skip_or_fail("s3-outage", "DMS_TEST_S3_SERVER");
        return;
    };
    let port = free_port();
    let s3 = S3 {
        endpoint: format!("http://127.0.0.1:{port}"),
        bucket: "dms-outage".into(),
        prefix: "site".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let s3_server = start_s3_server(&command, port, &s3.bucket);
    let (_origin, server) = start_origin(&s3, &data);
    let client = ["--server", server.as_str(), "--data", data_s];
    let first = bytes(200_000, 8);
    let id = publish(dir.path(), &client, "fw.bin", "1", &first);
    let uri = show(&client, &id)["uri"].as_str().unwrap().to_owned();
    let (status, _, body) = curl(&data, &[], &format!("{server}/readyz"));
    assert_eq!(
        (status, body.as_slice()),
        (200, &br#"{"status":"ready"}"#[..])
    );

    // A slow upload is in flight when the store goes away.
    let big = bytes(30_000_000, 9);
    let big_file = dir.path().join("big");
    std::fs::write(&big_file, &big).unwrap();
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let upload = Command::new("curl")
        .args([
            "-sS",
            "--limit-rate",
            "4M",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(data.join("tls/cert.pem"))
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .args(["--data-binary", &format!("@{}", big_file.display())])
        .arg(format!("{server}/v1/objects?name=big.bin&version=1"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    drop(s3_server); // the S3 server process is killed

    let (status, headers, body) = curl(&data, &[], &format!("{server}/readyz"));
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(headers.contains("retry-after: "), "{headers}");
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("unavailable"),
        "{error}"
    );
    let (status, _, _) = curl(&data, &[], &format!("{server}/healthz"));
    assert_eq!(status, 200);
    let (status, headers, body) = curl(&data, &[], &uri);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(headers.contains("retry-after: "), "{headers}");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["error"].is_string());

    let out = upload.wait_with_output().unwrap();
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(answer.ends_with("503"), "the cut upload answered {answer}");
    let list = json(&dms(&[&["objects", "list"][..], &client].concat()));
    assert_eq!(list["objects"].as_array().unwrap().len(), 1, "{list}");

    // The store comes back (empty: this server keeps its objects in
    // memory); the origin, not restarted, is ready again and publishes.
    let _s3_server = start_s3_server(&command, port, &s3.bucket);
    wait_until("/readyz to answer 200 again", || {
        curl(&data, &[], &format!("{server}/readyz")).0 == 200
    });
    let again = bytes(500_000, 10);
    let id2 = publish(dir.path(), &client, "fw.bin", "2", &again);
    let (status, _, body) = curl(&data, &[], show(&client, &id2)["uri"].as_str().unwrap());
    assert_eq!(status, 200);
    assert!(body == again);
    assert!(blob_hashes(&s3.keys()).contains(&sha_hex(&again)));
}
