//! What this node serves: objects (whole or block by block) read from
//! files, and the objects it announces; and the answers made from them.
//!
//! Blocks asked for are read and prepared once ([`PreparedBlock`]: the
//! bytes and RaptorQ intermediate symbols) and kept in a byte-bounded
//! cache keyed by (serving generation, SBN): each `serve_blocks` call is a
//! new generation, so a re-served location never gets another file's
//! block, and `stop_serving` drops the location's blocks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use dms_fec::{EncoderCache, FecScheme, Oti, PreparedBlock};

use super::config::PeerLimits;
use super::protocol::{ObjectAnnouncement, Request, Response};

/// An object served from a file: block `sbn` is at its layout offset in
/// `path` once `have[sbn]` is set.
#[derive(Debug, Clone)]
struct Held {
    path: PathBuf,
    oti: Oti,
    have: Vec<bool>,
    /// This serving's generation, the first half of its blocks' cache keys.
    generation: u64,
}

#[derive(Debug, Default)]
struct Inner {
    held: HashMap<String, Held>,
    announced: BTreeMap<String, ObjectAnnouncement>,
    generations: u64,
}

/// Prepared blocks by (serving generation, SBN).
type BlockCache = EncoderCache<(u64, u32)>;

/// The shared store (the handle writes, the swarm's answers read).
#[derive(Debug, Clone)]
pub(crate) struct Store {
    inner: Arc<Mutex<Inner>>,
    blocks: Arc<BlockCache>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(dms_fec::DEFAULT_ENCODER_CACHE_BYTES)
    }
}

impl Store {
    /// A store keeping up to `encoder_cache_bytes` of prepared blocks.
    pub(crate) fn new(encoder_cache_bytes: usize) -> Self {
        Store {
            inner: Arc::default(),
            blocks: Arc::new(BlockCache::new(encoder_cache_bytes)),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // A panic elsewhere while holding the lock leaves plain data that
        // is still consistent (every change is one insert or flag).
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut inner)
    }

    pub(crate) fn serve_blocks(&self, location: String, oti: Oti, path: PathBuf, have: Vec<bool>) {
        let blocks = oti.layout().block_count() as usize;
        let mut have = have;
        have.resize(blocks, false);
        let old = self.with(|i| {
            i.generations += 1;
            let generation = i.generations;
            let held = Held {
                path,
                oti,
                have,
                generation,
            };
            i.held.insert(location, held).map(|h| h.generation)
        });
        self.forget_blocks(old);
    }

    /// Drops the prepared blocks of a serving that ended.
    fn forget_blocks(&self, generation: Option<u64>) {
        if let Some(old) = generation {
            self.blocks.retain(|&(g, _)| g != old);
        }
    }

    pub(crate) fn block_done(&self, location: &str, sbn: u32) -> bool {
        self.with(|i| {
            match i
                .held
                .get_mut(location)
                .and_then(|h| h.have.get_mut(sbn as usize))
            {
                Some(flag) => {
                    *flag = true;
                    true
                }
                None => false,
            }
        })
    }

    pub(crate) fn stop_serving(&self, location: &str) {
        let old = self.with(|i| i.held.remove(location).map(|h| h.generation));
        self.forget_blocks(old);
    }

    pub(crate) fn have_map(&self, location: &str) -> Option<Vec<bool>> {
        self.with(|i| i.held.get(location).map(|h| h.have.clone()))
    }

    pub(crate) fn announce(&self, a: ObjectAnnouncement) {
        self.with(|i| i.announced.insert(a.content_location.clone(), a));
    }

    pub(crate) fn announced(&self) -> Vec<ObjectAnnouncement> {
        self.with(|i| i.announced.values().cloned().collect())
    }

    /// Answers `request` (blocking: reads the file and encodes), with the
    /// payload bytes served.
    pub(crate) fn answer(&self, request: Request, limits: &PeerLimits) -> (Response, u64) {
        match request {
            Request::HaveMap { content_location } => {
                let blocks = self.have_map(&content_location).unwrap_or_default();
                let bytes = blocks.len() as u64;
                (Response::HaveMap { blocks }, bytes)
            }
            Request::Objects => {
                let objects = self.announced();
                let bytes = objects.iter().map(|o| o.manifest.len() as u64 + 256).sum();
                (Response::Objects { objects }, bytes)
            }
            Request::Symbols {
                content_location,
                sbn,
                count,
                first_esi,
                not,
            } => {
                let held = self.with(|i| {
                    i.held
                        .get(&content_location)
                        .filter(|h| h.have.get(sbn as usize).copied().unwrap_or(false))
                        .map(|h| (h.path.clone(), h.oti, h.generation))
                });
                let Some((path, oti, generation)) = held else {
                    return (Response::DontHave, 0);
                };
                let t = u64::from(oti.symbol_size()).max(1);
                let fit = (limits.max_response_bytes / t).min(u64::from(u32::MAX)) as u32;
                let count = count.min(limits.max_symbols_per_request).min(fit);
                let block = self.block(&path, &oti, generation, sbn);
                match block.and_then(|b| symbols(&b, &oti, count, first_esi, &not)) {
                    Ok(symbols) => {
                        let bytes = symbols.iter().map(|(_, s)| s.len() as u64).sum();
                        (Response::Symbols { symbols }, bytes)
                    }
                    Err(reason) => (Response::Error { reason }, 0),
                }
            }
        }
    }
}

impl Store {
    /// Block `sbn` of the object in `path`, prepared: from the cache, or
    /// read from the file and prepared once (concurrent askers of the same
    /// block wait for that one preparation).
    fn block(
        &self,
        path: &std::path::Path,
        oti: &Oti,
        generation: u64,
        sbn: u32,
    ) -> Result<Arc<PreparedBlock>, String> {
        self.blocks.get_or_build((generation, sbn), || {
            let layout = oti.layout();
            let (Some(offset), Some(len)) = (layout.block_offset(sbn), layout.block_len(sbn))
            else {
                return Err(format!("no block {sbn}"));
            };
            let mut data = vec![0u8; len];
            let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
            file.read_exact_at(&mut data, offset)
                .map_err(|e| e.to_string())?;
            PreparedBlock::new(&layout, sbn, data).map_err(|e| e.to_string())
        })
    }
}

/// `count` symbols of `encoder`'s block: fresh repair symbols from
/// `first_esi` (at least K) for RaptorQ, source symbols from `first_esi`
/// for Compact No-Code; ESIs in `not` skipped.
fn symbols(
    encoder: &PreparedBlock,
    oti: &Oti,
    count: u32,
    first_esi: u32,
    not: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>, String> {
    let k = encoder.source_symbols();
    let skip: HashSet<u32> = not.iter().copied().collect();
    match oti.scheme() {
        FecScheme::NoCode => Ok((first_esi..k)
            .filter(|esi| !skip.contains(esi))
            .take(count as usize)
            .filter_map(|esi| encoder.source_symbol(esi).map(|s| (esi, s.to_vec())))
            .collect()),
        scheme @ (FecScheme::Raptor | FecScheme::RaptorQ) => {
            let first_esi = first_esi.max(k);
            // Make enough to skip the asker's ESIs in range, no more.
            let end = u64::from(first_esi) + 2 * u64::from(count);
            let skipped = skip
                .iter()
                .filter(|&&e| e >= first_esi && u64::from(e) < end)
                .count() as u32;
            let limit = scheme.esi_limit();
            let make = count
                .saturating_add(skipped)
                .min(limit.saturating_sub(first_esi));
            let made = encoder
                .repair_symbols(first_esi, make)
                .map_err(|e| e.to_string())?;
            Ok(made
                .into_iter()
                .filter(|(esi, _)| !skip.contains(esi))
                .take(count as usize)
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use dms_fec::{BlockDecoder, BlockSize};

    use super::*;

    fn object(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn served(scheme: FecScheme, data: &[u8], t: u16) -> (tempfile::TempDir, Store, Oti) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("object");
        std::fs::write(&path, data).unwrap();
        let oti = Oti::for_object(scheme, data.len() as u64, t, BlockSize::Bytes(4096)).unwrap();
        let store = Store::default();
        let blocks = oti.layout().block_count() as usize;
        store.serve_blocks("/o".into(), oti, path, vec![true; blocks]);
        (dir, store, oti)
    }

    fn ask(count: u32, first_esi: u32, not: Vec<u32>) -> Request {
        Request::Symbols {
            content_location: "/o".into(),
            sbn: 0,
            count,
            first_esi,
            not,
        }
    }

    #[test]
    fn no_code_serves_the_source_symbols_asked_for() {
        let data = object(1000);
        let (_dir, store, oti) = served(FecScheme::NoCode, &data, 100);
        let (response, bytes) = store.answer(ask(100, 0, vec![0, 2]), &PeerLimits::default());
        let Response::Symbols { symbols } = response else {
            panic!("{response:?}")
        };
        let esis: Vec<u32> = symbols.iter().map(|(e, _)| *e).collect();
        assert_eq!(esis, vec![1, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(bytes, 800);
        // With the two the asker has, the block is whole.
        let layout = oti.layout();
        let mut decoder = BlockDecoder::new(&layout, 0).unwrap();
        for esi in [0u32, 2] {
            let s = esi as usize * 100;
            decoder.add_symbol(esi, &data[s..s + 100]).unwrap();
        }
        for (esi, symbol) in &symbols {
            decoder.add_symbol(*esi, symbol).unwrap();
        }
        assert_eq!(decoder.data().unwrap(), &data[..]);
    }

    #[test]
    fn answers_are_capped_by_symbols_and_bytes() {
        let data = object(20_000);
        let (_dir, store, _oti) = served(FecScheme::RaptorQ, &data, 64);
        let limits = PeerLimits {
            max_symbols_per_request: 30,
            ..PeerLimits::default()
        };
        let (response, bytes) = store.answer(ask(1000, 0, Vec::new()), &limits);
        assert!(matches!(&response, Response::Symbols { symbols } if symbols.len() == 30));
        assert_eq!(bytes, 30 * 64);
        let limits = PeerLimits {
            max_response_bytes: 640,
            ..PeerLimits::default()
        };
        let (response, _) = store.answer(ask(1000, 0, Vec::new()), &limits);
        assert!(matches!(&response, Response::Symbols { symbols } if symbols.len() == 10));
    }

    #[test]
    fn bad_requests_get_errors_not_panics() {
        let data = object(5000);
        let (_dir, store, _oti) = served(FecScheme::RaptorQ, &data, 64);
        let limits = PeerLimits::default();
        // ESIs past RaptorQ's range.
        let (response, _) = store.answer(ask(10, u32::MAX - 3, Vec::new()), &limits);
        assert!(matches!(response, Response::Error { .. }), "{response:?}");
        let (response, _) = store.answer(ask(10, (1 << 24) - 4, Vec::new()), &limits);
        assert!(
            matches!(&response, Response::Symbols { symbols } if symbols.len() == 4),
            "{response:?}"
        );
        // A block number past the end is simply not held.
        let request = Request::Symbols {
            content_location: "/o".into(),
            sbn: 99,
            count: 1,
            first_esi: 0,
            not: Vec::new(),
        };
        assert_eq!(store.answer(request, &limits).0, Response::DontHave);
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 64,
            rng_seed: proptest::test_runner::RngSeed::Fixed(6),
            ..Default::default()
        })]

        /// Whatever a peer asks, the answer never panics, stays within the
        /// limits, never names an ESI the asker said it has, and carries
        /// the block's real symbols: with the source symbols the asker
        /// lacked replaced by the answer, the block decodes to its bytes.
        #[test]
        fn any_symbols_request_is_answered_within_limits(
            no_code in proptest::bool::ANY,
            sbn in 0u32..4,
            count in 0u32..200,
            first_esi in proptest::prop_oneof![0u32..200, (1u32 << 24) - 50..(1 << 24) + 5, proptest::num::u32::ANY],
            not in proptest::collection::vec(0u32..300, 0..100),
            max_symbols in 1u32..64,
        ) {
            let data = object(10_000);
            let scheme = if no_code { FecScheme::NoCode } else { FecScheme::RaptorQ };
            let (_dir, store, oti) = served(scheme, &data, 64);
            let limits = PeerLimits { max_symbols_per_request: max_symbols, ..PeerLimits::default() };
            let request = Request::Symbols { content_location: "/o".into(), sbn, count, first_esi, not: not.clone() };
            let (response, bytes) = store.answer(request, &limits);
            let layout = oti.layout();
            let Response::Symbols { symbols } = response else {
                // Only an unheld block or an ESI range past RaptorQ's end.
                proptest::prop_assert!(
                    sbn >= layout.block_count() || matches!(response, Response::Error { .. }),
                    "{response:?}"
                );
                return Ok(());
            };
            proptest::prop_assert!(symbols.len() as u32 <= count.min(max_symbols));
            proptest::prop_assert_eq!(bytes, symbols.iter().map(|(_, s)| s.len() as u64).sum::<u64>());
            let range = layout.block_range(sbn).unwrap();
            let block = &data[range.start as usize..range.end as usize];
            let k = layout.source_symbols(sbn).unwrap();
            let mut decoder = BlockDecoder::new(&layout, sbn).unwrap();
            let mut given = HashSet::new();
            for (esi, symbol) in &symbols {
                proptest::prop_assert!(!not.contains(esi) && given.insert(*esi), "ESI {esi}");
                proptest::prop_assert!(no_code || *esi >= k, "source ESI {esi} for RaptorQ");
                decoder.add_symbol(*esi, symbol).unwrap();
            }
            // The asker's other source symbols, up to K in all.
            for esi in (0..k).filter(|e| !given.contains(e)).take((k as usize).saturating_sub(given.len())) {
                let start = esi as usize * 64;
                decoder.add_symbol(esi, &block[start..(start + 64).min(block.len())]).unwrap();
            }
            // Compact No-Code now holds every source symbol; RaptorQ holds K
            // (and fails to decode at K about once in 200 blocks).
            match decoder.data() {
                Some(decoded) => proptest::prop_assert_eq!(decoded, block),
                None => proptest::prop_assert!(!no_code, "no-code block incomplete"),
            }
        }
    }

    #[test]
    fn a_file_shorter_than_its_have_map_claims_is_an_error() {
        let data = object(5000);
        let (dir, store, oti) = served(FecScheme::RaptorQ, &data, 64);
        std::fs::write(dir.path().join("short"), &data[..100]).unwrap();
        store.serve_blocks("/o".into(), oti, dir.path().join("short"), vec![true]);
        let (response, _) = store.answer(ask(10, 0, Vec::new()), &PeerLimits::default());
        assert!(matches!(response, Response::Error { .. }), "{response:?}");
    }

    fn repair_of(data: &[u8], oti: &Oti, first_esi: u32, count: u32) -> Vec<(u32, Vec<u8>)> {
        let layout = oti.layout();
        let len = layout.block_len(0).unwrap();
        dms_fec::BlockEncoder::new(&layout, 0, &data[..len])
            .unwrap()
            .repair_symbols(first_esi, count)
            .unwrap()
    }

    #[test]
    fn concurrent_requests_for_a_block_prepare_it_once() {
        let data = object(20_000);
        let (_dir, store, oti) = served(FecScheme::RaptorQ, &data, 64);
        let k = oti.layout().source_symbols(0).unwrap();
        std::thread::scope(|s| {
            for thread in 0..6u32 {
                let (store, data, oti) = (&store, &data, &oti);
                s.spawn(move || {
                    for round in 0..5u32 {
                        let first = k + 100 * (thread * 5 + round);
                        let (response, _) =
                            store.answer(ask(10, first, Vec::new()), &PeerLimits::default());
                        let Response::Symbols { symbols } = response else {
                            panic!("{response:?}")
                        };
                        assert_eq!(symbols, repair_of(data, oti, first, 10));
                    }
                });
            }
        });
        let stats = store.blocks.stats();
        assert_eq!(stats.builds, 1);
        assert_eq!(stats.hits, 6 * 5 - 1);
    }

    #[test]
    fn a_re_served_location_never_answers_from_the_old_file() {
        let first = object(5000);
        let (dir, store, oti) = served(FecScheme::RaptorQ, &first, 64);
        let k = oti.layout().source_symbols(0).unwrap();
        let limits = PeerLimits::default();
        let (response, _) = store.answer(ask(5, k, Vec::new()), &limits);
        assert_eq!(
            response,
            Response::Symbols {
                symbols: repair_of(&first, &oti, k, 5)
            }
        );
        assert_eq!(store.blocks.len(), 1);
        // Other bytes, same location and layout.
        let second: Vec<u8> = first.iter().map(|b| b ^ 0x5a).collect();
        let path = dir.path().join("second");
        std::fs::write(&path, &second).unwrap();
        store.serve_blocks("/o".into(), oti, path, vec![true]);
        assert!(store.blocks.is_empty());
        let (response, _) = store.answer(ask(5, k, Vec::new()), &limits);
        assert_eq!(
            response,
            Response::Symbols {
                symbols: repair_of(&second, &oti, k, 5)
            }
        );
        store.stop_serving("/o");
        assert!(store.blocks.is_empty());
        assert_eq!(
            store.answer(ask(5, k, Vec::new()), &limits).0,
            Response::DontHave
        );
    }
}
