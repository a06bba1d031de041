//! Arbitrary repair queries, then planning against a small layout: nothing
//! may panic, a parsed query re-formats to itself, and plans respect the cap.
#![no_main]

use dms_fec::Oti;
use dms_repair::query::{format_query, parse_query};
use dms_repair::repair::plan_answer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(query) = parse_query(text) else { return };
    assert_eq!(parse_query(&format_query(&query)).as_ref(), Ok(&query));
    let Ok(oti) = Oti::raptorq(100_000, 64, 3, 1, 4) else { return };
    let layout = oti.layout();
    if let Ok(runs) = plan_answer(&query.items, &layout, 5000) {
        let total: u64 = runs.iter().map(|r| u64::from(r.count)).sum();
        assert!(total <= 5000);
        for r in runs {
            assert!(r.sbn < layout.block_count() && r.count > 0);
        }
    }
});
