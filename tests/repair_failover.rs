//! A UE given four repair servers — a `dms repair-serve` that was killed,
//! a real HTTP server that answers 503, one that accepts connections and
//! never answers, and the origin — fails over from each dead one to the
//! next, completes from the origin, and says so in its reception report:
//! which URL failed, why, which served; the origin shows it in
//! `/v1/reports`. The order of tries is drawn from `--seed`, so the test
//! places the servers where that seed's first order tries the three dead
//! ones before the live one.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use binary::{
    dms, free_port, json, publish_pattern, receive, spawn, start_origin, start_session, wait_until,
};
use dms_repair::client::failover::{Plan, RepairServers};

const GROUP: &str = "239.255.77.3:47711";
const SEED: u64 = 11;

/// A real HTTP/1.1 server on loopback that answers every request 503
/// (with a `Retry-After`), in a thread of its own; returns its address.
fn busy_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || answer_503(&mut stream));
        }
    });
    format!("http://{addr}/repair")
}

/// Reads one request's head (at most 64 KiB) and answers 503.
fn answer_503(stream: &mut TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 << 10 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let body = br#"{"error":"busy"}"#;
    let _ = write!(
        stream,
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(body);
}

/// A server that accepts connections and never answers (holds them open).
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    format!("http://{addr}/repair")
}

fn curl(cacert: &Path, extra: &[&str], url: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--cacert", cacert.to_str().unwrap()])
        .args(["-w", "\n%{http_code}"])
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
    (status, body)
}

#[test]
fn a_ue_fails_over_from_dead_busy_and_silent_repair_servers_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (_origin, origin_url) = start_origin(&data);
    let client = ["--server", origin_url.as_str(), "--data", data_s];
    let cacert = data.join("tls/cert.pem");
    let (bytes, id) = publish_pattern(dir.path(), &client, "fw.bin", "1.0.0", 1_600_000, 11);

    // A stand-alone repair server that answered, then was killed.
    let port = free_port();
    let killed_url = format!("https://127.0.0.1:{port}/repair");
    let mut repair = spawn(&[
        "repair-serve",
        "--data",
        data_s,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    wait_until("dms repair-serve", || {
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "--cacert",
                cacert.to_str().unwrap(),
            ])
            .arg(&killed_url)
            .status()
            .unwrap()
            .success()
    });
    repair.0.kill().unwrap();
    repair.0.wait().unwrap();
    let busy_url = busy_server();
    let silent_url = silent_server();
    let live_url = format!("{origin_url}/repair");

    // Where the seed's first order tries dead, busy, silent, then live.
    let Plan::Try(order) = RepairServers::new(4, SEED).plan(Instant::now()) else {
        panic!("four servers give an order");
    };
    let mut servers = vec![String::new(); 4];
    for (slot, url) in order
        .iter()
        .zip([&killed_url, &busy_url, &silent_url, &live_url])
    {
        servers[*slot] = url.clone();
    }

    let out = dir.path().join("out");
    let state = dir.path().join("state");
    let key = data.join("origin.pub");
    let mut ue = receive(
        GROUP,
        &out,
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
    );
    for url in &servers {
        ue.args(["--repair", url]);
    }
    let ue = ue
        .args(["--seed", &SEED.to_string(), "--http-timeout", "3"])
        .args(["--report", &format!("{origin_url}/report")])
        .args([
            "--state",
            state.to_str().unwrap(),
            "--device",
            "ue-failover",
        ])
        .args(["--origin-key", key.to_str().unwrap()])
        .args(["--cacert", cacert.to_str().unwrap()])
        .env("RUST_LOG", "warn,dms_peer::agent=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // No repair symbols in the broadcast: the 30 % dropped must be repaired.
    start_session(&client, &id, GROUP, &["--rate", "20", "--repair", "0"]);
    let output = ue.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "dms receive: {log}");
    assert!(std::fs::read(out.join("fw.bin")).unwrap() == bytes, "{log}");
    assert!(log.contains("repair failover"), "{log}");

    // The report kept in the state directory names each failover.
    let report_file = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("report-")
        })
        .unwrap_or_else(|| panic!("no report in {}", state.display()));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(report["success"], true, "{report}");
    let failovers = report["repair_failovers"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"));
    let named = |url: &str, reason: &str| {
        failovers.iter().any(|f| {
            f["failed"] == url && f["reason"] == reason && f["served_by"] == live_url.as_str()
        })
    };
    assert!(named(&killed_url, "connect"), "{report}");
    assert!(named(&busy_url, "http_503"), "{report}");
    assert!(named(&silent_url, "timeout"), "{report}");
    assert!(
        failovers.iter().all(|f| f["failed"] != live_url.as_str()),
        "{report}"
    );
    assert!(
        failovers.iter().all(|f| f["detail"].is_string()),
        "{report}"
    );

    // The origin stored it: /v1/reports sums the failovers by server and
    // reason. The report is posted once repair is done; wait for it.
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let auth = format!("authorization: Bearer {}", token.trim());
    let summary_url = format!("{origin_url}/v1/reports?object={id}");
    let summary = |cacert: &Path| -> serde_json::Value {
        let (status, body) = curl(cacert, &["-H", &auth], &summary_url);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut s = summary(&cacert);
    while s["failed_over"] != 1 {
        assert!(Instant::now() < deadline, "no failover in {s}");
        std::thread::sleep(Duration::from_millis(200));
        s = summary(&cacert);
    }
    assert!(
        s["failed_repair_servers"][&killed_url]["connect"].as_u64() >= Some(1),
        "{s}"
    );
    assert!(
        s["failed_repair_servers"][&busy_url]["http_503"].as_u64() >= Some(1),
        "{s}"
    );
    assert!(
        s["failed_repair_servers"][&silent_url]["timeout"].as_u64() >= Some(1),
        "{s}"
    );
    assert!(
        s["failover_served_by"][&live_url].as_u64() >= Some(3),
        "{s}"
    );

    // The 3GPP XML form carries them too (our namespace's attributes on
    // the StaR fileURI): another device's report adds to the summary.
    let location =
        json(&dms(&[&["objects", "show", &id][..], &client[..]].concat()))["content_location"]
            .as_str()
            .unwrap()
            .to_owned();
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<receptionReport xmlns="urn:3gpp:metadata:2008:MBMS:receptionreport" xmlns:dms="urn:dms:receptionreport:2026">
  <statisticalReport sessionType="download" clientId="ue-xml">
    <fileURI receptionSuccess="1" dms:repairFailed="{killed_url}" dms:repairFailReason="connect" dms:repairServedBy="{live_url}">{location}</fileURI>
  </statisticalReport>
</receptionReport>"#
    );
    let (status, body) = curl(
        &cacert,
        &[
            "-H",
            "content-type: application/mbms-reception-report+xml",
            "--data-binary",
            &xml,
        ],
        &format!("{origin_url}/report"),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let s = summary(&cacert);
    assert_eq!(s["failed_over"], 2, "{s}");
    assert!(
        s["failed_repair_servers"][&killed_url]["connect"].as_u64() >= Some(2),
        "{s}"
    );
}
