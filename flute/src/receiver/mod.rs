//! The sans-IO FLUTE receiver: datagrams in, events out.
//!
//! ```text
//!            now, datagram                         poll_event()
//!   socket ──────────────> Receiver ──────────> ObjectStarted, BlockDecoded (in order),
//!   (peer)   handle_datagram   │                ObjectComplete / ObjectFailed, ObjectClosed,
//!                              │                SessionClosed, FdtReceived, …
//!   timer  ──handle_timeout──> │ <──poll_timeout── when to call back
//!                              └──gaps(tsi, toi)──> symbols still needed per block (repair)
//! ```
//!
//! The receiver owns no socket, reads no clock and writes no file: the
//! caller passes the time, drains [`Receiver::poll_event`] after each input
//! and writes each [`Event::BlockDecoded`] at its offset. Blocks leave the
//! receiver as soon as they decode, in order, so a large object never sits
//! in memory whole; Content-MD5 and `dms:SHA-256` are computed over the
//! blocks as they leave and checked when the last one has.
//!
//! With [`ReceiverConfig::blocks_ahead`], blocks that decode past an
//! incomplete one are also handed out at once ([`Event::BlockDecodedAhead`])
//! and held for the in-order digests — up to
//! [`ReceiverConfig::max_ahead_bytes`] per object. Past that (a burst lost
//! more than a block's repair margin), the object's blocks are released:
//! handed out once and dropped, and its completion reports the digests
//! [`Verification::NotComputed`], for the I/O layer to compute over the
//! file it wrote.
//!
//! Objects are learned from FDT Instances (TOI 0 with EXT_FDT) or from
//! EXT_FTI on their own packets; packets that come before either wait in a
//! pending buffer bounded in bytes ([`ReceiverConfig::max_pending_bytes`])
//! and are replayed once the OTI is known. Malformed packets, unknown
//! codepoints and bad symbols are counted in [`Stats`] and dropped;
//! [`Receiver::handle_datagram`] also returns why, for callers that trace.
//!
//! Content encodings are reported, not undone: an object's
//! `Content-Encoding` is in its [`ObjectInfo`], and an FDT Instance sent
//! with EXT_CENC comes out as [`Event::FdtEncoded`] for the I/O layer to
//! inflate and return through [`Receiver::handle_fdt`].
//!
//! ```
//! use std::time::Instant;
//! use dms_flute::receiver::{Receiver, ReceiverConfig};
//!
//! let mut receiver = Receiver::new(ReceiverConfig::default());
//! let now = Instant::now();
//! // A datagram that is not ALC is counted and dropped.
//! assert!(receiver.handle_datagram(now, &[0xff; 3]).is_err());
//! assert_eq!(receiver.stats().malformed, 1);
//! assert!(receiver.poll_event().is_none());
//! ```

mod event;
mod object;
mod session;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::alc::AlcPacket;
use crate::fdt::FdtInstance;

pub use event::{
    Event, FailureReason, FileDescription, Gap, ObjectInfo, PacketError, Stats, Verification,
};
use session::{Ctx, Session};

/// Limits and policy of a [`Receiver`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiverConfig {
    /// Receive only this TSI; `None` receives every session.
    pub tsi: Option<u64>,
    /// Sessions at once. When full, a closed or idle session is forgotten
    /// to make room; otherwise packets of new sessions are dropped.
    pub max_sessions: usize,
    /// Objects (listed, decoding or finished) per session.
    pub max_objects_per_session: usize,
    /// Objects holding a decoder at once, per session.
    pub max_decoding_objects: usize,
    /// Source blocks an object (or FDT Instance) may have. A decoder costs
    /// a few hundred bytes per block before any symbol arrives, and a
    /// no-code OTI may claim 65 536 blocks; RaptorQ has at most 255.
    pub max_source_blocks: u32,
    /// Bytes of packets kept, over all sessions, while their objects' OTI
    /// is unknown.
    pub max_pending_bytes: usize,
    /// Bytes of packets kept for one object while its OTI is unknown.
    pub max_pending_per_object: usize,
    /// Largest FDT Instance accepted, in bytes.
    pub max_fdt_size: usize,
    /// FDT Instances being received at once, per session.
    pub max_fdt_in_progress: usize,
    /// FDT Instance IDs remembered per session (to skip repeats).
    pub max_fdt_remembered: usize,
    /// How long an FDT Instance is remembered after its last packet
    /// (repeats within it are not parsed again).
    pub fdt_lifetime: Duration,
    /// A session with no packet for this long is reported idle and its
    /// pending packets are dropped.
    pub session_idle_timeout: Duration,
    /// How long an object that decoded from EXT_FTI alone waits for an FDT
    /// to describe it (its Content-Location and digests) before it is
    /// reported complete without them. Senders repeat the FDT, and with
    /// reordering a small object can finish before the first FDT arrives.
    /// Zero reports such objects at once.
    pub fdt_wait: Duration,
    /// Check Content-MD5 even when the FDT also gives our SHA-256 of the
    /// same bytes (default on). MD5 costs about three times SHA-256 (which
    /// has CPU instructions); a receiver that trusts SHA-256 alone turns
    /// this off, and such objects report [`Verification::NotChecked`] for
    /// MD5.
    pub md5_with_sha256: bool,
    /// Also hand out blocks decoded ahead of an earlier, still incomplete
    /// block ([`Event::BlockDecodedAhead`], a copy), so they can be written
    /// and shared at once (default off). The in-order
    /// [`Event::BlockDecoded`] still follows for each.
    pub blocks_ahead: bool,
    /// With [`Self::blocks_ahead`], the bytes of blocks decoded ahead of
    /// a gap that an object may hold for its in-order stream (default
    /// 32 MiB). Past it, the object's blocks are released: each is handed
    /// out once ([`Event::BlockDecodedAhead`]) and dropped, so a block lost
    /// beyond its repair margin no longer keeps every later block in
    /// memory until it is repaired; the whole-object digests can then not
    /// be computed in order and the object completes with
    /// [`Verification::NotComputed`] for the I/O layer to check. Zero
    /// releases at the first block decoded ahead of order.
    pub max_ahead_bytes: usize,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            tsi: None,
            max_sessions: 16,
            max_objects_per_session: 4096,
            max_decoding_objects: 16,
            max_source_blocks: 16_384,
            max_pending_bytes: 16 << 20,
            max_pending_per_object: 4 << 20,
            max_fdt_size: crate::fdt::DEFAULT_MAX_FDT_SIZE,
            max_fdt_in_progress: 4,
            max_fdt_remembered: 256,
            fdt_lifetime: Duration::from_secs(300),
            session_idle_timeout: Duration::from_secs(60),
            fdt_wait: Duration::from_secs(3),
            md5_with_sha256: true,
            blocks_ahead: false,
            max_ahead_bytes: 32 << 20,
        }
    }
}

impl ReceiverConfig {
    /// The default configuration, receiving only session `tsi`.
    pub fn for_tsi(tsi: u64) -> Self {
        ReceiverConfig {
            tsi: Some(tsi),
            ..ReceiverConfig::default()
        }
    }
}

/// A FLUTE receiver for one or more sessions. See the [module
/// documentation](self).
#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    sessions: HashMap<u64, Session>,
    events: VecDeque<Event>,
    stats: Stats,
    pending_bytes: usize,
}

impl Receiver {
    /// A receiver with no session yet.
    pub fn new(config: ReceiverConfig) -> Self {
        Receiver {
            config,
            sessions: HashMap::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            pending_bytes: 0,
        }
    }

    /// Handles one datagram received at `now`. On error the packet (or
    /// its bad part) was dropped and counted; nothing else is needed.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) -> Result<(), PacketError> {
        self.stats.datagrams += 1;
        let result = self.handle_datagram_inner(now, datagram);
        if let Err(e) = &result {
            self.stats.record(e);
        }
        result
    }

    fn handle_datagram_inner(&mut self, now: Instant, datagram: &[u8]) -> Result<(), PacketError> {
        let packet = AlcPacket::decode(datagram)?;
        let tsi = packet.header.tsi;
        let (session, mut cx) = self.session(now, tsi)?;
        session.handle_packet(&mut cx, &packet)
    }

    /// Applies an FDT Instance obtained otherwise: one that arrived
    /// content-encoded ([`Event::FdtEncoded`]) once decoded, or one fetched
    /// out of band.
    pub fn handle_fdt(
        &mut self,
        now: Instant,
        tsi: u64,
        instance_id: u32,
        xml: &[u8],
    ) -> Result<(), PacketError> {
        let result = FdtInstance::parse_with_limit(xml, self.config.max_fdt_size)
            .map_err(PacketError::from)
            .and_then(|fdt| {
                let (session, mut cx) = self.session(now, tsi)?;
                session.apply_fdt(&mut cx, instance_id, &fdt);
                Ok(())
            });
        if let Err(e) = &result {
            self.stats.record(e);
        }
        result
    }

    /// Adds a symbol obtained by repair (from a peer or the repair
    /// service) to an object that is decoding. Does not count as session
    /// activity.
    pub fn handle_repair_symbol(
        &mut self,
        tsi: u64,
        toi: u128,
        id: dms_fec::PayloadId,
        symbol: &[u8],
    ) -> Result<(), PacketError> {
        if self.gaps(tsi, toi).is_none() || toi == 0 {
            return Err(PacketError::UnknownObject);
        }
        let Some(session) = self.sessions.get_mut(&tsi) else {
            return Err(PacketError::UnknownObject);
        };
        let mut cx = Ctx {
            config: &self.config,
            stats: &mut self.stats,
            events: &mut self.events,
            pending_bytes: &mut self.pending_bytes,
            now: session.last_activity,
            tsi,
        };
        let codepoint = session.scheme_codepoint(toi).unwrap_or(u8::MAX);
        let result = session.receive(&mut cx, toi, codepoint, id, symbol);
        if let Err(e) = &result {
            self.stats.record(e);
        }
        result
    }

    /// The session `tsi` (created if allowed) and a context to handle its
    /// packets with.
    fn session(&mut self, now: Instant, tsi: u64) -> Result<(&mut Session, Ctx<'_>), PacketError> {
        if self.config.tsi.is_some_and(|t| t != tsi) {
            return Err(PacketError::TsiFiltered(tsi));
        }
        if !self.sessions.contains_key(&tsi) {
            if self.sessions.len() >= self.config.max_sessions && !self.evict_session() {
                return Err(PacketError::SessionLimit);
            }
            self.sessions.insert(tsi, Session::new(now));
        }
        let session = self
            .sessions
            .get_mut(&tsi)
            .ok_or(PacketError::SessionLimit)?;
        let cx = Ctx {
            config: &self.config,
            stats: &mut self.stats,
            events: &mut self.events,
            pending_bytes: &mut self.pending_bytes,
            now,
            tsi,
        };
        Ok((session, cx))
    }

    /// Forgets the least recently active closed or idle session.
    fn evict_session(&mut self) -> bool {
        let victim = self
            .sessions
            .iter()
            .filter(|(_, s)| s.closed || s.idle)
            .min_by_key(|(_, s)| s.last_activity)
            .map(|(tsi, _)| *tsi);
        victim.is_some_and(|tsi| self.remove_session(tsi))
    }

    /// The next event, if any. Drain after every `handle_*` call.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Receiver::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.config.session_idle_timeout;
        self.sessions
            .values()
            .flat_map(|s| {
                let idle_at = (!s.idle).then(|| s.last_activity + idle);
                idle_at
                    .into_iter()
                    .chain(s.next_fdt_expiry())
                    .chain(s.next_undescribed_deadline())
            })
            .min()
    }

    /// Runs the timers due at `now`: FDT Instances expire, decoded objects
    /// that waited for an FDT long enough are reported without one,
    /// sessions with no packet for the idle timeout are reported idle (and
    /// their waiting objects reported) and their pending packets dropped.
    pub fn handle_timeout(&mut self, now: Instant) {
        let idle = self.config.session_idle_timeout;
        for (&tsi, session) in &mut self.sessions {
            session.expire_fdts(now);
            let went_idle = !session.idle && session.last_activity + idle <= now;
            let mut cx = Ctx {
                config: &self.config,
                stats: &mut self.stats,
                events: &mut self.events,
                pending_bytes: &mut self.pending_bytes,
                now,
                tsi,
            };
            session.report_undescribed(&mut cx, |done| went_idle || done.deadline <= now);
            if went_idle {
                session.idle = true;
                let freed = session.drop_pending(&mut self.stats);
                self.pending_bytes = self.pending_bytes.saturating_sub(freed);
                self.events.push_back(Event::SessionIdle { tsi });
            }
        }
    }

    /// For each block of object `toi` not yet decoded, the symbols it
    /// still needs (empty once the object is finished); `None` if the
    /// object's OTI is not known.
    pub fn gaps(&self, tsi: u64, toi: u128) -> Option<Vec<Gap>> {
        self.sessions.get(&tsi)?.gaps(toi)
    }

    /// The FDT's description of object `toi`, once an FDT Instance gave
    /// it (also for objects that completed before it came).
    pub fn file_description(&self, tsi: u64, toi: u128) -> Option<&FileDescription> {
        self.sessions.get(&tsi)?.description(toi)
    }

    /// The FEC parameters of object `toi`, once known (from the FDT or
    /// EXT_FTI): what a repair request for it needs.
    pub fn oti(&self, tsi: u64, toi: u128) -> Option<dms_fec::Oti> {
        self.sessions.get(&tsi)?.oti(toi)
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Bytes of decoded blocks held, over all objects, until the blocks
    /// before them decode (in-order hashing); with
    /// [`ReceiverConfig::blocks_ahead`] at most
    /// [`ReceiverConfig::max_ahead_bytes`] per object.
    pub fn held_ahead_bytes(&self) -> usize {
        self.sessions.values().map(Session::held_ahead_bytes).sum()
    }

    /// Bytes held by packets waiting for their objects' OTI.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Forgets session `tsi` and everything it holds.
    pub fn remove_session(&mut self, tsi: u64) -> bool {
        let Some(session) = self.sessions.remove(&tsi) else {
            return false;
        };
        self.pending_bytes = self.pending_bytes.saturating_sub(session.pending_bytes());
        true
    }

    /// Forgets object `toi` of session `tsi` (e.g. once repaired
    /// elsewhere, or given up).
    pub fn remove_object(&mut self, tsi: u64, toi: u128) -> bool {
        let Some(freed) = self
            .sessions
            .get_mut(&tsi)
            .and_then(|s| s.remove_object(toi))
        else {
            return false;
        };
        self.pending_bytes = self.pending_bytes.saturating_sub(freed);
        true
    }
}
