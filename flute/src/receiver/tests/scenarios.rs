//! End-to-end scenarios: FDT first or last, in-band FTI, both schemes,
//! loss, reordering, closes and verification failures.

use std::time::Duration;

use super::harness::*;
use crate::lct::{ContentEncoding, FluteVersion};
use crate::receiver::{Event, FailureReason, Gap, PacketError, ReceiverConfig, Verification};

const TSI: u64 = 7;

#[test]
fn fdt_first_then_data_both_schemes() {
    for (oti_of, name) in [
        (raptorq as fn(usize, u16, u32) -> dms_fec::Oti, "raptorq"),
        (no_code, "no-code"),
    ] {
        let t = 64u16;
        let sizes = [1usize, t as usize - 1, t as usize + 1, 5000];
        let mut h = Harness::new();
        let objects: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let data = object(len, i as u8);
                let oti = oti_of(len, t, 16);
                (i as u128 + 1, data, oti)
            })
            .collect();
        let files = objects
            .iter()
            .map(|(toi, data, oti)| file(*toi, &format!("{name}/{toi}"), oti, data))
            .collect();
        h.feed(fdt(TSI, 1, files));
        for (toi, data, oti) in &objects {
            h.feed(object_packets(Send::new(TSI, *toi), oti, data));
        }
        for (toi, data, _) in &objects {
            assert!(h.verified(TSI, *toi), "{name} object {toi}");
            assert_eq!(&h.written[&(TSI, *toi)], data, "{name} object {toi}");
            assert_eq!(h.receiver.gaps(TSI, *toi), Some(vec![]));
        }
        let started = h
            .events
            .iter()
            .filter(|e| matches!(e, Event::ObjectStarted { info, .. } if info.content_location().is_some()))
            .count();
        assert_eq!(started, sizes.len());
        assert_eq!(h.receiver.pending_bytes(), 0);
    }
}

#[test]
fn data_before_fdt_is_kept_and_replayed() {
    let data = object(10_000, 1);
    let oti = raptorq(data.len(), 128, 2);
    let mut h = Harness::new();
    h.feed(object_packets(Send::new(TSI, 3), &oti, &data));
    assert!(h.events.is_empty());
    assert!(h.receiver.pending_bytes() > 0);
    assert_eq!(h.receiver.gaps(TSI, 3), None);
    h.feed(fdt(TSI, 1, vec![file(3, "late-fdt.bin", &oti, &data)]));
    assert!(h.verified(TSI, 3));
    assert_eq!(h.written[&(TSI, 3)], data);
    assert_eq!(h.receiver.pending_bytes(), 0);
    assert!(h.receiver.stats().pending_replayed > 0);
    let ObjectInfoOf(info) = started(&h, 3);
    assert_eq!(info.content_location(), Some("late-fdt.bin"));
}

struct ObjectInfoOf(crate::receiver::ObjectInfo);

fn started(h: &Harness, toi: u128) -> ObjectInfoOf {
    h.events
        .iter()
        .find_map(|e| match e {
            Event::ObjectStarted { toi: t, info, .. } if *t == toi => {
                Some(ObjectInfoOf(info.clone()))
            }
            _ => None,
        })
        .unwrap()
}

#[test]
fn in_band_fti_without_any_fdt() {
    for oti_of in [raptorq as fn(usize, u16, u32) -> dms_fec::Oti, no_code] {
        let data = object(3000, 2);
        let oti = oti_of(data.len(), 100, 4);
        let mut h = Harness::new();
        let send = Send::in_band(TSI, 9);
        h.feed(object_packets(send, &oti, &data));
        assert_eq!(h.written[&(TSI, 9)], data);
        // Decoded, but its completion waits a while for an FDT to name it.
        assert!(!h.complete(TSI, 9));
        h.advance(ReceiverConfig::default().fdt_wait);
        assert!(h.complete(TSI, 9));
        assert!(h.events.iter().any(|e| matches!(
            e,
            Event::ObjectComplete { md5: Verification::NotGiven, sha256: Verification::NotGiven, info, .. }
                if info.content_location().is_none() && info.transfer_length == 3000
        )));
    }
}

#[test]
fn fdt_after_fti_start_describes_the_object() {
    let data = object(4000, 3);
    let oti = raptorq(data.len(), 100, 1);
    let mut h = Harness::new();
    let send = Send::in_band(TSI, 4);
    let packets = object_packets(send, &oti, &data);
    h.feed(&packets[..10]);
    h.feed(fdt(TSI, 1, vec![file(4, "described.bin", &oti, &data)]));
    h.feed(&packets[10..]);
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::ObjectDescribed { toi: 4, .. }))
    );
    // The FDT came before completion: the digests are checked.
    assert!(h.verified(TSI, 4));
}

#[test]
fn an_object_decoded_before_its_fdt_completes_when_the_fdt_names_it() {
    // With reordering a small object can finish before the first FDT.
    let data = object(2500, 5);
    let oti = raptorq(data.len(), 100, 1);
    let mut h = Harness::new();
    h.feed(object_packets(Send::in_band(TSI, 6), &oti, &data));
    assert_eq!(h.written[&(TSI, 6)], data);
    assert!(!h.complete(TSI, 6));
    h.feed(fdt(TSI, 1, vec![file(6, "late.bin", &oti, &data)]));
    assert!(h.verified(TSI, 6));
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::ObjectComplete { toi: 6, info, .. }
            if info.content_location() == Some("late.bin")
    )));
    // A late FDT with the wrong digest fails it instead.
    let mut h = Harness::new();
    h.feed(object_packets(Send::in_band(TSI, 7), &oti, &data));
    h.feed(fdt(
        TSI,
        1,
        vec![file(7, "bad.bin", &oti, &object(2500, 6))],
    ));
    assert!(!h.complete(TSI, 7));
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::ObjectFailed { toi: 7, .. }))
    );
}

#[test]
fn md5_is_skipped_when_sha256_covers_the_bytes_and_the_config_says_so() {
    let data = object(5000, 8);
    let oti = raptorq(data.len(), 100, 2);
    let config = ReceiverConfig {
        md5_with_sha256: false,
        ..ReceiverConfig::default()
    };
    let mut h = Harness::with_config(config.clone());
    h.feed(fdt(TSI, 1, vec![file(3, "a.bin", &oti, &data)]));
    h.feed(object_packets(Send::new(TSI, 3), &oti, &data));
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::ObjectComplete {
            toi: 3,
            md5: Verification::NotChecked,
            sha256: Verification::Verified,
            ..
        }
    )));
    // Without a SHA-256 in the FDT, MD5 is still checked.
    let mut h = Harness::with_config(config);
    let mut described = file(3, "a.bin", &oti, &data);
    described.sha256 = None;
    h.feed(fdt(TSI, 1, vec![described]));
    h.feed(object_packets(Send::new(TSI, 3), &oti, &data));
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::ObjectComplete {
            toi: 3,
            md5: Verification::Verified,
            sha256: Verification::NotGiven,
            ..
        }
    )));
}

#[test]
fn flute_v1_and_v2_ext_fdt() {
    for version in [FluteVersion::V1, FluteVersion::V2] {
        let data = object(777, 4);
        let oti = no_code(data.len(), 64, 8);
        let mut instance = crate::fdt::FdtInstance::new(1);
        instance.files = vec![file(1, "v.bin", &oti, &data)];
        let mut h = Harness::new();
        h.feed(fdt_packets(
            TSI,
            5,
            version,
            None,
            instance.to_xml().as_bytes(),
        ));
        h.feed(object_packets(Send::new(TSI, 1), &oti, &data));
        assert!(h.verified(TSI, 1), "{version:?}");
        assert!(h.events.iter().any(|e| matches!(
            e,
            Event::FdtReceived {
                instance_id: 5,
                files: 1,
                ..
            }
        )));
    }
}

#[test]
fn fdt_repeats_are_skipped_and_newer_instances_add_files() {
    let a = object(500, 5);
    let b = object(600, 6);
    let oti_a = no_code(a.len(), 64, 8);
    let oti_b = no_code(b.len(), 64, 8);
    let mut h = Harness::new();
    let first = fdt(TSI, 1, vec![file(1, "a", &oti_a, &a)]);
    h.feed(&first);
    h.feed(&first);
    assert_eq!(h.receiver.stats().fdt_instances, 1);
    assert_eq!(h.receiver.stats().fdt_repeats, first.len() as u64);
    h.feed(fdt(
        TSI,
        2,
        vec![file(1, "a", &oti_a, &a), file(2, "b", &oti_b, &b)],
    ));
    h.feed(object_packets(Send::new(TSI, 1), &oti_a, &a));
    h.feed(object_packets(Send::new(TSI, 2), &oti_b, &b));
    assert!(h.verified(TSI, 1) && h.verified(TSI, 2));
    let started = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::ObjectStarted { .. }))
        .count();
    assert_eq!(started, 2);
}

#[test]
fn content_encoded_fdt_is_handed_out_and_taken_back() {
    let data = object(300, 7);
    let oti = no_code(data.len(), 64, 8);
    let mut instance = crate::fdt::FdtInstance::new(1);
    instance.files = vec![file(1, "z.bin", &oti, &data)];
    let xml = instance.to_xml();
    // Pretend the bytes are gzip: the receiver does not look inside.
    let mut h = Harness::new();
    h.feed(fdt_packets(
        TSI,
        3,
        FluteVersion::V2,
        Some(ContentEncoding::Gzip),
        xml.as_bytes(),
    ));
    let Some(Event::FdtEncoded {
        encoding,
        data: encoded,
        instance_id,
        ..
    }) = h.events.first().cloned()
    else {
        panic!("no FdtEncoded: {:?}", h.events);
    };
    assert_eq!((encoding, instance_id), (ContentEncoding::Gzip, 3));
    assert_eq!(encoded, xml.as_bytes());
    h.receiver
        .handle_fdt(h.now, TSI, instance_id, &encoded)
        .unwrap();
    h.drain();
    h.feed(object_packets(Send::new(TSI, 1), &oti, &data));
    assert!(h.verified(TSI, 1));
}

#[test]
fn file_content_encoding_is_reported_and_sha256_deferred() {
    let data = object(900, 8);
    let oti = raptorq(data.len(), 64, 1);
    let mut f = file(1, "c.gz", &oti, &data);
    f.content_encoding = Some("gzip".into());
    f.sha256 = Some([1; 32]); // of the decoded content: not checkable here
    let mut h = Harness::new();
    h.feed(fdt(TSI, 1, vec![f]));
    h.feed(object_packets(Send::new(TSI, 1), &oti, &data));
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::ObjectComplete { md5: Verification::Verified, sha256: Verification::AfterContentDecoding, info, .. }
            if info.content_encoding() == Some("gzip")
    )));
}

#[test]
fn several_objects_and_two_sessions_interleaved() {
    let mut h = Harness::new();
    let mut all = Vec::new();
    let mut expected = Vec::new();
    for tsi in [1u64, 2] {
        let mut files = Vec::new();
        for toi in 1..=3u128 {
            let data = object(2000 + 700 * toi as usize, (tsi as u8) * 10 + toi as u8);
            let oti = raptorq(data.len(), 128, 2);
            files.push(file(toi, &format!("s{tsi}/o{toi}"), &oti, &data));
            all.push(object_packets(Send::new(tsi, toi), &oti, &data));
            expected.push((tsi, toi, data));
        }
        h.feed(fdt(tsi, 1, files));
    }
    // Round-robin over the six objects.
    let longest = all.iter().map(Vec::len).max().unwrap();
    for i in 0..longest {
        h.feed(all.iter().filter_map(|p| p.get(i)));
    }
    for (tsi, toi, data) in expected {
        assert!(h.verified(tsi, toi));
        assert_eq!(h.written[&(tsi, toi)], data);
    }
}

#[test]
fn tsi_filter_drops_other_sessions() {
    let data = object(100, 9);
    let oti = no_code(data.len(), 64, 4);
    let mut h = Harness::with_config(ReceiverConfig::for_tsi(1));
    let send = Send::in_band(2, 1);
    let packets = object_packets(send, &oti, &data);
    h.feed(&packets);
    assert!(h.events.is_empty());
    assert_eq!(h.receiver.stats().tsi_filtered, packets.len() as u64);
}

#[test]
fn raptorq_repairs_five_percent_loss_with_reordering_and_duplicates() {
    let data = object(3 << 20, 11);
    let oti = raptorq(data.len(), 1024, 8);
    let send = Send {
        repair: 40,
        ..Send::new(TSI, 1)
    };
    let mut packets = object_packets(send, &oti, &data);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    packets.retain(|_| rng.next() % 100 >= 5);
    let dups: Vec<_> = packets.iter().step_by(17).cloned().collect();
    packets.extend(dups);
    // Reorder within windows of 64 packets (as a network would), keeping
    // blocks roughly in sequence.
    for chunk in packets.chunks_mut(64) {
        rng.shuffle(chunk);
    }
    let mut h = Harness::new();
    h.feed(fdt(TSI, 1, vec![file(1, "big.bin", &oti, &data)]));
    h.feed(&packets);
    assert!(h.verified(TSI, 1));
    assert_eq!(h.written[&(TSI, 1)], data);
    assert!(h.receiver.stats().duplicates + h.receiver.stats().after_decoded > 0);
    let sbns: Vec<u32> = h.blocks.iter().map(|b| b.2).collect();
    assert_eq!(sbns, (0..oti.layout().block_count()).collect::<Vec<_>>());
}

#[test]
fn raptor_repairs_loss_announced_by_fdt_or_in_band_with_and_without_sub_blocks() {
    let data = object((1 << 20) + 333, 12);
    for (n, in_band) in [(1u8, false), (4, false), (1, true), (3, true)] {
        let oti = raptor(data.len(), 1024, 4, n);
        let send = Send {
            repair: 60,
            with_fti: in_band,
            ..Send::new(TSI, 1)
        };
        let mut packets = object_packets(send, &oti, &data);
        let mut rng = Rng(0x0bad_cafe_1234_5678 ^ u64::from(n));
        packets.retain(|_| rng.next() % 100 >= 5);
        for chunk in packets.chunks_mut(64) {
            rng.shuffle(chunk);
        }
        let mut h = Harness::new();
        if !in_band {
            h.feed(fdt(TSI, 1, vec![file(1, "raptor.bin", &oti, &data)]));
        }
        h.feed(&packets);
        if in_band {
            h.feed(fdt(TSI, 1, vec![file(1, "raptor.bin", &oti, &data)]));
        }
        assert!(h.verified(TSI, 1), "N = {n}, in band {in_band}");
        assert_eq!(h.written[&(TSI, 1)], data, "N = {n}");
        let info = started(&h, 1);
        assert_eq!(info.0.fec, dms_fec::FecScheme::Raptor);
    }
}

#[test]
fn digest_mismatch_fails_the_object() {
    for (md5_wrong, oti_of) in [
        (true, raptorq as fn(usize, u16, u32) -> dms_fec::Oti),
        (false, no_code),
    ] {
        let data = object(1000, 12);
        let oti = oti_of(data.len(), 64, 4);
        let mut f = file(1, "bad.bin", &oti, &data);
        if md5_wrong {
            f.content_md5 = Some([0; 16]);
        } else {
            f.sha256 = Some([0; 32]);
        }
        let mut h = Harness::new();
        h.feed(fdt(TSI, 1, vec![f]));
        h.feed(object_packets(Send::new(TSI, 1), &oti, &data));
        assert!(!h.complete(TSI, 1));
        let reason = h.events.iter().find_map(|e| match e {
            Event::ObjectFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        match reason {
            Some(FailureReason::Md5Mismatch { expected, .. }) => {
                assert!(md5_wrong && expected == [0; 16])
            }
            Some(FailureReason::Sha256Mismatch { expected, .. }) => {
                assert!(!md5_wrong && expected == [0; 32])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h.receiver.stats().objects_failed, 1);
    }
}

#[test]
fn close_object_before_completion_does_not_complete_and_gaps_are_exact() {
    let data = object(64 * 40, 14); // 40 symbols
    let oti = raptorq(data.len(), 64, 2); // blocks of 20 symbols
    let mut h = Harness::new();
    h.feed(fdt(TSI, 1, vec![file(1, "partial.bin", &oti, &data)]));
    let packets = object_packets(Send::new(TSI, 1), &oti, &data);
    // Block 0: all but 3 symbols; block 1: 5 symbols, one of them twice.
    let mut sent: Vec<&Vec<u8>> = packets[..17].iter().collect();
    sent.extend(&packets[20..25]);
    sent.push(&packets[20]);
    h.feed(sent);
    h.feed([close(TSI, 1, false, true)]);
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::ObjectClosed { toi: 1, .. }))
    );
    assert!(!h.complete(TSI, 1));
    assert_eq!(
        h.receiver.gaps(TSI, 1),
        Some(vec![
            Gap {
                sbn: 0,
                symbols_needed: 3
            },
            Gap {
                sbn: 1,
                symbols_needed: 15
            },
        ])
    );
    // A second close is not reported twice.
    h.feed([close(TSI, 1, false, true)]);
    let closes = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::ObjectClosed { .. }))
        .count();
    assert_eq!(closes, 1);
    // Repair symbols complete it.
    let layout = oti.layout();
    let encoder = dms_fec::BlockEncoder::new(&layout, 0, &data[..64 * 20]).unwrap();
    for (esi, symbol) in encoder.repair_symbols(20, 3).unwrap() {
        h.receiver
            .handle_repair_symbol(TSI, 1, dms_fec::PayloadId::new(0, esi), &symbol)
            .unwrap();
    }
    h.drain();
    assert_eq!(
        h.receiver.gaps(TSI, 1),
        Some(vec![Gap {
            sbn: 1,
            symbols_needed: 15
        }])
    );
    h.feed(&packets[25..]);
    assert!(h.verified(TSI, 1));
}

#[test]
fn close_session_flag_and_header_only_packets() {
    let data = object(200, 15);
    let oti = no_code(data.len(), 64, 4);
    let mut h = Harness::new();
    let send = Send::in_band(TSI, 1);
    let packets = object_packets(send, &oti, &data);
    h.feed(&packets[..1]);
    // Header-only close of the object, then of the session.
    h.feed([close(TSI, 1, false, true), close(TSI, 0, true, false)]);
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::ObjectClosed { tsi: TSI, toi: 1 }))
    );
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::SessionClosed { tsi: TSI }))
    );
    assert_eq!(h.receiver.stats().malformed, 0);
    // Packets still complete the object afterwards.
    h.feed(&packets[1..]);
    assert!(h.complete(TSI, 1));
}

#[test]
fn bad_packets_are_counted_and_dropped() {
    let data = object(300, 16);
    let oti = raptorq(data.len(), 64, 1);
    let mut h = Harness::new();
    h.feed(fdt(TSI, 1, vec![file(1, "x", &oti, &data)]));
    let mut good = object_packets(Send::new(TSI, 1), &oti, &data);
    // Unknown codepoint (byte 3), and a wrong symbol length.
    let mut unknown = good[0].clone();
    unknown[3] = 2;
    let mut short = good[0].clone();
    short.truncate(short.len() - 1);
    // SBN out of range (RaptorQ SBN is the first payload id byte).
    let mut sbn = good[0].clone();
    let at = sbn.len() - 64 - 4;
    sbn[at] = 9;
    h.feed([unknown, short, sbn, vec![1, 2, 3]]);
    let stats = h.receiver.stats().clone();
    assert_eq!(stats.unknown_codepoint, 1);
    assert_eq!(stats.malformed, 2);
    assert_eq!(stats.bad_symbols, 2);
    good.rotate_left(1);
    h.feed(&good);
    assert!(h.verified(TSI, 1));
}

#[test]
fn pending_budget_is_enforced_and_idle_sessions_release_it() {
    let data = object(64 * 100, 17);
    let oti = raptorq(data.len(), 64, 1);
    let config = ReceiverConfig {
        max_pending_bytes: 4000,
        max_pending_per_object: 2000,
        ..ReceiverConfig::default()
    };
    let mut h = Harness::with_config(config);
    h.feed(object_packets(Send::new(TSI, 1), &oti, &data));
    h.feed(object_packets(Send::new(TSI, 2), &oti, &data));
    h.feed(object_packets(Send::new(TSI, 3), &oti, &data));
    assert!(h.receiver.pending_bytes() <= 4000);
    assert!(h.receiver.stats().pending_full > 0);
    let deadline = h.receiver.poll_timeout().unwrap();
    assert!(deadline <= h.now + Duration::from_secs(60));
    h.receiver.handle_timeout(deadline);
    h.drain();
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::SessionIdle { tsi: TSI }))
    );
    assert_eq!(h.receiver.pending_bytes(), 0);
    assert_eq!(h.receiver.poll_timeout(), None);
}

#[test]
fn fdt_expiry_lets_an_instance_be_read_again() {
    let data = object(100, 18);
    let oti = no_code(data.len(), 64, 4);
    let mut h = Harness::new();
    let packets = fdt(TSI, 1, vec![file(1, "e", &oti, &data)]);
    h.feed(&packets);
    h.receiver.handle_timeout(h.now + Duration::from_secs(301));
    h.drain();
    h.feed(&packets);
    assert_eq!(h.receiver.stats().fdt_instances, 2);
    // The object was already listed: it is not started twice.
    let started = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::ObjectStarted { .. }))
        .count();
    assert_eq!(started, 1);
}

#[test]
fn oti_with_too_many_blocks_is_refused() {
    // No-code, T = 1, one symbol per block: 20 000 blocks.
    let data = object(20_000, 19);
    let oti = no_code(data.len(), 1, 1);
    let mut h = Harness::new();
    let packets = object_packets(Send::in_band(TSI, 1), &oti, &data);
    let err = h.receiver.handle_datagram(h.now, &packets[0]);
    assert_eq!(err, Err(PacketError::TooManyBlocks(20_000)));
    assert_eq!(h.receiver.stats().bad_oti, 1);
    assert_eq!(h.receiver.gaps(TSI, 1), None);
}

#[test]
fn close_session_on_a_data_packet_and_session_limit() {
    let data = object(100, 20);
    let oti = no_code(data.len(), 64, 4);
    let config = ReceiverConfig {
        max_sessions: 1,
        ..ReceiverConfig::default()
    };
    let mut h = Harness::with_config(config);
    let first = object_packets(Send::in_band(1, 1), &oti, &data);
    h.feed(&first[..1]);
    // A second session does not fit while the first is open.
    let second = object_packets(Send::in_band(2, 1), &oti, &data);
    assert_eq!(
        h.receiver.handle_datagram(h.now, &second[0]),
        Err(PacketError::SessionLimit)
    );
    // The A flag on the last data packet closes the first session ...
    let mut last = first[1].clone();
    last[1] |= 0b10; // byte 1: S O O H Res Res A B
    h.feed([last]);
    assert!(h.complete(1, 1));
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::SessionClosed { tsi: 1 }))
    );
    // ... which then makes room for the second.
    h.feed(&second);
    h.advance(ReceiverConfig::default().fdt_wait);
    assert!(h.complete(2, 1));
    assert_eq!(h.receiver.gaps(1, 1), None);
}
