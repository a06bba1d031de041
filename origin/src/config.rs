//! The origin's configuration file (TOML).
//!
//! ```toml
//! base_url = "https://dms.example.net:8443"  # default: from --listen
//! quota_bytes = 100_000_000_000              # distinct blob bytes; default none
//! min_free_bytes = 67_108_864                # keep free on the blob disk
//! symbol_size = 1400                         # FEC symbol size T
//! fec = "raptorq"                            # stored layout: raptorq or raptor
//! blobs = "s3://dms-blobs/site-a"            # default: DATA/blobs (see `--blobs`)
//! catalog = "postgres://dms@db.example/dms"   # default: DATA/catalog.redb (see `--catalog`)
//! signing_key = "/etc/dms/origin.key"         # default: DATA/origin.key
//!
//! download_redirect = true                   # downloads: 307 to a presigned S3 URL (needs s3 blobs)
//! download_redirect_expiry_secs = 300        # how long that URL is valid
//!
//! [http]                                    # slow and hostile clients (defaults shown)
//! handshake_timeout_secs = 10
//! header_timeout_secs = 20
//! body_timeout_secs = 60
//! idle_timeout_secs = 60
//! max_connections = 16384
//! max_connections_per_ip = 0                 # 0: no per-address cap
//! drain_bytes = 67_108_864                   # read after an early answer (401, 413…)
//! drain_secs = 10
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
    /// The FEC scheme objects are stored (and repaired) in: `raptorq`
    /// (default) or `raptor` (RFC 5053, 3GPP MBMS download).
    pub fec: Option<String>,
    /// Where blobs (and deltas) live: `s3://BUCKET[/PREFIX]`, or `local`
    /// (the default, `DATA/blobs`).
    pub blobs: Option<String>,
    /// The catalog: `postgres://USER@HOST[:PORT]/DB` (shared by several
    /// instances), or `redb` (the default, `DATA/catalog.redb`).
    pub catalog: Option<String>,
    /// The manifest signing key (a `dms keygen` PKCS#8 PEM file), the same
    /// on every instance of a shared catalog; default `DATA/origin.key`,
    /// made at first start.
    pub signing_key: Option<std::path::PathBuf>,
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
    /// Answer downloads with a redirect to a short-lived presigned URL of
    /// the blob in the S3 bucket (`--download-redirect`; needs S3 blobs).
    pub download_redirect: Option<bool>,
    /// Seconds a presigned download URL is valid (default 300, at most
    /// 604800).
    pub download_redirect_expiry_secs: Option<u64>,
    /// Extra tokens.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// Time-outs and connection caps of the HTTP server.
    #[serde(default)]
    pub http: HttpConfig,
}

/// The `[http]` table: time-outs and caps against slow and hostile
/// clients (each unset key keeps its default, see
/// [`HttpLimits`](crate::http::HttpLimits)).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds to finish the TLS handshake.
    pub handshake_timeout_secs: Option<f64>,
    /// Seconds to send a request's headers.
    pub header_timeout_secs: Option<f64>,
    /// Longest pause, in seconds, inside a request body.
    pub body_timeout_secs: Option<f64>,
    /// Seconds a connection may stay without a request in flight.
    pub idle_timeout_secs: Option<f64>,
    /// Most connections at once.
    pub max_connections: Option<usize>,
    /// Most connections of one client address (0: no cap).
    pub max_connections_per_ip: Option<usize>,
    /// Bytes of a request body read after an early answer.
    pub drain_bytes: Option<u64>,
    /// Seconds spent reading them at most.
    pub drain_secs: Option<f64>,
}

impl HttpConfig {
    /// The limits: the defaults with the keys set here replaced.
    pub fn limits(&self) -> Result<crate::http::HttpLimits, ConfigError> {
        let secs = |key: &str, value: Option<f64>, default: std::time::Duration| match value {
            None => Ok(default),
            Some(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => {
                Ok(std::time::Duration::from_secs_f64(v))
            }
            Some(v) => Err(ConfigError::Parse(format!(
                "http.{key} = {v}: must be more than 0 and at most 86400 seconds"
            ))),
        };
        let d = crate::http::HttpLimits::default();
        if self.max_connections == Some(0) {
            return Err(ConfigError::Parse(
                "http.max_connections must be at least 1".into(),
            ));
        }
        Ok(crate::http::HttpLimits {
            handshake_timeout: secs(
                "handshake_timeout_secs",
                self.handshake_timeout_secs,
                d.handshake_timeout,
            )?,
            header_timeout: secs(
                "header_timeout_secs",
                self.header_timeout_secs,
                d.header_timeout,
            )?,
            body_timeout: secs("body_timeout_secs", self.body_timeout_secs, d.body_timeout)?,
            idle_timeout: secs("idle_timeout_secs", self.idle_timeout_secs, d.idle_timeout)?,
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_ip: self
                .max_connections_per_ip
                .unwrap_or(d.max_connections_per_ip),
            drain_bytes: self.drain_bytes.unwrap_or(d.drain_bytes),
            drain_time: secs("drain_secs", self.drain_secs, d.drain_time)?,
        })
    }
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
        config.http.limits()?;
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

    #[test]
    fn http_limits_take_the_set_keys_and_refuse_nonsense() {
        let c =
            Config::parse("[http]\nheader_timeout_secs = 2.5\nmax_connections = 100\n").unwrap();
        let limits = c.http.limits().unwrap();
        assert_eq!(
            limits.header_timeout,
            std::time::Duration::from_millis(2500)
        );
        assert_eq!(limits.max_connections, 100);
        assert_eq!(
            limits.body_timeout,
            crate::http::HttpLimits::default().body_timeout
        );
        for bad in [
            "[http]\nbody_timeout_secs = 0\n",
            "[http]\nidle_timeout_secs = -1\n",
            "[http]\nmax_connections = 0\n",
            "[http]\nslowloris = 1\n",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
    }
}
