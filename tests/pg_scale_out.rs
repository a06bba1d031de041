//! Several `dms serve` instances and a `dms repair-serve` without a data
//! directory on one PostgreSQL catalog (`.ci/setup.d/65-postgres.sh`:
//! DMS_TEST_POSTGRES_{URL,BIN,CTL}) and one S3 bucket
//! (`.ci/setup.d/60-s3.sh`: DMS_TEST_S3_{ENDPOINT,BUCKET}); and the
//! catalog stopped for a while under a running origin.
//!
//! The outage test stops the one PostgreSQL server the tests share, so
//! the tests of this file take turns (a lock); cargo runs test binaries
//! one after another, so no other file's test sees the outage.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use binary::{Kill, free_port, json, wait_until};
use dms_fec::FecScheme;
use dms_repair::container::ContainerReader;
use dms_repair::manifest::{SignedManifest, public_key_from_pem};
use sha2::Digest;

/// The tests of this file one at a time (one stops the shared server).
static SERIAL: Mutex<()> = Mutex::new(());

fn require(test: &str, what: &str) {
    if std::env::var("DMS_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{test}: {what} unset and DMS_TEST_REQUIRE_SERVICES=1 (run .ci/setup.d/)");
    }
    eprintln!("{test}: skipped: {what} unset (source .ci/setup.d/65-postgres.sh, 60-s3.sh)");
}

/// Runs `sql` with psql on `url`.
fn psql(url: &str, sql: &str) -> String {
    let bin = std::env::var("DMS_TEST_POSTGRES_BIN")
        .map(|b| format!("{b}/psql"))
        .unwrap_or_else(|_| "psql".into());
    let out = Command::new(bin)
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A new, empty database on the test server; `None` when there is none.
fn fresh_database(test: &str) -> Option<String> {
    let Ok(url) = std::env::var("DMS_TEST_POSTGRES_URL") else {
        require(test, "DMS_TEST_POSTGRES_URL");
        return None;
    };
    let name = format!("dms_{}_{}", test.replace('-', "_"), std::process::id());
    psql(&url, &format!("CREATE DATABASE {name}"));
    let (base, _) = url.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

/// The S3 bucket from the environment, with a prefix of this test's own;
/// the AWS_* variables a dms process needs.
fn bucket(test: &str) -> Option<(String, Vec<(&'static str, String)>)> {
    let endpoint = std::env::var("DMS_TEST_S3_ENDPOINT").ok();
    let bucket = std::env::var("DMS_TEST_S3_BUCKET").ok();
    let Some((endpoint, bucket)) = endpoint.zip(bucket) else {
        require(test, "DMS_TEST_S3_ENDPOINT/DMS_TEST_S3_BUCKET");
        return None;
    };
    let envs = vec![
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "dms-test".into()),
        ("AWS_SECRET_ACCESS_KEY", "dms-test-secret".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ];
    Some((format!("s3://{bucket}/{test}-{}", std::process::id()), envs))
}

/// `dms ARGS` with `envs`, to completion.
fn dms_with(envs: &[(&str, String)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

/// `dms ARGS` with `envs` in the background.
fn spawn_with(envs: &[(&str, String)], args: &[&str]) -> Kill {
    Kill(
        Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(args)
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// `dms serve --data DATA --catalog CATALOG EXTRA…` on a free port, once
/// it answers `token` (its certificate is then in DATA/tls).
fn start_origin(
    envs: &[(&str, String)],
    data: &Path,
    catalog: &str,
    extra: &[&str],
    token: impl Fn() -> String,
) -> (Kill, String) {
    let port = free_port();
    let data_s = data.to_str().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let serve = [
        "serve",
        "--data",
        data_s,
        "--listen",
        &listen,
        "--catalog",
        catalog,
    ];
    let server = spawn_with(envs, &[&serve[..], extra].concat());
    let url = format!("https://127.0.0.1:{port}");
    let cacert = data.join("tls/cert.pem");
    wait_until("dms serve --catalog postgres://…", || {
        cacert.exists()
            && dms_with(
                envs,
                &[
                    "session",
                    "list",
                    "--server",
                    &url,
                    "--token",
                    &token(),
                    "--cacert",
                    cacert.to_str().unwrap(),
                ],
            )
            .status
            .success()
    });
    (server, url)
}

/// curl trusting `cacert`, at most 30 s: (status, headers, body).
fn curl(cacert: &Path, extra: &[&str], url: &str) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "--cacert"])
        .arg(cacert)
        .args(["-D", headers.to_str().unwrap(), "-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {url} (no answer in 30 s?): {}",
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

fn token_of(data: &Path) -> String {
    std::fs::read_to_string(data.join("admin.token"))
        .map(|t| t.trim().to_owned())
        .unwrap_or_default()
}

/// `dms publish` of `data` as `name` `version` through `client`; the id.
fn publish(dir: &Path, client: &[&str], name: &str, version: &str, data: &[u8]) -> String {
    let file = dir.join(format!("{name}-{version}"));
    std::fs::write(&file, data).unwrap();
    let args = ["publish", file.to_str().unwrap(), "--name", name];
    let out = json(&dms_with(
        &[],
        &[&args[..], &["--version", version], client].concat(),
    ));
    out["id"].as_str().unwrap().to_owned()
}

fn object_ids(client: &[&str]) -> Vec<String> {
    let list = json(&dms_with(&[], &[&["objects", "list"][..], client].concat()));
    list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn two_origins_and_a_repair_server_share_one_catalog_and_bucket() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some((blobs, envs)) = bucket("pg-e2e") else {
        return;
    };
    let Some(catalog) = fresh_database("pg-e2e") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = dms_with(&[], &["keygen", "--data", keys.to_str().unwrap()]);
    assert!(out.status.success());
    let key_file = keys.join("origin.key");
    let public =
        public_key_from_pem(&std::fs::read_to_string(keys.join("origin.pub")).unwrap()).unwrap();
    let shared = [
        "--blobs",
        &blobs,
        "--signing-key",
        key_file.to_str().unwrap(),
    ];

    // The first instance makes the admin token; the second, on an empty
    // data directory, takes the catalog's and writes none of its own.
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    let (_a, url_a) = start_origin(&envs, &data_a, &catalog, &shared, || token_of(&data_a));
    let token = token_of(&data_a);
    assert!(!token.is_empty());
    let (_b, url_b) = start_origin(&envs, &data_b, &catalog, &shared, || token.clone());
    assert!(!data_b.join("admin.token").exists());
    let (cert_a, cert_b) = (data_a.join("tls/cert.pem"), data_b.join("tls/cert.pem"));
    let client_a = [
        "--server",
        &url_a,
        "--token",
        &token,
        "--cacert",
        cert_a.to_str().unwrap(),
    ];
    let client_b = [
        "--server",
        &url_b,
        "--token",
        &token,
        "--cacert",
        cert_b.to_str().unwrap(),
    ];

    // Published through A (two source blocks) …
    let content = bytes(1_600_000, 1);
    let id = publish(dir.path(), &client_a, "fw.bin", "1.0.0", &content);
    // … is listed, downloaded (whole and Range) and signed through B.
    let object = json(&dms_with(
        &[],
        &[&["objects", "show", &id][..], &client_b].concat(),
    ));
    let uri = object["uri"].as_str().unwrap();
    assert!(uri.starts_with(&url_b), "{uri}");
    let (status, _, body) = curl(&cert_b, &[], uri);
    assert_eq!(status, 200);
    assert!(body == content, "whole download through B differs");
    let (status, _, body) = curl(&cert_b, &["-r", "1000000-1099999"], uri);
    assert_eq!(status, 206);
    assert!(body == content[1_000_000..1_100_000]);
    let manifest_uri = object["manifest_uri"].as_str().unwrap();
    let (status, _, body) = curl(&cert_b, &[], manifest_uri);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let verified = SignedManifest::from_json(&body)
        .unwrap()
        .verify(&public)
        .expect("B signs with the shared --signing-key");
    let digest: [u8; 32] = sha2::Sha256::digest(&content).into();
    assert_eq!(
        (verified.id.as_str(), verified.size),
        (id.as_str(), 1_600_000)
    );
    assert_eq!(verified.sha256, digest);

    // Uploads through B with A's token; both list both; a wrong token
    // is refused by B.
    let second = bytes(300_000, 2);
    let id2 = publish(dir.path(), &client_b, "cfg.bin", "1", &second);
    assert_eq!(object_ids(&client_a), [id.clone(), id2.clone()]);
    assert_eq!(object_ids(&client_b), [id.clone(), id2.clone()]);
    let (status, _, body) = curl(
        &cert_b,
        &["-H", "Authorization: Bearer not-a-token"],
        &format!("{url_b}/v1/objects"),
    );
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));

    // A repair server with no data directory, on the catalog and bucket.
    let port = free_port();
    let repair_url = format!("https://127.0.0.1:{port}");
    let _repair = spawn_with(
        &envs,
        &[
            "repair-serve",
            "--catalog",
            &catalog,
            "--blobs",
            &blobs,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--tls-cert",
            cert_a.to_str().unwrap(),
            "--tls-key",
            data_a.join("tls/key.pem").to_str().unwrap(),
        ],
    );
    let path = uri.strip_prefix(&url_b).unwrap();
    wait_until("dms repair-serve --catalog postgres://…", || {
        Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "--cacert"])
            .arg(&cert_a)
            .arg(format!("{repair_url}{path}"))
            .status()
            .unwrap()
            .success()
    });
    let (status, _, body) = curl(&cert_a, &["-r", "1500000-"], &format!("{repair_url}{path}"));
    assert_eq!(status, 206);
    assert!(body == content[1_500_000..]);
    // Source symbols of block 1 by ESI.
    let symbol_size = u16::try_from(object["fec"]["symbol_size"].as_u64().unwrap()).unwrap();
    let location = object["content_location"].as_str().unwrap();
    let (status, _, body) = curl(
        &cert_a,
        &[
            "-G",
            "--data-urlencode",
            &format!("fileURI={location}"),
            "-d",
            "SBN=0;ESI=2-4",
        ],
        &format!("{repair_url}/repair"),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let t = usize::from(symbol_size);
    let symbols: Vec<_> = ContainerReader::new(&body, FecScheme::RaptorQ, symbol_size)
        .map(Result::unwrap)
        .map(|(id, s)| (id.sbn, id.esi, s.to_vec()))
        .collect();
    assert_eq!(symbols.len(), 3);
    for (sbn, esi, symbol) in symbols {
        assert_eq!(sbn, 0);
        let at = esi as usize * t;
        assert!(symbol == content[at..at + t], "symbol {esi}");
    }
}

/// How long the catalog stays stopped (DMS_TEST_OUTAGE_SECS, default 30).
fn outage() -> Duration {
    Duration::from_secs(
        std::env::var("DMS_TEST_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    )
}

/// `$DMS_TEST_POSTGRES_CTL ARGS` (pg_ctl on the test cluster).
fn pg_ctl(ctl: &str, args: &[&str]) {
    let out = Command::new(ctl).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "pg_ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the cluster again when the test ends however it ends.
struct Restart(String);

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = Command::new(&self.0).arg("start").output();
    }
}

/// A 503 with a `Retry-After` and a JSON `error`.
fn assert_unavailable(what: &str, (status, headers, body): &(u16, String, Vec<u8>)) {
    let text = String::from_utf8_lossy(body);
    assert_eq!(*status, 503, "{what}: {text}");
    assert!(headers.contains("retry-after: "), "{what}: {headers}");
    let error: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|_| {
        panic!("{what}: not JSON: {text}");
    });
    assert!(error["error"].is_string(), "{what}: {text}");
}

#[test]
fn the_catalog_stopped_answers_503_loses_nothing_and_the_origin_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Ok(ctl) = std::env::var("DMS_TEST_POSTGRES_CTL") else {
        require("pg-outage", "DMS_TEST_POSTGRES_CTL");
        return;
    };
    let Some(catalog) = fresh_database("pg-outage") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut origin, url) = start_origin(&[], &data, &catalog, &[], || token_of(&data));
    let token = token_of(&data);
    let cert = data.join("tls/cert.pem");
    let client = [
        "--server",
        &url,
        "--token",
        &token,
        "--cacert",
        cert.to_str().unwrap(),
    ];
    let first = bytes(400_000, 5);
    let id = publish(dir.path(), &client, "fw.bin", "1", &first);
    let object = json(&dms_with(
        &[],
        &[&["objects", "show", &id][..], &client].concat(),
    ));
    let uri = object["uri"].as_str().unwrap().to_owned();
    let auth = format!("Authorization: Bearer {token}");
    let (status, _, _) = curl(&cert, &[], &format!("{url}/readyz"));
    assert_eq!(status, 200);

    // An upload in flight when the catalog goes: 6 MB at 1 MB/s.
    let big = bytes(6_000_000, 6);
    let big_file = dir.path().join("big");
    std::fs::write(&big_file, &big).unwrap();
    let upload = Command::new("curl")
        .args(["-sS", "--max-time", "120", "--limit-rate", "1M"])
        .args(["-w", "\n%{http_code}", "--cacert"])
        .arg(&cert)
        .args(["-H", &auth])
        .args(["--data-binary", &format!("@{}", big_file.display())])
        .arg(format!("{url}/v1/objects?name=big.bin&version=1"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));

    pg_ctl(&ctl, &["stop", "-m", "fast"]);
    let restart = Restart(ctl.clone());
    let stopped = Instant::now();
    // Throughout the outage: prompt 503s with a JSON error, never a hang
    // (curl gives up after 30 s) or a 500.
    let mut rounds = 0;
    while rounds < 2 || stopped.elapsed() < outage() {
        rounds += 1;
        assert_unavailable("readyz", &curl(&cert, &[], &format!("{url}/readyz")));
        assert_unavailable(
            "list",
            &curl(&cert, &["-H", &auth], &format!("{url}/v1/objects")),
        );
        assert_unavailable(
            "upload",
            &curl(
                &cert,
                &["-H", &auth, "--data-binary", "small"],
                &format!("{url}/v1/objects?name=new.bin&version=1"),
            ),
        );
        let (status, headers, body) = curl(&cert, &[], &uri);
        match status {
            200 => assert!(body == first, "download during the outage differs"),
            _ => assert_unavailable("download", &(status, headers, body)),
        }
        assert!(origin.0.try_wait().unwrap().is_none(), "the origin exited");
        std::thread::sleep(Duration::from_secs(2));
    }
    // The upload cut by the outage failed with a 503 and no object.
    let out = upload.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    let (body, status) = said.rsplit_once('\n').unwrap();
    assert_eq!(status, "503", "{said}");
    assert!(!body.contains("\"id\""), "{said}");

    pg_ctl(&ctl, &["start"]);
    drop(restart);
    // The same process recovers by itself.
    wait_until("readyz after the catalog returned", || {
        curl(&cert, &[], &format!("{url}/readyz")).0 == 200
    });
    assert!(origin.0.try_wait().unwrap().is_none(), "the origin exited");
    assert_eq!(object_ids(&client), std::slice::from_ref(&id));
    let (status, _, body) = curl(&cert, &[], &uri);
    assert_eq!(status, 200);
    assert!(body == first);
    let again = publish(dir.path(), &client, "big.bin", "1", &big);
    assert_eq!(object_ids(&client), [id, again]);
    let _ = &mut origin;
}
