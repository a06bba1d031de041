//! Differential updates on the device: with the installed version given
//! (`--base`), a delta the session carries for it is applied instead of
//! receiving the whole object, and the result is delivered only once it is
//! the target the origin signed.

use std::io::Read;
use std::path::{Path, PathBuf};

use dms_flute::FdtDelta;
use dms_repair::manifest::{ManifestBody, ManifestDelta};
use dms_repair::{DownloadTarget, RepairClient};
use sha2::{Digest, Sha256};

use super::AgentError;

/// The installed version a delta may apply to.
#[derive(Debug, Clone)]
pub(super) struct InstalledBase {
    path: PathBuf,
    sha256: [u8; 32],
}

impl InstalledBase {
    /// Reads and hashes the installed file.
    pub(super) fn load(path: &Path) -> Result<Self, AgentError> {
        let io = |source| AgentError::Io {
            context: format!("reading the base {}", path.display()),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(InstalledBase {
            path: path.to_owned(),
            sha256: hasher.finalize().into(),
        })
    }

    /// Whether `delta` applies to this base.
    pub(super) fn fits(&self, delta: &FdtDelta) -> bool {
        delta.base_sha256 == self.sha256
    }

    /// Applies the received `delta_file` (described by `fdt` and, when its
    /// signed manifest was verified, by `signed`) to the base, writing the
    /// target atomically to `out`. Every hash must agree — FDT, signed
    /// manifest, the delta's header and the result — or nothing is written.
    pub(super) fn apply(
        &self,
        delta_file: &Path,
        fdt: &FdtDelta,
        signed: Option<&ManifestDelta>,
        out: &Path,
    ) -> Result<[u8; 32], String> {
        if let Some(signed) = signed
            && (signed.base_sha256 != fdt.base_sha256 || signed.target_sha256 != fdt.target_sha256)
        {
            return Err("the FDT's delta hashes differ from the signed manifest's".into());
        }
        self.apply_checked(delta_file, &fdt.target_sha256, out)?;
        Ok(fdt.target_sha256)
    }

    /// The unicast way, when broadcast and symbol repair did not deliver
    /// `target`: asks its download URI (`location?from=<base>`) for a delta
    /// from this base and applies it to `dest`. `Ok(None)` when the server
    /// has no delta from this base (or none smaller than the object); the
    /// caller then downloads the whole object. Returns the bytes fetched.
    pub(super) fn fetch_and_apply(
        &self,
        rt: &tokio::runtime::Runtime,
        client: &RepairClient,
        location: &str,
        target: &ManifestBody,
        dest: &Path,
    ) -> Result<Option<u64>, String> {
        let offer = rt
            .block_on(client.delta_offer(location, &self.sha256))
            .map_err(|e| format!("asking for a delta: {e}"))?;
        let Some(offer) = offer.filter(|o| o.size < target.size) else {
            return Ok(None);
        };
        // Hidden beside the result, and gone once used.
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let delta_file = dest.with_file_name(format!(".{name}.dms-delta"));
        let fetched = rt.block_on(client.download(
            &DownloadTarget {
                uri: offer.uri,
                size: offer.size,
                sha256: offer.sha256,
                blocks: None,
            },
            &delta_file,
        ));
        let applied = match fetched {
            Ok(stats) => self
                .apply_checked(&delta_file, &target.sha256, dest)
                .map(|()| stats.bytes_received),
            Err(e) => Err(format!("downloading the delta: {e}")),
        };
        let _ = std::fs::remove_file(&delta_file);
        applied.map(Some)
    }

    /// Applies `delta_file` to the base into `out` (atomically) if its
    /// header names this base and `target_sha256`; the result is checked
    /// against that SHA-256 before it appears.
    fn apply_checked(
        &self,
        delta_file: &Path,
        target_sha256: &[u8; 32],
        out: &Path,
    ) -> Result<(), String> {
        let header = dms_delta::read_header(delta_file).map_err(|e| e.to_string())?;
        if header.base_sha256 != self.sha256 || header.target_sha256 != *target_sha256 {
            return Err("the delta's header names another base or target".into());
        }
        // Checks the base again and the result against the header's target.
        dms_delta::apply(&self.path, delta_file, out)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// The file name a delta's target gets: the delta's name without its
/// `.delta` suffix.
pub(super) fn target_name(delta_name: &str) -> String {
    delta_name
        .strip_suffix(".delta")
        .filter(|n| !n.is_empty())
        .unwrap_or(delta_name)
        .to_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn delta_of(base: &[u8], target: &[u8]) -> Vec<u8> {
        dms_delta::make_bytes(base, target, &dms_delta::MakeOptions::default())
            .unwrap()
            .0
    }

    #[test]
    fn a_fitting_delta_gives_the_target_and_anything_else_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let base: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut target = base.clone();
        target[1000..1100].fill(7);
        let base_path = dir.path().join("fw.bin.old");
        std::fs::write(&base_path, &base).unwrap();
        let delta_path = dir.path().join("fw.bin.delta");
        std::fs::write(&delta_path, delta_of(&base, &target)).unwrap();
        let installed = InstalledBase::load(&base_path).unwrap();
        let fdt = FdtDelta {
            base_sha256: Sha256::digest(&base).into(),
            target_sha256: Sha256::digest(&target).into(),
            target_manifest: None,
        };
        assert!(installed.fits(&fdt));
        let out = dir.path().join("fw.bin");

        // The signed manifest disagreeing with the FDT: nothing written.
        let wrong = ManifestDelta {
            base_sha256: fdt.base_sha256,
            target_sha256: [9; 32],
            target_id: "t".into(),
        };
        assert!(
            installed
                .apply(&delta_path, &fdt, Some(&wrong), &out)
                .is_err()
        );
        assert!(!out.exists());
        // An FDT naming another target: nothing written.
        let other = FdtDelta {
            target_sha256: [9; 32],
            ..fdt.clone()
        };
        assert!(installed.apply(&delta_path, &other, None, &out).is_err());
        assert!(!out.exists());

        let signed = ManifestDelta {
            base_sha256: fdt.base_sha256,
            target_sha256: fdt.target_sha256,
            target_id: "t".into(),
        };
        let got = installed
            .apply(&delta_path, &fdt, Some(&signed), &out)
            .unwrap();
        assert_eq!(got, fdt.target_sha256);
        assert_eq!(std::fs::read(&out).unwrap(), target);
        assert_eq!(target_name("fw.bin.delta"), "fw.bin");
        assert_eq!(target_name(".delta"), ".delta");
    }
}
