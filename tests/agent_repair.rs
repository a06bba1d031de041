//! The UE agent repairs from the repair service and verifies against the
//! signed manifest: `dms serve` + `dms publish` + `dms session start` (no
//! FEC repair symbols, one carousel round) and several `dms receive` with
//! injected loss (5 % i.i.d., 30 % in bursts of 8), `--repair` and
//! `--origin-key`: every UE ends with the exact object, from broadcast plus
//! repair symbols; a UE given the wrong origin key exits non-zero and
//! writes nothing.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use binary::{Kill, dms, json, publish_pattern, start_origin};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GROUP: &str = "239.255.76.1:47611";

/// The figures of the agent's "bytes by source" line.
fn figures(stderr: &str) -> Option<(u64, u64, u64)> {
    let line = stderr.lines().find(|l| l.starts_with("bytes by source:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |w: &str| -> Option<u64> {
        let i = words.iter().position(|x| *x == w)?;
        words.get(i + 1)?.trim_end_matches([',', ';']).parse().ok()
    };
    Some((after("broadcast")?, after("repair")?, after("(missed")?))
}

#[test]
fn lossy_ues_repair_and_verify_and_a_wrong_key_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (_server, server) = start_origin(&data);
    let cacert = data.join("tls/cert.pem");
    let origin_pub = data.join("origin.pub");
    assert!(origin_pub.exists());
    // Another origin's key: its manifests are not ours.
    let other = dir.path().join("other");
    assert!(
        dms(&["keygen", "--data", other.to_str().unwrap()])
            .status
            .success()
    );
    let wrong_pub = other.join("origin.pub");

    let client = ["--server", server.as_str(), "--data", data_s];
    let (bytes, id) = publish_pattern(dir.path(), &client, "fw.bin", "1.0.0", 2_500_000u32, 13);

    let repair = format!("{server}/repair");
    // (drop, key): 3 at 5 % i.i.d., one at 30 % in bursts of 8, one with
    // the wrong key.
    let ues: Vec<(&str, &Path)> = vec![
        ("5", &origin_pub),
        ("5", &origin_pub),
        ("5", &origin_pub),
        ("30,8", &origin_pub),
        ("5", &wrong_pub),
    ];
    let mut children = Vec::new();
    for (i, (drop, key)) in ues.iter().enumerate() {
        let out = dir.path().join(format!("ue{i}"));
        let child = Command::new(env!("CARGO_BIN_EXE_dms"))
            .args([
                "receive",
                "--group",
                GROUP,
                "--iface",
                "127.0.0.1",
                "--out",
                out.to_str().unwrap(),
                "--timeout",
                "120",
                "--quiet",
                "--idle",
                "3",
                "--repair",
                &repair,
                "--origin-key",
                key.to_str().unwrap(),
                "--cacert",
                cacert.to_str().unwrap(),
                "--drop",
                drop,
                "--seed",
                &(i as u64 + 11).to_string(),
                "--device",
                &format!("ue{i}"),
                "--state",
                dir.path().join(format!("state{i}")).to_str().unwrap(),
            ])
            // The bursty UE keeps no block ahead of a gap in memory: its
            // object is hashed from the file once repair completes it.
            .args(if *drop == "30,8" {
                &["--max-ahead", "1"][..]
            } else {
                &[]
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push((out, Kill(child)));
    }
    std::thread::sleep(Duration::from_millis(700));

    // No FEC repair symbols and one round: what a UE loses only repair
    // can give back.
    json(&dms(&[
        &[
            "session",
            "start",
            "--objects",
            &id,
            "--group",
            GROUP,
            "--iface",
            "127.0.0.1",
            "--rate",
            "20",
            "--fec",
            "raptorq",
            "--repair",
            "0",
            "--carousel",
            "1",
            "--tsi",
            "78",
        ][..],
        &client[..],
    ]
    .concat()));

    let n = children.len();
    for (i, (out, mut child)) in children.into_iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(150);
        while child.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "ue{i} did not end");
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        let status = child.0.wait().unwrap();
        if i == n - 1 {
            assert!(!status.success(), "the wrong key was accepted: {stderr}");
            assert!(stderr.contains("does not verify"), "{stderr}");
            let left: Vec<_> = std::fs::read_dir(&out)
                .map(|d| d.map(|e| e.unwrap().file_name()).collect())
                .unwrap_or_default();
            assert!(left.is_empty(), "a wrong-key UE wrote {left:?}");
            continue;
        }
        assert!(status.success(), "ue{i}: {stderr}");
        let received = std::fs::read(out.join("fw.bin")).unwrap();
        assert!(received == bytes, "ue{i}: received file differs");
        let (broadcast, repaired, missed) =
            figures(&stderr).unwrap_or_else(|| panic!("ue{i}: no figures in {stderr}"));
        eprintln!(
            "ue{i} (--drop {}): broadcast {broadcast} B, repair {repaired} B, missed {missed} B, repair/missed {:.3}",
            ues[i].0,
            repaired as f64 / missed.max(1) as f64
        );
        if i == 3 {
            // 30 % loss and no FEC overhead: it cannot have done without repair.
            assert!(repaired > 0 && missed > 0, "ue{i}: {stderr}");
        }
        // Its report was kept in the state directory.
        let state = dir.path().join(format!("state{i}"));
        assert!(std::fs::read_dir(&state).unwrap().count() >= 1);
    }

    // The origin got a report from each good UE, all successful, with the
    // repair bytes they counted.
    let summary = reports(&server, &data, &id);
    assert_eq!(summary["devices"], 4, "{summary}");
    assert_eq!(summary["succeeded"], 4, "{summary}");
    assert!(
        summary["bytes"]["repair"].as_u64().unwrap() > 0,
        "{summary}"
    );
    assert!(
        summary["bytes"]["broadcast"].as_u64().unwrap() > 0,
        "{summary}"
    );
}

/// `GET /v1/reports?object=ID` with the admin token.
fn reports(server: &str, data: &Path, id: &str) -> serde_json::Value {
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let pem = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let response = http
            .get(format!("{server}/v1/reports?object={id}"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json().await.unwrap()
    })
}
