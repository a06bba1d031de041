//! The two body encodings: zstd with the base as reference prefix, and
//! bsdiff 4.x (qbsdiff). Both encode whole buffers in memory and decode
//! into any writer; decoding never panics on a corrupt body.

use std::io::{self, Read, Write};

use crate::error::DeltaError;

/// The largest reference window zstd allows on 64-bit targets (2 GiB).
const MAX_WINDOW_LOG: u32 = 31;
/// The smallest window zstd allows.
const MIN_WINDOW_LOG: u32 = 10;

/// The window (log2) that covers the base and the whole target, so that
/// every byte of the base stays reachable while the target is encoded.
pub(crate) fn window_log(base_size: u64, target_size: u64) -> Result<u32, DeltaError> {
    let span = base_size.saturating_add(target_size).max(1);
    // ceil(log2(span)) without floating point.
    let log = u64::BITS - (span - 1).leading_zeros();
    if log > MAX_WINDOW_LOG {
        return Err(DeltaError::TooLarge(span));
    }
    Ok(log.max(MIN_WINDOW_LOG))
}

/// Encodes `target` as a zstd frame referencing `base` (patch-from).
pub(crate) fn zstd_encode(base: &[u8], target: &[u8], level: i32) -> Result<Vec<u8>, DeltaError> {
    let wlog = window_log(base.len() as u64, target.len() as u64)?;
    let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), level, base)
        .map_err(DeltaError::Encode)?;
    encoder.window_log(wlog).map_err(DeltaError::Encode)?;
    encoder
        .long_distance_matching(true)
        .map_err(DeltaError::Encode)?;
    encoder
        .include_checksum(false)
        .map_err(DeltaError::Encode)?;
    encoder
        .set_pledged_src_size(Some(target.len() as u64))
        .map_err(DeltaError::Encode)?;
    encoder.write_all(target).map_err(DeltaError::Encode)?;
    encoder.finish().map_err(DeltaError::Encode)
}

/// Decodes a zstd patch-from body into `out`. The decoder's window is
/// capped at what the header's sizes need, so a hostile frame cannot make
/// it reserve more memory than an honest one.
pub(crate) fn zstd_decode(
    base: &[u8],
    target_size: u64,
    body: &[u8],
    out: &mut dyn Write,
) -> io::Result<()> {
    let wlog = window_log(base.len() as u64, target_size)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(body, base)?;
    decoder.window_log_max(wlog)?;
    copy(&mut decoder, out)
}

/// Encodes `target` as a bsdiff 4.x patch against `base`.
pub(crate) fn bsdiff_encode(base: &[u8], target: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let mut patch = Vec::new();
    qbsdiff::Bsdiff::new(base, target)
        // bzip2 level 1 (100 kB blocks): as small or smaller than level 9
        // on the mostly-zero diff streams of releases, and faster.
        .compression_level(1)
        .compare(&mut patch)
        .map_err(DeltaError::Encode)?;
    Ok(patch)
}

/// Decodes a bsdiff 4.x body into `out`.
pub(crate) fn bsdiff_decode(base: &[u8], body: &[u8], out: &mut dyn Write) -> io::Result<()> {
    check_bsdiff_lengths(body)?;
    qbsdiff::Bspatch::new(body)?.apply(base, out).map(drop)
}

/// Checks the two stream lengths of a bsdiff 4.x header before qbsdiff
/// sees them: qbsdiff adds them unchecked, so lengths near `u64::MAX`
/// overflow (a panic in debug builds, an out-of-bounds split in release).
fn check_bsdiff_lengths(body: &[u8]) -> io::Result<()> {
    let corrupt =
        |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bsdiff body: {why}"));
    if body.len() < 32 || &body[..8] != b"BSDIFF40" {
        return Err(corrupt("no BSDIFF40 header"));
    }
    let length = |at: usize| -> io::Result<u64> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&body[at..at + 8]);
        // bsdiff's sign-magnitude integers: the top bit is the sign.
        let value = u64::from_le_bytes(raw);
        if value >> 63 != 0 {
            return Err(corrupt("negative stream length"));
        }
        Ok(value)
    };
    let streams = length(8)?
        .checked_add(length(16)?)
        .and_then(|n| n.checked_add(32));
    match streams {
        Some(n) if n <= body.len() as u64 => Ok(()),
        _ => Err(corrupt("stream lengths exceed the body")),
    }
}

fn copy(reader: &mut dyn Read, out: &mut dyn Write) -> io::Result<()> {
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn bsdiff_lengths_that_overflow_are_corrupt() {
        // Found by the apply fuzz target: these lengths wrapped inside qbsdiff.
        let mut body = b"BSDIFF40".to_vec();
        body.extend_from_slice(&[0x01, 0x01, 0x59, 0, 0, 0, 0, 0xa8]);
        body.extend_from_slice(&[0xa8, 0xa8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        body.extend_from_slice(&[0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd, 0]);
        let err = bsdiff_decode(b"", &body, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // Two positive lengths whose sum passes u64::MAX are refused too.
        body[8..24].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f].repeat(2));
        body[8] = 0xff;
        let mut big = body.clone();
        big[15] = 0x7f;
        assert!(bsdiff_decode(b"", &big, &mut Vec::new()).is_err());
        let mut short = b"BSDIFF40".to_vec();
        short.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        short.extend_from_slice(&[0; 16]);
        assert!(bsdiff_decode(b"base", &short, &mut Vec::new()).is_err());
    }

    #[test]
    fn window_covers_base_and_target() {
        assert_eq!(window_log(0, 0).unwrap(), MIN_WINDOW_LOG);
        assert_eq!(window_log(1 << 20, 1 << 20).unwrap(), 21);
        assert_eq!(window_log(1 << 20, (1 << 20) + 1).unwrap(), 22);
        assert!(matches!(
            window_log(1 << 31, 1),
            Err(DeltaError::TooLarge(_))
        ));
    }
}
