//! `Control::adopt`: a receiver that never saw an object on the broadcast
//! is told of it (as a peer's announcement would), needs every block of
//! it, and completes it from symbols fed by repair alone — verified
//! against its SHA-256 and, when required, its manifest check, and
//! renamed to its Content-Location's name like a broadcast object.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::Cursor;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::mpsc::Receiver as Events;
use std::time::{Duration, Instant};

use dms_fec::{Oti, PayloadId};
use dms_flute::net::Interface;
use dms_flute::{AlcPacket, ObjectSpec, Sender, SenderConfig};
use dms_peer::receive::{
    ADOPTED_TOI_BASE, ADOPTED_TSI, AdoptError, AdoptedObject, ManifestCheck, MulticastReceiver,
    ObjectProgress, ObjectState, ReceiveConfig, ReceiveEvent, RepairSymbol,
};
use sha2::{Digest, Sha256};

const DEADLINE: Duration = Duration::from_secs(60);
const T: u16 = 1024;
const BLOCKS: u32 = 3;
/// 3 blocks of 40 symbols.
const LEN: usize = 120 * T as usize;
const LOCATION: &str = "https://origin.example/dl/abc/fw.bin";

fn pattern() -> Vec<u8> {
    (0..LEN)
        .map(|i| (i as u8).wrapping_mul(29) ^ (i >> 10) as u8)
        .collect()
}

/// Every symbol a sender sends of the object (source and 25 % repair),
/// with its OTI: what peers or the repair service could give.
fn symbols(data: &[u8]) -> (Vec<RepairSymbol>, Oti) {
    let oti = Oti::raptorq(LEN as u64, T, BLOCKS, 1, 4).unwrap();
    let mut spec = ObjectSpec::new(LOCATION, Cursor::new(data.to_vec()));
    spec.oti = Some(oti);
    spec.repair_percent = 25;
    let mut config = SenderConfig::new(5, u32::MAX);
    config.carousel_rounds = 1;
    let mut sender = Sender::new(config).unwrap();
    sender.add_object(spec).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1500];
    let start = Instant::now();
    while !sender.is_finished() && start.elapsed() < DEADLINE {
        match sender.poll_transmit(Instant::now(), &mut buf).unwrap() {
            Some(t) => {
                let packet = AlcPacket::decode(&buf[..t.size]).unwrap();
                if let (toi, Some(id)) = (packet.header.toi, packet.payload_id)
                    && toi != 0
                {
                    out.push((PayloadId::new(id.sbn(), id.esi()), packet.symbols.to_vec()));
                }
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    (out, oti)
}

fn start(out: &Path, require_manifest: bool) -> (MulticastReceiver, Events<ReceiveEvent>) {
    let mut config = ReceiveConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        Interface::V4(Ipv4Addr::LOCALHOST),
        out,
    );
    config.require_manifest = require_manifest;
    MulticastReceiver::start(config).unwrap()
}

/// The next event of the adopted object that is not `Receiving`, or the
/// last `Receiving` one once none came for `pause`.
fn settle(events: &Events<ReceiveEvent>, pause: Duration) -> Option<ObjectProgress> {
    let mut last = None;
    while let Ok(event) = events.recv_timeout(pause) {
        if let ReceiveEvent::Object(p) = event {
            assert_eq!((p.tsi, p.toi), (ADOPTED_TSI, ADOPTED_TOI_BASE));
            let done = !matches!(p.state, ObjectState::Receiving);
            last = Some(p);
            if done {
                break;
            }
        }
    }
    last
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn an_adopted_object_is_completed_by_repair_and_waits_for_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern();
    let (all, oti) = symbols(&data);
    let (receiver, events) = start(dir.path(), true);
    let control = receiver.control();

    let mut object = AdoptedObject::new(LOCATION, LEN as u64, oti);
    object.sha256 = Some(Sha256::digest(&data).into());
    object.manifest_uri = Some("https://origin.example/manifest/abc".into());
    let gaps = control
        .adopt(ADOPTED_TSI, ADOPTED_TOI_BASE, object.clone())
        .unwrap();
    // Nothing of it was received: every block needs all its symbols.
    assert_eq!(gaps.oti, oti);
    assert!(!gaps.failed);
    assert_eq!(gaps.gaps.len(), BLOCKS as usize);
    let k = oti.layout();
    for g in &gaps.gaps {
        assert_eq!(
            g.symbols_needed as usize,
            k.block_len(g.sbn).unwrap() / T as usize
        );
    }
    // Reported like a broadcast object.
    let started = settle(&events, Duration::from_secs(1)).unwrap();
    assert!(matches!(started.state, ObjectState::Receiving));
    assert_eq!(started.content_location.as_deref(), Some(LOCATION));
    assert_eq!(started.name, "fw.bin");
    assert_eq!(
        started.manifest.as_deref(),
        Some("https://origin.example/manifest/abc")
    );
    assert_eq!(started.total_bytes, LEN as u64);
    // The same numbers cannot be taken twice.
    assert_eq!(
        control.adopt(ADOPTED_TSI, ADOPTED_TOI_BASE, object),
        Err(AdoptError::InUse {
            tsi: ADOPTED_TSI,
            toi: ADOPTED_TOI_BASE
        })
    );

    // Repair symbols only for the first block, then every other one.
    let first: Vec<RepairSymbol> = all.iter().filter(|(id, _)| id.sbn == 0).cloned().collect();
    let left = control
        .repair(ADOPTED_TSI, ADOPTED_TOI_BASE, first)
        .unwrap();
    assert_eq!(
        left.gaps.iter().map(|g| g.sbn).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let rest: Vec<RepairSymbol> = all
        .iter()
        .filter(|(id, _)| id.sbn != 0 && id.esi % 5 != 0)
        .cloned()
        .collect();
    let left = control.repair(ADOPTED_TSI, ADOPTED_TOI_BASE, rest).unwrap();
    assert!(left.gaps.is_empty(), "{left:?}");

    // Whole, but held until its manifest check is given.
    let held = settle(&events, Duration::from_secs(1)).unwrap();
    assert!(matches!(held.state, ObjectState::Receiving), "{held:?}");
    assert!(!dir.path().join("fw.bin").exists());
    let block_sha256 = (0..BLOCKS)
        .map(|sbn| {
            let start = k.block_offset(sbn).unwrap() as usize;
            Sha256::digest(&data[start..start + k.block_len(sbn).unwrap()]).into()
        })
        .collect();
    control.set_manifest(
        ADOPTED_TSI,
        ADOPTED_TOI_BASE,
        ManifestCheck {
            size: LEN as u64,
            sha256: Sha256::digest(&data).into(),
            block_sha256,
        },
    );
    let done = settle(&events, DEADLINE).unwrap();
    match &done.state {
        ObjectState::Complete { path, verified, .. } => {
            assert!(*verified);
            assert_eq!(path, &dir.path().join("fw.bin"));
        }
        other => panic!("not complete: {other:?}"),
    }
    assert!(std::fs::read(dir.path().join("fw.bin")).unwrap() == data);
    assert_eq!(names(dir.path()), vec!["fw.bin".to_owned()]);
    receiver.stop().unwrap();
}

#[test]
fn an_adopted_object_whose_digest_does_not_match_fails_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern();
    let (all, oti) = symbols(&data);
    let (receiver, events) = start(dir.path(), false);
    let control = receiver.control();
    let mut object = AdoptedObject::new(LOCATION, LEN as u64, oti);
    // A peer announced another object's digest.
    object.sha256 = Some(Sha256::digest(b"something else").into());
    let toi = ADOPTED_TOI_BASE;
    control.adopt(ADOPTED_TSI, toi, object).unwrap();
    let left = control.repair(ADOPTED_TSI, toi, all).unwrap();
    assert!(left.gaps.is_empty());
    let done = settle(&events, DEADLINE).unwrap();
    assert!(matches!(done.state, ObjectState::Failed { .. }), "{done:?}");
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    receiver.stop().unwrap();
}
