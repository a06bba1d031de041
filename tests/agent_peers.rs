//! Peer repair over libp2p: two `dms receive` of one session (no FEC
//! repair symbols, one round); the first listens for peers and keeps
//! serving after it completes, the second (30 % burst loss) dials it and,
//! asking peers before the repair service, gets its missing symbols from
//! the first UE.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use binary::{Kill, dms, free_port, json, publish_pattern, start_origin};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The figures of the agent's "bytes by source" line.
fn figures(stderr: &str) -> Option<(u64, u64, u64, u64)> {
    let line = stderr.lines().find(|l| l.starts_with("bytes by source:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |w: &str| -> Option<u64> {
        let i = words.iter().position(|x| *x == w)?;
        words.get(i + 1)?.trim_end_matches([',', ';']).parse().ok()
    };
    Some((
        after("broadcast")?,
        after("peers")?,
        after("repair")?,
        after("(missed")?,
    ))
}

/// Runs the two-UE session; returns ue1's stderr and figures.
fn two_ues(group: &str, tsi: &str, malicious: bool) -> (String, (u64, u64, u64, u64)) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (_server, server) = start_origin(&data);
    let cacert = data.join("tls/cert.pem");
    let origin_pub = data.join("origin.pub");
    let client = ["--server", server.as_str(), "--data", data_s];
    let (bytes, id) = publish_pattern(dir.path(), &client, "fw.bin", "2.0.0", 2_500_000u32, 11);
    let repair = format!("{server}/repair");
    let p2p = format!("/ip4/127.0.0.1/tcp/{}", free_port());

    let ue = |i: usize, extra: &[&str]| {
        let out = dir.path().join(format!("ue{i}"));
        let mut args: Vec<String> = [
            "receive",
            "--group",
            group,
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
            origin_pub.to_str().unwrap(),
            "--cacert",
            cacert.to_str().unwrap(),
            "--device",
            &format!("ue{i}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (out, Kill(child))
    };
    // The server UE: little loss, repairs at once, then serves for a while.
    let mut server_args = vec![
        "--listen",
        p2p.as_str(),
        "--linger",
        "40",
        "--backoff-window",
        "0.2",
    ];
    if malicious {
        server_args.push("--malicious-peer");
    }
    let (out0, ue0) = ue(0, &server_args);
    std::thread::sleep(Duration::from_millis(500));
    // The lossy UE asks later, when the first one holds the object.
    let (out1, mut ue1) = ue(
        1,
        &[
            "--peer",
            &p2p,
            "--drop",
            "30,8",
            "--seed",
            "5",
            "--backoff-offset",
            "5",
            "--backoff-window",
            "0.5",
        ],
    );
    std::thread::sleep(Duration::from_millis(700));

    json(&dms(&[
        &[
            "session",
            "start",
            "--objects",
            &id,
            "--group",
            group,
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
            tsi,
        ][..],
        &client[..],
    ]
    .concat()));

    let deadline = Instant::now() + Duration::from_secs(150);
    while ue1.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ue1 did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(ue1.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(ue1.0.wait().unwrap().success(), "ue1: {stderr}");
    assert!(std::fs::read(out1.join("fw.bin")).unwrap() == bytes);
    assert!(std::fs::read(out0.join("fw.bin")).unwrap() == bytes);
    let (broadcast, peers, repaired, missed) =
        figures(&stderr).unwrap_or_else(|| panic!("no figures in {stderr}"));
    drop(ue0);
    (stderr, (broadcast, peers, repaired, missed))
}

#[test]
fn a_lossy_ue_gets_its_missing_symbols_from_a_peer() {
    let (stderr, (broadcast, peers, repaired, missed)) = two_ues("239.255.77.1:47711", "79", false);
    eprintln!(
        "ue1 (--drop 30,8): broadcast {broadcast} B, peers {peers} B, repair {repaired} B, missed {missed} B, (peers+repair)/missed {:.3}",
        (peers + repaired) as f64 / missed.max(1) as f64
    );
    assert!(missed > 0, "{stderr}");
    // Peers first: at least 90 % of the repair came from the peer.
    assert!(peers > 0, "{stderr}");
    assert!(peers * 10 >= (peers + repaired) * 9, "{stderr}");
}

#[test]
fn a_peer_sending_garbage_is_banned_and_the_object_still_arrives() {
    let (stderr, (_, peers, repaired, _)) = two_ues("239.255.77.2:47712", "80", true);
    assert!(stderr.contains("banned"), "{stderr}");
    // The garbage was counted, and the object came from the repair service.
    assert!(peers > 0 && repaired > 0, "{stderr}");
}
