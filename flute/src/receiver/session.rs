//! One FLUTE session (one TSI): its FDT Instances and its objects.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use dms_fec::{ObjectDecoder, PayloadId};

use super::ReceiverConfig;
use super::event::{Event, FileDescription, ObjectInfo, PacketError, Stats};
use super::object::{
    Active, AheadPolicy, Drained, Object, ObjectState, Output, PendingPacket, Undescribed,
    add_symbols, check_codepoint, oti_from_fti, report_completion,
};
use crate::alc::AlcPacket;
use crate::fdt::FdtInstance;
use crate::lct::ContentEncoding;

/// What a session's handlers need besides the session.
pub(super) struct Ctx<'a> {
    pub config: &'a ReceiverConfig,
    pub stats: &'a mut Stats,
    pub events: &'a mut VecDeque<Event>,
    /// Bytes held by all sessions' pending buffers.
    pub pending_bytes: &'a mut usize,
    pub now: Instant,
    pub tsi: u64,
}

impl Ctx<'_> {
    fn output(&mut self, toi: u128) -> Output<'_> {
        Output {
            tsi: self.tsi,
            toi,
            stats: self.stats,
            events: self.events,
        }
    }
}

/// An FDT Instance being received.
#[derive(Debug)]
struct FdtDecoding {
    decoder: ObjectDecoder,
    data: Vec<u8>,
    cenc: Option<ContentEncoding>,
    expires: Instant,
}

/// The state of one session.
#[derive(Debug)]
pub(super) struct Session {
    pub last_activity: Instant,
    /// SessionIdle was reported and no packet came since.
    pub idle: bool,
    /// SessionClosed was reported.
    pub closed: bool,
    objects: HashMap<u128, Object>,
    /// Objects holding a decoder.
    decoders: usize,
    /// FDT Instances received, until they expire.
    fdt_seen: HashMap<u32, Instant>,
    fdt_decoding: HashMap<u32, FdtDecoding>,
}

impl Session {
    pub fn new(now: Instant) -> Self {
        Session {
            last_activity: now,
            idle: false,
            closed: false,
            objects: HashMap::new(),
            decoders: 0,
            fdt_seen: HashMap::new(),
            fdt_decoding: HashMap::new(),
        }
    }

    /// Handles one parsed packet of this session.
    pub fn handle_packet(
        &mut self,
        cx: &mut Ctx<'_>,
        packet: &AlcPacket<'_>,
    ) -> Result<(), PacketError> {
        self.last_activity = cx.now;
        self.idle = false;
        let toi = packet.header.toi;
        let result = match packet.payload_id {
            None => Ok(()),
            Some(_) if toi == 0 => self.handle_fdt_packet(cx, packet),
            Some(_) => self.handle_object_packet(cx, packet),
        };
        if packet.header.close_object && toi != 0 {
            self.close_object(cx, toi);
        }
        if packet.header.close_session && !self.closed {
            self.closed = true;
            // No FDT will come after the session's last packet.
            self.report_undescribed(cx, |_| true);
            cx.events.push_back(Event::SessionClosed { tsi: cx.tsi });
        }
        result
    }

    fn close_object(&mut self, cx: &mut Ctx<'_>, toi: u128) {
        if let Some(object) = self.objects.get_mut(&toi)
            && !object.closed
            && !matches!(
                object.state,
                ObjectState::Finished | ObjectState::Undescribed(_)
            )
        {
            object.closed = true;
            cx.events
                .push_back(Event::ObjectClosed { tsi: cx.tsi, toi });
        }
    }

    fn handle_object_packet(
        &mut self,
        cx: &mut Ctx<'_>,
        packet: &AlcPacket<'_>,
    ) -> Result<(), PacketError> {
        let header = &packet.header;
        let toi = header.toi;
        if let Some(fti) = header.extensions.fti() {
            let known = self
                .objects
                .get(&toi)
                .is_some_and(|o| !matches!(o.state, ObjectState::Waiting { .. }));
            if !known {
                let oti = oti_from_fti(&fti, cx.config.max_source_blocks)?;
                check_codepoint(header.codepoint, &oti)?;
                self.activate(cx, toi, oti)?;
            }
        }
        let Some(id) = packet.payload_id else {
            return Ok(());
        };
        let id: PayloadId = id.into();
        self.receive(cx, toi, header.codepoint, id, packet.symbols)
    }

    /// Feeds symbols to object `toi`, or keeps them until its OTI is known.
    pub fn receive(
        &mut self,
        cx: &mut Ctx<'_>,
        toi: u128,
        codepoint: u8,
        id: PayloadId,
        symbols: &[u8],
    ) -> Result<(), PacketError> {
        if symbols.is_empty() {
            return Err(PacketError::EmptyPayload);
        }
        let object = Self::object_entry(&mut self.objects, cx.config, toi)?;
        match &mut object.state {
            ObjectState::Finished | ObjectState::Undescribed(_) => {
                cx.stats.after_decoded += 1;
                Ok(())
            }
            ObjectState::Waiting { packets, bytes } => {
                let packet = PendingPacket {
                    codepoint,
                    id,
                    symbols: symbols.into(),
                };
                let cost = packet.cost();
                if *bytes + cost > cx.config.max_pending_per_object
                    || *cx.pending_bytes + cost > cx.config.max_pending_bytes
                {
                    if packets.is_empty() && object.meta.is_none() {
                        self.objects.remove(&toi);
                    }
                    return Err(PacketError::PendingFull);
                }
                packets.push(packet);
                *bytes += cost;
                *cx.pending_bytes += cost;
                cx.stats.pending_stored += 1;
                Ok(())
            }
            ObjectState::Active(active) => {
                check_codepoint(codepoint, &active.oti)?;
                let decoder = match &mut active.decoder {
                    Some(decoder) => decoder,
                    slot @ None => {
                        if self.decoders >= cx.config.max_decoding_objects {
                            return Err(PacketError::DecoderLimit);
                        }
                        self.decoders += 1;
                        slot.insert(ObjectDecoder::new(&active.oti))
                    }
                };
                let result = add_symbols(decoder, cx.stats, id, symbols);
                let wait_for_fdt = !cx.config.fdt_wait.is_zero() && !self.closed;
                let skip_md5 = !cx.config.md5_with_sha256;
                let ahead = AheadPolicy {
                    enabled: cx.config.blocks_ahead,
                    max_held: cx.config.max_ahead_bytes,
                };
                match active.drain(
                    &mut cx.output(toi),
                    object.meta.as_ref(),
                    wait_for_fdt,
                    skip_md5,
                    ahead,
                ) {
                    Drained::Decoding => {}
                    Drained::Finished => {
                        object.state = ObjectState::Finished;
                        self.decoders = self.decoders.saturating_sub(1);
                    }
                    Drained::Undescribed { digests } => {
                        object.state = ObjectState::Undescribed(Box::new(Undescribed {
                            oti: active.oti,
                            digests,
                            deadline: cx.now + cx.config.fdt_wait,
                        }));
                        self.decoders = self.decoders.saturating_sub(1);
                    }
                }
                result
            }
        }
    }

    /// Object `toi`, created (waiting for its OTI) if the limit allows.
    fn object_entry<'o>(
        objects: &'o mut HashMap<u128, Object>,
        config: &ReceiverConfig,
        toi: u128,
    ) -> Result<&'o mut Object, PacketError> {
        let len = objects.len();
        match objects.entry(toi) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(_) if len >= config.max_objects_per_session => {
                Err(PacketError::ObjectLimit)
            }
            Entry::Vacant(entry) => Ok(entry.insert(Object::waiting())),
        }
    }

    /// The object's OTI is known: start decoding it and replay what waited.
    fn activate(
        &mut self,
        cx: &mut Ctx<'_>,
        toi: u128,
        oti: dms_fec::Oti,
    ) -> Result<(), PacketError> {
        if !self.objects.contains_key(&toi) {
            if self.objects.len() >= cx.config.max_objects_per_session {
                return Err(PacketError::ObjectLimit);
            }
            self.objects.insert(toi, Object::waiting());
        }
        let Some(object) = self.objects.get_mut(&toi) else {
            return Ok(());
        };
        let waiting = match &mut object.state {
            ObjectState::Waiting { packets, bytes } => {
                *cx.pending_bytes = cx.pending_bytes.saturating_sub(*bytes);
                std::mem::take(packets)
            }
            ObjectState::Active(active) => {
                if active.oti != oti {
                    cx.stats.oti_conflicts += 1;
                }
                return Ok(());
            }
            ObjectState::Finished | ObjectState::Undescribed(_) => return Ok(()),
        };
        object.state = ObjectState::Active(Box::new(Active::new(oti)));
        cx.events.push_back(Event::ObjectStarted {
            tsi: cx.tsi,
            toi,
            info: ObjectInfo::new(object.meta.as_ref(), &oti),
        });
        for packet in waiting {
            cx.stats.pending_replayed += 1;
            if let Err(e) = self.receive(cx, toi, packet.codepoint, packet.id, &packet.symbols) {
                cx.stats.record(&e);
            }
        }
        Ok(())
    }

    fn handle_fdt_packet(
        &mut self,
        cx: &mut Ctx<'_>,
        packet: &AlcPacket<'_>,
    ) -> Result<(), PacketError> {
        let header = &packet.header;
        let ext = header.extensions.fdt().ok_or(PacketError::MissingExtFdt)?;
        let instance_id = ext.instance_id();
        let expires = cx.now + cx.config.fdt_lifetime;
        if let Some(seen) = self.fdt_seen.get_mut(&instance_id) {
            // A carousel repeats the instance: keep it alive, skip the work.
            *seen = expires;
            cx.stats.fdt_repeats += 1;
            return Ok(());
        }
        if !self.fdt_decoding.contains_key(&instance_id) {
            let fti = header.extensions.fti().ok_or(PacketError::MissingFti)?;
            let oti = oti_from_fti(&fti, cx.config.max_source_blocks)?;
            check_codepoint(header.codepoint, &oti)?;
            let len = oti.transfer_length();
            if len > cx.config.max_fdt_size as u64 {
                return Err(PacketError::FdtTooLarge(len));
            }
            if self.fdt_decoding.len() >= cx.config.max_fdt_in_progress {
                return Err(PacketError::FdtLimit);
            }
            let decoding = FdtDecoding {
                decoder: ObjectDecoder::new(&oti),
                data: Vec::new(),
                cenc: header.extensions.cenc(),
                expires,
            };
            self.fdt_decoding.insert(instance_id, decoding);
        }
        let Some(decoding) = self.fdt_decoding.get_mut(&instance_id) else {
            return Ok(());
        };
        let Some(id) = packet.payload_id else {
            return Ok(());
        };
        let id: PayloadId = id.into();
        decoding.expires = expires;
        let result = add_symbols(&mut decoding.decoder, cx.stats, id, packet.symbols);
        while let Some(block) = decoding.decoder.pop_block() {
            decoding.data.extend_from_slice(&block.data);
        }
        let total = decoding.decoder.layout().transfer_length();
        if decoding.data.len() as u64 == total
            && let Some(done) = self.fdt_decoding.remove(&instance_id)
        {
            self.remember_fdt(cx, instance_id, expires);
            self.fdt_received(cx, instance_id, done.cenc, done.data)?;
        }
        result
    }

    fn remember_fdt(&mut self, cx: &Ctx<'_>, instance_id: u32, expires: Instant) {
        if self.fdt_seen.len() >= cx.config.max_fdt_remembered {
            let oldest = self
                .fdt_seen
                .iter()
                .min_by_key(|(_, e)| **e)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                self.fdt_seen.remove(&oldest);
            }
        }
        self.fdt_seen.insert(instance_id, expires);
    }

    fn fdt_received(
        &mut self,
        cx: &mut Ctx<'_>,
        instance_id: u32,
        cenc: Option<ContentEncoding>,
        data: Vec<u8>,
    ) -> Result<(), PacketError> {
        match cenc {
            Some(encoding) if encoding != ContentEncoding::Null => {
                cx.events.push_back(Event::FdtEncoded {
                    tsi: cx.tsi,
                    instance_id,
                    encoding,
                    data,
                });
                Ok(())
            }
            _ => {
                let fdt = FdtInstance::parse_with_limit(&data, cx.config.max_fdt_size)?;
                self.apply_fdt(cx, instance_id, &fdt);
                Ok(())
            }
        }
    }

    /// Learns the files of an FDT Instance.
    pub fn apply_fdt(&mut self, cx: &mut Ctx<'_>, instance_id: u32, fdt: &FdtInstance) {
        cx.stats.fdt_instances += 1;
        cx.events.push_back(Event::FdtReceived {
            tsi: cx.tsi,
            instance_id,
            files: fdt.files.len(),
            complete: fdt.complete,
        });
        for file in fdt.files.iter().filter(|f| f.toi != 0) {
            let oti = match fdt.fti(file) {
                Ok(Some(fti)) => oti_from_fti(&fti, cx.config.max_source_blocks).map(Some),
                Ok(None) => Ok(None),
                Err(_) => {
                    cx.stats.fdt_bad_files += 1;
                    continue;
                }
            };
            let oti = match oti {
                Ok(oti) => oti,
                Err(e) => {
                    cx.stats.record(&e);
                    continue;
                }
            };
            let object = match Self::object_entry(&mut self.objects, cx.config, file.toi) {
                Ok(object) => object,
                Err(e) => {
                    cx.stats.record(&e);
                    continue;
                }
            };
            if object.meta.is_none() {
                let meta = FileDescription::from_fdt(fdt, file);
                match &object.state {
                    ObjectState::Active(active) => {
                        cx.events.push_back(Event::ObjectDescribed {
                            tsi: cx.tsi,
                            toi: file.toi,
                            info: ObjectInfo::new(Some(&meta), &active.oti),
                        });
                    }
                    ObjectState::Undescribed(done) => {
                        // Decoded before its description: complete it now,
                        // checking the digests the FDT gives.
                        let info = ObjectInfo::new(Some(&meta), &done.oti);
                        let digests = done.digests;
                        object.state = ObjectState::Finished;
                        report_completion(&mut cx.output(file.toi), info, digests);
                    }
                    _ => {}
                }
                object.meta = Some(meta);
            }
            if let Some(oti) = oti
                && let Err(e) = self.activate(cx, file.toi, oti)
            {
                cx.stats.record(&e);
            }
        }
    }

    /// Drops every packet waiting for an OTI; returns their cost.
    pub fn drop_pending(&mut self, stats: &mut Stats) -> usize {
        let mut freed = 0;
        self.objects.retain(|_, object| {
            if let ObjectState::Waiting { packets, bytes } = &mut object.state {
                stats.pending_expired += packets.len() as u64;
                freed += *bytes;
                packets.clear();
                *bytes = 0;
                return object.meta.is_some();
            }
            true
        });
        freed
    }

    /// Bytes of decoded blocks this session's objects hold for their
    /// in-order streams.
    pub fn held_ahead_bytes(&self) -> usize {
        self.objects
            .values()
            .map(|o| match &o.state {
                ObjectState::Active(active) => active.held_bytes(),
                _ => 0,
            })
            .sum()
    }

    /// Bytes this session holds in pending buffers.
    pub fn pending_bytes(&self) -> usize {
        self.objects.values().map(Object::pending_bytes).sum()
    }

    /// Reports the decoded objects still waiting for a description that
    /// `due` selects, as complete without one.
    pub fn report_undescribed(&mut self, cx: &mut Ctx<'_>, due: impl Fn(&Undescribed) -> bool) {
        for (&toi, object) in &mut self.objects {
            if let ObjectState::Undescribed(done) = &object.state
                && due(done)
            {
                let info = ObjectInfo::new(None, &done.oti);
                let digests = done.digests;
                object.state = ObjectState::Finished;
                let mut out = Output {
                    tsi: cx.tsi,
                    toi,
                    stats: cx.stats,
                    events: cx.events,
                };
                report_completion(&mut out, info, digests);
            }
        }
    }

    /// The earliest deadline of a decoded object waiting for its FDT.
    pub fn next_undescribed_deadline(&self) -> Option<Instant> {
        self.objects
            .values()
            .filter_map(|o| match &o.state {
                ObjectState::Undescribed(done) => Some(done.deadline),
                _ => None,
            })
            .min()
    }

    /// Forgets expired FDT Instances.
    pub fn expire_fdts(&mut self, now: Instant) {
        self.fdt_seen.retain(|_, expires| *expires > now);
        self.fdt_decoding.retain(|_, d| d.expires > now);
    }

    /// The earliest FDT expiry.
    pub fn next_fdt_expiry(&self) -> Option<Instant> {
        let seen = self.fdt_seen.values();
        let decoding = self.fdt_decoding.values().map(|d| &d.expires);
        seen.chain(decoding).min().copied()
    }

    /// For an object that is decoding, the symbols each block still needs.
    pub fn gaps(&self, toi: u128) -> Option<Vec<super::Gap>> {
        let object = self.objects.get(&toi)?;
        match &object.state {
            ObjectState::Waiting { .. } => None,
            ObjectState::Finished | ObjectState::Undescribed(_) => Some(Vec::new()),
            ObjectState::Active(active) => Some(match &active.decoder {
                Some(decoder) => decoder
                    .symbols_needed()
                    .map(|(sbn, symbols_needed)| super::Gap {
                        sbn,
                        symbols_needed,
                    })
                    .collect(),
                None => {
                    let layout = active.layout();
                    (0..layout.block_count())
                        .map(|sbn| super::Gap {
                            sbn,
                            symbols_needed: layout.source_symbols(sbn).unwrap_or(0),
                        })
                        .collect()
                }
            }),
        }
    }

    /// The FDT's description of object `toi`, once given.
    pub fn description(&self, toi: u128) -> Option<&super::FileDescription> {
        self.objects.get(&toi)?.meta.as_ref()
    }

    /// The OTI of object `toi`, if known.
    pub fn oti(&self, toi: u128) -> Option<dms_fec::Oti> {
        match &self.objects.get(&toi)?.state {
            ObjectState::Active(active) => Some(active.oti),
            _ => None,
        }
    }

    /// The FEC Encoding ID of object `toi`, if its OTI is known.
    pub fn scheme_codepoint(&self, toi: u128) -> Option<u8> {
        match &self.objects.get(&toi)?.state {
            ObjectState::Active(active) => Some(active.oti.scheme().encoding_id()),
            _ => None,
        }
    }

    /// Forgets object `toi`; returns the pending bytes it held, if it existed.
    pub fn remove_object(&mut self, toi: u128) -> Option<usize> {
        let object = self.objects.remove(&toi)?;
        if let ObjectState::Active(active) = &object.state
            && active.decoder.is_some()
        {
            self.decoders = self.decoders.saturating_sub(1);
        }
        Some(object.pending_bytes())
    }
}
