//! What this node serves: objects (whole or block by block) read from
//! files, and the objects it announces; and the answers made from them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use dms_fec::{BlockEncoder, FecScheme, Oti};

use super::config::PeerLimits;
use super::protocol::{ObjectAnnouncement, Request, Response};

/// An object served from a file: block `sbn` is at its layout offset in
/// `path` once `have[sbn]` is set.
#[derive(Debug, Clone)]
struct Held {
    path: PathBuf,
    oti: Oti,
    have: Vec<bool>,
}

#[derive(Debug, Default)]
struct Inner {
    held: HashMap<String, Held>,
    announced: BTreeMap<String, ObjectAnnouncement>,
}

/// The shared store (the handle writes, the swarm's answers read).
#[derive(Debug, Clone, Default)]
pub(crate) struct Store {
    inner: Arc<Mutex<Inner>>,
}

impl Store {
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
        self.with(|i| i.held.insert(location, Held { path, oti, have }));
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
        self.with(|i| i.held.remove(location));
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
                        .map(|h| (h.path.clone(), h.oti))
                });
                let Some((path, oti)) = held else {
                    return (Response::DontHave, 0);
                };
                let t = u64::from(oti.symbol_size()).max(1);
                let fit = (limits.max_response_bytes / t).min(u64::from(u32::MAX)) as u32;
                let count = count.min(limits.max_symbols_per_request).min(fit);
                match symbols(&path, &oti, sbn, count, first_esi, &not) {
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

/// `count` symbols of block `sbn` of the object in `path`: fresh repair
/// symbols from `first_esi` (at least K) for RaptorQ, source symbols from
/// `first_esi` for Compact No-Code; ESIs in `not` skipped.
fn symbols(
    path: &std::path::Path,
    oti: &Oti,
    sbn: u32,
    count: u32,
    first_esi: u32,
    not: &[u32],
) -> Result<Vec<(u32, Vec<u8>)>, String> {
    let layout = oti.layout();
    let (Some(offset), Some(len), Some(k)) = (
        layout.block_offset(sbn),
        layout.block_len(sbn),
        layout.source_symbols(sbn),
    ) else {
        return Err(format!("no block {sbn}"));
    };
    let mut data = vec![0u8; len];
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    file.read_exact_at(&mut data, offset)
        .map_err(|e| e.to_string())?;
    let encoder = BlockEncoder::new(&layout, sbn, &data).map_err(|e| e.to_string())?;
    let skip: HashSet<u32> = not.iter().copied().collect();
    match oti.scheme() {
        FecScheme::NoCode => Ok((first_esi..k)
            .filter(|esi| !skip.contains(esi))
            .take(count as usize)
            .filter_map(|esi| encoder.source_symbol(esi).map(|s| (esi, s.to_vec())))
            .collect()),
        FecScheme::RaptorQ => {
            let first_esi = first_esi.max(k);
            // Make enough to skip the asker's ESIs in range, no more.
            let end = u64::from(first_esi) + 2 * u64::from(count);
            let skipped = skip
                .iter()
                .filter(|&&e| e >= first_esi && u64::from(e) < end)
                .count() as u32;
            let limit = FecScheme::RaptorQ.esi_limit();
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

    #[test]
    fn a_file_shorter_than_its_have_map_claims_is_an_error() {
        let data = object(5000);
        let (dir, store, oti) = served(FecScheme::RaptorQ, &data, 64);
        std::fs::write(dir.path().join("short"), &data[..100]).unwrap();
        store.serve_blocks("/o".into(), oti, dir.path().join("short"), vec![true]);
        let (response, _) = store.answer(ask(10, 0, Vec::new()), &PeerLimits::default());
        assert!(matches!(response, Response::Error { .. }), "{response:?}");
    }
}
