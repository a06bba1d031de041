//! `dms receive` as a user runs it: the built binary receiving from a test
//! sender over loopback multicast, and giving up on timeout.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Cursor;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dms_flute::net::{Interface, SenderSocketConfig, sender_socket};
use dms_flute::{ObjectSpec, Sender, SenderConfig};
use sha2::{Digest, Sha256};

const DEADLINE: Duration = Duration::from_secs(60);

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29) ^ seed ^ (i >> 10) as u8)
        .collect()
}

fn dms_receive(group: SocketAddr, out: &Path, count: u32, timeout: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dms"))
        .args([
            "receive",
            "--group",
            &group.to_string(),
            "--iface",
            "127.0.0.1",
        ])
        .arg("--out")
        .arg(out)
        .args(["--count", &count.to_string()])
        .args(["--timeout", &timeout.to_string()])
        .arg("--quiet")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends a session of `objects` (at most `packets` datagrams of it), paced.
fn send_session(group: SocketAddr, objects: &[(&str, Vec<u8>)], packets: usize) {
    let mut config = SenderConfig::new(21, u32::MAX);
    config.fdt_interval = Duration::from_millis(50);
    let mut sender = Sender::new(config).unwrap();
    for (location, data) in objects {
        let mut spec = ObjectSpec::new(*location, Cursor::new(data.clone()));
        spec.repair_percent = 20;
        spec.sha256 = Some(Sha256::digest(data).into());
        sender.add_object(spec).unwrap();
    }
    let socket = sender_socket(
        group,
        &SenderSocketConfig {
            interface: Interface::V4(Ipv4Addr::LOCALHOST),
            ..Default::default()
        },
    )
    .unwrap();
    let mut buf = vec![0u8; 1500];
    let mut sent = 0;
    while !sender.is_finished() && sent < packets {
        match sender.poll_transmit(Instant::now(), &mut buf).unwrap() {
            Some(t) => {
                let _ = socket.send(&buf[..t.size]);
                sent += 1;
                if sent.is_multiple_of(24) {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Sends the session again and again (the receiver may join late) until
/// the child exits; returns its output.
fn send_until_exit(
    mut child: Child,
    group: SocketAddr,
    objects: &[(&str, Vec<u8>)],
    packets: usize,
) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < DEADLINE {
        send_session(group, objects, packets);
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
    }
    child.wait_with_output().unwrap()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn receive_writes_the_objects_and_exits_zero() {
    let group: SocketAddr = "239.255.32.1:45401".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let objects = [
        ("file:///firmware.bin", pattern(1_500_000, 1)),
        ("file:///notes.txt", pattern(2_000, 2)),
    ];
    let child = dms_receive(group, &out, 2, 60);
    let output = send_until_exit(child, group, &objects, usize::MAX);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert_eq!(entries(&out), ["firmware.bin", "notes.txt"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut printed: Vec<&str> = stdout.lines().collect();
    printed.sort_unstable();
    let expected = ["firmware.bin", "notes.txt"].map(|n| out.join(n).display().to_string());
    assert_eq!(printed, expected);
    for (location, data) in &objects {
        let name = location.trim_start_matches("file:///");
        assert!(
            std::fs::read(out.join(name)).unwrap() == *data,
            "{name} differs"
        );
    }
}

#[test]
fn receive_exits_non_zero_on_timeout_with_nothing_sent() {
    let group: SocketAddr = "239.255.32.2:45402".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = dms_receive(group, dir.path(), 1, 1)
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("timed out"), "{stderr}");
    assert!(stderr.contains("no object started"), "{stderr}");
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn receive_timeout_names_the_incomplete_object() {
    let group: SocketAddr = "239.255.32.3:45403".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Only the first 400 datagrams of a 4 MiB object (about 3,300 of them)
    // are ever sent.
    let objects = [("file:///partial.bin", pattern(4 << 20, 3))];
    let child = dms_receive(group, dir.path(), 1, 3);
    let output = send_until_exit(child, group, &objects, 400);

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("timed out"), "{stderr}");
    assert!(stderr.contains("partial.bin"), "{stderr}");
    assert!(stderr.contains("missing"), "{stderr}");
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}
