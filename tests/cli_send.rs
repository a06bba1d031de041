//! `dms send` as a user runs it: the built binary sends files to a loopback
//! multicast group joined by a socket in the test, whose datagrams feed
//! the sans-IO FLUTE receiver.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use dms_flute::net::{Interface, ReceiverSocketConfig, receiver_socket};
use dms_flute::receiver::{Event, Receiver, ReceiverConfig, Verification};

const DMS: &str = env!("CARGO_BIN_EXE_dms");

/// Deterministic, not very compressible bytes.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn joined(group: SocketAddr) -> UdpSocket {
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
    socket
}

/// A received object: transported bytes, Content-Encoding, MD5 check.
struct Received {
    bytes: Vec<u8>,
    encoding: Option<String>,
    md5: Verification,
}

/// Receives until `count` objects are complete or 60 s pass.
fn receive(socket: UdpSocket, count: usize) -> HashMap<String, Received> {
    let mut receiver = Receiver::new(ReceiverConfig::default());
    let mut buf = vec![0u8; 65_536];
    let mut partial: HashMap<u128, Vec<u8>> = HashMap::new();
    let mut done = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.len() < count && Instant::now() < deadline {
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
                Event::ObjectComplete { toi, info, md5, .. } => {
                    done.insert(
                        info.content_location().unwrap().to_owned(),
                        Received {
                            bytes: partial.remove(&toi).unwrap_or_default(),
                            encoding: info.content_encoding().map(str::to_owned),
                            md5,
                        },
                    );
                }
                Event::ObjectFailed { info, .. } => panic!("object failed: {info:?}"),
                _ => {}
            }
        }
    }
    done
}

/// Waits for the child at most 60 s (killing it after that) and returns
/// its output.
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
    }
    child.wait_with_output().unwrap()
}

fn send(files: &[&Path], group: SocketAddr, extra: &[&str]) -> Child {
    Command::new(DMS)
        .arg("send")
        .args(files)
        .args(["--group", &group.to_string(), "--iface", "127.0.0.1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn dms_send_delivers_files_to_a_joined_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("firmware.bin");
    let small = dir.path().join("config.txt");
    let big_bytes = data(1_500_000, 3);
    std::fs::write(&big, &big_bytes).unwrap();
    std::fs::write(&small, b"key = value\n").unwrap();

    let group: SocketAddr = "239.255.74.1:47321".parse().unwrap();
    let socket = joined(group);
    let receiving = thread::spawn(move || receive(socket, 2));
    let child = send(
        &[&big, &small],
        group,
        &[
            "--rate",
            "100",
            "--fec",
            "raptorq",
            "--repair",
            "30",
            "--symbol-size",
            "1400",
            "--flute-version",
            "2",
            "--tsi",
            "5",
            "--carousel",
            "2",
            "--quiet",
        ],
    );
    let output = finish(child);
    let received = receiving.join().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("sent 2 file(s)"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1);

    let fw = &received["file:///firmware.bin"];
    assert!(fw.bytes == big_bytes);
    assert_eq!(fw.md5, Verification::Verified);
    assert_eq!(received["file:///config.txt"].bytes, b"key = value\n");
}

#[test]
fn dms_send_gzip_signals_the_encoding_and_the_md5_of_the_compressed_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text: Vec<u8> = (0..40_000u32)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    std::fs::write(&path, &text).unwrap();

    let group: SocketAddr = "239.255.74.2:47322".parse().unwrap();
    let socket = joined(group);
    let receiving = thread::spawn(move || receive(socket, 1));
    let child = send(
        &[&path],
        group,
        &[
            "--rate",
            "50",
            "--encoding",
            "gzip",
            "--fec",
            "nocode",
            "--flute-version",
            "1",
            "--carousel",
            "4",
            "--no-inband-fti",
            "--quiet",
        ],
    );
    let output = finish(child);
    assert!(output.status.success());
    let received = receiving.join().unwrap();
    let notes = &received["file:///notes.txt"];
    assert_eq!(notes.encoding.as_deref(), Some("gzip"));
    assert_eq!(notes.md5, Verification::Verified);
    assert!(notes.bytes.len() < text.len() / 2, "not compressed");
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&notes.bytes[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert!(inflated == text);
}

#[test]
fn dms_send_explains_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.bin");
    std::fs::write(&file, b"abc").unwrap();
    let group: SocketAddr = "239.255.74.3:47323".parse().unwrap();

    let stderr = |extra: &[&str], files: &[&Path]| {
        let output = finish(send(files, group, extra));
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let missing = dir.path().join("missing.bin");
    assert!(stderr(&[], &[&missing]).contains("missing.bin"));
    assert!(stderr(&["--symbol-size", "1600"], &[&file]).contains("does not fit"));
    assert!(stderr(&["--symbol-size", "1401"], &[&file]).contains("multiple"));
    assert!(stderr(&["--rate", "fast"], &[&file]).contains("rate"));
    assert!(stderr(&["--fec", "ldpc"], &[&file]).contains("ldpc"));
    assert!(stderr(&["--flute-version", "3"], &[&file]).contains("FLUTE version"));
    assert!(stderr(&[], &[&file, &file]).contains("two files"));

    let output = Command::new(DMS)
        .args(["send", "--group", "239.255.1:5000", "--iface", "127.0.0.1"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--group"));
}

#[test]
fn ctrl_c_stops_dms_send_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.bin");
    // 20 MB at 10 Mbit/s would take 16 s.
    std::fs::write(&path, data(20_000_000, 4)).unwrap();
    let group: SocketAddr = "239.255.74.4:47324".parse().unwrap();
    let socket = joined(group);
    let child = send(
        &[&path],
        group,
        &["--rate", "10", "--fec", "nocode", "--quiet"],
    );
    // The first datagram means the handler is installed and sending began.
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(30);
    while socket.recv(&mut buf).is_err() && Instant::now() < deadline {}
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = finish(child);
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("stopped"), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("interrupted"));
}
