//! Arbitrary sequences of datagrams into one receiver.
//!
//! The input is split into datagrams by a 2-byte big-endian length prefix.
//! The first byte of each datagram may force the LCT version to 1 and the
//! codepoint to 0 or 6, so that most datagrams reach the session logic.
//! Time advances with each datagram and the timers run now and then. The
//! receiver must not panic and must keep its pending buffer and the blocks
//! it holds ahead of order in budget.
#![no_main]

use std::time::{Duration, Instant};

use dms_flute::receiver::{Receiver, ReceiverConfig};
use libfuzzer_sys::fuzz_target;

const BUDGET: usize = 64 * 1024;
/// Bytes of blocks decoded ahead of order an object may hold.
const AHEAD: usize = 8 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut config = ReceiverConfig::default();
    config.max_pending_bytes = BUDGET;
    config.max_pending_per_object = BUDGET / 4;
    config.max_sessions = 4;
    config.blocks_ahead = true;
    config.max_ahead_bytes = AHEAD;
    let max_held = AHEAD * config.max_decoding_objects * config.max_sessions;
    let mut receiver = Receiver::new(config);
    let mut now = Instant::now();
    let mut rest = data;
    let mut count = 0u32;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        let mut datagram = datagram.to_vec();
        if let [mode, d0, _, _, cp, ..] = datagram.as_mut_slice() {
            if *mode & 1 == 1 {
                *d0 = 0x10 | (*d0 & 0x0f);
                *cp = if *mode & 2 == 0 { 0 } else { 6 };
            }
        }
        let datagram = datagram.get(1..).unwrap_or_default();
        now += Duration::from_millis(u64::from(count % 7) * 10);
        let _ = receiver.handle_datagram(now, datagram);
        assert!(receiver.pending_bytes() <= BUDGET);
        assert!(receiver.held_ahead_bytes() <= max_held);
        while receiver.poll_event().is_some() {}
        count += 1;
        if count % 32 == 0 {
            if let Some(deadline) = receiver.poll_timeout() {
                receiver.handle_timeout(deadline.max(now));
            }
        }
        let _ = receiver.gaps(0, 1);
    }
});
