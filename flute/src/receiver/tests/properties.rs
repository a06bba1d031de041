//! Arbitrary datagram sequences never panic and never exceed the pending
//! budget.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::harness::*;
use crate::receiver::{Receiver, ReceiverConfig};

/// Datagrams that are mostly valid ALC, then mutated.
fn datagrams() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let data = object(700, 1);
    let oti = raptorq(data.len(), 64, 2);
    let send = Send {
        repair: 3,
        with_fti: false,
        ..Send::new(1, 2)
    };
    let mut seeds = object_packets(send, &oti, &data);
    seeds.extend(object_packets(
        Send::in_band(2, 5),
        &no_code(300, 32, 4),
        &object(300, 2),
    ));
    seeds.extend(fdt(1, 1, vec![file(2, "p", &oti, &data)]));
    seeds.push(close(1, 2, true, true));
    let seeds = std::sync::Arc::new(seeds);
    let one = (
        any::<usize>(),
        proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(move |(pick, flips, raw, random)| {
            if raw {
                return random;
            }
            let mut d = seeds[pick % seeds.len()].clone();
            for (at, byte) in flips {
                if !d.is_empty() {
                    let i = at % d.len();
                    d[i] ^= byte;
                }
            }
            d
        });
    proptest::collection::vec(one, 0..120)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_datagrams_never_panic_nor_exceed_the_budget(datagrams in datagrams()) {
        let config = ReceiverConfig {
            max_pending_bytes: 3000,
            max_pending_per_object: 1000,
            max_sessions: 3,
            ..ReceiverConfig::default()
        };
        let mut receiver = Receiver::new(config);
        let mut now = Instant::now();
        for (i, d) in datagrams.iter().enumerate() {
            now += Duration::from_millis(7);
            let _ = receiver.handle_datagram(now, d);
            prop_assert!(receiver.pending_bytes() <= 3000);
            while receiver.poll_event().is_some() {}
            if i % 40 == 39 {
                receiver.handle_timeout(now + Duration::from_secs(61));
            }
            let _ = receiver.gaps(1, 2);
        }
    }
}
