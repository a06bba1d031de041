//! The object model: what the catalog stores about each object.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an object is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Device firmware.
    Firmware,
    /// An operating-system patch.
    OsPatch,
    /// Configuration.
    Config,
    /// A certificate.
    Certificate,
    /// A device-management command.
    DmCommand,
    /// An application file.
    App,
    /// Anything else.
    Other,
}

/// Delivery priority: higher goes first in a broadcast session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// Send first.
    Critical,
    /// Before normal.
    High,
    /// The default.
    Normal,
    /// Last.
    Low,
}

/// Life-cycle state of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Served and listed as a candidate for "latest".
    Active,
    /// Still served, but no longer the latest.
    Deprecated,
    /// Not served any more (download, descriptor and manifest answer 404).
    Withdrawn,
}

macro_rules! parse_kebab {
    ($ty:ty) => {
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                serde_json::from_value(serde_json::Value::String(s.to_owned()))
                    .map_err(|_| format!("unknown {} {s:?}", stringify!($ty).to_lowercase()))
            }
        }
    };
}
parse_kebab!(Kind);
parse_kebab!(Priority);
parse_kebab!(State);

/// The FEC layout of an object, as stored and answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FecInfo {
    /// FEC Encoding ID (6 = RaptorQ).
    pub encoding_id: u8,
    /// Symbol size T in bytes.
    pub symbol_size: u16,
    /// Number of source blocks Z.
    pub source_blocks: u32,
    /// Hex of the encoded FEC OTI (as in EXT_FTI).
    pub oti: String,
}

/// One object in the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Random 128-bit id in hex; never reused.
    pub id: String,
    /// The object's name (validated by [`validate_name`]).
    pub name: String,
    /// The object's version (validated by [`validate_version`]).
    pub version: String,
    /// What it is.
    pub kind: Kind,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the content (also the blob key).
    pub sha256: String,
    /// Delivery priority.
    pub priority: Priority,
    /// Seconds since the Unix epoch when the object was stored.
    pub created: u64,
    /// Publication sequence number (a catalog-wide counter).
    pub seq: u64,
    /// Life-cycle state.
    pub state: State,
    /// Free metadata (for example compatible device models).
    pub metadata: BTreeMap<String, String>,
    /// The FEC layout.
    pub fec: FecInfo,
    /// Hex SHA-256 of each source block in SBN order.
    pub block_sha256: Vec<String>,
    /// Set when a scrub found the stored bytes damaged: the object is not
    /// served (downloads, descriptors, manifests, sessions, symbol repair)
    /// until its content is uploaded again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<Damage>,
}

/// What a scrub found wrong with an object's stored bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Damage {
    /// Seconds since the Unix epoch when the scrub found it.
    pub found: u64,
    /// What differs: a missing blob, its length, its SHA-256, the source
    /// blocks whose hashes differ.
    pub reason: String,
}

/// The longest accepted object name.
pub const MAX_NAME_LEN: usize = 128;
/// The longest accepted version string.
pub const MAX_VERSION_LEN: usize = 64;

/// Checks a name: 1–128 characters of `[A-Za-z0-9._+@-]`, not starting with
/// a dot (so no `..`, no path separators, nothing a file system or a URL
/// treats specially).
pub fn validate_name(name: &str) -> Result<(), String> {
    validate_token("name", name, MAX_NAME_LEN)
}

/// Checks a version: 1–64 characters of `[A-Za-z0-9._+@-]`, not starting
/// with a dot.
pub fn validate_version(version: &str) -> Result<(), String> {
    validate_token("version", version, MAX_VERSION_LEN)
}

fn validate_token(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() || s.len() > max {
        return Err(format!("{what} must be 1 to {max} characters"));
    }
    if s.starts_with('.') {
        return Err(format!("{what} must not start with '.'"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '@')))
    {
        return Err(format!(
            "{what} contains {c:?}: only [A-Za-z0-9._+@-] allowed"
        ));
    }
    Ok(())
}

/// The file name used in download URLs: the name with every character
/// outside `[A-Za-z0-9._-]` replaced by `_` (the repair service's rule,
/// which it checks on every download).
pub fn file_name(name: &str) -> String {
    dms_repair::download::file_name(name)
}

/// The order of two versions of one name.
///
/// When both parse as semantic versions they compare as such; otherwise
/// the one published first is the older. (A version that is not semver
/// therefore sorts by publication, which is what an operator who uses
/// dates or build numbers expects.)
pub fn version_order(a: &ObjectRecord, b: &ObjectRecord) -> Ordering {
    match (
        semver::Version::parse(&a.version),
        semver::Version::parse(&b.version),
    ) {
        (Ok(va), Ok(vb)) => va.cmp(&vb).then(a.seq.cmp(&b.seq)),
        _ => a.seq.cmp(&b.seq),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn names_reject_path_tricks() {
        for bad in ["", "../etc", "a/b", "a\\b", ".hidden", "a b", "é", "a%2f"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
        for good in ["fw.bin", "fw-1.2_x+y@z", "A"] {
            validate_name(good).unwrap();
        }
        assert!(validate_name(&"a".repeat(129)).is_err());
    }

    #[test]
    fn kinds_parse_in_kebab_case() {
        assert_eq!("os-patch".parse::<Kind>().unwrap(), Kind::OsPatch);
        assert_eq!("dm-command".parse::<Kind>().unwrap(), Kind::DmCommand);
        assert!("firmwar".parse::<Kind>().is_err());
        assert_eq!("critical".parse::<Priority>().unwrap(), Priority::Critical);
        assert_eq!("withdrawn".parse::<State>().unwrap(), State::Withdrawn);
    }

    #[test]
    fn file_names_keep_only_url_safe_characters() {
        assert_eq!(file_name("fw+1@x.bin"), "fw_1_x.bin");
    }
}
