//! The origin's configuration file (TOML).
//!
//! ```toml
//! base_url = "https://dms.example.net:8443"  # default: from --listen
//! quota_bytes = 100_000_000_000              # distinct blob bytes; default none
//! min_free_bytes = 67_108_864                # keep free on the blob disk
//! symbol_size = 1400                         # FEC symbol size T
//!
//! [[tokens]]
//! name = "dm-server-1"
//! token = "a-long-random-secret"
//! scope = "read-write"                       # or "read-only"
//! ```

use std::path::Path;

use serde::Deserialize;

/// What a bearer token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// GET on the management API.
    ReadOnly,
    /// Everything on the management API.
    ReadWrite,
}

/// One configured token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A label for logs.
    pub name: String,
    /// The secret.
    pub token: String,
    /// What it may do.
    pub scope: Scope,
}

/// The configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Public base URL used in every URI given out.
    pub base_url: Option<String>,
    /// Quota on distinct blob bytes.
    pub quota_bytes: Option<u64>,
    /// Bytes to keep free on the blob store's disk.
    pub min_free_bytes: Option<u64>,
    /// FEC symbol size T.
    pub symbol_size: Option<u16>,
    /// Make deltas to each new version from this many previous active
    /// versions (default 2; 0 turns deltas off).
    pub delta_bases: Option<usize>,
    /// Keep a delta only when at most this fraction of the full size
    /// (default 0.6).
    pub delta_max_ratio: Option<f64>,
    /// Memory for prepared block encoders shared by symbol repair
    /// requests, bytes (default 64 MiB; 0 turns the cache off). A block
    /// holds about 3 × its size.
    pub repair_encoder_cache_bytes: Option<u64>,
    /// Extra tokens.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

/// An error reading the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not valid.
    #[error("{0}")]
    Parse(String),
}

impl Config {
    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        for t in &config.tokens {
            if t.token.len() < 16 {
                return Err(ConfigError::Parse(format!(
                    "token {:?} is shorter than 16 characters",
                    t.name
                )));
            }
        }
        Ok(config)
    }

    /// Reads a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&std::fs::read_to_string(path)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn config_parses_tokens_and_refuses_unknown_keys() {
        let c = Config::parse(
            "base_url = \"https://x\"\nquota_bytes = 10\n[[tokens]]\nname = \"r\"\ntoken = \"0123456789abcdef\"\nscope = \"read-only\"\n",
        )
        .unwrap();
        assert_eq!(c.tokens[0].scope, Scope::ReadOnly);
        assert_eq!(c.quota_bytes, Some(10));
        assert!(Config::parse("bogus = 1").is_err());
        assert!(
            Config::parse("[[tokens]]\nname=\"a\"\ntoken=\"short\"\nscope=\"read-only\"").is_err()
        );
    }
}
