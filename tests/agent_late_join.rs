//! Late join: UE A receives a session and keeps serving its peers; once
//! the session has ended, UE B starts (on the same group, so nothing more
//! comes), learns the object from A's announcement (`--late-join`),
//! verifies its signed manifest with the origin key and gets the whole
//! object by repair alone: from A, and the repair service if A falls
//! short. B announces it onward: UE C, without an origin key and knowing
//! only B, learns it from B and accepts it on its announced SHA-256.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use binary::{Kill, dms, free_port, json, publish_pattern, start_origin};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The figures of the agent's "bytes by source" line.
fn figures(stderr: &str) -> Option<(u64, u64, u64)> {
    let line = stderr.lines().find(|l| l.starts_with("bytes by source:"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |w: &str| -> Option<u64> {
        let i = words.iter().position(|x| *x == w)?;
        words.get(i + 1)?.trim_end_matches([',', ';']).parse().ok()
    };
    Some((after("broadcast")?, after("peers")?, after("repair")?))
}

/// An origin with one published object, a session of it that has ended,
/// and UE A, which received it and keeps serving its peers.
struct World {
    dir: tempfile::TempDir,
    group: &'static str,
    server: String,
    bytes: Vec<u8>,
    /// A's libp2p address.
    p2p: String,
    ue_a: Option<Kill>,
    _origin: Kill,
}

impl World {
    /// Runs the session on `group` with TSI `tsi`; A gets `a_extra`.
    fn after_a_session(group: &'static str, tsi: &str, a_extra: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let data_s = data.to_str().unwrap().to_owned();
        let (origin, server) = start_origin(&data);
        let client = ["--server", server.as_str(), "--data", &data_s];
        let (bytes, id) = publish_pattern(dir.path(), &client, "fw.bin", "3.0.0", 1_500_000u32, 13);
        let p2p = format!("/ip4/127.0.0.1/tcp/{}", free_port());
        let mut world = World {
            dir,
            group,
            server: server.clone(),
            bytes,
            p2p: p2p.clone(),
            ue_a: None,
            _origin: origin,
        };
        // UE A receives the broadcast, then keeps serving its peers.
        let mut a_args = vec!["--repair-here", "--listen", &p2p, "--linger", "100"];
        a_args.extend_from_slice(a_extra);
        let (out_a, ue_a) = world.ue("ue-a", true, &a_args);
        world.ue_a = Some(ue_a);
        std::thread::sleep(Duration::from_millis(700));
        let session = json(&dms(&[
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
                "10",
                "--tsi",
                tsi,
            ][..],
            &client[..],
        ]
        .concat()));
        let session_id = session["id"].as_str().unwrap().to_owned();

        // A has it (received and, if need be, repaired), and the session ended.
        let deadline = Instant::now() + Duration::from_secs(90);
        while std::fs::read(out_a.join("fw.bin")).ok().as_deref() != Some(&world.bytes[..]) {
            assert!(Instant::now() < deadline, "UE A did not get the object");
            std::thread::sleep(Duration::from_millis(100));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = json(&dms(&[
                &["session", "status", &session_id][..],
                &client[..],
            ]
            .concat()));
            if status["state"] != "scheduled" && status["state"] != "running" {
                break;
            }
            assert!(Instant::now() < deadline, "session did not end: {status}");
            std::thread::sleep(Duration::from_millis(100));
        }
        world
    }

    /// Starts `dms receive` as device `name` (with the origin key if
    /// `with_key`; `--repair-here` stands for the repair service).
    fn ue(&self, name: &str, with_key: bool, extra: &[&str]) -> (PathBuf, Kill) {
        let data = self.dir.path().join("data");
        let out = self.dir.path().join(name);
        let mut args: Vec<String> = [
            "receive",
            "--group",
            self.group,
            "--iface",
            "127.0.0.1",
            "--out",
            out.to_str().unwrap(),
            "--timeout",
            "120",
            "--quiet",
            "--idle",
            "3",
            "--cacert",
            data.join("tls/cert.pem").to_str().unwrap(),
            "--device",
            name,
            "--backoff-window",
            "0.2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if with_key {
            args.extend([
                "--origin-key".into(),
                data.join("origin.pub").to_str().unwrap().into(),
            ]);
        }
        for arg in extra {
            match *arg {
                "--repair-here" => {
                    args.extend(["--repair".into(), format!("{}/repair", self.server)])
                }
                other => args.push(other.into()),
            }
        }
        let child = Command::new(env!("CARGO_BIN_EXE_dms"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (out, Kill(child))
    }
}

#[test]
fn ues_that_join_after_the_session_ended_get_the_object_from_peers() {
    let world = World::after_a_session("239.255.77.9:47719", "91", &[]);
    let (p2p, bytes) = (&world.p2p, &world.bytes);
    // UE B joins late: nothing is broadcast any more. It serves C next.
    let p2p_b = format!("/ip4/127.0.0.1/tcp/{}", free_port());
    let (out_b, mut ue_b) = world.ue(
        "ue-b",
        true,
        &[
            "--repair-here",
            "--peer",
            p2p,
            "--late-join",
            "1",
            "--listen",
            &p2p_b,
            "--linger",
            "25",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while std::fs::read(out_b.join("fw.bin")).ok().as_deref() != Some(&bytes[..]) {
        assert!(Instant::now() < deadline, "UE B did not get the object");
        assert!(ue_b.0.try_wait().unwrap().is_none(), "UE B ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    // UE C knows only B, and has no origin key.
    let (out_c, mut ue_c) = world.ue(
        "ue-c",
        false,
        &["--repair-here", "--peer", &p2p_b, "--late-join", "1"],
    );
    let stderr_c = finish(&mut ue_c);
    assert!(
        std::fs::read(out_c.join("fw.bin")).unwrap() == *bytes,
        "UE C's object differs"
    );
    assert!(
        stderr_c.contains("accepted on the peer's word"),
        "{stderr_c}"
    );
    let stderr_b = finish(&mut ue_b);
    for (ue, out, stderr) in [("B", &out_b, &stderr_b), ("C", &out_c, &stderr_c)] {
        let (broadcast, peers, repaired) =
            figures(stderr).unwrap_or_else(|| panic!("no figures in {stderr}"));
        eprintln!("UE {ue}: broadcast {broadcast} B, peers {peers} B, repair {repaired} B");
        assert_eq!(broadcast, 0, "{stderr}");
        assert!(peers > 0, "{stderr}");
        // All of it came by repair (at least the object's size of symbols).
        assert!(peers + repaired >= bytes.len() as u64, "{stderr}");
        // Nothing but the object was left in the output directory.
        let names: Vec<_> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![Path::new("fw.bin").as_os_str().to_owned()]);
    }
}

/// Waits (at most 120 s) for a UE to end successfully; its stderr.
fn finish(ue: &mut Kill) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    while ue.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "UE did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stderr = String::new();
    std::io::Read::read_to_string(ue.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(ue.0.wait().unwrap().success(), "{stderr}");
    stderr
}

#[test]
fn a_late_joiner_without_repair_uri_bans_a_bad_peer_and_uses_the_origins_repair_service() {
    let world = World::after_a_session("239.255.77.10:47720", "92", &["--malicious-peer"]);
    // No --repair: the repair service is derived from the manifest's URI.
    let (out_b, mut ue_b) = world.ue("ue-b", true, &["--peer", &world.p2p, "--late-join", "1"]);
    let stderr = finish(&mut ue_b);
    assert!(
        std::fs::read(out_b.join("fw.bin")).unwrap() == world.bytes,
        "UE B's object differs"
    );
    assert!(stderr.contains("banned"), "{stderr}");
    let (broadcast, peers, repaired) =
        figures(&stderr).unwrap_or_else(|| panic!("no figures in {stderr}"));
    eprintln!("UE B: broadcast {broadcast} B, peers {peers} B, repair {repaired} B");
    assert_eq!(broadcast, 0, "{stderr}");
    // The garbage was counted, and the object came from the repair service.
    assert!(peers > 0, "{stderr}");
    assert!(repaired >= world.bytes.len() as u64, "{stderr}");
}

/// A late joiner that adopted an object from a peer and then sees it on a
/// later broadcast does not count it twice: with `--count 2` it waits for
/// the session's second object instead of ending with one.
#[test]
fn an_adopted_object_seen_again_on_a_later_broadcast_is_not_counted_twice() {
    let world = World::after_a_session("239.255.77.11:47721", "93", &[]);
    let (out_b, mut ue_b) = world.ue(
        "ue-b",
        true,
        &[
            "--repair-here",
            "--peer",
            &world.p2p,
            "--late-join",
            "1",
            "--count",
            "2",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    while std::fs::read(out_b.join("fw.bin")).ok().as_deref() != Some(&world.bytes[..]) {
        assert!(Instant::now() < deadline, "UE B did not get the object");
        assert!(ue_b.0.try_wait().unwrap().is_none(), "UE B ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A second session: the same object first, then a new one.
    let data = world.dir.path().join("data");
    let client = [
        "--server",
        world.server.as_str(),
        "--data",
        data.to_str().unwrap(),
    ];
    // Low priority: the session sends it after the object B has (equal
    // priorities would share the channel, and the small one could end
    // first).
    let low = [&client[..], &["--priority", "low"]].concat();
    let (second, id2) = publish_pattern(world.dir.path(), &low, "app.cfg", "1.0.0", 300_000, 5);
    let listed = json(&dms(&[&["objects", "list"][..], &client[..]].concat()));
    let id1 = listed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "fw.bin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let objects = format!("{id1},{id2}");
    dms(&[
        &[
            "session",
            "start",
            "--objects",
            &objects,
            "--group",
            world.group,
        ][..],
        &[
            "--iface",
            "127.0.0.1",
            "--rate",
            "20",
            "--repair",
            "10",
            "--tsi",
            "94",
        ],
        &client[..],
    ]
    .concat());
    let stderr = finish(&mut ue_b);
    assert!(
        std::fs::read(out_b.join("app.cfg")).ok().as_deref() == Some(&second[..]),
        "UE B ended without the second object: {stderr}"
    );
    assert!(std::fs::read(out_b.join("fw.bin")).unwrap() == world.bytes);
}
