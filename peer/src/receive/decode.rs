//! The decode thread: it runs the sans-IO [`dms_flute::Receiver`] on the
//! batches the socket thread hands over, writes decoded blocks to temp
//! files, renames verified objects to their final names, and reports
//! progress.

mod adopt;
mod resume;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver as CommandReceiver;
use std::sync::mpsc::{Receiver as ChannelReceiver, RecvTimeoutError, Sender as ChannelSender};
use std::time::{Duration, Instant};

use dms_flute::Receiver;
use dms_flute::lct::ContentEncoding;
use dms_flute::receiver::{Event, ObjectInfo, Verification};
use flate2::read::{DeflateDecoder, GzDecoder, ZlibDecoder};
use sha2::{Digest, Sha256};

use super::control::{Command, ManifestCheck, ObjectGaps};
use super::loss::Dropper;

use super::event::{ObjectProgress, ObjectState, ReceiveEvent};
use super::name::file_name_or_toi;
use super::output::{FileDigests, ObjectWriter, OutputError};
use super::socket::Batch;
use super::state::{Persisted, block_crc};
use super::stats::SharedStats;

/// Longest wait for a batch before the timers are looked at again.
const TICK: Duration = Duration::from_millis(100);
/// How often persisted objects are looked at: finished flushes recorded,
/// new flushes started.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// Blocks written this long ago are flushed (and recorded as on disk) even
/// if fewer than the writer's flush threshold of bytes followed them.
const FLUSH_AFTER: Duration = Duration::from_secs(1);

/// An object the decode thread writes.
#[derive(Debug)]
struct Tracked {
    name: String,
    total: u64,
    decoded: u64,
    content_location: Option<String>,
    manifest: Option<String>,
    delta: Option<Box<dms_flute::FdtDelta>>,
    /// SHA-256 of each block decoded so far (kept when a manifest is
    /// required, to check against it).
    block_hashes: HashMap<u32, [u8; 32]>,
    /// The verified manifest's check, once given.
    check: Option<ManifestCheck>,
    /// Complete, waiting for its manifest before it may be finished.
    held: Option<ObjectInfo>,
    /// Created at the first block, so objects only listed in an FDT leave
    /// no file behind.
    writer: Option<ObjectWriter>,
    /// Its persisted state (with a state directory).
    persist: Option<Persisted>,
    /// Not to be persisted (it started before its description, or
    /// persisting failed).
    no_persist: bool,
    /// Blocks written when they decoded ahead of order: their in-order
    /// copy is not written again.
    ahead: HashSet<u32>,
    /// Blocks reloaded from the state directory that wait for the
    /// manifest check before they are used: (SBN, CRC-32).
    deferred: Vec<(u32, u32)>,
    /// The FLUTE receiver released blocks decoded ahead of order, so it
    /// could not compute these digests: they are computed over the
    /// written file before its rename.
    read_back: Option<ReadBack>,
}

/// Digests the FDT gives that the FLUTE receiver left to us
/// ([`Verification::NotComputed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadBack {
    sha256: bool,
    md5: bool,
}

impl Tracked {
    fn new(toi: u128) -> Self {
        Tracked {
            name: file_name_or_toi(None, toi),
            total: 0,
            decoded: 0,
            content_location: None,
            manifest: None,
            delta: None,
            block_hashes: HashMap::new(),
            check: None,
            held: None,
            writer: None,
            persist: None,
            no_persist: false,
            deferred: Vec::new(),
            ahead: HashSet::new(),
            read_back: None,
        }
    }

    /// Removes its persisted state (it completed, failed or was given up).
    fn forget_state(&mut self) {
        if let Some(persist) = self.persist.take()
            && let Err(e) = persist.remove()
        {
            tracing::warn!("removing reception state: {e}");
        }
    }
}

/// The decode side of a receiver.
pub(super) struct DecodeLoop {
    pub receiver: Receiver,
    pub out_dir: PathBuf,
    pub events: ChannelSender<ReceiveEvent>,
    pub stats: Arc<SharedStats>,
    pub max_fdt_size: usize,
    /// Objects wait for a verified manifest before their final rename.
    pub require_manifest: bool,
    /// Injected loss, if any.
    pub dropper: Option<Dropper>,
    pub commands: CommandReceiver<Command>,
    /// Where reception state is kept, if anywhere.
    pub state: Option<PathBuf>,
    /// The only session received, if one was chosen.
    pub tsi_filter: Option<u64>,
    /// When persisted objects were last checkpointed.
    last_checkpoint: Instant,
    objects: HashMap<(u64, u128), Tracked>,
    /// The last object that failed.
    last_failed: Option<(u64, u128)>,
    /// Objects whose state was kept for a later run (the output's disk
    /// was full): a carousel's next round of them must not replace it,
    /// or a run that ends mid-round would leave less than it had.
    kept_for_later: HashSet<(u64, u128)>,
}

impl DecodeLoop {
    pub fn new(
        receiver: Receiver,
        out_dir: PathBuf,
        events: ChannelSender<ReceiveEvent>,
        stats: Arc<SharedStats>,
        max_fdt_size: usize,
        commands: CommandReceiver<Command>,
    ) -> Self {
        DecodeLoop {
            receiver,
            out_dir,
            events,
            stats,
            max_fdt_size,
            require_manifest: false,
            dropper: None,
            commands,
            state: None,
            tsi_filter: None,
            last_checkpoint: Instant::now(),
            objects: HashMap::new(),
            last_failed: None,
            kept_for_later: HashSet::new(),
        }
    }

    /// Runs until the socket thread hangs up; every batch is returned
    /// through `empty` for reuse.
    pub fn run(
        mut self,
        full: ChannelReceiver<Batch>,
        empty: ChannelSender<Batch>,
        queued: &AtomicUsize,
    ) {
        if let Some(root) = self.state.clone() {
            self.restore(&root);
        }
        loop {
            let now = Instant::now();
            let wait = self
                .receiver
                .poll_timeout()
                .map_or(TICK, |t| t.saturating_duration_since(now).min(TICK));
            match full.recv_timeout(wait) {
                Ok(batch) => {
                    queued.fetch_sub(1, Ordering::Relaxed);
                    let now = Instant::now();
                    for datagram in batch.iter() {
                        if self.dropper.as_mut().is_some_and(Dropper::drop_next) {
                            self.stats.dropped_injected.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        self.stats
                            .bytes_kept
                            .fetch_add(datagram.len() as u64, Ordering::Relaxed);
                        // Bad packets are counted in the receiver's stats.
                        let _ = self.receiver.handle_datagram(now, datagram);
                        self.drain(now);
                        if self.state.is_some() {
                            self.spool_datagram(datagram);
                        }
                    }
                    self.flush_spools();
                    // The socket thread may have ended: then nobody needs it.
                    let _ = empty.send(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(command) = self.commands.try_recv() {
                self.command(command);
            }
            let now = Instant::now();
            if self.receiver.poll_timeout().is_some_and(|t| t <= now) {
                self.receiver.handle_timeout(now);
                self.drain(now);
            }
            if self.state.is_some() && now >= self.last_checkpoint + CHECKPOINT_EVERY {
                self.last_checkpoint = now;
                self.checkpoint(false);
            }
            self.publish_stats();
        }
        if self.state.is_some() {
            self.checkpoint(true);
        }
        self.publish_stats();
    }

    /// Does what the caller asked through a [`Control`](super::Control).
    fn command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Gaps { tsi, toi, reply } => {
                let _ = reply.send(self.gaps(tsi, toi));
            }
            Command::Repair {
                tsi,
                toi,
                symbols,
                reply,
            } => {
                let oti = self.receiver.oti(tsi, toi);
                self.last_failed = None;
                for (id, symbol) in &symbols {
                    // Refused symbols (unknown object, wrong size) are
                    // counted in the receiver's stats.
                    let _ = self.receiver.handle_repair_symbol(tsi, toi, *id, symbol);
                    self.drain(now);
                    if self.state.is_some() {
                        self.spool(tsi, toi, *id, symbol);
                    }
                }
                self.flush_spools();
                // An object that completed with these symbols may be gone
                // from the receiver: it needs nothing more.
                let failed = self.last_failed == Some((tsi, toi));
                let left = match self.gaps(tsi, toi) {
                    Some(left) if !failed => Some(left),
                    _ => oti.map(|oti| ObjectGaps {
                        oti,
                        gaps: Vec::new(),
                        failed,
                    }),
                };
                let _ = reply.send(left);
            }
            Command::Manifest { tsi, toi, check } => {
                let tracked = self.tracked(tsi, toi);
                if let Some(persist) = &mut tracked.persist
                    && let Err(e) = persist.set_check(&check)
                {
                    tracing::warn!("keeping the manifest check: {e}");
                }
                tracked.check = Some(check);
                let deferred = std::mem::take(&mut tracked.deferred);
                if !deferred.is_empty() {
                    self.feed_blocks(tsi, toi, &deferred);
                }
                let Some(tracked) = self.objects.get_mut(&(tsi, toi)) else {
                    // Finished (or failed) with the reloaded blocks.
                    return;
                };
                if let Some(info) = tracked.held.take() {
                    self.finish(tsi, toi, &info, true);
                } else if let Some(sbn) = self.bad_block(tsi, toi) {
                    self.receiver.remove_object(tsi, toi);
                    self.fail(tsi, toi, format!("block {sbn} does not match the manifest"));
                }
            }
            Command::Abandon { tsi, toi } => {
                self.receiver.remove_object(tsi, toi);
                // Dropping the writer removes its temp file.
                if let Some(mut tracked) = self.objects.remove(&(tsi, toi)) {
                    tracked.forget_state();
                }
            }
            Command::Adopt {
                tsi,
                toi,
                object,
                reply,
            } => {
                let _ = reply.send(self.adopt(tsi, toi, object));
            }
        }
    }

    fn gaps(&self, tsi: u64, toi: u128) -> Option<ObjectGaps> {
        Some(ObjectGaps {
            oti: self.receiver.oti(tsi, toi)?,
            gaps: self.receiver.gaps(tsi, toi)?,
            failed: false,
        })
    }

    /// A decoded block of the object whose hash the manifest contradicts.
    fn bad_block(&self, tsi: u64, toi: u128) -> Option<u32> {
        let tracked = self.objects.get(&(tsi, toi))?;
        let check = tracked.check.as_ref()?;
        tracked
            .block_hashes
            .iter()
            .find(|(sbn, hash)| check.block_sha256.get(**sbn as usize) != Some(*hash))
            .map(|(sbn, _)| *sbn)
    }

    fn publish_stats(&self) {
        if let Ok(mut flute) = self.stats.flute.lock() {
            flute.clone_from(self.receiver.stats());
        }
    }

    /// Acts on every event the receiver has.
    fn drain(&mut self, now: Instant) {
        while let Some(event) = self.receiver.poll_event() {
            match event {
                Event::FdtEncoded {
                    tsi,
                    instance_id,
                    encoding,
                    data,
                } => match inflate(encoding, &data, self.max_fdt_size) {
                    Some(xml) => {
                        let _ = self.receiver.handle_fdt(now, tsi, instance_id, &xml);
                    }
                    None => tracing::debug!("FDT instance {instance_id} does not inflate"),
                },
                Event::ObjectStarted { tsi, toi, info }
                | Event::ObjectDescribed { tsi, toi, info } => {
                    let tracked = self.tracked(tsi, toi);
                    tracked.name = file_name_or_toi(info.content_location(), toi);
                    tracked.total = info.transfer_length;
                    if let Some(file) = &info.file {
                        tracked.content_location = Some(file.content_location.clone());
                        tracked.manifest.clone_from(&file.manifest);
                        tracked.delta = file.delta.clone().map(Box::new);
                    }
                    self.report(tsi, toi, ObjectState::Receiving);
                }
                Event::BlockDecodedAhead {
                    tsi,
                    toi,
                    sbn,
                    offset,
                    data,
                } => {
                    self.tracked(tsi, toi).ahead.insert(sbn);
                    if self.block_checks_out(tsi, toi, sbn, &data) {
                        self.write_block(tsi, toi, sbn, offset, &data)
                    }
                }
                Event::BlockDecoded {
                    tsi,
                    toi,
                    sbn,
                    offset,
                    data,
                } => {
                    if self.tracked(tsi, toi).ahead.remove(&sbn) {
                        // Written (and checked) when it came ahead of order.
                        continue;
                    }
                    if self.block_checks_out(tsi, toi, sbn, &data) {
                        self.write_block(tsi, toi, sbn, offset, &data)
                    }
                }
                Event::ObjectComplete {
                    tsi,
                    toi,
                    info,
                    md5,
                    sha256,
                } => {
                    let verified =
                        md5 == Verification::Verified || sha256 == Verification::Verified;
                    if md5 == Verification::NotComputed || sha256 == Verification::NotComputed {
                        // Blocks were released ahead of order: the file is
                        // hashed before it may be renamed.
                        self.tracked(tsi, toi).read_back = Some(ReadBack {
                            sha256: sha256 == Verification::NotComputed,
                            md5: md5 == Verification::NotComputed,
                        });
                    }
                    let require = self.require_manifest;
                    if info.file.is_none() {
                        // Completed before the FDT named it: wait for the
                        // FDT (or the session's end) for its name.
                        self.tracked(tsi, toi).held = Some(info);
                    } else if self_require(require, self.tracked(tsi, toi)) {
                        // Finished once the verified manifest is given.
                        self.tracked(tsi, toi).held = Some(info);
                    } else {
                        self.finish(tsi, toi, &info, verified);
                    }
                }
                Event::ObjectFailed {
                    tsi, toi, reason, ..
                } => self.fail(tsi, toi, reason.to_string()),
                Event::FdtReceived { tsi, .. } => self.release_held(tsi, false),
                Event::SessionClosed { tsi } => {
                    self.release_held(tsi, true);
                    self.send(ReceiveEvent::SessionClosed { tsi });
                }
                Event::SessionIdle { tsi } => {
                    self.release_held(tsi, true);
                    self.send(ReceiveEvent::SessionIdle { tsi });
                }
                _ => {}
            }
        }
    }

    /// Finishes the objects of session `tsi` that completed before the FDT
    /// described them, now that it has (or, at the session's end, under
    /// their TOI).
    fn release_held(&mut self, tsi: u64, session_end: bool) {
        let waiting: Vec<u128> = self
            .objects
            .iter()
            .filter(|((t, _), o)| *t == tsi && o.held.as_ref().is_some_and(|i| i.file.is_none()))
            .map(|((_, toi), _)| *toi)
            .collect();
        for toi in waiting {
            let file = self.receiver.file_description(tsi, toi).cloned();
            if file.is_none() && !session_end {
                continue;
            }
            let Some(mut info) = self
                .objects
                .get_mut(&(tsi, toi))
                .and_then(|o| o.held.take())
            else {
                continue;
            };
            info.file = file;
            if let Some(f) = &info.file {
                let tracked = self.tracked(tsi, toi);
                tracked.content_location = Some(f.content_location.clone());
                tracked.manifest.clone_from(&f.manifest);
                tracked.delta = f.delta.clone().map(Box::new);
            }
            if self_require(self.require_manifest, self.tracked(tsi, toi)) {
                // Still waits for its verified manifest.
                self.tracked(tsi, toi).held = Some(info);
            } else {
                self.finish(tsi, toi, &info, false);
            }
        }
    }

    /// With a manifest required, records block `sbn`'s hash and checks
    /// the blocks against the manifest once it is known; a mismatch fails
    /// the object (false).
    fn block_checks_out(&mut self, tsi: u64, toi: u128, sbn: u32, data: &[u8]) -> bool {
        if !self.require_manifest {
            return true;
        }
        let hash: [u8; 32] = Sha256::digest(data).into();
        self.tracked(tsi, toi).block_hashes.insert(sbn, hash);
        if let Some(bad) = self.bad_block(tsi, toi) {
            self.receiver.remove_object(tsi, toi);
            self.fail(tsi, toi, format!("block {bad} does not match the manifest"));
            return false;
        }
        true
    }

    fn tracked(&mut self, tsi: u64, toi: u128) -> &mut Tracked {
        self.objects
            .entry((tsi, toi))
            .or_insert_with(|| Tracked::new(toi))
    }

    fn write_block(&mut self, tsi: u64, toi: u128, sbn: u32, offset: u64, data: &[u8]) {
        if self.state.is_some() {
            self.ensure_persisted(tsi, toi);
        }
        let dir = self.out_dir.clone();
        let tracked = self.tracked(tsi, toi);
        if let Some(i) = tracked.deferred.iter().position(|(s, _)| *s == sbn) {
            // Decoded afresh before the manifest could vouch for the copy
            // on disk: the fresh one is written instead.
            tracked.deferred.swap_remove(i);
            if let Some(persist) = &mut tracked.persist
                && let Err(e) = persist.forget(sbn)
            {
                tracing::warn!("recording a replaced block: {e}");
            }
        }
        if tracked.persist.as_ref().is_some_and(|p| p.has(sbn)) {
            // Reloaded from the partial file: already there.
            tracked.decoded += data.len() as u64;
            self.report_block(tsi, toi, sbn);
            return;
        }
        let result = match &mut tracked.writer {
            Some(writer) => writer.write_block(offset, data),
            slot @ None => {
                ObjectWriter::create(&dir).and_then(|w| slot.insert(w).write_block(offset, data))
            }
        };
        match result {
            Ok(seq) => {
                if let Some(persist) = &mut tracked.persist {
                    persist.block_written(seq, sbn, block_crc(data));
                }
                tracked.decoded += data.len() as u64;
                self.report_block(tsi, toi, sbn);
            }
            Err(e) => {
                // Stop decoding it: its blocks have nowhere to go. On a
                // full disk its state (blocks already on disk) is kept for
                // a run with room.
                self.receiver.remove_object(tsi, toi);
                let keep = e.is_no_space();
                self.fail_as(tsi, toi, no_space_hint(&e, &self.out_dir), keep);
            }
        }
    }

    fn finish(&mut self, tsi: u64, toi: u128, info: &ObjectInfo, verified: bool) {
        let Some(mut tracked) = self.objects.remove(&(tsi, toi)) else {
            // Not tracked: its writer failed and was already reported.
            return;
        };
        tracked.name = file_name_or_toi(info.content_location(), toi);
        tracked.total = info.transfer_length;
        let writer = match tracked.writer.take() {
            Some(writer) => Ok(writer),
            // An empty object has no block.
            None => ObjectWriter::create(&self.out_dir),
        };
        let mut read_back_verified = false;
        let result = writer.and_then(|w| {
            // Read back only when the FLUTE receiver could not hash the
            // blocks in order (it released some to bound its memory).
            let digests = match tracked.read_back {
                Some(read_back) => {
                    tracing::info!(
                        tsi,
                        %toi,
                        "blocks were released ahead of order: hashing the object read back"
                    );
                    let digests = w.digests(read_back.md5)?;
                    read_back_verified = check_read_back(&digests, read_back, info)?;
                    Some(digests)
                }
                None => None,
            };
            match &tracked.check {
                Some(check) => {
                    let blocks = check.block_sha256.len();
                    let all_blocks = tracked.block_hashes.len() == blocks
                        && (0..blocks).all(|sbn| {
                            tracked.block_hashes.get(&(sbn as u32)) == check.block_sha256.get(sbn)
                        });
                    let sha256 = match digests {
                        Some(d) => d.sha256,
                        None => w.sha256()?,
                    };
                    if tracked.total != check.size || !all_blocks || sha256 != check.sha256 {
                        Err(OutputError::Manifest)
                    } else {
                        w.finish(&self.out_dir, &tracked.name, info)
                    }
                }
                None => w.finish(&self.out_dir, &tracked.name, info),
            }
        });
        // Delivered or failed: what was kept of it is of no more use —
        // unless the output's disk is full: a run with room resumes it.
        if result.as_ref().err().is_some_and(OutputError::is_no_space) {
            self.keep_for_later(tsi, toi, &mut tracked);
        } else {
            tracked.forget_state();
        }
        let out_dir = self.out_dir.clone();
        let result = result.map_err(|e| (no_space_hint(&e, &out_dir), e));
        let state = match result {
            Ok(finished) => {
                self.stats.objects_complete.fetch_add(1, Ordering::Relaxed);
                ObjectState::Complete {
                    path: finished.path,
                    size: finished.size,
                    verified: verified || read_back_verified || finished.sha256_checked,
                }
            }
            Err((reason, _)) => {
                self.stats.objects_failed.fetch_add(1, Ordering::Relaxed);
                ObjectState::Failed { reason }
            }
        };
        self.send(ReceiveEvent::Object(progress(tsi, toi, &tracked, state)));
    }

    /// Closes the object's persisted state, whole and not removed, for a
    /// later run, and keeps this run from replacing it.
    fn keep_for_later(&mut self, tsi: u64, toi: u128, tracked: &mut Tracked) {
        if let Some(mut persist) = tracked.persist.take() {
            if let Err(e) = persist.settle() {
                tracing::warn!(tsi, %toi, "keeping the reception state: {e}");
            }
            self.kept_for_later.insert((tsi, toi));
        }
    }

    /// Drops the object's temp file and reports the failure.
    fn fail(&mut self, tsi: u64, toi: u128, reason: String) {
        self.fail_as(tsi, toi, reason, false);
    }

    /// [`Self::fail`], keeping the reception state with `keep_state`.
    fn fail_as(&mut self, tsi: u64, toi: u128, reason: String, keep_state: bool) {
        self.last_failed = Some((tsi, toi));
        let mut tracked = self
            .objects
            .remove(&(tsi, toi))
            .unwrap_or_else(|| Tracked::new(toi));
        if keep_state {
            // Closed, not removed: the next run resumes from it.
            self.keep_for_later(tsi, toi, &mut tracked);
        } else {
            tracked.forget_state();
        }
        self.stats.objects_failed.fetch_add(1, Ordering::Relaxed);
        let state = ObjectState::Failed { reason };
        self.send(ReceiveEvent::Object(progress(tsi, toi, &tracked, state)));
        // `tracked.writer` is dropped here: its temp file is removed.
    }

    fn report(&self, tsi: u64, toi: u128, state: ObjectState) {
        if let Some(tracked) = self.objects.get(&(tsi, toi)) {
            self.send(ReceiveEvent::Object(progress(tsi, toi, tracked, state)));
        }
    }

    /// Reports block `sbn` of an object decoded and written.
    fn report_block(&self, tsi: u64, toi: u128, sbn: u32) {
        if let Some(tracked) = self.objects.get(&(tsi, toi)) {
            let mut p = progress(tsi, toi, tracked, ObjectState::Receiving);
            p.decoded_block = Some(sbn);
            self.send(ReceiveEvent::Object(p));
        }
    }

    fn send(&self, event: ReceiveEvent) {
        // A caller that dropped the event channel is not interested.
        let _ = self.events.send(event);
    }
}

fn progress(tsi: u64, toi: u128, tracked: &Tracked, state: ObjectState) -> ObjectProgress {
    let receiving = matches!(state, ObjectState::Receiving);
    ObjectProgress {
        partial: tracked
            .writer
            .as_ref()
            .filter(|_| receiving)
            .map(|w| w.path().to_owned()),
        decoded_block: None,
        tsi,
        toi,
        name: tracked.name.clone(),
        bytes_decoded: tracked.decoded,
        content_location: tracked.content_location.clone(),
        manifest: tracked.manifest.clone(),
        delta: tracked.delta.clone(),
        total_bytes: tracked.total,
        state,
    }
}

/// Inflates a content-encoded FDT Instance of at most `limit` bytes.
fn inflate(encoding: ContentEncoding, data: &[u8], limit: usize) -> Option<Vec<u8>> {
    let reader: Box<dyn Read + '_> = match encoding {
        ContentEncoding::Null => Box::new(data),
        ContentEncoding::Zlib => Box::new(ZlibDecoder::new(data)),
        ContentEncoding::Deflate => Box::new(DeflateDecoder::new(data)),
        ContentEncoding::Gzip => Box::new(GzDecoder::new(data)),
    };
    let mut xml = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut xml)
        .ok()
        .filter(|_| xml.len() <= limit)
        .map(|_| xml)
}

/// Checks the digests of an object read back against those its FDT gives
/// (for the ones `read_back` names); whether one was checked.
fn check_read_back(
    digests: &FileDigests,
    read_back: ReadBack,
    info: &ObjectInfo,
) -> Result<bool, OutputError> {
    let Some(file) = &info.file else {
        return Ok(false);
    };
    let mut checked = false;
    if read_back.sha256
        && let Some(expected) = file.sha256
    {
        if expected != digests.sha256 {
            return Err(OutputError::DigestMismatch("SHA-256"));
        }
        checked = true;
    }
    if read_back.md5
        && let Some(expected) = file.content_md5
    {
        if Some(expected) != digests.md5 {
            return Err(OutputError::DigestMismatch("Content-MD5"));
        }
        checked = true;
    }
    Ok(checked)
}

/// Whether a complete object must wait for its manifest.
fn self_require(require_manifest: bool, tracked: &Tracked) -> bool {
    require_manifest && tracked.check.is_none()
}

/// The failure text of `e`; on a full disk, what to do about it.
fn no_space_hint(e: &OutputError, out_dir: &std::path::Path) -> String {
    if e.is_no_space() {
        format!(
            "{e}: the output directory {} is full; free space there and run again \
             with the same state directory to resume",
            out_dir.display()
        )
    } else {
        e.to_string()
    }
}
