//! `GET|POST /repair`: TS 26.346 symbol-based file repair. The answer plan
//! ([`plan_answer`]) is sans-IO; the handler reads source symbols straight
//! from the blob (or from a cached block) and makes repair symbols with a
//! [`PreparedBlock`] kept in a [`BlockCache`], so a block's intermediate
//! symbols are computed once for many requests (its RaptorQ plan comes from
//! the process-wide plan cache).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use dms_fec::{FecScheme, Layout, PayloadId, PreparedBlock};

use crate::container::{CONTENT_TYPE, ENTRY_HEADER_LEN, entry_header};
use crate::error::{ApiError, blocking};
use crate::query::{RepairItem, parse_query};
use crate::source::BlobReader;
use crate::state::AppState;
pub use crate::state::BlockCache;

/// A run of symbols with consecutive ESIs, all source or all repair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The block.
    pub sbn: u32,
    /// First ESI.
    pub first_esi: u32,
    /// Number of symbols (1..=65535).
    pub count: u16,
}

/// Why a repair request cannot be answered (all are 400s).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// No such source block.
    #[error("SBN {sbn} is past the object's {blocks} source blocks")]
    Block {
        /// Asked SBN.
        sbn: u32,
        /// Blocks of the object.
        blocks: u32,
    },
    /// An ESI the scheme cannot have in this block.
    #[error("ESI {esi} of block {sbn} is past the limit {limit}")]
    Esi {
        /// The block.
        sbn: u32,
        /// Asked ESI.
        esi: u64,
        /// First invalid ESI.
        limit: u32,
    },
    /// More symbols than one request may get.
    #[error("{asked} symbols asked; at most {cap} per request")]
    TooMany {
        /// Symbols asked so far.
        asked: u64,
        /// The cap.
        cap: u32,
    },
}

/// The runs that answer `items` for an object of this layout, at most
/// `cap` symbols in all. Empty `items` means every source symbol.
pub fn plan_answer(items: &[RepairItem], layout: &Layout, cap: u32) -> Result<Vec<Run>, PlanError> {
    let mut runs = Vec::new();
    let mut total = 0u64;
    let blocks = layout.block_count();
    let whole;
    let items = if items.is_empty() {
        whole = [RepairItem::Blocks {
            first: 0,
            last: blocks - 1,
        }];
        &whole[..]
    } else {
        items
    };
    for item in items {
        match *item {
            RepairItem::Blocks { first, last } => {
                if last >= blocks {
                    return Err(PlanError::Block { sbn: last, blocks });
                }
                for sbn in first..=last {
                    let k = layout.source_symbols(sbn).unwrap_or(0);
                    push_range(&mut runs, &mut total, layout, sbn, 0, u64::from(k), cap)?;
                }
            }
            RepairItem::Symbols { sbn, ref esis } => {
                for r in esis {
                    let count = u64::from(r.last) - u64::from(r.first) + 1;
                    push_range(&mut runs, &mut total, layout, sbn, r.first, count, cap)?;
                }
            }
            RepairItem::More {
                sbn,
                count,
                first_esi,
            } => {
                let k = layout
                    .source_symbols(sbn)
                    .ok_or(PlanError::Block { sbn, blocks })?;
                let first = first_esi.unwrap_or(k);
                push_range(
                    &mut runs,
                    &mut total,
                    layout,
                    sbn,
                    first,
                    u64::from(count),
                    cap,
                )?;
            }
        }
    }
    Ok(runs)
}

fn push_range(
    runs: &mut Vec<Run>,
    total: &mut u64,
    layout: &Layout,
    sbn: u32,
    first: u32,
    count: u64,
    cap: u32,
) -> Result<(), PlanError> {
    let blocks = layout.block_count();
    let k = layout
        .source_symbols(sbn)
        .ok_or(PlanError::Block { sbn, blocks })?;
    let limit = match layout.scheme() {
        FecScheme::NoCode => k,
        FecScheme::RaptorQ => FecScheme::RaptorQ.esi_limit(),
    };
    let end = u64::from(first) + count;
    if end > u64::from(limit) {
        return Err(PlanError::Esi {
            sbn,
            esi: end - 1,
            limit,
        });
    }
    *total += count;
    if *total > u64::from(cap) {
        return Err(PlanError::TooMany { asked: *total, cap });
    }
    // Split at K (source/repair) and at the 16-bit entry count. `end` fits
    // u32: it is at most the ESI limit.
    let mut esi = first;
    let end = end as u32;
    while esi < end {
        let stop = if esi < k { k.min(end) } else { end };
        let n = (stop - esi).min(u32::from(u16::MAX));
        runs.push(Run {
            sbn,
            first_esi: esi,
            count: n as u16,
        });
        esi += n;
    }
    Ok(())
}

/// Where [`build_answer`] finds the bytes of one object's blocks.
#[derive(Clone, Copy)]
pub struct Blocks<'a> {
    /// The object's id ([`ObjectInfo::id`](crate::ObjectInfo::id)).
    pub object_id: &'a str,
    /// Its bytes.
    pub blob: &'a dyn BlobReader,
    /// Blocks already prepared, shared by all requests.
    pub cache: &'a BlockCache,
}

impl std::fmt::Debug for Blocks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocks")
            .field("object_id", &self.object_id)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Blocks<'_> {
    fn key(&self, sbn: u32) -> (String, u32) {
        (self.object_id.to_owned(), sbn)
    }

    /// Block `sbn` if it is cached (and is that block of `layout`).
    fn cached(&self, layout: &Layout, sbn: u32) -> Option<Arc<PreparedBlock>> {
        self.cache
            .get(&self.key(sbn))
            .filter(|b| b.fits(layout, sbn))
    }

    /// Block `sbn`, from the cache or read from the blob and prepared (and
    /// then cached).
    fn prepared(&self, layout: &Layout, sbn: u32) -> Result<Arc<PreparedBlock>, ApiError> {
        let read = || -> Result<PreparedBlock, ApiError> {
            let (Some(offset), Some(len)) = (layout.block_offset(sbn), layout.block_len(sbn))
            else {
                return Err(ApiError::internal("planned SBN outside the layout"));
            };
            let mut data = vec![0u8; len];
            self.blob
                .read_exact_at(&mut data, offset)
                .map_err(ApiError::internal)?;
            PreparedBlock::new(layout, sbn, data).map_err(ApiError::internal)
        };
        let key = self.key(sbn);
        let block = self.cache.get_or_build(key.clone(), read)?;
        if block.fits(layout, sbn) {
            return Ok(block);
        }
        // Only a source that changed an object's layout under the same id
        // gets here: forget the stale block and prepare this one afresh.
        self.cache.remove(&key);
        self.cache.get_or_build(key, read)
    }
}

/// Builds the container for `runs` (planned against `layout`) from
/// `blocks`: source symbols from a cached block or read from the blob,
/// repair symbols from a prepared block (cached for the next request).
pub fn build_answer(
    runs: &[Run],
    layout: &Layout,
    blocks: Blocks<'_>,
) -> Result<Vec<u8>, ApiError> {
    let scheme = layout.scheme();
    let t = usize::from(layout.symbol_size());
    let symbols: usize = runs.iter().map(|r| usize::from(r.count)).sum();
    let mut out = Vec::with_capacity(symbols * t + runs.len() * ENTRY_HEADER_LEN);
    let mut repair: Vec<Run> = Vec::new();
    for run in runs {
        let k = layout.source_symbols(run.sbn).unwrap_or(0);
        if run.first_esi >= k {
            repair.push(*run);
            continue;
        }
        write_header(&mut out, scheme, run)?;
        let (Some(block_offset), Some(block_len)) =
            (layout.block_offset(run.sbn), layout.block_len(run.sbn))
        else {
            return Err(ApiError::internal("planned SBN outside the layout"));
        };
        let start = run.first_esi as usize * t;
        let want = usize::from(run.count) * t;
        let len = want.min(block_len - start);
        let at = out.len();
        // Zeros pad the object's short last symbol.
        out.resize(at + want, 0);
        match blocks.cached(layout, run.sbn) {
            Some(block) => out[at..at + len].copy_from_slice(&block.data()[start..start + len]),
            None => blocks
                .blob
                .read_exact_at(&mut out[at..at + len], block_offset + start as u64)
                .map_err(ApiError::internal)?,
        }
    }
    // One prepared block for all its repair runs.
    repair.sort_by_key(|r| r.sbn);
    let mut i = 0;
    while i < repair.len() {
        let sbn = repair[i].sbn;
        let j = i + repair[i..].iter().take_while(|r| r.sbn == sbn).count();
        let block = blocks.prepared(layout, sbn)?;
        for run in &repair[i..j] {
            write_header(&mut out, scheme, run)?;
            let at = out.len();
            out.resize(at + usize::from(run.count) * t, 0);
            block
                .write_repair_symbols(run.first_esi, u32::from(run.count), &mut out[at..])
                .map_err(ApiError::internal)?;
        }
        i = j;
    }
    Ok(out)
}

fn write_header(out: &mut Vec<u8>, scheme: FecScheme, run: &Run) -> Result<(), ApiError> {
    let head = entry_header(scheme, PayloadId::new(run.sbn, run.first_esi), run.count)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    out.extend_from_slice(&head);
    Ok(())
}

pub(crate) async fn repair_get(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    answer(state, query.unwrap_or_default()).await
}

pub(crate) async fn repair_post(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("request body is not UTF-8"))?;
    answer(state, body).await
}

async fn answer(state: AppState, query: String) -> Result<Response, ApiError> {
    let query = parse_query(&query).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let source = state.source.clone();
    let config = state.config.clone();
    let (object, runs) = blocking(move || {
        let object = source
            .object_by_location(&query.file_uri)
            .map_err(crate::error::source_error)?
            .ok_or_else(|| ApiError::not_found(format!("no object at {}", query.file_uri)))?;
        let layout = object.oti.layout();
        let by_bytes = config.max_answer_bytes / usize::from(layout.symbol_size()).max(1);
        let cap = config
            .max_symbols_per_request
            .min(u32::try_from(by_bytes).unwrap_or(u32::MAX));
        let runs = plan_answer(&query.items, &layout, cap)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok((object, runs))
    })
    .await?;
    let layout = object.oti.layout();
    let encodes = runs.iter().any(|r| {
        r.first_esi >= layout.source_symbols(r.sbn).unwrap_or(0)
            && !state.blocks.contains(&(object.id.clone(), r.sbn))
    });
    // Preparing a block holds it and its intermediate symbols: only a few
    // at a time (the rest wait here, cheaply). Answers from cached blocks
    // need no permit.
    let _permit = if encodes {
        Some(
            state
                .encoders
                .clone()
                .acquire_owned()
                .await
                .map_err(ApiError::internal)?,
        )
    } else {
        None
    };
    let source = state.source.clone();
    let cache = state.blocks.clone();
    let body = blocking(move || {
        let blob = source.open(&object).map_err(ApiError::internal)?;
        let blocks = Blocks {
            object_id: &object.id,
            blob: blob.as_ref(),
            cache: &cache,
        };
        build_answer(&runs, &layout, blocks)
    })
    .await?;
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, CONTENT_TYPE)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
    use super::*;
    use crate::query::EsiRange;
    use dms_fec::Oti;

    fn layout() -> Layout {
        // 3 blocks of 10 symbols of 4 bytes, the last symbol short.
        Oti::raptorq(118, 4, 3, 1, 4).unwrap().layout()
    }

    #[test]
    fn plans_split_at_k() {
        let l = layout();
        let runs = plan_answer(
            &[RepairItem::Symbols {
                sbn: 1,
                esis: vec![EsiRange { first: 8, last: 12 }],
            }],
            &l,
            100,
        )
        .unwrap();
        let k = l.source_symbols(1).unwrap();
        assert_eq!(
            runs,
            vec![
                Run {
                    sbn: 1,
                    first_esi: 8,
                    count: (k - 8) as u16
                },
                Run {
                    sbn: 1,
                    first_esi: k,
                    count: (13 - k) as u16
                },
            ]
        );
        let whole = plan_answer(&[], &l, 100).unwrap();
        let n: u32 = whole.iter().map(|r| u32::from(r.count)).sum();
        assert_eq!(u64::from(n), l.total_source_symbols());
        let more = plan_answer(
            &[RepairItem::More {
                sbn: 2,
                count: 5,
                first_esi: None,
            }],
            &l,
            100,
        )
        .unwrap();
        assert_eq!(
            more,
            vec![Run {
                sbn: 2,
                first_esi: l.source_symbols(2).unwrap(),
                count: 5
            }]
        );
    }

    #[test]
    fn plan_errors() {
        let l = layout();
        assert!(matches!(
            plan_answer(&[RepairItem::Blocks { first: 0, last: 3 }], &l, 100),
            Err(PlanError::Block { .. })
        ));
        assert!(matches!(
            plan_answer(
                &[RepairItem::More {
                    sbn: 0,
                    count: 1 << 24,
                    first_esi: None
                }],
                &l,
                u32::MAX
            ),
            Err(PlanError::Esi { .. })
        ));
        assert!(matches!(
            plan_answer(&[], &l, 5),
            Err(PlanError::TooMany { .. })
        ));
        let nocode = Oti::no_code(100, 4, 10).unwrap().layout();
        assert!(matches!(
            plan_answer(
                &[RepairItem::More {
                    sbn: 0,
                    count: 1,
                    first_esi: None
                }],
                &nocode,
                100
            ),
            Err(PlanError::Esi { .. })
        ));
    }
}
