//! Binary deltas between two versions of an object, for dms.
//!
//! A device that runs version N−1 downloads a delta instead of version N.
//! [`make`] encodes the new version twice — as a zstd frame with the old
//! version as reference prefix (`zstd --patch-from`: long-distance
//! matching, a window that spans both versions) and as a bsdiff-family
//! diff ([`Method::BsdiffZstd`]) — and keeps the smaller. [`apply`]
//! rebuilds the new version.
//!
//! The bsdiff-family diff is this crate's own: bsdiff's scan (a new
//! alignment only when it beats the current one by more than 8 bytes,
//! approximate extension around each switch, so that moved addresses in a
//! recompiled binary become sparse byte-wise differences) over a hash
//! index of the base instead of a suffix array, on one slice of the
//! target per thread; the differences stored sparsely (zero-run lengths,
//! run lengths, non-zero bytes) and every stream compressed with zstd.
//! On real releases (numpy, scipy wheels) it is within a few percent of
//! bsdiff 4.x's size, made 5–10 times faster, and applied at several
//! hundred MB/s (zstd and a sparse add instead of bzip2).
//!
//! Every delta starts with a self-describing [`Header`]: method, base size
//! and SHA-256, target size and SHA-256. So [`apply`]:
//! - refuses a base that is not the one the delta was made from
//!   ([`DeltaError::WrongBase`]) before decoding anything;
//! - stops as soon as decoding overruns the target size, and checks the
//!   result's size and SHA-256 ([`DeltaError::TargetMismatch`]);
//! - writes the result atomically (temporary file in the output's
//!   directory, fsync, rename): on any error nothing appears at the output
//!   path, and the base is never written.
//!
//! Both versions are held in memory while making a delta; applying holds
//! the base and the delta. Base plus target must stay under 2 GiB (zstd's
//! largest window).
//!
//! ```
//! let old: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
//! let mut new = old.clone();
//! new[1000..1100].fill(0xAA);
//! let (delta, info) = dms_delta::make_bytes(&old, &new, &dms_delta::MakeOptions::default())?;
//! assert!(info.delta_size < new.len() as u64 / 10);
//! assert_eq!(dms_delta::apply_bytes(&old, &delta)?, new);
//! # Ok::<(), dms_delta::DeltaError>(())
//! ```

#![deny(missing_docs)]

mod bsdz;
mod error;
mod files;
mod header;
mod matcher;
mod methods;
mod sink;

use std::io::Write;

use sha2::{Digest, Sha256};

pub use error::{DeltaError, HeaderError};
pub use files::{apply, make, read_header};
pub use header::{FORMAT_VERSION, HEADER_LEN, Header, MAGIC, Method};

use sink::{Refusal, Sink};

/// How [`make`] encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MakeOptions {
    /// zstd compression level for the patch-from encoding (1–22).
    pub zstd_level: i32,
    /// The cheap zstd level tried first, beside bsdiff. `zstd_level` runs
    /// only when bsdiff is not tried or this probe comes within
    /// `zstd_retry_percent` of bsdiff's size (so zstd at `zstd_level` may
    /// win); on executables bsdiff wins by far and the slow level, most
    /// of the time of a delta, is skipped. At or above `zstd_level`: no
    /// probe.
    pub zstd_probe_level: i32,
    /// See `zstd_probe_level`, in percent (level 19 makes deltas about
    /// 0.65–0.75 × those of level 3 on executables and images of them;
    /// 200 leaves margin).
    pub zstd_retry_percent: u32,
    /// Also try the bsdiff-family method ([`Method::BsdiffZstd`]; much
    /// smaller than zstd on executables, whose addresses move).
    pub bsdiff: bool,
    /// Skip the bsdiff-family method when the target is larger than this.
    pub bsdiff_max_size: u64,
    /// zstd level of the bsdiff-family difference stream (mostly zeros).
    pub bsdiff_diff_level: i32,
    /// zstd level of the bsdiff-family literal and control streams.
    pub bsdiff_extra_level: i32,
    /// Threads for the bsdiff-family method (0: as many as the machine
    /// has, at most 4).
    pub threads: usize,
}

impl Default for MakeOptions {
    fn default() -> Self {
        MakeOptions {
            zstd_level: 19,
            zstd_probe_level: 3,
            zstd_retry_percent: 200,
            bsdiff: true,
            bsdiff_max_size: 512 << 20,
            bsdiff_diff_level: 19,
            bsdiff_extra_level: 19,
            threads: 0,
        }
    }
}

/// One encoding tried by [`make`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The method.
    pub method: Method,
    /// Size of the whole delta (header included) with this method.
    pub size: u64,
}

/// What [`make`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaInfo {
    /// The header written (method kept, base and target identity).
    pub header: Header,
    /// Size of the delta written, header included.
    pub delta_size: u64,
    /// SHA-256 of the delta written.
    pub delta_sha256: [u8; 32],
    /// Every encoding tried, in the order tried.
    pub candidates: Vec<Candidate>,
}

impl DeltaInfo {
    /// Delta size over target size (0 for an empty target).
    pub fn ratio(&self) -> f64 {
        if self.header.target_size == 0 {
            0.0
        } else {
            self.delta_size as f64 / self.header.target_size as f64
        }
    }
}

/// Makes a delta from `base` to `target` in memory: the bsdiff-family
/// method (on up to [`MakeOptions::threads`] threads) beside zstd at the
/// probe level, zstd at the full level only when
/// the probe says it may win (see [`MakeOptions::zstd_probe_level`]); the
/// smallest kept.
pub fn make_bytes(
    base: &[u8],
    target: &[u8],
    opts: &MakeOptions,
) -> Result<(Vec<u8>, DeltaInfo), DeltaError> {
    let try_bsdiff = opts.bsdiff && target.len() as u64 <= opts.bsdiff_max_size;
    // Without bsdiff there is nothing to compare a probe with.
    let first_level = if try_bsdiff {
        opts.zstd_probe_level.min(opts.zstd_level)
    } else {
        opts.zstd_level
    };
    // Hashing, the bsdiff-family method and the zstd probe side by side.
    let (digests, zstd, bsdiff) = std::thread::scope(|scope| {
        let digests = scope.spawn(|| -> ([u8; 32], [u8; 32]) {
            (Sha256::digest(base).into(), Sha256::digest(target).into())
        });
        let bsdiff =
            try_bsdiff.then(|| scope.spawn(|| bsdz::encode(base, target, bsdz_params(opts))));
        let zstd = methods::zstd_encode(base, target, first_level);
        let bsdiff = bsdiff.map(|handle| {
            handle.join().unwrap_or_else(|_| {
                Err(DeltaError::Encode(std::io::Error::other("bsdiff panicked")))
            })
        });
        let digests = digests
            .join()
            .map_err(|_| DeltaError::Encode(std::io::Error::other("hashing panicked")));
        (digests, zstd, bsdiff)
    });
    let (base_sha256, target_sha256) = digests?;
    let header = Header {
        // Set below to the method kept.
        method: Method::ZstdRef,
        base_size: base.len() as u64,
        base_sha256,
        target_size: target.len() as u64,
        target_sha256,
    };
    let mut bodies = vec![(Method::ZstdRef, zstd?)];
    if let Some(bsdiff) = bsdiff {
        let bsdiff = bsdiff?;
        let probe = bodies[0].1.len() as u128 * 100;
        let bound = bsdiff.len() as u128 * u128::from(opts.zstd_retry_percent);
        if first_level != opts.zstd_level && probe <= bound {
            bodies.push((
                Method::ZstdRef,
                methods::zstd_encode(base, target, opts.zstd_level)?,
            ));
        }
        bodies.push((Method::BsdiffZstd, bsdiff));
    }
    let candidates = bodies
        .iter()
        .map(|(method, body)| Candidate {
            method: *method,
            size: (HEADER_LEN + body.len()) as u64,
        })
        .collect();
    // The smallest; ties go to zstd (faster to apply).
    let (method, body) = bodies
        .into_iter()
        .reduce(|best, next| {
            if next.1.len() < best.1.len() {
                next
            } else {
                best
            }
        })
        .ok_or_else(|| DeltaError::Encode(std::io::Error::other("no encoding ran")))?;
    let header = Header { method, ..header };
    let mut delta = Vec::with_capacity(HEADER_LEN + body.len());
    delta.extend_from_slice(&header.encode());
    delta.extend_from_slice(&body);
    let info = DeltaInfo {
        header,
        delta_size: delta.len() as u64,
        delta_sha256: Sha256::digest(&delta).into(),
        candidates,
    };
    Ok((delta, info))
}

fn bsdz_params(opts: &MakeOptions) -> bsdz::Params {
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
        n => n,
    };
    bsdz::Params {
        diff_level: opts.bsdiff_diff_level,
        extra_level: opts.bsdiff_extra_level,
        threads,
        parallel_min: bsdz::PARALLEL_MIN,
    }
}

/// Applies `delta` to `base` in memory and returns the verified target.
pub fn apply_bytes(base: &[u8], delta: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let header = check_base(base, delta)?;
    let mut out = Vec::new();
    apply_checked(base, delta, &header, &mut out)?;
    Ok(out)
}

/// Applies `delta` to `base`, streaming the target into `out`, and returns
/// the header. On error, `out` may hold a prefix of the target (or
/// garbage): write into something you can throw away, as [`apply`] does.
pub fn apply_to_writer(
    base: &[u8],
    delta: &[u8],
    out: &mut dyn Write,
) -> Result<Header, DeltaError> {
    let header = check_base(base, delta)?;
    apply_checked(base, delta, &header, out)?;
    Ok(header)
}

/// Parses the header and checks that `base` is the delta's base.
fn check_base(base: &[u8], delta: &[u8]) -> Result<Header, DeltaError> {
    let header = Header::parse(delta)?;
    let size = base.len() as u64;
    let digest: [u8; 32] = if size == header.base_size {
        Sha256::digest(base).into()
    } else {
        [0; 32]
    };
    if size != header.base_size || digest != header.base_sha256 {
        return Err(DeltaError::WrongBase {
            expected: hex::encode(header.base_sha256),
            expected_size: header.base_size,
            actual: hex::encode(Sha256::digest(base)),
            actual_size: size,
        });
    }
    Ok(header)
}

/// Decodes the body of a delta whose base was checked, verifying size and
/// hash of what it writes.
fn apply_checked(
    base: &[u8],
    delta: &[u8],
    header: &Header,
    out: &mut dyn Write,
) -> Result<(), DeltaError> {
    let body = &delta[HEADER_LEN..];
    // One byte of slack so that an overrun is seen as such.
    let mut sink = Sink::new(out, header.target_size.saturating_add(1));
    let decoded = match header.method {
        Method::ZstdRef => methods::zstd_decode(base, header.target_size, body, &mut sink),
        Method::BsdiffZstd => bsdz::decode(base, header.target_size, body, &mut sink),
    };
    let decoded = decoded.and_then(|()| sink.flush());
    match (decoded, sink.refused) {
        (Err(e), Some(Refusal::Inner)) => {
            return Err(DeltaError::Io {
                context: "writing",
                path: "output".into(),
                source: e,
            });
        }
        (Err(e), None) => return Err(DeltaError::Corrupt(e.to_string())),
        _ => {}
    }
    // After an overrun the count stops short; say "one byte too many".
    let overrun = sink.refused == Some(Refusal::Overrun);
    let written = if overrun {
        header.target_size.saturating_add(1)
    } else {
        sink.written()
    };
    let (digest, _) = sink.finish();
    if overrun || written != header.target_size || digest != header.target_sha256 {
        return Err(DeltaError::TargetMismatch {
            expected: hex::encode(header.target_sha256),
            expected_size: header.target_size,
            actual: hex::encode(digest),
            actual_size: written,
        });
    }
    Ok(())
}
