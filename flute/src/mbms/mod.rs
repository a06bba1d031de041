//! 3GPP MBMS session bootstrap (TS 26.346): the documents a broadcast
//! receiver reads to join a FLUTE session instead of command-line flags.
//!
//! - [`sdp`]: the session's SDP (RFC 4566, RFC 4570 source filters, TS
//!   26.346 §7.3 FLUTE attributes): group, port, source, TSI, FEC, rate
//!   and schedule.
//! - [`apd`]: the Associated Procedure Description: file repair servers
//!   and back-off, reception reporting rules.
//! - [`usd`]: the User Service Bundle Description naming the SDP and the
//!   APD, with the schedule.
//!
//! Each is a plain value with a writer (`to_sdp`, `to_xml`) and a parser
//! (`parse`) that never panics and names the line of what it refuses.
//! Sans-IO: fetching the documents is the caller's job.

pub mod apd;
pub mod sdp;
pub mod usd;
mod xml;

pub use apd::{AssociatedProcedures, FileRepair, ReceptionReporting, ReportType};
pub use sdp::SessionDescription;
pub use usd::{Schedule, UserServiceBundle, UserServiceDescription};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Largest description accepted (SDP or XML), bytes.
pub const MAX_DESCRIPTION_LEN: usize = 256 * 1024;

/// A description that cannot be used, with the (1-based) line it is on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DescriptionError {
    /// The line (1-based) of the offending text; 0 when the document as a
    /// whole is wrong (too large, not UTF-8, empty).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl DescriptionError {
    /// An error on `line`.
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        DescriptionError {
            line,
            message: message.into(),
        }
    }
}

/// `text` as UTF-8 within [`MAX_DESCRIPTION_LEN`].
fn checked_text(data: &[u8]) -> Result<&str, DescriptionError> {
    if data.len() > MAX_DESCRIPTION_LEN {
        return Err(DescriptionError::new(
            0,
            format!(
                "{} bytes, more than the {MAX_DESCRIPTION_LEN} accepted",
                data.len()
            ),
        ));
    }
    std::str::from_utf8(data).map_err(|e| {
        let line = 1 + data[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        DescriptionError::new(line, "not UTF-8")
    })
}

/// Escapes `s` for XML text and attribute values.
fn escape(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}
