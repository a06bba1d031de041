//! Raptor (RFC 5053) end to end with the real binary over loopback
//! multicast:
//!
//! - `dms send --fec raptor` → `dms receive` with 5 % of packets dropped:
//!   the broadcast's repair symbols make up for it, bytes verified;
//! - an origin whose objects are stored in Raptor layouts (`fec = "raptor"`
//!   in its config): `dms publish`, `dms session start --fec raptor` with
//!   no repair symbols, and `dms receive` dropping 30 % in bursts of 8 with
//!   `--repair` on the origin's symbol repair: the UE asks for fresh Raptor
//!   repair symbols (16-bit ESIs), decodes, verifies the signed manifest and
//!   ends with the exact object.
//!
//! (`dms send` names objects `file:///NAME`, which no repair server
//! serves, so repair is exercised through the origin's session, whose
//! Content-Locations are the origin's URIs.)
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use binary::{Kill, dms, json, publish_pattern, start_origin_with};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Waits for `child` (at most `secs`) and returns its status and stderr.
fn finish(mut child: Kill, secs: u64, what: &str) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{what} did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (child.0.wait().unwrap(), stderr)
}

#[test]
fn dms_send_raptor_to_dms_receive_with_loss() {
    const GROUP: &str = "239.255.76.9:47621";
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let file = dir.path().join("mbms.bin");
    std::fs::write(&file, &bytes).unwrap();
    let out = dir.path().join("out");
    let receiver = Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["receive", "--group", GROUP, "--iface", "127.0.0.1"])
        .args(["--out", out.to_str().unwrap(), "--quiet"])
        .args([
            "--timeout",
            "90",
            "--idle",
            "3",
            "--drop",
            "5",
            "--seed",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let receiver = Kill(receiver);
    std::thread::sleep(Duration::from_millis(500));
    let sent = dms(&[
        "send",
        file.to_str().unwrap(),
        "--group",
        GROUP,
        "--iface",
        "127.0.0.1",
        "--rate",
        "40",
        "--fec",
        "raptor",
        "--repair",
        "30",
        "--quiet",
    ]);
    let sent_err = String::from_utf8_lossy(&sent.stderr);
    assert!(sent.status.success(), "{sent_err}");
    let summary = String::from_utf8_lossy(&sent.stdout);
    assert!(summary.contains("raptor +30 %"), "{summary}");
    let (status, stderr) = finish(receiver, 120, "dms receive");
    assert!(status.success(), "{stderr}");
    let received = std::fs::read(out.join("mbms.bin")).unwrap();
    assert!(received == bytes, "received file differs");
}

#[test]
fn raptor_session_repaired_from_the_origins_symbol_repair() {
    const GROUP: &str = "239.255.76.10:47622";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let config = dir.path().join("origin.toml");
    std::fs::write(&config, "fec = \"raptor\"\n").unwrap();
    let (_server, server) = start_origin_with(&data, &["--config", config.to_str().unwrap()]);
    let cacert = data.join("tls/cert.pem");
    let origin_pub = data.join("origin.pub");
    let client = ["--server", server.as_str(), "--data", data_s];
    let (bytes, id) = publish_pattern(dir.path(), &client, "fw.bin", "1.0.0", 2_500_000u32, 9);
    // Stored in a Raptor layout: that is what symbol repair answers in.
    let object = json(&dms(&[&["objects", "show", &id][..], &client[..]].concat()));
    assert_eq!(object["fec"]["encoding_id"], 1, "{object}");

    let out = dir.path().join("ue");
    let repair = format!("{server}/repair");
    let ue = Command::new(env!("CARGO_BIN_EXE_dms"))
        .args(["receive", "--group", GROUP, "--iface", "127.0.0.1"])
        .args(["--out", out.to_str().unwrap(), "--quiet"])
        .args(["--timeout", "120", "--idle", "3", "--repair", &repair])
        .args(["--origin-key", origin_pub.to_str().unwrap()])
        .args(["--cacert", cacert.to_str().unwrap()])
        .args(["--drop", "30,8", "--seed", "21", "--device", "ue-raptor"])
        .args(["--state", dir.path().join("state").to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ue = Kill(ue);
    std::thread::sleep(Duration::from_millis(700));

    // No repair symbols in the broadcast and one round: what the UE loses
    // only symbol repair gives back.
    let session = json(&dms(&[
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
            "raptor",
            "--repair",
            "0",
            "--carousel",
            "1",
            "--tsi",
            "91",
        ][..],
        &client[..],
    ]
    .concat()));
    assert_eq!(session["fec"], "raptor", "{session}");

    let (status, stderr) = finish(ue, 150, "dms receive");
    assert!(status.success(), "{stderr}");
    let received = std::fs::read(out.join("fw.bin")).unwrap();
    assert!(received == bytes, "received file differs");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("bytes by source:"))
        .unwrap_or_else(|| panic!("no figures in {stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |w: &str| -> u64 {
        let i = words.iter().position(|x| *x == w).unwrap();
        words[i + 1].trim_end_matches([',', ';']).parse().unwrap()
    };
    // 30 % loss and no FEC overhead: the object came partly from repair.
    assert!(after("repair") > 0, "{line}");
    assert!(after("broadcast") > 0, "{line}");
    eprintln!("{line}");
}
