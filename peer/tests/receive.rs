//! The multicast receiver over real loopback multicast sockets, fed by our
//! sans-IO sender behind a paced loop. Each test has its own group port.
//! RaptorQ repair and a second carousel round absorb the datagrams a
//! loaded machine drops.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::io::{Cursor, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dms_fec::{BlockSize, FecScheme};
use dms_flute::lct::{ContentEncoding, FluteVersion};
use dms_flute::net::{Interface, SenderSocketConfig, sender_socket};
use dms_flute::{ObjectSpec, Sender, SenderConfig};
use dms_peer::receive::{
    LossModel, MulticastReceiver, ObjectProgress, ObjectState, ReceiveConfig, ReceiveEvent,
    ReceiveStats, TEMP_PREFIX,
};
use sha2::{Digest, Sha256};

const DEADLINE: Duration = Duration::from_secs(60);

fn group(port: u16) -> SocketAddr {
    SocketAddr::new(
        Ipv4Addr::new(239, 255, 31, (port % 200) as u8 + 1).into(),
        port,
    )
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 11) as u8)
        .collect()
}

fn spec(location: &str, data: &[u8]) -> ObjectSpec {
    let mut spec = ObjectSpec::new(location, Cursor::new(data.to_vec()));
    spec.repair_percent = 20;
    spec.sha256 = Some(Sha256::digest(data).into());
    spec
}

fn session(tsi: u64) -> SenderConfig {
    let mut config = SenderConfig::new(tsi, u32::MAX);
    config.carousel_rounds = 2;
    config.fdt_interval = Duration::from_millis(100);
    config
}

/// Sends the objects on a paced loop (a short sleep every few dozen
/// packets) in a thread.
fn send(group: SocketAddr, config: SenderConfig, objects: Vec<ObjectSpec>) -> JoinHandle<u64> {
    let mut sender = Sender::new(config).unwrap();
    for spec in objects {
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
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1500];
        let mut sent = 0u64;
        let start = Instant::now();
        while !sender.is_finished() && start.elapsed() < DEADLINE {
            match sender.poll_transmit(Instant::now(), &mut buf).unwrap() {
                Some(t) => {
                    // A full kernel buffer is one more loss for FEC to cover.
                    let _ = socket.send(&buf[..t.size]);
                    sent += 1;
                    if sent.is_multiple_of(24) {
                        std::thread::sleep(Duration::from_micros(500));
                    }
                }
                None => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        sent
    })
}

fn start(port: u16, out: &Path) -> (MulticastReceiver, std::sync::mpsc::Receiver<ReceiveEvent>) {
    start_with(ReceiveConfig::new(
        group(port),
        Interface::V4(Ipv4Addr::LOCALHOST),
        out,
    ))
}

fn start_with(
    config: ReceiveConfig,
) -> (MulticastReceiver, std::sync::mpsc::Receiver<ReceiveEvent>) {
    MulticastReceiver::start(config).unwrap()
}

/// Final progress of each object that finished, once `count` have (or the
/// deadline passed).
fn wait_for(events: &std::sync::mpsc::Receiver<ReceiveEvent>, count: usize) -> Vec<ObjectProgress> {
    let deadline = Instant::now() + DEADLINE;
    let mut finished = Vec::new();
    while finished.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(event) = events.recv_timeout(left) else {
            break;
        };
        if let ReceiveEvent::Object(p) = event
            && !matches!(p.state, ObjectState::Receiving)
        {
            finished.push(p);
        }
    }
    finished
}

fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn complete_path(p: &ObjectProgress) -> &Path {
    match &p.state {
        ObjectState::Complete { path, .. } => path,
        other => panic!("{} did not complete: {other:?}", p.name),
    }
}

#[test]
fn multi_mib_object_arrives_byte_exact_under_its_name() {
    let port = 45_301;
    let dir = tempfile::tempdir().unwrap();
    let (receiver, events) = start(port, dir.path());
    let data = pattern(3 << 20, 1);
    let sender = send(
        group(port),
        session(1),
        vec![spec("file:///firmware.bin", &data)],
    );

    let done = wait_for(&events, 1);
    sender.join().unwrap();
    let stats = receiver.stop().unwrap();
    assert_eq!(done.len(), 1, "object did not finish: {stats:?}");
    let path = complete_path(&done[0]);
    assert_eq!(path, dir.path().join("firmware.bin"));
    assert!(
        matches!(done[0].state, ObjectState::Complete { verified: true, size, .. } if size == data.len() as u64)
    );
    assert_eq!(done[0].bytes_decoded, data.len() as u64);
    assert!(std::fs::read(path).unwrap() == data, "content differs");
    assert_eq!(
        entries(dir.path()),
        BTreeSet::from(["firmware.bin".to_owned()])
    );
    assert!(stats.datagrams > 2000, "{stats:?}");
    assert_eq!(stats.objects_complete, 1);
}

#[test]
fn several_objects_in_one_session() {
    let port = 45_302;
    let dir = tempfile::tempdir().unwrap();
    let (receiver, events) = start(port, dir.path());
    let objects = [
        ("file:///a.bin", pattern(700_000, 2), FecScheme::RaptorQ),
        (
            "http://origin.example/v1/cfg.json",
            pattern(9_000, 3),
            FecScheme::NoCode,
        ),
        ("file:///one", pattern(1, 4), FecScheme::RaptorQ),
    ];
    let specs = objects
        .iter()
        .map(|(location, data, fec)| {
            let mut spec = spec(location, data);
            spec.fec = *fec;
            spec
        })
        .collect();
    let sender = send(group(port), session(2), specs);

    let done = wait_for(&events, 3);
    sender.join().unwrap();
    receiver.stop().unwrap();
    assert_eq!(done.len(), 3, "{done:?}");
    for (name, data) in [
        ("a.bin", &objects[0].1),
        ("cfg.json", &objects[1].1),
        ("one", &objects[2].1),
    ] {
        let p = done.iter().find(|p| p.name == name).unwrap();
        assert!(
            std::fs::read(complete_path(p)).unwrap() == *data,
            "{name} differs"
        );
    }
    assert_eq!(
        entries(dir.path()),
        BTreeSet::from(["a.bin", "cfg.json", "one"].map(str::to_owned))
    );
}

#[test]
fn gzip_encoded_object_is_written_decoded() {
    let port = 45_303;
    let dir = tempfile::tempdir().unwrap();
    let (receiver, events) = start(port, dir.path());
    let content = pattern(600_000, 5);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&content).unwrap();
    let encoded = gz.finish().unwrap();
    assert_ne!(encoded, content);
    let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    deflate.write_all(&content[..100_000]).unwrap();
    let deflated = deflate.finish().unwrap();

    let mut gz_spec = ObjectSpec::new("file:///os.img", Cursor::new(encoded));
    gz_spec.content_encoding = Some(ContentEncoding::Gzip);
    gz_spec.content_length = Some(content.len() as u64);
    gz_spec.sha256 = Some(Sha256::digest(&content).into());
    gz_spec.repair_percent = 20;
    let mut deflate_spec = ObjectSpec::new("file:///small.img", Cursor::new(deflated));
    deflate_spec.content_encoding = Some(ContentEncoding::Deflate);
    deflate_spec.sha256 = Some(Sha256::digest(&content[..100_000]).into());
    deflate_spec.repair_percent = 20;
    let sender = send(group(port), session(3), vec![gz_spec, deflate_spec]);

    let done = wait_for(&events, 2);
    sender.join().unwrap();
    receiver.stop().unwrap();
    assert_eq!(done.len(), 2, "{done:?}");
    let os = done.iter().find(|p| p.name == "os.img").unwrap();
    assert!(matches!(
        os.state,
        ObjectState::Complete { verified: true, .. }
    ));
    assert!(std::fs::read(complete_path(os)).unwrap() == content);
    let small = done.iter().find(|p| p.name == "small.img").unwrap();
    assert!(std::fs::read(complete_path(small)).unwrap() == content[..100_000]);
    assert_eq!(
        entries(dir.path()),
        BTreeSet::from(["os.img", "small.img"].map(str::to_owned))
    );
}

#[test]
fn encoded_object_with_a_wrong_digest_leaves_nothing() {
    let port = 45_304;
    let dir = tempfile::tempdir().unwrap();
    let (receiver, events) = start(port, dir.path());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&pattern(50_000, 6)).unwrap();
    let mut spec = ObjectSpec::new("file:///bad.img", Cursor::new(gz.finish().unwrap()));
    spec.content_encoding = Some(ContentEncoding::Gzip);
    spec.sha256 = Some([7; 32]);
    let sender = send(group(port), session(4), vec![spec]);

    let done = wait_for(&events, 1);
    sender.join().unwrap();
    let stats = receiver.stop().unwrap();
    assert_eq!(done.len(), 1);
    assert!(matches!(&done[0].state, ObjectState::Failed { reason } if reason.contains("SHA-256")));
    assert_eq!(stats.objects_failed, 1);
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

#[test]
fn hostile_content_locations_never_escape_the_output_directory() {
    let port = 45_305;
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let (receiver, events) = start(port, &out);
    let locations = [
        "file:///../x",
        "file:///a/..",
        "",
        "file:///%2e%2e%2fescaped",
        "file:///..%2F..%2Fetc",
        "file:///%00nul",
    ];
    let specs = locations
        .iter()
        .enumerate()
        .map(|(i, l)| spec(l, &pattern(3_000 + i, i as u8)))
        .collect();
    let sender = send(group(port), session(5), specs);

    let done = wait_for(&events, locations.len());
    sender.join().unwrap();
    receiver.stop().unwrap();
    assert_eq!(done.len(), locations.len(), "{done:?}");
    for p in &done {
        assert_eq!(complete_path(p).parent(), Some(out.as_path()));
    }
    assert_eq!(entries(parent.path()), BTreeSet::from(["out".to_owned()]));
    // TOIs are 1, 2, … in the order added; only "../x" gives a usable name.
    let expected: BTreeSet<String> = ["x", "toi-2", "toi-3", "toi-4", "toi-5", "toi-6"]
        .map(str::to_owned)
        .into();
    assert_eq!(entries(&out), expected);
}

#[test]
fn flute_v1_without_inband_fti_and_a_tsi_filter() {
    let port = 45_306;
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        ReceiveConfig::new(group(port), Interface::V4(Ipv4Addr::LOCALHOST), dir.path());
    config.flute = dms_flute::ReceiverConfig::for_tsi(9);
    let (receiver, events) = start_with(config);
    let wanted = pattern(400_000, 7);
    let mut v1 = session(9);
    v1.flute_version = FluteVersion::V1;
    v1.inband_fti = false;
    let other = send(
        group(port),
        session(10),
        vec![spec("file:///other.bin", &pattern(100_000, 8))],
    );
    let sender = send(group(port), v1, vec![spec("file:///wanted.bin", &wanted)]);

    let done = wait_for(&events, 1);
    sender.join().unwrap();
    other.join().unwrap();
    let stats = receiver.stop().unwrap();
    assert_eq!(done.len(), 1, "{stats:?}");
    assert_eq!(done[0].tsi, 9);
    assert!(std::fs::read(complete_path(&done[0])).unwrap() == wanted);
    assert!(stats.flute.tsi_filtered > 0, "{stats:?}");
    assert_eq!(
        entries(dir.path()),
        BTreeSet::from(["wanted.bin".to_owned()])
    );
}

#[test]
fn dropping_the_receiver_removes_temp_files_of_incomplete_objects() {
    let port = 45_307;
    let dir = tempfile::tempdir().unwrap();
    let (receiver, events) = start(port, dir.path());
    // Send only the first part of a session: the FDT and some blocks.
    let mut sender = Sender::new(session(11)).unwrap();
    sender
        .add_object(spec("file:///big.bin", &pattern(4 << 20, 9)))
        .unwrap();
    let socket = sender_socket(
        group(port),
        &SenderSocketConfig {
            interface: Interface::V4(Ipv4Addr::LOCALHOST),
            ..Default::default()
        },
    )
    .unwrap();
    let mut buf = vec![0u8; 1500];
    for i in 0..1500u32 {
        if let Some(t) = sender.poll_transmit(Instant::now(), &mut buf).unwrap() {
            let _ = socket.send(&buf[..t.size]);
        }
        if i.is_multiple_of(24) {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    // Wait (bounded) until a block was written, so a temp file exists.
    let deadline = Instant::now() + DEADLINE;
    let mut progressed = false;
    while !progressed && Instant::now() < deadline {
        if let Ok(ReceiveEvent::Object(p)) = events.recv_timeout(Duration::from_millis(100)) {
            progressed = p.bytes_decoded > 0;
        }
    }
    assert!(progressed, "no block decoded");
    assert!(
        entries(dir.path())
            .iter()
            .any(|n| n.starts_with(TEMP_PREFIX))
    );
    drop(receiver);
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}

/// Sends `datagrams` as UDP GSO trains (equal-size segments, the last one
/// possibly shorter), as a batching sender does; a receiver with GRO may get
/// them back as trains. Returns the most segments a train could have.
fn send_gso(group: SocketAddr, datagrams: &[Vec<u8>]) -> usize {
    let socket = sender_socket(
        group,
        &SenderSocketConfig {
            interface: Interface::V4(Ipv4Addr::LOCALHOST),
            ..Default::default()
        },
    )
    .unwrap();
    let state = quinn_udp::UdpSocketState::new((&socket).into()).unwrap();
    let max_segments = state.max_gso_segments().clamp(1, 16);
    let mut trains: Vec<(Vec<u8>, usize)> = Vec::new();
    for datagram in datagrams {
        match trains.last_mut() {
            Some((train, segment))
                if train.len() % *segment == 0
                    && datagram.len() <= *segment
                    && train.len() / *segment < max_segments =>
            {
                train.extend_from_slice(datagram);
            }
            _ => trains.push((datagram.clone(), datagram.len())),
        }
    }
    for (i, (train, segment)) in trains.iter().enumerate() {
        let transmit = quinn_udp::Transmit {
            destination: group,
            ecn: None,
            contents: train,
            segment_size: (train.len() > *segment).then_some(*segment),
            src_ip: None,
        };
        // quinn-udp made the socket non-blocking: retry a full buffer a
        // bounded number of times (a train lost is one more loss for FEC).
        for _ in 0..1000 {
            match state.try_send((&socket).into(), &transmit) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                _ => break,
            }
        }
        if i % 2 == 1 {
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    max_segments
}

#[test]
fn gso_trains_are_received_as_single_datagrams() {
    let port = 45_308;
    let dir = tempfile::tempdir().unwrap();
    let (receiver, events) = start(port, dir.path());
    let data = pattern(2 << 20, 10);
    let mut sender = Sender::new(session(12)).unwrap();
    sender.add_object(spec("file:///gso.bin", &data)).unwrap();
    let mut buf = vec![0u8; 1500];
    let mut datagrams = Vec::new();
    while let Some(t) = sender.poll_transmit(Instant::now(), &mut buf).unwrap() {
        datagrams.push(buf[..t.size].to_vec());
    }
    let sending = std::thread::spawn(move || send_gso(group(port), &datagrams));

    let done = wait_for(&events, 1);
    let max_segments = sending.join().unwrap();
    let stats = receiver.stop().unwrap();
    assert_eq!(done.len(), 1, "{stats:?}");
    assert!(std::fs::read(complete_path(&done[0])).unwrap() == data);
    assert_eq!(stats.flute.malformed, 0, "{stats:?}");
    if max_segments > 1 {
        // Loopback hands GSO trains to a GRO socket whole: they were split.
        assert!(stats.coalesced > 0, "{stats:?}");
    }
}

/// A 4 MiB object of 64 KiB blocks sent in four carousel rounds, received
/// with bursts of loss injected (about 100 datagrams, more than a block,
/// a tenth of the datagrams in all) and at most 128 KiB of blocks held
/// ahead of a gap: blocks lost in the first round wait for a later one
/// while every block after them is written and released.
fn burst_run(
    port: u16,
    tsi: u64,
    sha256: Option<[u8; 32]>,
) -> (
    Vec<u8>,
    tempfile::TempDir,
    Vec<ObjectProgress>,
    ReceiveStats,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        ReceiveConfig::new(group(port), Interface::V4(Ipv4Addr::LOCALHOST), dir.path());
    config.flute.max_ahead_bytes = 128 << 10;
    config.loss = Some(LossModel {
        rate: 0.1,
        mean_burst: Some(100.0),
        seed: 7,
    });
    let (receiver, events) = start_with(config);
    let data = pattern(4 << 20, 9);
    let mut spec = spec("file:///burst.img", &data);
    spec.block_size = BlockSize::Bytes(64 << 10);
    if let Some(sha256) = sha256 {
        spec.sha256 = Some(sha256);
    }
    let mut session = session(tsi);
    session.carousel_rounds = 4;
    let sender = send(group(port), session, vec![spec]);
    let done = wait_for(&events, 1);
    sender.join().unwrap();
    let stats = receiver.stop().unwrap();
    (data, dir, done, stats)
}

#[test]
fn a_burst_beyond_the_ahead_budget_is_hashed_from_the_file_before_the_rename() {
    let (data, dir, done, stats) = burst_run(45_321, 21, None);
    assert_eq!(done.len(), 1, "object did not finish: {stats:?}");
    assert!(stats.dropped_injected > 0);
    // Blocks were released: the receiver could not hash in order.
    assert!(stats.flute.digests_deferred >= 1, "{stats:?}");
    assert!(stats.flute.blocks_released > 0, "{stats:?}");
    let path = complete_path(&done[0]);
    assert_eq!(path, dir.path().join("burst.img"));
    // Verified: the SHA-256 of the file read back matched the FDT's.
    assert!(
        matches!(done[0].state, ObjectState::Complete { verified: true, size, .. } if size == data.len() as u64),
        "{:?}",
        done[0].state
    );
    assert!(std::fs::read(path).unwrap() == data, "content differs");
    assert_eq!(
        entries(dir.path()),
        BTreeSet::from(["burst.img".to_owned()])
    );
}

#[test]
fn a_released_object_with_a_wrong_digest_leaves_nothing() {
    let (_, dir, done, stats) = burst_run(45_322, 22, Some([7; 32]));
    assert_eq!(done.len(), 1, "object did not finish: {stats:?}");
    assert!(stats.flute.digests_deferred >= 1, "{stats:?}");
    assert!(
        matches!(&done[0].state, ObjectState::Failed { reason } if reason.contains("SHA-256") && reason.contains("read back")),
        "{:?}",
        done[0].state
    );
    assert_eq!(stats.objects_failed, 1);
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
}
