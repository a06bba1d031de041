//! The zstd body encoding, with the base as reference prefix (the
//! bsdiff-family one is in `bsdz`). It encodes whole buffers in memory and
//! decodes into any writer; decoding never panics on a corrupt body.

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
    zstd_frame(Some(base), target, level, wlog)
}

/// One zstd frame of `data` (referencing `base` when given) with a window
/// of `2^wlog` bytes, long-distance matching (repeats far apart), no
/// checksum (the delta's header pins the target's SHA-256).
pub(crate) fn zstd_frame(
    base: Option<&[u8]>,
    data: &[u8],
    level: i32,
    wlog: u32,
) -> Result<Vec<u8>, DeltaError> {
    let mut encoder = match base {
        Some(base) => zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), level, base),
        None => zstd::stream::write::Encoder::new(Vec::new(), level),
    }
    .map_err(DeltaError::Encode)?;
    encoder.window_log(wlog).map_err(DeltaError::Encode)?;
    encoder
        .long_distance_matching(true)
        .map_err(DeltaError::Encode)?;
    encoder
        .include_checksum(false)
        .map_err(DeltaError::Encode)?;
    encoder
        .set_pledged_src_size(Some(data.len() as u64))
        .map_err(DeltaError::Encode)?;
    encoder.write_all(data).map_err(DeltaError::Encode)?;
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
