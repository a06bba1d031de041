//! Blocks decoded ahead of a gap: handed out as copies while the object
//! holds at most `max_ahead_bytes` of them, released beyond it (each
//! handed out once, the digests left to the caller).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::harness::*;
use crate::receiver::{Event, Receiver, ReceiverConfig, Verification};

const TSI: u64 = 9;
const TOI: u128 = 3;

/// What a caller that writes every block at its offset saw.
struct Written {
    data: Vec<u8>,
    /// Per block: times handed out ahead of order, then in order.
    handed: BTreeMap<u32, (u32, u32)>,
    /// `(md5, sha256)` of the completion.
    complete: Option<(Verification, Verification)>,
    /// Most bytes the receiver held ahead after any datagram.
    peak_held: usize,
}

impl Written {
    fn new(len: usize) -> Self {
        Written {
            data: vec![0; len],
            handed: BTreeMap::new(),
            complete: None,
            peak_held: 0,
        }
    }

    fn feed(&mut self, receiver: &mut Receiver, now: &mut Instant, datagrams: &[Vec<u8>]) {
        for d in datagrams {
            *now += Duration::from_millis(1);
            let _ = receiver.handle_datagram(*now, d);
            self.peak_held = self.peak_held.max(receiver.held_ahead_bytes());
            while let Some(event) = receiver.poll_event() {
                match event {
                    Event::BlockDecodedAhead {
                        sbn, offset, data, ..
                    } => {
                        self.write(offset, &data);
                        self.handed.entry(sbn).or_default().0 += 1;
                    }
                    Event::BlockDecoded {
                        sbn, offset, data, ..
                    } => {
                        self.write(offset, &data);
                        self.handed.entry(sbn).or_default().1 += 1;
                    }
                    Event::ObjectComplete { md5, sha256, .. } => {
                        assert!(self.complete.is_none(), "completed twice");
                        self.complete = Some((md5, sha256));
                    }
                    Event::ObjectFailed { reason, .. } => panic!("failed: {reason}"),
                    _ => {}
                }
            }
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let start = offset as usize;
        self.data[start..start + data.len()].copy_from_slice(data);
    }
}

type Packets = Vec<Vec<u8>>;

/// An object of 40 blocks of 5 120 bytes: its data, OTI, the
/// packets of block 0 and those of the other blocks.
fn burst_object() -> (Vec<u8>, dms_fec::Oti, Packets, Packets) {
    let data = object(204_800, 11);
    let oti = raptorq(data.len(), 256, 40);
    assert_eq!(oti.layout().block_count(), 40);
    let packets = object_packets(Send::new(TSI, TOI), &oti, &data);
    let k0 = oti.layout().source_symbols(0).unwrap() as usize;
    let (block0, rest) = packets.split_at(k0);
    (data, oti, block0.to_vec(), rest.to_vec())
}

fn receiver(max_ahead_bytes: usize, md5_with_sha256: bool) -> Receiver {
    let mut config = ReceiverConfig::for_tsi(TSI);
    config.blocks_ahead = true;
    config.max_ahead_bytes = max_ahead_bytes;
    config.md5_with_sha256 = md5_with_sha256;
    Receiver::new(config)
}

#[test]
fn a_burst_beyond_the_budget_releases_blocks_and_leaves_the_digests_to_the_caller() {
    let (data, oti, block0, rest) = burst_object();
    let block_len = oti.layout().block_len(1).unwrap();
    let budget = 3 * block_len + block_len / 2;
    let mut receiver = receiver(budget, true);
    let mut now = Instant::now();
    let mut written = Written::new(data.len());
    written.feed(
        &mut receiver,
        &mut now,
        &fdt(TSI, 1, vec![file(TOI, "big", &oti, &data)]),
    );
    // Block 0 loses all but two of its symbols; every later block decodes.
    written.feed(&mut receiver, &mut now, &block0[..2]);
    written.feed(&mut receiver, &mut now, &rest);
    assert!(written.peak_held <= budget, "{} held", written.peak_held);
    assert!(written.peak_held > 0);
    assert_eq!(receiver.held_ahead_bytes(), 0, "released, not held");
    assert!(written.complete.is_none());
    assert_eq!(receiver.stats().digests_deferred, 1);
    // Every block but 0 is out already, once, ahead of order.
    assert_eq!(written.handed.len(), 39);
    assert!(
        written.handed.values().all(|&h| h == (1, 0)),
        "{:?}",
        written.handed
    );
    assert!(receiver.stats().blocks_released >= 39 - 4);
    let gaps = receiver.gaps(TSI, TOI).unwrap();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].sbn, 0);
    // Repair (the carousel's next round) completes block 0.
    written.feed(&mut receiver, &mut now, &block0);
    assert_eq!(written.handed.len(), 40);
    assert_eq!(written.handed[&0], (0, 1));
    assert!(
        written.handed.iter().all(|(_, &(a, b))| a + b == 1),
        "every block exactly once: {:?}",
        written.handed
    );
    assert_eq!(written.data, data);
    assert_eq!(
        written.complete,
        Some((Verification::NotComputed, Verification::NotComputed))
    );
    assert_eq!(receiver.stats().objects_complete, 1);
    assert_eq!(receiver.held_ahead_bytes(), 0);
}

#[test]
fn a_gap_within_the_budget_keeps_the_in_order_digests() {
    let (data, oti, block0, rest) = burst_object();
    let mut receiver = receiver(ReceiverConfig::default().max_ahead_bytes, true);
    let mut now = Instant::now();
    let mut written = Written::new(data.len());
    written.feed(
        &mut receiver,
        &mut now,
        &fdt(TSI, 1, vec![file(TOI, "big", &oti, &data)]),
    );
    written.feed(&mut receiver, &mut now, &block0[..2]);
    written.feed(&mut receiver, &mut now, &rest);
    // Everything after block 0 is held for the in-order digests.
    assert_eq!(
        receiver.held_ahead_bytes() as u64,
        data.len() as u64 - oti.layout().block_len(0).unwrap() as u64
    );
    written.feed(&mut receiver, &mut now, &block0);
    // Copies ahead of order, then the in-order blocks.
    assert_eq!(written.handed[&0], (0, 1));
    assert!((1..40).all(|sbn| written.handed[&sbn] == (1, 1)));
    assert_eq!(written.data, data);
    assert_eq!(
        written.complete,
        Some((Verification::Verified, Verification::Verified))
    );
    assert_eq!(receiver.stats().blocks_released, 0);
    assert_eq!(receiver.stats().digests_deferred, 0);
    assert_eq!(receiver.held_ahead_bytes(), 0);
}

#[test]
fn a_zero_budget_releases_at_once_and_md5_can_stay_unchecked() {
    let (data, oti, block0, _) = burst_object();
    // MD5 beside our SHA-256 is not wanted: only SHA-256 is left to do.
    let mut receiver = receiver(0, false);
    let mut now = Instant::now();
    let mut written = Written::new(data.len());
    // The object starts before its FDT (EXT_FTI): it waits for its
    // description after decoding, which then gives the digests to check.
    let in_band = object_packets(Send::in_band(TSI, TOI), &oti, &data);
    let k0 = block0.len();
    written.feed(&mut receiver, &mut now, &in_band[1..2]);
    written.feed(&mut receiver, &mut now, &in_band[k0..]);
    assert_eq!(written.peak_held, 0);
    assert_eq!(receiver.stats().blocks_released, 39);
    written.feed(&mut receiver, &mut now, &in_band[..k0]);
    assert_eq!(written.data, data);
    assert!(written.handed.values().all(|&(a, b)| a + b == 1));
    assert!(written.complete.is_none(), "waits for its FDT");
    written.feed(
        &mut receiver,
        &mut now,
        &fdt(TSI, 1, vec![file(TOI, "big", &oti, &data)]),
    );
    assert_eq!(
        written.complete,
        Some((Verification::NotChecked, Verification::NotComputed))
    );
}

/// Carousel rounds with bursts of loss: blocks fail in the first round
/// and complete in later ones, in any order, within the budget.
#[test]
fn carousel_rounds_with_bursts_complete_every_block_once_within_the_budget() {
    let data = object(1 << 20, 5);
    let oti = raptorq(data.len(), 1024, 16);
    let mut send = Send::new(TSI, TOI);
    send.repair = 20;
    let packets = object_packets(send, &oti, &data);
    let budget = 64 << 10;
    let mut receiver = receiver(budget, false);
    let mut now = Instant::now();
    let mut written = Written::new(data.len());
    written.feed(
        &mut receiver,
        &mut now,
        &fdt(TSI, 1, vec![file(TOI, "big", &oti, &data)]),
    );
    // Gilbert–Elliott loss: bursts of 50 datagrams on average, a quarter
    // of the datagrams in all.
    let mut rng = Rng(12_345);
    let mut in_burst = false;
    let mut first_round_gaps = 0;
    for round in 0..4 {
        let kept: Vec<Vec<u8>> = packets
            .iter()
            .filter(|_| {
                let flip = if in_burst { 20 } else { 20 / 3 };
                if rng.next() % 1000 < flip {
                    in_burst = !in_burst;
                }
                !in_burst
            })
            .cloned()
            .collect();
        written.feed(&mut receiver, &mut now, &kept);
        if round == 0 {
            first_round_gaps = receiver.gaps(TSI, TOI).unwrap().len();
        }
    }
    assert!(first_round_gaps > 1, "{first_round_gaps} gaps");
    assert!(written.peak_held <= budget, "{} held", written.peak_held);
    assert_eq!(written.data, data);
    assert!(written.handed.values().all(|&(a, b)| a + b == 1));
    assert_eq!(written.handed.len(), 16);
    assert_eq!(receiver.stats().digests_deferred, 1);
    assert_eq!(
        written.complete,
        Some((Verification::NotChecked, Verification::NotComputed))
    );
}
