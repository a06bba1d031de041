//! The file forms of make and apply: read the inputs, write the output
//! atomically (temporary file in the output's directory, fsync, rename).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use crate::error::DeltaError;
use crate::header::{HEADER_LEN, Header};
use crate::{DeltaInfo, MakeOptions};

/// Makes a delta from the file `old` to the file `new` and writes it
/// atomically to `out`. See [`make_bytes`](crate::make_bytes).
pub fn make(
    old: &Path,
    new: &Path,
    out: &Path,
    opts: &MakeOptions,
) -> Result<DeltaInfo, DeltaError> {
    let base = read_file(old)?;
    let target = read_file(new)?;
    let (delta, info) = crate::make_bytes(&base, &target, opts)?;
    write_atomic(out, |w| {
        w.write_all(&delta).map_err(|e| io_err("writing", out, e))
    })?;
    Ok(info)
}

/// Applies the delta file `delta` to the file `base` and writes the
/// verified target atomically to `out`; returns the delta's header.
///
/// Errors: [`DeltaError::Header`] for a malformed or truncated header,
/// [`DeltaError::WrongBase`] when `base` is not the delta's base,
/// [`DeltaError::Corrupt`] / [`DeltaError::TargetMismatch`] for a corrupt
/// or truncated body, [`DeltaError::OutputIsBase`] when `out` is `base`.
/// On every error `out` is left as it was and `base` is not written.
pub fn apply(base: &Path, delta: &Path, out: &Path) -> Result<Header, DeltaError> {
    if same_file(base, out) {
        return Err(DeltaError::OutputIsBase(out.to_path_buf()));
    }
    let delta_bytes = read_file(delta)?;
    // Header first: a non-delta is refused before the base is read.
    Header::parse(&delta_bytes)?;
    let base_bytes = read_file(base)?;
    let mut header = None;
    write_atomic(out, |w| {
        header = Some(crate::apply_to_writer(&base_bytes, &delta_bytes, w)?);
        Ok(())
    })?;
    header.ok_or_else(|| DeltaError::Corrupt("no header".into()))
}

/// Reads and parses the header of the delta file at `path`.
pub fn read_header(path: &Path) -> Result<Header, DeltaError> {
    let file = File::open(path).map_err(|e| io_err("opening", path, e))?;
    let mut buf = Vec::with_capacity(HEADER_LEN);
    file.take(HEADER_LEN as u64)
        .read_to_end(&mut buf)
        .map_err(|e| io_err("reading", path, e))?;
    Ok(Header::parse(&buf)?)
}

fn read_file(path: &Path) -> Result<Vec<u8>, DeltaError> {
    std::fs::read(path).map_err(|e| io_err("reading", path, e))
}

fn io_err(context: &'static str, path: &Path, source: std::io::Error) -> DeltaError {
    DeltaError::Io {
        context,
        path: path.to_path_buf(),
        source,
    }
}

/// True when both paths name the same existing file (also through links).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Runs `fill` on a buffered temporary file beside `out`, then flushes,
/// fsyncs and renames it to `out` (and fsyncs the directory). On any
/// error the temporary file is removed and `out` is untouched.
fn write_atomic(
    out: &Path,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), DeltaError>,
) -> Result<(), DeltaError> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".dms-delta-")
        .tempfile_in(dir)
        .map_err(|e| io_err("creating a temporary file in", dir, e))?;
    let mut writer = BufWriter::with_capacity(256 * 1024, tmp);
    fill(&mut writer)?;
    let tmp = writer
        .into_inner()
        .map_err(|e| io_err("writing", out, e.into_error()))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| io_err("syncing", out, e))?;
    tmp.persist(out)
        .map_err(|e| io_err("renaming into", out, e.error))?;
    // Make the rename durable; a directory that cannot be opened or synced
    // (some filesystems) does not undo a complete, verified output.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
