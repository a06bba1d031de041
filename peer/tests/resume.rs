//! A receiver with a state directory resumes after a restart: the blocks it
//! had written and the symbols it had of the next block are reloaded, a torn
//! spool tail is cut off and a damaged block is received again. Datagrams
//! come from our sans-IO sender over loopback unicast, chosen block by
//! block; every phase is resent until the receiver has it, so a dropped
//! datagram only costs a resend.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{Cursor, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver as Events;
use std::time::{Duration, Instant};

use dms_fec::Oti;
use dms_flute::net::Interface;
use dms_flute::{AlcPacket, ObjectSpec, Sender, SenderConfig};
use dms_peer::receive::{
    ManifestCheck, MulticastReceiver, ObjectProgress, ObjectState, ReceiveConfig, ReceiveEvent,
    STATE_OBJECTS_DIR, TEMP_PREFIX,
};
use sha2::{Digest, Sha256};

const DEADLINE: Duration = Duration::from_secs(60);
const TSI: u64 = 31;
const T: u16 = 1024;
const BLOCKS: u32 = 4;
/// 4 blocks of 50 symbols.
const LEN: usize = 200 * T as usize;

fn pattern() -> Vec<u8> {
    (0..LEN)
        .map(|i| (i as u8).wrapping_mul(37) ^ (i >> 9) as u8)
        .collect()
}

/// A datagram of the session: FDT (None) or a symbol of (SBN, ESI).
struct Datagram {
    id: Option<(u32, u32)>,
    bytes: Vec<u8>,
}

/// Every datagram of one carousel round of the object (10 % repair).
fn datagrams(data: &[u8]) -> (Vec<Datagram>, Oti) {
    let oti = Oti::raptorq(LEN as u64, T, BLOCKS, 1, 4).unwrap();
    let mut spec = ObjectSpec::new("file:///fw.bin", Cursor::new(data.to_vec()));
    spec.oti = Some(oti);
    spec.repair_percent = 10;
    spec.sha256 = Some(Sha256::digest(data).into());
    let mut config = SenderConfig::new(TSI, u32::MAX);
    config.carousel_rounds = 1;
    config.fdt_interval = Duration::from_millis(1);
    let mut sender = Sender::new(config).unwrap();
    sender.add_object(spec).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1500];
    let start = Instant::now();
    while !sender.is_finished() && start.elapsed() < DEADLINE {
        match sender.poll_transmit(Instant::now(), &mut buf).unwrap() {
            Some(t) => {
                let bytes = buf[..t.size].to_vec();
                let packet = AlcPacket::decode(&bytes).unwrap();
                let id = match (packet.header.toi, packet.payload_id) {
                    (0, _) | (_, None) => None,
                    (_, Some(id)) => Some((id.sbn(), id.esi())),
                };
                out.push(Datagram { id, bytes });
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    (out, oti)
}

fn start(out: &Path, state: &Path) -> (MulticastReceiver, Events<ReceiveEvent>) {
    start_with(out, state, false)
}

fn start_with(
    out: &Path,
    state: &Path,
    require_manifest: bool,
) -> (MulticastReceiver, Events<ReceiveEvent>) {
    let mut config = ReceiveConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Interface::V4(Ipv4Addr::LOCALHOST),
        out,
    );
    config.state = Some(state.to_owned());
    config.require_manifest = require_manifest;
    MulticastReceiver::start(config).unwrap()
}

/// Sends the datagrams `pick` selects (FDT ones always), paced.
fn send(to: SocketAddr, all: &[Datagram], pick: impl Fn(u32, u32) -> bool) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for (n, d) in all
        .iter()
        .filter(|d| d.id.is_none_or(|(sbn, esi)| pick(sbn, esi)))
        .enumerate()
    {
        let _ = socket.send_to(&d.bytes, to);
        if n % 8 == 7 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Symbols block `sbn` still needs (0 once decoded).
fn needed(receiver: &MulticastReceiver, sbn: u32) -> Option<u32> {
    let gaps = receiver.control().gaps(TSI, 1)?;
    Some(
        gaps.gaps
            .iter()
            .find(|g| g.sbn == sbn)
            .map_or(0, |g| g.symbols_needed),
    )
}

/// Phase one: blocks 0 and 1 whole and 20 source symbols of block 2 (of
/// 50), resent until the receiver has them.
fn receive_part(to: SocketAddr, receiver: &MulticastReceiver, all: &[Datagram]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        send(to, all, |sbn, esi| sbn < 2 || (sbn == 2 && esi < 20));
        std::thread::sleep(Duration::from_millis(200));
        let done = needed(receiver, 0) == Some(0)
            && needed(receiver, 1) == Some(0)
            && needed(receiver, 2).is_some_and(|n| n <= 30);
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "phase one never arrived");
    }
}

/// The last progress of the object until events pause, and whether one
/// said it completed.
fn progress(events: &Events<ReceiveEvent>, pause: Duration) -> Option<ObjectProgress> {
    let mut last = None;
    while let Ok(event) = events.recv_timeout(pause) {
        if let ReceiveEvent::Object(p) = event {
            last = Some(p);
        }
    }
    last
}

/// Sends everything until the object completes; returns its path.
fn complete(to: SocketAddr, events: &Events<ReceiveEvent>, all: &[Datagram]) -> PathBuf {
    let deadline = Instant::now() + DEADLINE;
    loop {
        send(to, all, |_, _| true);
        if let Some(p) = progress(events, Duration::from_millis(500)) {
            match p.state {
                ObjectState::Complete { path, .. } => return path,
                ObjectState::Failed { reason } => panic!("object failed: {reason}"),
                _ => {}
            }
        }
        assert!(Instant::now() < deadline, "the object never completed");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn object_dir(state: &Path) -> PathBuf {
    state.join(STATE_OBJECTS_DIR).join(format!("{TSI}-1"))
}

#[test]
fn a_restarted_receiver_resumes_with_its_blocks_and_spooled_symbols() {
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    std::fs::create_dir(&out).unwrap();
    let data = pattern();
    let (all, oti) = datagrams(&data);
    let block = oti.layout().block_len(0).unwrap() as u64;

    let (receiver, _events) = start(&out, &state);
    receive_part(receiver.local_addr().unwrap(), &receiver, &all);
    drop(receiver);
    // Nothing under a final name; the partial file is in the state.
    assert!(names(&out).is_empty(), "{:?}", names(&out));
    let kept = names(&object_dir(&state));
    assert!(kept.contains(&"data".to_owned()), "{kept:?}");
    assert!(kept.contains(&"have.json".to_owned()), "{kept:?}");
    assert!(kept.contains(&"spool-2".to_owned()), "{kept:?}");

    let (receiver, events) = start(&out, &state);
    let to = receiver.local_addr().unwrap();
    let p = progress(&events, Duration::from_secs(2)).expect("no progress after restart");
    assert_eq!(p.state, ObjectState::Receiving);
    assert_eq!(p.name, "fw.bin");
    assert_eq!(p.bytes_decoded, 2 * block, "blocks 0 and 1 reloaded");
    assert_eq!(p.total_bytes, LEN as u64);
    assert_eq!(needed(&receiver, 1), Some(0));
    let k2 = oti.layout().source_symbols(2).unwrap();
    assert!(
        needed(&receiver, 2).unwrap() <= k2 - 20,
        "block 2's spooled symbols were not reloaded"
    );

    let path = complete(to, &events, &all);
    assert_eq!(path, out.join("fw.bin"));
    assert!(
        std::fs::read(&path).unwrap() == data,
        "resumed file differs"
    );
    assert_eq!(names(&out), ["fw.bin"]);
    // A delivered object's state is gone.
    assert!(!object_dir(&state).exists());
    drop(receiver);
}

#[test]
fn a_torn_spool_tail_is_cut_and_a_damaged_block_is_received_again() {
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    std::fs::create_dir(&out).unwrap();
    let data = pattern();
    let (all, oti) = datagrams(&data);

    let (receiver, _events) = start(&out, &state);
    receive_part(receiver.local_addr().unwrap(), &receiver, &all);
    drop(receiver);

    let object = object_dir(&state);
    // A record torn by a crash mid-append: a header promising more than
    // follows.
    let spool = object.join("spool-2");
    let good_len = std::fs::metadata(&spool).unwrap().len();
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&spool)
        .unwrap();
    torn.write_all(&[0xe8, 0x03, 0, 0, 21, 0, 0, 0, 1, 2, 3, 4, 9, 9])
        .unwrap();
    drop(torn);
    // Block 0's bytes on disk are damaged.
    let partial = object.join("data");
    let mut bytes = std::fs::read(&partial).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&partial, &bytes).unwrap();

    let (receiver, events) = start(&out, &state);
    let to = receiver.local_addr().unwrap();
    let p = progress(&events, Duration::from_secs(2)).expect("no progress after restart");
    assert_eq!(p.state, ObjectState::Receiving);
    // Block 0 is missing again; block 1, reloaded, is out ahead of it.
    assert_eq!(p.bytes_decoded, oti.layout().block_len(1).unwrap() as u64);
    let k0 = oti.layout().source_symbols(0).unwrap();
    assert_eq!(needed(&receiver, 0), Some(k0), "the damaged block was used");
    assert_eq!(needed(&receiver, 1), Some(0), "block 1 was not reloaded");
    let k2 = oti.layout().source_symbols(2).unwrap();
    assert!(needed(&receiver, 2).unwrap() <= k2 - 20);
    assert_eq!(
        std::fs::metadata(&spool).unwrap().len(),
        good_len,
        "the torn tail was not cut off"
    );
    assert!(
        !names(&out).iter().any(|n| n == "fw.bin"),
        "a partial object is visible"
    );

    let path = complete(to, &events, &all);
    assert!(
        std::fs::read(&path).unwrap() == data,
        "resumed file differs"
    );
    assert!(!object.exists());
    assert!(
        !names(&out).iter().any(|n| n.starts_with(TEMP_PREFIX)),
        "{:?}",
        names(&out)
    );
}

#[test]
fn reloaded_blocks_wait_for_the_manifest_and_one_that_contradicts_it_is_received_again() {
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    std::fs::create_dir(&out).unwrap();
    let data = pattern();
    let (all, oti) = datagrams(&data);
    let layout = oti.layout();

    let (receiver, _events) = start_with(&out, &state, true);
    receive_part(receiver.local_addr().unwrap(), &receiver, &all);
    drop(receiver);

    // Block 1 is changed on disk, and have.json made to agree (its CRC
    // matches): only the manifest's block hash can tell.
    let object = object_dir(&state);
    let partial = object.join("data");
    let mut bytes = std::fs::read(&partial).unwrap();
    let range = layout.block_range(1).unwrap();
    let (start, end) = (range.start as usize, range.end as usize);
    bytes[start + 7] ^= 0x01;
    std::fs::write(&partial, &bytes).unwrap();
    let crc = |r: std::ops::Range<usize>| crc32fast::hash(&bytes[r]);
    let have = serde_json::json!({
        "blocks": [[0, crc(0..start)], [1, crc(start..end)]]
    });
    std::fs::write(object.join("have.json"), have.to_string()).unwrap();

    let (receiver, events) = start_with(&out, &state, true);
    let to = receiver.local_addr().unwrap();
    let p = progress(&events, Duration::from_secs(2)).expect("no progress after restart");
    assert_eq!(p.bytes_decoded, 0, "blocks were used before the manifest");
    let k = |sbn| layout.source_symbols(sbn).unwrap();
    assert_eq!(needed(&receiver, 0), Some(k(0)));

    let block_sha256: Vec<[u8; 32]> = (0..BLOCKS)
        .map(|sbn| {
            let r = layout.block_range(sbn).unwrap();
            Sha256::digest(&data[r.start as usize..r.end as usize]).into()
        })
        .collect();
    receiver.control().set_manifest(
        TSI,
        1,
        ManifestCheck {
            size: LEN as u64,
            sha256: Sha256::digest(&data).into(),
            block_sha256,
        },
    );
    let p = progress(&events, Duration::from_secs(2)).expect("no progress after the manifest");
    assert_eq!(p.state, ObjectState::Receiving);
    assert_eq!(
        p.bytes_decoded,
        layout.block_len(0).unwrap() as u64,
        "block 0 matches the manifest; block 1 does not"
    );
    assert_eq!(
        needed(&receiver, 1),
        Some(k(1)),
        "the contradicted block was used"
    );

    let path = complete(to, &events, &all);
    assert!(
        std::fs::read(&path).unwrap() == data,
        "resumed file differs"
    );
    assert!(!object.exists());
}
