//! The FDT as the sender transmits it: an object of TOI 0 with Compact
//! No-Code FEC, its symbols filling the datagram, EXT_FDT and EXT_FTI on
//! every packet.

use std::time::{Duration, Instant};

use dms_fec::{BlockSize, FecScheme, Layout, Oti};

use super::error::SenderError;
use crate::alc::{AlcPacket, PayloadId};
use crate::fdt::{FdtFile, FdtInstance};
use crate::lct::{
    CODEPOINT_NO_CODE, ExtFdt, Extension, Extensions, FluteVersion, Fti, LctHeader, NoCodeFti,
};

/// The FDT's transmission state.
#[derive(Debug)]
pub(super) struct FdtOut {
    version: FluteVersion,
    /// Symbol size of FDT packets: what is left of the datagram.
    symbol_size: u16,
    instance_id: u32,
    /// A packet of the current instance has been sent, so a change needs a
    /// new Instance ID.
    current_sent: bool,
    /// The object list changed since `xml` was built.
    dirty: bool,
    /// A transmission should start at the next opportunity.
    pub(super) due: bool,
    /// When the next repeat is due (`None` when none is scheduled).
    pub(super) next_at: Option<Instant>,
    xml: Vec<u8>,
    layout: Option<(Layout, Fti)>,
    /// The next symbol (SBN, ESI) of the transmission in progress.
    cursor: Option<(u32, u32)>,
}

/// What [`FdtOut::write`] wrote.
pub(super) struct FdtPacket {
    pub(super) size: usize,
    pub(super) last: bool,
}

fn fdt_header<'a>(tsi: u64, exts: &'a [Extension<'a>]) -> LctHeader<'a> {
    let mut header = LctHeader::new(tsi, 0, CODEPOINT_NO_CODE);
    header.extensions = Extensions::from_list(exts);
    header
}

impl FdtOut {
    /// FDT state for a session whose datagrams are at most `max_datagram`.
    pub(super) fn new(
        tsi: u64,
        version: FluteVersion,
        max_datagram: usize,
    ) -> Result<Self, SenderError> {
        // The header length does not depend on the FTI's values.
        let exts = [
            Extension::Fdt(ExtFdt::new(version, 0)?),
            Extension::Fti(Fti::NoCode(NoCodeFti::new(1, 1, 1)?)),
        ];
        let header_len = fdt_header(tsi, &exts).encoded_len()?;
        let room = max_datagram.saturating_sub(header_len + PayloadId::LEN);
        let symbol_size = u16::try_from(room).unwrap_or(u16::MAX);
        if symbol_size == 0 {
            return Err(SenderError::InvalidConfig(
                "max_datagram_size leaves no room for FDT symbols",
            ));
        }
        Ok(FdtOut {
            version,
            symbol_size,
            instance_id: 0,
            current_sent: false,
            dirty: true,
            due: false,
            next_at: None,
            xml: Vec::new(),
            layout: None,
            cursor: None,
        })
    }

    /// The object list changed: rebuild the FDT and send it soon.
    pub(super) fn changed(&mut self) {
        self.dirty = true;
        self.due = true;
    }

    /// Whether a transmission is under way.
    pub(super) fn in_progress(&self) -> bool {
        self.cursor.is_some()
    }

    /// The FDT Instance ID of the current (or next) instance.
    pub(super) fn instance_id(&self) -> u32 {
        self.instance_id
    }

    /// Starts a transmission at `now`, rebuilding the document first if the
    /// object list changed; the next repeat is due `interval` later.
    pub(super) fn begin<'f>(
        &mut self,
        now: Instant,
        interval: Duration,
        expires: u32,
        files: impl Iterator<Item = &'f FdtFile>,
    ) -> Result<(), SenderError> {
        if self.dirty || self.layout.is_none() {
            if self.current_sent {
                self.instance_id = (self.instance_id + 1) & ExtFdt::MAX_INSTANCE_ID;
                self.current_sent = false;
            }
            let mut instance = FdtInstance::new(expires);
            instance.files = files.cloned().collect();
            self.xml = instance.to_xml().into_bytes();
            let oti = Oti::for_object(
                FecScheme::NoCode,
                self.xml.len() as u64,
                self.symbol_size,
                BlockSize::Symbols(FecScheme::NoCode.max_source_symbols()),
            )
            .map_err(|source| SenderError::Oti {
                content_location: "FDT".to_owned(),
                source,
            })?;
            let fti = NoCodeFti::new(
                oti.transfer_length(),
                oti.symbol_size(),
                oti.max_source_block_length(),
            )?;
            self.layout = Some((oti.layout(), Fti::NoCode(fti)));
            self.dirty = false;
        }
        self.cursor = Some((0, 0));
        self.due = false;
        self.next_at = now.checked_add(interval);
        Ok(())
    }

    /// Writes the next packet of the transmission in progress into `buf`.
    pub(super) fn write(&mut self, tsi: u64, buf: &mut [u8]) -> Result<FdtPacket, SenderError> {
        let (Some((sbn, esi)), Some((layout, fti))) = (self.cursor, &self.layout) else {
            return Err(SenderError::Internal("no FDT transmission in progress"));
        };
        let not_in_layout = SenderError::Internal("FDT cursor outside its layout");
        let (Some(offset), Some(len), Some(k)) = (
            layout.block_offset(sbn),
            layout.source_symbol_len(sbn, esi),
            layout.source_symbols(sbn),
        ) else {
            return Err(not_in_layout);
        };
        let start = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(esi as usize * usize::from(self.symbol_size)))
            .ok_or(SenderError::Internal("FDT offset overflows"))?;
        let symbol = self.xml.get(start..start + len).ok_or(not_in_layout)?;
        let exts = [
            Extension::Fdt(ExtFdt::new(self.version, self.instance_id)?),
            Extension::Fti(*fti),
        ];
        let payload_id = PayloadId::NoCode {
            sbn: u16::try_from(sbn).map_err(|_| SenderError::Internal("FDT SBN above 16 bits"))?,
            esi: u16::try_from(esi).map_err(|_| SenderError::Internal("FDT ESI above 16 bits"))?,
        };
        let size = AlcPacket {
            header: fdt_header(tsi, &exts),
            payload_id: Some(payload_id),
            symbols: symbol,
        }
        .encode(buf)?;
        self.current_sent = true;
        self.cursor = if esi + 1 < k {
            Some((sbn, esi + 1))
        } else if sbn + 1 < layout.block_count() {
            Some((sbn + 1, 0))
        } else {
            None
        };
        Ok(FdtPacket {
            size,
            last: self.cursor.is_none(),
        })
    }
}
