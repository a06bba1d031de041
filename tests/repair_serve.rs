//! The repair service as operators run it: mounted in `dms serve`, and
//! alone as `dms repair-serve` on the same data directory while the origin
//! runs. Driven with curl (an HTTP client we did not write) over TLS,
//! trusting the origin's generated certificate.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::path::Path;
use std::process::Command;

use dms_fec::FecScheme;
use dms_repair::container::ContainerReader;

use binary::{dms, free_port, spawn, start_origin, wait_until};

/// Runs curl with the origin's CA; returns (HTTP status, body).
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
fn ranges_symbols_and_reports_from_the_origin_and_a_standalone_repair_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (_origin, origin_url) = start_origin(&data);
    let client = ["--server", origin_url.as_str(), "--data", data_s];

    // Three blocks' worth of bytes that differ everywhere.
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = dir.path().join("fw.bin");
    std::fs::write(&file, &bytes).unwrap();
    let out = dms(&[
        &[
            "publish",
            file.to_str().unwrap(),
            "--name",
            "fw.bin",
            "--version",
            "1.0.0",
        ][..],
        &client[..],
    ]
    .concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let uri = object["uri"].as_str().unwrap().to_owned();
    let location = object["content_location"].as_str().unwrap().to_owned();
    let id = object["id"].as_str().unwrap().to_owned();
    let symbol_size = u16::try_from(object["fec"]["symbol_size"].as_u64().unwrap()).unwrap();
    assert_eq!(object["fec"]["encoding_id"], 6);
    let cacert = data.join("tls/cert.pem");

    // The origin serves ranges of the object at its uri.
    let (status, body) = curl(&cacert, &["-r", "1000-1999"], &uri);
    assert_eq!(status, 206);
    assert_eq!(body, &bytes[1000..2000]);

    // A repair server beside it, on the same data directory.
    let repair_port = free_port();
    let repair_url = format!("https://127.0.0.1:{repair_port}");
    let _repair = spawn(&[
        "repair-serve",
        "--data",
        data_s,
        "--listen",
        &format!("127.0.0.1:{repair_port}"),
        "--encoder-cache",
        "8MiB",
    ]);
    let path = uri.split_once(&origin_url).unwrap().1.to_owned();
    wait_until("dms repair-serve", || {
        Command::new("curl")
            .args([
                "-sf",
                "-o",
                "/dev/null",
                "--cacert",
                cacert.to_str().unwrap(),
            ])
            .arg(format!("{repair_url}{path}"))
            .status()
            .unwrap()
            .success()
    });
    let (status, body) = curl(&cacert, &[], &format!("{repair_url}{path}"));
    assert_eq!(status, 200);
    assert!(body == bytes, "whole download differs");

    // Source symbols by ESI: the object's bytes at T * ESI.
    let t = usize::from(symbol_size);
    let file_uri = format!("fileURI={location}");
    let (status, body) = curl(
        &cacert,
        &["-G", "--data-urlencode", &file_uri, "-d", "SBN=0;ESI=2-4,7"],
        &format!("{repair_url}/repair"),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let symbols: Vec<_> = ContainerReader::new(&body, FecScheme::RaptorQ, symbol_size)
        .map(Result::unwrap)
        .map(|(id, s)| (id.sbn, id.esi, s.to_vec()))
        .collect();
    let esis: Vec<u32> = symbols.iter().map(|s| s.1).collect();
    assert_eq!(esis, [2, 3, 4, 7]);
    for (sbn, esi, symbol) in symbols {
        assert_eq!(sbn, 0);
        let at = esi as usize * t;
        assert_eq!(symbol, &bytes[at..at + t]);
    }
    // An ESI block that does not exist is a 400 with a JSON error.
    let (status, body) = curl(
        &cacert,
        &["-G", "--data-urlencode", &file_uri, "-d", "SBN=200"],
        &format!("{repair_url}/repair"),
    );
    assert_eq!(status, 400);
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(error["error"].is_string());

    // A reception report to the origin shows up in the summary.
    let report = serde_json::json!({
        "object": id, "device": "ue-1", "success": true,
        "bytes": {"broadcast": 2_900_000, "peers": 50_000, "repair": 50_000},
    })
    .to_string();
    let (status, _) = curl(
        &cacert,
        &[
            "-H",
            "content-type: application/json",
            "--data-binary",
            &report,
        ],
        object["report_uri"].as_str().unwrap(),
    );
    assert!((200..300).contains(&status), "report: {status}");
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let (status, body) = curl(
        &cacert,
        &["-H", &format!("authorization: Bearer {}", token.trim())],
        &format!("{origin_url}/v1/reports?object={id}"),
    );
    assert_eq!(status, 200);
    let summary: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(summary["devices"], 1);
    assert_eq!(summary["bytes"]["repair"], 50_000);
    // ... and the summary needs a token.
    let (status, _) = curl(
        &cacert,
        &[],
        &format!("{origin_url}/v1/reports?object={id}"),
    );
    assert_eq!(status, 401);
}
