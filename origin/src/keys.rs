//! The origin's signing key in the data directory.
//!
//! - `DATA/origin.key`: the Ed25519 private key as PKCS#8 PEM ("PRIVATE
//!   KEY", RFC 8410), mode 0600;
//! - `DATA/origin.pub`: its public key as PEM ("PUBLIC KEY",
//!   SubjectPublicKeyInfo), mode 0644 — what UEs are provisioned with to
//!   verify manifests (`dms_repair::manifest::public_key_from_pem`).

use std::path::{Path, PathBuf};

use dms_repair::manifest::{
    generate_key, private_key_from_pem, private_key_to_pem, public_key_to_pem,
};
use ed25519_dalek::SigningKey;

use crate::fsutil::atomic_write;

/// An error reading or writing the key files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The key does not parse or encode.
    #[error("{0}")]
    Format(#[from] dms_repair::manifest::ManifestError),
    /// A key is already there (and overwriting was not asked for).
    #[error("{0} already exists")]
    Exists(PathBuf),
}

/// The private key file in `data`.
pub fn private_key_path(data: &Path) -> PathBuf {
    data.join("origin.key")
}

/// The public key file in `data`.
pub fn public_key_path(data: &Path) -> PathBuf {
    data.join("origin.pub")
}

/// Generates a key into `data` (both files). Refuses to replace an existing
/// private key unless `force`.
pub fn generate(data: &Path, force: bool) -> Result<SigningKey, KeyError> {
    let private = private_key_path(data);
    if private.exists() && !force {
        return Err(KeyError::Exists(private));
    }
    let key = generate_key();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    atomic_write(&private, private_key_to_pem(&key)?.as_bytes(), 0o600).map_err(io(&private))?;
    let public = public_key_path(data);
    atomic_write(
        &public,
        public_key_to_pem(&key.verifying_key())?.as_bytes(),
        0o644,
    )
    .map_err(io(&public))?;
    Ok(key)
}

/// Loads a key file written by [`generate`] (`dms keygen`): the key
/// every instance on a shared catalog signs with (`--signing-key FILE`).
pub fn load_file(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(private_key_from_pem(&pem)?)
}

/// Loads the key from `data`, generating it at first start.
pub fn load_or_generate(data: &Path) -> Result<SigningKey, KeyError> {
    let private = private_key_path(data);
    match std::fs::read_to_string(&private) {
        Ok(pem) => {
            let key = private_key_from_pem(&pem)?;
            let public = public_key_path(data);
            if !public.exists() {
                atomic_write(
                    &public,
                    public_key_to_pem(&key.verifying_key())?.as_bytes(),
                    0o644,
                )
                .map_err(|source| KeyError::Io {
                    path: public,
                    source,
                })?;
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => generate(data, false),
        Err(source) => Err(KeyError::Io {
            path: private,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_is_generated_once_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_generate(dir.path()).unwrap();
        let mode = std::fs::metadata(private_key_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_generate(dir.path()).unwrap();
        assert_eq!(again.to_bytes(), key.to_bytes());
        let public = std::fs::read_to_string(public_key_path(dir.path())).unwrap();
        let public = dms_repair::manifest::public_key_from_pem(&public).unwrap();
        assert_eq!(public, key.verifying_key());
        assert!(matches!(
            generate(dir.path(), false),
            Err(KeyError::Exists(_))
        ));
    }
}
