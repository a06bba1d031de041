//! [`Objects`] over an [`ObjectSource`]: looked-up objects and their open
//! blobs are kept a few seconds, so a block-wise download (thousands of
//! requests for one object) asks the catalog once, not per block.
//!
//! Ids are never reused, so what is cached is never wrong, only possibly
//! withdrawn: a withdrawn or deleted object stops being served within
//! [`CACHE_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::resource::{Objects, Served};
use crate::source::{ObjectInfo, ObjectSource, SourceError};

/// How long a look-up is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// Most objects kept open.
const CACHE_ENTRIES: usize = 256;

type Key = (String, Option<[u8; 32]>);

/// A look-up and when it was made (`None`: no such object).
type Cached = (Instant, Option<Arc<Served>>);

/// Objects from an [`ObjectSource`], with a short cache.
pub struct SourceObjects {
    source: Arc<dyn ObjectSource>,
    cache: Mutex<HashMap<Key, Cached>>,
}

impl std::fmt::Debug for SourceObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceObjects").finish_non_exhaustive()
    }
}

impl SourceObjects {
    /// Objects of `source`.
    pub fn new(source: Arc<dyn ObjectSource>) -> Self {
        SourceObjects {
            source,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn look_up(
        &self,
        id: &str,
        from: Option<&[u8; 32]>,
    ) -> Result<Option<Arc<Served>>, SourceError> {
        let Some(object) = self.source.object(id)? else {
            return Ok(None);
        };
        if let Some(base) = from
            && let Some((delta, reader)) = self.source.delta_from(&object, base)?
        {
            // A delta is served like the object, as its own representation.
            let info = ObjectInfo {
                size: delta.size,
                sha256: delta.sha256,
                content_type: crate::download::DELTA_CONTENT_TYPE.to_owned(),
                ..object
            };
            return Ok(Some(Arc::new(Served::new(info, Arc::from(reader)))));
        }
        let blob = self.source.open(&object)?;
        Ok(Some(Arc::new(Served::new(object, Arc::from(blob)))))
    }
}

impl Objects for SourceObjects {
    fn resolve(
        &self,
        id: &str,
        from: Option<&[u8; 32]>,
    ) -> Result<Option<Arc<Served>>, SourceError> {
        let now = Instant::now();
        let key = (id.to_owned(), from.copied());
        if let Ok(cache) = self.cache.lock()
            && let Some((at, served)) = cache.get(&key)
            && now.saturating_duration_since(*at) < CACHE_TTL
        {
            return Ok(served.clone());
        }
        // Looked up outside the lock: a slow catalog stalls only this one.
        let served = self.look_up(id, from)?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.retain(|_, (at, _)| now.saturating_duration_since(*at) < CACHE_TTL);
                if cache.len() >= CACHE_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(key, (now, served.clone()));
        }
        Ok(served)
    }
}
