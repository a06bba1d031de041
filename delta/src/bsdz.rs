//! The bsdiff-family body ([`Method::BsdiffZstd`](crate::Method)): the
//! controls, byte-wise differences and literal bytes of bsdiff (found by
//! [`matcher`](crate::matcher)), with the difference bytes stored sparsely
//! and each stream compressed with zstd instead of bzip2.
//!
//! The difference stream of a recompiled binary is mostly zeros with
//! scattered non-zero bytes (the moved addresses). bzip2 compresses that
//! well but decodes slowly; zstd decodes fast but compresses the zero
//! runs and the scattered bytes worse. Splitting the differences into
//! zero-run lengths, non-zero-run lengths and non-zero bytes gives three
//! small streams that zstd compresses as well as bzip2 does the whole, at
//! a fraction of the input size (fast to compress at a high level), and
//! applying touches only the non-zero bytes.
//!
//! Body layout: five stream headers, then the five streams in that order:
//!
//! 1. controls: triples of LEB128 integers `diff_len`, `extra_len`,
//!    `seek` (zigzag-coded). Each moves the base cursor by `seek`, then
//!    writes `diff_len` bytes — base bytes plus the difference bytes, mod
//!    256; the base cursor advances with them — then `extra_len` literal
//!    bytes;
//! 2. gaps: LEB128 lengths of the zero runs of the difference bytes, each
//!    followed by a non-zero run (after the last one, zeros to the end);
//! 3. runs: LEB128 lengths (≥ 1) of those runs;
//! 4. values: the bytes of the runs (mostly non-zero: short zero gaps are
//!    kept inside a run);
//! 5. literals: the literal bytes.
//!
//! A stream header is one LEB128 integer: stored length × 2, plus 1 when
//! the stream is a zstd frame (else it is stored raw; tiny streams are).
//! The stored lengths add up to the rest of the body exactly.
//!
//! Decoding streams: memory is at most five zstd windows (each capped at
//! what the header's sizes need) and one buffer. Every control and run is
//! checked against the base and the target size before it is used, and
//! one that writes nothing is corrupt, so a hostile body can neither read
//! out of bounds nor loop without progress.

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::error::DeltaError;
use crate::matcher::{self, Control, Index};
use crate::methods::{window_log, zstd_frame};

/// Number of streams in a body.
const STREAMS: usize = 5;
/// Targets smaller than this are scanned on one thread (by default).
pub(crate) const PARALLEL_MIN: usize = 1 << 20;
/// Largest index table (log2 of slots; 4 bytes each: 128 MiB).
const MAX_TABLE_BITS: u32 = 25;
/// Zero runs shorter than this between two non-zero bytes are kept in the
/// values stream (two lengths would cost more than the zeros).
const MERGE_GAP: u64 = 4;
/// Streams shorter than this are stored raw.
const RAW_MAX: usize = 64;

/// How the body is encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// zstd level of the three difference streams (small: see above).
    pub(crate) diff_level: i32,
    /// zstd level of the literal and control streams.
    pub(crate) extra_level: i32,
    /// Threads for indexing, scanning and compressing.
    pub(crate) threads: usize,
    /// Targets smaller than this are scanned on one thread
    /// ([`PARALLEL_MIN`]; tests lower it to cut small targets in slices).
    pub(crate) parallel_min: usize,
}

/// Encodes `target` against `base`.
pub(crate) fn encode(base: &[u8], target: &[u8], params: Params) -> Result<Vec<u8>, DeltaError> {
    // The same limit as zstd-ref's (and base positions then fit in u32).
    window_log(base.len() as u64, target.len() as u64)?;
    let threads = params.threads.max(1);
    // Index every position of a base up to 16 MiB; of a larger one, every
    // few positions, so that the table stays within MAX_TABLE_BITS at
    // about one word per slot (a match of 8 + stride − 1 bytes still has
    // an indexed word).
    let stride = (base.len() >> (MAX_TABLE_BITS - 1)) + 1;
    let index = Index::new(base, stride, MAX_TABLE_BITS, threads);
    let slices = if target.len() < params.parallel_min {
        1
    } else {
        threads
    };
    let step = target.len().div_ceil(slices).max(1);
    let parts: Vec<Part> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..slices)
            .map(|n| {
                let start = (n * step).min(target.len());
                let end = ((n + 1) * step).min(target.len());
                let index = &index;
                scope.spawn(move || {
                    let controls = matcher::scan(index, target, start, end);
                    Part::build(base, target, start, controls)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| panicked()))
            .collect::<Result<_, _>>()
    })?;
    drop(index);
    let mut raw: [Vec<u8>; STREAMS] = Default::default();
    let [ctrl, gaps, runs, values, extra] = &mut raw;
    let mut base_end = 0u64;
    // Zeros at the end of the previous slices, not yet followed by a run.
    let mut carry = 0u64;
    for part in parts {
        for c in &part.controls {
            write_control(ctrl, c, &mut base_end);
        }
        for (n, &(gap, len)) in part.runs.iter().enumerate() {
            let gap = if n == 0 { gap + carry } else { gap };
            write_varint(gaps, gap);
            write_varint(runs, len);
        }
        carry = if part.runs.is_empty() {
            carry + part.zeros
        } else {
            part.zeros
        };
        values.extend_from_slice(&part.values);
        extra.extend_from_slice(&part.extra);
    }
    let levels = [
        params.extra_level,
        params.diff_level,
        params.diff_level,
        params.diff_level,
        params.extra_level,
    ];
    let stored: Vec<(bool, Vec<u8>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = raw
            .iter()
            .zip(levels)
            .map(|(data, level)| scope.spawn(move || store(data, level)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| panicked())?)
            .collect::<Result<_, _>>()
    })?;
    let mut body = Vec::new();
    for (zstd, data) in &stored {
        write_varint(&mut body, ((data.len() as u64) << 1) | u64::from(*zstd));
    }
    for (_, data) in &stored {
        body.extend_from_slice(data);
    }
    Ok(body)
}

fn panicked() -> DeltaError {
    DeltaError::Encode(io::Error::other("bsdiff encoder thread panicked"))
}

/// The streams of one slice of the target, before compression.
#[derive(Default)]
struct Part {
    controls: Vec<Control>,
    /// (zero-run length, non-zero-run length) of the difference bytes.
    runs: Vec<(u64, u64)>,
    values: Vec<u8>,
    /// Zeros after the last run.
    zeros: u64,
    extra: Vec<u8>,
}

impl Part {
    fn build(base: &[u8], target: &[u8], start: usize, controls: Vec<Control>) -> Self {
        let mut p = Part::default();
        let mut at = start;
        for c in &controls {
            let old = &base[c.base_start..c.base_start + c.diff_len];
            p.push_diff(old, &target[at..at + c.diff_len]);
            at += c.diff_len;
            p.extra.extend_from_slice(&target[at..at + c.extra_len]);
            at += c.extra_len;
        }
        p.controls = controls;
        p
    }

    /// Appends the differences `new - old` in sparse form.
    fn push_diff(&mut self, old: &[u8], new: &[u8]) {
        let mut i = 0;
        while i < new.len() {
            // Equal words are eight zeros at once.
            if i + 8 <= new.len() && old[i..i + 8] == new[i..i + 8] {
                self.zeros += 8;
                i += 8;
                continue;
            }
            let d = new[i].wrapping_sub(old[i]);
            i += 1;
            if d == 0 {
                self.zeros += 1;
                continue;
            }
            match self.runs.last_mut() {
                Some(last) if self.zeros < MERGE_GAP => {
                    self.values
                        .extend(std::iter::repeat_n(0, self.zeros as usize));
                    last.1 += self.zeros + 1;
                }
                _ => self.runs.push((self.zeros, 1)),
            }
            self.values.push(d);
            self.zeros = 0;
        }
    }
}

fn write_control(out: &mut Vec<u8>, c: &Control, base_end: &mut u64) {
    let start = c.base_start as u64;
    let seek = start.wrapping_sub(*base_end) as i64;
    write_varint(out, c.diff_len as u64);
    write_varint(out, c.extra_len as u64);
    write_varint(out, ((seek << 1) ^ (seek >> 63)) as u64);
    *base_end = start + c.diff_len as u64;
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A stream as stored: a zstd frame (`true`) when that is smaller.
fn store(data: &[u8], level: i32) -> Result<(bool, Vec<u8>), DeltaError> {
    if data.len() < RAW_MAX {
        return Ok((false, data.to_vec()));
    }
    let frame = compress(data, level)?;
    Ok(if frame.len() < data.len() {
        (true, frame)
    } else {
        (false, data.to_vec())
    })
}

/// One zstd frame of `data`, with a window that spans it (long-distance
/// matching finds repeats far apart).
fn compress(data: &[u8], level: i32) -> Result<Vec<u8>, DeltaError> {
    let wlog = window_log(0, (data.len() as u64).min(1 << 31))?;
    zstd_frame(None, data, level, wlog)
}

fn corrupt(why: impl Into<String>) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bsdiff-zstd body: {}", why.into()),
    )
}

/// A reader of one stored stream: raw, or a zstd decoder whose window is
/// capped at `wlog`.
fn stream(zstd: bool, part: &[u8], wlog: u32) -> io::Result<Box<dyn Read + '_>> {
    if !zstd {
        return Ok(Box::new(part));
    }
    let mut d = zstd::stream::read::Decoder::with_buffer(part)?;
    d.window_log_max(wlog)?;
    Ok(Box::new(d))
}

/// The difference bytes, read from the gaps, runs and values streams.
struct Differences<'a> {
    gaps: BufReader<Box<dyn Read + 'a>>,
    runs: BufReader<Box<dyn Read + 'a>>,
    values: Box<dyn Read + 'a>,
    zeros_left: u64,
    run_left: u64,
}

impl Differences<'_> {
    /// Adds the next `buf.len()` difference bytes to `buf`.
    fn add_to(&mut self, buf: &mut [u8], scratch: &mut [u8]) -> io::Result<()> {
        let mut i = 0;
        while i < buf.len() {
            if self.zeros_left == 0 && self.run_left == 0 {
                match read_varint(&mut self.gaps, true)? {
                    // No more runs: zeros to the end.
                    None => self.zeros_left = u64::MAX,
                    Some(gap) => {
                        self.zeros_left = gap;
                        self.run_left = read_varint(&mut self.runs, false)?
                            .filter(|&n| n > 0)
                            .ok_or_else(|| corrupt("missing or empty run"))?;
                    }
                }
            }
            let left = (buf.len() - i) as u64;
            if self.zeros_left > 0 {
                let n = self.zeros_left.min(left);
                self.zeros_left -= n;
                i += n as usize;
                continue;
            }
            // Fits: at most buf.len() - i.
            let n = self.run_left.min(left).min(scratch.len() as u64) as usize;
            read_exact(&mut self.values, &mut scratch[..n], "values")?;
            for (b, d) in buf[i..i + n].iter_mut().zip(&scratch[..n]) {
                *b = b.wrapping_add(*d);
            }
            self.run_left -= n as u64;
            i += n;
        }
        Ok(())
    }
}

/// Decodes a body into `out`, which the caller caps at the target size.
pub(crate) fn decode(
    base: &[u8],
    target_size: u64,
    body: &[u8],
    out: &mut dyn Write,
) -> io::Result<()> {
    // No honest stream is larger than twice the target (a run length
    // takes fewer bytes than the run and its gap); zstd's largest window
    // is 2 GiB.
    let span = target_size.saturating_mul(2).min(1 << 31);
    let wlog = window_log(0, span).map_err(|e| corrupt(e.to_string()))?;
    let mut rest = body;
    let mut heads = [(false, 0u64); STREAMS];
    for head in &mut heads {
        let v = read_varint(&mut rest, false)?.ok_or_else(|| corrupt("cut stream header"))?;
        *head = (v & 1 == 1, v >> 1);
    }
    let mut parts: Vec<Box<dyn Read + '_>> = Vec::with_capacity(STREAMS);
    for (zstd, len) in heads {
        if len > rest.len() as u64 {
            return Err(corrupt("stream lengths exceed the body"));
        }
        // At most rest.len(): fits in usize.
        let (part, tail) = rest.split_at(len as usize);
        parts.push(stream(zstd, part, wlog)?);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(corrupt("bytes after the last stream"));
    }
    let mut parts = parts.into_iter();
    let mut next = || parts.next().ok_or_else(|| corrupt("missing stream"));
    let mut ctrl = BufReader::new(next()?);
    let mut diff = Differences {
        gaps: BufReader::new(next()?),
        runs: BufReader::new(next()?),
        values: next()?,
        zeros_left: 0,
        run_left: 0,
    };
    let mut extra = next()?;

    let mut buf = vec![0u8; 128 * 1024];
    let mut scratch = vec![0u8; 128 * 1024];
    let mut written = 0u64;
    let mut base_pos = 0u64;
    while let Some(diff_len) = read_varint(&mut ctrl, true)? {
        let extra_len = read_varint(&mut ctrl, false)?.ok_or_else(|| corrupt("cut control"))?;
        let seek = read_varint(&mut ctrl, false)?.ok_or_else(|| corrupt("cut control"))?;
        let seek = ((seek >> 1) as i64) ^ -((seek & 1) as i64);
        let total = diff_len
            .checked_add(extra_len)
            .and_then(|n| n.checked_add(written))
            .filter(|&n| n <= target_size)
            .ok_or_else(|| corrupt("control writes past the target size"))?;
        if total == written {
            return Err(corrupt("control writes nothing"));
        }
        base_pos = base_pos
            .checked_add_signed(seek)
            .filter(|&p| {
                p.checked_add(diff_len)
                    .is_some_and(|e| e <= base.len() as u64)
            })
            .ok_or_else(|| corrupt("control reads outside the base"))?;
        // In range of the base: fits in usize.
        let mut from = base_pos as usize;
        let mut left = diff_len;
        while left > 0 {
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            buf[..n].copy_from_slice(&base[from..from + n]);
            diff.add_to(&mut buf[..n], &mut scratch)?;
            out.write_all(&buf[..n])?;
            from += n;
            left -= n as u64;
        }
        base_pos += diff_len;
        let mut left = extra_len;
        while left > 0 {
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            read_exact(&mut extra, &mut buf[..n], "literal")?;
            out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        written = total;
    }
    Ok(())
}

fn read_exact(r: &mut dyn Read, buf: &mut [u8], what: &str) -> io::Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            corrupt(format!("{what} stream ends early"))
        } else {
            e
        }
    })
}

/// Reads one LEB128 integer; `None` at a clean end of stream when
/// `eof_ok`.
fn read_varint(r: &mut dyn BufRead, eof_ok: bool) -> io::Result<Option<u64>> {
    let mut value = 0u64;
    for n in 0..10 {
        let byte = match r.fill_buf()?.first() {
            Some(&b) => b,
            None if n == 0 && eof_ok => return Ok(None),
            None => return Err(corrupt("stream ends inside a number")),
        };
        r.consume(1);
        let bits = u64::from(byte & 0x7f);
        if n == 9 && bits > 1 {
            return Err(corrupt("number too large"));
        }
        value |= bits << (7 * n);
        if byte & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(corrupt("number too long"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use proptest::prelude::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    const PARAMS: Params = Params {
        diff_level: 3,
        extra_level: 3,
        threads: 2,
        parallel_min: PARALLEL_MIN,
    };

    fn round_trip(base: &[u8], target: &[u8]) -> Vec<u8> {
        let body = encode(base, target, PARAMS).unwrap();
        let mut out = Vec::new();
        decode(base, target.len() as u64, &body, &mut out).unwrap();
        assert_eq!(out, target);
        body
    }

    #[test]
    fn varints_round_trip_and_reject_overlong() {
        for v in [0, 1, 127, 128, 300, u64::MAX >> 1, u64::MAX] {
            let mut b = Vec::new();
            write_varint(&mut b, v);
            assert_eq!(read_varint(&mut &b[..], false).unwrap(), Some(v));
        }
        assert_eq!(read_varint(&mut &[][..], true).unwrap(), None);
        assert!(read_varint(&mut &[][..], false).is_err());
        assert!(read_varint(&mut &[0x80][..], true).is_err());
        assert!(read_varint(&mut &[0xff; 10][..], true).is_err());
        assert!(read_varint(&mut &[0xff; 11][..], true).is_err());
    }

    #[test]
    fn round_trips_across_slices() {
        // Larger than PARALLEL_MIN: scanned in two slices.
        let base: Vec<u8> = (0..1_500_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut target = base.clone();
        target[700_000..700_100].fill(3);
        target.splice(1_000_000..1_000_000, vec![9u8; 5000]);
        let body = round_trip(&base, &target);
        assert!(body.len() < 10_000, "{}", body.len());
        round_trip(&[], &target[..1000]);
        round_trip(&base[..1000], &[]);
        round_trip(&[], &[]);
    }

    /// A body of raw streams: controls, sparse differences (all in one
    /// run after `gap` zeros), literals.
    fn body_with(ctrl: &[u8], gap: u64, diff: &[u8], extra: &[u8]) -> Vec<u8> {
        let (mut gaps, mut runs) = (Vec::new(), Vec::new());
        if !diff.is_empty() {
            write_varint(&mut gaps, gap);
            write_varint(&mut runs, diff.len() as u64);
        }
        let streams = [ctrl, &gaps[..], &runs[..], diff, extra];
        let mut body = Vec::new();
        for s in streams {
            write_varint(&mut body, (s.len() as u64) << 1);
        }
        for s in streams {
            body.extend_from_slice(s);
        }
        body
    }

    #[test]
    fn hostile_bodies_are_corrupt() {
        let base = b"0123456789".to_vec();
        let check = |body: Vec<u8>, target: u64, what: &str| {
            let err = decode(&base, target, &body, &mut Vec::new()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{what}: {err}");
        };
        check(body_with(&[0, 0, 0], 0, &[], &[]), 10, "writes nothing");
        check(
            body_with(&[5, 6, 0], 0, &[], &[0; 6]),
            10,
            "past the target",
        );
        check(body_with(&[5, 0, 12], 0, &[], &[]), 10, "past the base");
        check(body_with(&[5, 0, 1], 0, &[], &[]), 10, "before the base");
        let huge = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0,
        ];
        check(body_with(&huge, 0, &[], &[]), 10, "huge length");
        check(body_with(&[0, 5, 0], 0, &[], &[0; 4]), 10, "short literals");
        check(body_with(&[5, 0], 0, &[], &[]), 10, "cut control");
        // A run longer than the values stream.
        let mut body = body_with(&[5, 0, 0], 1, &[1, 1], &[]);
        let at = body.len() - 3;
        body[at] = 3;
        check(body, 10, "short values");
        // An empty run.
        let mut body = body_with(&[5, 0, 0], 1, &[1], &[]);
        let at = body.len() - 2;
        body[at] = 0;
        check(body, 10, "empty run");
        // Stream lengths that exceed the body, or leave bytes after it.
        let good = body_with(&[1, 0, 0], 0, &[], &[]);
        let mut long = good.clone();
        long[0] = 0x7e;
        check(long, 10, "stream past the body");
        let mut trailing = good.clone();
        trailing.push(0);
        check(trailing, 10, "trailing bytes");
        check(good[..3].to_vec(), 10, "cut stream headers");
        let mut huge_head = vec![0xff; 9];
        huge_head.push(1);
        check(huge_head, 10, "huge stream header");
        // A good one decodes: base[5..10] plus one on the last three bytes,
        // then a literal.
        let mut out = Vec::new();
        decode(
            &base,
            6,
            &body_with(&[5, 1, 10], 2, &[1; 3], b"x"),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, b"5689:x");
    }

    /// One edit of a base into a target.
    #[derive(Debug, Clone)]
    enum Edit {
        Insert,
        Delete,
        Overwrite,
        /// A block cut out and put back elsewhere.
        MoveBlock,
        /// Every little-endian word at a stride gets a constant added
        /// (addresses after code moved).
        ShiftWords,
        /// Every byte at a stride gets a constant added.
        ShiftBytes,
    }

    fn apply_edit(data: &mut Vec<u8>, edit: &Edit, rng: &mut StdRng) {
        let len = data.len();
        let at = rng.random_range(0..=len);
        let span = rng.random_range(1..=64.max(len / 8));
        match edit {
            Edit::Insert => {
                let ins: Vec<u8> = (0..span).map(|_| rng.random()).collect();
                data.splice(at..at, ins);
            }
            Edit::Delete => {
                data.drain(at..(at + span).min(len));
            }
            Edit::Overwrite => {
                for b in &mut data[at..(at + span).min(len)] {
                    *b = rng.random();
                }
            }
            Edit::MoveBlock => {
                let block: Vec<u8> = data.drain(at..(at + span).min(len)).collect();
                let to = rng.random_range(0..=data.len());
                data.splice(to..to, block);
            }
            Edit::ShiftWords => {
                let stride = rng.random_range(4..64usize);
                let add: u32 = rng.random_range(1..0x1000);
                for chunk in data.chunks_mut(stride).filter(|c| c.len() >= 4) {
                    let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    chunk[..4].copy_from_slice(&w.wrapping_add(add).to_le_bytes());
                }
            }
            Edit::ShiftBytes => {
                let stride = rng.random_range(1..32usize);
                let add: u8 = rng.random_range(1..=255);
                for b in data.iter_mut().step_by(stride) {
                    *b = b.wrapping_add(add);
                }
            }
        }
    }

    /// Random, repetitive or structured bytes.
    fn base_bytes(len: usize, kind: u8, rng: &mut StdRng) -> Vec<u8> {
        match kind % 3 {
            0 => (0..len).map(|_| rng.random()).collect(),
            1 => (0..len).map(|_| rng.random_range(0..3)).collect(),
            _ => (0..len as u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 & 0xf0)
                .collect(),
        }
    }

    fn edit_strategy() -> impl Strategy<Value = Edit> {
        prop_oneof![
            Just(Edit::Insert),
            Just(Edit::Delete),
            Just(Edit::Overwrite),
            Just(Edit::MoveBlock),
            Just(Edit::ShiftWords),
            Just(Edit::ShiftBytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any base and any edited target (empty and tiny included)
        /// round-trip, on one thread or cut in slices.
        #[test]
        fn round_trips_any_edits(
            len in prop_oneof![0usize..16, 0usize..40_000],
            kind in any::<u8>(),
            seed in any::<u64>(),
            edits in proptest::collection::vec(edit_strategy(), 0..6),
            sliced in any::<bool>(),
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let base = base_bytes(len, kind, &mut rng);
            let mut target = base.clone();
            for edit in &edits {
                apply_edit(&mut target, edit, &mut rng);
            }
            let params = Params {
                parallel_min: if sliced { 64 } else { PARALLEL_MIN },
                threads: if sliced { 3 } else { 1 },
                ..PARAMS
            };
            let body = encode(&base, &target, params).unwrap();
            let mut out = Vec::new();
            decode(&base, target.len() as u64, &body, &mut out).unwrap();
            prop_assert_eq!(out, target);
        }

        /// A body cut short or with a byte changed is an error or decodes
        /// to something (checked by the caller's hash), never a panic.
        #[test]
        fn damaged_bodies_never_panic(seed in any::<u64>(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
            let mut rng = StdRng::seed_from_u64(seed);
            let base = base_bytes(5000, 2, &mut rng);
            let mut target = base.clone();
            apply_edit(&mut target, &Edit::ShiftWords, &mut rng);
            apply_edit(&mut target, &Edit::Insert, &mut rng);
            let body = encode(&base, &target, PARAMS).unwrap();
            let at = cut.index(body.len());
            let _ = decode(&base, target.len() as u64, &body[..at], &mut Vec::new());
            let mut flipped = body.clone();
            flipped[at] ^= flip | 1;
            let mut out = Vec::new();
            if decode(&base, target.len() as u64, &flipped, &mut out).is_ok() {
                prop_assert!(out.len() <= target.len());
            }
        }
    }
}
