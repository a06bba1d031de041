//! The sending state of one object: its FEC layout, FTI, FDT entry and
//! the repair symbols kept across carousel rounds.

use std::io::{Seek, SeekFrom};

use dms_fec::{Layout, Oti};

use super::config::{ObjectSource, ObjectSpec, content_encoding_token};
use super::error::SenderError;
use crate::fdt::FdtFile;
use crate::lct::{ContentEncoding, Extension, Fti};

/// One object of the session.
pub(super) struct ObjectState {
    pub(super) toi: u128,
    pub(super) priority: u8,
    pub(super) layout: Layout,
    pub(super) fti: Fti,
    pub(super) cenc: Option<ContentEncoding>,
    pub(super) repair_percent: u32,
    pub(super) source: Box<dyn ObjectSource>,
    pub(super) fdt_file: FdtFile,
    /// Carousel rounds not yet scheduled.
    pub(super) rounds_left: u32,
    /// (block, round) units not yet sent completely.
    pub(super) units_left: u64,
    /// Reading failed: nothing more is sent and the FDT omits it.
    pub(super) failed: bool,
    /// Repair symbols of each block kept between rounds (empty when the
    /// session has one round). `None` until the block is first encoded, and
    /// while the block is being sent (the symbols are lent to the sender).
    pub(super) repair_cache: Vec<Option<Vec<u8>>>,
    /// Bytes of the repair cache budget this object reserved.
    pub(super) cache_reserved: u64,
}

impl std::fmt::Debug for ObjectState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectState")
            .field("toi", &self.toi)
            .field("priority", &self.priority)
            .field("fti", &self.fti)
            .field("rounds_left", &self.rounds_left)
            .field("units_left", &self.units_left)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// The header extensions of a data packet: EXT_FTI if in band, EXT_CENC if
/// the object is content-encoded. Returns the array and how many are used.
pub(super) fn data_extensions(
    inband_fti: bool,
    fti: Fti,
    cenc: Option<ContentEncoding>,
) -> ([Extension<'static>; 2], usize) {
    let mut list = [Extension::Cenc(ContentEncoding::Null); 2];
    let mut n = 0;
    if inband_fti {
        list[n] = Extension::Fti(fti);
        n += 1;
    }
    if let Some(c) = cenc {
        list[n] = Extension::Cenc(c);
        n += 1;
    }
    (list, n)
}

impl ObjectState {
    /// Plans the object: measures the source, lays out its blocks and
    /// builds its FDT entry. `rounds` is the session's carousel rounds.
    pub(super) fn new(toi: u128, mut spec: ObjectSpec, rounds: u32) -> Result<Self, SenderError> {
        let measure = |source: &mut Box<dyn ObjectSource>| -> std::io::Result<u64> {
            let len = source.seek(SeekFrom::End(0))?;
            source.seek(SeekFrom::Start(0))?;
            Ok(len)
        };
        let transfer_length =
            measure(&mut spec.source).map_err(|source| SenderError::SourceLength {
                content_location: spec.content_location.clone(),
                source,
            })?;
        let oti = match spec.oti {
            Some(oti) if oti.transfer_length() != transfer_length => {
                return Err(SenderError::OtiLength {
                    content_location: spec.content_location,
                    oti: oti.transfer_length(),
                    source_length: transfer_length,
                });
            }
            Some(oti) => oti,
            None => Oti::for_object(spec.fec, transfer_length, spec.symbol_size, spec.block_size)
                .map_err(|source| SenderError::Oti {
                content_location: spec.content_location.clone(),
                source,
            })?,
        };
        let layout = oti.layout();
        let fti = Fti::from_oti(&oti)
            .map_err(|_| SenderError::Internal("a validated OTI makes an invalid FTI"))?;
        let cenc = spec
            .content_encoding
            .filter(|c| *c != ContentEncoding::Null);

        let mut file = FdtFile::new(spec.content_location, toi);
        file.set_fti(&fti);
        file.content_length = match cenc {
            None => Some(spec.content_length.unwrap_or(transfer_length)),
            Some(_) => spec.content_length,
        };
        file.content_type = spec.content_type;
        file.content_encoding = cenc.and_then(content_encoding_token).map(str::to_owned);
        file.content_md5 = spec.content_md5;
        file.sha256 = spec.sha256;
        file.manifest = spec.manifest;
        file.delta = spec.delta;

        let blocks = layout.block_count();
        let repair_cache = if rounds > 1 {
            (0..blocks).map(|_| None).collect()
        } else {
            Vec::new()
        };
        Ok(ObjectState {
            toi,
            priority: spec.priority,
            layout,
            fti,
            cenc,
            repair_percent: spec.repair_percent,
            source: spec.source,
            fdt_file: file,
            rounds_left: rounds,
            units_left: u64::from(rounds) * u64::from(blocks),
            failed: false,
            repair_cache,
            cache_reserved: 0,
        })
    }

    /// Repair symbols sent for a block of `k` source symbols: ⌈K·pct/100⌉
    /// for RaptorQ and Raptor (limited by the ESI space), none for no-code.
    pub(super) fn repair_count(&self, k: u32) -> u32 {
        let scheme = self.layout.scheme();
        if !scheme.has_repair_symbols() {
            return 0;
        }
        let wanted = (u64::from(k) * u64::from(self.repair_percent)).div_ceil(100);
        let room = scheme.esi_limit().saturating_sub(k);
        u32::try_from(wanted).unwrap_or(u32::MAX).min(room)
    }

    /// Bytes of all the object's repair symbols (one copy per block).
    pub(super) fn repair_bytes(&self) -> u64 {
        let t = u64::from(self.layout.symbol_size());
        (0..self.layout.block_count())
            .filter_map(|sbn| self.layout.source_symbols(sbn))
            .map(|k| u64::from(self.repair_count(k)) * t)
            .sum()
    }
}
