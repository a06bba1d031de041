//! A broadcast session that carries a delta beside the full object: `dms
//! serve`, two versions published with `dms publish`, the delta made in
//! the background, `dms session start --delta-previous`, and `dms receive
//! --count 2` (with the origin's key, so both signed manifests are
//! fetched and verified) receiving the new version and the delta; the
//! delta then turns the old version into the exact new one with `dms
//! delta apply`.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use binary::{dms, json, receive, start_origin, start_session};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GROUP: &str = "239.255.75.8:47518";

fn bytes(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

/// Two versions of `len` bytes: the second changes a few places of the
/// first (a patch in place and an insertion).
fn release_pair(len: usize, seed: u32) -> (Vec<u8>, Vec<u8>) {
    let v1 = bytes(len, seed);
    let mut v2 = v1.clone();
    v2[len / 7..len / 7 + 3000].copy_from_slice(&bytes(3000, seed + 8));
    v2.splice(len * 5 / 7..len * 5 / 7, bytes(2000, seed + 6));
    (v1, v2)
}

/// Publishes `v1` and `v2` as versions 1.0.0 and 1.1.0 of `fw.bin` (files
/// written into `dir`); returns the files and the two objects' JSON.
fn publish_versions(
    dir: &Path,
    client: &[&str],
    v1: &[u8],
    v2: &[u8],
) -> ([PathBuf; 2], [serde_json::Value; 2]) {
    let files = [dir.join("v1.bin"), dir.join("v2.bin")];
    let mut objects = Vec::new();
    for ((file, bytes), version) in files.iter().zip([v1, v2]).zip(["1.0.0", "1.1.0"]) {
        std::fs::write(file, bytes).unwrap();
        let args = ["publish", file.to_str().unwrap(), "--name", "fw.bin"];
        objects.push(json(&dms(
            &[&args[..], &["--version", version], client].concat()
        )));
    }
    (files, objects.try_into().unwrap())
}

/// Waits (60 s at most) for the delta the origin makes in the background
/// to object `id`; returns its JSON.
fn wait_for_delta(client: &[&str], id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shown = json(&dms(&[&["objects", "show", id][..], client].concat()));
        if let Some(d) = shown["deltas"].as_array().and_then(|d| d.first()) {
            return d.clone();
        }
        assert!(Instant::now() < deadline, "no delta to {id}: {shown}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_session_carries_the_delta_from_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_server, server) = start_origin(&data);
    let client = [
        "--server",
        server.as_str(),
        "--data",
        data.to_str().unwrap(),
    ];

    let (v1, v2) = release_pair(700_000, 1);
    let ([f1, f2], [o1, o2]) = publish_versions(dir.path(), &client, &v1, &v2);
    let id2 = o2["id"].as_str().unwrap().to_owned();
    // The delta is made in the background.
    let delta = wait_for_delta(&client, &id2);
    assert_eq!(delta["base_sha256"], o1["sha256"]);

    let out = dir.path().join("out");
    let receiver = Command::new(env!("CARGO_BIN_EXE_dms"))
        .args([
            "receive",
            "--group",
            GROUP,
            "--iface",
            "127.0.0.1",
            "--out",
            out.to_str().unwrap(),
            "--count",
            "2",
            "--timeout",
            "60",
            "--quiet",
            "--origin-key",
            data.join("origin.pub").to_str().unwrap(),
            "--cacert",
            data.join("tls/cert.pem").to_str().unwrap(),
            "--repair",
            &format!("{server}/repair"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Two devices that run a version: the old one (the delta applies) and
    // an unrelated one (the delta does not: the whole object serves).
    let other = dir.path().join("other.bin");
    std::fs::write(&other, bytes(5000, 3)).unwrap();
    let with_base = |base: &std::path::Path, out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_dms"))
            .args([
                "receive",
                "--group",
                GROUP,
                "--iface",
                "127.0.0.1",
                "--out",
                out.to_str().unwrap(),
                "--count",
                "1",
                "--timeout",
                "60",
                "--quiet",
                "--base",
                base.to_str().unwrap(),
                "--origin-key",
                data.join("origin.pub").to_str().unwrap(),
                "--cacert",
                data.join("tls/cert.pem").to_str().unwrap(),
                "--repair",
                &format!("{server}/repair"),
            ])
            .env("RUST_LOG", "warn,dms_peer::agent=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (out_old, out_other) = (dir.path().join("out-old"), dir.path().join("out-other"));
    let device_old = with_base(&f1, &out_old);
    let device_other = with_base(&other, &out_other);
    std::thread::sleep(Duration::from_millis(500));

    // Repair symbols and carousel rounds: margin for a loaded machine.
    let session = json(&dms(&[
        &[
            "session",
            "start",
            "--objects",
            &id2,
            "--delta-previous",
            "--group",
            GROUP,
            "--iface",
            "127.0.0.1",
            "--rate",
            "20",
            "--repair",
            "30",
            "--carousel",
            "4",
        ][..],
        &client[..],
    ]
    .concat()));
    let sent: Vec<&str> = session["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    // The delta goes first: a device with the base is done sooner.
    assert_eq!(sent, vec![delta["id"].as_str().unwrap(), id2.as_str()]);
    assert_eq!(
        session["objects"][0]["content_location"],
        delta["content_location"]
    );
    for (device, out, applies) in [
        (device_old, &out_old, true),
        (device_other, &out_other, false),
    ] {
        let output = device.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&output.stderr);
        assert_eq!(log.contains("delta applied"), applies, "{log}");
        assert!(
            output.status.success(),
            "dms receive --base: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(std::fs::read(out.join("fw.bin")).unwrap() == v2);
        // The delta was a means: it is not left beside the result.
        assert!(!out.join("fw.bin.delta").exists());
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(printed.lines().any(|l| l.ends_with("fw.bin")), "{printed}");
    }

    let output = receiver.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "dms receive: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(std::fs::read(out.join("fw.bin")).unwrap() == v2);
    let received_delta = out.join("fw.bin.delta");
    assert_eq!(
        std::fs::metadata(&received_delta).unwrap().len(),
        delta["size"].as_u64().unwrap()
    );

    // The received delta rebuilds the exact new version from the old one.
    let rebuilt = dir.path().join("rebuilt.bin");
    let applied = dms(&[
        "delta",
        "apply",
        f1.to_str().unwrap(),
        received_delta.to_str().unwrap(),
        rebuilt.to_str().unwrap(),
    ]);
    assert!(
        applied.status.success(),
        "dms delta apply: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert!(std::fs::read(&rebuilt).unwrap() == v2);
    // Applied to the wrong base it fails and writes nothing.
    let wrong = dir.path().join("wrong.bin");
    let refused = dms(&[
        "delta",
        "apply",
        f2.to_str().unwrap(),
        received_delta.to_str().unwrap(),
        wrong.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(!wrong.exists());
}

/// When the broadcast and symbol repair leave an object incomplete, the
/// agent's fallback download asks `uri?from=<installed SHA-256>`: a device
/// running the old version fetches the delta (a few KB) instead of the
/// whole object; a device running another version gets the whole object.
/// Here the session carries no delta, every device drops 30 % of the
/// datagrams of a session without repair symbols, and the symbol repair
/// service is unreachable (a wrong path), so only the download can finish.
#[test]
fn the_fallback_download_is_a_delta_for_the_installed_version() {
    const GROUP: &str = "239.255.75.9:47519";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_server, server) = start_origin(&data);
    let client = [
        "--server",
        server.as_str(),
        "--data",
        data.to_str().unwrap(),
    ];
    let (v1, v2) = release_pair(600_000, 11);
    let ([f1, _], [_, o2]) = publish_versions(dir.path(), &client, &v1, &v2);
    let id2 = o2["id"].as_str().unwrap().to_owned();
    let delta_size = wait_for_delta(&client, &id2)["size"].as_u64().unwrap();

    let other = dir.path().join("other.bin");
    std::fs::write(&other, bytes(5000, 3)).unwrap();
    let repair = format!("{server}/no-such-service/repair");
    let device = |base: &Path, out: &Path| {
        let args = [
            "--count",
            "1",
            "--timeout",
            "60",
            "--idle",
            "2",
            "--drop",
            "30",
        ];
        receive(GROUP, out, &args)
            .args(["--base", base.to_str().unwrap(), "--repair", &repair])
            .args(["--origin-key", data.join("origin.pub").to_str().unwrap()])
            .args(["--cacert", data.join("tls/cert.pem").to_str().unwrap()])
            .env("RUST_LOG", "warn,dms_peer::agent=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (out_old, out_other) = (dir.path().join("out-old"), dir.path().join("out-other"));
    let device_old = device(&f1, &out_old);
    let device_other = device(&other, &out_other);
    std::thread::sleep(Duration::from_millis(500));
    start_session(&client, &id2, GROUP, &["--rate", "20", "--repair", "0"]);

    for (device, out, by_delta) in [
        (device_old, &out_old, true),
        (device_other, &out_other, false),
    ] {
        let output = device.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "dms receive --base: {log}");
        assert_eq!(log.contains("delta applied (unicast)"), by_delta, "{log}");
        assert!(std::fs::read(out.join("fw.bin")).unwrap() == v2);
        // Nothing but the result is left in the output directory.
        let names: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["fw.bin".to_owned()], "{log}");
        // What came from the repair service: the delta, or the object.
        let repair: u64 = log
            .lines()
            .find_map(|l| {
                l.split_once("bytes by source: ")?
                    .1
                    .split(" repair ")
                    .nth(1)
            })
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no bytes line: {log}"));
        let expected = if by_delta {
            delta_size
        } else {
            v2.len() as u64
        };
        assert_eq!(repair, expected, "{log}");
    }
}
