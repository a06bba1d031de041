//! The signed object manifest: what the origin vouches for, and what a UE
//! checks every decoded block and the whole object against.
//!
//! # Served form
//!
//! The origin serves a manifest (`manifest_uri`) as JSON:
//!
//! ```json
//! {"v":1,"id":"…","name":"fw.bin","version":"1.2.0","size":4096,
//!  "sha256":"<64 hex>","fec":{"encoding_id":6,"oti":"<hex of the FEC OTI>"},
//!  "block_sha256":["<64 hex>", …],"key_id":"<16 hex>","signature":"<128 hex>"}
//! ```
//!
//! # What is signed (canonical encoding, version 1)
//!
//! The signature is Ed25519 over a fixed-order binary encoding of the
//! fields, never over the JSON text (so JSON key order or whitespace cannot
//! change what is verified). All integers are big-endian:
//!
//! ```text
//! "DMS-MANIFEST"   12 bytes, ASCII magic
//! v                u8   = 1
//! id               u16 length + UTF-8 bytes
//! name             u16 length + UTF-8 bytes
//! version          u16 length + UTF-8 bytes
//! size             u64
//! sha256           32 bytes
//! encoding_id      u8   (FEC Encoding ID: 6 RaptorQ, 0 no-code)
//! oti              u8 length + the FEC OTI bytes (RFC 6330 §3.3.2/3.3.3
//!                  common and scheme-specific parts, as in EXT_FTI)
//! block count      u32
//! block hashes     32 bytes each, SHA-256 of each source block in SBN order
//! ```
//!
//! # Delta manifests (canonical encoding, version 2)
//!
//! A delta between two versions is an object of its own with its own
//! manifest. Its JSON adds
//! `"delta":{"base_sha256":"<64 hex>","target_sha256":"<64 hex>","target_id":"…"}`
//! and its `v` is 2; the canonical encoding is version 1's with `v` = 2 and
//! this appended:
//!
//! ```text
//! base_sha256      32 bytes, SHA-256 of the version the delta applies to
//! target_sha256    32 bytes, SHA-256 of the version it produces
//! target_id        u16 length + UTF-8 bytes, the target object's id
//! ```
//!
//! A manifest without `delta` is written as version 1, byte for byte as
//! before, so verifiers that know only version 1 keep verifying every full
//! object (and refuse a delta's manifest as an unknown version, which is
//! what they should do with bytes they cannot apply).
//!
//! A verifier re-encodes the parsed fields and checks the signature with
//! the origin's public key (`DATA/origin.pub`: an Ed25519 public key as a
//! PEM "PUBLIC KEY" SubjectPublicKeyInfo, RFC 8410; see [`public_key_from_pem`]).
//! An unknown `v` is refused, and so is a `v` that disagrees with the
//! presence of `delta`.

use dms_fec::{FecScheme, Oti};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The canonical encoding's version that this code writes and reads.
pub const MANIFEST_VERSION: u8 = 1;

/// The canonical encoding's version of a delta's manifest.
pub const MANIFEST_VERSION_DELTA: u8 = 2;

const MAGIC: &[u8; 12] = b"DMS-MANIFEST";

/// An error while signing, parsing or verifying a manifest or a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The JSON could not be parsed.
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// The manifest's `v` is not one this code knows.
    #[error("unsupported manifest version {0}")]
    UnsupportedVersion(u8),
    /// A field is too long for the canonical encoding.
    #[error("field {0} too long")]
    FieldTooLong(&'static str),
    /// The signature does not verify with the given key.
    #[error("bad signature")]
    BadSignature,
    /// A key could not be read or written.
    #[error("key: {0}")]
    Key(String),
}

/// The FEC layout as written in a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFec {
    /// FEC Encoding ID (6 RaptorQ, 0 no-code).
    pub encoding_id: u8,
    /// Hex of the encoded FEC OTI.
    pub oti: String,
}

/// What a delta's manifest says about the delta (signed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestDelta {
    /// SHA-256 of the version the delta applies to.
    pub base_sha256: [u8; 32],
    /// SHA-256 of the version the delta produces.
    pub target_sha256: [u8; 32],
    /// Id of the target object (whose own manifest verifies the result).
    pub target_id: String,
}

/// The `delta` member of a delta's served manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDeltaJson {
    /// Hex SHA-256 of the base.
    pub base_sha256: String,
    /// Hex SHA-256 of the target.
    pub target_sha256: String,
    /// Id of the target object.
    pub target_id: String,
}

/// The body of a manifest: everything that is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestBody {
    /// The object's id.
    pub id: String,
    /// The object's name.
    pub name: String,
    /// The object's version.
    pub version: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the whole object.
    pub sha256: [u8; 32],
    /// The FEC layout the object is broadcast with.
    pub oti: Oti,
    /// SHA-256 of each source block, in SBN order.
    pub block_sha256: Vec<[u8; 32]>,
    /// Set when the object is a delta between two versions.
    pub delta: Option<ManifestDelta>,
}

/// A signed manifest, as served (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedManifest {
    /// Canonical encoding version ([`MANIFEST_VERSION`]).
    pub v: u8,
    /// The object's id.
    pub id: String,
    /// The object's name.
    pub name: String,
    /// The object's version.
    pub version: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the whole object.
    pub sha256: String,
    /// The FEC layout.
    pub fec: ManifestFec,
    /// Hex SHA-256 of each source block.
    pub block_sha256: Vec<String>,
    /// Base and target of a delta (absent for a full object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<ManifestDeltaJson>,
    /// [`key_id`] of the signing key.
    pub key_id: String,
    /// Hex Ed25519 signature over the canonical encoding.
    pub signature: String,
}

fn put_str(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), ManifestError> {
    let len = u16::try_from(s.len()).map_err(|_| ManifestError::FieldTooLong(field))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

impl ManifestBody {
    /// The canonical, versioned encoding that is signed (see the module docs).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, ManifestError> {
        let mut out = Vec::with_capacity(128 + 32 * self.block_sha256.len());
        out.extend_from_slice(MAGIC);
        out.push(self.version());
        put_str(&mut out, "id", &self.id)?;
        put_str(&mut out, "name", &self.name)?;
        put_str(&mut out, "version", &self.version)?;
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.sha256);
        out.push(self.oti.scheme().encoding_id());
        let oti = self.oti.encode();
        let oti_len = u8::try_from(oti.len()).map_err(|_| ManifestError::FieldTooLong("oti"))?;
        out.push(oti_len);
        out.extend_from_slice(&oti);
        let count = u32::try_from(self.block_sha256.len())
            .map_err(|_| ManifestError::FieldTooLong("block_sha256"))?;
        out.extend_from_slice(&count.to_be_bytes());
        for block in &self.block_sha256 {
            out.extend_from_slice(block);
        }
        if let Some(delta) = &self.delta {
            out.extend_from_slice(&delta.base_sha256);
            out.extend_from_slice(&delta.target_sha256);
            put_str(&mut out, "target_id", &delta.target_id)?;
        }
        Ok(out)
    }

    /// The canonical encoding's version of this body: 2 for a delta, else 1.
    pub fn version(&self) -> u8 {
        if self.delta.is_some() {
            MANIFEST_VERSION_DELTA
        } else {
            MANIFEST_VERSION
        }
    }

    /// Signs the body with `key`.
    pub fn sign(&self, key: &SigningKey) -> Result<SignedManifest, ManifestError> {
        let signature = key.sign(&self.canonical_bytes()?);
        Ok(SignedManifest {
            v: self.version(),
            id: self.id.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            size: self.size,
            sha256: hex::encode(self.sha256),
            fec: ManifestFec {
                encoding_id: self.oti.scheme().encoding_id(),
                oti: hex::encode(&*self.oti.encode()),
            },
            block_sha256: self.block_sha256.iter().map(hex::encode).collect(),
            delta: self.delta.as_ref().map(|d| ManifestDeltaJson {
                base_sha256: hex::encode(d.base_sha256),
                target_sha256: hex::encode(d.target_sha256),
                target_id: d.target_id.clone(),
            }),
            key_id: key_id(&key.verifying_key()),
            signature: hex::encode(signature.to_bytes()),
        })
    }
}

fn hash_from_hex(field: &str, s: &str) -> Result<[u8; 32], ManifestError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|e| ManifestError::Malformed(format!("{field}: {e}")))?;
    Ok(out)
}

impl SignedManifest {
    /// Parses the served JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))
    }

    /// The served JSON form.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings, integers and vectors cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The signed fields, parsed (without checking the signature).
    pub fn body(&self) -> Result<ManifestBody, ManifestError> {
        let delta = match (self.v, &self.delta) {
            (MANIFEST_VERSION, None) => None,
            (MANIFEST_VERSION_DELTA, Some(d)) => Some(ManifestDelta {
                base_sha256: hash_from_hex("delta.base_sha256", &d.base_sha256)?,
                target_sha256: hash_from_hex("delta.target_sha256", &d.target_sha256)?,
                target_id: d.target_id.clone(),
            }),
            (MANIFEST_VERSION, Some(_)) => {
                return Err(ManifestError::Malformed(
                    "version 1 manifest with a delta member".into(),
                ));
            }
            (MANIFEST_VERSION_DELTA, None) => {
                return Err(ManifestError::Malformed(
                    "version 2 manifest without its delta member".into(),
                ));
            }
            (v, _) => return Err(ManifestError::UnsupportedVersion(v)),
        };
        let scheme = FecScheme::from_encoding_id(self.fec.encoding_id)
            .map_err(|e| ManifestError::Malformed(format!("fec: {e}")))?;
        let oti_bytes = hex::decode(&self.fec.oti)
            .map_err(|e| ManifestError::Malformed(format!("oti: {e}")))?;
        let oti = Oti::decode(scheme, &oti_bytes)
            .map_err(|e| ManifestError::Malformed(format!("oti: {e}")))?;
        let block_sha256 = self
            .block_sha256
            .iter()
            .map(|h| hash_from_hex("block_sha256", h))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ManifestBody {
            id: self.id.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            size: self.size,
            sha256: hash_from_hex("sha256", &self.sha256)?,
            oti,
            block_sha256,
            delta,
        })
    }

    /// Checks the signature with `key` and returns the verified body.
    pub fn verify(&self, key: &VerifyingKey) -> Result<ManifestBody, ManifestError> {
        let body = self.body()?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut sig).map_err(|_| ManifestError::BadSignature)?;
        key.verify(&body.canonical_bytes()?, &Signature::from_bytes(&sig))
            .map_err(|_| ManifestError::BadSignature)?;
        Ok(body)
    }
}

/// A short id of a public key: hex of the first 8 bytes of the SHA-256 of
/// its 32 raw bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// A new signing key from a fresh random 32-byte seed.
pub fn generate_key() -> SigningKey {
    let seed: [u8; 32] = rand::random();
    SigningKey::from_bytes(&seed)
}

/// The private key as PKCS#8 PEM ("PRIVATE KEY", RFC 8410).
pub fn private_key_to_pem(key: &SigningKey) -> Result<String, ManifestError> {
    key.to_pkcs8_pem(Default::default())
        .map(|pem| pem.to_string())
        .map_err(|e| ManifestError::Key(e.to_string()))
}

/// Reads a PKCS#8 PEM private key.
pub fn private_key_from_pem(pem: &str) -> Result<SigningKey, ManifestError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| ManifestError::Key(e.to_string()))
}

/// The public key as PEM ("PUBLIC KEY", SubjectPublicKeyInfo, RFC 8410).
pub fn public_key_to_pem(key: &VerifyingKey) -> Result<String, ManifestError> {
    key.to_public_key_pem(Default::default())
        .map_err(|e| ManifestError::Key(e.to_string()))
}

/// Reads a PEM public key (the format of `DATA/origin.pub`).
pub fn public_key_from_pem(pem: &str) -> Result<VerifyingKey, ManifestError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| ManifestError::Key(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use dms_fec::BlockSize;

    fn body() -> ManifestBody {
        ManifestBody {
            id: "00ff".into(),
            name: "fw.bin".into(),
            version: "1.2.3".into(),
            size: 3_000_000,
            sha256: [7; 32],
            oti: Oti::for_object(FecScheme::RaptorQ, 3_000_000, 1400, BlockSize::default())
                .unwrap(),
            block_sha256: vec![[1; 32], [2; 32], [3; 32]],
            delta: None,
        }
    }

    fn delta_body() -> ManifestBody {
        ManifestBody {
            id: "0a0b".into(),
            name: "fw.bin.delta".into(),
            delta: Some(ManifestDelta {
                base_sha256: [4; 32],
                target_sha256: [5; 32],
                target_id: "00ff".into(),
            }),
            ..body()
        }
    }

    #[test]
    fn full_object_manifests_keep_the_version_1_encoding() {
        let bytes = body().canonical_bytes().unwrap();
        assert_eq!(bytes[12], 1);
        // The version 1 layout ends with the block hashes.
        assert_eq!(&bytes[bytes.len() - 32..], &[3u8; 32]);
        let json = String::from_utf8(body().sign(&generate_key()).unwrap().to_json()).unwrap();
        assert!(!json.contains("delta"), "{json}");
    }

    #[test]
    fn delta_manifests_sign_base_target_and_target_id() {
        let key = generate_key();
        let signed = delta_body().sign(&key).unwrap();
        assert_eq!(signed.v, MANIFEST_VERSION_DELTA);
        let parsed = SignedManifest::from_json(&signed.to_json()).unwrap();
        assert_eq!(parsed.verify(&key.verifying_key()).unwrap(), delta_body());
        let bytes = delta_body().canonical_bytes().unwrap();
        assert_eq!(bytes[12], 2);
        assert_eq!(&bytes[bytes.len() - 6..], b"\0\x0400ff");
        for tamper in [
            |m: &mut SignedManifest| m.delta.as_mut().unwrap().base_sha256 = hex::encode([6u8; 32]),
            |m: &mut SignedManifest| {
                m.delta.as_mut().unwrap().target_sha256 = hex::encode([6u8; 32])
            },
            |m: &mut SignedManifest| m.delta.as_mut().unwrap().target_id = "00fe".into(),
        ] {
            let mut bad = signed.clone();
            tamper(&mut bad);
            assert!(matches!(
                bad.verify(&key.verifying_key()),
                Err(ManifestError::BadSignature)
            ));
        }
        // Dropping the delta member (posing as a full object) or keeping it
        // under version 1 is refused before any signature check.
        let mut stripped = signed.clone();
        stripped.delta = None;
        assert!(matches!(
            stripped.verify(&key.verifying_key()),
            Err(ManifestError::Malformed(_))
        ));
        let mut downgraded = signed;
        downgraded.v = 1;
        assert!(matches!(
            downgraded.verify(&key.verifying_key()),
            Err(ManifestError::Malformed(_))
        ));
    }

    #[test]
    fn signed_manifest_round_trips_and_verifies() {
        let key = generate_key();
        let signed = body().sign(&key).unwrap();
        let parsed = SignedManifest::from_json(&signed.to_json()).unwrap();
        assert_eq!(parsed.verify(&key.verifying_key()).unwrap(), body());
    }

    #[test]
    fn tampering_or_another_key_fails_verification() {
        let key = generate_key();
        let signed = body().sign(&key).unwrap();
        let mut tampered = signed.clone();
        tampered.size += 1;
        assert!(matches!(
            tampered.verify(&key.verifying_key()),
            Err(ManifestError::BadSignature)
        ));
        let mut tampered = signed.clone();
        tampered.block_sha256[1] = hex::encode([9u8; 32]);
        assert!(tampered.verify(&key.verifying_key()).is_err());
        let other = generate_key();
        assert!(signed.verify(&other.verifying_key()).is_err());
        let mut future = signed;
        future.v = 3;
        assert!(matches!(
            future.verify(&key.verifying_key()),
            Err(ManifestError::UnsupportedVersion(3))
        ));
    }

    #[test]
    fn keys_round_trip_through_pem() {
        let key = generate_key();
        let back = private_key_from_pem(&private_key_to_pem(&key).unwrap()).unwrap();
        assert_eq!(back.to_bytes(), key.to_bytes());
        let pem = public_key_to_pem(&key.verifying_key()).unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(public_key_from_pem(&pem).unwrap(), key.verifying_key());
        assert!(public_key_from_pem("garbage").is_err());
    }

    #[test]
    fn malformed_json_is_an_error() {
        assert!(SignedManifest::from_json(b"{").is_err());
        assert!(SignedManifest::from_json(b"[1,2]").is_err());
    }
}
