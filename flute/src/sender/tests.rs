//! Sender tests: every datagram is parsed back with `AlcPacket::decode`,
//! the FDT is decoded and parsed, and objects are decoded with
//! `dms_fec::ObjectDecoder` using the OTI from that FDT. A fake clock
//! advances a fixed step per datagram; no sockets, no sleeps.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

use dms_fec::{BlockSize, FecScheme, ObjectDecoder};

use super::*;
use crate::fdt::FdtInstance;
use crate::lct::{ContentEncoding, FluteVersion};

/// One emitted datagram and when.
pub(super) struct Sent {
    pub(super) at: Instant,
    pub(super) kind: TransmitKind,
    pub(super) bytes: Vec<u8>,
}

pub(super) fn config() -> SenderConfig {
    SenderConfig::new(42, 3_913_056_000)
}

pub(super) fn object(name: &str, data: Vec<u8>, fec: FecScheme, t: u16) -> ObjectSpec {
    let mut spec = ObjectSpec::new(name, Cursor::new(data));
    spec.fec = fec;
    spec.symbol_size = t;
    spec
}

pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// Drives the sender to the end with the clock advancing `step` per call.
pub(super) fn run(sender: &mut Sender, start: Instant, step: Duration) -> Vec<Sent> {
    let mut buf = vec![0u8; sender.config().max_datagram_size];
    let mut now = start;
    let mut out = Vec::new();
    while let Some(t) = sender.poll_transmit(now, &mut buf).unwrap() {
        assert!(t.size <= buf.len());
        let pkt = AlcPacket::decode(&buf[..t.size]).unwrap();
        assert_eq!(pkt.header.toi, t.toi);
        assert_eq!(pkt.header.tsi, 42);
        out.push(Sent {
            at: now,
            kind: t.kind,
            bytes: buf[..t.size].to_vec(),
        });
        now += step;
        assert!(out.len() < 1_000_000, "runaway sender");
    }
    assert!(sender.is_finished());
    assert_eq!(sender.poll_timeout(), None);
    out
}

fn add_symbol(dec: &mut ObjectDecoder, pkt: &AlcPacket<'_>) {
    let id = pkt.payload_id.unwrap().into();
    dec.add_symbol(id, pkt.symbols).unwrap();
}

/// The decoded object's bytes.
fn drain(dec: &mut ObjectDecoder) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some(block) = dec.pop_block() {
        data.extend_from_slice(&block.data);
    }
    data
}

/// Decodes the FDT Instance with the highest Instance ID among `packets`.
pub(super) fn decode_fdt<'a>(packets: impl Iterator<Item = &'a [u8]>) -> FdtInstance {
    let mut decoders: HashMap<u32, ObjectDecoder> = HashMap::new();
    let mut best: Option<(u32, FdtInstance)> = None;
    for bytes in packets {
        let pkt = AlcPacket::decode(bytes).unwrap();
        if pkt.header.toi != 0 {
            continue;
        }
        let ext = pkt.header.extensions.fdt().expect("EXT_FDT on TOI 0");
        let fti = pkt.header.extensions.fti().expect("EXT_FTI on TOI 0");
        let id = ext.instance_id();
        let dec = decoders
            .entry(id)
            .or_insert_with(|| ObjectDecoder::new(&fti.to_oti().unwrap()));
        add_symbol(dec, &pkt);
        if dec.is_complete() && best.as_ref().is_none_or(|(b, _)| *b < id) {
            best = Some((id, FdtInstance::parse(&drain(dec)).unwrap()));
        }
    }
    best.expect("a complete FDT").1
}

/// Decodes every object listed in the FDT from `packets`; returns TOI →
/// bytes for the complete ones.
pub(super) fn receive<'a>(
    packets: impl Iterator<Item = &'a [u8]> + Clone,
) -> HashMap<u128, Vec<u8>> {
    let fdt = decode_fdt(packets.clone());
    let mut decoders: HashMap<u128, ObjectDecoder> = HashMap::new();
    for bytes in packets {
        let pkt = AlcPacket::decode(bytes).unwrap();
        let toi = pkt.header.toi;
        if toi == 0 {
            continue;
        }
        // Objects the last FDT dropped (abandoned) are not received.
        let Some(file) = fdt.file(toi) else { continue };
        let fti = fdt.fti(file).unwrap().expect("FEC OTI in the FDT");
        if let Some(inband) = pkt.header.extensions.fti() {
            assert_eq!(inband, fti);
        }
        assert_eq!(pkt.header.codepoint, fti.codepoint());
        let dec = decoders
            .entry(toi)
            .or_insert_with(|| ObjectDecoder::new(&fti.to_oti().unwrap()));
        add_symbol(dec, &pkt);
    }
    decoders
        .into_iter()
        .filter(|(_, d)| d.is_complete())
        .map(|(toi, mut d)| (toi, drain(&mut d)))
        .collect()
}

pub(super) fn bytes_of(sent: &[Sent]) -> impl Iterator<Item = &[u8]> + Clone {
    sent.iter().map(|s| s.bytes.as_slice())
}

#[test]
fn edge_sizes_decode_in_every_mode() {
    const T: u16 = 64;
    let sizes = [
        1usize,
        T as usize - 1,
        T as usize,
        T as usize + 1,
        40 * T as usize + 3,
    ];
    for fec in [FecScheme::RaptorQ, FecScheme::NoCode] {
        for version in [FluteVersion::V1, FluteVersion::V2] {
            for inband in [true, false] {
                let mut cfg = config();
                cfg.flute_version = version;
                cfg.inband_fti = inband;
                let mut sender = Sender::new(cfg).unwrap();
                let mut expected = HashMap::new();
                for (i, &len) in sizes.iter().enumerate() {
                    let data = pattern(len, i as u8);
                    let mut spec = object(&format!("obj/{i}"), data.clone(), fec, T);
                    spec.block_size = BlockSize::Symbols(16);
                    let toi = sender.add_object(spec).unwrap();
                    assert_eq!(toi, i as u128 + 1);
                    expected.insert(toi, data);
                }
                let sent = run(&mut sender, Instant::now(), Duration::from_micros(10));
                for s in &sent {
                    let pkt = AlcPacket::decode(&s.bytes).unwrap();
                    assert_eq!(
                        pkt.header.extensions.fti().is_some(),
                        inband || pkt.header.toi == 0
                    );
                    if let Some(ext) = pkt.header.extensions.fdt() {
                        assert_eq!(ext.version(), version);
                    }
                }
                let got = receive(bytes_of(&sent));
                assert_eq!(got, expected, "{fec:?} {version:?} inband={inband}");
            }
        }
    }
}

#[test]
fn few_mib_object_decodes() {
    let data = pattern(3 * 1024 * 1024 + 17, 9);
    let mut sender = Sender::new(config()).unwrap();
    let toi = sender
        .add_object(ObjectSpec::new("fw/big.bin", Cursor::new(data.clone())))
        .unwrap();
    let sent = run(&mut sender, Instant::now(), Duration::from_micros(1));
    assert!(
        sent.iter()
            .all(|s| s.bytes.len() <= DEFAULT_MAX_DATAGRAM_SIZE)
    );
    let got = receive(bytes_of(&sent));
    assert_eq!(got.get(&toi), Some(&data));
    let stats = sender.stats().object(toi).unwrap();
    assert_eq!(stats.blocks_encoded, 4);
    assert!(stats.repair_symbols > 0);
}

#[test]
fn raptorq_survives_ten_percent_loss() {
    let mut sender = Sender::new(config()).unwrap();
    let mut expected = HashMap::new();
    for i in 0..3u8 {
        let data = pattern(300_000 + usize::from(i) * 1000, i);
        let mut spec = object(&format!("o{i}"), data.clone(), FecScheme::RaptorQ, 1024);
        spec.block_size = BlockSize::Bytes(64 * 1024);
        spec.repair_percent = 25;
        expected.insert(sender.add_object(spec).unwrap(), data);
    }
    let sent = run(&mut sender, Instant::now(), Duration::from_micros(1));
    // Drop 10 % of the data packets (seeded xorshift); keep the FDT.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut dropped = 0;
    let kept: Vec<&[u8]> = sent
        .iter()
        .filter(|s| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let drop = s.kind == TransmitKind::Data && x.is_multiple_of(10);
            dropped += usize::from(drop);
            !drop
        })
        .map(|s| s.bytes.as_slice())
        .collect();
    assert!(dropped > sent.len() / 20);
    assert_eq!(receive(kept.iter().copied()), expected);
}

#[test]
fn fdt_first_and_repeated_at_the_interval() {
    let mut cfg = config();
    cfg.fdt_interval = Duration::from_millis(100);
    let mut sender = Sender::new(cfg).unwrap();
    let mut spec = object("o", pattern(200_000, 1), FecScheme::NoCode, 1000);
    spec.block_size = BlockSize::Symbols(50);
    sender.add_object(spec).unwrap();
    assert_eq!(
        sender.poll_timeout(),
        None,
        "no timer before the first packet"
    );
    let start = Instant::now();
    let mut buf = vec![0u8; DEFAULT_MAX_DATAGRAM_SIZE];
    let first = sender.poll_transmit(start, &mut buf).unwrap().unwrap();
    assert_eq!(first.kind, TransmitKind::Fdt);
    assert_eq!(
        sender.poll_timeout(),
        Some(start + Duration::from_millis(100))
    );

    let mut sender = Sender::new({
        let mut c = config();
        c.fdt_interval = Duration::from_millis(100);
        c
    })
    .unwrap();
    let mut spec = object("o", pattern(200_000, 1), FecScheme::NoCode, 1000);
    spec.block_size = BlockSize::Symbols(50);
    sender.add_object(spec).unwrap();
    let step = Duration::from_millis(1);
    let sent = run(&mut sender, start, step);
    assert_eq!(sent[0].kind, TransmitKind::Fdt);
    let fdt_times: Vec<Duration> = sent
        .iter()
        .filter(|s| s.kind == TransmitKind::Fdt)
        .map(|s| s.at - start)
        .collect();
    // 200 data packets at 1 ms each: FDTs at 0, 100, 200 ms (± one step).
    assert_eq!(fdt_times.len(), 3, "{fdt_times:?}");
    for (i, t) in fdt_times.iter().enumerate() {
        let due = Duration::from_millis(100 * i as u64);
        assert!(*t >= due && *t <= due + step, "{fdt_times:?}");
    }
    assert_eq!(sender.stats().fdt_transmissions, 3);
    assert_eq!(sender.fdt_instance_id(), 0, "unchanged FDT keeps its ID");
}

#[test]
fn handle_timeout_fires_the_fdt_repeat() {
    let mut cfg = config();
    cfg.fdt_interval = Duration::from_secs(1);
    let mut sender = Sender::new(cfg).unwrap();
    sender
        .add_object(object("o", pattern(10_000, 1), FecScheme::NoCode, 1000))
        .unwrap();
    let t0 = Instant::now();
    let mut buf = vec![0u8; DEFAULT_MAX_DATAGRAM_SIZE];
    assert_eq!(
        sender.poll_transmit(t0, &mut buf).unwrap().unwrap().kind,
        TransmitKind::Fdt
    );
    assert_eq!(
        sender.poll_transmit(t0, &mut buf).unwrap().unwrap().kind,
        TransmitKind::Data
    );
    let deadline = sender.poll_timeout().unwrap();
    sender.handle_timeout(deadline);
    assert_eq!(
        sender.poll_timeout(),
        None,
        "the fired timer is re-armed by the FDT"
    );
    let t = sender.poll_transmit(deadline, &mut buf).unwrap().unwrap();
    assert_eq!(t.kind, TransmitKind::Fdt);
    assert_eq!(
        sender.poll_timeout(),
        Some(deadline + Duration::from_secs(1))
    );
}

/// (TOI, SBN) of each data packet, consecutive repeats collapsed.
pub(super) fn block_sequence(sent: &[Sent]) -> Vec<(u128, u32)> {
    let mut seq: Vec<(u128, u32)> = Vec::new();
    for s in sent.iter().filter(|s| s.kind == TransmitKind::Data) {
        let pkt = AlcPacket::decode(&s.bytes).unwrap();
        let key = (pkt.header.toi, pkt.payload_id.unwrap().sbn());
        if seq.last() != Some(&key) {
            seq.push(key);
        }
    }
    seq
}

#[test]
fn priority_order_and_round_robin() {
    let mut sender = Sender::new(config()).unwrap();
    let mut add = |name: &str, priority: u8, blocks: usize| {
        let mut spec = object(name, pattern(blocks * 4 * 64, 0), FecScheme::RaptorQ, 64);
        spec.block_size = BlockSize::Symbols(4);
        spec.priority = priority;
        sender.add_object(spec).unwrap()
    };
    let low = add("low", 0, 2);
    let a = add("a", 5, 3);
    let b = add("b", 5, 2);
    let high = add("high", 9, 2);
    let sent = run(&mut sender, Instant::now(), Duration::from_micros(1));
    assert_eq!(
        block_sequence(&sent),
        vec![
            (high, 0),
            (high, 1),
            (a, 0),
            (b, 0),
            (a, 1),
            (b, 1),
            (a, 2),
            (low, 0),
            (low, 1)
        ]
    );
    // Within a block: source symbols in order, then repair from K.
    let esis: Vec<u32> = sent
        .iter()
        .filter_map(|s| {
            let p = AlcPacket::decode(&s.bytes).unwrap();
            (p.header.toi == high && p.payload_id.unwrap().sbn() == 0)
                .then_some(p.payload_id.unwrap().esi())
        })
        .collect();
    assert_eq!(esis, vec![0, 1, 2, 3, 4], "K = 4, ⌈4·10/100⌉ = 1 repair");
}

#[test]
fn carousel_repeats_every_symbol_but_encodes_each_block_once() {
    const ROUNDS: u32 = 3;
    let mut cfg = config();
    cfg.carousel_rounds = ROUNDS;
    let mut sender = Sender::new(cfg).unwrap();
    let mut blocks = 0;
    let mut expected = HashMap::new();
    for i in 0..2u8 {
        let data = pattern(50_000 + usize::from(i), i);
        let mut spec = object(&format!("o{i}"), data.clone(), FecScheme::RaptorQ, 256);
        spec.block_size = BlockSize::Bytes(8 * 1024);
        spec.repair_percent = 20;
        let toi = sender.add_object(spec).unwrap();
        expected.insert(toi, data);
        blocks += 50_000usize.div_ceil(8 * 1024);
    }
    let sent = run(&mut sender, Instant::now(), Duration::from_micros(1));
    assert_eq!(sender.stats().blocks_encoded, blocks as u64);
    let mut seen: HashMap<(u128, u32, u32), (u32, Vec<u8>)> = HashMap::new();
    for s in sent.iter().filter(|s| s.kind == TransmitKind::Data) {
        let p = AlcPacket::decode(&s.bytes).unwrap();
        let key = (
            p.header.toi,
            p.payload_id.unwrap().sbn(),
            p.payload_id.unwrap().esi(),
        );
        let entry = seen.entry(key).or_insert((0, p.symbols.to_vec()));
        entry.0 += 1;
        assert_eq!(entry.1, p.symbols, "a symbol differs between rounds");
    }
    assert!(seen.values().all(|(n, _)| *n == ROUNDS));
    for o in &sender.stats().objects {
        assert_eq!(o.rounds_completed, ROUNDS);
    }
    // The whole sequence repeats: round 2 starts after round 1 ends.
    let seq = block_sequence(&sent);
    let per_round = seq.len() / ROUNDS as usize;
    assert_eq!(seq[..per_round], seq[per_round..2 * per_round]);
    assert_eq!(receive(bytes_of(&sent)), expected);
    assert_eq!(
        sender.cache_used, 0,
        "the cache is freed after the last round"
    );
}

#[test]
fn repair_cache_budget_is_enforced() {
    let mut cfg = config();
    cfg.carousel_rounds = 2;
    cfg.repair_cache_bytes = 10_000;
    let mut sender = Sender::new(cfg).unwrap();
    let mut spec = object("big", pattern(200_000, 0), FecScheme::RaptorQ, 1000);
    spec.repair_percent = 10;
    assert!(matches!(
        sender.add_object(spec),
        Err(SenderError::RepairCacheBudget {
            needed: 20_000,
            available: 10_000
        })
    ));
    // No repair symbols, nothing to keep.
    let mut spec = object("big", pattern(200_000, 0), FecScheme::RaptorQ, 1000);
    spec.repair_percent = 0;
    sender.add_object(spec).unwrap();
    assert_eq!(sender.stats().blocks_encoded, 0);
}

fn flags(sent: &[Sent]) -> Vec<(u128, bool, bool)> {
    sent.iter()
        .map(|s| {
            let p = AlcPacket::decode(&s.bytes).unwrap();
            (p.header.toi, p.header.close_object, p.header.close_session)
        })
        .collect()
}

#[test]
fn close_flags_where_specified() {
    for on in [true, false] {
        let mut cfg = config();
        cfg.carousel_rounds = 2;
        cfg.close_object = on;
        cfg.close_session = on;
        let mut sender = Sender::new(cfg).unwrap();
        for i in 0..2u8 {
            let mut spec = object(&format!("o{i}"), pattern(1000, i), FecScheme::NoCode, 100);
            spec.block_size = BlockSize::Symbols(3);
            sender.add_object(spec).unwrap();
        }
        let sent = run(&mut sender, Instant::now(), Duration::from_micros(1));
        let f = flags(&sent);
        let (last, rest) = f.split_last().unwrap();
        assert_eq!(last.2, on, "A on the last packet");
        assert!(rest.iter().all(|p| !p.2), "A only on the last packet");
        for toi in [1u128, 2] {
            let object: Vec<_> = f.iter().filter(|p| p.0 == toi).collect();
            let (last, rest) = object.split_last().unwrap();
            assert_eq!(last.1, on, "B on the object's last packet");
            assert!(rest.iter().all(|p| !p.1));
        }
        assert!(f.iter().filter(|p| p.0 == 0).all(|p| !p.1 && !p.2));
        if on {
            let spec = object("late", vec![1], FecScheme::NoCode, 100);
            assert!(matches!(
                sender.add_object(spec),
                Err(SenderError::SessionClosed)
            ));
        }
    }
}

/// A source that fails once `fail_at` bytes have been read.
struct Failing {
    inner: Cursor<Vec<u8>>,
    fail_at: u64,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.inner.position() >= self.fail_at {
            return Err(std::io::Error::other("disk on fire"));
        }
        let room = (self.fail_at - self.inner.position()) as usize;
        let n = buf.len().min(room);
        self.inner.read(&mut buf[..n])
    }
}

impl Seek for Failing {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn failing_source_is_an_error_and_the_session_goes_on() {
    let mut sender = Sender::new(config()).unwrap();
    let mut bad = ObjectSpec::new(
        "bad",
        Failing {
            inner: Cursor::new(pattern(10_000, 0)),
            fail_at: 5_000,
        },
    );
    bad.fec = FecScheme::NoCode;
    bad.symbol_size = 1000;
    bad.block_size = BlockSize::Symbols(4);
    bad.priority = 1;
    let bad_toi = sender.add_object(bad).unwrap();
    let good_data = pattern(3000, 7);
    let good_toi = sender
        .add_object(object("good", good_data.clone(), FecScheme::RaptorQ, 1000))
        .unwrap();

    let mut buf = vec![0u8; DEFAULT_MAX_DATAGRAM_SIZE];
    let now = Instant::now();
    let mut sent = Vec::new();
    let mut errors = 0;
    loop {
        match sender.poll_transmit(now, &mut buf) {
            Ok(Some(t)) => sent.push(Sent {
                at: now,
                kind: t.kind,
                bytes: buf[..t.size].to_vec(),
            }),
            Ok(None) => break,
            Err(SenderError::Read { toi, .. }) => {
                assert_eq!(toi, bad_toi);
                errors += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(errors, 1);
    assert!(sender.stats().object(bad_toi).unwrap().failed);
    assert_eq!(
        sender.fdt_instance_id(),
        1,
        "the FDT without it has a new ID"
    );
    let got = receive(bytes_of(&sent));
    assert_eq!(got.get(&good_toi), Some(&good_data));
    assert!(!got.contains_key(&bad_toi));
    // The last FDT no longer lists the failed object.
    assert!(decode_fdt(bytes_of(&sent)).file(bad_toi).is_none());
}

#[test]
fn content_encoding_and_fdt_attributes() {
    let mut sender = Sender::new(config()).unwrap();
    let mut spec = object("fw.gz", pattern(5000, 3), FecScheme::RaptorQ, 512);
    spec.content_encoding = Some(ContentEncoding::Gzip);
    spec.content_length = Some(12_345);
    spec.content_type = Some("application/octet-stream".into());
    spec.sha256 = Some([7; 32]);
    spec.manifest = Some("https://dms.example/m/1".into());
    spec.content_md5 = Some([9; 16]);
    let delta = crate::fdt::FdtDelta {
        base_sha256: [1; 32],
        target_sha256: [2; 32],
        target_manifest: Some("https://dms.example/m/0".into()),
    };
    spec.delta = Some(delta.clone());
    let toi = sender.add_object(spec).unwrap();
    let sent = run(&mut sender, Instant::now(), Duration::from_micros(1));
    let fdt = decode_fdt(bytes_of(&sent));
    assert_eq!(fdt.file(toi).unwrap().delta, Some(delta));
    assert_eq!(fdt.expires, 3_913_056_000);
    let file = fdt.file(toi).unwrap();
    assert_eq!(file.content_location, "fw.gz");
    assert_eq!(file.content_encoding.as_deref(), Some("gzip"));
    assert_eq!(file.content_length, Some(12_345));
    assert_eq!(file.transfer_length, Some(5000));
    assert_eq!(
        file.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(file.sha256, Some([7; 32]));
    assert_eq!(file.manifest.as_deref(), Some("https://dms.example/m/1"));
    assert_eq!(file.content_md5, Some([9; 16]));
    for s in sent.iter().filter(|s| s.kind == TransmitKind::Data) {
        let p = AlcPacket::decode(&s.bytes).unwrap();
        assert_eq!(p.header.extensions.cenc(), Some(ContentEncoding::Gzip));
    }
    assert_eq!(receive(bytes_of(&sent)).get(&toi), Some(&pattern(5000, 3)));
}

#[test]
fn multi_packet_fdt_and_instance_id_on_change() {
    let mut cfg = config();
    cfg.max_datagram_size = 200;
    let mut sender = Sender::new(cfg).unwrap();
    let mut expected = HashMap::new();
    for i in 0..20u8 {
        let data = pattern(100 + usize::from(i), i);
        let spec = object(
            &format!("dir/file-{i:02}.bin"),
            data.clone(),
            FecScheme::NoCode,
            64,
        );
        expected.insert(sender.add_object(spec).unwrap(), data);
    }
    let mut buf = vec![0u8; 200];
    let now = Instant::now();
    let mut sent = Vec::new();
    // Send the first FDT and a little data, then add an object.
    for _ in 0..40 {
        let t = sender.poll_transmit(now, &mut buf).unwrap().unwrap();
        sent.push(Sent {
            at: now,
            kind: t.kind,
            bytes: buf[..t.size].to_vec(),
        });
    }
    assert!(
        sender.stats().fdt_packets > 1,
        "the FDT spans several packets"
    );
    assert_eq!(sender.fdt_instance_id(), 0);
    let late = pattern(700, 99);
    expected.insert(
        sender
            .add_object(object("late", late, FecScheme::NoCode, 64))
            .unwrap(),
        pattern(700, 99),
    );
    sent.extend(run(&mut sender, now, Duration::from_micros(1)));
    assert_eq!(sender.fdt_instance_id(), 1);
    assert_eq!(receive(bytes_of(&sent)), expected);
}

#[test]
fn invalid_inputs_are_errors() {
    let mut cfg = config();
    cfg.tsi = 1 << 48;
    assert!(matches!(
        Sender::new(cfg),
        Err(SenderError::InvalidConfig(_))
    ));
    let mut cfg = config();
    cfg.max_datagram_size = 20;
    assert!(matches!(
        Sender::new(cfg),
        Err(SenderError::InvalidConfig(_))
    ));
    let mut cfg = config();
    cfg.carousel_rounds = 0;
    assert!(matches!(
        Sender::new(cfg),
        Err(SenderError::InvalidConfig(_))
    ));

    let mut sender = Sender::new(config()).unwrap();
    assert!(matches!(
        sender.add_object(object("empty", Vec::new(), FecScheme::RaptorQ, 64)),
        Err(SenderError::Oti { .. })
    ));
    assert!(matches!(
        sender.add_object(object("huge-t", vec![1; 10], FecScheme::RaptorQ, 1452)),
        Err(SenderError::SymbolTooLarge { .. })
    ));
    assert!(matches!(
        sender.add_object(object("odd-t", vec![1; 10], FecScheme::RaptorQ, 63)),
        Err(SenderError::Oti { .. })
    ));
    // Nothing added: nothing to send, and a small buffer is an error.
    let mut buf = [0u8; 8];
    assert!(
        sender
            .poll_transmit(Instant::now(), &mut buf)
            .unwrap()
            .is_none()
    );
    assert!(sender.is_finished());
    sender
        .add_object(object("x", vec![1; 10], FecScheme::RaptorQ, 64))
        .unwrap();
    assert!(matches!(
        sender.poll_transmit(Instant::now(), &mut buf),
        Err(SenderError::Alc(_))
    ));
}

#[test]
fn an_exact_oti_is_used_as_given_and_checked_against_the_source() {
    // 40 symbols in 5 blocks: the default planning would make one block.
    let data = pattern(40 * 64 - 7, 3);
    let oti = dms_fec::Oti::raptorq(data.len() as u64, 64, 5, 1, 4).unwrap();
    let mut sender = Sender::new(config()).unwrap();
    let mut spec = object("file:///exact", data.clone(), FecScheme::RaptorQ, 1400);
    spec.oti = Some(oti);
    let toi = sender.add_object(spec).unwrap();
    let sent = run(&mut sender, Instant::now(), Duration::from_micros(10));
    let fdt = decode_fdt(bytes_of(&sent));
    let file = fdt.file(toi).unwrap();
    assert_eq!(fdt.fti(file).unwrap().unwrap().to_oti().unwrap(), oti);
    assert_eq!(receive(bytes_of(&sent)).get(&toi), Some(&data));

    let mut sender = Sender::new(config()).unwrap();
    let mut spec = object("file:///short", data[1..].to_vec(), FecScheme::RaptorQ, 64);
    spec.oti = Some(oti);
    assert!(matches!(
        sender.add_object(spec),
        Err(SenderError::OtiLength { oti: o, source_length: s, .. })
            if o == data.len() as u64 && s == data.len() as u64 - 1
    ));
}
