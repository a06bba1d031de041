//! Reception reports as the APD asks (TS 26.346 §9.4): `dms serve`, three
//! sessions scheduled a few seconds ahead on loopback multicast, each of a
//! good object and one whose blob was damaged on disk after publishing (so
//! no UE can receive it: its SHA-256 fails on the broadcast, the symbol
//! repair and the whole download), and a `dms receive --usd` per session.
//! The APD's reportType decides what reaches the origin's `/report` as a
//! 3GPP `receptionReport`: RAck the good object only, without statistics;
//! StaR-all both, the damaged one as not received; samplePercentage 0
//! nothing. The back-off drawn before repair and before the report lies in
//! the APD's window; the UE stops when its session is over.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use std::path::Path;
use std::process::{Command, Output};

use binary::{flip_blob_byte, free_port, publish_pattern, start_origin, start_session, unix_now};
use sha2::{Digest, Sha256};

/// The seconds printed after `prefix` on a line of `stderr`.
fn seconds_after(stderr: &str, prefix: &str) -> f64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(prefix))
        .unwrap_or_else(|| panic!("no line with {prefix:?}: {stderr}"));
    let rest = &line[line.find(prefix).unwrap() + prefix.len()..];
    rest.split(' ').next().unwrap().parse().unwrap()
}

/// The UE's report line: how many files, and the back-off drawn (seconds
/// after the session's end).
fn report_line(stderr: &str) -> (u64, f64) {
    let files = seconds_after(stderr, "reception report of ") as u64;
    let line = stderr
        .lines()
        .find(|l| l.contains("reception report of "))
        .unwrap();
    let after: f64 = line
        .rsplit(", ")
        .next()
        .and_then(|t| t.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    (files, after)
}

struct Origin {
    server: String,
    cacert: std::path::PathBuf,
    token: String,
}

impl Origin {
    fn summary(&self, id: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sf", "--cacert", self.cacert.to_str().unwrap()])
            .args(["-H", &format!("authorization: Bearer {}", self.token)])
            .arg(format!("{}/v1/reports?object={id}", self.server))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn receive_usd(usd_uri: &str, out: &Path, cacert: &Path, device: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["receive", "--usd", usd_uri, "--iface", "127.0.0.1"])
        .args(["--out", out.to_str().unwrap()])
        .args(["--cacert", cacert.to_str().unwrap()])
        .args(["--count", "2", "--idle", "3", "--timeout", "300"])
        .args(["--device", device])
        .output()
        .unwrap()
}

#[test]
fn the_apd_report_type_and_sample_decide_what_reaches_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (_origin, server) = start_origin(&data);
    let client = ["--server", server.as_str(), "--data", data_s];
    let origin = Origin {
        server: server.clone(),
        cacert: data.join("tls/cert.pem"),
        token: std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned(),
    };

    // Per session: a good object and a damaged one (sent first).
    let mut objects = Vec::new();
    for (n, name) in ["rack", "star-all", "zero"].iter().enumerate() {
        let shift = 3 + n as u32 * 2;
        let (_, good) = publish_pattern(
            dir.path(),
            &client,
            &format!("{name}-good.bin"),
            "1.0.0",
            60_000,
            shift,
        );
        let (bad_bytes, bad) = publish_pattern(
            dir.path(),
            &client,
            &format!("{name}-bad.bin"),
            "1.0.0",
            60_000,
            shift + 1,
        );
        flip_blob_byte(&data, &hex::encode(Sha256::digest(&bad_bytes)), 1000);
        objects.push((good, bad));
    }

    let start_at = unix_now() + 8;
    let port = free_port();
    let sessions: Vec<serde_json::Value> =
        [("RAck", "100"), ("StaR-all", "100"), ("StaR-all", "0")]
            .iter()
            .enumerate()
            .map(|(n, (report_type, sample))| {
                let (good, bad) = &objects[n];
                let group = format!(
                    "239.255.32.{}:{}",
                    1 + (port as usize + n) % 200,
                    port + n as u16
                );
                start_session(
                    &client,
                    &format!("{bad},{good}"),
                    &group,
                    &[
                        "--rate",
                        "20",
                        "--start-at",
                        &start_at.to_string(),
                        "--backoff-offset",
                        "1",
                        "--backoff-window",
                        "1",
                        "--report-sample",
                        sample,
                        "--report-type",
                        report_type,
                    ],
                )
            })
            .collect();

    // The three UEs at once, each waiting for the scheduled start.
    let outputs: Vec<Output> = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .iter()
            .zip(["ue-rack", "ue-star-all", "ue-zero"])
            .map(|(session, device)| {
                let usd = session["usd_uri"].as_str().unwrap().to_owned();
                let out = dir.path().join(device);
                let cacert = origin.cacert.clone();
                scope.spawn(move || receive_usd(&usd, &out, &cacert, device))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    for ((out, (good, bad)), device) in
        outputs
            .iter()
            .zip(&objects)
            .zip(["ue-rack", "ue-star-all", "ue-zero"])
    {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The damaged object is not delivered: the UE says so and stops
        // once its session is over (1 of 2).
        assert!(!out.status.success(), "{device}: {stderr}");
        assert!(stderr.contains("1 of 2"), "{device}: {stderr}");
        assert!(stderr.contains("-bad.bin"), "{device}: {stderr}");
        let good_name = format!("{}-good.bin", device.trim_start_matches("ue-"));
        assert!(
            dir.path().join(device).join(&good_name).exists(),
            "{device}: {stderr}"
        );
        // Repair waited offsetTime (1 s) + up to randomTimePeriod (1 s).
        let repair = seconds_after(&stderr, "repair after a back-off of ");
        assert!((1.0..=2.0).contains(&repair), "{device}: {repair}");

        let good = origin.summary(good);
        let bad = origin.summary(bad);
        let pair = |v: &serde_json::Value| (v["devices"].as_u64(), v["succeeded"].as_u64());
        match device {
            "ue-rack" => {
                // RAck: the received file, acknowledged without statistics.
                assert_eq!(pair(&good), (Some(1), Some(1)), "{good}");
                assert_eq!(good["bytes"]["broadcast"], 0, "{good}");
                assert_eq!(bad["devices"], 0, "{bad}");
                let (files, after) = report_line(&stderr);
                assert_eq!(files, 1, "{stderr}");
                // offsetTime (1 s) + up to randomTimePeriod (1 s) after
                // the session's end.
                assert!((1.0..=2.0).contains(&after), "{stderr}");
            }
            "ue-star-all" => {
                // StaR-all: both, the damaged one as not received, with
                // statistics.
                assert_eq!(pair(&good), (Some(1), Some(1)), "{good}");
                assert!(good["bytes"]["broadcast"].as_u64().unwrap() > 0, "{good}");
                assert_eq!(pair(&bad), (Some(1), Some(0)), "{bad}");
                let (files, after) = report_line(&stderr);
                assert_eq!(files, 2, "{stderr}");
                assert!((1.0..=2.0).contains(&after), "{stderr}");
            }
            _ => {
                // samplePercentage 0: this UE reports nothing.
                assert!(!stderr.contains("reception report"), "{stderr}");
                assert_eq!(bad["devices"], 0, "{bad}");
                assert_eq!(good["devices"], 0, "{good}");
            }
        }
    }
}
