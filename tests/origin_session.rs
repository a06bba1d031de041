//! A broadcast session as a user runs it: `dms serve` (TLS with its
//! generated certificate), `dms publish`, `dms session start|status|list|stop`,
//! and `dms receive` on loopback multicast receiving the object byte-exact.
//!
//! Where the binary has no `receive` subcommand (a build without the UE
//! agent's CLI), an in-process FLUTE receiver on a joined socket takes its
//! place, so the session is still checked end to end.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod binary;

use binary::{dms, json, start_origin};

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dms_flute::net::{Interface, ReceiverSocketConfig, receiver_socket};
use dms_flute::receiver::{Event, Receiver, ReceiverConfig, Verification};
use sha2::{Digest, Sha256};

const GROUP: &str = "239.255.75.1:47511";

/// The in-process stand-in for `dms receive`: the first object that
/// completes with its MD5 and SHA-256 verified, by Content-Location.
fn receive_in_process(group: SocketAddr, timeout: Duration) -> Option<(String, Vec<u8>)> {
    let socket = receiver_socket(
        group,
        &ReceiverSocketConfig {
            interface: Interface::V4(Ipv4Addr::LOCALHOST),
            ..Default::default()
        },
    )
    .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut receiver = Receiver::new(ReceiverConfig::default());
    let mut partial: HashMap<u128, Vec<u8>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let Ok(n) = socket.recv(&mut buf) else {
            continue;
        };
        let _ = receiver.handle_datagram(Instant::now(), &buf[..n]);
        while let Some(event) = receiver.poll_event() {
            match event {
                Event::BlockDecoded {
                    toi, offset, data, ..
                } => {
                    let object = partial.entry(toi).or_default();
                    let end = offset as usize + data.len();
                    if object.len() < end {
                        object.resize(end, 0);
                    }
                    object[offset as usize..end].copy_from_slice(&data);
                }
                Event::ObjectComplete {
                    toi,
                    info,
                    md5,
                    sha256,
                    ..
                } => {
                    assert_eq!(md5, Verification::Verified);
                    assert_eq!(sha256, Verification::Verified);
                    let location = info.content_location().unwrap().to_owned();
                    return Some((location, partial.remove(&toi).unwrap_or_default()));
                }
                _ => {}
            }
        }
    }
    None
}

#[test]
fn a_published_object_is_broadcast_by_a_session_and_received() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_server, server) = start_origin(&data);
    let cacert = data.join("tls/cert.pem");
    let token_file = data.join("admin.token");
    // The explicit client flags: --token and --cacert.
    let token = std::fs::read_to_string(&token_file).unwrap();
    let client = [
        "--server",
        server.as_str(),
        "--token",
        token.trim(),
        "--cacert",
        cacert.to_str().unwrap(),
    ];

    let file = dir.path().join("fw.bin");
    let bytes: Vec<u8> = (0..900_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &bytes).unwrap();
    let published = json(&dms(&[
        &[
            "publish",
            file.to_str().unwrap(),
            "--name",
            "fw.bin",
            "--version",
            "1.0.0",
            "--priority",
            "critical",
        ][..],
        &client[..],
    ]
    .concat()));
    let id = published["id"].as_str().unwrap().to_owned();

    // The receiver joins before the session starts.
    let out = dir.path().join("out");
    let has_receive = dms(&["receive", "--help"]).status.success();
    let group: SocketAddr = GROUP.parse().unwrap();
    let (receiving_cli, receiving_here) = if has_receive {
        let child = Command::new(env!("CARGO_BIN_EXE_dms"))
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
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (Some(child), None)
    } else {
        let thread = std::thread::spawn(move || receive_in_process(group, Duration::from_secs(60)));
        (None, Some(thread))
    };
    std::thread::sleep(Duration::from_millis(500));

    // Repair symbols and carousel rounds: margin for a loaded machine
    // dropping packets (and for the receiver's start).
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
            "raptorq",
            "--repair",
            "30",
            "--carousel",
            "4",
            "--tsi",
            "77",
        ][..],
        &client[..],
    ]
    .concat()));
    let session_id = session["id"].as_str().unwrap().to_owned();
    assert_eq!(session["tsi"], 77);
    assert_eq!(session["objects"][0]["id"], id.as_str());

    if let Some(child) = receiving_cli {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "dms receive: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let received = std::fs::read(out.join("fw.bin")).unwrap();
        assert!(received == bytes, "received file differs");
    } else if let Some(thread) = receiving_here {
        let (location, received) = thread.join().unwrap().expect("nothing received");
        assert_eq!(location, published["content_location"].as_str().unwrap());
        assert!(received == bytes, "received object differs");
        assert!(!Path::new(&out).exists());
    }
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        published["sha256"].as_str().unwrap()
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = json(&dms(&[
            &["session", "status", &session_id][..],
            &client[..],
        ]
        .concat()));
        if status["state"] != "scheduled" && status["state"] != "running" {
            break status;
        }
        assert!(Instant::now() < deadline, "session did not end: {status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["state"], "finished", "{status}");
    assert!(status["packets_sent"].as_u64().unwrap() > 0);
    let list = json(&dms(&[&["session", "list"][..], &client[..]].concat()));
    assert_eq!(list["sessions"][0]["id"], session_id.as_str());
    // Stopping an ended session leaves it as it is.
    let stopped = json(&dms(
        &[&["session", "stop", &session_id][..], &client[..]].concat()
    ));
    assert_eq!(stopped["state"], "finished");
    // An unknown object is the server's error, on stderr.
    let out = dms(&[
        &[
            "session",
            "start",
            "--objects",
            "0123456789abcdef0123456789abcdef",
            "--group",
            GROUP,
            "--iface",
            "127.0.0.1",
            "--rate",
            "1",
        ][..],
        &client[..],
    ]
    .concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no object"));
}
