//! A process-wide cache of RaptorQ encoding plans.
//!
//! Building the plan for a block of K symbols costs 10–20 ms at K ≈ 820; an
//! object has at most two distinct K values (KL and KS), and a process sees
//! few, so plans are built once and shared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use raptorq::SourceBlockEncodingPlan;

/// Encoding plans by source symbol count.
#[derive(Default)]
pub struct PlanCache {
    plans: Mutex<HashMap<u16, Arc<SourceBlockEncodingPlan>>>,
}

impl std::fmt::Debug for PlanCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let len = self.plans.lock().map(|p| p.len()).unwrap_or(0);
        f.debug_struct("PlanCache").field("plans", &len).finish()
    }
}

impl PlanCache {
    /// The cache shared by every encoder in the process.
    pub fn global() -> &'static PlanCache {
        static GLOBAL: OnceLock<PlanCache> = OnceLock::new();
        GLOBAL.get_or_init(PlanCache::default)
    }

    /// The plan for blocks of `symbols` source symbols, built on first use.
    pub fn plan(&self, symbols: u16) -> Arc<SourceBlockEncodingPlan> {
        // A poisoned lock only means another thread panicked mid-insert; the
        // map itself is still consistent, so keep using it.
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            plans
                .entry(symbols)
                .or_insert_with(|| Arc::new(SourceBlockEncodingPlan::generate(symbols))),
        )
    }

    /// Number of plans held.
    pub fn len(&self) -> usize {
        self.plans.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// Whether no plan has been built yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
