//! The decode thread's side of persisted reception state (see
//! [`super::super::state`]): objects are persisted once described, their
//! symbols spooled and their blocks recorded as they reach the disk, and
//! on start they are reloaded into the FLUTE receiver.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use dms_fec::PayloadId;
use dms_flute::AlcPacket;
use sha2::{Digest, Sha256};

use super::{DecodeLoop, Tracked};
use crate::receive::control::ManifestCheck;
use crate::receive::output::ObjectWriter;
use crate::receive::state::{Persisted, block_crc, object_dirs};

/// The FDT Instance ID under which a reloaded object's description is
/// applied (it is not remembered as seen, so it never hides a sender's).
const RESUME_INSTANCE_ID: u32 = 0;

impl DecodeLoop {
    /// Reloads every object persisted under `root`.
    pub(super) fn restore(&mut self, root: &Path) {
        for dir in object_dirs(root) {
            let persisted = match Persisted::load(&dir) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), "dropping unusable reception state: {e}");
                    let _ = std::fs::remove_dir_all(&dir);
                    continue;
                }
            };
            if self.tsi_filter.is_some_and(|t| t != persisted.tsi) {
                // Another session's: left for a receiver that wants it.
                continue;
            }
            self.restore_object(persisted);
        }
    }

    fn restore_object(&mut self, persisted: Persisted) {
        let (tsi, toi) = (persisted.tsi, persisted.toi);
        let now = Instant::now();
        let prepared = prepare(&persisted);
        let (xml, check, writer) = match prepared {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(tsi, %toi, "dropping unusable reception state: {e}");
                let _ = persisted.remove();
                return;
            }
        };
        let have = persisted.have();
        let spooled = persisted.spooled_blocks();
        let mut tracked = Tracked::new(toi);
        tracked.writer = Some(writer);
        tracked.check = check;
        tracked.persist = Some(persisted);
        self.objects.insert((tsi, toi), tracked);
        let applied = self
            .receiver
            .handle_fdt(now, tsi, RESUME_INSTANCE_ID, xml.as_bytes());
        let oti = self
            .objects
            .get(&(tsi, toi))
            .and_then(|t| t.persist.as_ref())
            .map(|p| p.oti);
        if applied.is_err() || self.receiver.oti(tsi, toi) != oti {
            tracing::warn!(tsi, %toi, "reception state does not fit a receiver: dropped");
            if let Some(mut tracked) = self.objects.remove(&(tsi, toi)) {
                tracked.forget_state();
            }
            self.receiver.remove_object(tsi, toi);
            return;
        }
        // ObjectStarted: reported Receiving.
        self.drain(now);
        let defer = self.require_manifest
            && self
                .objects
                .get(&(tsi, toi))
                .is_some_and(|t| t.check.is_none());
        if defer {
            // Checked against the manifest's block hashes before use.
            if let Some(tracked) = self.objects.get_mut(&(tsi, toi)) {
                tracked.deferred.clone_from(&have);
            }
        } else {
            self.feed_blocks(tsi, toi, &have);
        }
        let mut symbols = 0usize;
        for sbn in spooled {
            let Some(persist) = self
                .objects
                .get_mut(&(tsi, toi))
                .and_then(|t| t.persist.as_mut())
            else {
                break;
            };
            let records = match persist.read_spool(sbn) {
                Ok(records) => records,
                Err(e) => {
                    tracing::warn!(tsi, %toi, sbn, "spool unreadable: {e}");
                    continue;
                }
            };
            symbols += records.len();
            for (esi, payload) in records {
                let _ = self.receiver.handle_repair_symbol(
                    tsi,
                    toi,
                    PayloadId::new(sbn, esi),
                    &payload,
                );
                self.drain(now);
            }
        }
        tracing::info!(
            tsi,
            %toi,
            blocks = have.len(),
            deferred = defer,
            spooled_records = symbols,
            "resumed object from the state directory"
        );
    }

    /// Feeds blocks reloaded from the partial file to the FLUTE receiver
    /// (as all of their source symbols), after checking each against its
    /// CRC-32 and the manifest's block hash (once known); a block that
    /// fails is missing again.
    pub(super) fn feed_blocks(&mut self, tsi: u64, toi: u128, blocks: &[(u32, u32)]) {
        let now = Instant::now();
        for &(sbn, crc) in blocks {
            let Some(tracked) = self.objects.get_mut(&(tsi, toi)) else {
                return;
            };
            let (Some(persist), Some(writer)) = (&mut tracked.persist, &tracked.writer) else {
                return;
            };
            let layout = persist.oti.layout();
            let (Some(offset), Some(len)) = (layout.block_offset(sbn), layout.block_len(sbn))
            else {
                continue;
            };
            let mut data = vec![0u8; len];
            let read = writer.file().read_exact_at(&mut data, offset);
            let hash_ok = tracked.check.as_ref().is_none_or(|check| {
                let hash: [u8; 32] = Sha256::digest(&data).into();
                check.block_sha256.get(sbn as usize) == Some(&hash)
            });
            if read.is_err() || block_crc(&data) != crc || !hash_ok {
                tracing::warn!(tsi, %toi, sbn, "reloaded block is damaged: received again");
                if let Err(e) = persist.forget(sbn) {
                    tracing::warn!("recording a damaged block: {e}");
                }
                continue;
            }
            let _ = self
                .receiver
                .handle_repair_symbol(tsi, toi, PayloadId::new(sbn, 0), &data);
            self.drain(now);
        }
    }

    /// Starts persisting object `toi` if it is described, its OTI known
    /// and nothing of it was written outside the state directory yet.
    pub(super) fn ensure_persisted(&mut self, tsi: u64, toi: u128) {
        let Some(root) = self.state.clone() else {
            return;
        };
        let (Some(file), Some(oti)) = (
            self.receiver.file_description(tsi, toi).cloned(),
            self.receiver.oti(tsi, toi),
        ) else {
            return;
        };
        let kept = self.kept_for_later.contains(&(tsi, toi));
        let tracked = self.tracked(tsi, toi);
        if tracked.persist.is_some() || tracked.no_persist {
            return;
        }
        if kept {
            // Its state waits for a run with room; this round of it goes
            // straight to the output (it succeeds if room came back).
            tracked.no_persist = true;
            return;
        }
        if tracked.writer.is_some() {
            // Blocks went to a temp file before it was described.
            tracked.no_persist = true;
            return;
        }
        let started = Persisted::create(&root, tsi, toi, &file, oti).and_then(|p| {
            let writer = ObjectWriter::open_kept(&p.data_path()).map_err(|e| {
                crate::receive::state::StateError::Invalid(format!("partial file: {e}"))
            });
            match writer {
                Ok(w) => Ok((p, w)),
                Err(e) => {
                    let _ = p.remove();
                    Err(e)
                }
            }
        });
        match started {
            Ok((persist, writer)) => {
                tracked.persist = Some(persist);
                tracked.writer = Some(writer);
            }
            Err(e) => {
                tracing::warn!(tsi, %toi, "not persisting object: {e}");
                tracked.no_persist = true;
            }
        }
    }

    /// Spools the symbols of a datagram just handled, if they belong to a
    /// persisted object's block not yet written.
    pub(super) fn spool_datagram(&mut self, datagram: &[u8]) {
        let Ok(packet) = AlcPacket::decode(datagram) else {
            return;
        };
        let (Some(id), tsi, toi) = (packet.payload_id, packet.header.tsi, packet.header.toi) else {
            return;
        };
        if toi == 0 || packet.symbols.is_empty() || !self.objects.contains_key(&(tsi, toi)) {
            return;
        }
        self.spool(tsi, toi, id.into(), packet.symbols);
    }

    /// Spools symbols of object `toi` (persisting it first if it may be).
    pub(super) fn spool(&mut self, tsi: u64, toi: u128, id: PayloadId, symbols: &[u8]) {
        if !self.objects.contains_key(&(tsi, toi)) {
            // Finished (or unknown): nothing to keep.
            return;
        }
        self.ensure_persisted(tsi, toi);
        let Some(persist) = self
            .objects
            .get_mut(&(tsi, toi))
            .and_then(|t| t.persist.as_mut())
        else {
            return;
        };
        if let Err(e) = persist.spool(id, symbols) {
            tracing::warn!(tsi, %toi, "spooling symbols: {e}");
        }
    }

    /// Hands buffered spool records to the kernel.
    pub(super) fn flush_spools(&mut self) {
        for tracked in self.objects.values_mut() {
            if let Some(persist) = &mut tracked.persist
                && let Err(e) = persist.flush_spools()
            {
                tracing::warn!("flushing spools: {e}");
            }
        }
    }

    /// Records the blocks that reached the disk and starts flushes of
    /// blocks written a while ago; with `last`, flushes everything now.
    pub(super) fn checkpoint(&mut self, last: bool) {
        let now = Instant::now();
        for tracked in self.objects.values_mut() {
            let (Some(writer), Some(persist)) = (&mut tracked.writer, &mut tracked.persist) else {
                continue;
            };
            let durable = if last {
                let _ = persist.flush_spools();
                writer.sync()
            } else {
                if persist.has_pending()
                    && writer.unflushed()
                    && now >= persist.last_flush + super::FLUSH_AFTER
                {
                    persist.last_flush = now;
                    if let Err(e) = writer.start_flush() {
                        tracing::warn!("flushing a partial file: {e}");
                    }
                }
                writer.durable_seq()
            };
            let result = durable
                .map_err(|e| e.to_string())
                .and_then(|seq| persist.promote(seq).map_err(|e| e.to_string()));
            if let Err(e) = result {
                tracing::warn!(name = %tracked.name, "recording blocks on disk: {e}");
            }
        }
    }
}

/// What reloading `persisted` needs: its FDT Instance, its manifest check
/// and a writer on its partial file.
fn prepare(persisted: &Persisted) -> Result<(String, Option<ManifestCheck>, ObjectWriter), String> {
    let xml = persisted.fdt_xml().map_err(|e| e.to_string())?;
    let check = persisted.check().map_err(|e| e.to_string())?;
    let writer = ObjectWriter::open_kept(&persisted.data_path()).map_err(|e| e.to_string())?;
    Ok((xml, check, writer))
}
