//! Every early rejection — the server answers before it has read the
//! request body — reaches curl (a client we did not write) as its status
//! and JSON error body, over HTTP/2 (by ALPN) and over HTTP/1.1, with
//! bodies of 3 MB and of 80 MB (past the server's drain budget, so the
//! server stops reading and the answer must still arrive), sized and
//! streamed: 401 (no token), 403 (read-only token), 413 (quota; report too
//! large), 415 (not JSON), 429 (repair rate), 507 (no disk space).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::path::Path;
use std::process::{Command, Stdio};

use binary::{Kill, start_origin_with};

const READ_ONLY_TOKEN: &str = "read-only-token-0123456789";

/// What curl saw: its exit code, the status and the body.
struct Seen {
    exit: i32,
    status: u16,
    body: String,
    retry_after: bool,
}

/// How the body goes out.
#[derive(Clone, Copy, Debug)]
enum Send {
    /// `--data-binary @FILE` (Content-Length).
    Sized,
    /// `-T -` from a pipe (no length: chunked over HTTP/1.1).
    Streamed,
}

#[allow(clippy::too_many_arguments)] // a curl command line, spelled out
fn curl(
    protocol: &str,
    method: &str,
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: &Path,
    send: Send,
) -> Seen {
    let mut command = Command::new("curl");
    command
        .args(["-sk", protocol, "-X", method, url])
        .args(["-H", &format!("Content-Type: {content_type}")])
        .args(["-D", "-", "-w", "\n%{http_code}"]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = match send {
        Send::Sized => command
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .output()
            .unwrap(),
        Send::Streamed => {
            command
                .args(["-T", "-"])
                .stdin(std::fs::File::open(body).unwrap())
                .stdout(Stdio::piped());
            command.output().unwrap()
        }
    };
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (rest, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    // Headers (of the final answer: after any 100 Continue) then the body.
    let (headers, body) = rest.rsplit_once("\r\n\r\n").unwrap_or(("", rest));
    Seen {
        exit: output.status.code().unwrap_or(-1),
        status: status.trim().parse().unwrap_or(0),
        body: body.to_owned(),
        retry_after: headers.to_ascii_lowercase().contains("retry-after:"),
    }
}

fn assert_json_error(seen: &Seen, status: u16, what: &str) {
    assert_eq!(seen.exit, 0, "{what}: curl exit code (92: stream reset)");
    assert_eq!(seen.status, status, "{what}: body {:?}", seen.body);
    let json: serde_json::Value = serde_json::from_str(&seen.body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {:?}", seen.body));
    assert!(
        json["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {json}"
    );
}

fn write_config(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn token(data: &Path) -> String {
    std::fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_owned()
}

fn curl_is_there() -> bool {
    if Command::new("curl").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("DMS_TEST_REQUIRE_SERVICES").is_none(),
        "curl is required (DMS_TEST_REQUIRE_SERVICES is set)"
    );
    eprintln!("curl not installed: early-answer test skipped");
    false
}

#[test]
fn early_rejections_reach_curl_over_http2_and_http1() {
    if !curl_is_there() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("3MB.bin");
    let large = dir.path().join("80MB.bin");
    std::fs::write(&small, vec![7u8; 3_000_000]).unwrap();
    std::fs::write(&large, vec![9u8; 80_000_000]).unwrap();

    // One origin with a 1 MB quota and a read-only token; one whose disk
    // reserve cannot be met (every upload: 507).
    let quota_config = write_config(
        dir.path(),
        "quota.toml",
        &format!(
            "quota_bytes = 1_000_000\n[[tokens]]\nname = \"ro\"\ntoken = \"{READ_ONLY_TOKEN}\"\nscope = \"read-only\"\n"
        ),
    );
    let full_config = write_config(
        dir.path(),
        "full.toml",
        "min_free_bytes = 1_000_000_000_000_000_000\n",
    );
    let quota_data = dir.path().join("quota");
    let full_data = dir.path().join("full");
    let (_quota, quota_url): (Kill, String) =
        start_origin_with(&quota_data, &["--config", &quota_config]);
    let (_full, full_url): (Kill, String) =
        start_origin_with(&full_data, &["--config", &full_config]);
    let admin = token(&quota_data);
    let full_admin = token(&full_data);
    let upload = |base: &str| format!("{base}/v1/objects?name=fw&version=1&kind=firmware");

    let octets = "application/octet-stream";
    // (what, url, token, Content-Type, status)
    let cases: [(&str, String, Option<&str>, &str, u16); 6] = [
        ("no token", upload(&quota_url), None, octets, 401),
        (
            "read-only token",
            upload(&quota_url),
            Some(READ_ONLY_TOKEN),
            octets,
            403,
        ),
        ("over quota", upload(&quota_url), Some(&admin), octets, 413),
        (
            "report too large",
            format!("{quota_url}/report"),
            None,
            "application/json",
            413,
        ),
        (
            "not JSON",
            format!("{quota_url}/v1/sessions"),
            Some(&admin),
            octets,
            415,
        ),
        (
            "disk full",
            upload(&full_url),
            Some(&full_admin),
            octets,
            507,
        ),
    ];
    for protocol in ["--http2", "--http1.1"] {
        for body in [&small, &large] {
            for send in [Send::Sized, Send::Streamed] {
                for (what, url, token, content_type, status) in &cases {
                    let seen = curl(protocol, "POST", url, *token, content_type, body, send);
                    let what = format!("{what} {protocol} {} {send:?}", body.display());
                    assert_json_error(&seen, *status, &what);
                }
            }
        }
        // 429: the repair service's per-client rate (burst 20, 10/s) runs
        // out within a bounded number of requests.
        let mut limited = None;
        for _ in 0..200 {
            let seen = curl(
                protocol,
                "POST",
                &format!("{quota_url}/repair"),
                None,
                "application/x-www-form-urlencoded",
                &small,
                Send::Sized,
            );
            if seen.status == 429 {
                limited = Some(seen);
                break;
            }
        }
        let seen = limited.unwrap_or_else(|| panic!("{protocol}: no 429 in 200 requests"));
        assert_json_error(&seen, 429, &format!("repair rate {protocol}"));
        assert!(seen.retry_after, "429 without Retry-After");
        // Let the bucket refill before the other protocol's round.
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
    // Nothing of the refused uploads was kept.
    for data in [&quota_data, &full_data] {
        let tmp = std::fs::read_dir(data.join("blobs/tmp")).unwrap().count();
        assert_eq!(tmp, 0, "temporary upload files left in {}", data.display());
    }
}
