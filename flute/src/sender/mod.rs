//! The sans-IO FLUTE sender: objects in, ALC datagrams out.
//!
//! ```text
//!  add_object(ObjectSpec) ──> Toi          (source: any Read + Seek + Send)
//!  poll_transmit(now, &mut buf) ──> Transmit { size, kind, toi }   one datagram
//!  poll_timeout() ──> next FDT repeat;  handle_timeout(now) fires it
//!  is_finished(), stats()
//!  repair_jobs() ──> blocks to encode next;  supply_repair(job, symbols)
//! ```
//!
//! Like `quinn-proto`, the sender owns no socket and no clock: the driver
//! (the origin's broadcast session) calls [`Sender::poll_transmit`] as fast
//! as its pacing allows, sends each datagram, and arms a timer for
//! [`Sender::poll_timeout`]. Time only goes forward.
//!
//! ```
//! use std::io::Cursor;
//! use std::time::Instant;
//! use dms_flute::{ObjectSpec, Sender, SenderConfig, TransmitKind};
//!
//! // TSI 1; the FDT expires at this NTP second (the driver owns the clock).
//! let mut sender = Sender::new(SenderConfig::new(1, 3_913_056_000))?;
//! sender.add_object(ObjectSpec::new("fw/app.bin", Cursor::new(vec![7u8; 10_000])))?;
//! let mut buf = [0u8; 1472];
//! let now = Instant::now();
//! let mut kinds = Vec::new();
//! while let Some(t) = sender.poll_transmit(now, &mut buf)? {
//!     // The driver paces and sends &buf[..t.size] here.
//!     kinds.push(t.kind);
//! }
//! assert_eq!(kinds[0], TransmitKind::Fdt);
//! assert!(sender.is_finished());
//! # Ok::<(), dms_flute::SenderError>(())
//! ```
//!
//! # What is sent, in which order
//!
//! 1. The FDT Instance (TOI 0, EXT_FDT with the configured FLUTE version,
//!    EXT_FTI, Compact No-Code, as many packets as the XML needs), listing
//!    every object with its FEC OTI. It is sent again every
//!    [`SenderConfig::fdt_interval`] while data remains, and at once when
//!    the object list changes (its FDT Instance ID then increments, modulo
//!    2²⁰).
//! 2. The objects, round by round ([`SenderConfig::carousel_rounds`]): in
//!    each round, objects by descending priority; objects of equal priority
//!    interleave their blocks round-robin (block 0 of each, then block 1 …).
//!    Each block is its source symbols (ESI 0..K; RaptorQ pads the object's
//!    last symbol to T, no-code sends it short) then its repair symbols
//!    (ESI K..K+⌈K·pct/100⌉). An object added while a round is under way
//!    joins from the next round, and the updated FDT goes out first.
//! 3. The B flag on each object's last packet and the A flag on the
//!    session's last packet, if configured.
//!
//! # Encode once, bounded memory
//!
//! The sender holds one source block (read from the source with a seek,
//! padded to K·T for RaptorQ) and that block's repair symbols. With one
//! round, nothing else. With several rounds, each block is still run
//! through the RaptorQ encoder once: its repair symbols are kept from the
//! first round to the last (lent to the packet writer while the block is
//! sent, then put back) and dropped after the last; source symbols are read
//! again from the source each round, since reading is cheap and encoding
//! is not. The kept bytes are Σ ⌈K·pct/100⌉·T over the blocks — about pct %
//! of the objects' size — and are bounded by
//! [`SenderConfig::repair_cache_bytes`]: [`Sender::add_object`] refuses an
//! object that would exceed the budget ([`SenderError::RepairCacheBudget`])
//! rather than re-encoding or silently dropping repair symbols.
//! [`SenderStats::blocks_encoded`] counts encoder runs.
//!
//! A driver with a spare core can take the encoding off the sending
//! thread: [`Sender::repair_jobs`] lists the blocks the sender would
//! encode next, and [`Sender::supply_repair`] takes their symbols made
//! elsewhere with [`RepairJob::encode`] (see the `ahead` module; counted in
//! [`SenderStats::blocks_supplied`]).
//!
//! # Errors
//!
//! A source that fails to read (or is shorter than measured) makes
//! [`Sender::poll_transmit`] return [`SenderError::Read`]; that object is
//! abandoned (removed from the FDT, which is re-sent) and the next call goes
//! on with the others. Nothing panics.

mod ahead;
mod config;
mod error;
mod fdt_out;
mod object;
mod stats;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use dms_fec::{BlockEncoder, FecScheme, read_block};

pub use ahead::RepairJob;
pub use config::{
    DEFAULT_MAX_DATAGRAM_SIZE, DEFAULT_REPAIR_CACHE_BYTES, DEFAULT_SYMBOL_SIZE, MIN_DATAGRAM_SIZE,
    ObjectSource, ObjectSpec, SenderConfig,
};
pub use error::SenderError;
pub use stats::{ObjectStats, SenderStats, Transmit, TransmitKind};

use crate::alc::{AlcPacket, PayloadId};
use crate::lct::{Extensions, LctHeader};
use fdt_out::FdtOut;
use object::{ObjectState, data_extensions};

/// A Transport Object Identifier. TOI 0 is the FDT; objects get 1, 2, …
pub type Toi = u128;

/// The block being sent.
#[derive(Debug, Clone, Copy)]
struct Unit {
    obj: usize,
    sbn: u32,
    k: u32,
    repair: u32,
    next_esi: u32,
    /// This is the object's last block of its last round.
    last_of_object: bool,
}

/// A FLUTE sender for one session (one TSI). See the [module
/// documentation](self) for the packet order and memory bounds.
#[derive(Debug)]
pub struct Sender {
    config: SenderConfig,
    objects: Vec<ObjectState>,
    stats: SenderStats,
    fdt: FdtOut,
    next_toi: Toi,
    /// Blocks of the current round still to send, as (object, SBN).
    queue: VecDeque<(usize, u32)>,
    current: Option<Unit>,
    /// The current block's bytes (padded to K·T for RaptorQ).
    block_buf: Vec<u8>,
    /// The current block's repair symbols, back to back.
    repair_buf: Vec<u8>,
    /// Repair-cache bytes reserved by objects.
    cache_used: u64,
    /// Repair symbols made by the driver ahead of their blocks, by
    /// (object, SBN) (see [`Sender::supply_repair`]).
    supplied: HashMap<(usize, u32), Vec<u8>>,
    /// Bytes in `supplied`.
    supplied_bytes: u64,
    /// The A flag was sent.
    closed: bool,
}

impl Sender {
    /// A sender with no objects yet. Fails if the TSI exceeds 48 bits, the
    /// datagram size is below [`MIN_DATAGRAM_SIZE`], or there are no
    /// carousel rounds.
    pub fn new(config: SenderConfig) -> Result<Self, SenderError> {
        if config.tsi > LctHeader::MAX_TSI {
            return Err(SenderError::InvalidConfig("TSI exceeds 48 bits"));
        }
        if config.max_datagram_size < MIN_DATAGRAM_SIZE {
            return Err(SenderError::InvalidConfig("max_datagram_size is too small"));
        }
        if config.carousel_rounds == 0 {
            return Err(SenderError::InvalidConfig("carousel_rounds is 0"));
        }
        let fdt = FdtOut::new(config.tsi, config.flute_version, config.max_datagram_size)?;
        Ok(Sender {
            config,
            objects: Vec::new(),
            stats: SenderStats::default(),
            fdt,
            next_toi: 1,
            queue: VecDeque::new(),
            current: None,
            block_buf: Vec::new(),
            repair_buf: Vec::new(),
            cache_used: 0,
            supplied: HashMap::new(),
            supplied_bytes: 0,
            closed: false,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// Adds an object and returns its TOI. Measures the source (seek to its
    /// end) but reads nothing yet. The updated FDT is sent before any more
    /// data.
    pub fn add_object(&mut self, spec: ObjectSpec) -> Result<Toi, SenderError> {
        if self.closed {
            return Err(SenderError::SessionClosed);
        }
        let toi = self.next_toi;
        if toi > LctHeader::MAX_TOI {
            return Err(SenderError::ToiExhausted);
        }
        let rounds = self.config.carousel_rounds;
        let mut object = ObjectState::new(toi, spec, rounds)?;

        let (list, n) = data_extensions(self.config.inband_fti, object.fti, object.cenc);
        let mut header = LctHeader::new(self.config.tsi, toi, object.fti.codepoint());
        header.extensions = Extensions::from_list(list.get(..n).unwrap_or_default());
        let max = self
            .config
            .max_datagram_size
            .saturating_sub(header.encoded_len()? + PayloadId::LEN);
        let symbol_size = object.layout.symbol_size();
        if usize::from(symbol_size) > max {
            return Err(SenderError::SymbolTooLarge { symbol_size, max });
        }
        if rounds > 1 {
            let needed = object.repair_bytes();
            let available = self
                .config
                .repair_cache_bytes
                .saturating_sub(self.cache_used);
            if needed > available {
                return Err(SenderError::RepairCacheBudget { needed, available });
            }
            object.cache_reserved = needed;
            self.cache_used += needed;
        }

        self.next_toi += 1;
        self.stats.objects.push(ObjectStats {
            toi,
            ..ObjectStats::default()
        });
        self.objects.push(object);
        self.fdt.changed();
        Ok(toi)
    }

    /// Sets the digests of object `toi` in its FDT entry (`Content-MD5`
    /// and our SHA-256), for a driver that adds a large object first and
    /// hashes it while its first blocks are encoded ahead. The FDT with
    /// them goes out before any more data; a driver that calls this before
    /// the first [`Sender::poll_transmit`] sends no FDT without them.
    pub fn set_digests(
        &mut self,
        toi: Toi,
        content_md5: Option<[u8; 16]>,
        sha256: Option<[u8; 32]>,
    ) -> Result<(), SenderError> {
        let o = self
            .objects
            .iter_mut()
            .find(|o| o.toi == toi)
            .ok_or(SenderError::UnknownObject(toi))?;
        o.fdt_file.content_md5 = content_md5;
        o.fdt_file.sha256 = sha256;
        self.fdt.changed();
        Ok(())
    }

    /// Writes the next datagram into `buf` (which should hold
    /// [`SenderConfig::max_datagram_size`] bytes) and says what it is;
    /// `Ok(None)` when there is nothing to send now.
    ///
    /// An expired FDT timer is handled here too, as if
    /// [`Sender::handle_timeout`] had been called with `now`. On
    /// [`SenderError::Read`] the object is abandoned and the next call goes
    /// on; on a too-small buffer nothing is consumed.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut [u8],
    ) -> Result<Option<Transmit>, SenderError> {
        self.handle_timeout(now);
        if self.fdt.in_progress() || (self.fdt.due && self.data_remaining()) {
            if !self.fdt.in_progress() {
                self.fdt.begin(
                    now,
                    self.config.fdt_interval,
                    self.config.fdt_expires,
                    self.objects
                        .iter()
                        .filter(|o| !o.failed)
                        .map(|o| &o.fdt_file),
                )?;
            }
            let packet = self.fdt.write(self.config.tsi, buf)?;
            self.stats.packets += 1;
            self.stats.bytes += packet.size as u64;
            self.stats.fdt_packets += 1;
            if packet.last {
                self.stats.fdt_transmissions += 1;
            }
            return Ok(Some(Transmit {
                size: packet.size,
                kind: TransmitKind::Fdt,
                toi: 0,
            }));
        }
        if !self.next_unit()? {
            // Nothing left: no more FDT repeats either.
            self.fdt.due = false;
            self.fdt.next_at = None;
            return Ok(None);
        }
        self.write_data(buf).map(Some)
    }

    /// When [`Sender::handle_timeout`] should next be called: the next FDT
    /// repeat, or `None` when nothing remains to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.data_remaining() {
            self.fdt.next_at
        } else {
            None
        }
    }

    /// Fires the timers that expired at `now` (the FDT repeat).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(at) = self.fdt.next_at
            && now >= at
        {
            self.fdt.next_at = None;
            self.fdt.due = true;
        }
    }

    /// Whether every object has been sent in all its rounds (or abandoned)
    /// and no FDT transmission is under way. True for a sender with no
    /// objects.
    pub fn is_finished(&self) -> bool {
        !self.data_remaining() && !self.fdt.in_progress()
    }

    /// The session's counters.
    pub fn stats(&self) -> &SenderStats {
        &self.stats
    }

    /// The FDT Instance ID of the current FDT.
    pub fn fdt_instance_id(&self) -> u32 {
        self.fdt.instance_id()
    }

    /// Whether any data packet remains to be sent.
    fn data_remaining(&self) -> bool {
        self.current.is_some() || self.more_blocks_after_current()
    }

    /// Whether any block remains after the current one.
    fn more_blocks_after_current(&self) -> bool {
        self.queue.iter().any(|(obj, _)| self.is_live(*obj))
            || self.objects.iter().any(|o| !o.failed && o.rounds_left > 0)
    }

    /// Whether object `obj` exists and was not abandoned.
    fn is_live(&self, obj: usize) -> bool {
        self.objects.get(obj).is_some_and(|o| !o.failed)
    }

    /// Makes sure a block is being sent; `false` when none is left.
    fn next_unit(&mut self) -> Result<bool, SenderError> {
        if self.current.is_some() {
            return Ok(true);
        }
        loop {
            let Some((obj, sbn)) = self.queue.pop_front() else {
                if self.schedule_round() {
                    continue;
                }
                return Ok(false);
            };
            if !self.is_live(obj) {
                continue;
            }
            return match self.start_unit(obj, sbn) {
                Ok(()) => Ok(true),
                Err(e) => {
                    self.abandon(obj);
                    Err(e)
                }
            };
        }
    }

    /// Queues the next round of every object that has rounds left.
    fn schedule_round(&mut self) -> bool {
        let order = self.round_order();
        if order.is_empty() {
            return false;
        }
        for o in self
            .objects
            .iter_mut()
            .filter(|o| !o.failed && o.rounds_left > 0)
        {
            o.rounds_left -= 1;
        }
        self.queue.extend(order);
        true
    }

    /// The blocks of the next round of every object that has rounds left,
    /// as (object, SBN): priority first, equal priorities interleaved block
    /// by block.
    fn round_order(&self) -> Vec<(usize, u32)> {
        let mut eligible: Vec<usize> = (0..self.objects.len())
            .filter(|&i| {
                self.objects
                    .get(i)
                    .is_some_and(|o| !o.failed && o.rounds_left > 0)
            })
            .collect();
        // Stable: equal priorities stay in TOI order.
        eligible.sort_by_key(|&i| std::cmp::Reverse(self.objects.get(i).map_or(0, |o| o.priority)));
        let mut order = Vec::new();
        for group in eligible.chunk_by(|&a, &b| {
            self.objects.get(a).map(|o| o.priority) == self.objects.get(b).map(|o| o.priority)
        }) {
            let blocks = |i: usize| self.objects.get(i).map_or(0, |o| o.layout.block_count());
            let most = group.iter().map(|&i| blocks(i)).max().unwrap_or(0);
            for sbn in 0..most {
                for &i in group {
                    if sbn < blocks(i) {
                        order.push((i, sbn));
                    }
                }
            }
        }
        order
    }

    /// Reads block `sbn` of object `obj` and, if it has repair symbols,
    /// takes them from the cache, takes those the driver supplied, or
    /// encodes them (the block's only encode).
    fn start_unit(&mut self, obj: usize, sbn: u32) -> Result<(), SenderError> {
        let o = self
            .objects
            .get_mut(obj)
            .ok_or(SenderError::Internal("queued object does not exist"))?;
        let toi = o.toi;
        let layout = o.layout;
        read_block(&mut o.source, &layout, sbn, &mut self.block_buf)
            .map_err(|source| SenderError::Read { toi, source })?;
        let len = self.block_buf.len();
        let k = layout
            .source_symbols(sbn)
            .ok_or(SenderError::Internal("queued block does not exist"))?;
        let t = usize::from(layout.symbol_size());
        if layout.scheme().has_repair_symbols() {
            // Coded schemes send the last symbol padded to T.
            self.block_buf.resize(k as usize * t, 0);
        }
        let repair = o.repair_count(k);
        let last_of_object = o.units_left == 1;
        let cached = o.repair_cache.get_mut(sbn as usize).and_then(Option::take);
        if repair > 0 {
            if let Some(symbols) = cached {
                self.repair_buf = symbols;
            } else if let Some(symbols) = self.take_supplied(obj, sbn) {
                // Made by the driver with this block's RepairJob; its
                // length was checked when it was supplied.
                self.repair_buf = symbols;
                self.stats.blocks_supplied += 1;
            } else {
                let data = self
                    .block_buf
                    .get(..len)
                    .ok_or(SenderError::Internal("block shorter than read"))?;
                let encoder = BlockEncoder::new(&layout, sbn, data)
                    .map_err(|source| SenderError::Encode { toi, source })?;
                self.repair_buf.clear();
                self.repair_buf.resize(repair as usize * t, 0);
                encoder
                    .write_repair_symbols(k, repair, &mut self.repair_buf)
                    .map_err(|source| SenderError::Encode { toi, source })?;
                self.stats.blocks_encoded += 1;
                if let Some(s) = self.stats.objects.get_mut(obj) {
                    s.blocks_encoded += 1;
                }
            }
        }
        if layout.sub_blocks() > 1 {
            // Raptor sub-blocks (once encoded from the block as it is):
            // source symbol m is sub-symbol m of each sub-block.
            let block = std::mem::take(&mut self.block_buf);
            self.block_buf = layout
                .wire_order(sbn, block)
                .ok_or(SenderError::Internal("block is not K·T bytes"))?;
        }
        self.current = Some(Unit {
            obj,
            sbn,
            k,
            repair,
            next_esi: 0,
            last_of_object,
        });
        Ok(())
    }

    /// Writes the current block's next symbol into `buf`.
    fn write_data(&mut self, buf: &mut [u8]) -> Result<Transmit, SenderError> {
        let unit = self
            .current
            .ok_or(SenderError::Internal("no block being sent"))?;
        let o = self
            .objects
            .get(unit.obj)
            .ok_or(SenderError::Internal("sending a missing object"))?;
        let t = usize::from(o.layout.symbol_size());
        let esi = unit.next_esi;
        let is_source = esi < unit.k;
        let symbol = if is_source {
            let start = esi as usize * t;
            let end = (start + t).min(self.block_buf.len());
            self.block_buf.get(start..end)
        } else {
            let start = (esi - unit.k) as usize * t;
            self.repair_buf.get(start..start + t)
        }
        .ok_or(SenderError::Internal("symbol outside its block"))?;

        let last_in_unit = esi + 1 >= unit.k + unit.repair;
        let close_object = self.config.close_object && last_in_unit && unit.last_of_object;
        let close_session =
            self.config.close_session && last_in_unit && !self.more_blocks_after_current();

        let (list, n) = data_extensions(self.config.inband_fti, o.fti, o.cenc);
        let mut header = LctHeader::new(self.config.tsi, o.toi, o.fti.codepoint());
        header.extensions = Extensions::from_list(list.get(..n).unwrap_or_default());
        header.close_object = close_object;
        header.close_session = close_session;
        let out_of_range = SenderError::Internal("SBN or ESI outside the scheme's fields");
        let payload_id = match o.layout.scheme() {
            FecScheme::RaptorQ => PayloadId::RaptorQ {
                sbn: u8::try_from(unit.sbn).map_err(|_| out_of_range)?,
                esi,
            },
            FecScheme::NoCode => PayloadId::NoCode {
                sbn: u16::try_from(unit.sbn)
                    .map_err(|_| SenderError::Internal("no-code SBN above 16 bits"))?,
                esi: u16::try_from(esi)
                    .map_err(|_| SenderError::Internal("no-code ESI above 16 bits"))?,
            },
            FecScheme::Raptor => PayloadId::Raptor {
                sbn: u16::try_from(unit.sbn)
                    .map_err(|_| SenderError::Internal("Raptor SBN above 16 bits"))?,
                esi: u16::try_from(esi)
                    .map_err(|_| SenderError::Internal("Raptor ESI above 16 bits"))?,
            },
        };
        let size = AlcPacket {
            header,
            payload_id: Some(payload_id),
            symbols: symbol,
        }
        .encode(buf)?;
        let toi = o.toi;

        // The packet is written: commit.
        self.stats.packets += 1;
        self.stats.bytes += size as u64;
        if let Some(s) = self.stats.objects.get_mut(unit.obj) {
            s.packets += 1;
            s.bytes += size as u64;
            if is_source {
                s.source_symbols += 1;
            } else {
                s.repair_symbols += 1;
            }
        }
        if let Some(u) = self.current.as_mut() {
            u.next_esi += 1;
        }
        if last_in_unit {
            self.finish_unit(unit);
        }
        if close_session {
            self.closed = true;
        }
        Ok(Transmit {
            size,
            kind: TransmitKind::Data,
            toi,
        })
    }

    /// The current block is sent: keep its repair symbols if a later round
    /// sends it again, and count the round if it ends here.
    fn finish_unit(&mut self, unit: Unit) {
        self.current = None;
        let Some(o) = self.objects.get_mut(unit.obj) else {
            return;
        };
        o.units_left = o.units_left.saturating_sub(1);
        if unit.repair > 0
            && o.rounds_left > 0
            && let Some(slot) = o.repair_cache.get_mut(unit.sbn as usize)
        {
            *slot = Some(std::mem::take(&mut self.repair_buf));
        }
        let blocks = u64::from(o.layout.block_count());
        let round_done = blocks > 0 && o.units_left % blocks == 0;
        let object_done = o.units_left == 0;
        if object_done {
            self.cache_used = self.cache_used.saturating_sub(o.cache_reserved);
            o.cache_reserved = 0;
            o.repair_cache = Vec::new();
        }
        if let Some(s) = self.stats.objects.get_mut(unit.obj) {
            s.blocks_sent += 1;
            if round_done {
                s.rounds_completed += 1;
            }
        }
    }

    /// Gives up on an object whose source failed: nothing more of it is
    /// sent, its cache is freed, and the FDT without it goes out.
    fn abandon(&mut self, obj: usize) {
        if self.current.is_some_and(|u| u.obj == obj) {
            self.current = None;
        }
        self.queue.retain(|(o, _)| *o != obj);
        self.drop_supplied(obj);
        if let Some(o) = self.objects.get_mut(obj) {
            o.failed = true;
            o.rounds_left = 0;
            o.units_left = 0;
            self.cache_used = self.cache_used.saturating_sub(o.cache_reserved);
            o.cache_reserved = 0;
            o.repair_cache = Vec::new();
        }
        if let Some(s) = self.stats.objects.get_mut(obj) {
            s.failed = true;
        }
        self.fdt.changed();
    }
}
