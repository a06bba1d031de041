//! Packet builders and a driver that writes decoded blocks into memory.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dms_fec::{BlockEncoder, FecScheme, Oti};
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::alc::{AlcPacket, PayloadId};
use crate::fdt::{FdtFile, FdtInstance};
use crate::lct::{
    ContentEncoding, ExtFdt, Extension, Extensions, FluteVersion, Fti, LctHeader, NoCodeFti,
    RaptorQFti,
};
use crate::receiver::{Event, Receiver, ReceiverConfig};

/// Deterministic object bytes.
pub fn object(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// A RaptorQ OTI with `blocks` blocks (at most) of symbols of `t` bytes.
pub fn raptorq(len: usize, t: u16, blocks: u32) -> Oti {
    let symbols = (len as u64).div_ceil(u64::from(t));
    Oti::raptorq(len as u64, t, blocks.min(symbols as u32).max(1), 1, 4).unwrap()
}

/// A no-code OTI with blocks of at most `b` symbols of `t` bytes.
pub fn no_code(len: usize, t: u16, b: u32) -> Oti {
    Oti::no_code(len as u64, t, b).unwrap()
}

/// A Raptor OTI with `blocks` blocks of symbols of `t` bytes and `n`
/// sub-blocks.
pub fn raptor(len: usize, t: u16, blocks: u32, n: u8) -> Oti {
    Oti::raptor(len as u64, t, blocks, n, 4).unwrap()
}

/// The EXT_FTI of `oti`.
pub fn fti(oti: &Oti) -> Fti {
    match oti.scheme() {
        FecScheme::Raptor => Fti::from_oti(oti).unwrap(),
        FecScheme::RaptorQ => Fti::RaptorQ(
            RaptorQFti::new(
                oti.transfer_length(),
                oti.symbol_size(),
                oti.source_blocks() as u8,
                oti.sub_blocks(),
                oti.alignment().unwrap(),
            )
            .unwrap(),
        ),
        FecScheme::NoCode => Fti::NoCode(
            NoCodeFti::new(
                oti.transfer_length(),
                oti.symbol_size(),
                oti.max_source_block_length(),
            )
            .unwrap(),
        ),
    }
}

/// How to build an object's packets.
#[derive(Clone, Copy)]
pub struct Send {
    pub tsi: u64,
    pub toi: u128,
    /// Repair symbols per block (RaptorQ only).
    pub repair: u32,
    /// Put EXT_FTI on every packet.
    pub with_fti: bool,
}

impl Send {
    pub fn new(tsi: u64, toi: u128) -> Self {
        Send {
            tsi,
            toi,
            repair: 0,
            with_fti: false,
        }
    }

    /// With EXT_FTI on every packet.
    pub fn in_band(tsi: u64, toi: u128) -> Self {
        Send {
            with_fti: true,
            ..Send::new(tsi, toi)
        }
    }
}

fn encode(header: LctHeader<'_>, sbn: u32, esi: u32, symbol: &[u8], scheme: FecScheme) -> Vec<u8> {
    let payload_id = match scheme {
        FecScheme::RaptorQ => PayloadId::RaptorQ {
            sbn: sbn as u8,
            esi,
        },
        FecScheme::NoCode => PayloadId::NoCode {
            sbn: sbn as u16,
            esi: esi as u16,
        },
        FecScheme::Raptor => PayloadId::Raptor {
            sbn: sbn as u16,
            esi: esi as u16,
        },
    };
    let packet = AlcPacket {
        header,
        payload_id: Some(payload_id),
        symbols: symbol,
    };
    let mut out = vec![0u8; packet.encoded_len().unwrap()];
    packet.encode(&mut out).unwrap();
    out
}

/// The packets of one object: every source symbol, then `repair` repair
/// symbols per block, block by block.
pub fn object_packets(send: Send, oti: &Oti, data: &[u8]) -> Vec<Vec<u8>> {
    let layout = oti.layout();
    let fti = [Extension::Fti(fti(oti))];
    let mut out = Vec::new();
    for sbn in 0..layout.block_count() {
        let range = layout.block_range(sbn).unwrap();
        let block = &data[range.start as usize..range.end as usize];
        let encoder = BlockEncoder::new(&layout, sbn, block).unwrap();
        let k = encoder.source_symbols();
        let mut symbols: Vec<(u32, Vec<u8>)> = (0..k)
            .map(|esi| (esi, encoder.source_symbol(esi).unwrap().to_vec()))
            .collect();
        if send.repair > 0 {
            symbols.extend(encoder.repair_symbols(k, send.repair).unwrap());
        }
        for (esi, symbol) in symbols {
            let mut header = LctHeader::new(send.tsi, send.toi, oti.scheme().encoding_id());
            if send.with_fti {
                header.extensions = Extensions::from_list(&fti);
            }
            out.push(encode(header, sbn, esi, &symbol, oti.scheme()));
        }
    }
    out
}

/// An FDT `File` for an object, with its FEC OTI and digests.
pub fn file(toi: u128, name: &str, oti: &Oti, data: &[u8]) -> FdtFile {
    let mut file = FdtFile::new(name, toi);
    file.set_fti(&fti(oti));
    file.content_length = Some(data.len() as u64);
    file.content_type = Some("application/octet-stream".into());
    file.content_md5 = Some(Md5::digest(data).into());
    file.sha256 = Some(Sha256::digest(data).into());
    file
}

/// The packets of an FDT Instance (no-code, EXT_FDT and EXT_FTI on each).
pub fn fdt_packets(
    tsi: u64,
    instance_id: u32,
    version: FluteVersion,
    cenc: Option<ContentEncoding>,
    xml: &[u8],
) -> Vec<Vec<u8>> {
    let oti = no_code(xml.len(), 256, 64);
    let ext_fdt = Extension::Fdt(ExtFdt::new(version, instance_id).unwrap());
    let ext_fti = Extension::Fti(fti(&oti));
    let list: Vec<Extension<'_>> = match cenc {
        Some(c) => vec![ext_fdt, ext_fti, Extension::Cenc(c)],
        None => vec![ext_fdt, ext_fti],
    };
    let layout = oti.layout();
    let mut out = Vec::new();
    for sbn in 0..layout.block_count() {
        let range = layout.block_range(sbn).unwrap();
        let block = &xml[range.start as usize..range.end as usize];
        let encoder = BlockEncoder::new(&layout, sbn, block).unwrap();
        for esi in 0..encoder.source_symbols() {
            let mut header = LctHeader::new(tsi, 0, 0);
            header.extensions = Extensions::from_list(&list);
            out.push(encode(
                header,
                sbn,
                esi,
                encoder.source_symbol(esi).unwrap(),
                FecScheme::NoCode,
            ));
        }
    }
    out
}

/// The packets of an FDT Instance listing `files` (FLUTE v2).
pub fn fdt(tsi: u64, instance_id: u32, files: Vec<FdtFile>) -> Vec<Vec<u8>> {
    let mut instance = FdtInstance::new(3_913_056_000);
    instance.files = files;
    fdt_packets(
        tsi,
        instance_id,
        FluteVersion::V2,
        None,
        instance.to_xml().as_bytes(),
    )
}

/// A header-only close packet.
pub fn close(tsi: u64, toi: u128, session: bool, object: bool) -> Vec<u8> {
    let mut header = LctHeader::new(tsi, toi, 6);
    header.close_session = session;
    header.close_object = object;
    let packet = AlcPacket {
        header,
        payload_id: None,
        symbols: &[],
    };
    let mut out = vec![0u8; 64];
    let n = packet.encode(&mut out).unwrap();
    out.truncate(n);
    out
}

/// A receiver, a clock and what it wrote.
pub struct Harness {
    pub receiver: Receiver,
    pub now: Instant,
    /// Bytes written per (TSI, TOI), from `BlockDecoded` events.
    pub written: HashMap<(u64, u128), Vec<u8>>,
    /// Every event other than `BlockDecoded`.
    pub events: Vec<Event>,
    /// `BlockDecoded` events seen, in order: (tsi, toi, sbn).
    pub blocks: Vec<(u64, u128, u32)>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(ReceiverConfig::default())
    }

    pub fn with_config(config: ReceiverConfig) -> Self {
        Harness {
            receiver: Receiver::new(config),
            now: Instant::now(),
            written: HashMap::new(),
            events: Vec::new(),
            blocks: Vec::new(),
        }
    }

    /// Feeds datagrams one millisecond apart, draining events after each.
    pub fn feed<I, D>(&mut self, datagrams: I)
    where
        I: IntoIterator<Item = D>,
        D: AsRef<[u8]>,
    {
        for d in datagrams {
            self.now += Duration::from_millis(1);
            let _ = self.receiver.handle_datagram(self.now, d.as_ref());
            self.drain();
        }
    }

    /// Lets `by` pass, running the receiver's timers that fall due.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        while let Some(due) = self.receiver.poll_timeout().filter(|t| *t <= self.now) {
            self.receiver.handle_timeout(due.max(self.now));
            self.drain();
            if self.receiver.poll_timeout() == Some(due) {
                break;
            }
        }
        self.drain();
    }

    pub fn drain(&mut self) {
        while let Some(event) = self.receiver.poll_event() {
            match event {
                Event::BlockDecoded {
                    tsi,
                    toi,
                    sbn,
                    offset,
                    data,
                } => {
                    let out = self.written.entry((tsi, toi)).or_default();
                    // Blocks arrive in order: each starts where the last ended.
                    assert_eq!(out.len() as u64, offset);
                    out.extend_from_slice(&data);
                    self.blocks.push((tsi, toi, sbn));
                }
                other => self.events.push(other),
            }
        }
    }

    /// Whether object (tsi, toi) completed with both digests verified.
    pub fn verified(&self, tsi: u64, toi: u128) -> bool {
        self.events.iter().any(|e| {
            matches!(e, Event::ObjectComplete { tsi: t, toi: o, md5: crate::receiver::Verification::Verified, sha256: crate::receiver::Verification::Verified, .. } if *t == tsi && *o == toi)
        })
    }

    /// Whether object (tsi, toi) completed, however verified.
    pub fn complete(&self, tsi: u64, toi: u128) -> bool {
        self.events.iter().any(
            |e| matches!(e, Event::ObjectComplete { tsi: t, toi: o, .. } if *t == tsi && *o == toi),
        )
    }
}

/// A small deterministic generator (xorshift) for loss and shuffles.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}
