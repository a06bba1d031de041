//! What the service's handlers share: its settings and its state (the
//! object source, the report store, the encoder gate and the cache of
//! prepared blocks). The router (`service.rs`) builds it; the
//! handlers (download, repair, report) read it.

use std::sync::Arc;

use dms_fec::{DEFAULT_ENCODER_CACHE_BYTES, EncoderCache};
use tokio::sync::Semaphore;

use crate::limit::LimitConfig;
use crate::report::ReportStore;
use crate::source::ObjectSource;

/// Prepared blocks of the objects served, keyed by (object id, SBN): ids
/// are never reused, so a key always names the same bytes.
pub type BlockCache = EncoderCache<(String, u32)>;

/// Settings of the download and repair service.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Most symbols one repair request may ask for.
    pub max_symbols_per_request: u32,
    /// Most bytes of symbols one repair answer may carry (bounds memory per
    /// request together with the concurrency cap).
    pub max_answer_bytes: usize,
    /// Largest request body accepted (POST /repair, POST /report).
    pub max_body_bytes: usize,
    /// Most repair-symbol encodings running at once (each holds a source
    /// block and its intermediate symbols); other requests queue for one.
    /// Requests answered from cached blocks do not count.
    pub max_parallel_encodes: usize,
    /// Bytes of prepared blocks (block bytes and RaptorQ intermediate
    /// symbols, about three times the block) kept between repair requests,
    /// least recently used first out; 0 turns the cache off. The default,
    /// [`DEFAULT_ENCODER_CACHE_BYTES`] (64 MiB), holds about twenty 1 MiB
    /// blocks.
    pub encoder_cache_bytes: usize,
    /// Overload limits.
    pub limits: LimitConfig,
}

/// The default cap on symbols one repair request may ask for (a client
/// asking more splits its request).
pub const MAX_SYMBOLS_PER_REQUEST: u32 = 4096;

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_symbols_per_request: MAX_SYMBOLS_PER_REQUEST,
            max_answer_bytes: 8 << 20,
            max_body_bytes: 64 << 10,
            max_parallel_encodes: std::thread::available_parallelism().map_or(2, |n| n.get()),
            encoder_cache_bytes: DEFAULT_ENCODER_CACHE_BYTES,
            limits: LimitConfig::default(),
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) source: Arc<dyn ObjectSource>,
    pub(crate) config: Arc<ServiceConfig>,
    pub(crate) reports: Option<Arc<dyn ReportStore>>,
    pub(crate) encoders: Arc<Semaphore>,
    pub(crate) blocks: Arc<BlockCache>,
}
