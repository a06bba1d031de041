//! Slow and hostile HTTP clients against a real `dms serve` with short
//! `[http]` time-outs and a connection cap: a slowloris (headers one byte
//! a second), a request body that stalls, and 10 000 idle connections (or
//! as many as the open-file limit allows, said on stderr). The server sheds
//! each by its time-outs and caps, and a normal client is served meanwhile.
//! Outcomes only: connections closed by the server, a 408, requests that
//! succeed; no elapsed time is asserted.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The idle connections the test opens, at most.
const IDLE_CONNECTIONS: u64 = 10_000;
/// The server's cap: below the idle flood, so the cap is what sheds first.
const MAX_CONNECTIONS: usize = 2_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Raises the open-file limit to the hard limit (the server inherits it);
/// returns the soft limit now.
fn raise_open_files() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

fn spawn_server(data: &Path, config: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["serve", "--insecure-http", "--data"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_ready(data: &Path, base: &str) -> (reqwest::Client, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    // Plain HTTP, but reqwest wants a TLS provider chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A new connection per request: a pooled idle one is what the cap
    // rightly sheds first.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    loop {
        assert!(Instant::now() < deadline, "server did not start");
        if let Ok(token) = std::fs::read_to_string(data.join("admin.token"))
            && let Ok(r) = client
                .get(format!("{base}/v1/objects"))
                .bearer_auth(token.trim())
                .send()
                .await
            && r.status().is_success()
        {
            return (client, token.trim().to_owned());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A normal request on a new connection succeeds.
async fn normal_request_succeeds(client: &reqwest::Client, base: &str, token: &str) {
    let r = client
        .get(format!("{base}/v1/objects"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "normal request: {}", r.status());
}

/// Reads until the server closes; returns what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

async fn metric(client: &reqwest::Client, base: &str, token: &str, line: &str) -> u64 {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{line} ")))
        .unwrap_or_else(|| panic!("no {line} in metrics"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sheds_slow_and_idle_clients_and_keeps_serving() {
    let open_files = raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("dms.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nheader_timeout_secs = 2\nbody_timeout_secs = 2\nidle_timeout_secs = 3\n\
             handshake_timeout_secs = 2\nmax_connections = {MAX_CONNECTIONS}\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let addr = format!("127.0.0.1:{port}");
    let mut server = spawn_server(&data, &config, port);
    let (client, token) = wait_ready(&data, &base).await;

    // Slowloris: headers one byte a second. The server closes the
    // connection (with a 408 or without a word) long before they end.
    let headers = format!(
        "GET /v1/objects HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         X-Padding: {}\r\n\r\n",
        "p".repeat(100)
    );
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    let mut sent = 0;
    let mut closed = false;
    for byte in headers.as_bytes() {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        sent += 1;
        // A closed connection reads EOF at once; an open one times out here.
        let mut probe = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), slow.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                let answer = String::from_utf8_lossy(&probe[..n]).into_owned();
                assert!(answer.starts_with("HTTP/1.1 408"), "slowloris got {answer}");
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(
        closed && sent < headers.len(),
        "slowloris: the server let all {sent} header bytes in"
    );
    normal_request_succeeds(&client, &base, &token).await;

    // A body that stalls: 408 with a JSON error, nothing stored, no temp file.
    let mut stall = TcpStream::connect(&addr).await.unwrap();
    stall
        .write_all(
            format!(
                "POST /v1/objects?name=stalled.bin&version=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Authorization: Bearer {token}\r\nContent-Length: 1000000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stall.write_all(&[7u8; 4096]).await.unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(&mut stall).await).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "stalled body got {answer:?}"
    );
    assert!(answer.contains("\"error\""), "{answer}");
    normal_request_succeeds(&client, &base, &token).await;
    let listed: serde_json::Value = client
        .get(format!("{base}/v1/objects?name=stalled.bin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["total"], 0, "{listed}");
    // The temp blob goes with the upload task (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(data.join("blobs/tmp")).unwrap().count() != 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled upload's temp file stayed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Many idle connections: as many as our open-file limit allows.
    let idle_target = IDLE_CONNECTIONS.min(open_files.saturating_sub(200));
    if idle_target < IDLE_CONNECTIONS {
        eprintln!(
            "open-file limit {open_files}: {idle_target} idle connections instead of {IDLE_CONNECTIONS}"
        );
    }
    let mut idle = Vec::new();
    for _ in 0..idle_target {
        match TcpStream::connect(&addr).await {
            Ok(s) => idle.push(s),
            Err(e) => {
                eprintln!("connect failed after {} idle connections: {e}", idle.len());
                break;
            }
        }
    }
    let opened = idle.len();
    eprintln!("{opened} idle connections open (server cap {MAX_CONNECTIONS})");
    assert!(opened as u64 >= idle_target.min(MAX_CONNECTIONS as u64 * 2));
    // Served while the flood holds every slot: the cap sheds the
    // longest-idle connection for a newcomer.
    for _ in 0..5 {
        normal_request_succeeds(&client, &base, &token).await;
    }
    // Every idle connection is closed by the server (the cap, or the
    // header time-out of the ones admitted). Bounded by the test harness.
    let waits: Vec<_> = idle
        .into_iter()
        .map(|mut s| tokio::spawn(async move { read_to_close(&mut s).await.len() }))
        .collect();
    for w in waits {
        w.await.unwrap();
    }
    normal_request_succeeds(&client, &base, &token).await;
    let closed_line = "dms_http_connections_closed_total{reason=";
    let for_room = metric(
        &client,
        &base,
        &token,
        &format!("{closed_line}\"for_room\"}}"),
    )
    .await;
    let refused = metric(
        &client,
        &base,
        &token,
        &format!("{closed_line}\"refused\"}}"),
    )
    .await;
    let header = metric(
        &client,
        &base,
        &token,
        &format!("{closed_line}\"header_timeout\"}}"),
    )
    .await;
    let body = metric(
        &client,
        &base,
        &token,
        &format!("{closed_line}\"body_timeout\"}}"),
    )
    .await;
    let idle_shed = metric(&client, &base, &token, &format!("{closed_line}\"idle\"}}")).await;
    eprintln!(
        "closed by the server: {for_room} for room, {refused} refused, {idle_shed} idle, {header} header time-outs, {body} body time-outs"
    );
    assert!(for_room + refused > 0, "the cap never shed a connection");
    assert!(header > 0, "no header time-out counted");
    assert!(body > 0, "no body time-out counted");
    server.kill().unwrap();
    server.wait().unwrap();
}
