//! One object being received: its decoder, its digests computed as blocks
//! stream out, and the packets kept while its OTI is unknown.

use std::collections::VecDeque;
use std::time::Instant;

use dms_fec::{Layout, ObjectDecoder, Oti, PayloadId, SymbolOutcome};
use md5::{Digest, Md5};
use sha2::Sha256;

use super::event::{
    Event, FailureReason, FileDescription, ObjectInfo, PacketError, Stats, Verification,
};
use crate::lct::Fti;

/// Bytes charged to the pending budget per kept packet, beyond its symbols
/// (the record and its share of the object's map entry).
pub(super) const PENDING_OVERHEAD: usize = 96;

/// The FEC OTI an EXT_FTI describes, if valid and of at most
/// `max_blocks` source blocks (a decoder costs memory per block).
pub(super) fn oti_from_fti(fti: &Fti, max_blocks: u32) -> Result<Oti, PacketError> {
    let oti = fti.to_oti()?;
    let blocks = oti.layout().block_count();
    if blocks > max_blocks {
        return Err(PacketError::TooManyBlocks(blocks));
    }
    Ok(oti)
}

/// Checks that a packet's codepoint is the FEC Encoding ID of `oti`.
pub(super) fn check_codepoint(codepoint: u8, oti: &Oti) -> Result<(), PacketError> {
    let expected = oti.scheme().encoding_id();
    if codepoint == expected {
        Ok(())
    } else {
        Err(PacketError::CodepointMismatch {
            codepoint,
            expected,
        })
    }
}

/// Feeds the symbols of one packet (one or more consecutive ESIs of T
/// bytes each, the last possibly shorter) to `decoder`, counting
/// duplicates and symbols for decoded blocks. Returns the first error.
pub(super) fn add_symbols(
    decoder: &mut ObjectDecoder,
    stats: &mut Stats,
    id: PayloadId,
    symbols: &[u8],
) -> Result<(), PacketError> {
    if symbols.is_empty() {
        return Err(PacketError::EmptyPayload);
    }
    let t = usize::from(decoder.layout().symbol_size());
    let mut first_error = None;
    for (i, symbol) in symbols.chunks(t.max(1)).enumerate() {
        let esi = u32::try_from(i)
            .ok()
            .and_then(|i| id.esi.checked_add(i))
            .unwrap_or(u32::MAX);
        match decoder.add_symbol(PayloadId::new(id.sbn, esi), symbol) {
            Ok(SymbolOutcome::Stored | SymbolOutcome::Decoded) => {}
            Ok(SymbolOutcome::Duplicate) => stats.duplicates += 1,
            Ok(SymbolOutcome::AlreadyDecoded) => stats.after_decoded += 1,
            Err(e) => {
                first_error.get_or_insert(PacketError::Symbol(e));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A packet kept until its object's OTI is known.
#[derive(Debug)]
pub(super) struct PendingPacket {
    pub codepoint: u8,
    pub id: PayloadId,
    pub symbols: Box<[u8]>,
}

impl PendingPacket {
    /// What it costs in the pending budget.
    pub fn cost(&self) -> usize {
        self.symbols.len() + PENDING_OVERHEAD
    }
}

/// An object whose OTI is known.
#[derive(Debug)]
pub(super) struct Active {
    pub oti: Oti,
    /// Created at the first symbol, so objects listed in an FDT cost
    /// nothing until their packets come.
    pub decoder: Option<ObjectDecoder>,
    /// `None` once it is known that MD5 need not be checked, or once
    /// blocks were released.
    md5: Option<Md5>,
    /// `None` once blocks were released ahead of order: the in-order
    /// stream no longer covers the whole object.
    sha256: Option<Sha256>,
    /// Blocks decoded ahead of order were released (taken out of the
    /// decoder once handed out) to bound memory: the caller computes the
    /// digests.
    released: bool,
    /// Blocks decoded when the ahead-of-order scan last ran, and the
    /// blocks it handed out.
    decoded_seen: u32,
    ahead_out: Vec<bool>,
}

/// The whole-object digests of a decoded object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Digests {
    /// Computed over the blocks as they left in order (`md5` is `None`
    /// when it need not be checked).
    InOrder {
        md5: Option<[u8; 16]>,
        sha256: [u8; 32],
    },
    /// Not computed: blocks were released ahead of order, so the caller
    /// computes them over what it wrote. `skip_md5` is the receiver's
    /// policy of not checking MD5 beside our SHA-256.
    ByCaller { skip_md5: bool },
}

/// What [`Active::drain`] does with blocks decoded ahead of order.
#[derive(Debug, Clone, Copy)]
pub(super) struct AheadPolicy {
    /// Hand them out ([`Event::BlockDecodedAhead`]).
    pub enabled: bool,
    /// Bytes of them held for the in-order stream before they are
    /// released instead.
    pub max_held: usize,
}

/// Where an object is.
#[derive(Debug)]
pub(super) enum ObjectState {
    /// OTI unknown: packets wait here (bytes charged to the pending budget).
    Waiting {
        /// Kept packets.
        packets: Vec<PendingPacket>,
        /// Their cost.
        bytes: usize,
    },
    /// Decoding.
    Active(Box<Active>),
    /// Every block decoded, but no FDT has described the object yet (it
    /// started from EXT_FTI): its completion waits, so that the I/O layer
    /// learns its name and digests, until an FDT describes it, the session
    /// closes or goes idle, or `deadline` passes.
    Undescribed(Box<Undescribed>),
    /// Complete or failed: further packets are ignored.
    Finished,
}

/// A decoded object whose completion waits for its FDT entry.
#[derive(Debug)]
pub(super) struct Undescribed {
    pub oti: Oti,
    pub digests: Digests,
    pub deadline: Instant,
}

/// What [`Active::drain`] left the object as.
pub(super) enum Drained {
    /// Blocks are still missing.
    Decoding,
    /// Completion or failure was reported.
    Finished,
    /// Every block is out but the FDT has not described the object.
    Undescribed { digests: Digests },
}

/// One object of a session.
#[derive(Debug)]
pub(super) struct Object {
    /// ObjectClosed has been reported.
    pub closed: bool,
    /// From the FDT, once it describes the object.
    pub meta: Option<FileDescription>,
    pub state: ObjectState,
}

impl Object {
    pub fn waiting() -> Self {
        Object {
            closed: false,
            meta: None,
            state: ObjectState::Waiting {
                packets: Vec::new(),
                bytes: 0,
            },
        }
    }

    /// The pending bytes this object holds.
    pub fn pending_bytes(&self) -> usize {
        match self.state {
            ObjectState::Waiting { bytes, .. } => bytes,
            _ => 0,
        }
    }
}

/// Where an object's outputs go.
pub(super) struct Output<'a> {
    pub tsi: u64,
    pub toi: u128,
    pub stats: &'a mut Stats,
    pub events: &'a mut VecDeque<Event>,
}

impl Active {
    pub fn new(oti: Oti) -> Self {
        Active {
            oti,
            decoder: None,
            md5: Some(Md5::new()),
            sha256: Some(Sha256::new()),
            released: false,
            decoded_seen: 0,
            ahead_out: Vec::new(),
        }
    }

    pub fn layout(&self) -> Layout {
        self.oti.layout()
    }

    /// Bytes of decoded blocks held for the in-order stream.
    pub fn held_bytes(&self) -> usize {
        self.decoder.as_ref().map_or(0, ObjectDecoder::held_bytes)
    }

    /// Hands decoded blocks out in order (and, with `ahead` enabled, the
    /// ones decoded past a gap as copies, or for good once more than
    /// `ahead.max_held` bytes of them are held); once the last one is out,
    /// reports completion or failure — unless no FDT has described the
    /// object and `wait_for_fdt` is set, in which case the digests are
    /// returned for [`report_completion`] to use once it is described.
    pub fn drain(
        &mut self,
        out: &mut Output<'_>,
        meta: Option<&FileDescription>,
        wait_for_fdt: bool,
        skip_md5: bool,
        ahead: AheadPolicy,
    ) -> Drained {
        let Some(decoder) = self.decoder.as_mut() else {
            return Drained::Decoding;
        };
        if decoder.blocks_out() == 0 && skip_md5 && meta.is_some_and(sha256_covers_transport) {
            self.md5 = None;
        }
        while let Some(block) = decoder.pop_block() {
            if let Some(md5) = &mut self.md5 {
                md5.update(&block.data);
            }
            if let Some(sha256) = &mut self.sha256 {
                sha256.update(&block.data);
            }
            out.events.push_back(Event::BlockDecoded {
                tsi: out.tsi,
                toi: out.toi,
                sbn: block.sbn,
                offset: block.offset,
                data: block.data,
            });
        }
        let blocks = decoder.layout().block_count();
        if decoder.blocks_out() < blocks {
            if ahead.enabled && decoder.blocks_decoded() > self.decoded_seen {
                // A block finished out of order: hand it out now (a copy,
                // or the block itself once released).
                self.decoded_seen = decoder.blocks_decoded();
                self.ahead_out.resize(blocks as usize, false);
                for sbn in decoder.blocks_out() + 1..blocks {
                    if self.ahead_out[sbn as usize] {
                        continue;
                    }
                    let block = if self.released {
                        let taken = decoder.take_decoded(sbn);
                        if taken.is_some() {
                            out.stats.blocks_released += 1;
                        }
                        taken
                    } else {
                        decoder
                            .peek_decoded(sbn)
                            .map(|(offset, data)| (offset, data.to_vec()))
                    };
                    if let Some((offset, data)) = block {
                        self.ahead_out[sbn as usize] = true;
                        out.events.push_back(Event::BlockDecodedAhead {
                            tsi: out.tsi,
                            toi: out.toi,
                            sbn,
                            offset,
                            data,
                        });
                    }
                }
                if !self.released && decoder.held_bytes() > ahead.max_held {
                    // Holding more would let one lost block keep the rest
                    // of the object in memory: the blocks already handed
                    // out are dropped, and the digests left to the caller.
                    self.released = true;
                    self.md5 = None;
                    self.sha256 = None;
                    out.stats.digests_deferred += 1;
                    for sbn in decoder.blocks_out() + 1..blocks {
                        if decoder.take_decoded(sbn).is_some() {
                            out.stats.blocks_released += 1;
                        }
                    }
                }
            }
            return Drained::Decoding;
        }
        let md5 = self.md5.take();
        let digests = match self.sha256.take() {
            Some(sha256) if !self.released => Digests::InOrder {
                md5: md5.map(|md5| md5.finalize().into()),
                sha256: sha256.finalize().into(),
            },
            _ => Digests::ByCaller { skip_md5 },
        };
        if meta.is_none() && wait_for_fdt {
            return Drained::Undescribed { digests };
        }
        report_completion(out, ObjectInfo::new(meta, &self.oti), digests);
        Drained::Finished
    }
}

/// Whether the description's SHA-256 is of the transported bytes (so
/// checking it makes a Content-MD5 check redundant).
fn sha256_covers_transport(meta: &FileDescription) -> bool {
    meta.sha256.is_some()
        && matches!(
            meta.content_encoding.as_deref(),
            None | Some("") | Some("identity")
        )
}

/// Reports a decoded object: complete if the digests its description
/// gives match what was decoded, failed otherwise.
pub(super) fn report_completion(out: &mut Output<'_>, info: ObjectInfo, digests: Digests) {
    let (tsi, toi) = (out.tsi, out.toi);
    let (expected_md5, expected_sha256) = info
        .file
        .as_ref()
        .map_or((None, None), |f| (f.content_md5, f.sha256));
    let md5_check = match (expected_md5, digests) {
        (None, _) => Ok(Verification::NotGiven),
        (
            Some(expected),
            Digests::InOrder {
                md5: Some(actual), ..
            },
        ) if expected != actual => Err(FailureReason::Md5Mismatch { expected, actual }),
        (Some(_), Digests::InOrder { md5: Some(_), .. }) => Ok(Verification::Verified),
        (Some(_), Digests::InOrder { md5: None, .. }) => Ok(Verification::NotChecked),
        (Some(_), Digests::ByCaller { skip_md5 })
            if skip_md5 && info.file.as_ref().is_some_and(sha256_covers_transport) =>
        {
            Ok(Verification::NotChecked)
        }
        (Some(_), Digests::ByCaller { .. }) => Ok(Verification::NotComputed),
    };
    let sha_check = match (expected_sha256, digests) {
        (None, _) => Ok(Verification::NotGiven),
        (Some(_), _) if !info.is_identity_encoded() => Ok(Verification::AfterContentDecoding),
        (Some(expected), Digests::InOrder { sha256, .. }) if expected != sha256 => {
            Err(FailureReason::Sha256Mismatch {
                expected,
                actual: sha256,
            })
        }
        (Some(_), Digests::InOrder { .. }) => Ok(Verification::Verified),
        (Some(_), Digests::ByCaller { .. }) => Ok(Verification::NotComputed),
    };
    let event = match (md5_check, sha_check) {
        (Ok(md5), Ok(sha256)) => {
            out.stats.objects_complete += 1;
            Event::ObjectComplete {
                tsi,
                toi,
                info,
                md5,
                sha256,
            }
        }
        (Err(reason), _) | (_, Err(reason)) => {
            out.stats.objects_failed += 1;
            Event::ObjectFailed {
                tsi,
                toi,
                info,
                reason,
            }
        }
    };
    out.events.push_back(event);
}
