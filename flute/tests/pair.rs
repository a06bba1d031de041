//! Our sender to our receiver, in memory with a simulated clock: several
//! objects of every scheme (Raptor with and without sub-blocks), with
//! packets lost, duplicated and reordered.

#![allow(clippy::unwrap_used)] // test code: a panic is a failed test

use std::collections::HashMap;
use std::io::Cursor;
use std::time::{Duration, Instant};

use dms_fec::{FecScheme, Oti};
use dms_flute::receiver::{Event, Verification};
use dms_flute::{ObjectSpec, Receiver, ReceiverConfig, Sender, SenderConfig, TransmitKind};
use sha2::{Digest, Sha256};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 9) as u8)
        .collect()
}

#[test]
fn sender_to_receiver_with_loss_duplicates_and_reordering() {
    let objects = [
        (
            "file:///firmware.bin",
            pattern(300_000, 1),
            FecScheme::RaptorQ,
        ),
        ("file:///config.json", pattern(5_000, 2), FecScheme::NoCode),
        ("file:///one-byte", pattern(1, 3), FecScheme::RaptorQ),
        ("file:///mbms.bin", pattern(200_000, 4), FecScheme::Raptor),
        // Fewer than four symbols of 1024: Raptor sends it with a smaller T.
        ("file:///tiny", pattern(20, 5), FecScheme::Raptor),
    ];
    let mut sender = Sender::new(SenderConfig::new(7, 4_000_000_000)).unwrap();
    let mut tois = HashMap::new();
    for (location, data, fec) in &objects {
        let mut spec = ObjectSpec::new(*location, Cursor::new(data.clone()));
        spec.fec = *fec;
        spec.symbol_size = 1024;
        spec.repair_percent = 20;
        spec.sha256 = Some(Sha256::digest(data).into());
        tois.insert(sender.add_object(spec).unwrap(), data.clone());
    }
    // A Raptor object laid out with four sub-blocks (as another sender may).
    let data = pattern(150_000, 6);
    let mut spec = ObjectSpec::new("file:///sub-blocks.bin", Cursor::new(data.clone()));
    spec.oti = Some(Oti::raptor(data.len() as u64, 1024, 2, 4, 4).unwrap());
    spec.repair_percent = 20;
    spec.sha256 = Some(Sha256::digest(&data).into());
    tois.insert(sender.add_object(spec).unwrap(), data);

    // Collect the session, then damage it: lose every 17th RaptorQ data
    // packet (no-code has no repair to make up for loss), send every 13th
    // twice, and swap neighbours in pairs.
    let nocode_toi = 2;
    let mut now = Instant::now();
    let mut buf = vec![0u8; 1500];
    let mut datagrams = Vec::new();
    let mut n = 0usize;
    while let Some(t) = sender.poll_transmit(now, &mut buf).unwrap() {
        now += Duration::from_micros(50);
        n += 1;
        let packet = buf[..t.size].to_vec();
        if t.kind == TransmitKind::Data && t.toi != nocode_toi && n.is_multiple_of(17) {
            continue;
        }
        if n.is_multiple_of(13) {
            datagrams.push(packet.clone());
        }
        datagrams.push(packet);
    }
    for pair in datagrams.chunks_mut(2) {
        pair.reverse();
    }

    let mut receiver = Receiver::new(ReceiverConfig::default());
    let mut received: HashMap<u128, Vec<u8>> = HashMap::new();
    let mut complete = Vec::new();
    let start = Instant::now();
    for (i, datagram) in datagrams.iter().enumerate() {
        let _ = receiver.handle_datagram(start + Duration::from_micros(i as u64 * 50), datagram);
        while let Some(event) = receiver.poll_event() {
            match event {
                Event::BlockDecoded {
                    toi, offset, data, ..
                } => {
                    let out = received.entry(toi).or_default();
                    assert_eq!(offset as usize, out.len(), "blocks come out in order");
                    out.extend_from_slice(&data);
                }
                Event::ObjectComplete { toi, sha256, .. } => {
                    assert_eq!(sha256, Verification::Verified);
                    complete.push(toi);
                }
                Event::ObjectFailed { reason, .. } => panic!("object failed: {reason}"),
                _ => {}
            }
        }
    }
    complete.sort_unstable();
    let mut expected: Vec<u128> = tois.keys().copied().collect();
    expected.sort_unstable();
    assert_eq!(complete, expected);
    for (toi, data) in &tois {
        assert_eq!(received.get(toi), Some(data), "object {toi}");
    }
}
