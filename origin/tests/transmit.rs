//! The transmitter over real sockets: loopback multicast to a joined socket
//! whose datagrams feed the sans-IO FLUTE receiver.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use dms_fec::FecScheme;
use dms_flute::net::{Interface, ReceiverSocketConfig, receiver_socket};
use dms_flute::receiver::{Event, Receiver, ReceiverConfig, Verification};
use dms_flute::{ObjectSpec, Sender, SenderConfig, SenderError};
use dms_origin::transmit::{TransmitConfig, TransmitError, Transmitter, ntp_expires};

const LOOPBACK: Interface = Interface::V4(Ipv4Addr::LOCALHOST);

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
            interface: LOOPBACK,
            ..Default::default()
        },
    )
    .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    socket
}

fn config(group: SocketAddr, rate_bps: u64) -> TransmitConfig {
    let mut config = TransmitConfig::new(group);
    config.socket.interface = LOOPBACK;
    config.rate_bps = rate_bps;
    config
}

/// Receives until `count` objects are complete and verified, the session
/// closes, or `timeout` passes; returns the objects by Content-Location.
fn receive(
    socket: UdpSocket,
    count: usize,
    timeout: Duration,
) -> (HashMap<String, Vec<u8>>, dms_flute::receiver::Stats) {
    let mut receiver = Receiver::new(ReceiverConfig::default());
    let mut buf = vec![0u8; 65_536];
    let mut partial: HashMap<u128, Vec<u8>> = HashMap::new();
    let mut done = HashMap::new();
    let deadline = Instant::now() + timeout;
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
                    assert_ne!(md5, Verification::AfterContentDecoding);
                    // A Content-MD5 given without a SHA-256 was checked.
                    if info
                        .file
                        .as_ref()
                        .is_some_and(|f| f.content_md5.is_some() && f.sha256.is_none())
                    {
                        assert_eq!(md5, Verification::Verified);
                    }
                    let location = info.content_location().unwrap().to_owned();
                    done.insert(location, partial.remove(&toi).unwrap_or_default());
                }
                Event::ObjectFailed { info, .. } => panic!("object failed: {info:?}"),
                _ => {}
            }
        }
    }
    (done, receiver.stats().clone())
}

#[test]
fn a_multi_mib_object_arrives_intact_at_a_joined_receiver() {
    let group: SocketAddr = "239.255.73.1:47311".parse().unwrap();
    let socket = joined(group);
    let receiving = thread::spawn(move || receive(socket, 1, Duration::from_secs(60)));

    let object = data(6 << 20, 1);
    let mut sender_config = SenderConfig::new(7, ntp_expires(Duration::from_secs(600)));
    // Margin for a loaded machine dropping packets: repair symbols and a
    // second round.
    sender_config.carousel_rounds = 2;
    let mut transmitter = Transmitter::new(
        Sender::new(sender_config).unwrap(),
        config(group, 150_000_000),
    )
    .unwrap();
    let mut spec = ObjectSpec::new("file:///firmware.bin", Cursor::new(object.clone()));
    spec.repair_percent = 20;
    spec.content_md5 = None;
    let toi = transmitter.add_object(spec).unwrap();
    let live = transmitter.live_stats();
    let report = transmitter.run().unwrap();

    let (received, stats) = receiving.join().unwrap();
    assert!(
        received.get("file:///firmware.bin") == Some(&object),
        "object missing or different; receiver {stats:?}, sender {report:?}"
    );
    assert!(!report.stopped);
    assert_eq!(report.packets, report.sender.packets);
    assert_eq!(report.bytes, report.sender.bytes);
    assert_eq!(live.packets(), report.packets);
    let progress = &live.objects()[0];
    assert_eq!(progress.toi(), toi);
    assert_eq!(progress.content_location(), "file:///firmware.bin");
    assert_eq!(progress.packets(), progress.expected_packets());
    assert_eq!(
        progress.packets(),
        report.sender.object(toi).unwrap().packets
    );
    assert!(report.send_calls <= report.packets);
}

#[test]
fn an_object_encoded_ahead_arrives_intact_with_its_digests_set_late() {
    let group: SocketAddr = "239.255.73.4:47314".parse().unwrap();
    let socket = joined(group);
    let receiving = thread::spawn(move || receive(socket, 1, Duration::from_secs(60)));

    let object = data(5 << 20, 4);
    let mut sender_config = SenderConfig::new(9, ntp_expires(Duration::from_secs(600)));
    sender_config.carousel_rounds = 2;
    let mut transmit = config(group, 150_000_000);
    // Room for a few blocks only: the helper waits for the sender.
    transmit.encode_ahead_bytes = 300_000;
    let mut transmitter = Transmitter::new(Sender::new(sender_config).unwrap(), transmit).unwrap();
    let mut spec = ObjectSpec::new("file:///ahead.bin", Cursor::new(object.clone()));
    spec.repair_percent = 20;
    let toi = transmitter.add_object(spec).unwrap();
    transmitter.encode_ahead_from(toi, Cursor::new(object.clone()));
    transmitter.start_encoding_ahead().unwrap();
    // Digests given after the helper started, before anything is sent:
    // the receiver checks the MD5.
    let md5: [u8; 16] = <md5::Md5 as md5::Digest>::digest(&object).into();
    transmitter.set_digests(toi, Some(md5), None).unwrap();
    let report = transmitter.run().unwrap();

    let (received, stats) = receiving.join().unwrap();
    assert!(
        received.get("file:///ahead.bin") == Some(&object),
        "object missing or different; receiver {stats:?}, sender {report:?}"
    );
    // Each block encoded once, by the helper or (when it lagged) the sender.
    let blocks = (5u64 << 20).div_ceil(1 << 20);
    assert!(report.sender.blocks_encoded + report.sender.blocks_supplied >= blocks);
    assert!(report.sender.blocks_encoded + report.sender.blocks_supplied <= blocks + 1);
}

#[test]
fn several_no_code_objects_arrive_without_gso() {
    let group: SocketAddr = "239.255.73.2:47312".parse().unwrap();
    let socket = joined(group);
    let receiving = thread::spawn(move || receive(socket, 3, Duration::from_secs(60)));

    let mut sender_config = SenderConfig::new(8, ntp_expires(Duration::from_secs(600)));
    // No FEC: repeat the objects so a dropped packet comes again.
    sender_config.carousel_rounds = 4;
    let mut transmit_config = config(group, 100_000_000);
    transmit_config.gso = false;
    let mut transmitter =
        Transmitter::new(Sender::new(sender_config).unwrap(), transmit_config).unwrap();
    assert_eq!(transmitter.gso_segments(), 1);
    let objects: Vec<(String, Vec<u8>)> = [1usize, 1401, 300_001]
        .iter()
        .enumerate()
        .map(|(i, &len)| (format!("file:///obj{i}"), data(len, i as u64 + 10)))
        .collect();
    for (location, bytes) in &objects {
        let mut spec = ObjectSpec::new(location.clone(), Cursor::new(bytes.clone()));
        spec.fec = FecScheme::NoCode;
        transmitter.add_object(spec).unwrap();
    }
    let report = transmitter.run().unwrap();
    assert_eq!(report.send_calls, report.packets);

    let (received, _) = receiving.join().unwrap();
    for (location, bytes) in &objects {
        assert!(received.get(location) == Some(bytes), "{location}");
    }
}

/// A source of `len` bytes made on the fly: a large object without memory.
struct Pattern {
    len: u64,
    pos: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.len.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = ((self.pos + i as u64) % 251) as u8;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Pattern {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => self.len.saturating_add_signed(d),
            SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
        };
        Ok(self.pos)
    }
}

#[test]
fn the_stop_handle_ends_a_long_transmission() {
    let group: SocketAddr = "239.255.73.3:47313".parse().unwrap();
    let sender = Sender::new(SenderConfig::new(9, ntp_expires(Duration::from_secs(60)))).unwrap();
    // 1 GiB at 20 Mbit/s would take over 7 minutes. No-code: the test is
    // about stopping, not about encoding (slow in a debug build).
    let mut transmitter = Transmitter::new(sender, config(group, 20_000_000)).unwrap();
    let mut spec = ObjectSpec::new(
        "file:///big.bin",
        Pattern {
            len: 1 << 30,
            pos: 0,
        },
    );
    spec.fec = FecScheme::NoCode;
    transmitter.add_object(spec).unwrap();
    let stop = transmitter.stop_handle();
    let live = transmitter.live_stats();
    let running = thread::spawn(move || transmitter.run());

    // Wait (bounded) until packets flow, then stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    while live.packets() == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(live.packets() > 0, "nothing was sent");
    stop.stop();
    assert!(stop.is_stopped());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !running.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert!(running.is_finished(), "the transmitter did not stop");
    let report = running.join().unwrap().unwrap();
    assert!(report.stopped);
    let progress = &live.objects()[0];
    assert!(progress.packets() < progress.expected_packets());
    assert!(progress.fraction() < 1.0);
}

#[test]
fn bad_configurations_are_refused() {
    let group: SocketAddr = "239.255.73.4:47314".parse().unwrap();
    let sender = || Sender::new(SenderConfig::new(1, 0)).unwrap();

    let mut c = config(group, 0);
    c.max_segments = 0;
    assert!(matches!(
        Transmitter::new(sender(), c),
        Err(TransmitError::InvalidConfig(_))
    ));

    // An IPv4 group cannot be sent on an interface index.
    let mut c = config(group, 0);
    c.socket.interface = Interface::Index(1);
    let err = Transmitter::new(sender(), c).unwrap_err();
    assert!(matches!(err, TransmitError::Socket { .. }), "{err}");
    assert!(err.to_string().contains("239.255.73.4:47314"));

    // A symbol larger than the datagram.
    let mut transmitter = Transmitter::new(sender(), config(group, 0)).unwrap();
    let mut spec = ObjectSpec::new("file:///x", Cursor::new(vec![0u8; 10_000]));
    spec.symbol_size = 1600;
    let err = transmitter.add_object(spec).unwrap_err();
    assert!(
        matches!(
            err,
            TransmitError::Sender(SenderError::SymbolTooLarge {
                symbol_size: 1600,
                ..
            })
        ),
        "{err}"
    );
}
