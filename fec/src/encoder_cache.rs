//! A bounded cache of [`PreparedBlock`]s, so a repair server makes a
//! block's intermediate symbols once for many requests instead of once per
//! request.
//!
//! Keys are chosen by the caller (an object identity and an SBN, say); the
//! budget is in bytes of [`PreparedBlock::memory_bytes`], least recently
//! used blocks go first. Construction is single-flight: concurrent callers
//! asking for the same cold block wait for the one building it. Blocking:
//! call it from threads that may block (a blocking pool), not from async
//! tasks.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::prepared::PreparedBlock;

/// The default budget of an [`EncoderCache`]: 64 MiB, about twenty 1 MiB
/// RaptorQ blocks (each holds about three times its size).
pub const DEFAULT_ENCODER_CACHE_BYTES: usize = 64 << 20;

/// One key's place: the block once built, and the lock its builder holds.
type Slot = Arc<Mutex<()>>;

struct Entry {
    /// Held by the thread building this block; others wait on it.
    building: Slot,
    block: Option<Arc<PreparedBlock>>,
    /// Recency stamp, the key of this entry in `Inner::order`.
    stamp: u64,
}

struct Inner<K> {
    entries: HashMap<K, Entry>,
    /// Entries by recency stamp, oldest first.
    order: BTreeMap<u64, K>,
    clock: u64,
    used: usize,
}

impl<K: Eq + Hash + Clone> Inner<K> {
    /// Marks `key` used now.
    fn touch(&mut self, key: &K) {
        self.clock += 1;
        let now = self.clock;
        if let Some(entry) = self.entries.get_mut(key) {
            self.order.remove(&entry.stamp);
            entry.stamp = now;
            self.order.insert(now, key.clone());
        }
    }

    fn remove(&mut self, key: &K) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.order.remove(&entry.stamp);
        if let Some(block) = &entry.block {
            self.used -= block.memory_bytes();
        }
        Some(entry)
    }
}

/// Counters of an [`EncoderCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncoderCacheStats {
    /// Look-ups answered from the cache (including those that waited for
    /// another caller's build).
    pub hits: u64,
    /// Blocks built.
    pub builds: u64,
    /// Blocks dropped to stay within the budget.
    pub evictions: u64,
}

/// A byte-bounded, least-recently-used cache of [`PreparedBlock`]s, safe to
/// share between threads.
pub struct EncoderCache<K> {
    budget: usize,
    inner: Mutex<Inner<K>>,
    hits: AtomicU64,
    builds: AtomicU64,
    evictions: AtomicU64,
}

impl<K> std::fmt::Debug for EncoderCache<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (len, used) = self
            .inner
            .lock()
            .map(|i| (i.entries.len(), i.used))
            .unwrap_or_default();
        f.debug_struct("EncoderCache")
            .field("budget", &self.budget)
            .field("entries", &len)
            .field("used", &used)
            .finish()
    }
}

impl<K: Eq + Hash + Clone> Default for EncoderCache<K> {
    fn default() -> Self {
        Self::new(DEFAULT_ENCODER_CACHE_BYTES)
    }
}

impl<K: Eq + Hash + Clone> EncoderCache<K> {
    /// A cache holding at most `budget` bytes of prepared blocks. A budget
    /// of 0 turns caching off: every look-up builds.
    pub fn new(budget: usize) -> Self {
        EncoderCache {
            budget,
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: BTreeMap::new(),
                clock: 0,
                used: 0,
            }),
            hits: AtomicU64::new(0),
            builds: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<K>> {
        // Every change under the lock keeps the map, order and byte count
        // consistent before anything that could panic, so a poisoned lock
        // still guards a usable cache.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The budget in bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes of the blocks held.
    pub fn used_bytes(&self) -> usize {
        self.lock().used
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.lock()
            .entries
            .values()
            .filter(|e| e.block.is_some())
            .count()
    }

    /// Whether no block is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters so far.
    pub fn stats(&self) -> EncoderCacheStats {
        EncoderCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            builds: self.builds.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// Whether a block is held under `key` (without marking it used).
    pub fn contains(&self, key: &K) -> bool {
        self.lock()
            .entries
            .get(key)
            .is_some_and(|e| e.block.is_some())
    }

    /// The block under `key` if it is held (never builds, never waits).
    pub fn get(&self, key: &K) -> Option<Arc<PreparedBlock>> {
        let mut inner = self.lock();
        let block = inner.entries.get(key)?.block.clone()?;
        inner.touch(key);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(block)
    }

    /// The block under `key`, built by `build` if it is not held. Only one
    /// caller builds a given key at a time; others asking for it meanwhile
    /// wait and share the result (or, if the build failed, try their own).
    /// A block larger than the whole budget is returned but not kept.
    pub fn get_or_build<E>(
        &self,
        key: K,
        build: impl FnOnce() -> Result<PreparedBlock, E>,
    ) -> Result<Arc<PreparedBlock>, E> {
        if self.budget == 0 {
            self.builds.fetch_add(1, Ordering::Relaxed);
            return build().map(Arc::new);
        }
        let slot = {
            let mut inner = self.lock();
            if let Some(entry) = inner.entries.get(&key) {
                if let Some(block) = entry.block.clone() {
                    inner.touch(&key);
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(block);
                }
                Arc::clone(&entry.building)
            } else {
                inner.clock += 1;
                let stamp = inner.clock;
                let slot = Slot::default();
                inner.entries.insert(
                    key.clone(),
                    Entry {
                        building: Arc::clone(&slot),
                        block: None,
                        stamp,
                    },
                );
                inner.order.insert(stamp, key.clone());
                slot
            }
        };
        // Holding the slot's lock makes this caller the builder of `key`;
        // a builder that panicked leaves it poisoned but the entry empty,
        // so the next one simply builds.
        let _building = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(block) = self.ready(&key, &slot) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(block);
        }
        self.builds.fetch_add(1, Ordering::Relaxed);
        match build() {
            Ok(block) => {
                let block = Arc::new(block);
                self.admit(&key, &slot, &block);
                Ok(block)
            }
            Err(e) => {
                let mut inner = self.lock();
                if inner
                    .entries
                    .get(&key)
                    .is_some_and(|e| Arc::ptr_eq(&e.building, &slot) && e.block.is_none())
                {
                    inner.remove(&key);
                }
                Err(e)
            }
        }
    }

    /// The block another builder stored under `key` in `slot`'s entry.
    fn ready(&self, key: &K, slot: &Slot) -> Option<Arc<PreparedBlock>> {
        let mut inner = self.lock();
        let entry = inner.entries.get(key)?;
        if !Arc::ptr_eq(&entry.building, slot) {
            return None;
        }
        let block = entry.block.clone()?;
        inner.touch(key);
        Some(block)
    }

    /// Stores a freshly built block, then drops the least recently used
    /// blocks until the budget holds (possibly this one, if it alone is
    /// larger than the budget).
    fn admit(&self, key: &K, slot: &Slot, block: &Arc<PreparedBlock>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(entry) = inner.entries.get_mut(key) else {
            // Removed while being built (see `retain`): not kept.
            return;
        };
        if !Arc::ptr_eq(&entry.building, slot) || entry.block.is_some() {
            return;
        }
        entry.block = Some(Arc::clone(block));
        inner.used += block.memory_bytes();
        inner.touch(key);
        if inner.used <= self.budget {
            return;
        }
        // Oldest first; entries still being built hold nothing yet.
        let mut victims = Vec::new();
        let mut freed = 0;
        for victim in inner.order.values() {
            if inner.used - freed <= self.budget {
                break;
            }
            if let Some(bytes) = inner
                .entries
                .get(victim)
                .and_then(|e| e.block.as_ref())
                .map(|b| b.memory_bytes())
            {
                freed += bytes;
                victims.push(victim.clone());
            }
        }
        for victim in &victims {
            inner.remove(victim);
        }
        self.evictions
            .fetch_add(victims.len() as u64, Ordering::Relaxed);
    }

    /// Drops the block under `key`, if held.
    pub fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    /// Keeps only the blocks whose key passes `keep` (to forget an object
    /// no longer served, say). Blocks being built under a dropped key are
    /// returned to their callers but not kept.
    pub fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        let mut inner = self.lock();
        let dropped: Vec<K> = inner.entries.keys().filter(|k| !keep(k)).cloned().collect();
        for key in &dropped {
            inner.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::{FecScheme, Layout, Oti};

    fn layout() -> Layout {
        // 8 blocks of 100 symbols of 64 bytes.
        Oti::raptorq(8 * 6400, 64, 8, 1, 1).unwrap().layout()
    }

    fn bytes(layout: &Layout, sbn: u32) -> Vec<u8> {
        let len = layout.block_len(sbn).unwrap();
        (0..len).map(|i| (i as u32 * 7 + sbn * 13) as u8).collect()
    }

    fn prepare(layout: &Layout, sbn: u32) -> Result<PreparedBlock, crate::SymbolError> {
        PreparedBlock::new(layout, sbn, bytes(layout, sbn))
    }

    #[test]
    fn encoder_cache_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<EncoderCache<(String, u32)>>();
    }

    #[test]
    fn cached_blocks_give_the_same_symbols_and_are_built_once() {
        let layout = layout();
        let cache = EncoderCache::new(DEFAULT_ENCODER_CACHE_BYTES);
        let first = cache.get_or_build(3, || prepare(&layout, 3)).unwrap();
        let again = cache
            .get_or_build(3, || -> Result<_, crate::SymbolError> {
                panic!("a held block is not rebuilt")
            })
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(Arc::ptr_eq(&cache.get(&3).unwrap(), &first));
        assert!(cache.get(&4).is_none());
        assert!(cache.contains(&3) && !cache.contains(&4));
        let data = bytes(&layout, 3);
        let fresh = crate::BlockEncoder::new(&layout, 3, &data).unwrap();
        assert_eq!(
            again.repair_symbols(100, 50).unwrap(),
            fresh.repair_symbols(100, 50).unwrap()
        );
        assert_eq!(again.source_symbol(99), fresh.source_symbol(99));
        assert_eq!(
            cache.stats(),
            EncoderCacheStats {
                hits: 2,
                builds: 1,
                evictions: 0
            }
        );
        assert_eq!(cache.used_bytes(), first.memory_bytes());
    }

    #[test]
    fn eviction_keeps_within_budget_and_drops_the_least_recently_used() {
        let layout = layout();
        let one = prepare(&layout, 0).unwrap().memory_bytes();
        // Room for three blocks, not four.
        let cache = EncoderCache::new(3 * one + one / 2);
        for sbn in 0..3 {
            cache.get_or_build(sbn, || prepare(&layout, sbn)).unwrap();
        }
        assert_eq!(cache.len(), 3);
        // Block 0 used again: block 1 is now the oldest.
        assert!(cache.get(&0).is_some());
        cache.get_or_build(3, || prepare(&layout, 3)).unwrap();
        assert_eq!(cache.len(), 3);
        assert!(cache.used_bytes() <= cache.budget());
        assert!(cache.get(&1).is_none());
        for sbn in [0, 2, 3] {
            assert!(cache.get(&sbn).is_some(), "block {sbn} kept");
        }
        assert_eq!(cache.stats().evictions, 1);
        for sbn in 0..8 {
            cache.get_or_build(sbn, || prepare(&layout, sbn)).unwrap();
            assert!(cache.used_bytes() <= cache.budget());
        }
        // A block larger than the budget is served, not kept.
        let tiny = EncoderCache::new(one / 2);
        let block = tiny.get_or_build(5, || prepare(&layout, 5)).unwrap();
        assert_eq!(block.sbn(), 5);
        assert!(tiny.is_empty());
        assert_eq!(tiny.used_bytes(), 0);
    }

    #[test]
    fn zero_budget_builds_every_time() {
        let layout = layout();
        let cache = EncoderCache::new(0);
        for _ in 0..2 {
            cache.get_or_build(1, || prepare(&layout, 1)).unwrap();
        }
        assert_eq!(cache.stats().builds, 2);
        assert!(cache.is_empty());
    }

    #[test]
    fn failed_builds_are_not_kept() {
        let layout = layout();
        let cache: EncoderCache<u32> = EncoderCache::default();
        let err = cache
            .get_or_build(1, || PreparedBlock::new(&layout, 1, vec![0; 3]))
            .unwrap_err();
        assert!(matches!(err, crate::SymbolError::BlockLength { .. }));
        assert!(cache.get(&1).is_none());
        let block = cache.get_or_build(1, || prepare(&layout, 1)).unwrap();
        assert_eq!(block.sbn(), 1);
    }

    #[test]
    fn remove_and_retain_forget_blocks() {
        let layout = layout();
        let cache = EncoderCache::default();
        for sbn in 0..4u32 {
            cache
                .get_or_build(("a", sbn), || prepare(&layout, sbn))
                .unwrap();
            cache
                .get_or_build(("b", sbn), || prepare(&layout, sbn))
                .unwrap();
        }
        cache.remove(&("a", 0));
        assert!(cache.get(&("a", 0)).is_none());
        cache.retain(|(object, _)| *object != "b");
        assert_eq!(cache.len(), 3);
        let left: usize = (1..4)
            .map(|sbn| cache.get(&("a", sbn)).unwrap().memory_bytes())
            .sum();
        assert_eq!(cache.used_bytes(), left);
    }

    #[test]
    fn concurrent_callers_share_one_build_per_block() {
        let layout = layout();
        let cache = EncoderCache::default();
        let builds = AtomicUsize::new(0);
        let reference: Vec<Vec<(u32, Vec<u8>)>> = (0..4)
            .map(|sbn| {
                let data = bytes(&layout, sbn);
                crate::BlockEncoder::new(&layout, sbn, &data)
                    .unwrap()
                    .repair_symbols(100 + sbn, 5)
                    .unwrap()
            })
            .collect();
        std::thread::scope(|s| {
            for thread in 0..8u32 {
                let (cache, builds, layout, reference) = (&cache, &builds, &layout, &reference);
                s.spawn(move || {
                    for round in 0..20u32 {
                        let sbn = (thread + round) % 4;
                        let block = cache
                            .get_or_build(sbn, || {
                                builds.fetch_add(1, Ordering::SeqCst);
                                prepare(layout, sbn)
                            })
                            .unwrap();
                        assert_eq!(
                            block.repair_symbols(100 + sbn, 5).unwrap(),
                            reference[sbn as usize]
                        );
                    }
                });
            }
        });
        assert_eq!(builds.load(Ordering::SeqCst), 4);
        assert_eq!(cache.stats().builds, 4);
        assert_eq!(cache.stats().hits, 8 * 20 - 4);
        assert_eq!(layout.scheme(), FecScheme::RaptorQ);
    }
}
