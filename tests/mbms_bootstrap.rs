//! A UE that bootstraps from the session descriptions: `dms serve` and a
//! separate `dms repair-serve`, `dms session start` scheduled a few
//! seconds ahead on loopback multicast with an APD naming only that
//! repair server and StaR reports, then `dms receive --usd URL` with 20 %
//! injected loss started at once: it waits and joins at the scheduled
//! time (a second ahead), repairs from the APD's server, and its statistical report
//! reaches the origin.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::process::Command;

use binary::{
    Kill, free_port, publish_pattern, spawn, start_origin, start_session, unix_now, wait_until,
};

fn curl_ok(cacert: &std::path::Path, extra: &[&str], url: &str) -> Option<Vec<u8>> {
    let out = Command::new("curl")
        .args(["-sf", "--cacert", cacert.to_str().unwrap()])
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

#[test]
fn receive_usd_joins_at_the_scheduled_time_repairs_from_the_apd_server_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (_origin, server) = start_origin(&data);
    let cacert = data.join("tls/cert.pem");
    let client = ["--server", server.as_str(), "--data", data_s];
    let (bytes, id) = publish_pattern(dir.path(), &client, "fw.bin", "1.0.0", 600_000, 7);

    // The repair server the APD names: not the origin.
    let repair_port = free_port();
    let repair_url = format!("https://127.0.0.1:{repair_port}");
    let _repair: Kill = spawn(&[
        "repair-serve",
        "--data",
        data_s,
        "--listen",
        &format!("127.0.0.1:{repair_port}"),
    ]);
    wait_until("dms repair-serve", || {
        curl_ok(
            &cacert,
            &["-o", "/dev/null"],
            &format!("{repair_url}/dl/{id}/fw.bin"),
        )
        .is_some()
    });

    let start_at = unix_now() + 4;
    let group = format!("239.255.31.{}:{}", 1 + repair_port % 200, free_port());
    let session = start_session(
        &client,
        &id,
        &group,
        &[
            "--rate",
            "20",
            "--start-at",
            &start_at.to_string(),
            "--repair-server",
            &format!("{repair_url}/repair"),
            "--backoff-offset",
            "0",
            "--backoff-window",
            "1",
            "--report-sample",
            "100",
            "--report-type",
            "StaR",
        ],
    );
    let usd_uri = session["usd_uri"].as_str().unwrap();

    let out_dir = dir.path().join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["receive", "--usd", usd_uri, "--iface", "127.0.0.1"])
        .args(["--out", out_dir.to_str().unwrap()])
        .args(["--cacert", cacert.to_str().unwrap()])
        .args([
            "--drop",
            "20",
            "--seed",
            "3",
            "--idle",
            "3",
            "--timeout",
            "180",
        ])
        .args(["--device", "ue-usd"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // It waited for the start in the SDP's t= and joined then.
    let joined: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("joining "))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no joining line: {stderr}"))
        .parse()
        .unwrap();
    // (A second ahead of the start, so no packet of a short session is missed.)
    assert!(
        joined + 1 >= start_at,
        "joined at {joined}, before {start_at}"
    );
    assert!(
        stderr.contains(&format!("joining {group} (TSI {})", session["tsi"])),
        "{stderr}"
    );

    assert_eq!(std::fs::read(out_dir.join("fw.bin")).unwrap(), bytes);
    // Repair bytes came from the only repair server it knew: the APD's.
    let line = stderr
        .lines()
        .find(|l| l.starts_with("bytes by source:"))
        .unwrap();
    let repair: u64 = line
        .split_once(" repair ")
        .unwrap()
        .1
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(repair > 0, "no repair with 20 % loss: {line}");

    // The StaR report (statistics: bytes by source) reached the origin.
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let body = curl_ok(
        &cacert,
        &["-H", &format!("authorization: Bearer {}", token.trim())],
        &format!("{server}/v1/reports?object={id}"),
    )
    .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(summary["devices"], 1, "{summary}");
    assert_eq!(summary["succeeded"], 1, "{summary}");
    assert_eq!(summary["bytes"]["repair"], repair, "{summary}");
}

#[test]
fn receive_sdp_names_the_line_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let sdp = dir.path().join("s.sdp");
    let cases = [
        ("c=IN IP6 ff0e::1/1", 3, "IPv6"),
        (
            "c=IN IP4 239.255.1.1/1\na=FEC-declaration:0 encoding-id=99",
            4,
            "99",
        ),
    ];
    for (line, n, word) in cases {
        std::fs::write(
            &sdp,
            format!("v=0\ns=x\n{line}\nt=0 0\na=flute-tsi:1\nm=application 5000 FLUTE/UDP 0\n"),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(["receive", "--sdp", sdp.to_str().unwrap(), "--out"])
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains(&format!("line {n}: ")), "{stderr}");
        assert!(stderr.contains(word), "{stderr}");
    }
    // No port.
    std::fs::write(&sdp, "v=0\nc=IN IP4 239.255.1.1/1\nt=0 0\na=flute-tsi:1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["receive", "--sdp", sdp.to_str().unwrap(), "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no port"),
        "{stderr}"
    );
}
