//! A UE killed mid-session resumes from its state directory: `dms serve` +
//! `dms publish` + `dms session start` of an 8 MiB object at 5 Mbit/s;
//! `dms receive --state` is SIGKILLed once its state lists blocks on disk,
//! then started again with the same state. It resumes (it says so, and
//! receives fewer bytes from broadcast and repair than the object holds)
//! and ends with the exact object; all along, the output directory never
//! shows anything but the exact object under its final name.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use binary::{Kill, dms, json, publish_pattern, start_origin};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const GROUP: &str = "239.255.76.3:47631";

/// The broadcast and repair figures of the agent's "bytes by source" line.
fn figures(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr.lines().find(|l| l.starts_with("bytes by source:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |w: &str| -> Option<u64> {
        let i = words.iter().position(|x| *x == w)?;
        words.get(i + 1)?.trim_end_matches([',', ';']).parse().ok()
    };
    Some((after("broadcast")?, after("repair")?))
}

/// Blocks listed as on disk in the state of the (only) object.
fn blocks_on_disk(state: &Path) -> usize {
    let Ok(dirs) = std::fs::read_dir(state.join("objects")) else {
        return 0;
    };
    dirs.filter_map(Result::ok)
        .filter_map(|d| std::fs::read(d.path().join("have.json")).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter_map(|v| v["blocks"].as_array().map(Vec::len))
        .max()
        .unwrap_or(0)
}

/// Watches `out` until stopped: any file under the final name must be the
/// exact object, and nothing else but hidden temp files may appear.
/// Returns what it saw wrong.
fn watch(
    out: PathBuf,
    name: &'static str,
    expected: Arc<Vec<u8>>,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut verified = false;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(entries) = std::fs::read_dir(&out) {
            for entry in entries.filter_map(Result::ok) {
                let file = entry.file_name().to_string_lossy().into_owned();
                if file.starts_with(".dms-recv-") {
                    continue;
                }
                if file != name {
                    wrong.push(format!("unexpected file {file}"));
                    continue;
                }
                if !verified {
                    match std::fs::read(entry.path()) {
                        Ok(bytes) if bytes == *expected => verified = true,
                        Ok(bytes) => wrong.push(format!(
                            "{name} visible with {} bytes that are not the object",
                            bytes.len()
                        )),
                        Err(_) => {}
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wrong
}

#[test]
fn a_killed_ue_resumes_from_its_state_and_never_shows_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (_server, server) = start_origin(&data);
    let cacert = data.join("tls/cert.pem");
    let origin_pub = data.join("origin.pub");

    let client = ["--server", server.as_str(), "--data", data_s];
    let (bytes, id) = publish_pattern(dir.path(), &client, "fw.bin", "1.0.0", 8u32 << 20, 11);

    let out = dir.path().join("out");
    let state = dir.path().join("state");
    let repair = format!("{server}/repair");
    let receive = |stderr: Stdio| {
        Kill(
            Command::new(env!("CARGO_BIN_EXE_dms"))
                .args([
                    "receive",
                    "--group",
                    GROUP,
                    "--iface",
                    "127.0.0.1",
                    "--out",
                    out.to_str().unwrap(),
                    "--timeout",
                    "150",
                    "--quiet",
                    "--idle",
                    "3",
                    "--repair",
                    &repair,
                    "--origin-key",
                    origin_pub.to_str().unwrap(),
                    "--cacert",
                    cacert.to_str().unwrap(),
                    "--state",
                    state.to_str().unwrap(),
                ])
                .env("RUST_LOG", "warn,dms_peer=info")
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap(),
        )
    };

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = std::thread::spawn({
        let (out, expected, stop) = (out.clone(), Arc::new(bytes.clone()), Arc::clone(&stop));
        move || watch(out, "fw.bin", expected, stop)
    });

    let mut first = receive(Stdio::null());
    std::thread::sleep(Duration::from_millis(700));
    // 8 MiB at 5 Mbit/s: about 13 s on air, one round, some FEC margin.
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
            "5",
            "--fec",
            "raptorq",
            "--repair",
            "5",
            "--carousel",
            "1",
            "--tsi",
            "79",
        ][..],
        &client[..],
    ]
    .concat()));

    // Mid-object: at least two of its eight blocks are on disk.
    let deadline = Instant::now() + Duration::from_secs(60);
    while blocks_on_disk(&state) < 2 {
        assert!(
            first.0.try_wait().unwrap().is_none(),
            "the receiver ended before it was killed"
        );
        assert!(Instant::now() < deadline, "no block reached the state");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let kept = blocks_on_disk(&state);
    assert!(
        !out.join("fw.bin").exists(),
        "the object was complete before the kill"
    );

    let mut second = receive(Stdio::piped());
    let deadline = Instant::now() + Duration::from_secs(170);
    while second.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the restarted receiver did not end"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(second.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let status = second.0.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let wrong = watcher.join().unwrap();

    assert!(status.success(), "restarted receiver: {stderr}");
    assert!(
        std::fs::read(out.join("fw.bin")).unwrap() == bytes,
        "the resumed object differs"
    );
    assert!(wrong.is_empty(), "the output directory showed {wrong:?}");
    assert!(
        stderr.contains("resumed object from the state directory"),
        "{stderr}"
    );
    let (broadcast, repaired) =
        figures(&stderr).unwrap_or_else(|| panic!("no figures in {stderr}"));
    eprintln!(
        "resumed with {kept} blocks on disk: broadcast {broadcast} B + repair {repaired} B for a {} B object",
        bytes.len()
    );
    assert!(
        broadcast + repaired < bytes.len() as u64,
        "it received the whole object again: broadcast {broadcast} + repair {repaired}"
    );
    // The delivered object's state is gone (the reception report stays).
    let left: Vec<_> = std::fs::read_dir(state.join("objects"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "state left behind: {left:?}");
}
